DROP TABLE bulk_uploads;
DROP INDEX consents_receipt;
ALTER TABLE consents DROP COLUMN receipt;
DROP INDEX notices_receipt;
ALTER TABLE notices DROP COLUMN receipt;
ALTER TABLE notices DROP COLUMN received_on;
DROP TABLE receipts;
ALTER TABLE nurses DROP COLUMN search_key;
