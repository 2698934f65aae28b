-- National staff (issue #9): the same three tables as a node's staff accounts, read and written
-- by the one implementation in ncf_shared::accounts. Only staff sessions exist here.
CREATE TABLE staff (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    disabled_at TIMESTAMP
);
CREATE TABLE sessions (
    token_sha256 TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind = 'staff'),
    subject_id TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
CREATE TABLE sign_in_attempts (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL,
    client TEXT NOT NULL,
    succeeded BOOLEAN NOT NULL,
    attempted_at TIMESTAMP NOT NULL
);
CREATE INDEX sign_in_attempts_pair ON sign_in_attempts (username, client, attempted_at);

-- The figures national staff read: counts only, never a person. One row per month (YYYY-MM,
-- Japan time), figure, area (a prefecture code or a municipality's lgcode) and breakdown (a
-- qualification, a kind, a scope, or '' for none). Counts of the state of things (licences,
-- latent nurses, postings open) are the month's latest refresh; counts of events (notices,
-- hand-overs, deletions) are recomputed for every month at each refresh. Suppression happens
-- when a table is shown, never here.
CREATE TABLE figure_cells (
    month TEXT NOT NULL,
    figure TEXT NOT NULL,
    area TEXT NOT NULL,
    breakdown TEXT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (figure, month, area, breakdown)
);

-- When the figures were last refreshed and how long it took.
CREATE TABLE figure_refreshes (
    id TEXT PRIMARY KEY NOT NULL,
    refreshed_at TIMESTAMP NOT NULL,
    millis BIGINT NOT NULL,
    cells BIGINT NOT NULL
);

-- Latent nurses seen with at least one match, from the first refresh that saw it: the
-- denominator of "back at work", and the person's first later employment notice (its effective
-- date) once one arrives. Kept so the outcome survives her leaving the latent list.
CREATE TABLE matched_latent (
    person_key BYTEA PRIMARY KEY NOT NULL,
    matched_month TEXT NOT NULL,
    area TEXT NOT NULL,
    back_on DATE
);
