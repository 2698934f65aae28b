//! Sync from a prefecture node to the national server with real processes on loopback: what
//! leaves is what the consents cover, each event is applied once, withdrawals delete, strangers are
//! refused, and every provision is in the hash-chained record.

mod support;

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::Text;
use ncf_shared::ConsentScope;
use ncf_shared::contract::Envelope;
use ncf_shared::federation::{NodeSigningKey, PushRequest};
use ncf_tests::{Backend, TestServer, block_on, both_backends, eventually, http_client, national, run};
use prefecture_node::Channel;
use prefecture_node::{consent, notices, outbox};
use serde_json::{Value, json};
use support::*;

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
    // Her proofing (queued when she was proofed at the counter), two consents, her distance (it
    // travels once job_support is given), one notice.
    assert!(stdout.contains("5 event(s) acknowledged, 0 parked"), "{stdout}");
    assert_eq!(prefecture_node::sync::cursor(&mut conn).unwrap(), 5);

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

    // Every provision is recorded: two identity links, five pushed events and her status told to
    // Osaka (latent); the chain holds.
    let entries = count(&f.national_db, "SELECT COUNT(*) AS n FROM provisions");
    assert_eq!(entries, 8);
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
        [
            "identity_link",
            "identity_proofing",
            "consent_record",
            "consent_record",
            // Her distance, for job information near her home.
            "posting_matches",
            "latent_nurse_identification",
            // Her status told to Osaka. Kyoto's link is not a hand-over: Osaka is not shown it.
            "latent_status",
        ]
    );
    let mut cmd = national(&f.national_db);
    cmd.args(["audit", "verify"]);
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("8 entries verified"), "{stdout}");
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
        "the node's sync delivered the notice: {}",
        node_server.log()
    );
    assert!(eventually(Duration::from_secs(5), || prefecture_node::sync::cursor(&mut conn).unwrap() == 3));
}
both_backends!(the_running_node_pushes_by_itself);

