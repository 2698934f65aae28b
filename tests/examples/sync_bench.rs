//! Sync benchmark (issues #3, #4): 100,000 events from one node to the national server, signed and
//! durably applied, release build, real processes on loopback, over plain HTTP and over TLS in
//! the same run (the TLS cost in percent).
//!
//!   cargo run --release -p ncf-tests --example sync_bench                 # SQLite, 100,000 events
//!   cargo run --release -p ncf-tests --example sync_bench -- 20000 postgres   # with TEST_DATABASE_URL
//!
//! (Without `TEST_DATABASE_URL` PostgreSQL runs on the tests' throwaway cluster, which has fsync off:
//! not comparable to figures measured on a real server.)
//!
//! Prints (1) the backlog drain: all events queued first, then the node starts pushing — events/s;
//! (2) streaming: the node runs while events are written in commits of 1,000 — events/s and the
//! time from the last write at the node to its application at the national server; (3) the
//! latency of single events written to an idle node (median and worst of 20).

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use ncf_shared::db::DbConn;
use ncf_shared::federation::NodeSigningKey;
use ncf_tests::{Backend, Person, REGISTRY_HEADER, TestDb, TestServer, national, run, write_csv};
use prefecture_node::Channel;
use prefecture_node::notices::{self, NoticeBody, SeparationReason};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Events applied: the node's cursor at the national server, which moves in the transaction that
/// applies a batch (`run_many` compares the rows themselves). Read rather than `COUNT(*)`, which
/// scans a growing table every few milliseconds and would take a core from the processes measured.
fn applied(conn: &mut DbConn) -> i64 {
    diesel::sql_query("SELECT last_seq AS n FROM node_cursors WHERE prefecture = '27'")
        .get_result::<Count>(conn)
        .map_or(0, |c| c.n)
}

fn wait_for(conn: &mut DbConn, target: i64) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(600);
    while applied(conn) < target {
        assert!(Instant::now() < deadline, "sync did not finish in 10 minutes");
        std::thread::sleep(Duration::from_millis(5));
    }
    Instant::now()
}

fn notice() -> NoticeBody {
    NoticeBody::Separation {
        left_on: chrono::NaiveDate::from_ymd_opt(2026, 3, 31).expect("date"),
        reason: SeparationReason::Childcare,
        wish_to_return: true,
        return_when: Some("来年4月ごろ".into()),
    }
}

fn write(conn: &mut DbConn, nurse_id: &str, n: usize) {
    // One commit of n notices, as a bundle of paper notices is filed (`bulk::upload_separations`).
    let body = notice();
    let items = vec![(nurse_id, &body); n];
    notices::file_many(conn, &items, Channel::Web, None, None).expect("queue notices");
}

fn main() {
    ncf_shared::tls::install_provider();
    let args: Vec<String> = std::env::args().collect();
    let events: usize = args.get(1).map_or(100_000, |a| a.parse().expect("number of events"));
    let backend =
        if args.get(2).is_some_and(|b| b == "postgres") { Backend::Postgres } else { Backend::Sqlite };
    println!(
        "# sync benchmark: {events} events, {backend:?}, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // The same run over plain HTTP (allowed on loopback) and over TLS, so the TLS cost is measured
    // against an anchor taken minutes apart on the same machine.
    let plain = scenario(events, backend, false);
    let tls = scenario(events, backend, true);
    println!(
        "TLS cost: backlog drain {:+.1} %, streaming {:+.1} %",
        (plain.0 / tls.0 - 1.0) * 100.0,
        (plain.1 / tls.1 - 1.0) * 100.0
    );
}

/// One full scenario; returns (drain events/s, streaming events/s).
fn scenario(events: usize, backend: Backend, tls: bool) -> (f64, f64) {
    println!("## over {}", if tls { "HTTPS (TLS 1.3, rustls)" } else { "plain HTTP" });

    // National server with one licence, the node's key registered.
    let national_db = TestDb::new(backend);
    let person = Person::sample(0);
    write_csv(&national_db.path("registry.csv"), REGISTRY_HEADER, &[person.registry_row()]);
    let mut cmd = national(&national_db);
    cmd.arg("import-registry").arg(national_db.path("registry.csv"));
    assert!(run(cmd).0.status.success());
    let key = NodeSigningKey::generate();
    let mut cmd = national(&national_db);
    cmd.args(["nodes", "add", "--prefecture", "27", "--public-key", &key.public_key().to_base64()]);
    assert!(run(cmd).0.status.success());
    let server =
        if tls { TestServer::national(&national_db) } else { TestServer::national_with(&national_db, &[]) };

    // The node: one nurse linked through the national server, consents given.
    let node_db = TestDb::new(backend);
    let key_file = node_db.path("node.key");
    std::fs::write(&key_file, key.to_base64()).expect("key file");
    let mut node_conn = node_db.connect();
    prefecture_node::migrate(&mut node_conn).expect("migrations");
    let nurse = ncf_tests::many::linked_nurse(&mut node_conn, &server, &key, &person, "bench@example.jp");
    let mut national_conn = national_db.connect();

    // (1) Backlog drain.
    write(&mut node_conn, &nurse.id, events);
    let started = Instant::now();
    let node = TestServer::node(&node_db, &key_file, &server.base_url, "27");
    // Her proofing and consent events come first (seq 1 and 2).
    let done = wait_for(&mut national_conn, events as i64 + 2);
    let drain = done - started;
    let drain_rate = events as f64 / drain.as_secs_f64();
    println!(
        "backlog drain:  {events} events in {:.2} s = {:.0} events/s (includes the node's start-up)",
        drain.as_secs_f64(),
        events as f64 / drain.as_secs_f64()
    );

    // (2) Streaming: written in commits of 1,000 while the node pushes.
    let base = events as i64 + 2;
    let started = Instant::now();
    let mut last_write = started;
    let mut writing = Duration::ZERO;
    for _ in 0..events / 1000 {
        let before = Instant::now();
        write(&mut node_conn, &nurse.id, 1000);
        last_write = Instant::now();
        writing += last_write - before;
    }
    let done = wait_for(&mut national_conn, base + (events / 1000 * 1000) as i64);
    let stream_rate = (events / 1000 * 1000) as f64 / (done - started).as_secs_f64();
    println!(
        "streaming:      {} events in {:.2} s = {:.0} events/s; last write to its application: {:.0} ms; the writer alone spent {:.2} s filing the notices",
        events / 1000 * 1000,
        (done - started).as_secs_f64(),
        (events / 1000 * 1000) as f64 / (done - started).as_secs_f64(),
        (done - last_write).as_secs_f64() * 1000.0,
        writing.as_secs_f64()
    );

    // (3) Single events on an idle node (the node polls every 100 ms when idle).
    let mut target = applied(&mut national_conn);
    let mut latencies = Vec::new();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(150));
        write(&mut node_conn, &nurse.id, 1);
        let written = Instant::now();
        target += 1;
        latencies.push((wait_for(&mut national_conn, target) - written).as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "single events:  write to application median {:.0} ms, worst {:.0} ms (idle poll 100 ms)",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    drop(node);
    (drain_rate, stream_rate)
}
