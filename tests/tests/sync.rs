//! Sync from a prefecture node to the national server with real processes on loopback: what
//! leaves is what the consents cover, each event is applied once, withdrawals delete, strangers are
//! refused, and every provision is in the hash-chained record.

use std::path::PathBuf;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use ncf_shared::db::DbConn;
use ncf_shared::federation::{NodeSigningKey, PushRequest, PushedEvent};
use ncf_shared::{AgencyCode, ConsentScope};
use ncf_tests::{
    Backend, Person, REGISTRY_HEADER, RESIDENTS_HEADER, TestDb, TestServer, block_on, both_backends,
    eventually, http_client, national, node_command, run, write_csv,
};
use prefecture_node::Channel;
use prefecture_node::notices::{self, NoticeBody, SeparationReason};
use prefecture_node::nurses::{self, NewNurse, Nurse};
use prefecture_node::{consent, outbox};
use serde_json::{Value, json};

struct Node {
    db: TestDb,
    key: NodeSigningKey,
    key_file: PathBuf,
}

struct Federation {
    national_db: TestDb,
    server: TestServer,
    osaka: Node,
    kyoto: Node,
    cast: Vec<Person>,
}

fn node(backend: Backend, national_db: &TestDb, prefecture: &'static str) -> Node {
    let db = TestDb::new(backend);
    prefecture_node::migrate(&mut db.connect()).expect("node migrations");
    let key = NodeSigningKey::generate();
    let key_file = db.path("node.key");
    std::fs::write(&key_file, key.to_base64()).unwrap();
    let mut cmd = national(national_db);
    cmd.args(["nodes", "add", "--prefecture", prefecture, "--public-key", &key.public_key().to_base64()]);
    assert!(run(cmd).0.status.success());
    Node { db, key, key_file }
}

fn federation(backend: Backend) -> Federation {
    let national_db = TestDb::new(backend);
    let cast: Vec<Person> = (0..4).map(Person::sample).collect();
    write_csv(
        &national_db.path("registry.csv"),
        REGISTRY_HEADER,
        &cast.iter().map(Person::registry_row).collect::<Vec<_>>(),
    );
    write_csv(
        &national_db.path("residents.csv"),
        RESIDENTS_HEADER,
        &cast.iter().map(Person::moved_in_row).collect::<Vec<_>>(),
    );
    for (kind, file) in [("import-registry", "registry.csv"), ("import-residents", "residents.csv")] {
        let mut cmd = national(&national_db);
        cmd.arg(kind).arg(national_db.path(file));
        assert!(run(cmd).0.status.success());
    }
    let osaka = node(backend, &national_db, "27");
    let kyoto = node(backend, &national_db, "26");
    let server = TestServer::national(&national_db);
    Federation { national_db, server, osaka, kyoto, cast }
}

async fn signed_post(f: &Federation, key: &NodeSigningKey, path: &str, body: &[u8]) -> (u16, Value) {
    let mut req =
        http_client().post(f.server.url(path)).header("content-type", "application/json").body(body.to_vec());
    for (name, value) in key.sign_now("POST", path, body).pairs() {
        req = req.header(name, value);
    }
    let res = req.send().await.expect("request");
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

/// Opt-in as the node does it: link the identity at the national server, then register her.
fn opt_in(f: &Federation, node: &Node, p: &Person) -> (DbConn, Nurse) {
    let claims = json!({
        "qualification": p.qualification, "registration_number": p.registration_number,
        "family_name": p.family_name, "given_name": p.given_name,
        "family_name_kana": p.family_name_kana, "given_name_kana": p.given_name_kana,
        "birth_date": p.birth_date,
    });
    let (status, answer) = block_on(signed_post(
        f,
        &node.key,
        "/federation/v1/identity-link",
        &serde_json::to_vec(&claims).unwrap(),
    ));
    assert_eq!(status, 200, "{answer}");
    let code = AgencyCode::parse(answer["agency_code"].as_str().unwrap()).unwrap();
    let mut conn = node.db.connect();
    let nurse = nurses::register(
        &mut conn,
        NewNurse {
            agency_code: code,
            qualification: p.qualification.into(),
            registration_number: p.registration_number.clone(),
            family_name: p.family_name.clone(),
            given_name: p.given_name.clone(),
            family_name_kana: p.family_name_kana.clone(),
            given_name_kana: p.given_name_kana.clone(),
            birth_date: chrono::NaiveDate::from_ymd_opt(1985, 4, 1).unwrap(),
            email: "nurse@example.jp".into(),
            phone: None,
            max_distance_km: 20,
        },
    )
    .unwrap();
    (conn, nurse)
}

fn separation() -> NoticeBody {
    NoticeBody::Separation {
        left_on: chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
        reason: SeparationReason::Childcare,
        wish_to_return: true,
        return_when: Some("来年4月ごろ".into()),
    }
}

fn push(f: &Federation, node: &Node) -> String {
    let mut cmd = node_command(&node.db, &node.key_file, &f.server.base_url);
    cmd.arg("push");
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "{stderr}");
    stdout
}

