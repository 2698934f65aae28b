//! Staff pages and API at a running node, over real HTTP: sign-in with a session cookie and its
//! rate limit, CSRF on forms, search, one nurse's record, paper notices and consents that then
//! travel (or not) like any other, the employer bulk upload, and API tokens.

mod support;

use std::time::Duration;

use ncf_shared::ConsentScope;
use ncf_tests::{
    Backend, Browser, TestServer, block_on, both_backends, eventually, eventually_async, http_client, run,
};
use prefecture_node::Channel;
use support::*;

const PASSWORD: &str = "correct horse battery";

fn add_staff(node: &Node, username: &str) -> String {
    prefecture_node::staff::add(&mut node.db.connect(), username, "田中 美穂", PASSWORD).unwrap().id
}

/// The session's form token, read from a signed-in page.
async fn session_csrf(browser: &Browser) -> String {
    let page = browser.get("/staff/nurses").await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.hidden("csrf")
}

fn staff_sign_in_session_and_rate_limit(backend: Backend) {
    let f = federation(backend);
    add_staff(&f.osaka, "tanaka");
    add_staff(&f.osaka, "sato");
    let node = TestServer::node(&f.osaka.db, &f.osaka.key_file, &f.server.base_url, "27");
    block_on(async {
        let browser = Browser::new(&node);
        // Staff pages need a session.
        let page = browser.get("/staff/nurses").await;
        assert_eq!((page.status, page.location.as_deref()), (303, Some("/staff/sign-in")));

        let page = browser.staff_sign_in("tanaka", "wrong password!").await;
        assert_eq!(page.status, 401);
        assert!(page.body.contains("ユーザー名またはパスワードが正しくありません"), "{}", page.body);
        assert!(page.body.contains("value=\"tanaka\""), "the username is kept");

        let page = browser.staff_sign_in("tanaka", PASSWORD).await;
        assert_eq!((page.status, page.location.as_deref()), (303, Some("/staff/nurses")));
        let cookie = page.cookie("ncf_staff").expect("session cookie").to_string();
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/staff"] {
            assert!(cookie.contains(flag), "{cookie}");
        }
        assert!(!cookie.contains("Secure"), "plain http: no Secure flag ({cookie})");
        let list = browser.get("/staff/nurses").await;
        assert!(list.body.contains("看護職の一覧") && list.body.contains("田中 美穂"), "{}", list.body);

        // A form without the session's token changes nothing.
        let page = browser.post("/staff/sign-out", &[("csrf", "forged")]).await;
        assert_eq!(page.status, 403);
        assert!(page.body.contains("もう一度お試しください"));
        assert_eq!(browser.get("/staff/nurses").await.status, 200, "still signed in");
        let csrf = session_csrf(&browser).await;
        let page = browser.post("/staff/sign-out", &[("csrf", &csrf)]).await;
        assert_eq!(page.status, 303);
        assert_eq!(browser.get("/staff/nurses").await.status, 303, "signed out");

        // Failures in a row for one username from one client delay that pair only (the full
        // story, with other clients and proxies, is in defences.rs).
        // (One failure is already recorded above, and a success since.)
        for _ in 0..prefecture_node::auth::FREE_FAILURES {
            assert_eq!(browser.staff_sign_in("tanaka", "guess guess guess").await.status, 401);
        }
        let page = browser.staff_sign_in("tanaka", PASSWORD).await;
        assert_eq!(page.status, 429);
        assert!(page.body.contains("しばらく待ってから"), "{}", page.body);
        assert!(page.headers.contains_key("retry-after"));
        assert!(page.cookie("ncf_staff").is_none());
        assert_eq!(
            browser.staff_sign_in("sato", PASSWORD).await.status,
            303,
            "another account is not delayed"
        );
    });
    let attempts = count(&f.osaka.db, "SELECT COUNT(*) AS n FROM sign_in_attempts WHERE NOT succeeded");
    assert_eq!(attempts, 1 + prefecture_node::auth::FREE_FAILURES, "throttled tries are not counted");
    assert!(node.log().contains("staff sign-in throttled"));
}
both_backends!(staff_sign_in_session_and_rate_limit);

