#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `metergate check` end to end: flags, formats, exit codes, stdin, bad input.

use std::path::PathBuf;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

const EXAMPLE_NOW: &str = "2026-03-31T23:50:00Z";
const NOW: &str = "2026-03-15T23:50:00Z";

fn bin() -> Command {
    assert_cmd::cargo::cargo_bin_cmd!("metergate")
}

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn ex(name: &str) -> String {
    examples().join(name).display().to_string()
}

/// Runs and returns (exit code, stdout, stderr).
fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn lines(stdout: &str) -> (Vec<Value>, Value) {
    let mut v: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = v.pop().unwrap();
    assert!(summary.get("summary").is_some(), "last line is the summary");
    (v, summary["summary"].clone())
}

fn codes(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

fn error_codes(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

fn field_of(v: &Value, code: &str) -> Option<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == code)
        .and_then(|f| f["field"].as_str().map(str::to_owned))
}

fn by_line(records: &[Value], line: u64) -> &Value {
    records
        .iter()
        .find(|r| r["source"]["line"] == line)
        .unwrap_or_else(|| panic!("no record at line {line}"))
}

const CONTRACTS: &str = r#"[
 {"marketplace":"aws","product":"prod-a1","customer":"cust-1","status":"active",
  "starts_at":"2026-01-01T00:00:00Z","dimensions":[{"name":"api_calls"},{"name":"storage_gb","unit":5}]},
 {"marketplace":"azure","product":"offer-x","customer":"sub-1","status":"active",
  "starts_at":"2026-01-01T00:00:00Z","plan":"gold","resource_id":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
  "dimensions":[{"name":"requests"}]}
]"#;

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        let d = Dir {
            dir: tempfile::tempdir().unwrap(),
        };
        d.write("contracts.json", CONTRACTS);
        d
    }
    fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

const GOOD_CSV: &str = "marketplace,product,customer,dimension,quantity,start_time,record_id\n\
aws,prod-a1,cust-1,api_calls,3,2026-03-15T22:00:00Z,r1\n\
azure,offer-x,sub-1,requests,2.5,2026-03-15T21:10:00Z,r2\n";

#[test]
fn bundled_example_rejects_its_mistakes_with_stable_counts() {
    let (code, out, err) = run(bin().args([
        "check",
        &ex("usage.csv"),
        "--contracts",
        &ex("contracts.json"),
        "--config",
        &ex("config.toml"),
        "--now",
        EXAMPLE_NOW,
        "--format",
        "json",
    ]));
    assert_eq!(code, 1, "{err}");
    let (recs, summary) = lines(&out);
    assert_eq!(summary["records"], 237);
    assert_eq!(summary["accepted"], 204);
    assert_eq!(summary["rejected"], 33);
    // 106 since Microsoft's look-back counts from the record's own time: u-0070 (00:40) can be
    // sent until 00:40 the next day, 50 minutes after "now", so no window-closing any more.
    assert_eq!(summary["warnings"], 106);
    assert_eq!(summary["by_code"]["duplicate-request"], 2);
    assert_eq!(summary["by_code"]["duplicate-ignored"], 1);
    assert_eq!(summary["by_code"]["customer-not-entitled"], 4);
    assert_eq!(summary["by_code"]["invalid-usage-dimension"], 5);
    assert_eq!(recs.len(), 237);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["index"], i as u64);
        assert_eq!(r["source"]["file"], ex("usage.csv"));
    }
    // Unit remainder: 17 of data_gb (unit 5).
    let r = by_line(&recs, 26);
    assert_eq!(r["record_id"], "u-0025");
    assert_eq!(r["verdict"], "rejected");
    assert_eq!(error_codes(r), ["invalid-quantity"]);
    assert_eq!(field_of(r, "invalid-quantity").as_deref(), Some("quantity"));
    // The exact repeat of an AWS record: billed once, a warning.
    let r = by_line(&recs, 44);
    assert_eq!(r["verdict"], "accepted");
    assert!(codes(r).contains(&"duplicate-ignored".to_owned()));
    // Wrong Azure plan.
    let r = by_line(&recs, 58);
    assert_eq!(error_codes(r), ["invalid-usage-dimension"]);
    assert_eq!(
        field_of(r, "invalid-usage-dimension").as_deref(),
        Some("plan")
    );
    // Missing quantity.
    let r = by_line(&recs, 133);
    assert_eq!(error_codes(r), ["invalid-record"]);
    assert_eq!(field_of(r, "invalid-record").as_deref(), Some("quantity"));
    // The broken row (too few fields) still gets a verdict, and the rows after it theirs.
    let r = by_line(&recs, 153);
    assert_eq!(r["record_id"], "u-broken");
    assert_eq!(error_codes(r), ["invalid-record"]);
    assert_eq!(field_of(r, "invalid-record").as_deref(), Some("row"));
    assert_eq!(r["findings"][0]["rule"], "all.form");
    assert_eq!(by_line(&recs, 154)["record_id"], "u-0152");
    // Uppercase marketplace.
    let r = by_line(&recs, 164);
    assert_eq!(
        field_of(r, "invalid-record").as_deref(),
        Some("marketplace")
    );
    // Cancelled long ago: not entitled any more and too old.
    let r = by_line(&recs, 236);
    assert_eq!(
        error_codes(r),
        ["customer-not-entitled", "timestamp-out-of-bounds"]
    );
}

