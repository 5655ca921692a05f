//! The one CSV reader: bytes in, chunk by chunk, [`InputRecord`]s out, each with the physical
//! line it starts on. The CLI, the WASM package and the fuzz targets all read CSV through it,
//! so they agree on every row, line number, limit and `invalid-record` finding.
//!
//! It is push-style and does no I/O: the caller feeds whatever bytes it has
//! ([`CsvReader::feed`], or [`CsvReader::next_in`] to look at each row's cells as it comes),
//! then calls [`CsvReader::finish`] at the end of the input. Tokenizing is `csv-core`'s
//! (RFC 4180 quoting; `\n`, `\r\n` and a bare `\r` end a record; blank lines are skipped).
//!
//! The rules:
//! - The first record is the header. It must name at least one record column
//!   ([`RECORD_FIELDS`]), at most [`MAX_COLUMNS`] columns, each once, in UTF-8. Names are
//!   trimmed of spaces, and a byte-order mark (U+FEFF) at the start of any name is removed (a
//!   header pasted together from several exports may carry one in a later cell; a column name
//!   never legitimately starts with one). Otherwise the input cannot be used: [`CsvError`].
//! - A byte-order mark at the very start of the input is skipped. Elsewhere in data cells
//!   U+FEFF is an ordinary character.
//! - Every other column is an attribute; an empty cell is a missing value.
//! - A data row with more or fewer cells than the header, or a cell that is not UTF-8, is
//!   [`Row::Unreadable`] with an `invalid-record` finding on `row` or on that column.
//! - Lines are physical: `\n`, `\r\n` and a bare `\r` each end one, inside quoted cells too,
//!   and blank lines count. The count is a number, so memory is bounded by the longest record,
//!   never by the number of line breaks.

use std::collections::HashMap;

use csv_core::{ReadRecordResult, Reader};

use crate::input::{unreadable, InputRecord, Row};
use crate::model::{Field, RawRecord, RECORD_FIELDS};
use crate::parse::MAX_COLUMNS;

/// The input as a whole cannot be used (no usable header): the run stops here.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct CsvError {
    /// The 1-based line the problem is on.
    pub line: u64,
    /// What is wrong, for the user.
    pub message: String,
}

const BOM: &[u8; 3] = b"\xef\xbb\xbf";
const FIRST_OUT: usize = 4096;
const FIRST_ENDS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    Marketplace,
    Product,
    Customer,
    Dimension,
    Quantity,
    StartTime,
    EndTime,
    RecordId,
    Plan,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Column {
    Known(Known),
    Allocations,
    Attribute(String),
}

fn column_of(name: &str) -> Column {
    match name {
        "marketplace" => Column::Known(Known::Marketplace),
        "product" => Column::Known(Known::Product),
        "customer" => Column::Known(Known::Customer),
        "dimension" => Column::Known(Known::Dimension),
        "quantity" => Column::Known(Known::Quantity),
        "start_time" => Column::Known(Known::StartTime),
        "end_time" => Column::Known(Known::EndTime),
        "record_id" => Column::Known(Known::RecordId),
        "plan" => Column::Known(Known::Plan),
        "allocations" => Column::Allocations,
        other => Column::Attribute(other.to_owned()),
    }
}

fn slot(rec: &mut RawRecord, k: Known) -> &mut Option<Field> {
    match k {
        Known::Marketplace => &mut rec.marketplace,
        Known::Product => &mut rec.product,
        Known::Customer => &mut rec.customer,
        Known::Dimension => &mut rec.dimension,
        Known::Quantity => &mut rec.quantity,
        Known::StartTime => &mut rec.start_time,
        Known::EndTime => &mut rec.end_time,
        Known::RecordId => &mut rec.record_id,
        Known::Plan => &mut rec.plan,
    }
}

