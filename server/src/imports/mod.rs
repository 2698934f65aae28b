//! Imports of outside data (DESIGN rule 7: registry and resident data only ever change by import).
//!
//! One driver serves both files: it checks the header, parses and validates rows on a reader thread
//! while the calling thread writes batches inside one transaction, and either commits everything or,
//! when any row is bad and `--accept-valid` was not given, rolls back and reports every bad row.

pub mod registry;
pub mod residents;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use diesel::prelude::*;
use ncf_shared::csvfile::LineIndex;
use ncf_shared::db::DbConn;
use ncf_shared::ids::ImportId;
use ncf_shared::licence::PersonName;
use sha2::{Digest, Sha256};

use crate::schema::imports;

/// Rows per batch handed from the reader thread to the writer.
const BATCH_ROWS: usize = 4096;

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Apply the good rows and write the bad ones to `rejects_path`.
    pub accept_valid: bool,
    /// Where `--accept-valid` writes rejected rows (default: FILE.rejects.csv).
    pub rejects_path: Option<PathBuf>,
}

/// One problem in one row. `column` is empty when the problem is the whole row. `line` is the
/// physical line the row starts on (the header is line 1), as an editor shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub column: &'static str,
    pub reason: String,
}

impl RowError {
    /// The reason is masked here, where every report of a row starts: a reason may quote a field,
    /// and in a shifted row any field may hold a My Number (rule 1).
    pub(crate) fn new(line: u64, column: &'static str, reason: &str) -> Self {
        Self { line, column, reason: ncf_shared::mask_my_numbers(reason).into_owned() }
    }
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.column.is_empty() {
            write!(f, "line {}: {}", self.line, self.reason)
        } else {
            write!(f, "line {}, column {}: {}", self.line, self.column, self.reason)
        }
    }
}

#[derive(Debug)]
pub struct ImportSummary {
    pub import_id: ImportId,
    pub rows_total: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Rows rejected (a row can have several errors).
    pub rows_rejected: u64,
    /// Every error of every rejected row.
    pub rejected: Vec<RowError>,
    pub rejects_file: Option<PathBuf>,
    pub elapsed: Duration,
}

impl ImportSummary {
    pub fn rows_per_second(&self) -> f64 {
        self.rows_total as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is empty: expected a UTF-8 CSV file starting with the header\n  {expected}")]
    Empty { path: String, expected: String },
    #[error(
        "{path} is not UTF-8 (line {line}): import files must be UTF-8 CSV; convert Shift_JIS files first, e.g. `iconv -f SHIFT_JIS -t UTF-8`"
    )]
    Encoding { path: String, line: u64 },
    #[error("{path} has the wrong header\n  expected: {expected}\n  found:    {found}")]
    Header { path: String, expected: String, found: String },
    #[error("{path}: {} bad row(s) out of {total}; nothing was imported (fix them, or use --accept-valid to apply the good rows)", .rows.len())]
    Rejected { path: String, total: u64, rows: Vec<RowError> },
    #[error("cannot write the rejects file {path}: {source}")]
    RejectsFile { path: String, source: std::io::Error },
    #[error("database error during import: {0}")]
    Database(#[from] diesel::result::Error),
}

/// Collects the problems of one row, field by field.
pub(crate) struct RowCheck {
    line: u64,
    errors: Vec<RowError>,
}

impl RowCheck {
    pub(crate) fn new(line: u64) -> Self {
        Self { line, errors: Vec::new() }
    }
    pub(crate) fn fail(&mut self, column: &'static str, reason: impl Into<String>) {
        self.errors.push(RowError::new(self.line, column, &reason.into()));
    }
    pub(crate) fn check<T, E: std::fmt::Display>(
        &mut self,
        column: &'static str,
        r: Result<T, E>,
    ) -> Option<T> {
        r.map_err(|e| self.fail(column, e.to_string())).ok()
    }
    pub(crate) fn name(&mut self, column: &'static str, value: &str) -> Option<String> {
        self.check(column, PersonName::check(value)).map(|()| value.to_string())
    }
    pub(crate) fn kana(&mut self, column: &'static str, value: &str) -> Option<String> {
        self.check(column, PersonName::check_kana(value)).map(|()| value.to_string())
    }
    pub(crate) fn date(&mut self, column: &'static str, value: &str) -> Option<NaiveDate> {
        self.check(column, ncf_shared::time::parse_date(value).map_err(|e| format!("{e}: {value:?}")))
    }
    pub(crate) fn finish<T>(self, row: Option<T>) -> Result<T, Vec<RowError>> {
        match row {
            Some(row) if self.errors.is_empty() => Ok(row),
            _ => Err(self.errors),
        }
    }
}

/// What a file format contributes to the driver: its header and how to validate one row.
pub(crate) trait RowParser: Send {
    type Row: Send;
    const KIND: &'static str;
    const HEADER: &'static [&'static str];
    /// Column whose clear value must never be copied into a rejects file (the My Number), masked
    /// whatever it holds; My Numbers in other columns are masked too.
    const SECRET_COLUMN: usize;
    fn parse(&mut self, fields: &[&str], line: u64) -> Result<Self::Row, Vec<RowError>>;
}

/// Where the rows go: a `Merge` into one table, plus anything to do per batch and at the end.
pub(crate) trait ImportTarget<Row> {
    type Table: MergeTable;
    /// The row as the merge expects it (see `Encoding`).
    fn encoded<'r>(&self, row: &'r Row) -> &'r EncodedRow;
    /// Sees each batch before it is written.
    fn observe(&mut self, _rows: &[Row]) {}
    /// Runs after the last batch, in the same transaction.
    fn finish(&mut self, _conn: &mut DbConn, _import_id: &ImportId) -> QueryResult<()> {
        Ok(())
    }
}

