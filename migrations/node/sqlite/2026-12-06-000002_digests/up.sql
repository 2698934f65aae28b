-- Digests (issue #8): her cadence and employment-type filter, and
-- whether her address bounces (a permanent SMTP refusal stops mail to it; staff see it).
ALTER TABLE nurses ADD COLUMN digest_cadence TEXT NOT NULL DEFAULT 'weekly';
ALTER TABLE nurses ADD COLUMN employment_filter TEXT NOT NULL DEFAULT '';
ALTER TABLE nurses ADD COLUMN bouncing_since TIMESTAMP;
ALTER TABLE nurses ADD COLUMN bounce_reason TEXT;

-- One digest per nurse and period, recorded (with its Message-ID and the postings in it) before
-- it is sent and marked sent when SMTP accepts it: after a crash only what was not marked goes,
-- under the same Message-ID.
CREATE TABLE digests (
    id TEXT PRIMARY KEY,
    nurse_id TEXT NOT NULL REFERENCES nurses (id),
    period TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    postings TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    UNIQUE (nurse_id, period)
);
CREATE INDEX digests_due ON digests (state, next_attempt_at);