fn column_name(c: &Column) -> &str {
    match c {
        Column::Known(Known::Marketplace) => "marketplace",
        Column::Known(Known::Product) => "product",
        Column::Known(Known::Customer) => "customer",
        Column::Known(Known::Dimension) => "dimension",
        Column::Known(Known::Quantity) => "quantity",
        Column::Known(Known::StartTime) => "start_time",
        Column::Known(Known::EndTime) => "end_time",
        Column::Known(Known::RecordId) => "record_id",
        Column::Known(Known::Plan) => "plan",
        Column::Allocations => "allocations",
        Column::Attribute(a) => a,
    }
}

struct Header {
    names: Vec<String>,
    columns: Vec<Column>,
    record_id_col: Option<usize>,
}

enum Step {
    NeedInput,
    Record,
    End,
}

/// A streaming CSV reader. See the module docs for the rules.
pub struct CsvReader {
    core: Reader,
    /// The cells of the record being read (or read last), back to back.
    out: Vec<u8>,
    /// Where each cell of `out` ends.
    ends: Vec<usize>,
    nout: usize,
    nend: usize,
    /// Cells of the record completed last (for [`CsvReader::cells`]).
    last_nend: usize,
    /// Line breaks consumed so far.
    breaks: u64,
    /// The last byte consumed was a `\r` (so a `\n` right after it ends no new line).
    prev_cr: bool,
    /// Inside a record: its first byte has been consumed.
    in_record: bool,
    /// The line the current record starts on.
    record_line: u64,
    /// Bytes of a leading byte-order mark matched so far.
    bom_seen: usize,
    bom_done: bool,
    header: Option<Header>,
    bytes: u64,
    /// Finished, or stopped by a [`CsvError`].
    done: bool,
}

impl Default for CsvReader {
    fn default() -> Self {
        CsvReader::new()
    }
}

impl CsvReader {
    /// A reader at the start of an input.
    pub fn new() -> CsvReader {
        CsvReader {
            core: Reader::new(),
            out: vec![0; FIRST_OUT],
            ends: vec![0; FIRST_ENDS],
            nout: 0,
            nend: 0,
            last_nend: 0,
            breaks: 0,
            prev_cr: false,
            in_record: false,
            record_line: 0,
            bom_seen: 0,
            bom_done: false,
            header: None,
            bytes: 0,
            done: false,
        }
    }

    /// Feeds one chunk: an iterator over the rows it completes (a record split across chunks
    /// comes out with the chunk that ends it). A [`CsvError`] ends the input: nothing follows
    /// it.
    pub fn feed<'r, 'c>(&'r mut self, chunk: &'c [u8]) -> Feed<'r, 'c> {
        Feed {
            reader: self,
            input: chunk,
        }
    }

    /// Reads from `input` until a row is complete (returned, with `input` advanced past it),
    /// the header has just been read (`None`, with input possibly left), or `input` is used
    /// up (`None`). Between calls, [`CsvReader::cells`] shows the row returned last.
    pub fn next_in(&mut self, input: &mut &[u8]) -> Option<Result<InputRecord, CsvError>> {
        if self.done {
            *input = &[];
            return None;
        }
        if !self.bom_done {
            while self.bom_seen < BOM.len() {
                let (&b, rest) = input.split_first()?;
                if Some(&b) != BOM.get(self.bom_seen) {
                    break;
                }
                self.bom_seen += 1;
                self.bytes += 1;
                *input = rest;
            }
            self.feed_partial_bom();
        }
        loop {
            if !self.in_record {
                let blank = input
                    .iter()
                    .take_while(|b| matches!(b, b'\n' | b'\r'))
                    .count();
                let (skipped, rest) = input.split_at(blank);
                self.count_breaks(skipped);
                self.bytes += blank as u64;
                *input = rest;
                if input.is_empty() {
                    return None;
                }
                if let Some(r) = self.simple_record(input) {
                    return Some(r);
                }
                self.start_record();
            }
            let before = input.len();
            let step = self.step(input, false);
            self.bytes += (before - input.len()) as u64;
            match step {
                Step::NeedInput | Step::End => return None,
                Step::Record => {
                    let header_before = self.header.is_some();
                    if let Some(r) = self.complete() {
                        return Some(r);
                    }
                    if !header_before {
                        return None;
                    }
                }
            }
        }
    }

