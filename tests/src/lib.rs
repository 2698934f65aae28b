//! Test harness: real `national-server` (and later `prefecture-node`) processes on loopback, each
//! with its own temporary database on SQLite or PostgreSQL (in the spirit of crates.io's TestApp).
//!
//! PostgreSQL tests create a fresh database and drop it afterwards: on the server named by
//! `TEST_DATABASE_URL` when it is set, else on a throwaway cluster the harness starts from the
//! installed PostgreSQL server programs and shares between the test processes of a run (see
//! [`postgres`]).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

pub mod digest_seed;
pub mod many;
pub mod pki;
pub mod postgres;
pub mod webdriver;

/// Runs a test body `fn name(backend: Backend)` on each backend: `both_backends!(name)` makes the
/// tests `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::Backend::Sqlite);
            }
            #[test]
            fn postgres() {
                super::$name($crate::Backend::Postgres);
            }
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A temporary database and folder, removed on drop.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    pg_admin: Option<(String, String)>,
}

impl TestDb {
    pub fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                Self { url, backend, dir, pg_admin: None }
            }
            Backend::Postgres => {
                let (admin, source) = match std::env::var("TEST_DATABASE_URL") {
                    Ok(url) if !url.is_empty() => (url, "TEST_DATABASE_URL"),
                    _ => (postgres::admin_url(), "the throwaway PostgreSQL cluster"),
                };
                let name = format!("ncf_test_{}", uuid::Uuid::now_v7().simple());
                let mut conn = PgConnection::establish(&admin)
                    .unwrap_or_else(|e| panic!("cannot connect to {source}: {e}"));
                conn.batch_execute(&format!("CREATE DATABASE {name}")).expect("create test database");
                let url = replace_database(&admin, &name);
                Self { url, backend, dir, pg_admin: Some((admin, name)) }
            }
        }
    }

    /// Path for a file in this test's folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn secret_file(&self) -> PathBuf {
        self.path("national-secret.key")
    }

    /// A direct connection, for assertions on what is stored.
    pub fn connect(&self) -> ncf_shared::db::DbConn {
        let url = ncf_shared::db::DatabaseUrl::parse(&self.url).expect("valid url");
        ncf_shared::db::connect_one(&url).expect("connect to test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.pg_admin
            && let Ok(mut conn) = PgConnection::establish(admin)
        {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// `url` with its database name replaced by `name` (query string kept).
pub fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// The workspace's binaries, built once per test process with the same profile and target folder
/// as the test itself (cargo does not build other packages' binaries for an integration test).
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| cargo_build(&["--bins", "-p", "national-server", "-p", "prefecture-node"]));
    profile_dir().join(name)
}

/// A binary of this package (e.g. `ncf-test-postgres`): cargo builds those for the integration
/// tests and nextest names them in `CARGO_BIN_EXE_<name>`; built here only when missing (examples).
/// Never built together with [`binary`]'s: another package set means other features, and each
/// build would then redo the other's work.
pub fn own_binary(name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(format!("CARGO_BIN_EXE_{name}")) {
        return path.into();
    }
    let path = profile_dir().join(name);
    if !path.exists() {
        cargo_build(&["--bin", name, "-p", "ncf-tests"]);
    }
    path
}

/// `target/<profile>` of the running executable.
fn profile_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/<test>, target/<profile>/examples/<example> or target/<profile>/<bin>:
        // the profile folder is the ancestor whose parent is the target folder (it holds CACHEDIR.TAG).
        exe.ancestors()
            .skip(1)
            .find(|dir| dir.parent().is_some_and(|t| t.join("CACHEDIR.TAG").exists()))
            .expect("the executable lives in a cargo target folder")
            .to_path_buf()
    })
}

fn cargo_build(what: &[&str]) {
    let profile_dir = profile_dir();
    let target_dir = profile_dir.parent().expect("target folder");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet"])
        .args(what)
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "building {what:?} failed");
}

/// `national-server` with this test's database and secret.
pub fn national(db: &TestDb) -> Command {
    let mut cmd = Command::new(binary("national-server"));
    cmd.env("DATABASE_URL", &db.url)
        .env("NATIONAL_SECRET_FILE", db.secret_file())
        .env("RUST_LOG", "info")
        // A disabled account's sessions end within this many seconds at a running server.
        .env("NATIONAL_SESSION_RECHECK_SECONDS", "1")
        .current_dir(db.dir.path());
    cmd
}

