ALTER TABLE node_events DROP COLUMN version;
ALTER TABLE nurse_contacts ADD COLUMN address TEXT;
DROP INDEX pushed_events_held;
CREATE TABLE pushed_events_old (
    prefecture TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('applied', 'rejected')),
    reason TEXT,
    received_at TIMESTAMP NOT NULL,
    PRIMARY KEY (prefecture, seq)
);
INSERT INTO pushed_events_old (prefecture, seq, event_id, kind, outcome, reason, received_at)
    SELECT prefecture, seq, event_id, kind, CASE outcome WHEN 'held' THEN 'rejected' ELSE outcome END, reason,
           received_at FROM pushed_events;
DROP TABLE pushed_events;
ALTER TABLE pushed_events_old RENAME TO pushed_events;
