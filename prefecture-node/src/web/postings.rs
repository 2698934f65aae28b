//! Staff pages for this node's job and training postings (issue #8): the list, a form to publish
//! or change one, withdrawal, and the CSV import. The form is read by `crate::postings::text`
//! (what cannot be read is named per field, then `PostingBody::validate`, the one check every way
//! in uses); the domain work is `crate::postings`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::NaiveDate;
use ncf_shared::posting::{EmploymentType, PostingBody};
use serde::Deserialize;

use super::forms::Errors;
use super::routes::{Access, Routes};
use super::{CsrfOnly, PageError, WebState, html, see_other, unavailable};
use crate::auth::Session;
use crate::postings::import::ImportReport;
use crate::postings::text::{PostingText, WAGE_PERS, wage_slug};
use crate::postings::{ChangeError, Posting};
use crate::staff::StaffMember;

const LIST: (&str, &str) = ("/staff/postings", "求人・研修の一覧へ戻る");

pub(super) fn routes(routes: &mut Routes) {
    // The fixed paths before `{posting}`: actix tries resources in the order they are registered.
    routes
        .get("/staff/postings", Access::Staff, list)
        .get("/staff/postings/new", Access::Staff, new_form)
        .post("/staff/postings", Access::Staff, create)
        .get("/staff/postings/import", Access::Staff, import_form)
        .post("/staff/postings/import", Access::Staff, import_submit)
        .get("/staff/postings/import/template.csv", Access::Staff, import_template)
        .get("/staff/postings/{posting}", Access::Staff, edit_form)
        .post("/staff/postings/{posting}", Access::Staff, update)
        .post("/staff/postings/{posting}/withdraw", Access::Staff, withdraw);
}

/// The posting form as typed: the text of every field (see `PostingText`) and the form token.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct PostingForm {
    pub csrf: String,
    #[serde(flatten)]
    pub text: PostingText,
}

impl std::ops::Deref for PostingForm {
    type Target = PostingText;

    fn deref(&self) -> &PostingText {
        &self.text
    }
}

impl PostingForm {
    fn body(&self) -> Result<PostingBody, Errors> {
        self.text.body().map_err(Errors::from)
    }
}

/// A posting in the staff list.
struct Row {
    id: String,
    kind: &'static str,
    title: String,
    facility: String,
    period: String,
    state: &'static str,
    sync: &'static str,
    refused: String,
}

fn row(p: &Posting, today: NaiveDate) -> Row {
    Row {
        id: p.id.clone(),
        kind: p.body.kind.label_ja(),
        title: p.body.title.clone(),
        facility: p.body.facility_name.clone(),
        period: format!(
            "{}〜{}",
            ncf_shared::time::date_ja(p.body.valid_from),
            ncf_shared::time::date_ja(p.body.valid_until)
        ),
        state: p.state_ja(today),
        sync: p.sync_ja(),
        refused: p.refused_reason.clone().unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "staff_postings.html")]
struct ListPage {
    center: crate::web::Center,
    staff_name: String,
    csrf: String,
    rows: Vec<Row>,
    done: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ListQuery {
    done: String,
}

async fn list(
    me: super::guard::SignedIn<StaffMember>,
    state: web::Data<WebState>,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    let (session, member) = me.into_parts();
    let today = ncf_shared::time::today_jst();
    match state.db(|conn| Ok(crate::postings::list(conn)?)).await {
        Ok(postings) => {
            let done = match query.done.as_str() {
                "created" => "掲載しました。国の共通サーバーに送られ、近くに住む看護職の一覧に載ります。",
                "updated" => "変更を保存しました。",
                "withdrawn" => "取り下げました。次の同期で看護職の一覧から消えます。",
                _ => "",
            };
            html(
                StatusCode::OK,
                &ListPage {
                    center: state.center(),
                    staff_name: member.display_name,
                    csrf: session.csrf,
                    rows: postings.iter().map(|p| row(p, today)).collect(),
                    done: done.into(),
                },
            )
        }
        Err(e) => unavailable(&state, &e, ("/staff/nurses", "看護職の一覧へ戻る")),
    }
}

#[derive(Template)]
#[template(path = "staff_posting_form.html")]
struct FormPage {
    center: crate::web::Center,
    staff_name: String,
    csrf: String,
    /// `None` for a new posting.
    id: Option<String>,
    withdrawn: bool,
    form: PostingForm,
    errors: Errors,
    qualifications: Vec<(&'static str, &'static str)>,
    employment: Vec<(&'static str, &'static str)>,
    wage_pers: Vec<(&'static str, &'static str)>,
}

fn form_page(
    state: &WebState,
    session: Session,
    member: StaffMember,
    id: Option<String>,
    withdrawn: bool,
    form: PostingForm,
    errors: Errors,
) -> FormPage {
    FormPage {
        center: state.center(),
        staff_name: member.display_name,
        csrf: session.csrf,
        id,
        withdrawn,
        form,
        errors,
        qualifications: super::forms::nursing_qualifications(),
        employment: EmploymentType::ALL.iter().map(|t| (t.as_str(), t.label_ja())).collect(),
        wage_pers: WAGE_PERS.iter().map(|w| (wage_slug(*w), w.label_ja())).collect(),
    }
}

async fn new_form(me: super::guard::SignedIn<StaffMember>, state: web::Data<WebState>) -> HttpResponse {
    let (session, member) = me.into_parts();
    let today = ncf_shared::time::today_jst();
    let form = PostingForm {
        text: PostingText {
            kind: "job".into(),
            q03: Some("on".into()),
            valid_from: ncf_shared::time::date_ja(today),
            wage_per: "hour".into(),
            ..PostingText::default()
        },
        ..PostingForm::default()
    };
    html(StatusCode::OK, &form_page(&state, session, member, None, false, form, Errors::new()))
}

async fn create(
    me: super::guard::SignedIn<StaffMember>,
    state: web::Data<WebState>,
    form: web::Form<PostingForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let (session, member) = match me.checked(&state, LIST, &form.csrf) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let body = match form.body() {
        Ok(body) => body,
        Err(errors) => {
            return html(
                StatusCode::UNPROCESSABLE_ENTITY,
                &form_page(&state, session, member, None, false, form, errors),
            );
        }
    };
    let staff_id = member.id.clone();
    match state.db(move |conn| Ok(crate::postings::create(conn, &staff_id, &body)?)).await {
        Ok(Ok(_)) => see_other("/staff/postings?done=created"),
        Ok(Err(found)) => html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &form_page(&state, session, member, None, false, form, found.into()),
        ),
        Err(e) => unavailable(&state, &e, LIST),
    }
}

