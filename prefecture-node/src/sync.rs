//! Sync with the national server (DESIGN flow 3), every request signed (rule 6), over TLS
//! unless the national server is on loopback.
//!
//! Push: the outbox goes out in order. The cursor moves only to what the national server answers
//! it holds, and only if that is a sequence number this node sent: a wrong answer can never make
//! the node skip events. Events it rejects for good are parked here with its reason (and logged),
//! never retried, and never hold up the ones after them.
//! Pull: every event of this node's queue at the national server is stored in the inbox in the
//! transaction that moves the pull cursor, and marked applied, waiting for an upgrade (a kind or
//! version this code does not read yet, applied when the node starts with code that does), or
//! failed with the reason (shown to staff; it does not block the events after it).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use ncf_shared::contract::{Envelope, ErrorCode, NationalToNode, Unreadable, WithdrawalApplied};
use ncf_shared::db::{DbConn, Pool};
use ncf_shared::federation::{
    CodeCheckRequest, CodeCheckResponse, ErrorBody, IdentityLinkRequest, IdentityLinkResponse, LetterRequest,
    LetterResponse, NodeSigningKey, ProvisionListing, ProvisionsQuery, PullRequest, PullResponse,
    PushRequest, PushResponse,
};

use crate::outbox::{self, OutboxEvent};
use crate::schema::{inbox, nurses, outbox as outbox_table, sync_state, withdrawal_confirmations};

pub const PUSH_PATH: &str = "/federation/v1/push";
pub const PULL_PATH: &str = "/federation/v1/pull";
pub const IDENTITY_LINK_PATH: &str = "/federation/v1/identity-link";
pub const LETTER_PATH: &str = "/federation/v1/proofing/letter";
pub const CODE_CHECK_PATH: &str = "/federation/v1/proofing/code";
pub const PROVISIONS_PATH: &str = "/federation/v1/provisions";
pub const FIGURES_PATH: &str = "/federation/v1/figures";
pub const POSTINGS_PATH: &str = "/federation/v1/postings";

/// The national server's answer to an identity link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    Linked(ncf_shared::AgencyCode),
    /// The claims do not match an active licence (all a public request learns).
    NoMatch,
    /// Refused: 5 failures for this licence in 24 hours, or too many from this node.
    AttemptsExhausted,
    /// Staff lookups only: the claims (field names) that do not match the registry.
    Mismatch(Vec<String>),
    /// Staff lookups only: the licence matches but is not active.
    NotActive,
    Invalid(String),
}
/// Events per push: the national server takes at most 1,000 (`MAX_EVENTS_PER_PUSH`) and at most
/// `MAX_BODY_BYTES`; a batch also stops at [`BATCH_BYTES`] of payload so that it always fits.
const BATCH: i64 = 1000;
const BATCH_BYTES: usize = ncf_shared::federation::MAX_BODY_BYTES / 2;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("national server unreachable: {0}")]
    Transport(String),
    #[error("national server refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("national server answered what this node never sent: {0}")]
    BadAnswer(String),
    #[error("database: {0}")]
    Database(String),
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PushReport {
    /// Events the national server now holds that it did not before this round.
    pub acknowledged: i64,
    pub parked: usize,
    /// Whether more events were waiting when this round started.
    pub more: bool,
    /// The push cursor after this round.
    pub cursor: i64,
}

/// A batch read and encoded, ready to push: the events after `start`.
struct Prepared {
    start: i64,
    envelopes: Vec<ncf_shared::contract::Envelope>,
    more: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PullReport {
    /// Events stored (applied, waiting for an upgrade or failed).
    pub stored: usize,
    pub applied: usize,
    pub more: bool,
}

const PULL_BATCH: u32 = 500;

/// What became of one pulled event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboxState {
    Applied,
    AwaitingUpgrade(String),
    Failed(String),
}

impl InboxState {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::AwaitingUpgrade(_) => "awaiting_upgrade",
            Self::Failed(_) => "failed",
        }
    }

    fn reason(&self) -> Option<&str> {
        match self {
            Self::Applied => None,
            Self::AwaitingUpgrade(r) | Self::Failed(r) => Some(r),
        }
    }
}

