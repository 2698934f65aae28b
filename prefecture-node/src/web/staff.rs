//! Staff pages (Japanese): sign-in (rate limited), the nurses of this prefecture with search, one
//! nurse (notices, consents, sync state), paper notices and consents entered on her behalf, and
//! the employer bulk upload.

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use futures_util::StreamExt;
use ncf_shared::NoticeKind;
use serde::Deserialize;

use super::forms::{NoticeForm, NoticePage};
use super::nurse::{
    ConsentForm, ConsentView, NoticeOutcome, NoticeView, consent_views, notice_note, notice_views,
};
use super::routes::{Access, Routes};
use super::{
    CsrfOnly, Door, PageError, WebState, csrf_cookie_matches, csrf_cookie_token, expired_form, html, jst,
    see_other, unavailable, with_csrf_cookie, with_retry_after,
};
use crate::Channel;
use crate::auth::{Session, SessionKind};
use crate::bulk::BulkReport;
use crate::error::NodeError;
use crate::nurses::Nurse;
use crate::staff::StaffMember;
use crate::sync::LinkOutcome;
use ncf_shared::accounts::SignIn;

const LIST: (&str, &str) = ("/staff/nurses", "看護職の一覧へ戻る");
const SIGN_IN: (&str, &str) = ("/staff/sign-in", "職員ログインへ");
const PAGE_SIZE: i64 = 50;
/// Largest bulk upload accepted (10,000 rows fit comfortably).
pub(super) const MAX_UPLOAD_BYTES: usize = 4 * 1024 * 1024;

pub(super) fn routes(routes: &mut Routes) {
    routes
        .get("/staff", Access::Public, || async { see_other("/staff/nurses") })
        .get("/staff/sign-in", Access::Public, sign_in_form)
        .post("/staff/sign-in", Access::Public, sign_in_submit)
        .post("/staff/sign-out", Access::Staff, sign_out)
        .get("/staff/nurses", Access::Staff, list)
        .get("/staff/nurses/{id}", Access::Staff, detail)
        .post("/staff/nurses/{id}/consents", Access::Staff, paper_consent)
        .post("/staff/nurses/{id}/proofing", Access::Staff, counter_proofing)
        .post("/staff/nurses/{id}/bounce/clear", Access::Staff, clear_bounce)
        .get("/staff/nurses/{id}/notices/{kind}", Access::Staff, notice_form)
        .post("/staff/nurses/{id}/notices/{kind}", Access::Staff, notice_submit)
        .get("/staff/bulk", Access::Staff, bulk_form)
        .post("/staff/bulk", Access::Staff, bulk_submit)
        .get("/staff/bulk/template.csv", Access::Staff, bulk_template)
        .get("/staff/lookup", Access::Staff, lookup_form)
        .post("/staff/lookup", Access::Staff, lookup_submit);
}

#[derive(Template)]
#[template(path = "staff_sign_in.html")]
struct SignInPage {
    center: crate::web::Center,
    csrf: String,
    username: String,
    error: String,
}

async fn sign_in_form(state: web::Data<WebState>, req: HttpRequest) -> HttpResponse {
    let (csrf, new) = csrf_cookie_token(&req);
    let page = SignInPage {
        center: state.center(),
        csrf: csrf.clone(),
        username: String::new(),
        error: String::new(),
    };
    with_csrf_cookie(&state, html(StatusCode::OK, &page), csrf, new)
}

/// Signs a staff member in: the throttle for this (username, client) pair and the attempt's
/// record first, then the password, checked off the database connection with bounded
/// concurrency, then the session.
async fn sign_in_submit(
    state: web::Data<WebState>,
    req: HttpRequest,
    form: web::Form<ncf_shared::accounts::SignInForm>,
) -> HttpResponse {
    let form = form.into_inner();
    if !csrf_cookie_matches(&req, &form.csrf) {
        return expired_form(&state, SIGN_IN);
    }
    let client = state.client_address(&req);
    let mut page =
        SignInPage { center: state.center(), csrf: form.csrf, username: form.username, error: String::new() };
    let outcome = ncf_shared::accounts::sign_in(
        &state.pool,
        &state.password_checks,
        page.username.clone(),
        form.password,
        client,
    )
    .await;
    match outcome {
        Ok(SignIn::Started { token, .. }) => {
            let mut response = see_other("/staff/nurses");
            let _ = response.add_cookie(&state.session_cookie(SessionKind::Staff, token));
            response
        }
        Ok(refused) => {
            let Some(refusal) = refused.refusal() else {
                return unavailable(&state, &NodeError::Unavailable("no refusal".into()), SIGN_IN);
            };
            page.error = refusal.message;
            let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::UNAUTHORIZED);
            match refusal.retry_after_secs {
                Some(seconds) => with_retry_after(html(status, &page), seconds),
                None => html(status, &page),
            }
        }
        Err(cause) => unavailable(&state, &NodeError::Unavailable(cause), SIGN_IN),
    }
}

