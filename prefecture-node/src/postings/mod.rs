//! Job and training postings (求人・研修, issue #8) at the node: what its staff publish, sent to
//! the national server on the federation's non-personal path, and what the national server
//! matched to this node's nurses.
//!
//! A posting is stored as its `PostingBody` (JSON) with the columns lists need beside it, and
//! every change (edit, withdrawal) raises `version`. The sync sends each posting whose `version`
//! is past `synced_version` — its whole state, so sending it twice is harmless — and moves
//! `synced_version` to what the national server answered. A posting the national server refuses
//! (it checks with the same `PostingBody::validate`) keeps the reason for staff.
//!
//! Her lists (`nurse_matches`) are what the national server last sent in `matches_changed`
//! events; each posting's text is kept once (`matched_postings`), whichever node published it.
//! Her page still drops a posting past its last day, or withdrawn here, before the national
//! server's next sweep reaches her list.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use ncf_shared::contract::{MatchesChanged, PostingRef};
use ncf_shared::db::DbConn;
use ncf_shared::federation::{PostingsPushResponse, PublishedPosting};
use ncf_shared::posting::{PostingBody, PostingKind};
use ncf_shared::validation::FieldError;
use ncf_shared::{Municipality, Prefecture};

use crate::schema::{matched_postings, nurse_matches, postings};

pub mod import;
pub mod text;

/// A posting of this node, as staff see it.
#[derive(Debug, Clone)]
pub struct Posting {
    pub id: String,
    pub body: PostingBody,
    pub version: i64,
    pub synced_version: i64,
    pub refused_reason: Option<String>,
    pub withdrawn_at: Option<NaiveDateTime>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Posting {
    /// 掲載中, 掲載前, 掲載終了 or 取り下げ, on `today`.
    pub fn state_ja(&self, today: NaiveDate) -> &'static str {
        if self.withdrawn_at.is_some() {
            "取り下げ"
        } else if today < self.body.valid_from {
            "掲載前"
        } else if today > self.body.valid_until {
            "掲載終了"
        } else {
            "掲載中"
        }
    }

    /// Where the national server stands with this version.
    pub fn sync_ja(&self) -> &'static str {
        match (&self.refused_reason, self.synced_version >= self.version) {
            (Some(_), true) => "国の共通サーバーが受け付けませんでした",
            (None, true) => "国の共通サーバーに送信済み",
            (_, false) => "送信待ち",
        }
    }
}

type Row =
    (String, String, i64, i64, Option<String>, Option<NaiveDateTime>, String, NaiveDateTime, NaiveDateTime);

fn from_row(r: Row) -> QueryResult<Posting> {
    let body: PostingBody =
        serde_json::from_str(&r.1).map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?;
    Ok(Posting {
        id: r.0,
        body,
        version: r.2,
        synced_version: r.3,
        refused_reason: r.4,
        withdrawn_at: r.5,
        created_by: r.6,
        created_at: r.7,
        updated_at: r.8,
    })
}

macro_rules! columns {
    () => {
        (
            postings::id,
            postings::body,
            postings::version,
            postings::synced_version,
            postings::refused_reason,
            postings::withdrawn_at,
            postings::created_by,
            postings::created_at,
            postings::updated_at,
        )
    };
}

/// This node's postings, newest first.
pub fn list(conn: &mut DbConn) -> QueryResult<Vec<Posting>> {
    postings::table
        .order(postings::created_at.desc())
        .select(columns!())
        .load::<Row>(conn)?
        .into_iter()
        .map(from_row)
        .collect()
}

pub fn get(conn: &mut DbConn, id: &str) -> QueryResult<Option<Posting>> {
    postings::table.find(id).select(columns!()).first::<Row>(conn).optional()?.map(from_row).transpose()
}

