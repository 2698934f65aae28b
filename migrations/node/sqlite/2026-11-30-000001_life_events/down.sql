DROP TABLE reminders;
DROP TABLE transfers_in;
DROP TABLE national_status;