fn staff_find_a_nurse_and_enter_paper_forms(backend: Backend) {
    let f = federation(backend);
    let staff_id = add_staff(&f.osaka, "tanaka");
    let (mut conn, hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    let (_, misaki) = opt_in(&f, &f.osaka, &f.cast[1]);
    prefecture_node::consent::record(
        &mut conn,
        &hanako.id,
        &[(ConsentScope::AddressLinkage, true)],
        Channel::Web,
        None,
    )
    .unwrap();
    let node = TestServer::node(&f.osaka.db, &f.osaka.key_file, &f.server.base_url, "27");
    block_on(async {
        let browser = Browser::new(&node);
        assert_eq!(browser.staff_sign_in("tanaka", PASSWORD).await.status, 303);
        let all = browser.get("/staff/nurses").await;
        assert!(all.body.contains("保留 0件"), "{}", all.body);
        assert!(all.body.contains("2件") && all.body.contains("山田 花子") && all.body.contains("佐藤 美咲"));
        // Kana in hiragana finds her; so does her registration number without leading zeros.
        for q in ["やまだ", "1000000", "山田"] {
            let found = browser.get(&format!("/staff/nurses?q={}", urlencode(q))).await;
            assert!(found.body.contains("1件") && found.body.contains("山田 花子"), "{q}: {}", found.body);
            assert!(!found.body.contains("佐藤 美咲"), "{q}");
        }
        let bad = browser.get("/staff/nurses?page=abc").await;
        assert_eq!(bad.status, 400);
        assert!(bad.body.contains("URLの指定が正しくありません"), "{}", bad.body);
        let none = browser.get("/staff/nurses?q=%25").await;
        assert!(none.body.contains("0件"), "a % is searched for literally");

        let detail = browser.get(&format!("/staff/nurses/{}", hanako.id)).await;
        assert_eq!(detail.status, 200);
        for text in ["山田 花子", "ヤマダ ハナコ", "住所情報の連携", "国の共通サーバーとの同期", "同意の変更"]
        {
            assert!(detail.body.contains(text), "{text}: {}", detail.body);
        }
        assert!(
            eventually_async(Duration::from_secs(20), || async {
                browser.get(&format!("/staff/nurses/{}", hanako.id)).await.body.contains("送信済み")
            })
            .await,
            "the consent event shows as sent once the worker pushed it"
        );
        let csrf = detail.hidden("csrf");

        // A paper separation notice with a mistake: explained, input kept, nothing saved.
        let path = format!("/staff/nurses/{}/notices/separation", hanako.id);
        let form = browser.get(&path).await;
        assert!(
            form.body.contains("山田 花子 さんの書面の届出")
                && form.body.contains("国のデータベースにも送られます")
        );
        let bad = browser
            .post(
                &path,
                &[
                    ("csrf", &csrf),
                    ("left_on", "2099-01-01"),
                    ("reason", "childcare"),
                    ("wish_to_return", "yes"),
                    ("return_when", "来春"),
                ],
            )
            .await;
        assert_eq!(bad.status, 422);
        assert!(bad.body.contains("離職日に未来の日付は指定できません"), "{}", bad.body);
        assert!(bad.body.contains("value=\"来春\""), "input kept");
        assert_eq!(count(&f.osaka.db, "SELECT COUNT(*) AS n FROM notices"), 0);

        let fields = [
            ("csrf", csrf.as_str()),
            ("received_on", "2026年4月2日"),
            ("left_on", "2026-03-31"),
            ("reason", "childcare"),
            ("wish_to_return", "yes"),
            ("return_when", "来春"),
        ];
        let confirm = browser.post(&path, &fields).await;
        assert_eq!(confirm.status, 200);
        assert!(
            confirm.body.contains("この内容で届け出る") && confirm.body.contains("来春"),
            "{}",
            confirm.body
        );
        assert!(confirm.body.contains("2026年4月2日"), "受付日 as people write it");
        let submission = confirm.hidden("submission");
        let submit: Vec<(&str, &str)> =
            fields.iter().copied().chain([("step", "submit"), ("submission", submission.as_str())]).collect();
        let good = browser.post(&path, &submit).await;
        assert_eq!(good.status, 303, "{}", good.body);
        let detail = browser.get(good.location.as_deref().unwrap()).await;
        assert!(
            detail.body.contains("書面の届出を登録しました。受付番号は ")
                && detail.body.contains("2026年3月31日 離職（出産・育児）"),
            "{}",
            detail.body
        );
        assert!(detail.body.contains("書面（センター職員が入力）・受付日 2026年4月2日"), "{}", detail.body);
        assert!(
            eventually(Duration::from_secs(20), || national_notices(&f).len() == 1),
            "the paper notice reaches national"
        );
        assert!(national_notices(&f)[0].body.contains("来春"));

        // Misaki gave no address_linkage: her paper notice stays here, and the page says so.
        let path = format!("/staff/nurses/{}/notices/employment_status", misaki.id);
        let form = browser.get(&path).await;
        assert!(form.body.contains("このセンターの外には送られません"), "{}", form.body);
        let typed = [("csrf", csrf.as_str()), ("received_on", "2026-04-02"), ("employed", "no")];
        let confirm = browser.post(&path, &typed).await;
        let submission = confirm.hidden("submission");
        let submit: Vec<(&str, &str)> =
            typed.iter().copied().chain([("step", "submit"), ("submission", submission.as_str())]).collect();
        let ok = browser.post(&path, &submit).await;
        assert_eq!(ok.status, 303, "{}", ok.body);

        // A paper withdrawal needs the signed form in hand; then it is recorded and applied.
        let consents = format!("/staff/nurses/{}/consents", hanako.id);
        let refused = browser
            .post(&consents, &[("csrf", &csrf), ("scope", "address_linkage"), ("granted", "no")])
            .await;
        assert_eq!(refused.status, 422);
        assert!(refused.body.contains("書面）を受け取ったことを確認"), "{}", refused.body);
        let done = browser
            .post(
                &consents,
                &[("csrf", &csrf), ("scope", "address_linkage"), ("granted", "no"), ("paper_received", "on")],
            )
            .await;
        assert_eq!(done.status, 303, "{}", done.body);
        assert!(
            eventually(Duration::from_secs(20), || national_notices(&f).is_empty()),
            "withdrawal applied at national"
        );
        let unknown = browser.get("/staff/nurses/no-such-nurse").await;
        assert_eq!(unknown.status, 404);
    });
    let mut conn = f.osaka.db.connect();
    let history = prefecture_node::consent::history(&mut conn, &hanako.id).unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.scope.as_str(), last.granted, last.channel.as_str()),
        ("address_linkage", false, "paper")
    );
    assert_eq!(last.entered_by.as_deref(), Some(staff_id.as_str()));
    let notices = prefecture_node::notices::for_nurse(&mut conn, &misaki.id).unwrap();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].entered_by.as_deref(), Some(staff_id.as_str()));
    assert_eq!(count(&f.national_db, "SELECT COUNT(*) AS n FROM nurse_notices"), 0);
}
both_backends!(staff_find_a_nurse_and_enter_paper_forms);