/// Publishes a new posting, checked as every way in checks it.
pub fn create(
    conn: &mut DbConn,
    staff_id: &str,
    body: &PostingBody,
) -> QueryResult<Result<String, Vec<FieldError>>> {
    if let Err(errors) = body.validate() {
        return Ok(Err(errors));
    }
    let id = ncf_shared::ids::RecordId::new().0;
    let now = ncf_shared::time::now_utc();
    diesel::insert_into(postings::table)
        .values((
            postings::id.eq(&id),
            postings::kind.eq(body.kind.as_str()),
            postings::title.eq(&body.title),
            postings::body.eq(serde_json::to_string(body).expect("a posting serialises")),
            postings::version.eq(1i64),
            postings::synced_version.eq(0i64),
            postings::valid_from.eq(body.valid_from),
            postings::valid_until.eq(body.valid_until),
            postings::created_by.eq(staff_id),
            postings::created_at.eq(now),
            postings::updated_at.eq(now),
        ))
        .execute(conn)?;
    tracing::info!(posting = %id, kind = body.kind.as_str(), "posting published");
    Ok(Ok(id))
}

/// What a change to an existing posting can meet.
#[derive(Debug, PartialEq, Eq)]
pub enum ChangeError {
    NotFound,
    Withdrawn,
    Invalid(Vec<FieldError>),
}

/// Replaces a posting's content (a new version; the national server replaces its copy).
pub fn update(conn: &mut DbConn, id: &str, body: &PostingBody) -> QueryResult<Result<(), ChangeError>> {
    if let Err(errors) = body.validate() {
        return Ok(Err(ChangeError::Invalid(errors)));
    }
    conn.transaction(|conn| {
        let Some(current) = get(conn, id)? else { return Ok(Err(ChangeError::NotFound)) };
        if current.withdrawn_at.is_some() {
            return Ok(Err(ChangeError::Withdrawn));
        }
        // Applicants asked for a training session: it stays one (their attendance is recorded
        // against its hours).
        if current.body.kind != body.kind && crate::training::has_applicants(conn, id)? {
            return Ok(Err(ChangeError::Invalid(vec![FieldError::new(
                "kind",
                "参加希望者のいる研修は、求人に変更できません。新しく掲載してください。",
            )])));
        }
        diesel::update(postings::table.find(id))
            .set((
                postings::kind.eq(body.kind.as_str()),
                postings::title.eq(&body.title),
                postings::body.eq(serde_json::to_string(body).expect("a posting serialises")),
                postings::version.eq(postings::version + 1),
                postings::refused_reason.eq(None::<String>),
                postings::valid_from.eq(body.valid_from),
                postings::valid_until.eq(body.valid_until),
                postings::updated_at.eq(ncf_shared::time::now_utc()),
            ))
            .execute(conn)?;
        Ok(Ok(()))
    })
}

/// Withdraws a posting: it leaves every list at the national server's next answer. Withdrawing
/// twice changes nothing.
pub fn withdraw(conn: &mut DbConn, id: &str) -> QueryResult<Result<(), ChangeError>> {
    let now = ncf_shared::time::now_utc();
    let changed = diesel::update(postings::table.find(id).filter(postings::withdrawn_at.is_null()))
        .set((
            postings::withdrawn_at.eq(now),
            postings::version.eq(postings::version + 1),
            postings::updated_at.eq(now),
        ))
        .execute(conn)?;
    if changed == 0 {
        let exists = postings::table.find(id).select(postings::id).first::<String>(conn).optional()?;
        return Ok(Err(if exists.is_some() { ChangeError::Withdrawn } else { ChangeError::NotFound }));
    }
    tracing::info!(posting = %id, "posting withdrawn");
    Ok(Ok(()))
}

/// Postings whose current version the national server has not answered for, oldest change first.
pub fn unsynced(conn: &mut DbConn, limit: i64) -> QueryResult<Vec<PublishedPosting>> {
    postings::table
        .filter(postings::synced_version.lt(postings::version))
        .order(postings::updated_at)
        .limit(limit)
        .select(columns!())
        .load::<Row>(conn)?
        .into_iter()
        .map(|r| {
            let p = from_row(r)?;
            Ok(PublishedPosting {
                posting_id: p.id,
                version: p.version,
                withdrawn: p.withdrawn_at.is_some(),
                body: p.body,
            })
        })
        .collect()
}

