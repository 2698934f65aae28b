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
use ncf_tests::{Backend, Person, SmtpReceiver, TestDb, TestServer, block_on, both_backends};
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
    setup_with(backend, 2)
}

/// Tokyo and Kanagawa nodes, and `people` nurses living in Kawasaki-ku.
fn setup_with(backend: Backend, people: u64) -> Setup {
    let cast: Vec<Person> =
        (0..people).map(|i| Person { lgcode: KAWASAKI_KU, ..Person::sample(i) }).collect();
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
    assert_eq!(list_of(&s, &misaki.id), [], "her only job was withdrawn");

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
    assert_eq!(
        count(
            &s.national_db,
            "SELECT COUNT(*) AS n FROM match_preferences WHERE prefecture = '14' AND distance_km = 50"
        ),
        0
    );
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
    for expected in ["HTML", "999999", "看護職の資格ではありません", "掲載終了日が掲載開始日より前"]
    {
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

/// `prefecture-node digest` for the Kanagawa node, mailing through `smtp` (links to `public_url`).
fn digest_command(s: &Setup, smtp: &SmtpReceiver, public_url: &str, cadence: &str) -> std::process::Command {
    let mut cmd = ncf_tests::node_command(&s.kanagawa.db, &s.kanagawa.key_file, &s.server.base_url);
    cmd.args(["digest", "--cadence", cadence, "--prefecture", "14", "--public-url", public_url])
        .args(["--smtp-url", &smtp.url]);
    cmd
}

fn run_digest(s: &Setup, smtp: &SmtpReceiver, public_url: &str, cadence: &str) -> String {
    let (out, stdout, stderr) = ncf_tests::run(digest_command(s, smtp, public_url, cadence));
    assert!(out.status.success(), "{stderr}");
    stdout
}

fn mails_to<'a>(mails: &'a [ncf_tests::Mail], address: &str) -> Vec<&'a ncf_tests::Mail> {
    mails.iter().filter(|m| m.to == [address]).collect()
}

/// Opted in with this address.
fn with_email(s: &Setup, nurse: &prefecture_node::nurses::Nurse, email: &str) {
    diesel::sql_query("UPDATE nurses SET email = $1 WHERE id = $2")
        .bind::<Text, _>(email)
        .bind::<Text, _>(&nurse.id)
        .execute(&mut s.kanagawa.db.connect())
        .unwrap();
}

