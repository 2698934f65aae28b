DROP TABLE bulk_uploads;
ALTER TABLE consents DROP COLUMN receipt;
ALTER TABLE notices DROP COLUMN receipt;
ALTER TABLE notices DROP COLUMN received_on;
DROP TABLE receipts;
ALTER TABLE nurses DROP COLUMN search_key;
