//! Command line: every option also readable from an environment variable.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ncf_shared::db::{self, DatabaseUrl, DbConn};
use ncf_shared::secret::ServerSecret;
use ncf_shared::{MyNumberHasher, Prefecture};

use crate::imports::{self, ImportError, ImportOptions, ImportSummary};

#[derive(Debug, Parser)]
#[command(name = "national-server", version, about = "National shared server of the Nurse Center Federation")]
pub struct Cli {
    /// Database: a file path or sqlite://PATH (default, embedded), or postgres://USER@HOST/DB.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://var/national.db", global = true)]
    pub database_url: String,
    /// Server secret (64 hex characters) keying My Number hashes and agency codes; created on first use.
    #[arg(long, env = "NATIONAL_SECRET_FILE", default_value = "var/national-secret.key", global = true)]
    pub secret_file: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (federation endpoints, health, OpenAPI document).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Import the licence registry CSV (all or nothing unless --accept-valid).
    ImportRegistry(ImportArgs),
    /// Import the resident feed CSV (address, name, death events).
    ImportResidents(ImportArgs),
    /// Write deterministic synthetic registry.csv and residents.csv.
    GenerateSynthetic(SyntheticArgs),
    /// Check the data-provision record (情報提供等記録).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Register and list node keys.
    Nodes {
        #[command(subcommand)]
        command: NodesCommand,
    },
    /// Recompute, for every linked person, latent status, home link, residence and routing, and
    /// record deaths (what imports and pushes keep up to date one person at a time). Routes only
    /// differences from the stored state: running it again routes nobody twice.
    Rematch,
    /// List the filing reminders due (name differs from the registry, deceased with an active
    /// licence) and deliver the new ones: to her home node, or to the postal batch. Running it
    /// again adds nothing.
    Reconcile,
    /// National staff accounts for the figures pages.
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
    /// The national figures (counts only; shown with small cells suppressed).
    Figures {
        #[command(subcommand)]
        command: FiguresCommand,
    },
    /// Letters with one-time codes for identity proofing by post.
    Postal {
        #[command(subcommand)]
        command: PostalCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum StaffCommand {
    /// Create an account (argon2id). The password comes from NATIONAL_STAFF_PASSWORD or
    /// --password-file; without either, one is generated and printed once.
    Add {
        #[arg(long, env = "NATIONAL_STAFF_USERNAME")]
        username: String,
        #[arg(long, env = "NATIONAL_STAFF_NAME")]
        display_name: String,
        /// A file whose first line is the password (kept off the command line and shell history).
        #[arg(long, env = "NATIONAL_STAFF_PASSWORD_FILE")]
        password_file: Option<PathBuf>,
    },
    /// Disable an account: its sessions end (a running server refuses them within
    /// `--session-recheck-seconds`).
    Disable {
        #[arg(long, env = "NATIONAL_STAFF_USERNAME")]
        username: String,
    },
    /// List accounts.
    List,
}

#[derive(Debug, Subcommand)]
pub enum FiguresCommand {
    /// Count every figure again now (`serve` does this on its own every hour).
    Refresh,
}

#[derive(Debug, Subcommand)]
pub enum PostalCommand {
    /// Write every letter not yet exported to a new UTF-8 CSV for the print vendor (mode 0600;
    /// each letter is exported once, with its code; the database keeps only a keyed digest).
    Export {
        /// The file to create (an existing file is never overwritten).
        #[arg(long, env = "POSTAL_OUT")]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "NATIONAL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "NATIONAL_WORKERS")]
    pub workers: Option<usize>,
    /// TLS certificate chain (PEM). With --tls-key the server speaks HTTPS only; SIGHUP reloads both
    /// files. Without them it serves plain HTTP, on a loopback address only.
    #[arg(long, env = "NATIONAL_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for --tls-cert.
    #[arg(long, env = "NATIONAL_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// When the yearly reconciliation runs (as `reconcile`), in Japan time: a cron expression
    /// with seconds, `sec min hour day month weekday` (default: 1 April, 03:00). A bad expression
    /// stops start-up.
    #[arg(long, env = "NATIONAL_RECONCILE_CRON", default_value = crate::reminders::DEFAULT_SCHEDULE)]
    pub reconcile_cron: String,
    /// How often the national figures are counted again (minutes; also once at start-up).
    #[arg(long, env = "NATIONAL_FIGURES_EVERY_MINUTES", default_value_t = 60)]
    pub figures_every_minutes: u64,
    /// How long a staff session read from the database is trusted before it is read again
    /// (seconds): so how soon a running server refuses an account disabled with `staff disable`.
    /// 0 reads it on every page.
    #[arg(long, env = "NATIONAL_SESSION_RECHECK_SECONDS", default_value_t = 5)]
    pub session_recheck_seconds: u64,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// UTF-8 CSV file with the header row of docs/architecture.md ("Imports").
    #[arg(env = "IMPORT_FILE")]
    pub file: PathBuf,
    /// Apply the good rows and write the bad ones to the rejects file.
    #[arg(long, env = "IMPORT_ACCEPT_VALID")]
    pub accept_valid: bool,
    /// Rejects file for --accept-valid (default: FILE.rejects.csv).
    #[arg(long, env = "IMPORT_REJECTS")]
    pub rejects: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SyntheticArgs {
    /// Number of people (one nursing licence each).
    #[arg(long, env = "SYNTHETIC_NURSES")]
    pub nurses: u64,
    /// Output folder for registry.csv and residents.csv.
    #[arg(long, env = "SYNTHETIC_OUT")]
    pub out: PathBuf,
    /// Seed; the same seed and size give byte-identical files.
    #[arg(long, env = "SYNTHETIC_SEED", default_value_t = 20_261_126)]
    pub seed: u64,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the whole hash chain; names the first broken entry (exit status 1).
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// Register a node's Ed25519 public key for a prefecture.
    Add {
        /// Prefecture code (JIS X 0401), 01-47.
        #[arg(long, env = "NODE_PREFECTURE")]
        prefecture: Prefecture,
        /// The node's public key, base64 (as printed by `prefecture-node keygen`).
        #[arg(long, env = "NODE_PUBLIC_KEY")]
        public_key: String,
    },
    /// List registered node keys.
    List,
    /// Revoke a node's key: its signed requests are refused at once (403 `node_revoked`).
    Revoke {
        /// The key id, as `nodes list` shows it (16 hex digits).
        #[arg(long, env = "NODE_KEY_ID")]
        key_id: String,
    },
}

/// A failure that ends the command: printed on stderr, exit status 1.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Self(e.to_string())
    }
}

pub fn run(cli: Cli) -> ExitCode {
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            // Messages quote file names and file contents (an import's header line): mask any
            // My Number in them (rule 1).
            eprintln!("error: {}", ncf_shared::mask_my_numbers(&message));
            ExitCode::FAILURE
        }
    }
}

