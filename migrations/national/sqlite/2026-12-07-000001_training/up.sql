-- Wishes to attend training (研修の参加希望, issue #8) as they travel between her home node and the
-- node that holds the session: who asked (her home link and person), for which posting, and what
-- the publishing node recorded. No name and no contact: her contact passes through sealed to the
-- publishing node's key and is never stored here. Attendance counts for the national figures
-- are read from here (never names). The person and the codes are kept while the wish may still
-- need routing (attendance, a correction, an erasure at the holding node after her death).
CREATE TABLE training_wishes (
    home_prefecture TEXT NOT NULL,
    wish_id TEXT NOT NULL,
    home_agency_code TEXT NOT NULL,
    person_key BLOB NOT NULL,
    publishing_prefecture TEXT NOT NULL,
    posting_id TEXT NOT NULL,
    -- The publishing node's code for her, once her contact was relayed.
    publisher_agency_code TEXT,
    -- answered (key sent to her node), refused, relayed (contact passed on), recorded.
    state TEXT NOT NULL,
    -- The digest of the consent text she agreed to (her contact to the holding node).
    consent_text_sha256 TEXT NOT NULL,
    requested_at TIMESTAMP NOT NULL,
    relayed_at TIMESTAMP,
    attended BOOLEAN,
    hours INTEGER,
    recorded_at TIMESTAMP,
    PRIMARY KEY (home_prefecture, wish_id)
);
CREATE INDEX training_wishes_publisher ON training_wishes (publishing_prefecture, wish_id);
