//! Filing reminders (届出勧奨, DESIGN flow 6, issue #7): where the resident data and the registry
//! disagree in a way only the licence holder (or her family) can put right by filing with the
//! registry.
//!
//! Kinds ([`ReminderKind`]):
//! - **name differs**: the resident data records a name change and the registry still has another
//!   name (籍の訂正);
//! - **deceased, registry active**: the resident data records a death and the registry still lists
//!   the licence as active (籍の抹消, filed by the family). The national server has already
//!   recorded its ex-officio deletion; the registry itself changes only by import (rule 7).
//!
//! A reminder is keyed by person, kind and the fact that caused it (the date of the name change or
//! death), so running the check again — after every residents import and in the yearly
//! `reconcile` — adds nothing. It goes to her home node as `reminder_due` when `address_linkage`
//! is given there (her page and the staff page show it); otherwise, and always after a death, it
//! goes to the postal batch (`postal export`).

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use diesel::prelude::*;
use ncf_shared::contract::{NationalToNode, ProvisionPurpose, ReminderDue, ReminderKind};
use ncf_shared::db::DbConn;
use ncf_shared::ids::RecordId;
use ncf_shared::licence::{LicenceStatus, PersonName};
use ncf_shared::{AgencyCode, ConsentScope, Prefecture, per_backend};

use crate::provisions::{ChainWriter, Provision};
use crate::schema::{licences, nurse_consents, person_status, reminders, residents};

const CHUNK: usize = 500;

/// Checks these people; returns how many reminders were added.
pub fn check(conn: &mut DbConn, persons: &[Vec<u8>]) -> QueryResult<usize> {
    let mut added = 0;
    for chunk in persons.chunks(CHUNK) {
        added += check_chunk(conn, chunk)?;
    }
    Ok(added)
}

/// The yearly reconciliation: everyone whose resident record could disagree with the registry
/// (a recorded name change or death), in key order, one chunk at a time.
pub fn reconcile(conn: &mut DbConn) -> QueryResult<usize> {
    let mut added = 0;
    let mut after: Vec<u8> = Vec::new();
    loop {
        let chunk: Vec<Vec<u8>> = residents::table
            .filter(residents::name_since.is_not_null().or(residents::deceased_on.is_not_null()))
            .filter(residents::person_key.gt(&after))
            .order(residents::person_key)
            .select(residents::person_key)
            .limit(CHUNK as i64)
            .load(conn)?;
        let Some(last) = chunk.last() else { break };
        after = last.clone();
        added += ncf_shared::db::write_transaction(conn, |conn| check_chunk(conn, &chunk))?;
    }
    Ok(added)
}

struct Due {
    person_key: Vec<u8>,
    kind: ReminderKind,
    fact: String,
    since: NaiveDate,
}

