//! `import-registry`: the licence registry (資格管理簿) in DESIGN's CSV format.

use std::collections::HashMap;
use std::path::Path;

use chrono::NaiveDate;
use diesel::prelude::*;
use ncf_shared::db::DbConn;
use ncf_shared::ids::ImportId;
use ncf_shared::licence::{LicenceStatus, PersonName, RegistrationNumber, Sex};
use ncf_shared::{MyNumber, MyNumberHasher, Qualification, per_backend};

use super::{ImportError, ImportOptions, ImportSummary, ImportTarget, Merge, RowError, RowParser};
use crate::schema::licences;

pub const HEADER: [&str; 11] = [
    "qualification",
    "registration_number",
    "registered_on",
    "my_number",
    "family_name",
    "given_name",
    "family_name_kana",
    "given_name_kana",
    "birth_date",
    "sex",
    "status",
];

#[derive(Debug)]
pub struct NewLicence {
    pub qualification: &'static str,
    pub registration_number: String,
    pub person_key: Vec<u8>,
    pub registered_on: NaiveDate,
    pub family_name: String,
    pub given_name: String,
    pub family_name_kana: String,
    pub given_name_kana: String,
    pub birth_date: NaiveDate,
    pub sex: i16,
    pub status: &'static str,
    pub import_id: String,
}

pub struct RegistryParser {
    hasher: MyNumberHasher,
    import_id: String,
    /// (qualification, registration number) -> first line, to report duplicates within the file.
    seen: HashMap<u64, u64>,
}

impl RegistryParser {
    pub fn new(hasher: MyNumberHasher, import_id: &ImportId) -> Self {
        Self { hasher, import_id: import_id.to_string(), seen: HashMap::new() }
    }
}

/// Collects the problems of one row, field by field.
pub(super) struct RowCheck {
    line: u64,
    errors: Vec<RowError>,
}

impl RowCheck {
    pub(super) fn new(line: u64) -> Self {
        Self { line, errors: Vec::new() }
    }
    pub(super) fn fail(&mut self, column: &'static str, reason: impl Into<String>) {
        self.errors.push(RowError { line: self.line, column, reason: reason.into() });
    }
    pub(super) fn check<T, E: std::fmt::Display>(&mut self, column: &'static str, r: Result<T, E>) -> Option<T> {
        r.map_err(|e| self.fail(column, e.to_string())).ok()
    }
    pub(super) fn name(&mut self, column: &'static str, value: &str) -> Option<String> {
        self.check(column, PersonName::check(value)).map(|()| value.to_string())
    }
    pub(super) fn kana(&mut self, column: &'static str, value: &str) -> Option<String> {
        self.check(column, PersonName::check_kana(value)).map(|()| value.to_string())
    }
    pub(super) fn date(&mut self, column: &'static str, value: &str) -> Option<NaiveDate> {
        self.check(column, ncf_shared::time::parse_date(value).map_err(|e| format!("{e}: {value:?}")))
    }
    pub(super) fn finish<T>(self, row: Option<T>) -> Result<T, Vec<RowError>> {
        match row {
            Some(row) if self.errors.is_empty() => Ok(row),
            _ => Err(self.errors),
        }
    }
}

