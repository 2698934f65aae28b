//! Sync with the national server (DESIGN flow 3), every request signed (rule 6).
//!
//! Push: the outbox goes out in order; the cursor moves only to what the national server answers
//! it holds, so a lost request or answer is simply sent again and applied there once. Events it
//! rejects for good are parked here with its reason (and logged), never retried.
//! Pull: this node's queue at the national server is read after the pull cursor; each event is
//! stored in the inbox and applied in the same transaction that moves the cursor, so it is applied
//! once even if the node dies between two pulls. Failures back off, capped.

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use ncf_shared::db::{DbConn, Pool};
use ncf_shared::federation::{
    ErrorBody, IdentityLinkRequest, IdentityLinkResponse, NodeSigningKey, PullRequest, PullResponse,
    PushRequest, PushResponse, PushedEvent,
};

use crate::outbox::{self, OutboxEvent};
use crate::schema::{inbox, nurses, outbox as outbox_table, sync_state, withdrawal_confirmations};

pub const PUSH_PATH: &str = "/federation/v1/push";
pub const PULL_PATH: &str = "/federation/v1/pull";
pub const IDENTITY_LINK_PATH: &str = "/federation/v1/identity-link";
pub const PROVISIONS_PATH: &str = "/federation/v1/provisions";

/// One entry of the national data-provision record, as the national server lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ProvisionEntry {
    pub seq: i64,
    pub recorded_at: chrono::NaiveDateTime,
    pub source: String,
    pub recipient: String,
    pub fields: Vec<String>,
    pub purpose: String,
}

/// The national server's answer to an identity link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    Linked(ncf_shared::AgencyCode),
    /// The claims (field names) that do not match the registry.
    Mismatch(Vec<String>),
    NotActive,
    Invalid(String),
}
const BATCH: i64 = 500;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("national server unreachable: {0}")]
    Transport(String),
    #[error("national server refused the push ({status}): {message}")]
    Refused { status: u16, message: String },
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
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PullReport {
    pub applied: usize,
    pub more: bool,
}

const PULL_BATCH: u32 = 500;

/// Stores and applies pulled events in order, each once, moving the pull cursor with them.
fn apply_pulled(conn: &mut DbConn, events: &[PushedEvent]) -> QueryResult<usize> {
    ncf_shared::db::write_transaction(conn, |conn| {
        let mut cursor = pull_cursor(conn)?;
        let mut applied = 0;
        for event in events {
            if event.seq != cursor + 1 {
                continue; // already applied (seq <= cursor) or not contiguous: ask again later
            }
            let now = ncf_shared::time::now_utc();
            diesel::insert_into(inbox::table)
                .values((
                    inbox::seq.eq(event.seq),
                    inbox::event_id.eq(&event.event_id),
                    inbox::kind.eq(&event.kind),
                    inbox::payload.eq(event.payload.to_string()),
                    inbox::received_at.eq(now),
                ))
                .execute(conn)?;
            apply_event(conn, event, now)?;
            cursor = event.seq;
            applied += 1;
        }
        diesel::update(sync_state::table.find("pull_cursor"))
            .set(sync_state::value.eq(cursor))
            .execute(conn)?;
        Ok(applied)
    })
}

fn apply_event(conn: &mut DbConn, event: &PushedEvent, now: chrono::NaiveDateTime) -> QueryResult<()> {
    let code = event.payload.get("agency_code").and_then(|c| c.as_str()).unwrap_or_default();
    let nurse_id: Option<String> =
        nurses::table.filter(nurses::agency_code.eq(code)).select(nurses::id).first(conn).optional()?;
    match (event.kind.as_str(), nurse_id) {
        ("withdrawal_applied", Some(nurse_id)) => {
            let field = |name: &str| event.payload.get(name).cloned().unwrap_or_default();
            diesel::insert_into(withdrawal_confirmations::table)
                .values((
                    withdrawal_confirmations::nurse_id.eq(nurse_id),
                    withdrawal_confirmations::scope.eq(field("scope").as_str().unwrap_or_default()),
                    withdrawal_confirmations::version
                        .eq(field("version").as_i64().unwrap_or_default() as i32),
                    withdrawal_confirmations::notices_deleted
                        .eq(field("notices_deleted").as_i64().unwrap_or_default()),
                    withdrawal_confirmations::confirmed_at.eq(now),
                ))
                .execute(conn)?;
        }
        (kind, _) => {
            // Kept in the inbox; nothing more this node version can do with it.
            tracing::warn!(seq = event.seq, kind, "pulled event not applicable here; kept in the inbox");
        }
    }
    Ok(())
}

#[derive(Clone)]
pub struct Syncer {
    pool: Pool,
    client: reqwest::Client,
    national: String,
    key: Arc<NodeSigningKey>,
}

