DROP TABLE nurse_matches;
DROP TABLE matched_postings;
DROP TABLE postings;
