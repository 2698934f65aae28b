-- Latent nurses, where they live, and life events (issue #7, docs/architecture.md section 8).

-- What the national server derived for each linked person: her employment status by the latest
-- notice (by effective date), whether she is latent, her home link, the prefecture she lives in
-- (under address_linkage only) and the prefecture she was last routed to (state-based routing).
-- Deleted with the consents it was derived from.
CREATE TABLE person_status (
    person_key BYTEA PRIMARY KEY NOT NULL,
    employment TEXT NOT NULL CHECK (employment IN ('working', 'not_working', 'unknown')),
    employment_since DATE,
    latent BOOLEAN NOT NULL,
    home_prefecture TEXT,
    home_agency_code TEXT,
    residence_prefecture TEXT,
    routed_prefecture TEXT,
    latent_since TIMESTAMP,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX person_status_home ON person_status (home_prefecture, latent);

-- What each node was last told about her (status_changed is sent only when this changes).
CREATE TABLE told_status (
    prefecture TEXT NOT NULL,
    agency_code TEXT NOT NULL,
    latent BOOLEAN NOT NULL,
    home_here BOOLEAN NOT NULL,
    residence TEXT,
    told_at TIMESTAMP NOT NULL,
    PRIMARY KEY (prefecture, agency_code)
);

-- Ex-officio deletions (職権抹消) beside the registry: a later registry import cannot undo them.
CREATE TABLE licence_deletions (
    qualification TEXT NOT NULL,
    registration_number TEXT NOT NULL,
    person_key BYTEA NOT NULL,
    deleted_on DATE NOT NULL,
    reason TEXT NOT NULL,
    import_id TEXT NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (qualification, registration_number)
);
CREATE INDEX licence_deletions_person ON licence_deletions (person_key);
CREATE INDEX licence_deletions_month ON licence_deletions (deleted_on);

-- Every node told to erase her, once.
CREATE TABLE erasures (
    prefecture TEXT NOT NULL,
    agency_code TEXT NOT NULL,
    person_key BYTEA NOT NULL,
    decided_at TIMESTAMP NOT NULL,
    PRIMARY KEY (prefecture, agency_code)
);

-- Hand-overs between prefectures. No contact detail is kept: the old node seals hers to the new
-- node's key and the national server relays the sealed box once.
CREATE TABLE transfers (
    id TEXT PRIMARY KEY NOT NULL,
    person_key BYTEA NOT NULL,
    from_prefecture TEXT NOT NULL,
    from_agency_code TEXT NOT NULL,
    to_prefecture TEXT NOT NULL,
    to_agency_code TEXT,
    state TEXT NOT NULL CHECK (state IN ('requested', 'relayed', 'confirmed', 'not_shared', 'no_node', 'superseded', 'cancelled')),
    requested_at TIMESTAMP NOT NULL,
    relayed_at TIMESTAMP,
    confirmed_at TIMESTAMP
);
CREATE INDEX transfers_person ON transfers (person_key, requested_at);
CREATE INDEX transfers_month ON transfers (requested_at);

-- Filing reminders (届出勧奨), one per person, kind and the fact that caused it.
CREATE TABLE reminders (
    id TEXT PRIMARY KEY NOT NULL,
    person_key BYTEA NOT NULL,
    kind TEXT NOT NULL,
    fact TEXT NOT NULL,
    since DATE NOT NULL,
    delivery TEXT NOT NULL CHECK (delivery IN ('node', 'post')),
    prefecture TEXT,
    agency_code TEXT,
    created_at TIMESTAMP NOT NULL,
    exported_at TIMESTAMP,
    resolved_at TIMESTAMP,
    UNIQUE (person_key, kind, fact)
);
CREATE INDEX reminders_post ON reminders (delivery, exported_at);

-- A refresh reads a chunk of people's rows by agency code (codes differ between nodes, so the
-- code alone finds them); without these, each chunk would scan the whole table.
CREATE INDEX nurse_consents_code ON nurse_consents (agency_code);
CREATE INDEX nurse_notices_code ON nurse_notices (agency_code);
CREATE INDEX told_status_code ON told_status (agency_code);
CREATE INDEX erasures_code ON erasures (agency_code);

-- The national server keeps no contact details (issue #7): they are relayed at hand-over only.
DROP TABLE nurse_contacts;

-- Each notice's effective date and what it says about work, computed when it is stored, so that
-- a refresh reads only the latest notice per link instead of parsing every body.
ALTER TABLE nurse_notices ADD COLUMN effective_on DATE;
ALTER TABLE nurse_notices ADD COLUMN working BOOLEAN;
UPDATE nurse_notices SET
    working = (body::json ->> 'kind') = 'employment_status' AND (body::json ->> 'employed')::boolean,
    effective_on = COALESCE((body::json ->> 'left_on')::date, (body::json ->> 'as_of')::date,
                            (filed_at + interval '9 hours')::date);
CREATE INDEX nurse_notices_latest ON nurse_notices (agency_code, effective_on, filed_at);
