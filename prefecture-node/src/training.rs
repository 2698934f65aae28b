//! Training history (研修歴, issue #8): she says she wants to attend a training session on her
//! list, the node that holds it learns who she is only with her consent to that, its staff
//! record whether she attended, and her page lists what she attended, printable as a record.
//!
//! At her home node: a wish is recorded with the consent text she agreed to, and `training_wish`
//! goes to the national server (under `training_info`). Its answer carries the holding node's
//! key; her contact is sealed to it (`training_contact`), so the national server relays what it
//! cannot read. At the holding node the applicant arrives sealed (`training_applicant`), staff
//! see her on the session's page and record attendance (`attendance_recorded`), which comes back
//! to her home node (`training_attended`). A session of her own node takes the same path: one way
//! for every wish, each one recorded as a provision and counted for the national figures.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use ncf_shared::contract::{
    AttendanceRecorded, NodeToNational, PostingRef, ProofingMethod, SealedApplicant, TrainingApplicant,
    TrainingAttended, TrainingContact, TrainingWish, TrainingWishAnswered,
};
use ncf_shared::db::DbConn;
use ncf_shared::federation::{NodePublicKey, NodeSigningKey};
use ncf_shared::posting::PostingKind;
use ncf_shared::validation::FieldError;
use ncf_shared::{ConsentScope, Prefecture, Qualification};
use sha2::{Digest, Sha256};

use crate::consent::{self, CurrentConsents};
use crate::error::NodeError;
use crate::nurses::Nurse;
use crate::outbox;
use crate::schema::{nurses, postings, training_applicants, training_wishes};

/// What she agrees to when she asks to attend: her contact to the nurse center that holds the
/// session, and nothing else. Its digest is kept with the wish.
pub fn consent_text(holder: Prefecture) -> String {
    let center = format!("{}ナースセンター", holder.name_ja());
    format!(
        "この研修への参加を希望します。参加の案内のため、研修を行う{center}に、わたしの氏名・ふりがな・資格・メールアドレス・電話番号を伝えることに同意します。連絡先は暗号化して国の共通サーバーを経由し、国の共通サーバーはそれを読むことも保存することもしません（国の共通サーバーには、どの研修を希望し受講したかの記録が、中継と人数の集計のために残ります）。受講の記録（出席・時間数）は{center}からこのセンターに届き、わたしの研修歴になります。"
    )
}

fn sha256_hex(text: &str) -> String {
    ncf_shared::encoding::hex(&Sha256::digest(text.as_bytes()))
}

/// A wish of hers, as her page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wish {
    pub id: String,
    pub posting: PostingRef,
    pub title: String,
    pub facility_name: String,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub planned_hours: i32,
    pub state: String,
    pub refused_reason: Option<String>,
    pub requested_at: NaiveDateTime,
    pub attended: Option<bool>,
    pub hours: Option<i32>,
    pub recorded_at: Option<NaiveDateTime>,
}

impl Wish {
    /// Where her wish stands, in her words.
    pub fn state_ja(&self) -> String {
        match (self.state.as_str(), self.attended) {
            ("recorded", Some(true)) => format!("受講しました（{}時間）", self.hours.unwrap_or(0)),
            ("recorded", _) => "欠席と記録されました".into(),
            ("refused", _) => format!(
                "参加希望を送れませんでした{}",
                self.refused_reason.as_deref().map(|r| format!("（{r}）")).unwrap_or_default()
            ),
            ("sent", _) => {
                format!("{}ナースセンターに参加希望を送りました", self.posting.prefecture.name_ja())
            }
            _ => "参加希望を送る準備をしています（次の同期で送ります）".into(),
        }
    }

    /// The session's dates as she writes them: 2027年1月15日〜2027年1月16日 (one day: once).
    pub fn dates_ja(&self) -> String {
        if self.starts_on == self.ends_on {
            ncf_shared::time::date_ja(self.starts_on)
        } else {
            format!(
                "{}〜{}",
                ncf_shared::time::date_ja(self.starts_on),
                ncf_shared::time::date_ja(self.ends_on)
            )
        }
    }
}

