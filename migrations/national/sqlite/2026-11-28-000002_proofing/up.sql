-- Identity proofing (issue #5): how each link was proofed, failed link attempts (throttled per
-- licence and per node), letters with one-time codes for the postal batch, and staff lookups.
ALTER TABLE identity_links ADD COLUMN proofing_method TEXT;
ALTER TABLE identity_links ADD COLUMN proofed_at TIMESTAMP;
-- Links made before proofing existed stay usable ('legacy'), as at the nodes.
UPDATE identity_links SET proofing_method = 'legacy', proofed_at = linked_at;

CREATE TABLE link_failures (
    id TEXT PRIMARY KEY NOT NULL,
    qualification TEXT NOT NULL,
    registration_number TEXT NOT NULL,
    prefecture TEXT NOT NULL,
    failed_at TIMESTAMP NOT NULL
);
CREATE INDEX link_failures_licence ON link_failures (qualification, registration_number, failed_at);
CREATE INDEX link_failures_node ON link_failures (prefecture, failed_at);

-- Name and address are copied from the resident data for the print vendor and cleared once the
-- letter is exported; the code exists in clear only in the export file (here: its keyed digest).
CREATE TABLE postal_letters (
    id TEXT PRIMARY KEY NOT NULL,
    person_key BLOB NOT NULL,
    prefecture TEXT NOT NULL,
    agency_code TEXT NOT NULL,
    family_name TEXT,
    given_name TEXT,
    address TEXT,
    requested_at TIMESTAMP NOT NULL,
    exported_at TIMESTAMP,
    expires_at TIMESTAMP,
    code_digest TEXT,
    tries INTEGER NOT NULL DEFAULT 0,
    spent_at TIMESTAMP,
    redeemed_at TIMESTAMP
);
CREATE INDEX postal_letters_unexported ON postal_letters (exported_at, requested_at);
CREATE INDEX postal_letters_person ON postal_letters (person_key, requested_at);

CREATE TABLE staff_lookups (
    id TEXT PRIMARY KEY NOT NULL,
    prefecture TEXT NOT NULL,
    staff_id TEXT NOT NULL,
    qualification TEXT NOT NULL,
    registration_number TEXT NOT NULL,
    outcome TEXT NOT NULL,
    looked_up_at TIMESTAMP NOT NULL
);
