//! The bad-input catalogue (tests/bad_inputs/cases/*/), run through the built `metergate`
//! binary: `metergate check --format json --now 2026-03-10T12:00:00Z --contracts C
//! [--policy P.rhai ...] [--config config.toml] input.*`.
//!
//! Each case folder holds one `input.csv` / `input.json` / `input.jsonl`, optionally its own
//! `contracts.json` (else the catalogue's shared one), `*.rhai` policies and a `config.toml`,
//! and `expect.json`:
//!
//! * `exit`: the exit status (0, 1 or 2).
//! * `rows` (exit 0 and 1): every verdict, in order: `line` (the input line the record starts
//!   on), `verdict`, and for rejected rows the `code` and `field` (`null`: no field) of one of
//!   its findings (or of one of the row's `alternatives`, each `{code, field}`). Accepted rows must have no finding at all: a bad row never changes the
//!   verdict of the good rows around it.
//! * `stderr_contains` (exit 2): fragments the error must hold: the file, `:line`, the field.
//!
//! Large inputs are generated at test time: `@@REPEAT("text",N)@@` in any file of a case is
//! replaced by N copies of the text, `{i}` in it by the copy's 0-based number.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const NOW: &str = "2026-03-10T12:00:00Z";

fn catalogue() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/bad_inputs")
}

