//! Latent nurses, where they live and life events (issue #7), with real processes on both
//! backends: the national server decides who is latent and where she lives, hands her over when
//! she moves (her contact relayed sealed, never kept), erases her at every node when she dies,
//! and asks her to file when the registry has an old name.

mod support;

use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text};
use ncf_shared::ConsentScope;
use ncf_tests::{
    Backend, Browser, Person, RESIDENTS_HEADER, SmtpReceiver, TestDb, TestServer, block_on, both_backends,
    eventually, national, run, write_csv,
};
use prefecture_node::notices::{NoticeBody, SeparationReason};
use prefecture_node::{Channel, consent, notices};
use support::*;

const KYOTO_WARD: &str = "261025"; // 京都市 上京区

fn import_residents(f: &Federation, name: &str, rows: &[String]) -> String {
    let path = f.national_db.path(name);
    write_csv(&path, RESIDENTS_HEADER, rows);
    let mut cmd = national(&f.national_db);
    cmd.arg("import-residents").arg(&path);
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "{stderr}");
    stdout
}

fn moved_to_kyoto(p: &Person, on: &str) -> String {
    format!(
        "{},address_changed,{on},{KYOTO_WARD},京都市上京区1丁目2番3号,{},{}",
        p.my_number, p.family_name, p.given_name
    )
}

fn national_command(f: &Federation, args: &[&str]) -> String {
    let mut cmd = national(&f.national_db);
    cmd.args(args);
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "{stderr}");
    stdout
}

#[derive(QueryableByName, Debug, PartialEq)]
struct StatusRow {
    #[diesel(sql_type = Text)]
    employment: String,
    #[diesel(sql_type = Bool)]
    latent: bool,
    #[diesel(sql_type = Nullable<Text>)]
    home_prefecture: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    residence_prefecture: Option<String>,
}

/// What the national server holds for the person linked by this node's code.
fn national_status(f: &Federation, prefecture: &str, code: &str) -> Option<StatusRow> {
    diesel::sql_query(
        "SELECT s.employment, s.latent, s.home_prefecture, s.residence_prefecture FROM person_status s \
         JOIN identity_links l ON l.person_key = s.person_key WHERE l.prefecture = $1 AND l.agency_code = $2",
    )
    .bind::<Text, _>(prefecture)
    .bind::<Text, _>(code)
    .get_result(&mut f.national_db.connect())
    .optional()
    .unwrap()
}

fn node_status(node: &Node, nurse_id: &str) -> prefecture_node::life_events::NationalStatus {
    prefecture_node::life_events::status_of(&mut node.db.connect(), nurse_id).unwrap()
}

/// Opted in at `node`, proofed, every consent given, a separation filed; pushed.
fn latent_nurse(f: &Federation, node: &Node, p: &Person, share: bool) -> prefecture_node::nurses::Nurse {
    let (mut conn, nurse) = opt_in(f, node, p);
    let decisions: Vec<(ConsentScope, bool)> = ConsentScope::ALL
        .into_iter()
        .map(|s| (s, share || s != ConsentScope::ShareWithResidencePrefecture))
        .collect();
    consent::record(&mut conn, &nurse.id, &decisions, Channel::Web, None).unwrap();
    notices::file(&mut conn, &nurse.id, &separation(), Channel::Web, None).unwrap();
    push(f, node);
    nurse
}

fn queued_for(f: &Federation, prefecture: &str) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Kind {
        #[diesel(sql_type = Text)]
        kind: String,
    }
    diesel::sql_query("SELECT kind FROM node_events WHERE prefecture = $1 ORDER BY seq")
        .bind::<Text, _>(prefecture)
        .load::<Kind>(&mut f.national_db.connect())
        .unwrap()
        .into_iter()
        .map(|k| k.kind)
        .collect()
}

