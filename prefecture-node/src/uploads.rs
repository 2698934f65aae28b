//! CSV files staff upload (employers' separations, postings): read into rows with the line numbers
//! Excel and editors show, columns found by their English or Japanese heading in any order, and
//! every problem with the file itself named in Japanese before any row is looked at.
//!
//! What a row means, and whether it is saved, is the business of the importer that reads it; this
//! module only makes sure every importer reads files the same way.

use std::collections::HashMap;

use ncf_shared::csvfile::LineIndex;
use ncf_shared::normalize;

use crate::error::{FieldError, NodeError};

/// The result of an upload, a line per row.
pub trait Report: serde::Serialize {
    /// (rows, saved, rejected), for the log.
    fn counts(&self) -> (usize, usize, usize);

    /// Bad rows stopped the upload: nothing was saved.
    fn stopped(&self) -> bool {
        let (_, saved, rejected) = self.counts();
        saved == 0 && rejected > 0
    }
}

/// The columns an upload knows.
pub struct Sheet {
    /// Canonical (English) names, in the template's order.
    pub columns: &'static [&'static str],
    /// The Japanese headings, in the same order (the template uses these).
    pub columns_ja: &'static [&'static str],
    /// Columns a file must have (English names).
    pub required: &'static [&'static str],
    /// Most data rows in one file.
    pub max_rows: usize,
}

/// One data row: where people find it and its cells by column.
pub struct SheetRow {
    /// The line an editor shows (a cell with line breaks makes a row span several lines).
    pub line: u64,
    /// The row Excel shows: the same as `line` unless a cell above holds line breaks.
    pub excel_row: u64,
    /// The row cannot be read as a whole (its number of cells differs from the heading's).
    pub problem: Option<String>,
    cells: HashMap<&'static str, String>,
}

impl SheetRow {
    /// The cell of a column, trimmed; empty when the file has no such column.
    pub fn get(&self, column: &str) -> &str {
        self.cells.get(column).map_or("", String::as_str)
    }

    /// 「5行目」, or 「5行目（Excel では4行目）」 when the two differ.
    pub fn place_ja(&self) -> String {
        place_ja(self.line, self.excel_row)
    }
}

/// Where a row is, as people look for it: 「5行目」, or 「5行目（Excel では4行目）」.
pub fn place_ja(line: u64, excel_row: u64) -> String {
    if line == excel_row {
        format!("{line}行目")
    } else {
        format!("{line}行目（Excel では{excel_row}行目）")
    }
}

/// Line breaks inside a cell (`\r\n`, `\n` or a lone `\r` each count once), as Excel keeps
/// them within one row.
fn breaks_in(cell: &str) -> u64 {
    let bytes = cell.as_bytes();
    let mut n = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' || (*b == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
            n += 1;
        }
    }
    n
}

/// A refusal of the whole file (the field is `file`).
pub fn file_error(message: impl Into<String>) -> NodeError {
    NodeError::Invalid(vec![FieldError::new("file", message)])
}

impl Sheet {
    /// The template staff hand out: Japanese headings, the example rows, and a BOM so Excel opens
    /// it as UTF-8.
    pub fn template(&self, example_rows: &[&str]) -> String {
        let mut out = format!("\u{feff}{}\r\n", self.columns_ja.join(","));
        for row in example_rows {
            out.push_str(row);
            out.push_str("\r\n");
        }
        out
    }

