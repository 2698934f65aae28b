//! The public pages' defences at a running node, as an attacker (and the real user) meets them:
//! staff sign-in throttled per username and client (told apart behind a trusted proxy only), the
//! nurse's sign-in form that answers the same for every address and never waits for SMTP, a node
//! that will not start without a mail transport, taking access away (a node key, a staff account),
//! security headers, `__Host-` cookies over HTTPS, big bodies refused unread, private files.

mod support;

use std::io::{Read, Write};
use std::net::IpAddr;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::Text;
use ncf_tests::{
    Backend, Browser, Page, SmtpReceiver, TestDb, TestServer, block_on, both_backends, eventually, run,
};
use support::*;

const PASSWORD: &str = "correct horse battery";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Six wrong passwords, as a stranger would try them: the first few are checked, then the pair
/// (username, this client) is made to wait. Returns the statuses.
async fn six_wrong_passwords(browser: &Browser) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(browser.staff_sign_in("tanaka", "guess guess guess").await.status);
    }
    statuses
}

#[derive(QueryableByName, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ClientRow {
    #[diesel(sql_type = Text)]
    client: String,
}

fn failed_clients(db: &TestDb) -> Vec<String> {
    let mut rows: Vec<ClientRow> =
        diesel::sql_query("SELECT DISTINCT client FROM sign_in_attempts WHERE NOT succeeded")
            .load(&mut db.connect())
            .unwrap();
    rows.sort();
    rows.into_iter().map(|r| r.client).collect()
}

fn staff_throttling_is_per_username_and_client(backend: Backend) {
    let f = federation(backend);
    prefecture_node::staff::add(&mut f.osaka.db.connect(), "tanaka", "田中 美穂", PASSWORD).unwrap();
    let free = prefecture_node::auth::FREE_FAILURES as usize;
    let expected: Vec<u16> = (0..6).map(|i| if i < free { 401 } else { 429 }).collect();

    // No proxy configured: clients are told apart by their own addresses, and a forged
    // X-Forwarded-For changes nothing.
    let node = TestServer::node(&f.osaka.db, &f.osaka.key_file, &f.server.base_url, "27");
    block_on(async {
        let stranger = Browser::from(&node, Some(ip("127.0.0.2")), &[]);
        assert_eq!(six_wrong_passwords(&stranger).await, expected);
        let page = stranger.staff_sign_in("tanaka", PASSWORD).await;
        assert_eq!(page.status, 429, "the stranger's own client waits, even with the right password");
        assert!(page.body.contains("しばらく待ってから"), "{}", page.body);
        let retry: i64 = page.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=prefecture_node::auth::FIRST_DELAY_SECS).contains(&retry), "{retry}");

        let forged = Browser::from(&node, Some(ip("127.0.0.2")), &[("x-forwarded-for", "198.51.100.77")]);
        assert_eq!(forged.staff_sign_in("tanaka", PASSWORD).await.status, 429, "the header is ignored");

        let tanaka = Browser::from(&node, Some(ip("127.0.0.3")), &[]);
        let page = tanaka.staff_sign_in("tanaka", PASSWORD).await;
        assert_eq!((page.status, page.location.as_deref()), (303, Some("/staff/nurses")), "{}", page.body);
        assert_eq!(tanaka.get("/staff/nurses").await.status, 200);
    });
    assert_eq!(failed_clients(&f.osaka.db), ["127.0.0.2"], "throttled tries are not recorded as tries");
    assert!(node.log().contains("staff sign-in throttled"));

    // Once the delay has passed (the failures made older here), the stranger's client may try again.
    diesel::sql_query("UPDATE sign_in_attempts SET attempted_at = $1 WHERE NOT succeeded")
        .bind::<diesel::sql_types::Timestamp, _>(ncf_shared::time::now_utc() - chrono::Duration::hours(1))
        .execute(&mut f.osaka.db.connect())
        .unwrap();
    block_on(async {
        let later = Browser::from(&node, Some(ip("127.0.0.2")), &[]);
        assert_eq!(later.staff_sign_in("tanaka", PASSWORD).await.status, 303);
    });
    drop(node);

    // Behind a trusted proxy (here 127.0.0.1), every request comes from the proxy: the clients
    // are told apart by the X-Forwarded-For it adds.
    diesel::sql_query("DELETE FROM sign_in_attempts").execute(&mut f.osaka.db.connect()).unwrap();
    let node = TestServer::node_with(
        &f.osaka.db,
        &f.osaka.key_file,
        &f.server.base_url,
        "27",
        &["--trusted-proxy", "127.0.0.1", "--trusted-proxy", "10.0.0.0/8"],
    );
    block_on(async {
        let proxy = ip("127.0.0.1");
        let stranger = Browser::from(&node, Some(proxy), &[("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(six_wrong_passwords(&stranger).await, expected);
        assert_eq!(stranger.staff_sign_in("tanaka", PASSWORD).await.status, 429);
        let tanaka = Browser::from(&node, Some(proxy), &[("x-forwarded-for", "198.51.100.2")]);
        assert_eq!(tanaka.staff_sign_in("tanaka", PASSWORD).await.status, 303);
        // A request that does not come from the proxy: its header is not believed.
        let direct = Browser::from(&node, Some(ip("127.0.0.4")), &[("x-forwarded-for", "198.51.100.2")]);
        assert_eq!(direct.staff_sign_in("tanaka", "wrong again!!").await.status, 401);
    });
    assert_eq!(failed_clients(&f.osaka.db), ["127.0.0.4", "198.51.100.1"]);
}
both_backends!(staff_throttling_is_per_username_and_client);

async fn request_link(browser: &Browser, email: &str) -> Page {
    let form = browser.get("/sign-in").await;
    assert_eq!(form.status, 200);
    let csrf = form.hidden("csrf");
    browser.post("/sign-in", &[("csrf", &csrf), ("email", email)]).await
}

/// The page without its form token.
fn without_token(page: &Page) -> String {
    page.body.replace(&page.hidden("csrf"), "")
}

#[derive(QueryableByName, Debug)]
struct MailRow {
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Text)]
    body: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    attempts: i32,
}

