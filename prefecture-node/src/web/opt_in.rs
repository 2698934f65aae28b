//! The nurse's pages (Japanese, server-rendered, no JavaScript needed, phone-sized). This slice:
//! opt-in — licence claims checked against the national registry, contact, and each consent scope
//! chosen with its full text.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use ncf_shared::federation::IdentityLinkRequest;
use ncf_shared::licence::PersonName;
use ncf_shared::{ConsentScope, Qualification, RegistrationNumber};
use serde::Deserialize;

use crate::Channel;
use crate::notices::{looks_like_email, looks_like_phone};
use crate::nurses::{self, NewNurse};
use crate::sync::LinkOutcome;

use super::{
    WebState, csrf_cookie_matches, csrf_cookie_token, expired_form, html, jst, message, with_csrf_cookie,
};

pub const DISTANCES: [u32; 5] = [5, 10, 20, 30, 50];
const BACK: (&str, &str) = ("/opt-in", "登録ページへ戻る");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/opt-in").get(opt_in_form).post(opt_in_submit));
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
    #[serde(default)]
    pub birth_date: String,
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

struct ScopeView {
    field: &'static str,
    title: &'static str,
    text: &'static str,
    checked: bool,
}

#[derive(Template)]
#[template(path = "opt_in.html")]
struct OptInPage {
    center: String,
    csrf: String,
    form: OptInForm,
    errors: BTreeMap<&'static str, String>,
    alert: String,
    qualifications: Vec<(&'static str, &'static str)>,
    distances: [u32; 5],
    scopes: Vec<ScopeView>,
}

#[derive(Template)]
#[template(path = "opted_in.html")]
struct OptedInPage {
    center: String,
    name: String,
    email: String,
    at: String,
    given: Vec<&'static str>,
}

fn page(
    state: &WebState,
    csrf: String,
    form: OptInForm,
    errors: BTreeMap<&'static str, String>,
    alert: String,
) -> OptInPage {
    let scopes = ConsentScope::ALL
        .into_iter()
        .map(|s| ScopeView {
            field: s.as_str(),
            title: s.title_ja(),
            text: crate::consent::text_ja(s),
            checked: form.chosen(s),
        })
        .collect();
    OptInPage {
        center: state.center(),
        csrf,
        form,
        errors,
        alert,
        qualifications: Qualification::all()
            .filter(|q| q.is_nursing())
            .map(|q| (q.code(), q.name_ja()))
            .collect(),
        distances: DISTANCES,
        scopes,
    }
}

async fn opt_in_form(state: web::Data<WebState>, req: HttpRequest) -> HttpResponse {
    let (csrf, new) = csrf_cookie_token(&req);
    let form = OptInForm { max_distance_km: "20".into(), ..OptInForm::default() };
    let response = html(StatusCode::OK, &page(&state, csrf.clone(), form, BTreeMap::new(), String::new()));
    with_csrf_cookie(&state, response, csrf, new)
}