/// Reads `Read` while hashing it, so the file's SHA-256 is recorded without a second pass, and
/// indexing its lines, so each row is reported at the line an editor shows.
struct SourceReader<R> {
    inner: R,
    hasher: Sha256,
    lines: LineIndex,
}

impl<R: Read> Read for SourceReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.lines.feed(&buf[..n]);
        Ok(n)
    }
}

struct ReadOutcome {
    total: u64,
    errors: Vec<RowError>,
    /// Bad rows as read, for the rejects file (only kept with --accept-valid).
    rejected_rows: Vec<(u64, Vec<String>)>,
    sha256: String,
}

enum TxFailure {
    Db(diesel::result::Error),
    Read(std::io::Error),
    Encoding(u64),
    Rejected(u64, Vec<RowError>),
    RejectsFile(PathBuf, std::io::Error),
}

impl From<diesel::result::Error> for TxFailure {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e)
    }
}

pub(crate) fn run_import<P, T>(
    conn: &mut DbConn,
    path: &Path,
    parser: P,
    target: &mut T,
    import_id: ImportId,
    options: &ImportOptions,
) -> Result<ImportSummary, ImportError>
where
    P: RowParser,
    T: ImportTarget<P::Row>,
{
    let started = Instant::now();
    let shown = path.display().to_string();
    let expected = P::HEADER.join(",");
    let file =
        std::fs::File::open(path).map_err(|source| ImportError::Read { path: shown.clone(), source })?;
    let source = SourceReader {
        inner: std::io::BufReader::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
        lines: LineIndex::new(),
    };
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(source);

    let header = reader.byte_headers().map_err(|e| csv_read_error(&shown, e))?.clone();
    if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
        return Err(ImportError::Empty { path: shown, expected });
    }
    let header_text: Vec<&str> = header
        .iter()
        .map(std::str::from_utf8)
        .collect::<Result<_, _>>()
        .map_err(|_| ImportError::Encoding { path: shown.clone(), line: 1 })?;
    let first = header_text[0].trim_start_matches('\u{feff}');
    let found: Vec<&str> = std::iter::once(first).chain(header_text[1..].iter().copied()).collect();
    if found != P::HEADER {
        // A file without a header starts with a data row: its My Number must not be shown.
        let found = ncf_shared::mask_my_numbers(&found.join(",")).into_owned();
        return Err(ImportError::Header { path: shown, expected, found });
    }

    if let DbConn::Sqlite(c) = conn {
        // A bulk load into B-trees in random key order: without a large page cache every insert
        // spills pages to the WAL again and again. 1 GiB (the anchor's setting) keeps the working
        // set in memory for this connection.
        use diesel::connection::SimpleConnection;
        c.batch_execute("PRAGMA cache_size = -1048576; PRAGMA threads = 2;")?;
    }
    // SQLite cannot drop a constraint for an initial load as PostgreSQL does (`Merge::begin`), and
    // its per-row check of `import_id REFERENCES imports` costs 1.5 s per 3 million rows, a sixth
    // of the load. Every row carries this import's id, inserted first in the same transaction, so
    // the constraint holds by construction; the check is off for the load only (it can only be
    // switched outside a transaction) and back on after it, failed or not (a panic ends the
    // command and its connection). The load's `finish` also writes residents, person_status,
    // told_status, provisions, node_events, transfers, erasures and reminders in that window:
    // their only foreign keys today are `import_id → imports`, set to this import. A foreign key
    // added to any of them must be checked here too (`PRAGMA foreign_key_check`).
    let unchecked = matches!(conn, DbConn::Sqlite(_)) && T::Table::MERGE.count(conn)? == 0;
    if unchecked {
        diesel::sql_query("PRAGMA foreign_keys = OFF").execute(conn)?;
    }
    // An initial load writes the whole table at once. In WAL mode every page is written twice (into
    // the WAL at commit, then into the database at the checkpoint after it), a third of the load's
    // time. A rollback journal writes each new page once and journals only the few pages that
    // existed before, so a crash still rolls the load back whole (with `synchronous = FULL`, a
    // power loss too). SQLite leaves WAL mode only when no other connection has the database open
    // (a `serve` running beside the first import keeps WAL, and the load is merely slower); WAL is
    // restored after the load, failed or not. The price: during such a load, a process that opens
    // the database waits for it (up to `busy_timeout`, 15 s) instead of reading beside it. It only
    // happens while a table is filled for the first time, at installation.
    let journal_switched = unchecked && leave_wal(conn);
    let accept_valid = options.accept_valid;
    let failed = AtomicBool::new(false);
    let (tx, rx) = mpsc::sync_channel::<Vec<P::Row>>(4);
    let started_at = ncf_shared::time::now_utc();
    let file_name = path
        .file_name()
        .map(|n| ncf_shared::mask_my_numbers(&n.to_string_lossy()).into_owned())
        .unwrap_or_default();

    let result = std::thread::scope(|scope| {
        let failed = &failed;
        let reader_thread = scope.spawn(move || read_rows(reader, parser, tx, failed, accept_valid));
        conn.transaction::<_, TxFailure, _>(|conn| {
            diesel::insert_into(imports::table)
                .values((
                    imports::id.eq(import_id.as_str()),
                    imports::kind.eq(P::KIND),
                    imports::file_name.eq(&file_name),
                    imports::file_sha256.eq(""),
                    imports::mode.eq(if accept_valid { "accept_valid" } else { "all_or_nothing" }),
                    imports::started_at.eq(started_at),
                ))
                .execute(conn)?;
            let merge = T::Table::MERGE;
            let before = merge.count(conn)?;
            // Initial load into an empty table: append without the indexes and build them once at
            // the end (sorted builds instead of millions of random B-tree inserts). Rows are
            // unique within a file (the parser rejects duplicates), so this equals the upsert.
            let bulk = before == 0;
            let run = MergeRun::<T::Table>::begin(conn, bulk)?;
            let mut affected = 0u64;
            for batch in rx {
                // In all-or-nothing mode a bad row dooms the import: keep draining so the reader can
                // report every bad row, but stop writing.
                if !failed.load(Ordering::Relaxed) {
                    target.observe(&batch);
                    affected += run.apply(conn, batch.iter().map(|r| target.encoded(r)))? as u64;
                }
            }
            let outcome = match reader_thread.join() {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(ReadFailure::Io(e))) => return Err(TxFailure::Read(e)),
                Ok(Err(ReadFailure::Encoding(line))) => return Err(TxFailure::Encoding(line)),
                Err(panic) => std::panic::resume_unwind(panic),
            };
            if !accept_valid && !outcome.errors.is_empty() {
                return Err(TxFailure::Rejected(outcome.total, outcome.errors));
            }
            // Written before commit: if the rejects cannot be saved, nothing is applied either.
            let rejects_file = if outcome.rejected_rows.is_empty() {
                None
            } else {
                let target_path = options.rejects_path.clone().unwrap_or_else(|| default_rejects_path(path));
                write_rejects::<P>(&target_path, &outcome)
                    .map_err(|e| TxFailure::RejectsFile(target_path.clone(), e))?;
                Some(target_path)
            };
            tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "rows written");
            affected += run.finish(conn)? as u64;
            tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "rows merged, indexes built");
            target.finish(conn, &import_id)?;
            let after = merge.count(conn)?;
            let inserted = (after - before).max(0) as u64;
            let valid = outcome.total - outcome.rejected_rows.len() as u64;
            let counts = (inserted, affected.saturating_sub(inserted), valid.saturating_sub(affected));
            let rejected = error_rows(&outcome.errors);
            diesel::update(imports::table.find(import_id.as_str()))
                .set((
                    imports::file_sha256.eq(&outcome.sha256),
                    imports::finished_at.eq(ncf_shared::time::now_utc()),
                    imports::rows_total.eq(outcome.total as i64),
                    imports::rows_inserted.eq(counts.0 as i64),
                    imports::rows_updated.eq(counts.1 as i64),
                    imports::rows_unchanged.eq(counts.2 as i64),
                    imports::rows_rejected.eq(rejected as i64),
                ))
                .execute(conn)?;
            Ok((outcome, counts, rejects_file))
        })
    });

    // Restored whatever happened, and a restore that fails does not turn a committed import into
    // a failed one: both settings belong to this connection, which the command closes next, and
    // every new connection sets them again (`SQLITE_PRAGMAS`).
    if unchecked && let Err(e) = diesel::sql_query("PRAGMA foreign_keys = ON").execute(conn) {
        tracing::warn!(error = %e, "could not switch foreign-key checks back on for this connection");
    }
    if journal_switched {
        use diesel::connection::SimpleConnection;
        if let Err(e) = conn.batch_execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL") {
            tracing::warn!(error = %e, "could not restore WAL mode; the next connection will");
        }
    }
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "import transaction ended");
    let (outcome, (inserted, updated, unchanged), rejects_file) = match result {
        Ok(ok) => ok,
        Err(TxFailure::Db(e)) => return Err(ImportError::Database(e)),
        Err(TxFailure::Read(source)) => return Err(ImportError::Read { path: shown, source }),
        Err(TxFailure::Encoding(line)) => return Err(ImportError::Encoding { path: shown, line }),
        Err(TxFailure::Rejected(total, rows)) => {
            return Err(ImportError::Rejected { path: shown, total, rows });
        }
        Err(TxFailure::RejectsFile(p, source)) => {
            return Err(ImportError::RejectsFile { path: p.display().to_string(), source });
        }
    };

    Ok(ImportSummary {
        import_id,
        rows_total: outcome.total,
        inserted,
        updated,
        unchanged,
        rows_rejected: outcome.rejected_rows.len() as u64,
        rejected: outcome.errors,
        rejects_file,
        elapsed: started.elapsed(),
    })
}

