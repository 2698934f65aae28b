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
use ncf_shared::Prefecture;
use ncf_shared::accounts::{self, Session, SessionKind, SignIn, StaffMember};
use ncf_shared::figures::{Figure, FigureTable, Month, Place, Trend};
use ncf_shared::suppression::Cell;
use serde::Deserialize;

use super::AppState;

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
}

impl Pages {
    pub fn new(secure_cookies: bool) -> Self {
        Self {
            password_checks: accounts::PasswordChecks::default(),
            secure_cookies,
            map: crate::map::JapanMap::bundled(),
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
        .service(web::resource("/figures.csv").get(figures_csv));
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
pub struct NationalStaff {
    pub session: Session,
    pub member: StaffMember,
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
            let found = db(&state, move |conn| {
                let Some(session) = accounts::session(conn, SessionKind::Staff, &token)? else {
                    return Ok(None);
                };
                Ok(accounts::get_active(conn, &session.subject_id)?.map(|member| (session, member)))
            })
            .await;
            match found {
                Ok(Some((session, member))) => Ok(Self { session, member }),
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

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SignInForm {
    csrf: String,
    username: String,
    password: String,
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
    form: web::Form<SignInForm>,
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
    if !accounts::tokens_equal(&me.session.csrf, &form.csrf) {
        return expired_form();
    }
    if let Some(token) = state.pages.read_cookie(&req, STAFF_COOKIE)
        && let Err(e) = db(&state, move |conn| accounts::end_session(conn, &token)).await
    {
        return unavailable(&e);
    }
    let mut response = see_other(SIGN_IN);
    let mut gone = state.pages.cookie(STAFF_COOKIE, String::new());
    gone.make_removal();
    let _ = response.add_cookie(&gone);
    response
}

/// What the figures pages are asked for. Every field is checked and a bad one named.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FiguresQuery {
    figure: String,
    month: String,
    pref: String,
}

/// The checked choice: figure, month (`None`: the latest with figures), prefecture.
struct Choice {
    figure: Figure,
    month: Option<Month>,
    prefecture: Option<Prefecture>,
}

#[allow(clippy::result_large_err)] // the refusal is the answer itself, built once per request
fn choose(req: &HttpRequest) -> Result<Choice, HttpResponse> {
    let bad = |text: String| message(StatusCode::BAD_REQUEST, "指定が正しくありません", text);
    let query: FiguresQuery =
        web::Query::<FiguresQuery>::from_query(req.query_string()).map(web::Query::into_inner).map_err(
            |e| bad(format!("URLの指定を読み取れません（{e}）。使える項目は figure, month, pref です。")),
        )?;
    let figure = if query.figure.is_empty() {
        Figure::Latent
    } else {
        Figure::parse(&query.figure)
            .ok_or_else(|| bad(format!("そのような数値はありません: {}", query.figure)))?
    };
    let month = if query.month.is_empty() { None } else { Some(Month::parse(&query.month).map_err(bad)?) };
    let prefecture = if query.pref.is_empty() || query.pref == "00" {
        None
    } else {
        Some(Prefecture::from_code(&query.pref).ok_or_else(|| {
            bad(format!("都道府県コードは01〜47（全国は00）で指定してください: {}", query.pref))
        })?)
    };
    Ok(Choice { figure, month, prefecture })
}

/// The figures of a choice: the table, the trend, the months there are, the last refresh.
struct Loaded {
    table: FigureTable,
    trend: Trend,
    months: Vec<Month>,
    refreshed: Option<String>,
}

#[allow(clippy::result_large_err)]
async fn load(state: &AppState, choice: &Choice) -> Result<Loaded, HttpResponse> {
    let (figure, month, prefecture) = (choice.figure, choice.month, choice.prefecture);
    let loaded = db(state, move |conn| {
        let months = crate::figures::months(conn, figure)?;
        let month = month
            .or_else(|| months.last().copied())
            .unwrap_or_else(|| Month::of(ncf_shared::time::today_jst()));
        let table = crate::figures::table(conn, figure, month, prefecture)?;
        let trend = crate::figures::trend(conn, figure, prefecture)?;
        let refreshed = crate::figures::last_refresh(conn)?.map(|(at, _)| ncf_shared::time::datetime_ja(at));
        Ok(Loaded { table, trend, months, refreshed })
    })
    .await
    .map_err(|e| unavailable(&e))?;
    Ok(loaded)
}

/// One prefecture on the map: its shape, colour class and what its `<title>` says.
struct MapShape {
    code: String,
    path: String,
    class: &'static str,
    title: String,
    value: String,
}

struct LegendEntry {
    class: &'static str,
    label: String,
}

/// Five classes of equal width between the smallest and largest shown values; hidden values
/// (「10未満」) have their own hatched class.
fn classes(values: &[Option<u64>]) -> (Vec<&'static str>, Vec<LegendEntry>) {
    const CLASSES: [&str; 5] = ["c0", "c1", "c2", "c3", "c4"];
    let shown: Vec<u64> = values.iter().flatten().copied().collect();
    let (lo, hi) = (shown.iter().min().copied().unwrap_or(0), shown.iter().max().copied().unwrap_or(0));
    let step = ((hi - lo) as f64 / 5.0).max(1.0);
    let class_of = |v: u64| CLASSES[(((v - lo) as f64 / step) as usize).min(4)];
    let per_value = values.iter().map(|v| v.map_or("cs", class_of)).collect();
    let mut legend = Vec::new();
    if !shown.is_empty() {
        for (i, class) in CLASSES.iter().enumerate() {
            let from = lo + (step * i as f64).ceil() as u64;
            let to = if i == 4 { hi } else { lo + (step * (i + 1) as f64).ceil() as u64 - 1 };
            if from > to && i > 0 {
                continue;
            }
            legend.push(LegendEntry {
                class,
                label: format!("{}〜{}", Cell::Shown(from).label_ja(), Cell::Shown(to.max(from)).label_ja()),
            });
        }
    }
    legend.push(LegendEntry { class: "cs", label: Cell::Suppressed.label_ja() });
    (per_value, legend)
}

/// The trend line as SVG: a point per month, gaps where a month's value is hidden.
struct TrendChart {
    width: u32,
    height: u32,
    lines: Vec<String>,
    dots: Vec<(f64, f64, String)>,
    hidden: Vec<(f64, String)>,
    labels: Vec<(f64, String)>,
    max_label: String,
    axis_y: f64,
}

fn trend_chart(trend: &Trend, unit: &str) -> TrendChart {
    let (width, height, left, right, top, bottom) = (640u32, 260u32, 70.0, 20.0, 20.0, 40.0);
    let n = trend.points.len();
    let max = trend.points.iter().filter_map(|(_, c)| c.value()).max().unwrap_or(0).max(1);
    let x = |i: usize| {
        if n <= 1 {
            left + (f64::from(width) - left - right) / 2.0
        } else {
            left + i as f64 * (f64::from(width) - left - right) / (n - 1) as f64
        }
    };
    let y = |v: u64| top + (1.0 - v as f64 / max as f64) * (f64::from(height) - top - bottom);
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut dots = Vec::new();
    let mut hidden = Vec::new();
    for (i, (month, cell)) in trend.points.iter().enumerate() {
        match cell.value() {
            Some(v) => {
                current.push_str(&format!(
                    "{}{:.1} {:.1}",
                    if current.is_empty() { "M" } else { "L" },
                    x(i),
                    y(v)
                ));
                dots.push((x(i), y(v), format!("{}: {}{unit}", month.label_ja(), cell.label_ja())));
            }
            None => {
                if !current.is_empty() {
                    lines.push(std::mem::take(&mut current));
                }
                hidden.push((x(i), format!("{}: {}", month.label_ja(), cell.label_ja())));
            }
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    // Month labels: at most about eight, evenly spaced.
    let every = n.div_ceil(8).max(1);
    let labels = trend
        .points
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, (m, _))| (x(i), m.key()))
        .collect();
    TrendChart {
        width,
        height,
        lines,
        dots,
        hidden,
        labels,
        max_label: Cell::Shown(max).label_ja(),
        axis_y: f64::from(height) - bottom,
    }
}

#[derive(Template)]
#[template(path = "national_figures.html")]
struct FiguresPage {
    staff: Option<(String, String)>,
    figures: Vec<(&'static str, &'static str, bool)>,
    prefectures: Vec<(String, &'static str, bool)>,
    months: Vec<(String, String, bool)>,
    table: FigureTable,
    title: String,
    unit: &'static str,
    place_note: &'static str,
    map: Option<(f64, Vec<MapShape>, String, Vec<LegendEntry>)>,
    chart: TrendChart,
    csv_url: String,
    refreshed: Option<String>,
    back_at_work_share: Option<String>,
}

async fn figures_page(me: NationalStaff, state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let choice = match choose(&req) {
        Ok(c) => c,
        Err(response) => return response,
    };
    let loaded = match load(&state, &choice).await {
        Ok(l) => l,
        Err(response) => return response,
    };
    let Loaded { table, trend, mut months, refreshed } = loaded;
    if !months.contains(&table.month) {
        months.push(table.month);
    }
    let figure = choice.figure;
    let place = table.prefecture.map_or("全国".to_string(), |p| p.name_ja().to_string());
    let title = format!("{}（{}・{}）", figure.title_ja(), place, table.month.label_ja());
    let map = table.prefecture.is_none().then(|| {
        let values: Vec<Option<u64>> = table.rows.iter().map(|r| r.total.value()).collect();
        let (per_value, legend) = classes(&values);
        let shapes = state
            .pages
            .map
            .shapes
            .iter()
            .zip(table.rows.iter().zip(per_value))
            .map(|((_, path), (row, class))| MapShape {
                code: row.code.clone(),
                path: path.clone(),
                class,
                title: format!("{}: {}", row.name_ja, row.total.label_ja()),
                value: row.total.label_ja(),
            })
            .collect();
        (state.pages.map.width, shapes, state.pages.map.inset_frame.clone(), legend)
    });
    let query = |pref: Option<Prefecture>| {
        format!(
            "figure={}&month={}&pref={}",
            figure.key(),
            table.month.key(),
            pref.map_or("00".to_string(), |p| p.code())
        )
    };
    let back_at_work_share = (figure == Figure::BackAtWork).then(|| {
        "再就業の割合は、その月に求人・研修の紹介があった潜在看護職の数に対する割合です。どちらかが10未満の月は表示しません。"
            .to_string()
    });
    let page = FiguresPage {
        staff: Some((me.member.display_name.clone(), me.session.csrf.clone())),
        figures: Figure::ALL.iter().map(|f| (f.key(), f.title_ja(), *f == figure)).collect(),
        prefectures: std::iter::once(("00".to_string(), "全国", table.prefecture.is_none()))
            .chain(Prefecture::all().map(|p| (p.code(), p.name_ja(), table.prefecture == Some(p))))
            .collect(),
        months: months.iter().rev().map(|m| (m.key(), m.label_ja(), *m == table.month)).collect(),
        csv_url: format!("/figures.csv?{}", query(table.prefecture)),
        chart: trend_chart(&trend, figure.unit_ja()),
        title,
        unit: figure.unit_ja(),
        place_note: match (figure.place(), table.prefecture) {
            (Place::Residence, None) => "住民票の住所の都道府県で数えています。",
            (Place::Residence, Some(_)) => "住民票の住所の市区町村で数えています。",
            (Place::Node, _) => "ナースセンター（都道府県）ごとに数えています。市区町村別はありません。",
        },
        table,
        map,
        refreshed,
        back_at_work_share,
    };
    html(StatusCode::OK, &page)
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
    let table = &loaded.table;
    let body = csv_of(table);
    let name = format!(
        "figures-{}-{}-{}.csv",
        table.figure.key(),
        table.month.key(),
        table.prefecture.map_or("00".to_string(), |p| p.code())
    );
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("content-disposition", format!("attachment; filename=\"{name}\"")))
        .insert_header(("cache-control", "no-store"))
        .body(body)
}

/// A published table as CSV text (with the BOM): a title line, the headings, a row per area
/// and the totals.
pub fn csv_of(table: &FigureTable) -> Vec<u8> {
    let place = table.prefecture.map_or("全国".to_string(), |p| p.name_ja().to_string());
    let mut records: Vec<Vec<String>> = vec![vec![
        format!("{}（{}・{}）", table.figure.title_ja(), place, table.month.label_ja()),
        format!("単位: {}", table.figure.unit_ja()),
        "10未満の数と、そこから計算できてしまう数は「10未満」と表示しています。".to_string(),
    ]];
    let mut heading = vec!["コード".to_string(), "地域".to_string()];
    heading.extend(table.columns.iter().cloned());
    heading.push("計".into());
    records.push(heading);
    for row in &table.rows {
        let mut record = vec![row.code.clone(), row.name_ja.clone()];
        record.extend(row.cells.iter().map(|c| c.csv()));
        record.push(row.total.csv());
        records.push(record);
    }
    let mut totals = vec![String::new(), "計".to_string()];
    totals.extend(table.column_totals.iter().map(|c| c.csv()));
    totals.push(table.total.csv());
    records.push(totals);
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::from(*b"\xEF\xBB\xBF"));
    for record in &records {
        w.write_record(record).expect("writing CSV to memory");
    }
    w.into_inner().expect("writing CSV to memory")
}
