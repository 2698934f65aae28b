DROP INDEX outbox_nurse;
DROP TABLE sign_in_attempts;
DROP TABLE api_tokens;
DROP TABLE login_links;
DROP TABLE sessions;
