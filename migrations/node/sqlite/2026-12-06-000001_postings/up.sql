-- Postings this node publishes (issue #8): written by staff, non-personal. `version` grows with
-- every edit or withdrawal; `synced_version` is the version the national server last answered
-- for (stored or refused), so the sync sends exactly what changed since.
CREATE TABLE postings (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    version BIGINT NOT NULL,
    synced_version BIGINT NOT NULL DEFAULT 0,
    refused_reason TEXT,
    valid_from DATE NOT NULL,
    valid_until DATE NOT NULL,
    withdrawn_at TIMESTAMP,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX postings_unsynced ON postings (synced_version);

-- Postings of any node as matched to this node's nurses, one copy per posting.
CREATE TABLE matched_postings (
    prefecture TEXT NOT NULL,
    posting_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (prefecture, posting_id)
);

-- Her current lists, as the national server last sent them (nearest 100 per kind).
CREATE TABLE nurse_matches (
    nurse_id TEXT NOT NULL REFERENCES nurses (id),
    kind TEXT NOT NULL,
    prefecture TEXT NOT NULL,
    posting_id TEXT NOT NULL,
    distance_m INTEGER NOT NULL,
    matched_at TIMESTAMP NOT NULL,
    PRIMARY KEY (nurse_id, prefecture, posting_id)
);