/// Stores pulled events in order, each once, applies what this code reads, and moves the pull
/// cursor over exactly the events stored — all in one transaction.
fn store_pulled(
    conn: &mut DbConn,
    key: Option<&NodeSigningKey>,
    events: &[Envelope],
) -> QueryResult<(usize, usize)> {
    ncf_shared::db::write_transaction(conn, |conn| {
        let mut cursor = pull_cursor(conn)?;
        let (mut stored, mut applied) = (0, 0);
        let now = ncf_shared::time::now_utc();
        for event in events {
            if event.seq != cursor + 1 {
                continue; // already stored (seq <= cursor) or not contiguous: ask again later
            }
            let (mut state, nurse_id) = apply_one(conn, key, event, now)?;
            // An event id seen before under another seq (a faulty national server) is stored as
            // failed under a distinct id: the pull must never stop on it.
            let seen: i64 =
                inbox::table.filter(inbox::event_id.eq(&event.event_id)).count().get_result(conn)?;
            let event_id = if seen > 0 {
                state = InboxState::Failed("同じ識別子の通知をすでに受信しています".into());
                format!("duplicate:{}:{}", event.seq, event.event_id)
            } else {
                event.event_id.clone()
            };
            if state == InboxState::Applied {
                applied += 1;
            }
            diesel::insert_into(inbox::table)
                .values((
                    inbox::seq.eq(event.seq),
                    inbox::event_id.eq(&event_id),
                    inbox::kind.eq(&event.kind),
                    inbox::version.eq(i32::from(event.version)),
                    inbox::payload.eq(event.payload.get()),
                    inbox::received_at.eq(now),
                    inbox::state.eq(state.as_str()),
                    inbox::reason.eq(state.reason()),
                    inbox::nurse_id.eq(nurse_id),
                ))
                .execute(conn)?;
            cursor = event.seq;
            stored += 1;
        }
        diesel::update(sync_state::table.find("pull_cursor"))
            .set(sync_state::value.eq(cursor))
            .execute(conn)?;
        Ok((stored, applied))
    })
}

