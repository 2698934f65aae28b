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
    /// Bad rows stopped the upload: nothing was saved.
    fn stopped(&self) -> bool;
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

/// One data row: its line as people see it and its cells by column.
pub struct SheetRow {
    pub line: u64,
    cells: HashMap<&'static str, String>,
}

impl SheetRow {
    /// The cell of a column, trimmed; empty when the file has no such column.
    pub fn get(&self, column: &str) -> &str {
        self.cells.get(column).map_or("", String::as_str)
    }
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
            .flexible(false)
            .from_reader(Tracked { data: text.as_bytes(), index: LineIndex::new() });
        let header =
            reader.headers().map_err(|e| file_error(format!("見出し行を読み取れません（{e}）。")))?.clone();
        let columns: Vec<Option<&'static str>> =
            header.iter().map(|h| self.column_of(h.trim_start_matches('\u{feff}'))).collect();
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
        loop {
            let more = reader.read_record(&mut record).map_err(|e| {
                let start = e.position().map_or(0, csv::Position::byte);
                let line = reader.get_mut().index.record_line(start);
                file_error(format!(
                    "{line}行目を読み取れません（列の数が見出しと違うか、引用符が閉じていません）。"
                ))
            })?;
            if !more {
                break;
            }
            if rows.len() >= self.max_rows {
                return Err(file_error(format!(
                    "1回に登録できるのは{}行までです。ファイルを分けてください。",
                    self.max_rows
                )));
            }
            let start = record.position().map_or(0, csv::Position::byte);
            let line = reader.get_mut().index.record_line(start);
            let cells = columns
                .iter()
                .zip(record.iter())
                .filter_map(|(column, cell)| Some(((*column)?, cell.to_string())))
                .collect();
            rows.push(SheetRow { line, cells });
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
