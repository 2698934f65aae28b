-- Push state: the cursor (last seq the national server holds without a gap) and parked events
-- (rejected for good by the national server; kept, reported, never retried).
CREATE TABLE sync_state (
    name TEXT PRIMARY KEY NOT NULL,
    value BIGINT NOT NULL
);
INSERT INTO sync_state (name, value) VALUES ('push_cursor', 0);
ALTER TABLE outbox ADD COLUMN parked_reason TEXT;
