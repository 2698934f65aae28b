//! Gathering what the national server knows about people, for [`super`] to decide on.
//!
//! One statement per table, narrowed to a chunk of people (a refresh) or to everyone linked at any
//! node (rematch's one pass). Rows are kept compact and sorted by person key, and people are
//! assembled from them by merging the tables in key order, a chunk at a time: a full rematch
//! holds a few hundred bytes per linked person instead of asking the database once per person
//! and table.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::connection::DefaultLoadingMode;
use diesel::prelude::*;
use ncf_shared::db::DbConn;
use ncf_shared::{ConsentScope, Municipality, PersonKey, Prefecture};

use crate::latent::{Employment, NoticeFact};
use crate::schema::{
    erasures, identity_links, latest_notices, licence_deletions, licences, nurse_consents, person_status,
    residents, told_status,
};

/// A person key (HMAC-SHA-256 under the server's secret).
pub(super) type Key = [u8; 32];

/// One of her links, with what is known at that link.
#[derive(Debug, Clone)]
pub(super) struct Link {
    pub prefecture: Prefecture,
    pub code: String,
    pub linked_at: NaiveDateTime,
    pub proofed: bool,
    /// The scopes she granted at this link.
    pub grants: Grants,
    /// The notice that decides her employment at this link (kept as pushes apply them): one row
    /// however many notices she filed.
    pub notice: Option<NoticeFact>,
    /// What this node was last told.
    pub told: Option<Told>,
    /// Whether this node was told to erase her.
    pub erased: bool,
}

/// A set of consent scopes.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Grants(u8);

impl Grants {
    fn add(&mut self, scope: ConsentScope) {
        self.0 |= 1 << scope as u8;
    }

    pub fn has(self, scope: ConsentScope) -> bool {
        self.0 & (1 << scope as u8) != 0
    }
}

/// What a node was last told about her (`told_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Told {
    pub latent: bool,
    pub home_here: bool,
    pub residence: Option<Prefecture>,
}

/// One of her licences.
#[derive(Debug, Clone)]
pub(super) struct Licence {
    pub qualification: String,
    pub registration_number: String,
    pub active: bool,
}

/// What was derived about her last time (`person_status`), as the decision computes it, so that
/// the two compare directly. A stored value this code cannot read leaves `employment` empty,
/// which differs from every decision and so gets rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Status {
    pub employment: Option<Employment>,
    pub latent: bool,
    pub home_prefecture: Option<Prefecture>,
    pub home_agency_code: Option<String>,
    pub residence: Option<Prefecture>,
    pub routed: Option<Prefecture>,
    pub latent_since: Option<NaiveDateTime>,
}

/// Everything known about one person.
#[derive(Debug, Default)]
pub(super) struct PersonData {
    pub licences: Vec<Licence>,
    /// Licences (qualification, registration number) deleted ex officio.
    pub deleted: Vec<(String, String)>,
    /// The prefecture of the municipality the resident data has her living in.
    pub lives_in: Option<Prefecture>,
    pub deceased_on: Option<NaiveDate>,
    pub links: Vec<Link>,
    pub status: Option<Status>,
}

impl PersonData {
    pub fn deleted(&self, l: &Licence) -> bool {
        self.deleted.iter().any(|(q, r)| *q == l.qualification && *r == l.registration_number)
    }
}

/// Whose data a read covers.
#[derive(Debug, Clone, Copy)]
pub(super) enum Whom<'a> {
    /// These people (a refresh, one chunk).
    These(&'a [Vec<u8>]),
    /// Everyone linked at any node (rematch, in one pass).
    Linked,
}

/// What one read found, table by table, each sorted by person key once complete.
#[derive(Default)]
pub(super) struct Tables {
    links: Vec<(Key, Link)>,
    residents: Vec<(Key, Option<Prefecture>, Option<NaiveDate>)>,
    licences: Vec<(Key, Licence)>,
    deleted: Vec<(Key, (String, String))>,
    status: Vec<(Key, Status)>,
}

fn key(bytes: Vec<u8>) -> Option<Key> {
    bytes.try_into().ok()
}

/// Narrows a boxed query on a person-keyed table to the people a read covers: for a refresh,
/// `$keys` (those with a link or a death). Everyone linked: PostgreSQL hash-joins the link table's
/// keys; SQLite would look each of them up in the index (a million random probes), so it reads
/// the whole table in storage order and the rows of linked people are kept in memory.
macro_rules! whose {
    ($conn:expr, $query:expr, $column:expr, $whom:expr, $keys:expr) => {
        match ($whom, &*$conn) {
            (Whom::These(_), _) => $query.filter($column.eq_any($keys)),
            (Whom::Linked, DbConn::Postgresql(_)) => {
                $query.filter($column.eq_any(identity_links::table.select(identity_links::person_key)))
            }
            (Whom::Linked, DbConn::Sqlite(_)) => $query,
        }
    };
}

