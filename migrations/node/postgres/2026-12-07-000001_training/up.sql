-- Her wishes to attend training (研修の参加希望, issue #8) and what the node that holds the session
-- recorded: her training history (研修歴). The session's details are copied when she asks, so
-- her record stays readable after the posting closes or leaves her list.
CREATE TABLE training_wishes (
    id TEXT PRIMARY KEY,
    nurse_id TEXT NOT NULL REFERENCES nurses (id),
    prefecture TEXT NOT NULL,
    posting_id TEXT NOT NULL,
    title TEXT NOT NULL,
    facility_name TEXT NOT NULL,
    starts_on DATE NOT NULL,
    ends_on DATE NOT NULL,
    planned_hours INTEGER NOT NULL,
    -- The text she agreed to (her contact to the node that holds the session), by its digest.
    consent_text_sha256 TEXT NOT NULL,
    -- requested (waiting for the national server), sent (her contact sealed and queued),
    -- refused (why in refused_reason), recorded (attendance known).
    state TEXT NOT NULL,
    refused_reason TEXT,
    requested_at TIMESTAMP NOT NULL,
    attended BOOLEAN,
    hours INTEGER,
    recorded_at TIMESTAMP,
    UNIQUE (nurse_id, prefecture, posting_id)
);

-- Applicants to this node's training sessions, relayed by the national server: their contact,
-- sealed by their home node to this node's key, opened here. Staff record attendance, which
-- goes back to her home node.
CREATE TABLE training_applicants (
    from_prefecture TEXT NOT NULL,
    wish_id TEXT NOT NULL,
    posting_id TEXT NOT NULL REFERENCES postings (id),
    -- This node's code for her, as the national server gave it.
    agency_code TEXT NOT NULL,
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    family_name_kana TEXT NOT NULL,
    given_name_kana TEXT NOT NULL,
    qualification TEXT NOT NULL,
    email TEXT NOT NULL,
    phone TEXT,
    proofing_method TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL,
    attended BOOLEAN,
    hours INTEGER,
    recorded_at TIMESTAMP,
    recorded_by TEXT,
    PRIMARY KEY (from_prefecture, wish_id)
);
CREATE INDEX training_applicants_posting ON training_applicants (posting_id);
