//! Starts a whole local federation on SQLite files under ./var/federation: the national server and
//! the nodes of 13 Tokyo, 14 Kanagawa, 26 Kyoto and 27 Osaka, keys generated and registered,
//! registry and residents seeded from `generate-synthetic` (10,000 people), a few nurses opted in
//! through the nodes' own pages (at Kanagawa, nurses living in Kawasaki first) and given a
//! separation notice, so they are latent; job and training postings published at every node
//! through the staff API; then a digest run at Kanagawa, written to its log, in which a Kawasaki
//! nurse gets Tokyo postings. Prints the addresses; Ctrl-C stops everything.
//!
//!   cargo run --release -p ncf-tests --bin local-federation

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const NATIONAL_PORT: u16 = 8080;
const NODES: [(&str, u16); 4] = [("13", 8113), ("14", 8114), ("26", 8126), ("27", 8127)];
const PEOPLE: &str = "10000";
const OPTED_IN_PER_NODE: usize = 3;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn step(what: &str, mut cmd: Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!("{what} failed: {}{}", stdout, String::from_utf8_lossy(&out.stderr)));
    }
    Ok(stdout)
}

struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn run() -> Result<(), String> {
    let dir = PathBuf::from("var/federation");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let national_bin = ncf_tests::binary("national-server");
    let node_bin = ncf_tests::binary("prefecture-node");
    let national = |args: &[&str]| {
        let mut cmd = Command::new(&national_bin);
        cmd.args(args)
            .env("DATABASE_URL", format!("sqlite://{}", dir.join("national.db").display()))
            .env("NATIONAL_SECRET_FILE", dir.join("national-secret.key"))
            .env("RUST_LOG", "warn");
        cmd
    };

    println!("seeding the national server ({PEOPLE} synthetic people)…");
    let data = dir.join("synthetic");
    step("generate-synthetic", national(&["generate-synthetic", "--nurses", PEOPLE, "--out", &path(&data)]))?;
    step("import-registry", national(&["import-registry", &path(&data.join("registry.csv"))]))?;
    step("import-residents", national(&["import-residents", &path(&data.join("residents.csv"))]))?;

    for (pref, _) in NODES {
        let key_file = dir.join(format!("node-{pref}.key"));
        if !key_file.exists() {
            let public = step("keygen", {
                let mut cmd = Command::new(&node_bin);
                cmd.args(["keygen", "--key-file", &path(&key_file)]).stderr(Stdio::null());
                cmd
            })?;
            step(
                "nodes add",
                national(&["nodes", "add", "--prefecture", pref, "--public-key", public.trim()]),
            )?;
        }
    }

    // A national staff account for the figures pages, its password kept like the nodes'.
    let national_password_file = dir.join("national.staff-password");
    if !national_password_file.exists() {
        let password = ncf_shared::secret::random_token(12);
        let mut cmd = national(&["staff", "add", "--username", "kosei", "--display-name", "厚生労働省 職員"]);
        cmd.env("NATIONAL_STAFF_PASSWORD", &password);
        step("staff add (national)", cmd)?;
        write_private(&national_password_file, &password)?;
    }
    let national_password =
        std::fs::read_to_string(&national_password_file).map_err(|e| e.to_string())?.trim().to_string();

    // One staff account per node; its password is kept beside the node's files so a second run
    // prints the same login.
    let mut logins = Vec::new();
    for (pref, _) in NODES {
        let password_file = dir.join(format!("node-{pref}.staff-password"));
        if !password_file.exists() {
            let password = ncf_shared::secret::random_token(8);
            let mut cmd = Command::new(&node_bin);
            cmd.args(["staff", "add", "--username", "staff", "--display-name", "センター職員"])
                .env(
                    "NODE_DATABASE_URL",
                    format!("sqlite://{}", dir.join(format!("node-{pref}.db")).display()),
                )
                .env("NODE_STAFF_PASSWORD", &password);
            step("staff add", cmd)?;
            write_private(&password_file, &password)?;
        }
        let password = std::fs::read_to_string(&password_file).map_err(|e| e.to_string())?;
        logins.push((pref, password.trim().to_string()));
    }

    // Everything speaks HTTPS, as in production: a local CA made for this run, and one
    // certificate for loopback that the national server and the nodes all serve.
    let tls_dir = dir.join("tls");
    std::fs::create_dir_all(&tls_dir).map_err(|e| format!("cannot create {}: {e}", tls_dir.display()))?;
    let ca = ncf_tests::pki::LocalCa::new(&tls_dir, "local-federation");
    let cert = ca.issue(&tls_dir, "loopback");
    let tls_flags =
        ["--tls-cert".to_string(), path(&cert.cert_file), "--tls-key".to_string(), path(&cert.key_file)];

    let mut children = Children(Vec::new());
    // The nodes' logs hold working sign-in links (--mail-to-log) and the national server's
    // names personal data: readable by their owner only.
    let log = |name: &str| private_log(&dir.join(format!("{name}.log")));
    let mut cmd = national(&["serve", "--listen", &format!("127.0.0.1:{NATIONAL_PORT}")]);
    cmd.args(&tls_flags).env("RUST_LOG", "info").stdout(Stdio::null()).stderr(log("national")?);
    children.0.push(cmd.spawn().map_err(|e| format!("national-server: {e}"))?);
    let national_url = format!("https://127.0.0.1:{NATIONAL_PORT}");
    for (pref, port) in NODES {
        let mut cmd = Command::new(&node_bin);
        cmd.args([
            "serve",
            "--prefecture",
            pref,
            "--national",
            &national_url,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(&tls_flags)
        // No SMTP server here: e-mails, sign-in links included, go to the node's log.
        .arg("--mail-to-log")
        // A made-up contact for the footer and the help page (a real node gives its own).
        .args(["--center-phone", "00-0000-0000", "--center-hours", "平日 9時〜17時（この環境は試用です）"])
        .env("NODE_NATIONAL_CA", &ca.ca_file)
        .env("NODE_DATABASE_URL", format!("sqlite://{}", dir.join(format!("node-{pref}.db")).display()))
        .env("NODE_KEY_FILE", dir.join(format!("node-{pref}.key")))
        .stdout(Stdio::null())
        .stderr(log(&format!("node-{pref}"))?);
        children.0.push(cmd.spawn().map_err(|e| format!("prefecture-node {pref}: {e}"))?);
    }
    for port in std::iter::once(NATIONAL_PORT).chain(NODES.iter().map(|n| n.1)) {
        wait_for_port(port)?;
    }

    println!("opting in a few nurses through the nodes' pages, and proving who they are by post…");
    let people = sample_people(&data.join("registry.csv"), &data.join("residents.csv"))?;
    let mut opted = Vec::new();
    let mut waiting = Vec::new();
    for (pref, port) in NODES {
        let node_log = dir.join(format!("node-{pref}.log"));
        let mut here: Vec<&SamplePerson> = people.iter().filter(|p| p.prefecture == pref).collect();
        // Kanagawa: nurses living in Kawasaki first, a short way from Tokyo's postings.
        here.sort_by_key(|p| !p.lgcode.starts_with("1413"));
        for p in here.into_iter().take(OPTED_IN_PER_NODE) {
            match ncf_tests::block_on(opt_in(&ca.ca_file, port, p, &node_log))? {
                OptedIn::Registered(browser) => waiting.push((pref, port, p, browser)),
                OptedIn::Earlier => opted.push((pref, p)),
            }
        }
    }
    if !waiting.is_empty() {
        // The print vendor's file: the codes the seeded nurses "receive" by post.
        let letters = dir.join(format!("letters-{}.csv", std::process::id()));
        step("postal export", national(&["postal", "export", "--out", &path(&letters)]))?;
        let codes = letter_codes(&letters)?;
        for (pref, port, p, browser) in waiting {
            let code = codes
                .iter()
                .find(|(family, given, _)| *family == p.family_name && *given == p.given_name)
                .map(|c| c.2.clone())
                .ok_or_else(|| format!("no letter for {} {}", p.family_name, p.given_name))?;
            ncf_tests::block_on(type_code(&browser, port, &code))?;
            opted.push((pref, p));
        }
        let _ = std::fs::remove_file(&letters);
    }

    println!("publishing postings at every node and a separation notice for each nurse (staff API)…");
    let mut tokens = Vec::new();
    for (pref, _) in NODES {
        let mut cmd = Command::new(&node_bin);
        cmd.args(["staff", "token", "--username", "staff", "--label", "local-federation"])
            .env("NODE_DATABASE_URL", format!("sqlite://{}", dir.join(format!("node-{pref}.db")).display()))
            .stderr(Stdio::null());
        tokens.push((pref, step("staff token", cmd)?.trim().to_string()));
    }
    ncf_tests::block_on(seed_postings_and_notices(&ca.ca_file, &tokens, &opted))?;
    let kawasaki =
        opted.iter().find(|(pref, p)| *pref == "14" && p.lgcode.starts_with("1413")).map(|(_, p)| *p);
    let digest_log = dir.join("digest-14.log");
    if let Some(p) = kawasaki {
        println!(
            "waiting for the national server to match {} {} (Kawasaki) with Tokyo's postings…",
            p.family_name, p.given_name
        );
        let node_db =
            ncf_shared::db::DatabaseUrl::parse(&format!("sqlite://{}", dir.join("node-14.db").display()))
                .map_err(|e| e.to_string())?;
        let matched = (0..120).any(|_| {
            let found = ncf_shared::db::connect_one(&node_db).ok().and_then(|mut conn| {
                let ids: Vec<String> = {
                    use diesel::prelude::*;
                    prefecture_node::schema::nurses::table
                        .filter(
                            prefecture_node::schema::nurses::registration_number.eq(&p.registration_number),
                        )
                        .select(prefecture_node::schema::nurses::id)
                        .load(&mut conn)
                        .ok()?
                };
                let here = ncf_shared::Prefecture::from_code("14")?;
                let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                let lists = prefecture_node::postings::matches_of_many(
                    &mut conn,
                    here,
                    &refs,
                    ncf_shared::time::today_jst(),
                )
                .ok()?;
                Some(lists.values().flatten().any(|m| m.posting.prefecture.code() == "13"))
            });
            if found == Some(true) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(500));
            false
        });
        if matched {
            let mut cmd = Command::new(&node_bin);
            cmd.args([
                "digest",
                "--cadence",
                "weekly",
                "--prefecture",
                "14",
                "--public-url",
                "https://127.0.0.1:8114",
                "--mail-to-log",
            ])
            .env("NODE_DATABASE_URL", format!("sqlite://{}", dir.join("node-14.db").display()))
            .env("NODE_KEY_FILE", dir.join("node-14.key"))
            .env("RUST_LOG", "info")
            .stderr(private_log(&digest_log)?);
            let out = step("digest", cmd)?;
            println!("  {}", out.trim());
        } else {
            println!("  (not matched within a minute; see {})", dir.join("node-14.log").display());
        }
    }

    println!("\nlocal federation running over HTTPS (SQLite files and logs in {}):", dir.display());
    println!(
        "  every address uses a certificate of this run's local CA, {}: trust it in your browser (or accept the warning); curl --cacert {} …",
        ca.ca_file.display(),
        ca.ca_file.display()
    );
    println!(
        "  national server   {national_url}  (health: {national_url}/healthz, API: {national_url}/api/v1/openapi.json)"
    );
    println!(
        "                    {national_url}/figures  (national staff: user \"kosei\", password \"{national_password}\"; map, trends, tables, CSV)"
    );
    for (pref, port) in NODES {
        let name = ncf_shared::Prefecture::from_code(pref).map_or("", |p| p.name_ja());
        let password = logins.iter().find(|l| l.0 == pref).map_or("", |l| l.1.as_str());
        println!("  node {pref} {name:<4}     https://127.0.0.1:{port}/opt-in  (nurse opt-in page)");
        println!(
            "                    https://127.0.0.1:{port}/sign-in  (nurse sign-in: the e-mailed link is written to {})",
            dir.join(format!("node-{pref}.log")).display()
        );
        println!(
            "                    https://127.0.0.1:{port}/staff    (staff: user \"staff\", password \"{password}\")"
        );
    }
    println!("\nalready opted in and proved by post ({}):", opted.len());
    for (pref, p) in &opted {
        println!(
            "  node {pref}: {} {} ({}, 籍登録番号 {}, nurse{}@example.jp)",
            p.family_name, p.given_name, p.qualification, p.registration_number, p.registration_number
        );
    }
    if let Some(p) = people.iter().find(|p| {
        p.prefecture == "27" && !opted.iter().any(|(_, o)| o.registration_number == p.registration_number)
    }) {
        println!("\ntry opting in at https://127.0.0.1:8127/opt-in with a registered nurse of Osaka:");
        println!(
            "  資格 {} / 籍登録番号 {} / {} {} ({} {}) / 生年月日 {}",
            p.qualification,
            p.registration_number,
            p.family_name,
            p.given_name,
            p.family_name_kana,
            p.given_name_kana,
            // As her licence prints it, and as the page asks for it.
            ncf_shared::time::parse_date(&p.birth_date)
                .map_or_else(|_| p.birth_date.clone(), ncf_shared::wareki::format_wareki)
        );
        println!(
            "  the confirmation link is written to {}; on her page ask for a letter, then print the letters and their codes with:",
            dir.join("node-27.log").display()
        );
        println!(
            "  DATABASE_URL=sqlite://{} NATIONAL_SECRET_FILE={} target/release/national-server postal export --out {}",
            dir.join("national.db").display(),
            dir.join("national-secret.key").display(),
            dir.join("letters.csv").display()
        );
        println!(
            "  (the code is in the \"code\" column; type it on her page — until then nothing about her leaves the node)"
        );
    }
    // A move for the hand-over: the first seeded nurse of Osaka moves to Kyoto today.
    if let Some((_, p)) = opted.iter().find(|(pref, _)| *pref == "27") {
        let move_file = dir.join("move-to-kyoto.csv");
        // Written anew on every run (an earlier run's file names an earlier day).
        if let Err(e) = std::fs::remove_file(&move_file)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(format!("cannot replace {}: {e}", move_file.display()));
        }
        let today = ncf_shared::time::today_jst();
        write_private(
            &move_file,
            &format!(
                "{}\n{},address_changed,{today},261025,京都市上京区1丁目2番3号,{},{}\n",
                "my_number,event,effective_on,lgcode,address,family_name,given_name",
                p.my_number,
                p.family_name,
                p.given_name
            ),
        )?;
        println!(
            "\nhand-over: move {} {} from Osaka to Kyoto by importing the resident feed's file",
            p.family_name, p.given_name
        );
        println!(
            "  DATABASE_URL=sqlite://{} NATIONAL_SECRET_FILE={} target/release/national-server import-residents {}",
            dir.join("national.db").display(),
            dir.join("national-secret.key").display(),
            move_file.display()
        );
        println!(
            "  Osaka's staff page for her then shows 転出（京都府へ）; Kyoto's node mails her a link to confirm (written to {}),",
            dir.join("node-26.log").display()
        );
        println!("  and once she confirms, Kyoto's staff list has her (転居前のナースセンターでの本人確認).");
    }
    if let Some(p) = kawasaki {
        println!(
            "\njobs and training near home: {} {} lives in Kawasaki (Kanagawa); her page at https://127.0.0.1:8114/me lists",
            p.family_name, p.given_name
        );
        println!(
            "  Tokyo's postings within 20 km, nearest first, and her weekly digest (with them) is in {}",
            digest_log.display()
        );
        println!(
            "  publish another posting as Tokyo's staff at https://127.0.0.1:8113/staff/postings; it reaches her list within seconds"
        );
    }
    println!("\nCtrl-C stops everything.");
    actix_rt_block_on_ctrl_c();
    println!("stopping…");
    drop(children);
    Ok(())
}

