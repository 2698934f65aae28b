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
    let node = TestServer::node(&f.osaka.db, &f.osaka.key_file, &f.server.base_url, "27");
    let p = f.cast[0].clone();
    block_on(async {
        let (token, form) = get_form(&node).await;
        assert_eq!(form.status, 200);
        for text in [
            "大阪府ナースセンター",
            "就業支援への登録",
            "住所情報の連携",
            "籍登録番号",
            "<label for=\"birth_date\">",
        ] {
            assert!(form.body.contains(text), "{text}");
        }
        assert!(
            form.body.contains(prefecture_node::consent::text_ja(ncf_shared::ConsentScope::AddressLinkage))
        );

        // Wrong birth date: explained in plain words, her input kept, nothing stored.
        let page = post_form(&node, &token, &fields(&p, &token, "1985-04-02")).await;
        assert_eq!(page.status, 422);
        assert!(page.body.contains("一致しなかった項目: 生年月日"), "{}", page.body);
        assert!(page.body.contains("生年月日が資格の登録内容と一致しません"));
        assert!(page.body.contains(&format!("value=\"{}\"", p.registration_number)), "input kept");
        assert!(page.body.contains("value=\"hanako@example.jp\""));

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
        let page = post_form(&node, &token, &typed).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("登録が完了しました"));
        assert!(page.body.contains("住所情報の連携") && page.body.contains("求人情報のお知らせ"));

        // Licence details alone cannot change a registered nurse's e-mail or consents.
        let mut again = fields(&p, &token, p.birth_date);
        again[8] = ("email", "someone.else@example.jp");
        again.push(("share_with_residence_prefecture", "on"));
        let page = post_form(&node, &token, &again).await;
        assert_eq!(page.status, 409, "{}", page.body);
        assert!(page.body.contains("すでに登録されています") && page.body.contains("h***@example.jp"));
    });
    let mut conn = f.osaka.db.connect();
    let given: Vec<Given> =
        diesel::sql_query("SELECT scope, channel FROM consents ORDER BY scope").load(&mut conn).unwrap();
    assert_eq!(
        given,
        [
            Given { scope: "address_linkage".into(), channel: "web".into() },
            Given { scope: "job_support".into(), channel: "web".into() },
        ]
    );
    assert_eq!(count(&f.osaka.db, "SELECT COUNT(*) AS n FROM nurses"), 1);
    assert_eq!(count(&f.osaka.db, "SELECT COUNT(*) AS n FROM nurses WHERE email = 'hanako@example.jp'"), 1);
    // Her consents reach the national server through the running node.
    assert!(ncf_tests::eventually(std::time::Duration::from_secs(20), || {
        count(&f.national_db, "SELECT COUNT(*) AS n FROM nurse_consents WHERE prefecture = '27'") == 2
    }));
}
both_backends!(a_nurse_opts_in_on_the_page);
