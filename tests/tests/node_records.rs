//! Prefecture-node records on both backends: notices and consents are append-only, the outbox is
//! gap-free and only ever holds what the nurse's consents cover.

use diesel::prelude::*;
use ncf_shared::db::DbConn;
use ncf_shared::{AgencyCode, ConsentScope};
use ncf_tests::{Backend, TestDb, both_backends};
use prefecture_node::Channel;
use prefecture_node::notices::{self, NoticeBody, SeparationReason, WorkplaceType};
use prefecture_node::nurses::{self, NewNurse, Nurse};
use prefecture_node::{consent, outbox};

fn node_db(backend: Backend) -> (TestDb, DbConn) {
    let db = TestDb::new(backend);
    let mut conn = db.connect();
    prefecture_node::migrate(&mut conn).expect("node migrations");
    (db, conn)
}

fn nurse(conn: &mut DbConn, n: u8) -> Nurse {
    let code = AgencyCode::parse(&format!("{}{}", "A".repeat(51), char::from(b'A' + n))).expect("code shape");
    let nurse = nurses::register(
        conn,
        NewNurse {
            agency_code: code,
            qualification: "03".into(),
            registration_number: format!("{:07}", 2_000_000 + u32::from(n)),
            family_name: "山田".into(),
            given_name: "花子".into(),
            family_name_kana: "ヤマダ".into(),
            given_name_kana: "ハナコ".into(),
            birth_date: chrono::NaiveDate::from_ymd_opt(1985, 4, 1).unwrap(),
            email: format!("hanako{n}@example.jp"),
            phone: None,
            max_distance_km: 20,
        },
    )
    .expect("register nurse");
    // Proofed at the counter: before that nothing about her is queued at all (seq 1 is her
    // proofing; `notices_wait_for_proofing` shows the unproofed case).
    let proof = prefecture_node::proofing::Proof::at_counter("staff-1", "運転免許証").unwrap();
    prefecture_node::proofing::complete(conn, &nurse.id, &proof).expect("proofed");
    nurses::get(conn, &nurse.id).unwrap().unwrap()
}

fn separation() -> NoticeBody {
    NoticeBody::Separation {
        left_on: chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
        reason: SeparationReason::Childcare,
        wish_to_return: true,
        return_when: Some("来年4月ごろ".into()),
    }
}

fn employed() -> NoticeBody {
    NoticeBody::EmploymentStatus {
        employed: true,
        workplace_type: Some(WorkplaceType::Clinic),
        workplace_lgcode: Some("271021".into()),
        weekly_hours: Some(24),
        as_of: None,
    }
}

fn outbox_kinds(conn: &mut DbConn) -> Vec<(i64, String)> {
    outbox::after(conn, 0, 1000).unwrap().into_iter().map(|e| (e.seq, e.kind)).collect()
}

