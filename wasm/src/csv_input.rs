//! CSV input, with the CLI's column rules: a header row; the known columns `marketplace,
//! product, customer, dimension, quantity, start_time, end_time, record_id, plan, allocations`
//! in any order; every other column becomes an attribute (through [`RawRecord::set`]); empty
//! cells are missing. A row with fewer cells than the header leaves the rest missing; cells
//! beyond the header are ignored.

use metergate_core::{Field, RawRecord};

/// The data rows of a CSV text, each with the 1-based line it starts on.
pub struct CsvRows<'a> {
    reader: csv::Reader<&'a [u8]>,
    /// The text the reader reads (after the BOM), to count physical lines.
    text: &'a [u8],
    /// Bytes of `text` whose line breaks are counted in `breaks`.
    scanned: usize,
    /// Line breaks (`\n`, `\r\n` or a bare `\r`) before `scanned`.
    breaks: u64,
    header: Vec<String>,
    /// Column names the header gives more than once: every row is flagged for them.
    repeated: Vec<String>,
    row: csv::StringRecord,
    done: bool,
}

impl<'a> CsvRows<'a> {
    /// Reads the header row at once; the data rows on iteration.
    pub fn new(text: &'a str) -> CsvRows<'a> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut row = csv::StringRecord::new();
        let mut header = Vec::new();
        let mut done = true;
        // A JS string is always valid UTF-8, so reading can only end, never fail.
        if let Ok(true) = reader.read_record(&mut row) {
            header = row.iter().map(|h| h.trim().to_owned()).collect();
            done = false;
        }
        let mut repeated: Vec<String> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for h in &header {
            if !seen.insert(h.as_str()) && !repeated.contains(h) {
                repeated.push(h.clone());
            }
        }
        CsvRows {
            reader,
            text: text.as_bytes(),
            scanned: 0,
            breaks: 0,
            header,
            repeated,
            row,
            done,
        }
    }

    /// The 1-based physical line of a record that csv says starts at `byte`. csv's own line
    /// count skips blank lines and bare `\r` line ends, and its byte position may point at the
    /// blank lines before a record (or into a CRLF), so the line breaks are counted here, as
    /// the CLI's reader does. Calls come with non-decreasing `byte`.
    fn line_of(&mut self, byte: usize) -> u64 {
        let is_break = |b: Option<&u8>| matches!(b, Some(b'\n' | b'\r'));
        let mut pos = byte.max(self.scanned).min(self.text.len());
        while is_break(self.text.get(pos)) {
            pos += 1;
        }
        for i in self.scanned..pos {
            match self.text.get(i) {
                Some(b'\n') => self.breaks += 1,
                Some(b'\r') if self.text.get(i + 1) != Some(&b'\n') => self.breaks += 1,
                _ => {}
            }
        }
        self.scanned = pos;
        self.breaks + 1
    }

    /// The header's column names.
    pub fn header(&self) -> &[String] {
        &self.header
    }
}

impl Iterator for CsvRows<'_> {
    type Item = (u64, RawRecord);

    fn next(&mut self) -> Option<(u64, RawRecord)> {
        if self.done {
            return None;
        }
        match self.reader.read_record(&mut self.row) {
            Ok(true) => {}
            _ => {
                self.done = true;
                return None;
            }
        }
        let byte = self.row.position().map_or(0, |p| p.byte() as usize);
        let line = self.line_of(byte);
        let mut rec = RawRecord::default();
        for (name, cell) in self.header.iter().zip(self.row.iter()) {
            // Empty cells are missing: skipping them keeps a repeated column's value.
            if !cell.is_empty() {
                rec.set(name, Field::Text(cell.to_owned()));
            }
        }
        rec.duplicate_keys.extend(self.repeated.iter().cloned());
        Some((line, rec))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn columns_in_any_order_extra_columns_are_attributes() {
        let text = "quantity,region,marketplace,record_id\n3,eu,aws,r1\n\"4\",,gcp\n";
        let rows: Vec<_> = CsvRows::new(text).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, 2);
        assert_eq!(rows[0].1.quantity, Some(Field::Text("3".into())));
        assert_eq!(
            rows[0].1.attributes.get("region"),
            Some(&Field::Text("eu".into()))
        );
        assert_eq!(rows[0].1.record_id_text(), Some("r1"));
        assert_eq!(rows[1].0, 3);
        assert!(rows[1].1.attributes.is_empty());
        assert_eq!(rows[1].1.record_id, None);
    }

    #[test]
    fn quoted_newlines_keep_line_numbers_and_duplicates_are_flagged() {
        let text = "\u{feff}record_id,record_id,plan\n\"a\nb\",x,p\nc,,\n";
        let rows: Vec<_> = CsvRows::new(text).collect();
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), vec![2, 4]);
        assert_eq!(rows[0].1.duplicate_keys, vec!["record_id".to_owned()]);
        assert_eq!(rows[1].1.duplicate_keys, vec!["record_id".to_owned()]);
        assert_eq!(rows[1].1.record_id_text(), Some("c"));
        assert_eq!(rows[0].1.plan, Some(Field::Text("p".into())));
    }

    #[test]
    fn physical_lines_with_crlf_blank_lines_and_bare_cr() {
        let lines = |t: &str| CsvRows::new(t).map(|r| r.0).collect::<Vec<_>>();
        assert_eq!(lines("plan\r\na\r\nb\r\n"), vec![2, 3]);
        assert_eq!(lines("plan\n\na\n\n\nb\n"), vec![3, 6]);
        assert_eq!(lines("plan\ra\rb\r"), vec![2, 3]);
        assert_eq!(lines("plan\n\"x\r\ny\"\nb\n"), vec![2, 4]);
    }

    #[test]
    fn empty_text_has_no_rows() {
        assert_eq!(CsvRows::new("").count(), 0);
        assert_eq!(CsvRows::new("marketplace\n").count(), 0);
    }
}
