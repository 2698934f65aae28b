//! Staff accounts and their browser sessions: one implementation for the prefecture nodes
//! (nurse-center staff) and the national server (national staff), so a fix to signing in is made
//! once. Each binary owns the same three tables (`staff`, `sessions`, `sign_in_attempts`) in its
//! own migrations; their definitions are here.
//!
//! - Passwords are argon2id hashes, checked with the same work whether or not the account exists,
//!   so timing does not tell which usernames exist.
//! - Session tokens are random and only their SHA-256 is stored: a copy of the database signs
//!   nobody in. Each session carries the CSRF token its forms must return.
//! - Sign-in throttling is keyed by the (username, client) pair, so a stranger's failures never
//!   delay the real user from her own desk.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::db::DbConn;
use crate::ids::RecordId;
use crate::validation::FieldError;

/// The tables, the same columns in both binaries' migrations.
pub mod schema {
    diesel::table! {
        staff (id) {
            id -> Text,
            username -> Text,
            display_name -> Text,
            password_hash -> Text,
            created_at -> Timestamp,
            disabled_at -> Nullable<Timestamp>,
        }
    }

    diesel::table! {
        sessions (token_sha256) {
            token_sha256 -> Text,
            kind -> Text,
            subject_id -> Text,
            csrf -> Text,
            created_at -> Timestamp,
            expires_at -> Timestamp,
        }
    }

    diesel::table! {
        sign_in_attempts (id) {
            id -> Text,
            username -> Text,
            client -> Text,
            succeeded -> Bool,
            attempted_at -> Timestamp,
        }
    }

    diesel::allow_tables_to_appear_in_same_query!(staff, sessions, sign_in_attempts);
}

use schema::{sessions, sign_in_attempts, staff};

pub const MIN_PASSWORD_CHARS: usize = 12;
/// Session lifetimes: a staff working day; a nurse's visit.
pub const STAFF_SESSION_HOURS: i64 = 8;
pub const NURSE_SESSION_HOURS: i64 = 2;
/// Staff sign-in throttling, per (username, client) pair: after `FREE_FAILURES` failures in a
/// row (since the pair's last success, within `FAILURE_MEMORY_HOURS`) the pair must wait
/// `FIRST_DELAY_SECS` after its latest failure, doubling with each further failure, at most
/// `MAX_DELAY_SECS`. Keyed by the pair, so failures from elsewhere never delay the real user.
pub const FREE_FAILURES: i64 = 3;
pub const FIRST_DELAY_SECS: i64 = 30;
pub const MAX_DELAY_SECS: i64 = 15 * 60;
pub const FAILURE_MEMORY_HOURS: i64 = 24;
/// Passwords checked at once (argon2id takes about 19 MiB and tens of milliseconds each), and how
/// long a sign-in waits for its turn before it is told to try again.
pub const CONCURRENT_PASSWORD_CHECKS: usize = 2;
pub const PASSWORD_CHECK_WAIT_SECS: u64 = 10;

/// SHA-256 of a token, as stored.
pub fn digest(token: &str) -> String {
    crate::encoding::hex(&sha2::Sha256::digest(token.as_bytes()))
}
use sha2::Digest as _;

/// Compares tokens without stopping at the first difference.
pub fn tokens_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// What is wrong with each field (Japanese, for pages and the command line alike).
    #[error("invalid input: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("no such staff account")]
    NotFound,
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = staff)]
pub struct StaffMember {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub created_at: NaiveDateTime,
    pub disabled_at: Option<NaiveDateTime>,
}

fn hash(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes())
        .expect("argon2id hashing with default parameters")
        .to_string()
}

