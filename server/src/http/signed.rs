//! `Signed<T>`: an extractor that reads the body (bounded), authenticates the calling node from the
//! signature headers, and only then parses the JSON, so an unauthenticated caller learns nothing.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use ncf_shared::federation::{self, MAX_BODY_BYTES};
use serde::de::DeserializeOwned;

use super::AppState;
use crate::error::{AppError, ErrorKind};
use crate::nodes::{self, AuthenticatedNode, SignedParts};
use crate::operations::Contact;

pub struct Signed<T> {
    pub node: AuthenticatedNode,
    pub body: T,
}

impl<T: DeserializeOwned + 'static> FromRequest for Signed<T> {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let body = read_body(&req, &mut payload).await?;
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| AppError::internal("signed extractor", "application state missing"))?
                .clone();
            let header = |name: &'static str| -> Result<String, AppError> {
                let value = req
                    .headers()
                    .get(name)
                    .ok_or_else(|| AppError::unauthorized(format!("missing header {name}")))?;
                value
                    .to_str()
                    .map(str::to_string)
                    .map_err(|_| AppError::unauthorized(format!("malformed header {name}")))
            };
            let key_id = header(federation::HEADER_KEY)?;
            let timestamp = header(federation::HEADER_TIMESTAMP)?;
            let nonce = header(federation::HEADER_NONCE)?;
            let signature = header(federation::HEADER_SIGNATURE)?;
            let method = req.method().as_str().to_string();
            let path =
                req.uri().path_and_query().map_or_else(|| req.path().to_string(), |p| p.as_str().to_string());
            let pool = state.pool.clone();
            let (node, body) = web::block(move || -> Result<_, AppError> {
                let mut conn = pool.get()?;
                let parts = SignedParts {
                    key_id: &key_id,
                    timestamp: &timestamp,
                    nonce: &nonce,
                    signature: &signature,
                    method: &method,
                    path: &path,
                    body: &body,
                };
                let now = ncf_shared::time::now_utc();
                let node = nodes::authenticate(&mut conn, &parts, now)?;
                let contact = if path.ends_with("/push") { Contact::Push } else { Contact::Other };
                if let Err(e) = crate::operations::record_contact(&mut conn, node.prefecture, contact, now) {
                    // The operations view misses one contact; the request itself goes on.
                    tracing::warn!(error = %e, "node contact not recorded");
                }
                Ok((node, body))
            })
            .await??;
            if !req.content_type().eq_ignore_ascii_case("application/json") {
                return Err(AppError::new(
                    ErrorKind::UnsupportedMediaType,
                    "the body must be application/json",
                ));
            }
            let mut de = serde_json::Deserializer::from_slice(&body);
            let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if path == "." {
                    AppError::bad_request(format!("invalid JSON body: {inner}"))
                } else {
                    AppError::bad_request(format!("invalid JSON body at {path}: {inner}"))
                }
            })?;
            de.end().map_err(|e| AppError::bad_request(format!("invalid JSON body: {e}")))?;
            Ok(Signed { node, body: value })
        })
    }
}

async fn read_body(req: &HttpRequest, payload: &mut Payload) -> Result<Vec<u8>, AppError> {
    use futures_util::StreamExt as _;
    let too_large = || {
        AppError::new(ErrorKind::PayloadTooLarge, format!("the body is larger than {MAX_BODY_BYTES} bytes"))
    };
    let declared = req.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| AppError::bad_request(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
