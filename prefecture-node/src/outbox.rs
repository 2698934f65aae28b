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
#[diesel(table_name = outbox)]
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
    if !consent::covers(consents, event) {
        return Ok(None);
    }
    let seq = next_seq(conn)?;
    let event = OutboxEvent {
        seq,
        event_id: RecordId::new().0,
        kind: event.kind().to_string(),
        nurse_id: nurse_id.map(str::to_string),
        payload: event.payload_json(),
        created_at: ncf_shared::time::now_utc(),
        parked_reason: None,
        version: i32::from(event.version()),
        parked_code: None,
    };
    diesel::insert_into(outbox::table).values(&event).execute(conn)?;
    Ok(Some(seq))
}

/// Next outbox sequence number. The UPDATE takes the row lock, so concurrent writers queue up
/// behind each other, and a rolled-back transaction gives its number back: no gaps, no duplicates.
fn next_seq(conn: &mut DbConn) -> QueryResult<i64> {
    // One statement: the number comes back with the row lock (RETURNING).
    ncf_shared::per_backend!(conn, c => diesel::update(sequences::table.find("outbox"))
        .set(sequences::last_value.eq(sequences::last_value + 1))
        .returning(sequences::last_value)
        .get_result(c))
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
