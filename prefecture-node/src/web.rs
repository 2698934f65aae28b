//! The nurse's pages (Japanese, server-rendered, no JavaScript needed, phone-sized). This slice:
//! opt-in — licence claims checked against the national registry, contact, and each consent scope
//! chosen with its full text.

use std::collections::BTreeMap;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use ncf_shared::db::Pool;
use ncf_shared::federation::IdentityLinkRequest;
use ncf_shared::licence::PersonName;
use ncf_shared::{ConsentScope, Prefecture, Qualification, RegistrationNumber};
use serde::Deserialize;

use crate::Channel;
use crate::notices::{looks_like_email, looks_like_phone};
use crate::nurses::{self, NewNurse};
use crate::sync::{LinkOutcome, Syncer};

const CSRF_COOKIE: &str = "ncf_csrf";
pub const DISTANCES: [u32; 5] = [5, 10, 20, 30, 50];

pub struct WebState {
    pub pool: Pool,
    pub syncer: Syncer,
    pub prefecture: Prefecture,
}

impl WebState {
    fn center(&self) -> String {
        format!("{}ナースセンター", self.prefecture.name_ja())
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/")
            .get(|| async { HttpResponse::SeeOther().insert_header(("location", "/opt-in")).finish() }),
    )
    .service(web::resource("/opt-in").get(opt_in_form).post(opt_in_submit))
    .default_service(web::to(not_found));
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

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    center: String,
    heading: &'static str,
    text: String,
}

fn html(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status).content_type("text/html; charset=utf-8").body(body),
        Err(e) => {
            tracing::error!(error = %e, "page rendering failed");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("表示できませんでした。")
        }
    }
}

fn message(
    state: &WebState,
    status: StatusCode,
    heading: &'static str,
    text: impl Into<String>,
) -> HttpResponse {
    html(status, &MessagePage { center: state.center(), heading, text: text.into() })
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

fn new_token() -> String {
    ncf_shared::secret::random_token(24)
}

async fn opt_in_form(state: web::Data<WebState>, req: HttpRequest) -> HttpResponse {
    let csrf = req.cookie(CSRF_COOKIE).map_or_else(new_token, |c| c.value().to_string());
    let form = OptInForm { max_distance_km: "20".into(), ..OptInForm::default() };
    let mut response =
        html(StatusCode::OK, &page(&state, csrf.clone(), form, BTreeMap::new(), String::new()));
    let cookie =
        Cookie::build(CSRF_COOKIE, csrf).path("/").http_only(true).same_site(SameSite::Strict).finish();
    let _ = response.add_cookie(&cookie);
    response
}

/// Normalises what people type on phones: full-width digits and hyphens, hiragana for kana.
fn half_width_digits(text: &str) -> String {
    text.trim()
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            'ー' | '－' | '‐' => '-',
            _ => c,
        })
        .collect()
}

fn to_katakana(text: &str) -> String {
    PersonName::normalize(text)
        .chars()
        .map(|c| {
            if ('\u{3041}'..='\u{3096}').contains(&c) {
                char::from_u32(c as u32 + 0x60).unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
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
    let registration_number = RegistrationNumber::parse(&half_width_digits(&form.registration_number)).ok();
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
    let birth_date = ncf_shared::time::parse_date(&half_width_digits(&form.birth_date)).ok();
    if birth_date.is_none() {
        errors.insert("birth_date", "生年月日を正しく入力してください（例: 1985-04-01）。".to_string());
    }
    let email = form.email.trim().to_string();
    if !looks_like_email(&email) {
        errors.insert("email", "メールアドレスの形式が正しくありません。".to_string());
    }
    let phone = Some(half_width_digits(&form.phone)).filter(|p| !p.is_empty());
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
    let cookie = req.cookie(CSRF_COOKIE).map(|c| c.value().to_string());
    if cookie.as_deref().is_none_or(|c| c.is_empty() || c != form.csrf) {
        return message(
            &state,
            StatusCode::FORBIDDEN,
            "もう一度お試しください",
            "ページの有効期限が切れたか、別の画面から送信されました。登録ページを開き直して、もう一度入力してください。",
        );
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
            );
        }
    };
    let pool = state.pool.clone();
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
    let saved = web::block(move || -> Result<chrono::NaiveDateTime, crate::error::NodeError> {
        let mut conn = pool.get().map_err(|e| crate::error::NodeError::Unavailable(e.to_string()))?;
        ncf_shared::db::write_transaction(&mut conn, |conn| {
            let nurse = nurses::register(conn, new.clone())?;
            crate::consent::record(conn, &nurse.id, &decisions, Channel::Web, None)?;
            Ok(nurse.created_at)
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
                at: ncf_shared::time::to_utc(at)
                    .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).expect("JST offset"))
                    .format("%Y年%m月%d日 %H:%M")
                    .to_string(),
                given: checked.scopes.iter().map(|s| s.title_ja()).collect(),
            },
        ),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "opt-in could not be saved");
            message(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "ただいま登録できません",
                "しばらくしてからもう一度お試しください。",
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "opt-in task failed");
            message(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "ただいま登録できません",
                "しばらくしてからもう一度お試しください。",
            )
        }
    }
}

async fn not_found(state: web::Data<WebState>) -> HttpResponse {
    message(&state, StatusCode::NOT_FOUND, "ページが見つかりません", "お探しのページは見つかりませんでした。")
}