/// Runs a command to completion, returning its output (stdout, stderr as text).
pub fn run(mut cmd: Command) -> (Output, String, String) {
    let out = cmd.output().expect("run command");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

/// A running server process, killed on drop.
pub struct TestServer {
    pub base_url: String,
    child: Child,
    stderr_log: PathBuf,
}

impl TestServer {
    /// Starts `national-server serve` over HTTPS (the test CA's certificate, see [`test_pki`]) on
    /// a free loopback port and waits until it accepts connections.
    pub fn national(db: &TestDb) -> Self {
        let pki = test_pki();
        Self::national_with(
            db,
            &[
                "--tls-cert".as_ref(),
                pki.server.cert_file.as_os_str(),
                "--tls-key".as_ref(),
                pki.server.key_file.as_os_str(),
            ],
        )
    }

    /// `national-server serve` with these TLS (or other) flags.
    pub fn national_with(db: &TestDb, flags: &[&std::ffi::OsStr]) -> Self {
        let stderr_log = db.path("national-server.log");
        let mut cmd = national(db);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--workers", "2"])
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_log).expect("log file"));
        Self::spawn(cmd, "national-server listening on ", stderr_log)
    }

    fn spawn(mut cmd: Command, marker: &str, stderr_log: PathBuf) -> Self {
        let mut child = cmd.spawn().expect("start server");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let marker = marker.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix(&marker) {
                    let url = rest.split_whitespace().next().unwrap_or_default().to_string();
                    let _ = tx.send(url);
                }
            }
        });
        let base_url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start: {}", std::fs::read_to_string(&stderr_log).unwrap_or_default());
            }
        };
        let server = Self { base_url, child, stderr_log };
        server.wait_healthy();
        server
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = host_port(&self.base_url).to_string();
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server at {} never accepted connections", self.base_url);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `host:port` of an `http://` or `https://` base URL.
pub fn host_port(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, rest)| rest).trim_end_matches('/')
}

/// This test process's certificate authority and the national server's certificate under it
/// (files in a temporary folder that lives as long as the process).
pub struct TestPki {
    pub dir: tempfile::TempDir,
    pub ca: pki::LocalCa,
    pub server: pki::ServerCert,
}

pub fn test_pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary folder for certificates");
        let ca = pki::LocalCa::new(dir.path(), "test");
        let server = ca.issue(dir.path(), "national");
        TestPki { dir, ca, server }
    })
}

/// An HTTP client for tests that trusts the test CA only (and installs the process-wide TLS
/// provider reqwest needs).
pub fn http_client() -> reqwest::Client {
    client_trusting(&test_pki().ca.ca_file)
}

/// A client that trusts only the CA in this PEM file.
pub fn client_trusting(ca_file: &Path) -> reqwest::Client {
    ncf_shared::tls::install_provider();
    let certs = reqwest::Certificate::from_pem_bundle(&std::fs::read(ca_file).expect("read CA file"))
        .expect("CA certificate");
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .tls_certs_only(certs)
        .build()
        .expect("http client")
}

/// A browser stand-in for page tests: keeps cookies, does not follow redirects (tests check them).
pub struct Browser {
    client: reqwest::Client,
    base_url: String,
}

/// One answer: status, where a redirect points, the Set-Cookie lines, and the body.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The value of the first hidden `name` field on the page.
    pub fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker).unwrap_or_else(|| panic!("no {name} field in:\n{}", self.body));
        let rest = &self.body[start + marker.len()..];
        rest[..rest.find('"').expect("closing quote")].to_string()
    }

    /// The `value` of the first `<input name="…">` on the page (any attribute order).
    pub fn input_value(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\"");
        let start = self.body.find(&marker).unwrap_or_else(|| panic!("no {name} field in:\n{}", self.body));
        let tag_start = self.body[..start].rfind('<').expect("a tag");
        let tag = &self.body[tag_start..tag_start + self.body[tag_start..].find('>').expect("tag end")];
        tag.split_once("value=\"")
            .map_or(String::new(), |(_, rest)| rest[..rest.find('"').unwrap()].to_string())
    }

    /// The value of the selected option of `<select name="…">` (empty when none is).
    pub fn selected(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\"");
        let start = self.body.find(&marker).unwrap_or_else(|| panic!("no {name} select in:\n{}", self.body));
        let select = &self.body[start..start + self.body[start..].find("</select>").expect("select end")];
        select
            .split("<option")
            .find(|o| o.contains(" selected"))
            .and_then(|o| o.split_once("value=\"").map(|(_, r)| r[..r.find('"').unwrap()].to_string()))
            .unwrap_or_default()
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies.iter().map(String::as_str).find(|c| c.starts_with(&format!("{name}=")))
    }
}