impl RowParser for RegistryParser {
    type Row = NewLicence;
    const KIND: &'static str = "registry";
    const HEADER: &'static [&'static str] = &HEADER;
    const SECRET_COLUMN: usize = 3;

    fn parse(&mut self, f: &[&str], line: u64) -> Result<NewLicence, Vec<RowError>> {
        let mut c = RowCheck::new(line);
        let qualification = Qualification::from_code(f[0]);
        if qualification.is_none() {
            c.fail("qualification", format!("unknown qualification code {:?} (expected 01..31)", f[0]));
        }
        let registration_number = c.check("registration_number", RegistrationNumber::parse(f[1]));
        let registered_on = c.date("registered_on", f[2]);
        // The reason never repeats the value: a My Number must not reach logs or reports.
        let my_number = c.check("my_number", MyNumber::parse(f[3]));
        let family_name = c.name("family_name", f[4]);
        let given_name = c.name("given_name", f[5]);
        let family_name_kana = c.kana("family_name_kana", f[6]);
        let given_name_kana = c.kana("given_name_kana", f[7]);
        let birth_date = c.date("birth_date", f[8]);
        let sex = Sex::parse(f[9]);
        if sex.is_none() {
            c.fail("sex", format!("unknown sex code {:?} (expected 0, 1, 2 or 9)", f[9]));
        }
        let status = LicenceStatus::parse(f[10]);
        if status.is_none() {
            c.fail("status", format!("unknown status {:?} (expected active, lapsed, suspended, revoked or deceased)", f[10]));
        }
        if let (Some(b), Some(r)) = (birth_date, registered_on) {
            if r < b {
                c.fail("registered_on", "registered before the birth date");
            }
        }
        if let (Some(q), Some(n)) = (qualification, registration_number) {
            let key = u64::from(q.number()) << 32 | u64::from(n.value());
            if let Some(first) = self.seen.insert(key, line) {
                self.seen.insert(key, first);
                c.fail("registration_number", format!("duplicate of line {first} (same qualification and registration number)"));
            }
        }
        let row = (|| {
            Some(NewLicence {
                qualification: qualification?.code(),
                registration_number: registration_number?.canonical(),
                person_key: self.hasher.person_key(my_number.as_ref()?).as_bytes().to_vec(),
                registered_on: registered_on?,
                family_name: family_name?,
                given_name: given_name?,
                family_name_kana: family_name_kana?,
                given_name_kana: given_name_kana?,
                birth_date: birth_date?,
                sex: sex?.code(),
                status: status?.as_str(),
                import_id: self.import_id.clone(),
            })
        })();
        c.finish(row)
    }
}

/// Rows per INSERT statement (12 binds each; well under both backends' bind limits).
const STATEMENT_ROWS: usize = 500;

diesel::table! {
    /// TEMP staging copy of `licences` (see `Merge`).
    licences_staging (qualification, registration_number) {
        qualification -> Text,
        registration_number -> Text,
        person_key -> Binary,
        registered_on -> Date,
        family_name -> Text,
        given_name -> Text,
        family_name_kana -> Text,
        given_name_kana -> Text,
        birth_date -> Date,
        sex -> SmallInt,
        status -> Text,
        import_id -> Text,
    }
}

const MERGE: Merge = Merge {
    table: "licences",
    staging: "licences_staging",
    key: &["qualification", "registration_number"],
    compared: &[
        "person_key",
        "registered_on",
        "family_name",
        "given_name",
        "family_name_kana",
        "given_name_kana",
        "birth_date",
        "sex",
        "status",
    ],
};

#[derive(Insertable)]
#[diesel(table_name = licences_staging)]
struct StagedLicence<'a> {
    qualification: &'a str,
    registration_number: &'a str,
    person_key: &'a [u8],
    registered_on: NaiveDate,
    family_name: &'a str,
    given_name: &'a str,
    family_name_kana: &'a str,
    given_name_kana: &'a str,
    birth_date: NaiveDate,
    sex: i16,
    status: &'a str,
    import_id: &'a str,
}

impl<'a> From<&'a NewLicence> for StagedLicence<'a> {
    fn from(l: &'a NewLicence) -> Self {
        Self {
            qualification: l.qualification,
            registration_number: &l.registration_number,
            person_key: &l.person_key,
            registered_on: l.registered_on,
            family_name: &l.family_name,
            given_name: &l.given_name,
            family_name_kana: &l.family_name_kana,
            given_name_kana: &l.given_name_kana,
            birth_date: l.birth_date,
            sex: l.sex,
            status: l.status,
            import_id: &l.import_id,
        }
    }
}

pub struct LicenceTable;

impl ImportTarget<NewLicence> for LicenceTable {
    fn start(&mut self, conn: &mut DbConn) -> QueryResult<()> {
        MERGE.create_staging(conn)
    }

    fn count(&self, conn: &mut DbConn) -> QueryResult<i64> {
        licences::table.count().get_result(conn)
    }

    fn write(&mut self, conn: &mut DbConn, rows: &[NewLicence]) -> QueryResult<usize> {
        for chunk in rows.chunks(STATEMENT_ROWS) {
            let staged: Vec<StagedLicence<'_>> = chunk.iter().map(StagedLicence::from).collect();
            per_backend!(&mut *conn, c => diesel::insert_into(licences_staging::table).values(&staged).execute(c))?;
        }
        MERGE.merge(conn)
    }
}

pub fn import(
    conn: &mut DbConn,
    path: &Path,
    hasher: MyNumberHasher,
    options: &ImportOptions,
) -> Result<ImportSummary, ImportError> {
    let import_id = ImportId::new();
    let parser = RegistryParser::new(hasher, &import_id);
    super::run_import(conn, path, parser, &mut LicenceTable, import_id, options)
}
