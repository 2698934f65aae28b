//! Signing in: browser sessions (staff and nurses), one-time e-mail links for nurses, API tokens
//! for staff scripts, and the staff sign-in rate limit. Every token is random and only its SHA-256
//! is stored, so a copy of the database signs nobody in.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use ncf_shared::db::DbConn;
use ncf_shared::ids::RecordId;
use sha2::{Digest, Sha256};

use crate::error::NodeError;
use crate::schema::{api_tokens, login_links, sessions, sign_in_attempts, staff};
use crate::staff::StaffMember;

/// How long a nurse's e-mail sign-in link works.
pub const LOGIN_LINK_MINUTES: i64 = 15;
/// Session lifetimes: a staff working day; a nurse's visit.
pub const STAFF_SESSION_HOURS: i64 = 8;
pub const NURSE_SESSION_HOURS: i64 = 2;
/// Failed staff sign-ins allowed per username and per client address within the window.
pub const FAILURES_PER_USERNAME: i64 = 5;
pub const FAILURES_PER_CLIENT: i64 = 20;
pub const FAILURE_WINDOW_MINUTES: i64 = 15;
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    Accepted(StaffMember),
    WrongCredentials,
    /// Too many failures lately for this username or client; try again after this many minutes.
    Throttled {
        retry_after_minutes: i64,
    },
}

/// Checks a staff sign-in against the rate limit and the password, and records the attempt.
/// A throttled attempt is refused before the password is checked (and is not counted again).
pub fn sign_in(conn: &mut DbConn, username: &str, password: &str, client: &str) -> QueryResult<SignIn> {
    let username = username.trim().to_ascii_lowercase();
    let now = ncf_shared::time::now_utc();
    let since = now - Duration::minutes(FAILURE_WINDOW_MINUTES);
    let failures = |conn: &mut DbConn, by_username: bool| -> QueryResult<Vec<NaiveDateTime>> {
        let mut query = sign_in_attempts::table
            .filter(sign_in_attempts::succeeded.eq(false))
            .filter(sign_in_attempts::attempted_at.gt(since))
            .select(sign_in_attempts::attempted_at)
            .order(sign_in_attempts::attempted_at.desc())
            .into_boxed();
        query = if by_username {
            query.filter(sign_in_attempts::username.eq(username.clone()))
        } else {
            query.filter(sign_in_attempts::client.eq(client.to_string()))
        };
        query.load(conn)
    };
    for (by_username, limit) in [(true, FAILURES_PER_USERNAME), (false, FAILURES_PER_CLIENT)] {
        let recent = failures(conn, by_username)?;
        if recent.len() as i64 >= limit {
            // Free again when the oldest failure that still counts leaves the window.
            let oldest_counted = recent[limit as usize - 1];
            let free_at = oldest_counted + Duration::minutes(FAILURE_WINDOW_MINUTES);
            let minutes = ((free_at - now).num_seconds() + 59) / 60;
            tracing::warn!(%username, %client, "staff sign-in throttled");
            return Ok(SignIn::Throttled { retry_after_minutes: minutes.max(1) });
        }
    }
    let member = crate::staff::verify(conn, &username, password)?;
    diesel::insert_into(sign_in_attempts::table)
        .values((
            sign_in_attempts::id.eq(RecordId::new().0),
            sign_in_attempts::username.eq(&username),
            sign_in_attempts::client.eq(client),
            sign_in_attempts::succeeded.eq(member.is_some()),
            sign_in_attempts::attempted_at.eq(now),
        ))
        .execute(conn)?;
    Ok(match member {
        Some(m) => {
            tracing::info!(username = %m.username, %client, "staff signed in");
            SignIn::Accepted(m)
        }
        None => {
            tracing::warn!(%username, %client, "staff sign-in failed");
            SignIn::WrongCredentials
        }
    })
}
