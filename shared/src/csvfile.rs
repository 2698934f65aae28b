//! CSV files as people handle them: the line numbers an editor shows for what we read, and cells a
//! spreadsheet will not run for what we write.

use std::borrow::Cow;
use std::collections::VecDeque;

/// First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A cell a spreadsheet shows as text: one that would start a formula gets a leading `'`, as OWASP
/// recommends (Excel and LibreOffice hide the quote and show the rest as typed).
pub fn spreadsheet_safe(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(FORMULA_STARTS) { Cow::Owned(format!("'{cell}")) } else { Cow::Borrowed(cell) }
}

/// Writes one record with every cell made spreadsheet-safe: every CSV the system writes goes
/// through here, so no writer can forget a cell.
pub fn write_record<W, I, S>(out: &mut csv::Writer<W>, cells: I) -> csv::Result<()>
where
    W: std::io::Write,
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    for cell in cells {
        out.write_field(spreadsheet_safe(cell.as_ref()).as_bytes())?;
    }
    out.write_record(None::<&[u8]>)
}

/// Physical line numbers (1-based) of the records a `csv::Reader` reads, as an editor shows them.
///
/// `csv::Position::line()` cannot be used for this: it is the line where the reader stopped after
/// the previous record, so it is one short in CRLF files (the `\n` of the previous record's `\r\n`
/// is still unread) and points at the first of any blank lines the reader skips before a record.
/// `Position::byte()` is exact, though (also after a UTF-8 BOM), so this index, fed every byte the
/// reader reads, maps a record's start byte to the line its first character is on. Line breaks are
/// `\n`, `\r\n` and a lone `\r` (all of which end a record for the csv crate, and which editors
/// show as line breaks), also inside quoted fields, so a record after a multi-line field is
/// reported at its own line.
#[derive(Debug)]
pub struct LineIndex {
    /// Bytes fed so far.
    fed: u64,
    /// Line of the next byte.
    line: u64,
    /// The next byte starts a line.
    at_line_start: bool,
    /// The last byte was `\r`: a `\n` now completes the same line break.
    after_cr: bool,
    /// (byte offset, line) of each non-blank line start fed but not yet passed by a query.
    starts: VecDeque<(u64, u64)>,
}

impl Default for LineIndex {
    fn default() -> Self {
        Self { fed: 0, line: 1, at_line_start: true, after_cr: false, starts: VecDeque::new() }
    }
}