fn actix_rt_block_on_ctrl_c() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let _ = runtime.block_on(tokio::signal::ctrl_c());
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    writeln!(file, "{text}").map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A log file (new or left from an earlier run, truncated) with mode 0600.
fn private_log(path: &Path) -> Result<std::fs::File, String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
    Ok(file)
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn wait_for_port(port: u16) -> Result<(), String> {
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("nothing listens on 127.0.0.1:{port} after 30 s (port taken? see var/federation/*.log)"))
}

struct SamplePerson {
    prefecture: String,
    /// Her municipality (first address in the resident data).
    lgcode: String,
    my_number: String,
    qualification: String,
    registration_number: String,
    family_name: String,
    given_name: String,
    family_name_kana: String,
    given_name_kana: String,
    birth_date: String,
}

/// Active licence holders, with the prefecture of their first address.
fn sample_people(registry: &Path, residents: &Path) -> Result<Vec<SamplePerson>, String> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let homes: std::collections::HashMap<String, String> = read(residents)?
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.get(1) == Some(&"address_changed")).then(|| (f[0].to_string(), f[3].to_string()))
        })
        .collect();
    Ok(read(registry)?
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.len() == 11 && f[10] == "active").then(|| SamplePerson {
                prefecture: homes.get(f[3]).map(|l| l[..2].to_string()).unwrap_or_default(),
                lgcode: homes.get(f[3]).cloned().unwrap_or_default(),
                my_number: f[3].into(),
                qualification: f[0].into(),
                registration_number: f[1].into(),
                family_name: f[4].into(),
                given_name: f[5].into(),
                family_name_kana: f[6].into(),
                given_name_kana: f[7].into(),
                birth_date: f[8].into(),
            })
        })
        .collect())
}

