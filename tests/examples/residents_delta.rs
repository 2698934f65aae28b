//! Residents delta (issue #7, measure 2): 10,000 proofed, consenting nurses live in Osaka, Kyoto
//! and Hyogo, each opted in at the node where she lives; a residents file moves every one of them
//! to the next of the three prefectures. Prints the seconds from the start of `import-residents`
//! to the last of the 3 node processes having applied its events: 転出 (`moved_out`) and the new
//! status at the old node, her sealed contact relayed through the national server, the pending
//! hand-over (`moved_in`) at the new node. Checks that every hand-over arrived exactly once.
//!
//!   cargo run --release -p ncf-tests --example residents_delta                    # SQLite and PostgreSQL
//!   cargo run --release -p ncf-tests --example residents_delta -- 10000 sqlite
//!
//! PostgreSQL uses `TEST_DATABASE_URL`, or the tests' throwaway cluster (fsync off) without it.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use ncf_shared::ConsentScope;
use ncf_tests::{Backend, Person, RESIDENTS_HEADER, TestDb, TestServer, national, run, write_csv};
use prefecture_node::notices::{NoticeBody, SeparationReason};
use prefecture_node::{Channel, consent, notices};

/// The three prefectures, each with a ward where her address is.
const PLACES: [(&str, &str, &str); 3] = [
    ("27", "271021", "大阪市都島区1丁目1番1号"),
    ("26", "261025", "京都市上京区1丁目2番3号"),
    ("28", "281018", "神戸市東灘区1丁目4番5号"),
];

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(conn: &mut ncf_shared::db::DbConn, sql: &str, prefecture: Option<&str>) -> i64 {
    let query = diesel::sql_query(sql);
    match prefecture {
        Some(p) => query.bind::<Text, _>(p).get_result::<Count>(conn),
        None => query.get_result::<Count>(conn),
    }
    .expect("count")
    .n
}

struct Node {
    prefecture: &'static str,
    db: TestDb,
    key_file: std::path::PathBuf,
}

