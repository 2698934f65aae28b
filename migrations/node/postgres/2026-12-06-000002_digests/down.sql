DROP TABLE digests;
ALTER TABLE nurses DROP COLUMN bounce_reason;
ALTER TABLE nurses DROP COLUMN bouncing_since;
ALTER TABLE nurses DROP COLUMN employment_filter;
ALTER TABLE nurses DROP COLUMN digest_cadence;
