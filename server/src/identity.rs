//! Identity link (DESIGN flow 1): a node presents a nurse's licence claims; if they match the
//! registry, the node gets its own agency code for her (rule 2). A mismatch names the claims that
//! did not match and says nothing else about the registry.

use chrono::NaiveDate;
use diesel::prelude::*;
use ncf_shared::db::DbConn;
use ncf_shared::federation::{IdentityLinkRequest, IdentityLinkResponse};
use ncf_shared::licence::{LicenceStatus, PersonName};
use ncf_shared::{AgencyCodeKey, PersonKey, Prefecture, Qualification, RegistrationNumber, per_backend};

use crate::error::{AppError, ErrorKind};
use crate::schema::{identity_links, licences, residents};

/// Claims after their shape has been checked.
struct Claims {
    qualification: Qualification,
    registration_number: RegistrationNumber,
    family_name: String,
    given_name: String,
    family_name_kana: String,
    given_name_kana: String,
    birth_date: NaiveDate,
}

fn validate(req: &IdentityLinkRequest) -> Result<Claims, AppError> {
    let mut problems = Vec::new();
    let qualification = Qualification::from_code(&req.qualification);
    match qualification {
        None => problems
            .push(format!("qualification: unknown code {:?} (expected \"01\"..\"31\")", req.qualification)),
        Some(q) if !q.is_nursing() => problems.push(format!(
            "qualification: {} ({}) is not a nursing licence; nurse centers link 01-04 only",
            q.code(),
            q.name_ja()
        )),
        Some(_) => {}
    }
    let registration_number = RegistrationNumber::parse(req.registration_number.trim())
        .map_err(|e| problems.push(format!("registration_number: {e}")))
        .ok();
    for (field, value) in [("family_name", &req.family_name), ("given_name", &req.given_name)] {
        if let Err(e) = PersonName::check(value) {
            problems.push(format!("{field}: {e}"));
        }
    }
    for (field, value) in
        [("family_name_kana", &req.family_name_kana), ("given_name_kana", &req.given_name_kana)]
    {
        if let Err(e) = PersonName::check_kana(PersonName::normalize(value).as_str()) {
            problems.push(format!("{field}: {e}"));
        }
    }
    let birth_date = ncf_shared::time::parse_date(req.birth_date.trim())
        .map_err(|e| problems.push(format!("birth_date: {e}")))
        .ok();
    match (qualification, registration_number, birth_date) {
        (Some(qualification), Some(registration_number), Some(birth_date)) if problems.is_empty() => {
            Ok(Claims {
                qualification,
                registration_number,
                family_name: PersonName::normalize(&req.family_name),
                given_name: PersonName::normalize(&req.given_name),
                family_name_kana: PersonName::normalize(&req.family_name_kana),
                given_name_kana: PersonName::normalize(&req.given_name_kana),
                birth_date,
            })
        }
        _ => Err(AppError::bad_request(problems.join("; "))),
    }
}

#[derive(Queryable)]
struct LicenceMatch {
    person_key: Vec<u8>,
    family_name: String,
    given_name: String,
    family_name_kana: String,
    given_name_kana: String,
    birth_date: NaiveDate,
    status: String,
}

pub fn link(
    conn: &mut DbConn,
    key: &AgencyCodeKey,
    node: Prefecture,
    req: &IdentityLinkRequest,
) -> Result<IdentityLinkResponse, AppError> {
    let claims = validate(req)?;
    let licence: Option<LicenceMatch> = licences::table
        .find((claims.qualification.code(), claims.registration_number.canonical()))
        .select((
            licences::person_key,
            licences::family_name,
            licences::given_name,
            licences::family_name_kana,
            licences::given_name_kana,
            licences::birth_date,
            licences::status,
        ))
        .first(conn)
        .optional()?;
    let Some(licence) = licence else {
        return Err(mismatch(
            vec!["registration_number"],
            format!(
                "no {} licence has registration number {}",
                claims.qualification.name_ja(),
                claims.registration_number
            ),
        ));
    };
    // The name may have changed since registration (marriage): the resident record's current name
    // counts too.
    let resident: Option<(Option<String>, Option<String>, Option<NaiveDate>)> = residents::table
        .find(&licence.person_key)
        .select((residents::family_name, residents::given_name, residents::deceased_on))
        .first(conn)
        .optional()?;
    let (resident_family, resident_given, deceased_on) = resident.unwrap_or((None, None, None));
    let same = |claim: &str, recorded: &str| claim == PersonName::normalize(recorded);
    let same_or_current = |claim: &str, recorded: &str, current: &Option<String>| {
        same(claim, recorded) || current.as_deref().is_some_and(|c| same(claim, c))
    };
    let mut mismatched = Vec::new();
    if !same_or_current(&claims.family_name, &licence.family_name, &resident_family) {
        mismatched.push("family_name");
    }
    if !same_or_current(&claims.given_name, &licence.given_name, &resident_given) {
        mismatched.push("given_name");
    }
    if !same(&claims.family_name_kana, &licence.family_name_kana) {
        mismatched.push("family_name_kana");
    }
    if !same(&claims.given_name_kana, &licence.given_name_kana) {
        mismatched.push("given_name_kana");
    }
    if claims.birth_date != licence.birth_date {
        mismatched.push("birth_date");
    }
    if !mismatched.is_empty() {
        let message = format!("these claims do not match the registry: {}", mismatched.join(", "));
        return Err(mismatch(mismatched, message));
    }
    if licence.status != LicenceStatus::Active.as_str() || deceased_on.is_some() {
        return Err(AppError::new(
            ErrorKind::LicenceNotActive,
            "the licence matches but is not active in the registry; contact the prefecture's nurse center",
        ));
    }
    let person = PersonKey::from_slice(&licence.person_key)
        .ok_or_else(|| AppError::internal("identity link", "stored person key has the wrong length"))?;
    let agency_code = key.code_for(node, &person);
    // The link row and its provision entry stand or fall together: without one transaction a
    // failed append (or a crash between the two) would leave a link that no entry records, and the
    // chain's lock (ChainWriter::begin) would be released before the entry is written. The registry
    // reads above stay outside: on SQLite a transaction that writes first waits for the write lock
    // (busy timeout) rather than failing at once and running again.
    ncf_shared::db::write_transaction(conn, |conn| {
        per_backend!(conn, c => diesel::insert_into(identity_links::table)
            .values((
                identity_links::prefecture.eq(node.code()),
                identity_links::agency_code.eq(agency_code.as_str()),
                identity_links::person_key.eq(&licence.person_key),
                identity_links::qualification.eq(claims.qualification.code()),
                identity_links::registration_number.eq(claims.registration_number.canonical()),
                identity_links::linked_at.eq(ncf_shared::time::now_utc()),
            ))
            .on_conflict((identity_links::prefecture, identity_links::agency_code))
            .do_nothing()
            .execute(c))?;
        crate::provisions::record(
            conn,
            &crate::provisions::Provision::to_node(
                node,
                agency_code.as_str(),
                &["agency_code"],
                ncf_shared::contract::ProvisionPurpose::IdentityLink,
            ),
        )?;
        Ok::<_, AppError>(())
    })?;
    tracing::info!(prefecture = %node, "identity linked");
    Ok(IdentityLinkResponse { agency_code })
}

fn mismatch(fields: Vec<&str>, message: String) -> AppError {
    AppError {
        kind: ErrorKind::ClaimsMismatch,
        message,
        mismatched: fields.into_iter().map(str::to_string).collect(),
    }
}
