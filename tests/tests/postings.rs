//! Jobs and training near home (issue #8), with real processes on both backends: a Tokyo node
//! publishes postings, they travel to the national server on the non-personal path, and a latent
//! nurse living in Kawasaki (Kanagawa) gets the ones within her distance on her list at the
//! Kanagawa node — across the prefecture border — and nothing she did not ask for.

mod support;

use chrono::Duration;
use diesel::prelude::*;
use diesel::sql_types::Text;
use ncf_shared::posting::{EmploymentType, PostingBody, PostingKind, PostingPlace, TrainingDetails};
use ncf_shared::{ConsentScope, Prefecture, Qualification};
use ncf_tests::{Backend, Person, TestDb, TestServer, block_on, both_backends};
use prefecture_node::{Channel, consent, notices};
use support::*;

const KAWASAKI_KU: &str = "141313";
const MEGURO: &str = "131105"; // 12.4 km from Kawasaki-ku's point
const HACHIOJI: &str = "132012"; // 38.3 km

fn kanagawa() -> Prefecture {
    Prefecture::from_code("14").unwrap()
}

struct Setup {
    national_db: TestDb,
    server: TestServer,
    tokyo: Node,
    kanagawa: Node,
    cast: Vec<Person>,
}

fn setup(backend: Backend) -> Setup {
    let cast: Vec<Person> = (0..2)
        .map(|i| Person { lgcode: KAWASAKI_KU, ..Person::sample(i) })
        .collect();
    let national_db = ncf_tests::many::national_with(backend, &cast);
    let tokyo = node(backend, &national_db, "13");
    let kanagawa = node(backend, &national_db, "14");
    let server = TestServer::national(&national_db);
    Setup { national_db, server, tokyo, kanagawa, cast }
}

fn posting(kind: PostingKind, title: &str, lgcode: &str) -> PostingBody {
    let today = ncf_shared::time::today_jst();
    PostingBody {
        kind,
        title: title.into(),
        description: "ブランクのある方も歓迎します。".into(),
        facility_name: "東京テスト病院".into(),
        facility_contact: "03-0000-0000（看護部）".into(),
        place: PostingPlace::Municipality { lgcode: lgcode.into() },
        qualifications: vec![Qualification::NURSE, Qualification::ASSISTANT_NURSE],
        employment_types: if kind == PostingKind::Job { vec![EmploymentType::DaysOnly] } else { vec![] },
        hours: "8:30〜17:15".into(),
        wage: None,
        training: (kind == PostingKind::Training).then(|| TrainingDetails {
            starts_on: today + Duration::days(30),
            ends_on: today + Duration::days(31),
            hours: 12,
            capacity: 20,
            fee_yen: 0,
        }),
        valid_from: today - Duration::days(1),
        valid_until: today + Duration::days(60),
    }
}

fn publish(s: &Setup, body: &PostingBody) -> String {
    prefecture_node::postings::create(&mut s.tokyo.db.connect(), "tokyo-staff", body).unwrap().unwrap()
}

/// A latent nurse at the Kanagawa node: opted in, proofed, the scopes given, a separation filed.
fn latent_nurse(s: &Setup, p: &Person, scopes: &[ConsentScope]) -> prefecture_node::nurses::Nurse {
    let (mut conn, nurse) = opt_in_at(&s.server, &s.kanagawa, p);
    let decisions: Vec<(ConsentScope, bool)> = scopes.iter().map(|s| (*s, true)).collect();
    consent::record(&mut conn, &nurse.id, &decisions, Channel::Web, None).unwrap();
    notices::file(&mut conn, &nurse.id, &separation(), Channel::Web, None).unwrap();
    nurse
}

/// Her list at her node, as her page shows it: (title, distance in km rounded).
fn list_of(s: &Setup, nurse_id: &str) -> Vec<(String, PostingKind, i64)> {
    prefecture_node::postings::matches_for(
        &mut s.kanagawa.db.connect(),
        kanagawa(),
        nurse_id,
        ncf_shared::time::today_jst(),
    )
    .unwrap()
    .into_iter()
    .map(|m| (m.body.title, m.kind, (f64::from(m.distance_m) / 1000.0).round() as i64))
    .collect()
}

fn sync(s: &Setup, node: &Node) -> String {
    sync_at(&s.server, node)
}

#[derive(QueryableByName)]
struct Provided {
    #[diesel(sql_type = Text)]
    recipient: String,
    #[diesel(sql_type = Text)]
    fields: String,
}

