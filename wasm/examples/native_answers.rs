//! The native reference for the WASM conformance test: runs every case of the given
//! conformance files (or directories of `*.json`) through the same core entry point
//! (`Validator::validate`) and prints the reports as one JSON object
//! `{ "<file name>": { "<case name>": <report> | {"error": "<message>"} } }`.
//!
//!     cargo run -p metergate-wasm --example native_answers -- tests/conformance > answers.json
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use metergate_core::{PolicySource, RawRecord};
use metergate_wasm::engine;
use serde_json::{json, Value};

fn files(arg: &Path) -> Vec<PathBuf> {
    if arg.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(arg)
            .unwrap_or_else(|e| panic!("{}: {e}", arg.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        v.sort();
        v
    } else {
        vec![arg.to_path_buf()]
    }
}

fn run_case(case: &Value) -> Value {
    let policies: Vec<PolicySource> = case
        .get("policies")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .enumerate()
                .map(|(i, p)| match p {
                    Value::String(s) => PolicySource {
                        name: format!("policy{i}"),
                        source: s.clone(),
                    },
                    _ => PolicySource {
                        name: p["name"]
                            .as_str()
                            .map_or_else(|| format!("policy{i}"), str::to_owned),
                        source: p["source"].as_str().unwrap_or_default().to_owned(),
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    let contracts = match case.get("contracts") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => serde_json::to_string(v).unwrap(),
        None => "[]".into(),
    };
    let v = match engine::build_validator(&contracts, &policies, case.get("settings").cloned()) {
        Ok(v) => v,
        Err(e) => return json!({ "error": e }),
    };
    let now = match case
        .get("now")
        .and_then(Value::as_str)
        .map(engine::parse_now)
    {
        Some(Ok(t)) => t,
        Some(Err(e)) => return json!({ "error": e }),
        None => return json!({ "error": "the case has no now" }),
    };
    let history = match engine::parse_history(case.get("history").cloned().unwrap_or(Value::Null)) {
        Ok(h) => h,
        Err(e) => return json!({ "error": e }),
    };
    let items: Vec<Result<RawRecord, String>> = case
        .get("records")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|r| match r {
            Value::Object(_) => serde_json::from_value::<RawRecord>(r).map_err(|e| e.to_string()),
            other => Err(format!("it is {}, not an object", kind(&other))),
        })
        .collect();
    let report = if items.iter().all(Result::is_ok) {
        // The core entry point itself.
        v.validate(items.into_iter().flatten(), &history, now)
    } else {
        engine::validate_items(&v, items, &history, now)
    };
    serde_json::to_value(&report).unwrap()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if args.is_empty() {
        eprintln!("usage: native_answers <conformance dir or file>...");
        std::process::exit(2);
    }
    let mut out = BTreeMap::new();
    for arg in &args {
        for f in files(arg) {
            let text =
                std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let doc: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let mut cases = serde_json::Map::new();
            for case in doc["cases"]
                .as_array()
                .unwrap_or_else(|| panic!("{}: no cases array", f.display()))
            {
                let name = case["name"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{}: a case has no name", f.display()));
                cases.insert(name.to_owned(), run_case(case));
            }
            let key = f.file_name().unwrap().to_string_lossy().into_owned();
            out.insert(key, Value::Object(cases));
        }
    }
    println!("{}", serde_json::to_string(&out).unwrap());
}
