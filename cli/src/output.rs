//! Verdict writers: JSON Lines for machines, text for people, CSV for re-upload.

use std::collections::BTreeMap;
use std::io::{self, Write};

use crate::text::clean;
use metergate_core::model::RECORD_FIELDS;
use metergate_core::{Field, RawRecord, Severity, Summary, Verdict};
use serde::Serialize;

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// For people: findings with file:line and hints, then a summary table.
    Text,
    /// JSON Lines: one object per record, then a summary line.
    Json,
    /// The input rows plus `verdict` and `codes` columns.
    Csv,
}

/// Where a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SourceRef<'a> {
    /// The input as given (`-` for stdin).
    pub file: &'a str,
    /// The 1-based line the record starts on.
    pub line: u64,
}

/// The input row behind a verdict, for writers that echo it (CSV).
#[derive(Clone, Copy, Debug)]
pub enum OutRow<'a> {
    /// A CSV row as read.
    Csv(metergate_core::csv_reader::Cells<'a>),
    /// A record from JSON input.
    Raw(&'a RawRecord),
    /// Nothing usable (a JSON line that did not parse).
    None,
}

/// Receives verdicts in input order.
pub trait VerdictSink {
    /// A new input starts; `csv_headers` is its header when it is CSV.
    fn begin_input(&mut self, _name: &str, _csv_headers: Option<&[String]>) -> io::Result<()> {
        Ok(())
    }
    /// True when the writer echoes input rows (callers then keep JSON records for it).
    fn wants_rows(&self) -> bool {
        false
    }
    /// One verdict.
    fn verdict(&mut self, v: &Verdict, src: SourceRef<'_>, row: OutRow<'_>) -> io::Result<()>;
    /// The end: the summary, then flush.
    fn finish(&mut self, summary: &Summary) -> io::Result<()>;
}

/// Builds the writer for a format.
pub fn sink<'w, W: Write + 'w>(
    format: OutputFormat,
    out: W,
    color: bool,
) -> Box<dyn VerdictSink + 'w> {
    match format {
        OutputFormat::Json => Box::new(JsonLines::new(out)),
        OutputFormat::Text => Box::new(TextOut::new(out, color)),
        OutputFormat::Csv => Box::new(CsvOut::new(out)),
    }
}

/// True when colour should be used on a stream that is a terminal: `NO_COLOR` unset or empty.
pub fn color_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

// ---------------------------------------------------------------------------------------------
// JSON Lines

/// `{"index","record_id","verdict","findings","source":{"file","line"}}` per record and a last
/// `{"summary":{...}}` line.
pub struct JsonLines<W: Write> {
    w: W,
    /// `,"source":{"file":"<escaped>","line":`
    source_prefix: Vec<u8>,
}

impl<W: Write> JsonLines<W> {
    /// A writer over `w` (buffer it).
    pub fn new(w: W) -> JsonLines<W> {
        let mut j = JsonLines {
            w,
            source_prefix: Vec::new(),
        };
        j.set_file("-");
        j
    }

    fn set_file(&mut self, name: &str) {
        self.source_prefix.clear();
        self.source_prefix
            .extend_from_slice(b"],\"source\":{\"file\":");
        // Writing JSON text into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.source_prefix, name);
        self.source_prefix.extend_from_slice(b",\"line\":");
    }
}

fn write_u64(w: &mut impl Write, mut n: u64) -> io::Result<()> {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    w.write_all(buf.get(i..).unwrap_or_default())
}

/// A JSON string, escaped as serde_json escapes it. Most strings need no escape at all (no
/// `"`, `\\` or control character): they are found with a scan the compiler vectorizes and
/// written as they are; the others go through serde_json itself.
fn write_str(w: &mut impl Write, s: &str) -> io::Result<()> {
    if needs_escape(s.as_bytes()) {
        return serde_json::to_writer(w, s).map_err(io::Error::from);
    }
    w.write_all(b"\"")?;
    w.write_all(s.as_bytes())?;
    w.write_all(b"\"")
}

