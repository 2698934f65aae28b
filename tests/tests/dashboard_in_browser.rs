//! The national dashboard in real headless Chromium (issue #9 item 8): national staff sign in at
//! a desk and on a phone, the map has the 47 prefectures with the table's values, a suppressed
//! cell reads 「10未満」 on the page and in the CSV the page links to, and the phone layout does
//! not scroll sideways, nor does the operations view.

use ncf_tests::webdriver::{Driver, Session, axe_script};
use ncf_tests::{Backend, TestServer, block_on};
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

async fn sign_in(session: &Session<'_>, server: &TestServer) {
    session.goto(&server.url("/figures")).await;
    assert!(session.current_url().await.ends_with("/staff/sign-in"), "sent to sign in first");
    session.fill("#username", "kosei").await;
    session.fill("#password", PASSWORD).await;
    session.click("form[action='/staff/sign-in'] button[type=submit]").await;
    for _ in 0..100 {
        if session.current_url().await.contains("/figures") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("not signed in: {}", session.text().await);
}

#[test]
fn national_staff_read_the_map_table_and_csv_in_a_browser() {
    let db = ncf_tests::many::national_with_figures(Backend::Sqlite, 1500, PASSWORD);
    // Plain http on loopback: the browser does not trust the tests' own certificate authority.
    let server = TestServer::national_with(&db, &[]);
    let driver = Driver::start();
    let axe = axe_script();
    block_on(async {
        let desk = driver.session(false).await;
        sign_in(&desk, &server).await;
        desk.goto(&server.url("/figures?figure=licences_active")).await;
        desk.screenshot("national_figures_desk").await;
        // The map: 47 prefecture shapes, each titled with the value its table row shows.
        let pairs = desk
            .execute(
                "const map = [...document.querySelectorAll('#japan-map path.pref')]\
                   .map(p => [p.dataset.code, p.querySelector('title').textContent]);\
                 const table = [...document.querySelectorAll('#figures-table tbody tr')]\
                   .map(r => [r.dataset.code, r.querySelector('th').textContent + ': ' + r.querySelector('td.total').textContent]);\
                 return [map, table];",
                json!([]),
            )
            .await;
        let map = pairs[0].as_array().unwrap();
        let table = pairs[1].as_array().unwrap();
        assert_eq!(map.len(), 47, "47 prefecture shapes");
        assert_eq!(map, table, "each shape's title is its table row's value");
        let text = desk.text().await;
        assert!(text.contains("10未満"), "a suppressed cell on the page");
        assert!(text.contains("地球地図日本"), "the map's source is credited");
        // The CSV the page links to, fetched by the signed-in browser: the same suppressed cells.
        let csv = desk
            .execute(
                "const x = new XMLHttpRequest(); x.open('GET', document.querySelector('a[download]').href, false);\
                 x.send(); return [x.status, x.responseText];",
                json!([]),
            )
            .await;
        assert_eq!(csv[0], 200);
        let csv = csv[1].as_str().unwrap();
        let first_hidden = table
            .iter()
            .map(|r| r[1].as_str().unwrap())
            .find(|t| t.ends_with("10未満"))
            .map(|t| t.split(": ").next().unwrap().to_string());
        if let Some(name) = first_hidden {
            let line = csv.lines().find(|l| l.contains(&format!(",{name},"))).unwrap();
            assert!(line.ends_with("10未満"), "{line}");
        }
        assert!(csv.contains("10未満"));
        let violations = desk.serious_accessibility_violations(&axe).await;
        assert!(violations.is_empty(), "accessibility violations:\n{}", violations.join("\n"));
        // The operations view reads as well (no node has called this server yet).
        desk.goto(&server.url("/operations")).await;
        let text = desk.text().await;
        assert!(text.contains("データの取込み") && text.contains("まだ検証していません"), "{text}");
        let violations = desk.serious_accessibility_violations(&axe).await;
        assert!(violations.is_empty(), "operations: accessibility violations:\n{}", violations.join("\n"));
        desk.close().await;

        // On a phone 390 px wide: the same page, nothing wider than the screen.
        let phone = driver.session(true).await;
        sign_in(&phone, &server).await;
        phone.goto(&server.url("/figures?figure=licences_active&pref=13")).await;
        phone.screenshot("national_figures_phone").await;
        assert!(phone.text().await.contains("千代田区"));
        assert!(!phone.scrolls_sideways().await, "the page scrolls sideways on a 390 px phone");
        phone.goto(&server.url("/figures?figure=latent")).await;
        assert!(!phone.scrolls_sideways().await, "the map page scrolls sideways on a 390 px phone");
        phone.goto(&server.url("/operations")).await;
        phone.screenshot("national_operations_phone").await;
        assert!(!phone.scrolls_sideways().await, "the operations page scrolls sideways on a 390 px phone");
        phone.close().await;
    });
}
