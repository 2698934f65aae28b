-- Sync from nodes (DESIGN flow 3) and the data-provision record (rule 5).

-- Per node: the last outbox sequence applied without a gap, and every (node, seq) received once.
CREATE TABLE node_cursors (
    prefecture TEXT PRIMARY KEY NOT NULL,
    last_seq BIGINT NOT NULL
);
CREATE TABLE pushed_events (
    prefecture TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('applied', 'rejected')),
    reason TEXT,
    received_at TIMESTAMP NOT NULL,
    PRIMARY KEY (prefecture, seq)
);

-- What the nodes told us, by agency code, only while a consent covers it.
CREATE TABLE nurse_consents (
    prefecture TEXT NOT NULL,
    agency_code TEXT NOT NULL,
    scope TEXT NOT NULL,
    granted BOOLEAN NOT NULL,
    version INTEGER NOT NULL,
    text_sha256 TEXT NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (prefecture, agency_code, scope)
);
CREATE TABLE nurse_notices (
    notice_id TEXT PRIMARY KEY NOT NULL,
    prefecture TEXT NOT NULL,
    agency_code TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    filed_at TIMESTAMP NOT NULL
);
CREATE INDEX nurse_notices_nurse ON nurse_notices (prefecture, agency_code);

-- 情報提供等記録: append-only, each entry hashing the previous one.
CREATE TABLE provisions (
    seq BIGINT PRIMARY KEY NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    source TEXT NOT NULL,
    recipient TEXT NOT NULL,
    prefecture TEXT NOT NULL,
    agency_code TEXT NOT NULL,
    fields TEXT NOT NULL,
    purpose TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX provisions_nurse ON provisions (prefecture, agency_code);

CREATE TABLE sequences (
    name TEXT PRIMARY KEY NOT NULL,
    last_value BIGINT NOT NULL
);
INSERT INTO sequences (name, last_value) VALUES ('provisions', 0);
