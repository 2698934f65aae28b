-- Per link, the notice that decides whether she works (issue #7: latest by effective date, ties
-- to the later filing), kept as pushes apply notices. A status refresh reads one row per link
-- instead of aggregating every notice she ever filed (a nurse with 100,000 notices made every
-- push about her cost as much as reading them all).
CREATE TABLE latest_notices (
    prefecture TEXT NOT NULL,
    agency_code TEXT NOT NULL,
    effective_on DATE NOT NULL,
    filed_at TIMESTAMP NOT NULL,
    working BOOLEAN NOT NULL,
    PRIMARY KEY (prefecture, agency_code)
);
CREATE INDEX latest_notices_code ON latest_notices (agency_code);
INSERT INTO latest_notices (prefecture, agency_code, effective_on, filed_at, working)
SELECT prefecture, agency_code, effective_on, filed_at, working FROM (
    SELECT prefecture, agency_code, effective_on, filed_at, working,
           ROW_NUMBER() OVER (PARTITION BY prefecture, agency_code
                              ORDER BY effective_on DESC, filed_at DESC, notice_id DESC) AS n
    FROM nurse_notices WHERE effective_on IS NOT NULL AND working IS NOT NULL
) ranked WHERE n = 1;
-- Read by nothing now that the deciding notice is kept per link; it only slowed every push.
DROP INDEX nurse_notices_latest;
