//! E-mail digests (issue #8): one message per nurse and period with the postings new to her list
//! since her last digest, sent by her home node only, once.
//!
//! **Sent once.** A run *plans*: for every nurse whose cadence is due and who has something new,
//! it records the intent — a `digests` row with the period, a Message-ID derived from the nurse
//! and the period, and the postings it will list — committed a step of 1,000 nurses at a time
//! (`UNIQUE (nurse_id, period)`: a later run in the same period plans nobody twice, and plans
//! what a stopped run had not reached). It *sends* the pending rows as they are committed, from
//! the plan's first step on, and marks each `sent` when SMTP accepts it; a message's data is ended
//! only once the previous one is marked. After a crash the next run sends only what is not
//! marked, under the same Message-ID; a crash between SMTP's acceptance and the mark repeats that
//! one message, with the same Message-ID, and nothing else.
//!
//! **Three threads of work** in a run: the plan (a blocking thread), a preparer (another) that
//! takes the pending rows in batches of 250 after the last one it took, checks them again,
//! renders and composes them — one batch ahead of the sender — and the sender, which does only
//! SMTP I/O and the marks. What stays in sequence is the rule above: each message costs the round
//! trip that ends its data and one committed UPDATE.
//!
//! **Checked again at send time**, for each batch when the sender starts the one before it, so
//! at most 500 messages ahead of the message: her consent for jobs or training still given, her
//! cadence not 停止 (one-click unsubscribe), this node still her home node, not erased, her
//! address not bouncing. Otherwise the digest is cancelled, unsent.
//!
//! **One sender at a time**, by a lease (10 s) that the preparer renews at every look and the
//! sender once a third of it has passed. Before a message's data is ended the sender makes sure
//! the lease cannot have lapsed; a lapse (another sender may have sent the same rows meanwhile)
//! stops the run with that message unended, and a mark that finds its digest already sent stops
//! it too.
//!
//! Temporary SMTP failures leave the digest pending with a capped backoff (`mail::retry_delay_secs`);
//! a permanent refusal marks her address as bouncing (no more mail to it; staff see it).
//!
//! **Unsubscribe** (RFC 8058): each digest carries `List-Unsubscribe` with a one-click URL and
//! `List-Unsubscribe-Post: List-Unsubscribe=One-Click`, and the same link in its text. The URL
//! holds her nurse id and an HMAC of it under a key derived from this node's signing key, so it
//! needs no session, no cookie and no CSRF token, cannot be forged for someone else, and nothing
//! secret is stored.

use std::collections::{HashMap, HashSet};

use chrono::{Datelike, NaiveDateTime};
use diesel::prelude::*;
use hmac::{Hmac, KeyInit, Mac};
use ncf_shared::ConsentScope;
use ncf_shared::db::{DbConn, Pool};
use ncf_shared::federation::NodeSigningKey;
use ncf_shared::posting::{EmploymentType, PostingKind};
use sha2::{Digest, Sha256};

use crate::mail::{Letter, Mailer, SendError};
use crate::postings::Match;
use crate::schema::{digests, national_status, nurses};

/// How often she wants a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cadence {
    Weekly,
    Daily,
    Off,
}

impl Cadence {
    pub const ALL: [Self; 3] = [Self::Weekly, Self::Daily, Self::Off];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Weekly => "weekly",
            Self::Daily => "daily",
            Self::Off => "off",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            Self::Weekly => "毎週",
            Self::Daily => "毎日",
            Self::Off => "停止",
        }
    }

    /// The period a digest sent at `now` belongs to, in Japan time: `daily-2026-12-05` or
    /// `weekly-2026-W49` (ISO week).
    pub fn period(self, now: NaiveDateTime) -> String {
        let day = (now + chrono::Duration::hours(9)).date();
        match self {
            Self::Daily => format!("daily-{day}"),
            Self::Weekly | Self::Off => {
                let w = day.iso_week();
                format!("weekly-{}-W{:02}", w.year(), w.week())
            }
        }
    }
}

/// The key of the one-click unsubscribe links.
#[derive(Clone)]
pub struct UnsubscribeKey([u8; 32]);

impl UnsubscribeKey {
    /// Derived from the node's signing key (what a node keeps secret anyway), so that the links
    /// survive restarts and nothing more is stored.
    pub fn from_signing_key(key: &NodeSigningKey) -> Self {
        let mut h = Sha256::new();
        h.update(b"ncf/digest-unsubscribe/v1\n");
        h.update(key.to_base64().as_bytes());
        Self(h.finalize().into())
    }

