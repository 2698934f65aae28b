//! HTTP: thin handlers over the services, JSON errors everywhere, and the signed-request extractor.

pub mod compressed;
pub mod pages;
mod signed;

use actix_web::{HttpRequest, HttpResponse, web};
use ncf_shared::AgencyCodeKey;
use ncf_shared::contract::{Envelope, ErrorCode, ProvisionPurpose, RejectCode};
use ncf_shared::db::{Health, Pool};
use ncf_shared::federation::{
    CodeCheckRequest, CodeCheckResponse, ErrorBody, IdentityLinkRequest, IdentityLinkResponse, LetterRequest,
    LetterResponse, PostingsPush, PostingsPushResponse, ProvisionListing, ProvisionsQuery, PullRequest,
    PullResponse, PushRequest, PushResponse, RejectedEvent,
};
use ncf_shared::secret::ProofingCodeKey;
use utoipa::OpenApi;

use crate::error::{AppError, ErrorKind};
pub use signed::Signed;

pub struct AppState {
    pub pool: Pool,
    pub agency_key: AgencyCodeKey,
    pub proofing_key: ProofingCodeKey,
    /// National staff's pages: sign-in, figures, map.
    pub pages: pages::Pages,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    pages::configure(cfg);
    cfg.service(web::resource("/healthz").get(healthz).default_service(web::to(method_not_allowed)))
        .service(
            web::resource("/api/v1/openapi.json").get(openapi).default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/federation/v1/identity-link")
                .post(identity_link)
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/federation/v1/proofing/letter")
                .post(proofing_letter)
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/federation/v1/proofing/code")
                .post(proofing_code)
                .default_service(web::to(method_not_allowed)),
        )
        .service(web::resource("/federation/v1/push").post(push).default_service(web::to(method_not_allowed)))
        .service(web::resource("/federation/v1/pull").post(pull).default_service(web::to(method_not_allowed)))
        .service(
            web::resource("/federation/v1/postings")
                .post(postings)
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/federation/v1/figures")
                .post(figures)
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/federation/v1/provisions")
                .post(provisions_of_nurse)
                .default_service(web::to(method_not_allowed)),
        )
        .default_service(web::to(not_found));
}

/// JSON body errors outside the signed extractor (none today, but any `web::Json` added later)
/// answer 4xx with the reason.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().limit(ncf_shared::federation::MAX_BODY_BYTES).error_handler(|err, _| {
        let kind = match &err {
            actix_web::error::JsonPayloadError::OverflowKnownLength { .. }
            | actix_web::error::JsonPayloadError::Overflow { .. } => ErrorKind::PayloadTooLarge,
            actix_web::error::JsonPayloadError::ContentType => ErrorKind::UnsupportedMediaType,
            _ => ErrorKind::BadRequest,
        };
        AppError::new(kind, format!("invalid JSON body: {err}")).into()
    })
}

/// Liveness and database reachability (the check is shared with the nodes).
#[utoipa::path(get, path = "/healthz", responses(
    (status = 200, description = "Server and database are up", body = Health),
    (status = 503, description = "Database unreachable", body = ErrorBody),
))]
async fn healthz(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let pool = state.pool.clone();
    Ok(match web::block(move || ncf_shared::db::health(&pool)).await? {
        Ok(health) => HttpResponse::Ok().json(health),
        Err(unreachable) => HttpResponse::ServiceUnavailable().json(unreachable),
    })
}

/// Links a nurse's licence claims to this node's agency code.
#[utoipa::path(
    post,
    path = "/federation/v1/identity-link",
    request_body = IdentityLinkRequest,
    params(
        ("x-ncf-key" = String, Header, description = "Key id of the node's registered Ed25519 key"),
        ("x-ncf-timestamp" = i64, Header, description = "Unix time of signing (±300 s)"),
        ("x-ncf-nonce" = String, Header, description = "16-64 characters [0-9A-Za-z_-], never reused"),
        ("x-ncf-signature" = String, Header, description = "base64 Ed25519 signature of the canonical message"),
    ),
    responses(
        (status = 200, description = "Claims match an active licence", body = IdentityLinkResponse),
        (status = 400, description = "Malformed claims", body = ErrorBody),
        (status = 401, description = "Unknown key, bad signature or stale timestamp", body = ErrorBody),
        (status = 409, description = "Replayed nonce", body = ErrorBody),
        (status = 422, description = "`no_match`: the claims do not match an active licence (staff lookups: `claims_mismatch` naming the fields, or `licence_not_active`)", body = ErrorBody),
        (status = 429, description = "`attempts_exhausted`: 5 failures for this licence in 24 hours, or too many from this node in an hour", body = ErrorBody),
    )
)]
async fn identity_link(
    state: web::Data<AppState>,
    request: Signed<IdentityLinkRequest>,
) -> Result<HttpResponse, AppError> {
    let pool = state.pool.clone();
    let key = state.agency_key.clone();
    let response = web::block(move || {
        let mut conn = pool.get()?;
        crate::identity::link(&mut conn, &key, request.node.prefecture, &request.body)
    })
    .await??;
    Ok(HttpResponse::Ok().json(response))
}