fn check_chunk(conn: &mut DbConn, chunk: &[Vec<u8>]) -> QueryResult<usize> {
    type ResidentRow = (Vec<u8>, Option<String>, Option<String>, Option<NaiveDate>, Option<NaiveDate>);
    let resident_rows: Vec<ResidentRow> = residents::table
        .filter(residents::person_key.eq_any(chunk))
        .filter(residents::name_since.is_not_null().or(residents::deceased_on.is_not_null()))
        .select((
            residents::person_key,
            residents::family_name,
            residents::given_name,
            residents::name_since,
            residents::deceased_on,
        ))
        .load(conn)?;
    if resident_rows.is_empty() {
        return Ok(0);
    }
    // By the indexed number; a row of someone else with the same number is never looked up below.
    let numbers: Vec<i64> = resident_rows.iter().map(|r| ncf_shared::PersonKey::number_of(&r.0)).collect();
    let mut licence_rows: HashMap<Vec<u8>, Vec<(String, String, String)>> = HashMap::new();
    for (key, family, given, status) in licences::table
        .filter(licences::person_no.eq_any(&numbers))
        .select((licences::person_key, licences::family_name, licences::given_name, licences::status))
        .load::<(Vec<u8>, String, String, String)>(conn)?
    {
        licence_rows.entry(key).or_default().push((family, given, status));
    }
    let mut due = Vec::new();
    for (key, family, given, name_since, deceased_on) in &resident_rows {
        let Some(held) = licence_rows.get(key) else { continue };
        let active = |s: &str| s == LicenceStatus::Active.as_str();
        if let Some(died) = deceased_on {
            if held.iter().any(|(_, _, s)| active(s)) {
                due.push(Due {
                    person_key: key.clone(),
                    kind: ReminderKind::DeceasedRegistryActive,
                    fact: format!("deceased:{died}"),
                    since: *died,
                });
            }
            continue;
        }
        if let (Some(family), Some(given), Some(since)) = (family, given, name_since) {
            let same = |a: &str, b: &str| PersonName::normalize(a) == PersonName::normalize(b);
            if held.iter().any(|(f, g, s)| active(s) && !(same(f, family) && same(g, given))) {
                due.push(Due {
                    person_key: key.clone(),
                    kind: ReminderKind::NameDiffers,
                    fact: format!("name_changed:{since}"),
                    since: *since,
                });
            }
        }
    }
    if due.is_empty() {
        return Ok(0);
    }
    // What exists already is left alone: the same fact never makes a second reminder.
    let due_keys: Vec<Vec<u8>> = due.iter().map(|d| d.person_key.clone()).collect();
    let existing: HashSet<(Vec<u8>, String, String)> = reminders::table
        .filter(reminders::person_key.eq_any(&due_keys))
        .select((reminders::person_key, reminders::kind, reminders::fact))
        .load::<(Vec<u8>, String, String)>(conn)?
        .into_iter()
        .collect();
    due.retain(|d| !existing.contains(&(d.person_key.clone(), d.kind.as_str().to_string(), d.fact.clone())));
    if due.is_empty() {
        return Ok(0);
    }
    // Her home node, where address_linkage is given there.
    let homes: HashMap<Vec<u8>, (String, String)> = person_status::table
        .filter(person_status::person_key.eq_any(&due_keys))
        .select((person_status::person_key, person_status::home_prefecture, person_status::home_agency_code))
        .load::<(Vec<u8>, Option<String>, Option<String>)>(conn)?
        .into_iter()
        .filter_map(|(k, p, c)| Some((k, (p?, c?))))
        .collect();
    let home_codes: Vec<&String> = homes.values().map(|(_, c)| c).collect();
    let linkage: HashSet<(String, String)> = nurse_consents::table
        .filter(nurse_consents::agency_code.eq_any(home_codes))
        .filter(nurse_consents::scope.eq(ConsentScope::AddressLinkage.as_str()))
        .filter(nurse_consents::granted.eq(true))
        .select((nurse_consents::prefecture, nurse_consents::agency_code))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    let now = ncf_shared::time::now_utc();
    let mut chain = ChainWriter::begin(conn)?;
    let mut events = Vec::new();
    let mut added = 0;
    for d in &due {
        let home = homes.get(&d.person_key).filter(|h| linkage.contains(*h));
        let by_node = d.kind == ReminderKind::NameDiffers && home.is_some();
        let id = RecordId::new().0;
        let inserted = per_backend!(&mut *conn, c => diesel::insert_into(reminders::table)
            .values((
                reminders::id.eq(&id),
                reminders::person_key.eq(&d.person_key),
                reminders::kind.eq(d.kind.as_str()),
                reminders::fact.eq(&d.fact),
                reminders::since.eq(d.since),
                reminders::delivery.eq(if by_node { "node" } else { "post" }),
                reminders::prefecture.eq(home.filter(|_| by_node).map(|h| h.0.as_str())),
                reminders::agency_code.eq(home.filter(|_| by_node).map(|h| h.1.as_str())),
                reminders::created_at.eq(now),
            ))
            .on_conflict((reminders::person_key, reminders::kind, reminders::fact))
            .do_nothing()
            .execute(c))?;
        if inserted == 0 {
            continue;
        }
        added += 1;
        if let (true, Some((prefecture, code))) = (by_node, home)
            && let (Some(node), Some(agency_code)) =
                (Prefecture::from_code(prefecture), AgencyCode::parse(code))
        {
            events.push((
                node,
                NationalToNode::ReminderDue(ReminderDue {
                    agency_code,
                    reminder_id: id.clone(),
                    kind: d.kind,
                    since: d.since,
                }),
            ));
            chain.append(&Provision::to_node(node, code, &["reminder"], ProvisionPurpose::FilingReminder));
        }
    }
    crate::queue::enqueue_many(conn, &events)?;
    chain.finish(conn)?;
    Ok(added)
}

