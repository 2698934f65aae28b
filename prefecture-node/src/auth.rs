//! Signing in: browser sessions (staff and nurses), one-time e-mail links for nurses, API tokens
//! for staff scripts, and the staff sign-in rate limit. Every token is random and only its SHA-256
//! is stored, so a copy of the database signs nobody in.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use ncf_shared::db::DbConn;
use ncf_shared::ids::RecordId;
use sha2::{Digest, Sha256};

use crate::error::NodeError;
use crate::schema::{api_tokens, login_links, nurse_sign_in_requests, sessions, sign_in_attempts, staff};
use crate::staff::StaffMember;

/// How long a nurse's e-mail sign-in link works.
pub const LOGIN_LINK_MINUTES: i64 = 15;
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
/// Nurse sign-in link requests allowed per address and per client within the window. The answer
/// to a refused request is the same whether or not the address is registered.
pub const LINK_REQUESTS_PER_ADDRESS: i64 = 5;
pub const LINK_REQUESTS_PER_CLIENT: i64 = 30;
pub const LINK_REQUEST_WINDOW_MINUTES: i64 = 60;
const API_TOKEN_PREFIX: &str = "ncf_";

pub(crate) fn digest(token: &str) -> String {
    ncf_shared::encoding::hex(&Sha256::digest(token.as_bytes()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Staff,
    Nurse,
}

impl SessionKind {
    fn as_str(self) -> &'static str {
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
    let token = ncf_shared::secret::random_token(32);
    let now = ncf_shared::time::now_utc();
    let session = Session {
        subject_id: subject_id.to_string(),
        csrf: ncf_shared::secret::random_token(24),
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
        .filter(sessions::expires_at.gt(ncf_shared::time::now_utc()))
        .select((sessions::subject_id, sessions::csrf, sessions::expires_at))
        .first(conn)
        .optional()?;
    Ok(found.map(|(subject_id, csrf, expires_at)| Session { subject_id, csrf, expires_at }))
}

pub fn end_session(conn: &mut DbConn, token: &str) -> QueryResult<()> {
    diesel::delete(sessions::table.find(digest(token))).execute(conn).map(drop)
}

/// Live links per nurse at most, so the sign-in form cannot be used to flood her mailbox.
pub const LIVE_LINKS_PER_NURSE: i64 = 3;

/// Issues a one-time sign-in link token for a nurse (valid `LOGIN_LINK_MINUTES`); `None` when
/// she already has `LIVE_LINKS_PER_NURSE` unused links.
pub fn issue_login_link(conn: &mut DbConn, nurse_id: &str) -> QueryResult<Option<String>> {
    let token = ncf_shared::secret::random_token(32);
    let now = ncf_shared::time::now_utc();
    diesel::delete(login_links::table.filter(login_links::expires_at.le(now))).execute(conn)?;
    let live: i64 = login_links::table
        .filter(login_links::nurse_id.eq(nurse_id))
        .filter(login_links::used_at.is_null())
        .count()
        .get_result(conn)?;
    if live >= LIVE_LINKS_PER_NURSE {
        return Ok(None);
    }
    diesel::insert_into(login_links::table)
        .values((
            login_links::token_sha256.eq(digest(&token)),
            login_links::nurse_id.eq(nurse_id),
            login_links::created_at.eq(now),
            login_links::expires_at.eq(now + Duration::minutes(LOGIN_LINK_MINUTES)),
        ))
        .execute(conn)?;
    Ok(Some(token))
}

/// Uses a sign-in link: the nurse it was issued for, if it is unused and unexpired. One UPDATE
/// marks it used, so two clicks racing each other cannot both succeed.
pub fn redeem_login_link(conn: &mut DbConn, token: &str) -> QueryResult<Option<String>> {
    let key = digest(token);
    let now = ncf_shared::time::now_utc();
    let claimed = diesel::update(
        login_links::table
            .find(&key)
            .filter(login_links::used_at.is_null())
            .filter(login_links::expires_at.gt(now)),
    )
    .set(login_links::used_at.eq(now))
    .execute(conn)?;
    if claimed != 1 {
        return Ok(None);
    }
    login_links::table.find(&key).select(login_links::nurse_id).first(conn).optional()
}

/// Creates an API token for a staff member's scripts; the token is shown once.
pub fn issue_api_token(conn: &mut DbConn, username: &str, label: &str) -> Result<String, NodeError> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 100 {
        return Err(NodeError::Invalid(vec![crate::error::FieldError::new(
            "label",
            "トークンの用途を1〜100文字で入力してください。",
        )]));
    }
    let staff_id: String = staff::table
        .filter(staff::username.eq(username.trim().to_ascii_lowercase()))
        .filter(staff::disabled_at.is_null())
        .select(staff::id)
        .first(conn)
        .optional()?
        .ok_or(NodeError::NotFound("staff account"))?;
    let token = format!("{API_TOKEN_PREFIX}{}", ncf_shared::secret::random_token(32));
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::token_sha256.eq(digest(&token)),
            api_tokens::staff_id.eq(staff_id),
            api_tokens::label.eq(label),
            api_tokens::created_at.eq(ncf_shared::time::now_utc()),
        ))
        .execute(conn)?;
    Ok(token)
}