fn digests_go_once_to_who_still_wants_them_and_stop_in_one_click(backend: Backend) {
    let s = setup_with(backend, 3);
    let all = [
        ConsentScope::AddressLinkage,
        ConsentScope::JobSupport,
        ConsentScope::TrainingInfo,
        ConsentScope::ShareWithResidencePrefecture,
    ];
    let hanako = latent_nurse(&s, &s.cast[0], &all);
    let misaki = latent_nurse(&s, &s.cast[1], &[ConsentScope::AddressLinkage, ConsentScope::JobSupport]);
    let yoko = latent_nurse(&s, &s.cast[2], &all);
    for (n, email) in
        [(&hanako, "hanako@example.jp"), (&misaki, "misaki@example.jp"), (&yoko, "yoko@example.jp")]
    {
        with_email(&s, n, email);
    }
    sync(&s, &s.kanagawa);
    publish(&s, &posting(PostingKind::Job, "目黒の病棟看護師", MEGURO));
    publish(&s, &posting(PostingKind::Training, "復職支援研修（目黒）", MEGURO));
    sync(&s, &s.tokyo);
    sync(&s, &s.kanagawa);
    // The run's intents are recorded first (three digests); Yoko then withdraws both information
    // consents before they go: checked again at send time, hers is not sent.
    let planned = prefecture_node::digests::plan(
        &mut s.kanagawa.db.connect(),
        prefecture_node::digests::Cadence::Weekly,
        kanagawa(),
        "nc14.example.jp",
        ncf_shared::time::now_utc(),
    )
    .unwrap();
    assert_eq!(planned, 3);
    consent::record(
        &mut s.kanagawa.db.connect(),
        &yoko.id,
        &[(ConsentScope::JobSupport, false), (ConsentScope::TrainingInfo, false)],
        Channel::Web,
        None,
    )
    .unwrap();

    let smtp = SmtpReceiver::start();
    let public = "https://nc14.example.jp";
    let out = run_digest(&s, &smtp, public, "weekly");
    assert!(out.contains("0 planned, 2 sent, 1 cancelled at send time"), "{out}");
    let mails = smtp.wait_for(2);
    assert_eq!(mails.len(), 2);
    assert!(mails_to(&mails, "yoko@example.jp").is_empty(), "consent withdrawn: no mail");
    let mail = mails_to(&mails, "hanako@example.jp")[0].clone();
    let text = mail.part("text/plain").unwrap_or_else(|| panic!("a plain-text part in {}", mail.data));
    let html = mail.part("text/html").expect("an HTML part");
    assert!(text.contains("目黒の病棟看護師") && text.contains("復職支援研修（目黒）"), "{text}");
    assert!(text.contains("約12 km") && text.contains("東京都目黒区"), "{text}");
    assert!(html.contains("目黒の病棟看護師"), "{html}");
    let only_jobs = mails_to(&mails, "misaki@example.jp")[0].part("text/plain").unwrap();
    assert!(only_jobs.contains("目黒の病棟看護師") && !only_jobs.contains("復職支援研修"), "{only_jobs}");
    // RFC 8058 headers, and the same link visible in the text.
    let unsubscribe = mail.header("list-unsubscribe").expect("List-Unsubscribe");
    assert_eq!(mail.header("list-unsubscribe-post").as_deref(), Some("List-Unsubscribe=One-Click"));
    let url = unsubscribe.trim_start_matches('<').trim_end_matches('>').to_string();
    assert!(url.starts_with(&format!("{public}/unsubscribe/{}/", hanako.id)), "{url}");
    assert!(text.contains(&url), "the unsubscribe link is in the text");
    let message_id = mail.header("message-id").unwrap();
    assert!(message_id.contains("weekly-") && message_id.ends_with(">"), "{message_id}");

    // Again in the same week: nothing new, nothing sent.
    let out = run_digest(&s, &smtp, public, "weekly");
    assert!(out.contains("0 planned, 0 sent"), "{out}");
    assert_eq!(smtp.mails().len(), 2);
    assert!(message_id.contains("@nc14.example.jp>"), "{message_id}");

    // One click: a POST without a session, cookie or token stops her digests; a forged link is
    // refused; a second click changes nothing.
    // The serving node checks the link (started after the runs: it sends pending digests itself).
    let node = TestServer::node(&s.kanagawa.db, &s.kanagawa.key_file, &s.server.base_url, "14");
    let path = url.strip_prefix(public).unwrap().to_string();
    let forged = format!("{}x", &path[..path.len() - 1]);
    block_on(async {
        let client = ncf_tests::http_client();
        let post = |p: String| {
            client
                .post(node.url(&p))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("List-Unsubscribe=One-Click")
                .send()
        };
        let refused = post(forged.clone()).await.unwrap();
        assert_eq!(refused.status().as_u16(), 404);
        let other = post(path.replace(&hanako.id, &misaki.id)).await.unwrap();
        assert_eq!(other.status().as_u16(), 404, "her link does not unsubscribe someone else");
        let page = client.get(node.url(&path)).send().await.unwrap();
        assert_eq!(page.status().as_u16(), 200);
        assert!(page.text().await.unwrap().contains("配信を停止する"), "a GET only shows the button");
        let done = post(path.clone()).await.unwrap();
        assert_eq!(done.status().as_u16(), 200);
        assert!(done.text().await.unwrap().contains("配信を停止しました"));
        assert_eq!(post(path.clone()).await.unwrap().status().as_u16(), 200);
    });
    let settings = prefecture_node::digests::settings(&mut s.kanagawa.db.connect(), &hanako.id).unwrap();
    assert_eq!(settings.cadence, prefecture_node::digests::Cadence::Off);
    let misaki_settings =
        prefecture_node::digests::settings(&mut s.kanagawa.db.connect(), &misaki.id).unwrap();
    assert_eq!(
        misaki_settings.cadence,
        prefecture_node::digests::Cadence::Weekly,
        "the forged click changed nothing"
    );
    drop(node);

    // A new posting; both on the daily cadence would get it, but she unsubscribed: only Misaki,
    // and only what is new since her last digest.
    prefecture_node::digests::set_settings(
        &mut s.kanagawa.db.connect(),
        &misaki.id,
        prefecture_node::digests::Cadence::Daily,
        &[],
    )
    .unwrap();
    publish(&s, &posting(PostingKind::Job, "品川のクリニック", "131091"));
    sync(&s, &s.tokyo);
    sync(&s, &s.kanagawa);
    let out = run_digest(&s, &smtp, "http://node.test", "daily");
    assert!(out.contains("1 planned, 1 sent"), "{out}");
    let mails = smtp.wait_for(3);
    assert_eq!(mails.len(), 3);
    let latest = mails_to(&mails, "misaki@example.jp")[1].part("text/plain").unwrap();
    assert!(latest.contains("品川のクリニック") && !latest.contains("目黒の病棟看護師"), "{latest}");
    assert!(mails_to(&mails, "hanako@example.jp").len() == 1, "nothing after her unsubscribe");
}