fn a_nurse_who_moves_is_handed_over_with_her_contact_relayed_sealed(backend: Backend) {
    let f = federation(backend);
    let smtp = SmtpReceiver::start();
    let hanako = latent_nurse(&f, &f.osaka, &f.cast[0], true);
    let status = national_status(&f, "27", &hanako.agency_code).expect("status derived on push");
    assert_eq!(
        status,
        StatusRow {
            employment: "not_working".into(),
            latent: true,
            home_prefecture: Some("27".into()),
            residence_prefecture: Some("27".into()),
        },
        "latent, living in Osaka (the first run records where she lives and routes nobody)"
    );
    assert_eq!(queued_for(&f, "27"), ["status_changed"]);
    assert!(queued_for(&f, "26").is_empty());
    push(&f, &f.osaka);
    let at_osaka = node_status(&f.osaka, &hanako.id);
    assert_eq!(
        (at_osaka.latent, at_osaka.home_here, at_osaka.residence.as_deref()),
        (Some(true), Some(true), Some("27"))
    );

    // She moves to Kyoto: one hand-over, routed in the residents import itself.
    let stdout = import_residents(&f, "move.csv", &[moved_to_kyoto(&f.cast[0], "2026-10-01")]);
    assert!(stdout.contains("1 rows"), "{stdout}");
    // Osaka: 転出 (with the destination: she allowed sharing), and her residence as it now is.
    assert_eq!(queued_for(&f, "27"), ["status_changed", "moved_out", "status_changed"]);
    // Osaka seals her contact for Kyoto (pulled in this sync, pushed in the next).
    push(&f, &f.osaka);
    push(&f, &f.osaka);
    assert_eq!(queued_for(&f, "26"), ["moved_in"], "the sealed contact is relayed to Kyoto");
    // Osaka was offline from the import until its sync: the hand-over waited in its queue. More
    // syncs send nothing again.
    push(&f, &f.osaka);
    assert_eq!(queued_for(&f, "26"), ["moved_in"], "relayed once");
    assert_eq!(count(&f.national_db, "SELECT COUNT(*) AS n FROM transfers"), 1);
    let at_osaka = node_status(&f.osaka, &hanako.id);
    assert_eq!(at_osaka.moved_out_ja().as_deref(), Some("転出（京都府へ）"));
    // In transit and after: the national database holds her e-mail address nowhere.
    assert_eq!(national_text_containing(&f, "nurse@example.jp"), Vec::<String>::new());

    // Kyoto's node pulls the pending transfer and mails her the link.
    let kyoto = TestServer::node_with(
        &f.kyoto.db,
        &f.kyoto.key_file,
        &f.server.base_url,
        "26",
        &["--smtp-url", &smtp.url, "--mail-from", "京都府ナースセンター <nc26@example.jp>"],
    );
    let mails = smtp.wait_for(1);
    assert_eq!(mails[0].to, ["nurse@example.jp"]);
    let text = mails[0].text();
    assert!(text.contains("大阪府のナースセンターから") && text.contains("京都府のナースセンター"), "{text}");
    let link = link_in(&text);
    let path = link.strip_prefix(&kyoto.base_url).expect("a link to Kyoto's node").to_string();
    block_on(async {
        let browser = Browser::new(&kyoto);
        let page = browser.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            page.body.contains("大阪府ナースセンターから") && page.body.contains("山田 花子"),
            "{}",
            page.body
        );
        let csrf = page.hidden("csrf");
        let refused = browser.post(&path, &[("csrf", &csrf)]).await;
        assert_eq!(refused.status, 422, "no consent chosen");
        assert!(refused.body.contains("1つ以上選んでください"));
        let done = browser
            .post(
                &path,
                &[
                    ("csrf", &csrf),
                    ("address_linkage", "on"),
                    ("job_support", "on"),
                    ("share_with_residence_prefecture", "on"),
                ],
            )
            .await;
        assert_eq!(done.status, 303, "{}", done.body);
        let receipt_page = browser.get(done.location.as_deref().unwrap()).await;
        assert_eq!(receipt_page.status, 200, "signed in at Kyoto: {}", receipt_page.body);
        assert!(receipt_page.body.contains("受付番号"), "{}", receipt_page.body);
        let me = browser.get("/me").await;
        assert!(me.body.contains("転居前のナースセンターでの本人確認"), "{}", me.body);
        let again = Browser::new(&kyoto).get(&path).await;
        assert_eq!(again.status, 410, "the link works once");
    });
    let mut kyoto_conn = f.kyoto.db.connect();
    let at_kyoto = prefecture_node::nurses::by_email(&mut kyoto_conn, "nurse@example.jp").unwrap();
    assert_eq!(at_kyoto.len(), 1);
    let kyoto_nurse = &at_kyoto[0];
    assert_eq!(kyoto_nurse.proofing_method.as_deref(), Some("transfer"));
    assert_ne!(kyoto_nurse.agency_code, hanako.agency_code, "Kyoto knows her by its own code");
    assert_eq!(
        (kyoto_nurse.family_name.as_str(), kyoto_nurse.registration_number.as_str()),
        ("山田", f.cast[0].registration_number.as_str())
    );

    // Kyoto's node pushes the confirmation: Kyoto becomes her home node; Osaka stops.
    assert!(eventually(std::time::Duration::from_secs(20), || {
        national_status(&f, "26", &kyoto_nurse.agency_code)
            .is_some_and(|s| s.home_prefecture.as_deref() == Some("26"))
    }));
    let status = national_status(&f, "26", &kyoto_nurse.agency_code).unwrap();
    assert_eq!((status.latent, status.residence_prefecture.as_deref()), (true, Some("26")));
    assert!(eventually(std::time::Duration::from_secs(20), || {
        node_status(&f.kyoto, &kyoto_nurse.id).home_here == Some(true)
    }));
    push(&f, &f.osaka);
    let at_osaka = node_status(&f.osaka, &hanako.id);
    assert_eq!((at_osaka.home_here, at_osaka.latent), (Some(false), Some(false)));
    assert!(!at_osaka.may_contact(), "Osaka no longer contacts her");

    // Her provision record shows both sides of the hand-over, from either node.
    let (status, entries) = block_on(signed_post(
        &f,
        &f.kyoto.key,
        "/federation/v1/provisions",
        &serde_json::to_vec(&serde_json::json!({"agency_code": kyoto_nurse.agency_code})).unwrap(),
    ));
    assert_eq!(status, 200);
    let hand_over: Vec<(String, String)> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["purpose"] == "hand_over")
        .map(|e| (e["source"].as_str().unwrap().to_string(), e["recipient"].as_str().unwrap().to_string()))
        .collect();
    assert!(hand_over.contains(&("node:27".into(), "national".into())), "{hand_over:?}");
    assert!(hand_over.contains(&("national".into(), "node:26".into())), "{hand_over:?}");
    assert!(
        entries.as_array().unwrap().iter().any(|e| e["purpose"] == "identity_link"),
        "her history from Osaka survives"
    );
    assert_eq!(national_text_containing(&f, "nurse@example.jp"), Vec::<String>::new());
    let audit = national_command(&f, &["audit", "verify"]);
    assert!(audit.contains("entries verified"), "{audit}");

    // Re-importing the same file and rematching route nobody again.
    let before = (queued_for(&f, "27").len(), queued_for(&f, "26").len());
    import_residents(&f, "move-again.csv", &[moved_to_kyoto(&f.cast[0], "2026-10-01")]);
    let rematch = national_command(&f, &["rematch"]);
    assert!(rematch.contains("0 moved"), "{rematch}");
    national_command(&f, &["rematch"]);
    assert_eq!((queued_for(&f, "27").len(), queued_for(&f, "26").len()), before, "nobody routed twice");
    drop(kyoto);
}
both_backends!(a_nurse_who_moves_is_handed_over_with_her_contact_relayed_sealed);