/// Creates an account. The username is trimmed and lower-cased; every problem is named at once.
pub fn add(
    conn: &mut DbConn,
    username: &str,
    display_name: &str,
    password: &str,
) -> Result<StaffMember, AccountError> {
    let username = username.trim().to_ascii_lowercase();
    let mut errors = Vec::new();
    let username_ok = (3..=32).contains(&username.len())
        && username.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !username_ok {
        errors.push(FieldError::new(
            "username",
            "ユーザー名は半角英小文字・数字・「._-」の3〜32文字で入力してください。",
        ));
    }
    if display_name.trim().is_empty() || display_name.chars().count() > 50 {
        errors.push(FieldError::new("display_name", "表示名を1〜50文字で入力してください。"));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        errors.push(FieldError::new(
            "password",
            format!("パスワードは{MIN_PASSWORD_CHARS}文字以上にしてください。"),
        ));
    }
    if !errors.is_empty() {
        return Err(AccountError::Invalid(errors));
    }
    let member = StaffMember {
        id: RecordId::new().0,
        username,
        display_name: display_name.trim().to_string(),
        password_hash: hash(password),
        created_at: crate::time::now_utc(),
        disabled_at: None,
    };
    match diesel::insert_into(staff::table).values(&member).execute(conn) {
        Ok(_) => Ok(member),
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
            Err(AccountError::Invalid(vec![FieldError::new(
                "username",
                "このユーザー名はすでに使われています。",
            )]))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn list(conn: &mut DbConn) -> QueryResult<Vec<StaffMember>> {
    staff::table.order(staff::username).select(StaffMember::as_select()).load(conn)
}

/// The active account with this username and password, if any. (The web sign-in checks the
/// password off the connection instead: [`sign_in_gate`], [`PasswordChecks`].)
pub fn verify(conn: &mut DbConn, username: &str, password: &str) -> QueryResult<Option<StaffMember>> {
    let member = find_active(conn, username)?;
    let matches = password_matches(member.as_ref(), password);
    Ok(member.filter(|_| matches))
}

/// The active account with this username, if any.
pub fn find_active(conn: &mut DbConn, username: &str) -> QueryResult<Option<StaffMember>> {
    staff::table
        .filter(staff::username.eq(username.trim().to_ascii_lowercase()))
        .filter(staff::disabled_at.is_null())
        .select(StaffMember::as_select())
        .first(conn)
        .optional()
}

/// The account with this id, unless it is disabled.
pub fn get_active(conn: &mut DbConn, id: &str) -> QueryResult<Option<StaffMember>> {
    staff::table
        .find(id)
        .filter(staff::disabled_at.is_null())
        .select(StaffMember::as_select())
        .first(conn)
        .optional()
}

/// Whether the password is this member's. Without a member, a decoy hash is verified, so that
/// both paths cost one argon2 computation and timing does not tell which usernames exist.
pub fn password_matches(member: Option<&StaffMember>, password: &str) -> bool {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let decoy = DECOY.get_or_init(|| hash(&crate::secret::random_token(16)));
    let stored = member.map_or(decoy.as_str(), |m| m.password_hash.as_str());
    Argon2::default().verify_password(password.as_bytes(), stored).is_ok() && member.is_some()
}

/// Disables an account: its sessions are deleted at once, and every request checks `disabled_at`
/// too (so anything else keyed to the account, such as a node's API tokens, stops as well).
pub fn disable(conn: &mut DbConn, username: &str) -> Result<StaffMember, AccountError> {
    let username = username.trim().to_ascii_lowercase();
    let now = crate::time::now_utc();
    conn.transaction(|conn| {
        let member = staff::table
            .filter(staff::username.eq(&username))
            .select(StaffMember::as_select())
            .first(conn)
            .optional()?
            .ok_or(AccountError::NotFound)?;
        diesel::update(staff::table.find(&member.id).filter(staff::disabled_at.is_null()))
            .set(staff::disabled_at.eq(now))
            .execute(conn)?;
        diesel::delete(
            sessions::table
                .filter(sessions::kind.eq(SessionKind::Staff.as_str()))
                .filter(sessions::subject_id.eq(&member.id)),
        )
        .execute(conn)?;
        Ok(StaffMember { disabled_at: member.disabled_at.or(Some(now)), ..member })
    })
}

/// Who a session is for. The national server has staff sessions only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Staff,
    Nurse,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Staff => "staff",
            Self::Nurse => "nurse",
        }
    }

    fn lifetime(self) -> Duration {
        match self {
            Self::Staff => Duration::hours(STAFF_SESSION_HOURS),
            Self::Nurse => Duration::hours(NURSE_SESSION_HOURS),
        }
    }
}

/// A signed-in browser: who (a staff id or a nurse id) and the token its forms must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub subject_id: String,
    pub csrf: String,
    pub expires_at: NaiveDateTime,
}

