-- The operations view (issue #9): when each node last called, pushed and pulled, and how far it
-- has pulled its queue. One row per prefecture, written by the signed-request extractor.
CREATE TABLE node_contacts (
    prefecture TEXT PRIMARY KEY NOT NULL,
    last_contact_at TIMESTAMP NOT NULL,
    last_push_at TIMESTAMP,
    last_pull_at TIMESTAMP,
    pulled_after BIGINT NOT NULL DEFAULT 0
);

-- Each check of the data-provision hash chain (audit verify, and serve once a day).
CREATE TABLE chain_verifications (
    id TEXT PRIMARY KEY NOT NULL,
    verified_at TIMESTAMP NOT NULL,
    entries BIGINT NOT NULL,
    broken_seq BIGINT,
    reason TEXT
);
