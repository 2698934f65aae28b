-- Identity proofing (issue #5). Several unproofed registrations for one licence may stand side
-- by side (so whoever registers first blocks nobody); the one that proves who she is keeps it.
ALTER TABLE nurses DROP CONSTRAINT nurses_agency_code_key;
ALTER TABLE nurses ADD COLUMN proofing_method TEXT;
ALTER TABLE nurses ADD COLUMN proofed_at TIMESTAMP;
ALTER TABLE nurses ADD COLUMN proofed_by TEXT;
ALTER TABLE nurses ADD COLUMN proofing_document TEXT;
-- Nurses registered before proofing existed stay as they were ('legacy'): their data already
-- flowed, and their withdrawals must keep reaching the national server.
UPDATE nurses SET proofing_method = 'legacy', proofed_at = created_at;
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
