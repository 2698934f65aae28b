//! Each latent nurse's lists of nearby open postings (issue #8), kept true as postings,
//! preferences, residences and latent statuses change, and sent to her home node as additions and
//! removals.
//!
//! The national server keeps only the lists as last sent (`match_entries`: at most
//! [`MATCHES_PER_KIND`] per kind and person), never every pair. [`refresh`] recomputes the lists of
//! the people given, from what the national server holds about them: `person_status` (latent, home
//! link, residence known only under `address_linkage`), her municipality's point from the resident
//! data, the distance she chose at her home link, the consents there (`job_support` for jobs,
//! `training_info` for training) and her nursing licences. It is called, inside the caller's
//! transaction, by every status refresh (`routing::decide`: pushes, imports, `rematch`), when a
//! node's postings change (for the people near them or holding them), and by the expiry sweep.
//!
//! Every list sent is a provision to her home node (`posting_matches`). When her home node
//! changes, the old node gets removals of everything it held and the new one the whole list.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{NaiveDate, Utc};
use diesel::prelude::*;
use ncf_shared::contract::{MatchedPosting, MatchesChanged, NationalToNode, PostingRef, ProvisionPurpose};
use ncf_shared::db::DbConn;
use ncf_shared::posting::{MATCHES_PER_KIND, MAX_DISTANCE_M, PostingBody, PostingKind};
use ncf_shared::{
    AgencyCode, ConsentScope, LicenceStatus, Municipality, PersonKey, Prefecture, Qualification, per_backend,
};

use crate::matching::{Index, Place, Reach};
use crate::provisions::{ChainWriter, Provision};
use crate::schema::{
    licences, match_entries, match_preferences, nurse_consents, person_status, postings, residents,
};

/// Used until she chooses (the opt-in form's default): nurses who opted in before issue #8 have
/// a distance at their node that never travelled.
pub const DEFAULT_DISTANCE_KM: u32 = 20;

/// Postings per `matches_changed` event: a full list goes as several events, so that one pull
/// answer stays a reasonable size.
const POSTINGS_PER_EVENT: usize = 20;

/// Degrees of latitude and longitude that surely cover [`MAX_DISTANCE_M`] in Japan (longitude at
/// 46° N: 50 km is 0.65°).
const MARGIN_LAT: f64 = 0.46;
const MARGIN_LNG: f64 = 0.7;

/// Who she is for matching: where her lists go, where she lives, how far, what she wants.
#[derive(Debug, Clone)]
struct Subject {
    key: Vec<u8>,
    home: (Prefecture, String),
    place: Place,
    reach_m: f64,
    /// Bits of the nursing qualifications she holds (`qualification_bits`).
    qualifications: i32,
    wants: [bool; 2],
}

/// One open posting near the people being matched.
struct Open {
    posting: PostingRef,
    version: i64,
    kind: PostingKind,
    qualifications: i32,
    body: String,
}

/// One entry of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    posting: PostingRef,
    version: i64,
    distance_m: i32,
}

/// What [`refresh`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub lists_changed: usize,
    pub events: usize,
}

/// Recomputes the lists of these people (person keys; any order) and sends the differences to
/// their home nodes, recording each as a provision in `chain`.
pub fn refresh(
    conn: &mut DbConn,
    chain: &mut ChainWriter,
    persons: &[Vec<u8>],
    today: NaiveDate,
) -> QueryResult<Report> {
    if persons.is_empty() {
        return Ok(Report::default());
    }
    let mut report = Report::default();
    for chunk in persons.chunks(crate::routing::CHUNK) {
        let r = refresh_chunk(conn, chain, chunk, today)?;
        report.lists_changed += r.lists_changed;
        report.events += r.events;
    }
    Ok(report)
}

/// Her list of one kind, by (person, kind): her home node and code, and the entries.
type Lists = BTreeMap<(Vec<u8>, PostingKind), (Prefecture, String, Vec<Entry>)>;
/// A `match_entries` row: person, kind, prefecture, posting, version, distance, home, home code.
type EntryRow = (Vec<u8>, String, String, String, i64, i32, String, String);
/// A `person_status` row: person, home prefecture, home code, residence.
type StatusRow = (Vec<u8>, Option<String>, Option<String>, Option<String>);
/// An open posting: prefecture, id, version, kind, qualifications, lat, lng, body.
type OpenRow = (String, String, i64, String, i32, f64, f64, String);

