//! Training history pages (研修歴, issue #8): her wish to attend a session on her list, with the
//! consent that hands her contact to the center that holds it; her printable record of the
//! training she attended; and, for staff of the center that holds a session, its applicants with
//! a form to record attendance. The domain work is `crate::training`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use ncf_shared::Prefecture;
use ncf_shared::contract::PostingRef;
use serde::Deserialize;

use super::routes::{Access, Routes};
use super::{PageError, WebState, html, see_other, unavailable};
use crate::nurses::Nurse;
use crate::staff::StaffMember;
use crate::training::{AttendanceError, WishRefusal};

pub(super) fn routes(routes: &mut Routes) {
    routes
        .get("/me/training/{prefecture}/{posting}", Access::Nurse, wish_page)
        .post("/me/training/{prefecture}/{posting}", Access::Nurse, wish_submit)
        .get("/me/training-record", Access::Nurse, record_page)
        .get("/staff/postings/{posting}/applicants", Access::Staff, applicants_page)
        .post("/staff/postings/{posting}/applicants/{from}/{wish}", Access::Staff, attendance_submit);
}

const HOME: (&str, &str) = ("/me#training", "マイページへ戻る");

fn posting_ref(prefecture: &str, posting: String) -> Option<PostingRef> {
    Some(PostingRef { prefecture: Prefecture::from_code(prefecture)?, posting_id: posting })
}

#[derive(Template)]
#[template(path = "training_wish.html")]
struct WishPage {
    center: crate::web::Center,
    csrf: String,
    action: String,
    holder: String,
    posting: super::nurse::MatchView,
    consent_text: String,
    /// Her wish for this session, if she made one: where it stands.
    made: String,
    error: String,
}

/// The session on her list, or `None`.
async fn session_on_her_list(
    state: &WebState,
    nurse_id: String,
    posting: PostingRef,
) -> Result<Option<(crate::postings::Match, Option<crate::training::Wish>)>, crate::error::NodeError> {
    let here = state.prefecture;
    state
        .db(move |conn| {
            let today = ncf_shared::time::today_jst();
            let found = crate::postings::matches_for(conn, here, &nurse_id, today)?
                .into_iter()
                .find(|m| m.kind == ncf_shared::posting::PostingKind::Training && m.posting == posting);
            let made = crate::training::wish_for(conn, &nurse_id, &posting)?;
            Ok(found.map(|m| (m, made)))
        })
        .await
}

fn wish_view(
    state: &WebState,
    csrf: String,
    posting: &PostingRef,
    m: &crate::postings::Match,
    made: Option<crate::training::Wish>,
    error: &str,
) -> WishPage {
    WishPage {
        center: state.center(),
        csrf,
        action: format!("/me/training/{}/{}", posting.prefecture.code(), posting.posting_id),
        holder: format!("{}ナースセンター", posting.prefecture.name_ja()),
        posting: super::nurse::match_view(m, None),
        consent_text: crate::training::consent_text(posting.prefecture),
        made: made.map(|w| w.state_ja()).unwrap_or_default(),
        error: error.to_string(),
    }
}

const NOT_ON_LIST: &str =
    "この研修は、いまのお知らせの一覧にありません（掲載が終わったか、取り下げられた可能性があります）。";

