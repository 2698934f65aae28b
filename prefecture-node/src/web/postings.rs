//! Staff pages for this node's job and training postings (issue #8): the list, a form to publish
//! or change one, and withdrawal. The form is read into a `PostingBody` here (what cannot be read
//! is named per field) and then checked by `PostingBody::validate`, the one check every way in
//! uses; the domain work is `crate::postings`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::NaiveDate;
use ncf_shared::posting::{
    EmploymentType, PostingBody, PostingKind, PostingPlace, TrainingDetails, WagePer, WageRange,
};
use serde::Deserialize;

use super::forms::Errors;
use super::routes::{Access, Routes};
use super::{CsrfOnly, PageError, WebState, html, see_other, unavailable};
use crate::auth::Session;
use crate::postings::{ChangeError, Posting};
use crate::staff::StaffMember;

const LIST: (&str, &str) = ("/staff/postings", "求人・研修の一覧へ戻る");

pub(super) fn routes(routes: &mut Routes) {
    routes
        .get("/staff/postings", Access::Staff, list)
        .get("/staff/postings/new", Access::Staff, new_form)
        .post("/staff/postings", Access::Staff, create)
        .get("/staff/postings/{posting}", Access::Staff, edit_form)
        .post("/staff/postings/{posting}", Access::Staff, update)
        .post("/staff/postings/{posting}/withdraw", Access::Staff, withdraw);
}

const WAGE_PERS: [WagePer; 4] = [WagePer::Hour, WagePer::Day, WagePer::Month, WagePer::Year];

fn wage_slug(w: WagePer) -> &'static str {
    match w {
        WagePer::Hour => "hour",
        WagePer::Day => "day",
        WagePer::Month => "month",
        WagePer::Year => "year",
    }
}

/// The posting form as typed. Every field is text, so that nothing typed is lost on a 422.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct PostingForm {
    pub csrf: String,
    pub kind: String,
    pub title: String,
    pub description: String,
    pub facility_name: String,
    pub facility_contact: String,
    pub lgcode: String,
    pub lat: String,
    pub lng: String,
    pub q01: Option<String>,
    pub q02: Option<String>,
    pub q03: Option<String>,
    pub q04: Option<String>,
    pub full_time: Option<String>,
    pub part_time: Option<String>,
    pub short_hours: Option<String>,
    pub days_only: Option<String>,
    pub night_shifts: Option<String>,
    pub hours: String,
    pub wage_per: String,
    pub wage_min: String,
    pub wage_max: String,
    pub training_starts_on: String,
    pub training_ends_on: String,
    pub training_hours: String,
    pub capacity: String,
    pub fee: String,
    pub valid_from: String,
    pub valid_until: String,
}

/// Field order on the page, for the error summary.
const FIELDS: [&str; 14] = [
    "kind",
    "title",
    "description",
    "facility_name",
    "facility_contact",
    "place",
    "qualifications",
    "employment_types",
    "hours",
    "wage",
    "training",
    "valid_from",
    "valid_until",
    "csrf",
];

fn yen(text: &str) -> Option<i64> {
    let t: String = ncf_shared::normalize::digits(text.trim()).chars().filter(|c| *c != ',').collect();
    let t = t.trim();
    if let Some(rest) = t.strip_prefix('-').or_else(|| t.strip_prefix('－')) {
        return rest.parse::<i64>().ok().map(|v| -v);
    }
    t.parse().ok()
}

fn day(text: &str) -> Option<NaiveDate> {
    ncf_shared::wareki::parse_written(text)
}

impl PostingForm {
    pub fn checked(&self, field: &str) -> bool {
        match field {
            "01" => self.q01.is_some(),
            "02" => self.q02.is_some(),
            "03" => self.q03.is_some(),
            "04" => self.q04.is_some(),
            "full_time" => self.full_time.is_some(),
            "part_time" => self.part_time.is_some(),
            "short_hours" => self.short_hours.is_some(),
            "days_only" => self.days_only.is_some(),
            "night_shifts" => self.night_shifts.is_some(),
            _ => false,
        }
    }

