//! Storage: one diesel code path over two backends. An embedded SQLite file is the default (nothing
//! to install); a `postgres://` URL selects PostgreSQL. Each service embeds its own migrations, one
//! folder per backend under the same names.

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{self, ManageConnection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

/// Runs the same typed diesel code on whichever backend the connection is, for the few statements
/// the multi-backend type cannot express (upserts, COPY): `per_backend!(conn, c => query.execute(c))`.
#[macro_export]
macro_rules! per_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::DbConn::Sqlite($c) => $body,
            $crate::db::DbConn::Postgresql($c) => $body,
        }
    };
}

/// Inserts many rows with the same typed statement, at most 1,000 rows per statement: on
/// PostgreSQL each statement is a round trip, and on SQLite a multi-row statement is several times
/// cheaper than one per row. 1,000 rows keep within both backends' bind limits (65,535 and 32,766)
/// for up to 32 columns. On SQLite a row type must not hold "DEFAULT" values (an `Insertable` struct
/// with `Option` fields needs `#[diesel(treat_none_as_default_value = false)]`), or diesel falls
/// back to one statement per row. `$stmt` is written once and given a slice of rows as `$values`;
/// `?` in it returns from the caller.
#[macro_export]
macro_rules! insert_many {
    ($conn:expr, $rows:expr, |$c:ident, $values:ident| $stmt:expr) => {
        match $conn {
            $crate::db::DbConn::Postgresql($c) => {
                for $values in $rows.chunks(1000) {
                    $stmt?;
                }
            }
            $crate::db::DbConn::Sqlite($c) => {
                for $values in $rows.chunks(1000) {
                    $stmt?;
                }
            }
        }
    };
}

pub type Pool = r2d2::Pool<DbManager>;
pub type PooledConn = r2d2::PooledConnection<DbManager>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "unsupported database URL {0:?}: use a file path or sqlite://PATH for SQLite, or postgres://… for PostgreSQL"
    )]
    UnsupportedUrl(String),
    #[error("cannot create the database folder {path}: {source}")]
    Folder { path: String, source: std::io::Error },
    /// `reason` is the driver's own message on one line (e.g. `database "x" does not exist`).
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("migration failed: {0}")]
    Migration(String),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    /// `sqlite://PATH`, `sqlite:PATH` or a plain path select SQLite; `postgres://` or `postgresql://`
    /// select PostgreSQL; any other scheme is refused.
    pub fn parse(url: &str) -> Result<Self, DbError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_string()));
        }
        let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
        let has_other_scheme = path.split_once("://").is_some() || path.starts_with("file:");
        if path.is_empty() || path == ":memory:" || has_other_scheme {
            return Err(DbError::UnsupportedUrl(url.to_string()));
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

impl std::fmt::Display for DatabaseUrl {
    /// Never shows a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            Self::Postgres(u) => match (u.find("://"), u.rfind('@')) {
                (Some(s), Some(at)) if at > s => {
                    let creds = &u[s + 3..at];
                    let user = creds.split(':').next().unwrap_or("");
                    write!(f, "{}://{user}@{}", &u[..s], &u[at + 1..])
                }
                _ => f.write_str(u),
            },
        }
    }
}

impl DbConn {
    /// `sqlite` or `postgres`, as `DatabaseUrl::backend` names them.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgresql(_) => "postgres",
        }
    }
}

/// Opens connections for the pool; SQLite gets its pragmas on every connection.
#[derive(Debug)]
pub struct DbManager {
    url: DatabaseUrl,
}

/// `busy_timeout` comes first: switching a database into WAL mode takes a write lock, and a
/// connection opened while another process holds one (an initial import runs with a rollback
/// journal, see `national_server::imports`) should wait for it like any other write, not fail.
pub const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 15000; PRAGMA foreign_keys = ON; \
     PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;";

/// The `busy_timeout` [`SQLITE_PRAGMAS`] sets, in milliseconds.
pub const SQLITE_BUSY_TIMEOUT_MS: i32 = 15_000;

impl DbManager {
    pub fn new(url: DatabaseUrl) -> Self {
        Self { url }
    }
}

