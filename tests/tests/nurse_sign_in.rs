//! The nurse's pages after opt-in, over real HTTP with a real SMTP receiver on loopback: a
//! one-time e-mail link (single use, 15 minutes), her page with consents, notices and her
//! data-provision record, filing a notice and withdrawing a consent.

mod support;

use std::time::Duration;

use diesel::prelude::*;
use ncf_shared::ConsentScope;
use ncf_tests::{
    Backend, Browser, SmtpReceiver, TestServer, block_on, both_backends, eventually, eventually_async,
};
use prefecture_node::Channel;
use support::*;

async fn request_link(browser: &Browser, email: &str) -> ncf_tests::Page {
    let form = browser.get("/sign-in").await;
    assert_eq!(form.status, 200);
    let csrf = form.hidden("csrf");
    browser.post("/sign-in", &[("csrf", &csrf), ("email", email)]).await
}

/// Opens the link (a page with a button) and presses the button.
async fn follow_link(browser: &Browser, link: &str, base: &str) -> ncf_tests::Page {
    let path = link.strip_prefix(base).expect("link to this node");
    let page = browser.get(path).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("ログインする"));
    let (csrf, token) = (page.hidden("csrf"), page.hidden("token"));
    browser.post("/sign-in/link", &[("csrf", &csrf), ("token", &token)]).await
}