fn mail_rows(db: &TestDb) -> Vec<MailRow> {
    diesel::sql_query("SELECT state, body, attempts FROM mail_outbox ORDER BY created_at")
        .load(&mut db.connect())
        .unwrap()
}

fn nurse_sign_in_answers_alike_and_mail_waits_for_smtp(backend: Backend) {
    let f = federation(backend);
    let smtp = SmtpReceiver::start();
    smtp.set_down(true);
    let (_, _hanako) = opt_in(&f, &f.osaka, &f.cast[0]);
    let node = TestServer::node_with(
        &f.osaka.db,
        &f.osaka.key_file,
        &f.server.base_url,
        "27",
        &["--smtp-url", &smtp.url],
    );
    block_on(async {
        // SMTP is down: a registered and an unknown address get the same answer all the same.
        let browser = Browser::new(&node);
        let registered = request_link(&browser, "nurse@example.jp").await;
        let unknown = request_link(&browser, "stranger@example.jp").await;
        assert_eq!((registered.status, unknown.status), (200, 200), "{}", registered.body);
        assert!(registered.body.contains("ご登録のメールアドレスであれば"), "{}", registered.body);
        assert_eq!(without_token(&registered), without_token(&unknown));
        assert!(!registered.body.contains("nurse@example.jp"), "the address is not shown back");
    });
    // The mail waits in the queue; the sender keeps trying.
    assert!(
        eventually(Duration::from_secs(20), || mail_rows(&f.osaka.db)
            .first()
            .is_some_and(|m| m.attempts >= 1)),
        "the sender tried: {:?}\n{}",
        mail_rows(&f.osaka.db),
        node.log()
    );
    assert!(smtp.mails().is_empty());
    let rows = mail_rows(&f.osaka.db);
    assert_eq!(rows.len(), 1, "one mail, for the registered address only: {rows:?}");
    assert_eq!(rows[0].state, "queued");

    // SMTP is back: the mail is sent, once, and its link (in the body) is not kept.
    smtp.set_down(false);
    let mails = smtp.wait_for_within(1, Duration::from_secs(60));
    assert_eq!(mails.len(), 1, "{}", node.log());
    assert_eq!(mails[0].to, ["nurse@example.jp"]);
    assert!(mails[0].text().contains("/sign-in/link?token="));
    assert!(eventually(Duration::from_secs(10), || mail_rows(&f.osaka.db)[0].state == "sent"));
    let rows = mail_rows(&f.osaka.db);
    assert_eq!((rows.len(), rows[0].body.as_str()), (1, ""), "sent once, body blanked");
    assert_eq!(smtp.mails().len(), 1);

    // The form is rate limited per address, for registered and unknown addresses alike.
    block_on(async {
        let browser = Browser::new(&node);
        for _ in 1..prefecture_node::auth::LINK_REQUESTS_PER_ADDRESS {
            assert_eq!(request_link(&browser, "nurse@example.jp").await.status, 200);
            assert_eq!(request_link(&browser, "stranger@example.jp").await.status, 200);
        }
        let registered = request_link(&browser, "nurse@example.jp").await;
        let unknown = request_link(&browser, "stranger@example.jp").await;
        assert_eq!((registered.status, unknown.status), (429, 429));
        for page in [&registered, &unknown] {
            assert!(page.body.contains("しばらく待ってから"), "{}", page.body);
            assert!(page.headers.contains_key("retry-after"));
        }
        // Another address from the same client is still answered.
        assert_eq!(request_link(&browser, "someone.else@example.jp").await.status, 200);
    });
}
both_backends!(nurse_sign_in_answers_alike_and_mail_waits_for_smtp);

