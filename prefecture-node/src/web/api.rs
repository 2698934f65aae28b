//! The staff API for scripts: `Authorization: Bearer ncf_…` (from `prefecture-node staff token`),
//! JSON answers, and a JSON error with a message for every refusal.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::WebState;
use super::guard::ApiCaller;
use super::routes::{Access, Routes};
use crate::Channel;
use crate::error::{FieldError, NodeError};
use crate::notices::NoticeBody;
use crate::nurses::Nurse;
use crate::staff::StaffMember;

const MAX_JSON_BYTES: usize = 64 * 1024;
const MAX_CSV_BYTES: usize = 4 * 1024 * 1024;

pub(super) fn routes(routes: &mut Routes) {
    let query_errors = web::QueryConfig::default().error_handler(|err, _| {
        let response = error(StatusCode::BAD_REQUEST, "invalid_query", format!("bad query parameter: {err}"));
        actix_web::error::InternalError::from_response(err, response).into()
    });
    routes
        .get("/api/v1/nurses", Access::Api, list)
        .data("/api/v1/nurses", query_errors)
        .get("/api/v1/nurses/{id}", Access::Api, detail)
        .post("/api/v1/nurses/{id}/notices", Access::Api, file_notice)
        .post("/api/v1/separations", Access::Api, separations)
        .get("/api/v1/postings", Access::Api, postings_list)
        .post("/api/v1/postings", Access::Api, posting_create)
        .get("/api/v1/postings/{posting}", Access::Api, posting_detail)
        .post("/api/v1/postings/{posting}", Access::Api, posting_update)
        .post("/api/v1/postings/{posting}/withdraw", Access::Api, posting_withdraw);
}

#[derive(Serialize)]
struct ApiError<'a> {
    error: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<FieldError>,
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(ApiError { error: code, message: message.into(), fields: Vec::new() })
}

fn node_error(e: NodeError) -> HttpResponse {
    match e {
        NodeError::Invalid(fields) => HttpResponse::UnprocessableEntity().json(ApiError {
            error: "invalid",
            message: fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; "),
            fields,
        }),
        NodeError::NotFound(what) => error(StatusCode::NOT_FOUND, "not_found", format!("no such {what}")),
        other => {
            tracing::error!(error = %other, "API request failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the node's database is unavailable; nothing was saved",
            )
        }
    }
}

/// The staff member behind the bearer token, or a 401.
pub(super) async fn caller(state: &WebState, req: &HttpRequest) -> Result<StaffMember, HttpResponse> {
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let Some(token) = token else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send Authorization: Bearer <API token>",
        ));
    };
    match state.db(move |conn| Ok(crate::auth::staff_for_api_token(conn, &token)?)).await {
        Ok(Some(member)) => Ok(member),
        Ok(None) => {
            tracing::warn!(client = %state.client_address(req), "API call with an unknown or revoked token");
            Err(error(StatusCode::UNAUTHORIZED, "unauthorized", "unknown or revoked API token"))
        }
        Err(e) => Err(node_error(e)),
    }
}

#[derive(Serialize)]
struct NurseJson {
    id: String,
    family_name: String,
    given_name: String,
    family_name_kana: String,
    given_name_kana: String,
    qualification: String,
    registration_number: String,
    email: String,
    phone: Option<String>,
    max_distance_km: i32,
    registered_at: chrono::DateTime<chrono::Utc>,
}