type WishRow = (
    String,
    String,
    String,
    String,
    String,
    NaiveDate,
    NaiveDate,
    i32,
    String,
    Option<String>,
    NaiveDateTime,
    Option<bool>,
    Option<i32>,
    Option<NaiveDateTime>,
);

macro_rules! wish_columns {
    () => {
        (
            training_wishes::id,
            training_wishes::prefecture,
            training_wishes::posting_id,
            training_wishes::title,
            training_wishes::facility_name,
            training_wishes::starts_on,
            training_wishes::ends_on,
            training_wishes::planned_hours,
            training_wishes::state,
            training_wishes::refused_reason,
            training_wishes::requested_at,
            training_wishes::attended,
            training_wishes::hours,
            training_wishes::recorded_at,
        )
    };
}

fn wish_of(r: WishRow) -> Option<Wish> {
    Some(Wish {
        id: r.0,
        posting: PostingRef { prefecture: Prefecture::from_code(&r.1)?, posting_id: r.2 },
        title: r.3,
        facility_name: r.4,
        starts_on: r.5,
        ends_on: r.6,
        planned_hours: r.7,
        state: r.8,
        refused_reason: r.9,
        requested_at: r.10,
        attended: r.11,
        hours: r.12,
        recorded_at: r.13,
    })
}

/// Her wishes, the latest session first.
pub fn history(conn: &mut DbConn, nurse_id: &str) -> QueryResult<Vec<Wish>> {
    Ok(training_wishes::table
        .filter(training_wishes::nurse_id.eq(nurse_id))
        .order((training_wishes::starts_on.desc(), training_wishes::requested_at.desc()))
        .select(wish_columns!())
        .load::<WishRow>(conn)?
        .into_iter()
        .filter_map(wish_of)
        .collect())
}

/// Her wish for one session, if she made one.
pub fn wish_for(conn: &mut DbConn, nurse_id: &str, posting: &PostingRef) -> QueryResult<Option<Wish>> {
    Ok(training_wishes::table
        .filter(training_wishes::nurse_id.eq(nurse_id))
        .filter(training_wishes::prefecture.eq(posting.prefecture.code()))
        .filter(training_wishes::posting_id.eq(&posting.posting_id))
        .select(wish_columns!())
        .first::<WishRow>(conn)
        .optional()?
        .and_then(wish_of))
}

/// Why a wish cannot be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WishRefusal {
    /// She did not tick the consent to hand her contact to the holding node.
    NotAgreed,
    /// Not a training session on her current list (closed, withdrawn, or never hers).
    NotOnHerList,
    /// `training_info` is not given (or she has not proved who she is).
    NotCovered,
}

/// She asks to attend a training session on her list. Asking again for the same session
/// returns the wish she made before and sends nothing more.
pub fn wish(
    conn: &mut DbConn,
    here: Prefecture,
    nurse_id: &str,
    posting: &PostingRef,
    agreed: bool,
) -> Result<Result<Wish, WishRefusal>, NodeError> {
    let made = ncf_shared::db::write_transaction(conn, |conn| wish_in(conn, here, nurse_id, posting, agreed));
    match made {
        // The same wish sent twice at the same moment (a double tap): the first one stands.
        Err(NodeError::Database(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ))) => match wish_for(conn, nurse_id, posting)? {
            Some(first) => Ok(Ok(first)),
            None => Err(NodeError::Conflict("参加希望を保存できませんでした。もう一度お試しください。")),
        },
        other => other,
    }
}