/// Starts a session; returns the cookie value (shown once, never stored) and the session.
pub fn start_session(
    conn: &mut DbConn,
    kind: SessionKind,
    subject_id: &str,
) -> QueryResult<(String, Session)> {
    let token = crate::secret::random_token(32);
    let now = crate::time::now_utc();
    let session = Session {
        subject_id: subject_id.to_string(),
        csrf: crate::secret::random_token(24),
        expires_at: now + kind.lifetime(),
    };
    // Expired sessions are dropped as new ones start, so the table stays small without a job.
    diesel::delete(sessions::table.filter(sessions::expires_at.le(now))).execute(conn)?;
    diesel::insert_into(sessions::table)
        .values((
            sessions::token_sha256.eq(digest(&token)),
            sessions::kind.eq(kind.as_str()),
            sessions::subject_id.eq(&session.subject_id),
            sessions::csrf.eq(&session.csrf),
            sessions::created_at.eq(now),
            sessions::expires_at.eq(session.expires_at),
        ))
        .execute(conn)?;
    Ok((token, session))
}

/// The live session of this kind behind a cookie value, if any.
pub fn session(conn: &mut DbConn, kind: SessionKind, token: &str) -> QueryResult<Option<Session>> {
    let found: Option<(String, String, NaiveDateTime)> = sessions::table
        .find(digest(token))
        .filter(sessions::kind.eq(kind.as_str()))
        .filter(sessions::expires_at.gt(crate::time::now_utc()))
        .select((sessions::subject_id, sessions::csrf, sessions::expires_at))
        .first(conn)
        .optional()?;
    Ok(found.map(|(subject_id, csrf, expires_at)| Session { subject_id, csrf, expires_at }))
}

/// The live staff session behind a cookie value and its member, unless the account is disabled:
/// one query for what every signed-in page needs first.
pub fn staff_session(conn: &mut DbConn, token: &str) -> QueryResult<Option<(Session, StaffMember)>> {
    let found: Option<(String, String, NaiveDateTime, StaffMember)> = sessions::table
        .inner_join(staff::table.on(staff::id.eq(sessions::subject_id)))
        .filter(sessions::token_sha256.eq(digest(token)))
        .filter(sessions::kind.eq(SessionKind::Staff.as_str()))
        .filter(sessions::expires_at.gt(crate::time::now_utc()))
        .filter(staff::disabled_at.is_null())
        .select((sessions::subject_id, sessions::csrf, sessions::expires_at, StaffMember::as_select()))
        .first(conn)
        .optional()?;
    Ok(found.map(|(subject_id, csrf, expires_at, member)| (Session { subject_id, csrf, expires_at }, member)))
}

/// Staff sessions as last read from the database, so that a page shown many times a minute does
/// not read its session every time: a session found live is trusted for `recheck` (a few seconds)
/// from when its read began, never past its own expiry. Ending a session in this process forgets
/// it at once, and a read that began before that cannot bring it back; an account disabled from
/// another process (`staff disable`) is refused by a running server within `recheck`. Kept by the
/// token's SHA-256, as in the database, so the memory holds no live cookie value.
pub struct SessionMemory {
    recheck: std::time::Duration,
    live: crate::cache::TtlCache<String, (Session, StaffMember)>,
    /// Sessions ended here, with when, kept for `recheck`: a read that began before the end must
    /// not remember the session (an older read's entry would be stale by then anyway). The lock
    /// also orders `remember` against `forget`.
    ended: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// How many sessions are remembered at most (national staff are a few dozen people).
const REMEMBERED_SESSIONS: usize = 10_000;

/// A session read from the database for [`SessionMemory::remember`]: when the read began, and
/// what it found.
pub struct SessionRead {
    began: std::time::Instant,
    pub found: Option<(Session, StaffMember)>,
}

impl SessionMemory {
    /// `recheck` of zero reads the database on every request.
    pub fn new(recheck: std::time::Duration) -> Self {
        Self {
            recheck,
            live: crate::cache::TtlCache::new(recheck, REMEMBERED_SESSIONS),
            ended: std::sync::Mutex::default(),
        }
    }

    /// The live session behind a cookie value and its member, if read from the database within
    /// the recheck interval. `None` means: [`Self::read`] it and [`Self::remember`] it.
    pub fn recall(&self, token: &str) -> Option<std::sync::Arc<(Session, StaffMember)>> {
        self.live.get(&digest(token)).filter(|found| found.0.expires_at > crate::time::now_utc())
    }

    /// Reads the session from the database ([`staff_session`]), noting when the read began.
    pub fn read(conn: &mut DbConn, token: &str) -> QueryResult<SessionRead> {
        let began = std::time::Instant::now();
        Ok(SessionRead { began, found: staff_session(conn, token)? })
    }

    /// Keeps what a read found, unless the session was ended here after the read began.
    pub fn remember(&self, token: &str, read: SessionRead) -> Option<std::sync::Arc<(Session, StaffMember)>> {
        let found = read.found?;
        let key = digest(token);
        let ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        if ended.get(&key).is_some_and(|at| *at >= read.began) {
            return None;
        }
        Some(self.live.insert_made_at(key, found, read.began))
    }