/// The active staff member an API token belongs to (and notes its use).
pub fn staff_for_api_token(conn: &mut DbConn, token: &str) -> QueryResult<Option<StaffMember>> {
    if !token.starts_with(API_TOKEN_PREFIX) {
        return Ok(None);
    }
    let key = digest(token);
    let member = api_tokens::table
        .inner_join(staff::table.on(staff::id.eq(api_tokens::staff_id)))
        .filter(api_tokens::token_sha256.eq(&key))
        .filter(api_tokens::revoked_at.is_null())
        .filter(staff::disabled_at.is_null())
        .select(StaffMember::as_select())
        .first(conn)
        .optional()?;
    if member.is_some() {
        diesel::update(api_tokens::table.find(&key))
            .set(api_tokens::last_used_at.eq(ncf_shared::time::now_utc()))
            .execute(conn)?;
    }
    Ok(member)
}

/// Revokes every token of a staff member with this label; returns how many.
pub fn revoke_api_tokens(conn: &mut DbConn, username: &str, label: &str) -> QueryResult<usize> {
    let ids: Vec<String> = staff::table
        .filter(staff::username.eq(username.trim().to_ascii_lowercase()))
        .select(staff::id)
        .load(conn)?;
    diesel::update(
        api_tokens::table
            .filter(api_tokens::staff_id.eq_any(ids))
            .filter(api_tokens::label.eq(label.trim()))
            .filter(api_tokens::revoked_at.is_null()),
    )
    .set(api_tokens::revoked_at.eq(ncf_shared::time::now_utc()))
    .execute(conn)
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

/// Checks the throttle for this (username, client) pair and records the attempt, before the
/// password is checked: parallel guesses then count against each other at once. A throttled
/// attempt is refused without being recorded. The password is checked afterwards, off the
/// database connection ([`PasswordChecks`]).
pub fn sign_in_gate(conn: &mut DbConn, username: &str, client: &str) -> QueryResult<SignInGate> {
    let username = username.trim().to_ascii_lowercase();
    let now = ncf_shared::time::now_utc();
    ncf_shared::db::write_transaction(conn, |conn| {
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
        let member = crate::staff::find_active(conn, &username)?;
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
        if crate::staff::get_active(conn, &member.id)?.is_none() {
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
/// `CONCURRENT_PASSWORD_CHECKS` at once, so a burst of sign-ins cannot stall the node.
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
            let matches = crate::staff::password_matches(member.as_ref(), &password);
            member.filter(|_| matches)
        })
        .await
        .map_err(|_| Busy)
    }
}

/// What a nurse's sign-in link request led to. Both answers are the same whether or not the
/// address is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRequest {
    /// Links (if any) are queued for the mail sender.
    Accepted,
    /// Too many requests for this address or from this client lately.
    Throttled { retry_after_secs: i64 },
}

