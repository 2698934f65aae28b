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
    ConsentChanged, ContactChanged, Envelope, IdentityProofed, Message, NationalToNode, NodeToNational,
    NoticeFiled, PreferenceChanged, ProvisionPurpose, RejectCode, WithdrawalApplied,
};
use ncf_shared::db::DbConn;
use ncf_shared::federation::{PushRequest, PushResponse, RejectedEvent};
use ncf_shared::notice::NoticeBody;
use ncf_shared::{AgencyCode, AgencyCodeKey, ConsentScope, Prefecture, per_backend};

use crate::error::AppError;
use crate::provisions::{ChainWriter, Provision};
use crate::schema::{
    identity_links, match_preferences, node_cursors, nurse_consents, nurse_notices, pushed_events,
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

pub fn apply_push(
    conn: &mut DbConn,
    agency_key: &AgencyCodeKey,
    node: Prefecture,
    req: &PushRequest,
) -> Result<PushResponse, AppError> {
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
        let mut applier = Applier::begin(conn, agency_key, node, named)?;
        let mut held_room = held_room(conn, node)?;
        let mut rejected = Vec::new();
        let mut receipts: Vec<Receipt> = Vec::with_capacity(opened.len());
        for (envelope, message) in opened {
            if envelope.seq != last + 1 {
                break; // a gap (or a repeated seq): wait for the missing event
            }
            let outcome = match message {
                Err(unreadable) if unreadable.awaits_upgrade() => {
                    if envelope.payload.get().len() > MAX_HELD_PAYLOAD || held_room == 0 {
                        Outcome::Rejected(Permanent::new(
                            RejectCode::Malformed,
                            format!(
                                "{unreadable}, and it cannot be kept for later (too large, or too many held)"
                            ),
                        ))
                    } else {
                        held_room -= 1;
                        Outcome::Held(unreadable.to_string())
                    }
                }
                Err(unreadable) => {
                    Outcome::Rejected(Permanent::new(RejectCode::Malformed, unreadable.to_string()))
                }
                Ok(message) if message.names_a_link() && !linked.contains_key(message.agency_code()) => {
                    tracing::warn!(prefecture = %node, seq = envelope.seq, "push names a person this node never linked");
                    Outcome::Rejected(Permanent::new(
                        RejectCode::UnknownAgencyCode,
                        "the event names an agency code this national server has no link for from this node",
                    ))
                }
                Ok(message) => {
                    let outcome = match applier.apply(conn, &message)? {
                        Ok(()) => Outcome::Applied,
                        Err(permanent) => Outcome::Rejected(permanent),
                    };
                    // Her withdrawal also covers what this server kept unread for her: those
                    // events are dropped, here and in earlier pushes, never applied later.
                    if let NodeToNational::ConsentChanged(c) = &message
                        && !c.granted
                        && matches!(outcome, Outcome::Applied)
                    {
                        purge_held(conn, node, &c.agency_code, &mut receipts)?;
                    }
                    outcome
                }
            };
            let receipt = Receipt::new(node, envelope, outcome, &mut rejected);
            receipts.push(receipt);
            last = envelope.seq;
        }
        applier.finish(conn)?;
        let now = ncf_shared::time::now_utc();
        let rows: Vec<_> = receipts
            .iter()
            .map(|r| {
                (
                    pushed_events::prefecture.eq(node.code()),
                    pushed_events::seq.eq(r.seq),
                    pushed_events::event_id.eq(&r.event_id),
                    pushed_events::kind.eq(&r.kind),
                    pushed_events::version.eq(r.version),
                    pushed_events::outcome.eq(r.outcome),
                    pushed_events::reject_code.eq(r.code.map(RejectCode::as_str)),
                    pushed_events::reason.eq(r.reason.as_deref()),
                    pushed_events::payload.eq(r.payload.as_deref()),
                    pushed_events::agency_code.eq(r.agency_code.as_deref()),
                    pushed_events::received_at.eq(now),
                )
            })
            .collect();
        // The receipts in bulk: on PostgreSQL one statement per 1,000 events, not one per event.
        ncf_shared::insert_many!(&mut *conn, rows, |c, values| diesel::insert_into(pushed_events::table)
            .values(values)
            .execute(c));
        diesel::update(node_cursors::table.find(node.code()))
            .set(node_cursors::last_seq.eq(last))
            .execute(conn)?;
        Ok(PushResponse { last_seq: last, rejected })
    })
}

