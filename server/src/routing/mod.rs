//! Where each linked person stands, kept true as registry, resident data and pushes change
//! (DESIGN flows 4 and 6, issue #7; `docs/architecture.md` section 8).
//!
//! [`refresh`] recomputes, for the people a change touched, everything the national server derives
//! about them, and acts only on differences from what it stored last time:
//! - **deaths**: an ex-officio deletion (`licence_deletions`) beside each licence, and one `erase`
//!   to every node linked to her, whatever her consents (the event does not say why);
//! - **status**: employment by the latest notice by effective date, latent or not (the rule lives
//!   in [`crate::latent`]), her home link, and the prefecture she lives in — from the resident data
//!   and only under `address_linkage`; each node is told (`status_changed`) when what it may know
//!   changes, and every such telling is a recorded provision;
//! - **routing**, state-based: her residence is compared with the prefecture she was last routed
//!   to. The first time it is known it is recorded and nobody is routed; after that a difference
//!   starts one hand-over (`moved_out` to the old home node, with a request to seal her contact
//!   for the new node when `share_with_residence_prefecture` allows). Re-imports and re-runs find
//!   no difference and route nobody twice;
//! - **withdrawal**: with none of `address_linkage`, `job_support`, `training_info` left, her
//!   derived status is deleted; without `address_linkage`, her residence and routing state are.
//!
//! The relay itself (`transfer_contact` in, `moved_in` out) and the confirmation are applied with
//! the pushes that carry them ([`relay_contact`], [`confirm_transfer`]).
//!
//! Everything runs inside the caller's transaction, so a change and what it causes commit together.

use std::collections::{BTreeSet, HashMap};

use chrono::{NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use ncf_shared::contract::{
    Erase, MovedIn, MovedOut, NationalToNode, ProofingMethod, ProvisionPurpose, StatusChanged,
    TransferConfirmed, TransferContact, TransferRequest, TransferredLicence,
};
use ncf_shared::db::DbConn;
use ncf_shared::ids::RecordId;
use ncf_shared::{
    AgencyCode, AgencyCodeKey, ConsentScope, PersonKey, Prefecture, Qualification, per_backend,
};

use crate::latent::{Employment, Facts};

mod gather;
use crate::provisions::{ChainWriter, Provision};
use crate::schema::{
    erasures, identity_links, licence_deletions, licences, nodes, person_status, resident_events, residents,
    told_status, transfers,
};
use gather::{Key, Link, PersonData, Status, Told, Whom};

/// People per round of reads: every query below takes one `IN (…)` list of this size.
pub const CHUNK: usize = 2_000;

pub const DECEASED_REASON: &str = "deceased (resident registry)";

/// What one refresh did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub persons: usize,
    pub latent: usize,
    pub moved: usize,
    pub deletions: usize,
    pub erased: usize,
    pub events: usize,
}

impl std::ops::AddAssign for Report {
    fn add_assign(&mut self, o: Self) {
        self.persons += o.persons;
        self.latent += o.latent;
        self.moved += o.moved;
        self.deletions += o.deletions;
        self.erased += o.erased;
        self.events += o.events;
    }
}

/// Recomputes the people with these person keys (any order, repeats allowed).
pub fn refresh(conn: &mut DbConn, persons: impl IntoIterator<Item = Vec<u8>>) -> QueryResult<Report> {
    let persons: BTreeSet<Vec<u8>> = persons.into_iter().collect();
    let persons: Vec<Vec<u8>> = persons.into_iter().collect();
    let keys = NodeKeys::load(conn)?;
    let mut report = Report::default();
    for chunk in persons.chunks(CHUNK) {
        report += refresh_chunk(conn, &keys, chunk)?;
    }
    Ok(report)
}

