-- Counts the transactions that took the provision chain's lock (ChainWriter::begin). Every change
-- to what the national server derives takes that lock, so an unchanged count tells rematch that
-- what it read in one pass is still what the database holds.
INSERT INTO sequences (name, last_value) VALUES ('chain_locks', 0);