    /// The body, or every field that cannot be read or does not pass `PostingBody::validate`.
    pub fn body(&self) -> Result<PostingBody, Errors> {
        let mut errors = Errors::new();
        let kind = PostingKind::parse(&self.kind);
        if kind.is_none() {
            errors.insert("kind", "求人か研修かを選んでください。");
        }
        let place = if !self.lgcode.trim().is_empty() {
            Some(PostingPlace::Municipality { lgcode: ncf_shared::normalize::digits(self.lgcode.trim()) })
        } else {
            let num = |t: &str| ncf_shared::normalize::digits(t.trim()).parse::<f64>().ok();
            match (num(&self.lat), num(&self.lng)) {
                (Some(lat), Some(lng)) => Some(PostingPlace::Point { lat, lng }),
                _ => {
                    errors.insert("place", "場所を市区町村コード（6桁）か、緯度と経度で入力してください。");
                    None
                }
            }
        };
        let qualifications: Vec<ncf_shared::Qualification> = ["01", "02", "03", "04"]
            .into_iter()
            .filter(|c| self.checked(c))
            .filter_map(ncf_shared::Qualification::from_code)
            .collect();
        let employment_types: Vec<EmploymentType> =
            EmploymentType::ALL.into_iter().filter(|t| self.checked(t.as_str())).collect();
        let wage = if self.wage_min.trim().is_empty() && self.wage_max.trim().is_empty() {
            None
        } else {
            let per = WAGE_PERS.into_iter().find(|w| wage_slug(*w) == self.wage_per);
            match (per, yen(&self.wage_min), yen(&self.wage_max)) {
                (Some(per), Some(min_yen), Some(max_yen)) => Some(WageRange { per, min_yen, max_yen }),
                (None, _, _) => {
                    errors.insert("wage", "給与の単位（時給・日給・月給・年収）を選んでください。");
                    None
                }
                _ => {
                    errors.insert("wage", "給与の下限と上限を円単位の数字で入力してください（例: 1800）。");
                    None
                }
            }
        };
        let training = if kind == Some(PostingKind::Training) {
            match (
                day(&self.training_starts_on),
                day(&self.training_ends_on),
                self.training_hours.trim().parse::<u16>(),
                self.capacity.trim().parse::<u32>(),
                yen(if self.fee.trim().is_empty() { "0" } else { &self.fee }),
            ) {
                (Some(starts_on), Some(ends_on), Ok(hours), Ok(capacity), Some(fee_yen)) => {
                    Some(TrainingDetails { starts_on, ends_on, hours, capacity, fee_yen })
                }
                _ => {
                    errors.insert(
                        "training",
                        "研修の開始日・終了日（例: 2027年1月15日）、時間数、定員、受講料（無料は0）を入力してください。",
                    );
                    None
                }
            }
        } else {
            None
        };
        let valid_from = day(&self.valid_from);
        if valid_from.is_none() {
            errors.insert("valid_from", "掲載開始日を入力してください（例: 2026年12月1日）。");
        }
        let valid_until = day(&self.valid_until);
        if valid_until.is_none() {
            errors.insert("valid_until", "掲載終了日を入力してください（例: 2027年3月31日）。");
        }
        let (Some(kind), Some(place), Some(valid_from), Some(valid_until)) =
            (kind, place, valid_from, valid_until)
        else {
            return Err(errors.ordered_as(&FIELDS));
        };
        let body = PostingBody {
            kind,
            title: self.title.trim().to_string(),
            description: self.description.trim().to_string(),
            facility_name: self.facility_name.trim().to_string(),
            facility_contact: self.facility_contact.trim().to_string(),
            place,
            qualifications,
            employment_types,
            hours: self.hours.trim().to_string(),
            wage,
            training,
            valid_from,
            valid_until,
        };
        if let Err(found) = body.validate() {
            for e in found {
                errors.insert(e.field, e.message);
            }
        }
        if errors.is_empty() { Ok(body) } else { Err(errors.ordered_as(&FIELDS)) }
    }

    /// The form filled from a stored posting (to change it).
    pub fn from_body(b: &PostingBody) -> Self {
        let mut f = Self {
            kind: b.kind.as_str().into(),
            title: b.title.clone(),
            description: b.description.clone(),
            facility_name: b.facility_name.clone(),
            facility_contact: b.facility_contact.clone(),
            hours: b.hours.clone(),
            valid_from: ncf_shared::time::date_ja(b.valid_from),
            valid_until: ncf_shared::time::date_ja(b.valid_until),
            ..Self::default()
        };
        match &b.place {
            PostingPlace::Municipality { lgcode } => f.lgcode = lgcode.clone(),
            PostingPlace::Point { lat, lng } => {
                f.lat = lat.to_string();
                f.lng = lng.to_string();
            }
        }
        let on = || Some("on".to_string());
        for q in &b.qualifications {
            match q.code() {
                "01" => f.q01 = on(),
                "02" => f.q02 = on(),
                "03" => f.q03 = on(),
                "04" => f.q04 = on(),
                _ => {}
            }
        }
        for t in &b.employment_types {
            match t {
                EmploymentType::FullTime => f.full_time = on(),
                EmploymentType::PartTime => f.part_time = on(),
                EmploymentType::ShortHours => f.short_hours = on(),
                EmploymentType::DaysOnly => f.days_only = on(),
                EmploymentType::NightShifts => f.night_shifts = on(),
            }
        }
        if let Some(w) = &b.wage {
            f.wage_per = wage_slug(w.per).into();
            f.wage_min = w.min_yen.to_string();
            f.wage_max = w.max_yen.to_string();
        }
        if let Some(t) = &b.training {
            f.training_starts_on = ncf_shared::time::date_ja(t.starts_on);
            f.training_ends_on = ncf_shared::time::date_ja(t.ends_on);
            f.training_hours = t.hours.to_string();
            f.capacity = t.capacity.to_string();
            f.fee = t.fee_yen.to_string();
        }
        f
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
        kind: "job".into(),
        q03: Some("on".into()),
        valid_from: ncf_shared::time::date_ja(today),
        wage_per: "hour".into(),
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
                PostingForm::from_body(&p.body),
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
