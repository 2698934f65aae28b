-- What the national server holds about each nurse, as this node may know it (issue #7): latent
-- or not, whether this node is her home node, the prefecture she lives in, whether she moved
-- out (and where, under share_with_residence_prefecture), and when her contact was erased.
CREATE TABLE national_status (
    nurse_id TEXT PRIMARY KEY NOT NULL,
    latent BOOLEAN,
    home_here BOOLEAN,
    residence TEXT,
    decided_at TIMESTAMP,
    moved_out_at TIMESTAMP,
    moved_out_to TEXT,
    erased_at TIMESTAMP
);

-- Hand-overs into this prefecture, pending until she confirms by the link mailed to her. Her
-- contact arrives sealed to this node's key and is opened here.
CREATE TABLE transfers_in (
    transfer_id TEXT PRIMARY KEY NOT NULL,
    agency_code TEXT NOT NULL,
    from_prefecture TEXT NOT NULL,
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    email TEXT NOT NULL,
    phone TEXT,
    qualification TEXT NOT NULL,
    registration_number TEXT NOT NULL,
    family_name_kana TEXT NOT NULL,
    given_name_kana TEXT NOT NULL,
    birth_date DATE NOT NULL,
    proofing_method TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL,
    token_sha256 TEXT UNIQUE,
    invited_at TIMESTAMP,
    confirmed_at TIMESTAMP,
    nurse_id TEXT
);
CREATE INDEX transfers_in_code ON transfers_in (agency_code);

-- Filing reminders (届出勧奨) from the national server.
CREATE TABLE reminders (
    id TEXT PRIMARY KEY NOT NULL,
    nurse_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    since DATE NOT NULL,
    received_at TIMESTAMP NOT NULL
);
CREATE INDEX reminders_nurse ON reminders (nurse_id);
