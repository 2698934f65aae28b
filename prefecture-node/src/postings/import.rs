//! Postings from a CSV file (issue #8): one posting per row, each row read exactly as the staff
//! form reads its fields (`PostingText`) and checked by the same `PostingBody::validate`.
//!
//! Every row gets a result. The file is one transaction: one bad row publishes nothing, unless
//! staff chose to publish the valid rows. A row whose posting this node already publishes with the
//! same content (not withdrawn) is skipped, not published twice, so a corrected file can be
//! uploaded again as a whole; a row repeating an earlier row of the file is refused.

use ncf_shared::db::DbConn;
use ncf_shared::posting::{EmploymentType, PostingBody};
use ncf_shared::{Qualification, normalize};

use super::text::PostingText;
use crate::error::NodeError;
use crate::uploads::{Sheet, SheetRow};

/// The columns, in any order, headed in English or Japanese. A row's place is its municipality
/// code, or its latitude and longitude; lists of qualifications and employment types are
/// separated by 「・」「、」「;」 or spaces.
pub const SHEET: Sheet = Sheet {
    columns: &[
        "kind",
        "title",
        "description",
        "facility_name",
        "facility_contact",
        "lgcode",
        "lat",
        "lng",
        "qualifications",
        "employment_types",
        "hours",
        "wage_per",
        "wage_min",
        "wage_max",
        "training_starts_on",
        "training_ends_on",
        "training_hours",
        "capacity",
        "fee",
        "valid_from",
        "valid_until",
    ],
    columns_ja: &[
        "種別",
        "タイトル",
        "内容",
        "施設名",
        "連絡先",
        "市区町村コード",
        "緯度",
        "経度",
        "資格",
        "雇用形態",
        "勤務時間",
        "給与の単位",
        "給与の下限",
        "給与の上限",
        "研修開始日",
        "研修終了日",
        "研修時間数",
        "定員",
        "受講料",
        "掲載開始日",
        "掲載終了日",
    ],
    required: &[
        "kind",
        "title",
        "facility_name",
        "facility_contact",
        "qualifications",
        "valid_from",
        "valid_until",
    ],
    max_rows: 2_000,
};

/// The template: Japanese headings, a job and a training session, dated from today so that
/// it can be uploaded as it is to try the import.
pub fn template_csv() -> String {
    let today = ncf_shared::time::today_jst();
    let day = |days: i64| (today + chrono::Duration::days(days)).format("%Y-%m-%d").to_string();
    let job = format!(
        "求人,外来看護師（日勤のみ）,ブランクのある方も歓迎します。,さくら病院,03-0000-0000（看護部）,131016,,,看護師・准看護師,非常勤・日勤のみ,9:00〜16:00,時給,1800,2200,,,,,,{},{}",
        day(0),
        day(90)
    );
    let training = format!(
        "研修,復職支援研修（採血・注射）,実技を中心に学び直します。,ナースセンター研修室,03-0000-0001,131016,,,看護師・准看護師,,,,,,{},{},12,20,0,{},{}",
        day(45),
        day(46),
        day(0),
        day(40)
    );
    SHEET.template(&[&job, &training])
}

/// What became of one row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ImportRow {
    /// Line in the file as an editor shows it (the header is line 1).
    pub line: u64,
    /// The row Excel shows: the same as `line` unless a cell above holds line breaks.
    pub excel_row: u64,
    pub title: String,
    /// `None`: valid; otherwise every problem of the row (Japanese).
    pub rejected: Option<String>,
    /// Published already with the same content: why it was not published again.
    pub skipped: Option<String>,
    /// The posting's id, when the row was published.
    pub posting: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub rows: Vec<ImportRow>,
    /// How many postings were published (0 when a bad row stopped an all-or-nothing upload).
    pub saved: usize,
}

impl crate::uploads::Report for ImportReport {
    fn counts(&self) -> (usize, usize, usize) {
        (self.rows.len(), self.saved, self.rejected())
    }
}

impl ImportReport {
    pub fn rejected(&self) -> usize {
        self.rows.iter().filter(|r| r.rejected.is_some()).count()
    }

    pub fn skipped(&self) -> usize {
        self.rows.iter().filter(|r| r.skipped.is_some()).count()
    }
}

/// Separators people put between items of one cell.
fn items(cell: &str) -> impl Iterator<Item = &str> {
    cell.split(['・', '、', ',', '，', ';', '；', '/', '／', '|', ' ', '\u{3000}']).filter(|t| !t.is_empty())
}