fn execute(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::GenerateSynthetic(args) => {
            if args.nurses == 0 || args.nurses >= 10_000_000 {
                return Err(Failure("--nurses must be between 1 and 9,999,999".into()));
            }
            let started = std::time::Instant::now();
            let files = crate::synthetic::generate(args.nurses, args.seed, &args.out)?;
            println!(
                "wrote {} ({} people) and {} ({} events) in {:.1} s",
                files.registry.display(),
                files.people,
                files.residents.display(),
                files.resident_events,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Migrate => {
            let url = DatabaseUrl::parse(&cli.database_url)?;
            let mut conn = db::connect_one(&url)?;
            let applied = crate::migrate(&mut conn)?;
            println!("{url}: {} migration(s) applied", applied.len());
            Ok(())
        }
        Command::ImportRegistry(args) => {
            import_file(&cli.database_url, &cli.secret_file, "registry", &args, imports::registry::import)
        }
        Command::ImportResidents(args) => {
            import_file(&cli.database_url, &cli.secret_file, "residents", &args, imports::residents::import)
        }
        Command::Audit { command: AuditCommand::Verify } => {
            let (_, mut conn) = open(&cli.database_url)?;
            match crate::operations::verify_chain(&mut conn)? {
                Ok(count) => {
                    println!("data-provision record intact: {count} entries verified");
                    Ok(())
                }
                Err(broken) => Err(Failure(format!(
                    "data-provision record broken at entry {}: {}",
                    broken.seq, broken.reason
                ))),
            }
        }
        Command::Nodes { command } => {
            let (_, mut conn) = open(&cli.database_url)?;
            match command {
                NodesCommand::Add { prefecture, public_key } => {
                    let node = crate::nodes::add(&mut conn, prefecture, &public_key)?;
                    println!(
                        "registered key {} for prefecture {} ({})",
                        node.key_id,
                        node.prefecture,
                        prefecture.name_ja()
                    );
                }
                NodesCommand::Revoke { key_id } => {
                    let node = crate::nodes::revoke(&mut conn, &key_id)?;
                    let at = node.revoked_at.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string());
                    println!(
                        "key {} of prefecture {} revoked ({}); its requests are refused from now on",
                        node.key_id,
                        node.prefecture,
                        at.unwrap_or_default()
                    );
                }
                NodesCommand::List => {
                    println!(
                        "{:<10} {:<16} {:<20} {:<8} public key",
                        "prefecture", "key id", "added (UTC)", "state"
                    );
                    for n in crate::nodes::list(&mut conn)? {
                        let state = if n.revoked_at.is_some() { "revoked" } else { "active" };
                        let added = n.added_at.format("%Y-%m-%d %H:%M:%S");
                        println!(
                            "{:<10} {:<16} {:<20} {:<8} {}",
                            n.prefecture, n.key_id, added, state, n.public_key
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Rematch => {
            let (_, mut conn) = open(&cli.database_url)?;
            let started = std::time::Instant::now();
            let r = crate::routing::refresh_all(&mut conn)?;
            let swept = crate::postings::sweep_closed(&mut conn, ncf_shared::time::today_jst())?;
            if swept > 0 {
                println!("rematch: {swept} list(s) dropped postings that closed");
            }
            println!(
                "rematch: {} linked people, {} latent, {} moved (hand-overs started), {} licence deletions, {} erasures, {} events queued in {:.2} s",
                r.persons,
                r.latent,
                r.moved,
                r.deletions,
                r.erased,
                r.events,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Reconcile => {
            let (_, mut conn) = open(&cli.database_url)?;
            let added = crate::reminders::reconcile(&mut conn)?;
            println!("reconcile: {added} new filing reminder(s)");
            Ok(())
        }
        Command::Staff { command } => {
            let (_, mut conn) = open(&cli.database_url)?;
            staff_command(&mut conn, command)
        }
        Command::Figures { command: FiguresCommand::Refresh } => {
            let (_, mut conn) = open(&cli.database_url)?;
            let done = crate::figures::refresh(&mut conn, ncf_shared::time::today_jst())?;
            println!(
                "figures refreshed for {}: {} stored counts in {:.2} s",
                done.month.label_ja(),
                done.cells,
                done.millis as f64 / 1000.0
            );
            Ok(())
        }
        Command::Postal { command: PostalCommand::Export { out } } => {
            let secret = load_secret(&cli.secret_file)?;
            let (_, mut conn) = open(&cli.database_url)?;
            let exported = crate::proofing::export(&mut conn, &secret.proofing_code_key(), &out)
                .map_err(|e| Failure(e.message))?;
            println!(
                "{}: {} letter(s) and {} filing reminder(s) for the print vendor",
                out.display(),
                exported.letters,
                exported.reminders
            );
            Ok(())
        }
        Command::Serve(args) => {
            let secret = load_secret(&cli.secret_file)?;
            let schedule = crate::reminders::Schedule::parse(&args.reconcile_cron).map_err(Failure)?;
            let url = DatabaseUrl::parse(&cli.database_url)?;
            let workers =
                args.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
            let tls = match (&args.tls_cert, &args.tls_key) {
                (Some(cert), Some(key)) => Some(ncf_shared::tls::ReloadableCert::load(cert, key)?),
                _ => {
                    ncf_shared::tls::check_plain_listen(&args.listen).map_err(Failure)?;
                    None
                }
            };
            let pool = db::connect(&url, workers as u32 + 4)?;
            crate::migrate(&mut *pool.get()?)?;
            let held = crate::sync::apply_held(&mut *pool.get()?, &secret.agency_code_key())
                .map_err(|e| Failure(e.to_string()))?;
            if held > 0 {
                tracing::info!(events = held, "applied events held for an upgrade");
            }
            let state = crate::http::AppState {
                pool,
                agency_key: secret.agency_code_key(),
                proofing_key: secret.proofing_code_key(),
                pages: crate::http::pages::Pages::new(
                    tls.is_some(),
                    std::time::Duration::from_secs(args.session_recheck_seconds),
                ),
            };
            let reconcile_pool = state.pool.clone();
            let sweep_pool = state.pool.clone();
            let figures_pool = state.pool.clone();
            let chain_pool = state.pool.clone();
            let figures_every = std::time::Duration::from_secs(args.figures_every_minutes.max(1) * 60);
            actix_web::rt::System::new().block_on(async move {
                actix_web::rt::spawn(schedule.run(reconcile_pool));
                actix_web::rt::spawn(crate::figures::refresh_every(figures_pool, figures_every));
                actix_web::rt::spawn(crate::operations::verify_daily(chain_pool));
                actix_web::rt::spawn(crate::postings::sweep_every(sweep_pool, SWEEP_EVERY));
                serve(state, &args.listen, workers, &url, tls).await
            })?;
            Ok(())
        }
    }
}

fn staff_command(conn: &mut DbConn, command: StaffCommand) -> Result<(), Failure> {
    use ncf_shared::accounts;
    match command {
        StaffCommand::Add { username, display_name, password_file } => {
            let given = match password_file {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .map_err(|e| Failure(format!("cannot read {}: {e}", path.display())))?
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                ),
                None => std::env::var("NATIONAL_STAFF_PASSWORD").ok(),
            };
            let generated = given.is_none();
            let password = given.unwrap_or_else(|| ncf_shared::secret::random_token(12));
            let member = accounts::add(conn, &username, &display_name, &password)?;
            println!("national staff account {} ({}) created", member.username, member.display_name);
            if generated {
                println!("password (shown once): {password}");
            }
        }
        StaffCommand::Disable { username } => {
            let member = accounts::disable(conn, &username).map_err(|e| match e {
                accounts::AccountError::NotFound => Failure(format!("no staff account {username:?}")),
                other => Failure(other.to_string()),
            })?;
            println!(
                "national staff account {} ({}) disabled; its sessions have ended (a running server refuses them within its --session-recheck-seconds)",
                member.username, member.display_name
            );
        }
        StaffCommand::List => {
            for m in accounts::list(conn)? {
                let state = if m.disabled_at.is_some() { "disabled" } else { "active" };
                println!("{:<20} {:<20} {state}", m.username, m.display_name);
            }
        }
    }
    Ok(())
}

/// How often `serve` drops closed postings from lists: a posting's last day ends at midnight in
/// Japan, and a list may show it for up to this long after.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

type ImportFn = fn(&mut DbConn, &Path, MyNumberHasher, &ImportOptions) -> Result<ImportSummary, ImportError>;

fn import_file(
    database_url: &str,
    secret_file: &Path,
    kind: &str,
    args: &ImportArgs,
    import: ImportFn,
) -> Result<(), Failure> {
    let secret = load_secret(secret_file)?;
    let (_, mut conn) = open(database_url)?;
    let result = import(&mut conn, &args.file, secret.my_number_hasher(), &args.options());
    report_import(kind, &args.file, result)
}

impl ImportArgs {
    fn options(&self) -> ImportOptions {
        ImportOptions { accept_valid: self.accept_valid, rejects_path: self.rejects.clone() }
    }
}

fn open(database_url: &str) -> Result<(DatabaseUrl, DbConn), Failure> {
    let url = DatabaseUrl::parse(database_url)?;
    let mut conn = db::connect_one(&url)?;
    crate::migrate(&mut conn)?;
    Ok((url, conn))
}

fn load_secret(path: &Path) -> Result<ServerSecret, Failure> {
    let (secret, created) = ServerSecret::load_or_create(path)?;
    if created {
        tracing::warn!(path = %path.display(), "created a new server secret; keep it safe and back it up (losing it unlinks every import)");
    }
    Ok(secret)
}

fn report_import(kind: &str, file: &Path, result: Result<ImportSummary, ImportError>) -> Result<(), Failure> {
    match result {
        Ok(s) => {
            println!(
                "imported {kind} {}: {} rows ({} new, {} changed, {} unchanged, {} rejected) in {:.2} s, {:.0} rows/s; import id {}",
                ncf_shared::mask_my_numbers(&file.display().to_string()),
                s.rows_total,
                s.inserted,
                s.updated,
                s.unchanged,
                s.rows_rejected,
                s.elapsed.as_secs_f64(),
                s.rows_per_second(),
                s.import_id
            );
            if let Some(rejects) = &s.rejects_file {
                println!(
                    "rejected rows written to {}:",
                    ncf_shared::mask_my_numbers(&rejects.display().to_string())
                );
                let mut err = std::io::stderr().lock();
                for row in &s.rejected {
                    let _ = writeln!(err, "  {row}");
                }
            }
            Ok(())
        }
        Err(ImportError::Rejected { path, total, rows }) => {
            let mut err = std::io::stderr().lock();
            for row in &rows {
                let _ = writeln!(err, "  {row}");
            }
            Err(Failure(ImportError::Rejected { path, total, rows }.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

async fn serve(
    state: crate::http::AppState,
    listen: &str,
    workers: usize,
    url: &DatabaseUrl,
    tls: Option<std::sync::Arc<ncf_shared::tls::ReloadableCert>>,
) -> std::io::Result<()> {
    let state = actix_web::web::Data::new(state);
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(state.clone())
            .app_data(crate::http::json_config())
            .wrap(actix_web::middleware::Logger::new("%r %s %Dms").exclude("/healthz"))
            // Pages without inline script or style, never framed; JSON answers carry the same.
            .wrap(
                actix_web::middleware::DefaultHeaders::new()
                    .add(("content-security-policy", crate::http::pages::CONTENT_SECURITY_POLICY))
                    .add(("x-frame-options", "DENY"))
                    .add(("referrer-policy", "no-referrer"))
                    .add(("x-content-type-options", "nosniff")),
            )
            .configure(crate::http::configure)
    })
    .workers(workers);
    let server = match &tls {
        Some(cert) => {
            actix_web::rt::spawn(cert.clone().reload_on_sighup());
            server.bind_rustls_0_23(listen, cert.server_config())?
        }
        None => server.bind(listen)?,
    };
    for addr in server.addrs() {
        // On stdout, so scripts and tests can learn a port chosen with :0.
        println!(
            "national-server listening on {} (database {url})",
            ncf_shared::tls::base_url(tls.is_some(), addr)
        );
    }
    let _ = std::io::stdout().flush();
    server.run().await
}
