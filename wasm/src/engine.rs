//! The pure-Rust half of the bindings: everything that does not touch JS. The JS entry points
//! in `lib.rs` and the native reference (`examples/native_answers.rs`) both go through here,
//! so the two differ only in how arguments arrive.

use chrono::{DateTime, Utc};
use metergate_core::{
    ContractSet, HistoryEntry, PolicySource, Report, Settings, Summary, Validator, Verdict,
};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use metergate_core::csv_reader::{CsvError, CsvReader};
use metergate_core::input::{InputRecord, Row};
use metergate_core::Session;

/// Builds a validator from the contracts JSON text, policy sources and settings JSON.
pub fn build_validator(
    contracts_json: &str,
    policies: &[PolicySource],
    settings: Option<serde_json::Value>,
) -> Result<Validator, String> {
    let contracts =
        ContractSet::from_json(contracts_json).map_err(|e| format!("contracts: {e}"))?;
    let settings = match settings {
        None | Some(serde_json::Value::Null) => Settings::default(),
        Some(v) => Settings::from_json_value(v).map_err(|e| format!("settings: {e}"))?,
    };
    Validator::new(contracts, settings, policies).map_err(|e| e.to_string())
}

/// Reads the dedup history (an array of history entries).
pub fn parse_history(v: serde_json::Value) -> Result<Vec<HistoryEntry>, String> {
    if v.is_null() {
        return Ok(Vec::new());
    }
    history_entries(v).map_err(|e| format!("history: {e}"))
}

fn history_entries(v: serde_json::Value) -> Result<Vec<HistoryEntry>, String> {
    let serde_json::Value::Array(items) = v else {
        return Err("must be an array of {marketplace, product, customer, dimension, start_time, end_time?, quantity}".into());
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| serde_json::from_value(item).map_err(|e| format!("[{i}]: {e}")))
        .collect()
}

/// Parses "now" (RFC 3339 with an offset).
pub fn parse_now(s: &str) -> Result<DateTime<Utc>, String> {
    metergate_core::time::parse_rfc3339(s).map_err(|e| format!("now: {s:?} {e}"))
}

/// One verdict of a CSV run: the core verdict plus the 1-based line its row starts on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CsvVerdict {
    /// 0-based position among the data rows.
    pub index: u64,
    /// 1-based line of the file where the row starts (the header is line 1).
    pub line: u64,
    /// The record's own id, if it had one.
    pub record_id: Option<String>,
    /// `accepted` or `rejected`.
    pub verdict: metergate_core::VerdictKind,
    /// Every finding.
    pub findings: Vec<metergate_core::Finding>,
}

/// The report of a CSV run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CsvReport {
    /// One verdict per data row, in file order.
    pub verdicts: Vec<CsvVerdict>,
    /// The counts.
    pub summary: Summary,
}

/// Validates a whole CSV text in one session: parsed and judged without leaving Rust (a
/// [`CsvRun`] fed the text in one piece). Fails only when the input cannot be used (no usable
/// header), as the CLI does.
pub fn validate_csv(
    v: &Arc<Validator>,
    text: &[u8],
    history: &[HistoryEntry],
    now: DateTime<Utc>,
) -> Result<CsvReport, CsvError> {
    let mut run = CsvRun::new(Arc::clone(v), now, history, ReportMode::All);
    let mut verdicts = Vec::new();
    run.push(text, &mut verdicts)?;
    let summary = run.finish(&mut verdicts)?;
    Ok(CsvReport { verdicts, summary })
}

/// Which verdicts a [`CsvRun`] hands out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportMode {
    /// Every verdict.
    All,
    /// Only verdicts with findings: rejected ones and those with warnings.
    Problems,
}

/// A streaming CSV run: bytes in, chunk by chunk, through the core's CSV reader into one
/// session. Memory is bounded by the longest record and the dedup keys, never by the number
/// of rows, unless the caller keeps every verdict.
pub struct CsvRun {
    session: Session<'static>,
    reader: CsvReader,
    report: ReportMode,
    index: u64,
    summary: Summary,
    /// The first line of every row judged since the last [`CsvRun::take_row_lines`], when
    /// asked for (`None`: not kept).
    row_lines: Option<Vec<u64>>,
}

impl CsvRun {
    /// A run at `now`, after the history.
    pub fn new(
        v: Arc<Validator>,
        now: DateTime<Utc>,
        history: &[HistoryEntry],
        report: ReportMode,
    ) -> CsvRun {
        let mut session = Validator::shared_session(v, now);
        for h in history {
            session.add_history(h);
        }
        CsvRun {
            session,
            reader: CsvReader::new(),
            report,
            index: 0,
            summary: Summary::default(),
            row_lines: None,
        }
    }

