//! The node's web side: the nurse's pages (Japanese, server-rendered, no JavaScript needed,
//! phone-sized), the staff pages (Japanese), and the staff API for scripts (JSON, bearer tokens).
//!
//! Every form carries a CSRF token: before sign-in it is bound to the `ncf_csrf` cookie
//! (double submit); after sign-in it is the session's own token.

pub mod api;
pub mod digests;
pub mod figures;
pub mod forms;
pub mod guard;
pub mod nurse;
pub mod opt_in;
pub mod postings;
pub mod routes;
pub mod staff;
pub mod training;
pub mod transfer;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use ncf_shared::Prefecture;
use ncf_shared::db::{DbConn, Pool};

use crate::auth::{self, PasswordChecks, Session, SessionKind};
use crate::error::NodeError;
use crate::proxy::TrustedProxies;
use crate::sync::Syncer;
use routes::{Access, Routes};

const CSRF_COOKIE: &str = "ncf_csrf";
pub const STAFF_COOKIE: &str = "ncf_staff";
pub const NURSE_COOKIE: &str = "ncf_nurse";
/// Over https every cookie carries this prefix: the browser then accepts it only with Secure,
/// Path=/ and no Domain, so a sibling host or a plain-http page cannot plant or shadow it.
const HOST_PREFIX: &str = "__Host-";

/// The headers every answer of the node carries. The pages use no inline script or style
/// (`/assets/site.css`), are never framed, and leak no URL (sign-in links hold tokens) to other
/// sites.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

pub fn security_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add(("content-security-policy", CONTENT_SECURITY_POLICY))
        .add(("x-frame-options", "DENY"))
        .add(("referrer-policy", "no-referrer"))
        .add(("x-content-type-options", "nosniff"))
}

pub struct WebState {
    pub pool: Pool,
    pub syncer: Syncer,
    pub prefecture: Prefecture,
    /// How people reach the center other than through these pages (every footer shows it).
    pub contact: CenterContact,
    /// The outgoing-mail sender, woken when a request queued a mail.
    pub mail: crate::mail::Sender,
    /// The address nurses reach this node at (for links in e-mails), without a trailing slash.
    pub public_url: String,
    /// Proxies whose `X-Forwarded-For` names the client (`--trusted-proxy`).
    pub trusted_proxies: TrustedProxies,
    pub password_checks: PasswordChecks,
    /// Checks the one-click unsubscribe links of digests.
    pub unsubscribe: crate::digests::UnsubscribeKey,
}

/// The center's telephone, hours and address, as the operator configured them.
#[derive(Debug, Clone, Default)]
pub struct CenterContact {
    pub phone: String,
    pub hours: String,
    pub address: String,
}

/// What every page shows of the center: its name (what `{{ center }}` prints) and, in the
/// footer, how to reach it.
#[derive(Debug, Clone)]
pub struct Center {
    pub name: String,
    pub contact: CenterContact,
}

impl std::fmt::Display for Center {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl WebState {
    pub fn center(&self) -> Center {
        Center {
            name: format!("{}ナースセンター", self.prefecture.name_ja()), contact: self.contact.clone()
        }
    }

