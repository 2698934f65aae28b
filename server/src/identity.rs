//! Identity link (DESIGN flow 1): a node presents a nurse's licence claims; if they match an active
//! licence, the node gets its own agency code for her (rule 2).
//!
//! No registry oracle: a public request learns match or no match, never which field differed nor
//! whether a licence exists, lapsed or belongs to someone deceased; failures are counted per
//! licence (5 in 24 hours, then refused) and per node (so a script cannot walk the registry
//! through one node). Only staff at a counter, with her certificate in hand, see which fields
//! differ, and each such lookup is recorded with the staff id.

use chrono::NaiveDate;
use diesel::prelude::*;
use ncf_shared::db::DbConn;
use ncf_shared::federation::{IdentityLinkRequest, IdentityLinkResponse};
use ncf_shared::licence::{LicenceStatus, PersonName};
use ncf_shared::{AgencyCodeKey, PersonKey, Prefecture, Qualification, RegistrationNumber, per_backend};

use crate::error::{AppError, ErrorKind};
use crate::schema::{identity_links, licences, link_failures, residents, staff_lookups};

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

/// Failed attempts allowed per licence within [`LICENCE_WINDOW_HOURS`].
pub const MAX_FAILURES_PER_LICENCE: i64 = 5;
const LICENCE_WINDOW_HOURS: i64 = 24;
/// Failed attempts allowed per node within an hour: far above what its nurses mistype, far below
/// what reading the registry through it would take.
pub const MAX_FAILURES_PER_NODE_HOUR: i64 = 200;

pub fn link(
    conn: &mut DbConn,
    key: &AgencyCodeKey,
    node: Prefecture,
    req: &IdentityLinkRequest,
) -> Result<IdentityLinkResponse, AppError> {
    let claims = validate(req)?;
    let staff = req.staff_lookup.as_deref().map(str::trim).filter(|s| !s.is_empty());
    // Staff at the counter have her certificate in hand: the per-licence limit does not apply to
    // them (else anyone could shut her out of the counter too), the per-node one does.
    if let Some(refusal) = throttled(conn, node, &claims, staff.is_none())? {
        if let Some(staff_id) = staff {
            record_lookup(conn, node, staff_id, &claims, "attempts_exhausted")?;
        }
        return Err(refusal);
    }
    let outcome = check(conn, key, node, &claims);
    if let Err(e) = &outcome
        && matches!(e.kind, ErrorKind::ClaimsMismatch | ErrorKind::LicenceNotActive)
    {
        record_failure(conn, node, &claims)?;
        tracing::info!(prefecture = %node, "identity link: no match");
    }
    match staff {
        Some(staff_id) => {
            let label = match &outcome {
                Ok(_) => "match",
                Err(e) => e.kind.as_str(),
            };
            record_lookup(conn, node, staff_id, &claims, label)?;
            outcome
        }
        // The public answer: one kind of "no", whatever differed.
        None => outcome.map_err(|e| match e.kind {
            ErrorKind::ClaimsMismatch | ErrorKind::LicenceNotActive => {
                AppError::new(ErrorKind::NoMatch, "the claims do not match an active licence in the registry")
            }
            _ => e,
        }),
    }
}

fn since(hours: i64) -> chrono::NaiveDateTime {
    ncf_shared::time::now_utc() - chrono::Duration::hours(hours)
}

/// Refuses a licence after [`MAX_FAILURES_PER_LICENCE`] failures in 24 hours, and a node after
/// [`MAX_FAILURES_PER_NODE_HOUR`] in an hour, whatever the claims are now.
fn throttled(
    conn: &mut DbConn,
    node: Prefecture,
    claims: &Claims,
    per_licence: bool,
) -> Result<Option<AppError>, AppError> {
    let for_licence: i64 = if !per_licence {
        0
    } else {
        link_failures::table
            .filter(link_failures::qualification.eq(claims.qualification.code()))
            .filter(link_failures::registration_number.eq(claims.registration_number.canonical()))
            .filter(link_failures::failed_at.gt(since(LICENCE_WINDOW_HOURS)))
            .count()
            .get_result(conn)?
    };
    if for_licence >= MAX_FAILURES_PER_LICENCE {
        tracing::warn!(prefecture = %node, "identity link refused: too many failures for one licence");
        return Ok(Some(AppError::new(
            ErrorKind::AttemptsExhausted,
            format!(
                "{MAX_FAILURES_PER_LICENCE} failed attempts for this licence in the last {LICENCE_WINDOW_HOURS} hours; try again later or prove her identity at the counter"
            ),
        )));
    }
    let for_node: i64 = link_failures::table
        .filter(link_failures::prefecture.eq(node.code()))
        .filter(link_failures::failed_at.gt(since(1)))
        .count()
        .get_result(conn)?;
    if for_node >= MAX_FAILURES_PER_NODE_HOUR {
        tracing::warn!(prefecture = %node, failures = for_node, "identity link refused: too many failures from this node in an hour");
        return Ok(Some(AppError::new(
            ErrorKind::AttemptsExhausted,
            format!(
                "{MAX_FAILURES_PER_NODE_HOUR} failed attempts from this node in the last hour; try again later"
            ),
        )));
    }
    Ok(None)
}

fn record_failure(conn: &mut DbConn, node: Prefecture, claims: &Claims) -> Result<(), AppError> {
    diesel::insert_into(link_failures::table)
        .values((
            link_failures::id.eq(ncf_shared::ids::RecordId::new().0),
            link_failures::qualification.eq(claims.qualification.code()),
            link_failures::registration_number.eq(claims.registration_number.canonical()),
            link_failures::prefecture.eq(node.code()),
            link_failures::failed_at.eq(ncf_shared::time::now_utc()),
        ))
        .execute(conn)?;
    Ok(())
}

fn record_lookup(
    conn: &mut DbConn,
    node: Prefecture,
    staff_id: &str,
    claims: &Claims,
    outcome: &str,
) -> Result<(), AppError> {
    let staff_id: String = staff_id.chars().take(100).collect();
    diesel::insert_into(staff_lookups::table)
        .values((
            staff_lookups::id.eq(ncf_shared::ids::RecordId::new().0),
            staff_lookups::prefecture.eq(node.code()),
            staff_lookups::staff_id.eq(staff_id),
            staff_lookups::qualification.eq(claims.qualification.code()),
            staff_lookups::registration_number.eq(claims.registration_number.canonical()),
            staff_lookups::outcome.eq(outcome),
            staff_lookups::looked_up_at.eq(ncf_shared::time::now_utc()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Matches the claims against the registry and, on a match, links them; a mismatch names the
/// fields (for staff lookups only: see [`link`]).
fn check(
    conn: &mut DbConn,
    key: &AgencyCodeKey,
    node: Prefecture,
    claims: &Claims,
) -> Result<IdentityLinkResponse, AppError> {
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
    // An ex-officio deletion stands beside the registry row, whatever later imports say.
    let deleted = crate::schema::licence_deletions::table
        .find((claims.qualification.code(), claims.registration_number.canonical()))
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if licence.status != LicenceStatus::Active.as_str() || deceased_on.is_some() || deleted {
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
