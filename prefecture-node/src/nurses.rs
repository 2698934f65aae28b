//! Nurses registered at this node, known by this node's agency code only (DESIGN rule 2).

use chrono::NaiveDate;
use diesel::prelude::*;
use ncf_shared::AgencyCode;
use ncf_shared::db::DbConn;
use ncf_shared::ids::NurseId;

use crate::schema::nurses;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = nurses)]
pub struct Nurse {
    pub id: String,
    pub agency_code: String,
    pub qualification: String,
    pub registration_number: String,
    pub family_name: String,
    pub given_name: String,
    pub family_name_kana: String,
    pub given_name_kana: String,
    pub birth_date: NaiveDate,
    pub email: String,
    pub phone: Option<String>,
    pub max_distance_km: i32,
    pub created_at: chrono::NaiveDateTime,
}

/// What an opt-in provides once the national server has linked the identity.
#[derive(Debug, Clone)]
pub struct NewNurse {
    pub agency_code: AgencyCode,
    pub qualification: String,
    pub registration_number: String,
    pub family_name: String,
    pub given_name: String,
    pub family_name_kana: String,
    pub given_name_kana: String,
    pub birth_date: NaiveDate,
    pub email: String,
    pub phone: Option<String>,
    pub max_distance_km: i32,
}

/// Registers a nurse, or returns the existing one when this agency code is already known (the
/// same person opting in twice).
pub fn register(conn: &mut DbConn, new: NewNurse) -> QueryResult<Nurse> {
    if let Some(existing) = by_agency_code(conn, &new.agency_code)? {
        return Ok(existing);
    }
    let nurse = Nurse {
        id: NurseId::new().0,
        agency_code: new.agency_code.to_string(),
        qualification: new.qualification,
        registration_number: new.registration_number,
        family_name: new.family_name,
        given_name: new.given_name,
        family_name_kana: new.family_name_kana,
        given_name_kana: new.given_name_kana,
        birth_date: new.birth_date,
        email: new.email,
        phone: new.phone,
        max_distance_km: new.max_distance_km,
        created_at: ncf_shared::time::now_utc(),
    };
    diesel::insert_into(nurses::table).values(&nurse).execute(conn)?;
    Ok(nurse)
}

pub fn by_agency_code(conn: &mut DbConn, code: &AgencyCode) -> QueryResult<Option<Nurse>> {
    nurses::table
        .filter(nurses::agency_code.eq(code.as_str()))
        .select(Nurse::as_select())
        .first(conn)
        .optional()
}

pub fn get(conn: &mut DbConn, id: &str) -> QueryResult<Option<Nurse>> {
    nurses::table.find(id).select(Nurse::as_select()).first(conn).optional()
}

/// Her agency code, or `NotFound` for an unknown nurse id.
pub fn agency_code_of(conn: &mut DbConn, nurse_id: &str) -> Result<String, crate::error::NodeError> {
    nurses::table
        .find(nurse_id)
        .select(nurses::agency_code)
        .first(conn)
        .optional()?
        .ok_or(crate::error::NodeError::NotFound("nurse"))
}

/// The contact fields a change notice gives; `None` leaves a field as it is.
#[derive(AsChangeset)]
#[diesel(table_name = nurses)]
pub struct ContactChange<'a> {
    pub family_name: Option<&'a str>,
    pub given_name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
}

/// Applies a contact change in one statement (nothing to do when it names no stored field, e.g.
/// only an address, which stays in the notice).
pub fn update_contact(conn: &mut DbConn, nurse_id: &str, change: &ContactChange<'_>) -> QueryResult<()> {
    let ContactChange { family_name, given_name, email, phone } = change;
    if [family_name, given_name, email, phone].iter().all(|f| f.is_none()) {
        return Ok(());
    }
    diesel::update(nurses::table.find(nurse_id)).set(change).execute(conn).map(drop)
}