    /// Cookies are marked Secure when the node is reached over TLS.
    fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// Runs database work off the async threads.
    pub async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConn) -> Result<T, NodeError> + Send + 'static,
    ) -> Result<T, NodeError> {
        let pool = self.pool.clone();
        web::block(move || {
            let mut conn = pool.get().map_err(|e| NodeError::Unavailable(e.to_string()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| NodeError::Unavailable(e.to_string()))?
    }

    /// A cookie's name as sent: with the `__Host-` prefix over https.
    pub fn cookie_name(&self, name: &'static str) -> std::borrow::Cow<'static, str> {
        if self.secure_cookies() { format!("{HOST_PREFIX}{name}").into() } else { name.into() }
    }

    fn cookie(
        &self,
        name: &'static str,
        value: String,
        path: &'static str,
        same_site: SameSite,
    ) -> Cookie<'static> {
        // A `__Host-` cookie must have Path=/.
        let path = if self.secure_cookies() { "/" } else { path };
        Cookie::build(self.cookie_name(name), value)
            .path(path)
            .http_only(true)
            .secure(self.secure_cookies())
            .same_site(same_site)
            .finish()
    }

    fn session_cookie(&self, kind: SessionKind, token: String) -> Cookie<'static> {
        match kind {
            // Staff pages are only ever reached from themselves (Path=/ over https, see `cookie`).
            SessionKind::Staff => self.cookie(cookie_name(kind), token, "/staff", SameSite::Strict),
            // A nurse follows links from e-mails to her page; forms are guarded by CSRF tokens.
            SessionKind::Nurse => self.cookie(cookie_name(kind), token, "/", SameSite::Lax),
        }
    }

    fn expired_cookie(&self, kind: SessionKind) -> Cookie<'static> {
        let mut cookie = self.session_cookie(kind, String::new());
        cookie.make_removal();
        cookie
    }

    /// A cookie's value as the browser sent it.
    pub(crate) fn read_cookie(&self, req: &HttpRequest, name: &'static str) -> Option<String> {
        req.cookie(&self.cookie_name(name)).map(|c| c.value().to_string())
    }

    /// Who is calling, for the sign-in throttles and the sign-in record: the TCP peer, or the
    /// client named by `X-Forwarded-For` when the peer is a trusted proxy.
    pub(crate) fn client_address(&self, req: &HttpRequest) -> String {
        let Some(peer) = req.peer_addr().map(|a| a.ip()) else { return "unknown".to_string() };
        let forwarded: Vec<&str> =
            req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok()).collect();
        let forwarded = (!forwarded.is_empty()).then(|| forwarded.join(","));
        self.trusted_proxies.client(peer, forwarded.as_deref()).to_string()
    }
}

fn cookie_name(kind: SessionKind) -> &'static str {
    match kind {
        SessionKind::Staff => STAFF_COOKIE,
        SessionKind::Nurse => NURSE_COOKIE,
    }
}

/// What differs between the nurse's and the staff's signing in: the session kind, the sign-in
/// page, and how the signed-in person is loaded (`None` once the account is gone or disabled).
pub(crate) struct Door<T> {
    pub kind: SessionKind,
    pub sign_in: &'static str,
    pub back: (&'static str, &'static str),
    pub load: fn(&mut DbConn, &str) -> diesel::QueryResult<Option<T>>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct CsrfOnly {
    pub csrf: String,
}

impl WebState {
    /// The session and its person, or the answer to give instead (go and sign in).
    pub(crate) async fn signed_in<T: Send + 'static>(
        &self,
        req: &HttpRequest,
        door: &Door<T>,
    ) -> Result<(Session, T), HttpResponse> {
        let Some(token) = self.read_cookie(req, cookie_name(door.kind)) else {
            return Err(see_other(door.sign_in));
        };
        let (kind, load) = (door.kind, door.load);
        // The session and its person in one trip to the database.
        let found = self
            .db(move |conn| {
                let Some(session) = auth::session(conn, kind, &token)? else {
                    return Ok(None);
                };
                Ok(load(conn, &session.subject_id)?.map(|person| (session, person)))
            })
            .await;
        match found {
            Ok(Some(found)) => Ok(found),
            Ok(None) => Err(see_other(door.sign_in)),
            Err(e) => Err(unavailable(self, &e, door.back)),
        }
    }

    /// A signed-in form: the session and its person, once the form's token matches the session's.
    pub(crate) async fn signed_in_form<T: Send + 'static>(
        &self,
        req: &HttpRequest,
        door: &Door<T>,
        csrf: &str,
    ) -> Result<(Session, T), HttpResponse> {
        let (session, person) = self.signed_in(req, door).await?;
        if !tokens_equal(&session.csrf, csrf) {
            return Err(expired_form(self, door.back));
        }
        Ok((session, person))
    }

    /// Ends the session. Signing out is a form like any other: a forged one changes nothing.
    pub(crate) async fn sign_out<T: Send + 'static>(
        &self,
        req: &HttpRequest,
        door: &Door<T>,
        csrf: &str,
    ) -> HttpResponse {
        if let Err(response) = self.signed_in_form(req, door, csrf).await {
            return response;
        }
        if let Some(token) = self.read_cookie(req, cookie_name(door.kind))
            && let Err(e) = self.db(move |conn| Ok(auth::end_session(conn, &token)?)).await
        {
            return unavailable(self, &e, door.back);
        }
        let mut response = see_other(door.sign_in);
        let _ = response.add_cookie(&self.expired_cookie(door.kind));
        response
    }
}

