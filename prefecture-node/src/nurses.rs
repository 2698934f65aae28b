//! Nurses registered at this node, known by this node's agency code only (DESIGN rule 2).

use chrono::NaiveDate;
use diesel::prelude::*;
use ncf_shared::db::DbConn;
use ncf_shared::ids::NurseId;
use ncf_shared::{AgencyCode, RegistrationNumber};

use crate::schema::nurses;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = nurses, treat_none_as_default_value = false)]
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
    /// How she proved who she is (`post` or `counter`); `None` until she has.
    pub proofing_method: Option<String>,
    pub proofed_at: Option<chrono::NaiveDateTime>,
    /// The staff member who checked her documents at the counter.
    pub proofed_by: Option<String>,
    /// The photo ID checked at the counter (e.g. 運転免許証).
    pub proofing_document: Option<String>,
}

impl Nurse {
    pub fn proofed(&self) -> bool {
        self.proofed_at.is_some()
    }
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

/// Registers a nurse, not yet proofed. Other unproofed registrations for the same licence may
/// exist (whoever registers first must block nobody); the caller checks that no proofed one does.
pub fn register(conn: &mut DbConn, new: NewNurse) -> QueryResult<Nurse> {
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
        proofing_method: None,
        proofed_at: None,
        proofed_by: None,
        proofing_document: None,
    };
    diesel::insert_into(nurses::table).values(&nurse).execute(conn)?;
    refresh_search_key(conn, &nurse.id)?;
    Ok(nurse)
}

/// What staff search matches: her names in kanji and in kana, e-mail address and registration
/// number, each folded by `normalize::search_key` and kept apart by `|` so that a query never
/// matches across two of them.
pub fn search_key_of(nurse: &Nurse) -> String {
    use ncf_shared::normalize::search_key;
    [
        search_key(&format!("{}{}", nurse.family_name, nurse.given_name)),
        search_key(&format!("{}{}", nurse.family_name_kana, nurse.given_name_kana)),
        search_key(&nurse.email),
        nurse.registration_number.clone(),
    ]
    .join("|")
}

pub(crate) fn refresh_search_key(conn: &mut DbConn, nurse_id: &str) -> QueryResult<()> {
    let Some(nurse) = get(conn, nurse_id)? else { return Ok(()) };
    diesel::update(nurses::table.find(nurse_id))
        .set(nurses::search_key.eq(search_key_of(&nurse)))
        .execute(conn)?;
    Ok(())
}

/// Fills the search key of registrations from before it existed (run at start-up, after the
/// migrations); a no-op once every row has one.
pub fn backfill_search_keys(conn: &mut DbConn) -> QueryResult<usize> {
    let missing: Vec<Nurse> =
        nurses::table.filter(nurses::search_key.eq("")).select(Nurse::as_select()).load(conn)?;
    for nurse in &missing {
        diesel::update(nurses::table.find(&nurse.id))
            .set(nurses::search_key.eq(search_key_of(nurse)))
            .execute(conn)?;
    }
    Ok(missing.len())
}

/// The registration that holds this licence here: the proofed one (at most one can be).
pub fn proofed_by_agency_code(conn: &mut DbConn, code: &AgencyCode) -> QueryResult<Option<Nurse>> {
    nurses::table
        .filter(nurses::agency_code.eq(code.as_str()))
        .filter(nurses::proofed_at.is_not_null())
        .select(Nurse::as_select())
        .first(conn)
        .optional()
}

pub fn get(conn: &mut DbConn, id: &str) -> QueryResult<Option<Nurse>> {
    nurses::table.find(id).select(Nurse::as_select()).first(conn).optional()
}

/// Her agency code, or `NotFound` for an unknown nurse id.
pub fn agency_code_of(
    conn: &mut DbConn,
    nurse_id: &str,
) -> Result<ncf_shared::AgencyCode, crate::error::NodeError> {
    let mut codes = agency_codes_of(conn, &[nurse_id])?;
    Ok(codes.remove(nurse_id).expect("agency_codes_of answers for every id"))
}

/// The agency codes of these nurses, a few statements for any number of them; `NotFound` when
/// one id is unknown.
pub fn agency_codes_of(
    conn: &mut DbConn,
    nurse_ids: &[&str],
) -> Result<std::collections::HashMap<String, ncf_shared::AgencyCode>, crate::error::NodeError> {
    let mut wanted: Vec<&str> = nurse_ids.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let mut codes = std::collections::HashMap::with_capacity(wanted.len());
    for chunk in wanted.chunks(1000) {
        let rows: Vec<(String, String)> = nurses::table
            .filter(nurses::id.eq_any(chunk))
            .select((nurses::id, nurses::agency_code))
            .load(conn)?;
        for (id, code) in rows {
            // Stored only after the national server gave it, so a bad one means a damaged row.
            let code = ncf_shared::AgencyCode::parse(&code).ok_or_else(|| {
                crate::error::NodeError::Database(diesel::result::Error::DeserializationError(
                    format!("nurse {id} has a malformed agency code").into(),
                ))
            })?;
            codes.insert(id, code);
        }
    }
    if codes.len() < wanted.len() {
        return Err(crate::error::NodeError::NotFound("nurse"));
    }
    Ok(codes)
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
    diesel::update(nurses::table.find(nurse_id)).set(change).execute(conn)?;
    refresh_search_key(conn, nurse_id)
}

/// Nurses with this e-mail address (as registered, or in lower case).
pub fn by_email(conn: &mut DbConn, email: &str) -> QueryResult<Vec<Nurse>> {
    // As opt-in stores it (`normalize::email`); older rows may differ in case only.
    let email = ncf_shared::normalize::email(email);
    nurses::table
        .filter(nurses::email.eq_any([email.clone(), email.to_lowercase()]))
        .select(Nurse::as_select())
        .load(conn)
}

