DROP INDEX inbox_waiting;
ALTER TABLE inbox DROP COLUMN nurse_id;
ALTER TABLE inbox DROP COLUMN reason;
ALTER TABLE inbox DROP COLUMN state;
ALTER TABLE inbox DROP COLUMN version;
ALTER TABLE outbox DROP COLUMN parked_code;
ALTER TABLE outbox DROP COLUMN version;
