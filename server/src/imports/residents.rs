//! `import-residents`: the resident feed (J-LIS): address changes, name changes and deaths.
//! Events are kept as imported; each person's current state (`residents`) is folded from them.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use chrono::NaiveDate;
use diesel::prelude::*;
use diesel::upsert::excluded;
use ncf_shared::db::DbConn;
use ncf_shared::ids::ImportId;
use ncf_shared::{Municipality, MyNumber, MyNumberHasher, PersonKey, per_backend};

use super::{
    Col, CopyInto, EncodedRow, Encoding, ImportError, ImportOptions, ImportSummary, ImportTarget, Merge,
    MergeTable, RowBuf, RowCheck, RowError, RowParser,
};
use crate::schema::{resident_events, residents};

pub const HEADER: [&str; 7] =
    ["my_number", "event", "effective_on", "lgcode", "address", "family_name", "given_name"];

pub const ADDRESS_CHANGED: &str = "address_changed";
pub const NAME_CHANGED: &str = "name_changed";
pub const DECEASED: &str = "deceased";
const MAX_ADDRESS_CHARS: usize = 200;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = resident_events)]
pub struct ResidentEvent {
    pub person_key: Vec<u8>,
    pub event: String,
    pub effective_on: NaiveDate,
    pub lgcode: String,
    pub address: String,
    pub family_name: String,
    pub given_name: String,
    pub import_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Insertable, Queryable, Selectable)]
#[diesel(table_name = residents, treat_none_as_default_value = false)]
pub struct Resident {
    pub person_key: Vec<u8>,
    pub lgcode: Option<String>,
    pub address: Option<String>,
    pub address_since: Option<NaiveDate>,
    pub family_name: Option<String>,
    pub given_name: Option<String>,
    pub name_since: Option<NaiveDate>,
    pub deceased_on: Option<NaiveDate>,
    pub import_id: String,
}

pub struct ResidentsParser {
    hasher: MyNumberHasher,
    import_id: String,
    encoding: Encoding,
    /// Every person with a licence in the registry: the feed is about licence holders, and an
    /// event for anyone else is refused (a mistyped My Number, or a file meant for another
    /// system). About 40 bytes a person: 120 MB for Japan's 3 million nursing licences.
    known: std::collections::HashSet<PersonKey>,
    today: NaiveDate,
    seen: HashMap<(PersonKey, &'static str, NaiveDate), u64>,
}

impl RowParser for ResidentsParser {
    type Row = EventRow;
    const KIND: &'static str = "residents";
    const HEADER: &'static [&'static str] = &HEADER;
    const SECRET_COLUMN: usize = 0;

    fn parse(&mut self, f: &[&str], line: u64) -> Result<EventRow, Vec<RowError>> {
        let mut c = RowCheck::new(line);
        let person = c.check("my_number", MyNumber::parse(f[0])).map(|n| self.hasher.person_key(&n));
        let person = match person {
            Some(p) if !self.known.contains(&p) => {
                c.fail("my_number", "no licence in the registry belongs to this My Number");
                None
            }
            other => other,
        };
        let event = [ADDRESS_CHANGED, NAME_CHANGED, DECEASED].into_iter().find(|e| *e == f[1]);
        if event.is_none() {
            c.fail(
                "event",
                format!("unknown event {:?} (expected address_changed, name_changed or deceased)", f[1]),
            );
        }
        let effective_on = c.date("effective_on", f[2]);
        if effective_on.is_some_and(|d| d > self.today) {
            c.fail("effective_on", format!("{} is in the future", f[2]));
        }
        let (lgcode, address, family_name, given_name) = (f[3], f[4], f[5], f[6]);
        if !lgcode.is_empty() {
            match Municipality::by_lgcode(lgcode) {
                None => c.fail("lgcode", format!("unknown municipality code {lgcode:?}")),
                Some(m) if !m.is_residence() => c.fail(
                    "lgcode",
                    format!("{lgcode} ({}) is a designated city with wards; use the ward's code", m.name_ja),
                ),
                Some(_) => {}
            }
        }
        if event == Some(ADDRESS_CHANGED) {
            if lgcode.is_empty() {
                c.fail("lgcode", "required for address_changed");
            }
            if address.trim().is_empty() {
                c.fail("address", "required for address_changed");
            }
        }
        if address.chars().count() > MAX_ADDRESS_CHARS || address.chars().any(char::is_control) {
            c.fail(
                "address",
                format!("longer than {MAX_ADDRESS_CHARS} characters or contains a control character"),
            );
        }
        let names_required = event == Some(NAME_CHANGED);
        for (column, value) in [("family_name", family_name), ("given_name", given_name)] {
            if names_required || !value.is_empty() {
                let _ = c.name(column, value);
            }
        }
        if let (Some(p), Some(e), Some(d)) = (person, event, effective_on) {
            if let Some(first) = self.seen.get(&(p, e, d)) {
                c.fail("", format!("duplicate of line {first} (same person, event and date)"));
            } else {
                self.seen.insert((p, e, d), line);
            }
        }
        let row = (|| {
            let person_key = person?;
            let encoded = RowBuf::new(self.encoding)
                .bytes(person_key.as_bytes())
                .text(event?)
                .text(f[2])
                .text(lgcode)
                .text(address.trim())
                .text(family_name)
                .text(given_name)
                .text(&self.import_id)
                .finish();
            let _ = effective_on?;
            Some(EventRow { person_key, encoded })
        })();
        c.finish(row)
    }
}