/// Whether every node has stored and applied everything the national server queued for it.
/// Polled every 20 ms: the connections stay open (`node_conns` in `nodes`' order).
fn nodes_caught_up(
    national_conn: &mut ncf_shared::db::DbConn,
    nodes: &[Node],
    node_conns: &mut [ncf_shared::db::DbConn],
) -> bool {
    nodes.iter().zip(node_conns.iter_mut()).all(|(node, conn)| {
        let queued =
            count(national_conn, "SELECT COUNT(*) AS n FROM node_events WHERE prefecture = $1", Some(node.prefecture));
        let applied = count(conn, "SELECT COUNT(*) AS n FROM inbox WHERE state = 'applied'", None);
        let pending = count(conn, "SELECT COUNT(*) AS n FROM outbox WHERE seq > (SELECT value FROM sync_state WHERE name = 'push_cursor')", None);
        applied == queued && pending == 0
    })
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not done after {} s", limit.as_secs());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_delta(backend: Backend, people: usize) {
    let cast: Vec<Person> = (0..people as u64)
        .map(|i| {
            let mut p = Person::sample(i);
            p.lgcode = PLACES[i as usize % 3].1;
            p
        })
        .collect();
    let national_db = ncf_tests::many::national_with(backend, &cast);
    let server = TestServer::national(&national_db);
    let mut nodes = Vec::new();
    let mut keys = Vec::new();
    for (prefecture, _, _) in PLACES {
        let (db, key, key_file) = ncf_tests::many::new_node(backend, &national_db, prefecture);
        nodes.push(Node { prefecture, db, key_file });
        keys.push(key);
    }

    // Each nurse opts in where she lives: linked, proofed, every consent given, a separation.
    let setup = Instant::now();
    let codes = ncf_tests::block_on(ncf_tests::many::link_all(&server, &keys, &cast, |i| i % 3));
    let separation = NoticeBody::Separation {
        left_on: chrono::NaiveDate::from_ymd_opt(2026, 3, 31).expect("date"),
        reason: SeparationReason::Childcare,
        wish_to_return: true,
        return_when: None,
    };
    let mut conns: Vec<_> = nodes.iter().map(|n| n.db.connect()).collect();
    for (i, (person, code)) in cast.iter().zip(codes).enumerate() {
        let conn = &mut conns[i % 3];
        let nurse = ncf_tests::many::register_linked(conn, person, code, &format!("nurse{i}@example.jp"));
        let all: Vec<(ConsentScope, bool)> = ConsentScope::ALL.into_iter().map(|s| (s, true)).collect();
        consent::record(conn, &nurse.id, &all, Channel::Web, None).expect("consents");
        notices::file(conn, &nurse.id, &separation, Channel::Web, None).expect("notice");
    }
    drop(conns);
    let running: Vec<TestServer> =
        nodes.iter().map(|n| TestServer::node(&n.db, &n.key_file, &server.base_url, n.prefecture)).collect();
    let mut national_conn = national_db.connect();
    let mut node_conns: Vec<_> = nodes.iter().map(|n| n.db.connect()).collect();
    wait_until("opt-ins synced", Duration::from_secs(900), || {
        count(&mut national_conn, "SELECT COUNT(*) AS n FROM person_status WHERE latent", None)
            == people as i64
            && nodes_caught_up(&mut national_conn, &nodes, &mut node_conns)
    });
    eprintln!("# {backend:?}: {people} nurses opted in and synced in {:.1} s", setup.elapsed().as_secs_f64());

    // Everyone moves to the next prefecture.
    let rows: Vec<String> = cast
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (_, lgcode, address) = PLACES[(i + 1) % 3];
            format!("{},address_changed,2026-11-01,{lgcode},{address},,", p.my_number)
        })
        .collect();
    let delta = national_db.path("moves.csv");
    write_csv(&delta, RESIDENTS_HEADER, &rows);
    let started = Instant::now();
    let mut cmd = national(&national_db);
    cmd.arg("import-residents").arg(&delta);
    let (out, _, stderr) = run(cmd);
    assert!(out.status.success(), "{stderr}");
    let imported = started.elapsed();
    wait_until("hand-overs applied", Duration::from_secs(900), || {
        count(&mut national_conn, "SELECT COUNT(*) AS n FROM transfers WHERE state = 'relayed'", None)
            == people as i64
            && nodes_caught_up(&mut national_conn, &nodes, &mut node_conns)
    });
    let elapsed = started.elapsed();

    // Exactly once: each node holds one pending hand-over per nurse who moved in, and told
    // 転出 once per nurse who moved out.
    for node in &nodes {
        let conn = &mut node.db.connect();
        let moved_in = count(conn, "SELECT COUNT(*) AS n FROM transfers_in", None);
        let moved_out = count(conn, "SELECT COUNT(*) AS n FROM inbox WHERE kind = 'moved_out'", None);
        let here = PLACES.iter().position(|p| p.0 == node.prefecture).expect("a place");
        let left = (0..people).filter(|i| i % 3 == here).count() as i64;
        let arrived = (0..people).filter(|i| (i + 1) % 3 == here).count() as i64;
        assert_eq!(moved_out, left, "node {}: 転出 once each", node.prefecture);
        assert_eq!(moved_in, arrived, "node {}: one pending hand-over each", node.prefecture);
    }
    let retried: usize = running.iter().map(|n| n.log().matches("sync failed").count()).sum();
    println!(
        "{backend:?}: {people} moves: import-residents {:.2} s; last of 3 nodes applied its events {:.2} s after the import started; {retried} retried sync rounds",
        imported.as_secs_f64(),
        elapsed.as_secs_f64(),
    );
}

fn main() {
    ncf_shared::tls::install_provider();
    let args: Vec<String> = std::env::args().collect();
    let people: usize = args.get(1).map_or(10_000, |a| a.parse().expect("number of people"));
    let backends: Vec<Backend> = match args.get(2).map(String::as_str) {
        Some("sqlite") => vec![Backend::Sqlite],
        Some("postgres") => vec![Backend::Postgres],
        _ => vec![Backend::Sqlite, Backend::Postgres],
    };
    println!(
        "# residents delta benchmark: {people} address changes across 3 nodes, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for backend in backends {
        run_delta(backend, people);
    }
}