#[test]
fn json_line_shape_is_exact() {
    let d = Dir::new();
    let f = d.write("u.csv", GOOD_CSV);
    let (code, out, _) = run(bin().args([
        "check",
        &f,
        "--contracts",
        &d.path("contracts.json"),
        "--now",
        NOW,
        "--format",
        "json",
    ]));
    assert_eq!(code, 0);
    let (recs, summary) = lines(&out);
    let keys: Vec<&String> = recs[0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["findings", "index", "record_id", "source", "verdict"]
    );
    assert_eq!(recs[0]["source"], serde_json::json!({"file": f, "line": 2}));
    assert_eq!(recs[1]["record_id"], "r2");
    assert_eq!(recs[1]["verdict"], "accepted");
    assert_eq!(
        summary,
        serde_json::json!({"records":2,"accepted":2,"rejected":0,"warnings":0,"by_code":{}})
    );
}

#[test]
fn default_format_is_json_when_not_a_terminal() {
    let d = Dir::new();
    let f = d.write("u.csv", GOOD_CSV);
    let (code, out, _) = run(bin().args([
        "check",
        &f,
        "--contracts",
        &d.path("contracts.json"),
        "--now",
        NOW,
    ]));
    assert_eq!(code, 0);
    assert_eq!(lines(&out).0.len(), 2);
}

#[test]
fn findings_carry_every_field() {
    let d = Dir::new();
    let f = d.write(
        "u.csv",
        "marketplace,product,customer,dimension,quantity,start_time\naws,prod-a1,cust-1,api_calls,2.5,2026-03-15T22:00:00Z\n",
    );
    let (code, out, _) = run(bin().args([
        "check",
        &f,
        "--contracts",
        &d.path("contracts.json"),
        "--now",
        NOW,
        "--format",
        "json",
    ]));
    assert_eq!(code, 1);
    let (recs, _) = lines(&out);
    let finding = &recs[0]["findings"][0];
    let keys: Vec<&String> = finding.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["code", "field", "hint", "message", "rule", "severity"]
    );
    assert_eq!(finding["code"], "invalid-quantity");
    assert_eq!(finding["severity"], "error");
    assert_eq!(finding["rule"], "aws.quantity");
    assert_eq!(recs[0]["record_id"], Value::Null);
}

