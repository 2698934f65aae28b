-- National server: imports, licence registry, resident data, nodes and identity links.
-- Times are UTC TIMESTAMPs set from Rust; ids are TEXT (UUIDv7) generated in Rust.

CREATE TABLE imports (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('registry', 'residents')),
    file_name TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('all_or_nothing', 'accept_valid')),
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    rows_total BIGINT NOT NULL DEFAULT 0,
    rows_inserted BIGINT NOT NULL DEFAULT 0,
    rows_updated BIGINT NOT NULL DEFAULT 0,
    rows_unchanged BIGINT NOT NULL DEFAULT 0,
    rows_rejected BIGINT NOT NULL DEFAULT 0
);

-- One row per licence (資格管理簿). person_key is the keyed hash of the My Number (rule 1);
-- import_id names the import that last changed the row (rule 7). The key is a unique index (not a
-- PRIMARY KEY constraint) so an initial bulk load can build it after appending the rows; keep
-- these index definitions identical to `imports::registry::MERGE`.
CREATE TABLE licences (
    qualification TEXT NOT NULL,
    registration_number TEXT NOT NULL,
    person_key BLOB NOT NULL,
    registered_on DATE NOT NULL,
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    family_name_kana TEXT NOT NULL,
    given_name_kana TEXT NOT NULL,
    birth_date DATE NOT NULL,
    sex SMALLINT NOT NULL,
    status TEXT NOT NULL,
    import_id TEXT NOT NULL REFERENCES imports (id)
);
CREATE UNIQUE INDEX licences_key ON licences (qualification, registration_number);
CREATE INDEX licences_person_key ON licences (person_key);

-- Resident feed events (J-LIS), as imported (key as a unique index, like licences; keep it
-- identical to `imports::residents::MERGE`). Absent fields are stored as '' (as in the file), so
-- that a changed re-import can be detected with plain comparisons on both backends.
CREATE TABLE resident_events (
    person_key BLOB NOT NULL,
    event TEXT NOT NULL CHECK (event IN ('address_changed', 'name_changed', 'deceased')),
    effective_on DATE NOT NULL,
    lgcode TEXT NOT NULL,
    address TEXT NOT NULL,
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    import_id TEXT NOT NULL REFERENCES imports (id)
);
CREATE UNIQUE INDEX resident_events_key ON resident_events (person_key, event, effective_on);

-- Current resident state per person, folded from resident_events.
CREATE TABLE residents (
    person_key BLOB PRIMARY KEY NOT NULL,
    lgcode TEXT,
    address TEXT,
    address_since DATE,
    family_name TEXT,
    given_name TEXT,
    name_since DATE,
    deceased_on DATE,
    import_id TEXT NOT NULL REFERENCES imports (id)
) WITHOUT ROWID;
CREATE INDEX residents_lgcode ON residents (lgcode);

-- Registered node keys (rule 6). A prefecture may hold several keys (rotation).
CREATE TABLE nodes (
    key_id TEXT PRIMARY KEY NOT NULL,
    prefecture TEXT NOT NULL,
    public_key TEXT NOT NULL UNIQUE,
    added_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE INDEX nodes_prefecture ON nodes (prefecture);

-- Nonces seen within the freshness window, to refuse replays.
CREATE TABLE federation_nonces (
    key_id TEXT NOT NULL REFERENCES nodes (key_id),
    nonce TEXT NOT NULL,
    seen_at TIMESTAMP NOT NULL,
    PRIMARY KEY (key_id, nonce)
);
CREATE INDEX federation_nonces_seen_at ON federation_nonces (seen_at);

-- Which node knows which person by which agency code (rule 2). Only this server can translate.
CREATE TABLE identity_links (
    prefecture TEXT NOT NULL,
    agency_code TEXT NOT NULL,
    person_key BLOB NOT NULL,
    qualification TEXT NOT NULL,
    registration_number TEXT NOT NULL,
    linked_at TIMESTAMP NOT NULL,
    PRIMARY KEY (prefecture, agency_code)
);
CREATE INDEX identity_links_person_key ON identity_links (person_key);
