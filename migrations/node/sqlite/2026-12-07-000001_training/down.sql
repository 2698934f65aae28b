DROP TABLE training_applicants;
DROP TABLE training_wishes;