both_backends!(digests_go_once_to_who_still_wants_them_and_stop_in_one_click);

fn smtp_down_waits_and_a_permanent_refusal_marks_the_address_bouncing(backend: Backend) {
    let s = setup_with(backend, 2);
    let jobs = [ConsentScope::AddressLinkage, ConsentScope::JobSupport];
    let hanako = latent_nurse(&s, &s.cast[0], &jobs);
    let misaki = latent_nurse(&s, &s.cast[1], &jobs);
    with_email(&s, &hanako, "hanako@example.jp");
    with_email(&s, &misaki, "misaki@example.jp");
    sync(&s, &s.kanagawa);
    publish(&s, &posting(PostingKind::Job, "目黒の病棟看護師", MEGURO));
    sync(&s, &s.tokyo);
    sync(&s, &s.kanagawa);

    let smtp = SmtpReceiver::start();
    smtp.set_down(true);
    let out = run_digest(&s, &smtp, "http://node.test", "weekly");
    assert!(out.contains("2 planned, 0 sent") && out.contains("1 waiting for SMTP"), "{out}");
    assert!(smtp.mails().is_empty());

    // Back up, and Misaki's mailbox no longer exists: Hanako's digest goes (once), Misaki's
    // address is marked bouncing and shown to staff.
    smtp.set_down(false);
    smtp.reject("misaki@example.jp");
    let out = run_digest(&s, &smtp, "http://node.test", "weekly");
    assert!(out.contains("0 planned, 1 sent") && out.contains("1 bounced"), "{out}");
    let out = run_digest(&s, &smtp, "http://node.test", "weekly");
    assert!(out.contains("0 planned, 0 sent"), "{out}");
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["hanako@example.jp"]);
    let bouncing = prefecture_node::digests::settings(&mut s.kanagawa.db.connect(), &misaki.id).unwrap();
    assert!(bouncing.bouncing_since.is_some());

    let mut conn = s.kanagawa.db.connect();
    prefecture_node::staff::add(&mut conn, "tanaka", "田中 美穂", "correct horse battery").unwrap();
    let tanaka = prefecture_node::staff::find_active(&mut conn, "tanaka").unwrap().unwrap().id;
    let (token, session) =
        prefecture_node::auth::start_session(&mut conn, prefecture_node::auth::SessionKind::Staff, &tanaka)
            .unwrap();
    let node = TestServer::node(&s.kanagawa.db, &s.kanagawa.key_file, &s.server.base_url, "14");
    let nurse_page = |client: &reqwest::Client| {
        client
            .get(node.url(&format!("/staff/nurses/{}", misaki.id)))
            .header("cookie", format!("ncf_staff={token}"))
            .send()
    };
    let (before, cleared, after) = block_on(async {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let before = nurse_page(&client).await.unwrap().text().await.unwrap();
        // She says her mailbox works again: staff resume her mail.
        let cleared = client
            .post(node.url(&format!("/staff/nurses/{}/bounce/clear", misaki.id)))
            .header("cookie", format!("ncf_staff={token}"))
            .form(&[("csrf", session.csrf.as_str())])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        let after = nurse_page(&client).await.unwrap().text().await.unwrap();
        (before, cleared, after)
    });
    assert!(before.contains("メールが届きません") && before.contains("メールの送信を再開する"), "{before}");
    assert_eq!(cleared, 303);
    assert!(!after.contains("メールが届きません"), "{after}");
    let settings = prefecture_node::digests::settings(&mut s.kanagawa.db.connect(), &misaki.id).unwrap();
    assert!(settings.bouncing_since.is_none(), "her mail resumes");
}

both_backends!(smtp_down_waits_and_a_permanent_refusal_marks_the_address_bouncing);

