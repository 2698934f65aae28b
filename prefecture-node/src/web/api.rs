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
use ncf_shared::posting::PostingBody;

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
        // Before `{posting}`: actix tries resources in the order they are registered.
        .post("/api/v1/postings/import", Access::Api, postings_import)
        .get("/api/v1/postings/{posting}", Access::Api, posting_detail)
        .post("/api/v1/postings/{posting}", Access::Api, posting_update)
        .post("/api/v1/postings/{posting}/withdraw", Access::Api, posting_withdraw)
        .get("/api/v1/openapi.json", Access::Public, openapi);
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Nurse Center Federation — prefecture node staff API",
        description = "For scripts of the nurse center's staff. Every call carries `Authorization: Bearer ncf_…` (a token from `prefecture-node staff token`); every refusal answers with an ApiError. Messages for people are Japanese."
    ),
    paths(list, detail, file_notice, separations, postings_list, posting_create, postings_import, posting_detail, posting_update, posting_withdraw),
    modifiers(&BearerToken)
)]
struct ApiDoc;

/// The bearer token every path needs.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
        doc.components.get_or_insert_with(Default::default).add_security_scheme(
            "staff_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        doc.security = Some(vec![SecurityRequirement::new("staff_token", Vec::<String>::new())]);
    }
}

/// The API's OpenAPI document. Public: it describes the API, not anything in it.
async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(<ApiDoc as utoipa::OpenApi>::openapi())
}

/// Every refusal: a code for scripts, a message for people, and for invalid input each field
/// with its (Japanese) message.
#[derive(Serialize, utoipa::ToSchema)]
struct ApiError<'a> {
    /// `unauthorized`, `invalid_query`, `invalid_body`, `payload_too_large`, `invalid`,
    /// `not_found`, `withdrawn` or `unavailable`.
    #[schema(value_type = String)]
    error: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<FieldErrorJson>)]
    fields: Vec<FieldError>,
}

/// One field of invalid input.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // the shape of `FieldError` as serialised, for the document only
struct FieldErrorJson {
    field: String,
    message: String,
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

#[derive(Serialize, utoipa::ToSchema)]
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

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(default)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Name, kana, registration number or e-mail address, in part.
    q: String,
    /// From 1; 100 nurses a page.
    page: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct NurseList {
    total: i64,
    page: i64,
    nurses: Vec<NurseJson>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ConsentJson {
    #[schema(value_type = String)]
    scope: String,
    granted: bool,
    version: i32,
    /// `web`, `paper` or `counter`.
    channel: String,
    recorded_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct NoticeJson {
    id: String,
    notice: Option<NoticeBody>,
    channel: String,
    filed_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct NurseDetail {
    nurse: NurseJson,
    consents: Vec<ConsentJson>,
    notices: Vec<NoticeJson>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct NoticeFiled {
    notice_id: String,
    /// The receipt number as printed for her.
    receipt: Option<String>,
    /// Whether the notice goes to the national server (her consents cover it).
    leaves_node: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
struct PostingCreated {
    id: String,
    version: i64,
}

const PAGE_SIZE: i64 = 100;

/// This node's nurses, searched, 100 a page.
#[utoipa::path(get, path = "/api/v1/nurses", params(ListQuery), responses(
    (status = 200, body = NurseList),
    (status = 400, description = "A bad query parameter", body = ApiError),
    (status = 401, description = "No, an unknown or a revoked token", body = ApiError),
))]
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
        Ok((nurses, total)) => HttpResponse::Ok().json(NurseList {
            total,
            page,
            nurses: nurses.into_iter().map(NurseJson::from).collect(),
        }),
        Err(e) => node_error(e),
    }
}

/// One nurse with her consents and notices.
#[utoipa::path(get, path = "/api/v1/nurses/{id}", params(("id" = String, Path)), responses(
    (status = 200, body = NurseDetail),
    (status = 401, body = ApiError),
    (status = 404, body = ApiError),
))]
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
        Ok((nurse, consents, notices)) => HttpResponse::Ok().json(NurseDetail {
            nurse: NurseJson::from(nurse),
            consents: consents
                .into_iter()
                .map(|c| ConsentJson {
                    scope: c.scope,
                    granted: c.granted,
                    version: c.version,
                    channel: c.channel,
                    recorded_at: ncf_shared::time::to_utc(c.recorded_at),
                })
                .collect(),
            notices: notices
                .iter()
                .map(|n| NoticeJson {
                    id: n.id.clone(),
                    notice: n.body(),
                    channel: n.channel.clone(),
                    filed_at: ncf_shared::time::to_utc(n.filed_at),
                })
                .collect(),
        }),
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
#[utoipa::path(post, path = "/api/v1/nurses/{id}/notices", params(("id" = String, Path)),
    request_body = NoticeBody,
    responses(
        (status = 201, body = NoticeFiled),
        (status = 400, description = "The body is not a notice", body = ApiError),
        (status = 401, body = ApiError),
        (status = 404, body = ApiError),
        (status = 413, body = ApiError),
        (status = 422, description = "Each field that is wrong, with a Japanese message", body = ApiError),
))]
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
        Ok(filed) => HttpResponse::Created().json(NoticeFiled {
            notice_id: filed.notice.id,
            receipt: filed.notice.receipt.as_deref().map(crate::receipts::display),
            leaves_node: filed.outbox_seq.is_some(),
        }),
        Err(e) => node_error(e),
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(default)]
#[into_params(parameter_in = Query)]
struct UploadQuery {
    /// Save the valid rows of a file that has bad ones (otherwise one bad row saves nothing).
    accept_valid: bool,
}