fn notices_leave_only_under_address_linkage(backend: Backend) {
    let (_db, mut conn) = node_db(backend);
    let hanako = nurse(&mut conn, 1);

    // No consent yet: the notice is kept, nothing is queued but her proofing.
    let filed = notices::file(&mut conn, &hanako.id, &separation(), Channel::Web, None).unwrap();
    assert_eq!(filed.outbox_seq, None);
    assert_eq!(outbox_kinds(&mut conn), [(1, "identity_proofed".to_string())]);

    // Consents: one record and one event per real change.
    let written = consent::record(
        &mut conn,
        &hanako.id,
        &[
            (ConsentScope::AddressLinkage, true),
            (ConsentScope::JobSupport, true),
            (ConsentScope::TrainingInfo, false),
        ],
        Channel::Web,
        None,
    )
    .unwrap();
    assert_eq!(written.len(), 2, "declining a scope never given is not a change");
    assert!(written.iter().all(|r| r.version == 1 && r.text_version == consent::TEXT_VERSION));
    assert_eq!(written[0].text_sha256, consent::text_sha256(ConsentScope::AddressLinkage));

    let filed = notices::file(&mut conn, &hanako.id, &employed(), Channel::Paper, Some("staff-1")).unwrap();
    // 1 proofed, 2–3 the two grants, 4 her distance (it travels once job_support is given).
    assert_eq!(filed.outbox_seq, Some(5));

    // Withdrawal travels (the national server must delete), later notices do not.
    let withdrawn =
        consent::record(&mut conn, &hanako.id, &[(ConsentScope::AddressLinkage, false)], Channel::Web, None)
            .unwrap();
    assert_eq!((withdrawn[0].version, withdrawn[0].granted), (2, false));
    let filed = notices::file(&mut conn, &hanako.id, &separation(), Channel::Web, None).unwrap();
    assert_eq!(filed.outbox_seq, None);
    assert_eq!(
        outbox_kinds(&mut conn),
        [
            (1, "identity_proofed".to_string()),
            (2, "consent_changed".to_string()),
            (3, "consent_changed".to_string()),
            (4, "preference_changed".to_string()),
            (5, "notice_filed".to_string()),
            (6, "consent_changed".to_string()),
        ]
    );

    // What left carries her agency code and the notice (and her distance), never her name.
    let events = outbox::after(&mut conn, 4, 10).unwrap();
    let notice_event: serde_json::Value = serde_json::from_str(&events[0].payload).unwrap();
    assert_eq!(notice_event["agency_code"], hanako.agency_code);
    assert_eq!(notice_event["notice"]["kind"], "employment_status");
    assert_eq!(notice_event["notice"]["workplace_lgcode"], "271021");
    assert!(events.iter().all(|e| !e.payload.contains("山田") && !e.payload.contains("hanako")));
    let withdrawal: serde_json::Value = serde_json::from_str(&events[1].payload).unwrap();
    assert_eq!(
        (withdrawal["scope"].as_str(), withdrawal["granted"].as_bool()),
        (Some("address_linkage"), Some(false))
    );

    // Same decision again: nothing written. Granting again: version 3.
    assert!(
        consent::record(&mut conn, &hanako.id, &[(ConsentScope::JobSupport, true)], Channel::Web, None)
            .unwrap()
            .is_empty()
    );
    let again =
        consent::record(&mut conn, &hanako.id, &[(ConsentScope::AddressLinkage, true)], Channel::Web, None)
            .unwrap();
    assert_eq!(again[0].version, 3);
    assert!(consent::current(&mut conn, &hanako.id).unwrap().granted(ConsentScope::AddressLinkage));
    assert_eq!(consent::history(&mut conn, &hanako.id).unwrap().len(), 4);

    // All three notices are kept; the latest by effective date decides (issue #7): the employment
    // status dated the day it was filed, not the later-filed separation dated 31 March.
    let mine = notices::for_nurse(&mut conn, &hanako.id).unwrap();
    assert_eq!(mine.len(), 3);
    assert_eq!(notices::employed(&mine), Some(true));
    assert_eq!(mine[1].channel, "paper");
    assert_eq!(mine[1].entered_by.as_deref(), Some("staff-1"));
}
both_backends!(notices_leave_only_under_address_linkage);

fn bad_notices_and_unknown_nurses_change_nothing(backend: Backend) {
    let (_db, mut conn) = node_db(backend);
    let hanako = nurse(&mut conn, 2);
    consent::record(&mut conn, &hanako.id, &[(ConsentScope::AddressLinkage, true)], Channel::Web, None)
        .unwrap();
    let before = outbox_kinds(&mut conn);
    let bad = NoticeBody::EmploymentStatus {
        employed: true,
        workplace_type: None,
        workplace_lgcode: Some("000000".into()),
        weekly_hours: None,
        as_of: None,
    };
    match notices::file(&mut conn, &hanako.id, &bad, Channel::Web, None) {
        Err(prefecture_node::error::NodeError::Invalid(errors)) => {
            let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
            assert_eq!(fields, ["workplace_type", "workplace_lgcode"]);
        }
        other => panic!("expected field errors, got {other:?}"),
    }
    assert!(matches!(
        notices::file(&mut conn, "no-such-nurse", &separation(), Channel::Web, None),
        Err(prefecture_node::error::NodeError::NotFound("nurse"))
    ));
    assert!(notices::for_nurse(&mut conn, &hanako.id).unwrap().is_empty());
    assert_eq!(outbox_kinds(&mut conn), before);
}
both_backends!(bad_notices_and_unknown_nurses_change_nothing);