fn wish_in(
    conn: &mut DbConn,
    here: Prefecture,
    nurse_id: &str,
    posting: &PostingRef,
    agreed: bool,
) -> Result<Result<Wish, WishRefusal>, NodeError> {
    {
        match wish_for(conn, nurse_id, posting)? {
            // Refused on the way (closed, not connected, a consent withdrawn): she may ask again.
            Some(made) if made.state == "refused" => {
                diesel::delete(training_wishes::table.find(&made.id)).execute(conn)?;
            }
            Some(made) => return Ok(Ok(made)),
            None => {}
        }
        if !agreed {
            return Ok(Err(WishRefusal::NotAgreed));
        }
        let today = ncf_shared::time::today_jst();
        let found = crate::postings::matches_for(conn, here, nurse_id, today)?
            .into_iter()
            .find(|m| m.kind == PostingKind::Training && m.posting == *posting);
        let Some((found, training)) = found.and_then(|m| {
            let t = m.body.training.clone()?;
            Some((m, t))
        }) else {
            return Ok(Err(WishRefusal::NotOnHerList));
        };
        let gate = consent::current(conn, nurse_id)?;
        let agency_code: String = nurses::table.find(nurse_id).select(nurses::agency_code).first(conn)?;
        let Some(agency_code) = ncf_shared::AgencyCode::parse(&agency_code) else {
            return Ok(Err(WishRefusal::NotCovered));
        };
        let id = ncf_shared::ids::RecordId::new().0;
        let agreed_text = sha256_hex(&consent_text(posting.prefecture));
        let event = NodeToNational::TrainingWish(TrainingWish {
            agency_code,
            wish_id: id.clone(),
            posting: posting.clone(),
            consent_text_sha256: agreed_text.clone(),
            requested_at: chrono::Utc::now(),
        });
        // Her contact goes to another center on her word alone: only someone who proved who she
        // is (by post, at a counter, or at the center she moved from) may give it, not a
        // registration carried over from before proofing existed.
        if !consent::covers(&gate, &event) || matches!(gate.proofed(), None | Some(ProofingMethod::Legacy)) {
            return Ok(Err(WishRefusal::NotCovered));
        }
        let now = ncf_shared::time::now_utc();
        diesel::insert_into(training_wishes::table)
            .values((
                training_wishes::id.eq(&id),
                training_wishes::nurse_id.eq(nurse_id),
                training_wishes::prefecture.eq(posting.prefecture.code()),
                training_wishes::posting_id.eq(&posting.posting_id),
                training_wishes::title.eq(&found.body.title),
                training_wishes::facility_name.eq(&found.body.facility_name),
                training_wishes::starts_on.eq(training.starts_on),
                training_wishes::ends_on.eq(training.ends_on),
                training_wishes::planned_hours.eq(i32::from(training.hours)),
                training_wishes::consent_text_sha256.eq(&agreed_text),
                training_wishes::state.eq("requested"),
                training_wishes::requested_at.eq(now),
            ))
            .execute(conn)?;
        outbox::enqueue_if_covered(conn, &gate, &event, Some(nurse_id))?;
        tracing::info!(nurse = %nurse_id, holder = %posting.prefecture, "training wish recorded");
        Ok(Ok(wish_for(conn, nurse_id, posting)?.expect("just written")))
    }
}

fn set_wish_state(conn: &mut DbConn, wish_id: &str, state: &str, reason: Option<&str>) -> QueryResult<usize> {
    diesel::update(training_wishes::table.find(wish_id))
        .set((training_wishes::state.eq(state), training_wishes::refused_reason.eq(reason)))
        .execute(conn)
}