enum OptedIn {
    /// Registered and signed in (the client keeps her session), a letter asked for.
    Registered(reqwest::Client),
    /// Registered and proofed by an earlier run of this command.
    Earlier,
}

fn browser(ca: &Path) -> Result<reqwest::Client, String> {
    ncf_shared::tls::install_provider();
    let certs = reqwest::Certificate::from_pem_bundle(&std::fs::read(ca).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    reqwest::Client::builder()
        .tls_certs_only(certs)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())
}

/// The value of `name="…"`'s `value` on a page (the forms the launcher fills in).
fn field(page: &str, name: &str) -> String {
    let Some(start) = page.find(&format!("name=\"{name}\"")) else { return String::new() };
    let tag = &page[start..start + page[start..].find('>').unwrap_or(0)];
    tag.split_once("value=\"").map(|(_, r)| r[..r.find('"').unwrap_or(0)].to_string()).unwrap_or_default()
}

async fn fetch(client: &reqwest::Client, base: &str, path: &str) -> Result<String, String> {
    let res = client.get(format!("{base}{path}")).send().await.map_err(|e| e.to_string())?;
    res.text().await.map_err(|e| e.to_string())
}

/// Opts the person in through the node's pages, as she would: the form, the link from the e-mail
/// (written to the node's log, --mail-to-log), the licence check, then a letter asked for on her
/// page.
async fn opt_in(ca: &Path, port: u16, p: &SamplePerson, node_log: &Path) -> Result<OptedIn, String> {
    let client = browser(ca)?;
    let base = format!("https://127.0.0.1:{port}");
    let links_before =
        std::fs::read_to_string(node_log).unwrap_or_default().matches("/opt-in/confirm?token=").count();
    let page = fetch(&client, &base, "/opt-in").await?;
    let email = format!("nurse{}@example.jp", p.registration_number);
    let csrf = field(&page, "csrf");
    let form = [
        ("csrf", csrf.as_str()),
        ("qualification", &p.qualification),
        ("registration_number", &p.registration_number),
        ("family_name", &p.family_name),
        ("given_name", &p.given_name),
        ("family_name_kana", &p.family_name_kana),
        ("given_name_kana", &p.given_name_kana),
        ("birth_date", &p.birth_date),
        ("email", &email),
        ("max_distance_km", "20"),
        ("address_linkage", "on"),
        ("job_support", "on"),
        ("training_info", "on"),
        ("share_with_residence_prefecture", "on"),
    ];
    let res = client.post(format!("{base}/opt-in")).form(&form).send().await.map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        return Err(format!("opt-in form answered {}", res.status()));
    }
    // Her confirmation mail, as the node logged it (the mail queue sends in the background).
    let mut link = None;
    for _ in 0..100 {
        // Whole lines only: the node may still be writing the link's line.
        let log = std::fs::read_to_string(node_log).unwrap_or_default();
        let log = &log[..log.rfind('\n').map_or(0, |end| end + 1)];
        if log.matches("/opt-in/confirm?token=").count() > links_before {
            let at = log.rfind("/opt-in/confirm?token=").expect("counted above");
            link = log[at..].split_whitespace().next().map(str::to_string);
            break;
        }
        std::thread::sleep(Duration::from_millis(100)); // a launcher, one nurse at a time
    }
    let link = link.ok_or("no confirmation mail in the node's log")?;
    let page = fetch(&client, &base, &link).await?;
    let confirm = [
        "csrf",
        "token",
        "registration_number",
        "family_name",
        "given_name",
        "family_name_kana",
        "given_name_kana",
    ]
    .map(|name| (name, field(&page, name)));
    let mut confirm: Vec<(&str, String)> = confirm.into();
    confirm.push(("qualification", p.qualification.clone()));
    // The page shows her birth date in 和暦 fields; a script may send it as one ISO date.
    confirm.push(("birth_date", p.birth_date.clone()));
    let res = client
        .post(format!("{base}/opt-in/confirm"))
        .form(&confirm)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if res.status().as_u16() == 422 {
        // Proofed here by an earlier run of this command: the page answers as for a mismatch.
        return Ok(OptedIn::Earlier);
    }
    if res.status().as_u16() != 303 {
        return Err(format!("confirming the opt-in answered {}", res.status()));
    }
    let me = fetch(&client, &base, "/me").await?;
    let csrf = field(&me, "csrf");
    let res = client
        .post(format!("{base}/me/proofing/letter"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    match res.headers().get("location").and_then(|l| l.to_str().ok()) {
        Some(l) if l.starts_with("/me?done=letter") => Ok(OptedIn::Registered(client)),
        other => Err(format!("asking for a letter answered {} ({other:?})", res.status())),
    }
}

/// (family name, given name, code) of each letter in a `postal export` file.
fn letter_codes(file: &Path) -> Result<Vec<(String, String, String)>, String> {
    let mut reader = csv::Reader::from_path(file).map_err(|e| e.to_string())?;
    reader
        .records()
        .map(|r| {
            let r = r.map_err(|e| e.to_string())?;
            Ok((r[1].to_string(), r[2].to_string(), r[5].to_string()))
        })
        .collect()
}

/// Types the code from her letter on her page.
async fn type_code(client: &reqwest::Client, port: u16, code: &str) -> Result<(), String> {
    let base = format!("https://127.0.0.1:{port}");
    let me = client.get(format!("{base}/me")).send().await.map_err(|e| e.to_string())?;
    let me = me.text().await.map_err(|e| e.to_string())?;
    let csrf = field(&me, "csrf");
    let res = client
        .post(format!("{base}/me/proofing/code"))
        .form(&[("csrf", csrf.as_str()), ("code", code)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    match res.headers().get("location").and_then(|l| l.to_str().ok()) {
        Some("/me?done=proofed") => Ok(()),
        other => Err(format!("typing the postal code answered {} ({other:?})", res.status())),
    }
}

/// Every node publishes a few postings near home (first run only) and files a separation notice
/// for each nurse opted in there (so she is latent), through the staff API.
/// A staff API answer as JSON.
async fn get_json(client: &reqwest::Client, url: String, token: &str) -> Result<serde_json::Value, String> {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())
}

/// Per prefecture: (municipality code, title, whether it is training).
type Seeded<'a> = &'a [(&'a str, &'a [(&'a str, &'a str, bool)])];

async fn seed_postings_and_notices(
    ca: &Path,
    tokens: &[(&str, String)],
    opted: &[(&str, &SamplePerson)],
) -> Result<(), String> {
    let client = browser(ca)?;
    let today = ncf_shared::time::today_jst();
    let places: Seeded = &[
        (
            "13",
            &[
                ("131105", "目黒区の病院 病棟看護師（日勤のみ可）", false),
                ("131091", "品川区 復職支援研修（2日間）", true),
                ("132012", "八王子市 訪問看護ステーション", false),
            ],
        ),
        (
            "14",
            &[
                ("141330", "川崎市中原区 クリニック外来看護師", false),
                ("141003", "横浜市 復職支援研修", true),
            ],
        ),
        ("26", &[("261025", "京都市上京区 病棟看護師", false)]),
        ("27", &[("271021", "大阪市都島区 病棟看護師", false), ("271004", "大阪府 復職支援研修", true)]),
    ];
    for (pref, token) in tokens {
        let port = NODES.iter().find(|n| n.0 == *pref).map_or(0, |n| n.1);
        let base = format!("https://127.0.0.1:{port}");
        let existing = get_json(&client, format!("{base}/api/v1/postings"), token).await?;
        if existing.as_array().is_some_and(|a| a.is_empty()) {
            for (lgcode, title, training) in places.iter().find(|p| p.0 == *pref).map_or(&[][..], |p| p.1) {
                let kind = if *training {
                    ncf_shared::posting::PostingKind::Training
                } else {
                    ncf_shared::posting::PostingKind::Job
                };
                let body = ncf_shared::posting::PostingBody {
                    kind,
                    title: (*title).into(),
                    description: "ブランクのある方も歓迎します。見学・相談だけでもどうぞ。".into(),
                    facility_name: format!("{}（試用データ）", title.split(' ').next().unwrap_or(title)),
                    facility_contact: "00-0000-0000（看護部、試用データ）".into(),
                    place: ncf_shared::posting::PostingPlace::Municipality { lgcode: (*lgcode).into() },
                    qualifications: vec![
                        ncf_shared::Qualification::NURSE,
                        ncf_shared::Qualification::ASSISTANT_NURSE,
                    ],
                    employment_types: if *training {
                        vec![]
                    } else {
                        vec![ncf_shared::posting::EmploymentType::DaysOnly]
                    },
                    hours: if *training {
                        "9:30〜16:30".into()
                    } else {
                        "8:30〜17:15（休憩60分）".into()
                    },
                    wage: (!*training).then_some(ncf_shared::posting::WageRange {
                        per: ncf_shared::posting::WagePer::Hour,
                        min_yen: 1_800,
                        max_yen: 2_200,
                    }),
                    training: training.then(|| ncf_shared::posting::TrainingDetails {
                        starts_on: today + chrono::Duration::days(21),
                        ends_on: today + chrono::Duration::days(22),
                        hours: 12,
                        capacity: 20,
                        fee_yen: 0,
                    }),
                    valid_from: today,
                    valid_until: today + chrono::Duration::days(90),
                };
                let res = client
                    .post(format!("{base}/api/v1/postings"))
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if res.status().as_u16() != 201 {
                    return Err(format!(
                        "publishing {title} answered {}: {}",
                        res.status(),
                        res.text().await.unwrap_or_default()
                    ));
                }
            }
        }
        for (_, p) in opted.iter().filter(|(at, _)| at == pref) {
            // Registration numbers are digits: nothing to escape in the query string.
            let found =
                get_json(&client, format!("{base}/api/v1/nurses?q={}", p.registration_number), token).await?;
            let Some(id) = found["nurses"][0]["id"].as_str() else { continue };
            let detail = get_json(&client, format!("{base}/api/v1/nurses/{id}"), token).await?;
            if detail["notices"].as_array().is_some_and(|n| !n.is_empty()) {
                continue; // an earlier run filed it
            }
            let separation = prefecture_node::notices::NoticeBody::Separation {
                left_on: today - chrono::Duration::days(60),
                reason: prefecture_node::notices::SeparationReason::Childcare,
                wish_to_return: true,
                return_when: Some("子どもが保育園に入ったら".into()),
            };
            let res = client
                .post(format!("{base}/api/v1/nurses/{id}/notices"))
                .bearer_auth(token)
                .json(&separation)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !res.status().is_success() {
                return Err(format!("filing a separation answered {}", res.status()));
            }
        }
    }
    Ok(())
}
