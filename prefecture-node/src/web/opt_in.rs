//! The nurse's pages (Japanese, server-rendered, no JavaScript needed, phone-sized). This slice:
//! opt-in — licence claims checked against the national registry, contact, and each consent scope
//! chosen with its full text.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use ncf_shared::federation::IdentityLinkRequest;
use ncf_shared::licence::PersonName;
use ncf_shared::posting::DISTANCE_CHOICES_KM;
use ncf_shared::{ConsentScope, Qualification, RegistrationNumber};
use serde::Deserialize;

use crate::notices::looks_like_phone;
use crate::sync::LinkOutcome;

use super::routes::{Access, Routes};
use super::{
    PageError, WebState, csrf_cookie_matches, csrf_cookie_token, expired_form, html, with_csrf_cookie,
};

const BACK: (&str, &str) = ("/opt-in", "登録ページへ戻る");

pub(super) fn routes(routes: &mut Routes) {
    routes
        .get("/opt-in", Access::Public, opt_in_form)
        .post("/opt-in", Access::Public, opt_in_submit)
        .get("/opt-in/confirm", Access::Public, confirm_form)
        .post("/opt-in/confirm", Access::Public, confirm_submit);
}

/// What the form sends; every field kept as typed so the page can show it again.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct OptInForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub qualification: String,
    #[serde(default)]
    pub registration_number: String,
    #[serde(default)]
    pub family_name: String,
    #[serde(default)]
    pub given_name: String,
    #[serde(default)]
    pub family_name_kana: String,
    #[serde(default)]
    pub given_name_kana: String,
    /// An ISO date (scripts, older pages); the page itself sends the four fields below.
    #[serde(default)]
    pub birth_date: String,
    #[serde(default)]
    pub birth_era: String,
    #[serde(default)]
    pub birth_year: String,
    #[serde(default)]
    pub birth_month: String,
    #[serde(default)]
    pub birth_day: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub max_distance_km: String,
    pub address_linkage: Option<String>,
    pub job_support: Option<String>,
    pub training_info: Option<String>,
    pub share_with_residence_prefecture: Option<String>,
}

impl OptInForm {
    fn chosen(&self, scope: ConsentScope) -> bool {
        match scope {
            ConsentScope::AddressLinkage => self.address_linkage.is_some(),
            ConsentScope::JobSupport => self.job_support.is_some(),
            ConsentScope::TrainingInfo => self.training_info.is_some(),
            ConsentScope::ShareWithResidencePrefecture => self.share_with_residence_prefecture.is_some(),
        }
    }
}

#[derive(Template)]
#[template(path = "opt_in.html")]
struct OptInPage {
    center: crate::web::Center,
    csrf: String,
    form: OptInForm,
    errors: super::forms::Errors,
    alert: String,
    qualifications: Vec<(&'static str, &'static str)>,
    distances: [u32; 5],
    scopes: Vec<super::forms::ScopeView>,
}

fn page(
    state: &WebState,
    csrf: String,
    form: OptInForm,
    errors: super::forms::Errors,
    alert: String,
) -> OptInPage {
    let scopes = super::forms::scope_views(|s| form.chosen(s));
    OptInPage {
        center: state.center(),
        csrf,
        form,
        errors,
        alert,
        qualifications: super::forms::nursing_qualifications(),
        distances: DISTANCE_CHOICES_KM,
        scopes,
    }
}

async fn opt_in_form(state: web::Data<WebState>, req: HttpRequest) -> HttpResponse {
    let (csrf, new) = csrf_cookie_token(&req);
    let form = OptInForm { max_distance_km: "20".into(), ..OptInForm::default() };
    let response =
        html(StatusCode::OK, &page(&state, csrf.clone(), form, super::forms::Errors::new(), String::new()));
    with_csrf_cookie(&state, response, csrf, new)
}

