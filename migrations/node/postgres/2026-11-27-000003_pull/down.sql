DROP TABLE withdrawal_confirmations;
DELETE FROM sync_state WHERE name = 'pull_cursor';
DROP TABLE inbox;