/// SIGKILL of the node in the middle of a digest run for 2,200 nurses (planned in three steps,
/// sending following the plan), then a run again: every nurse has exactly one distinct
/// Message-ID at the receiver, and at most one message came twice.
fn a_digest_run_killed_midway_sends_each_digest_once(backend: Backend) {
    let db = TestDb::new(backend);
    prefecture_node::migrate(&mut db.connect()).unwrap();
    let key = ncf_shared::federation::NodeSigningKey::generate();
    let key_file = db.path("node.key");
    std::fs::write(&key_file, key.to_base64()).unwrap();
    let nurses = ncf_tests::digest_seed::seed(&mut db.connect(), 2_200, 3);
    let smtp = SmtpReceiver::start();
    let digest = || {
        let mut cmd = ncf_tests::node_command(&db, &key_file, "https://national.invalid");
        cmd.args([
            "digest",
            "--cadence",
            "weekly",
            "--prefecture",
            "14",
            "--public-url",
            "https://nc14.example.jp",
        ])
        .args(["--smtp-url", &smtp.url]);
        cmd
    };
    let mut child =
        digest().stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    // Killed soon after the first messages, while the plan's later steps may still be running.
    ncf_tests::eventually(std::time::Duration::from_secs(120), || smtp.mails().len() >= 20);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = smtp.mails().len();
    assert!(before < 2_200, "killed midway ({before} sent)");
    let planned_before = count(&db, "SELECT COUNT(*) AS n FROM digests");

    let (out, stdout, stderr) = ncf_tests::run(digest());
    assert!(out.status.success(), "{stderr}");
    // What the killed run had not planned yet is planned now, and nobody twice.
    assert!(
        stdout.contains(&format!(" {} planned,", 2_200 - planned_before)),
        "{planned_before} planned before the kill: {stdout}"
    );
    let mails = smtp.mails();
    let mut ids_by_recipient: std::collections::HashMap<String, std::collections::HashSet<String>> =
        Default::default();
    for m in &mails {
        ids_by_recipient.entry(m.to[0].clone()).or_default().insert(m.header("message-id").unwrap());
    }
    assert_eq!(ids_by_recipient.len(), nurses.len(), "every nurse got her digest");
    assert!(ids_by_recipient.values().all(|ids| ids.len() == 1), "one Message-ID per nurse");
    assert!(mails.len() <= nurses.len() + 1, "{} messages for {} nurses", mails.len(), nurses.len());
    let sent = count(&db, "SELECT COUNT(*) AS n FROM digests WHERE state = 'sent'");
    assert_eq!(sent, 2_200);
}

both_backends!(a_digest_run_killed_midway_sends_each_digest_once);