impl Browser {
    pub fn new(server: &TestServer) -> Self {
        Self::from(server, None, &[])
    }

    /// A browser on another machine, as the server sees it: connections come from this loopback
    /// address (any of 127.0.0.0/8), with these extra headers on every request (e.g. a proxy's
    /// `X-Forwarded-For`). Trusts the test CA, for nodes serving HTTPS.
    pub fn from(server: &TestServer, local: Option<std::net::IpAddr>, headers: &[(&str, &str)]) -> Self {
        let _ = http_client(); // installs the TLS provider
        let certs =
            reqwest::Certificate::from_pem_bundle(&std::fs::read(&test_pki().ca.ca_file).expect("CA"))
                .expect("CA certificate");
        let mut default_headers = reqwest::header::HeaderMap::new();
        for (name, value) in headers {
            default_headers.insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                value.parse().expect("header value"),
            );
        }
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .tls_certs_only(certs)
            .local_address(local)
            .default_headers(default_headers)
            .build()
            .expect("http client");
        Self { client, base_url: server.base_url.clone() }
    }

    async fn page(response: reqwest::Response) -> Page {
        let status = response.status().as_u16();
        let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
        let set_cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        let headers = response.headers().clone();
        Page { status, location, set_cookies, headers, body: response.text().await.expect("body") }
    }

    pub async fn get(&self, path: &str) -> Page {
        Self::page(self.client.get(format!("{}{path}", self.base_url)).send().await.expect("GET")).await
    }

    /// The body's bytes as sent (a CSV file's BOM included) and its content type.
    pub async fn get_bytes(&self, path: &str) -> (u16, String, Vec<u8>) {
        let response = self.client.get(format!("{}{path}", self.base_url)).send().await.expect("GET");
        let status = response.status().as_u16();
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, kind, response.bytes().await.expect("body").to_vec())
    }

    /// A GET with extra headers on this request only: the status, the answer's headers and its
    /// body's bytes as sent (not decoded).
    pub async fn get_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let mut request = self.client.get(format!("{}{path}", self.base_url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("GET");
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (status, headers, response.bytes().await.expect("body").to_vec())
    }

    /// Signs staff in through the sign-in form (node or national: the same form), as a person
    /// would: the form first, for its CSRF token and cookie, then the post.
    pub async fn staff_sign_in(&self, username: &str, password: &str) -> Page {
        let form = self.get("/staff/sign-in").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.hidden("csrf");
        self.post("/staff/sign-in", &[("csrf", &csrf), ("username", username), ("password", password)]).await
    }

    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let request = self.client.post(format!("{}{path}", self.base_url)).form(fields);
        Self::page(request.send().await.expect("POST")).await
    }

    pub async fn post_multipart(&self, path: &str, form: reqwest::multipart::Form) -> Page {
        let request = self.client.post(format!("{}{path}", self.base_url)).multipart(form);
        Self::page(request.send().await.expect("POST")).await
    }
}

/// A real SMTP receiver on loopback (the protocol subset lettre speaks without extensions):
/// every message it accepts is kept for the test to read.
pub struct SmtpReceiver {
    pub url: String,
    mails: std::sync::Arc<std::sync::Mutex<Vec<Mail>>>,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Recipients refused for good (550 at RCPT TO), as a mailbox that does not exist.
    rejected: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent (headers and encoded body).
    pub data: String,
}

