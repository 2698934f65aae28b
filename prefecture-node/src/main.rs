//! A prefecture nurse-center node: its signing key (registered at the national server with
//! `national-server nodes add`), its database (nurses, notices, consents, outbox, inbox; see the
//! library), the nurse's opt-in page, and sync with the national server. Staff pages follow.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ncf_shared::Prefecture;
use ncf_shared::db::{self, DatabaseUrl};
use ncf_shared::federation::NodeSigningKey;
use prefecture_node::sync::Syncer;

#[derive(Debug, Parser)]
#[command(
    name = "prefecture-node",
    version,
    about = "Prefecture nurse-center node of the Nurse Center Federation"
)]
struct Cli {
    /// Database: a file path or sqlite://PATH (default, embedded), or postgres://USER@HOST/DB.
    #[arg(long, env = "NODE_DATABASE_URL", default_value = "sqlite://var/node.db", global = true)]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

// `serve` has many flags; the command is parsed once at start, so its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Create the node's Ed25519 signing key (mode 0600) and print its public key.
    Keygen {
        /// Where to write the private key.
        #[arg(long, env = "NODE_KEY_FILE", default_value = "var/node.key")]
        key_file: PathBuf,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage nurse-center staff accounts.
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
    /// Push waiting outbox events and pull this node's queue until both are caught up, then exit.
    Sync(NationalArgs),
    /// Send the digests due now (weekly or daily) and every digest left pending by an earlier
    /// run, then exit. `serve` does the same on its schedule.
    Digest(DigestArgs),
    /// Serve the node (the nurse's pages, the staff pages and API, health check) and sync with the
    /// national server in the background; migrations run first.
    Serve(ServeArgs),
}

/// How this node reaches the national server.
#[derive(Debug, clap::Args)]
struct NationalArgs {
    /// Base URL of the national server: https://…, or http://… on a loopback address only.
    #[arg(long, env = "NODE_NATIONAL_URL")]
    national: String,
    /// CA certificate(s) (PEM) that the national server's certificate must chain to; without it,
    /// the system's trusted roots.
    #[arg(long, env = "NODE_NATIONAL_CA")]
    national_ca: Option<PathBuf>,
    /// The node's private key (from `keygen`).
    #[arg(long, env = "NODE_KEY_FILE", default_value = "var/node.key")]
    key_file: PathBuf,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Prefecture code (JIS X 0401) this node serves.
    #[arg(long, env = "NODE_PREFECTURE")]
    prefecture: Prefecture,
    #[command(flatten)]
    national: NationalArgs,
    /// TLS certificate chain (PEM) for the node's own pages. With --tls-key the node speaks HTTPS
    /// only; SIGHUP reloads both files. Without them it serves plain HTTP, on loopback only.
    #[arg(long, env = "NODE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for --tls-cert.
    #[arg(long, env = "NODE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "NODE_LISTEN", default_value = "127.0.0.1:8081")]
    listen: String,
    /// The address nurses reach this node at, used in e-mailed links (default: the listening
    /// address). An https:// address marks cookies Secure.
    #[arg(long, env = "NODE_PUBLIC_URL")]
    public_url: Option<String>,
    /// The center's telephone number, shown in every page's footer and on the help page (for a
    /// nurse who lost access to her e-mail, say), e.g. "03-1234-5678".
    #[arg(long, env = "NODE_CENTER_PHONE", default_value = "")]
    center_phone: String,
    /// When the phone is answered, e.g. "平日 9時〜17時".
    #[arg(long, env = "NODE_CENTER_HOURS", default_value = "")]
    center_hours: String,
    /// The center's postal address (for counter visits), shown in the footer.
    #[arg(long, env = "NODE_CENTER_ADDRESS", default_value = "")]
    center_address: String,
    #[command(flatten)]
    mail: MailArgs,
    /// A reverse proxy in front of this node (an IP address or a network such as 10.0.0.0/8;
    /// repeat the flag, or separate with commas in the variable). Only requests from these
    /// addresses have their X-Forwarded-For header believed; elsewhere it is ignored.
    #[arg(long = "trusted-proxy", env = "NODE_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<prefecture_node::proxy::IpNet>,
    #[command(flatten)]
    digests: DigestSchedule,
    /// Milliseconds between sync rounds when nothing is waiting.
    #[arg(long, env = "NODE_PUSH_IDLE_MS", default_value_t = 1000)]
    push_idle_ms: u64,
}

/// How the node sends e-mail.
#[derive(Debug, clap::Args)]
struct MailArgs {
    /// SMTP server for e-mail: smtp://HOST:PORT (plain, e.g. a relay on loopback),
    /// smtp://HOST:PORT?tls=required (STARTTLS) or smtps://USER:PASSWORD@HOST:PORT (TLS).
    /// Required unless --mail-to-log is given.
    #[arg(long, env = "NODE_SMTP_URL", conflicts_with = "mail_to_log")]
    smtp_url: Option<String>,
    /// Send no e-mail: write every e-mail, working sign-in links included, to the log instead.
    /// For local development only; never on a node that real nurses use.
    #[arg(long, env = "NODE_MAIL_TO_LOG")]
    mail_to_log: bool,
    /// Sender of the node's e-mails.
    #[arg(long, env = "NODE_MAIL_FROM", default_value = "ナースセンター <no-reply@nurse-center.example.jp>")]
    mail_from: String,
}

impl MailArgs {
    /// Built inside the runtime: lettre's connection pool starts a task.
    fn mailer(&self) -> Result<prefecture_node::mail::Mailer, String> {
        match self.smtp_url.as_deref().filter(|u| !u.trim().is_empty()) {
            Some(url) => prefecture_node::mail::Mailer::smtp(url, &self.mail_from),
            None => {
                tracing::warn!(
                    "--mail-to-log: NO E-MAIL IS SENT. Every e-mail, with working sign-in links, is \
                     written to this log instead. Anyone who reads this log can sign in as the \
                     nurses named in it. For local development only."
                );
                Ok(prefecture_node::mail::Mailer::Log)
            }
        }
    }
}

/// When `serve` sends digests: cron expressions (six fields, `sec min hour day month weekday`),
/// read in Japan time.
#[derive(Debug, clap::Args)]
struct DigestSchedule {
    /// When weekly digests go out (default Monday 07:00).
    #[arg(long, env = "NODE_DIGEST_WEEKLY_CRON", default_value = "0 0 7 * * Mon")]
    digest_weekly_cron: String,
    /// When daily digests go out (default every day at 07:00).
    #[arg(long, env = "NODE_DIGEST_DAILY_CRON", default_value = "0 0 7 * * *")]
    digest_daily_cron: String,
}

/// `digest`: one digest run now.
#[derive(Debug, clap::Args)]
struct DigestArgs {
    /// Which digests: weekly or daily.
    #[arg(long, value_parser = ["weekly", "daily"])]
    cadence: String,
    /// Prefecture code (JIS X 0401) this node serves.
    #[arg(long, env = "NODE_PREFECTURE")]
    prefecture: Prefecture,
    /// The address nurses reach this node at (for the links in the digest).
    #[arg(long, env = "NODE_PUBLIC_URL")]
    public_url: String,
    /// The node's private key (the unsubscribe links are keyed by it).
    #[arg(long, env = "NODE_KEY_FILE", default_value = "var/node.key")]
    key_file: PathBuf,
    #[command(flatten)]
    mail: MailArgs,
}

#[derive(Debug, Subcommand)]
enum StaffCommand {
    /// Create a staff account (argon2id). The password comes from NODE_STAFF_PASSWORD or
    /// --password-file; without either, a strong one is generated and printed once.
    Add {
        #[arg(long, env = "NODE_STAFF_USERNAME")]
        username: String,
        #[arg(long, env = "NODE_STAFF_DISPLAY_NAME")]
        display_name: String,
        #[arg(long, env = "NODE_STAFF_PASSWORD_FILE")]
        password_file: Option<PathBuf>,
    },
    /// List staff accounts.
    List,
    /// Create an API token for a staff member's scripts (printed once; send it as
    /// `Authorization: Bearer <token>`).
    Token {
        #[arg(long, env = "NODE_STAFF_USERNAME")]
        username: String,
        /// What the token is for (e.g. 「事業所CSV取込スクリプト」).
        #[arg(long)]
        label: String,
    },
    /// Disable a staff account: its sessions and API tokens stop working at once.
    Disable {
        #[arg(long, env = "NODE_STAFF_USERNAME")]
        username: String,
    },
    /// Revoke a staff member's API tokens with this label.
    RevokeToken {
        #[arg(long, env = "NODE_STAFF_USERNAME")]
        username: String,
        #[arg(long)]
        label: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One TLS provider for the process (reqwest is built without one).
    ncf_shared::tls::install_provider();
    ncf_shared::logging::init("info");
    let result = match cli.command {
        Command::Keygen { key_file } => keygen(&key_file),
        Command::Migrate => open(&cli.database_url).map(|(url, applied)| {
            println!("{url}: {applied} migration(s) applied");
        }),
        Command::Staff { command } => staff(&cli.database_url, command),
        Command::Sync(national) => sync(&cli.database_url, &national),
        Command::Digest(args) => check_mail(&args.mail)
            .and_then(|_| open(&cli.database_url))
            .and_then(|(url, _)| digest(&url, args)),
        // The national URL is checked before anything else: a node never starts towards a
        // national server it would reach in clear.
        Command::Serve(args) => ncf_shared::tls::check_national_url(&args.national.national)
            .and_then(|_| check_mail(&args.mail))
            .and_then(|_| check_schedules(&args.digests).map(drop))
            .and_then(|_| open(&cli.database_url))
            .and_then(|(url, _)| {
                let syncer = syncer(&url, &args.national)?;
                serve(args, syncer)
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A node that would silently write working sign-in links to its log is refused: the operator
/// chooses SMTP or, knowingly, the log.
fn check_mail(args: &MailArgs) -> Result<(), String> {
    let smtp = args.smtp_url.as_deref().is_some_and(|u| !u.trim().is_empty());
    if !smtp && !args.mail_to_log {
        return Err("no way to send e-mail: give --smtp-url (NODE_SMTP_URL) to send nurses their sign-in \
             links, or --mail-to-log (NODE_MAIL_TO_LOG=true) to write every e-mail, working links \
             included, to the log (local development only)"
            .to_string());
    }
    Ok(())
}

/// A bad digest schedule stops start-up, naming the flag and the expression.
fn check_schedules(
    args: &DigestSchedule,
) -> Result<(ncf_shared::schedule::Schedule, ncf_shared::schedule::Schedule), String> {
    let weekly = ncf_shared::schedule::Schedule::parse(
        "--digest-weekly-cron",
        &args.digest_weekly_cron,
        "0 0 7 * * Mon",
    )?;
    let daily =
        ncf_shared::schedule::Schedule::parse("--digest-daily-cron", &args.digest_daily_cron, "0 0 7 * * *")?;
    Ok((weekly, daily))
}

fn digest(url: &DatabaseUrl, args: DigestArgs) -> Result<(), String> {
    let key = read_key(&args.key_file)?;
    let cadence = prefecture_node::digests::Cadence::parse(&args.cadence).expect("checked by clap");
    let pool = db::connect(url, 4).map_err(|e| e.to_string())?;
    actix_web::rt::System::new().block_on(async move {
        let digester = prefecture_node::digests::Digester {
            pool,
            mailer: args.mail.mailer()?,
            key: prefecture_node::digests::UnsubscribeKey::from_signing_key(&key),
            public_url: args.public_url.trim_end_matches('/').to_string(),
            here: args.prefecture,
        };
        let started = std::time::Instant::now();
        let r = digester.run(cadence, true).await?;
        println!(
            "digest {}: {} planned, {} sent, {} cancelled at send time, {} bounced, {} waiting for SMTP, in {:.2} s",
            cadence.as_str(),
            r.planned,
            r.sent,
            r.cancelled,
            r.bounced,
            r.waiting,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    })
}

/// Connects and migrates; returns the URL (password hidden) and how many migrations ran.
fn open(database_url: &str) -> Result<(DatabaseUrl, usize), String> {
    let url = DatabaseUrl::parse(database_url).map_err(|e| e.to_string())?;
    let mut conn = db::connect_one(&url).map_err(|e| e.to_string())?;
    let applied = prefecture_node::migrate(&mut conn).map_err(|e| e.to_string())?;
    Ok((url, applied.len()))
}

fn staff(database_url: &str, command: StaffCommand) -> Result<(), String> {
    let url = DatabaseUrl::parse(database_url).map_err(|e| e.to_string())?;
    let mut conn = db::connect_one(&url).map_err(|e| e.to_string())?;
    prefecture_node::migrate(&mut conn).map_err(|e| e.to_string())?;
    match command {
        StaffCommand::Add { username, display_name, password_file } => {
            let given = match password_file {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                        .trim_end_matches(['\r', '\n'])
                        .to_string(),
                ),
                None => std::env::var("NODE_STAFF_PASSWORD").ok(),
            };
            let generated = given.is_none();
            let password = given.unwrap_or_else(|| ncf_shared::secret::random_token(12));
            let member = prefecture_node::staff::add(&mut conn, &username, &display_name, &password)
                .map_err(|e| e.to_string())?;
            println!("staff account {} ({}) created", member.username, member.display_name);
            if generated {
                println!("password (shown once): {password}");
            }
            Ok(())
        }
        StaffCommand::Token { username, label } => {
            let token = prefecture_node::auth::issue_api_token(&mut conn, &username, &label)
                .map_err(|e| e.to_string())?;
            println!("{token}");
            eprintln!("API token for {username} ({label}) created; it is shown only now.");
            Ok(())
        }
        StaffCommand::RevokeToken { username, label } => {
            let n = prefecture_node::auth::revoke_api_tokens(&mut conn, &username, &label)
                .map_err(|e| e.to_string())?;
            println!("{n} token(s) revoked");
            Ok(())
        }
        StaffCommand::Disable { username } => {
            let member = prefecture_node::staff::disable(&mut conn, &username).map_err(|e| match e {
                prefecture_node::error::NodeError::NotFound(_) => format!("no staff account {username:?}"),
                other => other.to_string(),
            })?;
            println!(
                "staff account {} ({}) disabled; its sessions and API tokens no longer work",
                member.username, member.display_name
            );
            Ok(())
        }
        StaffCommand::List => {
            for m in prefecture_node::staff::list(&mut conn).map_err(|e| e.to_string())? {
                let state = if m.disabled_at.is_some() { "disabled" } else { "active" };
                println!("{:<20} {:<20} {state}", m.username, m.display_name);
            }
            Ok(())
        }
    }
}

fn read_key(path: &std::path::Path) -> Result<NodeSigningKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!("cannot read the node key {}: {e} (create it with `prefecture-node keygen`)", path.display())
    })?;
    NodeSigningKey::from_base64(&text).ok_or_else(|| format!("{} does not hold a node key", path.display()))
}

fn syncer(url: &DatabaseUrl, national: &NationalArgs) -> Result<Syncer, String> {
    let key = read_key(&national.key_file)?;
    let client =
        prefecture_node::sync::NationalClient::new(&national.national, national.national_ca.as_deref())?;
    let pool = db::connect(url, 8).map_err(|e| e.to_string())?;
    Ok(Syncer::new(pool, client, key))
}

fn sync(database_url: &str, national: &NationalArgs) -> Result<(), String> {
    ncf_shared::tls::check_national_url(&national.national)?;
    let (url, _) = open(database_url)?;
    let syncer = syncer(&url, national)?;
    actix_web::rt::System::new().block_on(async move {
        let upgraded = syncer.apply_waiting().await.map_err(|e| e.to_string())?;
        let (mut acknowledged, mut parked, mut pulled) = (0, 0, upgraded);
        let mut postings = 0;
        loop {
            let (answered, more) = syncer.push_postings().await.map_err(|e| e.to_string())?;
            postings += answered;
            if !more {
                break;
            }
        }
        loop {
            let report = syncer.push_once().await.map_err(|e| e.to_string())?;
            acknowledged += report.acknowledged;
            parked += report.parked;
            if !report.more {
                break;
            }
        }
        loop {
            let report = syncer.pull_once().await.map_err(|e| e.to_string())?;
            pulled += report.applied;
            if !report.more {
                break;
            }
        }
        println!(
            "pushed: {postings} posting(s), {acknowledged} event(s) acknowledged, {parked} parked; pulled: {pulled} event(s) applied"
        );
        Ok(())
    })
}

fn keygen(path: &std::path::Path) -> Result<(), String> {
    if path.exists() {
        return Err(format!("{} already exists; refusing to replace a node key", path.display()));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let key = NodeSigningKey::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    writeln!(file, "{}", key.to_base64()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("{}", key.public_key().to_base64());
    eprintln!(
        "wrote {} (key id {}); register it with: national-server nodes add --prefecture NN --public-key {}",
        path.display(),
        key.public_key().key_id(),
        key.public_key().to_base64()
    );
    Ok(())
}

/// A 400 in plain Japanese text for requests the extractors cannot read.
fn bad_request(err: impl std::fmt::Debug + std::fmt::Display + 'static, text: String) -> actix_web::Error {
    let response = actix_web::HttpResponse::BadRequest().content_type("text/plain; charset=utf-8").body(text);
    actix_web::error::InternalError::from_response(err, response).into()
}

fn serve(args: ServeArgs, syncer: Syncer) -> Result<(), String> {
    use actix_web::{App, HttpServer, web};
    let ServeArgs {
        prefecture,
        listen,
        public_url,
        mail: mail_args,
        digests: digest_schedule,
        push_idle_ms,
        tls_cert,
        tls_key,
        trusted_proxies,
        center_phone,
        center_hours,
        center_address,
        ..
    } = args;
    let tls = match (&tls_cert, &tls_key) {
        (Some(cert), Some(key)) => {
            Some(ncf_shared::tls::ReloadableCert::load(cert, key).map_err(|e| e.to_string())?)
        }
        _ => {
            ncf_shared::tls::check_plain_listen(&listen)?;
            None
        }
    };
    let idle = Duration::from_millis(push_idle_ms);
    let listen_for_error = listen.clone();
    actix_web::rt::System::new()
        .block_on(async move {
            let mailer = mail_args.mailer().map_err(std::io::Error::other)?;
            let pool = syncer.pool().clone();
            let mail = prefecture_node::mail::Sender::new(pool.clone(), mailer.clone());
            actix_web::rt::spawn(mail.clone().run(Duration::from_secs(1)));
            if !trusted_proxies.is_empty() {
                tracing::info!(proxies = ?trusted_proxies, "X-Forwarded-For is read from these proxies only");
            }
            let server_factory = move |state: web::Data<prefecture_node::web::WebState>| {
                move || {
                    App::new()
                        .wrap(prefecture_node::web::security_headers())
                        .app_data(state.clone())
                        .app_data(web::FormConfig::default().limit(64 * 1024).error_handler(|err, _| {
                            let text = format!(
                                "送信内容を読み取れませんでした（{err}）。ページを開き直してください。"
                            );
                            bad_request(err, text)
                        }))
                        .app_data(web::QueryConfig::default().error_handler(|err, _| {
                            let text = format!("URLの指定が正しくありません（{err}）。");
                            bad_request(err, text)
                        }))
                        .configure(prefecture_node::web::configure)
                }
            };
            // Bind first: the public address defaults to the one actually bound (port 0).
            let listener = std::net::TcpListener::bind(&listen)?;
            let bound = listener.local_addr()?;
            let public_url = public_url
                .unwrap_or_else(|| ncf_shared::tls::base_url(tls.is_some(), bound))
                .trim_end_matches('/')
                .to_string();
            let (weekly, daily) = check_schedules(&digest_schedule).map_err(std::io::Error::other)?;
            let digester = prefecture_node::digests::Digester {
                pool: pool.clone(),
                mailer,
                key: prefecture_node::digests::UnsubscribeKey::from_signing_key(syncer.key()),
                public_url: public_url.clone(),
                here: prefecture,
            };
            actix_web::rt::spawn(digester.clone().schedule(weekly, daily));
            let syncer = syncer.with_invitations(public_url.clone(), prefecture);
            actix_web::rt::spawn(syncer.clone().run(idle));
            let state = web::Data::new(prefecture_node::web::WebState {
                pool,
                syncer,
                prefecture,
                contact: prefecture_node::web::CenterContact {
                    phone: center_phone,
                    hours: center_hours,
                    address: center_address,
                },
                mail,
                public_url,
                trusted_proxies: prefecture_node::proxy::TrustedProxies::new(trusted_proxies),
                password_checks: prefecture_node::auth::PasswordChecks::default(),
                unsubscribe: digester.key.clone(),
            });
            let server = HttpServer::new(server_factory(state));
            let server = match &tls {
                Some(cert) => {
                    actix_web::rt::spawn(cert.clone().reload_on_sighup());
                    server.listen_rustls_0_23(listener, cert.server_config())?
                }
                None => server.listen(listener)?,
            };
            for addr in server.addrs() {
                println!(
                    "prefecture-node {prefecture} listening on {}",
                    ncf_shared::tls::base_url(tls.is_some(), addr)
                );
            }
            let _ = std::io::stdout().flush();
            server.run().await
        })
        .map_err(|e| format!("cannot serve on {listen_for_error}: {e}"))
}