async fn wish_page(
    me: super::guard::SignedIn<Nurse>,
    state: web::Data<WebState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (session, nurse) = me.into_parts();
    let (prefecture, posting) = path.into_inner();
    let Some(posting) = posting_ref(&prefecture, posting) else {
        return PageError::NotFound(NOT_ON_LIST.into()).page(&state, HOME);
    };
    match session_on_her_list(&state, nurse.id.clone(), posting.clone()).await {
        Ok(Some((m, made))) => html(StatusCode::OK, &wish_view(&state, session.csrf, &posting, &m, made, "")),
        Ok(None) => PageError::NotFound(NOT_ON_LIST.into()).page(&state, HOME),
        Err(e) => unavailable(&state, &e, HOME),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WishForm {
    csrf: String,
    agree: Option<String>,
}

async fn wish_submit(
    me: super::guard::SignedIn<Nurse>,
    state: web::Data<WebState>,
    path: web::Path<(String, String)>,
    form: web::Form<WishForm>,
) -> HttpResponse {
    let (session, nurse) = match me.checked(&state, HOME, &form.csrf) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (prefecture, posting) = path.into_inner();
    let Some(posting) = posting_ref(&prefecture, posting) else {
        return PageError::NotFound(NOT_ON_LIST.into()).page(&state, HOME);
    };
    let (here, id, wanted, agreed) =
        (state.prefecture, nurse.id.clone(), posting.clone(), form.agree.is_some());
    let outcome = state.db(move |conn| crate::training::wish(conn, here, &id, &wanted, agreed)).await;
    let refusal = match outcome {
        Ok(Ok(_)) => return see_other("/me?done=training#training"),
        Ok(Err(WishRefusal::NotOnHerList)) => {
            return PageError::NotFound(NOT_ON_LIST.into()).page(&state, HOME);
        }
        Ok(Err(WishRefusal::NotAgreed)) => {
            "参加を希望するには、連絡先を伝えることへの同意にチェックを入れてください。"
        }
        Ok(Err(WishRefusal::NotCovered)) => {
            "研修の参加希望は、本人確認が済み、「研修情報のお知らせ」に同意している場合にお送りできます。"
        }
        Err(e) => return unavailable(&state, &e, HOME),
    };
    match session_on_her_list(&state, nurse.id.clone(), posting.clone()).await {
        Ok(Some((m, made))) => html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &wish_view(&state, session.csrf, &posting, &m, made, refusal),
        ),
        Ok(None) => PageError::NotFound(NOT_ON_LIST.into()).page(&state, HOME),
        Err(e) => unavailable(&state, &e, HOME),
    }
}

/// One line of her printed record.
struct RecordLine {
    title: String,
    holder: String,
    dates: String,
    hours: i32,
}

#[derive(Template)]
#[template(path = "training_record.html")]
struct RecordPage {
    center: crate::web::Center,
    name: String,
    qualification: &'static str,
    lines: Vec<RecordLine>,
    total_hours: i32,
    /// 令和8年12月5日 (the record is a document: it prints the Japanese era).
    issued: String,
}

async fn record_page(me: super::guard::SignedIn<Nurse>, state: web::Data<WebState>) -> HttpResponse {
    let (_, nurse) = me.into_parts();
    let id = nurse.id.clone();
    let history = match state.db(move |conn| Ok(crate::training::history(conn, &id)?)).await {
        Ok(history) => history,
        Err(e) => return unavailable(&state, &e, HOME),
    };
    let lines: Vec<RecordLine> = history
        .iter()
        .filter(|w| w.attended == Some(true))
        .map(|w| RecordLine {
            title: w.title.clone(),
            holder: format!("{}（{}ナースセンター）", w.facility_name, w.posting.prefecture.name_ja()),
            dates: wareki_dates(w.starts_on, w.ends_on),
            hours: w.hours.unwrap_or(0),
        })
        .collect();
    let total_hours = lines.iter().map(|l| l.hours).sum();
    html(
        StatusCode::OK,
        &RecordPage {
            center: state.center(),
            name: format!("{} {}", nurse.family_name, nurse.given_name),
            qualification: ncf_shared::Qualification::from_code(&nurse.qualification)
                .map_or("", |q| q.name_ja()),
            lines,
            total_hours,
            issued: ncf_shared::wareki::format_wareki(ncf_shared::time::today_jst()),
        },
    )
}

fn wareki_dates(from: chrono::NaiveDate, to: chrono::NaiveDate) -> String {
    let f = ncf_shared::wareki::format_wareki;
    if from == to { f(from) } else { format!("{}〜{}", f(from), f(to)) }
}

/// An applicant as staff see her.
struct ApplicantView {
    from: String,
    wish: String,
    name: String,
    kana: String,
    qualification: &'static str,
    email: String,
    phone: String,
    home: String,
    asked: String,
    /// 「出席（12時間）」, 「欠席」 or empty.
    recorded: String,
    attended: bool,
    hours: i32,
}

#[derive(Template)]
#[template(path = "staff_applicants.html")]
struct ApplicantsPage {
    center: crate::web::Center,
    staff_name: String,
    csrf: String,
    posting_id: String,
    title: String,
    dates: String,
    planned_hours: u16,
    applicants: Vec<ApplicantView>,
    done: bool,
    error: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ApplicantsQuery {
    done: String,
}

async fn applicants_page(
    me: super::guard::SignedIn<StaffMember>,
    state: web::Data<WebState>,
    posting: web::Path<String>,
    query: web::Query<ApplicantsQuery>,
) -> HttpResponse {
    let (session, member) = me.into_parts();
    applicants_answer(
        &state,
        session.csrf,
        member,
        posting.into_inner(),
        query.done == "recorded",
        String::new(),
    )
    .await
}

const LIST: (&str, &str) = ("/staff/postings", "求人・研修の一覧へ戻る");

async fn applicants_answer(
    state: &WebState,
    csrf: String,
    member: StaffMember,
    posting_id: String,
    done: bool,
    error: String,
) -> HttpResponse {
    let id = posting_id.clone();
    let loaded = state
        .db(move |conn| Ok((crate::postings::get(conn, &id)?, crate::training::applicants(conn, &id)?)))
        .await;
    let (posting, applicants) = match loaded {
        Ok((Some(p), applicants)) if p.body.training.is_some() => (p, applicants),
        Ok(_) => return PageError::NotFound("この研修はありません。".into()).page(state, LIST),
        Err(e) => return unavailable(state, &e, LIST),
    };
    let training = posting.body.training.clone().expect("checked above");
    let status = if error.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    html(
        status,
        &ApplicantsPage {
            center: state.center(),
            staff_name: member.display_name,
            csrf,
            posting_id,
            title: posting.body.title.clone(),
            dates: format!(
                "{}〜{}（{}時間）",
                ncf_shared::time::date_ja(training.starts_on),
                ncf_shared::time::date_ja(training.ends_on),
                training.hours
            ),
            planned_hours: training.hours,
            applicants: applicants
                .into_iter()
                .map(|a| ApplicantView {
                    from: a.from_prefecture.code().to_string(),
                    wish: a.wish_id.clone(),
                    name: format!("{} {}", a.family_name, a.given_name),
                    kana: format!("{} {}", a.family_name_kana, a.given_name_kana),
                    qualification: ncf_shared::Qualification::from_code(&a.qualification)
                        .map_or("", |q| q.name_ja()),
                    email: a.email.clone(),
                    phone: a.phone.clone().unwrap_or_default(),
                    home: format!("{}ナースセンター", a.from_prefecture.name_ja()),
                    asked: super::jst(a.received_at),
                    recorded: match a.attended {
                        Some(true) => format!("出席（{}時間）", a.hours.unwrap_or(0)),
                        Some(false) => "欠席".into(),
                        None => String::new(),
                    },
                    attended: a.attended != Some(false),
                    hours: a.hours.filter(|h| *h > 0).unwrap_or(i32::from(training.hours)),
                })
                .collect(),
            done,
            error,
        },
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AttendanceForm {
    csrf: String,
    attended: String,
    hours: String,
}

async fn attendance_submit(
    me: super::guard::SignedIn<StaffMember>,
    state: web::Data<WebState>,
    path: web::Path<(String, String, String)>,
    form: web::Form<AttendanceForm>,
) -> HttpResponse {
    let (session, member) = match me.checked(&state, LIST, &form.csrf) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (posting_id, from, wish) = path.into_inner();
    let Some(from) = Prefecture::from_code(&from) else {
        return PageError::NotFound("この参加希望はありません。".into()).page(&state, LIST);
    };
    let attended = match form.attended.as_str() {
        "yes" => true,
        "no" => false,
        _ => {
            let error = "出席か欠席かを選んでください。".to_string();
            return applicants_answer(&state, session.csrf, member, posting_id, false, error).await;
        }
    };
    let hours = ncf_shared::normalize::digits(form.hours.trim()).parse::<u16>().unwrap_or(0);
    let (staff_id, target) = (member.id.clone(), posting_id.clone());
    let outcome = state
        .db(move |conn| {
            crate::training::record_attendance(conn, &staff_id, &target, from, &wish, attended, hours)
        })
        .await;
    match outcome {
        Ok(Ok(())) => see_other(&format!("/staff/postings/{posting_id}/applicants?done=recorded")),
        Ok(Err(AttendanceError::NotFound)) => {
            PageError::NotFound("この参加希望はありません。".into()).page(&state, LIST)
        }
        Ok(Err(AttendanceError::Invalid(fields))) => {
            let error = fields.into_iter().map(|f| f.message).collect::<Vec<_>>().join(" ");
            applicants_answer(&state, session.csrf, member, posting_id, false, error).await
        }
        Err(e) => unavailable(&state, &e, LIST),
    }
}
