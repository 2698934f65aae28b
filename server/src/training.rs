//! Wishes to attend training and the attendance recorded (研修歴, issue #8), relayed between her
//! home node and the node that holds the session.
//!
//! 1. Her home node sends `training_wish` (under `training_info`, and her consent to this one
//!    hand-over, recorded there). The session must be an open, not withdrawn training posting
//!    here; the answer (`training_wish_answered`) carries the publishing node's key, or why not.
//! 2. Her home node seals her contact to that key (`training_contact`). It is passed on as it
//!    came, with the publishing node's code for her (`training_applicant`): this server cannot
//!    read it and keeps nothing of it, only the provision record.
//! 3. The publishing node's staff record attendance (`attendance_recorded`), which goes back to
//!    her home node for her training history (`training_attended`).
//!
//! A wish that is the same node's own session takes the same path: one way for every wish, and
//! every one is counted (without names) for the national figures.

use chrono::Utc;
use diesel::prelude::*;
use ncf_shared::contract::{
    AttendanceRecorded, NationalToNode, ProofingMethod, ProvisionPurpose, SealedApplicant, TrainingApplicant,
    TrainingAttended, TrainingContact, TrainingWish, TrainingWishAnswered,
};
use ncf_shared::db::DbConn;
use ncf_shared::posting::PostingKind;
use ncf_shared::{AgencyCode, AgencyCodeKey, PersonKey, Prefecture};

use crate::provisions::{ChainWriter, Provision};
use crate::routing::NotApplicable;
use crate::schema::{identity_links, match_entries, nodes, postings, training_wishes};

/// Wish ids are the home node's record ids: short, plain text.
fn plausible_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The newest registered, unrevoked key of a prefecture's node.
fn node_key(conn: &mut DbConn, prefecture: Prefecture) -> QueryResult<Option<String>> {
    nodes::table
        .filter(nodes::prefecture.eq(prefecture.code()))
        .filter(nodes::revoked_at.is_null())
        .order(nodes::added_at.desc())
        .select(nodes::public_key)
        .first(conn)
        .optional()
}

