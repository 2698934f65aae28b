//! Signing in at a node: one-time e-mail links for nurses, API tokens for staff scripts, and the
//! nurse link-request limits. Sessions, staff passwords and the staff sign-in throttle are the
//! national server's too, so they live in `ncf_shared::accounts` (re-exported here). Every token
//! is random and only its SHA-256 is stored, so a copy of the database signs nobody in.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use ncf_shared::db::DbConn;
use ncf_shared::ids::RecordId;

use crate::error::NodeError;
use crate::schema::{api_tokens, login_links, nurse_sign_in_requests, staff};
use crate::staff::StaffMember;

pub use ncf_shared::accounts::{
    Busy, CONCURRENT_PASSWORD_CHECKS, FAILURE_MEMORY_HOURS, FIRST_DELAY_SECS, FREE_FAILURES, MAX_DELAY_SECS,
    NURSE_SESSION_HOURS, PASSWORD_CHECK_WAIT_SECS, PasswordChecks, STAFF_SESSION_HOURS, Session, SessionKind,
    SignInGate, digest, end_session, session, sign_in_gate, sign_in_succeeded, start_session,
    throttle_delay_secs,
};

/// How long a nurse's e-mail sign-in link works.
pub const LOGIN_LINK_MINUTES: i64 = 15;
/// Nurse sign-in link requests allowed per address and per client within the window. The answer
/// to a refused request is the same whether or not the address is registered.
pub const LINK_REQUESTS_PER_ADDRESS: i64 = 5;
pub const LINK_REQUESTS_PER_CLIENT: i64 = 30;
pub const LINK_REQUEST_WINDOW_MINUTES: i64 = 60;
const API_TOKEN_PREFIX: &str = "ncf_";

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
    let staff_id: Option<String> = api_tokens::table
        .filter(api_tokens::token_sha256.eq(&key))
        .filter(api_tokens::revoked_at.is_null())
        .select(api_tokens::staff_id)
        .first(conn)
        .optional()?;
    let member = match staff_id {
        Some(id) => crate::staff::get_active(conn, &id)?,
        None => None,
    };
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