/// Records the national server's answer: each posting's synced version moves to what it answered
/// (never back), and a refusal keeps its reason for staff.
pub fn record_answer(conn: &mut DbConn, answer: &PostingsPushResponse) -> QueryResult<()> {
    conn.transaction(|conn| {
        for s in &answer.stored {
            diesel::update(
                postings::table.find(&s.posting_id).filter(postings::synced_version.lt(s.version)),
            )
            .set((postings::synced_version.eq(s.version), postings::refused_reason.eq(None::<String>)))
            .execute(conn)?;
        }
        for r in &answer.refused {
            tracing::error!(posting = %r.posting_id, version = r.version, reason = %r.reason, "posting refused by the national server");
            diesel::update(
                postings::table.find(&r.posting_id).filter(postings::synced_version.lt(r.version)),
            )
            .set((postings::synced_version.eq(r.version), postings::refused_reason.eq(&r.reason)))
            .execute(conn)?;
        }
        Ok(())
    })
}

/// Applies a `matches_changed` for this nurse.
pub fn apply_matches(
    conn: &mut DbConn,
    nurse_id: &str,
    m: &MatchesChanged,
    now: NaiveDateTime,
) -> QueryResult<()> {
    for r in &m.removed {
        // Of this kind only: a posting changed from 研修 to 求人 arrives as an addition to the job
        // list and a removal from the training list, in either order.
        diesel::delete(
            nurse_matches::table
                .filter(nurse_matches::nurse_id.eq(nurse_id))
                .filter(nurse_matches::kind.eq(m.kind.as_str()))
                .filter(nurse_matches::prefecture.eq(r.prefecture.code()))
                .filter(nurse_matches::posting_id.eq(&r.posting_id)),
        )
        .execute(conn)?;
    }
    for a in &m.added {
        // Shown on her page and in her mail: checked here too, as every way in checks a posting
        // (the national server checked it, but this node does not rely on another's checks).
        if let Err(errors) = a.body.validate() {
            tracing::warn!(posting = %a.posting.posting_id, from = %a.posting.prefecture, errors = errors.len(), "matched posting refused: it does not pass the posting checks");
            continue;
        }
        let body = serde_json::to_string(&a.body).expect("a posting serialises");
        let held: Option<i64> = matched_postings::table
            .find((a.posting.prefecture.code(), &a.posting.posting_id))
            .select(matched_postings::version)
            .first(conn)
            .optional()?;
        match held {
            None => {
                diesel::insert_into(matched_postings::table)
                    .values((
                        matched_postings::prefecture.eq(a.posting.prefecture.code()),
                        matched_postings::posting_id.eq(&a.posting.posting_id),
                        matched_postings::version.eq(a.version),
                        matched_postings::body.eq(&body),
                    ))
                    .execute(conn)?;
            }
            Some(v) if v < a.version => {
                diesel::update(
                    matched_postings::table.find((a.posting.prefecture.code(), &a.posting.posting_id)),
                )
                .set((matched_postings::version.eq(a.version), matched_postings::body.eq(&body)))
                .execute(conn)?;
            }
            Some(_) => {}
        }
        let updated = diesel::update(nurse_matches::table.find((
            nurse_id,
            a.posting.prefecture.code(),
            &a.posting.posting_id,
        )))
        .set((
            nurse_matches::distance_m.eq(a.distance_m.min(i32::MAX as u32) as i32),
            nurse_matches::kind.eq(m.kind.as_str()),
        ))
        .execute(conn)?;
        if updated == 0 {
            diesel::insert_into(nurse_matches::table)
                .values((
                    nurse_matches::nurse_id.eq(nurse_id),
                    nurse_matches::kind.eq(m.kind.as_str()),
                    nurse_matches::prefecture.eq(a.posting.prefecture.code()),
                    nurse_matches::posting_id.eq(&a.posting.posting_id),
                    nurse_matches::distance_m.eq(a.distance_m.min(i32::MAX as u32) as i32),
                    nurse_matches::matched_at.eq(now),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}

/// Deletes her lists (erasure, or she is no longer contacted here).
pub fn forget_matches(conn: &mut DbConn, nurse_id: &str) -> QueryResult<usize> {
    diesel::delete(nurse_matches::table.filter(nurse_matches::nurse_id.eq(nurse_id))).execute(conn)
}

/// One posting in her list, as her page and her digest show it.
#[derive(Debug, Clone)]
pub struct Match {
    pub posting: PostingRef,
    pub kind: PostingKind,
    pub body: PostingBody,
    pub distance_m: i32,
    pub matched_at: NaiveDateTime,
}

impl Match {
    /// 「12 km」 (the national server sends whole kilometres).
    pub fn distance_ja(&self) -> String {
        format!("{} km", (f64::from(self.distance_m) / 1000.0).round())
    }

    /// The prefecture and municipality (or 「緯度・経度で指定」) where it is.
    pub fn place_ja(&self) -> String {
        match &self.body.place {
            // The municipality's own prefecture: a node may publish a posting across the border.
            ncf_shared::posting::PostingPlace::Municipality { lgcode } => Municipality::by_lgcode(lgcode)
                .map(|m| format!("{}{}", m.prefecture.name_ja(), m.name_ja))
                .unwrap_or_default(),
            // Coordinates: named after the nearest municipality's point.
            ncf_shared::posting::PostingPlace::Point { lat, lng } => Municipality::all()
                .iter()
                .filter(|m| m.is_residence())
                .min_by(|a, b| {
                    let d = |m: &Municipality| {
                        (m.lat - lat).powi(2) + ((m.lng - lng) * lat.to_radians().cos()).powi(2)
                    };
                    d(a).total_cmp(&d(b))
                })
                .map(|m| format!("{}{}付近", m.prefecture.name_ja(), m.name_ja))
                .unwrap_or_default(),
        }
    }
}

/// Her lists, nearest first, without what closed on `today` or was withdrawn here since (the
/// national server's removal follows).
pub fn matches_for(
    conn: &mut DbConn,
    here: Prefecture,
    nurse_id: &str,
    today: NaiveDate,
) -> QueryResult<Vec<Match>> {
    Ok(matches_of_many(conn, here, &[nurse_id], today)?.remove(nurse_id).unwrap_or_default())
}

/// [`matches_for`] for many nurses at once (digests), by nurse id.
pub fn matches_of_many(
    conn: &mut DbConn,
    here: Prefecture,
    nurse_ids: &[&str],
    today: NaiveDate,
) -> QueryResult<std::collections::HashMap<String, Vec<Match>>> {
    let withdrawn_here: std::collections::HashSet<String> = postings::table
        .filter(postings::withdrawn_at.is_not_null())
        .select(postings::id)
        .load::<String>(conn)?
        .into_iter()
        .collect();
    let mut bodies: std::collections::HashMap<(String, String), Option<PostingBody>> = Default::default();
    let mut out: std::collections::HashMap<String, Vec<Match>> = Default::default();
    for chunk in nurse_ids.chunks(500) {
        let rows: Vec<(String, String, String, String, i32, NaiveDateTime, String)> = nurse_matches::table
            .inner_join(
                matched_postings::table.on(matched_postings::prefecture
                    .eq(nurse_matches::prefecture)
                    .and(matched_postings::posting_id.eq(nurse_matches::posting_id))),
            )
            .filter(nurse_matches::nurse_id.eq_any(chunk))
            .order((
                nurse_matches::nurse_id,
                nurse_matches::distance_m,
                nurse_matches::prefecture,
                nurse_matches::posting_id,
            ))
            .select((
                nurse_matches::nurse_id,
                nurse_matches::kind,
                nurse_matches::prefecture,
                nurse_matches::posting_id,
                nurse_matches::distance_m,
                nurse_matches::matched_at,
                matched_postings::body,
            ))
            .load(conn)?;
        for (nurse_id, kind, prefecture_code, posting_id, distance_m, matched_at, body) in rows {
            // Each posting's text is read once however many nurses hold it.
            let body = bodies
                .entry((prefecture_code.clone(), posting_id.clone()))
                .or_insert_with(|| serde_json::from_str::<PostingBody>(&body).ok())
                .clone();
            let (Some(body), Some(prefecture), Some(kind)) =
                (body, Prefecture::from_code(&prefecture_code), PostingKind::parse(&kind))
            else {
                continue;
            };
            if !body.open_on(today) || (prefecture == here && withdrawn_here.contains(&posting_id)) {
                continue;
            }
            out.entry(nurse_id).or_default().push(Match {
                posting: PostingRef { prefecture, posting_id },
                kind,
                body,
                distance_m,
                matched_at,
            });
        }
    }
    Ok(out)
}