impl Mail {
    pub fn header(&self, name: &str) -> Option<String> {
        let (headers, _) = self.data.split_once("\r\n\r\n")?;
        // Folded headers (a line starting with white space continues the previous one).
        let unfolded = headers.replace("\r\n ", " ").replace("\r\n\t", " ");
        let prefix = format!("{}:", name.to_ascii_lowercase());
        unfolded
            .split("\r\n")
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_string())
    }

    /// The body, decoded from quoted-printable or base64 (non-ASCII text arrives so encoded).
    pub fn text(&self) -> String {
        let body = self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let encoding = self.header("content-transfer-encoding").unwrap_or_default().to_ascii_lowercase();
        let bytes = match encoding.as_str() {
            "quoted-printable" => decode_quoted_printable(body),
            "base64" => {
                use base64::Engine;
                let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
                base64::engine::general_purpose::STANDARD.decode(compact).expect("base64 body")
            }
            _ => body.as_bytes().to_vec(),
        };
        String::from_utf8(bytes).expect("UTF-8 body").replace("\r\n", "\n")
    }
}

impl Mail {
    /// The decoded part of a multipart message whose Content-Type starts with `content_type`
    /// (`text/plain`, `text/html`); for a single-part message of that type, its body.
    pub fn part(&self, content_type: &str) -> Option<String> {
        let top = self.header("content-type").unwrap_or_default();
        let Some(boundary) = top.split("boundary=").nth(1).map(|b| b.trim_matches('"').to_string()) else {
            return top.starts_with(content_type).then(|| self.text());
        };
        let body = self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        body.split(&format!("--{boundary}")).find_map(|part| {
            let part = part.trim_start_matches("\r\n");
            let inner = Mail { from: String::new(), to: Vec::new(), data: part.to_string() };
            inner.header("content-type").filter(|t| t.starts_with(content_type))?;
            Some(inner.text())
        })
    }
}

fn decode_quoted_printable(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' if bytes[i + 1..].starts_with(b"\r\n") => i += 3,
            b'=' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
                out.push(u8::from_str_radix(hex, 16).expect("quoted-printable escape"));
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

impl SmtpReceiver {
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind SMTP receiver");
        let url = format!("smtp://{}", listener.local_addr().expect("address"));
        let mails = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let rejected = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (store, is_down, refuse) = (mails.clone(), down.clone(), rejected.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                if is_down.load(std::sync::atomic::Ordering::SeqCst) {
                    // A mail server out of service: the connection is closed before the greeting.
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let (store, refuse) = (store.clone(), refuse.clone());
                std::thread::spawn(move || {
                    let _ = Self::session(stream, &store, &refuse);
                });
            }
        });
        Self { url, mails, down, rejected }
    }

    /// From now on, refuses mail to this address for good (`550 5.1.1`).
    pub fn reject(&self, address: &str) {
        self.rejected.lock().expect("rejected").push(address.to_string());
    }

    /// Takes the server out of service (every connection closed at once) or back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    fn session(
        stream: std::net::TcpStream,
        store: &std::sync::Mutex<Vec<Mail>>,
        rejected: &std::sync::Mutex<Vec<String>>,
    ) -> std::io::Result<()> {
        use std::io::Write;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut out = stream;
        out.write_all(b"220 receiver.test ESMTP\r\n")?;
        let (mut from, mut to) = (String::new(), Vec::new());
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let upper = line.to_ascii_uppercase();
            let address = || {
                line.split_once(':')
                    .map_or("", |(_, a)| a)
                    .trim()
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            };
            if upper.starts_with("EHLO") {
                out.write_all(b"250-receiver.test\r\n250 8BITMIME\r\n")?;
            } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
                out.write_all(b"250 OK\r\n")?;
            } else if upper.starts_with("RSET") {
                (from, to) = (String::new(), Vec::new());
                out.write_all(b"250 OK\r\n")?;
            } else if upper.starts_with("MAIL FROM:") {
                from = address();
                out.write_all(b"250 OK\r\n")?;
            } else if upper.starts_with("RCPT TO:") {
                let rcpt = address();
                if rejected.lock().expect("rejected").contains(&rcpt) {
                    out.write_all(b"550 5.1.1 no such mailbox\r\n")?;
                } else {
                    to.push(rcpt);
                    out.write_all(b"250 OK\r\n")?;
                }
            } else if upper.starts_with("DATA") {
                out.write_all(b"354 go ahead\r\n")?;
                let mut data = String::new();
                loop {
                    let mut l = String::new();
                    if reader.read_line(&mut l)? == 0 {
                        return Ok(());
                    }
                    if l == ".\r\n" {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').filter(|_| l.starts_with("..")).unwrap_or(&l));
                }
                store.lock().expect("mail store").push(Mail {
                    from: std::mem::take(&mut from),
                    to: std::mem::take(&mut to),
                    data,
                });
                out.write_all(b"250 OK queued\r\n")?;
            } else if upper.starts_with("QUIT") {
                out.write_all(b"221 bye\r\n")?;
                return Ok(());
            } else {
                out.write_all(b"502 not implemented\r\n")?;
            }
        }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("mail store").clone()
    }

    /// Waits (up to 10 s) until `n` mails arrived; returns them.
    pub fn wait_for(&self, n: usize) -> Vec<Mail> {
        self.wait_for_within(n, Duration::from_secs(10))
    }

    /// Waits up to `limit` until `n` mails arrived; returns them.
    pub fn wait_for_within(&self, n: usize, limit: Duration) -> Vec<Mail> {
        eventually(limit, || self.mails().len() >= n);
        self.mails()
    }
}