    /// Ends the input: the last row when it had no line break after it. An input without a
    /// header row is a [`CsvError`]. Calls after the first return `Ok(None)`.
    pub fn finish(&mut self) -> Result<Option<InputRecord>, CsvError> {
        if self.done {
            return Ok(None);
        }
        self.feed_partial_bom();
        let mut row = None;
        if let Step::Record = self.step(&mut &[][..], true) {
            row = self.complete();
        }
        self.done = true;
        if self.header.is_none() {
            return Err(CsvError {
                line: 1,
                message: format!(
                    "no header row: the first line must name the columns ({})",
                    RECORD_FIELDS.join(", ")
                ),
            });
        }
        row.transpose()
    }

    /// The header's column names as read (trimmed, byte-order marks removed), once read.
    pub fn headers(&self) -> Option<&[String]> {
        self.header.as_ref().map(|h| h.names.as_slice())
    }

    /// The raw cells of the row returned last (valid until the next call that reads).
    pub fn cells(&self) -> Cells<'_> {
        let ends = self.ends.get(..self.last_nend).unwrap_or_default();
        let len = ends.last().copied().unwrap_or(0);
        Cells {
            out: self.out.get(..len).unwrap_or_default(),
            ends,
        }
    }

    /// Bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// Bytes the reader holds on to between chunks: bounded by the longest record read.
    pub fn buffered_bytes(&self) -> usize {
        self.out.capacity() + self.ends.capacity() * std::mem::size_of::<usize>()
    }

    /// The fast path for the common data row: a whole line in `input`, ended by `\n`, with no
    /// quote and no `\r` in it. csv-core would split it at every comma and copy the cells
    /// verbatim, ending on the `\n`; this does the same with `memchr` instead of its state
    /// machine. csv-core is left in the state its last record left it in, which is the state
    /// a record ended by `\n` leaves it in, so the rows after this one read the same. Anything
    /// else (the header, a quoted cell, a `\r`, a line that the chunk cuts) goes through
    /// csv-core.
    fn simple_record(&mut self, input: &mut &[u8]) -> Option<Result<InputRecord, CsvError>> {
        self.header.as_ref()?;
        let n = memchr::memchr(b'\n', input)?;
        let line = input.get(..n)?;
        if line.is_empty() || memchr::memchr2(b'"', b'\r', line).is_some() {
            return None;
        }
        let cells = memchr::memchr_iter(b',', line).count() + 1;
        if self.out.len() < line.len() {
            self.out.resize(line.len().max(self.out.len() * 2), 0);
        }
        if self.ends.len() < cells {
            self.ends.resize(cells.max(self.ends.len() * 2), 0);
        }
        let mut nout = 0;
        let mut nend = 0;
        for cell in line.split(|&b| b == b',') {
            let end = nout + cell.len();
            if let Some(dst) = self.out.get_mut(nout..end) {
                dst.copy_from_slice(cell);
            }
            nout = end;
            if let Some(slot) = self.ends.get_mut(nend) {
                *slot = end;
            }
            nend += 1;
        }
        self.in_record = true;
        self.record_line = self.breaks + 1;
        self.nout = nout;
        self.nend = nend;
        // One line break, and the line starts with neither `\n` nor `\r` (blank lines were
        // skipped), so a `\r` ending the chunk before it joins nothing.
        self.breaks += 1;
        self.prev_cr = false;
        self.bytes += (n + 1) as u64;
        *input = input.get(n + 1..).unwrap_or_default();
        self.complete()
    }

    fn start_record(&mut self) {
        self.in_record = true;
        self.record_line = self.breaks + 1;
        self.nout = 0;
        self.nend = 0;
    }

    /// The start of the input matched part of a byte-order mark and then differed: those
    /// bytes are data after all.
    fn feed_partial_bom(&mut self) {
        if self.bom_done {
            return;
        }
        self.bom_done = true;
        let n = self.bom_seen;
        if n > 0 && n < BOM.len() {
            self.start_record();
            let mut partial: &[u8] = BOM.get(..n).unwrap_or_default();
            // No line break in these bytes: they never complete a record.
            let _ = self.step(&mut partial, false);
        }
    }

    fn count_breaks(&mut self, bytes: &[u8]) {
        // The common case, no `\r` at all: count the `\n`s (a loop the compiler vectorizes).
        if !bytes.is_empty() && !bytes.contains(&b'\r') {
            let n = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
            // A `\n` right after a `\r` that ended the last chunk ends no new line.
            let joined = u64::from(self.prev_cr && bytes.first() == Some(&b'\n'));
            self.breaks += n - joined;
            self.prev_cr = false;
            return;
        }
        let mut prev_cr = self.prev_cr;
        let mut n = 0u64;
        for &b in bytes {
            n += u64::from(b == b'\r' || (b == b'\n' && !prev_cr));
            prev_cr = b == b'\r';
        }
        self.breaks += n;
        self.prev_cr = prev_cr;
    }

    /// Runs csv-core over `input` until a record ends, the input is used up, or (at the end
    /// of the input, `eof`) there is nothing more.
    fn step(&mut self, input: &mut &[u8], eof: bool) -> Step {
        loop {
            if input.is_empty() && !eof {
                return Step::NeedInput;
            }
            let (res, nin, nout, nend) = self.core.read_record(
                input,
                self.out.get_mut(self.nout..).unwrap_or_default(),
                self.ends.get_mut(self.nend..).unwrap_or_default(),
            );
            let (used, rest) = input.split_at(nin.min(input.len()));
            self.count_breaks(used);
            *input = rest;
            self.nout += nout;
            self.nend += nend;
            match res {
                ReadRecordResult::InputEmpty => {
                    if eof {
                        return Step::End;
                    }
                }
                ReadRecordResult::OutputFull => {
                    let n = self.out.len().max(FIRST_OUT) * 2;
                    self.out.resize(n, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let n = self.ends.len().max(FIRST_ENDS) * 2;
                    self.ends.resize(n, 0);
                }
                ReadRecordResult::Record => return Step::Record,
                ReadRecordResult::End => return Step::End,
            }
        }
    }

    /// A record is complete: the header, or a data row.
    fn complete(&mut self) -> Option<Result<InputRecord, CsvError>> {
        self.in_record = false;
        self.last_nend = self.nend;
        match &self.header {
            None => match self.read_header() {
                Ok(h) => {
                    self.header = Some(h);
                    None
                }
                Err(e) => {
                    self.done = true;
                    Some(Err(e))
                }
            },
            Some(h) => Some(Ok(InputRecord {
                line: self.record_line,
                row: convert(h, self.cells()),
            })),
        }
    }

    fn read_header(&self) -> Result<Header, CsvError> {
        let cells = self.cells();
        let err = |message: String| CsvError {
            line: self.record_line,
            message,
        };
        if cells.is_empty() || (cells.len() == 1 && cells.get(0).is_some_and(<[u8]>::is_empty)) {
            return Err(err(format!(
                "no header row: the first line must name the columns ({})",
                RECORD_FIELDS.join(", ")
            )));
        }
        if cells.len() > MAX_COLUMNS {
            return Err(err(format!(
                "the header has {} columns; the limit is {MAX_COLUMNS}",
                cells.len()
            )));
        }
        let mut names = Vec::with_capacity(cells.len());
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, h) in cells.iter().enumerate() {
            let h = std::str::from_utf8(h).map_err(|_| {
                err(format!(
                    "header column {} is not valid UTF-8; save the file as UTF-8",
                    i + 1
                ))
            })?;
            let h = h.trim_start_matches('\u{feff}').trim();
            if let Some(&first) = seen.get(h) {
                return Err(err(format!(
                    "header column {h:?} appears twice (columns {} and {}); each column may appear once",
                    first + 1,
                    i + 1
                )));
            }
            seen.insert(h, i);
            names.push(h.to_owned());
        }
        let columns: Vec<Column> = names.iter().map(|h| column_of(h)).collect();
        if !columns.iter().any(|c| !matches!(c, Column::Attribute(_))) {
            return Err(err(format!(
                "no usable header: none of the columns {} is there (found {})",
                RECORD_FIELDS.join(", "),
                names
                    .iter()
                    .take(12)
                    .map(|h| format!("{h:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let record_id_col = columns
            .iter()
            .position(|c| *c == Column::Known(Known::RecordId));
        Ok(Header {
            names,
            columns,
            record_id_col,
        })
    }
}

/// One data row's cells as a record, or why it is not one.
fn convert(h: &Header, cells: Cells<'_>) -> Row {
    let record_id = || {
        let cell = cells.get(h.record_id_col?)?;
        let s = std::str::from_utf8(cell).ok()?;
        (!s.is_empty()).then(|| s.to_owned())
    };
    if cells.len() != h.columns.len() {
        let n = cells.len();
        return Row::Unreadable {
            finding: unreadable(
                "row",
                format!(
                    "the row has {n} field{}, the header has {}",
                    if n == 1 { "" } else { "s" },
                    h.columns.len()
                ),
                "give every row one value per header column; quote values that hold commas",
            ),
            record_id: record_id(),
        };
    }
    let mut rec = RawRecord::default();
    // One UTF-8 check over the whole row is much cheaper than one per cell. A cell boundary
    // inside a character (possible only when a cell alone is not UTF-8) fails `get`, and that
    // cell is checked alone, which names it.
    let row_text = std::str::from_utf8(cells.out).ok();
    let mut start = 0;
    for (&end, col) in cells.ends.iter().zip(&h.columns) {
        let (from, to) = (start, end);
        start = end;
        if from >= to {
            continue;
        }
        let cell = cells.out.get(from..to).unwrap_or_default();
        let checked = match row_text.and_then(|t| t.get(from..to)) {
            Some(t) => Ok(t),
            None => std::str::from_utf8(cell),
        };
        let text = match checked {
            Ok(t) => t,
            Err(e) => {
                let field = column_name(col);
                return Row::Unreadable {
                    finding: unreadable(
                        field,
                        format!(
                            "{field} is not valid UTF-8 (bad byte at position {})",
                            e.valid_up_to() + 1
                        ),
                        "save the file as UTF-8",
                    ),
                    record_id: record_id(),
                };
            }
        };
        match col {
            Column::Known(k) => *slot(&mut rec, *k) = Some(Field::Text(text.to_owned())),
            Column::Allocations => {
                rec.set("allocations", Field::Text(text.to_owned()));
            }
            Column::Attribute(a) => {
                rec.set(a, Field::Text(text.to_owned()));
            }
        }
    }
    Row::Record(rec)
}

/// The raw cells of one CSV record, unquoted.
#[derive(Clone, Copy, Debug)]
pub struct Cells<'a> {
    out: &'a [u8],
    ends: &'a [usize],
}

impl<'a> Cells<'a> {
    /// How many cells.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// No cells at all.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Cell `i`, 0-based.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let end = *self.ends.get(i)?;
        let start = match i.checked_sub(1) {
            Some(p) => *self.ends.get(p)?,
            None => 0,
        };
        self.out.get(start..end)
    }

    /// Every cell in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let this = *self;
        (0..this.len()).filter_map(move |i| this.get(i))
    }
}

/// The rows one chunk completes: see [`CsvReader::feed`].
pub struct Feed<'r, 'c> {
    reader: &'r mut CsvReader,
    input: &'c [u8],
}

impl Iterator for Feed<'_, '_> {
    type Item = Result<InputRecord, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.reader.next_in(&mut self.input) {
                return Some(r);
            }
            if self.input.is_empty() {
                return None;
            }
        }
    }
}