#[test]
fn bad_rows_among_good_rows_keep_the_good_verdicts() {
    let d = Dir::new();
    let mut text =
        String::from("marketplace,product,customer,dimension,quantity,start_time,record_id\n");
    text.push_str("aws,prod-a1,cust-1,api_calls,3,2026-03-15T20:00:00Z,a\n");
    text.push_str("aws,prod-a1,cust-1,api_calls,lots,2026-03-15T21:00:00Z,b\n");
    text.push_str("aws,prod-a1,cust-1,api_calls,3,2026-03-15T22:00:00,c\n");
    text.push_str("aws,prod-a1,cust-1\n");
    text.push_str("aws,prod-a1,cust-1,api_calls,,2026-03-15T23:00:00Z,e\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(b"aws,prod-a1,cust-1,api_\xff,3,2026-03-15T23:00:00Z,f\n");
    bytes.extend_from_slice(b"aws,prod-a1,cust-1,storage_gb,10,2026-03-15T23:00:00Z,g\n");
    let f = d.path("u.csv");
    std::fs::write(&f, bytes).unwrap();
    let (code, out, err) = run(bin().args([
        "check",
        &f,
        "--contracts",
        &d.path("contracts.json"),
        "--now",
        NOW,
        "--format",
        "json",
    ]));
    assert_eq!(code, 1, "{err}");
    let (recs, summary) = lines(&out);
    let got: Vec<(u64, String, Vec<String>, Option<String>)> = recs
        .iter()
        .map(|r| {
            let c = codes(r);
            let field = c.first().and_then(|c| field_of(r, c));
            (
                r["source"]["line"].as_u64().unwrap(),
                r["verdict"].as_str().unwrap().to_owned(),
                c,
                field,
            )
        })
        .collect();
    let s = |x: &str| x.to_owned();
    assert_eq!(
        got,
        vec![
            (2, s("accepted"), vec![], None),
            (
                3,
                s("rejected"),
                vec![s("invalid-quantity")],
                Some(s("quantity"))
            ),
            (
                4,
                s("rejected"),
                vec![s("invalid-record")],
                Some(s("start_time"))
            ),
            (5, s("rejected"), vec![s("invalid-record")], Some(s("row"))),
            (
                6,
                s("rejected"),
                vec![s("invalid-record")],
                Some(s("quantity"))
            ),
            (
                7,
                s("rejected"),
                vec![s("invalid-record")],
                Some(s("dimension"))
            ),
            (8, s("accepted"), vec![], None),
        ]
    );
    assert_eq!(summary["records"], 7);
    assert_eq!(summary["rejected"], 5);
    assert_eq!(summary["by_code"]["invalid-record"], 4);
}

#[test]
fn json_array_and_jsonl_inputs() {
    let d = Dir::new();
    let arr = d.write(
        "u.json",
        "[\n  {\"marketplace\":\"aws\",\"product\":\"prod-a1\",\"customer\":\"cust-1\",\"dimension\":\"api_calls\",\n   \"quantity\":3,\"start_time\":\"2026-03-15T22:00:00Z\",\"record_id\":\"j1\"},\n  {\"marketplace\":\"aws\",\"product\":\"prod-a1\",\"customer\":\"cust-1\",\"dimension\":\"api_calls\",\"quantity\":4,\"start_time\":\"2026-03-15T22:30:00Z\"},\n  7\n]\n",
    );
    let (code, out, err) = run(bin().args([
        "check",
        &arr,
        "--contracts",
        &d.path("contracts.json"),
        "--now",
        NOW,
        "--format",
        "json",
    ]));
    assert_eq!(code, 1, "{err}");
    let (recs, _) = lines(&out);
    assert_eq!(
        recs.iter()
            .map(|r| r["source"]["line"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [2, 4, 5]
    );
    assert_eq!(recs[0]["verdict"], "accepted");
    assert_eq!(codes(&recs[1]), ["duplicate-request"]);
    assert_eq!(codes(&recs[2]), ["invalid-record"]);

    let jl = d.write(
        "u.jsonl",
        "{\"marketplace\":\"aws\",\"product\":\"prod-a1\",\"customer\":\"cust-1\",\"dimension\":\"api_calls\",\"quantity\":3,\"start_time\":\"2026-03-15T22:00:00Z\"}\n\n{\"marketplace\": oops}\n{\"marketplace\":\"aws\",\"product\":\"prod-a1\",\"customer\":\"cust-1\",\"dimension\":\"api_calls\",\"quantity\":3,\"start_time\":\"2026-03-15T23:00:00Z\",\"team\":\"x\"}\n",
    );
    let (code, out, _) = run(bin().args([
        "check",
        &jl,
        "--contracts",
        &d.path("contracts.json"),
        "--now",
        NOW,
        "--format",
        "json",
    ]));
    assert_eq!(code, 1);
    let (recs, _) = lines(&out);
    assert_eq!(
        recs.iter()
            .map(|r| r["source"]["line"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 3, 4]
    );
    assert_eq!(recs[0]["verdict"], "accepted");
    assert_eq!(field_of(&recs[1], "invalid-record").as_deref(), Some("row"));
    assert_eq!(recs[2]["verdict"], "accepted");
    assert_eq!(recs[2]["index"], 2);

    // .ndjson is JSON Lines too.
    let nd = d.write("u.ndjson", &std::fs::read_to_string(&jl).unwrap());
    let (code, out, _) = run(bin().args([
        "check",
        &nd,
        "--contracts",
        &d.path("contracts.json"),
        "--now",
        NOW,
        "--format",
        "json",
    ]));
    assert_eq!(code, 1);
    assert_eq!(lines(&out).0.len(), 3);
}

#[test]
fn malformed_json_array_exits_2_with_line_and_column() {
    let d = Dir::new();
    let f = d.write("u.json", "[\n {\"quantity\": 1},\n {\"quantity\" 2}\n]\n");
    bin()
        .args([
            "check",
            &f,
            "--contracts",
            &d.path("contracts.json"),
            "--now",
            NOW,
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!("{f}:3:14")));
    let f = d.write("obj.json", "{\"quantity\": 1}\n");
    bin()
        .args(["check", &f, "--now", NOW])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains(format!("{f}:1:1"))
                .and(predicate::str::contains("JSON array")),
        );
}

#[test]
fn stdin_defaults_to_csv_and_input_format_overrides() {
    let d = Dir::new();
    let (code, out, _) = run(bin()
        .args([
            "check",
            "--contracts",
            &d.path("contracts.json"),
            "--now",
            NOW,
            "--format",
            "json",
        ])
        .write_stdin(GOOD_CSV));
    assert_eq!(code, 0);
    let (recs, _) = lines(&out);
    assert_eq!(
        recs[0]["source"],
        serde_json::json!({"file": "-", "line": 2})
    );
    let jl = "{\"marketplace\":\"aws\",\"product\":\"prod-a1\",\"customer\":\"cust-1\",\"dimension\":\"api_calls\",\"quantity\":-1,\"start_time\":\"2026-03-15T22:00:00Z\"}\n";
    let (code, out, _) = run(bin()
        .args([
            "check",
            "-",
            "--input-format",
            "jsonl",
            "--contracts",
            &d.path("contracts.json"),
            "--now",
            NOW,
            "--format",
            "json",
        ])
        .write_stdin(jl));
    assert_eq!(code, 1);
    assert_eq!(codes(&lines(&out).0[0]), ["invalid-quantity"]);
    // --input-format also overrides an extension.
    let f = d.write("records.txt", GOOD_CSV);
    bin()
        .args(["check", &f, "--now", NOW])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--input-format"));
    bin()
        .args([
            "check",
            &f,
            "--input-format",
            "csv",
            "--contracts",
            &d.path("contracts.json"),
            "--now",
            NOW,
        ])
        .assert()
        .code(0);
}

#[test]
fn several_files_share_one_index_and_dedup() {
    let d = Dir::new();
    let a = d.write("a.csv", GOOD_CSV);
    let b = d.write(
        "b.jsonl",
        "{\"marketplace\":\"aws\",\"product\":\"prod-a1\",\"customer\":\"cust-1\",\"dimension\":\"api_calls\",\"quantity\":9,\"start_time\":\"2026-03-15T22:10:00Z\"}\n",
    );
    let (code, out, _) = run(bin().args([
        "check",
        &a,
        &b,
        "--contracts",
        &d.path("contracts.json"),
        "--now",
        NOW,
        "--format",
        "json",
    ]));
    assert_eq!(code, 1);
    let (recs, _) = lines(&out);
    assert_eq!(recs[2]["index"], 2);
    assert_eq!(recs[2]["source"], serde_json::json!({"file": b, "line": 1}));
    assert_eq!(codes(&recs[2]), ["duplicate-request"]);
}

#[test]
fn text_format_groups_findings_with_file_line_and_summary() {
    let d = Dir::new();
    let f = d.write(
        "u.csv",
        "marketplace,product,customer,dimension,quantity,start_time\naws,prod-a1,cust-1,api_calls,3,2026-03-15T22:00:00Z\naws,prod-a1,cust-1,api_cals,3,2026-03-15T22:00:00Z\n",
    );
    let (code, out, _) = run(bin()
        .args([
            "check",
            &f,
            "--contracts",
            &d.path("contracts.json"),
            "--now",
            NOW,
            "--format",
            "text",
        ])
        .env_remove("NO_COLOR"));
    assert_eq!(code, 1);
    assert!(out.contains(&format!("{f}:3: rejected")), "{out}");
    assert!(
        !out.contains(&format!("{f}:2:")),
        "accepted records without findings stay quiet"
    );
    assert!(out.contains("invalid-usage-dimension"));
    assert!(out.contains("hint: did you mean api_calls?"));
    assert!(out.contains("Summary"));
    assert!(out
        .lines()
        .any(|l| l.trim_start().starts_with("rejected") && l.trim_end().ends_with('1')));
    assert!(
        !out.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
}

#[test]
fn csv_format_echoes_rows_with_verdict_and_codes() {
    let d = Dir::new();
    let f = d.write(
        "u.csv",
        "team,marketplace,product,customer,dimension,quantity,start_time\nx,aws,prod-a1,cust-1,api_calls,3,2026-03-15T22:00:00Z\n\"a,b\",aws,prod-a1,cust-1,api_calls,2.5,2026-03-15T21:00:00Z\ny,aws\n",
    );
    let (code, out, _) = run(bin().args([
        "check",
        &f,
        "--contracts",
        &d.path("contracts.json"),
        "--now",
        NOW,
        "--format",
        "csv",
    ]));
    assert_eq!(code, 1);
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(out.as_bytes());
    let head: Vec<String> = rdr.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        head,
        [
            "team",
            "marketplace",
            "product",
            "customer",
            "dimension",
            "quantity",
            "start_time",
            "verdict",
            "codes"
        ]
    );
    let rows: Vec<Vec<String>> = rdr
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(rows[0][0], "x");
    assert_eq!(rows[0][7..], ["accepted", ""]);
    assert_eq!(rows[1][0], "a,b");
    assert_eq!(rows[1][5], "2.5");
    assert_eq!(rows[1][7..], ["rejected", "invalid-quantity"]);
    assert_eq!(rows[2].len(), 9);
    assert_eq!(rows[2][7..], ["rejected", "invalid-record"]);

    // Checking the output again overwrites verdict/codes instead of adding columns.
    let again = d.write("again.csv", &out);
    let (_, out2, _) = run(bin().args([
        "check",
        &again,
        "--contracts",
        &d.path("contracts.json"),
        "--now",
        NOW,
        "--format",
        "csv",
    ]));
    assert_eq!(out2.lines().next().unwrap(), out.lines().next().unwrap());

    // JSON input: the known columns.
    let j = d.write(
        "u.jsonl",
        "{\"marketplace\":\"aws\",\"product\":\"prod-a1\",\"customer\":\"cust-1\",\"dimension\":\"api_calls\",\"quantity\":3,\"start_time\":\"2026-03-15T22:00:00Z\",\"record_id\":\"q\"}\n",
    );
    let (code, out, _) = run(bin().args([
        "check",
        &j,
        "--contracts",
        &d.path("contracts.json"),
        "--now",
        NOW,
        "--format",
        "csv",
    ]));
    assert_eq!(code, 0);
    let mut rdr = csv::Reader::from_reader(out.as_bytes());
    let head: Vec<String> = rdr.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        &head[..5],
        [
            "marketplace",
            "product",
            "customer",
            "dimension",
            "quantity"
        ]
    );
    assert_eq!(head.last().unwrap(), "codes");
    let row = rdr.records().next().unwrap().unwrap();
    assert_eq!(&row[0], "aws");
    assert_eq!(&row[4], "3");
    assert_eq!(&row[7], "q");
}

#[test]
fn bad_csv_headers_exit_2() {
    let d = Dir::new();
    let f = d.write("u.csv", "a,b,c\n1,2,3\n");
    bin()
        .args(["check", &f, "--now", NOW])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains(format!("{f}:1"))
                .and(predicate::str::contains("no usable header")),
        );
    let f = d.write("dup.csv", "marketplace,quantity,marketplace\naws,1,aws\n");
    bin()
        .args(["check", &f, "--now", NOW])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("\"marketplace\" appears twice"));
    let f = d.write("empty.csv", "");
    bin()
        .args(["check", &f, "--now", NOW])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no header row"));
}

