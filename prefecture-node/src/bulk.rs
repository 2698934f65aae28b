//! Employer bulk upload: a CSV of separation notices (離職届), one row per nurse, entered by staff.
//! Every row gets a result. The upload is one transaction: one bad row saves nothing, unless the
//! staff member chose to accept the valid rows.
//!
//! The same file cannot be filed twice: a file whose SHA-256 was uploaded before is refused with
//! the date of that upload, and a row that repeats a separation already stored for her (same
//! date, same content), or another row of the same file, is refused on its own. Row numbers are
//! the lines Excel and editors show (`uploads::Sheet`), whatever the line endings.

use std::collections::HashMap;

use diesel::prelude::*;
use ncf_shared::db::DbConn;
use ncf_shared::{Qualification, RegistrationNumber};
use sha2::{Digest, Sha256};

use crate::Channel;
use crate::error::NodeError;
use crate::notices::NoticeBody;
use crate::schema::{bulk_uploads, notices, nurses};
use crate::uploads::{Sheet, SheetRow, file_error};
use ncf_shared::normalize::{self, yes_no as parse_yes_no};
use ncf_shared::notice::parse_reason;
use ncf_shared::wareki::parse_written as parse_date;

/// The columns, in any order; `return_when` may be left out. Each may also be headed by its
/// Japanese name (the downloadable template uses those).
pub const SHEET: Sheet = Sheet {
    columns: &[
        "qualification",
        "registration_number",
        "birth_date",
        "left_on",
        "reason",
        "wish_to_return",
        "return_when",
    ],
    columns_ja: &["資格", "籍登録番号", "生年月日", "離職日", "離職理由", "復職希望", "復職希望時期"],
    required: &["qualification", "registration_number", "birth_date", "left_on", "reason", "wish_to_return"],
    max_rows: 10_000,
};