enum ReadFailure {
    Io(std::io::Error),
    Encoding(u64),
}

fn read_rows<P: RowParser, R: Read>(
    mut reader: csv::Reader<SourceReader<R>>,
    mut parser: P,
    tx: mpsc::SyncSender<Vec<P::Row>>,
    failed: &AtomicBool,
    keep_rejected: bool,
) -> Result<ReadOutcome, ReadFailure> {
    let mut record = csv::ByteRecord::new();
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    let mut outcome =
        ReadOutcome { total: 0, errors: Vec::new(), rejected_rows: Vec::new(), sha256: String::new() };
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => match e.into_kind() {
                csv::ErrorKind::Io(io) => return Err(ReadFailure::Io(io)),
                csv::ErrorKind::Utf8 { pos, .. } => {
                    let line = pos.map_or(0, |p| reader.get_mut().lines.record_line(p.byte()));
                    return Err(ReadFailure::Encoding(line));
                }
                other => {
                    return Err(ReadFailure::Io(std::io::Error::other(format!("{other:?}"))));
                }
            },
        }
        // Not `Position::line()`: see `LineIndex` for why it is not the line an editor shows.
        let line = record.position().map_or(0, |p| reader.get_mut().lines.record_line(p.byte()));
        outcome.total += 1;
        let mut fields: Vec<&str> = Vec::with_capacity(P::HEADER.len());
        let mut row_errors = Vec::new();
        if record.len() != P::HEADER.len() {
            let reason = format!("expected {} columns, found {}", P::HEADER.len(), record.len());
            row_errors.push(RowError::new(line, "", &reason));
        } else {
            for raw in record.iter() {
                // A field that is not UTF-8 means the whole file has the wrong encoding (typically
                // Shift_JIS): refuse the file instead of reporting every row.
                fields.push(std::str::from_utf8(raw).map_err(|_| ReadFailure::Encoding(line))?);
            }
        }
        let parsed =
            if row_errors.is_empty() { parser.parse(&fields, line).map_err(Some) } else { Err(None) };
        match parsed {
            Ok(row) => {
                batch.push(row);
                if batch.len() == BATCH_ROWS {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
                    if tx.send(full).is_err() {
                        // The writer gave up (database error); it reports why.
                        break;
                    }
                }
            }
            Err(errors) => {
                row_errors.extend(errors.unwrap_or_default());
                if !keep_rejected {
                    failed.store(true, Ordering::Relaxed);
                } else {
                    let raw = record.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect();
                    outcome.rejected_rows.push((line, raw));
                }
                outcome.errors.extend(row_errors);
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(batch);
    }
    drop(tx);
    // Finish reading to the end so the hash covers the whole file even after an early stop.
    let mut rest = reader.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(ReadFailure::Io)?;
    outcome.sha256 = ncf_shared::encoding::hex(&rest.hasher.finalize());
    Ok(outcome)
}

