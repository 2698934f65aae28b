//! Identity proofing by post (issue #5): a node asks for a letter for one of its linked nurses;
//! the letter goes to the address of her resident registration, which only this server knows (the
//! node never learns it); she types the code from the letter on the node's page and this server
//! checks it.
//!
//! The code exists in clear only in the file written for the print vendor: a letter row is
//! queued without one, `postal export` draws the code, writes it to the file and keeps only a
//! digest keyed by the server secret (see `ProofingCodeKey`), and clears the copied name and
//! address from the row. A letter is valid for [`VALID_DAYS`] from its export and allows
//! [`MAX_TRIES`] wrong codes; then a new one is needed.

use std::io::Write as _;
use std::path::Path;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ncf_shared::db::DbConn;
use ncf_shared::federation::{CodeCheckResponse, LetterResponse};
use ncf_shared::secret::ProofingCodeKey;
use ncf_shared::{AgencyCode, Prefecture, per_backend};

use crate::error::{AppError, ErrorKind};
use crate::schema::{identity_links, licences, postal_letters, residents};

pub const VALID_DAYS: u32 = 14;
pub const MAX_TRIES: i32 = 5;
/// Letters one person may have asked for (at one node) within [`LETTER_WINDOW_DAYS`]: a few
/// letters lost in the post, not a flood into her letterbox.
const MAX_LETTERS: i64 = 3;
const LETTER_WINDOW_DAYS: i64 = 30;
/// Digits in a code: typed by hand from paper, and with 5 tries one guess in 20 million.
const CODE_DIGITS: usize = 8;

fn link_of(conn: &mut DbConn, node: Prefecture, code: &AgencyCode) -> Result<Vec<u8>, AppError> {
    identity_links::table
        .find((node.code(), code.as_str()))
        .select(identity_links::person_key)
        .first::<Vec<u8>>(conn)
        .optional()?
        .ok_or_else(|| AppError::new(ErrorKind::NotFound, "no link for this agency code from this node"))
}

/// Queues a letter for her, or says why none can be sent.
pub fn request_letter(
    conn: &mut DbConn,
    node: Prefecture,
    code: &AgencyCode,
) -> Result<LetterResponse, AppError> {
    let person_key = link_of(conn, node, code)?;
    type Resident = (Option<String>, Option<String>, Option<String>, Option<chrono::NaiveDate>);
    let resident: Option<Resident> = residents::table
        .find(&person_key)
        .select((residents::address, residents::family_name, residents::given_name, residents::deceased_on))
        .first(conn)
        .optional()?;
    let Some((Some(address), family, given, None)) = resident else {
        tracing::info!(prefecture = %node, "letter refused: no current address in the resident data");
        return Ok(LetterResponse::NoAddress);
    };
    if address.trim().is_empty() {
        return Ok(LetterResponse::NoAddress);
    }
    let now = ncf_shared::time::now_utc();
    // The name on the envelope: her current name from the resident data, else the licence's.
    let (family, given) = match (family, given) {
        (Some(f), Some(g)) => (f, g),
        _ => licences::table
            .filter(licences::person_no.eq(ncf_shared::PersonKey::number_of(&person_key)))
            .filter(licences::person_key.eq(&person_key))
            .select((licences::family_name, licences::given_name))
            .first::<(String, String)>(conn)?,
    };
    ncf_shared::db::write_transaction(conn, |conn| {
        let recent: i64 = postal_letters::table
            .filter(postal_letters::person_key.eq(&person_key))
            .filter(postal_letters::prefecture.eq(node.code()))
            .filter(postal_letters::requested_at.gt(now - chrono::Duration::days(LETTER_WINDOW_DAYS)))
            .count()
            .get_result(conn)?;
        if recent >= MAX_LETTERS {
            return Ok(LetterResponse::TooMany);
        }
        let letter_id = ncf_shared::ids::RecordId::new().0;
        diesel::insert_into(postal_letters::table)
            .values((
                postal_letters::id.eq(&letter_id),
                postal_letters::person_key.eq(&person_key),
                postal_letters::prefecture.eq(node.code()),
                postal_letters::agency_code.eq(code.as_str()),
                postal_letters::family_name.eq(&family),
                postal_letters::given_name.eq(&given),
                postal_letters::address.eq(&address),
                postal_letters::requested_at.eq(now),
                postal_letters::tries.eq(0),
            ))
            .execute(conn)?;
        tracing::info!(prefecture = %node, "letter queued for the postal batch");
        Ok::<_, AppError>(LetterResponse::Queued { letter_id, valid_days: VALID_DAYS })
    })
}