impl LineIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next bytes of the file, in order.
    pub fn feed(&mut self, bytes: &[u8]) {
        let is_break = |b: &u8| *b == b'\n' || *b == b'\r';
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => {
                    if !self.after_cr {
                        self.line += 1;
                    }
                    self.after_cr = false;
                    self.at_line_start = true;
                    i += 1;
                }
                b'\r' => {
                    self.line += 1;
                    self.after_cr = true;
                    self.at_line_start = true;
                    i += 1;
                }
                _ => {
                    if self.at_line_start {
                        self.starts.push_back((self.fed + i as u64, self.line));
                        self.at_line_start = false;
                    }
                    self.after_cr = false;
                    // The rest of the line needs no look.
                    i += bytes[i..].iter().position(is_break).unwrap_or(bytes.len() - i);
                }
            }
        }
        self.fed += bytes.len() as u64;
    }

    /// The line of the record that starts at byte `start` (its `csv::Position::byte()`). Queries
    /// must come in file order; the index forgets the lines before `start`.
    ///
    /// The reader starts a record right after the previous record's terminator: at a line start,
    /// or at the `\n` of a `\r\n`. It skips blank lines, so the record's first character is the
    /// first non-blank line start at or after `start`.
    pub fn record_line(&mut self, start: u64) -> u64 {
        while self.starts.front().is_some_and(|&(offset, _)| offset < start) {
            self.starts.pop_front();
        }
        // Nothing left: the reader has not been fed the record (cannot happen for a record it
        // returned); the current line is the best answer.
        self.starts.front().map_or(self.line, |&(_, line)| line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Read;

    /// Feeds the index what the CSV reader reads, at most `chunk` bytes at a time.
    struct Tracked<'a> {
        data: &'a [u8],
        chunk: usize,
        index: LineIndex,
    }

    impl Read for Tracked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.chunk).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.index.feed(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// (first field, reported line) of each data record.
    fn lines(data: &[u8], chunk: usize) -> Vec<(String, u64)> {
        let tracked = Tracked { data, chunk, index: LineIndex::new() };
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(tracked);
        reader.byte_headers().unwrap();
        let mut record = csv::ByteRecord::new();
        let mut out = Vec::new();
        while reader.read_byte_record(&mut record).unwrap() {
            let start = record.position().unwrap().byte();
            let line = reader.get_mut().index.record_line(start);
            out.push((String::from_utf8_lossy(&record[0]).into_owned(), line));
        }
        out
    }

    fn expect(data: &str, expected: &[(&str, u64)]) {
        let expected: Vec<(String, u64)> = expected.iter().map(|(f, l)| (f.to_string(), *l)).collect();
        // Not 3 bytes: csv-core takes a first read of exactly a BOM for the end of the file (the
        // server reads 8 KiB at a time, so only a file holding nothing but a BOM is read so).
        for chunk in [1, 2, 4, 7, 8192] {
            assert_eq!(lines(data.as_bytes(), chunk), expected, "{data:?} read {chunk} bytes at a time");
        }
    }

    #[test]
    fn lines_are_the_editors() {
        let abc = [("a", 2), ("b", 3), ("c", 4)];
        expect("h,v\na,1\nb,2\nc,3\n", &abc);
        expect("h,v\r\na,1\r\nb,2\r\nc,3\r\n", &abc);
        expect("h,v\ra,1\rb,2\rc,3\r", &abc);
        expect("\u{feff}h,v\r\na,1\r\nb,2\r\nc,3", &abc);
        // A quoted field over three lines: the next record is three lines further.
        expect("h,v\na,\"x\ny\nz\"\nb,2\n", &[("a", 2), ("b", 5)]);
        expect("h,v\r\na,\"x\r\ny\r\nz\"\r\nb,2\r\n", &[("a", 2), ("b", 5)]);
        expect("h,v\n\"a\nb\",1\nc,2\n", &[("a\nb", 2), ("c", 4)]);
        // Blank lines are skipped by the reader but still count.
        expect("h,v\na,1\n\n\nb,2\nc,3\n", &[("a", 2), ("b", 5), ("c", 6)]);
        expect("h,v\r\n\r\na,1\r\n\r\n\r\nb,2\r\n", &[("a", 3), ("b", 6)]);
    }

    proptest! {
        /// Any mix of line endings, blank lines and multi-line quoted fields, read in any chunk
        /// size: every record is reported at the line it starts on.
        #[test]
        fn every_record_is_reported_where_it_starts(
            records in proptest::collection::vec((0usize..3, 0usize..4, any::<bool>()), 1..20),
            cr_only in any::<bool>(),
            chunk in 1usize..64,
        ) {
            // LF and CRLF mix freely; a lone CR only in a file of its own (followed by an LF it
            // would be a CRLF).
            let mut text = String::from(if cr_only { "h,v\r" } else { "h,v\n" });
            let mut line = 2u64;
            let mut expected = Vec::new();
            for (i, &(blank, inner, crlf)) in records.iter().enumerate() {
                let eol = if cr_only { "\r" } else if crlf { "\r\n" } else { "\n" };
                for _ in 0..blank {
                    text.push_str(eol);
                    line += 1;
                }
                let name = format!("r{i}");
                expected.push((name.clone(), line));
                let quoted: Vec<&str> = (0..=inner).map(|_| "x").collect();
                text.push_str(&format!("{name},\"{}\"{eol}", quoted.join(eol)));
                line += inner as u64 + 1;
            }
            prop_assert_eq!(lines(text.as_bytes(), chunk), expected);
        }
    }

    #[test]
    fn formula_cells_are_neutralised() {
        for cell in ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "=HYPERLINK(\"http://x\")"] {
            assert_eq!(spreadsheet_safe(cell), format!("'{cell}"));
        }
        for cell in ["", "山田", "03", "1985-04-01", "'=1", " =1", "a=b", "line 3: bad"] {
            assert!(matches!(spreadsheet_safe(cell), Cow::Borrowed(c) if c == cell), "{cell:?}");
        }
    }

    #[test]
    fn written_records_read_back_neutralised() {
        let mut out = csv::Writer::from_writer(Vec::new());
        write_record(&mut out, ["=cmd|' /C calc'!A0", "ok", "a,\"b\"", "-2"]).unwrap();
        let bytes = out.into_inner().unwrap();
        let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(bytes.as_slice());
        let record = reader.records().next().unwrap().unwrap();
        assert_eq!(record.iter().collect::<Vec<_>>(), ["'=cmd|' /C calc'!A0", "ok", "a,\"b\"", "'-2"]);
    }
}