fn case_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(catalogue().join("cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expect.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// Expands `@@REPEAT("text",N)@@` markers.
fn expand(bytes: &[u8]) -> Vec<u8> {
    const OPEN: &[u8] = b"@@REPEAT(";
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(at) = find(rest, OPEN) {
        out.extend_from_slice(&rest[..at]);
        let after = &rest[at + OPEN.len()..];
        let close = find(after, b")@@").expect("unclosed @@REPEAT(");
        let args = std::str::from_utf8(&after[..close]).expect("REPEAT args are UTF-8");
        let comma = args.rfind(',').expect("REPEAT(\"text\",N)");
        let text: String =
            serde_json::from_str(&args[..comma]).expect("REPEAT text is a JSON string");
        let n: usize = args[comma + 1..].trim().parse().expect("REPEAT count");
        if text.contains("{i}") {
            for i in 0..n {
                out.extend_from_slice(text.replace("{i}", &i.to_string()).as_bytes());
            }
        } else {
            out.extend_from_slice(text.repeat(n).as_bytes());
        }
        rest = &after[close + 3..];
    }
    out.extend_from_slice(rest);
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Copies the case into a temporary folder (expanding markers) and runs the CLI there, with
/// relative paths, so that messages name `input.csv`, `contracts.json`, ...
fn run_case(dir: &Path) -> Outcome {
    let tmp = tempfile::tempdir().unwrap();
    let mut input = None;
    let mut policies = Vec::new();
    let mut config = None;
    let mut has_contracts = false;
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in names {
        let name = name.to_string_lossy().into_owned();
        if name == "expect.json" {
            continue;
        }
        fs::write(
            tmp.path().join(&name),
            expand(&fs::read(dir.join(&name)).unwrap()),
        )
        .unwrap();
        if name.starts_with("input.") {
            input = Some(name);
        } else if name.ends_with(".rhai") {
            policies.push(name);
        } else if name == "config.toml" {
            config = Some(name);
        } else if name == "contracts.json" {
            has_contracts = true;
        }
    }
    if !has_contracts {
        fs::copy(
            catalogue().join("contracts.json"),
            tmp.path().join("contracts.json"),
        )
        .unwrap();
    }
    let input = input.unwrap_or_else(|| panic!("{}: no input.* file", dir.display()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_metergate"));
    cmd.current_dir(tmp.path()).args([
        "check",
        "--format",
        "json",
        "--now",
        NOW,
        "--contracts",
        "contracts.json",
    ]);
    for p in &policies {
        cmd.args(["--policy", p]);
    }
    if let Some(c) = &config {
        cmd.args(["--config", c]);
    }
    cmd.arg(&input);
    let out = cmd.output().unwrap();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Checks one case; returns what is wrong (empty when it passes).
fn check_case(dir: &Path) -> Vec<String> {
    let expect: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("expect.json")).unwrap()).unwrap();
    let out = run_case(dir);
    let mut errs = Vec::new();
    let want_exit = expect["exit"].as_i64().unwrap() as i32;
    if out.code != want_exit {
        errs.push(format!(
            "exit {} (expected {want_exit}); stderr: {}",
            out.code,
            out.stderr.trim()
        ));
    }
    if out.stderr.contains("panicked") || out.code == 101 {
        errs.push(format!("PANIC: {}", out.stderr.trim()));
    }
    if let Some(frags) = expect["stderr_contains"].as_array() {
        for f in frags {
            let f = f.as_str().unwrap();
            if !out.stderr.contains(f) {
                errs.push(format!("stderr lacks {f:?}: {}", out.stderr.trim()));
            }
        }
    }
    if let Some(rows) = expect["rows"].as_array() {
        let lines: Vec<Value> = out
            .stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: output line {l:?}: {e}", dir.display()))
            })
            .collect();
        let (summary, verdicts): (Vec<&Value>, Vec<&Value>) =
            lines.iter().partition(|v| v.get("summary").is_some());
        if verdicts.len() != rows.len() {
            errs.push(format!(
                "{} verdicts (expected {})",
                verdicts.len(),
                rows.len()
            ));
        }
        for (i, (want, got)) in rows.iter().zip(&verdicts).enumerate() {
            errs.extend(check_row(i, want, got));
        }
        match summary.as_slice() {
            [s] => {
                let s = &s["summary"];
                let rejected = rows.iter().filter(|r| r["verdict"] == "rejected").count() as u64;
                if s["records"].as_u64() != Some(rows.len() as u64)
                    || s["rejected"].as_u64() != Some(rejected)
                {
                    errs.push(format!(
                        "summary {s} (expected {} records, {rejected} rejected)",
                        rows.len()
                    ));
                }
            }
            _ => errs.push(format!("{} summary lines", summary.len())),
        }
    }
    errs
}

fn check_row(i: usize, want: &Value, got: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let line = &got["source"]["line"];
    if *line != want["line"] {
        errs.push(format!("row {i}: line {line} (expected {})", want["line"]));
    }
    if got["verdict"] != want["verdict"] {
        errs.push(format!(
            "row {i}: verdict {} (expected {}); findings {}",
            got["verdict"], want["verdict"], got["findings"]
        ));
    }
    let findings = got["findings"].as_array().cloned().unwrap_or_default();
    if want["verdict"] == "accepted" {
        if !findings.is_empty() {
            errs.push(format!(
                "row {i}: a good row got findings {}",
                got["findings"]
            ));
        }
    } else {
        // The expected code and field, or one of the `alternatives` (each {code, field}).
        let mut wanted = vec![want];
        wanted.extend(want["alternatives"].as_array().into_iter().flatten());
        let hit = findings.iter().any(|f| {
            let field = f.get("field").unwrap_or(&Value::Null);
            wanted
                .iter()
                .any(|w| f["code"] == w["code"] && *field == w["field"])
        });
        if !hit {
            errs.push(format!(
                "row {i}: no finding {} on field {}; got {}",
                want["code"], want["field"], got["findings"]
            ));
        }
    }
    errs
}

#[test]
fn every_catalogue_case() {
    let dirs = case_dirs();
    let mut failed = Vec::new();
    for dir in &dirs {
        let errs = check_case(dir);
        if !errs.is_empty() {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            failed.push(format!("{name}:\n  {}", errs.join("\n  ")));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        dirs.len(),
        failed.join("\n")
    );
}

#[test]
fn catalogue_is_complete() {
    let dirs = case_dirs();
    assert!(dirs.len() >= 50, "only {} cases", dirs.len());
    for dir in &dirs {
        let expect: Value =
            serde_json::from_str(&fs::read_to_string(dir.join("expect.json")).unwrap())
                .unwrap_or_else(|e| panic!("{}: expect.json: {e}", dir.display()));
        let exit = expect["exit"].as_i64();
        assert!(matches!(exit, Some(0..=2)), "{}: exit", dir.display());
        if exit == Some(2) {
            assert!(
                expect["stderr_contains"].is_array(),
                "{}: exit 2 needs stderr_contains",
                dir.display()
            );
        } else {
            let rows = expect["rows"]
                .as_array()
                .unwrap_or_else(|| panic!("{}: rows", dir.display()));
            // A case with one bad row also has good rows around it.
            if rows.iter().any(|r| r["verdict"] == "rejected") && rows.len() > 1 {
                assert!(
                    rows.iter().any(|r| r["verdict"] == "accepted")
                        || dir.ends_with("csv_missing_required_column"),
                    "{}: no good row",
                    dir.display()
                );
            }
        }
    }
}

#[test]
fn repeat_markers_expand() {
    assert_eq!(expand(b"a@@REPEAT(\",c{i}\",3)@@b"), b"a,c0,c1,c2b");
    assert_eq!(expand(b"@@REPEAT(\"[\",2)@@@@REPEAT(\"]\",2)@@"), b"[[]]");
    assert_eq!(expand(b"plain"), b"plain");
}
