-- Postings (issue #8): the national copy of what each node publishes, keyed by publishing
-- prefecture and the node's posting id. Non-personal; the columns the matching reads are kept
-- beside the body so that finding the open postings near a place needs no JSON.
CREATE TABLE postings (
    prefecture TEXT NOT NULL,
    posting_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    kind TEXT NOT NULL,
    -- Bit per nursing qualification accepted (ncf_shared::posting::qualification_bits).
    qualifications INTEGER NOT NULL,
    lat REAL NOT NULL,
    lng REAL NOT NULL,
    valid_from DATE NOT NULL,
    valid_until DATE NOT NULL,
    withdrawn BOOLEAN NOT NULL,
    body TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL,
    PRIMARY KEY (prefecture, posting_id)
);
CREATE INDEX postings_open ON postings (valid_until, lat);

-- The distance she chose, per link (preference_changed, under job_support or training_info);
-- her home link's is the one used.
CREATE TABLE match_preferences (
    prefecture TEXT NOT NULL,
    agency_code TEXT NOT NULL,
    distance_km INTEGER NOT NULL,
    changed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (prefecture, agency_code)
);

-- Her current lists as last sent to her home node: at most 100 per kind, never every pair.
CREATE TABLE match_entries (
    person_key BLOB NOT NULL,
    kind TEXT NOT NULL,
    prefecture TEXT NOT NULL,
    posting_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    distance_m INTEGER NOT NULL,
    home_prefecture TEXT NOT NULL,
    home_agency_code TEXT NOT NULL,
    PRIMARY KEY (person_key, kind, prefecture, posting_id)
);
CREATE INDEX match_entries_posting ON match_entries (prefecture, posting_id);
