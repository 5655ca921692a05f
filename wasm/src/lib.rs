//! WASM bindings of `metergate-core` (issue 8): the npm package `metergate`.
//!
//! A thin wrapper: every function converts its JS arguments, makes one call into the core
//! (through [`engine`], which the native reference shares) and converts the answer back.
//! Unusable arguments (a non-array, contracts or settings that do not parse, a policy that
//! does not compile, a bad `now`) throw a JS `Error`; a bad record never throws, it gets a
//! verdict.

pub mod engine;

use std::sync::Arc;

use js_sys::{Array, Float64Array, Reflect, Uint8Array, JSON};
use metergate_core::{HistoryEntry, PolicySource, RawRecord};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

// ---------------------------------------------------------------------------------------
// JS -> Rust

fn err(msg: impl std::fmt::Display) -> JsError {
    JsError::new(&msg.to_string())
}

/// "now" as given, or the current time from `Date`.
fn now_or_clock(now: Option<String>) -> Result<chrono::DateTime<chrono::Utc>, JsError> {
    match now {
        Some(s) => engine::parse_now(&s).map_err(err),
        None => {
            let iso: String = js_sys::Date::new_0().to_iso_string().into();
            engine::parse_now(&iso).map_err(err)
        }
    }
}

/// A JS value as JSON text (for the inputs the core reads as JSON, like the CLI does).
fn json_text(v: &JsValue, what: &str) -> Result<String, JsError> {
    if let Some(s) = v.as_string() {
        return Ok(s);
    }
    let s = JSON::stringify(v).map_err(|e| {
        err(format!(
            "{what}: cannot be turned into JSON: {}",
            js_message(&e)
        ))
    })?;
    Ok(String::from(s))
}

fn js_message(e: &JsValue) -> String {
    if let Some(s) = e.as_string() {
        return s;
    }
    Reflect::get(e, &JsValue::from_str("message"))
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| "unknown error".into())
}

/// A JS value as a `serde_json::Value`, by way of `JSON.stringify` (numbers then read exactly
/// as the CLI reads its files).
fn json_value(v: &JsValue, what: &str) -> Result<serde_json::Value, JsError> {
    if v.is_undefined() || v.is_null() {
        return Ok(serde_json::Value::Null);
    }
    let text = String::from(JSON::stringify(v).map_err(|e| {
        err(format!(
            "{what}: cannot be turned into JSON: {}",
            js_message(&e)
        ))
    })?);
    serde_json::from_str(&text).map_err(|e| err(format!("{what}: {e}")))
}

fn contracts_text(v: &JsValue) -> Result<String, JsError> {
    if !(Array::is_array(v) || v.is_string()) {
        return Err(err(
            "contracts: must be an array of contracts (or its JSON text)",
        ));
    }
    json_text(v, "contracts")
}

