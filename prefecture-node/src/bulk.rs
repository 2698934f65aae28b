//! Employer bulk upload: a CSV of separation notices (離職届), one row per nurse, entered by staff.
//! Every row gets a result. The upload is one transaction: one bad row saves nothing, unless the
//! staff member chose to accept the valid rows.

use std::collections::HashMap;

use diesel::prelude::*;
use ncf_shared::db::DbConn;
use ncf_shared::{Qualification, RegistrationNumber};

use crate::Channel;
use crate::error::{FieldError, NodeError};
use crate::notices::NoticeBody;
use crate::schema::nurses;
use crate::web::forms::{half_width, parse_date, parse_reason, parse_yes_no};

/// The columns, in any order; `return_when` may be left out.
pub const COLUMNS: [&str; 7] = [
    "qualification",
    "registration_number",
    "birth_date",
    "left_on",
    "reason",
    "wish_to_return",
    "return_when",
];
const REQUIRED: usize = 6;
pub const MAX_ROWS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowResult {
    /// Line in the file (the header is line 1).
    pub line: u64,
    pub registration_number: String,
    /// `None`: accepted; otherwise why the row was rejected (Japanese).
    pub rejected: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BulkReport {
    pub rows: Vec<RowResult>,
    /// How many notices were saved (0 when a bad row stopped an all-or-nothing upload).
    pub saved: usize,
}

impl BulkReport {
    pub fn rejected(&self) -> usize {
        self.rows.iter().filter(|r| r.rejected.is_some()).count()
    }
}

fn file_error(message: impl Into<String>) -> NodeError {
    NodeError::Invalid(vec![FieldError::new("file", message)])
}

struct Parsed {
    line: u64,
    registration_number: String,
    outcome: Result<(String, NoticeBody), String>,
}

/// Checks every row and saves the valid ones (all of them or none, see the module).
pub fn upload_separations(
    conn: &mut DbConn,
    csv_bytes: &[u8],
    accept_valid: bool,
    staff_id: &str,
) -> Result<BulkReport, NodeError> {
    let text = std::str::from_utf8(csv_bytes).map_err(|_| {
        file_error(
            "ファイルを読み取れません。UTF-8 で保存してください（Excel では「CSV UTF-8（コンマ区切り）」）。",
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader =
        csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(false).from_reader(text.as_bytes());
    let header =
        reader.headers().map_err(|e| file_error(format!("見出し行を読み取れません（{e}）。")))?.clone();
    let index: HashMap<&str, usize> = header.iter().enumerate().map(|(i, h)| (h, i)).collect();
    let missing: Vec<&str> = COLUMNS[..REQUIRED].iter().copied().filter(|c| !index.contains_key(c)).collect();
    if !missing.is_empty() {
        return Err(file_error(format!(
            "見出し行に必要な列がありません: {}。1行目は {} としてください。",
            missing.join(", "),
            COLUMNS.join(",")
        )));
    }
    let today = ncf_shared::time::now_utc().date();
    let mut parsed = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            file_error(format!(
                "{line}行目を読み取れません（列の数が見出しと違うか、引用符が閉じていません）。"
            ))
        })?;
        let line = record.position().map_or(0, csv::Position::line);
        if parsed.len() >= MAX_ROWS {
            return Err(file_error(format!(
                "1回に登録できるのは{MAX_ROWS}行までです。ファイルを分けてください。"
            )));
        }
        let row = Row { record: &record, index: &index };
        let registration_number = half_width(row.get("registration_number"));
        let outcome = check_row(conn, &row, today)?;
        let outcome = match outcome {
            Ok((nurse_id, body)) => match seen.insert(nurse_id.clone(), line) {
                Some(first) => Err(format!("{first}行目と同じ看護職の行です。1人1行にしてください。")),
                None => Ok((nurse_id, body)),
            },
            Err(reason) => Err(reason),
        };
        parsed.push(Parsed { line, registration_number, outcome });
    }
    if parsed.is_empty() {
        return Err(file_error("データの行がありません。"));
    }
    let any_rejected = parsed.iter().any(|p| p.outcome.is_err());
    let save = !any_rejected || accept_valid;
    let saved = if save {
        let valid: Vec<(&str, &NoticeBody)> = parsed
            .iter()
            .filter_map(|p| p.outcome.as_ref().ok().map(|(nurse_id, body)| (nurse_id.as_str(), body)))
            .collect();
        crate::notices::file_many(conn, &valid, Channel::Paper, Some(staff_id))?.len()
    } else {
        0
    };
    let rows = parsed
        .into_iter()
        .map(|p| RowResult {
            line: p.line,
            registration_number: p.registration_number,
            rejected: p.outcome.err(),
        })
        .collect();
    Ok(BulkReport { rows, saved })
}

struct Row<'a> {
    record: &'a csv::StringRecord,
    index: &'a HashMap<&'a str, usize>,
}

impl Row<'_> {
    fn get(&self, column: &str) -> &str {
        self.index.get(column).and_then(|&i| self.record.get(i)).unwrap_or("")
    }
}

/// One row: the nurse it names at this node and the notice; or why not (Japanese).
fn check_row(
    conn: &mut DbConn,
    row: &Row<'_>,
    today: chrono::NaiveDate,
) -> QueryResult<Result<(String, NoticeBody), String>> {
    let mut problems = Vec::new();
    let qualification = Qualification::from_code(&half_width(row.get("qualification")))
        .or_else(|| Qualification::all().find(|q| q.name_ja() == row.get("qualification")))
        .filter(|q| q.is_nursing());
    if qualification.is_none() {
        problems.push("資格は 01〜04 または 保健師・助産師・看護師・准看護師 で入力してください".to_string());
    }
    let number = RegistrationNumber::parse(&half_width(row.get("registration_number"))).ok();
    if number.is_none() {
        problems.push("籍登録番号は8桁以内の数字で入力してください".to_string());
    }
    let birth_date = parse_date(row.get("birth_date"));
    if birth_date.is_none() {
        problems.push("生年月日は 1985-04-01 の形で入力してください".to_string());
    }
    let left_on = parse_date(row.get("left_on"));
    if left_on.is_none() {
        problems.push("離職日は 2026-03-31 の形で入力してください".to_string());
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
    let nurse_id: Option<String> = nurses::table
        .filter(nurses::qualification.eq(q.code()))
        .filter(nurses::registration_number.eq(number.canonical()))
        .filter(nurses::birth_date.eq(birth_date))
        // Only the proofed registration: an unproofed one may be someone holding a copy of her
        // licence, who must not see an employer's notice about her.
        .filter(nurses::proofed_at.is_not_null())
        .select(nurses::id)
        .first(conn)
        .optional()?;
    Ok(match nurse_id {
        Some(id) => Ok((id, body)),
        None => Err(
            "このセンターで本人確認の済んだ看護職に、資格・籍登録番号・生年月日が一致する方がいません（本人確認の前の方は、確認の後に登録してください）"
                .to_string(),
        ),
    })
}
