//! The throwaway PostgreSQL cluster the tests use when `TEST_DATABASE_URL` is not set.
//!
//! nextest runs every test in its own process, so the cluster is shared by all test processes of
//! the user (one run, or several at once) rather than started per test:
//!
//! - **Server binaries**: the folder named by `NCF_PG_BIN` (it must hold `initdb`, `pg_ctl` and
//!   `postgres`); else the first `PATH` entry with `initdb` (symbolic links followed to the real
//!   installation); else the newest `/usr/lib/postgresql/<version>/bin` (Debian, Ubuntu). With none,
//!   every PostgreSQL test fails at once naming the `postgresql` package and `TEST_DATABASE_URL`.
//! - **State**, in `<temp dir>/ncf-test-postgres-<uid>/` (owned by the user running the tests,
//!   mode 0711): `lock` (an exclusive `flock` held by whoever checks, starts or stops the cluster),
//!   `users` (a shared `flock` each test process takes once it uses the cluster and keeps until it
//!   exits: a lease the kernel releases even when the process crashes or is killed), `watchdog`
//!   (held by the live watchdog), `state` (admin URL with a random password and the binaries'
//!   folder, mode 0600, written once the server is up) and `cluster/` (data folder, socket folder
//!   and server log, owned by the server's user).
//! - **Start**: the first test that finds no working cluster (under `lock`) stops whatever is left
//!   of an old one, wipes `cluster/`, runs `initdb` (password auth on 127.0.0.1, no fsync) and
//!   `pg_ctl start` on a free loopback port, writes `state`, and starts the watchdog
//!   (`ncf-test-postgres watch`, in its own process group so that the end or the timeout of a test
//!   does not take it down). Later tests check the cluster — they connect with its password and
//!   compare its data folder — and reuse it, each with its own database.
//! - **Stop**: the watchdog looks once a second (under `lock`) whether any process holds `users`;
//!   after [`IDLE`] without one it stops the server (`pg_ctl stop -m fast`), removes `cluster/` and
//!   `state`, and exits. So the cluster outlives a run by about 30 s and nothing but three empty
//!   lock files stays behind; a test that comes later starts a fresh cluster (about a second).
//!   `ncf-test-postgres stop` stops it at once.
//! - **Crashes**: locks end with their processes. A cluster that does not answer (server killed,
//!   stale `postmaster.pid`, start interrupted half-way, temp folder cleaned) is stopped if its
//!   postmaster is still running — only after `/proc` shows that the pid in `postmaster.pid` really
//!   is a `postgres` on this data folder — then wiped and initialised again; a dead watchdog is
//!   replaced by the next test.
//! - **root** (CI containers): PostgreSQL refuses to run as root, so `initdb` and `pg_ctl` then run
//!   as the `postgres` system user (or `nobody` when there is none), and `cluster/` belongs to it.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use rustix::fs::{FlockOperation, flock};

/// How long the cluster may go unused before the watchdog stops it.
pub const IDLE: Duration = Duration::from_secs(30);

const SERVER_PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// The admin URL of the shared throwaway cluster, started if need be; this process holds a lease on
/// it until it exits. Panics with an explanation when no cluster can be had.
pub fn admin_url() -> String {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    match URL.get_or_init(acquire) {
        Ok(url) => url.clone(),
        Err(e) => panic!("{e}"),
    }
}

fn acquire() -> Result<String, String> {
    let bin =
        find_server_bin(std::env::var_os("NCF_PG_BIN"), std::env::var_os("PATH"), Path::new(DEBIAN_ROOT))?;
    let dir = state_dir()?;
    let lock = open_lock(&dir.join("lock"))?;
    lock_file(&lock, FlockOperation::LockExclusive)?;
    let url = match read_state(&dir) {
        Some(state) if answers(&state.url, &data_dir(&dir)) => state.url,
        _ => start(&dir, &bin)?,
    };
    ensure_watchdog(&dir)?;
    let lease = open_lock(&dir.join("users"))?;
    lock_file(&lease, FlockOperation::LockShared)?;
    // Held until the process exits.
    static LEASE: OnceLock<File> = OnceLock::new();
    let _ = LEASE.set(lease);
    drop(lock);
    Ok(url)
}