pub(super) const DOOR: Door<StaffMember> = Door {
    kind: SessionKind::Staff,
    sign_in: "/staff/sign-in",
    back: LIST,
    load: |conn, id| crate::staff::get_active(conn, id),
};

async fn sign_out(state: web::Data<WebState>, req: HttpRequest, form: web::Form<CsrfOnly>) -> HttpResponse {
    state.sign_out(&req, &DOOR, &form.csrf).await
}

struct NurseRow {
    id: String,
    name: String,
    kana: String,
    qualification: &'static str,
    registration_number: String,
    proofed: &'static str,
    registered: String,
    /// As her licence prints it: 1966年11月14日（昭和41年）.
    birth: String,
}

fn row(n: &Nurse) -> NurseRow {
    NurseRow {
        id: n.id.clone(),
        name: format!("{} {}", n.family_name, n.given_name),
        kana: format!("{} {}", n.family_name_kana, n.given_name_kana),
        qualification: ncf_shared::Qualification::from_code(&n.qualification).map_or("", |q| q.name_ja()),
        registration_number: n.registration_number.clone(),
        proofed: if n.proofed() { "済み" } else { "未確認" },
        registered: jst(n.created_at),
        birth: ncf_shared::wareki::format_with_wareki(n.birth_date),
    }
}

#[derive(Template)]
#[template(path = "staff_nurses.html")]
struct ListPage {
    center: crate::web::Center,
    staff_name: String,
    csrf: String,
    q: String,
    proofing: String,
    consent: String,
    unsent: bool,
    sort: String,
    scopes: Vec<(&'static str, &'static str)>,
    /// The filters as a query string, for page links (`&amp;`-joined by the template).
    filter_query: String,
    /// Page links: (page number, is current); 0 stands for a gap (…).
    page_links: Vec<(i64, bool)>,
    rows: Vec<NurseRow>,
    total: i64,
    page: i64,
    pages: i64,
    /// Outbox events waiting for the national server, and events it refused for good.
    waiting: i64,
    parked: i64,
    /// Events pulled from the national server that could not be applied, and that wait for a
    /// newer version of this software.
    received_failed: i64,
    received_waiting: i64,
    /// What staff should know about from the last 7 days: (when, what).
    alerts: Vec<(String, String)>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ListQuery {
    q: String,
    page: Option<i64>,
    /// `proofed`, `not_proofed` or empty.
    proofing: String,
    /// A consent scope's code, or empty.
    consent: String,
    /// `1`: only nurses with events not yet taken by the national server.
    unsent: String,
    /// `kana` (default), `newest` or `oldest`.
    sort: String,
}

impl ListQuery {
    fn filter(&self) -> crate::nurses::SearchFilter {
        use crate::nurses::{ProofingFilter, SortOrder};
        crate::nurses::SearchFilter {
            query: self.q.clone(),
            proofing: match self.proofing.as_str() {
                "proofed" => ProofingFilter::Proofed,
                "not_proofed" => ProofingFilter::NotProofed,
                _ => ProofingFilter::Any,
            },
            consent: ncf_shared::ConsentScope::parse(&self.consent),
            unsent: self.unsent == "1",
            sort: match self.sort.as_str() {
                "newest" => SortOrder::NewestFirst,
                "oldest" => SortOrder::OldestFirst,
                _ => SortOrder::Kana,
            },
        }
    }