/// True when serde_json would escape some byte of `s`: a control character (below 0x20), `"`
/// or `\\`.
fn needs_escape(s: &[u8]) -> bool {
    // No early exit inside a chunk, so that the 16 tests become a few vector operations.
    let any = |chunk: &[u8]| {
        chunk.iter().fold(false, |any, &b| {
            any | (b < 0x20) | (b == b'"') | (b == b'\\')
        })
    };
    let mut chunks = s.chunks_exact(16);
    if chunks.any(&any) {
        return true;
    }
    // The rest (most strings are shorter than 16 bytes) padded with spaces to a whole chunk,
    // so that it takes the vector path too.
    let rest = chunks.remainder();
    let mut padded = [b' '; 16];
    if let Some(head) = padded.get_mut(..rest.len()) {
        head.copy_from_slice(rest);
    }
    any(&padded)
}

fn write_opt_str(w: &mut impl Write, s: Option<&str>) -> io::Result<()> {
    match s {
        Some(s) => write_str(w, s),
        None => w.write_all(b"null"),
    }
}

/// One finding, byte for byte what serde's derive writes for it (`code`, `severity`,
/// `field`, `message`, `hint`, `rule`), with the keys written as they are instead of escaped
/// again for every finding.
fn write_finding(w: &mut impl Write, f: &metergate_core::Finding) -> io::Result<()> {
    w.write_all(b"{\"code\":")?;
    write_str(w, &f.code)?;
    w.write_all(b",\"severity\":\"")?;
    w.write_all(f.severity.as_str().as_bytes())?;
    w.write_all(b"\",\"field\":")?;
    write_opt_str(w, f.field.as_deref())?;
    w.write_all(b",\"message\":")?;
    write_str(w, &f.message)?;
    w.write_all(b",\"hint\":")?;
    write_opt_str(w, f.hint.as_deref())?;
    w.write_all(b",\"rule\":")?;
    write_str(w, &f.rule)?;
    w.write_all(b"}")
}

impl<W: Write> VerdictSink for JsonLines<W> {
    fn begin_input(&mut self, name: &str, _: Option<&[String]>) -> io::Result<()> {
        self.set_file(name);
        Ok(())
    }

    fn verdict(&mut self, v: &Verdict, src: SourceRef<'_>, _: OutRow<'_>) -> io::Result<()> {
        let w = &mut self.w;
        w.write_all(b"{\"index\":")?;
        write_u64(w, v.index)?;
        w.write_all(b",\"record_id\":")?;
        match &v.record_id {
            None => w.write_all(b"null")?,
            Some(id) => write_str(w, id)?,
        }
        w.write_all(b",\"verdict\":\"")?;
        w.write_all(v.verdict.as_str().as_bytes())?;
        w.write_all(b"\",\"findings\":[")?;
        for (i, f) in v.findings.iter().enumerate() {
            if i > 0 {
                w.write_all(b",")?;
            }
            write_finding(w, f)?;
        }
        w.write_all(&self.source_prefix)?;
        write_u64(w, src.line)?;
        w.write_all(b"}}\n")
    }

    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        #[derive(Serialize)]
        struct Line<'a> {
            summary: &'a Summary,
        }
        serde_json::to_writer(&mut self.w, &Line { summary })?;
        self.w.write_all(b"\n")?;
        self.w.flush()
    }
}

// ---------------------------------------------------------------------------------------------
// Text

struct Style {
    on: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
}

/// Findings grouped per record with `file:line` and hints, then a summary table.
pub struct TextOut<W: Write> {
    w: W,
    style: Style,
}

impl<W: Write> TextOut<W> {
    /// A writer over `w`; `color` adds ANSI colours.
    pub fn new(w: W, color: bool) -> TextOut<W> {
        TextOut {
            w,
            style: Style { on: color },
        }
    }
}