/// The employer bulk upload as a script sends it: the CSV (UTF-8) as the body, the columns of the
/// staff page's template.
#[utoipa::path(post, path = "/api/v1/separations", params(UploadQuery),
    request_body(content = String, content_type = "text/csv"),
    responses(
        (status = 200, description = "A result per row", body = crate::bulk::BulkReport),
        (status = 400, description = "`invalid_query`: a bad query parameter", body = ApiError),
        (status = 401, body = ApiError),
        (status = 413, body = ApiError),
        (status = 422, description = "Bad rows stopped it: nothing saved, each row's result. When the file itself cannot be read (encoding, headings, no rows), an ApiError `invalid` naming the problem instead.", body = crate::bulk::BulkReport),
))]
async fn separations(
    state: web::Data<WebState>,
    caller: ApiCaller,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    csv_upload(state, caller, req, payload, |conn, body, accept_valid, staff_id| {
        crate::bulk::upload_separations(conn, body, accept_valid, staff_id, "(API)")
    })
    .await
}

/// Postings from a CSV file, as a script sends it: the CSV (UTF-8) as the body, the columns of the
/// staff page's template.
#[utoipa::path(post, path = "/api/v1/postings/import", params(UploadQuery),
    request_body(content = String, content_type = "text/csv"),
    responses(
        (status = 200, description = "A result per row", body = crate::postings::import::ImportReport),
        (status = 400, description = "`invalid_query`: a bad query parameter", body = ApiError),
        (status = 401, body = ApiError),
        (status = 413, body = ApiError),
        (status = 422, description = "Bad rows stopped it: nothing published, each row's result. When the file itself cannot be read (encoding, headings, no rows), an ApiError `invalid` naming the problem instead.", body = crate::postings::import::ImportReport),
))]
async fn postings_import(
    state: web::Data<WebState>,
    caller: ApiCaller,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    csv_upload(state, caller, req, payload, crate::postings::import::import).await
}

/// A CSV upload through the API: `?accept_valid=true` to save the valid rows of a file with bad
/// ones. The token is checked before the body (up to 4 MiB) is read, so an unknown caller costs
/// no upload. 200 with a result per row, or 422 when bad rows stopped it.
async fn csv_upload<R, F>(
    state: web::Data<WebState>,
    caller: ApiCaller,
    req: HttpRequest,
    payload: web::Payload,
    upload: F,
) -> HttpResponse
where
    R: crate::uploads::Report + Send + 'static,
    F: FnOnce(&mut ncf_shared::db::DbConn, &[u8], bool, &str) -> Result<R, NodeError> + Send + 'static,
{
    let member = caller.0;
    let query = match web::Query::<UploadQuery>::from_query(req.query_string()) {
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
    match state.db(move |conn| upload(conn, &body, accept_valid, &member.id)).await {
        Ok(report) if report.stopped() => HttpResponse::UnprocessableEntity().json(report),
        Ok(report) => HttpResponse::Ok().json(report),
        Err(e) => node_error(e),
    }
}

/// A posting of this node as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
struct PostingJson {
    id: String,
    version: i64,
    /// `open`, `not_yet_open`, `closed` or `withdrawn`, on today's date in Japan.
    #[schema(value_type = String)]
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

/// This node's postings, newest first.
#[utoipa::path(get, path = "/api/v1/postings", responses(
    (status = 200, body = Vec<PostingJson>),
    (status = 401, body = ApiError),
))]
async fn postings_list(state: web::Data<WebState>, _caller: ApiCaller) -> HttpResponse {
    match state.db(|conn| Ok(crate::postings::list(conn)?)).await {
        Ok(list) => HttpResponse::Ok().json(list.into_iter().map(posting_json).collect::<Vec<_>>()),
        Err(e) => node_error(e),
    }
}

#[utoipa::path(get, path = "/api/v1/postings/{posting}", params(("posting" = String, Path)), responses(
    (status = 200, body = PostingJson),
    (status = 401, body = ApiError),
    (status = 404, body = ApiError),
))]
async fn posting_detail(
    state: web::Data<WebState>,
    _caller: ApiCaller,
    id: web::Path<String>,
) -> HttpResponse {
    posting_detail_now(&state, id.into_inner()).await
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
#[utoipa::path(post, path = "/api/v1/postings", request_body = PostingBody, responses(
    (status = 201, body = PostingCreated),
    (status = 400, description = "The body is not a posting (the path of the first problem)", body = ApiError),
    (status = 401, body = ApiError),
    (status = 413, body = ApiError),
    (status = 422, description = "Each field that is wrong, with a Japanese message", body = ApiError),
))]
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
        Ok(Ok(id)) => HttpResponse::Created().json(PostingCreated { id, version: 1 }),
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
#[utoipa::path(post, path = "/api/v1/postings/{posting}", params(("posting" = String, Path)),
    request_body = PostingBody,
    responses(
        (status = 200, body = PostingJson),
        (status = 400, body = ApiError),
        (status = 401, body = ApiError),
        (status = 404, body = ApiError),
        (status = 409, description = "`withdrawn`: a withdrawn posting no longer changes", body = ApiError),
        (status = 422, body = ApiError),
))]
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
#[utoipa::path(post, path = "/api/v1/postings/{posting}/withdraw", params(("posting" = String, Path)), responses(
    (status = 200, body = PostingJson),
    (status = 401, body = ApiError),
    (status = 404, body = ApiError),
))]
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
