-- Prefecture node: nurses known by this node's agency code, their notices and consent records
-- (both append-only), and the outbox of events for the national server.
-- Times are UTC TIMESTAMPs set from Rust; ids are TEXT (UUIDv7) generated in Rust.

CREATE TABLE nurses (
    id TEXT PRIMARY KEY NOT NULL,
    agency_code TEXT NOT NULL UNIQUE,
    qualification TEXT NOT NULL,
    registration_number TEXT NOT NULL,
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    family_name_kana TEXT NOT NULL,
    given_name_kana TEXT NOT NULL,
    birth_date DATE NOT NULL,
    email TEXT NOT NULL,
    phone TEXT,
    max_distance_km INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX nurses_kana ON nurses (family_name_kana, given_name_kana);

-- 離職届 / 就業状況 / 変更届: never updated or deleted; the latest decides the status.
CREATE TABLE notices (
    id TEXT PRIMARY KEY NOT NULL,
    nurse_id TEXT NOT NULL REFERENCES nurses (id),
    kind TEXT NOT NULL CHECK (kind IN ('separation', 'employment_status', 'change')),
    body TEXT NOT NULL,
    channel TEXT NOT NULL CHECK (channel IN ('web', 'paper')),
    entered_by TEXT,
    filed_at TIMESTAMP NOT NULL
);
CREATE INDEX notices_nurse ON notices (nurse_id, filed_at);

-- One row per change of one scope, versioned per (nurse, scope), with the consent text shown.
CREATE TABLE consents (
    id TEXT PRIMARY KEY NOT NULL,
    nurse_id TEXT NOT NULL REFERENCES nurses (id),
    scope TEXT NOT NULL CHECK (scope IN ('address_linkage', 'job_support', 'training_info', 'share_with_residence_prefecture')),
    granted BOOLEAN NOT NULL,
    version INTEGER NOT NULL,
    text_version TEXT NOT NULL,
    text_sha256 TEXT NOT NULL,
    channel TEXT NOT NULL CHECK (channel IN ('web', 'paper')),
    entered_by TEXT,
    recorded_at TIMESTAMP NOT NULL,
    UNIQUE (nurse_id, scope, version)
);

-- Events for the national server, written in the same transaction as the change. `seq` is
-- gap-free: it comes from `sequences`, whose row lock serialises writers and whose increment
-- rolls back with a failed transaction.
CREATE TABLE outbox (
    seq BIGINT PRIMARY KEY NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    nurse_id TEXT REFERENCES nurses (id),
    payload TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE sequences (
    name TEXT PRIMARY KEY NOT NULL,
    last_value BIGINT NOT NULL
);
INSERT INTO sequences (name, last_value) VALUES ('outbox', 0);