/// Staff API and page: a bad posting gets a 4xx that names each problem in Japanese and saves
/// nothing; text is escaped wherever it is shown.
fn bad_postings_are_refused_by_name_and_nothing_is_saved(backend: Backend) {
    let s = setup_with(backend, 1);
    let mut conn = s.tokyo.db.connect();
    prefecture_node::staff::add(&mut conn, "tanaka", "田中 美穂", "correct horse battery").unwrap();
    let token = prefecture_node::auth::issue_api_token(&mut conn, "tanaka", "test").unwrap();
    let node = TestServer::node(&s.tokyo.db, &s.tokyo.key_file, &s.server.base_url, "13");
    let mut bad = posting(PostingKind::Job, "<img src=x onerror=alert(1)>", MEGURO);
    bad.place = PostingPlace::Point { lat: 139.7, lng: 35.6 }; // latitude and longitude swapped
    bad.wage = Some(ncf_shared::posting::WageRange {
        per: ncf_shared::posting::WagePer::Hour,
        min_yen: 2_000,
        max_yen: 1_500,
    });
    bad.qualifications = vec![Qualification::from_code("05").unwrap()];
    bad.valid_until = bad.valid_from - Duration::days(1);
    let (status, answer) = block_on(async {
        let res = ncf_tests::http_client()
            .post(node.url("/api/v1/postings"))
            .bearer_auth(&token)
            .json(&bad)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap())
    });
    assert_eq!(status, 422, "{answer}");
    let fields: Vec<&str> =
        answer["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    for field in ["title", "place", "qualifications", "wage", "valid_until"] {
        assert!(fields.contains(&field), "{field} named in {answer}");
    }
    assert!(answer["message"].as_str().unwrap().contains("日本国内ではありません"), "{answer}");
    // An unknown municipality, and a body that is not a posting at all.
    let mut unknown = posting(PostingKind::Job, "病棟看護師", "999999");
    unknown.title = "病棟看護師".into();
    let (status, answer) = block_on(async {
        let client = ncf_tests::http_client();
        let res = client
            .post(node.url("/api/v1/postings"))
            .bearer_auth(&token)
            .json(&unknown)
            .send()
            .await
            .unwrap();
        let first = (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap());
        let res = client
            .post(node.url("/api/v1/postings"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(r#"{"kind":"job","title":1}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 400, "a body that is not a posting");
        first
    });
    assert_eq!(status, 422);
    assert!(
        answer["message"].as_str().unwrap().contains("市区町村コード「999999」は見つかりません"),
        "{answer}"
    );
    assert_eq!(count(&s.tokyo.db, "SELECT COUNT(*) AS n FROM postings"), 0, "nothing saved");
}

both_backends!(bad_postings_are_refused_by_name_and_nothing_is_saved);

/// Posts a CSV file to the postings import of the staff API.
fn import_csv(node: &TestServer, token: &str, csv: &str, accept_valid: bool) -> (u16, serde_json::Value) {
    let path =
        if accept_valid { "/api/v1/postings/import?accept_valid=true" } else { "/api/v1/postings/import" };
    block_on(async {
        let res = ncf_tests::http_client()
            .post(node.url(path))
            .bearer_auth(token)
            .header("content-type", "text/csv")
            .body(csv.to_string())
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap())
    })
}

fn posting_csv_import_reports_each_row_by_its_excel_line_and_publishes_all_or_nothing(backend: Backend) {
    let s = setup_with(backend, 1);
    let mut conn = s.tokyo.db.connect();
    prefecture_node::staff::add(&mut conn, "tanaka", "田中 美穂", "correct horse battery").unwrap();
    let token = prefecture_node::auth::issue_api_token(&mut conn, "tanaka", "test").unwrap();
    let node = TestServer::node(&s.tokyo.db, &s.tokyo.key_file, &s.server.base_url, "13");
    // The template's own headings (BOM, CRLF, as Excel saves it); the first description spans
    // two lines, so the rows after it are one line further down than their record number.
    let header = prefecture_node::postings::import::template_csv().lines().next().unwrap().to_string();
    let job = "求人,病棟看護師（目黒）,\"夜勤なしの病棟です。\r\nブランク歓迎。\",目黒テスト病院,03-0000-0000,131105,,,看護師・准看護師,常勤・日勤のみ,8:30〜17:15,月給,280000,340000,,,,,,2026-12-01,2027-03-31";
    let training = "研修,復職支援研修（採血）,実技中心,ナースセンター研修室,03-0000-0001,131016,,,看護師,,,,,,2027-01-15,2027-01-16,12,20,0,2026-12-01,2027-01-10";
    let bad_job = "求人,外来看護師,外来です,品川テスト医院,03-0000-0002,131091,,,医師,非常勤,9:00〜16:00,時給,2200,1800,,,,,,2026-12-01,2027-03-31";
    let bad_visit = "求人,訪問看護師,<script>alert(1)</script>,訪問看護テスト,03-0000-0003,,35.6,139.7,看護師,週4日,9:00〜18:00,,,,,,,,,2026-12-01,2027-03-31";
    // Excel leaves a row of empty cells behind: not a row of data.
    let csv = [header.as_str(), job, training, bad_job, job, bad_visit, ",,,,,,,,,,,,,,,,,,,,"].join("\r\n");
    let (status, report) = import_csv(&node, &token, &csv, false);
    assert_eq!(status, 422, "a bad row stops the whole file: {report}");
    assert_eq!(report["saved"], 0);
    let rows = report["rows"].as_array().unwrap();
    let lines: Vec<u64> = rows.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [2, 4, 5, 6, 8], "the lines an editor shows (row 2's description takes two)");
    let excel: Vec<u64> = rows.iter().map(|r| r["excel_row"].as_u64().unwrap()).collect();
    assert_eq!(excel, [2, 3, 4, 5, 6], "and the rows Excel shows, where a cell holds line breaks");
    assert!(rows[0]["rejected"].is_null() && rows[1]["rejected"].is_null(), "{report}");
    let bad = rows[2]["rejected"].as_str().unwrap();
    assert!(bad.contains("資格「医師」は載せられません"), "{bad}");
    assert!(bad.contains("給与"), "the inverted wage range is named too: {bad}");
    assert_eq!(rows[3]["rejected"], "2行目と同じ内容です。");
    let bad = rows[4]["rejected"].as_str().unwrap();
    assert!(bad.contains("雇用形態「週4日」は一覧にありません"), "{bad}");
    assert!(bad.contains("内容"), "markup in the description is named: {bad}");
    assert_eq!(count(&s.tokyo.db, "SELECT COUNT(*) AS n FROM postings"), 0, "nothing published");

    // Staff choose to publish the valid rows: the two good ones, each with its id.
    let (status, report) = import_csv(&node, &token, &csv, true);
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["saved"], 2);
    let rows = report["rows"].as_array().unwrap();
    assert!(rows[0]["posting"].is_string() && rows[1]["posting"].is_string(), "{report}");
    assert!(rows[2]["posting"].is_null() && rows[3]["posting"].is_null());
    assert_eq!(count(&s.tokyo.db, "SELECT COUNT(*) AS n FROM postings"), 2);
    let session =
        prefecture_node::postings::get(&mut conn, rows[1]["posting"].as_str().unwrap()).unwrap().unwrap();
    assert_eq!(session.body.kind, PostingKind::Training);
    assert_eq!(session.body.training.as_ref().unwrap().hours, 12);

    // The corrected file uploaded again as a whole: what is published already is not published
    // twice, and says so.
    let fixed_job = bad_job.replace("医師,", "看護師,").replace("2200,1800", "1800,2200");
    let fixed_visit =
        bad_visit.replace("<script>alert(1)</script>", "訪問看護です").replace("週4日", "非常勤");
    let corrected = [header.as_str(), job, training, &fixed_job, &fixed_visit].join("\r\n");
    let (status, report) = import_csv(&node, &token, &corrected, false);
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["saved"], 2, "the two corrected rows: {report}");
    let rows = report["rows"].as_array().unwrap();
    assert!(rows[0]["skipped"].as_str().unwrap().contains("掲載済み"), "{report}");
    assert!(rows[1]["skipped"].as_str().unwrap().contains("掲載済み"), "{report}");
    assert_eq!(count(&s.tokyo.db, "SELECT COUNT(*) AS n FROM postings"), 4);

    // A mistyped heading is refused rather than its column silently left out; a row with a cell
    // too many is reported on its own.
    let typo = format!("{}\r\n{}", header.replace("給与の下限", "給与下限"), job);
    let (status, answer) = import_csv(&node, &token, &typo, false);
    assert_eq!(status, 422);
    assert!(answer["message"].as_str().unwrap().contains("見出し「給与下限」は使えません"), "{answer}");
    let (status, report) = import_csv(&node, &token, &format!("{header}\r\n{training},余分"), false);
    assert_eq!(status, 422, "{report}");
    assert!(
        report["rows"][0]["rejected"]
            .as_str()
            .unwrap()
            .contains("セルの数（22）が見出しの列の数（21）と違います"),
        "{report}"
    );

    // A file that is not a postings file is refused as a whole, by name.
    let (status, answer) = import_csv(&node, &token, "名前,住所\r\n山田,東京\r\n", false);
    assert_eq!(status, 422);
    assert!(answer["message"].as_str().unwrap().contains("見出し「名前」「住所」は使えません"), "{answer}");

    // What was imported travels like any posting. The running node pushes on its own once it
    // is idle, so the explicit sync may find some or all of them already sent; what counts is
    // that all four reach the national server, once each.
    let out = sync(&s, &s.tokyo);
    assert!(out.contains("pushed: "), "{out}");
    assert!(
        ncf_tests::eventually(std::time::Duration::from_secs(10), || count(
            &s.national_db,
            "SELECT COUNT(*) AS n FROM postings"
        ) == 4),
        "all four imported postings reach the national server"
    );
}

