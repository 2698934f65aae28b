//! The federation contract end to end, with real processes over TLS: events a node cannot read yet
//! wait for an upgrade without blocking the ones after them; one bad event in a push is refused
//! on its own; a push answer naming what the node never sent moves nothing; the node checks the
//! national server's certificate and refuses plain HTTP off loopback; certificates reload on
//! SIGHUP.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};
use ncf_shared::contract::{NationalToNode, WithdrawalApplied};
use ncf_shared::{AgencyCode, ConsentScope};
use ncf_tests::{
    Backend, TestDb, TestServer, block_on, both_backends, client_trusting, eventually, node_command, pki, run,
};
use prefecture_node::Channel;
use prefecture_node::nurses::{self, NewNurse};
use prefecture_node::{consent, notices, outbox};
use support::{count, federation, national_notices, opt_in, push, separation};

#[derive(QueryableByName, Debug, PartialEq)]
struct InboxRow {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    state: String,
}

fn inbox(db: &TestDb) -> Vec<InboxRow> {
    diesel::sql_query("SELECT seq, kind, state FROM inbox ORDER BY seq").load(&mut db.connect()).unwrap()
}

fn pull_cursor(db: &TestDb) -> i64 {
    prefecture_node::sync::pull_cursor(&mut db.connect()).unwrap()
}

