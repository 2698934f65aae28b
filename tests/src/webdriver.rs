//! Real headless Chromium for the page tests, driven over the W3C WebDriver protocol by Debian's
//! `chromedriver` (both installed by `.ci/run` when missing), and axe-core run inside the page for
//! the accessibility check.
//!
//! The protocol is a handful of JSON requests, spoken here with the reqwest client the other
//! tests use, rather than through a WebDriver crate whose default features pull a second TLS
//! stack and a driver downloader that cannot work offline (see STACK.md).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where the tools are expected; `.ci/run` installs them (Debian's `chromium`,
/// `chromium-driver`, `fonts-noto-cjk`; axe-core from the npm registry).
fn chromium() -> PathBuf {
    std::env::var_os("NCF_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

fn chromedriver() -> PathBuf {
    std::env::var_os("NCF_CHROMEDRIVER").map_or_else(|| PathBuf::from("/usr/bin/chromedriver"), PathBuf::from)
}

/// axe-core's `axe.min.js`.
pub fn axe_script() -> String {
    let path = std::env::var_os("NCF_AXE_JS")
        .map_or_else(|| PathBuf::from("/var/tmp/ncf-axe/node_modules/axe-core/axe.min.js"), PathBuf::from);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core not found at {} ({e}): run `bash .ci/run`, or `npm install --prefix /var/tmp/ncf-axe axe-core@4`",
            path.display()
        )
    })
}

/// A running `chromedriver` on a free loopback port; stopped on drop.
pub struct Driver {
    child: Child,
    url: String,
    client: reqwest::Client,
    _profile: tempfile::TempDir,
}

/// One browser window (a WebDriver session).
pub struct Session<'a> {
    driver: &'a Driver,
    id: String,
}

#[derive(Debug, Clone)]
pub struct Element(String);

impl Driver {
    pub fn start() -> Self {
        for tool in [chromium(), chromedriver()] {
            assert!(
                tool.exists(),
                "{} is missing: the page tests need Debian's chromium and chromium-driver \
                 (`bash .ci/run` installs them, or `apt-get install chromium chromium-driver fonts-noto-cjk`)",
                tool.display()
            );
        }
        ncf_shared::tls::install_provider();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap(),
            _profile: tempfile::tempdir().unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = crate::block_on(async {
                match driver.client.get(format!("{}/status", driver.url)).send().await {
                    Ok(r) => r.json::<Value>().await.ok().and_then(|v| v["value"]["ready"].as_bool()),
                    Err(_) => None,
                }
            });
            if ready == Some(true) {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.client.request(method.clone(), format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value["value"].clone()
    }

    /// A new headless window. `phone`: a 390 × 844 phone screen (mobile emulation, so the
    /// viewport is really 390 CSS pixels wide); otherwise a 1280 × 900 desk screen.
    pub async fn session(&self, phone: bool) -> Session<'_> {
        let profile = tempfile::tempdir_in(self._profile.path()).unwrap().keep();
        let mut options = json!({
            "binary": chromium(),
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--lang=ja",
                format!("--user-data-dir={}", profile.display()),
                "--window-size=1280,900",
            ],
        });
        if phone {
            options["mobileEmulation"] =
                json!({ "deviceMetrics": { "width": 390, "height": 844, "pixelRatio": 1 } });
        }
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": options,
            "timeouts": { "script": 30000, "pageLoad": 30000, "implicit": 0 },
        }}});
        let value = self.call(reqwest::Method::POST, "/session", Some(capabilities)).await;
        let id = value["sessionId"].as_str().expect("session id").to_string();
        Session { driver: self, id }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Session<'_> {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.driver.call(method, &format!("/session/{}{path}", self.id), body).await
    }

    /// Opens a page and waits for it to load (one retry: a first load in a fresh profile very
    /// rarely fails, see STACK.md).
    pub async fn goto(&self, url: &str) {
        let body = json!({ "url": url });
        let first = self
            .driver
            .client
            .post(format!("{}/session/{}/url", self.driver.url, self.id))
            .json(&body)
            .send()
            .await;
        if !first.is_ok_and(|r| r.status().is_success()) {
            self.call(reqwest::Method::POST, "/url", Some(body)).await;
        }
    }

    pub async fn current_url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_string()
    }

    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None).await.as_str().unwrap_or_default().to_string()
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.execute("return document.body.innerText;", json!([]))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn find(&self, css: &str) -> Element {
        let value = self
            .call(reqwest::Method::POST, "/element", Some(json!({ "using": "css selector", "value": css })))
            .await;
        Element(value[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}")).to_string())
    }

    pub async fn exists(&self, css: &str) -> bool {
        let value = self
            .call(reqwest::Method::POST, "/elements", Some(json!({ "using": "css selector", "value": css })))
            .await;
        value.as_array().is_some_and(|a| !a.is_empty())
    }

    /// Types into a field (after clearing it), as the keyboard would.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{}/clear", element.0), Some(json!({}))).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{}/value", element.0),
            Some(json!({ "text": text })),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{}/click", element.0), Some(json!({}))).await;
    }

    /// Chooses an option of a select by its value.
    pub async fn select(&self, select_css: &str, value: &str) {
        self.click(&format!("{select_css} option[value=\"{value}\"]")).await;
    }

    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({ "script": script, "args": args })))
            .await
    }

    /// Whether the page scrolls sideways (wider than its viewport).
    pub async fn scrolls_sideways(&self) -> bool {
        self.execute(
            "return document.documentElement.scrollWidth > document.documentElement.clientWidth;",
            json!([]),
        )
        .await
        .as_bool()
        .unwrap_or(true)
    }

    /// Runs axe-core in the page and returns its violations of impact `serious` or `critical`
    /// (rule id, impact, one offending element each), checking the WCAG 2.x A/AA rules.
    pub async fn serious_accessibility_violations(&self, axe: &str) -> Vec<String> {
        let injected = self.execute(&format!("{axe}\nreturn typeof axe;"), json!([])).await;
        assert_eq!(injected.as_str(), Some("object"), "axe-core did not load");
        let script = "const done = arguments[arguments.length - 1];\
            axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } })\
              .then(r => done(r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,\
                 target: v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ') }))))\
              .catch(e => done([{ id: 'axe-error', impact: 'critical', help: String(e), target: '' }]));";
        let value = self
            .call(reqwest::Method::POST, "/execute/async", Some(json!({ "script": script, "args": [] })))
            .await;
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .map(|v| format!("{} ({}): {} at {}", v["id"], v["impact"], v["help"], v["target"]))
            .collect()
    }

    /// Saves a PNG of the whole page into `$NCF_SCREENSHOTS/name.png` when that variable names a
    /// folder (for looking at the pages by eye); does nothing otherwise.
    pub async fn screenshot(&self, name: &str) {
        use base64::Engine as _;
        let Some(dir) = std::env::var_os("NCF_SCREENSHOTS") else { return };
        let height = self
            .execute("return document.documentElement.scrollHeight;", json!([]))
            .await
            .as_u64()
            .unwrap_or(900)
            .min(6000);
        let _ =
            self.call(reqwest::Method::POST, "/window/rect", Some(json!({ "height": height + 140 }))).await;
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), bytes).unwrap();
    }

    pub async fn close(self) {
        let _ = self.driver.client.delete(format!("{}/session/{}", self.driver.url, self.id)).send().await;
    }
}
