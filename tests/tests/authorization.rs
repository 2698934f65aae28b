//! The authorization matrix: every route of a running node (from its route table, so a route
//! cannot be added without saying who may call it) × every kind of caller → the answer that
//! route's promise implies. Requests carry no form token, so an allowed caller reaches the
//! handler without changing anything (a form answers "expired form", an upload "unreadable").
//!
//! Callers: nobody; a signed-in nurse; a signed-in staff member; a staff API token; a staff member
//! disabled after she signed in; and the session cookies of the same people at another node.

mod support;

use std::collections::HashSet;

use ncf_tests::{Backend, TestServer, block_on, both_backends};
use prefecture_node::auth::{self, SessionKind};
use prefecture_node::web::routes::{self, Access};
use prefecture_node::{Channel, notices};
use support::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    Nurse,
    Staff,
    ApiToken,
    DisabledStaff,
    OtherNode,
}

const CALLERS: [Caller; 6] = [
    Caller::Anonymous,
    Caller::Nurse,
    Caller::Staff,
    Caller::ApiToken,
    Caller::DisabledStaff,
    Caller::OtherNode,
];

/// Who a route lets in.
fn allowed(access: Access, caller: Caller) -> bool {
    match access {
        Access::Public => true,
        Access::Nurse => caller == Caller::Nurse,
        Access::Staff => caller == Caller::Staff,
        Access::Api => caller == Caller::ApiToken,
    }
}

struct Credentials {
    cookie: Option<String>,
    bearer: Option<String>,
}

#[test]
fn every_route_is_in_the_table_once() {
    let table = routes::table();
    assert!(table.len() >= 30, "{} routes", table.len());
    let mut seen = HashSet::new();
    for r in &table {
        assert!(seen.insert((r.method.to_string(), r.path)), "{} {} twice", r.method, r.path);
        // The API's OpenAPI document describes the API and holds nothing: public, as the
        // national server's is.
        if r.path.starts_with("/api/") && r.path != "/api/v1/openapi.json" {
            assert_eq!(r.access, Access::Api, "{} {}", r.method, r.path);
        }
        if r.path.starts_with("/me") {
            assert_eq!(r.access, Access::Nurse, "{} {}", r.method, r.path);
        }
        if r.path.starts_with("/staff/") && r.path != "/staff/sign-in" {
            assert_eq!(r.access, Access::Staff, "{} {}", r.method, r.path);
        }
    }
}