fn refresh_chunk(
    conn: &mut DbConn,
    chain: &mut ChainWriter,
    persons: &[Vec<u8>],
    today: NaiveDate,
) -> QueryResult<Report> {
    let mut before: Lists = BTreeMap::new();
    let rows: Vec<EntryRow> = match_entries::table
        .filter(match_entries::person_key.eq_any(persons))
        .select((
            match_entries::person_key,
            match_entries::kind,
            match_entries::prefecture,
            match_entries::posting_id,
            match_entries::version,
            match_entries::distance_m,
            match_entries::home_prefecture,
            match_entries::home_agency_code,
        ))
        .load(conn)?;
    let any_posting =
        postings::table.select(postings::prefecture).first::<String>(conn).optional()?.is_some();
    if rows.is_empty() && !any_posting {
        // Nothing held and nothing to match: the common case before any node publishes.
        return Ok(Report::default());
    }
    for (key, kind, prefecture, posting_id, version, distance_m, home_pref, home_code) in rows {
        let (Some(kind), Some(prefecture), Some(home_pref)) = (
            PostingKind::parse(&kind),
            Prefecture::from_code(&prefecture),
            Prefecture::from_code(&home_pref),
        ) else {
            continue;
        };
        before.entry((key, kind)).or_insert_with(|| (home_pref, home_code, Vec::new())).2.push(Entry {
            posting: PostingRef { prefecture, posting_id },
            version,
            distance_m,
        });
    }

    let subjects = if any_posting { subjects(conn, persons)? } else { Vec::new() };
    let open = open_near(conn, &subjects, today)?;
    let index = Index::new(
        open.iter().enumerate().filter_map(|(i, o)| Some((i as u32, o.place?))).collect::<Vec<_>>(),
    );

    let mut after: Lists = BTreeMap::new();
    for s in &subjects {
        for kind in PostingKind::ALL {
            if !s.wants[kind as usize] {
                continue;
            }
            let reach = Reach::new(s.place, s.reach_m);
            let found = index.nearest_within(&reach, MATCHES_PER_KIND, |i| {
                let o = &open[*i as usize].posting;
                o.kind == kind && o.qualifications & s.qualifications != 0
            });
            if found.is_empty() {
                continue;
            }
            let entries = found
                .into_iter()
                .map(|(i, metres)| {
                    let o = &open[i as usize].posting;
                    Entry {
                        posting: o.posting.clone(),
                        version: o.version,
                        // Whole kilometres: exact metres from her municipality's point would let a
                        // node publishing postings where it likes work out her municipality.
                        distance_m: ((metres / 1000.0).round().max(1.0) * 1000.0) as i32,
                    }
                })
                .collect();
            after.insert((s.key.clone(), kind), (s.home.0, s.home.1.clone(), entries));
        }
    }
    let bodies: HashMap<&PostingRef, &str> =
        open.iter().map(|o| (&o.posting.posting, o.posting.body.as_str())).collect();

    // Differences, per person and kind.
    let keys: BTreeSet<&(Vec<u8>, PostingKind)> = before.keys().chain(after.keys()).collect();
    let now = Utc::now();
    let mut events: Vec<(Prefecture, NationalToNode)> = Vec::new();
    let mut rewrite: Vec<(Vec<u8>, PostingKind)> = Vec::new();
    let mut report = Report::default();
    for k in keys {
        let old = before.get(k);
        let new = after.get(k);
        if old == new {
            continue;
        }
        report.lists_changed += 1;
        rewrite.push(k.clone());
        let same_home = matches!((old, new), (Some(o), Some(n)) if o.0 == n.0 && o.1 == n.1);
        let mut send = |home: &(Prefecture, String), added: Vec<MatchedPosting>, removed: Vec<PostingRef>| {
            let Some(code) = AgencyCode::parse(&home.1) else { return };
            let fields: &[&str] = match k.1 {
                PostingKind::Job => &["postings:job"],
                PostingKind::Training => &["postings:training"],
            };
            let mut added = added.into_iter().peekable();
            let mut removed = Some(removed);
            while added.peek().is_some() || removed.is_some() {
                let batch: Vec<MatchedPosting> = added.by_ref().take(POSTINGS_PER_EVENT).collect();
                events.push((
                    home.0,
                    NationalToNode::MatchesChanged(MatchesChanged {
                        agency_code: code.clone(),
                        kind: k.1,
                        added: batch,
                        removed: removed.take().unwrap_or_default(),
                        decided_at: now,
                    }),
                ));
                chain.append(&Provision::to_node(home.0, &home.1, fields, ProvisionPurpose::PostingMatches));
            }
        };
        let matched = |e: &Entry| -> Option<MatchedPosting> {
            let body: PostingBody = serde_json::from_str(bodies.get(&e.posting)?).ok()?;
            Some(MatchedPosting {
                posting: e.posting.clone(),
                version: e.version,
                distance_m: e.distance_m.max(0) as u32,
                body,
            })
        };
        if same_home {
            let (o, n) = (old.expect("same home"), new.expect("same home"));
            let held: HashMap<&PostingRef, &Entry> = o.2.iter().map(|e| (&e.posting, e)).collect();
            let kept: BTreeSet<&PostingRef> = n.2.iter().map(|e| &e.posting).collect();
            let added: Vec<MatchedPosting> =
                n.2.iter().filter(|e| held.get(&e.posting) != Some(e)).filter_map(matched).collect();
            let removed: Vec<PostingRef> =
                o.2.iter().filter(|e| !kept.contains(&e.posting)).map(|e| e.posting.clone()).collect();
            send(&(n.0, n.1.clone()), added, removed);
        } else {
            if let Some(o) = old {
                send(&(o.0, o.1.clone()), Vec::new(), o.2.iter().map(|e| e.posting.clone()).collect());
            }
            if let Some(n) = new {
                send(&(n.0, n.1.clone()), n.2.iter().filter_map(matched).collect(), Vec::new());
            }
        }
    }
    if rewrite.is_empty() {
        return Ok(report);
    }
    for (key, kind) in &rewrite {
        diesel::delete(
            match_entries::table
                .filter(match_entries::person_key.eq(key))
                .filter(match_entries::kind.eq(kind.as_str())),
        )
        .execute(conn)?;
    }
    let rows: Vec<_> = rewrite
        .iter()
        .filter_map(|k| after.get(k).map(|list| (k, list)))
        .flat_map(|((key, kind), (home_pref, home_code, entries))| {
            entries.iter().map(move |e| {
                (
                    match_entries::person_key.eq(key.clone()),
                    match_entries::kind.eq(kind.as_str()),
                    match_entries::prefecture.eq(e.posting.prefecture.code()),
                    match_entries::posting_id.eq(e.posting.posting_id.clone()),
                    match_entries::version.eq(e.version),
                    match_entries::distance_m.eq(e.distance_m),
                    match_entries::home_prefecture.eq(home_pref.code()),
                    match_entries::home_agency_code.eq(home_code.clone()),
                )
            })
        })
        .collect();
    for batch in rows.chunks(500) {
        per_backend!(&mut *conn, c => diesel::insert_into(match_entries::table).values(batch.to_vec()).execute(c))?;
    }
    report.events = events.len();
    crate::queue::enqueue_many(conn, &events)?;
    Ok(report)
}

