//! Staff search as staff use it on the phone: a name as they hear it (kanji or kana, with or
//! without a space, any width, hiragana), a registration number in full-width digits, a receipt
//! number read out; with filters and sorting; and registrations from before the search key
//! existed found after a restart.

use ncf_shared::AgencyCode;
use ncf_tests::{Backend, TestDb, both_backends};
use prefecture_node::nurses::{self, NewNurse, ProofingFilter, SearchFilter, SortOrder};
use prefecture_node::{Channel, consent, notices};

fn register(conn: &mut ncf_shared::db::DbConn, i: usize, names: [&str; 4], number: &str) -> nurses::Nurse {
    let code = format!("{}{}", "A".repeat(51), ['B', 'C', 'D', 'E'][i]);
    nurses::register(
        conn,
        NewNurse {
            agency_code: AgencyCode::parse(&code).unwrap(),
            qualification: "03".into(),
            registration_number: number.into(),
            family_name: names[0].into(),
            given_name: names[1].into(),
            family_name_kana: names[2].into(),
            given_name_kana: names[3].into(),
            birth_date: chrono::NaiveDate::from_ymd_opt(1966, 11, 14).unwrap(),
            email: format!("nurse{i}@example.jp"),
            phone: None,
            max_distance_km: 20,
        },
    )
    .unwrap()
}

fn names(conn: &mut ncf_shared::db::DbConn, filter: SearchFilter) -> Vec<String> {
    let (found, total) = nurses::search(conn, &filter, 50, 0).unwrap();
    assert_eq!(total as usize, found.len());
    found.into_iter().map(|n| format!("{}{}", n.family_name, n.given_name)).collect()
}

fn query(conn: &mut ncf_shared::db::DbConn, q: &str) -> Vec<String> {
    names(conn, SearchFilter { query: q.into(), ..Default::default() })
}

fn staff_find_people_by_what_they_hear(backend: Backend) {
    let db = TestDb::new(backend);
    let mut conn = db.connect();
    prefecture_node::migrate(&mut conn).unwrap();
    let yuko = register(&mut conn, 1, ["伊藤", "裕子", "イトウ", "ユウコ"], "1234567");
    register(&mut conn, 2, ["伊藤", "美咲", "イトウ", "ミサキ"], "0000042");
    register(&mut conn, 3, ["佐藤", "裕子", "サトウ", "ユウコ"], "7654321");

    for heard in [
        "伊藤 裕子",
        "伊藤裕子",
        "伊藤　裕子",
        "イトウ ユウコ",
        "イトウユウコ",
        "いとう ゆうこ",
        "ｲﾄｳ ﾕｳｺ",
        "ｲﾄｳﾕｳｺ",
    ] {
        assert_eq!(query(&mut conn, heard), ["伊藤裕子"], "{heard}");
    }
    let mut itos = query(&mut conn, "伊藤");
    itos.sort();
    assert_eq!(itos, ["伊藤美咲", "伊藤裕子"]);
    assert_eq!(query(&mut conn, "１２３４５６７"), ["伊藤裕子"], "full-width registration number");
    assert_eq!(query(&mut conn, "42"), ["伊藤美咲"], "a number without its leading zeros");
    assert_eq!(query(&mut conn, "ＮＵＲＳＥ3@example.jp"), ["佐藤裕子"], "an address in any width and case");
    assert!(query(&mut conn, "伊藤 裕").len() == 1 && query(&mut conn, "%").is_empty());

    // A receipt number read out over the phone.
    let filed =
        notices::file(&mut conn, &yuko.id, &support_separation(), Channel::Paper, Some("staff")).unwrap();
    let number = filed.notice.receipt.unwrap();
    let spoken = format!("{}－{}－{}", &number[..3], &number[3..6], &number[6..]);
    assert_eq!(query(&mut conn, &spoken), ["伊藤裕子"]);

    // Filters and sorting.
    let proof = prefecture_node::proofing::Proof::at_counter("staff", "運転免許証").unwrap();
    prefecture_node::proofing::complete(&mut conn, &yuko.id, &proof).unwrap();
    let proofed = SearchFilter { proofing: ProofingFilter::Proofed, ..Default::default() };
    assert_eq!(names(&mut conn, proofed), ["伊藤裕子"]);
    let unproofed = SearchFilter { proofing: ProofingFilter::NotProofed, ..Default::default() };
    assert_eq!(names(&mut conn, unproofed).len(), 2);
    consent::record(&mut conn, &yuko.id, &[(ncf_shared::ConsentScope::JobSupport, true)], Channel::Web, None)
        .unwrap();
    consent::record(
        &mut conn,
        &yuko.id,
        &[(ncf_shared::ConsentScope::JobSupport, false)],
        Channel::Web,
        None,
    )
    .unwrap();
    let job = SearchFilter { consent: Some(ncf_shared::ConsentScope::JobSupport), ..Default::default() };
    assert!(names(&mut conn, job.clone()).is_empty(), "a withdrawn consent does not count");
    consent::record(&mut conn, &yuko.id, &[(ncf_shared::ConsentScope::JobSupport, true)], Channel::Web, None)
        .unwrap();
    assert_eq!(names(&mut conn, job), ["伊藤裕子"]);
    let unsent = SearchFilter { unsent: true, ..Default::default() };
    assert_eq!(names(&mut conn, unsent), ["伊藤裕子"], "her events wait for the national server");
    let kana = names(&mut conn, SearchFilter::default());
    assert_eq!(kana, ["伊藤美咲", "伊藤裕子", "佐藤裕子"], "五十音順");
    let newest = names(&mut conn, SearchFilter { sort: SortOrder::NewestFirst, ..Default::default() });
    assert_eq!(newest.last().map(String::as_str), Some("伊藤裕子"));

    // Registrations from before the search key: filled when the node migrates at start-up.
    use diesel::RunQueryDsl;
    diesel::sql_query("UPDATE nurses SET search_key = ''").execute(&mut conn).unwrap();
    assert!(query(&mut conn, "イトウユウコ").is_empty());
    prefecture_node::migrate(&mut conn).unwrap();
    assert_eq!(query(&mut conn, "イトウユウコ"), ["伊藤裕子"]);
}
both_backends!(staff_find_people_by_what_they_hear);