/// A current-thread tokio runtime for async parts of a (sync) test.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_name_is_replaced() {
        assert_eq!(super::replace_database("postgres://u@h:5432/test", "x"), "postgres://u@h:5432/x");
        assert_eq!(
            super::replace_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(super::replace_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}

/// A person for hand-made registry and resident files.
#[derive(Debug, Clone)]
pub struct Person {
    pub my_number: String,
    pub qualification: &'static str,
    pub registration_number: String,
    pub family_name: String,
    pub given_name: String,
    pub family_name_kana: String,
    pub given_name_kana: String,
    pub birth_date: &'static str,
    pub status: &'static str,
    pub lgcode: &'static str,
}

impl Person {
    /// Person `i` of a small fixed cast (valid My Numbers, distinct registration numbers).
    pub fn sample(i: u64) -> Self {
        const NAMES: [(&str, &str, &str, &str); 4] = [
            ("山田", "花子", "ヤマダ", "ハナコ"),
            ("佐藤", "美咲", "サトウ", "ミサキ"),
            ("鈴木", "陽子", "スズキ", "ヨウコ"),
            ("高橋", "愛", "タカハシ", "アイ"),
        ];
        let (f, g, fk, gk) = NAMES[(i % 4) as usize];
        Self {
            my_number: ncf_shared::MyNumber::from_body(10_000_000_000 + i * 7919).expose_digits(),
            qualification: "03",
            registration_number: format!("{:07}", 1_000_000 + i),
            family_name: f.into(),
            given_name: g.into(),
            family_name_kana: fk.into(),
            given_name_kana: gk.into(),
            birth_date: "1985-04-01",
            status: "active",
            lgcode: "271021",
        }
    }

    pub fn registry_row(&self) -> String {
        format!(
            "{},{},2008-04-01,{},{},{},{},{},{},2,{}",
            self.qualification,
            self.registration_number,
            self.my_number,
            self.family_name,
            self.given_name,
            self.family_name_kana,
            self.given_name_kana,
            self.birth_date,
            self.status
        )
    }

    pub fn moved_in_row(&self) -> String {
        format!(
            "{},address_changed,2015-04-01,{},大阪府内1丁目1番1号,{},{}",
            self.my_number, self.lgcode, self.family_name, self.given_name
        )
    }
}

pub const REGISTRY_HEADER: &str = "qualification,registration_number,registered_on,my_number,family_name,given_name,family_name_kana,given_name_kana,birth_date,sex,status";
pub const RESIDENTS_HEADER: &str = "my_number,event,effective_on,lgcode,address,family_name,given_name";

/// Writes a CSV file: header then rows.
pub fn write_csv(path: &Path, header: &str, rows: &[String]) {
    let mut text = String::from(header);
    text.push('\n');
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(path, text).expect("write csv");
}

/// `prefecture-node` with this node's database, key file and national server.
pub fn node_command(node_db: &TestDb, key_file: &Path, national_url: &str) -> Command {
    let mut cmd = Command::new(binary("prefecture-node"));
    cmd.env("NODE_DATABASE_URL", &node_db.url)
        .env("NODE_KEY_FILE", key_file)
        .env("NODE_NATIONAL_URL", national_url)
        .env("NODE_NATIONAL_CA", &test_pki().ca.ca_file)
        .env("RUST_LOG", "info")
        .current_dir(node_db.dir.path());
    cmd
}

impl TestServer {
    /// Starts `prefecture-node serve` (which also pushes its outbox) on a free loopback port.
    pub fn node(node_db: &TestDb, key_file: &Path, national_url: &str, prefecture: &str) -> Self {
        Self::node_with(node_db, key_file, national_url, prefecture, &[])
    }

    /// The same, with more `serve` flags (e.g. `--smtp-url`; without it `--mail-to-log` is added).
    pub fn node_with(
        node_db: &TestDb,
        key_file: &Path,
        national_url: &str,
        prefecture: &str,
        extra: &[&str],
    ) -> Self {
        let stderr_log = node_db.path("prefecture-node.log");
        let mut cmd = node_command(node_db, key_file, national_url);
        cmd.args(["serve", "--prefecture", prefecture, "--listen", "127.0.0.1:0", "--push-idle-ms", "100"])
            .args(extra);
        // A node needs a mail transport: without a test SMTP receiver, its log.
        if !extra.iter().any(|a| *a == "--smtp-url" || *a == "--mail-to-log") {
            cmd.arg("--mail-to-log");
        }
        cmd.stdout(Stdio::piped()).stderr(std::fs::File::create(&stderr_log).expect("log file"));
        Self::spawn(cmd, &format!("prefecture-node {prefecture} listening on "), stderr_log)
    }
}

/// `eventually` for checks that are themselves async (e.g. loading a page in an async test).
pub async fn eventually_async<F: std::future::Future<Output = bool>>(
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `check` every 50 ms until it holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A TCP proxy on loopback whose link can be cut and restored, and whose target can change (a
/// restarted server on another port) — crates.io's ChaosProxy idea.
pub struct ChaosProxy {
    pub url: String,
    state: std::sync::Arc<ProxyState>,
}

struct ProxyState {
    target: std::sync::Mutex<String>,
    cut: std::sync::atomic::AtomicBool,
    open: std::sync::Mutex<Vec<std::net::TcpStream>>,
    stop: std::sync::atomic::AtomicBool,
}

impl ChaosProxy {
    /// Proxies to `target` (`host:port`).
    pub fn start(target: &str) -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        // The national server speaks TLS: the proxy carries it through untouched.
        let url = format!("https://{}", listener.local_addr().expect("proxy address"));
        let state = std::sync::Arc::new(ProxyState {
            target: std::sync::Mutex::new(target.to_string()),
            cut: false.into(),
            open: std::sync::Mutex::new(Vec::new()),
            stop: false.into(),
        });
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if shared.cut.load(Ordering::SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let target = shared.target.lock().expect("proxy target").clone();
                let Ok(upstream) = std::net::TcpStream::connect(&target) else {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                };
                if let (Ok(c), Ok(u)) = (client.try_clone(), upstream.try_clone()) {
                    shared.open.lock().expect("proxy connections").extend([c, u]);
                }
                for (mut from, mut to) in
                    [(client.try_clone(), upstream.try_clone()), (upstream.try_clone(), client.try_clone())]
                        .into_iter()
                        .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Self { url, state }
    }

    /// Drops every open connection and refuses new ones until `restore`.
    pub fn cut(&self) {
        self.state.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.state.open.lock().expect("proxy connections").drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.state.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn retarget(&self, target: &str) {
        *self.state.target.lock().expect("proxy target") = target.to_string();
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.cut();
        // Wake the accept loop so it sees `stop`.
        let _ = std::net::TcpStream::connect(host_port(&self.url));
    }
}

impl TestServer {
    /// `host:port` of the server.
    pub fn addr(&self) -> String {
        host_port(&self.base_url).to_string()
    }

    /// The server's process id (to send it a signal).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown, no flushing — a crash. Returns once the process is gone.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