async fn edit_form(
    me: super::guard::SignedIn<StaffMember>,
    state: web::Data<WebState>,
    id: web::Path<String>,
) -> HttpResponse {
    let (session, member) = me.into_parts();
    let id = id.into_inner();
    let wanted = id.clone();
    match state.db(move |conn| Ok(crate::postings::get(conn, &wanted)?)).await {
        Ok(Some(p)) => html(
            StatusCode::OK,
            &form_page(
                &state,
                session,
                member,
                Some(id),
                p.withdrawn_at.is_some(),
                PostingForm { text: PostingText::from_body(&p.body), ..PostingForm::default() },
                Errors::new(),
            ),
        ),
        Ok(None) => PageError::NotFound("この求人・研修はありません。".into()).page(&state, LIST),
        Err(e) => unavailable(&state, &e, LIST),
    }
}

async fn update(
    me: super::guard::SignedIn<StaffMember>,
    state: web::Data<WebState>,
    id: web::Path<String>,
    form: web::Form<PostingForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let (session, member) = match me.checked(&state, LIST, &form.csrf) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let id = id.into_inner();
    let body = match form.body() {
        Ok(body) => body,
        Err(errors) => {
            return html(
                StatusCode::UNPROCESSABLE_ENTITY,
                &form_page(&state, session, member, Some(id), false, form, errors),
            );
        }
    };
    let target = id.clone();
    match state.db(move |conn| Ok(crate::postings::update(conn, &target, &body)?)).await {
        Ok(Ok(())) => see_other("/staff/postings?done=updated"),
        Ok(Err(ChangeError::Invalid(found))) => html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &form_page(&state, session, member, Some(id), false, form, found.into()),
        ),
        Ok(Err(ChangeError::Withdrawn)) => PageError::BadRequest {
            heading: "取り下げ済みです",
            text: "取り下げた求人・研修は変更できません。新しく掲載してください。".into(),
        }
        .page(&state, LIST),
        Ok(Err(ChangeError::NotFound)) => {
            PageError::NotFound("この求人・研修はありません。".into()).page(&state, LIST)
        }
        Err(e) => unavailable(&state, &e, LIST),
    }
}

async fn withdraw(
    me: super::guard::SignedIn<StaffMember>,
    state: web::Data<WebState>,
    id: web::Path<String>,
    form: web::Form<CsrfOnly>,
) -> HttpResponse {
    if let Err(response) = me.checked(&state, LIST, &form.csrf) {
        return response;
    }
    let id = id.into_inner();
    match state.db(move |conn| Ok(crate::postings::withdraw(conn, &id)?)).await {
        Ok(Ok(())) | Ok(Err(ChangeError::Withdrawn)) => see_other("/staff/postings?done=withdrawn"),
        Ok(Err(_)) => PageError::NotFound("この求人・研修はありません。".into()).page(&state, LIST),
        Err(e) => unavailable(&state, &e, LIST),
    }
}

const IMPORT: (&str, &str) = ("/staff/postings/import", "CSVの一括掲載へ戻る");

#[derive(Template)]
#[template(path = "staff_posting_import.html")]
struct ImportPage {
    center: crate::web::Center,
    staff_name: String,
    csrf: String,
    columns: String,
    columns_ja: String,
    error: String,
    report: Option<ImportReport>,
}

fn import_page(
    state: &WebState,
    session: Session,
    member: StaffMember,
    error: String,
    report: Option<ImportReport>,
) -> ImportPage {
    let sheet = &crate::postings::import::SHEET;
    ImportPage {
        center: state.center(),
        staff_name: member.display_name,
        csrf: session.csrf,
        columns: sheet.columns.join(","),
        columns_ja: sheet.columns_ja.join(","),
        error,
        report,
    }
}

async fn import_form(me: super::guard::SignedIn<StaffMember>, state: web::Data<WebState>) -> HttpResponse {
    let (session, member) = me.into_parts();
    html(StatusCode::OK, &import_page(&state, session, member, String::new(), None))
}

async fn import_template(_staff: super::guard::SignedIn<StaffMember>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("content-disposition", "attachment; filename=\"postings-template.csv\""))
        .insert_header(("cache-control", "no-store"))
        .body(crate::postings::import::template_csv())
}

async fn import_submit(
    me: super::guard::SignedIn<StaffMember>,
    state: web::Data<WebState>,
    payload: actix_multipart::Multipart,
) -> HttpResponse {
    super::staff::csv_upload(
        me,
        &state,
        payload,
        IMPORT,
        "postings imported from CSV",
        |conn, upload, staff_id| {
            crate::postings::import::import(conn, &upload.file, upload.accept_valid, &staff_id)
        },
        import_page,
    )
    .await
}
