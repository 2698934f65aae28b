CREATE TABLE licences_old (
    qualification TEXT NOT NULL,
    registration_number TEXT NOT NULL,
    person_key BLOB NOT NULL,
    registered_on DATE NOT NULL,
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    family_name_kana TEXT NOT NULL,
    given_name_kana TEXT NOT NULL,
    birth_date DATE NOT NULL,
    sex SMALLINT NOT NULL,
    status TEXT NOT NULL,
    import_id TEXT NOT NULL REFERENCES imports (id)
);
INSERT INTO licences_old (qualification, registration_number, person_key, registered_on, family_name, given_name, family_name_kana, given_name_kana, birth_date, sex, status, import_id)
SELECT qualification, registration_number, person_key, registered_on, family_name, given_name, family_name_kana, given_name_kana, birth_date, sex, status, import_id FROM licences;
DROP TABLE licences;
ALTER TABLE licences_old RENAME TO licences;
CREATE UNIQUE INDEX licences_key ON licences (qualification, registration_number);
CREATE INDEX licences_person_key ON licences (person_key);
