DROP TABLE sequences;
DROP TABLE provisions;
DROP TABLE nurse_notices;
DROP TABLE nurse_consents;
DROP TABLE pushed_events;
DROP TABLE node_cursors;