/// Largest payload kept for later, and most events kept per node: what a node cannot make the
/// national server store without reading it.
const MAX_HELD_PAYLOAD: usize = 16 * 1024;
const MAX_HELD_PER_NODE: i64 = 1_000;

/// How many more events this node may have held.
fn held_room(conn: &mut DbConn, node: Prefecture) -> QueryResult<i64> {
    let held: i64 = pushed_events::table
        .filter(pushed_events::prefecture.eq(node.code()))
        .filter(pushed_events::outcome.eq("held"))
        .count()
        .get_result(conn)?;
    Ok((MAX_HELD_PER_NODE - held).max(0))
}

/// The receipt of one pushed event, as `pushed_events` keeps it.
struct Receipt {
    seq: i64,
    event_id: String,
    kind: String,
    version: i32,
    outcome: &'static str,
    code: Option<RejectCode>,
    reason: Option<String>,
    /// Held events only: the payload and the person it names (if it names one where every
    /// personal kind does, in `agency_code`).
    payload: Option<String>,
    agency_code: Option<String>,
}

impl Receipt {
    fn new(
        node: Prefecture,
        envelope: &Envelope,
        outcome: Outcome,
        rejected: &mut Vec<RejectedEvent>,
    ) -> Self {
        let mut receipt = Self {
            seq: envelope.seq,
            event_id: envelope.event_id.clone(),
            kind: envelope.kind.clone(),
            version: i32::from(envelope.version),
            outcome: "applied",
            code: None,
            reason: None,
            payload: None,
            agency_code: None,
        };
        match outcome {
            Outcome::Applied => {}
            Outcome::Held(reason) => {
                tracing::warn!(prefecture = %node, seq = envelope.seq, "event held until this server is upgraded");
                receipt.outcome = "held";
                receipt.reason = Some(reason);
                receipt.payload = Some(envelope.payload.get().to_string());
                receipt.agency_code = serde_json::from_str::<serde_json::Value>(envelope.payload.get())
                    .ok()
                    .and_then(|v| v.get("agency_code")?.as_str().map(str::to_string));
            }
            Outcome::Rejected(Permanent(code, reason)) => {
                tracing::warn!(prefecture = %node, seq = envelope.seq, ?code, %reason, "event rejected");
                rejected.push(RejectedEvent { seq: envelope.seq, code, reason: reason.clone() });
                receipt.outcome = "rejected";
                receipt.code = Some(code);
                receipt.reason = Some(reason);
            }
        }
        receipt
    }
}

/// The same shape checks the node makes when she types them (nothing is stored that a page would
/// have refused).
fn contact_problem(c: &ContactChanged) -> Option<&'static str> {
    use ncf_shared::notice::{looks_like_email, looks_like_phone};
    let name_ok = |n: &Option<String>| n.as_deref().is_none_or(|n| ncf_shared::PersonName::check(n).is_ok());
    if !name_ok(&c.family_name) || !name_ok(&c.given_name) {
        return Some("family_name/given_name: 1-50 characters expected");
    }
    if c.email.as_deref().is_some_and(|e| !looks_like_email(e)) {
        return Some("email: not an e-mail address");
    }
    if c.phone.as_deref().is_some_and(|p| !looks_like_phone(p)) {
        return Some("phone: 10-11 digits and hyphens expected");
    }
    None
}

const PURGED: &str = "withdrawn by her before this server could read it; dropped unread";

