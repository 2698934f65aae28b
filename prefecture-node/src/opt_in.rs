//! Opt-in, e-mail first (issue #5). The form's answer is the same whatever was typed
//! (「確認メールを送りました」): what she typed waits in `pending_opt_ins` under the digest of a
//! token e-mailed to the address she gave, and the licence is checked at the national server only
//! when that link is opened. So the public form tells nobody whether a licence exists or is
//! registered, and every registration starts with an address its owner has shown she reads.
//!
//! The application holds personal data nobody has verified yet: it lives [`CONFIRM_HOURS`] and
//! is deleted when used, and expired ones are dropped whenever a new one is stored.

use chrono::NaiveDate;
use diesel::prelude::*;
use ncf_shared::db::DbConn;
use ncf_shared::{AgencyCode, ConsentScope};
use serde::{Deserialize, Serialize};

use crate::Channel;
use crate::auth::{self, SessionKind};
use crate::error::NodeError;
use crate::nurses::{self, NewNurse};
use crate::schema::pending_opt_ins;

/// How long the confirmation link works.
pub const CONFIRM_HOURS: i64 = 24;

/// What the form gave, checked for shape (not yet against the registry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    pub qualification: String,
    pub registration_number: String,
    pub family_name: String,
    pub given_name: String,
    pub family_name_kana: String,
    pub given_name_kana: String,
    pub birth_date: NaiveDate,
    pub email: String,
    pub phone: Option<String>,
    pub max_distance_km: u32,
    pub scopes: Vec<ConsentScope>,
}

/// Stores an application; returns the token for the e-mailed link (only its digest is kept).
pub fn apply(conn: &mut DbConn, application: &Application) -> QueryResult<String> {
    let token = ncf_shared::secret::random_token(32);
    let now = ncf_shared::time::now_utc();
    ncf_shared::db::write_transaction(conn, |conn| {
        diesel::delete(pending_opt_ins::table.filter(pending_opt_ins::expires_at.le(now))).execute(conn)?;
        diesel::insert_into(pending_opt_ins::table)
            .values((
                pending_opt_ins::token_sha256.eq(auth::digest(&token)),
                pending_opt_ins::email.eq(&application.email),
                pending_opt_ins::form.eq(serde_json::to_string(application).expect("applications serialise")),
                pending_opt_ins::created_at.eq(now),
                pending_opt_ins::expires_at.eq(now + chrono::Duration::hours(CONFIRM_HOURS)),
            ))
            .execute(conn)?;
        Ok(token.clone())
    })
}

/// The application behind a link, while the link works.
pub fn pending(conn: &mut DbConn, token: &str) -> QueryResult<Option<Application>> {
    let form: Option<String> = pending_opt_ins::table
        .find(auth::digest(token))
        .filter(pending_opt_ins::expires_at.gt(ncf_shared::time::now_utc()))
        .select(pending_opt_ins::form)
        .first(conn)
        .optional()?;
    Ok(form.and_then(|f| serde_json::from_str(&f).ok()))
}

/// No-match answers one application may get before it is deleted.
pub const MAX_FAILURES: i32 = 3;

/// Counts a no-match answer against the application; the third deletes it.
pub fn note_failure(conn: &mut DbConn, token: &str) -> QueryResult<()> {
    let key = auth::digest(token);
    ncf_shared::db::write_transaction(conn, |conn| {
        diesel::update(pending_opt_ins::table.find(&key))
            .set(pending_opt_ins::failures.eq(pending_opt_ins::failures + 1))
            .execute(conn)?;
        diesel::delete(pending_opt_ins::table.find(&key).filter(pending_opt_ins::failures.ge(MAX_FAILURES)))
            .execute(conn)?;
        Ok(())
    })
}

/// What confirming an application did.
#[derive(Debug)]
pub enum Confirmed {
    /// Registered (not yet proofed) and signed in: the session cookie value.
    Registered { nurse_id: String, session: String, receipt: String },
    /// The licence is proofed here already: nothing registered; her own address is to be told.
    ProofedAlready { holder_email: String },
    /// The link is used or expired.
    Gone,
}

/// Registers her once the national server has matched the licence: the nurse (unproofed, beside
/// any other unproofed registration for the licence), her consents, a session; the application
/// is deleted. All in one transaction.
/// `licence` carries the licence details as she last corrected them on the confirmation page;
/// the e-mail address, phone, distance and consents always come from the stored application,
/// since only the address the link was sent to is verified.
pub fn confirm(
    conn: &mut DbConn,
    token: &str,
    licence: &Application,
    agency_code: AgencyCode,
) -> Result<Confirmed, NodeError> {
    let key = auth::digest(token);
    ncf_shared::db::write_transaction(conn, |conn| {
        let Some(stored) = pending(conn, token)? else {
            return Ok(Confirmed::Gone);
        };
        let application = Application {
            qualification: licence.qualification.clone(),
            registration_number: licence.registration_number.clone(),
            family_name: licence.family_name.clone(),
            given_name: licence.given_name.clone(),
            family_name_kana: licence.family_name_kana.clone(),
            given_name_kana: licence.given_name_kana.clone(),
            birth_date: licence.birth_date,
            ..stored
        };
        // Kept, as after a mismatch (the caller counts it as one): a link that died here but
        // not after a mismatch would tell which licences are proofed here.
        if let Some(holder) = nurses::proofed_by_agency_code(conn, &agency_code)? {
            return Ok(Confirmed::ProofedAlready { holder_email: holder.email });
        }
        // Used once: a second click (or a copy of the link) finds nothing.
        diesel::delete(pending_opt_ins::table.find(&key)).execute(conn)?;
        let nurse = nurses::register(
            conn,
            NewNurse {
                agency_code: agency_code.clone(),
                qualification: application.qualification,
                registration_number: application.registration_number,
                family_name: application.family_name,
                given_name: application.given_name,
                family_name_kana: application.family_name_kana,
                given_name_kana: application.given_name_kana,
                birth_date: application.birth_date,
                email: application.email,
                phone: application.phone,
                max_distance_km: application.max_distance_km as i32,
            },
        )?;
        let decisions: Vec<(ConsentScope, bool)> = application.scopes.iter().map(|s| (*s, true)).collect();
        let now = ncf_shared::time::now_utc();
        let receipt =
            crate::receipts::issue(conn, &nurse.id, crate::receipts::ReceiptKind::OptIn, Channel::Web, now)?;
        crate::consent::record_in(conn, &nurse.id, &decisions, Channel::Web, None, Some(&receipt))?;
        let (session, _) = auth::start_session(conn, SessionKind::Nurse, &nurse.id)?;
        Ok(Confirmed::Registered { nurse_id: nurse.id, session, receipt })
    })
}
