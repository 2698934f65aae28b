ALTER TABLE node_events DROP COLUMN version;
ALTER TABLE nurse_contacts ADD COLUMN address TEXT;
DROP INDEX pushed_events_held;
UPDATE pushed_events SET outcome = 'rejected' WHERE outcome = 'held';
ALTER TABLE pushed_events DROP COLUMN payload;
ALTER TABLE pushed_events DROP COLUMN reject_code;
ALTER TABLE pushed_events DROP COLUMN version;
ALTER TABLE pushed_events DROP CONSTRAINT pushed_events_outcome_check;
ALTER TABLE pushed_events ADD CONSTRAINT pushed_events_outcome_check CHECK (outcome IN ('applied', 'rejected'));