/// Drops the events held unread for this person: those stored by earlier pushes, and those of
/// the push being applied.
fn purge_held(
    conn: &mut DbConn,
    node: Prefecture,
    code: &AgencyCode,
    receipts: &mut [Receipt],
) -> QueryResult<()> {
    let purged = diesel::update(
        pushed_events::table
            .filter(pushed_events::prefecture.eq(node.code()))
            .filter(pushed_events::agency_code.eq(code.as_str()))
            .filter(pushed_events::outcome.eq("held")),
    )
    .set((
        pushed_events::outcome.eq("rejected"),
        pushed_events::reject_code.eq(RejectCode::NotCovered.as_str()),
        pushed_events::reason.eq(PURGED),
        pushed_events::payload.eq(None::<String>),
    ))
    .execute(conn)?;
    let mut in_this_push = 0;
    for r in
        receipts.iter_mut().filter(|r| r.outcome == "held" && r.agency_code.as_deref() == Some(code.as_str()))
    {
        r.outcome = "rejected";
        r.code = Some(RejectCode::NotCovered);
        r.reason = Some(PURGED.into());
        r.payload = None;
        in_this_push += 1;
    }
    if purged + in_this_push > 0 {
        tracing::info!(prefecture = %node, events = purged + in_this_push, "held events dropped after a withdrawal");
    }
    Ok(())
}

/// The agency codes among these events that this node linked, with the person each names (one
/// query per push).
fn linked_codes<'a>(
    conn: &mut DbConn,
    node: Prefecture,
    messages: impl Iterator<Item = &'a NodeToNational>,
) -> QueryResult<HashMap<AgencyCode, Vec<u8>>> {
    let codes: HashSet<&str> = messages.map(|m| m.agency_code().as_str()).collect();
    if codes.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(identity_links::table
        .filter(identity_links::prefecture.eq(node.code()))
        .filter(identity_links::agency_code.eq_any(codes.into_iter()))
        .select((identity_links::agency_code, identity_links::person_key))
        .load::<(String, Vec<u8>)>(conn)?
        .into_iter()
        .filter_map(|(c, key)| Some((AgencyCode::parse(&c)?, key)))
        .collect())
}

