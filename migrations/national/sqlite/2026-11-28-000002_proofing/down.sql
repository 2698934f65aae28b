DROP TABLE staff_lookups;
DROP TABLE postal_letters;
DROP TABLE link_failures;
ALTER TABLE identity_links DROP COLUMN proofed_at;
ALTER TABLE identity_links DROP COLUMN proofing_method;