/// Every route of the node with who may use it (see `routes`).
pub(crate) fn routes() -> Routes {
    let mut routes = Routes::default();
    routes
        .get("/", Access::Public, || async { see_other("/opt-in") })
        .get("/healthz", Access::Public, healthz)
        .get("/assets/site.css", Access::Public, stylesheet)
        .get("/privacy", Access::Public, privacy)
        .get("/accessibility", Access::Public, accessibility)
        .get("/help", Access::Public, help);
    opt_in::routes(&mut routes);
    transfer::routes(&mut routes);
    nurse::routes(&mut routes);
    staff::routes(&mut routes);
    postings::routes(&mut routes);
    training::routes(&mut routes);
    digests::routes(&mut routes);
    figures::routes(&mut routes);
    api::routes(&mut routes);
    routes
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    routes().register(cfg);
    cfg.default_service(web::to(not_found));
}

/// The pages' one stylesheet: a file, not an inline `<style>`, so the content security policy
/// can forbid inline styles.
async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("cache-control", "public, max-age=3600"))
        .body(ncf_shared::pages::STYLESHEET)
}

/// Liveness and database reachability: the national server's check, `{"status":"ok","database":…}`
/// after a real `SELECT 1`, or 503 with the reason.
async fn healthz(state: web::Data<WebState>) -> HttpResponse {
    let pool = state.pool.clone();
    match web::block(move || ncf_shared::db::health(&pool)).await {
        Ok(Ok(health)) => HttpResponse::Ok().json(health),
        Ok(Err(unreachable)) => HttpResponse::ServiceUnavailable().json(unreachable),
        Err(e) => {
            tracing::error!(error = %e, "health check did not run");
            HttpResponse::InternalServerError().json(ncf_shared::federation::ErrorBody {
                error: ncf_shared::contract::ErrorCode::Internal,
                message: "the health check did not run".into(),
                mismatched: Vec::new(),
            })
        }
    }
}

