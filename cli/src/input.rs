//! Readers for CSV, JSON (an array) and JSON Lines that stream [`RawRecord`]s with the
//! physical line each one starts on.
//!
//! A row the reader cannot turn into a record (a CSV row with the wrong number of fields, a
//! cell that is not UTF-8, a JSON Lines line that is not JSON) comes out as
//! [`Row::Unreadable`] with an `invalid-record` finding, so the caller can give it a verdict and
//! go on. Only problems with the file as a whole (cannot open, no usable CSV header, a JSON
//! array that is malformed) stop the run with a [`CliError`].

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use metergate_core::csv_reader::{Cells, CsvError, CsvReader};
use metergate_core::RawRecord;

use crate::error::{CliError, Location};

/// Rule id of findings made by the input layer (the same as the core's form checks).
pub const RULE_FORM: &str = metergate_core::parse::RULE_FORM;

const READ_BUFFER: usize = 256 * 1024;

/// The format of an input file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// CSV with a header row.
    Csv,
    /// A JSON array of record objects.
    Json,
    /// JSON Lines: one record object per line.
    Jsonl,
}

impl InputFormat {
    /// The format an extension stands for: `.csv`, `.json`, `.jsonl` / `.ndjson`.
    pub fn from_extension(path: &Path) -> Option<InputFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(InputFormat::Csv),
            "json" => Some(InputFormat::Json),
            "jsonl" | "ndjson" => Some(InputFormat::Jsonl),
            _ => None,
        }
    }
}

/// An input named on the command line: a file, or stdin (`-`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputPath {
    /// The name as given (`-` for stdin): what messages and `source.file` show.
    pub name: String,
    /// The file, or `None` for stdin.
    pub path: Option<PathBuf>,
}

impl InputPath {
    /// Stdin.
    pub fn stdin() -> InputPath {
        InputPath {
            name: "-".to_owned(),
            path: None,
        }
    }

    /// From a command-line argument; `-` is stdin.
    pub fn from_arg(arg: &OsStr) -> InputPath {
        if arg == "-" {
            return InputPath::stdin();
        }
        InputPath {
            name: arg.to_string_lossy().into_owned(),
            path: Some(PathBuf::from(arg)),
        }
    }

    /// The inputs of a command: the arguments, or stdin when there are none. Stdin may be
    /// named once only.
    pub fn list(args: &[PathBuf]) -> Result<Vec<InputPath>, CliError> {
        if args.is_empty() {
            return Ok(vec![InputPath::stdin()]);
        }
        let inputs: Vec<InputPath> = args
            .iter()
            .map(|a| InputPath::from_arg(a.as_os_str()))
            .collect();
        if inputs.iter().filter(|i| i.path.is_none()).count() > 1 {
            return Err(CliError::Usage("stdin (-) can be read only once".into()));
        }
        Ok(inputs)
    }

    /// The format: `forced` when given, else the extension; stdin defaults to CSV.
    pub fn format(&self, forced: Option<InputFormat>) -> Result<InputFormat, CliError> {
        if let Some(f) = forced {
            return Ok(f);
        }
        match &self.path {
            None => Ok(InputFormat::Csv),
            Some(p) => InputFormat::from_extension(p).ok_or_else(|| {
                CliError::Usage(format!(
                    "{}: cannot tell the format from the extension (use .csv, .json, .jsonl or .ndjson, or --input-format csv|json|jsonl)",
                    self.name
                ))
            }),
        }
    }

    fn open(&self) -> Result<Box<dyn Read>, CliError> {
        match &self.path {
            None => Ok(Box::new(io::stdin().lock())),
            Some(p) => {
                let f = File::open(p).map_err(|e| CliError::open(&self.name, e))?;
                if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
                    return Err(CliError::open(
                        &self.name,
                        io::Error::other("is a directory"),
                    ));
                }
                Ok(Box::new(f))
            }
        }
    }

    /// The file's size in bytes, for a progress bar (`None` for stdin).
    pub fn file_size(&self) -> Option<u64> {
        self.path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
    }
}

pub use metergate_core::input::{unreadable, InputRecord, Row};

/// Streams the records of one input.
pub struct RecordReader {
    name: String,
    inner: Inner,
}

