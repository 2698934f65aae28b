-- The typed federation contract (docs/architecture.md): each stored event keeps its contract
-- version beside its kind. Every pulled event is stored and marked: applied, waiting for a
-- software upgrade (a kind or version this node does not read yet), or failed with the reason;
-- the pull cursor moves over stored events only, and a failed event never blocks the ones after.
ALTER TABLE outbox ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE outbox ADD COLUMN parked_code TEXT;
ALTER TABLE inbox ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE inbox ADD COLUMN state TEXT NOT NULL DEFAULT 'applied'
    CHECK (state IN ('applied', 'awaiting_upgrade', 'failed'));
ALTER TABLE inbox ADD COLUMN reason TEXT;
-- The nurse the event is about, when this node knows her (for her detail page).
ALTER TABLE inbox ADD COLUMN nurse_id TEXT REFERENCES nurses (id);
CREATE INDEX inbox_waiting ON inbox (state, seq);