/// Switches an SQLite connection from WAL to a rollback journal, if no other connection has the
/// database open; says whether it did.
fn leave_wal(conn: &mut DbConn) -> bool {
    #[derive(QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
    #[derive(QueryableByName)]
    struct Timeout {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        timeout: i32,
    }
    // SQLite answers with the mode in force: still "wal" (or SQLITE_BUSY) when others are reading.
    // Asked without waiting: a busy database is an answer, not something to wait 15 s for.
    let waited = diesel::sql_query("PRAGMA busy_timeout")
        .get_result::<Timeout>(conn)
        .map_or(ncf_shared::db::SQLITE_BUSY_TIMEOUT_MS, |t| t.timeout);
    let _ = diesel::sql_query("PRAGMA busy_timeout = 0").execute(conn);
    let switched = diesel::sql_query("PRAGMA journal_mode = DELETE").get_result::<Mode>(conn);
    let _ = diesel::sql_query(format!("PRAGMA busy_timeout = {waited}")).execute(conn);
    match switched {
        Ok(m) if m.journal_mode.eq_ignore_ascii_case("delete") => {
            // `synchronous = NORMAL` is safe against power loss in WAL mode only; with a rollback
            // journal, FULL is (a few more fsyncs for the whole load).
            if let Err(e) = diesel::sql_query("PRAGMA synchronous = FULL").execute(conn) {
                tracing::warn!(error = %e, "could not set synchronous = FULL; staying in WAL mode");
                use diesel::connection::SimpleConnection;
                let _ = conn.batch_execute("PRAGMA journal_mode = WAL");
                return false;
            }
            tracing::info!("initial load with a rollback journal; WAL mode is restored after it");
            true
        }
        Ok(m) => {
            tracing::info!(mode = %m.journal_mode, "other connections are open: the initial load stays in WAL mode");
            false
        }
        Err(e) => {
            tracing::info!(error = %e, "other connections are open: the initial load stays in WAL mode");
            false
        }
    }
}

fn error_rows(errors: &[RowError]) -> usize {
    let mut lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
    lines.dedup();
    lines.len()
}

fn csv_read_error(path: &str, e: csv::Error) -> ImportError {
    match e.into_kind() {
        csv::ErrorKind::Io(source) => ImportError::Read { path: path.to_string(), source },
        csv::ErrorKind::Utf8 { pos, .. } => {
            ImportError::Encoding { path: path.to_string(), line: pos.map(|p| p.line()).unwrap_or(1) }
        }
        other => {
            ImportError::Read { path: path.to_string(), source: std::io::Error::other(format!("{other:?}")) }
        }
    }
}

pub fn default_rejects_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".rejects.csv");
    path.with_file_name(name)
}

/// Rejected rows with their line and reasons (the operator fixes the source file at those lines and
/// re-imports it; re-importing unchanged rows changes nothing). Every My Number is masked: the
/// My Number column whatever it holds, and any valid one in any other cell, since in a row with a
/// missing or extra field it stands elsewhere. Cells are made spreadsheet-safe, as the file is
/// meant to be opened in one.
fn write_rejects<P: RowParser>(path: &Path, outcome: &ReadOutcome) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    // The mode above applies only to a new file: a rejects file left from an earlier run (or made
    // by someone else's umask) is made private too, before a row is written to it.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    // Flexible: a rejected row may have the wrong number of columns.
    let mut out = csv::WriterBuilder::new().flexible(true).from_writer(std::io::BufWriter::new(file));
    let mut header = vec!["line", "errors"];
    header.extend_from_slice(P::HEADER);
    ncf_shared::csvfile::write_record(&mut out, &header)?;
    for (line, raw) in &outcome.rejected_rows {
        let reasons: Vec<String> =
            outcome
                .errors
                .iter()
                .filter(|e| e.line == *line)
                .map(|e| {
                    if e.column.is_empty() { e.reason.clone() } else { format!("{}: {}", e.column, e.reason) }
                })
                .collect();
        let mut row = vec![line.to_string(), reasons.join("; ")];
        for (i, field) in raw.iter().enumerate() {
            row.push(if i == P::SECRET_COLUMN { "*".repeat(field.chars().count()) } else { field.clone() });
        }
        ncf_shared::csvfile::write_record(
            &mut out,
            row.iter().map(|cell| ncf_shared::mask_my_numbers(cell)),
        )?;
    }
    out.flush()
}