fn forged_replayed_duplicate_and_foreign_pushes_change_nothing(backend: Backend) {
    let f = federation(backend);
    let (mut conn, hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    consent::record(&mut conn, &hanako.id, &[(ConsentScope::AddressLinkage, true)], Channel::Web, None)
        .unwrap();
    let filed = notices::file(&mut conn, &hanako.id, &separation(), Channel::Web, None).unwrap();
    let events: Vec<Envelope> =
        outbox::after(&mut conn, 0, 10).unwrap().iter().map(|e| e.envelope().unwrap()).collect();
    assert_eq!(filed.outbox_seq, Some(3), "after her proofing and her consent");
    let body = serde_json::to_vec(&PushRequest { events: events.clone() }).unwrap();
    let path = "/federation/v1/push";
    block_on(async {
        // Kyoto pushing Osaka's nurse: every event refused on its own, nothing applied.
        let (status, answer) = signed_post(&f, &f.kyoto.key, path, &body).await;
        assert_eq!(status, 200, "{answer}");
        let codes: Vec<&str> =
            answer["rejected"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
        assert_eq!(codes, ["unknown_agency_code"; 3], "{answer}");
        assert!(national_notices(&f).is_empty());
        // An unknown key: refused.
        let (status, _) = signed_post(&f, &NodeSigningKey::generate(), path, &body).await;
        assert_eq!(status, 401);
        // A gap (seq 2 without 1): nothing applied.
        let gap = serde_json::to_vec(&PushRequest { events: vec![events[1].clone()] }).unwrap();
        let (status, answer) = signed_post(&f, &f.osaka.key, path, &gap).await;
        assert_eq!((status, answer["last_seq"].as_i64()), (200, Some(0)));
        assert_eq!(
            count(&f.national_db, "SELECT COUNT(*) AS n FROM pushed_events WHERE prefecture = '27'"),
            0
        );

        // The real push, then the same events again (a retry after a lost answer): applied once.
        let (status, answer) = signed_post(&f, &f.osaka.key, path, &body).await;
        assert_eq!((status, answer["last_seq"].as_i64()), (200, Some(3)), "{answer}");
        let (status, answer) = signed_post(&f, &f.osaka.key, path, &body).await;
        assert_eq!((status, answer["last_seq"].as_i64()), (200, Some(3)));

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
    assert_eq!(count(&f.national_db, "SELECT COUNT(*) AS n FROM pushed_events WHERE prefecture = '27'"), 3);
    assert_eq!(count(&f.national_db, "SELECT COUNT(*) AS n FROM nurse_consents"), 1);
}
both_backends!(forged_replayed_duplicate_and_foreign_pushes_change_nothing);

fn a_permanently_bad_event_is_parked_and_the_rest_flow(backend: Backend) {
    let f = federation(backend);
    let (mut conn, hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    // After her proofing (seq 1), an event no national server can apply (as if written by a newer node version).
    diesel::sql_query(
        "INSERT INTO outbox (seq, event_id, kind, nurse_id, payload, created_at) VALUES (2, 'e-1', 'consent_changed', $1, $2, $3)",
    )
    .bind::<Text, _>(&hanako.id)
    .bind::<Text, _>(json!({"agency_code": hanako.agency_code, "scope": "everything", "granted": true, "version": 1, "text_version": "x", "text_sha256": "x", "recorded_at": "2026-11-26T00:00:00Z"}).to_string())
    .bind::<diesel::sql_types::Timestamp, _>(ncf_shared::time::now_utc())
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query("UPDATE sequences SET last_value = 2 WHERE name = 'outbox'")
        .execute(&mut conn)
        .unwrap();
    consent::record(&mut conn, &hanako.id, &[(ConsentScope::AddressLinkage, true)], Channel::Web, None)
        .unwrap();
    notices::file(&mut conn, &hanako.id, &separation(), Channel::Web, None).unwrap();

    let stdout = push(&f, &f.osaka);
    assert!(stdout.contains("4 event(s) acknowledged, 1 parked"), "{stdout}");
    let parked = outbox::after(&mut conn, 1, 10).unwrap();
    assert_eq!(parked[0].parked_code.as_deref(), Some("malformed"));
    let reason = parked[0].parked_reason.as_deref().unwrap();
    assert!(reason.contains("unknown variant") && !reason.contains("everything"), "{reason}");
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

fn withdrawal_is_confirmed_back_to_the_node_once(backend: Backend) {
    let f = federation(backend);
    let (mut conn, hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    consent::record(&mut conn, &hanako.id, &[(ConsentScope::AddressLinkage, true)], Channel::Web, None)
        .unwrap();
    notices::file(&mut conn, &hanako.id, &separation(), Channel::Web, None).unwrap();
    notices::file(&mut conn, &hanako.id, &separation(), Channel::Web, None).unwrap();
    consent::record(&mut conn, &hanako.id, &[(ConsentScope::AddressLinkage, false)], Channel::Web, None)
        .unwrap();

    let stdout = push(&f, &f.osaka);
    assert!(stdout.contains("pulled: 1 event(s) applied"), "{stdout}");
    #[derive(QueryableByName, Debug, PartialEq)]
    struct Confirmation {
        #[diesel(sql_type = Text)]
        scope: String,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        version: i32,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        notices_deleted: i64,
    }
    let confirmations = || -> Vec<Confirmation> {
        diesel::sql_query("SELECT scope, version, notices_deleted FROM withdrawal_confirmations")
            .load(&mut f.osaka.db.connect())
            .unwrap()
    };
    assert_eq!(
        confirmations(),
        [Confirmation { scope: "address_linkage".into(), version: 2, notices_deleted: 2 }],
        "the national server reports what it deleted"
    );

    // Syncing again applies nothing twice; Kyoto's queue holds nothing of Osaka's.
    let stdout = push(&f, &f.osaka);
    assert!(stdout.contains("pulled: 0 event(s) applied"), "{stdout}");
    assert_eq!(confirmations().len(), 1);
    assert_eq!(count(&f.osaka.db, "SELECT COUNT(*) AS n FROM inbox"), 1);
    let pull = |key: &NodeSigningKey, body: Value| {
        block_on(signed_post(&f, key, "/federation/v1/pull", &serde_json::to_vec(&body).unwrap()))
    };
    let (status, answer) = pull(&f.kyoto.key, json!({"after": 0, "limit": 100}));
    assert_eq!((status, answer["events"].as_array().map(Vec::len)), (200, Some(0)));
    let (status, answer) = pull(&f.osaka.key, json!({"after": 0, "limit": 0}));
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = pull(&f.osaka.key, json!({"after": 0, "limit": 10}));
    assert_eq!((status, answer["events"][0]["kind"].as_str()), (200, Some("withdrawal_applied")));
}
both_backends!(withdrawal_is_confirmed_back_to_the_node_once);

fn contact_details_never_reach_the_national_server(backend: Backend) {
    let f = federation(backend);
    let (mut conn, hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    let all: Vec<(ConsentScope, bool)> = ConsentScope::ALL.into_iter().map(|s| (s, true)).collect();
    consent::record(&mut conn, &hanako.id, &all, Channel::Web, None).unwrap();
    let change = notices::NoticeBody::Change {
        family_name: Some("中村".into()),
        given_name: None,
        address: Some("大阪市北区梅田1-1-1".into()),
        email: Some("hanako.new@example.jp".into()),
        phone: Some("090-1234-5678".into()),
    };
    let filed = notices::file(&mut conn, &hanako.id, &change, Channel::Web, None).unwrap();
    assert_eq!(filed.outbox_seq, None, "a change notice stays at the node, whatever her consents");
    push(&f, &f.osaka);
    let nurse = prefecture_node::nurses::get(&mut conn, &hanako.id).unwrap().unwrap();
    assert_eq!((nurse.family_name.as_str(), nurse.email.as_str()), ("中村", "hanako.new@example.jp"));
    for needle in ["example.jp", "090-1234-5678", "梅田"] {
        assert_eq!(national_text_containing(&f, needle), Vec::<String>::new(), "{needle}");
    }
    assert!(national_notices(&f).is_empty(), "a change notice never travels as a notice");
}
both_backends!(contact_details_never_reach_the_national_server);