/// `rematch`: every person linked at any node, and everyone the resident data records as deceased.
///
/// Everyone linked is read in one pass, one statement per table, in one transaction that sees one
/// state of the database, and merged by person key in memory (a few hundred bytes per person)
/// instead of asking the database once per table for every chunk of people. They are then decided
/// and written in chunks of [`CHUNK`] people in key order, one transaction each: an interrupted
/// rematch leaves every chunk whole, and the next run finds nothing left to do for the chunks
/// already written.
///
/// A chunk is decided from that one read only while nobody else has taken the chain's lock since:
/// every change to what is derived here takes it ([`ChainWriter::begin`]), so an unchanged count
/// of takers proves the read still true. Once something else wrote (a push, an import), the
/// remaining chunks are read afresh under the lock, as a refresh reads.
pub fn refresh_all(conn: &mut DbConn) -> QueryResult<Report> {
    let started = std::time::Instant::now();
    let read = Rematch::read(conn)?;
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "read everyone linked");
    let keys = read.keys.clone();
    let mut report = read.decide(conn)?;
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "everyone linked decided");
    let mut after: Vec<u8> = Vec::new();
    loop {
        let chunk: Vec<Vec<u8>> = residents::table
            .filter(residents::deceased_on.is_not_null())
            .filter(residents::person_key.gt(&after))
            .select(residents::person_key)
            .order(residents::person_key)
            .limit(CHUNK as i64)
            .load(conn)?;
        let Some(last) = chunk.last() else { break };
        after = last.clone();
        let deaths = ncf_shared::db::write_transaction(conn, |conn| refresh_chunk(conn, &keys, &chunk))?;
        report.deletions += deaths.deletions;
        report.erased += deaths.erased;
        report.events += deaths.events;
    }
    Ok(report)
}

/// Rematch's two steps for everyone linked: the one read, then deciding from it ([`refresh_all`]
/// also covers the unlinked dead).
pub struct Rematch {
    keys: NodeKeys,
    tables: gather::Tables,
    /// How many transactions had taken the chain's lock when the read was made.
    lock_count: i64,
}

impl Rematch {
    /// Everyone linked at any node, read in one transaction that sees one state of the database
    /// (READ COMMITTED would give each statement its own), with the chain's lock count in that
    /// state.
    pub fn read(conn: &mut DbConn) -> QueryResult<Self> {
        let keys = NodeKeys::load(conn)?;
        conn.transaction(|conn| {
            if let DbConn::Postgresql(c) = conn {
                diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(c)?;
            }
            // SQLite in WAL mode: the first read fixes what the whole transaction sees.
            let lock_count = crate::provisions::lock_count(conn)?;
            Ok(Self { keys, tables: gather::read(conn, Whom::Linked)?, lock_count })
        })
    }

    /// Decides everyone read, chunk by chunk in key order.
    pub fn decide(self, conn: &mut DbConn) -> QueryResult<Report> {
        decide_everyone(conn, &self.keys, self.tables, self.lock_count)
    }
}

fn decide_everyone(
    conn: &mut DbConn,
    keys: &NodeKeys,
    tables: gather::Tables,
    mut lock_count: i64,
) -> QueryResult<Report> {
    let order = tables.keys();
    // Gone once stale: the rest is read chunk by chunk.
    let mut everyone = Some(tables.into_people());
    let mut report = Report::default();
    let mut chunks: u64 = 0;
    let mut analyzed_at = 0;
    for chunk in order.chunks(CHUNK) {
        // Read afresh, a first rematch fills `person_status` and `told_status` from empty, and
        // PostgreSQL plans each chunk's reads with the statistics of when they were nearly empty
        // (scanning them whole every time); refreshing the statistics at chunks 1, 2, 4, 8, …
        // after a chunk that wrote keeps the plans on the indexes at a cost of a few samples.
        chunks += 1;
        if everyone.is_none()
            && chunks.is_power_of_two()
            && report.events > analyzed_at
            && matches!(conn, DbConn::Postgresql(_))
        {
            diesel::sql_query("ANALYZE person_status, told_status").execute(conn)?;
            analyzed_at = report.events;
        }
        let mut read = everyone.as_mut().map(|e| e.take(chunk));
        report += ncf_shared::db::write_transaction(conn, |conn| {
            let chain = ChainWriter::begin(conn)?;
            // A transaction tried again (SQLite busy) finds `read` spent and reads afresh.
            let people = match read.take() {
                Some(people) if chain.lock_count() == lock_count + 1 => people,
                _ => {
                    if everyone.take().is_some() {
                        tracing::info!("the data changed during rematch; reading the rest chunk by chunk");
                    }
                    let chunk: Vec<Vec<u8>> = chunk.iter().map(|k| k.to_vec()).collect();
                    gather::read(conn, Whom::These(&chunk))?.people()
                }
            };
            lock_count = chain.lock_count();
            decide(conn, keys, chain, people)
        })?;
    }
    if report.events > analyzed_at && matches!(conn, DbConn::Postgresql(_)) {
        diesel::sql_query("ANALYZE person_status, told_status").execute(conn)?;
    }
    Ok(report)
}