const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// The folder with `initdb`, `pg_ctl` and `postgres`: `override_dir` (`NCF_PG_BIN`) if given, else
/// from `path` (`PATH`), else the newest `<debian_root>/<version>/bin`.
pub fn find_server_bin(
    override_dir: Option<OsString>,
    path: Option<OsString>,
    debian_root: &Path,
) -> Result<PathBuf, String> {
    let looked_in = if let Some(dir) = override_dir.filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if has_server(&dir) {
            return Ok(dir);
        }
        format!("NCF_PG_BIN={}", dir.display())
    } else {
        let from_path = std::env::split_paths(&path.unwrap_or_default()).find_map(|entry| {
            let initdb = std::fs::canonicalize(entry.join("initdb")).ok()?;
            let real = initdb.parent()?.to_path_buf();
            [real, entry].into_iter().find(|d| has_server(d))
        });
        if let Some(dir) = from_path {
            return Ok(dir);
        }
        let newest = std::fs::read_dir(debian_root)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| {
                let version: Vec<u64> =
                    e.file_name().to_str()?.split('.').map(str::parse).collect::<Result<_, _>>().ok()?;
                let bin = e.path().join("bin");
                has_server(&bin).then_some((version, bin))
            })
            .max();
        if let Some((_, bin)) = newest {
            return Ok(bin);
        }
        format!("PATH and {}/<version>/bin", debian_root.display())
    };
    Err(format!(
        "the PostgreSQL tests need PostgreSQL's server programs (initdb, pg_ctl, postgres) to start a \
         throwaway cluster, and found none in {looked_in}.\n\
         Install them (Debian, Ubuntu: `apt-get install postgresql`), or run the tests against an existing \
         server where they may create databases: \
         TEST_DATABASE_URL=postgres://user:password@127.0.0.1:5432/postgres cargo nextest run --workspace"
    ))
}

fn has_server(dir: &Path) -> bool {
    SERVER_PROGRAMS.iter().all(|p| {
        std::fs::metadata(dir.join(p)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// `<temp dir>/ncf-test-postgres-<uid>`, created if need be; refuses one that belongs to someone else.
pub fn state_dir() -> Result<PathBuf, String> {
    let uid = rustix::process::geteuid().as_raw();
    let dir = std::env::temp_dir().join(format!("ncf-test-postgres-{uid}"));
    match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != uid {
        return Err(format!("{} is not a folder of this user (uid {uid}); remove it", dir.display()));
    }
    // Traversable (not listable) by the server's user, who owns cluster/ inside it.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

fn cluster_dir(dir: &Path) -> PathBuf {
    dir.join("cluster")
}

fn data_dir(dir: &Path) -> PathBuf {
    cluster_dir(dir).join("data")
}

fn open_lock(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

fn lock_file(file: &File, operation: FlockOperation) -> Result<(), String> {
    flock(file, operation).map_err(|e| format!("flock: {e}"))
}

/// Whether nobody holds `file` (checked with a non-blocking exclusive lock, released at once).
fn unheld(file: &File) -> bool {
    let free = flock(file, FlockOperation::NonBlockingLockExclusive).is_ok();
    if free {
        let _ = flock(file, FlockOperation::Unlock);
    }
    free
}

struct State {
    url: String,
    bin: PathBuf,
}

fn read_state(dir: &Path) -> Option<State> {
    let text = std::fs::read_to_string(dir.join("state")).ok()?;
    let field =
        |name: &str| text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix('=')).map(str::to_string);
    Some(State { url: field("url")?, bin: field("bin")?.into() })
}

fn write_state(dir: &Path, state: &State) -> Result<(), String> {
    let temp = dir.join("state.new");
    let _ = std::fs::remove_file(&temp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| format!("{}: {e}", temp.display()))?;
    writeln!(file, "url={}\nbin={}", state.url, state.bin.display())
        .map_err(|e| format!("{}: {e}", temp.display()))?;
    std::fs::rename(&temp, dir.join("state")).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Whether the server at `url` accepts our password and runs on our data folder.
fn answers(url: &str, data: &Path) -> bool {
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        data_directory: String,
    }
    let Ok(mut conn) = PgConnection::establish(&format!("{url}?connect_timeout=10")) else {
        return false;
    };
    diesel::sql_query("SELECT current_setting('data_directory') AS data_directory")
        .get_result::<Setting>(&mut conn)
        .is_ok_and(|s| Path::new(&s.data_directory) == data)
}

/// The account the server runs as: none (this user) unless we are root.
fn server_user() -> Result<Option<(u32, u32)>, String> {
    if !rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    let id = |name: &str, flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, name]).stderr(Stdio::null()).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok())?
    };
    ["postgres", "nobody"]
        .into_iter()
        .find_map(|name| Some((id(name, "-u")?, id(name, "-g")?)))
        .map(Some)
        .ok_or_else(|| {
            "running as root, and there is neither a `postgres` nor a `nobody` user to run PostgreSQL as"
                .into()
        })
}

/// `bin/<program>` as the server's user, in `cluster/`, without the caller's PG* variables.
fn server_command(dir: &Path, bin: &Path, program: &str, user: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(bin.join(program));
    cmd.current_dir(cluster_dir(dir)).stdin(Stdio::null());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PG") {
            cmd.env_remove(name);
        }
    }
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn run_checked(mut cmd: Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Stops what is left of the cluster in `dir` (if its postmaster still runs) and removes it.
/// Call with `lock` held.
fn stop_and_wipe(dir: &Path, bin: Option<&Path>, mode: &str) -> Result<(), String> {
    let data = data_dir(dir);
    if let Some(bin) = bin
        && postmaster_running(&data)
    {
        let user = server_user()?;
        let mut stop = server_command(dir, bin, "pg_ctl", user);
        stop.arg("stop").arg("-D").arg(&data).args(["-m", mode, "-w", "-t", "30"]);
        if run_checked(stop, "pg_ctl stop").is_err() {
            let mut stop = server_command(dir, bin, "pg_ctl", user);
            stop.arg("stop").arg("-D").arg(&data).args(["-m", "immediate", "-w", "-t", "30"]);
            let _ = stop.output();
        }
    }
    // Without a postmaster we could stop, the server notices its lock file gone and shuts down.
    let _ = std::fs::remove_file(dir.join("state"));
    match std::fs::remove_dir_all(cluster_dir(dir)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", cluster_dir(dir).display())),
    }
}

/// Whether the pid in `data/postmaster.pid` is a running `postgres` on `data` (per /proc; a pid
/// that was reused by another process, or a system without /proc, counts as not running, so that
/// nothing else ever gets a signal).
fn postmaster_running(data: &Path) -> bool {
    let Some(pid) = std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next()?.trim().parse::<u32>().ok())
    else {
        return false;
    };
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let data = data.as_os_str().as_encoded_bytes();
    args.first().is_some_and(|a| a.ends_with(b"postgres") || a.ends_with(b"postmaster"))
        && args.contains(&data)
}