fn withdrawing_the_share_consent_stops_a_hand_over_in_progress(backend: Backend) {
    let f = federation(backend);
    let hanako = latent_nurse(&f, &f.osaka, &f.cast[0], true);
    import_residents(&f, "move.csv", &[moved_to_kyoto(&f.cast[0], "2026-10-01")]);
    push(&f, &f.osaka);
    push(&f, &f.osaka);
    push(&f, &f.kyoto);
    let pending = || count(&f.kyoto.db, "SELECT COUNT(*) AS n FROM transfers_in");
    assert_eq!(pending(), 1, "Kyoto holds the pending transfer");
    let mut conn = f.osaka.db.connect();
    consent::record(
        &mut conn,
        &hanako.id,
        &[(ConsentScope::ShareWithResidencePrefecture, false)],
        Channel::Web,
        None,
    )
    .unwrap();
    push(&f, &f.osaka);
    assert_eq!(queued_for(&f, "26"), ["moved_in", "transfer_cancelled"]);
    assert_eq!(count(&f.national_db, "SELECT COUNT(*) AS n FROM transfers WHERE state = 'cancelled'"), 1);
    push(&f, &f.kyoto);
    assert_eq!(pending(), 0, "Kyoto deleted her contact and the transfer");
}
both_backends!(withdrawing_the_share_consent_stops_a_hand_over_in_progress);