#[test]
fn unreadable_file_exits_2() {
    let d = Dir::new();
    bin()
        .args(["check", &d.path("nope.csv"), "--now", NOW])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains(d.path("nope.csv")));
}

#[test]
fn bad_contracts_exit_2_naming_the_field() {
    let d = Dir::new();
    let u = d.write("u.csv", GOOD_CSV);
    let c = d.write(
        "c.json",
        "[\n {\"marketplace\":\"aws\",\"product\":\"p\",\"customer\":\"c\",\"status\":\"active\",\n  \"starts_at\":\"yesterday\"}\n]",
    );
    bin()
        .args(["check", &u, "--contracts", &c, "--now", NOW])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains(format!("{c}:3:"))
                .and(predicate::str::contains("[0].starts_at")),
        );
    let c = d.write(
        "c2.json",
        "[\n {\"marketplace\":\"aws\",\"product\":\"p\",\"customer\":\"c\",\"status\":\"active\",\"starts_at\":\"2026-01-01T00:00:00Z\"},\n {\"marketplace\":\"aws\",\"product\":\"p\",\"customer\":\"d\",\"status\":\"cancelled\",\"starts_at\":\"2026-01-01T00:00:00Z\"}\n]",
    );
    bin()
        .args(["check", &u, "--contracts", &c, "--now", NOW])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains(format!("{c}:3:"))
                .and(predicate::str::contains("cancelled_at")),
        );
    let c = d.write("c3.json", "{\"not\": \"an array\"}");
    bin()
        .args(["check", &u, "--contracts", &c, "--now", NOW])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(c.as_str()));
}

