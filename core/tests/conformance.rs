//! Runs every fixture in `tests/conformance/*.json` through `Validator::validate` and compares
//! verdicts, finding codes (as a multiset) and pinned fields. The format is documented in
//! `tests/conformance/README.md`; the CLI and WASM runners read the same files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use metergate_core::time::parse_rfc3339;
use metergate_core::{
    ContractSet, HistoryEntry, PolicySource, RawRecord, Settings, Validator, VerdictKind,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    now: String,
    #[serde(default)]
    settings: Option<serde_json::Value>,
    #[serde(default)]
    policies: Vec<Policy>,
    #[serde(default)]
    history: Vec<HistoryEntry>,
    #[serde(default)]
    contracts: Vec<serde_json::Value>,
    records: Vec<serde_json::Value>,
    expect: Vec<Expect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Policy {
    name: String,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    verdict: VerdictKind,
    #[serde(default)]
    codes: Vec<String>,
    #[serde(default)]
    fields: BTreeMap<String, Option<String>>,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance")
}

/// Runs one case; returns one line per mismatch.
fn run_case(case: &Case) -> Vec<String> {
    let mut errs = Vec::new();
    let now = match parse_rfc3339(&case.now) {
        Ok(t) => t,
        Err(e) => return vec![format!("now {:?}: {e}", case.now)],
    };
    let settings = match &case.settings {
        None => Settings::default(),
        Some(v) => match Settings::from_json_value(v.clone()) {
            Ok(s) => s,
            Err(e) => return vec![format!("settings: {e}")],
        },
    };
    let contracts_text = serde_json::to_string(&case.contracts).unwrap();
    let contracts = match ContractSet::from_json(&contracts_text) {
        Ok(c) => c,
        Err(e) => return vec![format!("contracts: {e}")],
    };
    let policies: Vec<PolicySource> = case
        .policies
        .iter()
        .map(|p| PolicySource {
            name: p.name.clone(),
            source: p.source.clone(),
        })
        .collect();
    let validator = match Validator::new(contracts, settings, &policies) {
        Ok(v) => v,
        Err(e) => return vec![format!("policies: {e}")],
    };
    let mut records = Vec::new();
    for (i, r) in case.records.iter().enumerate() {
        match serde_json::from_value::<RawRecord>(r.clone()) {
            Ok(r) => records.push(r),
            Err(e) => return vec![format!("record {i} does not load: {e}")],
        }
    }
    if records.len() != case.expect.len() {
        return vec![format!(
            "{} records but {} expectations",
            records.len(),
            case.expect.len()
        )];
    }
    let report = validator.validate(records, &case.history, now);
    for (i, (v, want)) in report.verdicts.iter().zip(&case.expect).enumerate() {
        let mut got: Vec<&str> = v.findings.iter().map(|f| f.code.as_str()).collect();
        got.sort_unstable();
        let mut exp: Vec<&str> = want.codes.iter().map(String::as_str).collect();
        exp.sort_unstable();
        let detail = || {
            v.findings
                .iter()
                .map(|f| {
                    format!(
                        "{}[{}] field={:?} rule={} msg={:?}",
                        f.code,
                        f.severity.as_str(),
                        f.field,
                        f.rule,
                        f.message
                    )
                })
                .collect::<Vec<_>>()
                .join("\n        ")
        };
        if v.verdict != want.verdict {
            errs.push(format!(
                "record {i}: verdict {} (want {})\n        {}",
                v.verdict.as_str(),
                want.verdict.as_str(),
                detail()
            ));
        }
        if got != exp {
            errs.push(format!(
                "record {i}: codes {got:?} (want {exp:?})\n        {}",
                detail()
            ));
        }
        for (code, field) in &want.fields {
            let fields: Vec<Option<&str>> = v
                .findings
                .iter()
                .filter(|f| &f.code == code)
                .map(|f| f.field.as_deref())
                .collect();
            if !fields.contains(&field.as_deref()) {
                errs.push(format!(
                    "record {i}: {code} has fields {fields:?} (want {field:?})\n        {}",
                    detail()
                ));
            }
        }
    }
    if report.summary.records != case.expect.len() as u64 {
        errs.push(format!("summary counts {} records", report.summary.records));
    }
    errs
}

#[test]
fn conformance_fixtures() {
    let dir = fixture_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no fixtures in {}", dir.display());
    let mut cases = 0;
    let mut failures = Vec::new();
    let mut names = BTreeMap::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).unwrap();
        let file: File =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let stem = path.file_name().unwrap().to_string_lossy().into_owned();
        for case in &file.cases {
            cases += 1;
            if let Some(other) = names.insert(case.name.clone(), stem.clone()) {
                failures.push(format!(
                    "{stem}: case name {:?} is also used in {other}",
                    case.name
                ));
            }
            for e in run_case(case) {
                failures.push(format!("{stem}: {:?}: {e}", case.name));
            }
        }
    }
    eprintln!("{cases} conformance cases in {} files", paths.len());
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cases >= 80, "only {cases} cases");
}
