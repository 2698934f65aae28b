DROP TABLE staff_alerts;
DROP TABLE proofing_letters;
DROP TABLE pending_opt_ins;
ALTER TABLE notices DROP COLUMN proofing;
ALTER TABLE consents DROP COLUMN proofing;
DROP INDEX nurses_proofed_licence;
DROP INDEX nurses_agency_code;
ALTER TABLE nurses DROP COLUMN proofing_document;
ALTER TABLE nurses DROP COLUMN proofed_by;
ALTER TABLE nurses DROP COLUMN proofed_at;
ALTER TABLE nurses DROP COLUMN proofing_method;
-- (the UNIQUE on agency_code is not put back: rows may now share it)