/// Queues a letter with a one-time code to the address of her resident registration.
#[utoipa::path(
    post,
    path = "/federation/v1/proofing/letter",
    request_body = LetterRequest,
    responses(
        (status = 200, description = "Queued, or why no letter can be sent", body = LetterResponse),
        (status = 401, description = "Unknown key, bad signature or stale timestamp", body = ErrorBody),
        (status = 404, description = "No link for this agency code from this node", body = ErrorBody),
    )
)]
async fn proofing_letter(
    state: web::Data<AppState>,
    request: Signed<LetterRequest>,
) -> Result<HttpResponse, AppError> {
    let pool = state.pool.clone();
    let response = web::block(move || {
        let mut conn = pool.get()?;
        crate::proofing::request_letter(&mut conn, request.node.prefecture, &request.body.agency_code)
    })
    .await??;
    Ok(HttpResponse::Ok().json(response))
}

/// Checks the code she typed from her letter.
#[utoipa::path(
    post,
    path = "/federation/v1/proofing/code",
    request_body = CodeCheckRequest,
    responses(
        (status = 200, description = "Proofed, wrong (tries left), or a new letter is needed", body = CodeCheckResponse),
        (status = 401, description = "Unknown key, bad signature or stale timestamp", body = ErrorBody),
    )
)]
async fn proofing_code(
    state: web::Data<AppState>,
    request: Signed<CodeCheckRequest>,
) -> Result<HttpResponse, AppError> {
    let pool = state.pool.clone();
    let key = state.proofing_key.clone();
    let response = web::block(move || {
        let mut conn = pool.get()?;
        let body = &request.body;
        crate::proofing::check_code(
            &mut conn,
            &key,
            request.node.prefecture,
            &body.agency_code,
            &body.letter_id,
            &body.code,
        )
    })
    .await??;
    Ok(HttpResponse::Ok().json(response))
}

/// Applies a batch of the calling node's outbox events, each `(node, seq)` once, in order.
#[utoipa::path(
    post,
    path = "/federation/v1/push",
    request_body = PushRequest,
    responses(
        (status = 200, description = "Applied; `last_seq` is the node's new cursor", body = PushResponse),
        (status = 400, description = "Malformed batch", body = ErrorBody),
        (status = 401, description = "Unknown key, bad signature or stale timestamp", body = ErrorBody),
                (status = 409, description = "Replayed nonce", body = ErrorBody),
    )
)]
async fn push(state: web::Data<AppState>, request: Signed<PushRequest>) -> Result<HttpResponse, AppError> {
    let pool = state.pool.clone();
    let key = state.agency_key.clone();
    let response = web::block(move || {
        let mut conn = pool.get()?;
        crate::sync::apply_push(&mut conn, &key, request.node.prefecture, &request.body)
    })
    .await??;
    Ok(HttpResponse::Ok().json(response))
}

/// The calling node's postings (issue #8): stored at the highest version seen, each checked as the
/// node's pages check it; the answer names what was stored and what is refused for good.
#[utoipa::path(
    post,
    path = "/federation/v1/postings",
    request_body = PostingsPush,
    responses(
        (status = 200, description = "The version now held of each, and those refused for good with why", body = PostingsPushResponse),
        (status = 400, description = "None, or more than 200 postings", body = ErrorBody),
        (status = 401, description = "Unknown key, bad signature or stale timestamp", body = ErrorBody),
        (status = 409, description = "Replayed nonce", body = ErrorBody),
    )
)]
async fn postings(
    state: web::Data<AppState>,
    request: Signed<ncf_shared::federation::PostingsPush>,
) -> Result<HttpResponse, AppError> {
    let sent = request.body.postings.len();
    if sent == 0 || sent > ncf_shared::federation::MAX_POSTINGS_PER_PUSH {
        return Err(AppError::bad_request(format!(
            "send between 1 and {} postings",
            ncf_shared::federation::MAX_POSTINGS_PER_PUSH
        )));
    }
    let pool = state.pool.clone();
    let answer = web::block(move || -> Result<_, AppError> {
        let mut conn = pool.get()?;
        Ok(crate::postings::store(
            &mut conn,
            request.node.prefecture,
            &request.body.postings,
            ncf_shared::time::today_jst(),
        )?)
    })
    .await??;
    Ok(HttpResponse::Ok().json(answer))
}

