-- The typed federation contract (docs/architecture.md): a pushed event of a kind or version this
-- server does not read yet is held with its payload and applied after an upgrade; a rejected
-- event keeps the contract's reject code. Contact details no longer include an address (the
-- share_with_residence_prefecture text names name, e-mail and phone only).
CREATE TABLE pushed_events_new (
    prefecture TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    outcome TEXT NOT NULL CHECK (outcome IN ('applied', 'rejected', 'held')),
    reject_code TEXT,
    reason TEXT,
    payload TEXT,
    -- For a held event: the person it names, so that her withdrawal purges it.
    agency_code TEXT,
    received_at TIMESTAMP NOT NULL,
    PRIMARY KEY (prefecture, seq)
);
INSERT INTO pushed_events_new (prefecture, seq, event_id, kind, outcome, reason, received_at)
    SELECT prefecture, seq, event_id, kind, outcome, reason, received_at FROM pushed_events;
DROP TABLE pushed_events;
ALTER TABLE pushed_events_new RENAME TO pushed_events;
CREATE INDEX pushed_events_held ON pushed_events (prefecture, agency_code) WHERE outcome = 'held';

ALTER TABLE nurse_contacts DROP COLUMN address;

-- The per-node queue stores each event's contract version beside its kind.
ALTER TABLE node_events ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