    /// A column's canonical name from its heading (English or Japanese, any width, spaces ignored).
    fn column_of(&self, heading: &str) -> Option<&'static str> {
        let heading: String = normalize::width(heading).chars().filter(|c| !c.is_whitespace()).collect();
        self.columns
            .iter()
            .zip(self.columns_ja)
            .find_map(|(en, ja)| (heading == *en || heading == *ja).then_some(*en))
    }

    /// Every data row of the file, or why the file cannot be read (Japanese).
    pub fn read(&self, bytes: &[u8]) -> Result<Vec<SheetRow>, NodeError> {
        let text = std::str::from_utf8(bytes).map_err(|_| {
            file_error(
                "ファイルを読み取れません。UTF-8 で保存してください（Excel では「CSV UTF-8（コンマ区切り）」）。",
            )
        })?;
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            // A row with more or fewer cells is reported on its own, not the whole file.
            .flexible(true)
            .from_reader(Tracked { data: text.as_bytes(), index: LineIndex::new() });
        let header =
            reader.headers().map_err(|e| file_error(format!("見出し行を読み取れません（{e}）。")))?.clone();
        let headings: Vec<String> =
            header.iter().map(|h| h.trim_start_matches('\u{feff}').to_string()).collect();
        let columns: Vec<Option<&'static str>> = headings.iter().map(|h| self.column_of(h)).collect();
        // A heading this file type does not know is a typo away from one it does: refused, so
        // that a column is never silently left out. So is a column named twice.
        let unknown: Vec<&str> = headings
            .iter()
            .zip(&columns)
            .filter(|(h, c)| c.is_none() && !h.trim().is_empty())
            .map(|(h, _)| h.as_str())
            .collect();
        if !unknown.is_empty() {
            return Err(file_error(format!(
                "見出し「{}」は使えません。見出しは {} のいずれかにしてください（ひな形をダウンロードできます）。",
                unknown.join("」「"),
                self.columns_ja.join(",")
            )));
        }
        for (i, c) in columns.iter().enumerate() {
            if let Some(c) = c
                && columns[..i].contains(&Some(*c))
            {
                return Err(file_error(format!("見出し「{}」が2回あります。", headings[i])));
            }
        }
        let missing: Vec<&str> = self
            .columns
            .iter()
            .zip(self.columns_ja)
            .filter(|(c, _)| self.required.contains(c) && !columns.contains(&Some(**c)))
            .map(|(_, ja)| *ja)
            .collect();
        if !missing.is_empty() {
            return Err(file_error(format!(
                "見出し行に必要な列がありません: {}。1行目は {} としてください（ひな形をダウンロードできます）。",
                missing.join("、"),
                self.columns_ja.join(",")
            )));
        }
        let mut rows = Vec::new();
        let mut record = csv::StringRecord::new();
        // Line breaks inside cells so far: Excel keeps each within its row.
        let mut inner_breaks = breaks_in(&headings.concat());
        loop {
            let more = reader.read_record(&mut record).map_err(|e| {
                let start = e.position().map_or(0, csv::Position::byte);
                let line = reader.get_mut().index.record_line(start);
                file_error(format!("{line}行目を読み取れません（引用符 \" が閉じていません）。"))
            })?;
            if !more {
                break;
            }
            let start = record.position().map_or(0, csv::Position::byte);
            let line = reader.get_mut().index.record_line(start);
            let excel_row = line - inner_breaks;
            inner_breaks += record.iter().map(breaks_in).sum::<u64>();
            // Rows Excel leaves behind with nothing in them (「,,,,」) are not rows of data.
            if record.iter().all(|cell| cell.trim().is_empty()) {
                continue;
            }
            if rows.len() >= self.max_rows {
                return Err(file_error(format!(
                    "1回に登録できるのは{}行までです。ファイルを分けてください。",
                    self.max_rows
                )));
            }
            let problem = (record.len() != headings.len()).then(|| {
                format!("セルの数（{}）が見出しの列の数（{}）と違います。", record.len(), headings.len())
            });
            let cells = columns
                .iter()
                .zip(record.iter())
                .filter_map(|(column, cell)| Some(((*column)?, cell.to_string())))
                .collect();
            rows.push(SheetRow { line, excel_row, problem, cells });
        }
        if rows.is_empty() {
            return Err(file_error("データの行がありません。"));
        }
        Ok(rows)
    }
}

/// Feeds the line index every byte the CSV reader reads.
struct Tracked<'a> {
    data: &'a [u8],
    index: LineIndex,
}

impl std::io::Read for Tracked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.index.feed(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}