impl ManageConnection for DbManager {
    type Connection = DbConn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConn, r2d2::Error> {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                create_private(path).map_err(|e| {
                    r2d2::Error::ConnectionError(diesel::ConnectionError::BadConnection(format!(
                        "cannot create {}: {e}",
                        path.display()
                    )))
                })?;
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())
                    .map_err(r2d2::Error::ConnectionError)?;
                conn.batch_execute(SQLITE_PRAGMAS).map_err(r2d2::Error::QueryError)?;
                Ok(DbConn::Sqlite(conn))
            }
            DatabaseUrl::Postgres(url) => {
                let mut conn = PgConnection::establish(url).map_err(r2d2::Error::ConnectionError)?;
                // Stored times are UTC without zone; keep the session in UTC too.
                conn.batch_execute("SET TIME ZONE 'UTC'").map_err(r2d2::Error::QueryError)?;
                Ok(DbConn::Postgresql(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1").map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut DbConn) -> bool {
        false
    }
}

/// Connects a pool, creating the SQLite file's folder when needed. One connection is made first,
/// outside the pool, so that a failure ends here at once with the driver's own reason (r2d2 would
/// wait out its timeout and report only its last attempt). Fails within 5 s rather than r2d2's
/// default 30 s when the database goes away later.
pub fn connect(url: &DatabaseUrl, max_size: u32) -> Result<Pool, DbError> {
    drop(connect_one(url)?);
    r2d2::Pool::builder()
        .max_size(max_size)
        // Open connections on demand: many nodes (or tests) sharing one PostgreSQL server would
        // otherwise each hold `max_size` idle connections from the start.
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(5))
        .error_handler(Box::new(LogConnectError))
        .build(DbManager::new(url.clone()))
        .map_err(|e| DbError::Connect { url: url.to_string(), reason: one_line(&e) })
}

/// A single connection outside any pool (commands such as imports).
pub fn connect_one(url: &DatabaseUrl) -> Result<DbConn, DbError> {
    if let DatabaseUrl::Sqlite(path) = url {
        create_parent(path)?;
    }
    DbManager::new(url.clone())
        .connect()
        .map_err(|e| DbError::Connect { url: url.to_string(), reason: one_line(&e) })
}

/// The pool's failed connection attempts, in the service log (r2d2's default goes to the `log`
/// crate, as several lines when libpq's message has them).
#[derive(Debug)]
struct LogConnectError;

impl r2d2::HandleError<r2d2::Error> for LogConnectError {
    fn handle_error(&self, error: r2d2::Error) {
        tracing::error!(error = %one_line(&error), "database connection failed");
    }
}

/// An error's message on one line: libpq ends its messages with a newline and puts hints on
/// further lines, and the last line of a failed command should still say what went wrong.
pub fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Creates a missing SQLite database file with mode 0600 before SQLite opens it: the file holds
/// personal data, and SQLite gives its `-wal` and `-shm` files the database file's mode, whatever
/// the process umask. An existing file is left as it is.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn create_parent(path: &Path) -> Result<(), DbError> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir)
            .map_err(|source| DbError::Folder { path: dir.display().to_string(), source }),
        None => Ok(()),
    }
}

/// What both services' `/healthz` answer once their database took a real `SELECT 1`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    /// The backend: `sqlite` or `postgres`.
    pub database: &'static str,
}

/// Both services' health check: a connection from the pool and a real `SELECT 1` on it. Blocks
/// (up to the pool's 5 s), so call it off the async threads. The cause of a failure goes to the
/// log; the answer (for a 503) says only that the database is unreachable, since anyone may ask.
pub fn health(pool: &Pool) -> Result<Health, crate::federation::ErrorBody> {
    let checked = pool.get().map_err(|e| one_line(&e)).and_then(|mut conn| {
        conn.batch_execute("SELECT 1").map_err(|e| one_line(&e))?;
        Ok(conn.backend())
    });
    match checked {
        Ok(database) => Ok(Health { status: "ok", database }),
        Err(reason) => {
            tracing::error!(error = %reason, "health check: the database is not reachable");
            Err(crate::federation::ErrorBody {
                error: crate::contract::ErrorCode::Unavailable,
                message: "the database is not reachable".into(),
                mismatched: Vec::new(),
            })
        }
    }
}

/// Errors that may say "another writer holds the SQLite write lock".
pub trait MaybeBusy {
    fn is_busy(&self) -> bool;
}

impl MaybeBusy for diesel::result::Error {
    fn is_busy(&self) -> bool {
        matches!(self, diesel::result::Error::DatabaseError(_, info)
            if info.message().contains("database is locked") || info.message().contains("database table is locked"))
    }
}