/// The calling node's queued events after its cursor.
#[utoipa::path(
    post,
    path = "/federation/v1/pull",
    request_body = PullRequest,
    responses(
        (status = 200, description = "Events after `after`, in order", body = PullResponse),
        (status = 400, description = "Bad limit", body = ErrorBody),
        (status = 401, description = "Unknown key, bad signature or stale timestamp", body = ErrorBody),
    )
)]
async fn pull(state: web::Data<AppState>, request: Signed<PullRequest>) -> Result<HttpResponse, AppError> {
    let limit = request.body.limit;
    if !(1..=crate::queue::MAX_PULL).contains(&limit) {
        return Err(AppError::bad_request(format!("limit must be between 1 and {}", crate::queue::MAX_PULL)));
    }
    let pool = state.pool.clone();
    let events = web::block(move || -> Result<_, AppError> {
        let mut conn = pool.get()?;
        let (node, after) = (request.node.prefecture, request.body.after);
        crate::operations::record_contact(
            &mut conn,
            node,
            crate::operations::Contact::Pull { after },
            ncf_shared::time::now_utc(),
        )?;
        Ok(crate::queue::after(&mut conn, node, after, limit)?)
    })
    .await??;
    Ok(HttpResponse::Ok().json(PullResponse { events }))
}

/// One figure for the calling node's own prefecture (issue #9): the same suppressed table, trend
/// and months the national pages show for it. Counts only; the prefecture is the signing key's.
#[utoipa::path(
    post,
    path = "/federation/v1/figures",
    request_body(content = Object, description = "`{\"figure\": \"latent\", \"month\": \"2026-12\" | null}` (ncf_shared::figures::FiguresRequest)"),
    responses(
        (status = 200, description = "ncf_shared::figures::FiguresView: the table (cells a number, or \"10未満\"), the trend, the months, when counted", body = Object),
        (status = 400, description = "Unknown figure or a month out of range", body = ErrorBody),
        (status = 401, description = "Unknown key, bad signature or stale timestamp", body = ErrorBody),
    )
)]
async fn figures(
    state: web::Data<AppState>,
    request: Signed<ncf_shared::figures::FiguresRequest>,
) -> Result<HttpResponse, AppError> {
    let prefecture = request.node.prefecture;
    let shared = state.clone();
    let view = web::block(move || -> Result<_, AppError> {
        let mut conn = shared.pool.get()?;
        let (figure, month) = (request.body.figure, request.body.month);
        Ok(shared.pages.figures.view(&mut conn, figure, month, Some(prefecture))?)
    })
    .await??;
    Ok(HttpResponse::Ok().json(&*view))
}

/// A nurse's data-provision entries (for her page at the node that knows her by this code).
#[utoipa::path(
    post,
    path = "/federation/v1/provisions",
    request_body = ProvisionsQuery,
    responses((status = 200, description = "Entries, oldest first", body = [ProvisionListing]))
)]
async fn provisions_of_nurse(
    state: web::Data<AppState>,
    request: Signed<ProvisionsQuery>,
) -> Result<HttpResponse, AppError> {
    let pool = state.pool.clone();
    let entries = web::block(move || -> Result<_, AppError> {
        let mut conn = pool.get()?;
        Ok(crate::provisions::for_nurse(
            &mut conn,
            request.node.prefecture,
            request.body.agency_code.as_str(),
        )?)
    })
    .await??;
    let view: Vec<ProvisionListing> = entries
        .into_iter()
        .filter_map(|e| {
            let purpose = ProvisionPurpose::parse(&e.purpose);
            if purpose.is_none() {
                tracing::error!(seq = e.seq, purpose = %e.purpose, "provision entry with an unknown purpose");
            }
            Some(ProvisionListing {
                seq: e.seq,
                recorded_at: e.recorded_at,
                source: e.source,
                recipient: e.recipient,
                fields: e.fields.split(',').map(str::to_string).collect(),
                purpose: purpose?,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(view))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Nurse Center Federation — national server",
        description = "Federation endpoints are signed by the calling node (Ed25519 over method, path, timestamp, nonce and the body's SHA-256; see ncf_shared::federation). Every error answers with an ErrorBody."
    ),
    paths(
        healthz,
        identity_link,
        proofing_letter,
        proofing_code,
        push,
        pull,
        postings,
        figures,
        provisions_of_nurse
    ),
    components(schemas(
        Health,
        IdentityLinkRequest,
        IdentityLinkResponse,
        LetterRequest,
        LetterResponse,
        CodeCheckRequest,
        CodeCheckResponse,
        PushRequest,
        Envelope,
        PushResponse,
        RejectedEvent,
        PullRequest,
        PullResponse,
        PostingsPush,
        PostingsPushResponse,
        ProvisionsQuery,
        ProvisionListing,
        ProvisionPurpose,
        RejectCode,
        ErrorCode,
        ErrorBody
    ))
)]
pub struct ApiDoc;

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, AppError> {
    Err(AppError::new(ErrorKind::NotFound, format!("no such endpoint: {}", req.path())))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, AppError> {
    Err(AppError::new(
        ErrorKind::MethodNotAllowed,
        format!("{} is not allowed on {}", req.method(), req.path()),
    ))
}
