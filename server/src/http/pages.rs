//! National staff's pages (Japanese, server-rendered, no JavaScript): sign-in, the figures with
//! the map, the trend line and the table, and each table as CSV. Counts only: every number comes
//! from `figures::table`, which suppresses small cells, so no page or file can show one.
//!
//! Signing in is the nodes' implementation (`ncf_shared::accounts`): argon2id, sessions whose
//! token only the browser holds, a CSRF token in every form (double-submit cookie before sign-in,
//! the session's own after), and throttling per (username, client) pair so that a stranger
//! cannot lock staff out.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use askama::Template;
use ncf_shared::accounts::{self, Session, SignIn, StaffMember};
use std::sync::Arc;

use ncf_shared::figures::{
    Choice, ChoiceQuery, FigureTable, FiguresPage, FiguresView, MapView, unreadable_query,
};
use serde::Deserialize;

use super::AppState;
use super::compressed::{self, Deflated, Part};

const STAFF_COOKIE: &str = "ncf_national_staff";
const CSRF_COOKIE: &str = "ncf_csrf";
const SIGN_IN: &str = "/staff/sign-in";
/// The content security policy of every answer: the pages use no inline script or style and are
/// never framed. (The federation's JSON answers carry it too; it costs them nothing.)
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// What the pages need beside the database.
pub struct Pages {
    pub password_checks: accounts::PasswordChecks,
    /// Over https: cookies are Secure and carry the `__Host-` prefix.
    pub secure_cookies: bool,
    pub map: crate::map::JapanMap,
    /// Figures views read lately (the national pages and the nodes' requests share it).
    pub figures: crate::figures::ViewCache,
    /// The figures pages as rendered lately, by choice, without the staff menu.
    pub rendered: ncf_shared::cache::TtlCache<crate::figures::ViewKey, RenderedFigures>,
    /// Staff sessions read lately (see [`accounts::SessionMemory`]).
    pub sessions: accounts::SessionMemory,
}

impl Pages {
    /// `session_recheck`: how long a session read from the database is trusted before it is read
    /// again (so how soon a running server refuses an account disabled from the command line).
    pub fn new(secure_cookies: bool, session_recheck: std::time::Duration) -> Self {
        Self {
            password_checks: accounts::PasswordChecks::default(),
            secure_cookies,
            map: crate::map::JapanMap::bundled(),
            figures: crate::figures::ViewCache::default(),
            rendered: ncf_shared::cache::TtlCache::new(crate::figures::VIEW_TTL, crate::figures::MAX_PAGES),
            sessions: accounts::SessionMemory::new(session_recheck),
        }
    }

    fn cookie_name(&self, name: &str) -> String {
        if self.secure_cookies { format!("__Host-{name}") } else { name.to_string() }
    }

    fn cookie(&self, name: &str, value: String) -> Cookie<'static> {
        Cookie::build(self.cookie_name(name), value)
            .path("/")
            .http_only(true)
            .secure(self.secure_cookies)
            .same_site(SameSite::Strict)
            .finish()
    }

    fn read_cookie(&self, req: &HttpRequest, name: &str) -> Option<String> {
        req.cookie(&self.cookie_name(name)).map(|c| c.value().to_string()).filter(|v| !v.is_empty())
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").get(|| async { see_other("/figures") }))
        .service(web::resource("/assets/site.css").get(stylesheet))
        .service(web::resource(SIGN_IN).get(sign_in_form).post(sign_in_submit))
        .service(web::resource("/staff/sign-out").post(sign_out))
        .service(web::resource("/figures").get(figures_page))
        .service(web::resource("/figures.csv").get(figures_csv))
        .service(web::resource("/operations").get(operations_page));
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("cache-control", "public, max-age=3600"))
        .body(ncf_shared::pages::STYLESHEET)
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header(("location", location)).finish()
}

pub(crate) fn html(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header(("cache-control", "no-store"))
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "page rendering failed");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("表示できませんでした。")
        }
    }
}

#[derive(Template)]
#[template(path = "national_message.html")]
struct MessagePage<'a> {
    heading: &'a str,
    text: String,
    back: (&'a str, &'a str),
    staff: Option<(String, String)>,
}

/// A page's refusal: the status and a Japanese message naming the problem, with a way back.
fn message(status: StatusCode, heading: &str, text: String) -> HttpResponse {
    html(status, &MessagePage { heading, text, back: ("/figures", "全国の数値へ"), staff: None })
}

fn unavailable(cause: &str) -> HttpResponse {
    tracing::error!(error = %cause, "page failed");
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "ただいま表示できません",
        "しばらくしてからもう一度お試しください。".into(),
    )
}