/// Opens and applies one event inside a savepoint, so that an event that fails rolls back only
/// its own changes and is recorded as failed. Returns its state and the nurse it is about.
fn apply_one(
    conn: &mut DbConn,
    key: Option<&NodeSigningKey>,
    event: &Envelope,
    now: chrono::NaiveDateTime,
) -> QueryResult<(InboxState, Option<String>)> {
    let message = match event.open::<NationalToNode>() {
        Ok(message) => message,
        Err(unreadable) => {
            let state = unreadable_state(&unreadable);
            tracing::warn!(seq = event.seq, kind = %event.kind, reason = %unreadable, state = state.as_str(), "pulled event not applied");
            // Every personal kind names her in `agency_code`: read it best-effort, so staff see
            // the event on her page even before this code can read the rest.
            let code = serde_json::from_str::<serde_json::Value>(event.payload.get())
                .ok()
                .and_then(|v| v.get("agency_code")?.as_str().map(str::to_string));
            let nurse_id = match code {
                Some(code) => nurse_by_code(conn, &code)?,
                None => None,
            };
            return Ok((state, nurse_id));
        }
    };
    // Kinds about someone who may have no proofed registration here.
    let unregistered =
        match &message {
            NationalToNode::MovedIn(m) => Some(conn.transaction(|conn| {
                Ok::<_, diesel::result::Error>(crate::transfers::moved_in(conn, key, m, now))
            })),
            NationalToNode::Erase(e) => Some(conn.transaction(|conn| {
                crate::life_events::erase(conn, e.agency_code.as_str(), now).map(|_| Ok(()))
            })),
            NationalToNode::TransferCancelled(t) => Some(conn.transaction(|conn| {
                crate::transfers::forget(conn, Some(&t.transfer_id), None).map(|_| Ok(()))
            })),
            // An applicant to one of this node's training sessions: registered at her home node.
            NationalToNode::TrainingApplicant(a) => Some(conn.transaction(|conn| {
                Ok::<_, diesel::result::Error>(crate::training::applicant_arrived(conn, key, a, now))
            })),
            _ => None,
        };
    if let Some(outcome) = unregistered {
        let nurse_id = nurses::table
            .filter(nurses::agency_code.eq(message.agency_code().as_str()))
            .select(nurses::id)
            .first::<String>(conn)
            .optional()?;
        return Ok(match outcome {
            Ok(Ok(())) => (InboxState::Applied, nurse_id),
            Err(e) if ncf_shared::db::MaybeBusy::is_busy(&e) => return Err(e),
            Err(e) => (InboxState::Failed(format!("適用に失敗しました: {e}")), nurse_id),
            Ok(Err(reason)) => {
                tracing::warn!(seq = event.seq, kind = %event.kind, %reason, "pulled event failed");
                (InboxState::Failed(format!("適用できません: {reason}")), nurse_id)
            }
        });
    }
    let nurse_id = nurse_by_code(conn, message.agency_code().as_str())?;
    let Some(nurse_id) = nurse_id else {
        let reason = "この看護職はこのセンターに登録されていません（機関別符号が一致しません）".to_string();
        tracing::warn!(seq = event.seq, kind = %event.kind, "pulled event names no nurse of this node");
        return Ok((InboxState::Failed(reason), None));
    };
    let outcome = conn.transaction(|conn| {
        Ok::<_, diesel::result::Error>(match &message {
            NationalToNode::WithdrawalApplied(w) => record_withdrawal(conn, &nurse_id, w, now).map(Ok)?,
            NationalToNode::StatusChanged(s) => {
                crate::life_events::apply_status(conn, &nurse_id, s).map(Ok)?
            }
            NationalToNode::ReminderDue(r) => {
                crate::life_events::record_reminder(conn, &nurse_id, r, now).map(Ok)?
            }
            NationalToNode::MovedOut(m) => crate::transfers::moved_out(conn, &nurse_id, m, now),
            NationalToNode::MatchesChanged(m) => {
                crate::postings::apply_matches(conn, &nurse_id, m, now).map(Ok)?
            }
            NationalToNode::TrainingWishAnswered(a) => crate::training::answered(conn, &nurse_id, a),
            NationalToNode::TrainingAttended(a) => crate::training::attended(conn, &nurse_id, a).map(Ok)?,
            NationalToNode::MovedIn(_)
            | NationalToNode::Erase(_)
            | NationalToNode::TransferCancelled(_)
            | NationalToNode::TrainingApplicant(_) => {
                unreachable!("applied above")
            }
        })
    });
    Ok(match outcome {
        Ok(Ok(())) => (InboxState::Applied, Some(nurse_id)),
        Ok(Err(reason)) => {
            tracing::warn!(seq = event.seq, kind = %event.kind, %reason, "pulled event failed");
            (InboxState::Failed(format!("適用できません: {reason}")), Some(nurse_id))
        }
        Err(e) if ncf_shared::db::MaybeBusy::is_busy(&e) => return Err(e), // retry the whole batch
        Err(e) => {
            tracing::error!(seq = event.seq, kind = %event.kind, error = %e, "pulled event failed to apply");
            (InboxState::Failed(format!("適用に失敗しました: {e}")), Some(nurse_id))
        }
    })
}

/// The registration the national server's events are about: the proofed one (nothing about an
/// unproofed registration ever reached it).
fn nurse_by_code(conn: &mut DbConn, code: &str) -> QueryResult<Option<String>> {
    nurses::table
        .filter(nurses::agency_code.eq(code))
        .filter(nurses::proofed_at.is_not_null())
        .select(nurses::id)
        .first(conn)
        .optional()
}

fn unreadable_state(unreadable: &Unreadable) -> InboxState {
    if unreadable.awaits_upgrade() {
        InboxState::AwaitingUpgrade(unreadable.to_string())
    } else {
        InboxState::Failed(unreadable.to_string())
    }
}