/// Narrows a boxed query on a link-keyed table (prefecture, agency code) to the links read: for
/// a refresh, by the agency code index; for everyone linked, the whole table, joined to the links
/// in memory ([`Links::at`]) rather than probed once per link.
macro_rules! whose_links {
    ($query:expr, $column:expr, $whom:expr, $codes:expr) => {
        match $whom {
            Whom::These(_) => $query.filter($column.eq_any($codes)),
            Whom::Linked => $query,
        }
    };
}

/// The links read, with an index by agency code.
struct Links {
    links: Vec<(Key, Link)>,
    /// Link by a hash of its agency code (no copy of the million codes); a hash already taken
    /// sends the later link to `overflow`, searched when the first does not match.
    by_code: HashMap<u64, u32>,
    overflow: Vec<u32>,
}

fn code_hash(code: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(code)
}

impl Links {
    fn new(links: Vec<(Key, Link)>) -> Self {
        let mut by_code = HashMap::with_capacity(links.len());
        let mut overflow = Vec::new();
        for (i, (_, l)) in links.iter().enumerate() {
            match by_code.entry(code_hash(&l.code)) {
                Entry::Vacant(v) => {
                    v.insert(i as u32);
                }
                Entry::Occupied(_) => overflow.push(i as u32),
            }
        }
        Self { links, by_code, overflow }
    }

    /// The link with this prefecture and agency code.
    fn at(&mut self, prefecture: &str, code: &str) -> Option<&mut Link> {
        let prefecture = Prefecture::from_code(prefecture)?;
        let is = |i: u32| {
            let l = &self.links[i as usize].1;
            l.prefecture == prefecture && l.code == code
        };
        let i = match self.by_code.get(&code_hash(code)) {
            Some(&i) if is(i) => i,
            _ => *self.overflow.iter().find(|&&i| is(i))?,
        };
        Some(&mut self.links[i as usize].1)
    }

    /// The links, sorted by person key.
    fn into_sorted(mut self) -> Vec<(Key, Link)> {
        self.links.sort_unstable_by_key(|r| r.0);
        self.links
    }
}

