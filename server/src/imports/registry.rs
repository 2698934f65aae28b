//! `import-registry`: the licence registry (資格管理簿) in DESIGN's CSV format.

use diesel::prelude::*;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;

use ncf_shared::db::DbConn;
use ncf_shared::ids::ImportId;
use ncf_shared::licence::{LicenceStatus, RegistrationNumber, Sex};
use ncf_shared::{MyNumber, MyNumberHasher, Qualification};

use super::{
    Col, CopyInto, EncodedRow, Encoding, ImportError, ImportOptions, ImportSummary, ImportTarget, Merge,
    MergeTable, RowBuf, RowCheck, RowError, RowParser,
};

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

/// A validated licence row, encoded as `MERGE` expects it.
pub struct LicenceRow(EncodedRow);

pub struct RegistryParser {
    hasher: MyNumberHasher,
    import_id: String,
    encoding: Encoding,
    /// (qualification, registration number) -> first line, to report duplicates within the file.
    seen: HashMap<u64, u64, BuildHasherDefault<MixHasher>>,
}

impl RegistryParser {
    pub(crate) fn new(hasher: MyNumberHasher, import_id: &ImportId, encoding: Encoding) -> Self {
        Self { hasher, import_id: import_id.to_string(), encoding, seen: HashMap::default() }
    }
}

/// Hasher for the duplicate check's integer keys (millions of inserts; no untrusted-key DoS
/// concern in an operator's own import file, so SipHash's cost buys nothing here).
#[derive(Default)]
pub struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        // splitmix64 finaliser: a full-avalanche mix of the key.
        let mut z = (self.0 ^ n).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        self.0 = z ^ (z >> 31);
    }
}

impl RowParser for RegistryParser {
    type Row = LicenceRow;
    const KIND: &'static str = "registry";
    const HEADER: &'static [&'static str] = &HEADER;
    const SECRET_COLUMN: usize = 3;

    fn parse(&mut self, f: &[&str], line: u64) -> Result<LicenceRow, Vec<RowError>> {
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
            c.fail(
                "status",
                format!(
                    "unknown status {:?} (expected active, lapsed, suspended, revoked or deceased)",
                    f[10]
                ),
            );
        }
        if let (Some(b), Some(r)) = (birth_date, registered_on)
            && r < b
        {
            c.fail("registered_on", "registered before the birth date");
        }
        if let (Some(q), Some(n)) = (qualification, registration_number) {
            let key = u64::from(q.number()) << 32 | u64::from(n.value());
            if let Some(first) = self.seen.insert(key, line) {
                self.seen.insert(key, first);
                c.fail(
                    "registration_number",
                    format!("duplicate of line {first} (same qualification and registration number)"),
                );
            }
        }
        let row = (|| {
            // Dates are stored as validated (YYYY-MM-DD), names as given.
            let _ = (registered_on?, birth_date?);
            let person = self.hasher.person_key(my_number.as_ref()?);
            let encoded = RowBuf::new(self.encoding)
                .text(qualification?.code())
                .text(&registration_number?.canonical())
                .bytes(person.as_bytes())
                .number(person.number())
                .text(f[2])
                .text(&family_name?)
                .text(&given_name?)
                .text(&family_name_kana?)
                .text(&given_name_kana?)
                .text(f[8])
                .number(i64::from(sex?.code()))
                .text(status?.as_str())
                .text(&self.import_id)
                .finish();
            Some(LicenceRow(encoded))
        })();
        c.finish(row)
    }
}

/// The table the rows go to (`MergeTable`).
pub(crate) enum Licences {}

impl MergeTable for Licences {
    const MERGE: &'static Merge = &MERGE;
}

const MERGE: Merge = Merge {
    table: "licences",
    columns: &[
        ("qualification", Col::Text),
        ("registration_number", Col::Text),
        ("person_key", Col::Bytes),
        ("person_no", Col::BigInt),
        ("registered_on", Col::Date),
        ("family_name", Col::Text),
        ("given_name", Col::Text),
        ("family_name_kana", Col::Text),
        ("given_name_kana", Col::Text),
        ("birth_date", Col::Date),
        ("sex", Col::SmallInt),
        ("status", Col::Text),
        ("import_id", Col::Text),
    ],
    key: 2,
    indexes: &[
        ("licences_key", "CREATE UNIQUE INDEX licences_key ON licences (qualification, registration_number)"),
        ("licences_person_no", "CREATE INDEX licences_person_no ON licences (person_no)"),
    ],
    import_fk: "licences_import_id_fkey",
    copy: copy_licences,
};

// The staging table `Merge::begin` makes on PostgreSQL (`LIKE licences`), declared for diesel's
// `COPY`, which names its target by type.
diesel::table! {
    licences_incoming (qualification, registration_number) {
        qualification -> Text,
        registration_number -> Text,
        person_key -> Binary,
        person_no -> BigInt,
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

fn copy_licences(conn: &mut diesel::PgConnection, into: CopyInto, data: &[u8]) -> QueryResult<usize> {
    match into {
        CopyInto::Table => super::copy_text!(conn, crate::schema::licences::table, data),
        CopyInto::Staging => super::copy_text!(conn, licences_incoming::table, data),
    }
}

pub struct LicenceTable;

impl ImportTarget<LicenceRow> for LicenceTable {
    type Table = Licences;
    fn encoded<'r>(&self, row: &'r LicenceRow) -> &'r EncodedRow {
        &row.0
    }

    /// Refreshes what the national server derives for the people whose licences this import
    /// changed (a licence that lapsed ends her latent status; one imported for a person already
    /// recorded as deceased gets its ex-officio deletion). Only linked or deceased people can be
    /// affected, so a first import of millions of licences reads nobody here.
    fn finish(&mut self, conn: &mut DbConn, import_id: &ImportId) -> QueryResult<()> {
        use crate::schema::{identity_links, licences, residents};
        // Nobody linked and nobody dead (the first import at installation): nothing to refresh,
        // and no reason to scan the licences just written.
        let linked =
            identity_links::table.select(identity_links::person_key).first::<Vec<u8>>(conn).optional()?;
        let dead = residents::table
            .filter(residents::deceased_on.is_not_null())
            .select(residents::person_key)
            .first::<Vec<u8>>(conn)
            .optional()?;
        if linked.is_none() && dead.is_none() {
            return Ok(());
        }
        let changed = licences::table
            .filter(licences::import_id.eq(import_id.as_str()))
            .filter(
                licences::person_key.eq_any(identity_links::table.select(identity_links::person_key)).or(
                    licences::person_key.eq_any(
                        residents::table
                            .filter(residents::deceased_on.is_not_null())
                            .select(residents::person_key),
                    ),
                ),
            )
            .select(licences::person_key)
            .distinct()
            .load::<Vec<u8>>(conn)?;
        let report = crate::routing::refresh(conn, changed)?;
        tracing::info!(?report, "status refreshed for the people this registry import changed");
        Ok(())
    }
}

pub fn import(
    conn: &mut DbConn,
    path: &Path,
    hasher: MyNumberHasher,
    options: &ImportOptions,
) -> Result<ImportSummary, ImportError> {
    let import_id = ImportId::new();
    let parser = RegistryParser::new(hasher, &import_id, Encoding::for_conn(conn));
    super::run_import(conn, path, parser, &mut LicenceTable, import_id, options)
}