fn record_withdrawal(
    conn: &mut DbConn,
    nurse_id: &str,
    w: &WithdrawalApplied,
    now: chrono::NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(withdrawal_confirmations::table)
        .values((
            withdrawal_confirmations::nurse_id.eq(nurse_id),
            withdrawal_confirmations::scope.eq(w.scope.as_str()),
            withdrawal_confirmations::version.eq(w.version),
            withdrawal_confirmations::notices_deleted.eq(w.notices_deleted),
            withdrawal_confirmations::confirmed_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

/// Applies, in order, the stored events that waited for an upgrade and that this code reads now;
/// called when the node starts. Returns how many changed state.
pub fn apply_waiting(conn: &mut DbConn, key: Option<&NodeSigningKey>) -> QueryResult<usize> {
    ncf_shared::db::write_transaction(conn, |conn| {
        let waiting: Vec<(i64, String, String, i32, String)> = inbox::table
            .filter(inbox::state.eq("awaiting_upgrade"))
            .order(inbox::seq)
            .select((inbox::seq, inbox::event_id, inbox::kind, inbox::version, inbox::payload))
            .load(conn)?;
        let now = ncf_shared::time::now_utc();
        let mut changed = 0;
        for (seq, event_id, kind, version, payload) in waiting {
            let version = u16::try_from(version).unwrap_or(u16::MAX);
            let envelope = match Envelope::from_stored(seq, event_id, kind, version, payload) {
                Ok(envelope) => envelope,
                Err(e) => {
                    tracing::error!(seq, error = %e, "stored inbox event is not JSON");
                    continue;
                }
            };
            let (state, nurse_id) = apply_one(conn, key, &envelope, now)?;
            if matches!(state, InboxState::AwaitingUpgrade(_)) {
                continue; // still newer than this code
            }
            tracing::info!(seq, kind = %envelope.kind, state = state.as_str(), "event that waited for an upgrade processed");
            diesel::update(inbox::table.find(seq))
                .set((
                    inbox::state.eq(state.as_str()),
                    inbox::reason.eq(state.reason()),
                    inbox::nurse_id.eq(nurse_id),
                ))
                .execute(conn)?;
            changed += 1;
        }
        Ok(changed)
    })
}

/// One pulled event as staff see it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct InboxEvent {
    pub seq: i64,
    pub kind: String,
    pub received_at: chrono::NaiveDateTime,
    pub state: String,
    pub reason: Option<String>,
}

/// Pulled events not applied (failed, or waiting for an upgrade), oldest first; for one nurse or,
/// with `None`, all of them.
pub fn unapplied(conn: &mut DbConn, nurse_id: Option<&str>) -> QueryResult<Vec<InboxEvent>> {
    let mut query = inbox::table
        .filter(inbox::state.ne("applied"))
        .order(inbox::seq)
        .select((inbox::seq, inbox::kind, inbox::received_at, inbox::state, inbox::reason))
        .into_boxed();
    if let Some(id) = nurse_id {
        query = query.filter(inbox::nurse_id.eq(id.to_string()));
    }
    query.load(conn)
}

/// For staff: pulled events that failed, and pulled events that wait for an upgrade.
pub fn unapplied_counts(conn: &mut DbConn) -> QueryResult<(i64, i64)> {
    let count = |conn: &mut DbConn, state: &str| {
        inbox::table.filter(inbox::state.eq(state.to_string())).count().get_result::<i64>(conn)
    };
    Ok((count(conn, "failed")?, count(conn, "awaiting_upgrade")?))
}

/// How the node reaches the national server: its base URL (https, or http on loopback only) and
/// an HTTPS client that trusts the given CA file or the system roots.
#[derive(Clone)]
pub struct NationalClient {
    http: reqwest::Client,
    base: String,
}

impl NationalClient {
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<Self, String> {
        let base = ncf_shared::tls::check_national_url(url)?;
        ncf_shared::tls::install_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            // A signed request goes to the configured server only: never follow a redirect
            // elsewhere (with the signature headers), nor from https down to http.
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!base.starts_with("http://"));
        if base.starts_with("http://") {
            // Plain HTTP is allowed to loopback only: an HTTP_PROXY from the environment must not
            // carry it, in clear, to another machine.
            builder = builder.no_proxy();
        }
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read the national CA file {}: {e}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("{} holds no usable PEM certificate: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("{} holds no PEM certificate", path.display()));
            }
            // Only this CA: a certificate from any other issuer is refused.
            builder = builder.tls_certs_only(certs);
        }
        let http = builder.build().map_err(|e| format!("cannot build the HTTPS client: {e}"))?;
        Ok(Self { http, base })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }
}

#[derive(Clone)]
pub struct Syncer {
    pool: Pool,
    national: NationalClient,
    key: Arc<NodeSigningKey>,
    /// This node's public address and prefecture, for hand-over invitation links.
    invitations: Option<(String, ncf_shared::Prefecture)>,
}