/// The people among `persons` who are latent, live somewhere the national server may know
/// (`address_linkage`) and want jobs or training at their home link.
fn subjects(conn: &mut DbConn, persons: &[Vec<u8>]) -> QueryResult<Vec<Subject>> {
    let status: Vec<StatusRow> = person_status::table
        .filter(person_status::person_key.eq_any(persons))
        .filter(person_status::latent.eq(true))
        .filter(person_status::residence_prefecture.is_not_null())
        .select((
            person_status::person_key,
            person_status::home_prefecture,
            person_status::home_agency_code,
            person_status::residence_prefecture,
        ))
        .load(conn)?;
    let homes: Vec<(Vec<u8>, Prefecture, String, Prefecture)> = status
        .into_iter()
        .filter_map(|(key, p, code, r)| {
            Some((key, Prefecture::from_code(&p?)?, code?, Prefecture::from_code(&r?)?))
        })
        .collect();
    if homes.is_empty() {
        return Ok(Vec::new());
    }
    let codes: Vec<&str> = homes.iter().map(|h| h.2.as_str()).collect();
    // Per home link: [jobs, training, address_linkage, share_with_residence_prefecture].
    let mut grants: HashMap<(String, String), [bool; 4]> = HashMap::new();
    for (prefecture, code, scope) in nurse_consents::table
        .filter(nurse_consents::agency_code.eq_any(&codes))
        .filter(nurse_consents::granted.eq(true))
        .select((nurse_consents::prefecture, nurse_consents::agency_code, nurse_consents::scope))
        .load::<(String, String, String)>(conn)?
    {
        let g = grants.entry((prefecture, code)).or_default();
        match ConsentScope::parse(&scope) {
            Some(ConsentScope::JobSupport) => g[0] = true,
            Some(ConsentScope::TrainingInfo) => g[1] = true,
            Some(ConsentScope::AddressLinkage) => g[2] = true,
            Some(ConsentScope::ShareWithResidencePrefecture) => g[3] = true,
            None => {}
        }
    }
    let distances: HashMap<(String, String), i32> = match_preferences::table
        .filter(match_preferences::agency_code.eq_any(&codes))
        .select((
            match_preferences::prefecture,
            match_preferences::agency_code,
            match_preferences::distance_km,
        ))
        .load::<(String, String, i32)>(conn)?
        .into_iter()
        .map(|(p, c, d)| ((p, c), d))
        .collect();
    let keys: Vec<&Vec<u8>> = homes.iter().map(|h| &h.0).collect();
    let lgcodes: HashMap<Vec<u8>, String> = residents::table
        .filter(residents::person_key.eq_any(&keys))
        .filter(residents::deceased_on.is_null())
        .select((residents::person_key, residents::lgcode))
        .load::<(Vec<u8>, Option<String>)>(conn)?
        .into_iter()
        .filter_map(|(k, l)| Some((k, l?)))
        .collect();
    // Licences are indexed by the key's number (`PersonKey::number`), which is not unique: the
    // whole key is compared too.
    let numbers: Vec<i64> = keys.iter().map(|k| PersonKey::number_of(k)).collect();
    let mut qualifications: HashMap<Vec<u8>, i32> = HashMap::new();
    for (key, q) in licences::table
        .filter(licences::person_no.eq_any(numbers))
        .filter(licences::status.eq(LicenceStatus::Active.as_str()))
        .select((licences::person_key, licences::qualification))
        .load::<(Vec<u8>, String)>(conn)?
    {
        if let Some(q) = Qualification::from_code(&q).filter(|q| q.is_nursing()) {
            *qualifications.entry(key).or_default() |= ncf_shared::posting::qualification_bits(&[q]);
        }
    }
    Ok(homes
        .into_iter()
        .filter_map(|(key, prefecture, code, residence)| {
            let link = (prefecture.code(), code);
            let g = *grants.get(&link)?;
            // Her list tells her home node roughly where she lives: only when that node may know
            // her residence by the same rule as `status_changed` (address_linkage there, and it is
            // her prefecture's node or share_with_residence_prefecture is given there).
            if !(g[2] && (residence == prefecture || g[3])) {
                return None;
            }
            let wants = [g[0], g[1]];
            let place = Place::of_municipality(Municipality::by_lgcode(lgcodes.get(&key)?)?);
            let km = distances.get(&link).copied().map_or(DEFAULT_DISTANCE_KM, |d| d.clamp(1, 50) as u32);
            let qualifications = *qualifications.get(&key)?;
            Some(Subject {
                key,
                home: (prefecture, link.1),
                place,
                reach_m: f64::from(km * 1000).min(MAX_DISTANCE_M),
                qualifications,
                wants,
            })
        })
        .collect())
}