/// Runs database work off the async threads.
async fn db<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&mut ncf_shared::db::DbConn) -> diesel::QueryResult<T> + Send + 'static,
) -> Result<T, String> {
    let pool = state.pool.clone();
    web::block(move || {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        f(&mut conn).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// A signed-in national staff member: extracting it answers for the handler when there is none
/// (to the sign-in page), before anything else of the request is read.
pub struct NationalStaff(Arc<(Session, StaffMember)>);

impl NationalStaff {
    pub fn session(&self) -> &Session {
        &self.0.0
    }

    pub fn member(&self) -> &StaffMember {
        &self.0.1
    }

    /// The staff menu's name and sign-out token, as the page templates take them.
    fn menu(&self) -> Option<(String, String)> {
        Some((self.member().display_name.clone(), self.session().csrf.clone()))
    }
}

pub struct GoSignIn(HttpResponse);

impl std::fmt::Debug for GoSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not signed in")
    }
}

impl std::fmt::Display for GoSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not signed in")
    }
}

impl actix_web::ResponseError for GoSignIn {
    fn status_code(&self) -> StatusCode {
        self.0.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.0.status());
        for (name, value) in self.0.headers() {
            response.insert_header((name.clone(), value.clone()));
        }
        response.finish()
    }
}

impl FromRequest for NationalStaff {
    type Error = GoSignIn;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, GoSignIn>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| GoSignIn(unavailable("no state")))?;
            let Some(token) = state.pages.read_cookie(&req, STAFF_COOKIE) else {
                return Err(GoSignIn(see_other(SIGN_IN)));
            };
            if let Some(found) = state.pages.sessions.recall(&token) {
                return Ok(Self(found));
            }
            let shared = state.clone();
            let found = db(&state, move |conn| {
                let read = accounts::SessionMemory::read(conn, &token)?;
                Ok(shared.pages.sessions.remember(&token, read))
            })
            .await;
            match found {
                Ok(Some(found)) => Ok(Self(found)),
                Ok(None) => Err(GoSignIn(see_other(SIGN_IN))),
                Err(e) => Err(GoSignIn(unavailable(&e))),
            }
        })
    }
}

#[derive(Template)]
#[template(path = "national_sign_in.html")]
struct SignInPage {
    csrf: String,
    username: String,
    error: String,
    staff: Option<(String, String)>,
}

async fn sign_in_form(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let existing = state.pages.read_cookie(&req, CSRF_COOKIE);
    let csrf = existing.clone().unwrap_or_else(|| ncf_shared::secret::random_token(24));
    let page = SignInPage { csrf: csrf.clone(), username: String::new(), error: String::new(), staff: None };
    let mut response = html(StatusCode::OK, &page);
    if existing.is_none() {
        let _ = response.add_cookie(&state.pages.cookie(CSRF_COOKIE, csrf));
    }
    response
}

fn expired_form() -> HttpResponse {
    message(
        StatusCode::FORBIDDEN,
        "もう一度お試しください",
        "ページの有効期限が切れたか、別の画面から送信されました。ページを開き直して、もう一度操作してください。".into(),
    )
}

async fn sign_in_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<ncf_shared::accounts::SignInForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let cookie = state.pages.read_cookie(&req, CSRF_COOKIE);
    if !cookie.is_some_and(|c| accounts::tokens_equal(&c, &form.csrf)) {
        return expired_form();
    }
    // The national server is reached directly (no proxy in front of it): the TCP peer is the client.
    let client = req.peer_addr().map_or_else(|| "unknown".to_string(), |a| a.ip().to_string());
    let mut page = SignInPage { csrf: form.csrf, username: form.username, error: String::new(), staff: None };
    let outcome = accounts::sign_in(
        &state.pool,
        &state.pages.password_checks,
        page.username.clone(),
        form.password,
        client,
    )
    .await;
    let retry_after = |mut response: HttpResponse, seconds: i64| {
        if let Ok(value) = seconds.max(1).to_string().parse() {
            response.headers_mut().insert(actix_web::http::header::RETRY_AFTER, value);
        }
        response
    };
    match outcome {
        Ok(SignIn::Started { token, .. }) => {
            let mut response = see_other("/figures");
            let _ = response.add_cookie(&state.pages.cookie(STAFF_COOKIE, token));
            response
        }
        Ok(refused) => {
            let Some(refusal) = refused.refusal() else {
                return unavailable("sign-in outcome without a refusal");
            };
            page.error = refusal.message;
            let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::UNAUTHORIZED);
            match refusal.retry_after_secs {
                Some(seconds) => retry_after(html(status, &page), seconds),
                None => html(status, &page),
            }
        }
        Err(cause) => unavailable(&cause),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CsrfOnly {
    csrf: String,
}