/// What staff narrow the list by, and how they sort it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchFilter {
    /// Names (kanji or kana, any width, with or without a space), e-mail, registration number
    /// or a receipt number.
    pub query: String,
    pub proofing: ProofingFilter,
    /// Only nurses whose current decision for this scope is a grant.
    pub consent: Option<ncf_shared::ConsentScope>,
    /// Only nurses with events the national server has not taken yet (waiting or parked).
    pub unsent: bool,
    pub sort: SortOrder,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProofingFilter {
    #[default]
    Any,
    Proofed,
    NotProofed,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortOrder {
    /// By kana (五十音順).
    #[default]
    Kana,
    NewestFirst,
    OldestFirst,
}

/// Staff search (see [`SearchFilter`]); an empty filter lists everyone. Returns one page and the
/// total.
pub fn search(
    conn: &mut DbConn,
    filter: &SearchFilter,
    limit: i64,
    offset: i64,
) -> QueryResult<(Vec<Nurse>, i64)> {
    use diesel::sql_types::{Bool, Text};
    // `|` separates the key's parts (see `search_key_of`): never part of what is looked for.
    let key = ncf_shared::normalize::search_key(&filter.query).replace('|', "");
    let receipt_holder: Option<String> = match crate::receipts::parse(&filter.query) {
        Some(number) => crate::receipts::find(conn, &number)?.map(|r| r.nurse_id),
        None => None,
    };
    let cursor = crate::sync::cursor(conn)?;
    let filtered = || {
        let mut q = nurses::table.into_boxed();
        if !key.is_empty() {
            let escaped = key.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            let mut condition = Box::new(nurses::search_key.like(format!("%{escaped}%")).escape('\\'))
                as Box<dyn BoxableExpression<nurses::table, _, SqlType = Bool>>;
            if let Ok(number) = RegistrationNumber::parse(&key) {
                condition = Box::new(condition.or(nurses::registration_number.eq(number.canonical())));
            }
            if let Some(holder) = &receipt_holder {
                condition = Box::new(condition.or(nurses::id.eq(holder.clone())));
            }
            q = q.filter(condition);
        }
        q = match filter.proofing {
            ProofingFilter::Any => q,
            ProofingFilter::Proofed => q.filter(nurses::proofed_at.is_not_null()),
            ProofingFilter::NotProofed => q.filter(nurses::proofed_at.is_null()),
        };
        if let Some(scope) = filter.consent {
            // Her latest decision for the scope is a grant (the highest version wins).
            q = q.filter(
                diesel::dsl::sql::<Bool>(
                    "EXISTS (SELECT 1 FROM consents c WHERE c.nurse_id = nurses.id AND c.scope = ",
                )
                .bind::<Text, _>(scope.as_str())
                .sql(
                    " AND c.granted AND c.version = (SELECT MAX(c2.version) FROM consents c2 \
                     WHERE c2.nurse_id = c.nurse_id AND c2.scope = c.scope))",
                ),
            );
        }
        if filter.unsent {
            q = q.filter(
                diesel::dsl::sql::<Bool>(
                    "EXISTS (SELECT 1 FROM outbox o WHERE o.nurse_id = nurses.id AND (o.seq > ",
                )
                .bind::<diesel::sql_types::BigInt, _>(cursor)
                .sql(" OR o.parked_reason IS NOT NULL))"),
            );
        }
        q
    };
    let total = filtered().count().get_result(conn)?;
    let ordered = match filter.sort {
        SortOrder::Kana => filtered().order((nurses::family_name_kana, nurses::given_name_kana, nurses::id)),
        SortOrder::NewestFirst => filtered().order((nurses::created_at.desc(), nurses::id)),
        SortOrder::OldestFirst => filtered().order((nurses::created_at.asc(), nurses::id)),
    };
    let page = ordered.limit(limit).offset(offset).select(Nurse::as_select()).load(conn)?;
    Ok((page, total))
}

/// `preference_changed` with her current distance, for the outbox (under `job_support` or
/// `training_info`, as the contract says).
pub fn distance_event(
    conn: &mut DbConn,
    nurse_id: &str,
) -> Result<ncf_shared::contract::NodeToNational, crate::error::NodeError> {
    let agency_code = agency_code_of(conn, nurse_id)?;
    let km: i32 = nurses::table.find(nurse_id).select(nurses::max_distance_km).first(conn)?;
    Ok(ncf_shared::contract::NodeToNational::PreferenceChanged(ncf_shared::contract::PreferenceChanged {
        agency_code,
        distance_km: km.max(0) as u32,
        changed_at: chrono::Utc::now(),
    }))
}

/// Changes her distance (one of the choices) and queues it for the national server, in one
/// transaction. `Ok(false)` when the distance is not one of the choices.
pub fn set_distance(conn: &mut DbConn, nurse_id: &str, km: u32) -> Result<bool, crate::error::NodeError> {
    if !ncf_shared::posting::DISTANCE_CHOICES_KM.contains(&km) {
        return Ok(false);
    }
    let current: i32 = nurses::table.find(nurse_id).select(nurses::max_distance_km).first(conn)?;
    if current == km as i32 {
        return Ok(true); // unchanged: nothing to tell the national server
    }
    ncf_shared::db::write_transaction(conn, |conn| {
        diesel::update(nurses::table.find(nurse_id))
            .set(nurses::max_distance_km.eq(km as i32))
            .execute(conn)?;
        let gate = crate::consent::current(conn, nurse_id)?;
        let event = distance_event(conn, nurse_id)?;
        crate::outbox::enqueue_if_covered(conn, &gate, &event, Some(nurse_id))?;
        Ok(true)
    })
}