/// Step 1: records the wish and answers her node with the key to seal her contact to, or why it
/// cannot go. A wish sent again (a retried push) changes nothing and is not answered twice.
pub fn wish(
    conn: &mut DbConn,
    chain: &mut ChainWriter,
    node: Prefecture,
    person: &[u8],
    w: &TrainingWish,
) -> QueryResult<Result<(), NotApplicable>> {
    if !plausible_id(&w.wish_id) || !plausible_id(&w.posting.posting_id) {
        return Ok(Err(NotApplicable("wish or posting id is not a plain id")));
    }
    let exists = training_wishes::table
        .find((node.code(), &w.wish_id))
        .select(training_wishes::state)
        .first::<String>(conn)
        .optional()?;
    if exists.is_some() {
        return Ok(Ok(()));
    }
    if w.consent_text_sha256.len() != 64 || !w.consent_text_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Err(NotApplicable("the wish carries no digest of the consent text she agreed to")));
    }
    // One open wish per person and session, whichever node sends it.
    let open: i64 = training_wishes::table
        .filter(training_wishes::person_key.eq(person))
        .filter(training_wishes::publishing_prefecture.eq(w.posting.prefecture.code()))
        .filter(training_wishes::posting_id.eq(&w.posting.posting_id))
        .filter(training_wishes::state.ne("refused"))
        .count()
        .get_result(conn)?;
    if open > 0 {
        return Ok(Err(NotApplicable("she has asked to attend this session already")));
    }
    let today = ncf_shared::time::today_jst();
    let posting: Option<(String, bool, chrono::NaiveDate)> = postings::table
        .find((w.posting.prefecture.code(), &w.posting.posting_id))
        .select((postings::kind, postings::withdrawn, postings::valid_until))
        .first(conn)
        .optional()?;
    // Only a session the national server put on her list (at her home node) can be asked for.
    let listed: i64 = match_entries::table
        .filter(match_entries::person_key.eq(person))
        .filter(match_entries::kind.eq(PostingKind::Training.as_str()))
        .filter(match_entries::prefecture.eq(w.posting.prefecture.code()))
        .filter(match_entries::posting_id.eq(&w.posting.posting_id))
        .filter(match_entries::home_prefecture.eq(node.code()))
        .count()
        .get_result(conn)?;
    let refused = match posting {
        _ if listed == 0 => Some("この研修は、いまのお知らせの一覧にありません。"),
        None => Some("この研修は見つかりませんでした。"),
        Some((kind, _, _)) if kind != PostingKind::Training.as_str() => Some("研修ではありません。"),
        Some((_, true, _)) => Some("この研修は取り下げられました。"),
        Some((_, _, until)) if until < today => Some("この研修の掲載期間は終わりました。"),
        Some(_) => None,
    };
    let key = match refused {
        Some(_) => None,
        None => node_key(conn, w.posting.prefecture)?,
    };
    let refused =
        refused.or(key.is_none().then_some("この研修を行うナースセンターは、まだ接続されていません。"));
    diesel::insert_into(training_wishes::table)
        .values((
            training_wishes::home_prefecture.eq(node.code()),
            training_wishes::wish_id.eq(&w.wish_id),
            training_wishes::home_agency_code.eq(w.agency_code.as_str()),
            training_wishes::person_key.eq(person),
            training_wishes::publishing_prefecture.eq(w.posting.prefecture.code()),
            training_wishes::posting_id.eq(&w.posting.posting_id),
            training_wishes::state.eq(if refused.is_some() { "refused" } else { "answered" }),
            training_wishes::requested_at.eq(w.requested_at.naive_utc()),
            training_wishes::consent_text_sha256.eq(&w.consent_text_sha256),
        ))
        .execute(conn)?;
    chain.append(&Provision::from_node(
        node,
        w.agency_code.as_str(),
        &["training_wish:posting", "training_wish:consent_text_sha256"],
        ProvisionPurpose::TrainingApplication,
    ));
    let answer = NationalToNode::TrainingWishAnswered(TrainingWishAnswered {
        agency_code: w.agency_code.clone(),
        wish_id: w.wish_id.clone(),
        recipient_key: key,
        refused: refused.map(str::to_string),
        decided_at: Utc::now(),
    });
    crate::queue::enqueue(conn, node, &answer)?;
    tracing::info!(from = %node, to = %w.posting.prefecture, refused = refused.is_some(), "training wish answered");
    Ok(Ok(()))
}