const STATEMENT_ROWS: usize = 500;

#[derive(Default)]
pub struct ResidentTables {
    touched: BTreeSet<Vec<u8>>,
}

/// The table the rows go to (`MergeTable`).
pub(crate) enum ResidentEvents {}

impl MergeTable for ResidentEvents {
    const MERGE: &'static Merge = &MERGE;
}

const MERGE: Merge = Merge {
    table: "resident_events",
    columns: &[
        ("person_key", Col::Bytes),
        ("event", Col::Text),
        ("effective_on", Col::Date),
        ("lgcode", Col::Text),
        ("address", Col::Text),
        ("family_name", Col::Text),
        ("given_name", Col::Text),
        ("import_id", Col::Text),
    ],
    key: 3,
    indexes: &[(
        "resident_events_key",
        "CREATE UNIQUE INDEX resident_events_key ON resident_events (person_key, event, effective_on)",
    )],
    import_fk: "resident_events_import_id_fkey",
    copy: copy_events,
};

/// A validated event: the person it concerns and the row encoded as `MERGE` expects it.
pub struct EventRow {
    person_key: PersonKey,
    encoded: EncodedRow,
}

// The staging table `Merge::begin` makes on PostgreSQL (`LIKE resident_events`), declared for
// diesel's `COPY`, which names its target by type.
diesel::table! {
    resident_events_incoming (person_key, event, effective_on) {
        person_key -> Binary,
        event -> Text,
        effective_on -> Date,
        lgcode -> Text,
        address -> Text,
        family_name -> Text,
        given_name -> Text,
        import_id -> Text,
    }
}

fn copy_events(conn: &mut diesel::PgConnection, into: CopyInto, data: &[u8]) -> QueryResult<usize> {
    match into {
        CopyInto::Table => super::copy_text!(conn, resident_events::table, data),
        CopyInto::Staging => super::copy_text!(conn, resident_events_incoming::table, data),
    }
}

impl ImportTarget<EventRow> for ResidentTables {
    type Table = ResidentEvents;
    fn encoded<'r>(&self, row: &'r EventRow) -> &'r EncodedRow {
        &row.encoded
    }
    fn observe(&mut self, rows: &[EventRow]) {
        self.touched.extend(rows.iter().map(|r| r.person_key.as_bytes().to_vec()));
    }

    /// Re-folds the current state of every person this file touched; rows that come out the same
    /// are left alone (and keep the import that last changed them).
    fn finish(&mut self, conn: &mut DbConn, import_id: &ImportId) -> QueryResult<()> {
        let keys: Vec<Vec<u8>> = std::mem::take(&mut self.touched).into_iter().collect();
        // Only people whose current state changed can have anything new to derive: a file
        // imported again refreshes nobody.
        let mut changed_keys: Vec<Vec<u8>> = Vec::new();
        for chunk in keys.chunks(STATEMENT_ROWS) {
            let events: Vec<ResidentEvent> = resident_events::table
                .filter(resident_events::person_key.eq_any(chunk))
                .select(ResidentEvent::as_select())
                .load(conn)?;
            let existing: HashMap<Vec<u8>, Resident> = residents::table
                .filter(residents::person_key.eq_any(chunk))
                .select(Resident::as_select())
                .load(conn)?
                .into_iter()
                .map(|r| (r.person_key.clone(), r))
                .collect();
            let mut by_person: HashMap<&[u8], Vec<&ResidentEvent>> = HashMap::new();
            for e in &events {
                by_person.entry(e.person_key.as_slice()).or_default().push(e);
            }
            let changed: Vec<Resident> = by_person
                .into_iter()
                .filter_map(|(key, events)| {
                    let folded = fold(key, &events, import_id.as_str());
                    match existing.get(key) {
                        Some(old) if same_state(old, &folded) => None,
                        _ => Some(folded),
                    }
                })
                .collect();
            upsert_residents(conn, &changed)?;
            changed_keys.extend(changed.into_iter().map(|r| r.person_key));
        }
        // Many people folded (a first import fills the table): fresh statistics, or PostgreSQL
        // plans the reads below and every later join on `residents` as if it were still empty.
        if changed_keys.len() >= 10_000 && matches!(conn, DbConn::Postgresql(_)) {
            diesel::sql_query("ANALYZE residents").execute(conn)?;
        }
        // Deaths, moves and name changes take effect in the same transaction: the import of
        // 10,000 moves routes them all in this one pass.
        let report = crate::routing::refresh(conn, changed_keys.iter().cloned())?;
        tracing::info!(?report, "status refreshed for the people this residents import changed");
        let reminders = crate::reminders::check(conn, &changed_keys)?;
        if reminders > 0 {
            tracing::info!(reminders, "filing reminders added");
        }
        Ok(())
    }
}

