DROP INDEX nurse_notices_latest;
ALTER TABLE nurse_notices DROP COLUMN working;
ALTER TABLE nurse_notices DROP COLUMN effective_on;
DROP INDEX erasures_code;
DROP INDEX told_status_code;
DROP INDEX nurse_notices_code;
DROP INDEX nurse_consents_code;
CREATE TABLE nurse_contacts (
    prefecture TEXT NOT NULL,
    agency_code TEXT NOT NULL,
    family_name TEXT,
    given_name TEXT,
    email TEXT,
    phone TEXT,
    changed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (prefecture, agency_code)
);
DROP TABLE reminders;
DROP TABLE transfers;
DROP TABLE erasures;
DROP TABLE licence_deletions;
DROP TABLE told_status;
DROP TABLE person_status;
