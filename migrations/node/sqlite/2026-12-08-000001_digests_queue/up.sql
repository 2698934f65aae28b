-- The sender walks the pending digests oldest first, a batch after the last one it took
-- (created_at, id): an index in that order lets each batch start where the previous one ended
-- instead of sorting every pending row again. It serves the retry query too, so the index on
-- (state, next_attempt_at) goes.
DROP INDEX digests_due;
CREATE INDEX digests_queue ON digests (state, created_at, id);