    /// Forgets a session being ended here; call it before and after the database delete.
    pub fn forget(&self, token: &str) {
        let key = digest(token);
        let now = std::time::Instant::now();
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        ended.retain(|_, at| now.duration_since(*at) < self.recheck);
        if !self.recheck.is_zero() {
            ended.insert(key.clone(), now);
        }
        self.live.remove(&key);
    }
}

pub fn end_session(conn: &mut DbConn, token: &str) -> QueryResult<()> {
    diesel::delete(sessions::table.find(digest(token))).execute(conn).map(drop)
}

/// How long a (username, client) pair waits after its latest failure, given its failures in a row.
pub fn throttle_delay_secs(failures: i64) -> i64 {
    if failures < FREE_FAILURES {
        return 0;
    }
    let doublings = (failures - FREE_FAILURES).min(20);
    (FIRST_DELAY_SECS << doublings).min(MAX_DELAY_SECS)
}

/// The first step of a staff sign-in: refused for now, or open (the password still to be checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInGate {
    /// Too many failures lately from this client for this username; free again in this many
    /// seconds.
    Throttled { retry_after_secs: i64 },
    /// The attempt is recorded (as a failure until [`sign_in_succeeded`]), and the account to check
    /// the password against, if it exists and is active.
    Open { attempt_id: String, member: Option<StaffMember> },
}

/// The staff sign-in form as both binaries' pages post it. Its `Debug` leaves the password out,
/// so a logged form never holds one.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
pub struct SignInForm {
    pub csrf: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SignInForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInForm").field("username", &self.username).finish_non_exhaustive()
    }
}

/// Checks the throttle for this (username, client) pair and records the attempt, before the
/// password is checked: parallel guesses then count against each other at once. A throttled
/// attempt is refused without being recorded. The password is checked afterwards, off the
/// database connection ([`PasswordChecks`]).
pub fn sign_in_gate(conn: &mut DbConn, username: &str, client: &str) -> QueryResult<SignInGate> {
    let username = username.trim().to_ascii_lowercase();
    let now = crate::time::now_utc();
    crate::db::write_transaction(conn, |conn| {
        let pair = sign_in_attempts::table
            .filter(sign_in_attempts::username.eq(&username))
            .filter(sign_in_attempts::client.eq(client));
        let last_success: Option<NaiveDateTime> = pair
            .filter(sign_in_attempts::succeeded.eq(true))
            .select(diesel::dsl::max(sign_in_attempts::attempted_at))
            .first(conn)?;
        let since =
            (now - Duration::hours(FAILURE_MEMORY_HOURS)).max(last_success.unwrap_or(NaiveDateTime::MIN));
        let failures: Vec<NaiveDateTime> = pair
            .filter(sign_in_attempts::succeeded.eq(false))
            .filter(sign_in_attempts::attempted_at.gt(since))
            .select(sign_in_attempts::attempted_at)
            .order(sign_in_attempts::attempted_at.desc())
            .load(conn)?;
        let delay = throttle_delay_secs(failures.len() as i64);
        if let Some(latest) = failures.first() {
            let free_at = *latest + Duration::seconds(delay);
            if delay > 0 && free_at > now {
                let retry_after_secs = ((free_at - now).num_milliseconds() + 999) / 1000;
                tracing::warn!(%username, %client, failures = failures.len(), "staff sign-in throttled");
                return Ok(SignInGate::Throttled { retry_after_secs: retry_after_secs.max(1) });
            }
        }
        // Forget what no longer counts, so the table stays small without a job.
        diesel::delete(
            sign_in_attempts::table.filter(sign_in_attempts::attempted_at.lt(now - Duration::days(90))),
        )
        .execute(conn)?;
        let attempt_id = RecordId::new().0;
        diesel::insert_into(sign_in_attempts::table)
            .values((
                sign_in_attempts::id.eq(&attempt_id),
                sign_in_attempts::username.eq(&username),
                sign_in_attempts::client.eq(client),
                sign_in_attempts::succeeded.eq(false),
                sign_in_attempts::attempted_at.eq(now),
            ))
            .execute(conn)?;
        let member = find_active(conn, &username)?;
        Ok(SignInGate::Open { attempt_id, member })
    })
}