/// Column kinds of a merge: what `RowBuf` must have encoded for each column (checked row by row
/// on SQLite, where a field of the wrong kind would bind to the wrong placeholder).
#[derive(Clone, Copy)]
pub(crate) enum Col {
    Text,
    /// Bytes (`bytea`, `BLOB`).
    Bytes,
    /// `YYYY-MM-DD` (already validated).
    Date,
    SmallInt,
    BigInt,
}

/// Where a PostgreSQL `COPY` of one batch goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum CopyInto {
    /// The target table itself (initial load: nothing to merge with).
    Table,
    /// The import's temporary staging table, merged into the target once at the end.
    Staging,
}

/// A `COPY … FROM STDIN` (text format) of already encoded lines into the target table or its
/// staging table. One function per target, as diesel's `COPY` names its table by type.
pub(crate) type CopyFn = fn(&mut diesel::PgConnection, CopyInto, &[u8]) -> QueryResult<usize>;

/// Copies text-format lines into `$table` (all its columns, by name). A macro, not a function:
/// diesel's `COPY` types are generic over the table in ways a function bound cannot name.
macro_rules! copy_text {
    ($conn:expr, $table:expr, $data:expr) => {{
        let data: &[u8] = $data;
        diesel::copy_from($table)
            .from_raw_data($table, |out: &mut dyn std::io::Write| {
                out.write_all(data).map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
            })
            .with_format(diesel::pg::CopyFormat::Text)
            .execute($conn)
    }};
}
pub(crate) use copy_text;

/// A table an import merges into. Its type keys the statements SQLite keeps for an import
/// (`SqliteRow`), so one type has one `Merge` and so one statement per mode.
pub(crate) trait MergeTable: 'static {
    const MERGE: &'static Merge;
}

/// Bulk idempotent upsert of an import's rows into one table. A row is only touched, and
/// re-stamped with the import id, when something in it differs, so re-imports change nothing.
/// All compared columns are NOT NULL, so `<>` is exact. The last column is `import_id`; the first
/// `key` columns are the conflict target (a unique index).
///
/// - SQLite: each row is bound, field by field, to one prepared `INSERT … VALUES (?, …)` (with
///   `ON CONFLICT DO UPDATE … WHERE <a compared column differs>` unless this is an initial load)
///   that the connection keeps for the whole import. SQLite runs in this process, so a row costs a
///   call, not a round trip; binding is cheaper than any batch encoding SQLite must take apart
///   again (JSON batches expanded by `jsonb_each` cost 120 ns a field).
/// - PostgreSQL: each batch is `COPY`ed in text format, the database's fastest way in: straight
///   into the table on an initial load, otherwise into a temporary staging table that one
///   `INSERT … SELECT … ON CONFLICT` merges at the end.
///
/// On an initial load (empty table) the indexes are dropped first and built once at the end
/// (sorted builds instead of millions of random B-tree inserts). Rows are unique within a file
/// (the parsers reject duplicates), so appending equals the upsert there.
pub(crate) struct Merge {
    pub table: &'static str,
    pub columns: &'static [(&'static str, Col)],
    pub key: usize,
    /// The table's indexes (name, definition) exactly as its migration creates them; a test checks
    /// that a bulk load leaves the same indexes behind.
    pub indexes: &'static [(&'static str, &'static str)],
    /// PostgreSQL's name for the table's `import_id REFERENCES imports (id)` constraint. Its
    /// trigger checks every row one by one (3 s a million rows, as long as the `COPY` itself), so
    /// an initial load drops it and adds it back at the end, which checks all rows in one join.
    pub import_fk: &'static str,
    pub copy: CopyFn,
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// How the reader thread encodes each validated row for the writer (it has time to spare; the
/// writer holds the transaction).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Encoding {
    /// The fields kept apart, typed, for binding to SQLite's prepared statement.
    Binds,
    /// One line of PostgreSQL's `COPY` text format.
    CopyText,
}

impl Encoding {
    pub fn for_conn(conn: &DbConn) -> Self {
        match conn {
            DbConn::Postgresql(_) => Self::CopyText,
            DbConn::Sqlite(_) => Self::Binds,
        }
    }
}

/// A validated row as `RowBuf` encoded it, in `Merge::columns` order.
#[derive(Debug)]
pub(crate) struct EncodedRow {
    /// `CopyText`: the whole line. `Binds`: the text fields one after the other.
    text: String,
    /// `Binds`: the binary fields one after the other.
    bytes: Vec<u8>,
    /// `Binds`: each field, pointing into `text` or `bytes`.
    fields: Vec<Field>,
}

#[derive(Debug)]
enum Field {
    Text(u32, u32),
    Bytes(u32, u32),
    Int(i64),
}