    pub fn token(&self, nurse_id: &str) -> String {
        use base64::Engine;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(nurse_id.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    pub fn verify(&self, nurse_id: &str, token: &str) -> bool {
        crate::web::tokens_equal(&self.token(nurse_id), token)
    }
}

/// The Message-ID of her digest for a period: the same whenever it is sent.
pub fn message_id(nurse_id: &str, period: &str, host: &str) -> String {
    let digest = Sha256::digest(format!("ncf-digest\n{nurse_id}").as_bytes());
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("<{period}.{hex}@{host}>")
}

/// The host part of the public URL, for Message-IDs.
pub fn host_of(public_url: &str) -> String {
    let rest = public_url.split_once("://").map_or(public_url, |(_, r)| r);
    let host = rest.split(['/', ':']).next().unwrap_or("");
    if host.is_empty() { "localhost".into() } else { host.to_string() }
}

/// One posting planned into a digest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Planned {
    prefecture: String,
    posting_id: String,
}

/// Her settings as the digest needs them.
#[derive(Debug, Clone)]
pub struct DigestSettings {
    pub cadence: Cadence,
    /// Employment types she wants in job postings; empty: all.
    pub employment: Vec<EmploymentType>,
    pub last_digest_at: Option<NaiveDateTime>,
    pub bouncing_since: Option<NaiveDateTime>,
    pub bounce_reason: Option<String>,
}

fn parse_filter(text: &str) -> Vec<EmploymentType> {
    text.split(',').filter_map(EmploymentType::parse).collect()
}

pub fn settings(conn: &mut DbConn, nurse_id: &str) -> QueryResult<DigestSettings> {
    let (cadence, filter, bouncing, reason): (String, String, Option<NaiveDateTime>, Option<String>) =
        nurses::table
            .find(nurse_id)
            .select((
                nurses::digest_cadence,
                nurses::employment_filter,
                nurses::bouncing_since,
                nurses::bounce_reason,
            ))
            .first(conn)?;
    let last = last_sent(conn, &[nurse_id])?.remove(nurse_id);
    Ok(DigestSettings {
        cadence: Cadence::parse(&cadence).unwrap_or(Cadence::Weekly),
        employment: parse_filter(&filter),
        last_digest_at: last,
        bouncing_since: bouncing,
        bounce_reason: reason,
    })
}

/// Changes her cadence and employment-type filter (they stay at the node).
pub fn set_settings(
    conn: &mut DbConn,
    nurse_id: &str,
    cadence: Cadence,
    employment: &[EmploymentType],
) -> QueryResult<()> {
    let filter: Vec<&str> = employment.iter().map(|t| t.as_str()).collect();
    ncf_shared::db::write_transaction(conn, |conn| {
        diesel::update(nurses::table.find(nurse_id))
            .set((
                nurses::digest_cadence.eq(cadence.as_str()),
                nurses::employment_filter.eq(filter.join(",")),
            ))
            .execute(conn)?;
        if cadence == Cadence::Off {
            cancel_pending(conn, nurse_id, "配信停止")?;
        }
        Ok(())
    })
}

/// One-click unsubscribe: her digests stop, and a digest planned but not sent is cancelled.
/// Returns whether anything changed (a second click changes nothing).
pub fn unsubscribe(conn: &mut DbConn, nurse_id: &str) -> QueryResult<bool> {
    ncf_shared::db::write_transaction(conn, |conn| {
        let changed = diesel::update(nurses::table.find(nurse_id).filter(nurses::digest_cadence.ne("off")))
            .set(nurses::digest_cadence.eq("off"))
            .execute(conn)?;
        cancel_pending(conn, nurse_id, "配信停止")?;
        if changed > 0 {
            tracing::info!(nurse = %nurse_id, "digests stopped by one-click unsubscribe");
        }
        Ok(changed > 0)
    })
}

fn cancel_pending(conn: &mut DbConn, nurse_id: &str, why: &str) -> QueryResult<usize> {
    diesel::update(digests::table.filter(digests::nurse_id.eq(nurse_id)).filter(digests::state.eq("pending")))
        .set((
            digests::state.eq("cancelled"),
            digests::last_error.eq(why),
            digests::finished_at.eq(ncf_shared::time::now_utc()),
        ))
        .execute(conn)
}

/// Whether the match belongs in a digest that filters job postings by these employment types.
fn wanted(m: &Match, employment: &[EmploymentType]) -> bool {
    m.kind == PostingKind::Training
        || employment.is_empty()
        || m.body.employment_types.iter().any(|t| employment.contains(t))
}

/// The nurses among `ids` this node may mail a digest now, with their addresses (the send-time
/// check, also used when planning).
/// Who may still be mailed, as it stands now, and what for.
struct Mailable {
    email: String,
    /// The kinds her consents cover now: jobs under `job_support`, training under
    /// `training_info`.
    kinds: Vec<PostingKind>,
    employment: Vec<EmploymentType>,
}

impl Mailable {
    /// Whether a posting planned for her digest may still go in it.
    fn wants(&self, m: &Match) -> bool {
        self.kinds.contains(&m.kind) && wanted(m, &self.employment)
    }
}

fn mailable(conn: &mut DbConn, ids: &[&str]) -> QueryResult<HashMap<String, Mailable>> {
    let mut out = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let consents = crate::consent::current_many(conn, ids)?;
    let mut blocked: HashSet<String> = HashSet::new();
    for chunk in ids.chunks(1000) {
        let statuses: Vec<(String, Option<bool>, Option<NaiveDateTime>)> = national_status::table
            .filter(national_status::nurse_id.eq_any(chunk))
            .select((national_status::nurse_id, national_status::home_here, national_status::erased_at))
            .load(conn)?;
        for (id, home_here, erased_at) in statuses {
            if erased_at.is_some() || home_here == Some(false) {
                blocked.insert(id);
            }
        }
        let rows: Vec<(String, String, String, Option<NaiveDateTime>, String)> = nurses::table
            .filter(nurses::id.eq_any(chunk))
            .select((
                nurses::id,
                nurses::email,
                nurses::digest_cadence,
                nurses::bouncing_since,
                nurses::employment_filter,
            ))
            .load(conn)?;
        for (id, email, cadence, bouncing, filter) in rows {
            let kinds: Vec<PostingKind> = consents
                .get(&id)
                .filter(|c| c.proofed().is_some())
                .map(|c| {
                    [
                        (PostingKind::Job, ConsentScope::JobSupport),
                        (PostingKind::Training, ConsentScope::TrainingInfo),
                    ]
                    .into_iter()
                    .filter(|(_, scope)| c.granted(*scope))
                    .map(|(kind, _)| kind)
                    .collect()
                })
                .unwrap_or_default();
            if !kinds.is_empty()
                && !email.is_empty()
                && cadence != "off"
                && bouncing.is_none()
                && !blocked.contains(&id)
            {
                out.insert(id, Mailable { email, kinds, employment: parse_filter(&filter) });
            }
        }
    }
    Ok(out)
}

/// Records the digests due for `cadence` at `now`: one per nurse with something new since her
/// last digest, none for a nurse who already has one for this period. Returns how many.
pub fn plan(
    conn: &mut DbConn,
    cadence: Cadence,
    here: ncf_shared::Prefecture,
    host: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    plan_in_steps(conn, cadence, here, host, now, &Planning::default())
}

/// Nurses planned per transaction.
const PLAN_STEP: usize = 1_000;

/// [`plan`], committed a step of [`PLAN_STEP`] nurses at a time and told to `progress`, so that
/// sending can begin with the first step. A run stopped midway leaves the rest unplanned; a
/// later run for the same period plans them and nobody twice (`UNIQUE (nurse_id, period)`).
fn plan_in_steps(
    conn: &mut DbConn,
    cadence: Cadence,
    here: ncf_shared::Prefecture,
    host: &str,
    now: NaiveDateTime,
    progress: &Planning,
) -> QueryResult<usize> {
    if cadence == Cadence::Off {
        return Ok(0);
    }
    let period = cadence.period(now);
    let today = (now + chrono::Duration::hours(9)).date();
    let candidates: Vec<(String, String)> = nurses::table
        .filter(nurses::digest_cadence.eq(cadence.as_str()))
        .filter(nurses::email.ne(""))
        .filter(nurses::bouncing_since.is_null())
        .filter(nurses::proofed_at.is_not_null())
        .select((nurses::id, nurses::employment_filter))
        .load(conn)?;
    if candidates.is_empty() {
        return Ok(0);
    }
    let planned_already: HashSet<String> = digests::table
        .filter(digests::period.eq(&period))
        .select(digests::nurse_id)
        .load::<String>(conn)?
        .into_iter()
        .collect();
    let candidates: Vec<&(String, String)> =
        candidates.iter().filter(|(id, _)| !planned_already.contains(id)).collect();
    let mut planned = 0;
    for step in candidates.chunks(PLAN_STEP) {
        let ids: Vec<&str> = step.iter().map(|c| c.0.as_str()).collect();
        let may = mailable(conn, &ids)?;
        let mut matches = crate::postings::matches_of_many(conn, here, &ids, today)?;
        let last_sent = last_sent(conn, &ids)?;
        let mut rows = Vec::new();
        for (id, filter) in step {
            if !may.contains_key(id) {
                continue;
            }
            let last = last_sent.get(id);
            let employment = parse_filter(filter);
            let new: Vec<Planned> = matches
                .remove(id)
                .unwrap_or_default()
                .into_iter()
                .filter(|m| last.is_none_or(|l| m.matched_at > *l))
                .filter(|m| wanted(m, &employment))
                .map(|m| Planned {
                    prefecture: m.posting.prefecture.code(),
                    posting_id: m.posting.posting_id,
                })
                .collect();
            if new.is_empty() {
                continue;
            }
            // Ids are UUIDv7, ordered by creation within this process: with `created_at` the
            // same for the whole plan, each step's digests come after the previous step's in
            // the sender's cursor order.
            rows.push((
                digests::id.eq(ncf_shared::ids::RecordId::new().0),
                digests::nurse_id.eq(id.clone()),
                digests::period.eq(period.clone()),
                digests::message_id.eq(message_id(id, &period, host)),
                digests::postings.eq(serde_json::to_string(&new).expect("plain data")),
                digests::state.eq("pending"),
                digests::attempts.eq(0),
                digests::next_attempt_at.eq(now),
                digests::created_at.eq(now),
            ));
        }
        // Counted as inserted: a row another run planned meanwhile is not planned again.
        planned += ncf_shared::db::write_transaction(conn, |conn| {
            let mut inserted = 0;
            for batch in rows.chunks(500) {
                inserted += ncf_shared::per_backend!(&mut *conn, c => diesel::insert_into(digests::table)
                    .values(batch.to_vec())
                    .on_conflict_do_nothing()
                    .execute(c))?;
            }
            Ok::<_, diesel::result::Error>(inserted)
        })?;
        progress.step();
    }
    if planned > 0 {
        tracing::info!(cadence = cadence.as_str(), %period, planned, "digests planned");
    }
    Ok(planned)
}

/// How far a plan running beside the sender has come: the sender, finding nothing pending,
/// waits for the next step rather than ending while digests are still being planned.
#[derive(Default)]
pub struct Planning {
    state: std::sync::Mutex<(u64, bool)>,
    changed: std::sync::Condvar,
}

impl Planning {
    fn update(&self, f: impl FnOnce(&mut (u64, bool))) {
        f(&mut self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        self.changed.notify_all();
    }

    /// A step committed.
    fn step(&self) {
        self.update(|s| s.0 += 1);
    }

    /// Planning ended (done or failed): what is pending now is all there will be.
    fn finish(&self) {
        self.update(|s| s.1 = true);
    }

    /// Steps committed so far, and whether planning has ended.
    fn seen(&self) -> (u64, bool) {
        *self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until a step later than `steps` is committed or planning ends.
    fn wait_past(&self, steps: u64) {
        let state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        drop(
            self.changed
                .wait_while(state, |s| s.0 <= steps && !s.1)
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
    }
}

/// Ends the plan's [`Planning`] however the planner stops (an error, a panic).
struct Finish(std::sync::Arc<Planning>);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// A pending digest as the sender takes it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = digests)]
pub struct Pending {
    pub id: String,
    pub nurse_id: String,
    pub period: String,
    pub message_id: String,
    pub postings: String,
    pub attempts: i32,
    pub created_at: NaiveDateTime,
}

/// Up to `limit` pending digests, oldest first, after `after` (the last one taken, by
/// `(created_at, id)`): each batch starts where the previous one ended (index `digests_queue`).
fn due(
    conn: &mut DbConn,
    now: Option<NaiveDateTime>,
    after: Option<&(NaiveDateTime, String)>,
    limit: i64,
) -> QueryResult<Vec<Pending>> {
    // A literal, not a bound value: the partial index `digests_queue` is chosen only for it.
    let q = digests::table
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>("digests.state = 'pending'"))
        .into_boxed();
    let q = match now {
        Some(now) => q.filter(digests::next_attempt_at.le(now)),
        None => q,
    };
    // A row value, so that both databases start the index walk at the cursor (with `a > x OR
    // (a = x AND b > y)` they walked the index from its start, past every entry of rows sent in
    // this run that PostgreSQL keeps until vacuum).
    let q = match after {
        Some((at, id)) => q.filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("(digests.created_at, digests.id) > (")
                .bind::<diesel::sql_types::Timestamp, _>(*at)
                .sql(", ")
                .bind::<diesel::sql_types::Text, _>(id.clone())
                .sql(")"),
        ),
        None => q,
    };
    q.order((digests::created_at, digests::id)).limit(limit).select(Pending::as_select()).load(conn)
}

/// One statement, right after SMTP accepted: the window in which a crash repeats a message is
/// as short as it can be. (When she last got a digest is read from here: [`last_sent`].) It runs
/// on the backend's own connection, whose cache keeps the prepared statement: through the
/// multi-backend connection SQLite parsed it again for every message, a third of the mark's
/// time, and each message waits for the previous one's mark.
///
/// A digest cancelled while it was on its way (she unsubscribed after the send-time check) was
/// still sent, and is recorded so. Returns 0 when it was already marked sent.
fn mark_sent(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> QueryResult<usize> {
    let update = diesel::update(digests::table.find(id).filter(digests::state.ne("sent"))).set((
        digests::state.eq("sent"),
        digests::finished_at.eq(now),
        digests::attempts.eq(digests::attempts + 1),
    ));
    ncf_shared::per_backend!(conn, c => update.execute(c))
}

/// When each of these nurses' latest sent digest was planned: what she was sent counts from
/// then, so matches that arrived since are new next time.
pub fn last_sent(conn: &mut DbConn, nurse_ids: &[&str]) -> QueryResult<HashMap<String, NaiveDateTime>> {
    let mut out = HashMap::new();
    for chunk in nurse_ids.chunks(1000) {
        let rows: Vec<(String, Option<NaiveDateTime>)> = digests::table
            .filter(digests::nurse_id.eq_any(chunk))
            .filter(digests::state.eq("sent"))
            .group_by(digests::nurse_id)
            .select((digests::nurse_id, diesel::dsl::max(digests::created_at)))
            .load(conn)?;
        out.extend(rows.into_iter().filter_map(|(id, at)| Some((id, at?))));
    }
    Ok(out)
}

fn mark_failed(conn: &mut DbConn, d: &Pending, error: &SendError, now: NaiveDateTime) -> QueryResult<()> {
    let attempts = d.attempts + 1;
    ncf_shared::db::write_transaction(conn, |conn| match error {
        SendError::Transient(e) => diesel::update(digests::table.find(&d.id))
            .set((
                digests::attempts.eq(attempts),
                digests::next_attempt_at
                    .eq(now + chrono::Duration::seconds(crate::mail::retry_delay_secs(attempts))),
                digests::last_error.eq(e),
            ))
            .execute(conn)
            .map(drop),
        SendError::Permanent(e) => {
            diesel::update(digests::table.find(&d.id))
                .set((
                    digests::attempts.eq(attempts),
                    digests::state.eq("bounced"),
                    digests::last_error.eq(e),
                    digests::finished_at.eq(now),
                ))
                .execute(conn)?;
            diesel::update(nurses::table.find(&d.nurse_id).filter(nurses::bouncing_since.is_null()))
                .set((nurses::bouncing_since.eq(now), nurses::bounce_reason.eq(e)))
                .execute(conn)?;
            tracing::warn!(nurse = %d.nurse_id, "address marked as bouncing; no more mail to it");
            Ok(())
        }
    })
}

fn cancel(conn: &mut DbConn, d: &Pending, why: &str) -> QueryResult<()> {
    diesel::update(digests::table.find(&d.id).filter(digests::state.eq("pending")))
        .set((
            digests::state.eq("cancelled"),
            digests::last_error.eq(why),
            digests::finished_at.eq(ncf_shared::time::now_utc()),
        ))
        .execute(conn)
        .map(drop)
}

/// Clears the bounce mark (staff, after she gave a working address).
pub fn clear_bounce(conn: &mut DbConn, nurse_id: &str) -> QueryResult<usize> {
    diesel::update(nurses::table.find(nurse_id))
        .set((nurses::bouncing_since.eq(None::<NaiveDateTime>), nurses::bounce_reason.eq(None::<String>)))
        .execute(conn)
}

/// One sender at a time: `serve`'s schedule and an operator's `digest` run must not both send the
/// same pending digest. The sender holds a lease in `sync_state` (expiry in Unix milliseconds and
/// a random holder id), see [`Lease`]; a sender killed mid-run leaves it to expire.
pub const LEASE_MS: i64 = 10_000;

fn set_state(conn: &mut DbConn, name: &str, value: i64) -> QueryResult<()> {
    use crate::schema::sync_state;
    ncf_shared::per_backend!(&mut *conn, c => diesel::insert_into(sync_state::table)
        .values((sync_state::name.eq(name), sync_state::value.eq(value)))
        .on_conflict(sync_state::name)
        .do_update()
        .set(sync_state::value.eq(value))
        .execute(c))
    .map(drop)
}

/// Takes (or renews) the sending lease for `holder`; false while another live sender holds it.
fn take_lease(conn: &mut DbConn, holder: i64, now_ms: i64) -> QueryResult<bool> {
    use crate::schema::sync_state;
    ncf_shared::db::write_transaction(conn, |conn| {
        // Take the row's lock before reading (a plain read under READ COMMITTED would let two
        // senders both see an expired lease): write it first, then read.
        ncf_shared::per_backend!(&mut *conn, c => diesel::insert_into(sync_state::table)
            .values((sync_state::name.eq("digest_lease_until"), sync_state::value.eq(0i64)))
            .on_conflict(sync_state::name)
            .do_update()
            .set(sync_state::value.eq(sync_state::value))
            .execute(c))?;
        let read = |conn: &mut DbConn, name: &str| -> QueryResult<Option<i64>> {
            sync_state::table.find(name).select(sync_state::value).first(conn).optional()
        };
        let until = read(conn, "digest_lease_until")?.unwrap_or(0);
        let held_by = read(conn, "digest_lease_holder")?.unwrap_or(0);
        if until > now_ms && held_by != holder {
            return Ok(false);
        }
        set_state(conn, "digest_lease_until", now_ms + LEASE_MS)?;
        set_state(conn, "digest_lease_holder", holder)?;
        Ok(true)
    })
}

/// A run's hold on the sending lease: a random holder id and when it was last taken or renewed
/// (by the preparer at each look, by the sender when a third of it has passed).
struct Lease {
    holder: i64,
    renewed_ms: std::sync::atomic::AtomicI64,
}

impl Lease {
    fn new() -> Self {
        let holder =
            (u64::from_str_radix(&ncf_shared::secret::random_token(8), 16).unwrap_or(1) >> 1) as i64 | 1;
        Self { holder, renewed_ms: 0.into() }
    }

    /// Takes or renews it; false when another sender holds it.
    fn renew(&self, conn: &mut DbConn) -> QueryResult<bool> {
        let at = now_ms();
        let held = take_lease(conn, self.holder, at)?;
        if held {
            self.renewed_ms.store(at, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(held)
    }

    /// How long ago it was last renewed, in milliseconds.
    fn age_ms(&self) -> i64 {
        now_ms() - self.renewed_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Gives it up, if it is still ours.
    fn release(&self, conn: &mut DbConn) -> QueryResult<()> {
        use crate::schema::sync_state;
        let held_by: Option<i64> =
            sync_state::table.find("digest_lease_holder").select(sync_state::value).first(conn).optional()?;
        if held_by == Some(self.holder) {
            set_state(conn, "digest_lease_until", 0)?;
        }
        Ok(())
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub planned: usize,
    pub sent: usize,
    pub cancelled: usize,
    pub bounced: usize,
    /// Left pending after a temporary failure (SMTP down): tried again later.
    pub waiting: usize,
}

/// Renders and sends digests.
#[derive(Clone)]
pub struct Digester {
    pub pool: Pool,
    pub mailer: Mailer,
    pub key: UnsubscribeKey,
    pub public_url: String,
    pub here: ncf_shared::Prefecture,
}

/// Digests checked and sent per batch. The preparer checks a batch when the sender starts the
/// one before it, so a digest goes out at most two batches (500 messages) after its check.
const BATCH: i64 = 250;

/// A digest checked again at send time and composed, ready to go.
struct Outgoing {
    pending: Pending,
    /// Her address, masked for the log.
    to: String,
    composed: Result<crate::mail::Composed, SendError>,
}

/// A batch the preparer hands to the sender.
struct Batch {
    ready: Vec<Outgoing>,
    cancelled: usize,
    /// The last digest taken (`due`'s cursor for the next batch).
    last: (NaiveDateTime, String),
}

/// The next digest to send, taking the next batch from the preparer when this one is done
/// (counting what it cancelled); `None` when none is left.
async fn next_outgoing(
    rx: &mut tokio::sync::mpsc::Receiver<Result<Batch, String>>,
    queue: &mut std::vec::IntoIter<Outgoing>,
    report: &mut Report,
) -> Result<Option<Outgoing>, String> {
    loop {
        if let Some(o) = queue.next() {
            return Ok(Some(o));
        }
        match rx.recv().await {
            None => return Ok(None),
            Some(batch) => {
                let batch = batch?;
                report.cancelled += batch.cancelled;
                *queue = batch.ready.into_iter();
            }
        }
    }
}

#[derive(askama::Template)]
#[template(path = "digest.html")]
struct DigestHtml<'a> {
    center: &'a str,
    name: &'a str,
    sections: &'a [(&'static str, Vec<crate::web::nurse::MatchView>)],
    unsubscribe: &'a str,
    page: &'a str,
}

#[derive(askama::Template)]
#[template(path = "digest.txt")]
struct DigestText<'a> {
    center: &'a str,
    name: &'a str,
    sections: &'a [(&'static str, Vec<crate::web::nurse::MatchView>)],
    unsubscribe: &'a str,
    page: &'a str,
}

impl Digester {
    pub fn host(&self) -> String {
        host_of(&self.public_url)
    }

    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConn) -> QueryResult<T> + Send + 'static,
    ) -> Result<T, String> {
        crate::mail::on_pool(&self.pool, f).await
    }

    /// Plans the digests due for `cadence` now and sends every pending digest (also those left
    /// by an earlier run), ignoring backoff when `now_all` (an operator's run). Sending begins
    /// with the plan's first step and follows it.
    pub async fn run(&self, cadence: Cadence, now_all: bool) -> Result<Report, String> {
        let (here, host, pool) = (self.here, self.host(), self.pool.clone());
        let started = std::time::Instant::now();
        let planning = std::sync::Arc::new(Planning::default());
        let planner = {
            let finish = Finish(planning.clone());
            tokio::task::spawn_blocking(move || {
                let mut conn = pool.get().map_err(|e| e.to_string())?;
                let planned =
                    plan_in_steps(&mut conn, cadence, here, &host, ncf_shared::time::now_utc(), &finish.0)
                        .map_err(|e| e.to_string());
                Ok::<_, String>((planned?, started.elapsed()))
            })
        };
        let sent = self.send_due_following(now_all, now_all, Some(planning)).await;
        let (planned, planning) = planner.await.map_err(|e| e.to_string())??;
        let mut report = sent?;
        tracing::info!(
            planned,
            plan_seconds = planning.as_secs_f64(),
            seconds = started.elapsed().as_secs_f64(),
            "digest run"
        );
        report.planned = planned;
        Ok(report)
    }

    /// Sends the pending digests that are due (all of them when `all`), oldest first, until none
    /// is left or SMTP fails for the moment. With `wait`, waits (up to a lease's length) for
    /// another sender to finish or expire; without, leaves the work to it.
    pub async fn send_due(&self, all: bool, wait: bool) -> Result<Report, String> {
        self.send_due_following(all, wait, None).await
    }

    /// [`Digester::send_due`], also sending what `planning` records while it runs.
    async fn send_due_following(
        &self,
        all: bool,
        wait: bool,
        planning: Option<std::sync::Arc<Planning>>,
    ) -> Result<Report, String> {
        let lease = std::sync::Arc::new(Lease::new());
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(LEASE_MS as u64 + 2_000);
        loop {
            let taking = lease.clone();
            if self.db(move |conn| taking.renew(conn)).await? {
                break;
            }
            if !wait {
                return Ok(Report::default());
            }
            if std::time::Instant::now() > deadline {
                return Err("another digest run is sending; try again when it has finished".into());
            }
            tracing::info!("waiting for another digest run to finish or its lease to expire");
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        let result = self.send_leased(all, lease.clone(), planning).await;
        let _ = self.db(move |conn| lease.release(conn)).await;
        result
    }

    /// Marks a digest sent, on a connection kept for the run (a pool checkout per message cost
    /// as much as the update), on the sender's own thread: the mark is the one thing the sender
    /// waits for between two messages (the next one's data is ended only once it is written),
    /// and handing it to a blocking thread and back cost as much as the UPDATE itself. The next
    /// message's envelope and data, already under way, wait at most that long.
    async fn mark(conn: &mut DbConn, id: &str) -> Result<(), String> {
        // The message was accepted: a passing database error must not leave it unmarked (the
        // next run would send it again). The update is idempotent.
        let mut pause = std::time::Duration::from_millis(50);
        for attempt in 0..5 {
            match mark_sent(conn, id, ncf_shared::time::now_utc()) {
                // Already marked sent, and not by an earlier try of ours: another sender sent it
                // too. Stop before anything else goes out twice.
                Ok(0) if attempt == 0 => {
                    return Err(format!(
                        "digest {id} was already marked sent by another sender: the sending lease was lost"
                    ));
                }
                Ok(_) => return Ok(()),
                Err(e) if attempt < 4 => {
                    tracing::warn!(digest = %id, error = %e, "could not mark a digest sent; trying again");
                    tokio::time::sleep(pause).await;
                    pause *= 4;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        unreachable!("the last try returns")
    }

    /// Before a message's data is ended: the lease must still be ours. Renewed once a third of
    /// it has passed; if it may have lapsed (another sender may have taken it and sent the same
    /// rows meanwhile, as after a long wait for the plan), the run stops, leaving this message
    /// unended and pending for the next run.
    async fn hold(&self, lease: &std::sync::Arc<Lease>) -> Result<(), String> {
        let age = lease.age_ms();
        if age >= LEASE_MS - 1_000 {
            return Err("the sending lease may have lapsed; the rest is left to the next run".into());
        }
        if age > LEASE_MS / 3 {
            let lease = lease.clone();
            if !self.db(move |conn| lease.renew(conn)).await? {
                return Err("the sending lease was lost".into());
            }
        }
        Ok(())
    }

    async fn send_leased(
        &self,
        all: bool,
        lease: std::sync::Arc<Lease>,
        planning: Option<std::sync::Arc<Planning>>,
    ) -> Result<Report, String> {
        // One batch prepared ahead, while the one before it goes out.
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let preparer = self.preparer(all, lease.clone(), planning, tx);
        let sent = self.send_marking(rx, &lease).await;
        // The sender is gone (its receiver dropped): the preparer stops at its next hand-over,
        // and must have stopped before the lease is given up (it renews the lease per batch).
        let prepared = preparer.await;
        let report = sent?;
        prepared.map_err(|e| e.to_string())?;
        Ok(report)
    }

    /// Prepares the batches on a blocking thread, one ahead of the sender, and hands them over;
    /// stops after the last one, at an error (handed over too), or when the sender is gone.
    fn preparer(
        &self,
        all: bool,
        lease: std::sync::Arc<Lease>,
        planning: Option<std::sync::Arc<Planning>>,
        tx: tokio::sync::mpsc::Sender<Result<Batch, String>>,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let mut conn = match this.pool.get() {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e.to_string()));
                    return;
                }
            };
            let mut after = None;
            loop {
                // A batch is checked only once the sender has taken the one before it (the
                // channel has room), so that the check stays close to the sending.
                let Ok(room) = runtime.block_on(tx.reserve()) else {
                    return;
                };
                // How far the plan had come before this look: if it had ended, finding nothing
                // means nothing is left; otherwise wait for its next step and look again.
                let seen = planning.as_deref().map(Planning::seen);
                let batch = match this.prepare(&mut conn, all, &lease, after.as_ref()) {
                    Ok(Some(batch)) => batch,
                    Ok(None) => match (planning.as_deref(), seen) {
                        (Some(planning), Some((steps, false))) => {
                            drop(room);
                            planning.wait_past(steps);
                            continue;
                        }
                        _ => return,
                    },
                    Err(e) => {
                        room.send(Err(e));
                        return;
                    }
                };
                after = Some(batch.last.clone());
                room.send(Ok(batch));
            }
        })
    }

    /// The next batch after `after`: each digest checked again — what may no longer go, or has
    /// nothing left to list, is cancelled — and the rest rendered and composed. `None` when no
    /// digest is left.
    fn prepare(
        &self,
        conn: &mut DbConn,
        all: bool,
        lease: &Lease,
        after: Option<&(NaiveDateTime, String)>,
    ) -> Result<Option<Batch>, String> {
        // Renewed at every look, also one that finds nothing while a plan is still running.
        if !lease.renew(conn).map_err(|e| e.to_string())? {
            return Err("the sending lease was lost (a batch took longer than the lease)".into());
        }
        let now = ncf_shared::time::now_utc();
        let batch = due(conn, (!all).then_some(now), after, BATCH).map_err(|e| e.to_string())?;
        let Some(last) = batch.last().map(|d| (d.created_at, d.id.clone())) else {
            return Ok(None);
        };
        let refs: Vec<&str> = batch.iter().map(|d| d.nurse_id.as_str()).collect();
        let (may, lists, names) = (|| {
            let may = mailable(conn, &refs)?;
            let lists =
                crate::postings::matches_of_many(conn, self.here, &refs, ncf_shared::time::today_jst())?;
            let names: HashMap<String, String> = nurses::table
                .filter(nurses::id.eq_any(&refs))
                .select((nurses::id, nurses::family_name, nurses::given_name))
                .load::<(String, String, String)>(conn)?
                .into_iter()
                .map(|(id, f, g)| (id, format!("{f} {g}")))
                .collect();
            QueryResult::Ok((may, lists, names))
        })()
        .map_err(|e| e.to_string())?;
        let mut out = Batch { ready: Vec::with_capacity(batch.len()), cancelled: 0, last };
        for d in batch {
            let Some(mailable) = may.get(&d.nurse_id) else {
                cancel(conn, &d, "送信時の確認で対象外（同意の取消、配信停止、転出など）")
                    .map_err(|e| e.to_string())?;
                out.cancelled += 1;
                continue;
            };
            let planned: Vec<Planned> = serde_json::from_str(&d.postings).unwrap_or_default();
            let wanted: HashSet<(String, String)> =
                planned.into_iter().map(|p| (p.prefecture, p.posting_id)).collect();
            let list: Vec<&Match> = lists
                .get(&d.nurse_id)
                .map(|l| {
                    l.iter()
                        .filter(|m| {
                            wanted.contains(&(m.posting.prefecture.code(), m.posting.posting_id.clone()))
                                // What she still asks for now: a scope withdrawn or a filter
                                // changed since planning takes those postings out.
                                && mailable.wants(m)
                        })
                        .collect()
                })
                .unwrap_or_default();
            if list.is_empty() {
                cancel(conn, &d, "掲載が終わり、お知らせする求人・研修がなくなりました")
                    .map_err(|e| e.to_string())?;
                out.cancelled += 1;
                continue;
            }
            let name = names.get(&d.nurse_id).map(String::as_str).unwrap_or_default();
            let letter = self.render(&d, &mailable.email, name, &list);
            out.ready.push(Outgoing {
                to: crate::mail::mask_email(&mailable.email),
                composed: self.mailer.compose(&letter),
                pending: d,
            });
        }
        Ok(Some(out))
    }

    /// Begins a prepared digest on a session (a message that could not be composed fails as
    /// its sending would).
    async fn begin(&self, o: &Outgoing) -> Result<crate::mail::Prepared<'_>, SendError> {
        match &o.composed {
            Ok(composed) => self.mailer.begin_composed(composed).await,
            Err(e) => Err(e.clone()),
        }
    }

    /// Sends what the preparer hands over, as a pipeline of two: while one message's data is
    /// ended and it is recorded as sent, the next one's envelope and data go out on another
    /// session. Its data is ended only after that record is written, so at any moment at most
    /// one message is accepted but not recorded (what a crash may repeat).
    async fn send_marking(
        &self,
        mut rx: tokio::sync::mpsc::Receiver<Result<Batch, String>>,
        lease: &std::sync::Arc<Lease>,
    ) -> Result<Report, String> {
        let mut report = Report::default();
        // The marks' connection, taken before anything is sent: once a message is accepted,
        // nothing but the mark itself should stand between it and its record.
        let pool = self.pool.clone();
        let mut marker = tokio::task::spawn_blocking(move || pool.get())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let mut queue = Vec::new().into_iter();
        let mut current = match next_outgoing(&mut rx, &mut queue, &mut report).await? {
            Some(o) => {
                let begun = self.begin(&o).await;
                Some((o, begun))
            }
            None => None,
        };
        while let Some((o, prepared)) = current.take() {
            // An error here drops this message's session unended: never accepted.
            let following = next_outgoing(&mut rx, &mut queue, &mut report).await?;
            self.hold(lease).await?;
            let end_this = async {
                // The previous message was recorded as sent before this one can be accepted
                // (the loop goes on only once its mark is written).
                let sent = match prepared {
                    Ok(prepared) => prepared.commit().await,
                    Err(e) => Err(e),
                };
                if sent.is_ok() {
                    Self::mark(&mut marker, &o.pending.id).await?;
                }
                Ok::<_, String>(sent)
            };
            let begin_next = async {
                match &following {
                    Some(next) => Some(self.begin(next).await),
                    None => None,
                }
            };
            // On an error, the next message's session is dropped unended: never accepted.
            let (sent, mut begun) = tokio::join!(end_this, begin_next);
            // A relay that takes one session at a time refuses the second: begin the next
            // message again, now that this one's session is free.
            if let (Ok(Ok(())), Some(Err(SendError::Transient(_))), Some(next)) = (&sent, &begun, &following)
            {
                begun = Some(self.begin(next).await);
            }
            match sent? {
                Ok(()) => report.sent += 1,
                Err(error) => {
                    tracing::warn!(digest = %o.pending.id, to = %o.to, %error, "digest not delivered");
                    let transient = matches!(error, SendError::Transient(_));
                    let failed = o.pending.clone();
                    self.db(move |conn| mark_failed(conn, &failed, &error, ncf_shared::time::now_utc()))
                        .await?;
                    if transient {
                        // SMTP is down: the rest would fail the same way; they wait.
                        report.waiting += 1;
                        return Ok(report);
                    }
                    report.bounced += 1;
                }
            }
            current = following.zip(begun);
        }
        Ok(report)
    }

    fn render<'a>(&self, d: &Pending, to: &'a str, name: &str, list: &[&Match]) -> Letter<'a> {
        use askama::Template;
        let center = format!("{}ナースセンター", self.here.name_ja());
        let sections: Vec<(&'static str, Vec<crate::web::nurse::MatchView>)> =
            [PostingKind::Job, PostingKind::Training]
                .into_iter()
                .map(|k| {
                    (
                        k.label_ja(),
                        list.iter()
                            .filter(|m| m.kind == k)
                            .map(|m| crate::web::nurse::match_view(m, None))
                            .collect::<Vec<_>>(),
                    )
                })
                .filter(|(_, l)| !l.is_empty())
                .collect();
        let unsubscribe =
            format!("{}/unsubscribe/{}/{}", self.public_url, d.nurse_id, self.key.token(&d.nurse_id));
        let page = format!("{}/me#matches", self.public_url);
        let text =
            DigestText { center: &center, name, sections: &sections, unsubscribe: &unsubscribe, page: &page }
                .render()
                .expect("digest text renders");
        let html =
            DigestHtml { center: &center, name, sections: &sections, unsubscribe: &unsubscribe, page: &page }
                .render()
                .expect("digest HTML renders");
        let count = list.len();
        Letter {
            to,
            subject: format!("【{center}】お住まいの近くの求人・研修 {count}件"),
            text,
            html: Some(html),
            message_id: Some(d.message_id.clone()),
            unsubscribe: Some(unsubscribe),
        }
    }
}

