-- Events pulled from the national server, each applied once (seq is the national queue's).
CREATE TABLE inbox (
    seq BIGINT PRIMARY KEY NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL
);
INSERT INTO sync_state (name, value) VALUES ('pull_cursor', 0);

-- The national server's confirmation that it deleted what a withdrawn scope covered.
CREATE TABLE withdrawal_confirmations (
    nurse_id TEXT NOT NULL REFERENCES nurses (id),
    scope TEXT NOT NULL,
    version INTEGER NOT NULL,
    notices_deleted BIGINT NOT NULL,
    confirmed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (nurse_id, scope, version)
);