fn nurse_signs_in_by_email_and_manages_her_record(backend: Backend) {
    let f = federation(backend);
    let smtp = SmtpReceiver::start();
    let (mut conn, hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    prefecture_node::consent::record(
        &mut conn,
        &hanako.id,
        &[(ConsentScope::AddressLinkage, true), (ConsentScope::JobSupport, true)],
        Channel::Web,
        None,
    )
    .unwrap();
    let node = TestServer::node_with(
        &f.osaka.db,
        &f.osaka.key_file,
        &f.server.base_url,
        "27",
        &["--smtp-url", &smtp.url, "--mail-from", "大阪府ナースセンター <nc27@example.jp>"],
    );
    block_on(async {
        let browser = Browser::new(&node);
        assert_eq!(browser.get("/me").await.location.as_deref(), Some("/sign-in"), "her page needs sign-in");

        // An unknown address gets the same answer and no mail.
        let page = request_link(&browser, "someone@example.jp").await;
        assert!(page.body.contains("ご登録のメールアドレスであれば"), "{}", page.body);
        let page = request_link(&browser, "not-an-address").await;
        assert_eq!(page.status, 422);
        assert!(page.body.contains("メールアドレスの形式が正しくありません"));
        assert!(smtp.mails().is_empty());

        let page = request_link(&browser, "nurse@example.jp").await;
        assert_eq!(page.status, 200);
        assert!(!page.body.contains("ログに出力"), "mail is really sent");
        let mails = smtp.wait_for(1);
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].to, ["nurse@example.jp"]);
        assert_eq!(mails[0].from, "nc27@example.jp");
        let text = mails[0].text();
        assert!(text.contains("山田 花子 様") && text.contains("15分以内に、一度だけ使えます"), "{text}");
        let link = link_in(&text);
        assert!(link.starts_with(&format!("{}/sign-in/link?token=", node.base_url)), "{link}");

        let page = follow_link(&browser, &link, &node.base_url).await;
        assert_eq!((page.status, page.location.as_deref()), (303, Some("/me")));
        let cookie = page.cookie("ncf_nurse").unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");

        // The link works once.
        let again = Browser::new(&node);
        let page = follow_link(&again, &link, &node.base_url).await;
        assert_eq!(page.status, 410);
        assert!(page.body.contains("使用済みか、有効期限が切れています"));

        let me = browser.get("/me").await;
        assert_eq!(me.status, 200);
        for text in [
            "山田 花子 様",
            "nurse@example.jp",
            "住所情報の連携",
            "同意しています",
            "あなたの情報の提供記録",
            "資格の照合（本人確認）",
        ] {
            assert!(me.body.contains(text), "{text}: {}", me.body);
        }
        let csrf = me.hidden("csrf");

        // File a separation notice: a mistake is explained, then it is accepted and shared.
        let bad = browser.post("/me/notices/separation", &[("csrf", &csrf), ("reason", "childcare")]).await;
        assert_eq!(bad.status, 422);
        assert!(
            bad.body.contains("離職日を入力してください") && bad.body.contains("復職の希望を選んでください")
        );
        let fields = [
            ("csrf", csrf.as_str()),
            ("left_on", "２０２６／３／３１"),
            ("reason", "family_care"),
            ("wish_to_return", "yes"),
        ];
        // 入力 → 確認: nothing is filed until she confirms what the page shows.
        let confirm = browser.post("/me/notices/separation", &fields).await;
        assert_eq!(confirm.status, 200, "{}", confirm.body);
        for text in [
            "内容の確認",
            "2026年3月31日",
            "家族の介護",
            "この内容で届け出る",
            "aria-current=\"step\">2. 確認",
        ] {
            assert!(confirm.body.contains(text), "{text}: {}", confirm.body);
        }
        assert_eq!(confirm.hidden("left_on"), "２０２６／３／３１", "what she typed is carried");
        assert!(national_notices(&f).is_empty());
        // 確認 → 完了: a receipt number to quote on the phone.
        // Submitting without the confirmation page's token only shows the confirmation again.
        let skipped: Vec<(&str, &str)> = fields.iter().copied().chain([("step", "submit")]).collect();
        let again = browser.post("/me/notices/separation", &skipped).await;
        assert_eq!(again.status, 200);
        assert!(again.body.contains("この内容で届け出る"));
        let submission = confirm.hidden("submission");
        assert!(submission.len() >= 16, "a one-time token per confirmation page");
        let submit: Vec<(&str, &str)> =
            fields.iter().copied().chain([("step", "submit"), ("submission", submission.as_str())]).collect();
        let ok = browser.post("/me/notices/separation", &submit).await;
        assert_eq!(ok.status, 303, "{}", ok.body);
        let receipt_path = ok.location.clone().unwrap();
        // A double click (or a reload) of the same confirmation files nothing more.
        let twice = browser.post("/me/notices/separation", &submit).await;
        assert_eq!(twice.location, ok.location, "the second post gets the first one's receipt");
        assert_eq!(count(&f.osaka.db, "SELECT COUNT(*) AS n FROM notices"), 1);
        assert!(receipt_path.starts_with("/me/receipts/"), "{receipt_path}");
        let receipt = browser.get(&receipt_path).await;
        assert_eq!(receipt.status, 200);
        let number = receipt_path.trim_start_matches("/me/receipts/");
        let shown = format!("{}-{}-{}", &number[..3], &number[3..6], &number[6..]);
        for text in ["届出を受け付けました", shown.as_str(), "2026年3月31日", "家族の介護"]
        {
            assert!(receipt.body.contains(text), "{text}: {}", receipt.body);
        }
        let me = browser.get("/me").await;
        assert!(
            me.body.contains(&format!("受付番号 <a href=\"/me/receipts/{number}\">{shown}</a>"))
                && me.body.contains("2026年3月31日 離職（家族の介護）"),
            "{}",
            me.body
        );
        assert!(me.body.contains("国のデータベースへ送信"));
        assert!(eventually(Duration::from_secs(20), || national_notices(&f).len() == 1));

        // Her provision record now lists the notice.
        assert!(
            eventually_async(Duration::from_secs(10), || async {
                browser.get("/me").await.body.contains("届出による就業状況の把握")
            })
            .await
        );

        // A forged form changes nothing; her real withdrawal is applied at national.
        let forged = browser
            .post("/me/consents", &[("csrf", "x"), ("scope", "address_linkage"), ("granted", "no")])
            .await;
        assert_eq!(forged.status, 403);
        // Withdrawing asks first, and says what the national server will delete.
        let ask = browser
            .post("/me/consents", &[("csrf", &csrf), ("scope", "address_linkage"), ("granted", "no")])
            .await;
        assert_eq!(ask.status, 200, "{}", ask.body);
        assert!(ask.body.contains("取り消しますか") && ask.body.contains("届出を削除します"), "{}", ask.body);
        assert_eq!(national_notices(&f).len(), 1, "nothing changed before she confirms");
        let done = browser
            .post(
                "/me/consents",
                &[("csrf", &csrf), ("scope", "address_linkage"), ("granted", "no"), ("confirmed", "yes")],
            )
            .await;
        assert!(
            done.location.as_deref().is_some_and(|l| l.starts_with("/me/receipts/")),
            "{:?}",
            done.location
        );
        let receipt = browser.get(done.location.as_deref().unwrap()).await;
        assert!(
            receipt.body.contains("同意の変更を受け付けました") && receipt.body.contains("同意を取り消す")
        );
        let me = browser.get("/me").await;
        assert!(
            me.body.contains("住所情報の連携：<span class=\"withdrawn\">同意していません"),
            "{}",
            me.body
        );
        assert!(
            eventually(Duration::from_secs(20), || national_notices(&f).is_empty()),
            "deleted at national"
        );
        assert!(
            eventually_async(Duration::from_secs(10), || async {
                let body = browser.get("/me").await.body;
                body.contains("同意の取消による削除の確認") && body.contains("同意の取消の記録")
            })
            .await
        );

        let out = browser.post("/sign-out", &[("csrf", &csrf)]).await;
        assert_eq!(out.status, 303);
        assert_eq!(browser.get("/me").await.status, 303, "signed out");
    });

    // An expired link is refused.
    let token = prefecture_node::auth::issue_login_link(&mut conn, &hanako.id).unwrap().unwrap();
    diesel::sql_query("UPDATE login_links SET expires_at = created_at WHERE used_at IS NULL")
        .execute(&mut conn)
        .unwrap();
    block_on(async {
        let link = format!("{}/sign-in/link?token={token}", node.base_url);
        let browser = Browser::new(&node);
        let page = follow_link(&browser, &link, &node.base_url).await;
        assert_eq!(page.status, 410);
        // Posted from elsewhere (no form token): refused before the link is even looked at.
        let page = Browser::new(&node).post("/sign-in/link", &[("token", &token)]).await;
        assert_eq!(page.status, 403);
    });
    assert!(!node.log().contains(&token), "tokens are not logged when mail is sent");
}
both_backends!(nurse_signs_in_by_email_and_manages_her_record);

