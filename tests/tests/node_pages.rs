//! The nurse's opt-in page at a running node, over real HTTP: claims checked against the national
//! registry through the node, mistakes explained in Japanese with her input kept, consents stored.

mod support;

use diesel::prelude::*;
use diesel::sql_types::Text;
use ncf_tests::{Backend, TestServer, block_on, both_backends, http_client};
use support::*;

struct Page {
    status: u16,
    body: String,
}

async fn get_form(node: &TestServer) -> (String, Page) {
    let res = http_client().get(node.url("/opt-in")).send().await.unwrap();
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("ncf_csrf="))
        .expect("a form token cookie")
        .to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let token = cookie.trim_start_matches("ncf_csrf=").split(';').next().unwrap().to_string();
    let status = res.status().as_u16();
    (token, Page { status, body: res.text().await.unwrap() })
}

async fn post_form(node: &TestServer, cookie_token: &str, fields: &[(&str, &str)]) -> Page {
    let res = http_client()
        .post(node.url("/opt-in"))
        .header("cookie", format!("ncf_csrf={cookie_token}"))
        .form(fields)
        .send()
        .await
        .unwrap();
    Page { status: res.status().as_u16(), body: res.text().await.unwrap() }
}

fn fields<'a>(p: &'a ncf_tests::Person, token: &'a str, birth_date: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", token),
        ("qualification", p.qualification),
        ("registration_number", &p.registration_number),
        ("family_name", &p.family_name),
        ("given_name", &p.given_name),
        ("family_name_kana", &p.family_name_kana),
        ("given_name_kana", &p.given_name_kana),
        ("birth_date", birth_date),
        ("email", "hanako@example.jp"),
        ("phone", "090-1234-5678"),
        ("max_distance_km", "20"),
        ("address_linkage", "on"),
        ("job_support", "on"),
    ]
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Given {
    #[diesel(sql_type = Text)]
    scope: String,
    #[diesel(sql_type = Text)]
    channel: String,
}

