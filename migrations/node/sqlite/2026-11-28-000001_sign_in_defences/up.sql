-- Sign-in defences and the outgoing-mail queue.

-- Outgoing e-mail, written in the transaction of the change that causes it and sent by the
-- node's background sender, so no request ever waits for SMTP (and a nurse's sign-in answer does
-- not depend on whether her address is registered). A body holds sign-in or confirmation links:
-- it is blanked as soon as the mail is sent, refused for good, or past `expires_at` (a link that
-- no longer works is not worth sending), and finished rows are pruned after a few days.
CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY NOT NULL,
    to_address TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'expired', 'refused')),
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    last_error TEXT,
    finished_at TIMESTAMP
);
CREATE INDEX mail_outbox_due ON mail_outbox (state, next_attempt_at);

-- Requests for a nurse's sign-in link, for the rate limit per address and per client. The address
-- is kept only as its SHA-256 (lower case), and rows older than the window are pruned.
CREATE TABLE nurse_sign_in_requests (
    id TEXT PRIMARY KEY NOT NULL,
    address_sha256 TEXT NOT NULL,
    client TEXT NOT NULL,
    requested_at TIMESTAMP NOT NULL
);
CREATE INDEX nurse_sign_in_requests_address ON nurse_sign_in_requests (address_sha256, requested_at);
CREATE INDEX nurse_sign_in_requests_client ON nurse_sign_in_requests (client, requested_at);

-- Staff sign-in is throttled per (username, client) pair, not per username or client alone, so
-- that a stranger cannot lock staff out.
DROP INDEX sign_in_attempts_username;
DROP INDEX sign_in_attempts_client;
CREATE INDEX sign_in_attempts_pair ON sign_in_attempts (username, client, attempted_at);
