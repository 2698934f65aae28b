-- Contact details a node provided under share_with_residence_prefecture (only while it is given;
-- the fields she did not change stay NULL).
CREATE TABLE nurse_contacts (
    prefecture TEXT NOT NULL,
    agency_code TEXT NOT NULL,
    family_name TEXT,
    given_name TEXT,
    address TEXT,
    email TEXT,
    phone TEXT,
    changed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (prefecture, agency_code)
);