struct Checked {
    claims: IdentityLinkRequest,
    qualification: Qualification,
    registration_number: RegistrationNumber,
    birth_date: chrono::NaiveDate,
    email: String,
    phone: Option<String>,
    distance: u32,
    scopes: Vec<ConsentScope>,
}

impl Checked {
    fn application(&self) -> crate::opt_in::Application {
        crate::opt_in::Application {
            qualification: self.qualification.code().to_string(),
            registration_number: self.registration_number.canonical(),
            family_name: self.claims.family_name.clone(),
            given_name: self.claims.given_name.clone(),
            family_name_kana: self.claims.family_name_kana.clone(),
            given_name_kana: self.claims.given_name_kana.clone(),
            birth_date: self.birth_date,
            email: self.email.clone(),
            phone: self.phone.clone(),
            max_distance_km: self.distance,
            scopes: self.scopes.clone(),
        }
    }
}

fn check(form: &OptInForm) -> Result<Checked, super::forms::Errors> {
    use ncf_shared::validation as v;
    let mut errors = super::forms::Errors::new();
    let qualification = Qualification::from_code(&form.qualification).filter(|q| q.is_nursing());
    if qualification.is_none() {
        errors.insert("qualification", "資格を選んでください。");
    }
    let registration_number =
        match v::required_digits("registration_number", "籍登録番号", &form.registration_number, 1, 8) {
            Ok(digits) => match RegistrationNumber::parse(&digits) {
                Ok(number) => Some(number),
                Err(_) => {
                    errors.insert(
                        "registration_number",
                        "籍登録番号は免許証に記載の数字（8桁以内）を入力してください。",
                    );
                    None
                }
            },
            Err(e) => {
                errors.insert("registration_number", e.message);
                None
            }
        };
    let mut text = |result: Result<String, ncf_shared::validation::FieldError>| match result {
        Ok(value) => value,
        Err(e) => {
            errors.insert(e.field, e.message);
            String::new()
        }
    };
    let max = PersonName::MAX_CHARS;
    let family_name = text(v::required_name("family_name", "姓", &form.family_name, max));
    let given_name = text(v::required_name("given_name", "名", &form.given_name, max));
    let family_kana = text(v::required_kana("family_name_kana", "セイ", &form.family_name_kana, max));
    let given_kana = text(v::required_kana("given_name_kana", "メイ", &form.given_name_kana, max));
    let birth_date = match super::forms::birth_date(
        &form.birth_date,
        &form.birth_era,
        &form.birth_year,
        &form.birth_month,
        &form.birth_day,
    ) {
        Ok(date) => Some(date),
        Err(message) => {
            errors.insert("birth_date", message);
            None
        }
    };
    let email = match v::required_email("email", "メールアドレス", &form.email) {
        Ok(email) => email,
        Err(e) => {
            errors.insert("email", e.message);
            String::new()
        }
    };
    let phone = Some(ncf_shared::normalize::phone(&form.phone)).filter(|p| !p.is_empty());
    if phone.as_ref().is_some_and(|p| !looks_like_phone(p)) {
        errors.insert("phone", "電話番号は数字とハイフンで入力してください（例: 090-1234-5678）。");
    }
    let distance = form.max_distance_km.parse::<u32>().ok().filter(|d| DISTANCE_CHOICES_KM.contains(d));
    if distance.is_none() {
        errors.insert("max_distance_km", "お知らせを受け取る範囲を選んでください。".to_string());
    }
    let scopes: Vec<ConsentScope> = ConsentScope::ALL.into_iter().filter(|s| form.chosen(*s)).collect();
    if scopes.is_empty() {
        errors.insert("scopes", "同意する項目を1つ以上選んでください。".to_string());
    }
    match (qualification, registration_number, birth_date, distance) {
        (Some(qualification), Some(registration_number), Some(birth_date), Some(distance))
            if errors.is_empty() =>
        {
            Ok(Checked {
                claims: IdentityLinkRequest {
                    qualification: qualification.code().to_string(),
                    registration_number: registration_number.canonical(),
                    family_name,
                    given_name,
                    family_name_kana: family_kana,
                    given_name_kana: given_kana,
                    birth_date: birth_date.to_string(),
                    staff_lookup: None,
                },
                qualification,
                registration_number,
                birth_date,
                email,
                phone,
                distance,
                scopes,
            })
        }
        _ => Err(errors),
    }
}

