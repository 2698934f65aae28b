-- The sender walks the pending digests oldest first, each batch after the last one it took
-- (created_at, id). This index holds the pending ones only, in that order: a batch starts where
-- the previous one ended, without sorting or walking the digests already sent (kept as the
-- record of what each nurse was sent), and marking a digest sent only takes it out. It serves
-- the retry query too, so the index on (state, next_attempt_at) goes. Queries that use it say
-- `state = 'pending'` as a literal, which is what lets both databases match it to this index.
DROP INDEX digests_due;
CREATE INDEX digests_queue ON digests (created_at, id) WHERE state = 'pending';