impl EncodedRow {
    /// Whether the fields are, one by one, of the kinds `columns` hold. Checked for every row on
    /// SQLite: a row encoded for another table would otherwise fail deep inside SQLite or, one
    /// integer short, silently bind the previous row's value (a reset keeps integer binds).
    fn fits(&self, columns: &[(&str, Col)]) -> bool {
        self.fields.len() == columns.len()
            && self.fields.iter().zip(columns).all(|(field, (_, col))| {
                matches!(
                    (field, col),
                    (Field::Text(..), Col::Text | Col::Date)
                        | (Field::Bytes(..), Col::Bytes)
                        | (Field::Int(_), Col::SmallInt | Col::BigInt)
                )
            })
    }
}

/// An import's merge into `M` in progress: knows the backend and whether this is an initial load.
pub(crate) struct MergeRun<M> {
    postgres: bool,
    bulk: bool,
    /// SQLite's statement for one row, before and after its placeholders, built once per import.
    sqlite_sql: (String, String),
    table: std::marker::PhantomData<M>,
}

/// One row's `INSERT` on SQLite. Its query id is `K`, a table and a mode (`Append`, `Upsert`),
/// which fix the SQL: diesel prepares the statement once per connection and then only binds and
/// steps it for each row.
struct SqliteRow<'a, K> {
    sql: &'a (String, String),
    row: &'a EncodedRow,
    key: std::marker::PhantomData<K>,
}

/// `SqliteRow` keys: the same target's initial load and merge are different statements.
enum Append {}
enum Upsert {}

impl<K: 'static> diesel::query_builder::QueryId for SqliteRow<'_, K> {
    type QueryId = K;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<K> diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite> for SqliteRow<'_, K> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Binary, Text};
        let row = self.row;
        out.push_sql(&self.sql.0);
        for (i, field) in row.fields.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            match field {
                Field::Text(a, b) => out.push_bind_param::<Text, str>(&row.text[*a as usize..*b as usize])?,
                Field::Bytes(a, b) => {
                    out.push_bind_param::<Binary, [u8]>(&row.bytes[*a as usize..*b as usize])?
                }
                Field::Int(n) => out.push_bind_param::<BigInt, i64>(n)?,
            }
        }
        out.push_sql(&self.sql.1);
        Ok(())
    }
}

impl<K> RunQueryDsl<diesel::SqliteConnection> for SqliteRow<'_, K> {}

impl Merge {
    pub fn count(&self, conn: &mut DbConn) -> QueryResult<i64> {
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {}", self.table))
            .get_result::<Count>(conn)
            .map(|c| c.n)
    }

    pub fn drop_indexes(&self, conn: &mut DbConn) -> QueryResult<()> {
        for (name, _) in self.indexes {
            diesel::sql_query(format!("DROP INDEX {name}")).execute(conn)?;
        }
        Ok(())
    }

    pub fn create_indexes(&self, conn: &mut DbConn) -> QueryResult<()> {
        for (_, definition) in self.indexes {
            diesel::sql_query(*definition).execute(conn)?;
        }
        Ok(())
    }

    fn staging(&self) -> String {
        format!("{}_incoming", self.table)
    }

    fn names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|(n, _)| *n).collect()
    }

    /// `INSERT INTO <table> (<every column>)`: the start of every statement that writes rows.
    fn insert_into(&self) -> String {
        format!("INSERT INTO {} ({})", self.table, self.names().join(", "))
    }

    /// `INSERT … <select> ON CONFLICT …`, `select` giving the rows (PostgreSQL's staged merge).
    fn upsert_sql(&self, select: &str) -> String {
        format!("{} {select} {}", self.insert_into(), self.conflict_clause())
    }

    /// `ON CONFLICT (<key>) DO UPDATE SET … WHERE <a compared column differs>`: the upsert on
    /// both backends.
    fn conflict_clause(&self) -> String {
        let names = self.names();
        let compared = &names[self.key..names.len() - 1];
        let set: Vec<String> = names[self.key..].iter().map(|c| format!("{c} = excluded.{c}")).collect();
        let differs: Vec<String> =
            compared.iter().map(|c| format!("{t}.{c} <> excluded.{c}", t = self.table)).collect();
        format!(
            "ON CONFLICT ({key}) DO UPDATE SET {set} WHERE {differs}",
            key = names[..self.key].join(", "),
            set = set.join(", "),
            differs = differs.join(" OR "),
        )
    }

    /// SQLite's statement for one row: the SQL before its placeholders and after them.
    fn sqlite_sql(&self, bulk: bool) -> (String, String) {
        let head = format!("{} VALUES (", self.insert_into());
        let tail = if bulk { ")".to_string() } else { format!(") {}", self.conflict_clause()) };
        (head, tail)
    }
}

impl<M: MergeTable> MergeRun<M> {
    /// Starts the merge inside the import's transaction: an initial load drops the indexes; a
    /// merge on PostgreSQL makes its staging table (gone at commit or rollback).
    pub fn begin(conn: &mut DbConn, bulk: bool) -> QueryResult<Self> {
        let merge = M::MERGE;
        let postgres = matches!(conn, DbConn::Postgresql(_));
        if bulk {
            merge.drop_indexes(conn)?;
            if postgres {
                diesel::sql_query(format!("ALTER TABLE {} DROP CONSTRAINT {}", merge.table, merge.import_fk))
                    .execute(conn)?;
            }
        } else if postgres {
            diesel::sql_query(format!(
                "CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP",
                merge.staging(),
                merge.table
            ))
            .execute(conn)?;
        }
        let sqlite_sql = if postgres { Default::default() } else { merge.sqlite_sql(bulk) };
        Ok(Self { postgres, bulk, sqlite_sql, table: std::marker::PhantomData })
    }

