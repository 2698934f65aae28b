//! The nurse's pages after opt-in: sign-in with a one-time e-mail link, her page (details,
//! consents with withdrawal, notices, data-provision record), and filing a notice.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use ncf_shared::contract::NodeToNational;
use ncf_shared::federation::{CodeCheckResponse, LetterResponse};
use ncf_shared::{ConsentScope, NoticeKind};
use serde::Deserialize;

use super::forms::{NoticeForm, NoticePage, Step};
use super::routes::{Access, Routes};
use super::{
    CsrfOnly, Door, PageError, WebState, csrf_cookie_matches, csrf_cookie_token, expired_form, html, jst,
    see_other, unavailable, with_csrf_cookie, with_retry_after,
};
use crate::Channel;
use crate::auth::{self, SessionKind};
use crate::error::NodeError;
use crate::nurses::Nurse;

const HOME: (&str, &str) = ("/me", "マイページへ戻る");
const SIGN_IN: (&str, &str) = ("/sign-in", "ログインページへ");

pub(super) fn routes(routes: &mut Routes) {
    routes
        .get("/sign-in", Access::Public, sign_in_form)
        .post("/sign-in", Access::Public, sign_in_submit)
        .get("/sign-in/link", Access::Public, link_page)
        .post("/sign-in/link", Access::Public, link_submit)
        .post("/sign-out", Access::Nurse, sign_out)
        .get("/me", Access::Nurse, home)
        .post("/me/consents", Access::Nurse, change_consent)
        .post("/me/preferences", Access::Nurse, change_preferences)
        .post("/me/proofing/letter", Access::Nurse, request_letter)
        .post("/me/proofing/code", Access::Nurse, submit_code)
        .get("/me/receipts/{number}", Access::Nurse, receipt_page)
        .get("/me/notices/{kind}", Access::Nurse, notice_form)
        .post("/me/notices/{kind}", Access::Nurse, notice_submit);
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    center: crate::web::Center,
    csrf: String,
    email: String,
    error: String,
    sent: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EmailForm {
    csrf: String,
    email: String,
}

async fn sign_in_form(state: web::Data<WebState>, req: HttpRequest) -> HttpResponse {
    let (csrf, new) = csrf_cookie_token(&req);
    let page = SignInPage {
        center: state.center(),
        csrf: csrf.clone(),
        email: String::new(),
        error: String::new(),
        sent: false,
    };
    with_csrf_cookie(&state, html(StatusCode::OK, &page), csrf, new)
}

/// Queues a link for every nurse registered with this address (`auth::request_login_links`).
/// The answer — status, page and time taken — is the same whether or not the address is
/// registered: no SMTP is awaited here, and the typed address is not shown back.
async fn sign_in_submit(
    state: web::Data<WebState>,
    req: HttpRequest,
    form: web::Form<EmailForm>,
) -> HttpResponse {
    if !csrf_cookie_matches(&req, &form.csrf) {
        return expired_form(&state, SIGN_IN);
    }
    // The address as opt-in stored it (width folded, domain in lower case).
    let email = ncf_shared::normalize::email(&form.email);
    let mut page = SignInPage {
        center: state.center(),
        csrf: form.csrf.clone(),
        email: String::new(),
        error: String::new(),
        sent: false,
    };
    if !crate::notices::looks_like_email(&email) {
        page.email = email;
        page.error = "メールアドレスの形式が正しくありません。".into();
        return html(StatusCode::UNPROCESSABLE_ENTITY, &page);
    }
    let (client, center, public_url) =
        (state.client_address(&req), state.center().name, state.public_url.clone());
    let outcome = state
        .db(move |conn| {
            let mail = auth::LinkMail { center: &center, public_url: &public_url };
            auth::request_login_links(conn, &email, &client, &mail)
        })
        .await;
    match outcome {
        Ok(auth::LinkRequest::Accepted) => {
            state.mail.wake();
            page.sent = true;
            html(StatusCode::OK, &page)
        }
        Ok(auth::LinkRequest::Throttled { retry_after_secs }) => {
            let minutes = (retry_after_secs + 59) / 60;
            page.error = format!(
                "ログイン用リンクのご請求が続いています。しばらく待ってから（{minutes}分ほど後に）もう一度お試しください。"
            );
            with_retry_after(html(StatusCode::TOO_MANY_REQUESTS, &page), retry_after_secs)
        }
        Err(e) => unavailable(&state, &e, SIGN_IN),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LinkForm {
    csrf: String,
    token: String,
}

#[derive(Template)]
#[template(path = "sign_in_link.html")]
struct LinkPage {
    center: crate::web::Center,
    csrf: String,
    token: String,
}

/// Opening the link only shows a button: mail scanners that fetch links must not use it up.
async fn link_page(
    state: web::Data<WebState>,
    req: HttpRequest,
    query: web::Query<LinkForm>,
) -> HttpResponse {
    let (csrf, new) = csrf_cookie_token(&req);
    let page = LinkPage { center: state.center(), csrf: csrf.clone(), token: query.into_inner().token };
    with_csrf_cookie(&state, html(StatusCode::OK, &page), csrf, new)
}

async fn link_submit(
    state: web::Data<WebState>,
    req: HttpRequest,
    form: web::Form<LinkForm>,
) -> HttpResponse {
    // The form token keeps another site from signing her in to someone else's page.
    if !csrf_cookie_matches(&req, &form.csrf) {
        return expired_form(&state, SIGN_IN);
    }
    let token = form.into_inner().token;
    let started = state
        .db(move |conn| {
            Ok(match auth::redeem_login_link(conn, &token)? {
                Some(nurse_id) => Some(auth::start_session(conn, SessionKind::Nurse, &nurse_id)?.0),
                None => None,
            })
        })
        .await;
    match started {
        Ok(Some(session_token)) => {
            let mut response = see_other("/me");
            let _ = response.add_cookie(&state.session_cookie(SessionKind::Nurse, session_token));
            response
        }
        Ok(None) => PageError::LinkGone(format!(
            "ログイン用リンクは一度だけ、{}分以内に使えます。このリンクは使用済みか、有効期限が切れています。もう一度ログイン用リンクを請求してください。",
            auth::LOGIN_LINK_MINUTES
        ))
        .page(&state, SIGN_IN),
        Err(e) => unavailable(&state, &e, SIGN_IN),
    }
}

pub(super) const DOOR: Door<Nurse> = Door {
    kind: SessionKind::Nurse,
    sign_in: "/sign-in",
    back: HOME,
    load: |conn, id| crate::nurses::get(conn, id),
};

async fn sign_out(state: web::Data<WebState>, req: HttpRequest, form: web::Form<CsrfOnly>) -> HttpResponse {
    state.sign_out(&req, &DOOR, &form.csrf).await
}

pub(crate) struct ConsentView {
    pub field: &'static str,
    pub title: &'static str,
    pub text: &'static str,
    pub granted: bool,
    /// When and how the current decision was recorded ("" when never decided).
    pub since: String,
    /// Every change of this scope, newest first: 「2026年11月27日 10:02 同意（ウェブ・同意文 2026年11月版・受付番号 …）」.
    pub history: Vec<String>,
}

pub(crate) struct NoticeView {
    pub kind: &'static str,
    /// Its receipt number as read out (empty for notices from before receipts).
    pub receipt: String,
    pub summary: String,
    pub filed_at: String,
    /// How it came in: 「ウェブ」, or 「書面（センター職員が入力）・受付日 2026年11月20日」.
    pub channel: String,
    /// Where it went: shared with the national server or kept at this node.
    pub shared: &'static str,
}

pub(crate) struct ProvisionView {
    pub at: String,
    pub direction: String,
    pub what: String,
    pub purpose: &'static str,
}

#[derive(Template)]
#[template(path = "me.html")]
struct HomePage {
    center: crate::web::Center,
    csrf: String,
    nurse: Nurse,
    consents: Vec<ConsentView>,
    notices: Vec<NoticeView>,
    provisions: Option<Vec<ProvisionView>>,
    kinds: Vec<(&'static str, &'static str)>,
    flash: String,
    /// How and when she proved who she is, e.g. 「郵送の確認コード（2026年12月1日）」; empty until then.
    proofed: String,
    /// When she asked for her latest letter (empty: none asked for).
    letter_requested: String,
    /// A message about her last proofing step (wrong code, no address...).
    proofing_note: String,
    /// What the national server holds about her (latent, home center, residence, reminders).
    national: crate::life_events::StatusView,
    /// Her lists of nearby postings, nearest first: 求人, then 研修.
    match_lists: Vec<(&'static str, Vec<MatchView>)>,
    distances: [u32; 5],
    /// (value, label, chosen)
    cadences: Vec<(&'static str, &'static str, bool)>,
    employment: Vec<(&'static str, &'static str, bool)>,
    /// Her address refused our mail for good: no digests until staff clear it.
    bouncing: bool,
    /// Training she asked to attend, and what was recorded (研修歴).
    training: Vec<TrainingView>,
}

/// One posting in her list, as her page shows it (every text escaped by the template).
pub(crate) struct MatchView {
    /// Matched since her last digest (「新着」 on her page).
    pub new: bool,
    pub title: String,
    pub facility: String,
    pub contact: String,
    pub place: String,
    pub distance: String,
    pub description: String,
    pub details: Vec<(&'static str, String)>,
    /// For a training session: where she asks to attend (empty for jobs).
    pub apply: String,
    /// Her wish for this session, if she made one: where it stands.
    pub wish: String,
}

/// One training of her history, as her page shows it.
pub(crate) struct TrainingView {
    pub title: String,
    pub holder: String,
    pub dates: String,
    pub state: String,
}

pub(crate) fn match_view(
    m: &crate::postings::Match,
    last_digest_at: Option<chrono::NaiveDateTime>,
) -> MatchView {
    let b = &m.body;
    let mut details: Vec<(&'static str, String)> = Vec::new();
    if !b.employment_types.is_empty() {
        details.push((
            "雇用形態",
            b.employment_types.iter().map(|t| t.label_ja()).collect::<Vec<_>>().join("・"),
        ));
    }
    if !b.hours.is_empty() {
        details.push(("勤務時間", b.hours.clone()));
    }
    if let Some(w) = &b.wage {
        details.push(("給与", format!("{} {}円〜{}円", w.per.label_ja(), yen(w.min_yen), yen(w.max_yen))));
    }
    if let Some(t) = &b.training {
        details.push((
            "日程",
            format!(
                "{}〜{}（{}時間）",
                ncf_shared::time::date_ja(t.starts_on),
                ncf_shared::time::date_ja(t.ends_on),
                t.hours
            ),
        ));
        details.push(("定員", format!("{}人", t.capacity)));
        details.push((
            "受講料",
            if t.fee_yen == 0 { "無料".to_string() } else { format!("{}円", yen(t.fee_yen)) },
        ));
    }
    details.push((
        "応募できる資格",
        b.qualifications.iter().map(|q| q.name_ja()).collect::<Vec<_>>().join("・"),
    ));
    details.push(("掲載期限", ncf_shared::time::date_ja(b.valid_until)));
    MatchView {
        new: last_digest_at.is_none_or(|l| m.matched_at > l),
        title: b.title.clone(),
        facility: b.facility_name.clone(),
        contact: b.facility_contact.clone(),
        place: m.place_ja(),
        distance: m.distance_ja(),
        description: b.description.clone(),
        details,
        apply: if m.kind == ncf_shared::posting::PostingKind::Training {
            format!("/me/training/{}/{}", m.posting.prefecture.code(), m.posting.posting_id)
        } else {
            String::new()
        },
        wish: String::new(),
    }
}

/// 1234567 → 「1,234,567」
pub(crate) fn yen(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if amount < 0 { format!("-{out}") } else { out }
}

pub(crate) fn channel_ja(channel: &str) -> &'static str {
    match channel {
        "paper" => "書面（センター職員が入力）",
        _ => "ウェブ",
    }
}

/// Her consents as both her page and the staff page show them.
pub(crate) fn consent_views(records: &[crate::consent::ConsentRecord]) -> Vec<ConsentView> {
    ConsentScope::ALL
        .into_iter()
        .map(|scope| {
            let mut changes: Vec<&crate::consent::ConsentRecord> =
                records.iter().filter(|r| r.scope == scope.as_str()).collect();
            changes.sort_by_key(|r| std::cmp::Reverse(r.version));
            let line = |r: &crate::consent::ConsentRecord| {
                let receipt = r
                    .receipt
                    .as_deref()
                    .map(|n| format!("、受付番号 {}", crate::receipts::display(n)))
                    .unwrap_or_default();
                format!(
                    "{} {}（{}、同意文 {}{receipt}）",
                    jst(r.recorded_at),
                    if r.granted { "同意" } else { "取消" },
                    channel_ja(&r.channel),
                    crate::consent::text_version_ja(&r.text_version),
                )
            };
            ConsentView {
                field: scope.as_str(),
                title: scope.title_ja(),
                text: crate::consent::text_ja(scope),
                granted: changes.first().is_some_and(|r| r.granted),
                since: changes.first().map_or_else(String::new, |r| line(r)),
                history: changes.iter().map(|r| line(r)).collect(),
            }
        })
        .collect()
}

/// Her notices, newest first, each with whether it left the node (its outbox event, if any).
pub(crate) fn notice_views(
    notices: &[crate::notices::Notice],
    shared_notice_ids: &std::collections::HashSet<String>,
) -> Vec<NoticeView> {
    notices
        .iter()
        .map(|n| {
            let body = n.body();
            NoticeView {
                kind: NoticeKind::parse(&n.kind).map_or("届出", NoticeKind::title_ja),
                receipt: n.receipt.as_deref().map(crate::receipts::display).unwrap_or_default(),
                summary: body.map_or_else(String::new, |b| b.summary_ja()),
                filed_at: jst(n.filed_at),
                channel: match n.received_on {
                    Some(day) => {
                        format!("{}・受付日 {}", channel_ja(&n.channel), ncf_shared::time::date_ja(day))
                    }
                    None => channel_ja(&n.channel).to_string(),
                },
                shared: if shared_notice_ids.contains(&n.id) {
                    "国のデータベースへ送信"
                } else {
                    "このセンターのみで保管"
                },
            }
        })
        .collect()
}

/// Ids of notices that have an outbox event (left, or will leave, the node).
pub(crate) fn shared_notice_ids(
    conn: &mut ncf_shared::db::DbConn,
    nurse_id: &str,
) -> Result<std::collections::HashSet<String>, NodeError> {
    Ok(crate::outbox::for_nurse(conn, nurse_id)?
        .into_iter()
        .filter_map(|e| match e.message()? {
            NodeToNational::NoticeFiled(n) => Some(n.notice_id),
            NodeToNational::ContactChanged(c) => c.notice_id,
            NodeToNational::ConsentChanged(_)
            | NodeToNational::IdentityProofed(_)
            | NodeToNational::TransferContact(_)
            | NodeToNational::TransferConfirmed(_)
            | NodeToNational::PreferenceChanged(_)
            | NodeToNational::TrainingWish(_)
            | NodeToNational::TrainingContact(_)
            | NodeToNational::AttendanceRecorded(_) => None,
        })
        .collect())
}

pub(crate) fn provision_views(entries: Vec<ncf_shared::federation::ProvisionListing>) -> Vec<ProvisionView> {
    let party = |p: &str| -> String {
        match p.strip_prefix("node:").and_then(ncf_shared::Prefecture::from_code) {
            Some(pref) => format!("{}ナースセンター", pref.name_ja()),
            None if p == "national" => "国のデータベース".to_string(),
            None => p.to_string(),
        }
    };
    entries
        .into_iter()
        .rev()
        .map(|e| ProvisionView {
            at: jst(e.recorded_at),
            direction: format!("{} → {}", party(&e.source), party(&e.recipient)),
            what: e.fields.iter().map(|f| field_ja(f)).collect::<Vec<_>>().join("、"),
            // A withdrawal is recorded under the consent-record purpose too; name it as what it is.
            purpose: if e.fields.iter().any(|f| f.starts_with("consent_withdrawn:")) {
                "同意の取消の記録"
            } else {
                e.purpose.title_ja()
            },
        })
        .collect()
}

fn field_ja(field: &str) -> String {
    let label = match field {
        "agency_code" => "センターごとの番号（氏名などを含まない番号）",
        "withdrawal_confirmation" => "削除の確認",
        "identity_proofing" => "本人確認の方法と日時",
        "family_name" => "姓",
        "given_name" => "名",
        "address" => "住所",
        "email" => "メールアドレス",
        "phone" => "電話番号",
        "preference:distance" => "お知らせを受け取る範囲（自宅からの距離）",
        "postings:job" => "お住まいの近くの求人の一覧",
        "postings:training" => "お住まいの近くの研修の一覧",
        other => {
            if let Some(scope) = other.strip_prefix("consent:").and_then(ConsentScope::parse) {
                return format!("同意（{}）", scope.title_ja());
            }
            if let Some(scope) = other.strip_prefix("consent_withdrawn:").and_then(ConsentScope::parse) {
                return format!("同意の取消（{}）", scope.title_ja());
            }
            if let Some(contact) = other.strip_prefix("contact:") {
                return field_ja(contact);
            }
            if let Some(kind) = other.strip_prefix("notice:").and_then(NoticeKind::parse) {
                return kind.title_ja().to_string();
            }
            other
        }
    };
    label.to_string()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HomeQuery {
    done: String,
    proofing: String,
}

async fn home(
    me: super::guard::SignedIn<Nurse>,
    state: web::Data<WebState>,
    query: web::Query<HomeQuery>,
) -> HttpResponse {
    let (session, nurse) = me.into_parts();
    let id = nurse.id.clone();
    let here = state.prefecture;
    let loaded = state
        .db(move |conn| {
            let consents = crate::consent::history(conn, &id)?;
            let notices = crate::notices::for_nurse(conn, &id)?;
            let shared = shared_notice_ids(conn, &id)?;
            let letter = crate::proofing::latest_letter(conn, &id)?;
            let national = crate::life_events::view(conn, &id, here)?;
            let matches = crate::postings::matches_for(conn, here, &id, ncf_shared::time::today_jst())?;
            let digest = crate::digests::settings(conn, &id)?;
            let training = crate::training::history(conn, &id)?;
            Ok((consents, notices, shared, letter, national, matches, digest, training))
        })
        .await;
    let (consents, notices, shared, letter, national, matches, digest, training) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return unavailable(&state, &e, SIGN_IN),
    };
    // Only the proofed registration reads her record at the national server: an unproofed one
    // may be someone else holding a copy of her licence.
    let provisions = match ncf_shared::AgencyCode::parse(&nurse.agency_code).filter(|_| nurse.proofed()) {
        None => None,
        Some(code) => match state.syncer.provisions(&code).await {
            Ok(entries) => Some(provision_views(entries)),
            Err(e) => {
                tracing::warn!(error = %e, "provision record not available");
                None
            }
        },
    };
    let flash = match query.done.as_str() {
        "consent" => "同意の内容を更新しました。",
        "preferences" => "お知らせの設定を変更しました。",
        "training" => "研修の参加希望を受け付けました。研修を行うセンターに、次の同期で届きます。",
        "notice" => "届出を受け付けました。",
        "letter" => "確認コードの郵送を申し込みました。住民票の住所に届きます。",
        "registered" => {
            "登録が完了しました。次に、本人確認をお願いします（下の「本人確認」をご覧ください）。"
        }
        "proofed" => "本人確認が済みました。同意いただいた範囲で、情報の連携を始めます。",
        _ => "",
    };
    let proofing_note = match query.proofing.as_str() {
        "wrong" => "確認コードが違います。郵便に記載の8桁の数字を、もう一度入力してください。",
        "new_letter" => {
            "この確認コードは使えなくなりました（有効期限切れ、または5回間違えたため）。お手数ですが、もう一度郵送を申し込んでください。"
        }
        "not_sent" => "確認コードはまだ発送されていません。郵便が届いてから入力してください。",
        "no_address" => {
            "住民票の住所が確認できないため、郵送できません。本人確認書類（写真付き）と看護職免許証をお持ちのうえ、センターの窓口にお越しください。"
        }
        "too_many" => {
            "最近すでに何度か郵送を申し込まれています。届くまでお待ちください。届かない場合はセンターにご相談ください。"
        }
        "taken" => "この免許はすでに別の登録で本人確認が済んでいます。センターにご相談ください。",
        "unavailable" => "ただいま国のデータベースに接続できません。しばらくしてからもう一度お試しください。",
        _ => "",
    };
    let proofed = match (&nurse.proofing_method, nurse.proofed_at) {
        (Some(method), Some(at)) => format!(
            "{}（{}）",
            ncf_shared::contract::ProofingMethod::parse(method).map_or("確認済み", |m| m.title_ja()),
            jst(at)
        ),
        _ => String::new(),
    };
    let letter_requested = letter.map(|(_, at)| jst(at)).unwrap_or_default();
    html(
        StatusCode::OK,
        &HomePage {
            center: state.center(),
            csrf: session.csrf,
            nurse,
            consents: consent_views(&consents),
            notices: notice_views(&notices, &shared),
            provisions,
            kinds: NoticeKind::ALL.into_iter().map(|k| (k.as_str(), k.title_ja())).collect(),
            flash: flash.to_string(),
            proofed,
            letter_requested,
            proofing_note: proofing_note.to_string(),
            national,
            match_lists: [ncf_shared::posting::PostingKind::Job, ncf_shared::posting::PostingKind::Training]
                .into_iter()
                .map(|kind| {
                    let last = digest.last_digest_at;
                    (
                        kind.label_ja(),
                        matches
                            .iter()
                            .filter(|m| m.kind == kind)
                            .map(|m| {
                                let mut view = match_view(m, last);
                                if let Some(w) = training.iter().find(|w| w.posting == m.posting) {
                                    view.wish = w.state_ja();
                                }
                                view
                            })
                            .collect(),
                    )
                })
                .collect(),
            distances: ncf_shared::posting::DISTANCE_CHOICES_KM,
            cadences: crate::digests::Cadence::ALL
                .into_iter()
                .map(|c| (c.as_str(), c.label_ja(), c == digest.cadence))
                .collect(),
            employment: ncf_shared::posting::EmploymentType::ALL
                .into_iter()
                .map(|t| (t.as_str(), t.label_ja(), digest.employment.contains(&t)))
                .collect(),
            bouncing: digest.bouncing_since.is_some(),
            training: training
                .iter()
                .map(|w| TrainingView {
                    title: w.title.clone(),
                    holder: format!("{}・{}ナースセンター", w.facility_name, w.posting.prefecture.name_ja()),
                    dates: w.dates_ja(),
                    state: w.state_ja(),
                })
                .collect(),
        },
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PreferencesForm {
    csrf: String,
    max_distance_km: String,
    digest_cadence: String,
    full_time: Option<String>,
    part_time: Option<String>,
    short_hours: Option<String>,
    days_only: Option<String>,
    night_shifts: Option<String>,
}

impl PreferencesForm {
    fn employment(&self) -> Vec<ncf_shared::posting::EmploymentType> {
        use ncf_shared::posting::EmploymentType::*;
        [
            (FullTime, &self.full_time),
            (PartTime, &self.part_time),
            (ShortHours, &self.short_hours),
            (DaysOnly, &self.days_only),
            (NightShifts, &self.night_shifts),
        ]
        .into_iter()
        .filter(|(_, on)| on.is_some())
        .map(|(t, _)| t)
        .collect()
    }
}

/// Her distance for job and training information (travels to the national server under
/// `job_support` or `training_info`).
async fn change_preferences(
    me: super::guard::SignedIn<Nurse>,
    state: web::Data<WebState>,
    form: web::Form<PreferencesForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let (_, nurse) = match me.checked(&state, DOOR.back, &form.csrf) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (Some(km), Some(cadence)) = (
        form.max_distance_km.trim().parse::<u32>().ok(),
        crate::digests::Cadence::parse(&form.digest_cadence),
    ) else {
        return PageError::BadRequest {
            heading: "範囲と頻度を選んでください",
            text: "お知らせを受け取る範囲を 5・10・20・30・50 km から、お知らせメールの頻度を 毎週・毎日・停止 から選んでください。".into(),
        }
        .page(&state, HOME);
    };
    let employment = form.employment();
    let changed = state
        .db(move |conn| {
            let distance_ok =
                nurse.max_distance_km == km as i32 || crate::nurses::set_distance(conn, &nurse.id, km)?;
            if distance_ok {
                crate::digests::set_settings(conn, &nurse.id, cadence, &employment)?;
            }
            Ok(distance_ok)
        })
        .await;
    match changed {
        Ok(true) => see_other("/me?done=preferences#matches"),
        Ok(false) => PageError::BadRequest {
            heading: "範囲を選んでください",
            text: "お知らせを受け取る範囲を 5・10・20・30・50 km から選んでください。".into(),
        }
        .page(&state, HOME),
        Err(e) => unavailable(&state, &e, HOME),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CsrfForm {
    csrf: String,
}

/// The signed-in nurse behind a proofing form, and her agency code; the answer instead when she
/// is proofed already (back to her page) or not signed in.
#[allow(clippy::result_large_err)] // the refusal is the answer itself, built once per request
fn unproofed(
    state: &WebState,
    me: super::guard::SignedIn<Nurse>,
    csrf: &str,
) -> Result<(Nurse, ncf_shared::AgencyCode), HttpResponse> {
    let (_, nurse) = me.checked(state, DOOR.back, csrf)?;
    if nurse.proofed() {
        return Err(see_other("/me"));
    }
    match ncf_shared::AgencyCode::parse(&nurse.agency_code) {
        Some(code) => Ok((nurse, code)),
        None => Err(see_other("/me?proofing=unavailable#proofing")),
    }
}

/// She asks for a letter with a one-time code, posted to the address of her resident
/// registration (which this node never learns).
async fn request_letter(
    state: web::Data<WebState>,
    me: super::guard::SignedIn<Nurse>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let (nurse, code) = match unproofed(&state, me, &form.csrf) {
        Ok(found) => found,
        Err(response) => return response,
    };
    match state.syncer.request_letter(&code).await {
        Ok(LetterResponse::Queued { letter_id, valid_days }) => {
            let id = nurse.id.clone();
            match state
                .db(move |conn| Ok(crate::proofing::record_letter(conn, &id, &letter_id, valid_days)?))
                .await
            {
                Ok(()) => see_other("/me?done=letter#proofing"),
                Err(e) => unavailable(&state, &e, HOME),
            }
        }
        Ok(LetterResponse::NoAddress) => see_other("/me?proofing=no_address#proofing"),
        Ok(LetterResponse::TooMany) => see_other("/me?proofing=too_many#proofing"),
        Err(e) => {
            tracing::warn!(error = %e, "letter request failed");
            see_other("/me?proofing=unavailable#proofing")
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CodeForm {
    csrf: String,
    code: String,
}

/// She types the code from her letter; the national server checks it.
async fn submit_code(
    state: web::Data<WebState>,
    me: super::guard::SignedIn<Nurse>,
    form: web::Form<CodeForm>,
) -> HttpResponse {
    let (nurse, code) = match unproofed(&state, me, &form.csrf) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let typed: String =
        ncf_shared::normalize::digits(&form.code).chars().filter(|c| c.is_ascii_digit()).collect();
    let id = nurse.id.clone();
    let letter = match state.db(move |conn| Ok(crate::proofing::latest_letter(conn, &id)?)).await {
        Ok(Some((letter_id, _))) => letter_id,
        Ok(None) => return see_other("/me?proofing=new_letter#proofing"),
        Err(e) => return unavailable(&state, &e, HOME),
    };
    match state.syncer.check_code(&code, &letter, &typed).await {
        Ok(CodeCheckResponse::Proofed) => {
            let id = nurse.id.clone();
            let done = state
                .db(move |conn| crate::proofing::complete(conn, &id, &crate::proofing::Proof::by_post()))
                .await;
            match done {
                Ok(completed) => {
                    super::tell_removed_registrations(&state, &completed.removed_addresses).await;
                    see_other("/me?done=proofed")
                }
                Err(crate::error::NodeError::Conflict(_)) => see_other("/me?proofing=taken#proofing"),
                Err(e) => unavailable(&state, &e, HOME),
            }
        }
        Ok(CodeCheckResponse::Wrong { .. }) => see_other("/me?proofing=wrong#proofing"),
        Ok(CodeCheckResponse::NewLetterNeeded) => see_other("/me?proofing=new_letter#proofing"),
        Ok(CodeCheckResponse::NotSentYet) => see_other("/me?proofing=not_sent#proofing"),
        Err(e) => {
            tracing::warn!(error = %e, "code check failed");
            see_other("/me?proofing=unavailable#proofing")
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ConsentForm {
    pub csrf: String,
    pub scope: String,
    pub granted: String,
    /// `yes` from the confirmation page's button; anything else shows the confirmation.
    pub confirmed: String,
}

impl ConsentForm {
    /// The decision this form asks for, or `None` when it names no scope or decision.
    pub fn decision(&self) -> Option<(ConsentScope, bool)> {
        let scope = ConsentScope::parse(&self.scope)?;
        let granted = super::forms::parse_yes_no(&self.granted)?;
        Some((scope, granted))
    }
}

#[derive(Template)]
#[template(path = "consent_confirm.html")]
struct ConsentConfirmPage {
    center: crate::web::Center,
    csrf: String,
    field: &'static str,
    title: &'static str,
    text: &'static str,
    granted: bool,
    effect: &'static str,
}

/// A consent change asks first: granting shows the full text to agree to, withdrawing asks
/// 「取り消しますか？」 and says what the national server will delete. Only the confirmation's own
/// button (`confirmed=yes`) records the change, under a receipt number.
async fn change_consent(
    me: super::guard::SignedIn<Nurse>,
    state: web::Data<WebState>,
    form: web::Form<ConsentForm>,
) -> HttpResponse {
    let (session, nurse) = match me.checked(&state, DOOR.back, &form.csrf) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Some(decision) = form.decision() else {
        return PageError::BadRequest {
            heading: "変更できませんでした",
            text: "同意の項目と、同意するか取り消すかを選んでください。".into(),
        }
        .page(&state, HOME);
    };
    let (scope, granted) = decision;
    if form.confirmed != "yes" {
        let page = ConsentConfirmPage {
            center: state.center(),
            csrf: session.csrf,
            field: scope.as_str(),
            title: scope.title_ja(),
            text: crate::consent::text_ja(scope),
            granted,
            effect: crate::consent::withdrawal_effect_ja(scope),
        };
        return html(StatusCode::OK, &page);
    }
    let saved = state
        .db(move |conn| {
            let written = crate::consent::record(conn, &nurse.id, &[decision], Channel::Web, None)?;
            Ok(written.into_iter().find_map(|r| r.receipt))
        })
        .await;
    match saved {
        Ok(Some(receipt)) => see_other(&format!("/me/receipts/{receipt}")),
        // Nothing changed (the same decision twice, e.g. a second click).
        Ok(None) => see_other("/me?done=consent#consents"),
        Err(e) => unavailable(&state, &e, HOME),
    }
}

fn kind_of(path: &str) -> Option<NoticeKind> {
    NoticeKind::parse(path)
}

fn unknown_kind(state: &WebState) -> HttpResponse {
    PageError::NotFound("届出の種類が正しくありません。".into()).page(state, HOME)
}

/// Where a notice of this kind goes, under her current consents (the gate, in words).
pub(crate) fn notice_note(kind: NoticeKind, consents: &crate::consent::CurrentConsents) -> String {
    let Some(scope) = ncf_shared::contract::consent_for_notice(kind) else {
        let share = ncf_shared::ConsentScope::ShareWithResidencePrefecture;
        return if consents.granted(share) {
            "変更届はこのセンターにだけ保存されます。他の都道府県に転居したときは、新しい氏名・メールアドレス・電話番号が転居先のナースセンターに引き継がれます（住所は引き継がれません）。".to_string()
        } else {
            "変更届はこのセンターにだけ保存され、外には送られません。".to_string()
        };
    };
    if consents.granted(scope) {
        "この届出は国のデータベースにも送られます。".to_string()
    } else {
        format!("「{}」に同意していないため、この届出はこのセンターの外には送られません。", scope.title_ja())
    }
}

async fn notice_form(
    me: super::guard::SignedIn<Nurse>,
    state: web::Data<WebState>,
    kind: web::Path<String>,
) -> HttpResponse {
    let (session, nurse) = me.into_parts();
    let Some(kind) = kind_of(&kind) else {
        return unknown_kind(&state);
    };
    let id = nurse.id.clone();
    let consents = match state.db(move |conn| Ok(crate::consent::current(conn, &id)?)).await {
        Ok(c) => c,
        Err(e) => return unavailable(&state, &e, HOME),
    };
    let form = NoticeForm { csrf: session.csrf, ..NoticeForm::default() };
    html(StatusCode::OK, &notice_page(&state, kind, form, Default::default(), notice_note(kind, &consents)))
}

fn notice_page(
    state: &WebState,
    kind: NoticeKind,
    form: NoticeForm,
    errors: super::forms::Errors,
    note: String,
) -> NoticePage {
    NoticePage::new(
        state.center(),
        state.prefecture,
        kind,
        String::new(),
        format!("/me/notices/{}", kind.as_str()),
        "/me".to_string(),
        form,
        errors,
        note,
    )
}

async fn notice_submit(
    me: super::guard::SignedIn<Nurse>,
    state: web::Data<WebState>,
    kind: web::Path<String>,
    form: web::Form<NoticeForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let (_, nurse) = match me.checked(&state, DOOR.back, &form.csrf) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Some(kind) = kind_of(&kind) else {
        return unknown_kind(&state);
    };
    match file_notice(&state, &nurse.id, kind, &form, Channel::Web, None).await {
        Ok(NoticeOutcome::Filed { receipt }) => see_other(&format!("/me/receipts/{receipt}")),
        Ok(NoticeOutcome::Edit(note)) => {
            html(StatusCode::OK, &notice_page(&state, kind, form, Default::default(), note))
        }
        Ok(NoticeOutcome::Confirm(body, note, _)) => {
            let form = NoticeForm { submission: super::forms::new_submission(), ..form };
            html(StatusCode::OK, &notice_page(&state, kind, form, Default::default(), note).confirming(&body))
        }
        Ok(NoticeOutcome::Invalid(errors, note)) => {
            html(StatusCode::UNPROCESSABLE_ENTITY, &notice_page(&state, kind, form, errors, note))
        }
        Err(e) => unavailable(&state, &e, HOME),
    }
}

/// Where a posted notice form leads (入力 → 確認 → 完了), for her or for staff entering a paper form.
pub(crate) enum NoticeOutcome {
    /// Back to the form with what she typed (「修正する」).
    Edit(String),
    /// Wrong fields, each with its message, and the gate note; nothing saved.
    Invalid(super::forms::Errors, String),
    /// Readable: show what will be filed (with a paper form's 受付日) and ask once more; nothing
    /// saved yet.
    Confirm(ncf_shared::notice::NoticeBody, String, Option<chrono::NaiveDate>),
    /// Filed, under this receipt number.
    Filed { receipt: String },
}

/// Reads a posted notice form and, at its last step, files it (once per confirmation page: the
/// page carries a random `submission` token, and a submit without one shows the confirmation).
pub(crate) async fn file_notice(
    state: &WebState,
    nurse_id: &str,
    kind: NoticeKind,
    form: &NoticeForm,
    channel: Channel,
    entered_by: Option<String>,
) -> Result<NoticeOutcome, NodeError> {
    // Reading the form: each field's format; a paper form's 受付日.
    let mut body = form.to_body(kind, ncf_shared::time::today_jst());
    let received_on = match channel {
        Channel::Paper => match super::forms::parse_date(&form.received_on) {
            Some(day) => Some(day),
            None => {
                let mut errors = body.err().unwrap_or_default();
                errors.insert(
                    "received_on",
                    if form.received_on.trim().is_empty() {
                        "受付日を入力してください（例: 2026年11月20日）。"
                    } else {
                        "受付日は 2026年11月20日 または 2026-11-20 の形で入力してください。"
                    },
                );
                body = Err(errors);
                None
            }
        },
        Channel::Web => None,
    };
    // What the domain refuses whatever the form said, shown already at the confirmation step.
    if let Ok(readable) = &body {
        let problems = crate::notices::submission_problems(readable, channel, received_on);
        if !problems.is_empty() {
            body = Err(problems.into());
        }
    }
    let body = body.map_err(|errors| errors.ordered_as(&super::forms::NOTICE_FIELDS));
    let step = match form.step() {
        Step::Submit if form.submission.is_empty() => Step::Confirm,
        step => step,
    };
    let (nurse_id, submission) = (nurse_id.to_string(), form.submission.clone());
    state
        .db(move |conn| {
            let note = |conn: &mut ncf_shared::db::DbConn| -> Result<String, NodeError> {
                Ok(notice_note(kind, &crate::consent::current(conn, &nurse_id)?))
            };
            let body = match (step, body) {
                (Step::Edit, _) => return Ok(NoticeOutcome::Edit(note(conn)?)),
                (_, Err(errors)) => return Ok(NoticeOutcome::Invalid(errors, note(conn)?)),
                (Step::Confirm, Ok(body)) => {
                    return Ok(NoticeOutcome::Confirm(body, note(conn)?, received_on));
                }
                (Step::Submit, Ok(body)) => body,
            };
            let submitted = crate::notices::file_submission(
                conn,
                &nurse_id,
                &body,
                channel,
                entered_by.as_deref(),
                received_on,
                &submission,
            );
            match submitted {
                Ok(crate::notices::Submitted::Filed(filed)) => {
                    Ok(NoticeOutcome::Filed { receipt: filed.notice.receipt.unwrap_or_default() })
                }
                Ok(crate::notices::Submitted::Again { receipt }) => Ok(NoticeOutcome::Filed { receipt }),
                Err(NodeError::Invalid(fields)) => {
                    Ok(NoticeOutcome::Invalid(super::forms::errors_of(fields), note(conn)?))
                }
                Err(e) => Err(e),
            }
        })
        .await
}

#[derive(Template)]
#[template(path = "receipt.html")]
struct ReceiptPage {
    center: crate::web::Center,
    heading: &'static str,
    /// The procedure's steps, this page being the last (完了).
    steps: Vec<&'static str>,
    number: String,
    issued_at: String,
    /// (label, value) lines of what was received.
    lines: Vec<(String, String)>,
    /// What happens next, in sentences.
    next: Vec<String>,
}

/// The 完了 page of a step she completed: its receipt number and what was received. Only her own
/// receipts; another number answers as if it did not exist.
async fn receipt_page(
    me: super::guard::SignedIn<Nurse>,
    state: web::Data<WebState>,
    number: web::Path<String>,
) -> HttpResponse {
    let (_, nurse) = me.into_parts();
    let not_found =
        |state: &WebState| PageError::NotFound("この受付番号の記録はありません。".into()).page(state, HOME);
    let Some(number) = crate::receipts::parse(&number) else {
        return not_found(&state);
    };
    let id = nurse.id.clone();
    let found = state
        .db(move |conn| {
            let details = crate::receipts::details_for(conn, &id, &number)?;
            let shared = match &details {
                Some(d) if d.notice.is_some() => shared_notice_ids(conn, &id)?,
                _ => Default::default(),
            };
            Ok(details.map(|d| (d, shared)))
        })
        .await;
    let (details, shared) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(&state),
        Err(e) => return unavailable(&state, &e, HOME),
    };
    html(StatusCode::OK, &receipt_view(&state, &details, &shared, nurse.proofed()))
}

fn receipt_view(
    state: &WebState,
    d: &crate::receipts::ReceiptDetails,
    shared: &std::collections::HashSet<String>,
    proofed: bool,
) -> ReceiptPage {
    use crate::receipts::ReceiptKind;
    let mut lines = Vec::new();
    let mut next = Vec::new();
    let kind = d.receipt.kind().unwrap_or(ReceiptKind::Notice);
    if let Some(notice) = &d.notice {
        let title = NoticeKind::parse(&notice.kind).map_or("届出", NoticeKind::title_ja);
        lines.push(("届出の種類".to_string(), title.to_string()));
        if let Some(body) = notice.body() {
            lines.extend(body.details_ja().into_iter().map(|(k, v)| (k.to_string(), v)));
        }
        next.push(if shared.contains(&notice.id) {
            "この届出は、同意いただいた範囲で国のデータベース（厚生労働省が全国の看護職の就業状況をまとめるシステム）にも送られます。".to_string()
        } else {
            "この届出は、このセンターでのみ保管します。".to_string()
        });
    }
    for c in &d.consents {
        let title = ConsentScope::parse(&c.scope).map_or("同意", ConsentScope::title_ja);
        lines.push((title.to_string(), if c.granted { "同意する".into() } else { "同意を取り消す".into() }));
        if !c.granted
            && let Some(scope) = ConsentScope::parse(&c.scope)
        {
            next.push(crate::consent::withdrawal_effect_ja(scope).to_string());
        }
    }
    if kind == ReceiptKind::OptIn && !proofed {
        next.push(
            "次に、本人確認をお願いします。マイページの「本人確認」から、確認コードの郵送を申し込めます。"
                .into(),
        );
    }
    next.push("お問い合わせの際は、この受付番号をお伝えください。".into());
    ReceiptPage {
        center: state.center(),
        heading: match kind {
            ReceiptKind::OptIn => "登録を受け付けました",
            ReceiptKind::Notice => "届出を受け付けました",
            ReceiptKind::Consent => "同意の変更を受け付けました",
        },
        steps: match kind {
            ReceiptKind::OptIn => vec!["入力", "メールの確認", "内容の確認", "完了"],
            ReceiptKind::Notice => vec!["入力", "確認", "完了"],
            ReceiptKind::Consent => vec!["選択", "確認", "完了"],
        },
        number: d.receipt.display(),
        issued_at: jst(d.receipt.issued_at),
        lines,
        next,
    }
}
