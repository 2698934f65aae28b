DELETE FROM sequences WHERE name = 'chain_locks';
