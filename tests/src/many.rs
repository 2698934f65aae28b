//! Many nodes pushing to one national server at once (issue #4's "all 47 at once"): each node is a
//! real `prefecture-node serve` process with its own database and registered key, holding a queue
//! of notices for one nurse it linked through the national server; all start together over TLS.
//! Used by the CI test (10 nodes × 500 events) and the benchmark (47 × 2,000).

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use ncf_shared::ConsentScope;
use ncf_shared::federation::NodeSigningKey;
use prefecture_node::notices::{self, NoticeBody, SeparationReason};
use prefecture_node::nurses::{self, NewNurse};
use prefecture_node::{Channel, consent};

use crate::{
    Backend, Person, REGISTRY_HEADER, RESIDENTS_HEADER, TestDb, TestServer, national, run, write_csv,
};

pub struct Report {
    pub nodes: usize,
    pub events_per_node: usize,
    /// From the moment every node process was started until the last event was applied.
    pub elapsed: Duration,
    /// Sync rounds that failed and were retried (the nodes' "sync failed" log lines).
    pub retried_rounds: usize,
    /// Requests the national server answered with a status other than 2xx.
    pub failed_requests: usize,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    prefecture: String,
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    event_id: String,
    #[diesel(sql_type = Text)]
    outcome: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Runs the scenario and checks it: every event applied exactly once, the national server's
/// `pushed_events` equal to the nodes' outboxes row by row, the notices all there.
pub fn run_many(backend: Backend, node_count: usize, events_per_node: usize) -> Report {
    assert!((1..=47).contains(&node_count));
    let prefectures: Vec<String> = (1..=node_count).map(|p| format!("{p:02}")).collect();
    let people: Vec<Person> = (0..node_count as u64).map(Person::sample).collect();
    let national_db = national_with(backend, &people);
    let server = TestServer::national(&national_db);

    struct Node {
        prefecture: String,
        db: TestDb,
        key_file: std::path::PathBuf,
    }
    let mut nodes = Vec::new();
    for (prefecture, person) in prefectures.iter().zip(&people) {
        let (db, key, key_file) = new_node(backend, &national_db, prefecture);
        let mut conn = db.connect();
        let nurse = linked_nurse(&mut conn, &server, &key, person, &format!("nurse{prefecture}@example.jp"));
        let notice = NoticeBody::Separation {
            left_on: chrono::NaiveDate::from_ymd_opt(2026, 3, 31).expect("date"),
            reason: SeparationReason::Childcare,
            wish_to_return: true,
            return_when: None,
        };
        // Her proofing and consent events count as the first two of the node's events.
        let items = vec![(nurse.id.as_str(), &notice); events_per_node - 2];
        notices::file_many(&mut conn, &items, Channel::Web, None, None).expect("queue notices");
        nodes.push(Node { prefecture: prefecture.clone(), db, key_file });
    }

    let total = (node_count * events_per_node) as i64;
    let started = Instant::now();
    let running: Vec<TestServer> =
        nodes.iter().map(|n| TestServer::node(&n.db, &n.key_file, &server.base_url, &n.prefecture)).collect();
    let mut national_conn = national_db.connect();
    let deadline = started + Duration::from_secs(900);
    loop {
        let applied = diesel::sql_query("SELECT COUNT(*) AS n FROM pushed_events")
            .get_result::<Count>(&mut national_conn)
            .expect("count")
            .n;
        if applied >= total {
            break;
        }
        assert!(Instant::now() < deadline, "only {applied} of {total} events applied after 15 minutes");
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed();

    // Exactly once, row by row: each node's outbox is what the national server recorded for it.
    let national_rows: Vec<Row> = diesel::sql_query(
        "SELECT prefecture, seq, event_id, outcome FROM pushed_events ORDER BY prefecture, seq",
    )
    .load(&mut national_conn)
    .expect("pushed events");
    assert_eq!(national_rows.len() as i64, total, "no event applied twice");
    assert!(national_rows.iter().all(|r| r.outcome == "applied"), "every event applied");
    for node in &nodes {
        let outbox = prefecture_node::outbox::after(&mut node.db.connect(), 0, i64::MAX).expect("outbox");
        let held: Vec<(i64, &str)> = national_rows
            .iter()
            .filter(|r| r.prefecture == node.prefecture)
            .map(|r| (r.seq, r.event_id.as_str()))
            .collect();
        let sent: Vec<(i64, &str)> = outbox.iter().map(|e| (e.seq, e.event_id.as_str())).collect();
        assert_eq!(held, sent, "node {} row by row", node.prefecture);
    }
    let notices = diesel::sql_query("SELECT COUNT(*) AS n FROM nurse_notices")
        .get_result::<Count>(&mut national_conn)
        .expect("notices")
        .n;
    assert_eq!(notices, (node_count * (events_per_node - 2)) as i64);

    let retried_rounds = running.iter().map(|n| n.log().matches("sync failed").count()).sum();
    let failed_requests =
        server.log().lines().filter(|l| l.contains("/federation/v1/") && !l.contains(" 200 ")).count();
    drop(running);
    Report { nodes: node_count, events_per_node, elapsed, retried_rounds, failed_requests }
}

/// A node's database (migrated) and signing key (also written to a key file), the key registered
/// at the national server for `prefecture` with the real `nodes add` command.
pub fn new_node(
    backend: Backend,
    national_db: &TestDb,
    prefecture: &str,
) -> (TestDb, NodeSigningKey, std::path::PathBuf) {
    let db = TestDb::new(backend);
    prefecture_node::migrate(&mut db.connect()).expect("node migrations");
    let key = NodeSigningKey::generate();
    let key_file = db.path("node.key");
    std::fs::write(&key_file, key.to_base64()).expect("key file");
    let mut cmd = national(national_db);
    cmd.args(["nodes", "add", "--prefecture", prefecture, "--public-key", &key.public_key().to_base64()]);
    assert!(run(cmd).0.status.success(), "nodes add");
    (db, key, key_file)
}

/// A national database with these people in the registry and the resident data, imported by the
/// real commands.
pub fn national_with(backend: Backend, people: &[Person]) -> TestDb {
    let national_db = TestDb::new(backend);
    write_csv(
        &national_db.path("registry.csv"),
        REGISTRY_HEADER,
        &people.iter().map(Person::registry_row).collect::<Vec<_>>(),
    );
    write_csv(
        &national_db.path("residents.csv"),
        RESIDENTS_HEADER,
        &people.iter().map(Person::moved_in_row).collect::<Vec<_>>(),
    );
    for (kind, file) in [("import-registry", "registry.csv"), ("import-residents", "residents.csv")] {
        let mut cmd = national(&national_db);
        cmd.arg(kind).arg(national_db.path(file));
        let (out, _, stderr) = run(cmd);
        assert!(out.status.success(), "{stderr}");
    }
    national_db
}

/// A nurse at a node, linked through the national server with the node's key and registered
/// there, her `address_linkage` consent given: what opting in leaves behind.
pub fn linked_nurse(
    conn: &mut ncf_shared::db::DbConn,
    server: &TestServer,
    key: &NodeSigningKey,
    person: &Person,
    email: &str,
) -> nurses::Nurse {
    let code = crate::block_on(link(server, key, person));
    let nurse = register_linked(conn, person, code, email);
    consent::record(conn, &nurse.id, &[(ConsentScope::AddressLinkage, true)], Channel::Web, None)
        .expect("consent");
    nurses::get(conn, &nurse.id).expect("read").expect("nurse")
}

/// Registers a person the national server linked under `code` at this node, proofed at the
/// counter so that what she files may leave the node.
pub fn register_linked(
    conn: &mut ncf_shared::db::DbConn,
    person: &Person,
    code: ncf_shared::AgencyCode,
    email: &str,
) -> nurses::Nurse {
    let nurse = nurses::register(
        conn,
        NewNurse {
            agency_code: code,
            qualification: person.qualification.into(),
            registration_number: person.registration_number.clone(),
            family_name: person.family_name.clone(),
            given_name: person.given_name.clone(),
            family_name_kana: person.family_name_kana.clone(),
            given_name_kana: person.given_name_kana.clone(),
            birth_date: chrono::NaiveDate::from_ymd_opt(1985, 4, 1).expect("date"),
            email: email.to_string(),
            phone: None,
            max_distance_km: 20,
        },
    )
    .expect("nurse");
    let proof = prefecture_node::proofing::Proof::at_counter("test-staff", "運転免許証").expect("document");
    prefecture_node::proofing::complete(conn, &nurse.id, &proof).expect("proofed");
    nurse
}

/// Links many people, each through the node `node_of(i)` (an index into `keys`), 16 requests in
/// flight; the agency codes in the people's order.
pub async fn link_all(
    server: &TestServer,
    keys: &[NodeSigningKey],
    people: &[Person],
    node_of: impl Fn(usize) -> usize,
) -> Vec<ncf_shared::AgencyCode> {
    let mut codes = Vec::with_capacity(people.len());
    for (chunk_start, chunk) in people.chunks(16).enumerate().map(|(c, ch)| (c * 16, ch)) {
        let links = chunk.iter().enumerate().map(|(j, p)| link(server, &keys[node_of(chunk_start + j)], p));
        for code in futures_util::future::join_all(links).await {
            codes.push(code);
        }
    }
    codes
}

async fn link(server: &TestServer, key: &NodeSigningKey, p: &Person) -> ncf_shared::AgencyCode {
    let claims = serde_json::json!({
        "qualification": p.qualification, "registration_number": p.registration_number,
        "family_name": p.family_name, "given_name": p.given_name,
        "family_name_kana": p.family_name_kana, "given_name_kana": p.given_name_kana,
        "birth_date": p.birth_date,
    });
    let body = serde_json::to_vec(&claims).expect("json");
    let path = "/federation/v1/identity-link";
    let mut req = crate::http_client().post(server.url(path)).header("content-type", "application/json");
    for (name, value) in key.sign_now("POST", path, &body).pairs() {
        req = req.header(name, value);
    }
    let answer: serde_json::Value = req.body(body).send().await.expect("link").json().await.expect("json");
    ncf_shared::AgencyCode::parse(answer["agency_code"].as_str().expect("agency code")).expect("code")
}

/// A national database with `nurses` synthetic people (registry and resident data, imported by
/// the real commands), a national staff account `kosei` with this password, and the figures
/// counted (`national-server figures refresh`).
pub fn national_with_figures(backend: Backend, nurses: u32, password: &str) -> TestDb {
    let db = TestDb::new(backend);
    let data = db.path("data");
    let mut cmd = national(&db);
    cmd.args(["generate-synthetic", "--nurses", &nurses.to_string(), "--out"]).arg(&data);
    assert!(run(cmd).0.status.success());
    for (kind, file) in [("import-registry", "registry.csv"), ("import-residents", "residents.csv")] {
        let mut cmd = national(&db);
        cmd.arg(kind).arg(data.join(file));
        let (out, _, stderr) = run(cmd);
        assert!(out.status.success(), "{stderr}");
    }
    let mut cmd = national(&db);
    cmd.args(["staff", "add", "--username", "kosei", "--display-name", "厚労 花子"])
        .env("NATIONAL_STAFF_PASSWORD", password);
    let (out, stdout, _) = run(cmd);
    assert!(out.status.success());
    assert!(!stdout.contains(password), "a given password is never printed");
    let mut cmd = national(&db);
    cmd.args(["figures", "refresh"]);
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("figures refreshed for"), "{stdout}");
    db
}
