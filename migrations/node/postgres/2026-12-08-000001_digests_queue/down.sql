DROP INDEX digests_queue;
CREATE INDEX digests_due ON digests (state, next_attempt_at);