fn without_share_consent_the_new_prefecture_gets_nothing(backend: Backend) {
    let f = federation(backend);
    let misaki = latent_nurse(&f, &f.osaka, &f.cast[1], false);
    import_residents(&f, "move.csv", &[moved_to_kyoto(&f.cast[1], "2026-10-01")]);
    push(&f, &f.osaka);
    push(&f, &f.osaka);
    assert!(queued_for(&f, "26").is_empty(), "Kyoto gets nothing");
    let at_osaka = node_status(&f.osaka, &misaki.id);
    assert_eq!(at_osaka.moved_out_ja().as_deref(), Some("都道府県外へ転出"));
    assert_eq!(at_osaka.moved_out_to, None, "the destination is not told");
    let status = national_status(&f, "27", &misaki.agency_code).unwrap();
    assert_eq!(status.residence_prefecture.as_deref(), Some("26"));
    assert_eq!(status.home_prefecture.as_deref(), Some("27"), "Osaka stays her home node");
}
both_backends!(without_share_consent_the_new_prefecture_gets_nothing);

#[derive(QueryableByName, Debug)]
struct DeletionRow {
    #[diesel(sql_type = Text)]
    reason: String,
    #[diesel(sql_type = diesel::sql_types::Date)]
    deleted_on: chrono::NaiveDate,
    #[diesel(sql_type = Text)]
    import_id: String,
}

fn a_death_erases_her_everywhere_and_no_import_revives_the_licence(backend: Backend) {
    let f = federation(backend);
    let hanako = latent_nurse(&f, &f.osaka, &f.cast[0], true);
    let (_, at_kyoto) = opt_in(&f, &f.kyoto, &f.cast[0]);
    push(&f, &f.kyoto);
    let death = format!("{},deceased,2026-11-01,,,,", f.cast[0].my_number);
    import_residents(&f, "death.csv", std::slice::from_ref(&death));
    let deletions: Vec<DeletionRow> =
        diesel::sql_query("SELECT reason, deleted_on, import_id FROM licence_deletions")
            .load(&mut f.national_db.connect())
            .unwrap();
    assert_eq!(deletions.len(), 1);
    assert_eq!(deletions[0].reason, "deceased (resident registry)");
    assert_eq!(deletions[0].deleted_on.to_string(), "2026-11-01");
    assert!(!deletions[0].import_id.is_empty());
    assert!(national_status(&f, "27", &hanako.agency_code).is_none(), "no longer latent: nothing derived");
    for (node, nurse_id) in [(&f.osaka, &hanako.id), (&f.kyoto, &at_kyoto.id)] {
        push(&f, node);
        let nurse = prefecture_node::nurses::get(&mut node.db.connect(), nurse_id).unwrap().unwrap();
        assert_eq!((nurse.email.as_str(), nurse.phone.as_deref()), ("", None), "erased");
        assert!(node_status(node, nurse_id).erased_at.is_some());
        assert_eq!(
            prefecture_node::notices::for_nurse(&mut node.db.connect(), nurse_id).unwrap().len(),
            if node.key_file == f.osaka.key_file { 1 } else { 0 },
            "notices stay as records"
        );
    }
    // Once: the same file again, a rematch, and a registry re-import change nothing.
    import_residents(&f, "death-again.csv", &[death]);
    national_command(&f, &["rematch"]);
    assert_eq!(queued_for(&f, "27").iter().filter(|k| *k == "erase").count(), 1);
    assert_eq!(queued_for(&f, "26").iter().filter(|k| *k == "erase").count(), 1);
    let registry = f.national_db.path("registry-again.csv");
    write_csv(&registry, ncf_tests::REGISTRY_HEADER, &[f.cast[0].registry_row()]);
    national_command(&f, &["import-registry", registry.to_str().unwrap()]);
    assert_eq!(
        count(&f.national_db, "SELECT COUNT(*) AS n FROM licence_deletions"),
        1,
        "the deletion stands"
    );
    // A new opt-in with her licence is refused like any licence not in force.
    let claims = serde_json::json!({
        "qualification": "03", "registration_number": f.cast[0].registration_number,
        "family_name": "山田", "given_name": "花子", "family_name_kana": "ヤマダ", "given_name_kana": "ハナコ",
        "birth_date": "1985-04-01",
    });
    let (status, answer) = block_on(signed_post(
        &f,
        &f.osaka.key,
        "/federation/v1/identity-link",
        &serde_json::to_vec(&claims).unwrap(),
    ));
    assert_eq!((status, answer["error"].as_str()), (422, Some("no_match")), "{answer}");
}
both_backends!(a_death_erases_her_everywhere_and_no_import_revives_the_licence);

