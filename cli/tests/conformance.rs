#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every case of `tests/conformance/*.json` through the built binary, compared with the core
//! called in-process (and with the case's own expectations).
//!
//! A case is `{name, now, settings?, policies?, history?, contracts, records,
//! expect: [{verdict, codes, fields?}]}`. The binary gets the records as JSON Lines, the
//! contracts as a JSON file, the settings as a TOML config and each policy as `<name>.rhai`.
//! Cases with `history` need `--ledger`, which arrives with `metergate submit`; until then
//! they run through the CLI library in-process (same reader, session and JSON writer, with the
//! history fed to the session) instead of the binary.

use std::path::{Path, PathBuf};

use metergate::commands::check::check_inputs;
use metergate::config::Setup;
use metergate::input::{InputFormat, InputPath};
use metergate::output::JsonLines;
use metergate_core::time::parse_rfc3339;
use metergate_core::{
    ContractSet, HistoryEntry, PolicySource, RawRecord, Settings, Validator, Verdict,
};
use serde_json::Value;

fn case_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn policies_of(case: &Value) -> Vec<PolicySource> {
    match case.get("policies") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|p| PolicySource {
                name: p["name"].as_str().unwrap().to_owned(),
                source: p["source"].as_str().unwrap().to_owned(),
            })
            .collect(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| PolicySource {
                name: k.clone(),
                source: v.as_str().unwrap().to_owned(),
            })
            .collect(),
        Some(other) => panic!("policies: unexpected {other}"),
    }
}