/// A node that would write working sign-in links to its log without being told to does not start.
#[test]
fn a_node_without_a_mail_transport_refuses_to_start() {
    let db = TestDb::new(Backend::Sqlite);
    let key = db.path("node.key");
    std::fs::write(&key, ncf_shared::federation::NodeSigningKey::generate().to_base64()).unwrap();
    let mut cmd = ncf_tests::node_command(&db, &key, "https://127.0.0.1:9");
    cmd.env_remove("NODE_SMTP_URL").env_remove("NODE_MAIL_TO_LOG");
    cmd.args(["serve", "--prefecture", "27", "--listen", "127.0.0.1:0"]);
    let (out, _, stderr) = run(cmd);
    assert!(!out.status.success());
    assert!(stderr.contains("--smtp-url") && stderr.contains("--mail-to-log"), "{stderr}");
    assert!(!db.path("test.db").exists(), "refused before the database is touched");
}

fn revoked_node_keys_and_disabled_staff_are_refused_at_once(backend: Backend) {
    let f = federation(backend);
    let claims = |i: usize| {
        let p = &f.cast[i];
        serde_json::to_vec(&serde_json::json!({
            "qualification": p.qualification, "registration_number": p.registration_number,
            "family_name": p.family_name, "given_name": p.given_name,
            "family_name_kana": p.family_name_kana, "given_name_kana": p.given_name_kana,
            "birth_date": p.birth_date,
        }))
        .unwrap()
    };
    const LINK: &str = "/federation/v1/identity-link";
    let (status, _) = block_on(signed_post(&f, &f.osaka.key, LINK, &claims(0)));
    assert_eq!(status, 200);

    let key_id = f.osaka.key.public_key().key_id();
    let mut cmd = ncf_tests::national(&f.national_db);
    cmd.args(["nodes", "revoke", "--key-id", &key_id]);
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains(&key_id) && stdout.contains("revoked"), "{stdout}");
    // The running server refuses the next request, with its own error code.
    let (status, answer) = block_on(signed_post(&f, &f.osaka.key, LINK, &claims(0)));
    assert_eq!((status, answer["error"].as_str()), (403, Some("node_revoked")), "{answer}");
    assert!(f.server.log().contains("revoked node key"));
    // Other nodes go on.
    let (status, _) = block_on(signed_post(&f, &f.kyoto.key, LINK, &claims(1)));
    assert_eq!(status, 200);
    let mut cmd = ncf_tests::national(&f.national_db);
    cmd.args(["nodes", "list"]);
    let (_, stdout, _) = run(cmd);
    let line = stdout.lines().find(|l| l.contains(&key_id)).unwrap();
    assert!(line.contains("revoked"), "{line}");
    let mut cmd = ncf_tests::national(&f.national_db);
    cmd.args(["nodes", "revoke", "--key-id", "0000000000000000"]);
    let (out, _, stderr) = run(cmd);
    assert!(!out.status.success() && stderr.contains("no node key"), "{stderr}");

    // A staff member's session and API token stop working the moment she is disabled.
    let mut conn = f.kyoto.db.connect();
    prefecture_node::staff::add(&mut conn, "tanaka", "田中 美穂", PASSWORD).unwrap();
    let token = prefecture_node::auth::issue_api_token(&mut conn, "tanaka", "スクリプト").unwrap();
    let node = TestServer::node(&f.kyoto.db, &f.kyoto.key_file, &f.server.base_url, "26");
    let api = |token: String| {
        let url = node.url("/api/v1/nurses");
        block_on(async move {
            let client = reqwest::Client::new();
            client.get(url).bearer_auth(token).send().await.unwrap().status().as_u16()
        })
    };
    let browser = Browser::new(&node);
    block_on(async {
        assert_eq!(browser.staff_sign_in("tanaka", PASSWORD).await.status, 303);
        assert_eq!(browser.get("/staff/nurses").await.status, 200);
    });
    assert_eq!(api(token.clone()), 200);
    let mut cmd = ncf_tests::node_command(&f.kyoto.db, &f.kyoto.key_file, &f.server.base_url);
    cmd.args(["staff", "disable", "--username", "tanaka"]);
    let (out, stdout, stderr) = run(cmd);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("disabled"), "{stdout}");
    block_on(async {
        let page = browser.get("/staff/nurses").await;
        assert_eq!((page.status, page.location.as_deref()), (303, Some("/staff/sign-in")));
        assert_eq!(browser.staff_sign_in("tanaka", PASSWORD).await.status, 401);
    });
    assert_eq!(api(token), 401);
    let mut cmd = ncf_tests::node_command(&f.kyoto.db, &f.kyoto.key_file, &f.server.base_url);
    cmd.args(["staff", "disable", "--username", "nobody"]);
    let (out, _, stderr) = run(cmd);
    assert!(!out.status.success() && stderr.contains("no staff account"), "{stderr}");
}
both_backends!(revoked_node_keys_and_disabled_staff_are_refused_at_once);

