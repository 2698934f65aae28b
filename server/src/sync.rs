//! Applying pushes from nodes (DESIGN flow 3): each `(node, seq)` is applied once, in order; the
//! answer is the last sequence held without a gap, which the node takes as its cursor.
//!
//! Every event is judged on its own, so one bad event never holds up the ones after it:
//! - a kind or version this server does not read yet (from a newer node) is *held* with its
//!   payload and applied when the server starts with code that reads it ([`apply_held`]);
//! - an event that can never be applied — a malformed payload, a person this node never linked
//!   (rule 6: a node touches only its own people), content its consents do not cover — is
//!   consumed as *rejected* with the contract's [`RejectCode`]; the node parks it.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use ncf_shared::contract::{
    ConsentChanged, ContactChanged, Envelope, Message, NationalToNode, NodeToNational, NoticeFiled,
    ProvisionPurpose, RejectCode, WithdrawalApplied,
};
use ncf_shared::db::DbConn;
use ncf_shared::federation::{PushRequest, PushResponse, RejectedEvent};
use ncf_shared::notice::NoticeBody;
use ncf_shared::{AgencyCode, ConsentScope, Prefecture, per_backend};

use crate::error::AppError;
use crate::provisions::{ChainWriter, Provision};
use crate::schema::{
    identity_links, node_cursors, nurse_consents, nurse_contacts, nurse_notices, pushed_events,
};

pub const MAX_EVENTS_PER_PUSH: usize = 1000;

/// Why one event cannot be applied, ever.
struct Permanent(RejectCode, String);

impl Permanent {
    fn new(code: RejectCode, reason: impl Into<String>) -> Self {
        Self(code, reason.into())
    }
}

/// What became of one pushed event.
enum Outcome {
    Applied,
    Held(String),
    Rejected(Permanent),
}

pub fn apply_push(conn: &mut DbConn, node: Prefecture, req: &PushRequest) -> Result<PushResponse, AppError> {
    if req.events.len() > MAX_EVENTS_PER_PUSH {
        return Err(AppError::bad_request(format!("at most {MAX_EVENTS_PER_PUSH} events per push")));
    }
    ncf_shared::db::write_transaction(conn, |conn| {
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
        let mut events: Vec<&Envelope> = req.events.iter().filter(|e| e.seq > last).collect();
        events.sort_by_key(|e| e.seq);
        let opened: Vec<(&Envelope, Result<NodeToNational, ncf_shared::contract::Unreadable>)> =
            events.into_iter().map(|e| (e, e.open::<NodeToNational>())).collect();
        let named = opened.iter().filter_map(|(_, m)| m.as_ref().ok());
        let linked = linked_codes(conn, node, named.clone())?;
        let mut applier = Applier::begin(conn, node, named)?;
        let mut rejected = Vec::new();
        let mut records = Vec::with_capacity(opened.len());
        let now = ncf_shared::time::now_utc();
        for (envelope, message) in opened {
            if envelope.seq != last + 1 {
                break; // a gap (or a repeated seq): wait for the missing event
            }
            let outcome = match message {
                Err(unreadable) if unreadable.awaits_upgrade() => Outcome::Held(unreadable.to_string()),
                Err(unreadable) => {
                    Outcome::Rejected(Permanent::new(RejectCode::Malformed, unreadable.to_string()))
                }
                Ok(message) if !linked.contains(message.agency_code()) => {
                    tracing::warn!(prefecture = %node, seq = envelope.seq, "push names a person this node never linked");
                    Outcome::Rejected(Permanent::new(
                        RejectCode::UnknownAgencyCode,
                        "the event names an agency code this national server has no link for from this node",
                    ))
                }
                Ok(message) => match applier.apply(conn, &message)? {
                    Ok(()) => Outcome::Applied,
                    Err(permanent) => Outcome::Rejected(permanent),
                },
            };
            let (outcome, code, reason, payload) = match outcome {
                Outcome::Applied => ("applied", None, None, None),
                Outcome::Held(reason) => {
                    tracing::warn!(prefecture = %node, seq = envelope.seq, %reason, "event held until this server is upgraded");
                    ("held", None, Some(reason), Some(envelope.payload.get()))
                }
                Outcome::Rejected(Permanent(code, reason)) => {
                    tracing::warn!(prefecture = %node, seq = envelope.seq, ?code, %reason, "event rejected");
                    rejected.push(RejectedEvent { seq: envelope.seq, code, reason: reason.clone() });
                    ("rejected", Some(code), Some(reason), None)
                }
            };
            records.push((
                pushed_events::prefecture.eq(node.code()),
                pushed_events::seq.eq(envelope.seq),
                pushed_events::event_id.eq(&envelope.event_id),
                pushed_events::kind.eq(&envelope.kind),
                pushed_events::version.eq(i32::from(envelope.version)),
                pushed_events::outcome.eq(outcome),
                pushed_events::reject_code.eq(code.map(RejectCode::as_str)),
                pushed_events::reason.eq(reason),
                pushed_events::payload.eq(payload),
                pushed_events::received_at.eq(now),
            ));
            last = envelope.seq;
        }
        applier.finish(conn)?;
        // The receipts in bulk: on PostgreSQL one statement per 1,000 events, not one per event.
        ncf_shared::insert_many!(&mut *conn, records, |c, values| diesel::insert_into(pushed_events::table)
            .values(values)
            .execute(c));
        diesel::update(node_cursors::table.find(node.code()))
            .set(node_cursors::last_seq.eq(last))
            .execute(conn)?;
        Ok(PushResponse { last_seq: last, rejected })
    })
}