fn a_nurse_opts_in_on_the_page(backend: Backend) {
    let f = federation(backend);
    let smtp = ncf_tests::SmtpReceiver::start();
    let node = TestServer::node_with(
        &f.osaka.db,
        &f.osaka.key_file,
        &f.server.base_url,
        "27",
        &["--smtp-url", &smtp.url, "--mail-from", "大阪府ナースセンター <nc27@example.jp>"],
    );
    let p = f.cast[0].clone();
    block_on(async {
        let (token, form) = get_form(&node).await;
        assert_eq!(form.status, 200);
        for text in [
            "大阪府ナースセンター",
            "就業支援への登録",
            "住所情報の連携",
            "籍登録番号",
            "<legend>生年月日",
            "昭和41年11月14日",
        ] {
            assert!(form.body.contains(text), "{text}");
        }
        assert!(
            form.body.contains(prefecture_node::consent::text_ja(ncf_shared::ConsentScope::AddressLinkage))
        );

        // E-mail first: the form answers the same whatever licence was typed, and mails a link.
        let page = post_form(&node, &token, &fields(&p, &token, "1985-04-02")).await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("確認メールを送りました") && page.body.contains("hanako@example.jp"));
        // Wrong birth date, found once the link is opened: one answer that names no field (the
        // page must not read the registry for whoever types), with what to check; nothing stored.
        let browser = ncf_tests::Browser::new(&node);
        let page = confirm_by_mail(&browser, &smtp, &node, "hanako@example.jp").await;
        assert_eq!(page.status, 422);
        assert!(page.body.contains("登録内容と照合できませんでした"), "{}", page.body);
        assert!(page.body.contains("免許証（免許の証書）の記載どおりに"));
        assert!(!page.body.contains("生年月日が"), "no field is named");
        // She corrects the date on the page the link opened (no new mail needed).
        let at = page.body.find("/opt-in/confirm?token=").expect("a way back to the details");
        let retry = page.body[at..at + page.body[at..].find('"').unwrap()].to_string();
        assert!(retry.starts_with("/opt-in/confirm?token="), "{retry}");
        let again = browser.get(&retry).await;
        let shown = [
            again.selected("birth_era"),
            again.input_value("birth_year"),
            again.input_value("birth_month"),
            again.input_value("birth_day"),
        ];
        assert_eq!(
            shown,
            ["showa", "60", "4", "2"],
            "what she typed is shown again, as her licence prints it"
        );

        // Field mistakes are caught before asking the national server.
        let mut bad = fields(&p, &token, "1985/13/01");
        bad[9] = ("phone", "123");
        bad.retain(|(k, _)| *k != "address_linkage" && *k != "job_support");
        let page = post_form(&node, &token, &bad).await;
        assert_eq!(page.status, 422);
        for text in [
            "生年月日を正しく入力してください",
            "電話番号は数字とハイフンで",
            "同意する項目を1つ以上選んでください",
        ] {
            assert!(page.body.contains(text), "{text}");
        }

        // Not a form at all, or far too large: a 400 that says so, in Japanese.
        for (content_type, body) in [
            ("application/json", "{}".to_string()),
            ("application/x-www-form-urlencoded", "a=".repeat(40_000)),
        ] {
            let res = http_client()
                .post(node.url("/opt-in"))
                .header("cookie", format!("ncf_csrf={token}"))
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 400, "{content_type}");
            assert!(res.text().await.unwrap().contains("送信内容を読み取れませんでした"));
        }

        // No form token: refused, in Japanese.
        let page = post_form(&node, "", &fields(&p, "", p.birth_date)).await;
        assert_eq!(page.status, 403);
        assert!(page.body.contains("もう一度お試しください"));

        // Matching claims, typed as on a phone (hiragana kana, full-width digits): registered.
        let hiragana_family: String =
            p.family_name_kana.chars().map(|c| char::from_u32(c as u32 - 0x60).unwrap()).collect();
        let wide_number: String = p
            .registration_number
            .chars()
            .map(|c| char::from_u32(c as u32 - '0' as u32 + '０' as u32).unwrap())
            .collect();
        let mut typed = fields(&p, &token, p.birth_date);
        typed[2] = ("registration_number", &wide_number);
        typed[5] = ("family_name_kana", &hiragana_family);
        typed[8] = ("email", "hanako2@example.jp");
        let page = post_form(&node, &token, &typed).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let browser = ncf_tests::Browser::new(&node);
        let page = confirm_by_mail(&browser, &smtp, &node, "hanako2@example.jp").await;
        assert!(page.location.as_deref().is_some_and(|l| l.starts_with("/me/receipts/")), "{}", page.body);
        let receipt = browser.get(page.location.as_deref().unwrap()).await;
        assert!(
            receipt.body.contains("登録を受け付けました") && receipt.body.contains("受付番号"),
            "{}",
            receipt.body
        );
        let me = browser.get("/me").await;
        assert!(me.body.contains("本人確認が済んでいません"), "{}", me.body);

        // Someone else with her licence details registers beside her, not over her: the page
        // never says the licence is registered, and neither registration shares anything yet.
        let mut again = fields(&p, &token, p.birth_date);
        again[8] = ("email", "someone.else@example.jp");
        again.push(("share_with_residence_prefecture", "on"));
        let page = post_form(&node, &token, &again).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let page =
            confirm_by_mail(&ncf_tests::Browser::new(&node), &smtp, &node, "someone.else@example.jp").await;
        assert!(page.location.as_deref().is_some_and(|l| l.starts_with("/me/receipts/")), "{}", page.body);
    });
    let mut conn = f.osaka.db.connect();
    let given: Vec<Given> = diesel::sql_query(
        "SELECT c.scope, c.channel FROM consents c JOIN nurses n ON n.id = c.nurse_id WHERE n.email = 'hanako2@example.jp' ORDER BY c.scope",
    )
    .load(&mut conn)
    .unwrap();
    assert_eq!(
        given,
        [
            Given { scope: "address_linkage".into(), channel: "web".into() },
            Given { scope: "job_support".into(), channel: "web".into() },
        ]
    );
    assert_eq!(count(&f.osaka.db, "SELECT COUNT(*) AS n FROM nurses"), 2);
    assert_eq!(count(&f.osaka.db, "SELECT COUNT(*) AS n FROM outbox"), 0, "nothing leaves before proofing");
    // Proofed at the counter: her consents reach the national server through the running node,
    // and the other registration for her licence is removed.
    let hanako: String = prefecture_node::schema::nurses::table
        .filter(prefecture_node::schema::nurses::email.eq("hanako2@example.jp"))
        .select(prefecture_node::schema::nurses::id)
        .first(&mut conn)
        .unwrap();
    let proof = prefecture_node::proofing::Proof::at_counter("staff-1", "運転免許証").unwrap();
    let done = prefecture_node::proofing::complete(&mut conn, &hanako, &proof).unwrap();
    assert_eq!(done.removed_addresses, ["someone.else@example.jp"]);
    assert_eq!(count(&f.osaka.db, "SELECT COUNT(*) AS n FROM nurses"), 1);
    assert!(ncf_tests::eventually(std::time::Duration::from_secs(20), || {
        count(&f.national_db, "SELECT COUNT(*) AS n FROM nurse_consents WHERE prefecture = '27'") == 2
    }));
}
both_backends!(a_nurse_opts_in_on_the_page);
