ALTER TABLE outbox DROP COLUMN parked_reason;
DROP TABLE sync_state;