/// Current state from a person's events: the latest address, the latest name, the date of death.
fn fold(key: &[u8], events: &[&ResidentEvent], import_id: &str) -> Resident {
    let latest = |kind: &str| events.iter().filter(|e| e.event == kind).max_by_key(|e| e.effective_on);
    let address = latest(ADDRESS_CHANGED);
    // The name is the one on the latest event that carries a name (a name change, or an address
    // record that states the name).
    let name = events
        .iter()
        .filter(|e| e.event != DECEASED && !e.family_name.is_empty() && !e.given_name.is_empty())
        .max_by_key(|e| (e.effective_on, e.event == NAME_CHANGED))
        .copied();
    Resident {
        person_key: key.to_vec(),
        lgcode: address.map(|a| a.lgcode.clone()),
        address: address.map(|a| a.address.clone()),
        address_since: address.map(|a| a.effective_on),
        family_name: name.map(|n| n.family_name.clone()),
        given_name: name.map(|n| n.given_name.clone()),
        name_since: name.filter(|n| n.event == NAME_CHANGED).map(|n| n.effective_on),
        deceased_on: events.iter().filter(|e| e.event == DECEASED).map(|e| e.effective_on).min(),
        import_id: import_id.to_string(),
    }
}

fn same_state(a: &Resident, b: &Resident) -> bool {
    Resident { import_id: String::new(), ..a.clone() } == Resident { import_id: String::new(), ..b.clone() }
}

fn upsert_residents(conn: &mut DbConn, rows: &[Resident]) -> QueryResult<()> {
    use residents::dsl as r;
    per_backend!(conn, c => {
        for chunk in rows.chunks(STATEMENT_ROWS) {
            diesel::insert_into(residents::table)
                .values(chunk)
                .on_conflict(r::person_key)
                .do_update()
                .set((
                    r::lgcode.eq(excluded(r::lgcode)),
                    r::address.eq(excluded(r::address)),
                    r::address_since.eq(excluded(r::address_since)),
                    r::family_name.eq(excluded(r::family_name)),
                    r::given_name.eq(excluded(r::given_name)),
                    r::name_since.eq(excluded(r::name_since)),
                    r::deceased_on.eq(excluded(r::deceased_on)),
                    r::import_id.eq(excluded(r::import_id)),
                ))
                .execute(c)?;
        }
        Ok(())
    })
}

pub fn import(
    conn: &mut DbConn,
    path: &Path,
    hasher: MyNumberHasher,
    options: &ImportOptions,
) -> Result<ImportSummary, ImportError> {
    let import_id = ImportId::new();
    let known = crate::schema::licences::table
        .select(crate::schema::licences::person_key)
        .load_iter::<Vec<u8>, diesel::connection::DefaultLoadingMode>(conn)
        .map_err(ImportError::Database)?
        .filter_map(|k| k.ok().and_then(|k| PersonKey::from_slice(&k)))
        .collect();
    let parser = ResidentsParser {
        hasher,
        import_id: import_id.to_string(),
        encoding: Encoding::for_conn(conn),
        known,
        today: ncf_shared::time::today_jst(),
        seen: HashMap::new(),
    };
    let mut target = ResidentTables::default();
    super::run_import(conn, path, parser, &mut target, import_id, options)
}
