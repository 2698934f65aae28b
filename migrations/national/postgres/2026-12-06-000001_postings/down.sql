DROP TABLE match_entries;
DROP TABLE match_preferences;
DROP TABLE postings;
