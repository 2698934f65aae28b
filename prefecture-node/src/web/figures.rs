//! The prefecture's figures for its staff (issue #9 item 6): the national figures pages for this
//! prefecture only, fetched from the national server as a suppressed table through a signed
//! federation request. No person row ever comes back; the node renders what it is given with the
//! national pages' own parts (`ncf_shared::figures::FiguresPage`, `figures_body.html`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use ncf_shared::figures::{ChoiceQuery, FiguresPage, FiguresRequest, FiguresView, MapView, unreadable_query};

use super::routes::{Access, Routes};
use super::{PageError, WebState, html};
use crate::staff::StaffMember;

const BACK: (&str, &str) = ("/staff/figures", "数値へ戻る");

pub(super) fn routes(routes: &mut Routes) {
    routes.get("/staff/figures", Access::Staff, page).get("/staff/figures.csv", Access::Staff, csv);
}

#[derive(Template)]
#[template(path = "staff_figures.html")]
struct StaffFiguresPage {
    center: super::Center,
    staff_name: String,
    csrf: String,
    parts: FiguresPage,
    map: Option<MapView>,
}

/// This prefecture's figures for the query, or the page saying why not.
async fn fetch(state: &WebState, req: &HttpRequest) -> Result<FiguresView, HttpResponse> {
    let bad =
        |text: String| PageError::BadRequest { heading: "指定が正しくありません", text }.page(state, BACK);
    let choice = web::Query::<ChoiceQuery>::from_query(req.query_string())
        .map_err(|e| unreadable_query(&e))
        .and_then(|q| q.check())
        .map_err(bad)?;
    if choice.prefecture.is_some_and(|p| p != state.prefecture) {
        return Err(bad(format!("この画面では{}の数値だけを表示できます。", state.prefecture.name_ja())));
    }
    let request = FiguresRequest { figure: choice.figure, month: choice.month };
    state.syncer.figures(&request, state.prefecture).await.map_err(|e| {
        tracing::warn!(error = %e, "prefecture figures not fetched");
        PageError::Unavailable {
            heading: "ただいま数値を表示できません",
            text: "国の共通サーバーから数値を受け取れませんでした。しばらくしてからもう一度お試しください。"
                .into(),
            cause: e.to_string(),
        }
        .page(state, BACK)
    })
}

async fn page(
    me: super::guard::SignedIn<StaffMember>,
    state: web::Data<WebState>,
    req: HttpRequest,
) -> HttpResponse {
    let (session, member) = me.into_parts();
    match fetch(&state, &req).await {
        Ok(view) => html(
            StatusCode::OK,
            &StaffFiguresPage {
                center: state.center(),
                staff_name: member.display_name,
                csrf: session.csrf,
                parts: FiguresPage::new(view, "/staff/figures", false),
                map: None,
            },
        ),
        Err(response) => response,
    }
}

/// The table shown, as the national pages give it: UTF-8 CSV with a BOM.
async fn csv(
    _me: super::guard::SignedIn<StaffMember>,
    state: web::Data<WebState>,
    req: HttpRequest,
) -> HttpResponse {
    match fetch(&state, &req).await {
        Ok(view) => HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "content-disposition",
                format!("attachment; filename=\"{}\"", view.table.file_name()),
            ))
            .insert_header(("cache-control", "no-store"))
            .body(view.table.csv()),
        Err(response) => response,
    }
}