enum Inner {
    Csv(Box<CsvInput>),
    Json(JsonArrayInput),
    Jsonl(JsonlInput),
}

impl RecordReader {
    /// Opens an input and, for CSV, reads and checks its header.
    pub fn open(input: &InputPath, format: InputFormat) -> Result<RecordReader, CliError> {
        let read = input.open()?;
        let name = input.name.clone();
        let inner = match format {
            InputFormat::Csv => Inner::Csv(Box::new(CsvInput::new(&name, read)?)),
            InputFormat::Json => Inner::Json(JsonArrayInput::new(&name, read)?),
            InputFormat::Jsonl => Inner::Jsonl(JsonlInput::new(read)),
        };
        Ok(RecordReader { name, inner })
    }

    /// Opens a reader over bytes already in memory (tests, the WASM-free form path).
    pub fn from_reader(
        name: &str,
        read: Box<dyn Read>,
        format: InputFormat,
    ) -> Result<RecordReader, CliError> {
        let inner = match format {
            InputFormat::Csv => Inner::Csv(Box::new(CsvInput::new(name, read)?)),
            InputFormat::Json => Inner::Json(JsonArrayInput::new(name, read)?),
            InputFormat::Jsonl => Inner::Jsonl(JsonlInput::new(read)),
        };
        Ok(RecordReader {
            name: name.to_owned(),
            inner,
        })
    }

    /// The input's name as given (`-` for stdin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next row, `Ok(None)` at the end.
    pub fn next_record(&mut self) -> Result<Option<InputRecord>, CliError> {
        match &mut self.inner {
            Inner::Csv(c) => c.next(&self.name),
            Inner::Json(j) => j.next(&self.name),
            Inner::Jsonl(j) => j.next(&self.name),
        }
    }

    /// CSV inputs: the header, as read (BOM and surrounding spaces removed).
    pub fn csv_headers(&self) -> Option<&[String]> {
        match &self.inner {
            Inner::Csv(c) => c.reader.headers(),
            _ => None,
        }
    }

    /// CSV inputs: the raw cells of the row [`RecordReader::next_record`] returned last.
    pub fn csv_row(&self) -> Option<Cells<'_>> {
        match &self.inner {
            Inner::Csv(c) => Some(c.reader.cells()),
            _ => None,
        }
    }

    /// Bytes consumed so far (for a progress bar).
    pub fn bytes_read(&self) -> u64 {
        match &self.inner {
            Inner::Csv(c) => c.reader.bytes_read(),
            Inner::Json(j) => j.src.pos,
            Inner::Jsonl(j) => j.pos,
        }
    }
}

impl Iterator for RecordReader {
    type Item = Result<InputRecord, CliError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

// ---------------------------------------------------------------------------------------------
// CSV: the core's streaming reader over the file's bytes

struct CsvInput {
    read: Box<dyn Read>,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    eof: bool,
    reader: CsvReader,
    /// The first row, read while looking for the end of the header.
    pending: Option<InputRecord>,
}

impl CsvInput {
    fn new(name: &str, read: Box<dyn Read>) -> Result<CsvInput, CliError> {
        let mut c = CsvInput {
            read,
            buf: vec![0; READ_BUFFER],
            pos: 0,
            len: 0,
            eof: false,
            reader: CsvReader::new(),
            pending: None,
        };
        c.pending = c.advance(name, true)?;
        Ok(c)
    }

    fn next(&mut self, name: &str) -> Result<Option<InputRecord>, CliError> {
        if let Some(p) = self.pending.take() {
            return Ok(Some(p));
        }
        self.advance(name, false)
    }

    /// Reads until a row is complete, the input ends, or (`header`) the header is read.
    fn advance(&mut self, name: &str, header: bool) -> Result<Option<InputRecord>, CliError> {
        loop {
            if header && self.reader.headers().is_some() {
                return Ok(None);
            }
            if self.pos < self.len {
                let mut input = self.buf.get(self.pos..self.len).unwrap_or_default();
                let got = self.reader.next_in(&mut input);
                self.pos = self.len - input.len();
                match got {
                    Some(Ok(row)) => return Ok(Some(row)),
                    Some(Err(e)) => return Err(csv_error(name, e)),
                    None => continue,
                }
            }
            if self.eof {
                return Ok(None);
            }
            match self.read.read(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    return self.reader.finish().map_err(|e| csv_error(name, e));
                }
                Ok(n) => {
                    self.pos = 0;
                    self.len = n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CliError::read(name, e)),
            }
        }
    }
}