pub fn cursor(conn: &mut DbConn) -> QueryResult<i64> {
    sync_state::table.find("push_cursor").select(sync_state::value).first(conn)
}

pub fn pull_cursor(conn: &mut DbConn) -> QueryResult<i64> {
    sync_state::table.find("pull_cursor").select(sync_state::value).first(conn)
}

/// Checks the national server's push answer against the request: the new cursor must be a
/// sequence number this node sent (or one it sent before: a national server restored from a
/// backup may be behind, and then the events after it are sent again), and every rejected event
/// must be one of this request's, at or below the new cursor.
fn check_push_answer(sent: &[i64], answer: &PushResponse) -> Result<(), String> {
    let highest = sent.iter().copied().max().unwrap_or(0);
    if answer.last_seq < 0 || answer.last_seq > highest {
        return Err(format!("last_seq {} but the highest sequence sent was {highest}", answer.last_seq));
    }
    if let Some(r) = answer.rejected.iter().find(|r| r.seq > answer.last_seq || !sent.contains(&r.seq)) {
        return Err(format!("rejected seq {} was not sent in this request or is past last_seq", r.seq));
    }
    Ok(())
}

impl Syncer {
    pub fn new(pool: Pool, national: NationalClient, key: NodeSigningKey) -> Self {
        Self { pool, national, key: Arc::new(key), invitations: None }
    }

