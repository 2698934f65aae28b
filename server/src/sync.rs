//! Applying pushes from nodes (DESIGN flow 3): each `(node, seq)` is applied once, in order; the
//! answer is the last sequence held without a gap, which the node takes as its cursor. An event
//! that can never be applied is consumed as rejected (the node parks it); a push that names a
//! person this node does not know is refused whole (rule 6: a node touches only its own people).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use ncf_shared::db::DbConn;
use ncf_shared::federation::{PushRequest, PushResponse, PushedEvent, RejectedEvent};
use ncf_shared::{ConsentScope, Prefecture, per_backend};
use serde::Deserialize;

use crate::error::{AppError, ErrorKind};
use crate::provisions::{ChainWriter, Provision};
use crate::schema::{
    identity_links, node_cursors, nurse_consents, nurse_contacts, nurse_notices, pushed_events,
};

pub const MAX_EVENTS_PER_PUSH: usize = 1000;

/// Why one event cannot be applied, ever.
struct Permanent(String);

#[derive(Deserialize)]
struct ConsentChanged {
    agency_code: String,
    scope: String,
    granted: bool,
    version: i32,
    text_sha256: String,
    recorded_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct ContactChanged {
    agency_code: String,
    changed_at: DateTime<Utc>,
    family_name: Option<String>,
    given_name: Option<String>,
    address: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

#[derive(Deserialize)]
struct NoticeFiled {
    agency_code: String,
    notice_id: String,
    filed_at: DateTime<Utc>,
    notice: serde_json::Value,
}

pub fn apply_push(conn: &mut DbConn, node: Prefecture, req: &PushRequest) -> Result<PushResponse, AppError> {
    if req.events.len() > MAX_EVENTS_PER_PUSH {
        return Err(AppError::bad_request(format!("at most {MAX_EVENTS_PER_PUSH} events per push")));
    }
    ncf_shared::db::write_transaction(conn, |conn| {
        check_own_people(conn, node, &req.events)?;
        // Lock this node's cursor row: two pushes from the same node apply one after the other.
        per_backend!(&mut *conn, c => diesel::insert_into(node_cursors::table)
            .values((node_cursors::prefecture.eq(node.code()), node_cursors::last_seq.eq(0i64)))
            .on_conflict(node_cursors::prefecture)
            .do_nothing()
            .execute(c))?;
        diesel::update(node_cursors::table.find(node.code()))
            .set(node_cursors::last_seq.eq(node_cursors::last_seq))
            .execute(conn)?;
        let mut last: i64 =
            node_cursors::table.find(node.code()).select(node_cursors::last_seq).first(conn)?;
        let mut events: Vec<&PushedEvent> = req.events.iter().collect();
        events.sort_by_key(|e| e.seq);
        let mut rejected = Vec::new();
        let now = ncf_shared::time::now_utc();
        let mut chain = ChainWriter::begin(conn)?;
        for event in events {
            if event.seq <= last {
                continue; // already applied (a retry after a lost answer)
            }
            if event.seq != last + 1 {
                break; // a gap: wait for the missing event
            }
            let (outcome, reason) = match apply_event(conn, &mut chain, node, event)? {
                Ok(()) => ("applied", None),
                Err(Permanent(reason)) => {
                    tracing::warn!(prefecture = %node, seq = event.seq, %reason, "event rejected");
                    rejected.push(RejectedEvent { seq: event.seq, reason: reason.clone() });
                    ("rejected", Some(reason))
                }
            };
            diesel::insert_into(pushed_events::table)
                .values((
                    pushed_events::prefecture.eq(node.code()),
                    pushed_events::seq.eq(event.seq),
                    pushed_events::event_id.eq(&event.event_id),
                    pushed_events::kind.eq(&event.kind),
                    pushed_events::outcome.eq(outcome),
                    pushed_events::reason.eq(reason),
                    pushed_events::received_at.eq(now),
                ))
                .execute(conn)?;
            last = event.seq;
        }
        diesel::update(node_cursors::table.find(node.code()))
            .set(node_cursors::last_seq.eq(last))
            .execute(conn)?;
        Ok(PushResponse { last_seq: last, rejected })
    })
}

/// Every agency code in the push must have been linked by this node.
fn check_own_people(conn: &mut DbConn, node: Prefecture, events: &[PushedEvent]) -> Result<(), AppError> {
    let codes: BTreeSet<&str> =
        events.iter().filter_map(|e| e.payload.get("agency_code")?.as_str()).collect();
    if codes.is_empty() {
        return Ok(());
    }
    let known: BTreeSet<String> = identity_links::table
        .filter(identity_links::prefecture.eq(node.code()))
        .filter(identity_links::agency_code.eq_any(codes.iter().copied()))
        .select(identity_links::agency_code)
        .load::<String>(conn)?
        .into_iter()
        .collect();
    if let Some(stranger) = codes.iter().find(|c| !known.contains(**c)) {
        tracing::warn!(prefecture = %node, agency_code = %stranger, "push names a person this node never linked");
        return Err(AppError::new(
            ErrorKind::Forbidden,
            "the push names an agency code that was not linked by this node; nothing was applied",
        ));
    }
    Ok(())
}

fn apply_event(
    conn: &mut DbConn,
    chain: &mut ChainWriter,
    node: Prefecture,
    event: &PushedEvent,
) -> QueryResult<Result<(), Permanent>> {
    match event.kind.as_str() {
        "consent_changed" => match serde_json::from_value::<ConsentChanged>(event.payload.clone()) {
            Ok(c) => apply_consent(conn, chain, node, &c),
            Err(e) => Ok(Err(Permanent(format!("malformed consent_changed payload: {e}")))),
        },
        "notice_filed" => match serde_json::from_value::<NoticeFiled>(event.payload.clone()) {
            Ok(n) => apply_notice(conn, chain, node, &n),
            Err(e) => Ok(Err(Permanent(format!("malformed notice_filed payload: {e}")))),
        },
        "contact_changed" => match serde_json::from_value::<ContactChanged>(event.payload.clone()) {
            Ok(c) => apply_contact(conn, chain, node, &c),
            Err(e) => Ok(Err(Permanent(format!("malformed contact_changed payload: {e}")))),
        },
        other => Ok(Err(Permanent(format!("event kind {other:?} is not accepted by this national server")))),
    }
}

fn apply_consent(
    conn: &mut DbConn,
    chain: &mut ChainWriter,
    node: Prefecture,
    c: &ConsentChanged,
) -> QueryResult<Result<(), Permanent>> {
    let Some(scope) = ConsentScope::parse(&c.scope) else {
        return Ok(Err(Permanent(format!("unknown consent scope {:?}", c.scope))));
    };
    let key = (node.code(), c.agency_code.as_str(), scope.as_str());
    let stored: Option<i32> =
        nurse_consents::table.find(key).select(nurse_consents::version).first(conn).optional()?;
    if stored.is_some_and(|v| v >= c.version) {
        return Ok(Ok(())); // an older decision arriving late changes nothing
    }
    let recorded_at = c.recorded_at.naive_utc();
    per_backend!(&mut *conn, db => diesel::insert_into(nurse_consents::table)
        .values((
            nurse_consents::prefecture.eq(node.code()),
            nurse_consents::agency_code.eq(&c.agency_code),
            nurse_consents::scope.eq(scope.as_str()),
            nurse_consents::granted.eq(c.granted),
            nurse_consents::version.eq(c.version),
            nurse_consents::text_sha256.eq(&c.text_sha256),
            nurse_consents::recorded_at.eq(recorded_at),
        ))
        .on_conflict((nurse_consents::prefecture, nurse_consents::agency_code, nurse_consents::scope))
        .do_update()
        .set((
            nurse_consents::granted.eq(c.granted),
            nurse_consents::version.eq(c.version),
            nurse_consents::text_sha256.eq(&c.text_sha256),
            nurse_consents::recorded_at.eq(recorded_at),
        ))
        .execute(db))?;
    if !c.granted {
        // Withdrawal: what this scope let us hold goes (rule 3), and the node is told so, for the
        // nurse's page.
        let notices_deleted = if scope == ConsentScope::AddressLinkage {
            diesel::delete(
                nurse_notices::table
                    .filter(nurse_notices::prefecture.eq(node.code()))
                    .filter(nurse_notices::agency_code.eq(&c.agency_code)),
            )
            .execute(conn)?
        } else {
            0
        };
        if scope == ConsentScope::ShareWithResidencePrefecture {
            diesel::delete(nurse_contacts::table.find((node.code(), c.agency_code.as_str())))
                .execute(conn)?;
        }
        tracing::info!(prefecture = %node, scope = scope.as_str(), notices_deleted, "consent withdrawn: data deleted");
        let confirmation = serde_json::json!({
            "agency_code": c.agency_code,
            "scope": scope.as_str(),
            "version": c.version,
            "notices_deleted": notices_deleted,
            "deleted_at": ncf_shared::time::to_utc(ncf_shared::time::now_utc()),
        });
        crate::queue::enqueue(conn, node, "withdrawal_applied", &confirmation)?;
        chain.append(
            conn,
            &Provision::to_node(node, &c.agency_code, &["withdrawal_confirmation"], "consent_withdrawal"),
        )?;
    }
    let field = format!("consent:{}", scope.as_str());
    chain.append(conn, &Provision::from_node(node, &c.agency_code, &[&field], "consent_record"))?;
    Ok(Ok(()))
}

/// Granted scope `scope` for this person at this node, as last told.
fn granted(conn: &mut DbConn, node: Prefecture, agency_code: &str, scope: ConsentScope) -> QueryResult<bool> {
    let granted: Option<bool> = nurse_consents::table
        .find((node.code(), agency_code, scope.as_str()))
        .select(nurse_consents::granted)
        .first(conn)
        .optional()?;
    Ok(granted == Some(true))
}

fn apply_contact(
    conn: &mut DbConn,
    chain: &mut ChainWriter,
    node: Prefecture,
    c: &ContactChanged,
) -> QueryResult<Result<(), Permanent>> {
    if !granted(conn, node, &c.agency_code, ConsentScope::ShareWithResidencePrefecture)? {
        return Ok(Err(Permanent(
            "contact details not covered by a share_with_residence_prefecture consent".into(),
        )));
    }
    let provided: Vec<&str> = [
        ("family_name", &c.family_name),
        ("given_name", &c.given_name),
        ("address", &c.address),
        ("email", &c.email),
        ("phone", &c.phone),
    ]
    .iter()
    .filter(|(_, v)| v.is_some())
    .map(|(name, _)| *name)
    .collect();
    let existing = nurse_contacts::table
        .find((node.code(), c.agency_code.as_str()))
        .select((
            nurse_contacts::family_name,
            nurse_contacts::given_name,
            nurse_contacts::address,
            nurse_contacts::email,
            nurse_contacts::phone,
        ))
        .first::<(Option<String>, Option<String>, Option<String>, Option<String>, Option<String>)>(conn)
        .optional()?
        .unwrap_or_default();
    // A change notice names only what changed: keep the rest.
    let merged = (
        c.family_name.clone().or(existing.0),
        c.given_name.clone().or(existing.1),
        c.address.clone().or(existing.2),
        c.email.clone().or(existing.3),
        c.phone.clone().or(existing.4),
    );
    diesel::delete(nurse_contacts::table.find((node.code(), c.agency_code.as_str()))).execute(conn)?;
    diesel::insert_into(nurse_contacts::table)
        .values((
            nurse_contacts::prefecture.eq(node.code()),
            nurse_contacts::agency_code.eq(&c.agency_code),
            nurse_contacts::family_name.eq(merged.0),
            nurse_contacts::given_name.eq(merged.1),
            nurse_contacts::address.eq(merged.2),
            nurse_contacts::email.eq(merged.3),
            nurse_contacts::phone.eq(merged.4),
            nurse_contacts::changed_at.eq(c.changed_at.naive_utc()),
        ))
        .execute(conn)?;
    let fields: Vec<String> = provided.iter().map(|f| format!("contact:{f}")).collect();
    let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    chain
        .append(conn, &Provision::from_node(node, &c.agency_code, &fields, "residence_prefecture_support"))?;
    Ok(Ok(()))
}

fn apply_notice(
    conn: &mut DbConn,
    chain: &mut ChainWriter,
    node: Prefecture,
    n: &NoticeFiled,
) -> QueryResult<Result<(), Permanent>> {
    // Defence in depth: the node's gate already checked, but nothing is held without the consent.
    if !granted(conn, node, &n.agency_code, ConsentScope::AddressLinkage)? {
        return Ok(Err(Permanent("notice not covered by an address_linkage consent".into())));
    }
    let Some(kind) = n.notice.get("kind").and_then(|k| k.as_str()).and_then(ncf_shared::NoticeKind::parse)
    else {
        return Ok(Err(Permanent("notice without a known kind".into())));
    };
    per_backend!(&mut *conn, db => diesel::insert_into(nurse_notices::table)
        .values((
            nurse_notices::notice_id.eq(&n.notice_id),
            nurse_notices::prefecture.eq(node.code()),
            nurse_notices::agency_code.eq(&n.agency_code),
            nurse_notices::kind.eq(kind.as_str()),
            nurse_notices::body.eq(n.notice.to_string()),
            nurse_notices::filed_at.eq(n.filed_at.naive_utc()),
        ))
        .on_conflict(nurse_notices::notice_id)
        .do_nothing()
        .execute(db))?;
    let field = format!("notice:{}", kind.as_str());
    chain.append(
        conn,
        &Provision::from_node(node, &n.agency_code, &[&field], "latent_nurse_identification"),
    )?;
    Ok(Ok(()))
}
