//! `/transfer/{token}`: the link in a hand-over invitation (`crate::transfers`). She sees which
//! center is handing her over, her details as they arrive, and this center's consents; confirming
//! registers her here (already proofed) and signs her in. The link works once, for
//! `INVITATION_DAYS`; a GET never changes anything (mail scanners open links).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use ncf_shared::ConsentScope;
use serde::Deserialize;

use super::routes::{Access, Routes};
use super::{
    PageError, WebState, csrf_cookie_matches, csrf_cookie_token, expired_form, html, with_csrf_cookie,
};
use crate::transfers::{self, PendingTransfer};

const BACK: (&str, &str) = ("/sign-in", "ログインページへ");

pub(super) fn routes(routes: &mut Routes) {
    routes.get("/transfer/{token}", Access::Public, form).post("/transfer/{token}", Access::Public, submit);
}

#[derive(Template)]
#[template(path = "transfer.html")]
struct TransferPage {
    center: crate::web::Center,
    legend: String,
    csrf: String,
    token: String,
    from: String,
    name: String,
    email: String,
    licence: String,
    scopes: Vec<super::forms::ScopeView>,
    errors: super::forms::Errors,
}

fn page(
    state: &WebState,
    csrf: String,
    token: String,
    t: &PendingTransfer,
    chosen: &[ConsentScope],
    errors: super::forms::Errors,
) -> TransferPage {
    let qualification = ncf_shared::Qualification::from_code(&t.qualification).map_or("", |q| q.name_ja());
    let center = state.center();
    TransferPage {
        legend: format!("{}への同意", center.name),
        center,
        csrf,
        token,
        from: t.from().map_or_else(String::new, |p| format!("{}ナースセンター", p.name_ja())),
        name: format!("{} {}", t.family_name, t.given_name),
        email: t.email.clone(),
        licence: format!("{qualification}（籍登録番号 {}）", t.registration_number),
        scopes: super::forms::scope_views(|s| chosen.contains(&s)),
        errors,
    }
}

fn link_gone(state: &WebState) -> HttpResponse {
    PageError::LinkGone(format!(
        "引継ぎのリンクは{}日以内に、一度だけ使えます。このリンクは使用済みか、有効期限が切れています。登録済みの場合は、ログインしてください。",
        transfers::INVITATION_DAYS
    ))
    .page(state, BACK)
}

async fn form(state: web::Data<WebState>, req: HttpRequest, token: web::Path<String>) -> HttpResponse {
    let token = token.into_inner();
    let lookup = token.clone();
    let pending = match state.db(move |conn| Ok(transfers::by_token(conn, &lookup)?)).await {
        Ok(Some(t)) => t,
        Ok(None) => return link_gone(&state),
        Err(e) => return super::unavailable(&state, &e, BACK),
    };
    let (csrf, new) = csrf_cookie_token(&req);
    let response =
        html(StatusCode::OK, &page(&state, csrf.clone(), token, &pending, &[], Default::default()));
    with_csrf_cookie(&state, response, csrf, new)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SubmitForm {
    csrf: String,
    address_linkage: Option<String>,
    job_support: Option<String>,
    training_info: Option<String>,
    share_with_residence_prefecture: Option<String>,
}

impl SubmitForm {
    fn decisions(&self) -> Vec<(ConsentScope, bool)> {
        [
            (ConsentScope::AddressLinkage, &self.address_linkage),
            (ConsentScope::JobSupport, &self.job_support),
            (ConsentScope::TrainingInfo, &self.training_info),
            (ConsentScope::ShareWithResidencePrefecture, &self.share_with_residence_prefecture),
        ]
        .into_iter()
        .map(|(scope, v)| (scope, v.as_deref() == Some("on")))
        .collect()
    }
}

async fn submit(
    state: web::Data<WebState>,
    req: HttpRequest,
    token: web::Path<String>,
    form: web::Form<SubmitForm>,
) -> HttpResponse {
    let token = token.into_inner();
    let form = form.into_inner();
    if !csrf_cookie_matches(&req, &form.csrf) {
        return expired_form(&state, BACK);
    }
    let decisions = form.decisions();
    if !decisions.iter().any(|(_, granted)| *granted) {
        let lookup = token.clone();
        let pending = match state.db(move |conn| Ok(transfers::by_token(conn, &lookup)?)).await {
            Ok(Some(t)) => t,
            Ok(None) => return link_gone(&state),
            Err(e) => return super::unavailable(&state, &e, BACK),
        };
        let mut errors = super::forms::Errors::new();
        errors.insert("scopes", "同意する項目を1つ以上選んでください。");
        return html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &page(&state, form.csrf, token, &pending, &[], errors),
        );
    }
    let confirmed = state.db(move |conn| transfers::confirm(conn, &token, &decisions)).await;
    match confirmed {
        Ok(done) => {
            super::tell_removed_registrations(&state, &done.removed_addresses).await;
            state.mail.wake();
            let mut response = super::see_other(&format!("/me/receipts/{}", done.receipt));
            let _ = response.add_cookie(&state.session_cookie(crate::auth::SessionKind::Nurse, done.session));
            response
        }
        Err(crate::error::NodeError::NotFound(_)) => link_gone(&state),
        Err(e) => super::unavailable(&state, &e, BACK),
    }
}