fn urlencode(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

fn upload(csv: &str, accept_valid: bool, csrf: &str) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new().text("csrf", csrf.to_string()).part(
        "file",
        reqwest::multipart::Part::bytes(csv.as_bytes().to_vec())
            .file_name("separations.csv")
            .mime_str("text/csv")
            .unwrap(),
    );
    if accept_valid {
        form = form.text("accept_valid", "on");
    }
    form
}

const CSV_HEADER: &str =
    "qualification,registration_number,birth_date,left_on,reason,wish_to_return,return_when";

fn employer_bulk_upload_is_all_or_nothing(backend: Backend) {
    let f = federation(backend);
    add_staff(&f.osaka, "tanaka");
    let (_, hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    let (_, misaki) = opt_in(&f, &f.osaka, &f.cast[1]);
    let node = TestServer::node(&f.osaka.db, &f.osaka.key_file, &f.server.base_url, "27");
    let csv = format!(
        "\u{feff}{CSV_HEADER}\n\
         03,{},1985-04-01,2026-03-31,出産・育児,はい,来年4月\n\
         03,9999999,1985-04-01,2026-03-31,childcare,yes,\n\
         看護師,{},1985/4/1,2026-13-01,転職,多分,\n\
         03,{},1985-04-01,2026-05-31,family_care,no,\n",
        f.cast[0].registration_number,
        f.cast[1].registration_number,
        f.cast[1].registration_number.trim_start_matches('0'),
    );
    block_on(async {
        let browser = Browser::new(&node);
        assert_eq!(browser.staff_sign_in("tanaka", PASSWORD).await.status, 303);
        let csrf = browser.get("/staff/bulk").await.hidden("csrf");

        let page = browser.post_multipart("/staff/bulk", upload(&csv, false, &csrf)).await;
        assert_eq!(page.status, 422, "{}", page.body);
        assert!(page.body.contains("4行のうち、問題のない行 2行、誤りのある行 2行"), "{}", page.body);
        assert!(page.body.contains("何も登録していません"));
        assert!(
            page.body.contains("<td>3</td><td>9999999</td>") && page.body.contains("一致する方がいません")
        );
        assert!(
            page.body.contains("離職日は 2026-03-31・2026/3/31・2026年3月31日 のいずれかの形")
                && page.body.contains("離職理由が一覧にありません")
        );
        assert_eq!(count(&f.osaka.db, "SELECT COUNT(*) AS n FROM notices"), 0, "nothing saved");

        let page = browser.post_multipart("/staff/bulk", upload(&csv, true, &csrf)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("2件の離職届を登録しました"), "{}", page.body);

        // Whole-file problems name the problem; nothing changes.
        let page = browser.post_multipart("/staff/bulk", upload("name,date\nx,y\n", true, &csrf)).await;
        assert_eq!(page.status, 422);
        assert!(page.body.contains("見出し「name」「date」は使えません"), "{}", page.body);
        let page = browser
            .post_multipart(
                "/staff/bulk",
                upload("qualification,registration_number\n03,1234567\n", true, &csrf),
            )
            .await;
        assert_eq!(page.status, 422);
        assert!(page.body.contains("見出し行に必要な列がありません"), "{}", page.body);
        let page =
            browser.post_multipart("/staff/bulk", upload(&format!("{CSV_HEADER}\n"), true, &csrf)).await;
        assert!(page.body.contains("データの行がありません"));
        let sjis = [b"qualification\n\x8a\xc5".as_slice()].concat();
        let form = reqwest::multipart::Form::new()
            .text("csrf", csrf.clone())
            .part("file", reqwest::multipart::Part::bytes(sjis).file_name("x.csv"));
        let page = browser.post_multipart("/staff/bulk", form).await;
        assert!(page.body.contains("UTF-8 で保存してください"), "{}", page.body);
        let page = browser.post_multipart("/staff/bulk", upload(&csv, true, "forged")).await;
        assert_eq!(page.status, 403);
    });
    let mut conn = f.osaka.db.connect();
    let hanako_notices = prefecture_node::notices::for_nurse(&mut conn, &hanako.id).unwrap();
    assert_eq!(hanako_notices.len(), 1);
    assert!(hanako_notices[0].body.contains("来年4月") && hanako_notices[0].channel == "paper");
    let misaki_notices = prefecture_node::notices::for_nurse(&mut conn, &misaki.id).unwrap();
    assert_eq!(misaki_notices.len(), 1, "the valid row for her (line 5) was saved once");
    assert!(misaki_notices[0].body.contains("family_care"));
    assert_eq!(count(&f.osaka.db, "SELECT COUNT(*) AS n FROM notices"), 2);
}
both_backends!(employer_bulk_upload_is_all_or_nothing);

fn staff_publish_postings_from_the_template_they_download(backend: Backend) {
    let f = federation(backend);
    add_staff(&f.osaka, "tanaka");
    let node = TestServer::node(&f.osaka.db, &f.osaka.key_file, &f.server.base_url, "27");
    block_on(async {
        let browser = Browser::new(&node);
        assert_eq!(browser.staff_sign_in("tanaka", PASSWORD).await.status, 303);
        let page = browser.get("/staff/postings/import").await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("/staff/postings/import/template.csv"), "{}", page.body);
        let csrf = page.hidden("csrf");
        // The template as downloaded, filled in as is: a job and a training session.
        let template = browser.get("/staff/postings/import/template.csv").await;
        assert!(template.body.starts_with("\u{feff}種別,タイトル,内容"), "{}", template.body);
        let page =
            browser.post_multipart("/staff/postings/import", upload(&template.body, false, &csrf)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("2件を掲載しました"), "{}", page.body);
        // Again: both are published already, and nothing is published twice.
        let page =
            browser.post_multipart("/staff/postings/import", upload(&template.body, false, &csrf)).await;
        assert!(page.body.contains("掲載済みのため掲載しなかった行 2行"), "{}", page.body);
        assert!(page.body.contains("新しく掲載するものはありませんでした"), "{}", page.body);
        // A forged form token changes nothing.
        let page =
            browser.post_multipart("/staff/postings/import", upload(&template.body, false, "forged")).await;
        assert_eq!(page.status, 403);
    });
    assert_eq!(count(&f.osaka.db, "SELECT COUNT(*) AS n FROM postings"), 2);
}