/// Checks a code she typed; counts wrong tries; on success records her link as proofed by post.
pub fn check_code(
    conn: &mut DbConn,
    key: &ProofingCodeKey,
    node: Prefecture,
    code: &AgencyCode,
    letter_id: &str,
    typed: &str,
) -> Result<CodeCheckResponse, AppError> {
    let typed: String = typed.chars().filter(|c| c.is_ascii_digit()).collect();
    let now = ncf_shared::time::now_utc();
    ncf_shared::db::write_transaction(conn, |conn| {
        type Row = (
            Option<NaiveDateTime>,
            Option<NaiveDateTime>,
            Option<String>,
            i32,
            Option<NaiveDateTime>,
            Option<NaiveDateTime>,
        );
        let letter: Option<Row> = postal_letters::table
            .find(letter_id)
            .filter(postal_letters::prefecture.eq(node.code()))
            .filter(postal_letters::agency_code.eq(code.as_str()))
            .select((
                postal_letters::exported_at,
                postal_letters::expires_at,
                postal_letters::code_digest,
                postal_letters::tries,
                postal_letters::spent_at,
                postal_letters::redeemed_at,
            ))
            .first(conn)
            .optional()?;
        let Some((exported_at, expires_at, digest, _, spent_at, redeemed_at)) = letter else {
            return Ok(CodeCheckResponse::NewLetterNeeded);
        };
        if redeemed_at.is_some() {
            // Her own letter, already used: the same answer again, so that a node that failed to
            // record the first one can finish without spending another letter.
            return Ok(CodeCheckResponse::Proofed);
        }
        if spent_at.is_some() || expires_at.is_some_and(|e| e <= now) {
            return Ok(CodeCheckResponse::NewLetterNeeded);
        }
        let (Some(_), Some(digest)) = (exported_at, digest) else {
            return Ok(CodeCheckResponse::NotSentYet);
        };
        let live = || {
            postal_letters::table
                .filter(postal_letters::id.eq(letter_id))
                .filter(postal_letters::spent_at.is_null())
                .filter(postal_letters::redeemed_at.is_null())
        };
        let right = typed.len() == CODE_DIGITS && same(&key.digest(letter_id, &typed), &digest);
        if !right {
            // One statement counts the try: guesses sent in parallel each count (on PostgreSQL
            // the row lock orders them), so 5 tries stay 5.
            let tries: Option<i32> = per_backend!(conn, c => diesel::update(live())
                .set(postal_letters::tries.eq(postal_letters::tries + 1))
                .returning(postal_letters::tries)
                .get_result(c)
                .optional())?;
            let Some(tries) = tries else {
                return Ok(CodeCheckResponse::NewLetterNeeded);
            };
            if tries >= MAX_TRIES {
                diesel::update(postal_letters::table.find(letter_id))
                    .set(postal_letters::spent_at.eq(now))
                    .execute(conn)?;
            }
            tracing::info!(prefecture = %node, tries, "wrong proofing code");
            return Ok(if tries >= MAX_TRIES {
                CodeCheckResponse::NewLetterNeeded
            } else {
                CodeCheckResponse::Wrong { tries_left: (MAX_TRIES - tries) as u32 }
            });
        }
        let redeemed = diesel::update(live())
            .set((postal_letters::redeemed_at.eq(now), postal_letters::code_digest.eq(None::<String>)))
            .execute(conn)?;
        if redeemed == 0 {
            return Ok(CodeCheckResponse::NewLetterNeeded); // spent by a parallel wrong guess
        }
        // A change to what the national server derives: it takes the chain's lock like every
        // other (rematch counts the takers). Her status follows with her node's next push.
        drop(crate::provisions::ChainWriter::begin(conn)?);
        diesel::update(identity_links::table.find((node.code(), code.as_str())))
            .set((identity_links::proofing_method.eq("post"), identity_links::proofed_at.eq(now)))
            .execute(conn)?;
        tracing::info!(prefecture = %node, "identity proofed by post");
        Ok::<_, AppError>(CodeCheckResponse::Proofed)
    })
}

/// Compares two digests in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What `postal export` did.
#[derive(Debug)]
pub struct Exported {
    pub letters: usize,
    /// Filing reminders (届出勧奨) for people no node may tell (`reminders.rs`).
    pub reminders: usize,
}

