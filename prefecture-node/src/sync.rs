//! Push (DESIGN flow 3): the outbox goes to the national server in order, signed (rule 6). The
//! cursor moves only to what the national server answers it holds, so a lost request or answer is
//! simply sent again and applied there once. Events the national server rejects for good are
//! parked here with its reason (and logged), never retried. Failures back off, capped.

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use ncf_shared::db::{DbConn, Pool};
use ncf_shared::federation::{NodeSigningKey, PushRequest, PushResponse, PushedEvent};

use crate::outbox::{self, OutboxEvent};
use crate::schema::{outbox as outbox_table, sync_state};

pub const PUSH_PATH: &str = "/federation/v1/push";
const BATCH: i64 = 500;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum PushError {
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

#[derive(Clone)]
pub struct Pusher {
    pool: Pool,
    client: reqwest::Client,
    national: String,
    key: Arc<NodeSigningKey>,
}

pub fn cursor(conn: &mut DbConn) -> QueryResult<i64> {
    sync_state::table.find("push_cursor").select(sync_state::value).first(conn)
}

impl Pusher {
    pub fn new(pool: Pool, national: &str, key: NodeSigningKey) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("an HTTP client with default TLS settings");
        Self { pool, client, national: national.trim_end_matches('/').to_string(), key: Arc::new(key) }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConn) -> QueryResult<T> + Send + 'static,
    ) -> Result<T, PushError> {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| PushError::Database(e.to_string()))?;
            f(&mut conn).map_err(|e| PushError::Database(e.to_string()))
        })
        .await
        .map_err(|e| PushError::Database(e.to_string()))?
    }

    /// Sends the next batch after the cursor, if any.
    pub async fn push_once(&self) -> Result<PushReport, PushError> {
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
        let body = serde_json::to_vec(&request).expect("push requests serialise");
        let mut req = self
            .client
            .post(format!("{}{PUSH_PATH}", self.national))
            .header("content-type", "application/json")
            .body(body.clone());
        for (name, value) in self.key.sign_now("POST", PUSH_PATH, &body).pairs() {
            req = req.header(name, value);
        }
        let response = req.send().await.map_err(|e| PushError::Transport(e.to_string()))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| PushError::Transport(e.to_string()))?;
        if !status.is_success() {
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("message")?.as_str().map(str::to_string))
                .unwrap_or(text);
            return Err(PushError::Refused { status: status.as_u16(), message });
        }
        let answer: PushResponse = serde_json::from_str(&text)
            .map_err(|e| PushError::Transport(format!("unreadable answer from the national server: {e}")))?;
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

    /// Pushes until stopped: right away while events wait, every `idle` otherwise, with capped
    /// exponential backoff after failures.
    pub async fn run(self, idle: Duration) {
        let mut backoff = Duration::from_millis(500);
        loop {
            match self.push_once().await {
                Ok(report) => {
                    backoff = Duration::from_millis(500);
                    if report.acknowledged > 0 {
                        tracing::info!(acknowledged = report.acknowledged, parked = report.parked, "pushed");
                    }
                    if !report.more {
                        tokio::time::sleep(idle).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "push failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