fn a_kawasaki_nurse_sees_tokyo_postings_within_her_distance(backend: Backend) {
    let s = setup(backend);
    let all = [
        ConsentScope::AddressLinkage,
        ConsentScope::JobSupport,
        ConsentScope::TrainingInfo,
        ConsentScope::ShareWithResidencePrefecture,
    ];
    let hanako = latent_nurse(&s, &s.cast[0], &all);
    // The second nurse wants jobs only.
    let misaki = latent_nurse(&s, &s.cast[1], &[ConsentScope::AddressLinkage, ConsentScope::JobSupport]);
    sync(&s, &s.kanagawa);

    let near = publish(&s, &posting(PostingKind::Job, "目黒の病棟看護師", MEGURO));
    let far = publish(&s, &posting(PostingKind::Job, "八王子の訪問看護", HACHIOJI));
    publish(&s, &posting(PostingKind::Training, "復職支援研修（目黒）", MEGURO));
    let out = sync(&s, &s.tokyo);
    assert!(out.contains("pushed: 3 posting(s)"), "{out}");
    sync(&s, &s.kanagawa);

    assert_eq!(
        list_of(&s, &hanako.id),
        [
            ("目黒の病棟看護師".to_string(), PostingKind::Job, 12),
            ("復職支援研修（目黒）".to_string(), PostingKind::Training, 12),
        ],
        "at 20 km she gets the Tokyo job 12 km away and the training, not the one 38 km away"
    );
    assert_eq!(
        list_of(&s, &misaki.id),
        [("目黒の病棟看護師".to_string(), PostingKind::Job, 12)],
        "without training_info no training reaches her list"
    );

    // She widens her distance to 50 km: the preference travels, and both jobs are hers.
    prefecture_node::nurses::set_distance(&mut s.kanagawa.db.connect(), &hanako.id, 50).unwrap();
    sync(&s, &s.kanagawa);
    sync(&s, &s.kanagawa);
    let titles: Vec<String> = list_of(&s, &hanako.id).into_iter().map(|m| m.0).collect();
    assert_eq!(titles, ["目黒の病棟看護師", "復職支援研修（目黒）", "八王子の訪問看護"], "nearest first");

    // Every list sent is a provision to her home node, and none went to Tokyo.
    let provided: Vec<Provided> = diesel::sql_query(
        "SELECT recipient, fields FROM provisions WHERE purpose = 'posting_matches' ORDER BY seq",
    )
    .load(&mut s.national_db.connect())
    .unwrap();
    assert!(provided.iter().any(|p| p.recipient == "node:14" && p.fields == "postings:job"));
    assert!(provided.iter().all(|p| p.recipient == "node:14" || p.fields == "preference:distance"));

    // Withdrawn in Tokyo: gone from her list at the next sync. Closed (the last day moved to
    // yesterday): gone too.
    prefecture_node::postings::withdraw(&mut s.tokyo.db.connect(), &near).unwrap().unwrap();
    let mut closed = posting(PostingKind::Job, "八王子の訪問看護", HACHIOJI);
    closed.valid_until = ncf_shared::time::today_jst() - Duration::days(1);
    closed.valid_from = closed.valid_until - Duration::days(10);
    prefecture_node::postings::update(&mut s.tokyo.db.connect(), &far, &closed).unwrap().unwrap();
    sync(&s, &s.tokyo);
    sync(&s, &s.kanagawa);
    let titles: Vec<String> = list_of(&s, &hanako.id).into_iter().map(|m| m.0).collect();
    assert_eq!(titles, ["復職支援研修（目黒）"]);
    let held: i64 = count(
        &s.national_db,
        "SELECT COUNT(*) AS n FROM match_entries WHERE posting_id IN (SELECT posting_id FROM postings WHERE withdrawn OR valid_until < CURRENT_DATE)",
    );
    assert_eq!(held, 0, "the national lists hold no closed posting");
    assert_eq!(
        list_of(&s, &misaki.id),
        [],
        "her only job was withdrawn"
    );

    // Withdrawing job_support empties her job list; her distance is deleted with the last of the
    // two scopes.
    consent::record(
        &mut s.kanagawa.db.connect(),
        &hanako.id,
        &[(ConsentScope::TrainingInfo, false), (ConsentScope::JobSupport, false)],
        Channel::Web,
        None,
    )
    .unwrap();
    sync(&s, &s.kanagawa);
    sync(&s, &s.kanagawa);
    assert_eq!(list_of(&s, &hanako.id), []);
    assert_eq!(count(&s.national_db, "SELECT COUNT(*) AS n FROM match_preferences WHERE prefecture = '14' AND distance_km = 50"), 0);
}

both_backends!(a_kawasaki_nurse_sees_tokyo_postings_within_her_distance);

fn the_national_server_refuses_a_bad_posting_and_says_why(backend: Backend) {
    let s = setup(backend);
    let mut bad = posting(PostingKind::Job, "<script>alert(1)</script>", "999999");
    bad.valid_until = bad.valid_from - Duration::days(1);
    bad.qualifications = vec![Qualification::from_code("05").unwrap()];
    let body = serde_json::json!({ "postings": [{
        "posting_id": "0192f000-aaaa-7000-8000-000000000001", "version": 1, "withdrawn": false,
        "body": bad,
    }]});
    let (status, answer) = block_on(signed_post_to(
        &s.server,
        &s.tokyo.key,
        "/federation/v1/postings",
        &serde_json::to_vec(&body).unwrap(),
    ));
    assert_eq!(status, 200, "{answer}");
    let reason = answer["refused"][0]["reason"].as_str().unwrap();
    for expected in ["HTML", "999999", "看護職の資格ではありません", "掲載終了日が掲載開始日より前"] {
        assert!(reason.contains(expected), "{expected} in {reason}");
    }
    assert_eq!(count(&s.national_db, "SELECT COUNT(*) AS n FROM postings"), 0, "nothing stored");

    // An unsigned request, or a malformed body, is refused before anything is read.
    let (status, _) = block_on(async {
        let res = ncf_tests::http_client()
            .post(s.server.url("/federation/v1/postings"))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), ())
    });
    assert_eq!(status, 401);
    let (status, answer) = block_on(signed_post_to(
        &s.server,
        &s.tokyo.key,
        "/federation/v1/postings",
        br#"{"postings": [{"posting_id": "x", "version": 1}]}"#,
    ));
    assert_eq!(status, 400, "{answer}");
}

both_backends!(the_national_server_refuses_a_bad_posting_and_says_why);