/// The newest registered, unrevoked key of each prefecture's node: what a hand-over seals to.
#[derive(Clone)]
struct NodeKeys(HashMap<Prefecture, String>);

impl NodeKeys {
    fn load(conn: &mut DbConn) -> QueryResult<Self> {
        let rows: Vec<(String, String)> = nodes::table
            .filter(nodes::revoked_at.is_null())
            .order(nodes::added_at)
            .select((nodes::prefecture, nodes::public_key))
            .load(conn)?;
        Ok(Self(rows.into_iter().filter_map(|(p, k)| Some((Prefecture::from_code(&p)?, k))).collect()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = person_status, treat_none_as_default_value = false)]
struct StatusRow {
    person_key: Vec<u8>,
    employment: String,
    employment_since: Option<NaiveDate>,
    latent: bool,
    home_prefecture: Option<String>,
    home_agency_code: Option<String>,
    residence_prefecture: Option<String>,
    routed_prefecture: Option<String>,
    latent_since: Option<NaiveDateTime>,
    updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = told_status, treat_none_as_default_value = false)]
struct ToldRow {
    prefecture: String,
    agency_code: String,
    latent: bool,
    home_here: bool,
    residence: Option<String>,
    told_at: NaiveDateTime,
}

fn refresh_chunk(conn: &mut DbConn, keys: &NodeKeys, chunk: &[Vec<u8>]) -> QueryResult<Report> {
    // The chain's lock before any read: a push that commits while this chunk is being decided
    // cannot be overwritten with what was read before it (pushes take the same lock).
    let chain = ChainWriter::begin(conn)?;
    let people = gather::read(conn, Whom::These(chunk))?.people();
    decide(conn, keys, chain, people)
}

/// Decides each of these people and writes what differs from what was stored, with the chain's
/// lock held since before the read.
fn decide(
    conn: &mut DbConn,
    keys: &NodeKeys,
    mut chain: ChainWriter,
    people: Vec<(Key, PersonData)>,
) -> QueryResult<Report> {
    if people.is_empty() {
        chain.finish(conn)?;
        return Ok(Report::default());
    }
    let now = ncf_shared::time::now_utc();
    let mut report = Report::default();
    let mut events: Vec<(Prefecture, NationalToNode)> = Vec::new();
    let mut status_upserts: Vec<StatusRow> = Vec::new();
    let mut status_deletes: Vec<Vec<u8>> = Vec::new();
    let mut told_upserts: Vec<ToldRow> = Vec::new();
    let mut deletions: Vec<(String, String, Vec<u8>, NaiveDate)> = Vec::new();
    let mut erasure_rows: Vec<(String, String, Vec<u8>)> = Vec::new();
    let mut new_transfers: Vec<TransferRow> = Vec::new();
    let mut superseded: Vec<Vec<u8>> = Vec::new();
    let granted = |link: &Link, scope: ConsentScope| link.grants.has(scope);

    for (key, person) in &people {
        // Deaths: recorded beside the registry, and every linked node erases her, once.
        if let Some(died) = person.deceased_on {
            for l in &person.licences {
                if !person.deleted(l) {
                    deletions.push((
                        l.qualification.clone(),
                        l.registration_number.clone(),
                        key.to_vec(),
                        died,
                    ));
                }
            }
            for link in &person.links {
                if link.erased {
                    continue;
                }
                let Some(code) = AgencyCode::parse(&link.code) else { continue };
                events.push((
                    link.prefecture,
                    NationalToNode::Erase(Erase { agency_code: code, decided_at: Utc::now() }),
                ));
                chain.append(&Provision::to_node(
                    link.prefecture,
                    &link.code,
                    &["erase"],
                    ProvisionPurpose::Erasure,
                ));
                erasure_rows.push((link.prefecture.code(), link.code.clone(), key.to_vec()));
                report.erased += 1;
            }
            // Her contact, relayed sealed to nodes whose training she asked to attend, is erased
            // there too.
            for (holder, code) in crate::training::holders_to_erase(conn, key)? {
                events.push((
                    holder,
                    NationalToNode::Erase(Erase { agency_code: code.clone(), decided_at: Utc::now() }),
                ));
                chain.append(&Provision::to_node(
                    holder,
                    code.as_str(),
                    &["erase"],
                    ProvisionPurpose::Erasure,
                ));
            }
            if person.status.is_some() {
                status_deletes.push(key.to_vec());
            }
            superseded.push(key.to_vec());
            continue;
        }
        let proofed: Vec<&Link> = person.links.iter().filter(|l| l.proofed).collect();
        if proofed.is_empty() {
            if person.status.is_some() {
                status_deletes.push(key.to_vec());
            }
            continue;
        }
        report.persons += 1;
        let address_linkage = proofed.iter().any(|l| granted(l, ConsentScope::AddressLinkage));
        let residence = address_linkage.then_some(person.lives_in).flatten();
        // Her home link: the proofed link where she lives, else the one where she last opted in.
        let home = residence
            .and_then(|r| proofed.iter().find(|l| l.prefecture == r))
            .or_else(|| proofed.iter().max_by_key(|l| l.linked_at))
            .copied()
            .expect("at least one proofed link");
        let facts = Facts {
            licence_in_force: person.licences.iter().any(|l| {
                Qualification::from_code(&l.qualification).is_some_and(Qualification::is_nursing)
                    && l.active
                    && !person.deleted(l)
            }),
            deceased: false,
            notices: proofed.iter().filter_map(|l| l.notice).collect(),
            wants_information: granted(home, ConsentScope::JobSupport)
                || granted(home, ConsentScope::TrainingInfo),
        };
        let latent = facts.is_latent();
        let employment: Employment = facts.employment();
        let keeps_status = proofed.iter().any(|l| {
            granted(l, ConsentScope::AddressLinkage)
                || granted(l, ConsentScope::JobSupport)
                || granted(l, ConsentScope::TrainingInfo)
        });

        // Routing, by state: compare where she lives with where she was last routed.
        let previous = person.status.as_ref();
        let routed_before = previous.and_then(|s| s.routed);
        // The home node hears of a move only if she let the national server use her address
        // there (`address_linkage` at the home link); otherwise the state is recorded silently.
        if let (Some(from), Some(to)) = (routed_before, residence)
            && from != to
            && home.prefecture != to
            && granted(home, ConsentScope::AddressLinkage)
        {
            report.moved += 1;
            superseded.push(key.to_vec());
            let share = granted(home, ConsentScope::ShareWithResidencePrefecture);
            let recipient_key = keys.0.get(&to);
            let transfer_id = RecordId::new().0;
            let state = match (share, recipient_key) {
                (false, _) => "not_shared",
                (true, None) => "no_node",
                (true, Some(_)) => "requested",
            };
            let request = match (share, recipient_key) {
                (true, Some(k)) => {
                    Some(TransferRequest { transfer_id: transfer_id.clone(), recipient_key: k.clone() })
                }
                _ => None,
            };
            if let Some(code) = AgencyCode::parse(&home.code) {
                events.push((
                    home.prefecture,
                    NationalToNode::MovedOut(MovedOut {
                        agency_code: code,
                        destination: share.then_some(to),
                        transfer: request,
                        decided_at: Utc::now(),
                    }),
                ));
                let fields: &[&str] = if share { &["moved_out", "destination"] } else { &["moved_out"] };
                chain.append(&Provision::to_node(
                    home.prefecture,
                    &home.code,
                    fields,
                    ProvisionPurpose::HandOver,
                ));
            }
            new_transfers.push(TransferRow {
                id: transfer_id,
                person_key: key.to_vec(),
                from_prefecture: home.prefecture.code(),
                from_agency_code: home.code.clone(),
                to_prefecture: to.code(),
                to_agency_code: None,
                state: state.into(),
                requested_at: now,
                relayed_at: None,
                confirmed_at: None,
            });
        }

        // What each node may know, told when it changes.
        for link in &proofed {
            let home_here = link.prefecture == home.prefecture;
            let told_residence = residence.filter(|r| {
                granted(link, ConsentScope::AddressLinkage)
                    && (*r == link.prefecture || granted(link, ConsentScope::ShareWithResidencePrefecture))
            });
            let told = Told { latent: latent && home_here, home_here, residence: told_residence };
            let before = link.told;
            // Nothing derived and nothing told before: nothing to tell (a nurse who gave none
            // of the scopes the status comes from gets no event about it).
            if before == Some(told) || (before.is_none() && !keeps_status) {
                continue;
            }
            let Some(code) = AgencyCode::parse(&link.code) else { continue };
            events.push((
                link.prefecture,
                NationalToNode::StatusChanged(StatusChanged {
                    agency_code: code,
                    latent: told.latent,
                    home_here,
                    residence: told_residence,
                    decided_at: Utc::now(),
                }),
            ));
            let fields: &[&str] =
                if told_residence.is_some() { &["latent", "home", "residence"] } else { &["latent", "home"] };
            chain.append(&Provision::to_node(
                link.prefecture,
                &link.code,
                fields,
                ProvisionPurpose::LatentStatus,
            ));
            told_upserts.push(ToldRow {
                prefecture: link.prefecture.code(),
                agency_code: link.code.clone(),
                latent: told.latent,
                home_here,
                residence: told_residence.map(Prefecture::code),
                told_at: now,
            });
        }

        if latent {
            report.latent += 1;
        }
        if !keeps_status {
            if previous.is_some() {
                status_deletes.push(key.to_vec());
            }
            continue;
        }
        let status = Status {
            employment: Some(employment),
            latent,
            home_prefecture: Some(home.prefecture),
            home_agency_code: Some(home.code.clone()),
            residence,
            routed: residence,
            latent_since: match previous {
                Some(p) if p.latent && latent => p.latent_since,
                _ if latent => Some(now),
                _ => None,
            },
        };
        if previous != Some(&status) {
            status_upserts.push(StatusRow {
                person_key: key.to_vec(),
                employment: employment.as_str().into(),
                employment_since: employment.since(),
                latent,
                home_prefecture: Some(home.prefecture.code()),
                home_agency_code: status.home_agency_code,
                residence_prefecture: residence.map(Prefecture::code),
                routed_prefecture: residence.map(Prefecture::code),
                latent_since: status.latent_since,
                updated_at: now,
            });
        }
    }

    report.deletions = deletions.len();
    report.events = events.len();
    write_chunk(
        conn,
        ChunkWrites {
            chain,
            persons: people.iter().map(|(key, _)| key.to_vec()).collect(),
            events,
            status_upserts,
            status_deletes,
            told_upserts,
            deletions,
            erasure_rows,
            new_transfers,
            superseded,
            now,
        },
    )?;
    Ok(report)
}

#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = transfers, treat_none_as_default_value = false)]
struct TransferRow {
    id: String,
    person_key: Vec<u8>,
    from_prefecture: String,
    from_agency_code: String,
    to_prefecture: String,
    to_agency_code: Option<String>,
    state: String,
    requested_at: NaiveDateTime,
    relayed_at: Option<NaiveDateTime>,
    confirmed_at: Option<NaiveDateTime>,
}

struct ChunkWrites {
    chain: ChainWriter,
    /// Everyone decided in this chunk, for their lists of postings.
    persons: Vec<Vec<u8>>,
    events: Vec<(Prefecture, NationalToNode)>,
    status_upserts: Vec<StatusRow>,
    status_deletes: Vec<Vec<u8>>,
    told_upserts: Vec<ToldRow>,
    deletions: Vec<(String, String, Vec<u8>, NaiveDate)>,
    erasure_rows: Vec<(String, String, Vec<u8>)>,
    new_transfers: Vec<TransferRow>,
    superseded: Vec<Vec<u8>>,
    now: NaiveDateTime,
}

fn write_chunk(conn: &mut DbConn, w: ChunkWrites) -> QueryResult<()> {
    let now = w.now;
    if !w.deletions.is_empty() {
        // The import that recorded each death, for the deletion record.
        let dead: Vec<&Vec<u8>> = w.deletions.iter().map(|d| &d.2).collect();
        // Newest death record first; the first one seen per person wins.
        let mut imports: HashMap<Vec<u8>, String> = HashMap::new();
        for (key, import) in resident_events::table
            .filter(resident_events::person_key.eq_any(dead))
            .filter(resident_events::event.eq(crate::imports::residents::DECEASED))
            .order(resident_events::effective_on.desc())
            .select((resident_events::person_key, resident_events::import_id))
            .load::<(Vec<u8>, String)>(conn)?
        {
            imports.entry(key).or_insert(import);
        }
        let rows: Vec<_> = w
            .deletions
            .iter()
            .map(|(q, r, key, died)| {
                (
                    licence_deletions::qualification.eq(q),
                    licence_deletions::registration_number.eq(r),
                    licence_deletions::person_key.eq(key),
                    licence_deletions::deleted_on.eq(died),
                    licence_deletions::reason.eq(DECEASED_REASON),
                    licence_deletions::import_id.eq(imports.get(key).map_or("", String::as_str)),
                    licence_deletions::recorded_at.eq(now),
                )
            })
            .collect();
        ncf_shared::insert_many!(&mut *conn, rows, |c, values| diesel::insert_into(licence_deletions::table)
            .values(values)
            .execute(c));
        tracing::info!(licences = w.deletions.len(), "ex-officio deletions recorded (deceased)");
    }
    if !w.erasure_rows.is_empty() {
        let rows: Vec<_> = w
            .erasure_rows
            .iter()
            .map(|(p, c, key)| {
                (
                    erasures::prefecture.eq(p),
                    erasures::agency_code.eq(c),
                    erasures::person_key.eq(key),
                    erasures::decided_at.eq(now),
                )
            })
            .collect();
        ncf_shared::insert_many!(&mut *conn, rows, |c, values| diesel::insert_into(erasures::table)
            .values(values)
            .execute(c));
        let codes: Vec<&String> = w.erasure_rows.iter().map(|(_, c, _)| c).collect();
        diesel::delete(told_status::table.filter(told_status::agency_code.eq_any(codes))).execute(conn)?;
    }
    let mut events = w.events;
    if !w.superseded.is_empty() {
        // She moved again, or died: an unfinished hand-over will not complete.
        let open: Vec<TransferRow> = transfers::table
            .filter(transfers::person_key.eq_any(&w.superseded))
            .filter(transfers::state.eq_any(["requested", "relayed"]))
            .select(TransferRow::as_select())
            .load(conn)?;
        events.extend(cancel(conn, &open, "superseded")?);
    }
    if !w.new_transfers.is_empty() {
        ncf_shared::insert_many!(&mut *conn, w.new_transfers, |c, values| diesel::insert_into(
            transfers::table
        )
        .values(values)
        .execute(c));
    }
    if !w.status_deletes.is_empty() {
        diesel::delete(person_status::table.filter(person_status::person_key.eq_any(&w.status_deletes)))
            .execute(conn)?;
    }
    use person_status::dsl as s;
    per_backend!(&mut *conn, c => {
        for chunk in w.status_upserts.chunks(CHUNK) {
            diesel::insert_into(person_status::table)
                .values(chunk)
                .on_conflict(s::person_key)
                .do_update()
                .set((
                    s::employment.eq(excluded(s::employment)),
                    s::employment_since.eq(excluded(s::employment_since)),
                    s::latent.eq(excluded(s::latent)),
                    s::home_prefecture.eq(excluded(s::home_prefecture)),
                    s::home_agency_code.eq(excluded(s::home_agency_code)),
                    s::residence_prefecture.eq(excluded(s::residence_prefecture)),
                    s::routed_prefecture.eq(excluded(s::routed_prefecture)),
                    s::latent_since.eq(excluded(s::latent_since)),
                    s::updated_at.eq(excluded(s::updated_at)),
                ))
                .execute(c)?;
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    use told_status::dsl as t;
    per_backend!(&mut *conn, c => {
        for chunk in w.told_upserts.chunks(CHUNK) {
            diesel::insert_into(told_status::table)
                .values(chunk)
                .on_conflict((t::prefecture, t::agency_code))
                .do_update()
                .set((
                    t::latent.eq(excluded(t::latent)),
                    t::home_here.eq(excluded(t::home_here)),
                    t::residence.eq(excluded(t::residence)),
                    t::told_at.eq(excluded(t::told_at)),
                ))
                .execute(c)?;
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    crate::queue::enqueue_many(conn, &events)?;
    let mut chain = w.chain;
    // Her lists of nearby postings follow what was just written (latent, home, residence).
    crate::matches::refresh(conn, &mut chain, &w.persons, ncf_shared::time::today_jst())?;
    chain.finish(conn)
}

/// Ends these open hand-overs in `state`; returns the `transfer_cancelled` events for the new
/// nodes that already hold a pending transfer (those relayed).
fn cancel(
    conn: &mut DbConn,
    open: &[TransferRow],
    state: &str,
) -> QueryResult<Vec<(Prefecture, NationalToNode)>> {
    if open.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&String> = open.iter().map(|t| &t.id).collect();
    diesel::update(transfers::table.filter(transfers::id.eq_any(ids)))
        .set(transfers::state.eq(state))
        .execute(conn)?;
    Ok(open
        .iter()
        .filter(|t| t.state == "relayed")
        .filter_map(|t| {
            let to = Prefecture::from_code(&t.to_prefecture)?;
            let code = AgencyCode::parse(t.to_agency_code.as_deref()?)?;
            Some((
                to,
                NationalToNode::TransferCancelled(ncf_shared::contract::TransferCancelled {
                    agency_code: code,
                    transfer_id: t.id.clone(),
                    decided_at: Utc::now(),
                }),
            ))
        })
        .collect())
}

/// She withdrew `share_with_residence_prefecture` at the node handing her over: the hand-over
/// stops, and a new node holding her sealed contact deletes it. Call in the withdrawal's
/// transaction.
pub fn cancel_from(conn: &mut DbConn, node: Prefecture, agency_code: &str) -> QueryResult<usize> {
    let open: Vec<TransferRow> = transfers::table
        .filter(transfers::from_prefecture.eq(node.code()))
        .filter(transfers::from_agency_code.eq(agency_code))
        .filter(transfers::state.eq_any(["requested", "relayed"]))
        .select(TransferRow::as_select())
        .load(conn)?;
    let events = cancel(conn, &open, "cancelled")?;
    crate::queue::enqueue_many(conn, &events)?;
    Ok(open.len())
}

/// Why a hand-over event cannot be applied (becomes the push's reject reason).
pub struct NotApplicable(pub &'static str);

/// The old node answered a `moved_out` with her sealed contact: make the new node's link and
/// pass the sealed contact on with the new node's code (`moved_in`). Nothing of the contact is
/// kept; the provision record gets one entry for each side.
pub fn relay_contact(
    conn: &mut DbConn,
    agency_key: &AgencyCodeKey,
    chain: &mut ChainWriter,
    node: Prefecture,
    t: &TransferContact,
) -> QueryResult<Result<Vec<u8>, NotApplicable>> {
    let row: Option<TransferRow> =
        transfers::table.find(&t.transfer_id).select(TransferRow::as_select()).first(conn).optional()?;
    let Some(row) =
        row.filter(|r| r.from_prefecture == node.code() && r.from_agency_code == t.agency_code.as_str())
    else {
        return Ok(Err(NotApplicable("no hand-over of this person from this node has that id")));
    };
    if row.state != "requested" {
        // Already relayed (a retried push), or overtaken by a later move or a death.
        return Ok(Err(NotApplicable("the hand-over is no longer waiting for her contact")));
    }
    if t.sealed_contact.len() > 8 * 1024 {
        return Ok(Err(NotApplicable("sealed contact too large")));
    }
    let Some(to) = Prefecture::from_code(&row.to_prefecture) else {
        return Ok(Err(NotApplicable("hand-over names an unknown prefecture")));
    };
    let Some(person) = PersonKey::from_slice(&row.person_key) else {
        return Ok(Err(NotApplicable("stored person key has the wrong length")));
    };
    let (qualification, registration_number): (String, String) = identity_links::table
        .find((node.code(), t.agency_code.as_str()))
        .select((identity_links::qualification, identity_links::registration_number))
        .first(conn)?;
    let proofing_method: Option<String> = identity_links::table
        .find((node.code(), t.agency_code.as_str()))
        .select(identity_links::proofing_method)
        .first(conn)?;
    let licence: Option<(String, String, NaiveDate)> = licences::table
        .find((&qualification, &registration_number))
        .select((licences::family_name_kana, licences::given_name_kana, licences::birth_date))
        .first(conn)
        .optional()?;
    let (Some((family_name_kana, given_name_kana, birth_date)), Some(q)) =
        (licence, Qualification::from_code(&qualification))
    else {
        return Ok(Err(NotApplicable("her licence is no longer in the registry")));
    };
    let new_code = agency_key.code_for(to, &person);
    per_backend!(&mut *conn, c => diesel::insert_into(identity_links::table)
        .values((
            identity_links::prefecture.eq(to.code()),
            identity_links::agency_code.eq(new_code.as_str()),
            identity_links::person_key.eq(&row.person_key),
            identity_links::qualification.eq(&qualification),
            identity_links::registration_number.eq(&registration_number),
            identity_links::linked_at.eq(ncf_shared::time::now_utc()),
        ))
        .on_conflict((identity_links::prefecture, identity_links::agency_code))
        .do_nothing()
        .execute(c))?;
    let moved_in = NationalToNode::MovedIn(MovedIn {
        agency_code: new_code.clone(),
        transfer_id: row.id.clone(),
        from: node,
        sealed_contact: t.sealed_contact.clone(),
        licence: TransferredLicence {
            qualification: q,
            registration_number: registration_number.clone(),
            family_name_kana,
            given_name_kana,
            birth_date,
        },
        proofing_method: proofing_method
            .as_deref()
            .and_then(ProofingMethod::parse)
            .unwrap_or(ProofingMethod::Legacy),
        decided_at: Utc::now(),
    });
    crate::queue::enqueue(conn, to, &moved_in)?;
    let contact: Vec<String> =
        ncf_shared::contract::SealedContact::FIELDS.iter().map(|f| format!("contact:{f}")).collect();
    let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
    chain.append(&Provision::from_node(node, t.agency_code.as_str(), &contact, ProvisionPurpose::HandOver));
    let mut given: Vec<String> = vec!["agency_code".into()];
    given.extend(contact.iter().map(|f| f.to_string()));
    given.extend(TransferredLicence::FIELDS.iter().map(|f| format!("licence:{f}")));
    let given: Vec<&str> = given.iter().map(String::as_str).collect();
    chain.append(&Provision::to_node(to, new_code.as_str(), &given, ProvisionPurpose::HandOver));
    diesel::update(transfers::table.find(&row.id))
        .set((
            transfers::state.eq("relayed"),
            transfers::to_agency_code.eq(new_code.as_str()),
            transfers::relayed_at.eq(ncf_shared::time::now_utc()),
        ))
        .execute(conn)?;
    tracing::info!(from = %node, to = %to, "hand-over: contact relayed sealed");
    Ok(Ok(row.person_key))
}

/// She confirmed the hand-over at the new node: its link becomes proofed (she proved who she is
/// at the old node), which makes it her home link at the next refresh.
pub fn confirm_transfer(
    conn: &mut DbConn,
    chain: &mut ChainWriter,
    node: Prefecture,
    t: &TransferConfirmed,
) -> QueryResult<Result<Vec<u8>, NotApplicable>> {
    let row: Option<TransferRow> =
        transfers::table.find(&t.transfer_id).select(TransferRow::as_select()).first(conn).optional()?;
    let Some(row) = row.filter(|r| {
        r.to_prefecture == node.code() && r.to_agency_code.as_deref() == Some(t.agency_code.as_str())
    }) else {
        return Ok(Err(NotApplicable("no hand-over to this node for this person has that id")));
    };
    if row.state == "confirmed" {
        return Ok(Ok(row.person_key));
    }
    if row.state != "relayed" {
        return Ok(Err(NotApplicable("the hand-over was overtaken by a later change")));
    }
    diesel::update(
        identity_links::table
            .filter(identity_links::prefecture.eq(node.code()))
            .filter(identity_links::agency_code.eq(t.agency_code.as_str()))
            .filter(identity_links::proofed_at.is_null()),
    )
    .set((
        identity_links::proofing_method.eq(ProofingMethod::Transfer.as_str()),
        identity_links::proofed_at.eq(t.confirmed_at.naive_utc()),
    ))
    .execute(conn)?;
    diesel::update(transfers::table.find(&row.id))
        .set((transfers::state.eq("confirmed"), transfers::confirmed_at.eq(t.confirmed_at.naive_utc())))
        .execute(conn)?;
    chain.append(&Provision::from_node(
        node,
        t.agency_code.as_str(),
        &["transfer_confirmation"],
        ProvisionPurpose::HandOver,
    ));
    tracing::info!(to = %node, "hand-over confirmed by her");
    Ok(Ok(row.person_key))
}