/// Records that the attempt's password was right and starts the staff session; returns the
/// cookie value. Fails (`None`) if the account was disabled meanwhile.
pub fn sign_in_succeeded(
    conn: &mut DbConn,
    attempt_id: &str,
    member: &StaffMember,
) -> QueryResult<Option<String>> {
    conn.transaction(|conn| {
        if get_active(conn, &member.id)?.is_none() {
            return Ok(None);
        }
        diesel::update(sign_in_attempts::table.find(attempt_id))
            .set(sign_in_attempts::succeeded.eq(true))
            .execute(conn)?;
        Ok(Some(start_session(conn, SessionKind::Staff, &member.id)?.0))
    })
}

/// Too many passwords are being checked at once: the sign-in is refused rather than queued
/// without end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Runs argon2 off the async threads and off any database connection, at most
/// `CONCURRENT_PASSWORD_CHECKS` at once, so a burst of sign-ins cannot stall the server.
#[derive(Debug, Clone)]
pub struct PasswordChecks {
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    wait: std::time::Duration,
}

impl Default for PasswordChecks {
    fn default() -> Self {
        Self::new(CONCURRENT_PASSWORD_CHECKS, std::time::Duration::from_secs(PASSWORD_CHECK_WAIT_SECS))
    }
}

impl PasswordChecks {
    pub fn new(concurrent: usize, wait: std::time::Duration) -> Self {
        Self { permits: std::sync::Arc::new(tokio::sync::Semaphore::new(concurrent.max(1))), wait }
    }

    /// The member when the password is hers; the same work whether or not she exists.
    pub async fn verify(
        &self,
        member: Option<StaffMember>,
        password: String,
    ) -> Result<Option<StaffMember>, Busy> {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let matches = password_matches(member.as_ref(), &password);
            member.filter(|_| matches)
        })
        .await
        .map_err(|_| Busy)
    }
}

/// How a staff sign-in ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// Signed in: the session cookie's value (shown once) and who.
    Started { token: String, member: StaffMember },
    /// Too many failures lately for this username from this client.
    Throttled { retry_after_secs: i64 },
    /// Too many passwords being checked at once; try again in a moment.
    Busy,
    /// Wrong username or password, or the account is disabled (one answer for all three).
    Refused,
}

/// A refused sign-in as a page tells it, the same at a node and at the national server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 429 throttled, 503 busy, 401 wrong.
    pub status: u16,
    /// What the page says (Japanese).
    pub message: String,
    /// For a `Retry-After` header.
    pub retry_after_secs: Option<i64>,
}

impl SignIn {
    /// How the page answers this outcome; `None` when she is signed in.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Self::Started { .. } => None,
            Self::Throttled { retry_after_secs } => Some(Refusal {
                status: 429,
                message: format!(
                    "ログインの失敗が続いたため、この端末からのログインを一時的に受け付けていません。しばらく待ってから（{}分ほど後に）もう一度お試しください。",
                    (retry_after_secs + 59) / 60
                ),
                retry_after_secs: Some(*retry_after_secs),
            }),
            Self::Busy => Some(Refusal {
                status: 503,
                message: "ただいま混み合っています。しばらく待ってからもう一度お試しください。".into(),
                retry_after_secs: Some(5),
            }),
            Self::Refused => Some(Refusal {
                status: 401,
                message: "ユーザー名またはパスワードが正しくありません。".into(),
                retry_after_secs: None,
            }),
        }
    }
}

/// A staff sign-in, the same at a node and at the national server: the throttle for this
/// (username, client) pair and the attempt's record first, then the password, checked off the
/// database connection with bounded concurrency, then the session. `Err` names a database
/// failure (nothing was decided).
pub async fn sign_in(
    pool: &crate::db::Pool,
    checks: &PasswordChecks,
    username: String,
    password: String,
    client: String,
) -> Result<SignIn, String> {
    let blocking = |f: StepFn| {
        let pool = pool.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut conn = pool.get().map_err(|e| e.to_string())?;
                f(&mut conn).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())?
        }
    };
    let (name, who) = (username.clone(), client.clone());
    let gate = blocking(Box::new(move |conn| sign_in_gate(conn, &name, &who).map(SignInStep::Gate))).await?;
    let (attempt_id, member) = match gate {
        SignInStep::Gate(SignInGate::Open { attempt_id, member }) => (attempt_id, member),
        SignInStep::Gate(SignInGate::Throttled { retry_after_secs }) => {
            return Ok(SignIn::Throttled { retry_after_secs });
        }
        SignInStep::Session(_) => unreachable!("the gate answers with a gate"),
    };
    let Ok(member) = checks.verify(member, password).await else {
        tracing::warn!(%client, "staff sign-in refused: too many password checks at once");
        return Ok(SignIn::Busy);
    };
    let Some(member) = member else {
        tracing::warn!(username = %username.trim().to_ascii_lowercase(), %client, "staff sign-in failed");
        return Ok(SignIn::Refused);
    };
    let signed_in = member.clone();
    let step = blocking(Box::new(move |conn| {
        sign_in_succeeded(conn, &attempt_id, &signed_in).map(SignInStep::Session)
    }))
    .await?;
    match step {
        SignInStep::Session(Some(token)) => {
            tracing::info!(username = %member.username, %client, "staff signed in");
            Ok(SignIn::Started { token, member })
        }
        _ => Ok(SignIn::Refused),
    }
}

