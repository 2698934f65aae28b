//! Nurse-center staff accounts: argon2id password hashes, checked in constant work whether or not
//! the account exists (so sign-in timing does not tell which usernames exist).

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use diesel::prelude::*;
use ncf_shared::db::DbConn;
use ncf_shared::ids::RecordId;

use crate::error::{FieldError, NodeError};
use crate::schema::staff;

pub const MIN_PASSWORD_CHARS: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = staff)]
pub struct StaffMember {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub created_at: chrono::NaiveDateTime,
    pub disabled_at: Option<chrono::NaiveDateTime>,
}

fn hash(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes())
        .expect("argon2id hashing with default parameters")
        .to_string()
}

pub fn add(
    conn: &mut DbConn,
    username: &str,
    display_name: &str,
    password: &str,
) -> Result<StaffMember, NodeError> {
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
        return Err(NodeError::Invalid(errors));
    }
    let member = StaffMember {
        id: RecordId::new().0,
        username,
        display_name: display_name.trim().to_string(),
        password_hash: hash(password),
        created_at: ncf_shared::time::now_utc(),
        disabled_at: None,
    };
    match diesel::insert_into(staff::table).values(&member).execute(conn) {
        Ok(_) => Ok(member),
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
            Err(NodeError::Invalid(vec![FieldError::new(
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
/// password off the connection instead: `auth::sign_in_gate`, `auth::PasswordChecks`.)
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

/// Whether the password is this member's. Without a member, a decoy hash is verified, so that
/// both paths cost one argon2 computation and timing does not tell which usernames exist.
pub fn password_matches(member: Option<&StaffMember>, password: &str) -> bool {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let decoy = DECOY.get_or_init(|| hash(&ncf_shared::secret::random_token(16)));
    let stored = member.map_or(decoy.as_str(), |m| m.password_hash.as_str());
    Argon2::default().verify_password(password.as_bytes(), stored).is_ok() && member.is_some()
}

/// Disables an account: its sessions end and its API tokens stop working at once (both are
/// checked against `disabled_at` on every request; the sessions are also deleted). Returns the
/// account, or `NotFound`.
pub fn disable(conn: &mut DbConn, username: &str) -> Result<StaffMember, NodeError> {
    use crate::schema::sessions;
    let username = username.trim().to_ascii_lowercase();
    let now = ncf_shared::time::now_utc();
    conn.transaction(|conn| {
        let member = staff::table
            .filter(staff::username.eq(&username))
            .select(StaffMember::as_select())
            .first(conn)
            .optional()?
            .ok_or(NodeError::NotFound("staff account"))?;
        diesel::update(staff::table.find(&member.id).filter(staff::disabled_at.is_null()))
            .set(staff::disabled_at.eq(now))
            .execute(conn)?;
        diesel::delete(
            sessions::table.filter(sessions::kind.eq("staff")).filter(sessions::subject_id.eq(&member.id)),
        )
        .execute(conn)?;
        Ok(StaffMember { disabled_at: member.disabled_at.or(Some(now)), ..member })
    })
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
