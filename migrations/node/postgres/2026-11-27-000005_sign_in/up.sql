-- Signing in. Tokens are random; only their SHA-256 is stored, so a copy of the database cannot
-- be used to sign in.

-- Browser sessions of staff and nurses, each with the CSRF token its forms must carry.
CREATE TABLE sessions (
    token_sha256 TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('staff', 'nurse')),
    subject_id TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- One-time e-mail sign-in links for nurses: single use, short-lived.
CREATE TABLE login_links (
    token_sha256 TEXT PRIMARY KEY NOT NULL,
    nurse_id TEXT NOT NULL REFERENCES nurses (id),
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);

-- Bearer tokens for staff scripts.
CREATE TABLE api_tokens (
    token_sha256 TEXT PRIMARY KEY NOT NULL,
    staff_id TEXT NOT NULL REFERENCES staff (id),
    label TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);

-- Staff sign-in attempts: the record of who signed in, and the count that rate limiting reads.
CREATE TABLE sign_in_attempts (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL,
    client TEXT NOT NULL,
    succeeded BOOLEAN NOT NULL,
    attempted_at TIMESTAMP NOT NULL
);
CREATE INDEX sign_in_attempts_username ON sign_in_attempts (username, attempted_at);
CREATE INDEX sign_in_attempts_client ON sign_in_attempts (client, attempted_at);

-- A nurse's events, for the staff page's sync state.
CREATE INDEX outbox_nurse ON outbox (nurse_id, seq);