/// With `--mail-to-log` (local development) the link goes to the log, the log says so loudly at
/// start, and the page tells the nurse nothing about it.
#[test]
fn with_mail_to_log_the_link_is_logged_and_the_log_says_so() {
    let f = federation(Backend::Sqlite);
    let (_, _hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    let node =
        TestServer::node_with(&f.osaka.db, &f.osaka.key_file, &f.server.base_url, "27", &["--mail-to-log"]);
    let start = node.log();
    assert!(
        start.contains("WARN") && start.contains("--mail-to-log: NO E-MAIL IS SENT"),
        "a loud warning at start: {start}"
    );
    block_on(async {
        let browser = Browser::new(&node);
        let page = request_link(&browser, "nurse@example.jp").await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("ご登録のメールアドレスであれば"), "{}", page.body);
        for hidden in ["ログに", "ログへ", "出力", "デモ"] {
            assert!(!page.body.contains(hidden), "the page says nothing about {hidden}: {}", page.body);
        }
        // Only whole lines: the log may be read while the node is still writing the link's line.
        let written = || {
            let log = node.log();
            log[..log.rfind('\n').map_or(0, |end| end + 1)].to_string()
        };
        assert!(eventually(Duration::from_secs(10), || written().contains("/sign-in/link?token=")));
        let log = written();
        assert!(
            log.contains("n***@example.jp") && !log.contains("nurse@example.jp"),
            "address masked in the log"
        );
        let line = log.lines().find(|l| l.contains("/sign-in/link?token=")).unwrap();
        let link = link_in(line);
        let page = follow_link(&browser, &link, &node.base_url).await;
        assert_eq!(page.status, 303);
        assert!(browser.get("/me").await.body.contains("山田 花子 様"));
    });
}
