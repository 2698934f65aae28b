//! The national dashboard (issue #9) over real HTTPS on both backends: national staff sign in
//! with the nodes' implementation, read figures counted from imported data, with small cells
//! suppressed on the page and in the CSV file, and bad requests are named.

mod support;

use std::collections::BTreeMap;

use diesel::prelude::*;
use ncf_tests::{Backend, Browser, TestServer, block_on, both_backends, national, run};
use sha2::Digest as _;

const PASSWORD: &str = "correct horse battery";

/// Active nursing licences per prefecture of residence, counted here from the tables the imports
/// wrote (not through the figures code).
fn active_by_prefecture(conn: &mut ncf_shared::db::DbConn) -> BTreeMap<String, u64> {
    use national_server::schema::{licence_deletions, licences, residents};
    let deleted: Vec<(String, String)> = licence_deletions::table
        .select((licence_deletions::qualification, licence_deletions::registration_number))
        .load(conn)
        .unwrap();
    let homes: BTreeMap<Vec<u8>, String> = residents::table
        .filter(residents::lgcode.is_not_null())
        .select((residents::person_key, residents::lgcode.assume_not_null()))
        .load::<(Vec<u8>, String)>(conn)
        .unwrap()
        .into_iter()
        .collect();
    let rows: Vec<(String, String, Vec<u8>, String)> = licences::table
        .select((
            licences::qualification,
            licences::registration_number,
            licences::person_key,
            licences::status,
        ))
        .load(conn)
        .unwrap();
    let mut counts = BTreeMap::new();
    for (qualification, number, key, status) in rows {
        let nursing = ncf_shared::Qualification::from_code(&qualification).is_some_and(|q| q.is_nursing());
        if status != "active" || !nursing || deleted.contains(&(qualification, number)) {
            continue;
        }
        if let Some(lgcode) = homes.get(&key) {
            *counts.entry(lgcode[..2].to_string()).or_default() += 1;
        }
    }
    counts
}

/// The cell texts of the table row for this area code.
fn row_cells(body: &str, code: &str) -> Vec<String> {
    let start = body.find(&format!("<tr data-code=\"{code}\">")).unwrap_or_else(|| panic!("no row {code}"));
    let row = &body[start..start + body[start..].find("</tr>").unwrap()];
    row.split("<td class=\"n")
        .skip(1)
        .map(|cell| {
            let text = &cell[cell.find('>').unwrap() + 1..];
            text[..text.find('<').unwrap()].to_string()
        })
        .collect()
}

