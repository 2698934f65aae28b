-- The typed federation contract (docs/architecture.md): a pushed event of a kind or version this
-- server does not read yet is held with its payload and applied after an upgrade; a rejected
-- event keeps the contract's reject code. Contact details no longer include an address (the
-- share_with_residence_prefecture text names name, e-mail and phone only).
ALTER TABLE pushed_events DROP CONSTRAINT pushed_events_outcome_check;
ALTER TABLE pushed_events ADD CONSTRAINT pushed_events_outcome_check
    CHECK (outcome IN ('applied', 'rejected', 'held'));
ALTER TABLE pushed_events ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE pushed_events ADD COLUMN reject_code TEXT;
ALTER TABLE pushed_events ADD COLUMN payload TEXT;
-- For a held event: the person it names, so that her withdrawal purges it.
ALTER TABLE pushed_events ADD COLUMN agency_code TEXT;
CREATE INDEX pushed_events_held ON pushed_events (prefecture, agency_code) WHERE outcome = 'held';

ALTER TABLE nurse_contacts DROP COLUMN address;

-- The per-node queue stores each event's contract version beside its kind.
ALTER TABLE node_events ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
