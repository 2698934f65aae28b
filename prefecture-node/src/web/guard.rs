//! Who is calling, decided before a handler runs and before any of its extractors reads the
//! request body: the route table (`routes.rs`) wraps every resource whose [`Access`] is not
//! public in the matching guard below. A guard loads the session (or API token) and its person
//! once and leaves them in the request for the [`SignedIn`] or [`ApiCaller`] extractor; without
//! one it answers as the route's promise says (to the sign-in page, or 401 JSON) and the handler
//! never runs. A handler therefore cannot forget the check, and a stranger's body is never read.
//!
//! A form's token (CSRF) travels in the body, so it is checked by the handler, with
//! [`SignedIn::checked`], once the body is read.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, web};

use super::WebState;
use crate::auth::Session;
use crate::staff::StaffMember;

/// The signed-in person of a guarded route (a nurse or a staff member) and her session.
#[derive(Debug, Clone)]
pub struct SignedIn<T> {
    pub session: Session,
    pub person: T,
}

impl<T> SignedIn<T> {
    pub fn into_parts(self) -> (Session, T) {
        (self.session, self.person)
    }

    /// The session and person once a posted form's token matches the session's; otherwise the
    /// "expired form" page (a forged or stale form changes nothing).
    #[allow(clippy::result_large_err)] // the refusal is the answer itself, built once per request
    pub fn checked(
        self,
        state: &WebState,
        back: (&str, &str),
        csrf: &str,
    ) -> Result<(Session, T), HttpResponse> {
        if super::tokens_equal(&self.session.csrf, csrf) {
            Ok(self.into_parts())
        } else {
            Err(super::expired_form(state, back))
        }
    }
}

/// The staff member behind the API token of a guarded `/api/` route.
#[derive(Debug, Clone)]
pub struct ApiCaller(pub StaffMember);

/// Taken from what the guard left in the request. Missing only when a route reads it without
/// being guarded for it: a programming error, answered 500 and logged.
fn from_guard<T: Clone + 'static>(req: &HttpRequest) -> Result<T, actix_web::Error> {
    req.extensions().get::<T>().cloned().ok_or_else(|| {
        tracing::error!(path = req.path(), "handler needs a caller its route does not guard for");
        actix_web::error::ErrorInternalServerError("not guarded")
    })
}

impl<T: Clone + 'static> FromRequest for SignedIn<T> {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(from_guard(req))
    }
}

impl FromRequest for ApiCaller {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(from_guard(req))
    }
}

fn state_of(req: &ServiceRequest) -> Result<web::Data<WebState>, actix_web::Error> {
    req.app_data::<web::Data<WebState>>()
        .cloned()
        .ok_or_else(|| actix_web::error::ErrorInternalServerError("no state"))
}

async fn pass<B: MessageBody + 'static, T: 'static>(
    req: ServiceRequest,
    next: Next<B>,
    found: Result<T, HttpResponse>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    match found {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Err(response) => Ok(req.into_response(response)),
    }
}

/// `Access::Nurse`: a signed-in nurse, else to `/sign-in`.
pub async fn nurse<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = state_of(&req)?;
    let found = state.signed_in(req.request(), &super::nurse::DOOR).await;
    pass(req, next, found.map(|(session, person)| SignedIn { session, person })).await
}

/// `Access::Staff`: a signed-in staff member whose account is enabled, else to `/staff/sign-in`.
pub async fn staff<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = state_of(&req)?;
    let found = state.signed_in(req.request(), &super::staff::DOOR).await;
    pass(req, next, found.map(|(session, person)| SignedIn { session, person })).await
}

/// `Access::Api`: a valid API token of an enabled staff member, else 401 JSON.
pub async fn api<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = state_of(&req)?;
    let found = super::api::caller(&state, req.request()).await;
    pass(req, next, found.map(ApiCaller)).await
}