/// The words of the sign-in mail.
pub struct LinkMail<'a> {
    /// The node's name as nurses know it (「大阪府ナースセンター」).
    pub center: &'a str,
    /// The node's public address, without a trailing slash.
    pub public_url: &'a str,
}

/// Handles a nurse's request for a sign-in link: the rate limit per address and per client, then
/// one link for each nurse registered with this address, each e-mailed through the outgoing-mail
/// queue in the same transaction. Nothing here waits for SMTP, so the time taken does not tell
/// whether the address is registered.
pub fn request_login_links(
    conn: &mut DbConn,
    email: &str,
    client: &str,
    mail: &LinkMail<'_>,
) -> Result<LinkRequest, NodeError> {
    let address_key = digest(&email.trim().to_lowercase());
    let now = ncf_shared::time::now_utc();
    let since = now - Duration::minutes(LINK_REQUEST_WINDOW_MINUTES);
    ncf_shared::db::write_transaction(conn, |conn| {
        diesel::delete(nurse_sign_in_requests::table.filter(nurse_sign_in_requests::requested_at.le(since)))
            .execute(conn)?;
        for (by_address, limit) in [(true, LINK_REQUESTS_PER_ADDRESS), (false, LINK_REQUESTS_PER_CLIENT)] {
            let query = nurse_sign_in_requests::table
                .filter(nurse_sign_in_requests::requested_at.gt(since))
                .select(nurse_sign_in_requests::requested_at)
                .order(nurse_sign_in_requests::requested_at.asc())
                .into_boxed();
            let recent: Vec<NaiveDateTime> = if by_address {
                query.filter(nurse_sign_in_requests::address_sha256.eq(&address_key)).load(conn)?
            } else {
                query.filter(nurse_sign_in_requests::client.eq(client)).load(conn)?
            };
            if recent.len() as i64 >= limit {
                // Free again when the oldest request that still counts leaves the window.
                let free_at =
                    recent[recent.len() - limit as usize] + Duration::minutes(LINK_REQUEST_WINDOW_MINUTES);
                tracing::warn!(%client, by_address, "nurse sign-in link requests throttled");
                return Ok(LinkRequest::Throttled { retry_after_secs: (free_at - now).num_seconds().max(1) });
            }
        }
        diesel::insert_into(nurse_sign_in_requests::table)
            .values((
                nurse_sign_in_requests::id.eq(RecordId::new().0),
                nurse_sign_in_requests::address_sha256.eq(&address_key),
                nurse_sign_in_requests::client.eq(client),
                nurse_sign_in_requests::requested_at.eq(now),
            ))
            .execute(conn)?;
        for nurse in crate::nurses::by_email(conn, email)? {
            let Some(token) = issue_login_link(conn, &nurse.id)? else {
                tracing::warn!(nurse = %nurse.id, "sign-in link not sent: too many unused links");
                continue;
            };
            let url = format!("{}/sign-in/link?token={token}", mail.public_url);
            let body = format!(
                "{} {} 様\n\n{}のマイページへのログイン用リンクです。\n{}分以内に、一度だけ使えます。\n\n{url}\n\n\
                 このメールにお心当たりがない場合は、破棄してください。リンクを開かなければ何も起こりません。\n\n{}\n",
                nurse.family_name, nurse.given_name, mail.center, LOGIN_LINK_MINUTES, mail.center,
            );
            let subject = format!("【{}】ログイン用リンク", mail.center);
            let expires_at = now + Duration::minutes(LOGIN_LINK_MINUTES);
            crate::mail::enqueue_until(conn, &nurse.email, &subject, &body, Some(expires_at))?;
            tracing::info!(nurse = %nurse.id, "sign-in link queued");
        }
        Ok(LinkRequest::Accepted)
    })
}