    /// Writes one batch of encoded rows; returns how many were inserted or changed so far known
    /// (a staged batch counts when `finish` merges it).
    pub fn apply<'a>(
        &self,
        conn: &mut DbConn,
        rows: impl Iterator<Item = &'a EncodedRow>,
    ) -> QueryResult<usize> {
        let merge = M::MERGE;
        match conn {
            DbConn::Postgresql(pg) => {
                let mut data = Vec::with_capacity(BATCH_ROWS * 160);
                for row in rows {
                    data.extend_from_slice(row.text.as_bytes());
                }
                let into = if self.bulk { CopyInto::Table } else { CopyInto::Staging };
                let copied = (merge.copy)(pg, into, &data)?;
                Ok(if self.bulk { copied } else { 0 })
            }
            DbConn::Sqlite(sqlite) => {
                let sql = &self.sqlite_sql;
                let mut affected = 0;
                for row in rows {
                    if !row.fits(merge.columns) {
                        return Err(diesel::result::Error::QueryBuilderError(
                            format!("a row encoded for {} has fields of other kinds: {row:?}", merge.table)
                                .into(),
                        ));
                    }
                    affected += if self.bulk {
                        SqliteRow::<(M, Append)> { sql, row, key: Default::default() }.execute(sqlite)?
                    } else {
                        SqliteRow::<(M, Upsert)> { sql, row, key: Default::default() }.execute(sqlite)?
                    };
                }
                Ok(affected)
            }
        }
    }

    /// Ends the merge: merges the staged rows (PostgreSQL; returns how many were inserted or
    /// changed) and rebuilds the indexes after an initial load.
    pub fn finish(self, conn: &mut DbConn) -> QueryResult<usize> {
        let merge = M::MERGE;
        let mut affected = 0;
        if self.postgres && !self.bulk {
            let staging = merge.staging();
            let names = merge.names();
            // Unchanged rows (most of a re-import) are dropped by one anti-join before the
            // upsert, instead of each costing an index probe and a speculative insertion. The join
            // is on the key alone, the other columns a row comparison the planner cannot turn into
            // join keys: a hash join on the key, not a sort of both tables by every column.
            let key = merge.key;
            let on: Vec<String> = names[..key].iter().map(|c| format!("t.{c} = s.{c}")).collect();
            let rest = &names[key..names.len() - 1];
            let row =
                |alias: &str| rest.iter().map(|c| format!("{alias}.{c}")).collect::<Vec<_>>().join(", ");
            let columns: Vec<String> = names.iter().map(|c| format!("s.{c}")).collect();
            let select = format!(
                "SELECT {} FROM {staging} s WHERE NOT EXISTS (SELECT 1 FROM {} t WHERE {} AND ({}) IS NOT DISTINCT FROM ({}))",
                columns.join(", "),
                merge.table,
                on.join(" AND "),
                row("t"),
                row("s"),
            );
            diesel::sql_query(format!("ANALYZE {staging}")).execute(conn)?;
            affected = diesel::sql_query(merge.upsert_sql(&select)).execute(conn)?;
            diesel::sql_query(format!("DROP TABLE {staging}")).execute(conn)?;
        }
        if self.bulk {
            merge.create_indexes(conn)?;
            if self.postgres {
                diesel::sql_query(format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY (import_id) REFERENCES imports (id)",
                    merge.table, merge.import_fk
                ))
                .execute(conn)?;
                // The table went from empty to full: without fresh statistics the planner would
                // treat it as empty until autovacuum comes round (joins on it then read it whole,
                // a seeder over 3 million people slowed from seconds to minutes).
                diesel::sql_query(format!("ANALYZE {}", merge.table)).execute(conn)?;
            }
        }
        Ok(affected)
    }
}

/// Builds one row in the writer's encoding (on the reader thread).
pub(crate) struct RowBuf {
    encoding: Encoding,
    row: EncodedRow,
    /// Fields so far (`CopyText` separates them with tabs).
    count: usize,
}