both_backends!(staff_publish_postings_from_the_template_they_download);

/// The same employer file twice, a file saved from Excel (CRLF, BOM, Japanese headings), rows
/// that repeat what is stored or each other: nothing is filed twice, and every refusal names the
/// row as Excel numbers it.
fn bulk_upload_cannot_double_file(backend: Backend) {
    let f = federation(backend);
    add_staff(&f.osaka, "tanaka");
    let (_, hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    let (_, misaki) = opt_in(&f, &f.osaka, &f.cast[1]);
    let node = TestServer::node(&f.osaka.db, &f.osaka.key_file, &f.server.base_url, "27");
    let (h, m) = (&f.cast[0], &f.cast[1]);
    block_on(async {
        let browser = Browser::new(&node);
        assert_eq!(browser.staff_sign_in("tanaka", PASSWORD).await.status, 303);
        let csrf = browser.get("/staff/bulk").await.hidden("csrf");

        // The template: Japanese headings, a BOM for Excel.
        let template = browser.get("/staff/bulk/template.csv").await;
        assert_eq!(template.status, 200);
        assert!(
            template.body.starts_with("\u{feff}資格,籍登録番号,生年月日,離職日,離職理由,復職希望"),
            "{}",
            template.body
        );

        // Saved from Excel: BOM, CRLF, the template's headings; the 3rd data row is wrong and is
        // reported on line 4, where Excel shows it.
        let excel = format!(
            "\u{feff}資格,籍登録番号,生年月日,離職日,離職理由,復職希望,復職希望時期\r\n\
             看護師,{},1985-04-01,2026-03-31,出産・育児,はい,来年4月\r\n\
             看護師,{},1985-04-01,2026年4月30日,家族の介護,いいえ,\r\n\
             看護師,{},1985-04-01,2026-13-01,家族の介護,いいえ,\r\n",
            h.registration_number, m.registration_number, m.registration_number
        );
        let page = browser.post_multipart("/staff/bulk", upload(&excel, false, &csrf)).await;
        assert_eq!(page.status, 422, "{}", page.body);
        assert!(page.body.contains("<td>4</td>") && page.body.contains("離職日は"), "{}", page.body);
        assert!(!page.body.contains("<td>5</td>") && !page.body.contains("<td>1</td>"));
        assert!(
            page.body.contains(&format!("{} {}", h.family_name, h.given_name)),
            "each row shows whom it names: {}",
            page.body
        );
        assert!(
            page.body.contains("問題なし（未登録）"),
            "valid rows are not called accepted when nothing was saved"
        );
        // Accepting the valid rows is a choice for one upload, never ticked in advance.
        let page = browser.post_multipart("/staff/bulk", upload(&excel, true, &csrf)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            page.body.contains("2件の離職届を登録しました") && page.body.contains("受付番号"),
            "{}",
            page.body
        );
        assert!(!page.body.contains(" checked>正しい行だけ"), "{}", page.body);
        assert_eq!(count(&f.osaka.db, "SELECT COUNT(*) AS n FROM notices"), 2);

        // The same file again: refused whole, with the date it was uploaded.
        let page = browser.post_multipart("/staff/bulk", upload(&excel, true, &csrf)).await;
        assert_eq!(page.status, 422, "{}", page.body);
        let today = ncf_shared::time::datetime_ja(ncf_shared::time::now_utc());
        let today = today.split(' ').next().unwrap();
        assert!(
            page.body.contains("このファイルは")
                && page.body.contains(today)
                && page.body.contains("登録済み"),
            "{}",
            page.body
        );

        // Another file repeating a stored separation, and one row twice: each refused on its own.
        let again = format!(
            "{CSV_HEADER}\n\
             03,{},1985-04-01,2026-03-31,childcare,yes,来年4月\n\
             03,{},1985-04-01,2026-06-30,family_care,no,\n\
             03,{},1985-04-01,2026-06-30,family_care,no,\n",
            h.registration_number, m.registration_number, m.registration_number
        );
        let page = browser.post_multipart("/staff/bulk", upload(&again, true, &csrf)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            page.body.contains("同じ内容の離職届が")
                && page.body.contains("登録済みのため、登録しませんでした（受付番号"),
            "a row already stored is skipped, not an error: {}",
            page.body
        );
        assert!(page.body.contains("3行目と同じ内容です"), "{}", page.body);
        assert!(page.body.contains("1件の離職届を登録しました"), "{}", page.body);
    });
    let mut conn = f.osaka.db.connect();
    assert_eq!(prefecture_node::notices::for_nurse(&mut conn, &hanako.id).unwrap().len(), 1);
    assert_eq!(prefecture_node::notices::for_nurse(&mut conn, &misaki.id).unwrap().len(), 2);
    assert_eq!(count(&f.osaka.db, "SELECT COUNT(*) AS n FROM notices"), 3);

    // A new file sent four times at the same moment (impatient clicks, two desks): filed once;
    // the others are told it was uploaded, and nobody is told "nothing saved" for rows that were.
    let browser = Browser::new(&node);
    let csrf = block_on(async {
        assert_eq!(browser.staff_sign_in("tanaka", PASSWORD).await.status, 303);
        browser.get("/staff/bulk").await.hidden("csrf")
    });
    let once = format!("{CSV_HEADER}\n03,{},1985-04-01,2026-07-31,childcare,no,\n", h.registration_number);
    let pages: Vec<(u16, String)> = std::thread::scope(|scope| {
        let uploads: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let page = block_on(browser.post_multipart("/staff/bulk", upload(&once, false, &csrf)));
                    (page.status, page.body)
                })
            })
            .collect();
        uploads.into_iter().map(|u| u.join().unwrap()).collect()
    });
    let saved = pages
        .iter()
        .filter(|(status, body)| *status == 200 && body.contains("1件の離職届を登録しました"))
        .count();
    assert_eq!(saved, 1, "{pages:?}");
    for (status, body) in &pages {
        assert!(
            *status == 200 || body.contains("このファイルは") && body.contains("登録済み"),
            "{status}: {body}"
        );
    }
    assert_eq!(count(&f.osaka.db, "SELECT COUNT(*) AS n FROM notices"), 4);
}
both_backends!(bulk_upload_cannot_double_file);