/// The template staff give to employers: Japanese headings and one example row.
pub fn template_csv() -> String {
    SHEET.template(&["看護師,1234567,1985-04-01,2026-03-31,出産・育児,はい,来年4月ごろ"])
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RowResult {
    /// Line in the file as an editor shows it (the header is line 1).
    pub line: u64,
    /// The row Excel shows: the same as `line` unless a cell above holds line breaks.
    pub excel_row: u64,
    pub registration_number: String,
    /// Her name as registered here, when the row names a nurse of this node.
    pub name: String,
    /// `None`: valid; otherwise why the row was rejected (Japanese).
    pub rejected: Option<String>,
    /// A row already stored (same separation, same content): not filed again, and no error, so a
    /// corrected file can be uploaded again as a whole.
    pub skipped: Option<String>,
    /// Its receipt number, when the row was saved.
    pub receipt: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct BulkReport {
    pub rows: Vec<RowResult>,
    /// How many notices were saved (0 when a bad row stopped an all-or-nothing upload).
    pub saved: usize,
}

impl crate::uploads::Report for BulkReport {
    fn counts(&self) -> (usize, usize, usize) {
        (self.rows.len(), self.saved, self.rejected())
    }
}

impl BulkReport {
    pub fn rejected(&self) -> usize {
        self.rows.iter().filter(|r| r.rejected.is_some()).count()
    }

    pub fn skipped(&self) -> usize {
        self.rows.iter().filter(|r| r.skipped.is_some()).count()
    }
}

struct Parsed {
    line: u64,
    excel_row: u64,
    registration_number: String,
    name: String,
    outcome: Result<(String, NoticeBody), String>,
    /// Stored already: why it is not filed again.
    skipped: Option<String>,
}

/// Checks every row and saves the valid ones (all of them or none, see the module).
pub fn upload_separations(
    conn: &mut DbConn,
    csv_bytes: &[u8],
    accept_valid: bool,
    staff_id: &str,
    file_name: &str,
) -> Result<BulkReport, NodeError> {
    let sha256 = ncf_shared::encoding::hex(&Sha256::digest(csv_bytes));
    // One transaction from the first check to the last row, so two uploads of one file at the
    // same moment cannot both pass the checks: on SQLite the second waits and sees the first's
    // record; on PostgreSQL its record of the file collides with the first's and is refused.
    let uploaded = ncf_shared::db::write_transaction(conn, |conn| {
        upload_in(conn, csv_bytes, &sha256, accept_valid, staff_id, file_name)
    });
    match uploaded {
        Err(NodeError::Database(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ))) => Err(already_uploaded(conn, &sha256)?.unwrap_or_else(|| {
            file_error("同じファイルを登録中です。しばらくしてから結果を確認してください。")
        })),
        other => other,
    }
}

/// The refusal for a file uploaded (and saved) before, with the date of that upload.
fn already_uploaded(conn: &mut DbConn, sha256: &str) -> QueryResult<Option<NodeError>> {
    Ok(bulk_uploads::table
        .find(sha256)
        .select((bulk_uploads::uploaded_at, bulk_uploads::saved))
        .first::<(chrono::NaiveDateTime, i32)>(conn)
        .optional()?
        .map(|(at, saved)| {
            file_error(format!(
                "このファイルは{}に登録済みです（{saved}件）。同じファイルをもう一度登録することはできません。",
                ncf_shared::time::datetime_ja(at)
            ))
        }))
}

fn upload_in(
    conn: &mut DbConn,
    csv_bytes: &[u8],
    sha256: &str,
    accept_valid: bool,
    staff_id: &str,
    file_name: &str,
) -> Result<BulkReport, NodeError> {
    if let Some(refusal) = already_uploaded(conn, sha256)? {
        return Err(refusal);
    }
    let today = ncf_shared::time::today_jst();
    let mut parsed = Vec::new();
    for row in SHEET.read(csv_bytes)? {
        let registration_number = normalize::digits(row.get("registration_number"));
        let checked = match &row.problem {
            Some(problem) => Err(problem.clone()),
            None => check_row(conn, &row, today)?,
        };
        let (name, outcome) = match checked {
            Ok((nurse_id, name, body)) => (name, Ok((nurse_id, body))),
            Err(reason) => (String::new(), Err(reason)),
        };
        parsed.push(Parsed {
            line: row.line,
            excel_row: row.excel_row,
            registration_number,
            name,
            outcome,
            skipped: None,
        });
    }
    refuse_duplicates(conn, &mut parsed)?;
    let any_rejected = parsed.iter().any(|p| p.outcome.is_err());
    let save = !any_rejected || accept_valid;
    let mut receipts: HashMap<usize, String> = HashMap::new();
    let valid: Vec<(usize, (&str, &NoticeBody))> = parsed
        .iter()
        .enumerate()
        .filter(|(_, p)| p.skipped.is_none())
        .filter_map(|(i, p)| p.outcome.as_ref().ok().map(|(nurse_id, body)| (i, (nurse_id.as_str(), body))))
        .collect();
    let saved = if save && !valid.is_empty() {
        // The file's record first: a second upload of it at the same moment collides here.
        diesel::insert_into(bulk_uploads::table)
            .values((
                bulk_uploads::sha256.eq(sha256),
                bulk_uploads::uploaded_at.eq(ncf_shared::time::now_utc()),
                bulk_uploads::staff_id.eq(staff_id),
                bulk_uploads::file_name.eq(file_name.chars().take(200).collect::<String>()),
                bulk_uploads::saved.eq(valid.len() as i32),
            ))
            .execute(conn)?;
        let items: Vec<(&str, &NoticeBody)> = valid.iter().map(|(_, item)| *item).collect();
        let filed = crate::notices::file_many_in(conn, &items, Channel::Paper, Some(staff_id), None)?;
        for ((i, _), f) in valid.iter().zip(&filed) {
            receipts.extend(f.notice.receipt.clone().map(|r| (*i, r)));
        }
        filed.len()
    } else {
        0
    };
    let rows = parsed
        .into_iter()
        .enumerate()
        .map(|(i, p)| RowResult {
            line: p.line,
            excel_row: p.excel_row,
            registration_number: p.registration_number,
            name: p.name,
            rejected: p.outcome.err(),
            skipped: p.skipped,
            receipt: receipts.remove(&i).map(|r| crate::receipts::display(&r)),
        })
        .collect();
    Ok(BulkReport { rows, saved })
}

/// Row by row: a separation already stored for her (same content) is skipped, not filed again;
/// a row repeating an earlier row of the file is refused, and so is a second row with her same
/// date but different content (the two contradict each other).
fn refuse_duplicates(conn: &mut DbConn, parsed: &mut [Parsed]) -> QueryResult<()> {
    let ids: Vec<&str> =
        parsed.iter().filter_map(|p| p.outcome.as_ref().ok().map(|(id, _)| id.as_str())).collect();
    let mut stored: HashMap<String, Vec<(NoticeBody, chrono::NaiveDateTime, Option<String>)>> =
        HashMap::new();
    for chunk in ids.chunks(500) {
        let rows: Vec<(String, String, chrono::NaiveDateTime, Option<String>)> = notices::table
            .filter(notices::nurse_id.eq_any(chunk))
            .filter(notices::kind.eq(ncf_shared::NoticeKind::Separation.as_str()))
            .select((notices::nurse_id, notices::body, notices::filed_at, notices::receipt))
            .load(conn)?;
        for (nurse_id, body, at, receipt) in rows {
            if let Ok(body) = serde_json::from_str::<NoticeBody>(&body) {
                stored.entry(nurse_id).or_default().push((body, at, receipt));
            }
        }
    }
    let mut seen: HashMap<(String, chrono::NaiveDate), (String, NoticeBody)> = HashMap::new();
    for p in parsed.iter_mut() {
        let Ok((nurse_id, body)) = &p.outcome else { continue };
        let NoticeBody::Separation { left_on, .. } = body else { continue };
        if let Some((_, at, receipt)) =
            stored.get(nurse_id).and_then(|s| s.iter().find(|(b, _, _)| b == body))
        {
            p.skipped = Some(format!(
                "同じ内容の離職届が{}に登録済みのため、登録しませんでした{}",
                ncf_shared::time::datetime_ja(*at),
                receipt
                    .as_deref()
                    .map(|r| format!("（受付番号 {}）", crate::receipts::display(r)))
                    .unwrap_or_default()
            ));
            continue;
        }
        let refusal = match seen.get(&(nurse_id.clone(), *left_on)) {
            Some((place, first)) if first == body => Some(format!("{place}と同じ内容です")),
            Some((place, _)) => Some(format!("{place}と同じ看護職・同じ離職日で、内容が異なります")),
            None => {
                seen.insert(
                    (nurse_id.clone(), *left_on),
                    (crate::uploads::place_ja(p.line, p.excel_row), body.clone()),
                );
                None
            }
        };
        if let Some(refusal) = refusal {
            p.outcome = Err(refusal);
        }
    }
    Ok(())
}

/// One row: the nurse it names at this node and the notice; or why not (Japanese).
fn check_row(
    conn: &mut DbConn,
    row: &SheetRow,
    today: chrono::NaiveDate,
) -> QueryResult<Result<(String, String, NoticeBody), String>> {
    let mut problems = Vec::new();
    let qualification = Qualification::from_code(normalize::width(row.get("qualification")).trim())
        .or_else(|| Qualification::all().find(|q| q.name_ja() == row.get("qualification")))
        .filter(|q| q.is_nursing());
    if qualification.is_none() {
        problems.push("資格は 01〜04 または 保健師・助産師・看護師・准看護師 で入力してください".to_string());
    }
    let number = RegistrationNumber::parse(&normalize::digits(row.get("registration_number"))).ok();
    if number.is_none() {
        problems.push("籍登録番号は8桁以内の数字で入力してください".to_string());
    }
    let birth_date = parse_date(row.get("birth_date"));
    if birth_date.is_none() {
        problems.push(
            "生年月日は 1985-04-01・1985/4/1・昭和60年4月1日 のいずれかの形で入力してください".to_string(),
        );
    }
    let left_on = parse_date(row.get("left_on"));
    if left_on.is_none() {
        problems.push(
            "離職日は 2026-03-31・2026/3/31・2026年3月31日 のいずれかの形で入力してください".to_string(),
        );
    }
    let reason = parse_reason(row.get("reason"));
    if reason.is_none() {
        problems.push("離職理由が一覧にありません".to_string());
    }
    let wish = parse_yes_no(row.get("wish_to_return"));
    if wish.is_none() {
        problems.push("復職希望は はい/いいえ で入力してください".to_string());
    }
    let (Some(q), Some(number), Some(birth_date), Some(left_on), Some(reason), Some(wish)) =
        (qualification, number, birth_date, left_on, reason, wish)
    else {
        return Ok(Err(problems.join("。")));
    };
    let body = NoticeBody::Separation {
        left_on,
        reason,
        wish_to_return: wish,
        return_when: Some(row.get("return_when").to_string()).filter(|w| wish && !w.is_empty()),
    };
    if let Err(fields) = body.validate(today) {
        return Ok(Err(fields.into_iter().map(|f| f.message).collect::<Vec<_>>().join("")));
    }
    let nurse: Option<(String, String, String)> = nurses::table
        .filter(nurses::qualification.eq(q.code()))
        .filter(nurses::registration_number.eq(number.canonical()))
        .filter(nurses::birth_date.eq(birth_date))
        // Only the proofed registration: an unproofed one may be someone holding a copy of her
        // licence, who must not see an employer's notice about her.
        .filter(nurses::proofed_at.is_not_null())
        .select((nurses::id, nurses::family_name, nurses::given_name))
        .first(conn)
        .optional()?;
    Ok(match nurse {
        Some((id, family, given)) => Ok((id, format!("{family} {given}"), body)),
        None => Err(
            "このセンターで本人確認の済んだ看護職に、資格・籍登録番号・生年月日が一致する方がいません（本人確認の前の方は、確認の後に登録してください）"
                .to_string(),
        ),
    })
}