fn outbox_sequence_has_no_gaps(backend: Backend) {
    let (db, mut conn) = node_db(backend);
    let hanako = nurse(&mut conn, 3);
    consent::record(&mut conn, &hanako.id, &[(ConsentScope::AddressLinkage, true)], Channel::Web, None)
        .unwrap();

    // A change that is rolled back gives its number back.
    let rolled_back: Result<(), diesel::result::Error> = conn.transaction(|c| {
        let filed = notices::file(c, &hanako.id, &separation(), Channel::Web, None).map_err(|e| match e {
            prefecture_node::error::NodeError::Database(e) => e,
            _ => diesel::result::Error::RollbackTransaction,
        })?;
        assert_eq!(filed.outbox_seq, Some(3));
        Err(diesel::result::Error::RollbackTransaction)
    });
    assert!(rolled_back.is_err());
    assert_eq!(
        notices::file(&mut conn, &hanako.id, &separation(), Channel::Web, None).unwrap().outbox_seq,
        Some(3)
    );

    // Writers on separate connections at once: every number used exactly once.
    let nurse_id = hanako.id.clone();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let db = &db;
            let nurse_id = nurse_id.clone();
            scope.spawn(move || {
                let mut conn = db.connect();
                for _ in 0..15 {
                    notices::file(&mut conn, &nurse_id, &separation(), Channel::Web, None)
                        .expect("concurrent filing");
                }
            });
        }
    });
    let seqs: Vec<i64> = outbox::after(&mut conn, 0, 1000).unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=63).collect::<Vec<_>>());
    let mut count_conn = db.connect();
    let notices: i64 = prefecture_node::schema::notices::table.count().get_result(&mut count_conn).unwrap();
    assert_eq!(notices, 61);
}
both_backends!(outbox_sequence_has_no_gaps);

fn notices_wait_for_proofing(backend: Backend) {
    let (_db, mut conn) = node_db(backend);
    let code = AgencyCode::parse(&"B".repeat(52)).unwrap();
    let unproofed = nurses::register(
        &mut conn,
        NewNurse {
            agency_code: code,
            qualification: "03".into(),
            registration_number: "2000100".into(),
            family_name: "山田".into(),
            given_name: "花子".into(),
            family_name_kana: "ヤマダ".into(),
            given_name_kana: "ハナコ".into(),
            birth_date: chrono::NaiveDate::from_ymd_opt(1985, 4, 1).unwrap(),
            email: "unproofed@example.jp".into(),
            phone: Some("090-1234-5678".into()),
            max_distance_km: 20,
        },
    )
    .unwrap();
    let all: Vec<(ConsentScope, bool)> = ConsentScope::ALL.into_iter().map(|s| (s, true)).collect();
    let written = consent::record(&mut conn, &unproofed.id, &all, Channel::Web, None).unwrap();
    assert_eq!(written.len(), 4, "her decisions are kept");
    assert!(written.iter().all(|r| r.proofing == "none"));
    let filed = notices::file(&mut conn, &unproofed.id, &separation(), Channel::Web, None).unwrap();
    assert_eq!((filed.outbox_seq, filed.notice.proofing.as_str()), (None, "none"));
    assert!(outbox_kinds(&mut conn).is_empty(), "nothing about her is queued before she is proofed");

    // Proofed: her proofing first, then her decisions and her notice, in order (her contact
    // details never go to the national server: they are handed over, sealed, only if she moves).
    let proof = prefecture_node::proofing::Proof::at_counter("staff-9", "パスポート").unwrap();
    let done = prefecture_node::proofing::complete(&mut conn, &unproofed.id, &proof).unwrap();
    assert_eq!(done.queued, 7);
    let kinds: Vec<String> = outbox_kinds(&mut conn).into_iter().map(|(_, k)| k).collect();
    assert_eq!(
        kinds,
        [
            "identity_proofed",
            "consent_changed",
            "consent_changed",
            "consent_changed",
            "consent_changed",
            "preference_changed",
            "notice_filed",
        ]
    );
    let nurse = nurses::get(&mut conn, &unproofed.id).unwrap().unwrap();
    assert_eq!(
        (nurse.proofing_method.as_deref(), nurse.proofed_by.as_deref(), nurse.proofing_document.as_deref()),
        (Some("counter"), Some("staff-9"), Some("パスポート"))
    );
    let later = notices::file(&mut conn, &unproofed.id, &separation(), Channel::Web, None).unwrap();
    assert_eq!((later.outbox_seq, later.notice.proofing.as_str()), (Some(8), "counter"));
    // Proofing again changes nothing; an unknown document is refused.
    assert!(prefecture_node::proofing::complete(&mut conn, &unproofed.id, &proof).unwrap().already);
    assert!(prefecture_node::proofing::Proof::at_counter("staff-9", "名刺").is_err());
}
both_backends!(notices_wait_for_proofing);