    /// Keeps the first line of every row (whatever the report), for
    /// [`CsvRun::take_row_lines`]: with `report: "problems"` the caller still learns where
    /// each clean row starts, at 8 bytes a row instead of a verdict.
    pub fn keep_row_lines(&mut self) {
        self.row_lines.get_or_insert_with(Vec::new);
    }

    /// The first lines of the rows judged since the last call, in order (empty unless
    /// [`CsvRun::keep_row_lines`] was called).
    pub fn take_row_lines(&mut self) -> Vec<u64> {
        self.row_lines
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    fn judge(&mut self, rec: InputRecord, out: &mut Vec<CsvVerdict>) {
        let Verdict {
            record_id,
            verdict,
            findings,
            ..
        } = match rec.row {
            Row::Record(raw) => self.session.check(raw),
            Row::Unreadable { finding, record_id } => {
                Verdict::from_findings(self.index, record_id, vec![finding])
            }
        };
        let v = CsvVerdict {
            index: self.index,
            line: rec.line,
            record_id,
            verdict,
            findings,
        };
        self.index += 1;
        if let Some(lines) = self.row_lines.as_mut() {
            lines.push(rec.line);
        }
        self.summary.add_parts(v.verdict, &v.findings);
        if self.report == ReportMode::All || !v.findings.is_empty() {
            out.push(v);
        }
    }

    /// Reads one chunk, appending the verdicts of the rows it completes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<CsvVerdict>) -> Result<(), CsvError> {
        let mut input = chunk;
        while !input.is_empty() {
            match self.reader.next_in(&mut input) {
                Some(Ok(rec)) => self.judge(rec, out),
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        Ok(())
    }

    /// Ends the input: the last row's verdict (when it had no line break after it) and the
    /// counts of every row.
    pub fn finish(&mut self, out: &mut Vec<CsvVerdict>) -> Result<Summary, CsvError> {
        if let Some(rec) = self.reader.finish()? {
            self.judge(rec, out);
        }
        Ok(std::mem::take(&mut self.summary))
    }

    /// The counts so far.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.reader.bytes_read()
    }
}

/// Validates records that were already read, some of which may have been unusable (not an
/// object): those get the verdict `bad` holds, at their own index, and the rest go through one
/// session in order.
pub fn validate_items(
    v: &Validator,
    items: impl IntoIterator<Item = Result<metergate_core::RawRecord, String>>,
    history: &[HistoryEntry],
    now: DateTime<Utc>,
) -> Report {
    let mut s = v.session(now);
    for h in history {
        s.add_history(h);
    }
    let mut verdicts = Vec::new();
    let mut bad = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let i = i as u64;
        match item {
            Ok(raw) => {
                let mut verdict = s.check(raw);
                verdict.index = i;
                verdicts.push(verdict);
            }
            Err(what) => {
                let verdict = unreadable(i, &what);
                bad.push(verdict.clone());
                verdicts.push(verdict);
            }
        }
    }
    let mut summary = s.into_summary();
    for b in &bad {
        summary.add(b);
    }
    Report { verdicts, summary }
}

/// The verdict on an input item that is not a record at all (a number, an array, `null`, or
/// an object whose `attributes` / a field cannot be read).
pub fn unreadable(index: u64, what: &str) -> Verdict {
    use metergate_core::{Code, Finding};
    Verdict::from_findings(
        index,
        None,
        vec![Finding::new(
            Code::InvalidRecord,
            metergate_core::parse::RULE_FORM,
            None,
            format!("record {index} cannot be read: {what}"),
        )
        .hint("give each record as an object of fields (strings or numbers)".into())],
    )
}

/// What `aggregateHourly` returns: the core's aggregation plus the verdicts of the records
/// that could not be parsed (and so were left out).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AggregateOutput {
    /// One record per key and hour.
    pub records: Vec<metergate_core::UsageRecord>,
    /// Remainders to carry into the next run.
    pub carried: Vec<metergate_core::aggregate::Carry>,
    /// Records left out because a field has the wrong form, with their form findings.
    pub skipped: Vec<Verdict>,
}

