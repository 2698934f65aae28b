CREATE INDEX nurse_notices_latest ON nurse_notices (agency_code, effective_on, filed_at);
DROP TABLE latest_notices;