impl Digester {
    /// `serve`'s digests: the weekly and daily runs at their scheduled times, and every 30 s the
    /// pending digests whose retry is due (and those a crash left behind, at start).
    pub async fn schedule(
        self,
        weekly: ncf_shared::schedule::Schedule,
        daily: ncf_shared::schedule::Schedule,
    ) {
        for (cadence, schedule) in [(Cadence::Weekly, weekly), (Cadence::Daily, daily)] {
            let me = self.clone();
            tokio::spawn(async move {
                loop {
                    if let Some(next) = schedule.next() {
                        tracing::info!(cadence = cadence.as_str(), next = %next.to_rfc3339(), "digests scheduled");
                    }
                    if schedule.wait_next().await.is_none() {
                        break;
                    }
                    match me.run(cadence, false).await {
                        Ok(r) => tracing::info!(
                            cadence = cadence.as_str(),
                            planned = r.planned,
                            sent = r.sent,
                            cancelled = r.cancelled,
                            bounced = r.bounced,
                            waiting = r.waiting,
                            "digest run"
                        ),
                        Err(e) => {
                            tracing::error!(cadence = cadence.as_str(), error = %e, "digest run failed")
                        }
                    }
                }
            });
        }
        loop {
            match self.send_due(false, false).await {
                Ok(r) if r.sent + r.cancelled + r.bounced > 0 => {
                    tracing::info!(
                        sent = r.sent,
                        cancelled = r.cancelled,
                        bounced = r.bounced,
                        "pending digests sent"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "pending digests not sent"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        }
    }
}
