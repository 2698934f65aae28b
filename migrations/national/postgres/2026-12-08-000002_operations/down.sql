DROP TABLE chain_verifications;
DROP TABLE node_contacts;
