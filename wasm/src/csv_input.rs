//! CSV input, with the CLI's column rules: a header row; the known columns `marketplace,
//! product, customer, dimension, quantity, start_time, end_time, record_id, plan, allocations`
//! in any order; every other column becomes an attribute (through [`RawRecord::set`]); empty
//! cells are missing. A row with fewer cells than the header leaves the rest missing; cells
//! beyond the header are ignored.

use metergate_core::{Field, RawRecord};

/// The data rows of a CSV text, each with the 1-based line it starts on.
pub struct CsvRows<'a> {
    reader: csv::Reader<&'a [u8]>,
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
        for (i, h) in header.iter().enumerate() {
            if header[..i].contains(h) && !repeated.contains(h) {
                repeated.push(h.clone());
            }
        }
        CsvRows {
            reader,
            header,
            repeated,
            row,
            done,
        }
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
        let line = self.row.position().map_or(0, csv::Position::line);
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
    fn empty_text_has_no_rows() {
        assert_eq!(CsvRows::new("").count(), 0);
        assert_eq!(CsvRows::new("marketplace\n").count(), 0);
    }
}