impl<W: Write> VerdictSink for TextOut<W> {
    fn verdict(&mut self, v: &Verdict, src: SourceRef<'_>, _: OutRow<'_>) -> io::Result<()> {
        if v.findings.is_empty() {
            return Ok(());
        }
        let s = &self.style;
        let head = if v.accepted() {
            s.paint("33", "accepted with warnings")
        } else {
            s.paint("1;31", "rejected")
        };
        let id = match &v.record_id {
            Some(id) => format!(" record {}", clean(id)),
            None => String::new(),
        };
        writeln!(
            self.w,
            "{}: {head}{id} (#{})",
            s.paint("36", &format!("{}:{}", clean(src.file), src.line)),
            v.index
        )?;
        for f in &v.findings {
            let sev = match f.severity {
                Severity::Error => s.paint("31", "error  "),
                Severity::Warning => s.paint("33", "warning"),
            };
            let field = f
                .field
                .as_deref()
                .map(|x| format!("{}: ", clean(x)))
                .unwrap_or_default();
            writeln!(
                self.w,
                "  {sev} {} {field}{}",
                s.paint("1", &clean(&f.code)),
                clean(&f.message)
            )?;
            if let Some(h) = &f.hint {
                writeln!(
                    self.w,
                    "          {}",
                    s.paint("2", &format!("hint: {}", clean(h)))
                )?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, sum: &Summary) -> io::Result<()> {
        let s = &self.style;
        if sum.records > 0 && sum.by_code.is_empty() {
            writeln!(self.w, "{}", s.paint("32", "every record is accepted"))?;
        }
        writeln!(self.w)?;
        writeln!(self.w, "{}", s.paint("1", "Summary"))?;
        let rows = [
            ("records", sum.records, "0"),
            ("accepted", sum.accepted, "32"),
            (
                "rejected",
                sum.rejected,
                if sum.rejected > 0 { "31" } else { "0" },
            ),
            (
                "warnings",
                sum.warnings,
                if sum.warnings > 0 { "33" } else { "0" },
            ),
        ];
        for (k, n, c) in rows {
            writeln!(self.w, "  {k:<10}{}", s.paint(c, &format!("{n:>10}")))?;
        }
        if !sum.by_code.is_empty() {
            let width = sum
                .by_code
                .keys()
                .map(String::len)
                .max()
                .unwrap_or(0)
                .max(7);
            writeln!(self.w)?;
            writeln!(self.w, "  {:<width$}  {:>8}", "by code", "count")?;
            for (code, n) in by_count(&sum.by_code) {
                let code = clean(code);
                writeln!(self.w, "  {code:<width$}  {n:>8}")?;
            }
        }
        self.w.flush()
    }
}

fn by_count(m: &BTreeMap<String, u64>) -> Vec<(&str, u64)> {
    let mut v: Vec<(&str, u64)> = m.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v
}

// ---------------------------------------------------------------------------------------------
// CSV

/// The input rows plus `verdict` and `codes` (joined with `;`). The columns are the first
/// CSV input's header, or the known record fields for JSON input; existing `verdict` / `codes`
/// columns are overwritten rather than repeated.
pub struct CsvOut<W: Write> {
    w: csv::Writer<W>,
    columns: Option<Vec<String>>,
    verdict_col: Option<usize>,
    codes_col: Option<usize>,
    /// For the current input: output column → input column (`None` = identity).
    mapping: Option<Vec<Option<usize>>>,
    out: csv::ByteRecord,
    codes: String,
}

impl<W: Write> CsvOut<W> {
    /// A writer over `w`.
    pub fn new(w: W) -> CsvOut<W> {
        CsvOut {
            w: csv::WriterBuilder::new().flexible(true).from_writer(w),
            columns: None,
            verdict_col: None,
            codes_col: None,
            mapping: None,
            out: csv::ByteRecord::new(),
            codes: String::new(),
        }
    }

    fn start(&mut self, first_headers: Option<&[String]>) -> io::Result<()> {
        let columns: Vec<String> = match first_headers {
            Some(h) => h.to_vec(),
            None => RECORD_FIELDS.iter().map(|s| (*s).to_owned()).collect(),
        };
        self.verdict_col = columns.iter().position(|c| c == "verdict");
        self.codes_col = columns.iter().position(|c| c == "codes");
        let mut head = csv::ByteRecord::new();
        for c in &columns {
            head.push_field(c.as_bytes());
        }
        if self.verdict_col.is_none() {
            head.push_field(b"verdict");
        }
        if self.codes_col.is_none() {
            head.push_field(b"codes");
        }
        self.w.write_byte_record(&head).map_err(csv_io)?;
        self.columns = Some(columns);
        Ok(())
    }

    fn compute_mapping(&mut self, headers: Option<&[String]>) {
        let Some(cols) = &self.columns else { return };
        self.mapping = match headers {
            Some(h) if h == cols.as_slice() => None,
            Some(h) => Some(cols.iter().map(|c| h.iter().position(|x| x == c)).collect()),
            None => Some(vec![None; cols.len()]),
        };
    }
}

fn csv_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

fn raw_value(rec: &RawRecord, name: &str) -> Option<String> {
    let f = match name {
        "marketplace" => rec.marketplace.as_ref(),
        "product" => rec.product.as_ref(),
        "customer" => rec.customer.as_ref(),
        "dimension" => rec.dimension.as_ref(),
        "quantity" => rec.quantity.as_ref(),
        "start_time" => rec.start_time.as_ref(),
        "end_time" => rec.end_time.as_ref(),
        "record_id" => rec.record_id.as_ref(),
        "plan" => rec.plan.as_ref(),
        "allocations" => {
            return rec.allocations.as_ref().map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            })
        }
        other => rec.attributes.get(other),
    };
    match f? {
        Field::Text(s) | Field::Number(s) => Some(s.clone()),
        Field::Wrong(_) => None,
    }
}