#[derive(QueryableByName, Debug, PartialEq)]
struct NoticeRow {
    #[diesel(sql_type = Text)]
    agency_code: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    body: String,
}

fn national_notices(f: &Federation) -> Vec<NoticeRow> {
    diesel::sql_query("SELECT agency_code, kind, body FROM nurse_notices ORDER BY filed_at")
        .load(&mut f.national_db.connect())
        .unwrap()
}

#[derive(QueryableByName, Debug, PartialEq)]
struct ConsentRow {
    #[diesel(sql_type = Text)]
    prefecture: String,
    #[diesel(sql_type = Text)]
    scope: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    granted: bool,
}

fn national_consents(f: &Federation, code: &str) -> Vec<ConsentRow> {
    diesel::sql_query(
        "SELECT prefecture, scope, granted FROM nurse_consents WHERE agency_code = $1 ORDER BY scope",
    )
    .bind::<Text, _>(code)
    .load(&mut f.national_db.connect())
    .unwrap()
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(db: &TestDb, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Count>(&mut db.connect()).unwrap().n
}

fn opted_in_nurse_reaches_the_national_server_as_her_consent_allows(backend: Backend) {
    let f = federation(backend);
    let (mut conn, hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    consent::record(
        &mut conn,
        &hanako.id,
        &[(ConsentScope::AddressLinkage, true), (ConsentScope::JobSupport, true)],
        Channel::Web,
        None,
    )
    .unwrap();
    notices::file(&mut conn, &hanako.id, &separation(), Channel::Web, None).unwrap();

    let stdout = push(&f, &f.osaka);
    assert!(stdout.contains("3 event(s) acknowledged, 0 parked"), "{stdout}");
    assert_eq!(prefecture_node::sync::cursor(&mut conn).unwrap(), 3);

    let consents = national_consents(&f, &hanako.agency_code);
    assert_eq!(
        consents,
        [
            ConsentRow { prefecture: "27".into(), scope: "address_linkage".into(), granted: true },
            ConsentRow { prefecture: "27".into(), scope: "job_support".into(), granted: true },
        ]
    );
    let held = national_notices(&f);
    assert_eq!(held.len(), 1);
    assert_eq!(
        (held[0].agency_code.as_str(), held[0].kind.as_str()),
        (hanako.agency_code.as_str(), "separation")
    );
    let body: Value = serde_json::from_str(&held[0].body).unwrap();
    assert_eq!(body, serde_json::to_value(separation()).unwrap(), "content arrives unchanged");

    // Pushing again sends nothing and changes nothing.
    assert!(push(&f, &f.osaka).contains("0 event(s) acknowledged"));
    assert_eq!(national_notices(&f).len(), 1);

    // The same person opting in at Kyoto is another code there.
    let (_, at_kyoto) = opt_in(&f, &f.kyoto, &f.cast[0]);
    assert_ne!(at_kyoto.agency_code, hanako.agency_code);

    // Every provision is recorded: two identity links and three pushed events; the chain holds.
    let entries = count(&f.national_db, "SELECT COUNT(*) AS n FROM provisions");
    assert_eq!(entries, 5);
    let (answer_status, entries_for_her) = block_on(signed_post(
        &f,
        &f.osaka.key,
        "/federation/v1/provisions",
        &serde_json::to_vec(&json!({"agency_code": hanako.agency_code})).unwrap(),
    ));
    assert_eq!(answer_status, 200);
    let purposes: Vec<&str> =
        entries_for_her.as_array().unwrap().iter().map(|e| e["purpose"].as_str().unwrap()).collect();
    assert_eq!(
        purposes,
        ["identity_link", "consent_record", "consent_record", "latent_nurse_identification"]
    );
    let mut cmd = national(&f.national_db);
    cmd.args(["audit", "verify"]);
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("5 entries verified"), "{stdout}");
}
both_backends!(opted_in_nurse_reaches_the_national_server_as_her_consent_allows);

fn notice_without_address_linkage_stays_local_and_withdrawal_deletes(backend: Backend) {
    let f = federation(backend);
    let (mut conn, misaki) = opt_in(&f, &f.osaka, &f.cast[1]);
    consent::record(&mut conn, &misaki.id, &[(ConsentScope::JobSupport, true)], Channel::Web, None).unwrap();
    notices::file(&mut conn, &misaki.id, &separation(), Channel::Web, None).unwrap();
    push(&f, &f.osaka);
    assert!(national_notices(&f).is_empty(), "no address_linkage: the notice stayed at the node");
    assert_eq!(national_consents(&f, &misaki.agency_code).len(), 1);

    consent::record(&mut conn, &misaki.id, &[(ConsentScope::AddressLinkage, true)], Channel::Web, None)
        .unwrap();
    notices::file(&mut conn, &misaki.id, &separation(), Channel::Paper, Some("staff")).unwrap();
    push(&f, &f.osaka);
    assert_eq!(national_notices(&f).len(), 1);

    consent::record(&mut conn, &misaki.id, &[(ConsentScope::AddressLinkage, false)], Channel::Web, None)
        .unwrap();
    notices::file(&mut conn, &misaki.id, &separation(), Channel::Web, None).unwrap();
    push(&f, &f.osaka);
    assert!(national_notices(&f).is_empty(), "withdrawal deleted what the scope covered");
    let linkage = national_consents(&f, &misaki.agency_code);
    assert!(linkage.iter().any(|c| c.scope == "address_linkage" && !c.granted));
    assert_eq!(notices::for_nurse(&mut conn, &misaki.id).unwrap().len(), 3, "the node keeps all her notices");
}
both_backends!(notice_without_address_linkage_stays_local_and_withdrawal_deletes);

fn the_running_node_pushes_by_itself(backend: Backend) {
    let f = federation(backend);
    let node_server = TestServer::node(&f.osaka.db, &f.osaka.key_file, &f.server.base_url, "27");
    let (mut conn, yoko) = opt_in(&f, &f.osaka, &f.cast[2]);
    consent::record(&mut conn, &yoko.id, &[(ConsentScope::AddressLinkage, true)], Channel::Web, None)
        .unwrap();
    notices::file(&mut conn, &yoko.id, &separation(), Channel::Web, None).unwrap();
    assert!(
        eventually(Duration::from_secs(20), || national_notices(&f).len() == 1),
        "the node's pusher delivered the notice: {}",
        node_server.log()
    );
    assert!(eventually(Duration::from_secs(5), || prefecture_node::sync::cursor(&mut conn).unwrap() == 2));
}
both_backends!(the_running_node_pushes_by_itself);

fn forged_replayed_duplicate_and_foreign_pushes_change_nothing(backend: Backend) {
    let f = federation(backend);
    let (mut conn, hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    consent::record(&mut conn, &hanako.id, &[(ConsentScope::AddressLinkage, true)], Channel::Web, None)
        .unwrap();
    let filed = notices::file(&mut conn, &hanako.id, &separation(), Channel::Web, None).unwrap();
    let events: Vec<PushedEvent> = outbox::after(&mut conn, 0, 10)
        .unwrap()
        .into_iter()
        .map(|e| PushedEvent {
            seq: e.seq,
            event_id: e.event_id,
            kind: e.kind,
            payload: serde_json::from_str(&e.payload).unwrap(),
        })
        .collect();
    assert_eq!(filed.outbox_seq, Some(2));
    let body = serde_json::to_vec(&PushRequest { events: events.clone() }).unwrap();
    let path = "/federation/v1/push";
    block_on(async {
        // Kyoto pushing Osaka's nurse: refused whole.
        let (status, answer) = signed_post(&f, &f.kyoto.key, path, &body).await;
        assert_eq!(status, 403, "{answer}");
        // An unknown key: refused.
        let (status, _) = signed_post(&f, &NodeSigningKey::generate(), path, &body).await;
        assert_eq!(status, 401);
        // A gap (seq 2 without 1): nothing applied.
        let gap = serde_json::to_vec(&PushRequest { events: vec![events[1].clone()] }).unwrap();
        let (status, answer) = signed_post(&f, &f.osaka.key, path, &gap).await;
        assert_eq!((status, answer["last_seq"].as_i64()), (200, Some(0)));
        assert_eq!(count(&f.national_db, "SELECT COUNT(*) AS n FROM pushed_events"), 0);

        // The real push, then the same events again (a retry after a lost answer): applied once.
        let (status, answer) = signed_post(&f, &f.osaka.key, path, &body).await;
        assert_eq!((status, answer["last_seq"].as_i64()), (200, Some(2)), "{answer}");
        let (status, answer) = signed_post(&f, &f.osaka.key, path, &body).await;
        assert_eq!((status, answer["last_seq"].as_i64()), (200, Some(2)));

        // The very same signed request replayed: refused.
        let headers = f.osaka.key.sign_now("POST", path, &body);
        let send = || {
            let mut req = http_client().post(f.server.url(path)).header("content-type", "application/json");
            for (name, value) in headers.pairs() {
                req = req.header(name, value);
            }
            req.body(body.clone()).send()
        };
        assert_eq!(send().await.unwrap().status().as_u16(), 200);
        assert_eq!(send().await.unwrap().status().as_u16(), 409);
    });
    assert_eq!(national_notices(&f).len(), 1);
    assert_eq!(count(&f.national_db, "SELECT COUNT(*) AS n FROM pushed_events"), 2);
    assert_eq!(count(&f.national_db, "SELECT COUNT(*) AS n FROM nurse_consents"), 1);
}
both_backends!(forged_replayed_duplicate_and_foreign_pushes_change_nothing);

fn a_permanently_bad_event_is_parked_and_the_rest_flow(backend: Backend) {
    let f = federation(backend);
    let (mut conn, hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    // An event no national server can apply (as if written by a newer node version).
    diesel::sql_query(
        "INSERT INTO outbox (seq, event_id, kind, nurse_id, payload, created_at) VALUES (1, 'e-1', 'consent_changed', $1, $2, $3)",
    )
    .bind::<Text, _>(&hanako.id)
    .bind::<Text, _>(json!({"agency_code": hanako.agency_code, "scope": "everything", "granted": true, "version": 1, "text_version": "x", "text_sha256": "x", "recorded_at": "2026-11-26T00:00:00Z"}).to_string())
    .bind::<diesel::sql_types::Timestamp, _>(ncf_shared::time::now_utc())
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query("UPDATE sequences SET last_value = 1 WHERE name = 'outbox'")
        .execute(&mut conn)
        .unwrap();
    consent::record(&mut conn, &hanako.id, &[(ConsentScope::AddressLinkage, true)], Channel::Web, None)
        .unwrap();
    notices::file(&mut conn, &hanako.id, &separation(), Channel::Web, None).unwrap();

    let stdout = push(&f, &f.osaka);
    assert!(stdout.contains("3 event(s) acknowledged, 1 parked"), "{stdout}");
    let parked = outbox::after(&mut conn, 0, 10).unwrap();
    assert!(parked[0].parked_reason.as_deref().unwrap().contains("unknown consent scope"));
    assert!(parked[1..].iter().all(|e| e.parked_reason.is_none()));
    assert_eq!(national_notices(&f).len(), 1, "later events were applied");
}
both_backends!(a_permanently_bad_event_is_parked_and_the_rest_flow);

fn audit_verify_names_the_altered_entry(backend: Backend) {
    let f = federation(backend);
    for p in &f.cast[..3] {
        opt_in(&f, &f.osaka, p);
    }
    let verify = || {
        let mut cmd = national(&f.national_db);
        cmd.args(["audit", "verify"]);
        run(cmd)
    };
    let (out, stdout, _) = verify();
    assert!(out.status.success() && stdout.contains("3 entries verified"), "{stdout}");
    diesel::sql_query("UPDATE provisions SET purpose = 'marketing' WHERE seq = 2")
        .execute(&mut f.national_db.connect())
        .unwrap();
    let (out, _, stderr) = verify();
    assert!(!out.status.success());
    assert!(stderr.contains("broken at entry 2: content does not match its hash (altered)"), "{stderr}");
    diesel::sql_query("DELETE FROM provisions WHERE seq = 3").execute(&mut f.national_db.connect()).unwrap();
    diesel::sql_query("UPDATE provisions SET purpose = 'identity_link' WHERE seq = 2")
        .execute(&mut f.national_db.connect())
        .unwrap();
    let (out, _, stderr) = verify();
    assert!(!out.status.success() && stderr.contains("broken at entry 3: entry missing"), "{stderr}");
}
both_backends!(audit_verify_names_the_altered_entry);