/// Runs `f` in a transaction that writes. SQLite cannot wait for the write lock inside a
/// transaction that has already read (it answers "database is locked" at once, whatever the
/// busy timeout), so on that answer the whole transaction is run again from the start, with capped
/// backoff, for up to 15 s. PostgreSQL waits for row locks by itself and never gets here.
///
/// Only the outermost call retries. Called inside another transaction, `f` runs in a savepoint and
/// a busy answer goes straight up: the stale snapshot belongs to the outer transaction, so running
/// the savepoint again could never succeed and would only spin until the deadline.
pub fn write_transaction<T, E, F>(conn: &mut DbConn, mut f: F) -> Result<T, E>
where
    F: FnMut(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error> + MaybeBusy,
{
    if in_transaction(conn) {
        return conn.transaction(f);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut pause = Duration::from_millis(2);
    loop {
        match conn.transaction(&mut f) {
            Err(e) if e.is_busy() && std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            result => return result,
        }
    }
}

/// Whether `conn` is inside a transaction, by diesel's own count of open transactions and
/// savepoints. A broken transaction manager counts as inside: nothing should start there.
pub fn in_transaction(conn: &mut DbConn) -> bool {
    use diesel::connection::TransactionManager;
    !matches!(
        <DbConn as Connection>::TransactionManager::transaction_manager_status_mut(conn).transaction_depth(),
        Ok(None)
    )
}

/// Applies a service's pending migrations (one embedded set per backend, `const`s of the service);
/// returns the versions applied.
pub fn run_migrations(
    conn: &mut DbConn,
    sqlite: EmbeddedMigrations,
    postgres: EmbeddedMigrations,
) -> Result<Vec<String>, DbError> {
    let applied = match conn {
        DbConn::Sqlite(c) => c.run_pending_migrations(sqlite).map(versions),
        DbConn::Postgresql(c) => c.run_pending_migrations(postgres).map(versions),
    };
    applied.map_err(|e| DbError::Migration(e.to_string()))
}

fn versions(v: Vec<diesel::migration::MigrationVersion<'_>>) -> Vec<String> {
    v.into_iter().map(|v| v.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_follows_the_url_scheme() {
        assert_eq!(DatabaseUrl::parse("var/n.db").unwrap(), DatabaseUrl::Sqlite("var/n.db".into()));
        assert_eq!(DatabaseUrl::parse("sqlite://var/n.db").unwrap(), DatabaseUrl::Sqlite("var/n.db".into()));
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/n.db").unwrap(),
            DatabaseUrl::Sqlite("/tmp/n.db".into())
        );
        assert_eq!(DatabaseUrl::parse("postgres://u@h/db").unwrap().backend(), "postgres");
        assert_eq!(DatabaseUrl::parse("postgresql://u@h/db").unwrap().backend(), "postgres");
        for bad in ["mysql://u@h/db", "", ":memory:", "sqlite://", "http://x"] {
            let err = DatabaseUrl::parse(bad).unwrap_err().to_string();
            assert!(err.contains("unsupported database URL"), "{bad}: {err}");
        }
    }

    #[test]
    fn display_hides_the_password() {
        let url = DatabaseUrl::parse("postgres://ncf:s3cret@db.example:5432/ncf").unwrap();
        assert_eq!(url.to_string(), "postgres://ncf@db.example:5432/ncf");
    }

    #[test]
    #[cfg(unix)]
    fn new_sqlite_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let mut conn = connect_one(&DatabaseUrl::Sqlite(path.clone())).unwrap();
        conn.batch_execute("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1);").unwrap();
        for file in ["new.db", "new.db-wal", "new.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(file)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{file}");
        }
    }

    #[test]
    fn sqlite_connections_get_the_pragmas() {
        use diesel::RunQueryDsl;
        use diesel::sql_types::{BigInt, Text};
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = BigInt)]
            v: i64,
        }
        #[derive(diesel::QueryableByName)]
        struct Mode {
            #[diesel(sql_type = Text)]
            journal_mode: String,
        }
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::parse(&dir.path().join("a/b.db").to_string_lossy()).unwrap();
        let pool = connect(&url, 2).unwrap();
        let mut conn = pool.get().unwrap();
        let fk: Row = diesel::sql_query("SELECT foreign_keys AS v FROM pragma_foreign_keys")
            .get_result(&mut *conn)
            .unwrap();
        assert_eq!(fk.v, 1);
        let sync: Row = diesel::sql_query("SELECT synchronous AS v FROM pragma_synchronous")
            .get_result(&mut *conn)
            .unwrap();
        assert_eq!(sync.v, 1, "NORMAL");
        let busy: Row =
            diesel::sql_query("SELECT timeout AS v FROM pragma_busy_timeout").get_result(&mut *conn).unwrap();
        assert_eq!(busy.v, 15000);
        let mode: Mode = diesel::sql_query("PRAGMA journal_mode").get_result(&mut *conn).unwrap();
        assert_eq!(mode.journal_mode, "wal");
    }

    #[test]
    fn unreachable_postgres_fails_fast_with_the_reason() {
        let url = DatabaseUrl::parse("postgres://nobody@127.0.0.1:1/none").unwrap();
        for err in [connect_one(&url).err(), connect(&url, 2).err()] {
            let started = std::time::Instant::now();
            let err = err.expect("no server on port 1").to_string();
            assert!(err.starts_with("cannot connect to postgres://nobody@127.0.0.1:1/none: "), "{err}");
            assert!(err.contains("Connection refused") && !err.contains('\n'), "{err}");
            assert!(started.elapsed() < Duration::from_secs(5));
        }
    }

    #[test]
    fn one_line_joins_libpq_hint_lines() {
        let libpq = "connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n\tIs the server running on that host?\n";
        assert_eq!(
            one_line(&libpq),
            "connection to server at \"127.0.0.1\", port 1 failed: Connection refused Is the server running on that host?"
        );
    }

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }

    fn count(conn: &mut DbConn) -> Result<i64, diesel::result::Error> {
        use diesel::RunQueryDsl;
        diesel::sql_query("SELECT COUNT(*) AS n FROM t").get_result::<Count>(conn).map(|c| c.n)
    }

    /// SQLite: a transaction whose snapshot went stale cannot write ("database is locked" at once).
    /// The nested call must hand that up at once, not retry its savepoint until the deadline; the
    /// outermost call then runs the whole transaction again, and that succeeds.
    #[test]
    fn a_nested_write_transaction_does_not_retry_the_outermost_does() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::parse(&dir.path().join("n.db").to_string_lossy()).unwrap();
        let pool = connect(&url, 2).unwrap();
        let (mut a, mut other) = (pool.get().unwrap(), pool.get().unwrap());
        a.batch_execute("CREATE TABLE t (v INTEGER)").unwrap();
        assert!(!in_transaction(&mut a));
        let mut attempts = 0;
        let mut nested_took = Vec::new();
        let result = write_transaction(&mut a, |a| {
            attempts += 1;
            assert!(in_transaction(a));
            let seen = count(a)?; // this read fixes the transaction's snapshot
            if attempts == 1 {
                // Another writer commits after that snapshot.
                other.batch_execute("INSERT INTO t VALUES (1)").unwrap();
            }
            let started = std::time::Instant::now();
            let nested = write_transaction(a, |a| a.batch_execute("INSERT INTO t VALUES (2)"));
            nested_took.push(started.elapsed());
            if attempts == 1 {
                assert!(nested.as_ref().is_err_and(MaybeBusy::is_busy), "{nested:?}");
            }
            nested.map(|()| seen)
        });
        assert_eq!(result, Ok(1), "the retry saw the other writer's row");
        assert_eq!(attempts, 2);
        assert!(nested_took[0] < Duration::from_secs(1), "nested call spun for {:?}", nested_took[0]);
        assert_eq!(count(&mut a), Ok(2));
        assert!(!in_transaction(&mut a));
    }

    #[test]
    fn health_names_the_backend_or_says_the_database_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::parse(&dir.path().join("h.db").to_string_lossy()).unwrap();
        let up = health(&connect(&url, 1).unwrap()).unwrap();
        assert_eq!(
            serde_json::to_value(up).unwrap(),
            serde_json::json!({"status": "ok", "database": "sqlite"})
        );

        // A pool whose database is gone: nothing on port 1.
        let gone = r2d2::Pool::builder()
            .max_size(1)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_millis(200))
            .build_unchecked(DbManager::new(DatabaseUrl::parse("postgres://nobody@127.0.0.1:1/x").unwrap()));
        let body = health(&gone).unwrap_err();
        assert_eq!(
            (body.error.as_str(), body.message.as_str()),
            ("unavailable", "the database is not reachable")
        );
    }
}