async fn opt_in_submit(
    state: web::Data<WebState>,
    req: HttpRequest,
    form: web::Form<OptInForm>,
) -> HttpResponse {
    let form = form.into_inner();
    if !csrf_cookie_matches(&req, &form.csrf) {
        return expired_form(&state, BACK);
    }
    let csrf = form.csrf.clone();
    let checked = match check(&form) {
        Ok(checked) => checked,
        Err(errors) => {
            // The error summary at the top of the form says it; no second alert.
            return html(StatusCode::UNPROCESSABLE_ENTITY, &page(&state, csrf, form, errors, String::new()));
        }
    };
    // E-mail first: nothing is checked against the registry yet, and the answer is the same
    // whatever was typed. The licence is checked when the e-mailed link is opened.
    let application = checked.application();
    let email = application.email.clone();
    let (center, base_url) = (state.center(), state.public_url.clone());
    // The application and its mail in one transaction: no mail without a stored application,
    // and no stored application whose mail was lost.
    let stored = state
        .db(move |conn| {
            ncf_shared::db::write_transaction(conn, |conn| {
                let token = crate::opt_in::apply(conn, &application)?;
                let body = format!(
                    "{center}です。\n\n看護職の就業支援への登録のお申し込みを受け付けました。\n次のリンクを開いて、免許の照合と登録を完了してください（{hours}時間以内）。\n\n{base_url}/opt-in/confirm?token={token}\n\nお心当たりがない場合は、このメールを破棄してください。登録は行われません。\n",
                    hours = crate::opt_in::CONFIRM_HOURS,
                );
                let expires = ncf_shared::time::now_utc() + chrono::Duration::hours(crate::opt_in::CONFIRM_HOURS);
                crate::mail::enqueue_until(conn, &application.email, "【ナースセンター】登録の確認", &body, Some(expires))?;
                Ok::<_, crate::error::NodeError>(())
            })
        })
        .await;
    match stored {
        Ok(()) => state.mail.wake(),
        Err(e) => return super::unavailable(&state, &e, BACK),
    }
    html(StatusCode::OK, &MailSentPage { center: state.center(), email })
}

#[derive(Template)]
#[template(path = "opt_in_sent.html")]
struct MailSentPage {
    center: crate::web::Center,
    email: String,
}

#[derive(Template)]
#[template(path = "opt_in_confirm.html")]
struct ConfirmPage {
    center: crate::web::Center,
    csrf: String,
    token: String,
    form: OptInForm,
    errors: super::forms::Errors,
    qualifications: Vec<(&'static str, &'static str)>,
}

fn confirm_page(
    state: &WebState,
    csrf: String,
    token: String,
    form: OptInForm,
    errors: super::forms::Errors,
) -> ConfirmPage {
    ConfirmPage {
        center: state.center(),
        csrf,
        token,
        form,
        errors,
        qualifications: super::forms::nursing_qualifications(),
    }
}

