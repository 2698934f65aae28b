//! The digests' one-click unsubscribe (RFC 8058). `GET` shows a page with one button (mail
//! scanners open links; a GET changes nothing); `POST` — from that button, or from her mail
//! client's own unsubscribe command with `List-Unsubscribe=One-Click` — stops her digests without
//! a session, a cookie or a CSRF token: the link itself (her nurse id and its HMAC) is the proof.
//! A forged or altered link answers 404 like an unknown page, and says nothing about whether the
//! id exists.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use super::routes::{Access, Routes};
use super::{PageError, WebState, html, unavailable};

const HOME: (&str, &str) = ("/", "トップページへ");

pub(super) fn routes(routes: &mut Routes) {
    routes.get("/unsubscribe/{nurse}/{token}", Access::Public, page).post(
        "/unsubscribe/{nurse}/{token}",
        Access::Public,
        one_click,
    );
}

#[derive(Template)]
#[template(path = "unsubscribe.html")]
struct UnsubscribePage {
    center: crate::web::Center,
    action: String,
    done: bool,
}

fn not_found(state: &WebState) -> HttpResponse {
    PageError::NotFound("このリンクは使えません。メールに記載のリンクをそのまま開いてください。".into())
        .page(state, HOME)
}

async fn page(state: web::Data<WebState>, path: web::Path<(String, String)>) -> HttpResponse {
    let (nurse, token) = path.into_inner();
    if !state.unsubscribe.verify(&nurse, &token) {
        return not_found(&state);
    }
    html(
        StatusCode::OK,
        &UnsubscribePage {
            center: state.center(),
            action: format!("/unsubscribe/{nurse}/{token}"),
            done: false,
        },
    )
}

async fn one_click(state: web::Data<WebState>, path: web::Path<(String, String)>) -> HttpResponse {
    let (nurse, token) = path.into_inner();
    if !state.unsubscribe.verify(&nurse, &token) {
        tracing::warn!(client = "unsubscribe", "one-click unsubscribe with a forged or altered link");
        return not_found(&state);
    }
    match state.db(move |conn| Ok(crate::digests::unsubscribe(conn, &nurse)?)).await {
        Ok(_) => html(
            StatusCode::OK,
            &UnsubscribePage { center: state.center(), action: String::new(), done: true },
        ),
        Err(e) => unavailable(&state, &e, HOME),
    }
}