/// A fresh cluster in `dir/cluster`: initdb, then pg_ctl start on a free loopback port. Call with
/// `lock` held.
fn start(dir: &Path, bin: &Path) -> Result<String, String> {
    let old_bin = read_state(dir).map(|s| s.bin);
    stop_and_wipe(dir, Some(old_bin.as_deref().unwrap_or(bin)), "immediate")?;
    let user = server_user()?;
    let cluster = cluster_dir(dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&cluster)
        .map_err(|e| format!("{}: {e}", cluster.display()))?;
    let owned = |path: &Path| -> Result<(), String> {
        match user {
            Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", path.display())),
            None => Ok(()),
        }
    };
    owned(&cluster)?;

    let mut secret = [0u8; 16];
    getrandom::fill(&mut secret).map_err(|e| format!("random password: {e}"))?;
    let password: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let pwfile = cluster.join("pwfile");
    std::fs::write(&pwfile, &password).map_err(|e| format!("{}: {e}", pwfile.display()))?;
    owned(&pwfile)?;

    let data = data_dir(dir);
    let mut initdb = server_command(dir, bin, "initdb", user);
    initdb
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        ])
        .arg(format!("--pwfile={}", pwfile.display()));
    let initialised = run_checked(initdb, &format!("initdb ({})", bin.join("initdb").display()));
    let _ = std::fs::remove_file(&pwfile);
    initialised?;

    // Throwaway: no durability, TCP on loopback only, the socket inside cluster/.
    let mut conf = OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .map_err(|e| format!("postgresql.conf: {e}"))?;
    writeln!(
        conf,
        "\n# ncf tests\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
         fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 400",
        cluster.display()
    )
    .map_err(|e| format!("postgresql.conf: {e}"))?;

    let log = cluster.join("postgres.log");
    let mut last_error = String::new();
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let mut pg_ctl = server_command(dir, bin, "pg_ctl", user);
        pg_ctl
            .arg("start")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o"])
            .arg(format!("-p {port}"));
        match run_checked(pg_ctl, "pg_ctl start") {
            Ok(()) => {
                let url = format!("postgres://postgres:{password}@127.0.0.1:{port}/postgres");
                write_state(dir, &State { url: url.clone(), bin: bin.to_path_buf() })?;
                return Ok(url);
            }
            Err(e) => {
                let server_log = std::fs::read_to_string(&log).unwrap_or_default();
                last_error = format!("{e}\nserver log:\n{server_log}");
                if !server_log.contains("could not bind") && !server_log.contains("in use") {
                    break;
                }
            }
        }
    }
    Err(format!("cannot start the throwaway PostgreSQL cluster in {}: {last_error}", cluster.display()))
}

