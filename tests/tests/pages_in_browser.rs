//! The node's pages in real headless Chromium, as their users meet them: a nurse in her 40s on a
//! 390-pixel phone opts in with the birth date her licence prints in 和暦, files a 離職届 and
//! withdraws a consent, each through its confirmation step to a receipt number; staff at a desk
//! find her by the name they hear on the phone. Every page is checked with axe-core (no serious
//! or critical violations) and, on the phone, for sideways scrolling.
//!
//! A nurse who moved from Osaka to Kyoto opens, on her phone, the link Kyoto's center mailed her,
//! chooses the new center's consents and gets a receipt.
//!
//! Both backends, like every test that touches a database.

mod support;

use std::time::Duration;

use ncf_shared::ConsentScope;
use ncf_tests::webdriver::{Driver, Session, axe_script};
use ncf_tests::{
    Backend, Person, RESIDENTS_HEADER, SmtpReceiver, TestServer, block_on, both_backends, national, run,
    write_csv,
};
use prefecture_node::{Channel, consent, notices};

/// Her licence: 看護師, born 昭和41年11月14日 (1966-11-14).
fn yuko() -> Person {
    Person {
        family_name: "伊藤".into(),
        given_name: "裕子".into(),
        family_name_kana: "イトウ".into(),
        given_name_kana: "ユウコ".into(),
        birth_date: "1966-11-14",
        ..Person::sample(0)
    }
}

/// Checks the page a user is on: nothing serious for axe, and (on the phone) no sideways scroll.
async fn check_page(session: &Session<'_>, axe: &str, phone: bool, what: &str) {
    session.screenshot(&what.replace(['/', ' '], "_")).await;
    let violations = session.serious_accessibility_violations(axe).await;
    assert!(violations.is_empty(), "{what}: accessibility violations:\n{}", violations.join("\n"));
    if phone {
        assert!(!session.scrolls_sideways().await, "{what}: the page scrolls sideways on a 390 px phone");
    }
}

async fn wait_for_text(session: &Session<'_>, text: &str) -> String {
    for _ in 0..100 {
        let body = session.text().await;
        if body.contains(text) {
            return body;
        }
        tokio_sleep(Duration::from_millis(100)).await;
    }
    panic!("{text:?} never appeared in:\n{}", session.text().await);
}

async fn tokio_sleep(d: Duration) {
    // The harness's runtime is current-thread; a blocking sleep of a few ms is fine between polls.
    std::thread::sleep(d);
}

fn receipt_number(text: &str) -> String {
    let digits: Vec<char> = text.chars().collect();
    (0..digits.len().saturating_sub(10))
        .map(|i| digits[i..i + 11].iter().collect::<String>())
        .find(|w| {
            let b: Vec<char> = w.chars().collect();
            b[3] == '-'
                && b[7] == '-'
                && b.iter().enumerate().all(|(i, c)| i == 3 || i == 7 || c.is_ascii_digit())
        })
        .unwrap_or_else(|| panic!("no receipt number in {text}"))
}

