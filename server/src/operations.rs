//! The operations view for national staff (issue #9 item 7): how each node's sync stands, what
//! was imported, and when the data-provision chain was last checked. Counts and times only: no
//! agency code, no person, no payload is read into it.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ncf_shared::db::DbConn;
use ncf_shared::{Prefecture, per_backend};

use crate::schema::{chain_verifications, imports, node_contacts, node_events, nodes, pushed_events};

/// What a signed request was, for the node's contact record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact {
    Push,
    /// A pull after this sequence number of the node's queue.
    Pull {
        after: i64,
    },
    Other,
}

/// Notes that a node called: every signed request (`Push` or `Other`, by the signed-request
/// extractor), and how far a pull read (`Pull`, by the pull handler, after the extractor's note).
pub fn record_contact(
    conn: &mut DbConn,
    node: Prefecture,
    contact: Contact,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let prefecture = node.code();
    let row = node_contacts::table.find(&prefecture);
    if let Contact::Pull { after } = contact {
        // A node's cursor only grows; an older `after` (a retried pull) does not move it back.
        diesel::update(row.filter(node_contacts::pulled_after.le(after)))
            .set((node_contacts::last_pull_at.eq(now), node_contacts::pulled_after.eq(after)))
            .execute(conn)?;
        return Ok(());
    }
    let pushed = (contact == Contact::Push).then_some(now);
    per_backend!(&mut *conn, c => diesel::insert_into(node_contacts::table)
        .values((
            node_contacts::prefecture.eq(&prefecture),
            node_contacts::last_contact_at.eq(now),
            node_contacts::last_push_at.eq(pushed),
        ))
        .on_conflict(node_contacts::prefecture)
        .do_update()
        .set((
            node_contacts::last_contact_at.eq(now),
            node_contacts::last_push_at.eq(diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Timestamp>>(
                "COALESCE(excluded.last_push_at, node_contacts.last_push_at)",
            )),
        ))
        .execute(c))?;
    Ok(())
}

/// Records a check of the provision chain: how many entries held, or the first broken one.
pub fn record_verification(
    conn: &mut DbConn,
    result: &Result<i64, crate::provisions::Broken>,
) -> QueryResult<()> {
    let (entries, broken_seq, reason) = match result {
        Ok(n) => (*n, None, None),
        Err(b) => (b.seq - 1, Some(b.seq), Some(b.reason.clone())),
    };
    diesel::insert_into(chain_verifications::table)
        .values((
            chain_verifications::id.eq(ncf_shared::ids::RecordId::new().0),
            chain_verifications::verified_at.eq(ncf_shared::time::now_utc()),
            chain_verifications::entries.eq(entries),
            chain_verifications::broken_seq.eq(broken_seq),
            chain_verifications::reason.eq(reason),
        ))
        .execute(conn)?;
    Ok(())
}

/// Verifies the chain and records the result (`audit verify`, and `serve` once a day).
pub fn verify_chain(conn: &mut DbConn) -> QueryResult<Result<i64, crate::provisions::Broken>> {
    let result = crate::provisions::verify(conn)?;
    record_verification(conn, &result)?;
    match &result {
        Ok(n) => tracing::info!(entries = n, "data-provision chain verified"),
        Err(b) => tracing::error!(seq = b.seq, reason = %b.reason, "data-provision chain broken"),
    }
    Ok(result)
}

/// One node as the operations view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub prefecture: Prefecture,
    /// Its registered keys: (key id, revoked).
    pub keys: Vec<(String, bool)>,
    pub last_contact_at: Option<NaiveDateTime>,
    pub last_push_at: Option<NaiveDateTime>,
    pub last_pull_at: Option<NaiveDateTime>,
    /// Events queued for it that it has not pulled yet, and when the oldest was queued.
    pub waiting: i64,
    pub oldest_waiting_at: Option<NaiveDateTime>,
    /// Its pushed events kept for a newer server version (parked), and refused for good (failed).
    pub held: i64,
    pub rejected: i64,
}

/// One import as the operations view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct ImportRun {
    pub kind: String,
    pub file_name: String,
    pub file_sha256: String,
    pub mode: String,
    pub started_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
    pub rows_total: i64,
    pub rows_inserted: i64,
    pub rows_updated: i64,
    pub rows_unchanged: i64,
    pub rows_rejected: i64,
}

