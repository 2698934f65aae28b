//! Identity proofing (issue #5), over real processes and a real SMTP receiver: licence details
//! typed on the public page share nothing until a postal code (from `postal export`) is typed;
//! two registrations for one licence, only the one that proves keeps it; the public page and the
//! national server do not read the registry for whoever types; the 6th failure for one licence in
//! 24 hours is refused.

mod support;

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use ncf_tests::{
    Backend, Browser, SmtpReceiver, TestServer, block_on, both_backends, eventually, national, run,
};
use serde_json::json;
use support::*;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(conn: &mut ncf_shared::db::DbConn, sql: &str) -> i64 {
    diesel::sql_query(sql).get_result::<Count>(conn).unwrap().n
}

/// What the national server holds about people from node 27 (consents, notices, contacts).
fn national_holdings(f: &Federation) -> (i64, i64, i64) {
    let mut conn = f.national_db.connect();
    (
        count(&mut conn, "SELECT COUNT(*) AS n FROM nurse_consents WHERE prefecture = '27'"),
        count(&mut conn, "SELECT COUNT(*) AS n FROM nurse_notices WHERE prefecture = '27'"),
        count(&mut conn, "SELECT COUNT(*) AS n FROM pushed_events WHERE prefecture = '27'"),
    )
}

fn node_27(f: &Federation, smtp: &SmtpReceiver) -> TestServer {
    TestServer::node_with(
        &f.osaka.db,
        &f.osaka.key_file,
        &f.server.base_url,
        "27",
        &["--smtp-url", &smtp.url, "--mail-from", "大阪府ナースセンター <nc27@example.jp>"],
    )
}

fn export_letters(f: &Federation, name: &str) -> Vec<csv::StringRecord> {
    let out = f.national_db.path(name);
    let mut cmd = national(&f.national_db);
    cmd.args(["postal", "export", "--out"]).arg(&out);
    let (status, stdout, stderr) = run(cmd);
    assert!(status.status.success(), "{stdout}{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o600,
            "codes and addresses"
        );
    }
    let mut reader = csv::Reader::from_path(&out).unwrap();
    reader.records().map(Result::unwrap).collect()
}