fn get(obj: &JsValue, key: &str) -> JsValue {
    if !obj.is_object() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// `policies`: strings (named `policy0`, `policy1`, ...) or `{name, source}` objects.
fn policy_sources(v: &JsValue) -> Result<Vec<PolicySource>, JsError> {
    if v.is_undefined() || v.is_null() {
        return Ok(Vec::new());
    }
    if !Array::is_array(v) {
        return Err(err(
            "policies: must be an array of rhai sources or {name, source} objects",
        ));
    }
    let mut out = Vec::new();
    for (i, p) in Array::from(v).iter().enumerate() {
        let (name, source) = match p.as_string() {
            Some(source) => (format!("policy{i}"), source),
            None => {
                let name = get(&p, "name")
                    .as_string()
                    .unwrap_or_else(|| format!("policy{i}"));
                let source = get(&p, "source").as_string().ok_or_else(|| {
                    err(format!(
                        "policies[{i}]: must be a rhai source string or a {{name, source}} object"
                    ))
                })?;
                (name, source)
            }
        };
        out.push(PolicySource { name, source });
    }
    Ok(out)
}

fn history(v: &JsValue) -> Result<Vec<HistoryEntry>, JsError> {
    engine::parse_history(json_value(v, "history")?).map_err(err)
}

fn validator(contracts: &JsValue, options: &JsValue) -> Result<metergate_core::Validator, JsError> {
    let contracts = contracts_text(contracts)?;
    let policies = policy_sources(&get(options, "policies"))?;
    let settings = json_value(&get(options, "settings"), "settings")?;
    engine::build_validator(&contracts, &policies, Some(settings)).map_err(err)
}

/// One JS value as a record, or why it is not one (the message of its `invalid-record`
/// verdict). The value is read as its JSON form (`JSON.stringify`), exactly as the CLI reads a
/// JSON line: numbers arrive as [`metergate_core::Field::Number`], strings as `Field::Text`;
/// `null`, `undefined` and `""` are missing; a `Date` is its ISO string; `NaN` and `Infinity`
/// are `null` in JSON, so missing.
pub fn raw_item(v: JsValue) -> Result<RawRecord, String> {
    if v.is_undefined() || v.is_null() {
        return Err("it is null, not an object".into());
    }
    let text = JSON::stringify(&v).map_err(|e| js_message(&e))?;
    match JsValue::from(text).as_string() {
        Some(text) => engine::read_item(&text),
        None => Err("it has no JSON form (a function or a symbol), not an object".into()),
    }
}

/// Every item of the records array. One `JSON.stringify` and one `serde_json` pass for the
/// whole array (the fastest way across the boundary, see README.md); item by item only when
/// the array as a whole has no JSON form (a BigInt or a cycle somewhere).
fn items(records: &Array) -> Vec<Result<RawRecord, String>> {
    if let Ok(text) = JSON::stringify(records) {
        if let Some(text) = JsValue::from(text).as_string() {
            if let Ok(items) = engine::read_items(&text) {
                return items;
            }
        }
    }
    records.iter().map(raw_item).collect()
}

fn records_array(records: &JsValue) -> Result<Array, JsError> {
    if !Array::is_array(records) {
        return Err(err(
            "records: must be an array of record objects (or its JSON text)",
        ));
    }
    Ok(Array::from(records))
}

/// The records argument: an array of objects, or the JSON text of one. JSON text keeps every
/// number's decimal digits exactly (`9007199254740993.0`), which a JS number cannot.
fn record_items(records: &JsValue) -> Result<Vec<Result<RawRecord, String>>, JsError> {
    match records.as_string() {
        Some(text) => engine::read_items(&text).map_err(|e| err(format!("records: {e}"))),
        None => Ok(items(&records_array(records)?)),
    }
}

/// One record: an object, or the JSON text of one (exact numbers, as in [`record_items`]).
fn one_record(record: &JsValue) -> Result<RawRecord, JsError> {
    match record.as_string() {
        Some(text) => engine::read_item(&text),
        None => raw_item(record.clone()),
    }
    .map_err(|e| err(format!("record: {e}")))
}

// ---------------------------------------------------------------------------------------
// Rust -> JS

/// Serializes an answer for JS: JSON text made in Rust, parsed once by `JSON.parse` (faster
/// than serde-wasm-bindgen's object-by-object building; see wasm/README.md). The shape is
/// serde's, exactly the CLI's JSON: `None` is `null`, maps are plain objects.
fn to_js<T: Serialize>(v: &T) -> Result<JsValue, JsError> {
    let text = serde_json::to_string(v).map_err(err)?;
    JSON::parse(&text).map_err(|e| err(js_message(&e)))
}

// ---------------------------------------------------------------------------------------
// Exports

/// Validates records against contracts in one session. See `index.d.ts`.
#[wasm_bindgen(skip_typescript)]
pub fn validate(
    records: JsValue,
    contracts: JsValue,
    options: JsValue,
) -> Result<JsValue, JsError> {
    let v = validator(&contracts, &options)?;
    let now = get(&options, "now");
    if !(now.is_undefined() || now.is_null() || now.is_string()) {
        return Err(err("now: must be an RFC 3339 string"));
    }
    let now = now_or_clock(now.as_string())?;
    let history = history(&get(&options, "history"))?;
    let records = record_items(&records)?;
    to_js(&engine::validate_items(&v, records, &history, now))
}

/// Contracts, settings and compiled policies, built once.
#[wasm_bindgen(js_name = Validator, skip_typescript)]
pub struct JsValidator {
    inner: Arc<metergate_core::Validator>,
}

#[wasm_bindgen(js_class = Validator)]
impl JsValidator {
    /// Parses the contracts and settings and compiles the policies.
    #[wasm_bindgen(constructor)]
    pub fn new(contracts: JsValue, options: JsValue) -> Result<JsValidator, JsError> {
        Ok(JsValidator {
            inner: Arc::new(validator(&contracts, &options)?),
        })
    }

    /// Validates records in one session (dedup across them), optionally after a history.
    pub fn validate(
        &self,
        records: JsValue,
        now: Option<String>,
        history: JsValue,
    ) -> Result<JsValue, JsError> {
        let now = now_or_clock(now)?;
        let history = self::history(&history)?;
        let records = record_items(&records)?;
        to_js(&engine::validate_items(&self.inner, records, &history, now))
    }

    /// Validates one record alone (no dedup state): for forms.
    #[wasm_bindgen(js_name = validateRecord)]
    pub fn validate_record(
        &self,
        record: JsValue,
        now: Option<String>,
    ) -> Result<JsValue, JsError> {
        let now = now_or_clock(now)?;
        let raw = one_record(&record)?;
        to_js(&self.inner.check_one(raw, now))
    }

    /// Validates a whole CSV text, parsed inside WASM: a thin wrapper over a CSV session fed
    /// the text in one piece.
    #[wasm_bindgen(js_name = validateCsv)]
    pub fn validate_csv(
        &self,
        text: JsValue,
        now: Option<String>,
        history: JsValue,
    ) -> Result<JsValue, JsError> {
        let mut buf = Vec::new();
        let bytes = chunk_bytes(&text, &mut buf)
            .ok_or_else(|| err("text: must be the CSV text (a string or a Uint8Array)"))?;
        let now = now_or_clock(now)?;
        let history = self::history(&history)?;
        let report = engine::validate_csv(&self.inner, bytes, &history, now).map_err(err)?;
        to_js(&report)
    }

    /// Starts a streaming CSV session. See `index.d.ts`.
    #[wasm_bindgen(js_name = csvSession)]
    pub fn csv_session(&self, options: JsValue) -> Result<JsCsvSession, JsError> {
        let now = get(&options, "now");
        if !(now.is_undefined() || now.is_null() || now.is_string()) {
            return Err(err("now: must be an RFC 3339 string"));
        }
        let now = now_or_clock(now.as_string())?;
        let report = get(&options, "report");
        let report = match report.as_string().as_deref() {
            None if report.is_undefined() || report.is_null() => engine::ReportMode::All,
            Some("all") => engine::ReportMode::All,
            Some("problems") => engine::ReportMode::Problems,
            _ => return Err(err("report: must be \"all\" or \"problems\"")),
        };
        let history = self::history(&get(&options, "history"))?;
        let row_lines = get(&options, "rowLines");
        if !(row_lines.is_undefined() || row_lines.is_null() || row_lines.as_bool().is_some()) {
            return Err(err("rowLines: must be a boolean"));
        }
        let mut run = engine::CsvRun::new(Arc::clone(&self.inner), now, &history, report);
        if row_lines.as_bool() == Some(true) {
            run.keep_row_lines();
        }
        Ok(JsCsvSession {
            run: Some(run),
            buf: Vec::new(),
            out: Vec::new(),
            tail_lines: Vec::new(),
        })
    }

    /// The deadline of one record, or null when it does not parse.
    pub fn deadline(&self, record: JsValue, now: Option<String>) -> Result<JsValue, JsError> {
        let now = now_or_clock(now)?;
        let raw = one_record(&record)?;
        to_js(&self.inner.deadline(raw, now))
    }
}

/// The bytes of a chunk: a string (as UTF-8) or a Uint8Array (copied into `buf`).
fn chunk_bytes<'a>(chunk: &JsValue, buf: &'a mut Vec<u8>) -> Option<&'a [u8]> {
    if let Some(s) = chunk.as_string() {
        *buf = s.into_bytes();
        return Some(buf.as_slice());
    }
    let arr = chunk.dyn_ref::<Uint8Array>()?;
    buf.resize(arr.length() as usize, 0);
    arr.copy_to(buf);
    Some(buf.as_slice())
}

