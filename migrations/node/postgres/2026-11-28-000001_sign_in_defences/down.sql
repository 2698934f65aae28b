DROP INDEX sign_in_attempts_pair;
CREATE INDEX sign_in_attempts_username ON sign_in_attempts (username, attempted_at);
CREATE INDEX sign_in_attempts_client ON sign_in_attempts (client, attempted_at);
DROP TABLE nurse_sign_in_requests;
DROP TABLE mail_outbox;