struct OpenNear {
    posting: Open,
    place: Option<Place>,
}

/// The postings open on `today` that could be within reach of any of `subjects`.
fn open_near(conn: &mut DbConn, subjects: &[Subject], today: NaiveDate) -> QueryResult<Vec<OpenNear>> {
    if subjects.is_empty() {
        return Ok(Vec::new());
    }
    let (mut lat0, mut lat1, mut lng0, mut lng1) = (90f64, -90f64, 180f64, -180f64);
    for s in subjects {
        lat0 = lat0.min(s.place.lat());
        lat1 = lat1.max(s.place.lat());
        lng0 = lng0.min(s.place.lon());
        lng1 = lng1.max(s.place.lon());
    }
    let rows: Vec<OpenRow> = postings::table
        .filter(postings::valid_until.ge(today))
        .filter(postings::valid_from.le(today))
        .filter(postings::withdrawn.eq(false))
        .filter(postings::lat.between(lat0 - MARGIN_LAT, lat1 + MARGIN_LAT))
        .filter(postings::lng.between(lng0 - MARGIN_LNG, lng1 + MARGIN_LNG))
        .order((postings::prefecture, postings::posting_id))
        .select((
            postings::prefecture,
            postings::posting_id,
            postings::version,
            postings::kind,
            postings::qualifications,
            postings::lat,
            postings::lng,
            postings::body,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(prefecture, posting_id, version, kind, qualifications, lat, lng, body)| {
            Some(OpenNear {
                posting: Open {
                    posting: PostingRef { prefecture: Prefecture::from_code(&prefecture)?, posting_id },
                    version,
                    kind: PostingKind::parse(&kind)?,
                    qualifications,
                    body,
                },
                place: Some(Place::new(lat, lng)),
            })
        })
        .collect())
}