fn national_staff_read_suppressed_figures(backend: Backend) {
    let db = ncf_tests::many::national_with_figures(backend, 3000, PASSWORD);
    let expected = active_by_prefecture(&mut db.connect());
    assert!(expected.values().any(|n| *n >= 10), "some prefecture has 10 or more: {expected:?}");

    let tokyo_node = support::node(backend, &db, "13");
    prefecture_node::staff::add(&mut tokyo_node.db.connect(), "tanaka", "田中 美穂", PASSWORD).unwrap();
    let server = TestServer::national(&db);
    let browser = Browser::new(&server);
    block_on(async {
        // Without a session: to the sign-in page, for the page and the file alike.
        for path in ["/figures", "/figures.csv?figure=latent"] {
            let page = browser.get(path).await;
            assert_eq!((page.status, page.location.as_deref()), (303, Some("/staff/sign-in")), "{path}");
        }
        let form = browser.get("/staff/sign-in").await;
        assert!(
            form.cookie("__Host-ncf_csrf").is_some_and(|c| c.contains("Secure")),
            "{:?}",
            form.set_cookies
        );
        let csrf = form.hidden("csrf");
        // A forged form (no matching token) changes nothing.
        let forged = browser
            .post("/staff/sign-in", &[("csrf", "forged"), ("username", "kosei"), ("password", PASSWORD)])
            .await;
        assert_eq!(forged.status, 403);
        let wrong = browser
            .post(
                "/staff/sign-in",
                &[("csrf", &csrf), ("username", "kosei"), ("password", "not the password")],
            )
            .await;
        assert_eq!(wrong.status, 401);
        assert!(wrong.body.contains("ユーザー名またはパスワードが正しくありません"));
        let signed = browser
            .post("/staff/sign-in", &[("csrf", &csrf), ("username", "kosei"), ("password", PASSWORD)])
            .await;
        assert_eq!((signed.status, signed.location.as_deref()), (303, Some("/figures")));
        assert!(
            signed
                .cookie("__Host-ncf_national_staff")
                .is_some_and(|c| c.contains("HttpOnly") && c.contains("SameSite=Strict"))
        );

        // Japan by prefecture: every prefecture's total is its count, or 10未満 when under 10.
        let page = browser.get("/figures?figure=licences_active").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("厚労 花子 さんがログイン中"));
        assert_eq!(page.body.matches("<path class=\"pref").count(), 47);
        let mut hidden = 0;
        for p in ncf_shared::Prefecture::all() {
            let n = expected.get(&p.code()).copied().unwrap_or(0);
            let cells = row_cells(&page.body, &p.code());
            let total = cells.last().unwrap().clone();
            hidden += cells.iter().filter(|c| *c == "10未満").count();
            if n < 10 {
                assert_eq!(total, "10未満", "{}", p.name_ja());
            } else if total != "10未満" {
                // Shown: the true count (a large count may also be hidden, to protect a small one).
                assert_eq!(total.replace(',', ""), n.to_string(), "{}", p.name_ja());
            }
            // The map says the same as the table.
            assert!(
                page.body.contains(&format!("<title>{}: {total}</title>", p.name_ja())),
                "{}",
                p.name_ja()
            );
        }
        assert!(hidden > 0, "some cell is under 10 in this data set (保健師 and 助産師 are few)");
        assert!(!page.body.contains("医師"), "only nursing qualifications are columns");

        // The same table as CSV: UTF-8 with a BOM, the same suppression.
        let (status, kind, bytes) = browser.get_bytes("/figures.csv?figure=licences_active&pref=00").await;
        assert_eq!(status, 200);
        assert!(kind.starts_with("text/csv"), "{kind}");
        assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "a BOM for Excel");
        let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
        let mut reader =
            csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(&records[1][1], "地域");
        assert_eq!(records.len(), 2 + 47 + 1, "title, headings, 47 prefectures, totals");
        for record in &records[2..49] {
            let cells = row_cells(&page.body, &record[0]);
            let shown: Vec<String> = cells.iter().map(|c| c.replace(',', "")).collect();
            let csv: Vec<String> = record.iter().skip(2).map(str::to_string).collect();
            assert_eq!(csv, shown, "the CSV row of {} is the page's", &record[1]);
        }

        // A prefecture's municipalities sit under the row the Japan table published.
        let tokyo = browser.get("/figures?figure=licences_active&pref=13").await;
        assert_eq!(tokyo.status, 200);
        let japan_row = row_cells(&page.body, "13");
        let foot = &tokyo.body[tokyo.body.find("<tfoot>").unwrap()..];
        let foot_cells: Vec<String> =
            foot.split("<td class=\"n\">").skip(1).map(|c| c[..c.find('<').unwrap()].to_string()).collect();
        assert_eq!(foot_cells, japan_row, "Tokyo's totals are the Japan table's Tokyo row");
        assert!(tokyo.body.contains("千代田区"));

        // Tokyo's staff see the same Tokyo figures at their node, fetched by a signed request.
        let node = TestServer::node(&tokyo_node.db, &tokyo_node.key_file, &server.base_url, "13");
        let at_node = Browser::new(&node);
        let signed = at_node.staff_sign_in("tanaka", PASSWORD).await;
        assert_eq!(signed.status, 303);
        let node_page = at_node.get("/staff/figures?figure=licences_active").await;
        assert_eq!(node_page.status, 200, "{}", node_page.body);
        let tbody =
            |body: &str| body[body.find("<tbody>").unwrap()..body.find("</tfoot>").unwrap()].to_string();
        assert_eq!(tbody(&node_page.body), tbody(&tokyo.body), "the node shows the national Tokyo table");
        let (status, _, node_csv) = at_node.get_bytes("/staff/figures.csv?figure=licences_active").await;
        let (_, _, national_csv) = browser.get_bytes("/figures.csv?figure=licences_active&pref=13").await;
        assert_eq!((status, node_csv), (200, national_csv), "the same CSV file");
        let other = at_node.get("/staff/figures?pref=27").await;
        assert_eq!(other.status, 400);
        assert!(other.body.contains("東京都の数値だけ"), "{}", other.body);
        // Another node's key gets its own prefecture only: there is no field to ask for another.
        let (status, answer) = support::signed_post_to(
            &server,
            &tokyo_node.key,
            "/federation/v1/figures",
            br#"{"figure":"licences_active","month":null}"#,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(answer["table"]["prefecture"], "13");
        assert!(answer.to_string().chars().filter(|c| c.is_ascii_digit()).count() > 0);
        let (status, answer) = support::signed_post_to(
            &server,
            &tokyo_node.key,
            "/federation/v1/figures",
            br#"{"figure":"licences_active","month":null,"prefecture":"27"}"#,
        )
        .await;
        assert_eq!(status, 400, "{answer}");
        let (status, _) = support::signed_post_to(
            &server,
            &tokyo_node.key,
            "/federation/v1/figures",
            br#"{"figure":"nurses","month":null}"#,
        )
        .await;
        assert_eq!(status, 400);
        drop(node);

        // The operations view: Tokyo's node has called, both imports with their files' SHA-256,
        // and the provision chain unchecked until `audit verify` runs.
        let ops = browser.get("/operations").await;
        assert_eq!(ops.status, 200, "{}", ops.body);
        let tokyo_row = &ops.body[ops.body.find("<tr data-code=\"13\">").expect("Tokyo's node listed")..];
        let tokyo_row = &tokyo_row[..tokyo_row.find("</tr>").unwrap()];
        assert!(tokyo_row.contains(&tokyo_node.key.public_key().key_id()), "{tokyo_row}");
        assert!(
            !tokyo_row.contains("<td>まだありません</td><td>まだありません</td><td>まだありません</td>"),
            "{tokyo_row}"
        );
        for file in ["registry.csv", "residents.csv"] {
            let bytes = std::fs::read(db.path("data").join(file)).unwrap();
            let digest = ncf_shared::encoding::hex(&sha2::Sha256::digest(&bytes));
            assert!(ops.body.contains(&digest), "{file}'s SHA-256 is listed");
        }
        assert!(ops.body.contains("3000行（新規 3000"), "the registry's counts");
        assert!(ops.body.contains("まだ検証していません"));
        let mut cmd = national(&db);
        cmd.args(["audit", "verify"]);
        assert!(run(cmd).0.status.success());
        let ops = browser.get("/operations").await;
        assert!(ops.body.contains("件すべて正常"), "{}", ops.body);
        assert!(!ops.body.contains("まだ検証していません"));

        // Every figure has its page (no counts for most in this data set: all 10未満).
        for figure in ncf_shared::figures::Figure::ALL {
            let page = browser.get(&format!("/figures?figure={}", figure.key())).await;
            assert_eq!(page.status, 200, "{}", figure.key());
            assert!(page.body.contains(figure.title_ja()), "{}", figure.key());
        }
        assert!(
            browser
                .get("/figures?figure=back_at_work")
                .await
                .body
                .contains("再就業は、求人・研修の紹介があった")
        );

        // Bad requests are named, in Japanese, and change nothing.
        for (query, says) in [
            ("figure=nurses", "そのような数値はありません"),
            ("month=2026-13", "月の範囲が正しくありません"),
            ("month=latest", "2026-12 の形"),
            ("pref=48", "都道府県コードは01〜47"),
            ("prefecture=13", "使える項目は figure, month, pref"),
            ("month=%E2%80%A8", "2026-12 の形"),
        ] {
            let page = browser.get(&format!("/figures?{query}")).await;
            assert_eq!(page.status, 400, "{query}");
            assert!(page.body.contains(says), "{query}: {}", page.body);
        }

        // A browser that takes gzip (every browser does) gets the same page compressed: the parts
        // kept compressed per choice with her own menu joined in.
        let plain = browser.get("/figures?figure=latent").await;
        let (status, headers, zipped) = browser
            .get_with("/figures?figure=latent", &[("accept-encoding", "gzip, deflate, br, zstd")])
            .await;
        assert_eq!(status, 200);
        assert_eq!(headers.get("content-encoding").unwrap(), "gzip");
        assert_eq!(plain.headers.get("content-encoding"), None, "not compressed when not asked for");
        assert_eq!(headers.get("vary").unwrap(), "accept-encoding");
        let mut unzipped = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut unzipped).unwrap();
        assert_eq!(unzipped, plain.body, "the same page");
        assert!(unzipped.contains("厚労 花子 さんがログイン中"), "with her menu");
        assert!(zipped.len() * 3 < plain.body.len(), "{} bytes for {}", zipped.len(), plain.body.len());

        // Signing out ends the session at once: its cookie, kept by someone, opens nothing.
        let second = Browser::new(&server);
        let signed = second.staff_sign_in("kosei", PASSWORD).await;
        let cookie = signed.cookie("__Host-ncf_national_staff").expect("a session cookie").to_string();
        let cookie = cookie.split(';').next().unwrap().to_string();
        let kept = Browser::from(&server, None, &[("cookie", &cookie)]);
        assert_eq!(kept.get("/figures").await.status, 200, "the cookie opens the page");
        let csrf = second.get("/figures").await.hidden("csrf");
        assert_eq!(second.post("/staff/sign-out", &[("csrf", &csrf)]).await.status, 303);
        assert_eq!(kept.get("/figures").await.status, 303, "refused at once after signing out");

        // Disabling the account from the command line ends its sessions; a running server
        // refuses them within its session recheck (1 s in the tests, 5 s by default).
        let mut cmd = national(&db);
        cmd.args(["staff", "disable", "--username", "kosei"]);
        assert!(run(cmd).0.status.success());
        assert!(
            ncf_tests::eventually_async(std::time::Duration::from_secs(5), || async {
                browser.get("/figures").await.status == 303
            })
            .await
        );
    });
}
both_backends!(national_staff_read_suppressed_figures);