impl RowBuf {
    pub fn new(encoding: Encoding) -> Self {
        let row = match encoding {
            Encoding::CopyText => {
                EncodedRow { text: String::with_capacity(256), bytes: Vec::new(), fields: Vec::new() }
            }
            Encoding::Binds => EncodedRow {
                text: String::with_capacity(160),
                bytes: Vec::with_capacity(32),
                fields: Vec::with_capacity(16),
            },
        };
        Self { encoding, row, count: 0 }
    }
    /// `CopyText`: the tab before every field but the first.
    fn sep(&mut self) {
        if self.count > 0 && self.encoding == Encoding::CopyText {
            self.row.text.push('\t');
        }
        self.count += 1;
    }
    pub fn text(&mut self, s: &str) -> &mut Self {
        self.sep();
        match self.encoding {
            Encoding::Binds => {
                let start = self.row.text.len() as u32;
                self.row.text.push_str(s);
                self.row.fields.push(Field::Text(start, self.row.text.len() as u32));
            }
            Encoding::CopyText => {
                // COPY text format: backslash, tab, newline and carriage return are escaped.
                let mut rest = s;
                while let Some(i) = rest.find(['\\', '\t', '\n', '\r']) {
                    self.row.text.push_str(&rest[..i]);
                    self.row.text.push_str(match rest.as_bytes()[i] {
                        b'\\' => "\\\\",
                        b'\t' => "\\t",
                        b'\n' => "\\n",
                        b'\r' => "\\r",
                        _ => unreachable!("only the characters searched for are found"),
                    });
                    rest = &rest[i + 1..];
                }
                self.row.text.push_str(rest);
            }
        }
        self
    }
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.sep();
        match self.encoding {
            Encoding::Binds => {
                let start = self.row.bytes.len() as u32;
                self.row.bytes.extend_from_slice(bytes);
                self.row.fields.push(Field::Bytes(start, self.row.bytes.len() as u32));
            }
            // bytea's hex input `\x…`, its backslash escaped for the COPY text format.
            Encoding::CopyText => {
                self.row.text.push_str("\\\\x");
                self.row.text.push_str(&ncf_shared::encoding::hex(bytes));
            }
        }
        self
    }
    pub fn number(&mut self, n: i64) -> &mut Self {
        self.sep();
        match self.encoding {
            Encoding::Binds => self.row.fields.push(Field::Int(n)),
            Encoding::CopyText => self.row.text.push_str(&n.to_string()),
        }
        self
    }
    pub fn finish(&mut self) -> EncodedRow {
        if self.encoding == Encoding::CopyText {
            self.row.text.push('\n');
        }
        self.count = 0;
        std::mem::replace(
            &mut self.row,
            EncodedRow { text: String::new(), bytes: Vec::new(), fields: Vec::new() },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn copy_text_escapes_what_the_format_reserves() {
        let line = RowBuf::new(Encoding::CopyText)
            .text("")
            .text("a\tb\\c\nd\re")
            .bytes(&[0xab, 0x01])
            .number(7)
            .finish();
        assert_eq!(line.text, "\ta\\tb\\\\c\\nd\\re\t\\\\xab01\t7\n");
        assert!(line.fields.is_empty() && line.bytes.is_empty());
    }

    proptest! {
        /// Any text, Japanese included, comes out as COPY's text format reads it back: byte for
        /// byte, with only backslash, tab, newline and carriage return escaped.
        #[test]
        fn copy_text_escapes_any_text_byte_for_byte(text in "[\\\\\t\n\r a-z看護師ナース々\u{1F600}]{0,40}") {
            let mut expected = Vec::new();
            for b in text.bytes() {
                match b {
                    b'\\' => expected.extend_from_slice(b"\\\\"),
                    b'\t' => expected.extend_from_slice(b"\\t"),
                    b'\n' => expected.extend_from_slice(b"\\n"),
                    b'\r' => expected.extend_from_slice(b"\\r"),
                    _ => expected.push(b),
                }
            }
            expected.push(b'\n');
            let line = RowBuf::new(Encoding::CopyText).text(&text).finish();
            prop_assert_eq!(line.text.as_bytes(), &expected[..]);
        }
    }

    #[test]
    fn binds_keep_each_field_apart_and_typed() {
        let row = RowBuf::new(Encoding::Binds)
            .text("")
            .text("看護\t師")
            .bytes(&[0xab, 0x01])
            .number(-7)
            .text("x")
            .finish();
        let fields: Vec<String> = row
            .fields
            .iter()
            .map(|f| match *f {
                Field::Text(a, b) => format!("text {:?}", &row.text[a as usize..b as usize]),
                Field::Bytes(a, b) => format!("bytes {:02x?}", &row.bytes[a as usize..b as usize]),
                Field::Int(n) => format!("int {n}"),
            })
            .collect();
        assert_eq!(fields, ["text \"\"", "text \"看護\\t師\"", "bytes [ab, 01]", "int -7", "text \"x\""]);
        let columns =
            [("a", Col::Text), ("b", Col::Date), ("c", Col::Bytes), ("d", Col::SmallInt), ("e", Col::Text)];
        assert!(row.fits(&columns));
        // One kind off, one field short or one too many: refused before SQLite binds anything.
        assert!(!row.fits(&[
            ("a", Col::Text),
            ("b", Col::Date),
            ("c", Col::Text),
            ("d", Col::SmallInt),
            ("e", Col::Text)
        ]));
        assert!(!row.fits(&columns[..4]));
        assert!(!row.fits(&[columns.as_slice(), &[("f", Col::BigInt)]].concat()));
    }

    #[test]
    fn sqlite_statements_insert_every_column_and_update_only_what_differs() {
        let (head, tail) = residents::ResidentEvents::MERGE.sqlite_sql(true);
        assert_eq!(
            format!("{head}…{tail}"),
            "INSERT INTO resident_events (person_key, event, effective_on, lgcode, address, family_name, \
             given_name, import_id) VALUES (…)"
        );
        let (head, tail) = residents::ResidentEvents::MERGE.sqlite_sql(false);
        assert_eq!(
            format!("{head}…{tail}"),
            "INSERT INTO resident_events (person_key, event, effective_on, lgcode, address, family_name, \
             given_name, import_id) VALUES (…) ON CONFLICT (person_key, event, effective_on) DO UPDATE \
             SET lgcode = excluded.lgcode, address = excluded.address, family_name = excluded.family_name, \
             given_name = excluded.given_name, import_id = excluded.import_id WHERE resident_events.lgcode \
             <> excluded.lgcode OR resident_events.address <> excluded.address OR \
             resident_events.family_name <> excluded.family_name OR resident_events.given_name <> \
             excluded.given_name"
        );
        // PostgreSQL's staged merge ends with the same clause.
        let merge = registry::Licences::MERGE;
        assert!(merge.upsert_sql("SELECT 1").ends_with(&merge.sqlite_sql(false).1[2..]));
        assert_eq!(merge.sqlite_sql(true).0.matches(", ").count() + 1, merge.columns.len());
    }
}