fn assert_security_headers(page: &Page, what: &str) {
    let csp = page.headers.get("content-security-policy").map(|v| v.to_str().unwrap().to_string());
    let csp = csp.unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(csp.contains("default-src 'self'") || csp.contains("default-src 'none'"), "{what}: {csp}");
    for (name, value) in [
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(page.headers.get(name).and_then(|v| v.to_str().ok()), Some(value), "{what}: {name}");
    }
}

/// Over HTTPS: security headers on every answer, `__Host-` cookies that still carry a working
/// session, no inline styles; a new SQLite database and its WAL files are private.
fn pages_over_https_send_security_headers_and_host_cookies(backend: Backend) {
    let f = federation(backend);
    // A node on a new database file, so that the node itself creates it.
    let db = TestDb::new(backend);
    let key_file = db.path("node.key");
    std::fs::copy(&f.osaka.key_file, &key_file).unwrap();
    let pki = ncf_tests::test_pki();
    let (cert, key) = (pki.server.cert_file.to_str().unwrap(), pki.server.key_file.to_str().unwrap());
    let node = TestServer::node_with(
        &db,
        &key_file,
        &f.server.base_url,
        "27",
        &["--tls-cert", cert, "--tls-key", key],
    );
    assert!(node.base_url.starts_with("https://"), "{}", node.base_url);
    prefecture_node::staff::add(&mut db.connect(), "tanaka", "田中 美穂", PASSWORD).unwrap();
    if backend == Backend::Sqlite {
        use std::os::unix::fs::PermissionsExt;
        for file in ["test.db", "test.db-wal", "test.db-shm"] {
            let mode = std::fs::metadata(db.path(file)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{file}");
        }
    }
    block_on(async {
        let browser = Browser::new(&node);
        for path in ["/opt-in", "/sign-in", "/staff/sign-in", "/no-such-page", "/healthz", "/assets/site.css"]
        {
            let page = browser.get(path).await;
            assert_security_headers(&page, path);
            assert!(!page.body.contains("<style") && !page.body.contains("style="), "{path}: inline style");
        }
        let css = browser.get("/assets/site.css").await;
        assert!(css.status == 200 && css.body.contains("font-family"));

        let browser = Browser::new(&node);
        let form = browser.get("/staff/sign-in").await;
        let cookie = form.cookie("__Host-ncf_csrf").expect("a __Host- form cookie").to_string();
        for flag in ["Secure", "Path=/", "HttpOnly"] {
            assert!(cookie.contains(flag), "{cookie}");
        }
        assert!(!cookie.contains("Domain"), "{cookie}");
        let page = browser.staff_sign_in("tanaka", PASSWORD).await;
        assert_eq!(page.status, 303, "{}", page.body);
        let cookie = page.cookie("__Host-ncf_staff").expect("a __Host- session cookie").to_string();
        assert!(
            cookie.contains("Secure")
                && cookie.split("; ").any(|a| a == "Path=/")
                && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        assert!(page.cookie("ncf_staff").is_none());
        let list = browser.get("/staff/nurses").await;
        assert_eq!(list.status, 200, "the browser sends the cookie back over https");
        assert_security_headers(&list, "/staff/nurses");

        // The national server's answers carry them too.
        let national = Browser::new(&f.server);
        assert_security_headers(&national.get("/healthz").await, "national /healthz");
    });
}
both_backends!(pages_over_https_send_security_headers_and_host_cookies);

/// Sends a request head announcing a 4 MiB body, then nothing: the answer must come without the
/// body ever being sent.
fn answer_without_body(addr: &str, head: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = [0u8; 4096];
    let n = stream.read(&mut answer).expect("an answer before the body is sent");
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

fn big_uploads_from_strangers_are_refused_unread(backend: Backend) {
    let f = federation(backend);
    let node = TestServer::node(&f.osaka.db, &f.osaka.key_file, &f.server.base_url, "27");
    let addr = node.addr();
    let length = 4 * 1024 * 1024;
    let answer = answer_without_body(
        &addr,
        &format!(
            "POST /staff/bulk HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary=xyz\r\n\
             Content-Length: {length}\r\n\r\n"
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("location: /staff/sign-in"), "{answer}");
    for authorization in ["", "Authorization: Bearer ncf_forged\r\n"] {
        let answer = answer_without_body(
            &addr,
            &format!(
                "POST /api/v1/separations HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/csv\r\n{authorization}\
                 Content-Length: {length}\r\n\r\n"
            ),
        );
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(answer.contains("unauthorized"), "{answer}");
    }
}
both_backends!(big_uploads_from_strangers_are_refused_unread);

/// A rejects file left from an earlier run (with a looser mode) is made private before rows with
/// personal data are written to it.
fn rejects_files_are_private(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::new(backend);
    let file = db.path("registry.csv");
    let good = ncf_tests::Person::sample(0).registry_row();
    ncf_tests::write_csv(&file, ncf_tests::REGISTRY_HEADER, &[good, "03,bad".into()]);
    let rejects = db.path("registry.csv.rejects.csv");
    std::fs::write(&rejects, "old\n").unwrap();
    std::fs::set_permissions(&rejects, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = ncf_tests::national(&db);
    cmd.args(["import-registry", "--accept-valid"]).arg(&file);
    let (out, _, stderr) = run(cmd);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(std::fs::metadata(&rejects).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&rejects).unwrap().contains("03,bad"));
}
both_backends!(rejects_files_are_private);