/// Reads everything the decision needs about these people: one statement per table.
pub(super) fn read(conn: &mut DbConn, whom: Whom<'_>) -> QueryResult<Tables> {
    let mut t = Tables::default();
    let mut query = identity_links::table
        .select((
            identity_links::person_key,
            identity_links::prefecture,
            identity_links::agency_code,
            identity_links::linked_at,
            identity_links::proofed_at,
        ))
        .into_boxed();
    if let Whom::These(keys) = whom {
        query = query.filter(identity_links::person_key.eq_any(keys));
    }
    let mut links = Vec::new();
    type LinkRow = (Vec<u8>, String, String, NaiveDateTime, Option<NaiveDateTime>);
    for row in query.load_iter::<LinkRow, DefaultLoadingMode>(conn)? {
        let (person, prefecture, code, linked_at, proofed_at) = row?;
        let (Some(person), Some(prefecture)) = (key(person), Prefecture::from_code(&prefecture)) else {
            continue;
        };
        let link = Link {
            prefecture,
            code,
            linked_at,
            proofed: proofed_at.is_some(),
            grants: Grants::default(),
            notice: None,
            told: None,
            erased: false,
        };
        links.push((person, link));
    }
    let mut linked: Vec<Key> = links.iter().map(|(k, _)| *k).collect();
    linked.sort_unstable();
    linked.dedup();

    // Where they live and whether they died. For a refresh, only people with a link or a death
    // need anything more; everyone linked on SQLite comes as the whole table: keep the linked.
    let chunk: &[Vec<u8>] = match whom {
        Whom::These(keys) => keys,
        Whom::Linked => &[],
    };
    let query = residents::table.select((residents::person_key, residents::lgcode, residents::deceased_on));
    type ResidentRow = (Vec<u8>, Option<String>, Option<NaiveDate>);
    for row in whose!(conn, query.into_boxed(), residents::person_key, whom, chunk)
        .load_iter::<ResidentRow, DefaultLoadingMode>(conn)?
    {
        let (person, lgcode, deceased_on) = row?;
        let Some(person) = key(person) else { continue };
        if deceased_on.is_none() && linked.binary_search(&person).is_err() {
            continue;
        }
        let lives_in = lgcode.as_deref().and_then(Municipality::by_lgcode).map(|m| m.prefecture);
        t.residents.push((person, lives_in, deceased_on));
    }
    t.residents.sort_unstable_by_key(|r| r.0);
    let wanted: Vec<&[u8]> = match whom {
        Whom::These(_) => {
            let mut wanted: Vec<&[u8]> = linked.iter().map(|k| k.as_slice()).collect();
            wanted.extend(t.residents.iter().filter(|r| r.2.is_some()).map(|r| r.0.as_slice()));
            wanted.sort_unstable();
            wanted.dedup();
            wanted
        }
        Whom::Linked => Vec::new(),
    };
    if matches!(whom, Whom::These(_)) && wanted.is_empty() {
        return Ok(Tables::default());
    }
    // Also drops the rows a lookup by `licences.person_no` brings for someone else with the same
    // number.
    let wanted_here = |person: &Key| match whom {
        Whom::These(_) => wanted.binary_search(&person.as_slice()).is_ok(),
        Whom::Linked => linked.binary_search(person).is_ok(),
    };

    let mut links = Links::new(links);
    if !links.links.is_empty() {
        // For a refresh: the agency codes of these people's links (a code at another node, if
        // any, is not found by `at` and so ignored).
        let codes: Vec<String> = match whom {
            Whom::These(_) => links.links.iter().map(|(_, l)| l.code.clone()).collect(),
            Whom::Linked => Vec::new(),
        };
        // Per link: the scopes granted, the deciding notice (kept as pushes apply them: one row
        // however many notices she filed), and what its node was last told.
        let query = nurse_consents::table
            .filter(nurse_consents::granted.eq(true))
            .select((nurse_consents::prefecture, nurse_consents::agency_code, nurse_consents::scope))
            .into_boxed();
        for row in whose_links!(query, nurse_consents::agency_code, whom, &codes)
            .load_iter::<(String, String, String), DefaultLoadingMode>(conn)?
        {
            let (prefecture, code, scope) = row?;
            if let (Some(link), Some(scope)) = (links.at(&prefecture, &code), ConsentScope::parse(&scope)) {
                link.grants.add(scope);
            }
        }
        let query = latest_notices::table.select(crate::notices::COLUMNS).into_boxed();
        type NoticeRow = (String, String, NaiveDate, NaiveDateTime, bool);
        for row in whose_links!(query, latest_notices::agency_code, whom, &codes)
            .load_iter::<NoticeRow, DefaultLoadingMode>(conn)?
        {
            let (prefecture, code, effective_on, filed_at, working) = row?;
            if let Some(link) = links.at(&prefecture, &code) {
                link.notice = Some(NoticeFact { effective_on, filed_at, working });
            }
        }
        let query = told_status::table
            .select((
                told_status::prefecture,
                told_status::agency_code,
                told_status::latent,
                told_status::home_here,
                told_status::residence,
            ))
            .into_boxed();
        type ToldRead = (String, String, bool, bool, Option<String>);
        for row in whose_links!(query, told_status::agency_code, whom, &codes)
            .load_iter::<ToldRead, DefaultLoadingMode>(conn)?
        {
            let (prefecture, code, latent, home_here, residence) = row?;
            if let Some(link) = links.at(&prefecture, &code) {
                let residence = residence.as_deref().and_then(Prefecture::from_code);
                link.told = Some(Told { latent, home_here, residence });
            }
        }
        // Only the dead are erased: the links of the living need no lookup (a refresh without a
        // death, nearly every one, needs none at all).
        let dead =
            |k: &Key| t.residents.binary_search_by_key(k, |r| r.0).is_ok_and(|i| t.residents[i].2.is_some());
        let dead_codes: Vec<String> =
            links.links.iter().filter(|(k, _)| dead(k)).map(|(_, l)| l.code.clone()).collect();
        if !dead_codes.is_empty() {
            let query = erasures::table.select((erasures::prefecture, erasures::agency_code)).into_boxed();
            for row in whose_links!(query, erasures::agency_code, whom, &dead_codes)
                .load_iter::<(String, String), DefaultLoadingMode>(conn)?
            {
                let (prefecture, code) = row?;
                if let Some(link) = links.at(&prefecture, &code) {
                    link.erased = true;
                }
            }
        }
    }

    // Per person.
    let query = licences::table.select((
        licences::person_key,
        licences::qualification,
        licences::registration_number,
        licences::status.eq(ncf_shared::LicenceStatus::Active.as_str()),
    ));
    // Licences are indexed by the key's number (`PersonKey::number`), not the key.
    let query = match whom {
        Whom::These(_) => {
            let numbers: Vec<i64> = wanted.iter().map(|k| PersonKey::number_of(k)).collect();
            query.filter(licences::person_no.eq_any(numbers)).into_boxed()
        }
        Whom::Linked => whose!(conn, query.into_boxed(), licences::person_key, whom, &wanted),
    };
    for row in query.load_iter::<(Vec<u8>, String, String, bool), DefaultLoadingMode>(conn)? {
        let (person, qualification, registration_number, active) = row?;
        let Some(person) = key(person).filter(wanted_here) else { continue };
        t.licences.push((person, Licence { qualification, registration_number, active }));
    }
    t.licences.sort_unstable_by_key(|r| r.0);

    let query = licence_deletions::table.select((
        licence_deletions::person_key,
        licence_deletions::qualification,
        licence_deletions::registration_number,
    ));
    for row in whose!(conn, query.into_boxed(), licence_deletions::person_key, whom, &wanted)
        .load_iter::<(Vec<u8>, String, String), DefaultLoadingMode>(conn)?
    {
        let (person, q, r) = row?;
        if let Some(person) = key(person).filter(wanted_here) {
            t.deleted.push((person, (q, r)));
        }
    }
    t.deleted.sort_unstable_by_key(|r| r.0);

    let query = person_status::table.select((
        person_status::person_key,
        person_status::employment,
        person_status::employment_since,
        person_status::latent,
        person_status::home_prefecture,
        person_status::home_agency_code,
        person_status::residence_prefecture,
        person_status::routed_prefecture,
        person_status::latent_since,
    ));
    type StatusRead = (
        Vec<u8>,
        String,
        Option<NaiveDate>,
        bool,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<NaiveDateTime>,
    );
    for row in whose!(conn, query.into_boxed(), person_status::person_key, whom, &wanted)
        .load_iter::<StatusRead, DefaultLoadingMode>(conn)?
    {
        let (person, employment, since, latent, home, home_code, residence, routed, latent_since) = row?;
        let Some(person) = key(person).filter(wanted_here) else { continue };
        // A prefecture code this code cannot read makes the whole row unreadable.
        let prefecture = |code: Option<String>| match code {
            None => Some(None),
            Some(c) => Prefecture::from_code(&c).map(Some),
        };
        let (home, residence, routed) = (prefecture(home), prefecture(residence), prefecture(routed));
        let readable = home.is_some() && residence.is_some() && routed.is_some();
        t.status.push((
            person,
            Status {
                employment: Employment::parse(&employment, since).filter(|_| readable),
                latent,
                home_prefecture: home.flatten(),
                home_agency_code: home_code,
                residence: residence.flatten(),
                routed: routed.flatten(),
                latent_since,
            },
        ));
    }
    t.status.sort_unstable_by_key(|r| r.0);
    t.links = links.into_sorted();
    Ok(t)
}