both_backends!(posting_csv_import_reports_each_row_by_its_excel_line_and_publishes_all_or_nothing);

fn the_node_api_is_described_by_an_openapi_document(backend: Backend) {
    let s = setup_with(backend, 1);
    let node = TestServer::node(&s.tokyo.db, &s.tokyo.key_file, &s.server.base_url, "13");
    let (node_doc, national_doc) = block_on(async {
        let client = ncf_tests::http_client();
        let res = client.get(node.url("/api/v1/openapi.json")).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200, "served without a token: it describes, it holds nothing");
        let node_doc = res.json::<serde_json::Value>().await.unwrap();
        let national_doc = client
            .get(s.server.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap();
        (node_doc, national_doc)
    });
    assert!(node_doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = node_doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/nurses", "get"),
        ("/api/v1/nurses/{id}", "get"),
        ("/api/v1/nurses/{id}/notices", "post"),
        ("/api/v1/separations", "post"),
        ("/api/v1/postings", "get"),
        ("/api/v1/postings", "post"),
        ("/api/v1/postings/import", "post"),
        ("/api/v1/postings/{posting}", "post"),
        ("/api/v1/postings/{posting}/withdraw", "post"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} documented");
    }
    let schemas = node_doc["components"]["schemas"].as_object().unwrap();
    for schema in ["PostingBody", "NoticeBody", "NurseJson", "ApiError", "BulkReport", "ImportReport"] {
        assert!(schemas.contains_key(schema), "{schema} in the document");
    }
    assert!(
        node_doc["components"]["securitySchemes"]["staff_token"].is_object(),
        "the bearer token is documented"
    );
    assert!(
        national_doc["paths"]["/federation/v1/postings"]["post"].is_object(),
        "the postings path is documented"
    );
}