/// One database step of a sign-in, run off the async threads.
type StepFn = Box<dyn FnOnce(&mut DbConn) -> QueryResult<SignInStep> + Send>;

enum SignInStep {
    Gate(SignInGate),
    Session(Option<String>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(expires_in_minutes: i64) -> (Session, StaffMember) {
        let now = crate::time::now_utc();
        let session = Session {
            subject_id: "s1".into(),
            csrf: "c".into(),
            expires_at: now + Duration::minutes(expires_in_minutes),
        };
        let member = StaffMember {
            id: "s1".into(),
            username: "kosei".into(),
            display_name: "厚労 花子".into(),
            password_hash: String::new(),
            created_at: now,
            disabled_at: None,
        };
        (session, member)
    }

    fn read_now(expires_in_minutes: i64) -> SessionRead {
        SessionRead { began: std::time::Instant::now(), found: Some(found(expires_in_minutes)) }
    }

    #[test]
    fn a_remembered_session_is_served_until_recheck_expiry_or_sign_out() {
        let memory = SessionMemory::new(std::time::Duration::from_secs(60));
        assert!(memory.remember("token-a", read_now(30)).is_some());
        assert_eq!(memory.recall("token-a").unwrap().1.username, "kosei");
        assert!(memory.recall("token-b").is_none(), "another token is another key");
        memory.forget("token-a");
        assert!(memory.recall("token-a").is_none(), "signed out: at once");
        // A session already expired is never served, whatever the recheck.
        assert!(memory.remember("token-c", read_now(-1)).is_some());
        assert!(memory.recall("token-c").is_none());
        // Nothing is remembered with a recheck of zero.
        let never = SessionMemory::new(std::time::Duration::ZERO);
        never.remember("token-a", read_now(30));
        assert!(never.recall("token-a").is_none());
    }

    #[test]
    fn a_read_that_began_before_sign_out_cannot_bring_the_session_back() {
        let memory = SessionMemory::new(std::time::Duration::from_secs(60));
        let slow = read_now(30); // began before the sign-out, ends after it
        memory.forget("token-a");
        assert!(memory.remember("token-a", slow).is_none());
        assert!(memory.recall("token-a").is_none());
        // A read that began afterwards (a new sign-in with the same token cannot happen, but a
        // read before the delete committed can): the second forget, after the delete, clears it.
        assert!(memory.remember("token-a", read_now(30)).is_some());
        memory.forget("token-a");
        assert!(memory.recall("token-a").is_none());
    }

    #[test]
    fn a_session_is_trusted_from_when_its_read_began() {
        let memory = SessionMemory::new(std::time::Duration::from_millis(50));
        let old = SessionRead {
            began: std::time::Instant::now() - std::time::Duration::from_millis(60),
            found: Some(found(30)),
        };
        assert!(memory.remember("token-a", old).is_some(), "the read's answer is still used once");
        assert!(memory.recall("token-a").is_none(), "but not kept: it is older than the recheck");
    }

    #[test]
    fn throttle_doubles_after_the_free_failures_up_to_the_cap() {
        assert_eq!(throttle_delay_secs(FREE_FAILURES - 1), 0);
        assert_eq!(throttle_delay_secs(FREE_FAILURES), FIRST_DELAY_SECS);
        assert_eq!(throttle_delay_secs(FREE_FAILURES + 1), 2 * FIRST_DELAY_SECS);
        assert_eq!(throttle_delay_secs(1_000), MAX_DELAY_SECS);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(tokens_equal("abc", "abc"));
        assert!(!tokens_equal("abc", "abd"));
        assert!(!tokens_equal("abc", "abcd"));
    }
}