/// The national server answered her wish: seal her contact to the holding node's key and send
/// it, or keep why it cannot go. Applied twice, the second changes nothing.
pub fn answered(conn: &mut DbConn, nurse_id: &str, a: &TrainingWishAnswered) -> Result<(), String> {
    let db = |e: diesel::result::Error| e.to_string();
    let state: Option<String> = training_wishes::table
        .find(&a.wish_id)
        .filter(training_wishes::nurse_id.eq(nurse_id))
        .select(training_wishes::state)
        .first(conn)
        .optional()
        .map_err(db)?;
    let waiting = match state.as_deref() {
        None => return Err("no such wish of hers".into()),
        Some(state) => state,
    };
    let key = match (&a.recipient_key, &a.refused) {
        (Some(key), None) if waiting == "requested" => key,
        // Asked and answered already (a repeated event), or recorded: nothing changes.
        (Some(_), None) => return Ok(()),
        // Refused: when she asked, or when her contact reached the national server after the
        // session closed.
        (_, reason) => {
            if waiting == "requested" || waiting == "sent" {
                let reason = reason.as_deref().unwrap_or("研修を行うナースセンターに届けられません。");
                set_wish_state(conn, &a.wish_id, "refused", Some(reason)).map_err(db)?;
            }
            return Ok(());
        }
    };
    let gate = consent::current(conn, nurse_id).map_err(db)?;
    let erased = crate::life_events::erased(conn, nurse_id).map_err(db)?;
    let refusal = if erased {
        Some("連絡先が削除されているため、送りませんでした。".to_string())
    } else if !gate.granted(ConsentScope::TrainingInfo) {
        // Withdrawn since she asked: her contact does not leave.
        Some("研修のお知らせへの同意を取り消したため、送りませんでした。".to_string())
    } else {
        None
    };
    let sealed = match refusal {
        Some(reason) => Err(reason),
        None => {
            let nurse = crate::nurses::get(conn, nurse_id).map_err(db)?.ok_or("nurse not found")?;
            NodePublicKey::parse(key)
                .map_err(|e| format!("recipient key: {e}"))
                .and_then(|recipient| seal_applicant(&nurse, &recipient, &a.wish_id))
                .map_err(|e| {
                    tracing::error!(error = %e, "training wish: her contact could not be sealed");
                    "研修を行うナースセンターに届けられませんでした（センターにお問い合わせください）。"
                        .to_string()
                })
        }
    };
    let sealed = match sealed {
        Ok(sealed) => sealed,
        Err(reason) => {
            set_wish_state(conn, &a.wish_id, "refused", Some(&reason)).map_err(db)?;
            return Ok(());
        }
    };
    let event = NodeToNational::TrainingContact(TrainingContact {
        agency_code: a.agency_code.clone(),
        wish_id: a.wish_id.clone(),
        sealed_contact: sealed,
    });
    outbox::enqueue_if_covered(conn, &gate, &event, Some(nurse_id)).map_err(db)?;
    set_wish_state(conn, &a.wish_id, "sent", None).map_err(db)?;
    tracing::info!(nurse = %nurse_id, "training wish: contact sealed for the holding node");
    Ok(())
}

/// The context a training applicant's contact is sealed under: its purpose and the wish, so that
/// a box made for one purpose or wish does not open as another.
fn seal_context(wish_id: &str) -> Vec<u8> {
    format!("ncf/training-applicant/{wish_id}").into_bytes()
}

/// An event of hers the national server refused for good (parked): a wish or its contact that
/// will not reach the holding node is marked refused, so her page says so and she may ask again.
pub fn parked(conn: &mut DbConn, seq: i64) -> QueryResult<()> {
    use crate::schema::outbox;
    let parked: Option<(String, String, Option<String>)> = outbox::table
        .find(seq)
        .select((outbox::kind, outbox::payload, outbox::parked_reason))
        .first(conn)
        .optional()?;
    let Some((kind, payload, _)) = parked else { return Ok(()) };
    let wish_id = match kind.as_str() {
        "training_wish" => serde_json::from_str::<TrainingWish>(&payload).ok().map(|w| w.wish_id),
        "training_contact" => serde_json::from_str::<TrainingContact>(&payload).ok().map(|c| c.wish_id),
        _ => None,
    };
    if let Some(wish_id) = wish_id {
        diesel::update(training_wishes::table.find(&wish_id).filter(training_wishes::state.ne("recorded")))
            .set((
                training_wishes::state.eq("refused"),
                training_wishes::refused_reason
                    .eq("国の共通サーバーが受け付けませんでした（センターにお問い合わせください）。"),
            ))
            .execute(conn)?;
    }
    Ok(())
}

fn seal_applicant(nurse: &Nurse, recipient: &NodePublicKey, wish_id: &str) -> Result<String, String> {
    let contact = SealedApplicant {
        family_name: nurse.family_name.clone(),
        given_name: nurse.given_name.clone(),
        family_name_kana: nurse.family_name_kana.clone(),
        given_name_kana: nurse.given_name_kana.clone(),
        qualification: Qualification::from_code(&nurse.qualification)
            .ok_or("her qualification is unknown")?,
        email: nurse.email.clone(),
        phone: nurse.phone.clone(),
    };
    let json = serde_json::to_vec(&contact).map_err(|e| e.to_string())?;
    ncf_shared::sealed::seal(recipient, &seal_context(wish_id), &json).map_err(|e| e.to_string())
}

