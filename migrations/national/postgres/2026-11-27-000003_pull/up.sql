-- Per-node event queue (DESIGN flow 3, national -> node): gap-free per prefecture; the node pulls
-- after its cursor and applies each event once.
CREATE TABLE node_events (
    prefecture TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (prefecture, seq)
);