/// The last check of the provision chain.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct ChainCheck {
    pub verified_at: NaiveDateTime,
    pub entries: i64,
    pub broken_seq: Option<i64>,
    pub reason: Option<String>,
}

pub struct Overview {
    pub nodes: Vec<NodeState>,
    pub imports: Vec<ImportRun>,
    pub chain: Option<ChainCheck>,
}

#[derive(Queryable)]
struct ContactRow {
    prefecture: String,
    last_contact_at: NaiveDateTime,
    last_push_at: Option<NaiveDateTime>,
    last_pull_at: Option<NaiveDateTime>,
    pulled_after: i64,
}

/// Every registered node's sync state, the latest imports and the last chain check.
pub fn overview(conn: &mut DbConn) -> QueryResult<Overview> {
    let keys: Vec<(String, String, Option<NaiveDateTime>)> = nodes::table
        .order((nodes::prefecture, nodes::added_at))
        .select((nodes::prefecture, nodes::key_id, nodes::revoked_at))
        .load(conn)?;
    let contacts: Vec<ContactRow> = node_contacts::table
        .select((
            node_contacts::prefecture,
            node_contacts::last_contact_at,
            node_contacts::last_push_at,
            node_contacts::last_pull_at,
            node_contacts::pulled_after,
        ))
        .load(conn)?;
    let outcomes: Vec<(String, String, i64)> = pushed_events::table
        .filter(pushed_events::outcome.eq_any(["held", "rejected"]))
        .group_by((pushed_events::prefecture, pushed_events::outcome))
        .select((pushed_events::prefecture, pushed_events::outcome, diesel::dsl::count_star()))
        .load(conn)?;
    let mut states: Vec<NodeState> = Vec::new();
    for (code, key_id, revoked_at) in keys {
        let Some(prefecture) = Prefecture::from_code(&code) else { continue };
        if let Some(state) = states.iter_mut().find(|s| s.prefecture == prefecture) {
            state.keys.push((key_id, revoked_at.is_some()));
            continue;
        }
        let contact = contacts.iter().find(|c| c.prefecture == code);
        let pulled_after = contact.map_or(0, |c| c.pulled_after);
        let waiting_query = node_events::table
            .filter(node_events::prefecture.eq(&code))
            .filter(node_events::seq.gt(pulled_after));
        let waiting: i64 = waiting_query.count().get_result(conn)?;
        let oldest_waiting_at: Option<NaiveDateTime> =
            waiting_query.select(diesel::dsl::min(node_events::created_at)).first(conn)?;
        let count =
            |outcome: &str| outcomes.iter().find(|o| o.0 == code && o.1 == outcome).map_or(0, |o| o.2);
        states.push(NodeState {
            prefecture,
            keys: vec![(key_id, revoked_at.is_some())],
            last_contact_at: contact.map(|c| c.last_contact_at),
            last_push_at: contact.and_then(|c| c.last_push_at),
            last_pull_at: contact.and_then(|c| c.last_pull_at),
            waiting,
            oldest_waiting_at,
            held: count("held"),
            rejected: count("rejected"),
        });
    }
    let imports = imports::table
        .order(imports::started_at.desc())
        .limit(20)
        .select((
            imports::kind,
            imports::file_name,
            imports::file_sha256,
            imports::mode,
            imports::started_at,
            imports::finished_at,
            imports::rows_total,
            imports::rows_inserted,
            imports::rows_updated,
            imports::rows_unchanged,
            imports::rows_rejected,
        ))
        .load(conn)?;
    let chain = chain_verifications::table
        .order(chain_verifications::verified_at.desc())
        .select((
            chain_verifications::verified_at,
            chain_verifications::entries,
            chain_verifications::broken_seq,
            chain_verifications::reason,
        ))
        .first(conn)
        .optional()?;
    Ok(Overview { nodes: states, imports, chain })
}

/// `serve`'s daily check of the chain (the first a minute after start-up).
pub async fn verify_daily(pool: ncf_shared::db::Pool) {
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + std::time::Duration::from_secs(60),
        std::time::Duration::from_secs(24 * 3600),
    );
    loop {
        ticks.tick().await;
        let pool = pool.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| e.to_string())?;
            verify_chain(&mut conn).map_err(|e| e.to_string())
        })
        .await;
        if let Ok(Err(e)) | Err(e) = done.map_err(|e| e.to_string()) {
            tracing::error!(error = %e, "data-provision chain check did not run");
        }
    }
}
