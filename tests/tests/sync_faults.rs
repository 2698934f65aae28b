//! Exactly once in effect through cut links and crashes: a TCP proxy cuts the node's link in the
//! middle of a sync, and either side is killed with SIGKILL during a push of 10,000 events. After
//! recovery the national server holds every event once, with the node's content.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use ncf_shared::ConsentScope;
use ncf_shared::db::DbConn;
use ncf_tests::{Backend, ChaosProxy, TestDb, TestServer, both_backends, eventually};
use prefecture_node::{Channel, consent, notices};
use serde_json::Value;
use support::*;

/// Queues `n` notices for one opted-in nurse (one transaction) and returns how many events wait.
fn queue(f: &Federation, n: usize) -> (DbConn, i64) {
    let (mut conn, nurse) = opt_in(f, &f.osaka, &f.cast[0]);
    consent::record(
        &mut conn,
        &nurse.id,
        &[(ConsentScope::AddressLinkage, true), (ConsentScope::JobSupport, true)],
        Channel::Web,
        None,
    )
    .unwrap();
    ncf_shared::db::write_transaction(&mut conn, |c| -> Result<(), prefecture_node::error::NodeError> {
        for _ in 0..n {
            notices::file(c, &nurse.id, &separation(), Channel::Web, None)?;
        }
        Ok(())
    })
    .unwrap();
    // Her proofing, her two consents, her distance (it travels with job_support), her notices.
    (conn, n as i64 + 4)
}

#[derive(QueryableByName)]
struct Seq {
    #[diesel(sql_type = BigInt)]
    seq: i64,
}

#[derive(QueryableByName)]
struct Held {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    body: String,
}

fn applied(f: &Federation) -> i64 {
    count(&f.national_db, "SELECT COUNT(*) AS n FROM pushed_events WHERE prefecture = '27'")
}

/// Nothing lost, nothing twice: every seq once, every notice with the node's content.
fn assert_exactly_once(f: &Federation, node_db: &TestDb, total: i64) {
    let mut national = f.national_db.connect();
    let seqs: Vec<i64> =
        diesel::sql_query("SELECT seq FROM pushed_events WHERE prefecture = '27' ORDER BY seq")
            .load::<Seq>(&mut national)
            .unwrap()
            .into_iter()
            .map(|s| s.seq)
            .collect();
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "each (node, seq) applied once, none missing");
    let parse = |rows: Vec<Held>| -> BTreeMap<String, Value> {
        rows.into_iter().map(|h| (h.id, serde_json::from_str(&h.body).unwrap())).collect()
    };
    let at_national = parse(
        diesel::sql_query("SELECT notice_id AS id, body FROM nurse_notices").load(&mut national).unwrap(),
    );
    let at_node =
        parse(diesel::sql_query("SELECT id, body FROM notices").load(&mut node_db.connect()).unwrap());
    assert_eq!(at_national.len() as i64, total - 4, "all but her proofing, two consents and her distance");
    assert_eq!(at_national, at_node, "the same notices with the same content");
    // One entry per applied event, her identity link, and her status told to the node once
    // (latent from the first batch on).
    assert_eq!(count(&f.national_db, "SELECT COUNT(*) AS n FROM provisions"), total + 2);
}

fn a_cut_link_loses_and_duplicates_nothing(backend: Backend) {
    let f = federation(backend);
    let (_conn, total) = queue(&f, 10_000);
    let proxy = ChaosProxy::start(&f.server.addr());
    let node = TestServer::node(&f.osaka.db, &f.osaka.key_file, &proxy.url, "27");
    assert!(eventually(Duration::from_secs(60), || applied(&f) > 0), "sync started: {}", node.log());
    proxy.cut();
    let at_cut = applied(&f);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(at_cut < total, "cut during the push ({at_cut} of {total} applied)");
    // A push carries at most 1,000 events (MAX_EVENTS_PER_PUSH).
    assert!(applied(&f) <= at_cut + 1000, "at most the batch in flight lands after the cut");
    proxy.restore();
    assert!(eventually(Duration::from_secs(90), || applied(&f) == total), "sync resumed: {}", node.log());
    assert!(node.log().contains("sync failed"), "the node saw the cut and retried");
    assert_exactly_once(&f, &f.osaka.db, total);
}
both_backends!(a_cut_link_loses_and_duplicates_nothing);

fn killing_the_national_server_mid_push_loses_and_duplicates_nothing(backend: Backend) {
    let mut f = federation(backend);
    let (_conn, total) = queue(&f, 10_000);
    let proxy = ChaosProxy::start(&f.server.addr());
    let node = TestServer::node(&f.osaka.db, &f.osaka.key_file, &proxy.url, "27");
    assert!(eventually(Duration::from_secs(60), || applied(&f) > 0), "sync started: {}", node.log());
    // Kill first, then start the replacement: the old process can finish nothing after this, and
    // two servers never share the database.
    f.server.kill9();
    let at_kill = applied(&f);
    assert!(at_kill < total, "killed during the push ({at_kill} of {total} applied)");
    f.server = TestServer::national(&f.national_db);
    proxy.retarget(&f.server.addr());
    assert!(eventually(Duration::from_secs(120), || applied(&f) == total), "sync finished: {}", node.log());
    assert_exactly_once(&f, &f.osaka.db, total);
}
both_backends!(killing_the_national_server_mid_push_loses_and_duplicates_nothing);

fn killing_the_node_mid_push_loses_and_duplicates_nothing(backend: Backend) {
    let f = federation(backend);
    let (_conn, total) = queue(&f, 10_000);
    let mut node = TestServer::node(&f.osaka.db, &f.osaka.key_file, &f.server.base_url, "27");
    assert!(eventually(Duration::from_secs(60), || applied(&f) > 0), "sync started: {}", node.log());
    node.kill9();
    let at_kill = applied(&f);
    assert!(at_kill < total, "killed during the push ({at_kill} of {total} applied)");
    let node = TestServer::node(&f.osaka.db, &f.osaka.key_file, &f.server.base_url, "27");
    assert!(eventually(Duration::from_secs(120), || applied(&f) == total), "sync finished: {}", node.log());
    assert_exactly_once(&f, &f.osaka.db, total);
}
both_backends!(killing_the_node_mid_push_loses_and_duplicates_nothing);