/// The stored application as the form shows it again.
fn as_form(a: &crate::opt_in::Application) -> OptInForm {
    let on = |scope| a.scopes.contains(&scope).then(|| "on".to_string());
    OptInForm {
        csrf: String::new(),
        qualification: a.qualification.clone(),
        registration_number: a.registration_number.clone(),
        family_name: a.family_name.clone(),
        given_name: a.given_name.clone(),
        family_name_kana: a.family_name_kana.clone(),
        given_name_kana: a.given_name_kana.clone(),
        birth_date: String::new(),
        birth_era: super::forms::date_parts(a.birth_date)[0].clone(),
        birth_year: super::forms::date_parts(a.birth_date)[1].clone(),
        birth_month: super::forms::date_parts(a.birth_date)[2].clone(),
        birth_day: super::forms::date_parts(a.birth_date)[3].clone(),
        email: a.email.clone(),
        phone: a.phone.clone().unwrap_or_default(),
        max_distance_km: a.max_distance_km.to_string(),
        address_linkage: on(ConsentScope::AddressLinkage),
        job_support: on(ConsentScope::JobSupport),
        training_info: on(ConsentScope::TrainingInfo),
        share_with_residence_prefecture: on(ConsentScope::ShareWithResidencePrefecture),
    }
}

fn link_gone(state: &WebState) -> HttpResponse {
    PageError::LinkGone(format!(
        "確認用のリンクは{}時間以内に、一度だけ使えます。このリンクは使用済みか、有効期限が切れています。お手数ですが、もう一度お申し込みください。",
        crate::opt_in::CONFIRM_HOURS
    ))
    .page(state, BACK)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TokenQuery {
    token: String,
}

/// The link from the e-mail: her licence details, to check (and correct) before the registry is
/// asked. A GET never changes anything (mail scanners open links).
async fn confirm_form(
    state: web::Data<WebState>,
    req: HttpRequest,
    query: web::Query<TokenQuery>,
) -> HttpResponse {
    let token = query.into_inner().token;
    let lookup = token.clone();
    let application = match state.db(move |conn| Ok(crate::opt_in::pending(conn, &lookup)?)).await {
        Ok(Some(application)) => application,
        Ok(None) => return link_gone(&state),
        Err(e) => return super::unavailable(&state, &e, BACK),
    };
    let (csrf, new) = csrf_cookie_token(&req);
    let response = html(
        StatusCode::OK,
        &confirm_page(&state, csrf.clone(), token, as_form(&application), super::forms::Errors::new()),
    );
    with_csrf_cookie(&state, response, csrf, new)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ConfirmForm {
    csrf: String,
    token: String,
    qualification: String,
    registration_number: String,
    family_name: String,
    given_name: String,
    family_name_kana: String,
    given_name_kana: String,
    birth_date: String,
    birth_era: String,
    birth_year: String,
    birth_month: String,
    birth_day: String,
}

/// Checks the licence at the national server and, on a match, registers her (not yet proofed)
/// and signs her in.
async fn confirm_submit(
    state: web::Data<WebState>,
    req: HttpRequest,
    form: web::Form<ConfirmForm>,
) -> HttpResponse {
    let form = form.into_inner();
    if !csrf_cookie_matches(&req, &form.csrf) {
        return expired_form(&state, BACK);
    }
    let lookup = form.token.clone();
    let stored = match state.db(move |conn| Ok(crate::opt_in::pending(conn, &lookup)?)).await {
        Ok(Some(application)) => application,
        Ok(None) => return link_gone(&state),
        Err(e) => return super::unavailable(&state, &e, BACK),
    };
    // Her corrections to the licence details; everything else as stored (the address is the
    // one the link went to).
    let corrected = OptInForm {
        qualification: form.qualification.clone(),
        registration_number: form.registration_number.clone(),
        family_name: form.family_name.clone(),
        given_name: form.given_name.clone(),
        family_name_kana: form.family_name_kana.clone(),
        given_name_kana: form.given_name_kana.clone(),
        birth_date: form.birth_date.clone(),
        birth_era: form.birth_era.clone(),
        birth_year: form.birth_year.clone(),
        birth_month: form.birth_month.clone(),
        birth_day: form.birth_day.clone(),
        ..as_form(&stored)
    };
    let checked = match check(&corrected) {
        Ok(checked) => checked,
        Err(errors) => {
            let page = confirm_page(&state, form.csrf.clone(), form.token.clone(), corrected, errors);
            return html(StatusCode::UNPROCESSABLE_ENTITY, &page);
        }
    };
    let retry = format!("/opt-in/confirm?token={}", form.token);
    let code = match state.syncer.link_identity(&checked.claims).await {
        Ok(LinkOutcome::Linked(code)) => code,
        // One answer for every "no" (a field differs, no such licence, lapsed, deceased, or too
        // many attempts): the page must not read the registry for whoever types into it.
        Ok(
            LinkOutcome::NoMatch
            | LinkOutcome::Mismatch(_)
            | LinkOutcome::NotActive
            | LinkOutcome::Invalid(_),
        ) => {
            return failed(&state, &form.token, &retry).await;
        }
        Ok(LinkOutcome::AttemptsExhausted) => {
            let detail = format!(
                "{}の籍登録番号{}について、24時間に5回照合できなかったため、国のデータベースが照合を止めました。",
                checked.qualification.name_ja(),
                checked.registration_number
            );
            let _ = state.db(move |conn| Ok(crate::staff::alert(conn, "attempts_exhausted", &detail)?)).await;
            return failed(&state, &form.token, &retry).await;
        }
        Err(e) => {
            tracing::error!(error = %e, "identity link failed");
            return PageError::Unavailable {
                heading: "ただいま登録できません",
                text: "国のデータベースに接続できませんでした。入力内容は保存されていません。しばらくしてから、メールのリンクをもう一度開いてください。".into(),
                cause: e.to_string(),
            }
            .page(&state, (retry.as_str(), "入力画面へ戻る"));
        }
    };
    let application = checked.application();
    let token = form.token.clone();
    let confirmed = state.db(move |conn| crate::opt_in::confirm(conn, &token, &application, code)).await;
    match confirmed {
        Ok(crate::opt_in::Confirmed::Registered { session, receipt, .. }) => {
            let mut response = super::see_other(&format!("/me/receipts/{receipt}"));
            let _ = response.add_cookie(&state.session_cookie(crate::auth::SessionKind::Nurse, session));
            response
        }
        Ok(crate::opt_in::Confirmed::ProofedAlready { holder_email }) => {
            // Proofed already: licence details change nothing for her. Her own address is told;
            // whoever typed this sees the answer of a mismatch.
            let body = format!(
                "{}です。\n\nあなたの看護職免許の情報で、別のメールアドレスから登録の申し込みがありました。登録は受け付けていません。\n心当たりがない場合も、対応は不要です。ご本人が申し込まれた場合は、登録済みのこのアドレスでログインしてください。\n",
                state.center()
            );
            super::queue_mail(
                &state,
                holder_email,
                "【ナースセンター】登録の申し込みがありました".to_string(),
                body,
            )
            .await;
            failed(&state, &form.token, &retry).await
        }
        Ok(crate::opt_in::Confirmed::Gone) => link_gone(&state),
        Err(e) => super::unavailable(&state, &e, BACK),
    }
}

/// A no-match answer, counted against the application (the third deletes it, and the way back
/// then says the link no longer works).
async fn failed(state: &WebState, token: &str, retry: &str) -> HttpResponse {
    let token = token.to_string();
    if let Err(e) = state.db(move |conn| Ok(crate::opt_in::note_failure(conn, &token)?)).await {
        tracing::warn!(error = %e, "cannot count a failed opt-in confirmation");
    }
    no_match(state, retry)
}

/// The one answer for licence details that cannot be registered, whatever the reason.
fn no_match(state: &WebState, retry: &str) -> HttpResponse {
    PageError::NoMatch(format!(
            "入力された内容を、国の資格管理簿と照合できませんでした。看護職免許証（免許の証書）の記載どおりに、資格・籍登録番号・氏名・フリガナ・生年月日を確認してください。結婚などで姓が変わった方は、免許証の旧姓でもお試しください。何度か照合できない場合は、時間をおくか、{}の窓口にご相談ください。",
            state.center()
    ))
    .page(state, (retry, "入力内容を確認する"))
}