fn api_tokens_for_scripts(backend: Backend) {
    let f = federation(backend);
    add_staff(&f.osaka, "tanaka");
    let (_, hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    let token_command = |args: &[&str]| {
        let mut cmd = ncf_tests::node_command(&f.osaka.db, &f.osaka.key_file, &f.server.base_url);
        cmd.args(["staff"]).args(args);
        run(cmd)
    };
    let (out, token, stderr) = token_command(&["token", "--username", "tanaka", "--label", "取込スクリプト"]);
    assert!(out.status.success(), "{stderr}");
    let token = token.trim().to_string();
    assert!(token.starts_with("ncf_"));
    let (out, _, stderr) = token_command(&["token", "--username", "nobody", "--label", "x"]);
    assert!(!out.status.success() && stderr.contains("staff account not found"), "{stderr}");
    let node = TestServer::node(&f.osaka.db, &f.osaka.key_file, &f.server.base_url, "27");
    block_on(async {
        let client = http_client();
        let get = |path: &str, bearer: Option<&str>| {
            let mut req = client.get(node.url(path));
            if let Some(t) = bearer {
                req = req.bearer_auth(t);
            }
            req.send()
        };
        let res = get("/api/v1/nurses", None).await.unwrap();
        assert_eq!(res.status().as_u16(), 401);
        let body: serde_json::Value = res.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains("Bearer"));
        assert_eq!(get("/api/v1/nurses", Some("ncf_0000")).await.unwrap().status().as_u16(), 401);
        let res = get("/api/v1/nurses?page=abc", Some(&token)).await.unwrap();
        assert_eq!(res.status().as_u16(), 400);
        assert_eq!(res.json::<serde_json::Value>().await.unwrap()["error"], "invalid_query");

        let res = get("/api/v1/nurses?q=ヤマダ", Some(&token)).await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["total"], 1);
        assert_eq!(body["nurses"][0]["id"], hanako.id.as_str());
        assert_eq!(body["nurses"][0]["family_name"], "山田");

        let notices = node.url(&format!("/api/v1/nurses/{}/notices", hanako.id));
        let res = client
            .post(&notices)
            .bearer_auth(&token)
            .json(&serde_json::json!({"kind": "employment_status", "employed": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 422);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["fields"][0]["field"], "workplace_type");
        let res = client
            .post(&notices)
            .bearer_auth(&token)
            .body("{\"kind\":\"party\"}")
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 400);
        let res = client
            .post(&notices)
            .bearer_auth(&token)
            .json(&serde_json::json!({"kind": "employment_status", "employed": true, "workplace_type": "hospital", "workplace_lgcode": "271021", "weekly_hours": 32}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["leaves_node"], false, "no address_linkage given");

        let csv = format!(
            "{CSV_HEADER}\n03,{},1985-04-01,2026-03-31,other,no,\n03,12,1985-04-01,2026-03-31,other,no,\n",
            f.cast[0].registration_number
        );
        let separations = node.url("/api/v1/separations");
        let res = client.post(&separations).bearer_auth(&token).body(csv.clone()).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 422);
        let report: serde_json::Value = res.json().await.unwrap();
        assert_eq!(report["saved"], 0);
        assert_eq!(report["rows"][1]["line"], 3);
        assert!(report["rows"][1]["rejected"].as_str().unwrap().contains("一致する方がいません"));
        let res = client
            .post(format!("{separations}?accept_valid=true"))
            .bearer_auth(&token)
            .body(csv)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(res.json::<serde_json::Value>().await.unwrap()["saved"], 1);

        let detail: serde_json::Value =
            get(&format!("/api/v1/nurses/{}", hanako.id), Some(&token)).await.unwrap().json().await.unwrap();
        assert_eq!(detail["notices"].as_array().unwrap().len(), 2);
        assert_eq!(detail["notices"][0]["channel"], "paper");
    });
    let (out, stdout, _) =
        token_command(&["revoke-token", "--username", "tanaka", "--label", "取込スクリプト"]);
    assert!(out.status.success() && stdout.contains("1 token(s) revoked"));
    block_on(async {
        let res = http_client().get(node.url("/api/v1/nurses")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 401, "a revoked token no longer works");
    });
}
both_backends!(api_tokens_for_scripts);