/// The agency codes among these events that this node linked (one query per push).
fn linked_codes<'a>(
    conn: &mut DbConn,
    node: Prefecture,
    messages: impl Iterator<Item = &'a NodeToNational>,
) -> QueryResult<HashSet<AgencyCode>> {
    let codes: HashSet<&str> = messages.map(|m| m.agency_code().as_str()).collect();
    if codes.is_empty() {
        return Ok(HashSet::new());
    }
    Ok(identity_links::table
        .filter(identity_links::prefecture.eq(node.code()))
        .filter(identity_links::agency_code.eq_any(codes.into_iter()))
        .select(identity_links::agency_code)
        .load::<String>(conn)?
        .into_iter()
        .filter_map(|c| AgencyCode::parse(&c))
        .collect())
}

/// Applies the events held for an upgrade that this code now reads, in each node's order; called
/// at start. Returns how many were applied or rejected now.
pub fn apply_held(conn: &mut DbConn) -> Result<usize, AppError> {
    ncf_shared::db::write_transaction(conn, |conn| {
        let held: Vec<(String, i64, String, String, i32, Option<String>)> = pushed_events::table
            .filter(pushed_events::outcome.eq("held"))
            .order((pushed_events::prefecture, pushed_events::seq))
            .select((
                pushed_events::prefecture,
                pushed_events::seq,
                pushed_events::event_id,
                pushed_events::kind,
                pushed_events::version,
                pushed_events::payload,
            ))
            .load(conn)?;
        if held.is_empty() {
            return Ok(0);
        }
        let mut done = 0;
        for (prefecture, seq, event_id, kind, version, payload) in held {
            let Some(node) = Prefecture::from_code(&prefecture) else { continue };
            let version = u16::try_from(version).unwrap_or(u16::MAX);
            let payload = payload.unwrap_or_else(|| "null".into());
            let message = match NodeToNational::decode(&kind, version, &payload) {
                Err(unreadable) if unreadable.awaits_upgrade() => continue, // still not readable
                Err(unreadable) => Err(Permanent::new(RejectCode::Malformed, unreadable.to_string())),
                Ok(message) => {
                    let linked = linked_codes(conn, node, std::iter::once(&message))?;
                    if linked.contains(message.agency_code()) {
                        // One at a time: a held event is rare, and order matters more than speed.
                        let mut applier = Applier::begin(conn, node, std::iter::once(&message))?;
                        let outcome = applier.apply(conn, &message)?;
                        applier.finish(conn)?;
                        outcome
                    } else {
                        Err(Permanent::new(RejectCode::UnknownAgencyCode, "no link for this agency code"))
                    }
                }
            };
            let (outcome, code, reason) = match message {
                Ok(()) => ("applied", None, None),
                Err(Permanent(code, reason)) => ("rejected", Some(code.as_str()), Some(reason)),
            };
            tracing::info!(%prefecture, seq, %event_id, outcome, "held event processed after upgrade");
            diesel::update(pushed_events::table.find((&prefecture, seq)))
                .set((
                    pushed_events::outcome.eq(outcome),
                    pushed_events::reject_code.eq(code),
                    pushed_events::reason.eq(reason),
                    pushed_events::payload.eq(None::<String>),
                ))
                .execute(conn)?;
            done += 1;
        }
        Ok(done)
    })
}

