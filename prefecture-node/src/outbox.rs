//! The outbox: events for the national server, written in the same transaction as the change that
//! caused them, numbered without gaps (DESIGN flow 3). Nothing is written without passing the
//! consent gate (`consent::covers`).

use diesel::prelude::*;
use ncf_shared::contract::{Envelope, Message, NodeToNational};
use ncf_shared::db::DbConn;
use ncf_shared::ids::RecordId;

use crate::consent::{self, CurrentConsents};
use crate::schema::{outbox, sequences};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = outbox, treat_none_as_default_value = false)]
pub struct OutboxEvent {
    pub seq: i64,
    pub event_id: String,
    pub kind: String,
    pub nurse_id: Option<String>,
    pub payload: String,
    pub created_at: chrono::NaiveDateTime,
    pub parked_reason: Option<String>,
    /// The contract version of this kind's payload.
    pub version: i32,
    /// The national server's reject code (`ncf_shared::contract::RejectCode`) when parked.
    pub parked_code: Option<String>,
}

impl OutboxEvent {
    /// The event as it travels (the stored payload is sent as is, not parsed again).
    pub fn envelope(&self) -> Result<Envelope, serde_json::Error> {
        let version = u16::try_from(self.version).unwrap_or(u16::MAX);
        Envelope::from_stored(
            self.seq,
            self.event_id.clone(),
            self.kind.clone(),
            version,
            self.payload.clone(),
        )
    }

    /// The typed event, for pages that show what it carries.
    pub fn message(&self) -> Option<NodeToNational> {
        self.envelope().ok()?.open().ok()
    }
}

/// Writes the event when the consents cover it; returns its sequence number, or `None` when the
/// event must stay local. Call inside the transaction that makes the change.
pub fn enqueue_if_covered(
    conn: &mut DbConn,
    consents: &CurrentConsents,
    event: &NodeToNational,
    nurse_id: Option<&str>,
) -> QueryResult<Option<i64>> {
    let seqs = enqueue_many(conn, &[Pending { event, consents, nurse_id }])?;
    Ok(seqs.into_iter().next().flatten())
}

/// An event to queue, with the consents of the nurse it concerns.
pub struct Pending<'a> {
    pub event: &'a NodeToNational,
    pub consents: &'a CurrentConsents,
    pub nurse_id: Option<&'a str>,
}

/// Writes each event its consents cover, numbered in the order given; returns, per event, its
/// sequence number or `None` when it must stay local. Call inside the transaction that makes
/// the changes.
pub fn enqueue_many(conn: &mut DbConn, pending: &[Pending<'_>]) -> QueryResult<Vec<Option<i64>>> {
    let covered: Vec<bool> = pending.iter().map(|p| consent::covers(p.consents, p.event)).collect();
    let count = covered.iter().filter(|c| **c).count() as i64;
    if count == 0 {
        return Ok(vec![None; pending.len()]);
    }
    let mut next = reserve_seqs(conn, count)?;
    let now = ncf_shared::time::now_utc();
    let mut rows = Vec::with_capacity(count as usize);
    let seqs = pending
        .iter()
        .zip(covered)
        .map(|(p, covered)| {
            covered.then(|| {
                let seq = next;
                next += 1;
                rows.push(OutboxEvent {
                    seq,
                    event_id: RecordId::new().0,
                    kind: p.event.kind().to_string(),
                    nurse_id: p.nurse_id.map(str::to_string),
                    payload: p.event.payload_json(),
                    created_at: now,
                    parked_reason: None,
                    version: i32::from(p.event.version()),
                    parked_code: None,
                });
                seq
            })
        })
        .collect();
    ncf_shared::insert_many!(&mut *conn, rows, |c, values| diesel::insert_into(outbox::table)
        .values(values)
        .execute(c));
    Ok(seqs)
}

/// Reserves the next `count` outbox sequence numbers; returns the first. The UPDATE takes the row
/// lock, so concurrent writers queue up behind each other, and a rolled-back transaction gives its
/// numbers back: no gaps, no duplicates.
fn reserve_seqs(conn: &mut DbConn, count: i64) -> QueryResult<i64> {
    // One statement: the number comes back with the row lock (RETURNING).
    let last: i64 = ncf_shared::per_backend!(conn, c => diesel::update(sequences::table.find("outbox"))
        .set(sequences::last_value.eq(sequences::last_value + count))
        .returning(sequences::last_value)
        .get_result(c))?;
    Ok(last - count + 1)
}

/// Events after `after_seq`, in order, at most `limit`.
pub fn after(conn: &mut DbConn, after_seq: i64, limit: i64) -> QueryResult<Vec<OutboxEvent>> {
    outbox::table
        .filter(outbox::seq.gt(after_seq))
        .order(outbox::seq)
        .limit(limit)
        .select(OutboxEvent::as_select())
        .load(conn)
}

/// A nurse's events, in order.
pub fn for_nurse(conn: &mut DbConn, nurse_id: &str) -> QueryResult<Vec<OutboxEvent>> {
    outbox::table
        .filter(outbox::nurse_id.eq(nurse_id))
        .order(outbox::seq)
        .select(OutboxEvent::as_select())
        .load(conn)
}

/// For staff: events not yet held by the national server, and events it refused for good.
pub fn backlog(conn: &mut DbConn) -> QueryResult<(i64, i64)> {
    let cursor = crate::sync::cursor(conn)?;
    let waiting = outbox::table
        .filter(outbox::seq.gt(cursor))
        .filter(outbox::parked_reason.is_null())
        .count()
        .get_result(conn)?;
    let parked = outbox::table.filter(outbox::parked_reason.is_not_null()).count().get_result(conn)?;
    Ok((waiting, parked))
}
