-- Identity proofing (issue #5). Several unproofed registrations for one licence may stand side
-- by side (so whoever registers first blocks nobody); the one that proves who she is keeps it.
-- SQLite cannot drop a column's UNIQUE, so the table is rebuilt, with foreign keys off for the
-- rebuild (which is why this migration runs outside diesel's transaction: see metadata.toml).
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE nurses_new (
    id TEXT PRIMARY KEY NOT NULL,
    agency_code TEXT NOT NULL,
    qualification TEXT NOT NULL,
    registration_number TEXT NOT NULL,
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    family_name_kana TEXT NOT NULL,
    given_name_kana TEXT NOT NULL,
    birth_date DATE NOT NULL,
    email TEXT NOT NULL,
    phone TEXT,
    max_distance_km INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    proofing_method TEXT,
    proofed_at TIMESTAMP,
    proofed_by TEXT,
    proofing_document TEXT
);
-- Nurses registered before proofing existed stay as they were ('legacy'): their data already
-- flowed, and their withdrawals must keep reaching the national server.
INSERT INTO nurses_new (id, agency_code, qualification, registration_number, family_name, given_name,
    family_name_kana, given_name_kana, birth_date, email, phone, max_distance_km, created_at,
    proofing_method, proofed_at)
SELECT id, agency_code, qualification, registration_number, family_name, given_name,
    family_name_kana, given_name_kana, birth_date, email, phone, max_distance_km, created_at,
    'legacy', created_at
FROM nurses;
DROP TABLE nurses;
ALTER TABLE nurses_new RENAME TO nurses;
CREATE INDEX nurses_kana ON nurses (family_name_kana, given_name_kana);
CREATE INDEX nurses_agency_code ON nurses (agency_code);
CREATE UNIQUE INDEX nurses_proofed_licence ON nurses (agency_code) WHERE proofed_at IS NOT NULL;

-- Every consent and notice records how she was proofed when it was made.
ALTER TABLE consents ADD COLUMN proofing TEXT NOT NULL DEFAULT 'none';
ALTER TABLE notices ADD COLUMN proofing TEXT NOT NULL DEFAULT 'none';

-- Opt-in is e-mail first: what she typed waits here, under the digest of the token e-mailed to
-- her, until she opens the link (then the licence is checked) or it expires.
CREATE TABLE pending_opt_ins (
    token_sha256 TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    form TEXT NOT NULL,
    -- No-match answers given for it: after 3 the application is deleted (a token is not a
    -- way to try licence details over and over).
    failures INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX pending_opt_ins_expiry ON pending_opt_ins (expires_at);

-- Letters she asked for (the national server knows where they go; this node never does).
CREATE TABLE proofing_letters (
    letter_id TEXT PRIMARY KEY NOT NULL,
    nurse_id TEXT NOT NULL REFERENCES nurses (id) ON DELETE CASCADE,
    requested_at TIMESTAMP NOT NULL,
    valid_days INTEGER NOT NULL
);
CREATE INDEX proofing_letters_nurse ON proofing_letters (nurse_id, requested_at);

-- What staff should know about: e.g. a licence refused after too many failed attempts.
CREATE TABLE staff_alerts (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

COMMIT;
PRAGMA foreign_keys = ON;