fn matrix(backend: Backend) {
    let f = federation(backend);
    // Osaka: a proofed nurse with a notice (and so a receipt), staff, a disabled member, a token.
    let (mut conn, nurse) = opt_in(&f, &f.osaka, &f.cast[0]);
    let filed = notices::file(&mut conn, &nurse.id, &separation(), Channel::Web, None).unwrap();
    let receipt = filed.notice.receipt.clone().unwrap();
    prefecture_node::staff::add(&mut conn, "tanaka", "田中 美穂", "correct horse battery").unwrap();
    prefecture_node::staff::add(&mut conn, "sato", "佐藤 一郎", "correct horse battery").unwrap();
    let staff_id = |conn: &mut ncf_shared::db::DbConn, name: &str| {
        prefecture_node::staff::find_active(conn, name).unwrap().unwrap().id
    };
    let (nurse_token, _) = auth::start_session(&mut conn, SessionKind::Nurse, &nurse.id).unwrap();
    let tanaka = staff_id(&mut conn, "tanaka");
    let (staff_token, _) = auth::start_session(&mut conn, SessionKind::Staff, &tanaka).unwrap();
    let sato = staff_id(&mut conn, "sato");
    let (disabled_token, _) = auth::start_session(&mut conn, SessionKind::Staff, &sato).unwrap();
    prefecture_node::staff::disable(&mut conn, "sato").unwrap();
    let api_token = auth::issue_api_token(&mut conn, "tanaka", "matrix").unwrap();
    // A training session of Osaka's, on the nurse's list (as the national server would send it),
    // so that every posting page, hers and staff's, has something to show.
    let mut session = support::sample_posting();
    session.kind = ncf_shared::posting::PostingKind::Training;
    session.employment_types = vec![];
    session.training = Some(ncf_shared::posting::TrainingDetails {
        starts_on: session.valid_until,
        ends_on: session.valid_until,
        hours: 6,
        capacity: 10,
        fee_yen: 0,
    });
    let posting = prefecture_node::postings::create(&mut conn, &tanaka, &session).unwrap().unwrap();
    let osaka = ncf_shared::Prefecture::from_code("27").unwrap();
    let matched = ncf_shared::contract::MatchesChanged {
        agency_code: ncf_shared::AgencyCode::parse(&nurse.agency_code).unwrap(),
        kind: session.kind,
        added: vec![ncf_shared::contract::MatchedPosting {
            posting: ncf_shared::contract::PostingRef { prefecture: osaka, posting_id: posting.clone() },
            version: 1,
            distance_m: 3_000,
            body: session.clone(),
        }],
        removed: vec![],
        decided_at: chrono::Utc::now(),
    };
    prefecture_node::postings::apply_matches(&mut conn, &nurse.id, &matched, ncf_shared::time::now_utc())
        .unwrap();
    // Kyoto: the same kinds of sessions, issued by another node.
    let (mut kyoto, kyoto_nurse) = opt_in(&f, &f.kyoto, &f.cast[1]);
    prefecture_node::staff::add(&mut kyoto, "tanaka", "田中 美穂", "correct horse battery").unwrap();
    let kyoto_staff = staff_id(&mut kyoto, "tanaka");
    let (kyoto_nurse_token, _) =
        auth::start_session(&mut kyoto, SessionKind::Nurse, &kyoto_nurse.id).unwrap();
    let (kyoto_staff_token, _) = auth::start_session(&mut kyoto, SessionKind::Staff, &kyoto_staff).unwrap();

    let node = TestServer::node(&f.osaka.db, &f.osaka.key_file, &f.server.base_url, "27");
    let credentials = |caller: Caller| match caller {
        Caller::Anonymous => Credentials { cookie: None, bearer: None },
        Caller::Nurse => Credentials { cookie: Some(format!("ncf_nurse={nurse_token}")), bearer: None },
        Caller::Staff => Credentials { cookie: Some(format!("ncf_staff={staff_token}")), bearer: None },
        Caller::ApiToken => Credentials { cookie: None, bearer: Some(api_token.clone()) },
        Caller::DisabledStaff => {
            Credentials { cookie: Some(format!("ncf_staff={disabled_token}")), bearer: None }
        }
        Caller::OtherNode => Credentials {
            cookie: Some(format!("ncf_nurse={kyoto_nurse_token}; ncf_staff={kyoto_staff_token}")),
            bearer: Some(kyoto_staff_token.clone()),
        },
    };
    ncf_shared::tls::install_provider();
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let table = routes::table();
    let mut failures = Vec::new();
    let mut checked = 0;
    block_on(async {
        for route in &table {
            let path = route
                .path
                .replace("{id}", &nurse.id)
                .replace("{kind}", "separation")
                .replace("{number}", &receipt)
                .replace("{posting}", &posting)
                .replace("{prefecture}", "27")
                .replace("{from}", "27")
                .replace("{wish}", "no-such-wish");
            for caller in CALLERS {
                let creds = credentials(caller);
                let methods: &[reqwest::Method] = if route.method.as_str() == "GET" {
                    &[reqwest::Method::GET, reqwest::Method::HEAD]
                } else {
                    &[reqwest::Method::POST]
                };
                let mut get_status = None;
                for method in methods {
                    let mut request = client.request(method.clone(), node.url(&path));
                    if let Some(cookie) = &creds.cookie {
                        request = request.header("cookie", cookie);
                    }
                    if let Some(token) = &creds.bearer {
                        request = request.bearer_auth(token);
                    }
                    if *method == reqwest::Method::POST {
                        request =
                            request.header("content-type", "application/x-www-form-urlencoded").body("");
                    }
                    let response = request.send().await.unwrap();
                    let status = response.status().as_u16();
                    let location = response
                        .headers()
                        .get("location")
                        .and_then(|l| l.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let body = response.bytes().await.unwrap();
                    checked += 1;
                    let denied = match route.access {
                        Access::Public => false,
                        Access::Nurse => status == 303 && location == "/sign-in",
                        Access::Staff => status == 303 && location == "/staff/sign-in",
                        Access::Api => status == 401,
                    };
                    let expect_allowed = allowed(route.access, caller);
                    let wrong = if expect_allowed {
                        denied
                            || status >= 500
                            || status == 401
                            || status == 405
                            || status == 404 && route.access != Access::Public
                    } else {
                        !denied
                    };
                    if wrong {
                        failures.push(format!(
                            "{method} {} as {caller:?}: {status} {location} (expected {})",
                            route.path,
                            if expect_allowed { "to be let in" } else { "to be refused" }
                        ));
                    }
                    if *method == reqwest::Method::GET {
                        get_status = Some(status);
                    } else if *method == reqwest::Method::HEAD
                        && (Some(status) != get_status || !body.is_empty())
                    {
                        failures.push(format!(
                            "HEAD {} as {caller:?}: {status} with {} bytes, GET gave {get_status:?}",
                            route.path,
                            body.len()
                        ));
                    }
                }
            }
        }
        // A path that is not in the table is not found, for everyone.
        for caller in CALLERS {
            let creds = credentials(caller);
            let mut request = client.get(node.url("/staff/nurses-export"));
            if let Some(cookie) = &creds.cookie {
                request = request.header("cookie", cookie);
            }
            assert_eq!(request.send().await.unwrap().status().as_u16(), 404, "{caller:?}");
        }
    });
    assert!(failures.is_empty(), "{} of {checked} answers wrong:\n{}", failures.len(), failures.join("\n"));
}
both_backends!(matrix);