#[test]
fn bad_now_exits_2() {
    let d = Dir::new();
    let u = d.write("u.csv", GOOD_CSV);
    for bad in ["2026-03-15T23:50:00", "tomorrow", "2026-03-31"] {
        bin()
            .args(["check", &u, "--now", bad])
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains("--now"));
    }
}

#[test]
fn now_decides_the_window() {
    let d = Dir::new();
    let u = d.write("u.csv", GOOD_CSV);
    let c = d.path("contracts.json");
    bin()
        .args(["check", &u, "--contracts", &c, "--now", NOW])
        .assert()
        .code(0);
    let (code, out, _) = run(bin().args([
        "check",
        &u,
        "--contracts",
        &c,
        "--now",
        "2026-03-16T06:00:00Z",
        "--format",
        "json",
    ]));
    assert_eq!(code, 1);
    assert_eq!(codes(&lines(&out).0[0]), ["timestamp-out-of-bounds"]);
}

#[test]
fn config_toml_changes_settings_and_bad_config_exits_2() {
    let d = Dir::new();
    // 22:00 is 25h50m before now: AWS 6h rejects; with 24h as well, but 10:00 on the 31st
    // is 13h50m: rejected by 6h, accepted by 24h.
    let u = d.write(
        "u.csv",
        "marketplace,product,customer,dimension,quantity,start_time\naws,prod-a1,cust-1,api_calls,3,2026-03-15T10:00:00Z\n",
    );
    let c = d.path("contracts.json");
    bin()
        .args(["check", &u, "--contracts", &c, "--now", NOW])
        .assert()
        .code(1);
    let cfg = d.write(
        "c.toml",
        "warning_margin = \"5m\"\n[aws]\nlookback = \"24h\"\n",
    );
    bin()
        .args([
            "check",
            &u,
            "--contracts",
            &c,
            "--now",
            NOW,
            "--config",
            &cfg,
        ])
        .assert()
        .code(0);
    let cfg = d.write("c.json", "{\"aws\": {\"lookback\": \"24h\"}}");
    bin()
        .args([
            "check",
            &u,
            "--contracts",
            &c,
            "--now",
            NOW,
            "--config",
            &cfg,
        ])
        .assert()
        .code(0);
    let bad = d.write("bad.toml", "[aws]\nlookback = \"12h\"\n");
    bin()
        .args([
            "check",
            &u,
            "--contracts",
            &c,
            "--now",
            NOW,
            "--config",
            &bad,
        ])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains(bad.as_str()).and(predicate::str::contains("aws.lookback")),
        );
    let bad = d.write("bad2.toml", "warning_margin = \n");
    bin()
        .args([
            "check",
            &u,
            "--contracts",
            &c,
            "--now",
            NOW,
            "--config",
            &bad,
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!("{bad}:1:")));
    let bad = d.write("bad3.toml", "colour = \"red\"\n");
    bin()
        .args([
            "check",
            &u,
            "--contracts",
            &c,
            "--now",
            NOW,
            "--config",
            &bad,
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("colour"));
}