fn a_name_change_brings_a_filing_reminder_once(backend: Backend) {
    let f = federation(backend);
    let hanako = latent_nurse(&f, &f.osaka, &f.cast[0], true);
    let rows = [
        format!("{},name_changed,2026-09-01,,,中村,花子", f.cast[0].my_number),
        // Yoko has no node: her reminder goes to the postal batch.
        format!("{},name_changed,2026-09-15,,,伊藤,陽子", f.cast[2].my_number),
    ];
    import_residents(&f, "names.csv", &rows);
    #[derive(QueryableByName, Debug, PartialEq)]
    struct Reminder {
        #[diesel(sql_type = Text)]
        kind: String,
        #[diesel(sql_type = Text)]
        delivery: String,
    }
    let reminders = || -> Vec<Reminder> {
        diesel::sql_query("SELECT kind, delivery FROM reminders ORDER BY since")
            .load(&mut f.national_db.connect())
            .unwrap()
    };
    assert_eq!(
        reminders(),
        [
            Reminder { kind: "name_differs".into(), delivery: "node".into() },
            Reminder { kind: "name_differs".into(), delivery: "post".into() },
        ]
    );
    let out = national_command(&f, &["reconcile"]);
    assert!(out.contains("0 new"), "{out}");
    national_command(&f, &["reconcile"]);
    assert_eq!(reminders().len(), 2, "reconcile twice adds nothing");
    // The postal batch carries Yoko's, to the address of her resident registration, once.
    let batch = f.national_db.path("postal.csv");
    let out = national_command(&f, &["postal", "export", "--out", batch.to_str().unwrap()]);
    assert!(out.contains("1 filing reminder(s)"), "{out}");
    let text = std::fs::read_to_string(&batch).unwrap();
    let line = text.lines().find(|l| l.contains("伊藤")).expect("her reminder is in the print file");
    assert!(
        line.contains("陽子") && line.contains("大阪府内1丁目1番1号") && line.contains("籍の訂正"),
        "{line}"
    );
    let again = f.national_db.path("postal-again.csv");
    let out = national_command(&f, &["postal", "export", "--out", again.to_str().unwrap()]);
    assert!(out.contains("0 filing reminder(s)"), "{out}");
    push(&f, &f.osaka);
    let shown = prefecture_node::life_events::view(
        &mut f.osaka.db.connect(),
        &hanako.id,
        ncf_shared::Prefecture::from_code("27").unwrap(),
    )
    .unwrap();
    assert_eq!(shown.reminders.len(), 1);
    assert!(shown.reminders[0].0.contains("籍の訂正"), "{:?}", shown.reminders);
}
both_backends!(a_name_change_brings_a_filing_reminder_once);