async fn sign_out(
    me: NationalStaff,
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<CsrfOnly>,
) -> HttpResponse {
    if !accounts::tokens_equal(&me.session().csrf, &form.csrf) {
        return expired_form();
    }
    if let Some(token) = state.pages.read_cookie(&req, STAFF_COOKIE) {
        state.pages.sessions.forget(&token);
        let shared = state.clone();
        let ended = db(&state, move |conn| {
            accounts::end_session(conn, &token)?;
            shared.pages.sessions.forget(&token);
            Ok(())
        })
        .await;
        if let Err(e) = ended {
            return unavailable(&e);
        }
    }
    let mut response = see_other(SIGN_IN);
    let mut gone = state.pages.cookie(STAFF_COOKIE, String::new());
    gone.make_removal();
    let _ = response.add_cookie(&gone);
    response
}

#[allow(clippy::result_large_err)] // the refusal is the answer itself, built once per request
fn choose(req: &HttpRequest) -> Result<Choice, HttpResponse> {
    web::Query::<ChoiceQuery>::from_query(req.query_string())
        .map_err(|e| unreadable_query(&e))
        .and_then(|q| q.check())
        .map_err(|text| message(StatusCode::BAD_REQUEST, "指定が正しくありません", text))
}

/// The figures of a choice, read off the async threads.
#[allow(clippy::result_large_err)]
async fn load(state: &web::Data<AppState>, choice: &Choice) -> Result<Arc<FiguresView>, HttpResponse> {
    let (figure, month, prefecture) = (choice.figure, choice.month, choice.prefecture);
    let shared = state.clone();
    db(state, move |conn| shared.pages.figures.view(conn, figure, month, prefecture))
        .await
        .map_err(|e| unavailable(&e))
}

/// The figures part of the page (`figures_body.html`).
#[derive(Template)]
#[template(path = "figures_body.html")]
struct FiguresBody {
    parts: FiguresPage,
    map: Option<MapView>,
}

/// A figures page as every staff member sees it, but for the staff menu, which goes between the
/// two parts: rendered and compressed once per choice, and kept as long as the view it shows
/// ([`crate::figures::VIEW_TTL`]).
pub struct RenderedFigures {
    before_menu: Deflated,
    after_menu: Deflated,
}

#[derive(Template)]
#[template(path = "national_figures.html")]
struct NationalFiguresPage {
    title: String,
    body: String,
    staff: Option<(String, String)>,
}

/// The staff menu (`national_staff_menu.html`, also part of every other national page).
#[derive(Template)]
#[template(path = "national_staff_menu.html")]
struct StaffMenu<'a> {
    name: &'a str,
    csrf: &'a str,
}

/// Where the staff menu goes: the end of the site header, the first `</header>` of the page.
const MENU_AT: &str = "</header>";

fn render_figures(
    pages: &Pages,
    conn: &mut ncf_shared::db::DbConn,
    key: crate::figures::ViewKey,
) -> Result<RenderedFigures, String> {
    let view = pages.figures.view(conn, key.0, key.1, key.2).map_err(|e| e.to_string())?;
    let map = view
        .table
        .prefecture
        .is_none()
        .then(|| MapView::new(&view.table, &pages.map.shapes, pages.map.width, &pages.map.inset_frame));
    let parts = FiguresPage::new((*view).clone(), "/figures", true);
    let title = parts.title.clone();
    let body = FiguresBody { parts, map }.render().map_err(|e| format!("figures rendering: {e}"))?;
    let mut page = NationalFiguresPage { title, body, staff: None }
        .render()
        .map_err(|e| format!("figures page rendering: {e}"))?;
    let at = page.find(MENU_AT).ok_or("the page has no site header")?;
    let after_menu = page.split_off(at);
    Ok(RenderedFigures { before_menu: Deflated::new(page)?, after_menu: Deflated::new(after_menu)? })
}

async fn figures_page(me: NationalStaff, state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let choice = match choose(&req) {
        Ok(c) => c,
        Err(response) => return response,
    };
    let key = (choice.figure, choice.month, choice.prefecture);
    let rendered = match state.pages.rendered.get(&key) {
        Some(rendered) => rendered,
        None => {
            // Rendering is no database work, but a missed cache needs both: one trip off the
            // async threads.
            let shared = state.clone();
            let made = db(&state, move |conn| {
                let pages = &shared.pages;
                Ok(pages.rendered.get_or_try(key, || render_figures(pages, conn, key)))
            })
            .await;
            match made {
                Ok(Ok(r)) => r,
                Ok(Err(e)) | Err(e) => return unavailable(&e),
            }
        }
    };
    let menu = match (StaffMenu { name: &me.member().display_name, csrf: &me.session().csrf }).render() {
        Ok(menu) => menu,
        Err(e) => return unavailable(&format!("staff menu rendering: {e}")),
    };
    compressed::page(
        &req,
        StatusCode::OK,
        &[Part::Kept(&rendered.before_menu), Part::Fresh(&menu), Part::Kept(&rendered.after_menu)],
    )
}