impl<W: Write> VerdictSink for CsvOut<W> {
    fn begin_input(&mut self, _: &str, csv_headers: Option<&[String]>) -> io::Result<()> {
        if self.columns.is_none() {
            // Decided at the first input, so an empty first CSV still writes its header.
            self.start(csv_headers)?;
        }
        self.compute_mapping(csv_headers);
        Ok(())
    }

    fn wants_rows(&self) -> bool {
        true
    }

    fn verdict(&mut self, v: &Verdict, _: SourceRef<'_>, row: OutRow<'_>) -> io::Result<()> {
        if self.columns.is_none() {
            self.start(None)?;
            self.compute_mapping(None);
        }
        let ncols = self.columns.as_ref().map_or(0, Vec::len);
        self.out.clear();
        match (row, &self.mapping) {
            (OutRow::Csv(r), None) => {
                for f in r.iter() {
                    self.out.push_field(f);
                }
                for _ in r.len()..ncols {
                    self.out.push_field(b"");
                }
            }
            (OutRow::Csv(r), Some(map)) => {
                for m in map {
                    self.out
                        .push_field(m.and_then(|i| r.get(i)).unwrap_or_default());
                }
            }
            (OutRow::Raw(rec), _) => {
                if let Some(cols) = &self.columns {
                    for c in cols {
                        let v = raw_value(rec, c).unwrap_or_default();
                        self.out.push_field(v.as_bytes());
                    }
                }
            }
            (OutRow::None, _) => {
                for _ in 0..ncols {
                    self.out.push_field(b"");
                }
            }
        }
        self.codes.clear();
        for f in &v.findings {
            let dup = self.codes.split(';').any(|c| c == f.code);
            if !dup {
                if !self.codes.is_empty() {
                    self.codes.push(';');
                }
                self.codes.push_str(&f.code);
            }
        }
        let verdict = v.verdict.as_str().as_bytes();
        if self.verdict_col.is_none() && self.codes_col.is_none() {
            self.out.push_field(verdict);
            self.out.push_field(self.codes.as_bytes());
            return self.w.write_byte_record(&self.out).map_err(csv_io);
        }
        // Overwrite existing verdict / codes columns.
        let mut rec = csv::ByteRecord::new();
        for (i, f) in self.out.iter().enumerate() {
            if Some(i) == self.verdict_col {
                rec.push_field(verdict);
            } else if Some(i) == self.codes_col {
                rec.push_field(self.codes.as_bytes());
            } else {
                rec.push_field(f);
            }
        }
        if self.verdict_col.is_none() {
            rec.push_field(verdict);
        }
        if self.codes_col.is_none() {
            rec.push_field(self.codes.as_bytes());
        }
        self.w.write_byte_record(&rec).map_err(csv_io)
    }

    fn finish(&mut self, _: &Summary) -> io::Result<()> {
        if self.columns.is_none() {
            self.start(None)?;
        }
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let mut texts: Vec<String> = (0u8..0x80).map(|b| char::from(b).to_string()).collect();
        texts.extend(
            [
                "",
                "plain text of more than sixteen bytes, no escapes at all",
                "a \"quoted\" word past the first sixteen bytes",
                "back\\slash at byte seventeen or so \\",
                "tab\tand newline\n late in a long string of text",
                "é ü 日本 \u{7f} \u{feff} \u{2028}",
            ]
            .map(str::to_owned),
        );
        for t in &texts {
            let long = format!("{}{t}", "x".repeat(31));
            for s in [t.as_str(), long.as_str()] {
                let mut ours = Vec::new();
                write_str(&mut ours, s).unwrap();
                assert_eq!(ours, serde_json::to_vec(s).unwrap(), "{s:?}");
            }
        }
    }
}