fn a_licence_copy_shares_nothing_and_only_the_postal_code_proves(backend: Backend) {
    let f = federation(backend);
    let smtp = SmtpReceiver::start();
    let node = node_27(&f, &smtp);
    let owner = &f.cast[0];
    let before = national_holdings(&f);
    block_on(async {
        // Someone with a copy of her licence certificate registers first, with their own address.
        let attacker = Browser::new(&node);
        let page = apply_on_page(&attacker, owner, owner.birth_date, "attacker@example.jp").await;
        assert!(page.status == 200 && page.body.contains("確認メールを送りました"), "{}", page.body);
        let page = confirm_by_mail(&attacker, &smtp, &node, "attacker@example.jp").await;
        assert!(page.location.as_deref().is_some_and(|l| l.starts_with("/me/receipts/")), "{}", page.body);
        // The owner registers too: the first registration blocks nobody.
        let her = Browser::new(&node);
        let page = apply_on_page(&her, owner, owner.birth_date, "hanako@example.jp").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let page = confirm_by_mail(&her, &smtp, &node, "hanako@example.jp").await;
        assert!(page.location.as_deref().is_some_and(|l| l.starts_with("/me/receipts/")), "{}", page.body);

        // Both file a notice; nothing reaches the national server.
        let mut conn = f.osaka.db.connect();
        let mine: Vec<(String, String)> = prefecture_node::schema::nurses::table
            .select((prefecture_node::schema::nurses::id, prefecture_node::schema::nurses::email))
            .load(&mut conn)
            .unwrap();
        assert_eq!(mine.len(), 2, "two unproofed registrations side by side");
        let attacker_id = mine.iter().find(|(_, e)| e == "attacker@example.jp").unwrap().0.clone();
        let her_id = mine.iter().find(|(_, e)| e == "hanako@example.jp").unwrap().0.clone();
        prefecture_node::notices::file(
            &mut conn,
            &attacker_id,
            &separation(),
            prefecture_node::Channel::Web,
            None,
        )
        .unwrap();
        prefecture_node::notices::file(
            &mut conn,
            &her_id,
            &separation(),
            prefecture_node::Channel::Web,
            None,
        )
        .unwrap();
        let outbox = count(&mut conn, "SELECT COUNT(*) AS n FROM outbox");
        assert_eq!(outbox, 0, "the gate queues nothing about an unproofed registration");
        std::thread::sleep(std::time::Duration::from_millis(600)); // several sync rounds
        assert_eq!(national_holdings(&f), before, "nothing about her reached the national server");

        // She asks for a letter on her page; the print file carries her resident address.
        let me = her.get("/me").await;
        assert!(me.body.contains("本人確認が済んでいません"), "{}", me.body);
        let csrf = me.hidden("csrf");
        let page = her.post("/me/proofing/letter", &[("csrf", csrf.as_str())]).await;
        assert_eq!(page.location.as_deref(), Some("/me?done=letter#proofing"));
        let me = her.get("/me?done=letter").await;
        assert!(
            me.body.contains("住民票の住所に届きます") && me.body.contains("に郵送を申し込みました"),
            "{}",
            me.body
        );
        assert!(!me.body.contains("大阪府内1丁目"), "the node never learns her address");

        // Typed before the letter is printed: no code can be right yet.
        let page = her.post("/me/proofing/code", &[("csrf", csrf.as_str()), ("code", "12345678")]).await;
        assert_eq!(page.location.as_deref(), Some("/me?proofing=not_sent#proofing"));

        // Her letter in the print file, by the id her node recorded for her.
        let (letter_id, _) = prefecture_node::proofing::latest_letter(&mut conn, &her_id).unwrap().unwrap();
        let letters = export_letters(&f, "letters-1.csv");
        assert_eq!(letters.len(), 1, "one letter, written once (even when the export ran again)");
        let letter = letters.iter().find(|l| l[0] == *letter_id).expect("her letter is in the print file");
        assert_eq!(&letter[1], owner.family_name);
        assert!(letter[3].contains("大阪府内1丁目1番1号"), "{letter:?}");
        assert_eq!(&letter[4], "大阪府ナースセンター");
        let code = letter[5].to_string();
        assert_eq!(code.len(), 8);
        assert!(letter[6].ends_with('日') && letter[6].contains('年'), "{letter:?}");
        assert!(export_letters(&f, "letters-2.csv").is_empty(), "each letter is exported once");
        {
            let mut national_conn = f.national_db.connect();
            let clear = count(
                &mut national_conn,
                "SELECT COUNT(*) AS n FROM postal_letters WHERE address IS NOT NULL OR family_name IS NOT NULL",
            );
            assert_eq!(clear, 0, "name and address leave the letter row once exported");
        }

        // A wrong code (typed in full-width digits) counts; the right one proves her.
        let wrong = if code == "00000000" { "11111111" } else { "00000000" };
        let page = her.post("/me/proofing/code", &[("csrf", csrf.as_str()), ("code", wrong)]).await;
        assert_eq!(page.location.as_deref(), Some("/me?proofing=wrong#proofing"));
        let full_width: String =
            code.chars().map(|c| char::from_u32(c as u32 - '0' as u32 + '０' as u32).unwrap()).collect();
        let page = her.post("/me/proofing/code", &[("csrf", csrf.as_str()), ("code", &full_width)]).await;
        assert_eq!(page.location.as_deref(), Some("/me?done=proofed"));
        let me = her.get("/me").await;
        assert!(me.body.contains("本人確認は済んでいます：郵送の確認コード"), "{}", me.body);

        // Now her consents, her notice and her contact arrive; the attacker's registration is gone
        // and its address told.
        assert!(
            eventually(std::time::Duration::from_secs(60), || {
                let (consents, notices, _) = national_holdings(&f);
                consents == 3 && notices == 1
            }),
            "{:?}",
            national_holdings(&f)
        );
        let left: i64 = prefecture_node::schema::nurses::table.count().get_result(&mut conn).unwrap();
        assert_eq!(left, 1);
        assert!(
            eventually(std::time::Duration::from_secs(30), || smtp
                .mails()
                .iter()
                .any(|m| m.to == ["attacker@example.jp"] && m.text().contains("削除しました"))),
            "the removed registration is told"
        );
        assert_eq!(attacker.get("/me").await.location.as_deref(), Some("/sign-in"), "its session ended");
        // The code cannot be used again.
        let mut national_conn = f.national_db.connect();
        let proofed = count(
            &mut national_conn,
            "SELECT COUNT(*) AS n FROM identity_links WHERE prefecture = '27' AND proofing_method = 'post'",
        );
        assert_eq!(proofed, 1);
    });
}
both_backends!(a_licence_copy_shares_nothing_and_only_the_postal_code_proves);