fn support_separation() -> notices::NoticeBody {
    notices::NoticeBody::Separation {
        left_on: chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
        reason: notices::SeparationReason::Childcare,
        wish_to_return: false,
        return_when: None,
    }
}

/// Her sign-in address: never changed from her own page (a stolen session would keep the account
/// for good); changed by staff at the counter, and then the old address is told. A confirmation
/// page posted twice files once.
fn sign_in_address_changes_only_at_the_counter(backend: Backend) {
    use diesel::prelude::*;
    use prefecture_node::notices::{NoticeBody, Submitted, file_submission};
    let db = TestDb::new(backend);
    let mut conn = db.connect();
    prefecture_node::migrate(&mut conn).unwrap();
    let yuko = register(&mut conn, 1, ["伊藤", "裕子", "イトウ", "ユウコ"], "1234567");
    let change = NoticeBody::Change {
        family_name: None,
        given_name: None,
        address: None,
        email: Some("thief@example.jp".into()),
        phone: None,
    };
    let refused = file_submission(&mut conn, &yuko.id, &change, Channel::Web, None, None, "token-1");
    assert!(
        matches!(&refused, Err(prefecture_node::error::NodeError::Invalid(f)) if f[0].field == "email"),
        "{refused:?}"
    );
    assert_eq!(nurses::get(&mut conn, &yuko.id).unwrap().unwrap().email, "nurse1@example.jp");

    let today = ncf_shared::time::today_jst();
    let first =
        file_submission(&mut conn, &yuko.id, &change, Channel::Paper, Some("staff"), Some(today), "token-2");
    let Ok(Submitted::Filed(filed)) = first else { panic!("{first:?}") };
    assert_eq!(nurses::get(&mut conn, &yuko.id).unwrap().unwrap().email, "thief@example.jp");
    let told: Vec<String> = prefecture_node::schema::mail_outbox::table
        .select(prefecture_node::schema::mail_outbox::to_address)
        .load(&mut conn)
        .unwrap();
    assert_eq!(told, ["nurse1@example.jp"], "the old address is told");

    let again =
        file_submission(&mut conn, &yuko.id, &change, Channel::Paper, Some("staff"), Some(today), "token-2");
    let Ok(Submitted::Again { receipt }) = again else { panic!("{again:?}") };
    assert_eq!(Some(receipt), filed.notice.receipt);
    assert_eq!(notices::for_nurse(&mut conn, &yuko.id).unwrap().len(), 1, "filed once");
    let tomorrow = today.succ_opt().unwrap();
    let future = file_submission(
        &mut conn,
        &yuko.id,
        &change,
        Channel::Paper,
        Some("staff"),
        Some(tomorrow),
        "token-3",
    );
    assert!(matches!(future, Err(prefecture_node::error::NodeError::Invalid(_))));
}
both_backends!(sign_in_address_changes_only_at_the_counter);