#[derive(Template)]
#[template(path = "info.html")]
struct InfoPage {
    center: Center,
    heading: &'static str,
    sections: Vec<(&'static str, Vec<String>)>,
}

/// How this center handles her data: what it keeps, what leaves it and under which consent.
async fn privacy(state: web::Data<WebState>) -> HttpResponse {
    let center = state.center();
    let sections = vec![
        ("このセンターが預かる情報", vec![
            "看護職免許の情報（資格・籍登録番号・氏名・生年月日）、メールアドレス、電話番号、届出の内容、同意の記録を、このセンターで保管します。".to_string(),
            "マイナンバーは受け取りません。".to_string(),
        ]),
        ("国のデータベースへの提供", vec![
            "本人確認が済み、あなたが同意した範囲でのみ、国（厚生労働省）のデータベースに届出や同意の記録を送ります。メールアドレスは国のデータベースには保管されません。".to_string(),
            "提供した記録は、マイページの「あなたの情報の提供記録」でいつでも確認できます。".to_string(),
        ]),
        ("同意の取消と削除", vec![
            "同意はマイページからいつでも取り消せます。取り消すと、国のデータベースはその同意にもとづいて受け取った情報を削除します。".to_string(),
        ]),
        ("開示・訂正のご請求", vec![format!("ご自身の情報の開示・訂正・利用停止は、{}の窓口でお受けします。", center.name)]),
    ];
    html(StatusCode::OK, &InfoPage { center, heading: "個人情報の取り扱い", sections })
}

async fn accessibility(state: web::Data<WebState>) -> HttpResponse {
    let sections = vec![
        ("方針", vec![
            "このサイトは、JIS X 8341-3:2016 の適合レベルAAに準拠することを目標に、デジタル庁デザインシステムの考え方にならって作っています。".to_string(),
            "文字の大きさは16px以上、入力欄は指で押しやすい大きさにし、キーボードだけでも操作できるようにしています。JavaScript を使わずに、すべての手続きができます。".to_string(),
        ]),
        ("お気づきの点", vec!["使いにくい点や読み上げの不具合がありましたら、センターまでお知らせください。".to_string()]),
    ];
    html(StatusCode::OK, &InfoPage { center: state.center(), heading: "アクセシビリティ方針", sections })
}

/// For a nurse who cannot sign in: lost access to her registered e-mail, no letter, and so on.
async fn help(state: web::Data<WebState>) -> HttpResponse {
    let center = state.center();
    let sections = vec![
        ("登録したメールアドレスが使えなくなった方", vec![
            format!("{}の窓口に、看護職免許証と写真付きの本人確認書類（運転免許証、マイナンバーカードなど）をお持ちください。職員が本人確認のうえ、新しいメールアドレスに変更します。", center.name),
            "お電話では、なりすましを防ぐため、メールアドレスの変更はお受けできません。".to_string(),
        ]),
        ("ログイン用のメールが届かない方", vec![
            format!("迷惑メールのフォルダをご確認ください。ログイン用のリンクの有効期限は{}分です。届かない場合は、時間をおいてもう一度お申し込みください。", crate::auth::LOGIN_LINK_MINUTES),
        ]),
        ("確認コードの郵便が届かない方", vec![
            "確認コードは住民票の住所にお送りします。発送から1週間ほどたっても届かない場合は、マイページからもう一度申し込むか、窓口で本人確認を受けてください。".to_string(),
        ]),
        ("受付番号について", vec![
            "届出や同意の変更のたびに、9桁の受付番号（例: 482-913-075）をお知らせします。お問い合わせの際にお伝えいただくと、すぐにお調べできます。".to_string(),
        ]),
    ];
    html(StatusCode::OK, &InfoPage { center, heading: "お困りのとき", sections })
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    center: crate::web::Center,
    heading: &'a str,
    text: String,
    back: (&'a str, &'a str),
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

/// What a page answers instead of its content: the one type for every refusal and failure of the
/// pages, each kind with its status and a Japanese heading, rendered as the message page with a
/// way back. (The staff API's counterpart is `api::ApiError`, JSON with an `error` kind.)
#[derive(Debug)]
pub(crate) enum PageError {
    /// 404: no such page or record. Another person's record answers the same.
    NotFound(String),
    /// 400: the request asks for nothing that can be done; the text says what to choose.
    BadRequest { heading: &'static str, text: String },
    /// 422: licence details that cannot be registered, whatever the reason (no field is named).
    NoMatch(String),
    /// 403: a stale or forged form; nothing changed.
    ExpiredForm,
    /// 410: a link used already or expired.
    LinkGone(String),
    /// 503: the database or the national server cannot be reached; nothing was saved. Logged.
    Unavailable { heading: &'static str, text: String, cause: String },
}

impl PageError {
    /// The usual 503: the cause is logged, the person told that nothing was saved.
    pub fn unavailable(cause: &NodeError) -> Self {
        Self::Unavailable {
            heading: "ただいま処理できません",
            text: "入力内容は保存されていません。しばらくしてからもう一度お試しください。".into(),
            cause: cause.to_string(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::NoMatch(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::ExpiredForm => StatusCode::FORBIDDEN,
            Self::LinkGone(_) => StatusCode::GONE,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The message page for this error, with a link back.
    pub fn page(&self, state: &WebState, back: (&str, &str)) -> HttpResponse {
        let (heading, text): (&str, String) = match self {
            Self::NotFound(text) => ("見つかりません", text.clone()),
            Self::BadRequest { heading, text } => (heading, text.clone()),
            Self::NoMatch(text) => ("登録内容と照合できませんでした", text.clone()),
            Self::ExpiredForm => (
                "もう一度お試しください",
                "ページの有効期限が切れたか、別の画面から送信されました。ページを開き直して、もう一度操作してください。"
                    .into(),
            ),
            Self::LinkGone(text) => ("このリンクは使えません", text.clone()),
            Self::Unavailable { heading, text, cause } => {
                tracing::error!(error = %cause, "request failed");
                (heading, text.clone())
            }
        };
        html(self.status(), &MessagePage { center: state.center(), heading, text, back })
    }
}

/// The answer when the database or the national server cannot be reached: nothing was saved.
pub(crate) fn unavailable(state: &WebState, error: &NodeError, back: (&str, &str)) -> HttpResponse {
    PageError::unavailable(error).page(state, back)
}

pub(crate) fn expired_form(state: &WebState, back: (&str, &str)) -> HttpResponse {
    PageError::ExpiredForm.page(state, back)
}

/// The pre-sign-in form token: the one in the cookie, or a new one to set.
pub(crate) fn csrf_cookie_token(req: &HttpRequest) -> (String, bool) {
    match csrf_cookie(req) {
        Some(c) if !c.is_empty() => (c, false),
        _ => (ncf_shared::secret::random_token(24), true),
    }
}

pub(crate) fn with_csrf_cookie(
    state: &WebState,
    mut response: HttpResponse,
    token: String,
    new: bool,
) -> HttpResponse {
    if new {
        let _ = response.add_cookie(&state.cookie(CSRF_COOKIE, token, "/", SameSite::Strict));
    }
    response
}

/// Whether a pre-sign-in form's token matches its cookie.
pub(crate) fn csrf_cookie_matches(req: &HttpRequest, submitted: &str) -> bool {
    csrf_cookie(req).is_some_and(|c| !c.is_empty() && tokens_equal(&c, submitted))
}

/// The pre-sign-in token cookie under the name this node gives it (`__Host-` over https).
fn csrf_cookie(req: &HttpRequest) -> Option<String> {
    match req.app_data::<web::Data<WebState>>() {
        Some(state) => state.read_cookie(req, CSRF_COOKIE),
        None => req.cookie(CSRF_COOKIE).map(|c| c.value().to_string()),
    }
}

pub(crate) use ncf_shared::accounts::tokens_equal;

/// Adds `Retry-After` (seconds) to a 429 or 503 answer.
pub(crate) fn with_retry_after(mut response: HttpResponse, seconds: i64) -> HttpResponse {
    if let Ok(value) = seconds.max(1).to_string().parse() {
        response.headers_mut().insert(actix_web::http::header::RETRY_AFTER, value);
    }
    response
}

pub(crate) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header(("location", location)).finish()
}

/// Japan time for people (times are stored in UTC).
pub(crate) fn jst(t: chrono::NaiveDateTime) -> String {
    ncf_shared::time::datetime_ja(t)
}

async fn not_found(state: web::Data<WebState>) -> HttpResponse {
    PageError::NotFound("お探しのページは見つかりませんでした。".into())
        .page(&state, ("/opt-in", "登録ページへ"))
}

/// Tells the addresses of registrations removed because another registration for the same licence
/// proved who she is (through the mail queue; the removal stands whether or not this is queued).
pub(crate) async fn tell_removed_registrations(state: &WebState, addresses: &[String]) {
    for address in addresses {
        let body = format!(
            "{}です。\n\nこのメールアドレスで申し込まれた看護職の登録は、同じ免許の方が本人確認を済ませたため、削除しました。\nこの登録に心当たりがない場合、対応は不要です。ご本人の場合は、センターにご相談ください。\n",
            state.center()
        );
        queue_mail(state, address.clone(), "【ナースセンター】登録を削除しました".to_string(), body).await;
    }
}

/// Queues a mail for the background sender (`mail::Sender`): the page a person sees must not
/// depend on whether (or how slowly) a mail goes out, or its timing would tell which addresses
/// are registered. A failure to queue is logged; the answer stays the same.
pub(crate) async fn queue_mail(state: &WebState, to: String, subject: String, body: String) {
    let queued = state.db(move |conn| Ok(crate::mail::enqueue(conn, &to, &subject, &body)?)).await;
    match queued {
        Ok(()) => state.mail.wake(),
        Err(e) => tracing::warn!(error = %e, "mail not queued"),
    }
}