/// The holding node recorded her attendance: her training history.
pub fn attended(conn: &mut DbConn, nurse_id: &str, a: &TrainingAttended) -> QueryResult<()> {
    diesel::update(training_wishes::table.find(&a.wish_id).filter(training_wishes::nurse_id.eq(nurse_id)))
        .set((
            training_wishes::state.eq("recorded"),
            training_wishes::attended.eq(a.attended),
            training_wishes::hours.eq(i32::from(a.hours)),
            training_wishes::recorded_at.eq(a.recorded_at.naive_utc()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Someone who wants to attend one of this node's sessions, as staff see her.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applicant {
    pub from_prefecture: Prefecture,
    pub wish_id: String,
    pub posting_id: String,
    pub family_name: String,
    pub given_name: String,
    pub family_name_kana: String,
    pub given_name_kana: String,
    pub qualification: String,
    pub email: String,
    pub phone: Option<String>,
    pub received_at: NaiveDateTime,
    pub attended: Option<bool>,
    pub hours: Option<i32>,
    pub recorded_at: Option<NaiveDateTime>,
}

/// Stores an applicant relayed for one of this node's sessions. The sealed contact is opened
/// with this node's key; one that does not open or is not a valid contact fails the event.
pub fn applicant_arrived(
    conn: &mut DbConn,
    key: Option<&NodeSigningKey>,
    a: &TrainingApplicant,
    now: NaiveDateTime,
) -> Result<(), String> {
    let key = key.ok_or("this process has no node key to open the sealed contact")?;
    let plain = ncf_shared::sealed::open(key, &seal_context(&a.wish_id), &a.sealed_contact)
        .map_err(|e| e.to_string())?;
    let c: SealedApplicant = serde_json::from_slice(&plain)
        .map_err(|_| "the sealed contact is not an applicant's contact".to_string())?;
    if ncf_shared::PersonName::check(&c.family_name).is_err()
        || ncf_shared::PersonName::check(&c.given_name).is_err()
        || !ncf_shared::notice::looks_like_email(&c.email)
        || !c.qualification.is_nursing()
        || c.family_name_kana.chars().count() > 50
        || c.given_name_kana.chars().count() > 50
        || ncf_shared::posting::has_markup(&c.family_name_kana)
        || ncf_shared::posting::has_markup(&c.given_name_kana)
    {
        return Err("the sealed contact is not a valid applicant's contact".into());
    }
    let kind: Option<String> = postings::table
        .find(&a.posting_id)
        .select(postings::kind)
        .first(conn)
        .optional()
        .map_err(|e| e.to_string())?;
    if kind.as_deref() != Some(PostingKind::Training.as_str()) {
        return Err("no training session of this node has that id".into());
    }
    let values = (
        training_applicants::from_prefecture.eq(a.from.code()),
        training_applicants::wish_id.eq(&a.wish_id),
        training_applicants::posting_id.eq(&a.posting_id),
        training_applicants::agency_code.eq(a.agency_code.as_str()),
        training_applicants::family_name.eq(&c.family_name),
        training_applicants::given_name.eq(&c.given_name),
        training_applicants::family_name_kana.eq(&c.family_name_kana),
        training_applicants::given_name_kana.eq(&c.given_name_kana),
        training_applicants::qualification.eq(c.qualification.code()),
        training_applicants::email.eq(&c.email),
        training_applicants::phone.eq(c.phone.as_deref().filter(|p| ncf_shared::notice::looks_like_phone(p))),
        training_applicants::proofing_method.eq(a.proofing_method.as_str()),
        training_applicants::received_at.eq(now),
    );
    ncf_shared::per_backend!(&mut *conn, c => diesel::insert_into(training_applicants::table)
        .values(values)
        .on_conflict((training_applicants::from_prefecture, training_applicants::wish_id))
        .do_nothing()
        .execute(c))
    .map_err(|e| e.to_string())?;
    tracing::info!(posting = %a.posting_id, from = %a.from, "training applicant received");
    Ok(())
}

type ApplicantRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    NaiveDateTime,
    Option<bool>,
    Option<i32>,
    Option<NaiveDateTime>,
);

/// The applicants to one of this node's sessions, in the order they asked.
pub fn applicants(conn: &mut DbConn, posting_id: &str) -> QueryResult<Vec<Applicant>> {
    Ok(training_applicants::table
        .filter(training_applicants::posting_id.eq(posting_id))
        .order((training_applicants::received_at, training_applicants::wish_id))
        .select((
            training_applicants::from_prefecture,
            training_applicants::wish_id,
            training_applicants::posting_id,
            training_applicants::family_name,
            training_applicants::given_name,
            training_applicants::family_name_kana,
            training_applicants::given_name_kana,
            training_applicants::qualification,
            training_applicants::email,
            training_applicants::phone,
            training_applicants::received_at,
            training_applicants::attended,
            training_applicants::hours,
            training_applicants::recorded_at,
        ))
        .load::<ApplicantRow>(conn)?
        .into_iter()
        .filter_map(|r| {
            Some(Applicant {
                from_prefecture: Prefecture::from_code(&r.0)?,
                wish_id: r.1,
                posting_id: r.2,
                family_name: r.3,
                given_name: r.4,
                family_name_kana: r.5,
                given_name_kana: r.6,
                qualification: r.7,
                email: r.8,
                phone: r.9,
                received_at: r.10,
                attended: r.11,
                hours: r.12,
                recorded_at: r.13,
            })
        })
        .collect())
}

/// What recording attendance can meet.
#[derive(Debug, PartialEq, Eq)]
pub enum AttendanceError {
    NotFound,
    Invalid(Vec<FieldError>),
}

/// Staff record whether an applicant attended and for how many hours (at most the session's);
/// recording again corrects the record, and her home node hears of each.
pub fn record_attendance(
    conn: &mut DbConn,
    staff_id: &str,
    posting_id: &str,
    from: Prefecture,
    wish_id: &str,
    attended: bool,
    hours: u16,
) -> Result<Result<(), AttendanceError>, NodeError> {
    ncf_shared::db::write_transaction(conn, |conn| {
        let row: Option<(String, String)> = training_applicants::table
            .find((from.code(), wish_id))
            .filter(training_applicants::posting_id.eq(posting_id))
            .select((training_applicants::agency_code, training_applicants::proofing_method))
            .first(conn)
            .optional()?;
        let Some((agency_code, method)) = row else { return Ok(Err(AttendanceError::NotFound)) };
        let planned = crate::postings::get(conn, posting_id)?
            .and_then(|p| p.body.training.map(|t| t.hours))
            .unwrap_or(0);
        let hours = if attended { hours } else { 0 };
        if attended && (hours == 0 || hours > planned) {
            return Ok(Err(AttendanceError::Invalid(vec![FieldError::new(
                "hours",
                format!("受講時間は1〜{planned}時間（この研修の時間数まで）で入力してください。"),
            )])));
        }
        let (Some(agency_code), Some(method)) =
            (ncf_shared::AgencyCode::parse(&agency_code), ProofingMethod::parse(&method))
        else {
            return Ok(Err(AttendanceError::NotFound));
        };
        let now = ncf_shared::time::now_utc();
        diesel::update(training_applicants::table.find((from.code(), wish_id)))
            .set((
                training_applicants::attended.eq(attended),
                training_applicants::hours.eq(i32::from(hours)),
                training_applicants::recorded_at.eq(now),
                training_applicants::recorded_by.eq(staff_id),
            ))
            .execute(conn)?;
        let event = NodeToNational::AttendanceRecorded(AttendanceRecorded {
            agency_code,
            wish_id: wish_id.to_string(),
            attended,
            hours,
            recorded_at: ncf_shared::time::to_utc(now),
        });
        outbox::enqueue_if_covered(conn, &CurrentConsents::relayed_applicant(method), &event, None)?;
        tracing::info!(posting = %posting_id, attended, hours, "training attendance recorded");
        Ok(Ok(()))
    })
}

/// Erases her contact as an applicant to this node's training (the national server's `erase`
/// after her death reaches the nodes holding it). Returns how many applications were removed.
pub fn forget_applicant(conn: &mut DbConn, agency_code: &str) -> QueryResult<usize> {
    diesel::delete(training_applicants::table.filter(training_applicants::agency_code.eq(agency_code)))
        .execute(conn)
}

/// Whether this training session has applicants (its kind then stays training).
pub fn has_applicants(conn: &mut DbConn, posting_id: &str) -> QueryResult<bool> {
    let n: i64 = training_applicants::table
        .filter(training_applicants::posting_id.eq(posting_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}