#[test]
fn policies_run_and_a_broken_policy_exits_2() {
    let d = Dir::new();
    let u = d.write(
        "u.csv",
        "marketplace,product,customer,dimension,quantity,start_time,team\naws,prod-a1,cust-1,api_calls,300,2026-03-15T22:00:00Z,\naws,prod-a1,cust-1,api_calls,3,2026-03-15T23:00:00Z,x\n",
    );
    let c = d.path("contracts.json");
    let p = d.write(
        "cap.rhai",
        "fn check(record, ctx) {\n  if record.quantity > ctx.params.max {\n    reject_field(\"quantity\", \"over-cap\", \"too much\");\n  }\n}\n",
    );
    let cfg = d.write("c.toml", "[params.cap]\nmax = 100\n");
    let (code, out, err) = run(bin().args([
        "check",
        &u,
        "--contracts",
        &c,
        "--now",
        NOW,
        "--policy",
        &p,
        "--config",
        &cfg,
        "--format",
        "json",
    ]));
    assert_eq!(code, 1, "{err}");
    let (recs, _) = lines(&out);
    assert_eq!(codes(&recs[0]), ["over-cap"]);
    assert_eq!(recs[0]["findings"][0]["rule"], "policy:cap");
    assert_eq!(recs[1]["verdict"], "accepted");

    let broken = d.write("broken.rhai", "fn check(record, ctx) {\n  let x = ;\n}\n");
    bin()
        .args([
            "check",
            &u,
            "--contracts",
            &c,
            "--now",
            NOW,
            "--policy",
            &broken,
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!("{broken}:2:")));
    bin()
        .args([
            "check",
            &u,
            "--contracts",
            &c,
            "--now",
            NOW,
            "--policy",
            &d.path("missing.rhai"),
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("missing.rhai"));
}

#[test]
fn ledger_flag_is_accepted_and_a_missing_ledger_exits_2() {
    let d = Dir::new();
    let u = d.write("u.csv", GOOD_CSV);
    bin()
        .args([
            "check",
            &u,
            "--now",
            NOW,
            "--ledger",
            &d.path("none.sqlite"),
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("does not exist"));
}

#[test]
fn usage_errors_exit_2() {
    bin().args(["check", "--format", "yaml"]).assert().code(2);
    bin()
        .args(["check", "-", "-"])
        .write_stdin("")
        .assert()
        .code(2);
    bin().args(["frobnicate"]).assert().code(2);
}

#[test]
fn empty_inputs_are_fine() {
    let d = Dir::new();
    let u = d.write("u.csv", "marketplace,quantity\n");
    let (code, out, _) = run(bin().args(["check", &u, "--now", NOW, "--format", "json"]));
    assert_eq!(code, 0);
    assert_eq!(lines(&out).1["records"], 0);
    let j = d.write("u.json", "[]");
    bin().args(["check", &j, "--now", NOW]).assert().code(0);
}

#[test]
fn text_format_escapes_terminal_controls_from_input_and_policies() {
    // A record_id, a policy message and a hint that carry terminal escapes (issue 16 item 8).
    let d = Dir::new();
    let f = d.write(
        "u.csv",
        "marketplace,product,customer,dimension,quantity,start_time,record_id,note\n\
         aws,prod-a1,cust-1,api_calls,3,2026-03-15T22:00:00Z,\"r\x1b[31mRED\x1b]0;TITLE\x07\",\"x\x1b[2K\rok\"\n",
    );
    let p = d.write(
        "echo.rhai",
        "fn check(record, ctx) {\n  warn(\"echo\", \"note \" + record.attributes.note, \"hint \" + record.record_id);\n}\n",
    );
    let (code, out, err) = run(bin()
        .args([
            "check",
            &f,
            "--contracts",
            &d.path("contracts.json"),
            "--now",
            NOW,
            "--policy",
            &p,
            "--format",
            "text",
        ])
        .env_remove("NO_COLOR"));
    assert_eq!(code, 0, "{err}");
    for bad in ['\x1b', '\x07', '\r'] {
        assert!(!out.contains(bad), "{bad:?} printed raw: {out:?}");
    }
    assert!(
        out.contains("record r\\u{1b}[31mRED\\u{1b}]0;TITLE\\u{7}"),
        "{out}"
    );
    assert!(out.contains("note x\\u{1b}[2K\\rok"), "{out}");
    assert!(out.contains("hint: hint r\\u{1b}[31mRED"), "{out}");
}
