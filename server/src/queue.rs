//! The per-node event queue (DESIGN flow 3, national → node): numbered without gaps per
//! prefecture; a node pulls after its cursor and applies each event once.

use diesel::prelude::*;
use ncf_shared::contract::{Envelope, Message, NationalToNode};
use ncf_shared::db::DbConn;
use ncf_shared::ids::RecordId;
use ncf_shared::{Prefecture, per_backend};

use crate::schema::{node_events, sequences};

pub const MAX_PULL: u32 = 1000;

/// Queues an event for `node`; call inside the transaction that decides it. Returns its sequence
/// number.
pub fn enqueue(conn: &mut DbConn, node: Prefecture, event: &NationalToNode) -> QueryResult<i64> {
    Ok(enqueue_many(conn, std::slice::from_ref(&(node, event.clone())))?
        .into_iter()
        .next()
        .unwrap_or_default())
}

/// The node's events after `after`, in order, as stored (the payload is not parsed again).
pub fn after(conn: &mut DbConn, node: Prefecture, after: i64, limit: u32) -> QueryResult<Vec<Envelope>> {
    let rows: Vec<(i64, String, String, i32, String)> = node_events::table
        .filter(node_events::prefecture.eq(node.code()).and(node_events::seq.gt(after)))
        .order(node_events::seq)
        .limit(i64::from(limit.min(MAX_PULL)))
        .select((
            node_events::seq,
            node_events::event_id,
            node_events::kind,
            node_events::version,
            node_events::payload,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|(seq, event_id, kind, version, payload)| {
            let version = u16::try_from(version).unwrap_or(u16::MAX);
            Envelope::from_stored(seq, event_id, kind, version, payload)
                .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))
        })
        .collect()
}

/// Queues many events in one go (a refresh may decide thousands): one counter update per node
/// reserves the whole range, and the rows go in multi-row inserts. Call inside the transaction
/// that decides them.
/// Returns the sequence numbers given, in the order of `events`.
pub fn enqueue_many(conn: &mut DbConn, events: &[(Prefecture, NationalToNode)]) -> QueryResult<Vec<i64>> {
    let mut by_node: std::collections::BTreeMap<Prefecture, Vec<(usize, &NationalToNode)>> =
        Default::default();
    for (i, (node, event)) in events.iter().enumerate() {
        by_node.entry(*node).or_default().push((i, event));
    }
    let mut seqs = vec![0; events.len()];
    let now = ncf_shared::time::now_utc();
    for (node, events) in by_node {
        let counter = format!("node_events:{}", node.code());
        per_backend!(&mut *conn, c => diesel::insert_into(sequences::table)
            .values((sequences::name.eq(&counter), sequences::last_value.eq(0i64)))
            .on_conflict(sequences::name)
            .do_nothing()
            .execute(c))?;
        diesel::update(sequences::table.find(&counter))
            .set(sequences::last_value.eq(sequences::last_value + events.len() as i64))
            .execute(conn)?;
        let last: i64 = sequences::table.find(&counter).select(sequences::last_value).first(conn)?;
        let first = last - events.len() as i64 + 1;
        let rows: Vec<_> = events
            .iter()
            .enumerate()
            .map(|(i, (at, event))| {
                seqs[*at] = first + i as i64;
                (
                    node_events::prefecture.eq(node.code()),
                    node_events::seq.eq(first + i as i64),
                    node_events::event_id.eq(RecordId::new().0),
                    node_events::kind.eq(event.kind()),
                    node_events::version.eq(i32::from(event.version())),
                    node_events::payload.eq(event.payload_json()),
                    node_events::created_at.eq(now),
                )
            })
            .collect();
        ncf_shared::insert_many!(&mut *conn, rows, |c, values| diesel::insert_into(node_events::table)
            .values(values)
            .execute(c));
    }
    Ok(seqs)
}