impl From<Nurse> for NurseJson {
    fn from(n: Nurse) -> Self {
        Self {
            id: n.id,
            family_name: n.family_name,
            given_name: n.given_name,
            family_name_kana: n.family_name_kana,
            given_name_kana: n.given_name_kana,
            qualification: n.qualification,
            registration_number: n.registration_number,
            email: n.email,
            phone: n.phone,
            max_distance_km: n.max_distance_km,
            registered_at: ncf_shared::time::to_utc(n.created_at),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ListQuery {
    q: String,
    page: Option<i64>,
}

const PAGE_SIZE: i64 = 100;

async fn list(state: web::Data<WebState>, _caller: ApiCaller, query: web::Query<ListQuery>) -> HttpResponse {
    let ListQuery { q, page } = query.into_inner();
    let page = page.unwrap_or(1).clamp(1, 1_000_000);
    match state
        .db(move |conn| {
            Ok(crate::nurses::search(
                conn,
                &crate::nurses::SearchFilter { query: q, ..Default::default() },
                PAGE_SIZE,
                (page - 1) * PAGE_SIZE,
            )?)
        })
        .await
    {
        Ok((nurses, total)) => HttpResponse::Ok().json(serde_json::json!({
            "total": total,
            "page": page,
            "nurses": nurses.into_iter().map(NurseJson::from).collect::<Vec<_>>(),
        })),
        Err(e) => node_error(e),
    }
}

async fn detail(state: web::Data<WebState>, _caller: ApiCaller, id: web::Path<String>) -> HttpResponse {
    let id = id.into_inner();
    let loaded = state
        .db(move |conn| {
            let nurse = crate::nurses::get(conn, &id)?.ok_or(NodeError::NotFound("nurse"))?;
            let consents = crate::consent::history(conn, &id)?;
            let notices = crate::notices::for_nurse(conn, &id)?;
            Ok((nurse, consents, notices))
        })
        .await;
    match loaded {
        Ok((nurse, consents, notices)) => HttpResponse::Ok().json(serde_json::json!({
            "nurse": NurseJson::from(nurse),
            "consents": consents.iter().map(|c| serde_json::json!({
                "scope": c.scope,
                "granted": c.granted,
                "version": c.version,
                "channel": c.channel,
                "recorded_at": ncf_shared::time::to_utc(c.recorded_at),
            })).collect::<Vec<_>>(),
            "notices": notices.iter().map(|n| serde_json::json!({
                "id": n.id,
                "notice": n.body(),
                "channel": n.channel,
                "filed_at": ncf_shared::time::to_utc(n.filed_at),
            })).collect::<Vec<_>>(),
        })),
        Err(e) => node_error(e),
    }
}

/// Reads a request body of at most `limit` bytes (after the caller was checked).
async fn read_body(
    mut payload: web::Payload,
    limit: usize,
    what: &str,
) -> Result<web::BytesMut, HttpResponse> {
    use futures_util::StreamExt;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            error(StatusCode::BAD_REQUEST, "invalid_body", format!("the body could not be read: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("{what} is larger than {} KiB; split it", limit / 1024),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A paper notice entered by a script on the nurse's behalf.
async fn file_notice(
    state: web::Data<WebState>,
    caller: ApiCaller,
    id: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    // The guard checked the caller before the body: a stranger learns nothing from how a body is judged.
    let member = caller.0;
    let bytes = match read_body(payload, MAX_JSON_BYTES, "the notice").await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    let body: NoticeBody = match serde_json::from_slice(&bytes) {
        Ok(body) => body,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, "invalid_body", format!("the body is not a notice: {e}"));
        }
    };
    let id = id.into_inner();
    let filed =
        state.db(move |conn| crate::notices::file(conn, &id, &body, Channel::Paper, Some(&member.id))).await;
    match filed {
        Ok(filed) => HttpResponse::Created().json(serde_json::json!({
            "notice_id": filed.notice.id,
            "receipt": filed.notice.receipt.as_deref().map(crate::receipts::display),
            "leaves_node": filed.outbox_seq.is_some(),
        })),
        Err(e) => node_error(e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SeparationsQuery {
    accept_valid: bool,
}

/// The employer bulk upload as a script sends it: the CSV as the body. The token is checked
/// before the body (up to 4 MiB) is read, so an unknown caller costs no upload.
async fn separations(
    state: web::Data<WebState>,
    caller: ApiCaller,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let member = caller.0;
    let query = match web::Query::<SeparationsQuery>::from_query(req.query_string()) {
        Ok(query) => query.into_inner(),
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, "invalid_query", format!("bad query parameter: {e}"));
        }
    };
    let body = match read_body(payload, MAX_CSV_BYTES, "the CSV").await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let accept_valid = query.accept_valid;
    let outcome = state
        .db(move |conn| crate::bulk::upload_separations(conn, &body, accept_valid, &member.id, "(API)"))
        .await;
    match outcome {
        Ok(report) if report.saved == 0 && report.rejected() > 0 => {
            HttpResponse::UnprocessableEntity().json(report)
        }
        Ok(report) => HttpResponse::Ok().json(report),
        Err(e) => node_error(e),
    }
}

/// A posting of this node as the API shows it.
#[derive(Serialize)]
struct PostingJson {
    id: String,
    version: i64,
    /// `open`, `not_yet_open`, `closed` or `withdrawn`, on today's date in Japan.
    state: &'static str,
    /// Whether the national server holds this version.
    synced: bool,
    /// Why the national server refused this version, if it did.
    refused_reason: Option<String>,
    withdrawn_at: Option<chrono::NaiveDateTime>,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
    body: ncf_shared::posting::PostingBody,
}

fn posting_json(p: crate::postings::Posting) -> PostingJson {
    let today = ncf_shared::time::today_jst();
    let state = if p.withdrawn_at.is_some() {
        "withdrawn"
    } else if today < p.body.valid_from {
        "not_yet_open"
    } else if today > p.body.valid_until {
        "closed"
    } else {
        "open"
    };
    PostingJson {
        id: p.id,
        version: p.version,
        state,
        synced: p.synced_version >= p.version,
        refused_reason: p.refused_reason,
        withdrawn_at: p.withdrawn_at,
        created_at: p.created_at,
        updated_at: p.updated_at,
        body: p.body,
    }
}

async fn postings_list(state: web::Data<WebState>, _caller: ApiCaller) -> HttpResponse {
    match state.db(|conn| Ok(crate::postings::list(conn)?)).await {
        Ok(list) => HttpResponse::Ok().json(list.into_iter().map(posting_json).collect::<Vec<_>>()),
        Err(e) => node_error(e),
    }
}

async fn posting_detail(
    state: web::Data<WebState>,
    _caller: ApiCaller,
    id: web::Path<String>,
) -> HttpResponse {
    let id = id.into_inner();
    match state.db(move |conn| Ok(crate::postings::get(conn, &id)?)).await {
        Ok(Some(p)) => HttpResponse::Ok().json(posting_json(p)),
        Ok(None) => error(StatusCode::NOT_FOUND, "not_found", "no such posting"),
        Err(e) => node_error(e),
    }
}

async fn read_posting(payload: web::Payload) -> Result<ncf_shared::posting::PostingBody, HttpResponse> {
    let bytes = read_body(payload, MAX_JSON_BYTES, "the posting").await?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the body is not a posting: {} at {}", e.inner(), e.path()),
        )
    })
}

fn invalid(fields: Vec<FieldError>) -> HttpResponse {
    node_error(NodeError::Invalid(fields))
}

/// Publishes a posting: the body is a `PostingBody` (the same checks as the staff page).
async fn posting_create(
    state: web::Data<WebState>,
    caller: ApiCaller,
    payload: web::Payload,
) -> HttpResponse {
    let member = caller.0;
    let body = match read_posting(payload).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    match state.db(move |conn| Ok(crate::postings::create(conn, &member.id, &body)?)).await {
        Ok(Ok(id)) => HttpResponse::Created().json(serde_json::json!({ "id": id, "version": 1 })),
        Ok(Err(fields)) => invalid(fields),
        Err(e) => node_error(e),
    }
}

fn change_error(e: crate::postings::ChangeError) -> HttpResponse {
    match e {
        crate::postings::ChangeError::NotFound => {
            error(StatusCode::NOT_FOUND, "not_found", "no such posting")
        }
        crate::postings::ChangeError::Withdrawn => {
            error(StatusCode::CONFLICT, "withdrawn", "the posting is withdrawn and can no longer change")
        }
        crate::postings::ChangeError::Invalid(fields) => invalid(fields),
    }
}

/// Replaces a posting's content (a new version).
async fn posting_update(
    state: web::Data<WebState>,
    _caller: ApiCaller,
    id: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let body = match read_posting(payload).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let id = id.into_inner();
    let wanted = id.clone();
    match state.db(move |conn| Ok(crate::postings::update(conn, &wanted, &body)?)).await {
        Ok(Ok(())) => posting_detail_now(&state, id).await,
        Ok(Err(e)) => change_error(e),
        Err(e) => node_error(e),
    }
}

async fn posting_detail_now(state: &WebState, id: String) -> HttpResponse {
    match state.db(move |conn| Ok(crate::postings::get(conn, &id)?)).await {
        Ok(Some(p)) => HttpResponse::Ok().json(posting_json(p)),
        Ok(None) => error(StatusCode::NOT_FOUND, "not_found", "no such posting"),
        Err(e) => node_error(e),
    }
}

/// Withdraws a posting; withdrawing it again answers the same.
async fn posting_withdraw(
    state: web::Data<WebState>,
    _caller: ApiCaller,
    id: web::Path<String>,
) -> HttpResponse {
    let id = id.into_inner();
    let wanted = id.clone();
    match state.db(move |conn| Ok(crate::postings::withdraw(conn, &wanted)?)).await {
        Ok(Ok(())) | Ok(Err(crate::postings::ChangeError::Withdrawn)) => posting_detail_now(&state, id).await,
        Ok(Err(e)) => change_error(e),
        Err(e) => node_error(e),
    }
}