/// The table shown, as CSV: UTF-8 with a BOM (so Excel opens it in Japanese), the same
/// suppression as the page.
async fn figures_csv(_me: NationalStaff, state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let choice = match choose(&req) {
        Ok(c) => c,
        Err(response) => return response,
    };
    let loaded = match load(&state, &choice).await {
        Ok(l) => l,
        Err(response) => return response,
    };
    csv_response(&loaded.table)
}

/// A table as a CSV download.
pub fn csv_response(table: &FigureTable) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("content-disposition", format!("attachment; filename=\"{}\"", table.file_name())))
        .insert_header(("cache-control", "no-store"))
        .body(table.csv())
}

/// One node's row of the operations view, as people read it.
struct NodeRow {
    name: &'static str,
    code: String,
    keys: String,
    last_contact: String,
    last_push: String,
    last_pull: String,
    waiting: String,
    held: i64,
    rejected: i64,
    /// Something to look at: no contact for an hour, events waiting over an hour, or failures.
    attention: bool,
}

struct ImportRow {
    kind: &'static str,
    file_name: String,
    file_sha256: String,
    started: String,
    finished: String,
    counts: String,
}

#[derive(Template)]
#[template(path = "national_operations.html")]
struct OperationsPage {
    staff: Option<(String, String)>,
    nodes: Vec<NodeRow>,
    imports: Vec<ImportRow>,
    chain: Option<(String, String, bool)>,
}

/// Every node's sync state, the imports and the provision chain's last check. No personal data.
async fn operations_page(me: NationalStaff, state: web::Data<AppState>) -> HttpResponse {
    let overview = match db(&state, crate::operations::overview).await {
        Ok(o) => o,
        Err(e) => return unavailable(&e),
    };
    let now = ncf_shared::time::now_utc();
    let when = |t: Option<chrono::NaiveDateTime>| {
        t.map_or("まだありません".to_string(), ncf_shared::time::datetime_ja)
    };
    let hour_ago = |t: Option<chrono::NaiveDateTime>| t.is_none_or(|t| now - t > chrono::Duration::hours(1));
    let nodes = overview
        .nodes
        .into_iter()
        .map(|n| NodeRow {
            name: n.prefecture.name_ja(),
            code: n.prefecture.code(),
            keys: n
                .keys
                .iter()
                .map(|(id, revoked)| if *revoked { format!("{id}（失効）") } else { id.clone() })
                .collect::<Vec<_>>()
                .join("、"),
            last_contact: when(n.last_contact_at),
            last_push: when(n.last_push_at),
            last_pull: when(n.last_pull_at),
            waiting: match n.oldest_waiting_at {
                Some(oldest) if n.waiting > 0 => {
                    format!("{}件（最も古いもの {}）", n.waiting, ncf_shared::time::datetime_ja(oldest))
                }
                _ => "0件".to_string(),
            },
            attention: hour_ago(n.last_contact_at)
                || (n.waiting > 0 && hour_ago(n.oldest_waiting_at))
                || n.held > 0
                || n.rejected > 0,
            held: n.held,
            rejected: n.rejected,
        })
        .collect();
    let imports = overview
        .imports
        .into_iter()
        .map(|i| ImportRow {
            kind: match i.kind.as_str() {
                "registry" => "看護職員籍",
                "residents" => "住民票の異動",
                _ => "その他",
            },
            file_name: ncf_shared::mask_my_numbers(&i.file_name).into_owned(),
            file_sha256: i.file_sha256,
            started: ncf_shared::time::datetime_ja(i.started_at),
            finished: i.finished_at.map_or("未完了".to_string(), ncf_shared::time::datetime_ja),
            counts: format!(
                "{}行（新規 {}、変更 {}、変更なし {}、不備 {}）{}",
                i.rows_total,
                i.rows_inserted,
                i.rows_updated,
                i.rows_unchanged,
                i.rows_rejected,
                if i.mode == "accept_valid" { "・正しい行のみ取込み" } else { "" }
            ),
        })
        .collect();
    let chain = overview.chain.map(|c| {
        let verdict = match (c.broken_seq, c.reason) {
            (Some(seq), Some(reason)) => format!("記録番号 {seq} で改ざんまたは破損を検出: {reason}"),
            (Some(seq), None) => format!("記録番号 {seq} で改ざんまたは破損を検出"),
            _ => format!("{}件すべて正常", c.entries),
        };
        (ncf_shared::time::datetime_ja(c.verified_at), verdict, c.broken_seq.is_none())
    });
    let page = OperationsPage { staff: me.menu(), nodes, imports, chain };
    html(StatusCode::OK, &page)
}
