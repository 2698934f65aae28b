//! Nurse-center staff accounts (the implementation, shared with the national server's staff, is
//! `ncf_shared::accounts`) and the alerts staff should see.

use diesel::prelude::*;
use ncf_shared::accounts::AccountError;
use ncf_shared::db::DbConn;

use crate::error::NodeError;

pub use ncf_shared::accounts::{
    MIN_PASSWORD_CHARS, StaffMember, find_active, get_active, list, password_matches, verify,
};

impl From<AccountError> for NodeError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Invalid(errors) => NodeError::Invalid(errors),
            AccountError::NotFound => NodeError::NotFound("staff account"),
            AccountError::Database(e) => NodeError::Database(e),
        }
    }
}

pub fn add(
    conn: &mut DbConn,
    username: &str,
    display_name: &str,
    password: &str,
) -> Result<StaffMember, NodeError> {
    Ok(ncf_shared::accounts::add(conn, username, display_name, password)?)
}

/// Disables an account: its sessions end and its API tokens stop working at once (both are
/// checked against `disabled_at` on every request; the sessions are also deleted). Returns the
/// account, or `NotFound`.
pub fn disable(conn: &mut DbConn, username: &str) -> Result<StaffMember, NodeError> {
    Ok(ncf_shared::accounts::disable(conn, username)?)
}

/// Something staff should know about (shown on the staff pages), e.g. a licence the national
/// server stopped checking after too many failed attempts.
pub fn alert(conn: &mut DbConn, kind: &str, detail: &str) -> QueryResult<()> {
    diesel::insert_into(crate::schema::staff_alerts::table)
        .values((
            crate::schema::staff_alerts::id.eq(ncf_shared::ids::RecordId::new().0),
            crate::schema::staff_alerts::kind.eq(kind),
            crate::schema::staff_alerts::detail.eq(detail),
            crate::schema::staff_alerts::created_at.eq(ncf_shared::time::now_utc()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Alerts of the last 7 days, newest first: (kind, detail, when).
pub fn recent_alerts(conn: &mut DbConn) -> QueryResult<Vec<(String, String, chrono::NaiveDateTime)>> {
    use crate::schema::staff_alerts;
    staff_alerts::table
        .filter(staff_alerts::created_at.gt(ncf_shared::time::now_utc() - chrono::Duration::days(7)))
        .order(staff_alerts::created_at.desc())
        .select((staff_alerts::kind, staff_alerts::detail, staff_alerts::created_at))
        .limit(50)
        .load(conn)
}