fn notices_are_judged_by_their_effective_date(backend: Backend) {
    let f = federation(backend);
    let hanako = latent_nurse(&f, &f.osaka, &f.cast[0], true);
    assert!(national_status(&f, "27", &hanako.agency_code).unwrap().latent);
    let mut conn = f.osaka.db.connect();
    let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let employed = NoticeBody::EmploymentStatus {
        employed: true,
        workplace_type: Some(prefecture_node::notices::WorkplaceType::Hospital),
        workplace_lgcode: None,
        weekly_hours: Some(38),
        as_of: Some(day("2026-06-01")),
    };
    notices::file(&mut conn, &hanako.id, &employed, Channel::Web, None).unwrap();
    push(&f, &f.osaka);
    let status = national_status(&f, "27", &hanako.agency_code).unwrap();
    assert_eq!((status.employment.as_str(), status.latent), ("working", false));
    // An employer's separation entered later but dated before her employment notice.
    let earlier = NoticeBody::Separation {
        left_on: day("2026-05-31"),
        reason: SeparationReason::Other,
        wish_to_return: false,
        return_when: None,
    };
    notices::file(&mut conn, &hanako.id, &earlier, Channel::Paper, Some("staff")).unwrap();
    push(&f, &f.osaka);
    assert!(!national_status(&f, "27", &hanako.agency_code).unwrap().latent, "still working");
    push(&f, &f.osaka);
    assert_eq!(node_status(&f.osaka, &hanako.id).latent, Some(false), "her node shows it");
}
both_backends!(notices_are_judged_by_their_effective_date);

fn withdrawals_delete_what_was_derived(backend: Backend) {
    let f = federation(backend);
    let hanako = latent_nurse(&f, &f.osaka, &f.cast[0], true);
    let mut conn = f.osaka.db.connect();
    consent::record(&mut conn, &hanako.id, &[(ConsentScope::AddressLinkage, false)], Channel::Web, None)
        .unwrap();
    push(&f, &f.osaka);
    let status = national_status(&f, "27", &hanako.agency_code).unwrap();
    assert_eq!((status.latent, status.residence_prefecture), (false, None), "residence and routing gone");
    consent::record(
        &mut conn,
        &hanako.id,
        &[(ConsentScope::JobSupport, false), (ConsentScope::TrainingInfo, false)],
        Channel::Web,
        None,
    )
    .unwrap();
    push(&f, &f.osaka);
    assert!(national_status(&f, "27", &hanako.agency_code).is_none(), "nothing derived is kept");
}
both_backends!(withdrawals_delete_what_was_derived);

fn residents_files_with_unknown_people_or_future_dates_are_refused_whole(backend: Backend) {
    let f = federation(backend);
    let stranger = ncf_shared::MyNumber::from_body(12_345_678_901).expose_digits();
    let rows = [
        moved_to_kyoto(&f.cast[0], "2026-10-01"),
        format!("{stranger},address_changed,2026-10-01,{KYOTO_WARD},京都市,山田,花子"),
        moved_to_kyoto(&f.cast[1], "2099-01-01"),
        format!("{},address_changed,2026-10-01,999999,どこか,佐藤,美咲", f.cast[1].my_number),
    ];
    let path = f.national_db.path("bad.csv");
    write_csv(&path, RESIDENTS_HEADER, &rows);
    let mut cmd = national(&f.national_db);
    cmd.arg("import-residents").arg(&path);
    let (out, stdout, stderr) = run(cmd);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("line 3") && stderr.contains("no licence in the registry"), "{stderr}");
    assert!(stderr.contains("line 4") && stderr.contains("in the future"), "{stderr}");
    assert!(stderr.contains("line 5") && stderr.contains("unknown municipality"), "{stderr}");
    assert!(!stderr.contains(&stranger), "the unknown My Number is masked: {stderr}");
    let residents_in_kyoto =
        count(&f.national_db, "SELECT COUNT(*) AS n FROM residents WHERE lgcode LIKE '26%'");
    assert_eq!(residents_in_kyoto, 0, "nothing applied");
    // --accept-valid applies the one good row.
    let mut cmd = national(&f.national_db);
    cmd.arg("import-residents").arg(&path).arg("--accept-valid");
    let (out, _, stderr) = run(cmd);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(count(&f.national_db, "SELECT COUNT(*) AS n FROM residents WHERE lgcode LIKE '26%'"), 1);
}
both_backends!(residents_files_with_unknown_people_or_future_dates_are_refused_whole);

fn a_bad_reconcile_schedule_stops_start_up_with_its_name(backend: Backend) {
    let db = TestDb::new(backend);
    let mut cmd = national(&db);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--reconcile-cron", "30 9 * * Mon"]);
    let (out, _, stderr) = run(cmd);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--reconcile-cron \"30 9 * * Mon\"") && stderr.contains("six fields"),
        "{stderr}"
    );
}
both_backends!(a_bad_reconcile_schedule_stops_start_up_with_its_name);