    /// A serving node mails hand-over invitations with links to its own pages (`sync` alone
    /// stores pending transfers and leaves the mail to the serving node).
    pub fn with_invitations(mut self, public_url: String, here: ncf_shared::Prefecture) -> Self {
        self.invitations = Some((public_url, here));
        self
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The node's signing key (the digests' unsubscribe links are keyed by it).
    pub fn key(&self) -> &NodeSigningKey {
        &self.key
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConn) -> QueryResult<T> + Send + 'static,
    ) -> Result<T, SyncError> {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| SyncError::Database(e.to_string()))?;
            f(&mut conn).map_err(|e| SyncError::Database(e.to_string()))
        })
        .await
        .map_err(|e| SyncError::Database(e.to_string()))?
    }

    /// Sends a signed request; returns the status and body of any answer.
    async fn signed_send<Q: serde::Serialize>(
        &self,
        path: &str,
        request: &Q,
    ) -> Result<(u16, String), SyncError> {
        let body = serde_json::to_vec(request).expect("federation requests serialise");
        let mut req = self
            .national
            .http
            .post(format!("{}{path}", self.national.base))
            .header("content-type", "application/json");
        for (name, value) in self.key.sign_now("POST", path, &body).pairs() {
            req = req.header(name, value);
        }
        let response = req.body(body).send().await.map_err(|e| SyncError::Transport(error_chain(&e)))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| SyncError::Transport(error_chain(&e)))?;
        Ok((status, text))
    }

    async fn signed_post<Q: serde::Serialize, A: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        request: &Q,
    ) -> Result<A, SyncError> {
        let (status, text) = self.signed_send(path, request).await?;
        if !(200..300).contains(&status) {
            let error: Option<ErrorBody> = serde_json::from_str(&text).ok();
            return Err(SyncError::Refused { status, message: error.map_or(text, |e| e.message) });
        }
        serde_json::from_str(&text)
            .map_err(|e| SyncError::Transport(format!("unreadable answer from the national server: {e}")))
    }

    /// Asks the national server for this node's agency code for the person with these licence
    /// claims (DESIGN flow 1).
    pub async fn link_identity(&self, claims: &IdentityLinkRequest) -> Result<LinkOutcome, SyncError> {
        let (status, text) = self.signed_send(IDENTITY_LINK_PATH, claims).await?;
        let unreadable = |e: serde_json::Error| SyncError::Transport(format!("unreadable answer: {e}"));
        match status {
            200 => Ok(LinkOutcome::Linked(
                serde_json::from_str::<IdentityLinkResponse>(&text).map_err(unreadable)?.agency_code,
            )),
            400 | 422 | 429 => {
                let error: ErrorBody = serde_json::from_str(&text).map_err(unreadable)?;
                Ok(match error.error {
                    ErrorCode::NoMatch => LinkOutcome::NoMatch,
                    ErrorCode::AttemptsExhausted => LinkOutcome::AttemptsExhausted,
                    ErrorCode::ClaimsMismatch => LinkOutcome::Mismatch(error.mismatched),
                    ErrorCode::LicenceNotActive => LinkOutcome::NotActive,
                    _ if status == 429 => return Err(SyncError::Refused { status, message: error.message }),
                    _ => LinkOutcome::Invalid(error.message),
                })
            }
            _ => Err(SyncError::Refused { status, message: text }),
        }
    }

    /// Asks the national server to post her a letter with a one-time code.
    pub async fn request_letter(
        &self,
        agency_code: &ncf_shared::AgencyCode,
    ) -> Result<LetterResponse, SyncError> {
        self.signed_post(LETTER_PATH, &LetterRequest { agency_code: agency_code.clone() }).await
    }

    /// Has the national server check the code she typed from her letter.
    pub async fn check_code(
        &self,
        agency_code: &ncf_shared::AgencyCode,
        letter_id: &str,
        code: &str,
    ) -> Result<CodeCheckResponse, SyncError> {
        let request = CodeCheckRequest {
            agency_code: agency_code.clone(),
            letter_id: letter_id.to_string(),
            code: code.to_string(),
        };
        self.signed_post(CODE_CHECK_PATH, &request).await
    }

    /// A nurse's data-provision entries at the national server (DESIGN rule 5), oldest first.
    pub async fn provisions(
        &self,
        agency_code: &ncf_shared::AgencyCode,
    ) -> Result<Vec<ProvisionListing>, SyncError> {
        self.signed_post(PROVISIONS_PATH, &ProvisionsQuery { agency_code: agency_code.clone() }).await
    }

    /// One figure of this node's prefecture, as the national server publishes it (counts only,
    /// suppressed there). An answer about another prefecture is refused.
    pub async fn figures(
        &self,
        request: &ncf_shared::figures::FiguresRequest,
        prefecture: ncf_shared::Prefecture,
    ) -> Result<ncf_shared::figures::FiguresView, SyncError> {
        let view: ncf_shared::figures::FiguresView = self.signed_post(FIGURES_PATH, request).await?;
        if view.table.prefecture != Some(prefecture) || view.table.figure != request.figure {
            return Err(SyncError::BadAnswer("figures of another prefecture or figure".into()));
        }
        Ok(view)
    }

    /// Reads this node's queue after the pull cursor and stores what came, applying it once.
    pub async fn pull_once(&self) -> Result<PullReport, SyncError> {
        let after = self.blocking(pull_cursor).await?;
        let answer: PullResponse =
            self.signed_post(PULL_PATH, &PullRequest { after, limit: PULL_BATCH }).await?;
        let more = answer.events.len() as u32 == PULL_BATCH;
        let key = self.key.clone();
        let (stored, applied) =
            self.blocking(move |conn| store_pulled(conn, Some(&key), &answer.events)).await?;
        // Every pull, not only one that stored something: a transfer pulled by `sync` (which
        // cannot mail) is invited by the serving node on its next round.
        if let Some((url, here)) = self.invitations.clone() {
            let invited =
                self.blocking(move |conn| crate::transfers::invite_pending(conn, &url, here)).await?;
            if invited > 0 {
                tracing::info!(invited, "hand-over invitations mailed");
            }
        }
        Ok(PullReport { stored, applied, more })
    }

    /// Sends the next batch after the cursor, if any.
    pub async fn push_once(&self) -> Result<PushReport, SyncError> {
        let start = self.blocking(cursor).await?;
        let prepared = self.prepare(start).await?;
        self.send(prepared).await
    }

    /// Reads and encodes the batch after `start` (by count and by size: a batch the national
    /// server would refuse as too large would be sent again forever and wedge everything behind
    /// it). Reading only: `run` prepares the next batch while the current one is in flight, and
    /// uses it only if the answer moved the cursor exactly to where that batch starts.
    async fn prepare(&self, start: i64) -> Result<Prepared, SyncError> {
        let events: Vec<OutboxEvent> =
            self.blocking(move |conn| outbox::after(conn, start, BATCH + 1)).await?;
        let mut batch: Vec<&OutboxEvent> = Vec::new();
        let mut bytes = 0;
        for event in events.iter().take(BATCH as usize) {
            bytes += event.payload.len() + event.kind.len() + event.event_id.len() + 64;
            if bytes > BATCH_BYTES && !batch.is_empty() {
                break;
            }
            batch.push(event);
        }
        let more = events.len() > batch.len();
        let envelopes = batch
            .into_iter()
            .map(OutboxEvent::envelope)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SyncError::Database(format!("an outbox payload is not JSON: {e}")))?;
        Ok(Prepared { start, envelopes, more })
    }

    /// Pushes a prepared batch and, once the answer checks out, parks what was refused and moves
    /// the cursor, in one transaction.
    async fn send(&self, prepared: Prepared) -> Result<PushReport, SyncError> {
        let Prepared { start, envelopes, more } = prepared;
        if envelopes.is_empty() {
            return Ok(PushReport::default());
        }
        let sent: Vec<i64> = envelopes.iter().map(|e| e.seq).collect();
        let answer: PushResponse = self.signed_post(PUSH_PATH, &PushRequest { events: envelopes }).await?;
        if let Err(problem) = check_push_answer(&sent, &answer) {
            tracing::error!(%problem, cursor = start, "push answer refused; the cursor stays where it was");
            return Err(SyncError::BadAnswer(problem));
        }
        let parked = answer.rejected.len();
        for r in &answer.rejected {
            tracing::error!(seq = r.seq, code = ?r.code, reason = %r.reason, "event rejected by the national server; parked");
        }
        let last = answer.last_seq;
        self.blocking(move |conn| {
            conn.transaction(|conn| {
                for r in &answer.rejected {
                    diesel::update(outbox_table::table.find(r.seq))
                        .set((
                            outbox_table::parked_reason.eq(&r.reason),
                            outbox_table::parked_code.eq(r.code.as_str()),
                        ))
                        .execute(conn)?;
                    // A wish to attend training refused on the way is hers to see, and to make
                    // again.
                    crate::training::parked(conn, r.seq)?;
                }
                diesel::update(sync_state::table.find("push_cursor"))
                    .set(sync_state::value.eq(last))
                    .execute(conn)
            })
        })
        .await?;
        Ok(PushReport { acknowledged: last - start, parked, more, cursor: last })
    }

    /// One push round of `run`: the batch prepared during the previous round when it starts at
    /// the cursor, else a fresh one; and, while it is in flight, the next batch (after the last
    /// event sent). The next batch is only read, never sent before this one is acknowledged, so
    /// what reaches the national server and when the cursor moves are the same as one batch at a
    /// time; the national server no longer waits while the node reads and encodes.
    async fn push_pipelined(&self, ahead: &mut Option<Prepared>) -> Result<PushReport, SyncError> {
        let start = self.blocking(cursor).await?;
        let current = match ahead.take() {
            Some(prepared) if prepared.start == start => prepared,
            _ => self.prepare(start).await?,
        };
        let Some(last_sent) = current.envelopes.last().map(|e| e.seq) else {
            return Ok(PushReport::default());
        };
        if !current.more {
            return self.send(current).await;
        }
        let (report, next) = futures_util::future::join(self.send(current), self.prepare(last_sent)).await;
        // Kept only if the answer moved the cursor to where it starts (checked again next round).
        *ahead = next.ok().filter(|_| report.as_ref().is_ok_and(|r| r.cursor == last_sent));
        report
    }

    /// Sends the postings changed since the national server's last answer (issue #8), a batch at
    /// a time; returns how many it answered for and whether more wait.
    pub async fn push_postings(&self) -> Result<(usize, bool), SyncError> {
        let limit = ncf_shared::federation::MAX_POSTINGS_PER_PUSH as i64;
        let changed = self.blocking(move |conn| crate::postings::unsynced(conn, limit + 1)).await?;
        if changed.is_empty() {
            return Ok((0, false));
        }
        // By count and by size: a request over the national server's body limit would be refused
        // every round.
        let total = changed.len();
        let mut bytes = 0;
        let mut postings = Vec::new();
        for p in changed.into_iter().take(limit as usize) {
            bytes += serde_json::to_vec(&p).map_or(0, |v| v.len());
            if bytes > BATCH_BYTES && !postings.is_empty() {
                break;
            }
            postings.push(p);
        }
        let more = total > postings.len();
        let answer: ncf_shared::federation::PostingsPushResponse =
            self.signed_post(POSTINGS_PATH, &ncf_shared::federation::PostingsPush { postings }).await?;
        let answered = answer.stored.len() + answer.refused.len();
        self.blocking(move |conn| crate::postings::record_answer(conn, &answer)).await?;
        Ok((answered, more))
    }

    /// Applies the stored events that waited for a version of this software that reads them.
    pub async fn apply_waiting(&self) -> Result<usize, SyncError> {
        let key = self.key.clone();
        let applied = self.blocking(move |conn| apply_waiting(conn, Some(&key))).await?;
        if applied > 0 {
            tracing::info!(events = applied, "applied events that waited for this version");
        }
        Ok(applied)
    }

    /// Applies events that waited for an upgrade (once, when the node starts), then syncs until
    /// stopped: push, then pull; right away while events wait, every `idle` otherwise, with capped
    /// exponential backoff after failures.
    pub async fn run(self, idle: Duration) {
        if let Err(e) = self.apply_waiting().await {
            tracing::error!(error = %e, "cannot apply the events that wait for an upgrade");
        }
        let mut backoff = Duration::from_millis(500);
        let mut rounds: u64 = 0;
        let mut ahead: Option<Prepared> = None;
        loop {
            rounds += 1;
            let pull_anyway = rounds.is_multiple_of(8);
            let round = async {
                // A failing push does not stop the pull: confirmations still arrive.
                // Postings first: they name nobody, and a staff member waits to see hers go out.
                // Their failure (a national server without the path, a refused batch) is logged and
                // tried again next round; it never holds up her events or the pull.
                let postings_more = match self.push_postings().await {
                    Ok((_, more)) => more,
                    Err(e) => {
                        tracing::warn!(error = %e, "postings not sent; trying again next round");
                        false
                    }
                };
                let pushed = match self.push_pipelined(&mut ahead).await {
                    Ok(pushed) => pushed,
                    Err(e) => {
                        let _ = self.pull_once().await;
                        return Err(e);
                    }
                };
                // While a backlog drains, pull between pushes only now and then: each pull is a
                // request of its own, and what it brings (confirmations) can wait a few rounds.
                let pulled = if pushed.more && !pull_anyway {
                    PullReport::default()
                } else {
                    self.pull_once().await?
                };
                Ok::<_, SyncError>((PushReport { more: pushed.more || postings_more, ..pushed }, pulled))
            };
            match round.await {
                Ok((pushed, pulled)) => {
                    backoff = Duration::from_millis(500);
                    if pushed.acknowledged > 0 || pulled.stored > 0 {
                        tracing::info!(
                            acknowledged = pushed.acknowledged,
                            parked = pushed.parked,
                            pulled = pulled.stored,
                            applied = pulled.applied,
                            "synced"
                        );
                    }
                    if !pushed.more && !pulled.more {
                        tokio::time::sleep(idle).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "sync failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// An error with its causes: reqwest's own message hides why TLS failed (e.g. an unknown issuer).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use ncf_shared::contract::RejectCode;
    use ncf_shared::federation::RejectedEvent;

    fn answer(last_seq: i64, rejected: &[i64]) -> PushResponse {
        PushResponse {
            last_seq,
            rejected: rejected
                .iter()
                .map(|&seq| RejectedEvent { seq, code: RejectCode::Malformed, reason: "x".into() })
                .collect(),
        }
    }

    #[test]
    fn a_push_answer_must_name_what_was_sent() {
        let sent = [11, 12, 13];
        assert!(check_push_answer(&sent, &answer(13, &[])).is_ok());
        assert!(check_push_answer(&sent, &answer(12, &[12])).is_ok());
        // Behind: a restored national server; the events after it are sent again.
        assert!(check_push_answer(&sent, &answer(4, &[])).is_ok());
        assert!(check_push_answer(&sent, &answer(14, &[])).is_err());
        assert!(check_push_answer(&sent, &answer(1_000_000, &[])).is_err());
        assert!(check_push_answer(&sent, &answer(-1, &[])).is_err());
        assert!(check_push_answer(&sent, &answer(13, &[9])).is_err());
        assert!(check_push_answer(&sent, &answer(12, &[13])).is_err());
    }
}