/// Parses every record and aggregates the ones that parse.
pub fn aggregate(
    items: impl IntoIterator<Item = Result<metergate_core::RawRecord, String>>,
    contracts: Option<&ContractSet>,
) -> AggregateOutput {
    let mut good = Vec::new();
    let mut skipped = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let i = i as u64;
        match item {
            Ok(raw) => {
                let record_id = raw.record_id_text().map(str::to_owned);
                match metergate_core::parse::parse_record(raw) {
                    Ok(rec) => good.push(rec),
                    Err(findings) => skipped.push(Verdict::from_findings(i, record_id, findings)),
                }
            }
            Err(what) => skipped.push(unreadable(i, &what)),
        }
    }
    let agg = metergate_core::aggregate::aggregate_hourly(good, contracts);
    AggregateOutput {
        records: agg.records,
        carried: agg.carried,
        skipped,
    }
}

/// One input item: a record, or what made it unreadable (not an object, or an object whose
/// `attributes` / a field cannot be read at all).
pub struct Item(pub Result<metergate_core::RawRecord, String>);

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Item, D::Error> {
        d.deserialize_any(ItemVisitor)
    }
}

struct ItemVisitor;

fn not_object<E>(what: &str) -> Result<Item, E> {
    Ok(Item(Err(format!("it is {what}, not an object"))))
}

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a record object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item, A::Error> {
        metergate_core::RawRecord::deserialize(de::value::MapAccessDeserializer::new(map))
            .map(|r| Item(Ok(r)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Item, E> {
        not_object("null")
    }
    fn visit_none<E: de::Error>(self) -> Result<Item, E> {
        not_object("null")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Item, E> {
        not_object("a boolean")
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Item, E> {
        not_object("a number")
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Item, E> {
        not_object("a number")
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Item, E> {
        not_object("a number")
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Item, E> {
        not_object("a string")
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        not_object("an array")
    }
}

/// Reads one record from JSON text (as the CLI reads a JSON line).
pub fn read_item(json: &str) -> Result<metergate_core::RawRecord, String> {
    match serde_json::from_str::<Item>(json) {
        Ok(Item(r)) => r,
        Err(e) => Err(e.to_string()),
    }
}

/// Reads a JSON array of records: every item a record or the reason it is not one. Fails
/// only when the text is not a JSON array.
pub fn read_items(json: &str) -> Result<Vec<Result<metergate_core::RawRecord, String>>, String> {
    if let Ok(items) = serde_json::from_str::<Vec<Item>>(json) {
        return Ok(items.into_iter().map(|i| i.0).collect());
    }
    // Some item cannot be read at all: read item by item, so the others still count.
    let values: Vec<serde_json::Value> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    Ok(values
        .into_iter()
        .map(|v| match Item::deserialize(v) {
            Ok(Item(r)) => r,
            Err(e) => Err(e.to_string()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use metergate_core::Field;

    #[test]
    fn items_are_records_or_reasons_and_one_bad_item_spares_the_rest() {
        let items = read_items(
            r#"[{"quantity":1.5,"team":"x"},7,null,[1],{"attributes":5},{"quantity":"2"}]"#,
        )
        .unwrap();
        assert_eq!(items.len(), 6);
        let first = items[0].as_ref().unwrap();
        assert_eq!(first.quantity, Some(Field::Number("1.5".into())));
        assert_eq!(first.attributes.get("team"), Some(&Field::Text("x".into())));
        assert_eq!(
            items[1].as_ref().unwrap_err(),
            "it is a number, not an object"
        );
        assert_eq!(items[2].as_ref().unwrap_err(), "it is null, not an object");
        assert_eq!(
            items[3].as_ref().unwrap_err(),
            "it is an array, not an object"
        );
        assert!(items[4].is_err());
        assert_eq!(
            items[5].as_ref().unwrap().quantity,
            Some(Field::Text("2".into()))
        );
        assert!(read_items("{}").is_err());
    }

    #[test]
    fn unreadable_items_keep_their_index_and_count_in_the_summary() {
        let v = build_validator("[]", &[], None).unwrap();
        let now = parse_now("2026-03-01T12:00:00Z").unwrap();
        let items = read_items(r#"[7, {"marketplace":"aws"}]"#).unwrap();
        let report = validate_items(&v, items, &[], now);
        assert_eq!(
            report.verdicts.iter().map(|v| v.index).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(report.verdicts[0].findings[0].code, "invalid-record");
        assert_eq!(report.verdicts[0].findings[0].field, None);
        assert_eq!(report.summary.records, 2);
        assert_eq!(report.summary.rejected, 2);
    }
}