/// Queues an event for a node at the national server, as its code would.
fn enqueue(f: &support::Federation, prefecture: &str, kind: &str, version: i32, payload: &str) {
    let mut conn = f.national_db.connect();
    let seq: i64 =
        1 + diesel::sql_query("SELECT COALESCE(MAX(seq), 0) AS n FROM node_events WHERE prefecture = $1")
            .bind::<Text, _>(prefecture)
            .get_result::<support::Count>(&mut conn)
            .unwrap()
            .n;
    diesel::sql_query(
        "INSERT INTO node_events (prefecture, seq, event_id, kind, version, payload, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind::<Text, _>(prefecture)
    .bind::<BigInt, _>(seq)
    .bind::<Text, _>(format!("test-{seq}"))
    .bind::<Text, _>(kind)
    .bind::<Integer, _>(version)
    .bind::<Text, _>(payload)
    .bind::<diesel::sql_types::Timestamp, _>(ncf_shared::time::now_utc())
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query(
        "INSERT INTO sequences (name, last_value) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET last_value = excluded.last_value",
    )
    .bind::<Text, _>(format!("node_events:{prefecture}"))
    .bind::<BigInt, _>(seq)
    .execute(&mut conn)
    .unwrap();
}

fn confirmations(db: &TestDb) -> i64 {
    count(db, "SELECT COUNT(*) AS n FROM withdrawal_confirmations")
}

fn unknown_kinds_wait_for_an_upgrade_and_do_not_block(backend: Backend) {
    let f = federation(backend);
    let (_, hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    let code = AgencyCode::parse(&hanako.agency_code).unwrap();
    let confirmation = |version: i32| {
        serde_json::to_string(&NationalToNode::WithdrawalApplied(WithdrawalApplied {
            agency_code: code.clone(),
            scope: ConsentScope::JobSupport,
            version,
            notices_deleted: 0,
            deleted_at: chrono::Utc::now(),
        }))
        .unwrap()
    };
    let payload_of =
        |json: String| serde_json::from_str::<serde_json::Value>(&json).unwrap()["payload"].to_string();
    // 1: a kind this node's code does not know (from a newer national server);
    // 2: a newer version of a kind it knows; 3: a confirmation it reads.
    enqueue(&f, "27", "preference_changed", 1, &format!(r#"{{"agency_code":"{code}"}}"#));
    enqueue(&f, "27", "withdrawal_applied", 2, &payload_of(confirmation(1)));
    enqueue(&f, "27", "withdrawal_applied", 1, &payload_of(confirmation(2)));

    let stdout = push(&f, &f.osaka);
    assert!(stdout.contains("pulled: 1 event(s) applied"), "{stdout}");
    let rows = inbox(&f.osaka.db);
    let states: Vec<(&str, &str)> = rows.iter().map(|r| (r.kind.as_str(), r.state.as_str())).collect();
    assert_eq!(
        states,
        [
            ("preference_changed", "awaiting_upgrade"),
            ("withdrawal_applied", "awaiting_upgrade"),
            ("withdrawal_applied", "applied")
        ]
    );
    assert_eq!(pull_cursor(&f.osaka.db), 3, "the cursor moved over every stored event");
    assert_eq!(confirmations(&f.osaka.db), 1, "the confirmation after the unknown ones was applied");
    assert_eq!(
        prefecture_node::sync::unapplied_counts(&mut f.osaka.db.connect()).unwrap(),
        (0, 2),
        "staff see two events waiting for an upgrade"
    );
    let on_her_page: Vec<String> =
        prefecture_node::sync::unapplied(&mut f.osaka.db.connect(), Some(&hanako.id))
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
    assert_eq!(
        on_her_page,
        ["preference_changed", "withdrawal_applied"],
        "both are shown on her detail page"
    );

    // The upgrade: this build stands in for newer code by reading the stored event at a version
    // it knows (as code that knows version 2 would); the kind it has never heard of stays waiting.
    diesel::sql_query("UPDATE inbox SET version = 1 WHERE seq = 2")
        .execute(&mut f.osaka.db.connect())
        .unwrap();
    let stdout = push(&f, &f.osaka);
    assert!(stdout.contains("pulled: 1 event(s) applied"), "{stdout}");
    assert_eq!(confirmations(&f.osaka.db), 2, "applied after the upgrade");
    let stdout = push(&f, &f.osaka);
    assert!(stdout.contains("pulled: 0 event(s) applied"), "{stdout}");
    assert_eq!(confirmations(&f.osaka.db), 2, "applied once");
    let states: Vec<String> = inbox(&f.osaka.db).into_iter().map(|r| r.state).collect();
    assert_eq!(states, ["awaiting_upgrade", "applied", "applied"]);
}
both_backends!(unknown_kinds_wait_for_an_upgrade_and_do_not_block);

fn a_pulled_event_for_nobody_here_fails_alone(backend: Backend) {
    let f = federation(backend);
    let (_, hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    let stranger = AgencyCode::parse(&"B".repeat(52)).unwrap();
    for code in [stranger, AgencyCode::parse(&hanako.agency_code).unwrap()] {
        let event = NationalToNode::WithdrawalApplied(WithdrawalApplied {
            agency_code: code,
            scope: ConsentScope::TrainingInfo,
            version: 2,
            notices_deleted: 0,
            deleted_at: chrono::Utc::now(),
        });
        let json: serde_json::Value = serde_json::to_value(&event).unwrap();
        enqueue(&f, "27", "withdrawal_applied", 1, &json["payload"].to_string());
    }
    push(&f, &f.osaka);
    let states: Vec<String> = inbox(&f.osaka.db).into_iter().map(|r| r.state).collect();
    assert_eq!(states, ["failed", "applied"]);
    assert_eq!(pull_cursor(&f.osaka.db), 2);
    assert_eq!(confirmations(&f.osaka.db), 1);
    assert_eq!(prefecture_node::sync::unapplied_counts(&mut f.osaka.db.connect()).unwrap(), (1, 0));
}
both_backends!(a_pulled_event_for_nobody_here_fails_alone);

fn an_unknown_agency_code_is_rejected_alone(backend: Backend) {
    let f = federation(backend);
    let (mut conn, hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    // A nurse whose code the national server has no link for (e.g. after a national restore).
    let stranger = nurses::register(
        &mut conn,
        NewNurse {
            agency_code: AgencyCode::parse(&"C".repeat(52)).unwrap(),
            qualification: "03".into(),
            registration_number: "0999999".into(),
            family_name: "見知".into(),
            given_name: "らぬ".into(),
            family_name_kana: "ミシ".into(),
            given_name_kana: "ラヌ".into(),
            birth_date: chrono::NaiveDate::from_ymd_opt(1980, 1, 1).unwrap(),
            email: "stranger@example.jp".into(),
            phone: None,
            max_distance_km: 20,
        },
    )
    .unwrap();
    // 1: her proofing, queued by `opt_in`.
    let grant = [(ConsentScope::AddressLinkage, true)];
    consent::record(&mut conn, &hanako.id, &grant, Channel::Web, None).unwrap(); // 2
    let proof = prefecture_node::proofing::Proof::at_counter("staff", "運転免許証").unwrap();
    prefecture_node::proofing::complete(&mut conn, &stranger.id, &proof).unwrap(); // 3
    notices::file(&mut conn, &hanako.id, &separation(), Channel::Web, None).unwrap(); // 4
    notices::file(&mut conn, &hanako.id, &separation(), Channel::Web, None).unwrap(); // 5
    let stdout = push(&f, &f.osaka);
    assert!(stdout.contains("5 event(s) acknowledged, 1 parked"), "{stdout}");
    let events = outbox::after(&mut conn, 0, 10).unwrap();
    let parked: Vec<(i64, Option<&str>)> = events
        .iter()
        .filter(|e| e.parked_code.is_some())
        .map(|e| (e.seq, e.parked_code.as_deref()))
        .collect();
    assert_eq!(parked, [(3, Some("unknown_agency_code"))]);
    assert!(events[2].parked_reason.as_deref().unwrap().contains("agency code"));
    assert_eq!(national_notices(&f).len(), 2, "events 1, 2, 4 and 5 were applied");
    assert_eq!(count(&f.national_db, "SELECT COUNT(*) AS n FROM pushed_events WHERE outcome = 'applied'"), 4);
    assert_eq!(prefecture_node::sync::cursor(&mut conn).unwrap(), 5);
}
both_backends!(an_unknown_agency_code_is_rejected_alone);

/// A stand-in national server on loopback (plain HTTP is allowed there) that answers every push
/// with a `last_seq` far past anything sent, and every pull with nothing. Returns its URL.
fn lying_national_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let answer = if request_line.contains("/push") {
                r#"{"last_seq":1000,"rejected":[]}"#
            } else {
                r#"{"events":[]}"#
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    url
}

fn a_push_answer_naming_an_unsent_seq_moves_nothing(backend: Backend) {
    let f = federation(backend);
    let (mut conn, hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    consent::record(&mut conn, &hanako.id, &[(ConsentScope::AddressLinkage, true)], Channel::Web, None)
        .unwrap();
    notices::file(&mut conn, &hanako.id, &separation(), Channel::Web, None).unwrap();
    let mut cmd = node_command(&f.osaka.db, &f.osaka.key_file, &lying_national_server());
    cmd.arg("sync");
    let (out, _, stderr) = run(cmd);
    assert!(!out.status.success());
    // Her proofing, her consent, her notice: 3 events sent.
    assert!(stderr.contains("last_seq 1000 but the highest sequence sent was 3"), "{stderr}");
    assert_eq!(prefecture_node::sync::cursor(&mut conn).unwrap(), 0, "the cursor did not move");
    // The real national server then gets everything.
    push(&f, &f.osaka);
    assert_eq!(national_notices(&f).len(), 1);
    assert_eq!(prefecture_node::sync::cursor(&mut conn).unwrap(), 3);
}
both_backends!(a_push_answer_naming_an_unsent_seq_moves_nothing);

fn a_node_given_the_wrong_ca_refuses_to_push(backend: Backend) {
    let f = federation(backend);
    let (mut conn, hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    consent::record(&mut conn, &hanako.id, &[(ConsentScope::AddressLinkage, true)], Channel::Web, None)
        .unwrap();
    let other = pki::LocalCa::new(f.osaka.db.dir.path(), "other");
    let mut cmd = node_command(&f.osaka.db, &f.osaka.key_file, &f.server.base_url);
    cmd.env("NODE_NATIONAL_CA", &other.ca_file).arg("sync");
    let (out, _, stderr) = run(cmd);
    assert!(!out.status.success());
    assert!(stderr.contains("UnknownIssuer") || stderr.contains("certificate"), "{stderr}");
    assert_eq!(count(&f.national_db, "SELECT COUNT(*) AS n FROM pushed_events"), 0);
    assert_eq!(prefecture_node::sync::cursor(&mut conn).unwrap(), 0);
}
both_backends!(a_node_given_the_wrong_ca_refuses_to_push);

fn plain_http_to_another_machine_is_refused_at_start(backend: Backend) {
    let db = TestDb::new(backend);
    let key = db.path("node.key");
    std::fs::write(&key, ncf_shared::federation::NodeSigningKey::generate().to_base64()).unwrap();
    for national in ["http://national.example.jp", "http://national.example.jp:8080/"] {
        let mut cmd = node_command(&db, &key, national);
        cmd.args(["serve", "--prefecture", "27", "--listen", "127.0.0.1:0"]);
        let started = std::time::Instant::now();
        let (out, _, stderr) = run(cmd);
        assert!(!out.status.success());
        assert!(stderr.contains("plain http to another machine"), "{stderr}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    // Nothing was set up: the check comes before the database is touched.
    assert!(db.url.starts_with("postgres") || !db.path("node.db").exists());
    // And a node's own pages are served in clear only on loopback.
    let mut cmd = node_command(&db, &key, "https://national.example.jp");
    cmd.args(["serve", "--prefecture", "27", "--listen", "0.0.0.0:0", "--mail-to-log"]);
    let (out, _, stderr) = run(cmd);
    assert!(!out.status.success());
    assert!(stderr.contains("--tls-cert"), "{stderr}");
}
both_backends!(plain_http_to_another_machine_is_refused_at_start);

fn certificates_reload_on_sighup_without_a_restart(backend: Backend) {
    let db = TestDb::new(backend);
    let dir = db.dir.path();
    let first = pki::LocalCa::new(dir, "first");
    let second = pki::LocalCa::new(dir, "second");
    let cert = first.issue(dir, "server");
    let server = TestServer::national_with(
        &db,
        &["--tls-cert".as_ref(), cert.cert_file.as_os_str(), "--tls-key".as_ref(), cert.key_file.as_os_str()],
    );
    assert!(server.base_url.starts_with("https://"));
    let health = |ca: &std::path::Path| {
        let client = client_trusting(ca);
        let url = server.url("/healthz");
        block_on(async move { client.get(url).send().await.map(|r| r.status().as_u16()) })
    };
    assert_eq!(health(&first.ca_file).unwrap(), 200);
    assert!(health(&second.ca_file).is_err(), "a client trusting another CA is refused");

    // Renewal: new files in place, then SIGHUP.
    second.issue(dir, "server");
    let kill = std::process::Command::new("kill").args(["-HUP", &server.pid().to_string()]).status().unwrap();
    assert!(kill.success());
    assert!(
        eventually(Duration::from_secs(10), || health(&second.ca_file).is_ok_and(|s| s == 200)),
        "the new certificate is served: {}",
        server.log()
    );
    assert!(health(&first.ca_file).is_err(), "the old one is not");
    assert!(server.log().contains("TLS certificate reloaded"));

    // A broken renewal keeps the working certificate.
    std::fs::write(&cert.key_file, "not a key").unwrap();
    std::process::Command::new("kill").args(["-HUP", &server.pid().to_string()]).status().unwrap();
    assert!(eventually(Duration::from_secs(10), || server.log().contains("TLS certificate not reloaded")));
    assert_eq!(health(&second.ca_file).unwrap(), 200);
}
both_backends!(certificates_reload_on_sighup_without_a_restart);

fn an_event_the_national_server_cannot_read_yet_is_held(backend: Backend) {
    let mut f = federation(backend);
    let (mut conn, hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    consent::record(&mut conn, &hanako.id, &[(ConsentScope::AddressLinkage, true)], Channel::Web, None)
        .unwrap();
    // 1: her proofing; 2: her consent.
    notices::file(&mut conn, &hanako.id, &separation(), Channel::Web, None).unwrap(); // 3
    notices::file(&mut conn, &hanako.id, &separation(), Channel::Web, None).unwrap(); // 4
    // Event 3 as a newer node would write it: a version this national server does not read yet.
    diesel::sql_query("UPDATE outbox SET version = 9 WHERE seq = 3").execute(&mut conn).unwrap();
    let stdout = push(&f, &f.osaka);
    assert!(stdout.contains("4 event(s) acknowledged, 0 parked"), "{stdout}");
    assert_eq!(national_notices(&f).len(), 1, "event 4 applied behind the held one");
    assert_eq!(
        count(
            &f.national_db,
            "SELECT COUNT(*) AS n FROM pushed_events WHERE outcome = 'held' AND payload IS NOT NULL"
        ),
        1
    );

    // The upgrade: this build stands in for code that reads version 9 by reading the stored event
    // at a version it knows; the server applies it when it starts.
    diesel::sql_query("UPDATE pushed_events SET version = 1 WHERE seq = 3")
        .execute(&mut f.national_db.connect())
        .unwrap();
    f.server.kill9();
    f.server = TestServer::national(&f.national_db);
    assert!(
        f.server.log().contains("applied events held for an upgrade") || {
            eventually(Duration::from_secs(5), || {
                f.server.log().contains("applied events held for an upgrade")
            })
        },
        "{}",
        f.server.log()
    );
    assert_eq!(national_notices(&f).len(), 2, "the held notice is applied once");
    assert_eq!(count(&f.national_db, "SELECT COUNT(*) AS n FROM pushed_events WHERE outcome = 'applied'"), 4);
    assert_eq!(count(&f.national_db, "SELECT COUNT(*) AS n FROM pushed_events WHERE payload IS NOT NULL"), 0);
    f.server.kill9();
    f.server = TestServer::national(&f.national_db);
    assert_eq!(national_notices(&f).len(), 2, "and only once");
}
both_backends!(an_event_the_national_server_cannot_read_yet_is_held);

fn her_withdrawal_drops_what_the_national_server_holds_unread(backend: Backend) {
    let mut f = federation(backend);
    let (mut conn, hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    let linkage = |granted| [(ConsentScope::AddressLinkage, granted)];
    consent::record(&mut conn, &hanako.id, &linkage(true), Channel::Web, None).unwrap(); // 2 (1: her proofing)
    notices::file(&mut conn, &hanako.id, &separation(), Channel::Web, None).unwrap(); // 3, unread there
    diesel::sql_query("UPDATE outbox SET version = 9 WHERE seq = 3").execute(&mut conn).unwrap();
    push(&f, &f.osaka);
    assert_eq!(count(&f.national_db, "SELECT COUNT(*) AS n FROM pushed_events WHERE outcome = 'held'"), 1);

    // She withdraws, then gives it again: what was held for her before is gone for good.
    consent::record(&mut conn, &hanako.id, &linkage(false), Channel::Web, None).unwrap(); // 4
    consent::record(&mut conn, &hanako.id, &linkage(true), Channel::Web, None).unwrap(); // 5
    push(&f, &f.osaka);
    assert_eq!(
        count(
            &f.national_db,
            "SELECT COUNT(*) AS n FROM pushed_events WHERE seq = 3 AND outcome = 'rejected' AND reject_code = 'not_covered' AND payload IS NULL"
        ),
        1
    );
    // Even a server that could read it now never applies it.
    diesel::sql_query("UPDATE pushed_events SET version = 1 WHERE seq = 3")
        .execute(&mut f.national_db.connect())
        .unwrap();
    f.server.kill9();
    f.server = TestServer::national(&f.national_db);
    assert!(national_notices(&f).is_empty());

    // In one push too: a held event and the withdrawal after it.
    notices::file(&mut conn, &hanako.id, &separation(), Channel::Web, None).unwrap(); // 6
    diesel::sql_query("UPDATE outbox SET version = 9 WHERE seq = 6").execute(&mut conn).unwrap();
    consent::record(&mut conn, &hanako.id, &linkage(false), Channel::Web, None).unwrap(); // 7
    push(&f, &f.osaka);
    assert_eq!(count(&f.national_db, "SELECT COUNT(*) AS n FROM pushed_events WHERE outcome = 'held'"), 0);
    assert_eq!(count(&f.national_db, "SELECT COUNT(*) AS n FROM pushed_events WHERE payload IS NOT NULL"), 0);
}
both_backends!(her_withdrawal_drops_what_the_national_server_holds_unread);

/// A node that sends a notice under an id the national server already holds, with other content
/// (a bug, or a node misbehaving): the stored notice stays, and the status follows what is stored,
/// not what was sent.
fn a_reused_notice_id_does_not_decide_her_status(backend: Backend) {
    let f = federation(backend);
    let (mut conn, hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    let every: Vec<(ConsentScope, bool)> = ConsentScope::ALL.into_iter().map(|s| (s, true)).collect();
    consent::record(&mut conn, &hanako.id, &every, Channel::Web, None).unwrap();
    let first = notices::file(&mut conn, &hanako.id, &separation(), Channel::Web, None).unwrap();
    push(&f, &f.osaka);
    let deciding = |f: &support::Federation| {
        count(&f.national_db, "SELECT COUNT(*) AS n FROM latest_notices WHERE working")
    };
    assert_eq!(deciding(&f), 0, "her separation decides");
    assert_eq!(count(&f.national_db, "SELECT COUNT(*) AS n FROM person_status WHERE latent"), 1);

    // She is at work from tomorrow's date on, but the node sends it under the separation's id.
    let working = prefecture_node::notices::NoticeBody::EmploymentStatus {
        employed: true,
        workplace_type: Some(prefecture_node::notices::WorkplaceType::Hospital),
        workplace_lgcode: None,
        weekly_hours: Some(32),
        as_of: Some(ncf_shared::time::today_jst()),
    };
    let second = notices::file(&mut conn, &hanako.id, &working, Channel::Web, None).unwrap();
    let seq = second.outbox_seq.expect("it may leave");
    #[derive(QueryableByName)]
    struct Payload {
        #[diesel(sql_type = Text)]
        payload: String,
    }
    let payload = diesel::sql_query("SELECT payload FROM outbox WHERE seq = $1")
        .bind::<BigInt, _>(seq)
        .get_result::<Payload>(&mut conn)
        .unwrap()
        .payload;
    let reused = payload.replace(&second.notice.id, &first.notice.id);
    assert_ne!(reused, payload, "the payload names its notice id");
    diesel::sql_query("UPDATE outbox SET payload = $1 WHERE seq = $2")
        .bind::<Text, _>(&reused)
        .bind::<BigInt, _>(seq)
        .execute(&mut conn)
        .unwrap();
    push(&f, &f.osaka);
    assert_eq!(national_notices(&f).len(), 1, "the id is held once, as first stored");
    assert!(national_notices(&f)[0].body.contains("separation"));
    assert_eq!(deciding(&f), 0, "what was sent under a held id does not decide");
    assert_eq!(count(&f.national_db, "SELECT COUNT(*) AS n FROM person_status WHERE latent"), 1);
}
both_backends!(a_reused_notice_id_does_not_decide_her_status);