/// The page after the opt-in form, with the CSRF token removed.
fn without_tokens(body: &str) -> String {
    body.lines().filter(|l| !l.contains("csrf") && !l.contains("token")).collect::<Vec<_>>().join("\n")
}

fn the_public_page_reads_nothing_from_the_registry(backend: Backend) {
    let f = federation(backend);
    let smtp = SmtpReceiver::start();
    // A lapsed licence among the registry: person 3 is made lapsed by a second import.
    let mut lapsed = f.cast[3].clone();
    lapsed.status = "lapsed";
    ncf_tests::write_csv(
        &f.national_db.path("lapsed.csv"),
        ncf_tests::REGISTRY_HEADER,
        &[lapsed.registry_row()],
    );
    let mut cmd = national(&f.national_db);
    cmd.arg("import-registry").arg(f.national_db.path("lapsed.csv"));
    assert!(run(cmd).0.status.success());
    let node = node_27(&f, &smtp);
    let (_, proofed) = opt_in(&f, &f.osaka, &f.cast[0]); // registered and proofed
    block_on(async {
        // The form's answer: the same page for a proofed licence, an unregistered one and one that
        // does not exist.
        let browser = Browser::new(&node);
        let mut unknown = f.cast[1].clone();
        unknown.registration_number = "7654321".into();
        let answers = [
            apply_on_page(&browser, &f.cast[0], f.cast[0].birth_date, "x@example.jp").await,
            apply_on_page(&browser, &f.cast[1], f.cast[1].birth_date, "x@example.jp").await,
            apply_on_page(&browser, &unknown, unknown.birth_date, "x@example.jp").await,
        ];
        for answer in &answers {
            assert_eq!((answer.status, answer.body.as_str()), (answers[0].status, answers[0].body.as_str()));
        }
        assert!(
            answers[0].body.contains("確認メールを送りました") && !answers[0].body.contains(&proofed.email)
        );

        // After the link: one page, byte for byte apart from tokens, for an unknown registration
        // number, a wrong birth date and a lapsed licence.
        let mut pages = Vec::new();
        for (person, birth_date, email) in [
            (&unknown, unknown.birth_date, "a@example.jp"),
            (&f.cast[2], "1970-01-01", "b@example.jp"),
            (&lapsed, lapsed.birth_date, "c@example.jp"),
        ] {
            let browser = Browser::new(&node);
            apply_on_page(&browser, person, birth_date, email).await;
            pages.push(confirm_by_mail(&browser, &smtp, &node, email).await);
        }
        for page in &pages {
            assert_eq!(page.status, 422);
            assert!(page.body.contains("登録内容と照合できませんでした"), "{}", page.body);
        }
        // A link is not a way to try licence details over and over: the third no-match ends it.
        let browser = Browser::new(&node);
        apply_on_page(&browser, &unknown, unknown.birth_date, "d@example.jp").await;
        for _ in 0..3 {
            assert_eq!(confirm_by_mail(&browser, &smtp, &node, "d@example.jp").await.status, 422);
        }
        let link = smtp.mails().iter().rev().find(|m| m.to == ["d@example.jp"]).unwrap().text();
        let at = link.find("/opt-in/confirm?token=").unwrap();
        let path = link[at..].split_whitespace().next().unwrap().to_string();
        assert_eq!(browser.get(&path).await.status, 410, "the application is gone");

        let first = without_tokens(&pages[0].body);
        assert_eq!(first, without_tokens(&pages[1].body), "wrong birth date answers as an unknown licence");
        assert_eq!(first, without_tokens(&pages[2].body), "a lapsed licence answers as an unknown licence");
    });
    // The national server: 5 failures for one licence, then even the right details are refused.
    let p = &f.cast[2];
    let claims = |birth_date: &str| {
        json!({
            "qualification": p.qualification, "registration_number": p.registration_number,
            "family_name": p.family_name, "given_name": p.given_name,
            "family_name_kana": p.family_name_kana, "given_name_kana": p.given_name_kana,
            "birth_date": birth_date,
        })
    };
    block_on(async {
        // One failure came from the page above.
        for _ in 0..4 {
            let body = serde_json::to_vec(&claims("1970-01-02")).unwrap();
            let (status, answer) = signed_post(&f, &f.kyoto.key, "/federation/v1/identity-link", &body).await;
            assert_eq!((status, answer["error"].as_str()), (422, Some("no_match")), "{answer}");
            assert!(answer.get("mismatched").is_none(), "a public answer names no field: {answer}");
        }
        let body = serde_json::to_vec(&claims(p.birth_date)).unwrap();
        let (status, answer) = signed_post(&f, &f.kyoto.key, "/federation/v1/identity-link", &body).await;
        assert_eq!((status, answer["error"].as_str()), (429, Some("attempts_exhausted")), "{answer}");
        // Another licence is not affected.
        let other = &f.cast[0];
        let body = serde_json::to_vec(&json!({
            "qualification": other.qualification, "registration_number": other.registration_number,
            "family_name": other.family_name, "given_name": other.given_name,
            "family_name_kana": other.family_name_kana, "given_name_kana": other.given_name_kana,
            "birth_date": other.birth_date,
        }))
        .unwrap();
        let (status, answer) = signed_post(&f, &f.kyoto.key, "/federation/v1/identity-link", &body).await;
        assert_eq!(status, 200, "{answer}");
    });
}
both_backends!(the_public_page_reads_nothing_from_the_registry);