/// Step 2: passes her sealed contact on to the publishing node, with its code for her.
pub fn relay_contact(
    conn: &mut DbConn,
    agency_key: &AgencyCodeKey,
    chain: &mut ChainWriter,
    node: Prefecture,
    t: &TrainingContact,
) -> QueryResult<Result<(), NotApplicable>> {
    let row: Option<(String, Vec<u8>, String, String)> = training_wishes::table
        .find((node.code(), &t.wish_id))
        .filter(training_wishes::home_agency_code.eq(t.agency_code.as_str()))
        .select((
            training_wishes::state,
            training_wishes::person_key,
            training_wishes::publishing_prefecture,
            training_wishes::posting_id,
        ))
        .first(conn)
        .optional()?;
    let Some((state, person_key, publishing, posting_id)) = row else {
        return Ok(Err(NotApplicable("no wish of this person from this node has that id")));
    };
    if state != "answered" {
        // Relayed already (a retried push), or refused.
        return Ok(Err(NotApplicable("the wish is not waiting for her contact")));
    }
    if t.sealed_contact.len() > 8 * 1024 {
        return Ok(Err(NotApplicable("sealed contact too large")));
    }
    let (Some(to), Some(person)) = (Prefecture::from_code(&publishing), PersonKey::from_slice(&person_key))
    else {
        return Ok(Err(NotApplicable("the stored wish is unreadable")));
    };
    let proofing_method: Option<String> = identity_links::table
        .find((node.code(), t.agency_code.as_str()))
        .select(identity_links::proofing_method)
        .first::<Option<String>>(conn)
        .optional()?
        .flatten();
    let code: AgencyCode = agency_key.code_for(to, &person);
    let applicant = NationalToNode::TrainingApplicant(TrainingApplicant {
        agency_code: code.clone(),
        wish_id: t.wish_id.clone(),
        posting_id,
        from: node,
        sealed_contact: t.sealed_contact.clone(),
        proofing_method: proofing_method
            .as_deref()
            .and_then(ProofingMethod::parse)
            .unwrap_or(ProofingMethod::Legacy),
        decided_at: Utc::now(),
    });
    crate::queue::enqueue(conn, to, &applicant)?;
    let fields: Vec<String> = SealedApplicant::FIELDS.iter().map(|f| format!("contact:{f}")).collect();
    let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    chain.append(&Provision::from_node(
        node,
        t.agency_code.as_str(),
        &fields,
        ProvisionPurpose::TrainingApplication,
    ));
    chain.append(&Provision::to_node(to, code.as_str(), &fields, ProvisionPurpose::TrainingApplication));
    diesel::update(training_wishes::table.find((node.code(), &t.wish_id)))
        .set((
            training_wishes::state.eq("relayed"),
            training_wishes::publisher_agency_code.eq(code.as_str()),
            training_wishes::relayed_at.eq(ncf_shared::time::now_utc()),
        ))
        .execute(conn)?;
    tracing::info!(from = %node, to = %to, "training wish: contact relayed sealed");
    Ok(Ok(()))
}

/// Step 3: the publishing node recorded her attendance; her home node hears of it. Recorded again
/// (a correction), the newer record replaces the older one there too.
pub fn attendance(
    conn: &mut DbConn,
    chain: &mut ChainWriter,
    node: Prefecture,
    a: &AttendanceRecorded,
) -> QueryResult<Result<(), NotApplicable>> {
    let row: Option<(String, String, String, String)> = training_wishes::table
        .filter(training_wishes::publishing_prefecture.eq(node.code()))
        .filter(training_wishes::wish_id.eq(&a.wish_id))
        .filter(training_wishes::publisher_agency_code.eq(a.agency_code.as_str()))
        .select((
            training_wishes::home_prefecture,
            training_wishes::home_agency_code,
            training_wishes::state,
            training_wishes::posting_id,
        ))
        .first(conn)
        .optional()?;
    let Some((home, home_code, state, posting_id)) = row else {
        return Ok(Err(NotApplicable("no applicant relayed to this node has that wish id and code")));
    };
    if state != "relayed" && state != "recorded" {
        return Ok(Err(NotApplicable("the wish was not relayed")));
    }
    // At most the session's hours, as the node published them.
    let body: Option<String> =
        postings::table.find((node.code(), &posting_id)).select(postings::body).first(conn).optional()?;
    let planned = body
        .and_then(|b| serde_json::from_str::<ncf_shared::posting::PostingBody>(&b).ok())
        .and_then(|b| b.training.map(|t| t.hours))
        .unwrap_or(0);
    if a.hours > planned || (a.attended && a.hours == 0) || (!a.attended && a.hours > 0) {
        return Ok(Err(NotApplicable("attendance hours out of range for the session")));
    }
    let Some(home) = Prefecture::from_code(&home) else {
        return Ok(Err(NotApplicable("the stored wish is unreadable")));
    };
    diesel::update(training_wishes::table.find((home.code(), &a.wish_id)))
        .set((
            training_wishes::state.eq("recorded"),
            training_wishes::attended.eq(a.attended),
            training_wishes::hours.eq(i32::from(a.hours)),
            training_wishes::recorded_at.eq(a.recorded_at.naive_utc()),
        ))
        .execute(conn)?;
    let event = NationalToNode::TrainingAttended(TrainingAttended {
        agency_code: AgencyCode::parse(&home_code).unwrap_or_else(|| a.agency_code.clone()),
        wish_id: a.wish_id.clone(),
        attended: a.attended,
        hours: a.hours,
        recorded_at: a.recorded_at,
    });
    crate::queue::enqueue(conn, home, &event)?;
    let fields = ["attended", "hours"];
    chain.append(&Provision::from_node(
        node,
        a.agency_code.as_str(),
        &fields,
        ProvisionPurpose::TrainingRecord,
    ));
    chain.append(&Provision::to_node(home, &home_code, &fields, ProvisionPurpose::TrainingRecord));
    tracing::info!(from = %node, to = %home, attended = a.attended, "training attendance relayed");
    Ok(Ok(()))
}