/// The form's fields from a row, and the problems of the list cells (unknown items).
fn text_of(row: &SheetRow) -> (PostingText, Vec<String>) {
    let mut problems = Vec::new();
    let mut text = PostingText {
        kind: row.get("kind").into(),
        title: row.get("title").into(),
        description: row.get("description").into(),
        facility_name: row.get("facility_name").into(),
        facility_contact: row.get("facility_contact").into(),
        lgcode: row.get("lgcode").into(),
        lat: row.get("lat").into(),
        lng: row.get("lng").into(),
        hours: row.get("hours").into(),
        wage_per: row.get("wage_per").into(),
        wage_min: row.get("wage_min").into(),
        wage_max: row.get("wage_max").into(),
        training_starts_on: row.get("training_starts_on").into(),
        training_ends_on: row.get("training_ends_on").into(),
        training_hours: row.get("training_hours").into(),
        capacity: row.get("capacity").into(),
        fee: row.get("fee").into(),
        valid_from: row.get("valid_from").into(),
        valid_until: row.get("valid_until").into(),
        ..PostingText::default()
    };
    let on = || Some("on".to_string());
    for item in items(row.get("qualifications")) {
        let code = normalize::width(item);
        match Qualification::from_code(&code).or_else(|| Qualification::all().find(|q| q.name_ja() == item)) {
            Some(q) if q.is_nursing() => match q.code() {
                "01" => text.q01 = on(),
                "02" => text.q02 = on(),
                "03" => text.q03 = on(),
                _ => text.q04 = on(),
            },
            _ => problems.push(format!(
                "資格「{item}」は載せられません（保健師・助産師・看護師・准看護師のいずれかです）。"
            )),
        }
    }
    for item in items(row.get("employment_types")) {
        match EmploymentType::ALL.into_iter().find(|t| t.label_ja() == item || t.as_str() == item) {
            Some(EmploymentType::FullTime) => text.full_time = on(),
            Some(EmploymentType::PartTime) => text.part_time = on(),
            Some(EmploymentType::ShortHours) => text.short_hours = on(),
            Some(EmploymentType::DaysOnly) => text.days_only = on(),
            Some(EmploymentType::NightShifts) => text.night_shifts = on(),
            None => problems.push(format!(
                "雇用形態「{item}」は一覧にありません（{}）。",
                EmploymentType::ALL.map(|t| t.label_ja()).join("・")
            )),
        }
    }
    (text, problems)
}

struct Parsed {
    line: u64,
    excel_row: u64,
    title: String,
    outcome: Result<PostingBody, String>,
}

/// Checks every row and publishes the valid ones (all of them or none, see the module).
pub fn import(
    conn: &mut DbConn,
    csv_bytes: &[u8],
    accept_valid: bool,
    staff_id: &str,
) -> Result<ImportReport, NodeError> {
    let rows = SHEET.read(csv_bytes)?;
    let parsed: Vec<Parsed> = rows
        .iter()
        .map(|row| {
            let (text, mut problems) = text_of(row);
            problems.splice(0..0, row.problem.clone());
            let outcome = match text.body() {
                Ok(body) if problems.is_empty() => Ok(body),
                Ok(_) => Err(problems.concat()),
                Err(fields) => {
                    problems.extend(fields.into_iter().map(|f| f.message));
                    Err(problems.concat())
                }
            };
            Parsed { line: row.line, excel_row: row.excel_row, title: row.get("title").to_string(), outcome }
        })
        .collect();
    ncf_shared::db::write_transaction(conn, |conn| {
        // Two imports at the same moment must not both find a row new and both publish it: on
        // PostgreSQL the second waits here for the first to commit (SQLite's write transaction
        // already lets one writer in at a time).
        if let ncf_shared::db::DbConn::Postgresql(c) = &mut *conn {
            diesel::RunQueryDsl::execute(
                diesel::sql_query("LOCK TABLE postings IN SHARE ROW EXCLUSIVE MODE"),
                c,
            )?;
        }
        // Each row as it stands against what is published and the rows above it.
        let published = super::list(conn)?;
        let mut seen: Vec<(&Parsed, &PostingBody)> = Vec::new();
        let mut rows: Vec<ImportRow> = Vec::with_capacity(parsed.len());
        let mut valid: Vec<(usize, &PostingBody)> = Vec::new();
        for p in &parsed {
            let mut row = ImportRow {
                line: p.line,
                excel_row: p.excel_row,
                title: p.title.clone(),
                rejected: None,
                skipped: None,
                posting: None,
            };
            match &p.outcome {
                Err(problems) => row.rejected = Some(problems.clone()),
                Ok(body) => {
                    if let Some(same) = published.iter().find(|q| q.withdrawn_at.is_none() && q.body == *body)
                    {
                        row.skipped = Some(format!(
                            "同じ内容の{}を{}に掲載済みのため、登録しませんでした。",
                            body.kind.label_ja(),
                            ncf_shared::time::datetime_ja(same.created_at)
                        ));
                    } else if let Some((first, _)) = seen.iter().find(|(_, b)| *b == body) {
                        row.rejected = Some(format!(
                            "{}と同じ内容です。",
                            crate::uploads::place_ja(first.line, first.excel_row)
                        ));
                    } else {
                        seen.push((p, body));
                        valid.push((rows.len(), body));
                    }
                }
            }
            rows.push(row);
        }
        let save = accept_valid || rows.iter().all(|r| r.rejected.is_none());
        let mut saved = 0;
        if save {
            for (i, body) in valid {
                match super::create(conn, staff_id, body)? {
                    Ok(id) => rows[i].posting = Some(id),
                    // Checked above with the same check; a refusal here would be a bug, and it
                    // publishes nothing.
                    Err(fields) => return Err(NodeError::Invalid(fields)),
                }
                saved += 1;
            }
        }
        Ok(ImportReport { rows, saved })
    })
}