both_backends!(the_node_api_is_described_by_an_openapi_document);

fn a_kawasaki_nurse_attends_tokyo_training_and_it_joins_her_record(backend: Backend) {
    use ncf_shared::contract::PostingRef;
    use prefecture_node::training::{self, AttendanceError, WishRefusal};
    let s = setup(backend);
    let scopes = [ConsentScope::AddressLinkage, ConsentScope::TrainingInfo];
    let hanako = latent_nurse(&s, &s.cast[0], &scopes);
    // The second nurse gets no training information: she cannot ask.
    let misaki = latent_nurse(&s, &s.cast[1], &[ConsentScope::AddressLinkage, ConsentScope::JobSupport]);
    sync(&s, &s.kanagawa);
    let session = publish(&s, &posting(PostingKind::Training, "復職支援研修（採血・注射）", MEGURO));
    sync(&s, &s.tokyo);
    sync(&s, &s.kanagawa);
    let tokyo = Prefecture::from_code("13").unwrap();
    let asked_for = PostingRef { prefecture: tokyo, posting_id: session.clone() };
    let mut k = s.kanagawa.db.connect();

    // Without ticking the consent nothing is recorded; a session not on her list cannot be asked
    // for; nor can anyone without training information.
    assert_eq!(
        training::wish(&mut k, kanagawa(), &hanako.id, &asked_for, false).unwrap(),
        Err(WishRefusal::NotAgreed)
    );
    let elsewhere = PostingRef { prefecture: tokyo, posting_id: "not-a-session".into() };
    assert_eq!(
        training::wish(&mut k, kanagawa(), &hanako.id, &elsewhere, true).unwrap(),
        Err(WishRefusal::NotOnHerList)
    );
    assert_eq!(
        training::wish(&mut k, kanagawa(), &misaki.id, &asked_for, true).unwrap(),
        Err(WishRefusal::NotOnHerList),
        "the training never reached her list"
    );
    assert_eq!(count(&s.kanagawa.db, "SELECT COUNT(*) AS n FROM training_wishes"), 0);

    // She asks (twice: one wish, one event).
    let wish = training::wish(&mut k, kanagawa(), &hanako.id, &asked_for, true).unwrap().unwrap();
    let again = training::wish(&mut k, kanagawa(), &hanako.id, &asked_for, true).unwrap().unwrap();
    assert_eq!(wish.id, again.id);
    assert_eq!(count(&s.kanagawa.db, "SELECT COUNT(*) AS n FROM outbox WHERE kind = 'training_wish'"), 1);
    assert_eq!(wish.title, "復職支援研修（採血・注射）");

    // Kanagawa → national (wish) → Kanagawa (the answer: Tokyo's key) → national (her contact,
    // sealed) → Tokyo.
    sync(&s, &s.kanagawa);
    sync(&s, &s.kanagawa);
    let history = training::history(&mut k, &hanako.id).unwrap();
    assert_eq!(history[0].state, "sent", "{history:?}");
    sync(&s, &s.tokyo);
    let mut t = s.tokyo.db.connect();
    let applicants = training::applicants(&mut t, &session).unwrap();
    assert_eq!(applicants.len(), 1);
    let a = &applicants[0];
    assert_eq!(
        (a.family_name.as_str(), a.given_name.as_str()),
        (hanako.family_name.as_str(), hanako.given_name.as_str())
    );
    assert_eq!(a.email, hanako.email);
    assert_eq!(a.qualification, hanako.qualification);
    assert_eq!(a.from_prefecture, kanagawa());
    // The national server relayed what it could not read (her address appears nowhere in its
    // database, not even in the queue that carried it to Tokyo).
    assert_eq!(national_db_text_containing(&s.national_db, &hanako.email), Vec::<String>::new());

    // Staff at Tokyo record attendance: more hours than the session has are refused by name.
    let refused =
        training::record_attendance(&mut t, "tokyo-staff", &session, kanagawa(), &a.wish_id, true, 13)
            .unwrap();
    match refused {
        Err(AttendanceError::Invalid(fields)) => {
            assert!(fields[0].message.contains("1〜12時間"), "{fields:?}")
        }
        other => panic!("13 hours of a 12-hour session: {other:?}"),
    }
    assert_eq!(
        training::record_attendance(&mut t, "tokyo-staff", &session, tokyo, &a.wish_id, true, 12).unwrap(),
        Err(AttendanceError::NotFound),
        "the applicant is known by where she came from"
    );
    training::record_attendance(&mut t, "tokyo-staff", &session, kanagawa(), &a.wish_id, true, 12)
        .unwrap()
        .unwrap();
    sync(&s, &s.tokyo);
    sync(&s, &s.kanagawa);
    let history = training::history(&mut k, &hanako.id).unwrap();
    assert_eq!((history[0].attended, history[0].hours), (Some(true), Some(12)));
    assert_eq!(history[0].state_ja(), "受講しました（12時間）");

    // Counts, never names, for the national figures; every hand-over recorded as a provision.
    let counts = national_server::training::attendance_counts(&mut s.national_db.connect()).unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (counts[0].prefecture, counts[0].wishes, counts[0].attended, counts[0].hours),
        (tokyo, 1, 1, 12)
    );
    let provided: Vec<Provided> = diesel::sql_query(
        "SELECT recipient, fields FROM provisions WHERE purpose IN ('training_application', 'training_record') ORDER BY seq",
    )
    .load(&mut s.national_db.connect())
    .unwrap();
    let recipients: Vec<&str> = provided.iter().map(|p| p.recipient.as_str()).collect();
    assert_eq!(
        recipients,
        ["national", "national", "node:13", "national", "node:14"],
        "her wish, her contact from Kanagawa to Tokyo, then her attendance back"
    );
    assert!(provided[2].fields.contains("contact:email"));

    // Kanagawa cannot record attendance for a wish Tokyo holds (nor Tokyo for one it does not).
    let forged =
        ncf_shared::contract::NodeToNational::AttendanceRecorded(ncf_shared::contract::AttendanceRecorded {
            agency_code: ncf_shared::AgencyCode::parse(&hanako.agency_code).unwrap(),
            wish_id: wish.id.clone(),
            attended: true,
            hours: 12,
            recorded_at: chrono::Utc::now(),
        });
    let relayed = prefecture_node::consent::CurrentConsents::relayed_applicant(
        ncf_shared::contract::ProofingMethod::Post,
    );
    prefecture_node::outbox::enqueue_if_covered(&mut k, &relayed, &forged, None).unwrap().unwrap();
    sync(&s, &s.kanagawa);
    assert_eq!(
        count(
            &s.kanagawa.db,
            "SELECT COUNT(*) AS n FROM outbox WHERE kind = 'attendance_recorded' AND parked_reason LIKE '%no applicant relayed to this node%'"
        ),
        1,
        "refused by the national server"
    );

    // A second session: she asks, then withdraws training information before the answer comes.
    // Her contact stays with her; her page says why.
    let second = publish(&s, &posting(PostingKind::Training, "復職支援研修（看護記録）", MEGURO));
    sync(&s, &s.tokyo);
    sync(&s, &s.kanagawa);
    let later = PostingRef { prefecture: tokyo, posting_id: second.clone() };
    let asked = training::wish(&mut k, kanagawa(), &hanako.id, &later, true).unwrap().unwrap();
    consent::record(&mut k, &hanako.id, &[(ConsentScope::TrainingInfo, false)], Channel::Web, None).unwrap();
    sync(&s, &s.kanagawa);
    sync(&s, &s.kanagawa);
    sync(&s, &s.tokyo);
    let asked =
        training::history(&mut k, &hanako.id).unwrap().into_iter().find(|w| w.id == asked.id).unwrap();
    assert_eq!(asked.state, "refused");
    assert!(asked.state_ja().contains("同意を取り消したため"), "{}", asked.state_ja());
    assert!(training::applicants(&mut t, &second).unwrap().is_empty(), "nothing reached Tokyo");

    // Her death: the national server has Tokyo erase her contact as an applicant too.
    let path = s.national_db.path("death.csv");
    ncf_tests::write_csv(
        &path,
        ncf_tests::RESIDENTS_HEADER,
        &[format!("{},deceased,2026-11-01,,,,", s.cast[0].my_number)],
    );
    let mut import = ncf_tests::national(&s.national_db);
    import.arg("import-residents").arg(&path);
    let (out, _, stderr) = ncf_tests::run(import);
    assert!(out.status.success(), "{stderr}");
    sync(&s, &s.tokyo);
    assert!(training::applicants(&mut t, &session).unwrap().is_empty(), "her contact is gone from Tokyo");
    assert_eq!(
        national_server::training::attendance_counts(&mut s.national_db.connect()).unwrap()[0].attended,
        1,
        "the count stays"
    );
}

both_backends!(a_kawasaki_nurse_attends_tokyo_training_and_it_joins_her_record);
