DROP TABLE sequences;
DROP TABLE outbox;
DROP TABLE consents;
DROP TABLE notices;
DROP TABLE nurses;