pub fn cursor(conn: &mut DbConn) -> QueryResult<i64> {
    sync_state::table.find("push_cursor").select(sync_state::value).first(conn)
}

pub fn pull_cursor(conn: &mut DbConn) -> QueryResult<i64> {
    sync_state::table.find("pull_cursor").select(sync_state::value).first(conn)
}

impl Syncer {
    pub fn new(pool: Pool, national: &str, key: NodeSigningKey) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("an HTTP client with default TLS settings");
        Self { pool, client, national: national.trim_end_matches('/').to_string(), key: Arc::new(key) }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
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
            .client
            .post(format!("{}{path}", self.national))
            .header("content-type", "application/json")
            .body(body.clone());
        for (name, value) in self.key.sign_now("POST", path, &body).pairs() {
            req = req.header(name, value);
        }
        let response = req.send().await.map_err(|e| SyncError::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| SyncError::Transport(e.to_string()))?;
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
            400 | 422 => {
                let error: ErrorBody = serde_json::from_str(&text).map_err(unreadable)?;
                Ok(match error.error.as_str() {
                    "claims_mismatch" => LinkOutcome::Mismatch(error.mismatched),
                    "licence_not_active" => LinkOutcome::NotActive,
                    _ => LinkOutcome::Invalid(error.message),
                })
            }
            _ => Err(SyncError::Refused { status, message: text }),
        }
    }

    /// A nurse's data-provision entries at the national server (DESIGN rule 5), oldest first.
    pub async fn provisions(&self, agency_code: &str) -> Result<Vec<ProvisionEntry>, SyncError> {
        self.signed_post(PROVISIONS_PATH, &serde_json::json!({ "agency_code": agency_code })).await
    }

    /// Reads this node's queue after the pull cursor and applies what came, once.
    pub async fn pull_once(&self) -> Result<PullReport, SyncError> {
        let after = self.blocking(pull_cursor).await?;
        let answer: PullResponse =
            self.signed_post(PULL_PATH, &PullRequest { after, limit: PULL_BATCH }).await?;
        let more = answer.events.len() as u32 == PULL_BATCH;
        let applied = self.blocking(move |conn| apply_pulled(conn, &answer.events)).await?;
        Ok(PullReport { applied, more })
    }

    /// Sends the next batch after the cursor, if any.
    pub async fn push_once(&self) -> Result<PushReport, SyncError> {
        let (start, events): (i64, Vec<OutboxEvent>) = self
            .blocking(|conn| {
                let start = cursor(conn)?;
                Ok((start, outbox::after(conn, start, BATCH + 1)?))
            })
            .await?;
        if events.is_empty() {
            return Ok(PushReport::default());
        }
        let more = events.len() as i64 > BATCH;
        let request = PushRequest {
            events: events
                .iter()
                .take(BATCH as usize)
                .map(|e| PushedEvent {
                    seq: e.seq,
                    event_id: e.event_id.clone(),
                    kind: e.kind.clone(),
                    payload: serde_json::from_str(&e.payload).unwrap_or(serde_json::Value::Null),
                })
                .collect(),
        };
        let answer: PushResponse = self.signed_post(PUSH_PATH, &request).await?;
        let parked = answer.rejected.len();
        for r in &answer.rejected {
            tracing::error!(seq = r.seq, reason = %r.reason, "event rejected by the national server; parked");
        }
        let last = answer.last_seq;
        self.blocking(move |conn| {
            conn.transaction(|conn| {
                for r in &answer.rejected {
                    diesel::update(outbox_table::table.find(r.seq))
                        .set(outbox_table::parked_reason.eq(&r.reason))
                        .execute(conn)?;
                }
                // The national server's answer is the truth: it may even be behind (restored from a
                // backup), and then the events after it are sent again.
                diesel::update(sync_state::table.find("push_cursor"))
                    .set(sync_state::value.eq(last))
                    .execute(conn)
            })
        })
        .await?;
        Ok(PushReport { acknowledged: last - start, parked, more })
    }

    /// Syncs until stopped: push, then pull; right away while events wait, every `idle` otherwise,
    /// with capped exponential backoff after failures.
    pub async fn run(self, idle: Duration) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let round = async {
                let pushed = self.push_once().await?;
                let pulled = self.pull_once().await?;
                Ok::<_, SyncError>((pushed, pulled))
            };
            match round.await {
                Ok((pushed, pulled)) => {
                    backoff = Duration::from_millis(500);
                    if pushed.acknowledged > 0 || pulled.applied > 0 {
                        tracing::info!(
                            acknowledged = pushed.acknowledged,
                            parked = pushed.parked,
                            pulled = pulled.applied,
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