/// The core's answer, or `None` when the contracts, settings or policies are refused.
fn core_verdicts(case: &Value) -> Option<Vec<Verdict>> {
    let contracts = ContractSet::from_json(&case["contracts"].to_string()).ok()?;
    let settings = match case.get("settings") {
        Some(s) if !s.is_null() => Settings::from_json_value(s.clone()).ok()?,
        _ => Settings::default(),
    };
    let v = Validator::new(contracts, settings, &policies_of(case)).ok()?;
    let records: Vec<RawRecord> = case["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| serde_json::from_value(r.clone()).unwrap())
        .collect();
    let history: Vec<HistoryEntry> = match case.get("history") {
        Some(Value::Array(h)) => h
            .iter()
            .map(|e| serde_json::from_value(e.clone()).unwrap())
            .collect(),
        _ => Vec::new(),
    };
    let now = parse_rfc3339(case["now"].as_str().unwrap()).unwrap();
    Some(v.validate(records, &history, now).verdicts)
}

struct Written {
    records: PathBuf,
    contracts: PathBuf,
    config: Option<PathBuf>,
    policies: Vec<PathBuf>,
}

fn write_case(dir: &Path, case: &Value) -> Written {
    let records = dir.join("records.jsonl");
    let mut text = String::new();
    for r in case["records"].as_array().unwrap() {
        text.push_str(&serde_json::to_string(r).unwrap());
        text.push('\n');
    }
    std::fs::write(&records, text).unwrap();
    let contracts = dir.join("contracts.json");
    std::fs::write(&contracts, case["contracts"].to_string()).unwrap();
    let config = match case.get("settings") {
        Some(s) if !s.is_null() => {
            let p = dir.join("config.toml");
            std::fs::write(&p, toml::to_string(s).unwrap()).unwrap();
            Some(p)
        }
        _ => None,
    };
    let policies = policies_of(case)
        .into_iter()
        .map(|p| {
            let path = dir.join(format!("{}.rhai", p.name));
            std::fs::write(&path, p.source).unwrap();
            path
        })
        .collect();
    Written {
        records,
        contracts,
        config,
        policies,
    }
}

fn parse_output(stdout: &[u8]) -> Vec<Verdict> {
    let text = std::str::from_utf8(stdout).unwrap();
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = lines.pop().unwrap();
    assert!(last.get("summary").is_some());
    lines
        .into_iter()
        .map(|mut l| {
            assert!(l["source"]["line"].as_u64().unwrap() >= 1);
            l.as_object_mut().unwrap().remove("source");
            serde_json::from_value(l).unwrap()
        })
        .collect()
}

fn via_binary(w: &Written, now: &str) -> (i32, Vec<Verdict>, String) {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("metergate");
    cmd.arg("check")
        .arg(&w.records)
        .arg("--contracts")
        .arg(&w.contracts)
        .args(["--now", now, "--format", "json"]);
    if let Some(c) = &w.config {
        cmd.arg("--config").arg(c);
    }
    for p in &w.policies {
        cmd.arg("--policy").arg(p);
    }
    let out = cmd.output().unwrap();
    let code = out.status.code().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if code == 2 {
        return (code, Vec::new(), err);
    }
    (code, parse_output(&out.stdout), err)
}

fn via_library(w: &Written, case: &Value) -> Vec<Verdict> {
    let contracts = ContractSet::from_json(&case["contracts"].to_string()).unwrap();
    let settings = match &w.config {
        Some(p) => metergate::config::load_settings(p).unwrap(),
        None => Settings::default(),
    };
    let validator = metergate::config::build_validator(contracts, settings, &w.policies).unwrap();
    let history = case["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_value(e.clone()).unwrap())
        .collect();
    let setup = Setup {
        validator,
        now: parse_rfc3339(case["now"].as_str().unwrap()).unwrap(),
        history,
    };
    let input = InputPath::from_arg(w.records.as_os_str());
    let mut out = Vec::new();
    {
        let mut sink = JsonLines::new(&mut out);
        check_inputs(&setup, &[input], &[InputFormat::Jsonl], &mut sink, false).unwrap();
    }
    parse_output(&out)
}

fn check_expect(name: &str, got: &[Verdict], expect: &[Value]) {
    assert_eq!(got.len(), expect.len(), "{name}: number of verdicts");
    for (i, (v, e)) in got.iter().zip(expect).enumerate() {
        assert_eq!(
            v.verdict.as_str(),
            e["verdict"].as_str().unwrap(),
            "{name} #{i}: verdict"
        );
        let mut codes: Vec<&str> = v.findings.iter().map(|f| f.code.as_str()).collect();
        let mut want: Vec<&str> = e["codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        codes.sort_unstable();
        want.sort_unstable();
        assert_eq!(codes, want, "{name} #{i}: codes");
        if let Some(Value::Object(fields)) = e.get("fields") {
            for (code, field) in fields {
                let f = v.findings.iter().find(|f| &f.code == code);
                assert_eq!(
                    f.and_then(|f| f.field.as_deref()),
                    field.as_str(),
                    "{name} #{i}: field of {code}"
                );
            }
        }
    }
}

#[test]
fn every_conformance_case_through_the_binary() {
    let files = case_files();
    if files.is_empty() {
        eprintln!("no tests/conformance/*.json yet");
        return;
    }
    let mut ran = 0;
    let mut in_process = 0;
    for file in files {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for case in doc["cases"].as_array().unwrap() {
            let name = format!(
                "{}: {}",
                file.file_name().unwrap().to_string_lossy(),
                case["name"].as_str().unwrap_or("?")
            );
            let dir = tempfile::tempdir().unwrap();
            let w = write_case(dir.path(), case);
            let expected = core_verdicts(case);
            let has_history = case
                .get("history")
                .is_some_and(|h| h.as_array().is_some_and(|a| !a.is_empty()));
            let got = if has_history {
                in_process += 1;
                via_library(&w, case)
            } else {
                let (code, got, err) = via_binary(&w, case["now"].as_str().unwrap());
                match &expected {
                    None => {
                        assert_eq!(
                            code, 2,
                            "{name}: the core refuses the setup, so should the CLI"
                        );
                        ran += 1;
                        continue;
                    }
                    Some(exp) => {
                        let want = if exp.iter().all(Verdict::accepted) {
                            0
                        } else {
                            1
                        };
                        assert_eq!(code, want, "{name}: exit code; stderr: {err}");
                    }
                }
                got
            };
            let expected = expected.unwrap_or_else(|| panic!("{name}: the core refuses the case"));
            assert_eq!(got, expected, "{name}: binary and core disagree");
            check_expect(&name, &got, case["expect"].as_array().unwrap());
            ran += 1;
        }
    }
    assert!(ran > 0);
    eprintln!("{ran} conformance cases, {in_process} with history run in-process");
}
