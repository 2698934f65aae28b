DROP TABLE identity_links;
DROP TABLE federation_nonces;
DROP TABLE nodes;
DROP TABLE residents;
DROP TABLE resident_events;
DROP TABLE licences;
DROP TABLE imports;