/// A streaming CSV session: chunks in, verdicts out. See `index.d.ts`.
#[wasm_bindgen(js_name = CsvSession, skip_typescript)]
pub struct JsCsvSession {
    /// `None` once finished, or stopped by an input error.
    run: Option<engine::CsvRun>,
    buf: Vec<u8>,
    out: Vec<engine::CsvVerdict>,
    /// The row lines not yet taken when the run finished.
    tail_lines: Vec<u64>,
}

#[wasm_bindgen(js_class = CsvSession)]
impl JsCsvSession {
    /// Reads one chunk; returns the verdicts of the rows it completed (only those with
    /// findings when the report is "problems"), as one array.
    pub fn push(&mut self, chunk: JsValue) -> Result<JsValue, JsError> {
        let Some(run) = self.run.as_mut() else {
            return Err(err("this CSV session is finished"));
        };
        let bytes = chunk_bytes(&chunk, &mut self.buf)
            .ok_or_else(|| err("chunk: must be a string or a Uint8Array"))?;
        self.out.clear();
        if let Err(e) = run.push(bytes, &mut self.out) {
            self.run = None;
            return Err(err(e));
        }
        let js = to_js(&self.out);
        self.out.clear();
        js
    }

    /// Ends the input: the last verdicts and the counts of every row.
    pub fn finish(&mut self) -> Result<JsValue, JsError> {
        let Some(mut run) = self.run.take() else {
            return Err(err("this CSV session is finished"));
        };
        let mut verdicts = std::mem::take(&mut self.out);
        verdicts.clear();
        let summary = run.finish(&mut verdicts).map_err(err)?;
        self.tail_lines = run.take_row_lines();
        to_js(&engine::CsvReport { verdicts, summary })
    }