/// Applies the events held for an upgrade that this code now reads, in each node's order; called
/// at start. Returns how many were applied or rejected now.
pub fn apply_held(conn: &mut DbConn, agency_key: &AgencyCodeKey) -> Result<usize, AppError> {
    ncf_shared::db::write_transaction(conn, |conn| {
        // The chain's lock first: a second server starting at the same time waits here, then
        // finds these events no longer held.
        drop(ChainWriter::begin(conn)?);
        let held: Vec<(String, i64)> = pushed_events::table
            .filter(pushed_events::outcome.eq("held"))
            .order((pushed_events::prefecture, pushed_events::seq))
            .select((pushed_events::prefecture, pushed_events::seq))
            .load(conn)?;
        let mut done = 0;
        for (prefecture, seq) in held {
            let Some(node) = Prefecture::from_code(&prefecture) else { continue };
            // One payload in memory at a time.
            let (event_id, kind, version, payload): (String, String, i32, Option<String>) =
                pushed_events::table
                    .find((&prefecture, seq))
                    .select((
                        pushed_events::event_id,
                        pushed_events::kind,
                        pushed_events::version,
                        pushed_events::payload,
                    ))
                    .first(conn)?;
            let version = u16::try_from(version).unwrap_or(u16::MAX);
            let payload = payload.unwrap_or_else(|| "null".into());
            let message = match NodeToNational::decode(&kind, version, &payload) {
                Err(unreadable) if unreadable.awaits_upgrade() => continue, // still not readable
                Err(unreadable) => Err(Permanent::new(RejectCode::Malformed, unreadable.to_string())),
                Ok(message) => apply_one_held(conn, agency_key, node, &message)?,
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

/// One held event, in a savepoint of its own: an event that the database refuses is rejected
/// alone instead of keeping the server from starting.
fn apply_one_held(
    conn: &mut DbConn,
    agency_key: &AgencyCodeKey,
    node: Prefecture,
    message: &NodeToNational,
) -> QueryResult<Result<(), Permanent>> {
    let linked = linked_codes(conn, node, std::iter::once(message))?;
    if message.names_a_link() && !linked.contains_key(message.agency_code()) {
        return Ok(Err(Permanent::new(RejectCode::UnknownAgencyCode, "no link for this agency code")));
    }
    let outcome = conn.transaction(|conn| {
        let mut applier = Applier::begin(conn, agency_key, node, std::iter::once(message))?;
        let outcome = applier.apply(conn, message)?;
        applier.finish(conn)?;
        if let NodeToNational::ConsentChanged(c) = message
            && !c.granted
            && outcome.is_ok()
        {
            purge_held(conn, node, &c.agency_code, &mut [])?;
        }
        Ok::<_, diesel::result::Error>(outcome)
    });
    match outcome {
        Err(e) if !ncf_shared::db::MaybeBusy::is_busy(&e) => {
            tracing::error!(prefecture = %node, error = %e, "held event refused by the database");
            Ok(Err(Permanent::new(RejectCode::Invalid, "the database refused its content")))
        }
        other => other,
    }
}

/// Applies the events of one transaction. What it reads is read once — the consents of every
/// person the events name — and kept true in memory as events change it; what it writes in bulk
/// (notices, provision entries) is written in one statement each at [`Applier::finish`], notices
/// also before any consent change (a withdrawal deletes the notices held for her).
struct Applier<'k> {
    node: Prefecture,
    agency_key: &'k AgencyCodeKey,
    chain: ChainWriter,
    /// Agency code → person key, for the people these events name.
    persons: HashMap<String, Vec<u8>>,
    /// People whose derived status an applied event may change: refreshed at [`Applier::finish`].
    touched: Vec<Vec<u8>>,
    /// (agency code, scope) → (granted, version), as the national server holds them.
    consents: HashMap<(String, ConsentScope), (bool, i32)>,
    /// Agency codes of this node's links that are proofed (grows as `identity_proofed` applies).
    proofed: HashSet<String>,
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
    effective_on: Option<chrono::NaiveDate>,
    working: Option<bool>,
}

impl<'k> Applier<'k> {
    fn begin<'a>(
        conn: &mut DbConn,
        agency_key: &'k AgencyCodeKey,
        node: Prefecture,
        messages: impl Iterator<Item = &'a NodeToNational>,
    ) -> QueryResult<Self> {
        let codes: HashSet<&str> = messages.map(|m| m.agency_code().as_str()).collect();
        let codes_for_proofing: Vec<&str> = codes.iter().copied().collect();
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
        let mut proofed = HashSet::new();
        let mut persons = HashMap::new();
        if !codes_for_proofing.is_empty() {
            let links: Vec<(String, Vec<u8>, Option<chrono::NaiveDateTime>)> = identity_links::table
                .filter(identity_links::prefecture.eq(node.code()))
                .filter(identity_links::agency_code.eq_any(codes_for_proofing))
                .select((identity_links::agency_code, identity_links::person_key, identity_links::proofed_at))
                .load(conn)?;
            for (code, person, proofed_at) in links {
                if proofed_at.is_some() {
                    proofed.insert(code.clone());
                }
                persons.insert(code, person);
            }
        }
        Ok(Self {
            node,
            agency_key,
            chain: ChainWriter::begin(conn)?,
            persons,
            touched: Vec::new(),
            consents,
            proofed,
            notices: Vec::new(),
        })
    }

    fn granted(&self, code: &AgencyCode, scope: ConsentScope) -> bool {
        self.consents.get(&(code.as_str().to_string(), scope)).is_some_and(|(granted, _)| *granted)
    }

    fn apply(&mut self, conn: &mut DbConn, message: &NodeToNational) -> QueryResult<Result<(), Permanent>> {
        let outcome = self.apply_inner(conn, message)?;
        if outcome.is_ok()
            && let Some(person) = self.persons.get(message.agency_code().as_str())
        {
            self.touched.push(person.clone());
        }
        Ok(outcome)
    }

    fn apply_inner(
        &mut self,
        conn: &mut DbConn,
        message: &NodeToNational,
    ) -> QueryResult<Result<(), Permanent>> {
        // Defence in depth, as for consents: a node's gate lets nothing about her out before she
        // proved who she is, and nothing else is held for a link that is not proofed.
        if let NodeToNational::IdentityProofed(p) = message {
            return self.apply_proofed(conn, p);
        }
        // Confirming a hand-over is how the new node's link becomes proofed.
        if let NodeToNational::TransferConfirmed(t) = message {
            return Ok(crate::routing::confirm_transfer(conn, &mut self.chain, self.node, t)?
                .map(|person| {
                    self.proofed.insert(t.agency_code.as_str().to_string());
                    self.persons.insert(t.agency_code.as_str().to_string(), person);
                })
                .map_err(|e| Permanent::new(RejectCode::Invalid, e.0)));
        }
        // An attendance is about an applicant relayed to this node, whom it knows only by the
        // code given with her contact, not about one of its proofed links.
        if let NodeToNational::AttendanceRecorded(a) = message {
            return Ok(crate::training::attendance(conn, &mut self.chain, self.node, a)?
                .map_err(|e| Permanent::new(RejectCode::Invalid, e.0)));
        }
        if !self.proofed.contains(message.agency_code().as_str()) {
            return Ok(Err(Permanent::new(
                RejectCode::NotProofed,
                format!("{} for a person who has not proved who she is at this node", message.kind()),
            )));
        }
        // Defence in depth: the node's gate already checked, but nothing is held without the
        // consent the contract names for this kind.
        let any_of = message.required_consent();
        if !any_of.is_empty() && !any_of.iter().any(|scope| self.granted(message.agency_code(), *scope)) {
            let names: Vec<&str> = any_of.iter().map(|s| s.as_str()).collect();
            return Ok(Err(Permanent::new(
                RejectCode::NotCovered,
                format!("{} is not covered by a {} consent", message.kind(), names.join(" or ")),
            )));
        }
        match message {
            NodeToNational::ConsentChanged(c) => {
                self.flush_notices(conn)?;
                self.apply_consent(conn, c)
            }
            NodeToNational::NoticeFiled(n) => Ok(self.apply_notice(n)),
            NodeToNational::ContactChanged(c) => Ok(self.apply_contact(c)),
            NodeToNational::PreferenceChanged(p) => self.apply_preference(conn, p),
            NodeToNational::TransferContact(t) => {
                Ok(crate::routing::relay_contact(conn, self.agency_key, &mut self.chain, self.node, t)?
                    .map(drop)
                    .map_err(|e| Permanent::new(RejectCode::Invalid, e.0)))
            }
            NodeToNational::TrainingWish(w) => {
                let Some(person) = self.persons.get(w.agency_code.as_str()).cloned() else {
                    return Ok(Err(Permanent::new(RejectCode::UnknownAgencyCode, "no link for this code")));
                };
                Ok(crate::training::wish(conn, &mut self.chain, self.node, &person, w)?
                    .map_err(|e| Permanent::new(RejectCode::Invalid, e.0)))
            }
            NodeToNational::TrainingContact(t) => {
                Ok(crate::training::relay_contact(conn, self.agency_key, &mut self.chain, self.node, t)?
                    .map_err(|e| Permanent::new(RejectCode::Invalid, e.0)))
            }
            NodeToNational::IdentityProofed(_)
            | NodeToNational::TransferConfirmed(_)
            | NodeToNational::AttendanceRecorded(_) => {
                unreachable!("handled above")
            }
        }
    }

    /// Records how she proved who she is at this node (the postal route has already recorded it
    /// when her code was checked; the counter route is known only from this event).
    fn apply_proofed(
        &mut self,
        conn: &mut DbConn,
        p: &IdentityProofed,
    ) -> QueryResult<Result<(), Permanent>> {
        // Unknown agency codes were refused before (`linked`); a link proofed already keeps how.
        diesel::update(
            identity_links::table
                .filter(identity_links::prefecture.eq(self.node.code()))
                .filter(identity_links::agency_code.eq(p.agency_code.as_str()))
                .filter(identity_links::proofed_at.is_null()),
        )
        .set((
            identity_links::proofing_method.eq(p.method.as_str()),
            identity_links::proofed_at.eq(p.proofed_at.naive_utc()),
        ))
        .execute(conn)?;
        self.proofed.insert(p.agency_code.as_str().to_string());
        self.chain.append(&Provision::from_node(
            self.node,
            p.agency_code.as_str(),
            &["identity_proofing"],
            ProvisionPurpose::IdentityProofing,
        ));
        Ok(Ok(()))
    }

    /// Writes what was gathered, then refreshes what the national server derives for everyone an
    /// applied event touched (latent status, home link, routing), in the same transaction.
    fn finish(mut self, conn: &mut DbConn) -> QueryResult<()> {
        self.flush_notices(conn)?;
        self.chain.finish(conn)?;
        if !self.touched.is_empty() {
            crate::routing::refresh(conn, self.touched)?;
        }
        Ok(())
    }

    fn flush_notices(&mut self, conn: &mut DbConn) -> QueryResult<()> {
        // A notice sent again (a node retrying) is kept once. diesel cannot put ON CONFLICT and
        // many rows into one SQLite statement; SQLite's own INSERT OR IGNORE does the same here
        // (the rows are typed, so the only constraint they can meet is the notice id's).
        // Only stored notices may decide a link's status: where a chunk met an id already held (a
        // retry, or a node reusing an id with other content), its links are decided from what is
        // stored instead of from what was sent. That is rare; counting is all the common case costs.
        let mut uncertain: HashSet<(&str, &str)> = HashSet::new();
        for values in self.notices.chunks(1000) {
            let inserted = match &mut *conn {
                DbConn::Postgresql(c) => diesel::insert_into(nurse_notices::table)
                    .values(values)
                    .on_conflict(nurse_notices::notice_id)
                    .do_nothing()
                    .execute(c)?,
                DbConn::Sqlite(c) => {
                    diesel::insert_or_ignore_into(nurse_notices::table).values(values).execute(c)?
                }
            };
            if inserted < values.len() {
                uncertain.extend(values.iter().map(|n| (n.prefecture.as_str(), n.agency_code.as_str())));
            }
        }
        // Per link, the batch's deciding notice, kept where it is later than the one held.
        let mut deciding: HashMap<(&str, &str), (chrono::NaiveDate, chrono::NaiveDateTime, bool)> =
            HashMap::new();
        for n in &self.notices {
            let link = (n.prefecture.as_str(), n.agency_code.as_str());
            let (Some(effective_on), Some(working)) = (n.effective_on, n.working) else { continue };
            if uncertain.contains(&link) {
                continue;
            }
            let candidate = (effective_on, n.filed_at, working);
            deciding
                .entry(link)
                .and_modify(|held| {
                    // Applied later, the candidate wins a tie (`deciding` keeps the last of equals).
                    *held = ncf_shared::notice::deciding([*held, candidate]).expect("two notices");
                })
                .or_insert(candidate);
        }
        for (prefecture, code) in uncertain {
            let stored: Vec<(Option<chrono::NaiveDate>, chrono::NaiveDateTime, Option<bool>)> =
                nurse_notices::table
                    .filter(nurse_notices::prefecture.eq(prefecture))
                    .filter(nurse_notices::agency_code.eq(code))
                    .select((nurse_notices::effective_on, nurse_notices::filed_at, nurse_notices::working))
                    .load(conn)?;
            let facts = stored.into_iter().filter_map(|(e, f, w)| Some((e?, f, w?)));
            if let Some(fact) = ncf_shared::notice::deciding(facts) {
                deciding.insert((prefecture, code), fact);
            }
        }
        crate::notices::keep_latest(conn, deciding.into_iter().map(|((p, c), fact)| (p, c, fact)))?;
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
                crate::notices::forget_latest(conn, node, c.agency_code.as_str())?;
                diesel::delete(
                    nurse_notices::table
                        .filter(nurse_notices::prefecture.eq(node.code()))
                        .filter(nurse_notices::agency_code.eq(c.agency_code.as_str())),
                )
                .execute(conn)?
            } else {
                0
            };
            // Her distance is held only while she wants job or training information.
            let other = match scope {
                ConsentScope::JobSupport => Some(ConsentScope::TrainingInfo),
                ConsentScope::TrainingInfo => Some(ConsentScope::JobSupport),
                _ => None,
            };
            if let Some(other) = other
                && !self.granted(&c.agency_code, other)
            {
                diesel::delete(
                    match_preferences::table
                        .filter(match_preferences::prefecture.eq(node.code()))
                        .filter(match_preferences::agency_code.eq(c.agency_code.as_str())),
                )
                .execute(conn)?;
            }
            if scope == ConsentScope::ShareWithResidencePrefecture {
                let stopped = crate::routing::cancel_from(conn, node, c.agency_code.as_str())?;
                if stopped > 0 {
                    tracing::info!(prefecture = %node, "consent withdrawn: hand-over stopped");
                }
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
        // A withdrawal is recorded as one, so her provision record does not show it as a grant.
        let field = if c.granted {
            format!("consent:{}", scope.as_str())
        } else {
            format!("consent_withdrawn:{}", scope.as_str())
        };
        self.chain.append(&Provision::from_node(
            node,
            c.agency_code.as_str(),
            &[&field],
            ProvisionPurpose::ConsentRecord,
        ));
        Ok(Ok(()))
    }

    /// Her distance for matching (issue #8), kept per link; her home link's is used.
    fn apply_preference(
        &mut self,
        conn: &mut DbConn,
        p: &PreferenceChanged,
    ) -> QueryResult<Result<(), Permanent>> {
        if !ncf_shared::posting::DISTANCE_CHOICES_KM.contains(&p.distance_km) {
            return Ok(Err(Permanent::new(
                RejectCode::Invalid,
                format!("distance {} km is not one of the choices", p.distance_km),
            )));
        }
        let row = (
            match_preferences::prefecture.eq(self.node.code()),
            match_preferences::agency_code.eq(p.agency_code.as_str()),
            match_preferences::distance_km.eq(p.distance_km as i32),
            match_preferences::changed_at.eq(p.changed_at.naive_utc()),
        );
        per_backend!(&mut *conn, db => diesel::insert_into(match_preferences::table)
            .values(row)
            .on_conflict((match_preferences::prefecture, match_preferences::agency_code))
            .do_update()
            .set((
                match_preferences::distance_km.eq(p.distance_km as i32),
                match_preferences::changed_at.eq(p.changed_at.naive_utc()),
            ))
            .execute(db))?;
        self.chain.append(&Provision::from_node(
            self.node,
            p.agency_code.as_str(),
            &["preference:distance"],
            ProvisionPurpose::PostingMatches,
        ));
        Ok(Ok(()))
    }

    /// `contact_changed` from a node older than issue #7. The national server no longer keeps
    /// contact details (they are relayed, sealed, at hand-over only): the event is checked and
    /// recorded as received, and nothing of it is stored.
    fn apply_contact(&mut self, c: &ContactChanged) -> Result<(), Permanent> {
        let provided = c.provided_fields();
        if provided.is_empty() {
            return Err(Permanent::new(RejectCode::Invalid, "contact_changed names no field"));
        }
        if let Some(problem) = contact_problem(c) {
            return Err(Permanent::new(RejectCode::Invalid, problem));
        }
        let fields: Vec<String> = provided.iter().map(|f| format!("contact:{f}")).collect();
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        self.chain.append(&Provision::from_node(
            self.node,
            c.agency_code.as_str(),
            &fields,
            ProvisionPurpose::ResidencePrefectureSupport,
        ));
        Ok(())
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
            effective_on: n.notice.effective_on(ncf_shared::time::jst_date(n.filed_at.naive_utc())),
            working: n.notice.says_working(),
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