fn staff_prove_a_nurse_at_the_counter_and_see_which_details_differ(backend: Backend) {
    let f = federation(backend);
    let staff_id = add_staff(&f.osaka, "tanaka");
    let smtp = ncf_tests::SmtpReceiver::start();
    let node = TestServer::node_with(
        &f.osaka.db,
        &f.osaka.key_file,
        &f.server.base_url,
        "27",
        &["--smtp-url", &smtp.url, "--mail-from", "大阪府ナースセンター <nc27@example.jp>"],
    );
    let p = f.cast[1].clone();
    block_on(async {
        // She registered online; she is not proofed, so nothing about her has left the node.
        let nurse = Browser::new(&node);
        apply_on_page(&nurse, &p, p.birth_date, "misaki@example.jp").await;
        let page = confirm_by_mail(&nurse, &smtp, &node, "misaki@example.jp").await;
        assert!(page.location.as_deref().is_some_and(|l| l.starts_with("/me/receipts/")), "{}", page.body);
        let nurse_id: String = {
            use diesel::prelude::*;
            prefecture_node::schema::nurses::table
                .select(prefecture_node::schema::nurses::id)
                .first(&mut f.osaka.db.connect())
                .unwrap()
        };

        let browser = Browser::new(&node);
        assert_eq!(browser.staff_sign_in("tanaka", PASSWORD).await.status, 303);
        let csrf = session_csrf(&browser).await;

        // The counter lookup names the detail that differs (the public page never does).
        let lookup = [
            ("csrf", csrf.as_str()),
            ("qualification", p.qualification),
            ("registration_number", p.registration_number.as_str()),
            ("family_name", p.family_name.as_str()),
            ("given_name", p.given_name.as_str()),
            ("family_name_kana", p.family_name_kana.as_str()),
            ("given_name_kana", p.given_name_kana.as_str()),
            ("birth_date", "1970-01-01"),
        ];
        let page = browser.post("/staff/lookup", &lookup).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("一致しない項目: 生年月日"), "{}", page.body);

        // Proofed at the counter: a photo ID must be named and the certificate ticked.
        let detail = format!("/staff/nurses/{nurse_id}");
        let page = browser.get(&detail).await;
        assert!(page.body.contains("未確認"), "{}", page.body);
        let action = format!("{detail}/proofing");
        let page = browser.post(&action, &[("csrf", csrf.as_str()), ("document", "運転免許証")]).await;
        assert_eq!(page.status, 422);
        assert!(page.body.contains("看護職免許証の原本を確認したことにチェックを入れ"), "{}", page.body);
        let page = browser
            .post(&action, &[("csrf", csrf.as_str()), ("document", "運転免許証"), ("licence_checked", "on")])
            .await;
        assert_eq!(page.location.as_deref(), Some(format!("{detail}?done=proofed").as_str()));
        let page = browser.get(&format!("{detail}?done=proofed")).await;
        assert!(page.body.contains("済み：窓口での確認（運転免許証、"), "{}", page.body);
        // Now her consents reach the national server; her page says how she was proofed.
        assert!(eventually(Duration::from_secs(20), || {
            count(&f.national_db, "SELECT COUNT(*) AS n FROM nurse_consents WHERE prefecture = '27'") == 3
        }));
        let me = nurse.get("/me").await;
        assert!(me.body.contains("本人確認は済んでいます：窓口での確認"), "{}", me.body);
    });
    let mut conn = f.osaka.db.connect();
    let nurse = prefecture_node::nurses::search(&mut conn, &Default::default(), 10, 0).unwrap().0.remove(0);
    assert_eq!(nurse.proofed_by.as_deref(), Some(staff_id.as_str()), "recorded with the staff id");
}
both_backends!(staff_prove_a_nurse_at_the_counter_and_see_which_details_differ);