/// Applies the events of one transaction. What it reads is read once — the consents of every
/// person the events name — and kept true in memory as events change it; what it writes in bulk
/// (notices, provision entries) is written in one statement each at [`Applier::finish`], notices
/// also before any consent change (a withdrawal deletes the notices held for her).
struct Applier {
    node: Prefecture,
    chain: ChainWriter,
    /// (agency code, scope) → (granted, version), as the national server holds them.
    consents: HashMap<(String, ConsentScope), (bool, i32)>,
    notices: Vec<NoticeRow>,
}

#[derive(Insertable)]
#[diesel(table_name = nurse_notices)]
struct NoticeRow {
    notice_id: String,
    prefecture: String,
    agency_code: String,
    kind: String,
    body: String,
    filed_at: chrono::NaiveDateTime,
}

impl Applier {
    fn begin<'a>(
        conn: &mut DbConn,
        node: Prefecture,
        messages: impl Iterator<Item = &'a NodeToNational>,
    ) -> QueryResult<Self> {
        let codes: HashSet<&str> = messages.map(|m| m.agency_code().as_str()).collect();
        let mut consents = HashMap::new();
        if !codes.is_empty() {
            let rows: Vec<(String, String, bool, i32)> = nurse_consents::table
                .filter(nurse_consents::prefecture.eq(node.code()))
                .filter(nurse_consents::agency_code.eq_any(codes.into_iter()))
                .select((
                    nurse_consents::agency_code,
                    nurse_consents::scope,
                    nurse_consents::granted,
                    nurse_consents::version,
                ))
                .load(conn)?;
            for (code, scope, granted, version) in rows {
                if let Some(scope) = ConsentScope::parse(&scope) {
                    consents.insert((code, scope), (granted, version));
                }
            }
        }
        Ok(Self { node, chain: ChainWriter::begin(conn)?, consents, notices: Vec::new() })
    }

    fn granted(&self, code: &AgencyCode, scope: ConsentScope) -> bool {
        self.consents.get(&(code.as_str().to_string(), scope)).is_some_and(|(granted, _)| *granted)
    }

    fn apply(&mut self, conn: &mut DbConn, message: &NodeToNational) -> QueryResult<Result<(), Permanent>> {
        // Defence in depth: the node's gate already checked, but nothing is held without the
        // consent the contract names for this kind.
        if let Some(scope) = message.required_consent()
            && !self.granted(message.agency_code(), scope)
        {
            return Ok(Err(Permanent::new(
                RejectCode::NotCovered,
                format!("{} is not covered by a {} consent", message.kind(), scope.as_str()),
            )));
        }
        match message {
            NodeToNational::ConsentChanged(c) => {
                self.flush_notices(conn)?;
                self.apply_consent(conn, c)
            }
            NodeToNational::NoticeFiled(n) => Ok(self.apply_notice(n)),
            NodeToNational::ContactChanged(c) => self.apply_contact(conn, c),
        }
    }

    fn finish(mut self, conn: &mut DbConn) -> QueryResult<()> {
        self.flush_notices(conn)?;
        self.chain.finish(conn)
    }

    fn flush_notices(&mut self, conn: &mut DbConn) -> QueryResult<()> {
        ncf_shared::insert_many!(&mut *conn, self.notices, |c, values| diesel::insert_into(
            nurse_notices::table
        )
        .values(values)
        .on_conflict(nurse_notices::notice_id)
        .do_nothing()
        .execute(c));
        self.notices.clear();
        Ok(())
    }

    fn apply_consent(&mut self, conn: &mut DbConn, c: &ConsentChanged) -> QueryResult<Result<(), Permanent>> {
        let node = self.node;
        let scope = c.scope;
        let key = (c.agency_code.as_str().to_string(), scope);
        if self.consents.get(&key).is_some_and(|(_, version)| *version >= c.version) {
            return Ok(Ok(())); // an older decision arriving late changes nothing
        }
        let recorded_at = c.recorded_at.naive_utc();
        per_backend!(&mut *conn, db => diesel::insert_into(nurse_consents::table)
            .values((
                nurse_consents::prefecture.eq(node.code()),
                nurse_consents::agency_code.eq(c.agency_code.as_str()),
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
        self.consents.insert(key, (c.granted, c.version));
        if !c.granted {
            // Withdrawal: what this scope let us hold goes (rule 3), and the node is told so, for
            // the nurse's page.
            let notices_deleted = if scope == ConsentScope::AddressLinkage {
                diesel::delete(
                    nurse_notices::table
                        .filter(nurse_notices::prefecture.eq(node.code()))
                        .filter(nurse_notices::agency_code.eq(c.agency_code.as_str())),
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
            let confirmation = NationalToNode::WithdrawalApplied(WithdrawalApplied {
                agency_code: c.agency_code.clone(),
                scope,
                version: c.version,
                notices_deleted: notices_deleted as i64,
                deleted_at: chrono::Utc::now(),
            });
            crate::queue::enqueue(conn, node, &confirmation)?;
            self.chain.append(&Provision::to_node(
                node,
                c.agency_code.as_str(),
                &["withdrawal_confirmation"],
                ProvisionPurpose::ConsentWithdrawal,
            ));
        }
        let field = format!("consent:{}", scope.as_str());
        self.chain.append(&Provision::from_node(
            node,
            c.agency_code.as_str(),
            &[&field],
            ProvisionPurpose::ConsentRecord,
        ));
        Ok(Ok(()))
    }

    fn apply_contact(&mut self, conn: &mut DbConn, c: &ContactChanged) -> QueryResult<Result<(), Permanent>> {
        let node = self.node;
        let provided = c.provided_fields();
        if provided.is_empty() {
            return Ok(Err(Permanent::new(RejectCode::Invalid, "contact_changed names no field")));
        }
        let code = c.agency_code.as_str();
        let existing = nurse_contacts::table
            .find((node.code(), code))
            .select((
                nurse_contacts::family_name,
                nurse_contacts::given_name,
                nurse_contacts::email,
                nurse_contacts::phone,
            ))
            .first::<(Option<String>, Option<String>, Option<String>, Option<String>)>(conn)
            .optional()?
            .unwrap_or_default();
        // A change notice names only what changed: keep the rest.
        let merged = (
            c.family_name.clone().or(existing.0),
            c.given_name.clone().or(existing.1),
            c.email.clone().or(existing.2),
            c.phone.clone().or(existing.3),
        );
        diesel::delete(nurse_contacts::table.find((node.code(), code))).execute(conn)?;
        diesel::insert_into(nurse_contacts::table)
            .values((
                nurse_contacts::prefecture.eq(node.code()),
                nurse_contacts::agency_code.eq(code),
                nurse_contacts::family_name.eq(merged.0),
                nurse_contacts::given_name.eq(merged.1),
                nurse_contacts::email.eq(merged.2),
                nurse_contacts::phone.eq(merged.3),
                nurse_contacts::changed_at.eq(c.changed_at.naive_utc()),
            ))
            .execute(conn)?;
        let fields: Vec<String> = provided.iter().map(|f| format!("contact:{f}")).collect();
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        self.chain.append(&Provision::from_node(
            node,
            code,
            &fields,
            ProvisionPurpose::ResidencePrefectureSupport,
        ));
        Ok(Ok(()))
    }

    fn apply_notice(&mut self, n: &NoticeFiled) -> Result<(), Permanent> {
        if matches!(n.notice, NoticeBody::Change { .. }) {
            return Err(Permanent::new(
                RejectCode::Invalid,
                "a change notice travels as contact_changed, never as notice_filed",
            ));
        }
        // The same checks the node made when she filed it; a day's grace for the node's time zone.
        let filed_on = n.filed_at.date_naive() + chrono::Days::new(1);
        if let Err(errors) = n.notice.validate(filed_on) {
            let reasons: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
            return Err(Permanent::new(RejectCode::Invalid, reasons.join("; ")));
        }
        let kind = n.notice.kind();
        self.notices.push(NoticeRow {
            notice_id: n.notice_id.clone(),
            prefecture: self.node.code(),
            agency_code: n.agency_code.as_str().to_string(),
            kind: kind.as_str().to_string(),
            body: serde_json::to_string(&n.notice).expect("notice bodies serialise"),
            filed_at: n.filed_at.naive_utc(),
        });
        let field = format!("notice:{}", kind.as_str());
        self.chain.append(&Provision::from_node(
            self.node,
            n.agency_code.as_str(),
            &[&field],
            ProvisionPurpose::LatentNurseIdentification,
        ));
        Ok(())
    }
}
