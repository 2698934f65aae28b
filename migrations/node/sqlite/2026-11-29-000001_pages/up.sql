-- Receipt numbers (受付番号), the record of bulk-upload files, and the staff search key.

-- Her names (kanji and kana), e-mail and registration number normalised for staff search
-- (`ncf_shared::normalize::search_key`: width, kana and spaces folded), so 「伊藤 裕子」, 「伊藤裕子」,
-- 「イトウ ユウコ」 and 「ｲﾄｳﾕｳｺ」 all find her. Written by the node whenever her names change;
-- filled for existing rows when the node starts.
ALTER TABLE nurses ADD COLUMN search_key TEXT NOT NULL DEFAULT '';

-- One receipt per thing a person filed or changed in one step: an opt-in, a notice (web, paper or
-- bulk row), a consent change. Nine digits, said over the phone in three groups; unique at this
-- node. Staff find a record by its receipt number.
CREATE TABLE receipts (
    number TEXT PRIMARY KEY NOT NULL,
    nurse_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('opt_in', 'notice', 'consent')),
    channel TEXT NOT NULL,
    issued_at TIMESTAMP NOT NULL,
    -- The random token of the confirmation page whose post made it: a second post of the same
    -- page (double click, reload, retry) finds it and files nothing.
    submission TEXT
);
CREATE UNIQUE INDEX receipts_submission ON receipts (submission);

-- A record's receipt is looked up through its nurse (indexed), so these columns need no index
-- of their own (which would slow every filing: receipt numbers are random).
ALTER TABLE notices ADD COLUMN receipt TEXT;
-- For a paper form: the day the center received it (受付日), which may be days before staff
-- entered it (`filed_at`).
ALTER TABLE notices ADD COLUMN received_on DATE;
ALTER TABLE consents ADD COLUMN receipt TEXT;

-- Every employer file that saved something, by its SHA-256: the same file again is refused with
-- the date it was first uploaded.
CREATE TABLE bulk_uploads (
    sha256 TEXT PRIMARY KEY NOT NULL,
    uploaded_at TIMESTAMP NOT NULL,
    staff_id TEXT NOT NULL,
    file_name TEXT NOT NULL,
    saved INTEGER NOT NULL
);