impl Tables {
    /// Everyone read who has a link or a death, in key order.
    pub fn keys(&self) -> Vec<Key> {
        let mut keys: Vec<Key> = self.links.iter().map(|(k, _)| *k).collect();
        keys.extend(self.residents.iter().filter(|(_, _, died)| died.is_some()).map(|(k, _, _)| *k));
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    pub fn into_people(self) -> Merge {
        Merge {
            links: Cursor::new(self.links),
            residents: Cursor::new(self.residents.into_iter().map(|(k, p, d)| (k, (p, d))).collect()),
            licences: Cursor::new(self.licences),
            deleted: Cursor::new(self.deleted),
            status: Cursor::new(self.status),
        }
    }

    /// Everyone read who has a link or a death.
    pub fn people(self) -> Vec<(Key, PersonData)> {
        let keys = self.keys();
        self.into_people().take(&keys)
    }
}

/// The tables merged by person key, taken a chunk of people at a time in key order.
pub(super) struct Merge {
    links: Cursor<Link>,
    residents: Cursor<(Option<Prefecture>, Option<NaiveDate>)>,
    licences: Cursor<Licence>,
    deleted: Cursor<(String, String)>,
    status: Cursor<Status>,
}

impl Merge {
    /// These people (in key order, after any taken before).
    pub fn take(&mut self, keys: &[Key]) -> Vec<(Key, PersonData)> {
        keys.iter()
            .map(|k| {
                let mut p = PersonData::default();
                self.links.take(k, |l| p.links.push(l));
                self.residents.take(k, |(lives_in, deceased_on)| {
                    p.lives_in = lives_in;
                    p.deceased_on = deceased_on;
                });
                self.licences.take(k, |l| p.licences.push(l));
                self.deleted.take(k, |d| p.deleted.push(d));
                self.status.take(k, |s| p.status = Some(s));
                (*k, p)
            })
            .collect()
    }
}

/// Rows sorted by person key, read forward.
struct Cursor<T> {
    rows: std::iter::Peekable<std::vec::IntoIter<(Key, T)>>,
}

impl<T> Cursor<T> {
    fn new(rows: Vec<(Key, T)>) -> Self {
        debug_assert!(rows.is_sorted_by(|a, b| a.0 <= b.0));
        Self { rows: rows.into_iter().peekable() }
    }

    /// Hands over the rows of `key`, passing over those of keys before it.
    fn take(&mut self, key: &Key, mut each: impl FnMut(T)) {
        while self.rows.next_if(|(k, _)| k < key).is_some() {}
        while let Some((_, row)) = self.rows.next_if(|(k, _)| k == key) {
            each(row);
        }
    }
}