    /// The first line of every row read since the last call (all rows, whatever the report),
    /// when the session was made with `rowLines: true`; empty otherwise.
    #[wasm_bindgen(js_name = takeRowLines)]
    pub fn take_row_lines(&mut self) -> Float64Array {
        let lines = match self.run.as_mut() {
            Some(run) => run.take_row_lines(),
            None => std::mem::take(&mut self.tail_lines),
        };
        let out: Vec<f64> = lines.into_iter().map(|l| l as f64).collect();
        Float64Array::from(out.as_slice())
    }

    /// Bytes read so far.
    #[wasm_bindgen(getter, js_name = bytesRead)]
    pub fn bytes_read(&self) -> f64 {
        self.run.as_ref().map_or(0.0, |r| r.bytes_read() as f64)
    }

    /// The counts so far.
    #[wasm_bindgen(getter)]
    pub fn summary(&self) -> Result<JsValue, JsError> {
        match &self.run {
            Some(r) => to_js(r.summary()),
            None => to_js(&metergate_core::Summary::default()),
        }
    }
}

/// What a finding code means; null for codes metergate does not define.
#[wasm_bindgen(skip_typescript)]
pub fn explain(code: &str) -> Result<JsValue, JsError> {
    to_js(&metergate_core::explain::explain(code))
}

/// Sums records into one per key and hour (see the core's `aggregate_hourly`).
#[wasm_bindgen(js_name = aggregateHourly, skip_typescript)]
pub fn aggregate_hourly(records: JsValue, contracts: JsValue) -> Result<JsValue, JsError> {
    let contracts = if contracts.is_undefined() || contracts.is_null() {
        None
    } else {
        Some(
            metergate_core::ContractSet::from_json(&contracts_text(&contracts)?)
                .map_err(|e| err(format!("contracts: {e}")))?,
        )
    };
    let records = records_array(&records)?;
    to_js(&engine::aggregate(items(&records), contracts.as_ref()))
}

/// The package version.
#[wasm_bindgen(skip_typescript)]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