    /// The filters (not the page) as a query string.
    fn without_page(&self) -> String {
        let mut pairs = url_pairs(&[
            ("q", &self.q),
            ("proofing", &self.proofing),
            ("consent", &self.consent),
            ("unsent", &self.unsent),
            ("sort", &self.sort),
        ]);
        if pairs.is_empty() {
            pairs.push_str("q=");
        }
        pairs
    }
}

fn url_pairs(pairs: &[(&str, &String)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Page numbers to link: the first, the last, and two either side of the current one.
fn page_links(page: i64, pages: i64) -> Vec<(i64, bool)> {
    let mut links = Vec::new();
    for n in 1..=pages {
        if n == 1 || n == pages || (n - page).abs() <= 2 {
            links.push((n, n == page));
        } else if links.last().is_some_and(|(last, _)| *last != 0) {
            links.push((0, false));
        }
    }
    links
}

async fn list(
    me: super::guard::SignedIn<StaffMember>,
    state: web::Data<WebState>,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    let (session, member) = me.into_parts();
    let query = query.into_inner();
    // Far beyond any real list; keeps the offset arithmetic from overflowing.
    let page = query.page.unwrap_or(1).clamp(1, 1_000_000);
    let filter = query.filter();
    let found = state
        .db(move |conn| {
            let found = crate::nurses::search(conn, &filter, PAGE_SIZE, (page - 1) * PAGE_SIZE)?;
            let alerts = crate::staff::recent_alerts(conn)?;
            Ok((found, crate::outbox::backlog(conn)?, crate::sync::unapplied_counts(conn)?, alerts))
        })
        .await;
    match found {
        Ok(((nurses, total), (waiting, parked), (received_failed, received_waiting), alerts)) => html(
            StatusCode::OK,
            &ListPage {
                center: state.center(),
                staff_name: member.display_name,
                csrf: session.csrf,
                filter_query: query.without_page(),
                page_links: page_links(page, ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1)),
                q: query.q,
                proofing: query.proofing,
                consent: query.consent,
                unsent: query.unsent == "1",
                sort: query.sort,
                scopes: ncf_shared::ConsentScope::ALL
                    .into_iter()
                    .map(|s| (s.as_str(), s.title_ja()))
                    .collect(),
                rows: nurses.iter().map(row).collect(),
                total,
                page,
                pages: ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1),
                waiting,
                parked,
                received_failed,
                received_waiting,
                alerts: alerts.into_iter().map(|(_, detail, at)| (jst(at), detail)).collect(),
            },
        ),
        Err(e) => unavailable(&state, &e, LIST),
    }
}

struct EventView {
    seq: i64,
    kind: &'static str,
    created_at: String,
    status: String,
}

#[derive(Template)]
#[template(path = "staff_nurse.html")]
struct DetailPage {
    center: crate::web::Center,
    staff_name: String,
    csrf: String,
    nurse: NurseRow,
    email: String,
    phone: String,
    distance: i32,
    employed: &'static str,
    consents: Vec<ConsentView>,
    notices: Vec<NoticeView>,
    events: Vec<EventView>,
    /// Events from the national server about her that were not applied.
    received: Vec<EventView>,
    kinds: Vec<(&'static str, &'static str)>,
    flash: String,
    error: String,
    /// How she proved who she is, e.g. 「窓口での確認（運転免許証、2026年…）」; empty until then.
    proofed: String,
    documents: [&'static str; 5],
    /// What the national server holds about her (latent, home center, residence, 転出, reminders).
    national: crate::life_events::StatusView,
    /// 毎週, 毎日 or 停止.
    cadence: &'static str,
    /// Her address refused a digest for good: when and why (empty when it does not bounce).
    bouncing: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DetailQuery {
    done: String,
    receipt: String,
}

async fn detail(
    me: super::guard::SignedIn<StaffMember>,
    state: web::Data<WebState>,
    id: web::Path<String>,
    query: web::Query<DetailQuery>,
) -> HttpResponse {
    let (session, member) = me.into_parts();
    let flash = match query.done.as_str() {
        "consent" => "書面による同意の変更を記録しました。",
        "consent_unchanged" => "すでに同じ内容で記録されているため、同意の記録は変わっていません。",
        "notice" => "書面の届出を登録しました。",
        "proofed" => "窓口での本人確認を記録しました。同意の範囲で情報の連携を始めます。",
        "bounce_cleared" => "メールの送信を再開しました。次のお知らせから届けます。",
        _ => "",
    };
    let flash = match crate::receipts::parse(&query.receipt) {
        Some(number) if !flash.is_empty() => {
            format!("{flash}受付番号は {} です。", crate::receipts::display(&number))
        }
        _ => flash.to_string(),
    };
    detail_page(&state, session, member, id.into_inner(), flash, String::new()).await
}

async fn detail_page(
    state: &WebState,
    session: Session,
    member: StaffMember,
    id: String,
    flash: String,
    error: String,
) -> HttpResponse {
    let here = state.prefecture;
    let loaded = state
        .db(move |conn| {
            let Some(nurse) = crate::nurses::get(conn, &id)? else {
                return Ok(None);
            };
            let consents = crate::consent::history(conn, &id)?;
            let notices = crate::notices::for_nurse(conn, &id)?;
            let shared = super::nurse::shared_notice_ids(conn, &id)?;
            let events = crate::outbox::for_nurse(conn, &id)?;
            let cursor = crate::sync::cursor(conn)?;
            let received = crate::sync::unapplied(conn, Some(&id))?;
            let national = crate::life_events::view(conn, &id, here)?;
            let digest = crate::digests::settings(conn, &id)?;
            Ok(Some((nurse, consents, notices, shared, events, cursor, received, national, digest)))
        })
        .await;
    let (nurse, consents, notices, shared, events, cursor, received, national, digest) = match loaded {
        Ok(Some(found)) => found,
        Ok(None) => {
            return PageError::NotFound("この看護職は登録されていません。".into()).page(state, LIST);
        }
        Err(e) => return unavailable(state, &e, LIST),
    };
    let events = events
        .into_iter()
        .map(|e| EventView {
            seq: e.seq,
            kind: match e.kind.as_str() {
                "consent_changed" => "同意の変更",
                "notice_filed" => "届出",
                "contact_changed" => "連絡先",
                "identity_proofed" => "本人確認",
                "transfer_contact" => "転居先への引継ぎ（連絡先）",
                "transfer_confirmed" => "引継ぎの完了",
                _ => "その他",
            },
            created_at: jst(e.created_at),
            status: match (&e.parked_reason, e.seq <= cursor) {
                (Some(reason), _) => format!("保留（国の共通サーバーが受け付けませんでした: {reason}）"),
                (None, true) => "送信済み".to_string(),
                (None, false) => "送信待ち".to_string(),
            },
        })
        .collect();
    let received = received
        .into_iter()
        .map(|e| EventView {
            seq: e.seq,
            kind: match e.kind.as_str() {
                "withdrawal_applied" => "同意取消による削除の確認",
                "status_changed" => "就業支援の対象・ご案内するセンター",
                "moved_out" => "転出",
                "moved_in" => "転入（引継ぎ）",
                "erase" => "連絡先の削除",
                "reminder_due" => "届出のお願い",
                "transfer_cancelled" => "引継ぎの取りやめ",
                _ => "このバージョンでは扱えない通知",
            },
            created_at: jst(e.received_at),
            status: match e.state.as_str() {
                "awaiting_upgrade" => "未適用（新しいバージョンへの更新後に適用されます）".to_string(),
                _ => format!("適用できませんでした: {}", e.reason.unwrap_or_default()),
            },
        })
        .collect();
    html(
        if error.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY },
        &DetailPage {
            center: state.center(),
            staff_name: member.display_name,
            csrf: session.csrf,
            employed: match crate::notices::employed(&notices) {
                Some(true) => "就業中",
                Some(false) => "就業していない",
                None => "届出なし",
            },
            nurse: row(&nurse),
            email: nurse.email,
            phone: nurse.phone.unwrap_or_default(),
            distance: nurse.max_distance_km,
            cadence: digest.cadence.label_ja(),
            bouncing: match (digest.bouncing_since, &digest.bounce_reason) {
                (Some(at), reason) => format!("{}（{}）", jst(at), reason.as_deref().unwrap_or("")),
                (None, _) => String::new(),
            },
            consents: consent_views(&consents),
            notices: notice_views(&notices, &shared),
            events,
            received,
            kinds: NoticeKind::ALL.into_iter().map(|k| (k.as_str(), k.title_ja())).collect(),
            flash,
            error,
            national,
            proofed: match (&nurse.proofing_method, nurse.proofed_at) {
                (Some(method), Some(at)) => format!(
                    "{}（{}{}）",
                    ncf_shared::contract::ProofingMethod::parse(method)
                        .map_or("確認済み", |m| m.title_ja()),
                    nurse.proofing_document.as_deref().map(|d| format!("{d}、")).unwrap_or_default(),
                    jst(at)
                ),
                _ => String::new(),
            },
            documents: crate::proofing::COUNTER_DOCUMENTS,
        },
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PaperConsentForm {
    #[serde(flatten)]
    consent: ConsentForm,
    /// The staff member confirms the signed paper form is in hand.
    paper_received: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CounterForm {
    csrf: String,
    document: String,
    licence_checked: Option<String>,
}

/// Staff resume mail to an address marked bouncing (she says it works again, or it was a
/// passing refusal by her provider).
async fn clear_bounce(
    me: super::guard::SignedIn<StaffMember>,
    state: web::Data<WebState>,
    id: web::Path<String>,
    form: web::Form<CsrfOnly>,
) -> HttpResponse {
    if let Err(response) = me.checked(&state, DOOR.back, &form.csrf) {
        return response;
    }
    let id = id.into_inner();
    let nurse_id = id.clone();
    match state.db(move |conn| Ok(crate::digests::clear_bounce(conn, &nurse_id)?)).await {
        Ok(0) => PageError::NotFound("この看護職は登録されていません。".into()).page(&state, DOOR.back),
        Ok(_) => see_other(&format!("/staff/nurses/{id}?done=bounce_cleared")),
        Err(e) => unavailable(&state, &e, DOOR.back),
    }
}

/// Staff who checked her licence certificate and a photo ID in person mark her proofed.
async fn counter_proofing(
    me: super::guard::SignedIn<StaffMember>,
    state: web::Data<WebState>,
    id: web::Path<String>,
    form: web::Form<CounterForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let (session, member) = match me.checked(&state, DOOR.back, &form.csrf) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let id = id.into_inner();
    let proof = match crate::proofing::Proof::at_counter(&member.id, &form.document) {
        Ok(proof) if form.licence_checked.is_some() => proof,
        _ => {
            let error = "看護職免許証の原本を確認したことにチェックを入れ、確認した写真付きの本人確認書類を選んでください。"
                .to_string();
            return detail_page(&state, session, member, id, String::new(), error).await;
        }
    };
    let nurse_id = id.clone();
    let done = state.db(move |conn| crate::proofing::complete(conn, &nurse_id, &proof)).await;
    match done {
        Ok(completed) => {
            super::tell_removed_registrations(&state, &completed.removed_addresses).await;
            see_other(&format!("/staff/nurses/{id}?done=proofed"))
        }
        Err(crate::error::NodeError::Conflict(text)) => {
            detail_page(&state, session, member, id, String::new(), text.to_string()).await
        }
        Err(crate::error::NodeError::NotFound(_)) => {
            PageError::NotFound("この看護職は登録されていません。".into()).page(&state, LIST)
        }
        Err(e) => unavailable(&state, &e, LIST),
    }
}

async fn paper_consent(
    me: super::guard::SignedIn<StaffMember>,
    state: web::Data<WebState>,
    id: web::Path<String>,
    form: web::Form<PaperConsentForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let (session, member) = match me.checked(&state, DOOR.back, &form.consent.csrf) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let id = id.into_inner();
    let decision = form.consent.decision();
    let (Some(decision), Some(_)) = (decision, form.paper_received) else {
        let error =
            "同意書（書面）を受け取ったことを確認するチェックを入れてから記録してください。".to_string();
        return detail_page(&state, session, member, id, String::new(), error).await;
    };
    let (nurse_id, staff_id) = (id.clone(), member.id.clone());
    let saved = state
        .db(move |conn| {
            let written =
                crate::consent::record(conn, &nurse_id, &[decision], Channel::Paper, Some(&staff_id))?;
            Ok(written.into_iter().find_map(|r| r.receipt).unwrap_or_default())
        })
        .await;
    match saved {
        Ok(receipt) if receipt.is_empty() => see_other(&format!("/staff/nurses/{id}?done=consent_unchanged")),
        Ok(receipt) => see_other(&format!("/staff/nurses/{id}?done=consent&receipt={receipt}")),
        Err(crate::error::NodeError::NotFound(_)) => {
            PageError::NotFound("この看護職は登録されていません。".into()).page(&state, LIST)
        }
        Err(e) => unavailable(&state, &e, LIST),
    }
}

fn staff_notice_page(
    state: &WebState,
    nurse: &Nurse,
    kind: NoticeKind,
    form: NoticeForm,
    errors: super::forms::Errors,
    note: String,
) -> NoticePage {
    NoticePage::new(
        state.center(),
        state.prefecture,
        kind,
        format!("{} {} さんの書面の届出を入力します。", nurse.family_name, nurse.given_name),
        format!("/staff/nurses/{}/notices/{}", nurse.id, kind.as_str()),
        format!("/staff/nurses/{}", nurse.id),
        form,
        errors,
        note,
    )
}

/// The nurse and the notice kind a paper-entry URL names, or a 404 page.
async fn nurse_and_kind(
    state: &WebState,
    id: String,
    kind: &str,
) -> Result<(Nurse, NoticeKind), HttpResponse> {
    let not_found = |text: &str| PageError::NotFound(text.to_string()).page(state, LIST);
    let Some(kind) = NoticeKind::parse(kind) else {
        return Err(not_found("届出の種類が正しくありません。"));
    };
    match state.db(move |conn| Ok(crate::nurses::get(conn, &id)?)).await {
        Ok(Some(nurse)) => Ok((nurse, kind)),
        Ok(None) => Err(not_found("この看護職は登録されていません。")),
        Err(e) => Err(unavailable(state, &e, LIST)),
    }
}

async fn notice_form(
    me: super::guard::SignedIn<StaffMember>,
    state: web::Data<WebState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (session, _) = me.into_parts();
    let (id, kind) = path.into_inner();
    let (nurse, kind) = match nurse_and_kind(&state, id, &kind).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let nurse_id = nurse.id.clone();
    let consents = match state.db(move |conn| Ok(crate::consent::current(conn, &nurse_id)?)).await {
        Ok(c) => c,
        Err(e) => return unavailable(&state, &e, LIST),
    };
    // 受付日 starts as today (Japan time); staff change it to the date stamped on the form.
    let today = ncf_shared::time::today_jst();
    let form = NoticeForm {
        csrf: session.csrf,
        received_on: ncf_shared::time::date_ja(today),
        ..NoticeForm::default()
    };
    let note = notice_note(kind, &consents);
    html(StatusCode::OK, &staff_notice_page(&state, &nurse, kind, form, Default::default(), note))
}

async fn notice_submit(
    me: super::guard::SignedIn<StaffMember>,
    state: web::Data<WebState>,
    path: web::Path<(String, String)>,
    form: web::Form<NoticeForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let (_, member) = match me.checked(&state, DOOR.back, &form.csrf) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (id, kind) = path.into_inner();
    let (nurse, kind) = match nurse_and_kind(&state, id, &kind).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match super::nurse::file_notice(&state, &nurse.id, kind, &form, Channel::Paper, Some(member.id)).await {
        Ok(NoticeOutcome::Filed { receipt }) => {
            see_other(&format!("/staff/nurses/{}?done=notice&receipt={receipt}", nurse.id))
        }
        Ok(NoticeOutcome::Edit(note)) => {
            html(StatusCode::OK, &staff_notice_page(&state, &nurse, kind, form, Default::default(), note))
        }
        Ok(NoticeOutcome::Confirm(body, note, received_on)) => {
            let form = NoticeForm {
                submission: super::forms::new_submission(),
                received_on: received_on.map(ncf_shared::time::date_ja).unwrap_or(form.received_on),
                ..form
            };
            html(
                StatusCode::OK,
                &staff_notice_page(&state, &nurse, kind, form, Default::default(), note).confirming(&body),
            )
        }
        Ok(NoticeOutcome::Invalid(errors, note)) => html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &staff_notice_page(&state, &nurse, kind, form, errors, note),
        ),
        Err(e) => unavailable(&state, &e, LIST),
    }
}

#[derive(Template)]
#[template(path = "staff_bulk.html")]
struct BulkPage {
    center: crate::web::Center,
    staff_name: String,
    csrf: String,
    columns: String,
    columns_ja: String,
    error: String,
    accept_valid: bool,
    report: Option<BulkReport>,
}

async fn bulk_form(me: super::guard::SignedIn<StaffMember>, state: web::Data<WebState>) -> HttpResponse {
    let (session, member) = me.into_parts();
    html(StatusCode::OK, &bulk_page(&state, session, member, String::new(), false, None))
}

fn bulk_page(
    state: &WebState,
    session: Session,
    member: StaffMember,
    error: String,
    accept_valid: bool,
    report: Option<BulkReport>,
) -> BulkPage {
    BulkPage {
        center: state.center(),
        staff_name: member.display_name,
        csrf: session.csrf,
        columns: crate::bulk::SHEET.columns.join(","),
        columns_ja: crate::bulk::SHEET.columns_ja.join(","),
        error,
        accept_valid,
        report,
    }
}

/// The parts of the upload form.
#[derive(Default)]
pub(super) struct Upload {
    pub csrf: String,
    pub accept_valid: bool,
    pub file: Vec<u8>,
    pub file_name: String,
    pub too_large: bool,
}

impl Upload {
    /// Why the file cannot be taken at all (Japanese), before a row is read.
    pub fn refusal(&self) -> Option<String> {
        if self.too_large {
            Some(format!(
                "ファイルが大きすぎます（{} MB まで）。ファイルを分けてください。",
                MAX_UPLOAD_BYTES / 1024 / 1024
            ))
        } else if self.file.is_empty() {
            Some("CSVファイルを選んでください。".into())
        } else {
            None
        }
    }
}

pub(super) async fn read_upload(mut payload: Multipart) -> Result<Upload, String> {
    let mut upload = Upload::default();
    while let Some(field) = payload.next().await {
        let mut field = field.map_err(|e| e.to_string())?;
        let name = field.name().unwrap_or_default().to_string();
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            if bytes.len() + chunk.len() > MAX_UPLOAD_BYTES {
                upload.too_large = true;
                return Ok(upload);
            }
            bytes.extend_from_slice(&chunk);
        }
        match name.as_str() {
            "csrf" => upload.csrf = String::from_utf8_lossy(&bytes).into_owned(),
            "accept_valid" => upload.accept_valid = true,
            "file" => {
                upload.file_name = field
                    .content_disposition()
                    .and_then(|d| d.get_filename().map(str::to_string))
                    .unwrap_or_default();
                upload.file = bytes;
            }
            _ => {}
        }
    }
    Ok(upload)
}

/// The CSV template with Japanese headings, for employers to fill in.
async fn bulk_template(_staff: super::guard::SignedIn<StaffMember>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("content-disposition", "attachment; filename=\"separations-template.csv\""))
        .insert_header(("cache-control", "no-store"))
        .body(crate::bulk::template_csv())
}

async fn bulk_submit(
    me: super::guard::SignedIn<StaffMember>,
    state: web::Data<WebState>,
    payload: Multipart,
) -> HttpResponse {
    csv_upload(
        me,
        &state,
        payload,
        ("/staff/bulk", "一括登録へ戻る"),
        "bulk separation upload",
        |conn, upload, staff_id| {
            crate::bulk::upload_separations(
                conn,
                &upload.file,
                upload.accept_valid,
                &staff_id,
                &upload.file_name,
            )
        },
        // 「正しい行だけ登録する」 is a choice for one file: never carried to the next upload.
        |state, session, member, error, report| bulk_page(state, session, member, error, false, report),
    )
    .await
}

/// The POST of a staff CSV upload page (employers' separations, postings): who is asking is
/// checked before a byte of the (up to 4 MiB) body is read, the form token (inside the body) once
/// it is read; then the upload, and its page with a result per row — 422 when bad rows stopped
/// it, or naming what is wrong with the file itself.
pub(super) async fn csv_upload<R, T>(
    me: super::guard::SignedIn<StaffMember>,
    state: &WebState,
    payload: Multipart,
    back: (&'static str, &'static str),
    what: &'static str,
    upload: impl FnOnce(&mut ncf_shared::db::DbConn, Upload, String) -> Result<R, crate::error::NodeError>
    + Send
    + 'static,
    page: impl Fn(&WebState, Session, StaffMember, String, Option<R>) -> T,
) -> HttpResponse
where
    R: crate::uploads::Report + Send + 'static,
    T: Template,
{
    let (session, member) = me.into_parts();
    let received = match read_upload(payload).await {
        Ok(received) => received,
        Err(e) => {
            tracing::warn!(error = %e, what, "unreadable upload");
            return PageError::BadRequest {
                heading: "アップロードを読み取れませんでした",
                text: "ファイルを選び直して、もう一度送信してください。".into(),
            }
            .page(state, back);
        }
    };
    if !super::tokens_equal(&session.csrf, &received.csrf) {
        return expired_form(state, back);
    }
    let fail = |session, member, text: String| {
        html(StatusCode::UNPROCESSABLE_ENTITY, &page(state, session, member, text, None))
    };
    if let Some(refusal) = received.refusal() {
        return fail(session, member, refusal);
    }
    let staff_id = member.id.clone();
    match state.db(move |conn| Ok(upload(conn, received, staff_id))).await {
        Ok(Ok(report)) => {
            let (rows, saved, rejected) = report.counts();
            tracing::info!(staff = %member.username, rows, saved, rejected, what);
            let status = if report.stopped() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
            html(status, &page(state, session, member, String::new(), Some(report)))
        }
        Ok(Err(crate::error::NodeError::Invalid(fields))) => {
            fail(session, member, fields.into_iter().map(|f| f.message).collect::<Vec<_>>().join(" "))
        }
        Ok(Err(e)) | Err(e) => unavailable(state, &e, back),
    }
}

#[derive(Template)]
#[template(path = "staff_lookup.html")]
struct LookupPage {
    center: crate::web::Center,
    staff_name: String,
    csrf: String,
    form: LookupForm,
    /// Field errors: none here (the answer says what differs), but the shared fields show them.
    errors: super::forms::Errors,
    qualifications: Vec<(&'static str, &'static str)>,
    /// The answer, in words for staff (empty before a lookup).
    result: String,
    matched: bool,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
struct LookupForm {
    csrf: String,
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

fn lookup_page(
    state: &WebState,
    session: Session,
    member: StaffMember,
    form: LookupForm,
    result: String,
    matched: bool,
) -> LookupPage {
    LookupPage {
        center: state.center(),
        staff_name: member.display_name,
        csrf: session.csrf,
        form,
        errors: super::forms::Errors::new(),
        qualifications: super::forms::nursing_qualifications(),
        result,
        matched,
    }
}

/// For the counter: with her licence certificate in hand, staff see which details differ from the
/// registry (the public pages never do). Each lookup is recorded at the national server with the
/// staff id, and counts toward the licence's 5 failures a day like any other.
async fn lookup_form(me: super::guard::SignedIn<StaffMember>, state: web::Data<WebState>) -> HttpResponse {
    let (session, member) = me.into_parts();
    html(StatusCode::OK, &lookup_page(&state, session, member, LookupForm::default(), String::new(), false))
}

fn claim_ja(field: &str) -> &'static str {
    match field {
        "qualification" => "資格",
        "registration_number" => "籍登録番号（この資格にこの番号の登録がありません）",
        "family_name" => "姓",
        "given_name" => "名",
        "family_name_kana" => "セイ",
        "given_name_kana" => "メイ",
        "birth_date" => "生年月日",
        _ => "その他",
    }
}

async fn lookup_submit(
    me: super::guard::SignedIn<StaffMember>,
    state: web::Data<WebState>,
    form: web::Form<LookupForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let (session, member) = match me.checked(&state, DOOR.back, &form.csrf) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let kana = |t: &str| ncf_shared::normalize::kana(t);
    let registration_number = ncf_shared::normalize::digits(&form.registration_number);
    let birth_date = super::forms::birth_date(
        &form.birth_date,
        &form.birth_era,
        &form.birth_year,
        &form.birth_month,
        &form.birth_day,
    );
    let (Some(qualification), Ok(registration_number), Ok(birth_date)) = (
        ncf_shared::Qualification::from_code(&form.qualification).filter(|q| q.is_nursing()),
        ncf_shared::RegistrationNumber::parse(&registration_number),
        birth_date,
    ) else {
        let text = "資格、籍登録番号（8桁以内の数字）、生年月日（例: 昭和41年11月14日）を確認してください。"
            .to_string();
        return html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &lookup_page(&state, session, member, form, text, false),
        );
    };
    let claims = ncf_shared::federation::IdentityLinkRequest {
        qualification: qualification.code().to_string(),
        registration_number: registration_number.canonical(),
        family_name: form.family_name.trim().to_string(),
        given_name: form.given_name.trim().to_string(),
        family_name_kana: kana(&form.family_name_kana),
        given_name_kana: kana(&form.given_name_kana),
        birth_date: birth_date.to_string(),
        staff_lookup: Some(member.id.clone()),
    };
    let (result, matched) = match state.syncer.link_identity(&claims).await {
        Ok(LinkOutcome::Linked(_)) => ("資格管理簿の登録内容と一致しました。".to_string(), true),
        Ok(LinkOutcome::Mismatch(fields)) => (
            format!(
                "一致しない項目: {}。免許証の記載と照らして確認してください。",
                fields.iter().map(|f| claim_ja(f)).collect::<Vec<_>>().join("、")
            ),
            false,
        ),
        Ok(LinkOutcome::NotActive) => ("登録内容は一致しましたが、この免許は現在有効ではありません（失効・取消・死亡など）。".to_string(), false),
        Ok(LinkOutcome::AttemptsExhausted) => (
            "この免許は24時間に5回照合できなかったため、国の共通サーバーが照合を止めています。時間をおいてから照合してください。".to_string(),
            false,
        ),
        Ok(LinkOutcome::NoMatch) | Ok(LinkOutcome::Invalid(_)) => ("資格管理簿と照合できませんでした。".to_string(), false),
        Err(e) => {
            tracing::error!(error = %e, "staff lookup failed");
            ("国の共通サーバーに接続できませんでした。しばらくしてからもう一度お試しください。".to_string(), false)
        }
    };
    html(StatusCode::OK, &lookup_page(&state, session, member, form, result, matched))
}