fn csv_error(name: &str, e: CsvError) -> CliError {
    CliError::input(Location::at(name, e.line, None), e.message)
}

// ---------------------------------------------------------------------------------------------
// JSON: a byte source that counts lines and columns

struct ByteSource {
    r: BufReader<Box<dyn Read>>,
    name: String,
    /// 1-based line of the next byte.
    line: u64,
    /// 1-based column (in bytes) of the next byte.
    col: u64,
    /// Bytes consumed.
    pos: u64,
}

impl ByteSource {
    fn new(name: &str, read: Box<dyn Read>) -> ByteSource {
        ByteSource {
            r: BufReader::with_capacity(READ_BUFFER, read),
            name: name.to_owned(),
            line: 1,
            col: 1,
            pos: 0,
        }
    }

    fn here(&self) -> Location {
        Location::at(&self.name, self.line, Some(self.col))
    }

    fn peek(&mut self) -> Result<Option<u8>, CliError> {
        loop {
            match self.r.fill_buf() {
                Ok(b) => return Ok(b.first().copied()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CliError::read(&self.name, e)),
            }
        }
    }

    fn advance_over(line: &mut u64, col: &mut u64, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                *line += 1;
                *col = 1;
            } else {
                *col += 1;
            }
        }
    }

    fn bump(&mut self) {
        if let Ok(Some(b)) = self.peek() {
            Self::advance_over(&mut self.line, &mut self.col, &[b]);
            self.r.consume(1);
            self.pos += 1;
        }
    }

    /// Skips JSON whitespace (and a byte-order mark at the very start).
    fn skip_ws(&mut self) -> Result<Option<u8>, CliError> {
        loop {
            if self.pos == 0 {
                let buf = self
                    .r
                    .fill_buf()
                    .map_err(|e| CliError::read(&self.name, e))?;
                if buf.starts_with(b"\xef\xbb\xbf") {
                    self.r.consume(3);
                    self.pos += 3;
                }
            }
            match self.peek()? {
                Some(b' ' | b'\t' | b'\r' | b'\n') => self.bump(),
                other => return Ok(other),
            }
        }
    }

    /// Copies one JSON value into `out`: an object or array up to its matching bracket, a
    /// string up to its closing quote, or a scalar up to the next delimiter. The value's
    /// syntax is left to serde_json.
    fn capture(&mut self, out: &mut Vec<u8>) -> Result<(), CliError> {
        out.clear();
        let start = self.here();
        let first = self.peek()?;
        let scalar = !matches!(first, Some(b'{' | b'[' | b'"'));
        let mut depth = 0u32;
        let mut in_str = false;
        let mut esc = false;
        loop {
            let chunk = match self.r.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CliError::read(&self.name, e)),
            };
            if chunk.is_empty() {
                if scalar {
                    return Ok(());
                }
                return Err(CliError::input(
                    start,
                    "this array element is not closed before the end of the file",
                ));
            }
            let mut n = 0;
            let mut done = false;
            for &b in chunk {
                if scalar {
                    if matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r') {
                        done = true;
                        break;
                    }
                    n += 1;
                    continue;
                }
                n += 1;
                if in_str {
                    if esc {
                        esc = false;
                    } else if b == b'\\' {
                        esc = true;
                    } else if b == b'"' {
                        in_str = false;
                        if depth == 0 {
                            done = true;
                            break;
                        }
                    }
                } else {
                    match b {
                        b'"' => in_str = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                done = true;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            let taken = chunk.get(..n).unwrap_or_default();
            out.extend_from_slice(taken);
            Self::advance_over(&mut self.line, &mut self.col, taken);
            self.r.consume(n);
            self.pos += n as u64;
            if done {
                return Ok(());
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ArrayState {
    First,
    Next,
    Done,
}

struct JsonArrayInput {
    src: ByteSource,
    state: ArrayState,
    buf: Vec<u8>,
}

impl JsonArrayInput {
    fn new(name: &str, read: Box<dyn Read>) -> Result<JsonArrayInput, CliError> {
        let mut src = ByteSource::new(name, read);
        match src.skip_ws()? {
            Some(b'[') => src.bump(),
            Some(_) => {
                return Err(CliError::input(
                    src.here(),
                    "expected a JSON array of records ([ {...}, {...} ]); for one object per line use .jsonl",
                ))
            }
            None => {
                return Err(CliError::input(
                    src.here(),
                    "the file is empty; expected a JSON array of records",
                ))
            }
        }
        Ok(JsonArrayInput {
            src,
            state: ArrayState::First,
            buf: Vec::new(),
        })
    }

    fn next(&mut self, name: &str) -> Result<Option<InputRecord>, CliError> {
        if self.state == ArrayState::Done {
            return Ok(None);
        }
        let mut c = self.src.skip_ws()?;
        if self.state == ArrayState::Next {
            match c {
                Some(b',') => {
                    self.src.bump();
                    c = self.src.skip_ws()?;
                    if c == Some(b']') {
                        return Err(CliError::input(
                            self.src.here(),
                            "a trailing comma before ] is not JSON",
                        ));
                    }
                }
                Some(b']') => {}
                Some(_) => {
                    return Err(CliError::input(
                        self.src.here(),
                        "expected , or ] after an array element",
                    ))
                }
                None => {
                    return Err(CliError::input(
                        self.src.here(),
                        "the JSON array is not closed (missing ])",
                    ))
                }
            }
        }
        match c {
            Some(b']') => {
                self.src.bump();
                self.state = ArrayState::Done;
                if self.src.skip_ws()?.is_some() {
                    return Err(CliError::input(
                        self.src.here(),
                        "unexpected data after the end of the JSON array",
                    ));
                }
                return Ok(None);
            }
            None => {
                return Err(CliError::input(
                    self.src.here(),
                    "the JSON array is not closed (missing ])",
                ))
            }
            Some(_) => {}
        }
        self.state = ArrayState::Next;
        let start_line = self.src.line;
        let start_col = self.src.col;
        self.src.capture(&mut self.buf)?;
        let row = match serde_json::from_slice::<RawRecord>(&self.buf) {
            Ok(r) => Row::Record(r),
            // The element's bytes were isolated by `capture`, so an element nested too deeply
            // for serde_json is that row's problem only, as in JSON Lines.
            Err(e)
                if e.is_data()
                    || e.to_string().starts_with("number out of range")
                    || e.to_string().starts_with("recursion limit exceeded") =>
            {
                Row::Unreadable {
                    finding: unreadable(
                        "row",
                        format!("not a usage record: {}", strip_position(&e.to_string())),
                        "give each record as a JSON object of fields",
                    ),
                    record_id: None,
                }
            }
            Err(e) => {
                let (line, col) = if e.line() <= 1 {
                    (start_line, start_col + e.column().saturating_sub(1) as u64)
                } else {
                    (start_line + e.line() as u64 - 1, e.column() as u64)
                };
                return Err(CliError::input(
                    Location::at(name, line, Some(col)),
                    format!("malformed JSON: {}", strip_position(&e.to_string())),
                ));
            }
        };
        Ok(Some(InputRecord {
            line: start_line,
            row,
        }))
    }
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg.get(..i).unwrap_or(msg).to_owned(),
        None => msg.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// JSON Lines

struct JsonlInput {
    r: BufReader<Box<dyn Read>>,
    line: u64,
    pos: u64,
    buf: Vec<u8>,
}

impl JsonlInput {
    fn new(read: Box<dyn Read>) -> JsonlInput {
        JsonlInput {
            r: BufReader::with_capacity(READ_BUFFER, read),
            line: 0,
            pos: 0,
            buf: Vec::new(),
        }
    }

    fn next(&mut self, name: &str) -> Result<Option<InputRecord>, CliError> {
        loop {
            self.buf.clear();
            let n = self
                .r
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| CliError::read(name, e))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            self.pos += n as u64;
            let mut text: &[u8] = &self.buf;
            if self.line == 1 {
                text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
            }
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let row = match serde_json::from_slice::<RawRecord>(text) {
                Ok(r) => Row::Record(r),
                Err(e) => {
                    let what = if e.is_data() {
                        format!("not a usage record: {}", strip_position(&e.to_string()))
                    } else {
                        format!(
                            "not valid JSON at column {}: {}",
                            e.column(),
                            strip_position(&e.to_string())
                        )
                    };
                    Row::Unreadable {
                        finding: unreadable(
                            "row",
                            what,
                            "give one JSON object per line, e.g. {\"marketplace\":\"aws\",...}",
                        ),
                        record_id: None,
                    }
                }
            };
            return Ok(Some(InputRecord {
                line: self.line,
                row,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use metergate_core::Field;

    fn read_all(text: &str, f: InputFormat) -> Result<Vec<InputRecord>, CliError> {
        let r = RecordReader::from_reader(
            "t",
            Box::new(io::Cursor::new(text.to_owned().into_bytes())),
            f,
        )?;
        r.collect()
    }

    #[test]
    fn csv_lines_and_attributes() {
        let recs = read_all(
            "quantity,marketplace,team\n3,aws,a\n\"4\nx\",azure,\n5,gcp\n",
            InputFormat::Csv,
        )
        .unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].line, 2);
        assert_eq!(recs[1].line, 3);
        assert_eq!(recs[2].line, 5);
        let Row::Record(r) = &recs[0].row else {
            panic!()
        };
        assert_eq!(r.quantity, Some(Field::Text("3".into())));
        assert_eq!(r.attributes.get("team"), Some(&Field::Text("a".into())));
        let Row::Record(r) = &recs[1].row else {
            panic!()
        };
        assert!(r.attributes.is_empty());
        let Row::Unreadable { finding, .. } = &recs[2].row else {
            panic!()
        };
        assert_eq!(finding.field.as_deref(), Some("row"));
    }

    #[test]
    fn csv_lines_are_physical() {
        let lines = |text: &str| -> Vec<u64> {
            read_all(text, InputFormat::Csv)
                .unwrap()
                .iter()
                .map(|r| r.line)
                .collect()
        };
        assert_eq!(lines("quantity\n1\n\n\n2\n\n3\n"), [2, 5, 7]);
        assert_eq!(lines("quantity\r\n1\r\n\r\n2\r\n"), [2, 4]);
        assert_eq!(lines("quantity\r1\r2\r\r3"), [2, 3, 5]);
        assert_eq!(lines("\u{feff}quantity\n\"1\n2\"\n3\n"), [2, 4]);
    }

    #[test]
    fn csv_headers_checked() {
        assert!(read_all("a,b\n1,2\n", InputFormat::Csv).is_err());
        assert!(read_all("quantity,quantity\n1,2\n", InputFormat::Csv).is_err());
        assert!(read_all("", InputFormat::Csv).is_err());
    }

    #[test]
    fn json_array_lines() {
        let recs = read_all(
            "[\n  {\"quantity\": 1},\n  {\n \"quantity\": \"2\"}, 5\n]\n",
            InputFormat::Json,
        )
        .unwrap();
        assert_eq!(recs.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 3, 4]);
        assert!(matches!(recs[2].row, Row::Unreadable { .. }));
        let e = read_all("[{\"a\":1},\n {\"b\" 2}]", InputFormat::Json).unwrap_err();
        match e {
            CliError::Input { location, .. } => {
                assert_eq!(location.line, Some(2));
                assert_eq!(location.column, Some(7));
            }
            e => panic!("{e}"),
        }
        assert!(read_all("{\"a\":1}", InputFormat::Json).is_err());
        assert!(read_all("[{\"a\":1},]", InputFormat::Json).is_err());
        assert!(read_all("[{\"a\":1}", InputFormat::Json).is_err());
        assert!(read_all("[] x", InputFormat::Json).is_err());
        assert!(read_all("[]", InputFormat::Json).unwrap().is_empty());
    }

    #[test]
    fn jsonl_bad_line_goes_on() {
        let recs = read_all(
            "{\"quantity\":1}\n\n{oops\n{\"quantity\":2}\n",
            InputFormat::Jsonl,
        )
        .unwrap();
        assert_eq!(recs.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 3, 4]);
        assert!(matches!(recs[1].row, Row::Unreadable { .. }));
    }
}
