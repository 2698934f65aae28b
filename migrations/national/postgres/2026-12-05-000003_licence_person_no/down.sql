DROP INDEX licences_person_no;
ALTER TABLE licences DROP COLUMN person_no;
CREATE INDEX licences_person_key ON licences (person_key);