fn a_nurse_on_her_phone_and_staff_at_a_desk(backend: Backend) {
    let cast = vec![yuko(), Person::sample(1)];
    let national_db = ncf_tests::many::national_with(backend, &cast);
    let osaka = support::node(backend, &national_db, "27");
    let server = TestServer::national(&national_db);
    let smtp = SmtpReceiver::start();
    let node = TestServer::node_with(
        &osaka.db,
        &osaka.key_file,
        &server.base_url,
        "27",
        &["--smtp-url", &smtp.url, "--center-phone", "06-6000-0000", "--center-hours", "平日 9時〜17時"],
    );
    prefecture_node::staff::add(&mut osaka.db.connect(), "tanaka", "田中 美穂", "correct horse battery")
        .unwrap();
    let axe = axe_script();
    let driver = Driver::start();
    let p = yuko();

    block_on(async {
        // ---- The nurse, on a 390 px phone.
        let phone = driver.session(true).await;
        phone.goto(&node.url("/opt-in")).await;
        let text = phone.text().await;
        assert!(text.contains("就業支援への登録") && text.contains("06-6000-0000"), "{text}");
        assert!(text.contains("1. 入力"), "step indicator: {text}");
        check_page(&phone, &axe, true, "opt-in form").await;

        // A mistake first: the summary at the top links to the field, and the field says why.
        phone.click("button[type=submit]").await;
        let text = wait_for_text(&phone, "入力内容を確認してください").await;
        assert!(text.contains("籍登録番号"), "{text}");
        assert!(phone.exists("a[href=\"#registration_number\"]").await, "the summary links to the field");
        assert!(phone.exists("#registration_number[aria-invalid=true]").await);
        check_page(&phone, &axe, true, "opt-in form with errors").await;

        // Her licence as printed: full-width digits, kana typed in hiragana, 昭和41年11月14日.
        phone.select("#qualification", "03").await;
        let wide: String = p
            .registration_number
            .chars()
            .map(|c| char::from_u32(c as u32 - '0' as u32 + '０' as u32).unwrap())
            .collect();
        phone.fill("#registration_number", &wide).await;
        phone.fill("#family_name", "伊藤").await;
        phone.fill("#given_name", "裕子").await;
        phone.fill("#family_name_kana", "いとう").await;
        phone.fill("#given_name_kana", "ゆうこ").await;
        phone.select("#birth_era", "showa").await;
        phone.fill("#birth_year", "41").await;
        phone.fill("#birth_month", "11").await;
        phone.fill("#birth_day", "14").await;
        phone.fill("#email", "yuko@example.jp").await;
        phone.click("input[name=address_linkage]").await;
        phone.click("input[name=job_support]").await;
        phone.click("button[type=submit]").await;
        let text = wait_for_text(&phone, "確認メールを送りました").await;
        assert!(text.contains("yuko@example.jp") && text.contains("2. メールの確認"), "{text}");
        check_page(&phone, &axe, true, "mail sent").await;

        // The link in her mail opens the confirmation, her details shown as her licence prints them.
        let mut link = None;
        for _ in 0..400 {
            link = smtp.mails().iter().map(|m| m.text()).find(|t| t.contains("/opt-in/confirm?token=")).map(
                |t| {
                    let start = t.find("http").unwrap();
                    t[start..].split_whitespace().next().unwrap().to_string()
                },
            );
            if link.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        phone.goto(&link.expect("a confirmation mail")).await;
        let text = wait_for_text(&phone, "免許の照合").await;
        assert!(text.contains("3. 内容の確認"), "{text}");
        let source = phone.source().await;
        assert!(source.contains("value=\"41\"") && source.contains("value=\"イトウ\""), "{source}");
        check_page(&phone, &axe, true, "licence confirmation").await;
        phone.click("button[type=submit]").await;
        let text = wait_for_text(&phone, "登録を受け付けました").await;
        let registered = receipt_number(&text);
        assert!(text.contains("4. 完了") && text.contains("本人確認"), "{text}");
        check_page(&phone, &axe, true, "registration receipt").await;

        // A 離職届: 入力 → 確認 → 完了.
        phone.goto(&node.url("/me/notices/separation")).await;
        wait_for_text(&phone, "離職届").await;
        check_page(&phone, &axe, true, "separation form").await;
        phone.fill("#left_on", "2026年3月31日").await;
        phone.select("#reason", "childcare").await;
        phone.click("input[name=wish_to_return][value=yes]").await;
        phone.click("button[value=confirm]").await;
        let text = wait_for_text(&phone, "この内容で届け出る").await;
        assert!(
            text.contains("2026年3月31日") && text.contains("出産・育児") && text.contains("2. 確認"),
            "{text}"
        );
        check_page(&phone, &axe, true, "separation confirmation").await;
        phone.click("button[value=submit]").await;
        let text = wait_for_text(&phone, "届出を受け付けました").await;
        let filed = receipt_number(&text);
        assert_ne!(filed, registered);
        check_page(&phone, &axe, true, "separation receipt").await;

        // Withdrawing a consent asks first and says what will be deleted.
        phone.goto(&node.url("/me")).await;
        let text = wait_for_text(&phone, "同意の内容").await;
        assert!(text.contains(&format!("受付番号 {filed}")), "her notice shows its receipt: {text}");
        check_page(&phone, &axe, true, "her page").await;
        phone.click("form:has(input[name=scope][value=address_linkage]) button").await;
        let text = wait_for_text(&phone, "取り消しますか").await;
        assert!(text.contains("届出を削除します") && text.contains("取り消さずに戻る"), "{text}");
        check_page(&phone, &axe, true, "withdrawal confirmation").await;
        phone.click("button.danger").await;
        let text = wait_for_text(&phone, "同意の変更を受け付けました").await;
        assert!(text.contains("同意を取り消す"), "{text}");
        phone.goto(&node.url("/me")).await;
        let text = wait_for_text(&phone, "同意の内容").await;
        assert!(text.contains("住所情報の連携：同意していません"), "{text}");
        assert!(text.contains("同意文 2026年11月版"), "consent versions are text versions: {text}");
        for path in ["/help", "/privacy", "/accessibility", "/sign-in"] {
            phone.goto(&node.url(path)).await;
            check_page(&phone, &axe, true, path).await;
        }
        phone.close().await;

        // ---- Staff at a desk find her by the name they hear on the phone.
        let desk = driver.session(false).await;
        desk.goto(&node.url("/staff/sign-in")).await;
        check_page(&desk, &axe, false, "staff sign-in").await;
        desk.fill("#username", "tanaka").await;
        desk.fill("#password", "correct horse battery").await;
        desk.click("button[type=submit]").await;
        let text = wait_for_text(&desk, "看護職の一覧").await;
        assert!(text.contains("田中 美穂 さんがログイン中"), "{text}");
        desk.fill("#q", "イトウ ユウコ").await;
        desk.click("form[role=search] button[type=submit]").await;
        let text = wait_for_text(&desk, "1件").await;
        assert!(text.contains("伊藤 裕子"), "{text}");
        check_page(&desk, &axe, false, "staff list").await;
        desk.click("table a").await;
        let text = wait_for_text(&desk, "離職届").await;
        assert!(text.contains(&filed), "the staff page shows her receipt numbers: {text}");
        assert!(
            text.contains("1966年11月14日（昭和41年）"),
            "her birth date as her licence prints it: {text}"
        );
        check_page(&desk, &axe, false, "staff detail").await;
        for path in ["/staff/bulk", "/staff/lookup"] {
            desk.goto(&node.url(path)).await;
            check_page(&desk, &axe, false, path).await;
        }
        // Her receipt number, read out over the phone, finds her too.
        desk.goto(&node.url(&format!("/staff/nurses?q={}", filed.replace('-', "")))).await;
        let text = wait_for_text(&desk, "件").await;
        assert!(text.contains("伊藤 裕子"), "{text}");
        desk.close().await;
    });
}
both_backends!(a_nurse_on_her_phone_and_staff_at_a_desk);

/// The hand-over page (issue #7) as she meets it: from the invitation mail to the receipt, on a
/// 390-pixel phone, with a mistake on the way.
fn a_nurse_who_moved_confirms_at_her_new_center_on_her_phone(backend: Backend) {
    let f = support::federation(backend);
    let smtp = SmtpReceiver::start();
    let (mut conn, nurse) = support::opt_in(&f, &f.osaka, &f.cast[0]);
    let every: Vec<(ConsentScope, bool)> = ConsentScope::ALL.into_iter().map(|s| (s, true)).collect();
    consent::record(&mut conn, &nurse.id, &every, Channel::Web, None).unwrap();
    notices::file(&mut conn, &nurse.id, &support::separation(), Channel::Web, None).unwrap();
    support::push(&f, &f.osaka);

    // She moves to Kyoto; Osaka's node relays her contact sealed (pulled in one sync, pushed in
    // the next), and Kyoto's node mails her the link.
    let moves = f.national_db.path("moves.csv");
    let row = format!("{},address_changed,2026-10-01,261025,京都市上京区1丁目2番3号,,", f.cast[0].my_number);
    write_csv(&moves, RESIDENTS_HEADER, &[row]);
    let mut cmd = national(&f.national_db);
    cmd.arg("import-residents").arg(&moves);
    let (out, _, stderr) = run(cmd);
    assert!(out.status.success(), "{stderr}");
    support::push(&f, &f.osaka);
    support::push(&f, &f.osaka);
    let kyoto = TestServer::node_with(
        &f.kyoto.db,
        &f.kyoto.key_file,
        &f.server.base_url,
        "26",
        &["--smtp-url", &smtp.url, "--center-phone", "075-000-0000"],
    );
    let link = support::link_in(&smtp.wait_for(1).remove(0).text());
    assert!(link.starts_with(&kyoto.base_url), "{link}");

    let axe = axe_script();
    let driver = Driver::start();
    block_on(async {
        let phone = driver.session(true).await;
        phone.goto(&link).await;
        let text = wait_for_text(&phone, "への引継ぎ").await;
        assert!(text.contains("大阪府ナースセンターから") && text.contains("山田 花子"), "{text}");
        assert!(text.contains("本人確認は大阪府ナースセンターで済んでいます"), "{text}");
        check_page(&phone, &axe, true, "hand-over").await;

        // Nothing chosen: the summary says what to do and links to the choices.
        phone.click("button[type=submit]").await;
        let text = wait_for_text(&phone, "1つ以上選んでください").await;
        assert!(text.contains("入力内容を確認してください"), "{text}");
        assert!(phone.exists("a[href=\"#scopes\"]").await, "the summary links to the choices");
        check_page(&phone, &axe, true, "hand-over with errors").await;

        phone.click("input[name=address_linkage]").await;
        phone.click("input[name=job_support]").await;
        phone.click("button[type=submit]").await;
        let text = wait_for_text(&phone, "受付番号").await;
        let number = receipt_number(&text);
        check_page(&phone, &axe, true, "hand-over receipt").await;

        // Signed in at Kyoto: her page there shows what she chose and how she was proofed.
        phone.goto(&kyoto.url("/me")).await;
        let text = wait_for_text(&phone, "同意の内容").await;
        assert!(text.contains("転居前のナースセンターでの本人確認"), "{text}");
        assert!(text.contains("求人情報のお知らせ：同意しています"), "{text}");
        assert!(text.contains("研修情報のお知らせ：同意していません"), "{text}");
        check_page(&phone, &axe, true, "her page at the new center").await;

        // The link worked once: the second visit says why and offers nothing to submit.
        phone.goto(&link).await;
        let text = wait_for_text(&phone, "このリンクは使用済みか、有効期限が切れています").await;
        assert!(text.contains("ログインしてください"), "{text}");
        assert!(!phone.exists("form[action^=\"/transfer/\"]").await, "no hand-over form the second time");
        assert!(!text.contains(&number), "{text}");
        check_page(&phone, &axe, true, "hand-over link used").await;
        phone.close().await;
    });
}
both_backends!(a_nurse_who_moved_confirms_at_her_new_center_on_her_phone);

/// Jobs and training near home (issue #8) in the browser: Tokyo's staff publish a posting through
/// the form (a mistake first), and a latent nurse living in Kawasaki finds it on her page at the
/// Kanagawa node, on her phone, and changes her distance and digest settings.
fn a_tokyo_posting_reaches_a_kawasaki_nurse_on_her_phone(backend: Backend) {
    let her = Person { lgcode: "141313", ..Person::sample(0) };
    let national_db = ncf_tests::many::national_with(backend, std::slice::from_ref(&her));
    let tokyo = support::node(backend, &national_db, "13");
    let kanagawa = support::node(backend, &national_db, "14");
    let server = TestServer::national(&national_db);
    let (mut conn, nurse) = support::opt_in_at(&server, &kanagawa, &her);
    let every: Vec<(ConsentScope, bool)> = ConsentScope::ALL.into_iter().map(|s| (s, true)).collect();
    consent::record(&mut conn, &nurse.id, &every, Channel::Web, None).unwrap();
    notices::file(&mut conn, &nurse.id, &support::separation(), Channel::Web, None).unwrap();
    support::sync_at(&server, &kanagawa);
    prefecture_node::staff::add(&mut tokyo.db.connect(), "tanaka", "田中 美穂", "correct horse battery")
        .unwrap();
    // A training session in Tokyo (12 hours), besides the job staff publish through the form.
    let mut session = support::sample_posting();
    session.kind = ncf_shared::posting::PostingKind::Training;
    session.title = "復職支援研修（採血・注射）".into();
    session.place = ncf_shared::posting::PostingPlace::Municipality { lgcode: "131091".into() };
    session.employment_types = vec![];
    session.training = Some(ncf_shared::posting::TrainingDetails {
        starts_on: ncf_shared::time::today_jst() + chrono::Duration::days(20),
        ends_on: ncf_shared::time::today_jst() + chrono::Duration::days(21),
        hours: 12,
        capacity: 20,
        fee_yen: 0,
    });
    let session_id =
        prefecture_node::postings::create(&mut tokyo.db.connect(), "tokyo-staff", &session).unwrap().unwrap();
    let smtp = SmtpReceiver::start();
    let tokyo_node = TestServer::node(&tokyo.db, &tokyo.key_file, &server.base_url, "13");
    let kanagawa_node = TestServer::node_with(
        &kanagawa.db,
        &kanagawa.key_file,
        &server.base_url,
        "14",
        &["--smtp-url", &smtp.url],
    );
    let axe = axe_script();
    let driver = Driver::start();

    block_on(async {
        // ---- Tokyo's staff, at a desk.
        let desk = driver.session(false).await;
        desk.goto(&tokyo_node.url("/staff/sign-in")).await;
        desk.fill("#username", "tanaka").await;
        desk.fill("#password", "correct horse battery").await;
        desk.click("button[type=submit]").await;
        wait_for_text(&desk, "看護職の一覧").await;
        desk.goto(&tokyo_node.url("/staff/postings")).await;
        let text = wait_for_text(&desk, "求人・研修").await;
        assert!(text.contains("復職支援研修（採血・注射）") && text.contains("掲載中"), "{text}");
        check_page(&desk, &axe, false, "postings list").await;
        desk.click("a[href=\"/staff/postings/new\"]").await;
        wait_for_text(&desk, "求人・研修の掲載").await;
        check_page(&desk, &axe, false, "posting form").await;
        // A tag in the title and no facility: refused, each named, what was typed kept.
        desk.fill("#title", "<b>急募</b> 病棟看護師").await;
        desk.fill("#description", "ブランクのある方も歓迎します。").await;
        desk.fill("#lgcode", "131105").await;
        desk.fill("#valid_until", "2099年3月31日").await;
        desk.click("form[action=\"/staff/postings\"] button[type=submit]").await;
        let text = wait_for_text(&desk, "入力内容を確認してください").await;
        assert!(text.contains("タイトルにHTMLタグやスクリプトは使えません"), "{text}");
        assert!(text.contains("施設名を入力してください"), "{text}");
        assert!(text.contains("雇用形態を1つ以上選んでください"), "{text}");
        assert!(desk.exists("#title[aria-invalid=true]").await);
        let kept =
            desk.execute("return document.getElementById('lgcode').value", serde_json::json!([])).await;
        assert_eq!(kept, "131105", "what was typed is kept");
        check_page(&desk, &axe, false, "posting form with errors").await;
        desk.fill("#title", "病棟看護師（日勤のみ可）").await;
        desk.fill("#facility_name", "目黒テスト病院").await;
        desk.fill("#facility_contact", "03-0000-0000（看護部）").await;
        desk.click("input[name=days_only]").await;
        desk.click("form[action=\"/staff/postings\"] button[type=submit]").await;
        let text = wait_for_text(&desk, "掲載しました").await;
        assert!(text.contains("病棟看護師（日勤のみ可）") && text.contains("掲載中"), "{text}");
        assert!(text.contains("2099年3月31日"), "dates as people write them: {text}");
        check_page(&desk, &axe, false, "postings list with one").await;
        desk.close().await;

        // The posting travels (Tokyo's sync), is matched, and her list arrives (Kanagawa's sync).
        let listed = ncf_tests::eventually(Duration::from_secs(60), || {
            !prefecture_node::postings::matches_for(
                &mut kanagawa.db.connect(),
                ncf_shared::Prefecture::from_code("14").unwrap(),
                &nurse.id,
                ncf_shared::time::today_jst(),
            )
            .unwrap()
            .is_empty()
        });
        assert!(listed, "her list at Kanagawa: {}", kanagawa_node.log());

        // ---- The nurse, on her phone: sign-in link by mail, then her page.
        let phone = driver.session(true).await;
        phone.goto(&kanagawa_node.url("/sign-in")).await;
        phone.fill("#email", "nurse@example.jp").await;
        phone.click("button[type=submit]").await;
        wait_for_text(&phone, "ログイン用リンクをお送りしました").await;
        let mut link = None;
        for _ in 0..400 {
            link =
                smtp.mails().iter().map(|m| m.text()).find(|t| t.contains("/sign-in/link?token=")).map(|t| {
                    let start = t.find("http").unwrap();
                    t[start..].split_whitespace().next().unwrap().to_string()
                });
            if link.is_some() {
                break;
            }
            tokio_sleep(Duration::from_millis(50)).await;
        }
        phone.goto(&link.expect("a sign-in mail")).await;
        phone.click("button[type=submit]").await;
        let text = wait_for_text(&phone, "お住まいの近くの求人・研修").await;
        assert!(text.contains("病棟看護師（日勤のみ可）"), "{text}");
        assert!(text.contains("東京都目黒区、自宅から約12 km"), "a Tokyo posting, across the border: {text}");
        assert!(text.contains("新着"), "new since her last digest (none yet): {text}");
        check_page(&phone, &axe, true, "her page with her matches").await;
        phone.click("#matches + details summary").await;
        phone.select("#max_distance_km", "50").await;
        phone.click("input[name=digest_cadence][value=daily]").await;
        phone.click("form[action=\"/me/preferences\"] button[type=submit]").await;
        let text = wait_for_text(&phone, "お知らせの設定を変更しました").await;
        assert!(text.contains("自宅から 50 km 以内"), "{text}");
        check_page(&phone, &axe, true, "her page after changing her settings").await;

        // She asks to attend the Tokyo training: without ticking the consent, nothing is sent.
        let wish_link = format!("a[href=\"/me/training/13/{session_id}\"]");
        assert!(phone.exists(&wish_link).await, "a training on her list can be asked for");
        phone.click(&wish_link).await;
        let text = wait_for_text(&phone, "研修の参加希望").await;
        assert!(
            text.contains(
                "東京都ナースセンターに、わたしの氏名・ふりがな・資格・メールアドレス・電話番号を伝える"
            ),
            "{text}"
        );
        check_page(&phone, &axe, true, "asking to attend a training").await;
        phone.click("form button[type=submit]").await;
        let text = wait_for_text(&phone, "同意にチェックを入れてください").await;
        assert!(!text.contains("参加希望を受け付けました"), "{text}");
        check_page(&phone, &axe, true, "asking without the consent").await;
        phone.click("input[name=agree]").await;
        phone.click("form button[type=submit]").await;
        let text = wait_for_text(&phone, "研修の参加希望を受け付けました").await;
        assert!(text.contains("研修歴"), "{text}");

        // Her wish reaches Tokyo (Kanagawa → national → Kanagawa seals her contact → Tokyo).
        let arrived = ncf_tests::eventually(Duration::from_secs(60), || {
            !prefecture_node::training::applicants(&mut tokyo.db.connect(), &session_id).unwrap().is_empty()
        });
        assert!(arrived, "the applicant at Tokyo: {}", tokyo_node.log());

        // ---- Tokyo's staff record her attendance.
        let desk = driver.session(false).await;
        desk.goto(&tokyo_node.url("/staff/sign-in")).await;
        desk.fill("#username", "tanaka").await;
        desk.fill("#password", "correct horse battery").await;
        desk.click("button[type=submit]").await;
        wait_for_text(&desk, "看護職の一覧").await;
        desk.goto(&tokyo_node.url(&format!("/staff/postings/{session_id}/applicants"))).await;
        let text = wait_for_text(&desk, "研修の参加希望者").await;
        assert!(text.contains(&format!("{} {}", nurse.family_name, nurse.given_name)), "{text}");
        assert!(text.contains("nurse@example.jp") && text.contains("神奈川県ナースセンター"), "{text}");
        check_page(&desk, &axe, false, "applicants of a training").await;
        desk.fill("input[name=hours]", "13").await;
        desk.click("td form button[type=submit]").await;
        let text = wait_for_text(&desk, "受講時間は1〜12時間").await;
        check_page(&desk, &axe, false, "attendance refused").await;
        assert!(!text.contains("出欠を記録しました"), "{text}");
        desk.fill("input[name=hours]", "12").await;
        desk.click("td form button[type=submit]").await;
        let text = wait_for_text(&desk, "出欠を記録しました").await;
        assert!(text.contains("出席（12時間）"), "{text}");
        desk.close().await;

        // ---- Back to her: the record arrives, and prints.
        let recorded = ncf_tests::eventually(Duration::from_secs(60), || {
            prefecture_node::training::history(&mut kanagawa.db.connect(), &nurse.id)
                .unwrap()
                .iter()
                .any(|w| w.attended == Some(true))
        });
        assert!(recorded, "her history at Kanagawa: {}", kanagawa_node.log());
        phone.goto(&kanagawa_node.url("/me")).await;
        let text = wait_for_text(&phone, "研修歴").await;
        assert!(text.contains("受講しました（12時間）"), "{text}");
        phone.click("a[href=\"/me/training-record\"]").await;
        let text = wait_for_text(&phone, "研修受講記録").await;
        assert!(text.contains("復職支援研修（採血・注射）") && text.contains("12時間"), "{text}");
        assert!(text.contains("令和"), "a record prints the Japanese era: {text}");
        check_page(&phone, &axe, true, "her printable training record").await;
        phone.close().await;
    });
    let settings = prefecture_node::digests::settings(&mut kanagawa.db.connect(), &nurse.id).unwrap();
    assert_eq!(settings.cadence, prefecture_node::digests::Cadence::Daily);
}
both_backends!(a_tokyo_posting_reaches_a_kawasaki_nurse_on_her_phone);