/// A reminder for the postal batch, with the name and address of her resident registration.
pub struct PostalReminder {
    pub id: String,
    pub kind: ReminderKind,
    pub family_name: String,
    pub given_name: String,
    pub address: String,
    pub prefecture: Option<Prefecture>,
}

/// Reminders to post that were not exported yet (those with no current address wait).
pub fn for_post(conn: &mut DbConn) -> QueryResult<Vec<PostalReminder>> {
    type Row = (String, String, Option<String>, Option<String>, Option<String>, Option<String>);
    let rows: Vec<Row> = reminders::table
        .inner_join(residents::table.on(residents::person_key.eq(reminders::person_key)))
        .filter(reminders::delivery.eq("post"))
        .filter(reminders::exported_at.is_null())
        .filter(residents::address.is_not_null())
        .order(reminders::created_at)
        .select((
            reminders::id,
            reminders::kind,
            residents::family_name,
            residents::given_name,
            residents::address,
            residents::lgcode,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, kind, family, given, address, lgcode)| {
            Some(PostalReminder {
                id,
                kind: ReminderKind::parse(&kind)?,
                family_name: family.unwrap_or_default(),
                given_name: given.unwrap_or_default(),
                address: address?,
                prefecture: lgcode
                    .as_deref()
                    .and_then(ncf_shared::Municipality::by_lgcode)
                    .map(|m| m.prefecture),
            })
        })
        .collect())
}

pub fn mark_exported<'a>(
    conn: &mut DbConn,
    ids: impl Iterator<Item = &'a str>,
    at: chrono::NaiveDateTime,
) -> QueryResult<()> {
    let ids: Vec<&str> = ids.collect();
    for chunk in ids.chunks(CHUNK) {
        diesel::update(reminders::table.filter(reminders::id.eq_any(chunk)))
            .set(reminders::exported_at.eq(at))
            .execute(conn)?;
    }
    Ok(())
}

/// The yearly reconciliation's default time: 1 April (the start of Japan's fiscal year), 03:00.
pub const DEFAULT_SCHEDULE: &str = "0 0 3 1 4 *";

/// When `serve` runs [`reconcile`]: `--reconcile-cron`, read in Japan time
/// (`ncf_shared::schedule`).
pub struct Schedule(ncf_shared::schedule::Schedule);

impl Schedule {
    pub fn parse(expression: &str) -> Result<Self, String> {
        ncf_shared::schedule::Schedule::parse("--reconcile-cron", expression, DEFAULT_SCHEDULE).map(Self)
    }

    /// The next run after now, in Japan time.
    pub fn next(&self) -> Option<chrono::DateTime<chrono::FixedOffset>> {
        self.0.next()
    }

    /// Runs the reconciliation at each scheduled time, for as long as the server runs. A failed
    /// run is logged and the next one comes at its time.
    pub async fn run(self, pool: ncf_shared::db::Pool) {
        loop {
            if let Some(next) = self.next() {
                tracing::info!(next = %next.to_rfc3339(), "yearly reconciliation scheduled");
            }
            if self.0.wait_next().await.is_none() {
                break;
            }
            let pool = pool.clone();
            let outcome = tokio::task::spawn_blocking(move || -> Result<usize, String> {
                let mut conn = pool.get().map_err(|e| e.to_string())?;
                reconcile(&mut conn).map_err(|e| e.to_string())
            })
            .await;
            match outcome {
                Ok(Ok(added)) => tracing::info!(added, "yearly reconciliation done"),
                Ok(Err(e)) => tracing::error!(error = %e, "yearly reconciliation failed"),
                Err(e) => tracing::error!(error = %e, "yearly reconciliation stopped"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_read_in_japan_time_and_bad_ones_are_named() {
        let s = Schedule::parse(DEFAULT_SCHEDULE).unwrap();
        let next = s.next().unwrap();
        assert_eq!(next.format("%m-%d %H:%M:%S %:z").to_string(), "04-01 03:00:00 +09:00");
        let error = Schedule::parse("30 9 * * Mon").err().unwrap();
        assert!(error.contains("\"30 9 * * Mon\"") && error.contains("six fields"), "{error}");
    }
}