fn to_katakana(text: &str) -> String {
    nurses::to_katakana(&PersonName::normalize(text))
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

fn check(form: &OptInForm) -> Result<Checked, BTreeMap<&'static str, String>> {
    let mut errors = BTreeMap::new();
    let qualification = Qualification::from_code(&form.qualification).filter(|q| q.is_nursing());
    if qualification.is_none() {
        errors.insert("qualification", "資格を選んでください。".to_string());
    }
    let registration_number =
        RegistrationNumber::parse(&super::forms::half_width(&form.registration_number)).ok();
    if registration_number.is_none() {
        errors.insert(
            "registration_number",
            "籍登録番号は免許証に記載の数字（8桁以内）を入力してください。".to_string(),
        );
    }
    for (field, value, label) in
        [("family_name", &form.family_name, "姓"), ("given_name", &form.given_name, "名")]
    {
        if PersonName::check(value.trim()).is_err() {
            errors.insert(field, format!("{label}を50文字以内で入力してください。"));
        }
    }
    let family_kana = to_katakana(&form.family_name_kana);
    let given_kana = to_katakana(&form.given_name_kana);
    for (field, value, label) in
        [("family_name_kana", &family_kana, "セイ"), ("given_name_kana", &given_kana, "メイ")]
    {
        if PersonName::check_kana(value).is_err() {
            errors.insert(field, format!("{label}をカタカナで入力してください。"));
        }
    }
    let birth_date = ncf_shared::time::parse_date(&super::forms::half_width(&form.birth_date)).ok();
    if birth_date.is_none() {
        errors.insert("birth_date", "生年月日を正しく入力してください（例: 1985-04-01）。".to_string());
    }
    let email = form.email.trim().to_string();
    if !looks_like_email(&email) {
        errors.insert("email", "メールアドレスの形式が正しくありません。".to_string());
    }
    let phone = Some(super::forms::half_width(&form.phone)).filter(|p| !p.is_empty());
    if phone.as_ref().is_some_and(|p| !looks_like_phone(p)) {
        errors
            .insert("phone", "電話番号は数字とハイフンで入力してください（例: 090-1234-5678）。".to_string());
    }
    let distance = form.max_distance_km.parse::<u32>().ok().filter(|d| DISTANCES.contains(d));
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
                    family_name: form.family_name.trim().to_string(),
                    given_name: form.given_name.trim().to_string(),
                    family_name_kana: family_kana,
                    given_name_kana: given_kana,
                    birth_date: birth_date.to_string(),
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

fn field_ja(field: &str) -> &'static str {
    match field {
        "qualification" => "資格",
        "registration_number" => "籍登録番号",
        "family_name" => "姓",
        "given_name" => "名",
        "family_name_kana" => "セイ",
        "given_name_kana" => "メイ",
        "birth_date" => "生年月日",
        _ => "入力内容",
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
            let alert = "入力内容に誤りがあります。赤字の項目を確認してください。".to_string();
            return html(StatusCode::UNPROCESSABLE_ENTITY, &page(&state, csrf, form, errors, alert));
        }
    };
    let code = match state.syncer.link_identity(&checked.claims).await {
        Ok(LinkOutcome::Linked(code)) => code,
        Ok(LinkOutcome::Mismatch(fields)) => {
            let mut errors = BTreeMap::new();
            for f in &fields {
                let key = match f.as_str() {
                    "qualification" => "qualification",
                    "registration_number" => "registration_number",
                    "family_name" => "family_name",
                    "given_name" => "given_name",
                    "family_name_kana" => "family_name_kana",
                    "given_name_kana" => "given_name_kana",
                    _ => "birth_date",
                };
                errors.insert(
                    key,
                    format!(
                        "{}が資格の登録内容と一致しません。免許証の記載どおりに入力してください。",
                        field_ja(f)
                    ),
                );
            }
            let listed: Vec<&str> = fields.iter().map(|f| field_ja(f)).collect();
            let alert = format!(
                "国の資格管理簿と照合できませんでした。一致しなかった項目: {}。結婚などで氏名が変わった方は、現在の氏名でもお試しください。",
                listed.join("、")
            );
            return html(StatusCode::UNPROCESSABLE_ENTITY, &page(&state, csrf, form, errors, alert));
        }
        Ok(LinkOutcome::NotActive) => {
            return message(
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                "登録できませんでした",
                format!(
                    "この免許は現在有効なものとして登録されていません。{}にお問い合わせください。",
                    state.center()
                ),
                BACK,
            );
        }
        Ok(LinkOutcome::Invalid(reason)) => {
            tracing::warn!(%reason, "national server refused the claims");
            let alert = "入力内容を確認できませんでした。もう一度入力してください。".to_string();
            return html(StatusCode::UNPROCESSABLE_ENTITY, &page(&state, csrf, form, BTreeMap::new(), alert));
        }
        Err(e) => {
            tracing::error!(error = %e, "identity link failed");
            return message(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "ただいま登録できません",
                "国の共通サーバーに接続できませんでした。入力内容は保存されていません。しばらくしてからもう一度お試しください。",
                BACK,
            );
        }
    };
    let new = NewNurse {
        agency_code: code,
        qualification: checked.qualification.code().to_string(),
        registration_number: checked.registration_number.canonical(),
        family_name: checked.claims.family_name.clone(),
        given_name: checked.claims.given_name.clone(),
        family_name_kana: checked.claims.family_name_kana.clone(),
        given_name_kana: checked.claims.given_name_kana.clone(),
        birth_date: checked.birth_date,
        email: checked.email.clone(),
        phone: checked.phone.clone(),
        max_distance_km: checked.distance as i32,
    };
    let decisions: Vec<(ConsentScope, bool)> = checked.scopes.iter().map(|s| (*s, true)).collect();
    let saved = state
        .db(move |conn| {
            ncf_shared::db::write_transaction(conn, |conn| {
                if let Some(existing) = nurses::by_agency_code(conn, &new.agency_code)? {
                    // Already registered: licence details alone must not change her e-mail or her
                    // consents (anyone holding her licence card could type them); she signs in.
                    return Ok(Err(existing.email));
                }
                let nurse = nurses::register(conn, new.clone())?;
                crate::consent::record(conn, &nurse.id, &decisions, Channel::Web, None)?;
                Ok(Ok(nurse.created_at))
            })
        })
        .await;
    match saved {
        Ok(Ok(at)) => html(
            StatusCode::OK,
            &OptedInPage {
                center: state.center(),
                name: format!("{} {}", checked.claims.family_name, checked.claims.given_name),
                email: checked.email,
                at: jst(at),
                given: checked.scopes.iter().map(|s| s.title_ja()).collect(),
            },
        ),
        Ok(Err(registered_email)) => message(
            &state,
            StatusCode::CONFLICT,
            "すでに登録されています",
            format!(
                "この免許の方はすでに{}に登録されています（登録メールアドレス: {}）。登録内容や同意の変更は、ログインしてから行ってください。",
                state.center(),
                crate::mail::mask_email(&registered_email)
            ),
            ("/sign-in", "ログインページへ"),
        ),
        Err(e) => super::unavailable(&state, &e, BACK),
    }
}