/// The people whose lists a change to these postings may change: those holding one of them, and
/// those latent with a residence whose municipality lies within [`MAX_DISTANCE_M`] of one of the
/// places (before or after the change).
pub fn near_postings(conn: &mut DbConn, refs: &[PostingRef], places: &[Place]) -> QueryResult<Vec<Vec<u8>>> {
    let mut people: BTreeSet<Vec<u8>> = BTreeSet::new();
    for r in refs {
        people.extend(
            match_entries::table
                .filter(match_entries::prefecture.eq(r.prefecture.code()))
                .filter(match_entries::posting_id.eq(&r.posting_id))
                .select(match_entries::person_key)
                .distinct()
                .load::<Vec<u8>>(conn)?,
        );
    }
    if !places.is_empty() {
        let index = Index::new(places.iter().enumerate().map(|(i, p)| (i as u32, *p)).collect::<Vec<_>>());
        let lgcodes: Vec<&'static str> = Municipality::all()
            .iter()
            .filter(|m| index.count_within(&Reach::new(Place::of_municipality(m), MAX_DISTANCE_M)) > 0)
            .map(|m| m.lgcode.as_str())
            .collect();
        for chunk in lgcodes.chunks(500) {
            people.extend(
                residents::table
                    .inner_join(person_status::table.on(person_status::person_key.eq(residents::person_key)))
                    .filter(residents::lgcode.eq_any(chunk))
                    .filter(person_status::latent.eq(true))
                    .filter(person_status::residence_prefecture.is_not_null())
                    .select(residents::person_key)
                    .load::<Vec<u8>>(conn)?,
            );
        }
    }
    Ok(people.into_iter().collect())
}

/// The people holding a posting that is no longer open on `today` (expired, or withdrawn
/// without its node's push having reached them): the expiry sweep refreshes them.
pub fn holding_closed(conn: &mut DbConn, today: NaiveDate) -> QueryResult<Vec<Vec<u8>>> {
    let people: Vec<Vec<u8>> = match_entries::table
        .inner_join(
            postings::table.on(postings::prefecture
                .eq(match_entries::prefecture)
                .and(postings::posting_id.eq(match_entries::posting_id))),
        )
        .filter(postings::valid_until.lt(today).or(postings::withdrawn.eq(true)))
        .select(match_entries::person_key)
        .distinct()
        .load(conn)?;
    Ok(people)
}
