DROP TABLE training_wishes;