/// Reads a whole CSV input at once: every row up to the first [`CsvError`] (which, if any,
/// comes last).
pub fn read_all(bytes: &[u8]) -> Vec<Result<InputRecord, CsvError>> {
    let mut r = CsvReader::new();
    let mut rows: Vec<_> = r.feed(bytes).collect();
    if !rows.last().is_some_and(Result::is_err) {
        match r.finish() {
            Ok(Some(row)) => rows.push(Ok(row)),
            Ok(None) => {}
            Err(e) => rows.push(Err(e)),
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &[u8]) -> Vec<InputRecord> {
        read_all(text).into_iter().map(|r| r.unwrap()).collect()
    }

    fn lines(text: &str) -> Vec<u64> {
        rows(text.as_bytes()).iter().map(|r| r.line).collect()
    }

    /// Feeds `text` one byte at a time.
    fn bytewise(text: &[u8]) -> Vec<Result<InputRecord, CsvError>> {
        let mut r = CsvReader::new();
        let mut out = Vec::new();
        for b in text.chunks(1) {
            out.extend(r.feed(b));
        }
        if !out.last().is_some_and(Result::is_err) {
            if let Some(x) = r.finish().transpose() {
                out.push(x);
            }
        }
        out
    }

    #[test]
    fn lines_and_attributes() {
        let recs = rows(b"quantity,marketplace,team\n3,aws,a\n\"4\nx\",azure,\n5,gcp\n");
        assert_eq!(recs.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 3, 5]);
        let Row::Record(r) = &recs[0].row else {
            panic!()
        };
        assert_eq!(r.quantity, Some(Field::Text("3".into())));
        assert_eq!(r.attributes.get("team"), Some(&Field::Text("a".into())));
        let Row::Record(r) = &recs[1].row else {
            panic!()
        };
        assert_eq!(r.quantity, Some(Field::Text("4\nx".into())));
        assert!(r.attributes.is_empty());
        let Row::Unreadable { finding, .. } = &recs[2].row else {
            panic!()
        };
        assert_eq!(finding.field.as_deref(), Some("row"));
    }

    #[test]
    fn lines_are_physical() {
        assert_eq!(lines("quantity\n1\n\n\n2\n\n3\n"), [2, 5, 7]);
        assert_eq!(lines("quantity\r\n1\r\n\r\n2\r\n"), [2, 4]);
        assert_eq!(lines("quantity\r1\r2\r\r3"), [2, 3, 5]);
        assert_eq!(lines("\u{feff}quantity\n\"1\n2\"\n3\n"), [2, 4]);
        assert_eq!(lines("\n\nquantity\n1"), [4]);
        assert_eq!(lines("plan\n\"x\r\ny\"\nb\n"), [2, 4]);
    }

    #[test]
    fn chunk_boundaries_change_nothing() {
        let texts: [&[u8]; 5] = [
            b"\xef\xbb\xbfquantity,plan\r\n1,\"a\r\nb\"\r\n\r\n2,c\r3,d",
            b"\xef\xbbquantity\n1\n",
            b"quantity,plan\n1\n2,x,y\n\xff,z\n",
            b"quantity\n",
            b"",
        ];
        for t in texts {
            assert_eq!(bytewise(t), read_all(t), "{t:?}");
        }
    }

    #[test]
    fn the_fast_path_reads_as_csv_core_does() {
        // Whole inputs take the fast path for plain lines; one byte at a time never does
        // (a line is never whole in one chunk), so every row goes through csv-core there.
        let texts: [&[u8]; 8] = [
            b"record_id,quantity,plan,team\nr1,3,gold,a\nr2,,,\n,,,\nr3,4,\"x,y\",b\nr4,5,s,t\n",
            b"quantity,plan\n1,a\r\n2,b\n\n\n3,c\r4,d\n5\n6,e,f\n7,\xff\n8,\xc3\n9,\xc3\xa9\n",
            b"quantity,plan\n1,a\n2,b",
            b"quantity,plan\r\n1,a\n2,b\r\n\r\n3,c\n",
            b"quantity,plan\n\"1\",a\n1,\"a\nb\"\n2,b\"c\n3,d\n",
            b"quantity\n1\n,\n,,\n\n2\n",
            "quantity,plan\n1,\u{feff}gold\n2,日本\n".as_bytes(),
            b"\xef\xbb\xbfquantity,plan\n1,a\n",
        ];
        for t in texts {
            assert_eq!(read_all(t), bytewise(t), "{t:?}");
        }
        let mut r = CsvReader::new();
        let _: Vec<_> = r.feed(b"quantity,plan,team\n1,a,b\n").collect();
        assert_eq!(
            r.cells().iter().collect::<Vec<_>>(),
            [&b"1"[..], &b"a"[..], &b"b"[..]]
        );
    }

    #[test]
    fn a_partial_bom_is_data() {
        let r = read_all(b"\xef\xbbquantity\n1\n");
        assert!(r[0].is_err(), "{r:?}");
    }

    #[test]
    fn header_problems_stop_the_input() {
        let err = |t: &str| read_all(t.as_bytes()).pop().unwrap().unwrap_err();
        assert_eq!(err("").line, 1);
        assert!(err("a,b\n1,2\n").message.contains("no usable header"));
        assert!(err("quantity,quantity\n1,2\n").message.contains("twice"));
        let cols = |n: usize| (0..n).map(|i| format!(",c{i}")).collect::<String>();
        let wide = format!("quantity{}\n", cols(MAX_COLUMNS));
        assert!(err(&wide).message.contains("limit is 1024"));
        let ok = format!("quantity{}\n", cols(MAX_COLUMNS - 1));
        assert!(read_all(ok.as_bytes()).is_empty());
        assert!(read_all(b"quantity\n").is_empty());
        assert!(read_all(b"quantity").is_empty());
    }

    #[test]
    fn a_bom_at_the_start_of_any_header_name_is_removed() {
        let mut r = CsvReader::new();
        let _: Vec<_> = r
            .feed("\u{feff}record_id,\u{feff}product, quantity \n".as_bytes())
            .collect();
        assert_eq!(
            r.headers().unwrap(),
            ["record_id".to_owned(), "product".into(), "quantity".into()]
        );
        let recs = rows("quantity,plan\n1,\u{feff}gold\n".as_bytes());
        let Row::Record(rec) = &recs[0].row else {
            panic!()
        };
        assert_eq!(rec.plan, Some(Field::Text("\u{feff}gold".into())));
    }

    #[test]
    fn cells_not_utf8_name_the_column() {
        let recs = rows(b"record_id,quantity,plan\nr1,\xff,x\n");
        let Row::Unreadable { finding, record_id } = &recs[0].row else {
            panic!()
        };
        assert_eq!(finding.field.as_deref(), Some("quantity"));
        assert_eq!(record_id.as_deref(), Some("r1"));
        // A character split between two cells is caught too.
        let recs = rows(b"quantity,plan\n\xc3,\xa9\n");
        assert!(matches!(recs[0].row, Row::Unreadable { .. }));
    }

    #[test]
    fn memory_stays_bounded_by_the_longest_record_not_by_line_breaks() {
        let mut r = CsvReader::new();
        assert_eq!(r.feed(b"quantity\n1\n").count(), 1);
        let start = r.buffered_bytes();
        let blank = vec![b'\n'; 1 << 20];
        let cr = vec![b'\r'; 1 << 20];
        for i in 0..10 {
            assert_eq!(r.feed(if i % 2 == 0 { &blank } else { &cr }).count(), 0);
        }
        // Ten million line breaks inside one quoted cell are one record: bounded by its size.
        assert_eq!(r.buffered_bytes(), start);
        let recs: Vec<_> = r.feed(b"2\n").collect();
        // Each `\r` block followed by a `\n` block joins one CRLF across the border: 4 of them.
        assert_eq!(
            recs[0].as_ref().unwrap().line,
            3 + 10 * (1 << 20) as u64 - 4
        );
        assert_eq!(r.feed(b"\"").count(), 0);
        for _ in 0..10 {
            assert_eq!(r.feed(&blank).count(), 0);
        }
        let recs: Vec<_> = r.feed(b"\"\n").collect();
        assert_eq!(recs.len(), 1);
        assert!(r.buffered_bytes() <= 4 * 10 * (1 << 20));
    }
}