/// Starts the watchdog unless one is alive; returns once it holds its lock. Call with `lock` held.
fn ensure_watchdog(dir: &Path) -> Result<(), String> {
    let file = open_lock(&dir.join("watchdog"))?;
    if !unheld(&file) {
        return Ok(());
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("watchdog.log"))
        .map_err(|e| format!("watchdog.log: {e}"))?;
    let program = crate::own_binary("ncf-test-postgres");
    let mut child = Command::new(&program)
        .arg("watch")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while unheld(&file) {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "the watchdog exited at once ({status}); see {}",
                dir.join("watchdog.log").display()
            ));
        }
        if Instant::now() > deadline {
            return Err("the watchdog did not start within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// The watchdog (`ncf-test-postgres watch <dir>`): stops the cluster once no test process has held
/// a lease for [`IDLE`], then exits. Exits at once if another watchdog is alive.
pub fn watch(dir: &Path) -> Result<(), String> {
    let me = open_lock(&dir.join("watchdog"))?;
    if flock(&me, FlockOperation::NonBlockingLockExclusive).is_err() {
        return Ok(());
    }
    let lock = open_lock(&dir.join("lock"))?;
    let users = open_lock(&dir.join("users"))?;
    let mut last_used = Instant::now();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        lock_file(&lock, FlockOperation::LockExclusive)?;
        if !unheld(&users) {
            last_used = Instant::now();
        } else if last_used.elapsed() >= IDLE {
            let bin = read_state(dir).map(|s| s.bin);
            let stopped = stop_and_wipe(dir, bin.as_deref(), "fast");
            // Give up the watchdog lock before `lock`, so that the next test starts a new watchdog.
            drop(me);
            drop(lock);
            return stopped;
        }
        lock_file(&lock, FlockOperation::Unlock)?;
    }
}

/// Stops the shared cluster now (`ncf-test-postgres stop`); tests using it will fail.
pub fn stop_now() -> Result<(), String> {
    let dir = state_dir()?;
    let lock = open_lock(&dir.join("lock"))?;
    lock_file(&lock, FlockOperation::LockExclusive)?;
    let bin = read_state(&dir).map(|s| s.bin);
    stop_and_wipe(&dir, bin.as_deref(), "fast")
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    fn fake_server(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for p in SERVER_PROGRAMS {
            std::fs::write(dir.join(p), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(dir.join(p), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    #[test]
    fn no_server_programs_names_the_package_and_the_alternative() {
        let empty = tempfile::tempdir().unwrap();
        let e = find_server_bin(Some(empty.path().into()), None, empty.path()).unwrap_err();
        assert!(e.contains(&format!("NCF_PG_BIN={}", empty.path().display())), "{e}");
        assert!(
            e.contains("apt-get install postgresql") && e.contains("TEST_DATABASE_URL=postgres://"),
            "{e}"
        );
        let e = find_server_bin(None, Some(empty.path().into()), empty.path()).unwrap_err();
        assert!(e.contains("PATH and"), "{e}");
    }

    #[test]
    fn newest_debian_version_wins_and_path_comes_first() {
        let root = tempfile::tempdir().unwrap();
        for v in ["9.6", "15", "16", "17"] {
            fake_server(&root.path().join(v).join("bin"));
        }
        std::fs::remove_file(root.path().join("17/bin/postgres")).unwrap(); // incomplete
        let found = find_server_bin(None, Some(OsStr::new("/nonexistent").into()), root.path()).unwrap();
        assert_eq!(found, root.path().join("16/bin"));

        // A PATH entry with symbolic links to an installation resolves to the installation.
        let links = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(root.path().join("15/bin/initdb"), links.path().join("initdb")).unwrap();
        let path = std::env::join_paths([Path::new("/nonexistent"), links.path()]).unwrap();
        let found = find_server_bin(None, Some(path), root.path()).unwrap();
        assert_eq!(found, std::fs::canonicalize(root.path().join("15/bin")).unwrap());

        // NCF_PG_BIN wins over both.
        let found = find_server_bin(Some(root.path().join("9.6/bin").into()), None, root.path()).unwrap();
        assert_eq!(found, root.path().join("9.6/bin"));
    }
}