/// Writes every letter not yet exported to `out` (UTF-8 CSV with a header, for the print
/// vendor; created new with mode 0600, never overwriting a file), with a fresh code each, and
/// marks them exported. All or nothing: the file is complete before the letters are marked, and
/// removed when marking fails; a transaction run again after SQLite was busy rewrites it whole.
pub fn export(conn: &mut DbConn, key: &ProofingCodeKey, out: &Path) -> Result<Exported, AppError> {
    let now = ncf_shared::time::now_utc();
    let expires_at = now + chrono::Duration::days(i64::from(VALID_DAYS));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(out).map_err(|e| {
        AppError::bad_request(format!(
            "cannot create {}: {e} (an existing file is never overwritten)",
            out.display()
        ))
    })?;
    let result = ncf_shared::db::write_transaction(conn, |conn| {
        type Row = (String, String, Option<String>, Option<String>, Option<String>);
        let letters: Vec<Row> = postal_letters::table
            .filter(postal_letters::exported_at.is_null())
            .filter(postal_letters::spent_at.is_null())
            .order(postal_letters::requested_at)
            .select((
                postal_letters::id,
                postal_letters::prefecture,
                postal_letters::family_name,
                postal_letters::given_name,
                postal_letters::address,
            ))
            .load(conn)?;
        // The transaction may run again (SQLite busy): each attempt starts the file afresh, or
        // its letters would be written twice with codes the database no longer holds.
        let io_err = |e: std::io::Error| AppError::internal("postal export", e.to_string());
        file.set_len(0).map_err(io_err)?;
        std::io::Seek::seek(&mut &file, std::io::SeekFrom::Start(0)).map_err(io_err)?;
        let mut writer = csv::Writer::from_writer(std::io::BufWriter::new(&file));
        let header =
            ["letter_id", "family_name", "given_name", "address", "sender", "code", "valid_until", "letter"];
        let write_err = |e: csv::Error| AppError::internal("postal export", e.to_string());
        writer.write_record(header).map_err(write_err)?;
        let valid_until = ncf_shared::time::date_ja((expires_at + chrono::Duration::hours(9)).date());
        for (id, prefecture, family, given, address) in &letters {
            let code = ncf_shared::secret::random_digits(CODE_DIGITS);
            let sender = Prefecture::from_code(prefecture)
                .map_or_else(|| "ナースセンター".to_string(), |p| format!("{}ナースセンター", p.name_ja()));
            let cells = [
                id.as_str(),
                family.as_deref().unwrap_or(""),
                given.as_deref().unwrap_or(""),
                address.as_deref().unwrap_or(""),
                sender.as_str(),
                code.as_str(),
                valid_until.as_str(),
                "本人確認コードのお知らせ",
            ];
            ncf_shared::csvfile::write_record(&mut writer, cells).map_err(write_err)?;
            diesel::update(postal_letters::table.find(id))
                .set((
                    postal_letters::exported_at.eq(now),
                    postal_letters::expires_at.eq(expires_at),
                    postal_letters::code_digest.eq(key.digest(id, &code)),
                    postal_letters::family_name.eq(None::<String>),
                    postal_letters::given_name.eq(None::<String>),
                    postal_letters::address.eq(None::<String>),
                ))
                .execute(conn)?;
        }
        // Filing reminders for the postal batch: to the address of her resident registration (her
        // family's, after a death), from the nurse center of that prefecture. Name and address are
        // read now and not copied anywhere.
        let reminders = crate::reminders::for_post(conn)?;
        for r in &reminders {
            let sender = r
                .prefecture
                .map_or_else(|| "ナースセンター".to_string(), |p| format!("{}ナースセンター", p.name_ja()));
            let cells = [
                r.id.as_str(),
                r.family_name.as_str(),
                r.given_name.as_str(),
                r.address.as_str(),
                sender.as_str(),
                "",
                "",
                r.kind.title_ja(),
            ];
            ncf_shared::csvfile::write_record(&mut writer, cells).map_err(write_err)?;
        }
        crate::reminders::mark_exported(conn, reminders.iter().map(|r| r.id.as_str()), now)?;
        let mut inner =
            writer.into_inner().map_err(|e| AppError::internal("postal export", e.to_string()))?;
        inner
            .flush()
            .and_then(|()| inner.get_ref().sync_all())
            .map_err(|e| AppError::internal("postal export", e.to_string()))?;
        Ok::<_, AppError>(Exported { letters: letters.len(), reminders: reminders.len() })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(out);
    }
    result
}