fn a_proofed_licence_is_not_registered_again(backend: Backend) {
    let f = federation(backend);
    let smtp = SmtpReceiver::start();
    let (_, hanako) = opt_in(&f, &f.osaka, &f.cast[0]); // proofed at the counter
    let node = node_27(&f, &smtp);
    block_on(async {
        let browser = Browser::new(&node);
        let page = apply_on_page(&browser, &f.cast[0], f.cast[0].birth_date, "someone@example.jp").await;
        assert_eq!(page.status, 200);
        let page = confirm_by_mail(&browser, &smtp, &node, "someone@example.jp").await;
        assert_eq!(page.status, 422, "answers as a mismatch");
        assert!(page.body.contains("登録内容と照合できませんでした"));
        assert!(!page.body.contains(&hanako.email), "her address is not shown");
        assert!(
            eventually(std::time::Duration::from_secs(30), || smtp
                .mails()
                .iter()
                .any(|m| m.to == [hanako.email.clone()] && m.text().contains("登録の申し込みがありました"))),
            "her own address is told"
        );
    });
    let mut conn = f.osaka.db.connect();
    let n: i64 = prefecture_node::schema::nurses::table.count().get_result(&mut conn).unwrap();
    assert_eq!(n, 1);
}
both_backends!(a_proofed_licence_is_not_registered_again);

fn no_letter_goes_to_a_person_without_a_current_address(backend: Backend) {
    let f = federation(backend);
    let (_, yoko) = opt_in(&f, &f.osaka, &f.cast[2]);
    // The resident data then records her death: no address to post a code to.
    ncf_tests::write_csv(
        &f.national_db.path("death.csv"),
        ncf_tests::RESIDENTS_HEADER,
        &[format!("{},deceased,2026-11-01,,,,", f.cast[2].my_number)],
    );
    let mut cmd = national(&f.national_db);
    cmd.arg("import-residents").arg(f.national_db.path("death.csv"));
    assert!(run(cmd).0.status.success());
    let letter = |code: &str| serde_json::to_vec(&json!({ "agency_code": code })).unwrap();
    block_on(async {
        let (status, answer) =
            signed_post(&f, &f.osaka.key, "/federation/v1/proofing/letter", &letter(&yoko.agency_code)).await;
        assert_eq!((status, answer), (200, json!({"outcome": "no_address"})));
        // Another node's nurse, or a code never linked: not found, nothing queued.
        let (status, answer) =
            signed_post(&f, &f.kyoto.key, "/federation/v1/proofing/letter", &letter(&yoko.agency_code)).await;
        assert_eq!((status, answer["error"].as_str()), (404, Some("not_found")), "{answer}");
        // A code check for a letter that does not exist: a new letter is needed, never a 500.
        let check = serde_json::to_vec(
            &json!({"agency_code": yoko.agency_code, "letter_id": "nope", "code": "12345678"}),
        )
        .unwrap();
        let (status, answer) = signed_post(&f, &f.osaka.key, "/federation/v1/proofing/code", &check).await;
        assert_eq!((status, answer), (200, json!({"outcome": "new_letter_needed"})));
    });
    let mut conn = f.national_db.connect();
    assert_eq!(count(&mut conn, "SELECT COUNT(*) AS n FROM postal_letters"), 0);
}
both_backends!(no_letter_goes_to_a_person_without_a_current_address);