/// Attendance for the national figures, by the prefecture that held the session and the month
/// it was recorded in (JST): wishes relayed, attended, hours. Counts only, never who.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttendanceCount {
    pub prefecture: Prefecture,
    /// `YYYY-MM`.
    pub month: String,
    pub wishes: i64,
    pub attended: i64,
    pub hours: i64,
}

/// Holding prefecture, attended, hours, asked at, recorded at.
type CountRow = (String, Option<bool>, Option<i32>, chrono::NaiveDateTime, Option<chrono::NaiveDateTime>);

pub fn attendance_counts(conn: &mut DbConn) -> QueryResult<Vec<AttendanceCount>> {
    let rows: Vec<CountRow> = training_wishes::table
        .filter(training_wishes::state.ne("refused"))
        .select((
            training_wishes::publishing_prefecture,
            training_wishes::attended,
            training_wishes::hours,
            training_wishes::requested_at,
            training_wishes::recorded_at,
        ))
        .load(conn)?;
    let mut counts: std::collections::BTreeMap<(String, String), (i64, i64, i64)> = Default::default();
    for (prefecture, attended, hours, requested_at, recorded_at) in rows {
        let day = ncf_shared::time::jst_date(recorded_at.unwrap_or(requested_at));
        let entry = counts.entry((prefecture, day.format("%Y-%m").to_string())).or_default();
        entry.0 += 1;
        if attended == Some(true) {
            entry.1 += 1;
            entry.2 += i64::from(hours.unwrap_or(0));
        }
    }
    Ok(counts
        .into_iter()
        .filter_map(|((prefecture, month), (wishes, attended, hours))| {
            Some(AttendanceCount {
                prefecture: Prefecture::from_code(&prefecture)?,
                month,
                wishes,
                attended,
                hours,
            })
        })
        .collect())
}

/// The nodes holding her contact for training she asked to attend, with their codes for her:
/// the ones an erasure (her death) must reach. Each is returned once: the code is forgotten here
/// as it is returned (attendance counts stay).
pub fn holders_to_erase(conn: &mut DbConn, person: &[u8]) -> QueryResult<Vec<(Prefecture, AgencyCode)>> {
    let rows: Vec<(String, Option<String>)> = training_wishes::table
        .filter(training_wishes::person_key.eq(person))
        .filter(training_wishes::publisher_agency_code.is_not_null())
        .select((training_wishes::publishing_prefecture, training_wishes::publisher_agency_code))
        .load(conn)?;
    let mut holders = Vec::new();
    for (holder, code) in rows {
        if let (Some(holder), Some(code)) =
            (Prefecture::from_code(&holder), code.as_deref().and_then(AgencyCode::parse))
            && !holders.contains(&(holder, code.clone()))
        {
            holders.push((holder, code));
        }
    }
    diesel::update(
        training_wishes::table
            .filter(training_wishes::person_key.eq(person))
            .filter(training_wishes::publisher_agency_code.is_not_null()),
    )
    .set(training_wishes::publisher_agency_code.eq(None::<String>))
    .execute(conn)?;
    Ok(holders)
}
