#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `metergate aggregate` keeps every record billable (issue 15, item 1-3), and JSON numbers
//! stay exact (item 7): each case aggregates, then `check`s the output at the same `--now`,
//! and compares verdicts and codes, never message text.

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

fn bin() -> Command {
    assert_cmd::cargo::cargo_bin_cmd!("metergate")
}

const HEADER: &str = "marketplace,product,customer,dimension,quantity,start_time,end_time,plan\n";

/// Runs `aggregate` on `csv` with `contracts` at `now`; returns (exit code, output CSV,
/// stderr, carry CSV).
fn aggregate(dir: &Path, contracts: &str, csv: &str, now: &str) -> (i32, String, String, String) {
    let c = dir.join("contracts.json");
    std::fs::write(&c, contracts).unwrap();
    let input = dir.join("in.csv");
    std::fs::write(&input, csv).unwrap();
    let out = dir.join("out.csv");
    let carry = dir.join("carry.csv");
    let _ = std::fs::remove_file(&carry);
    let res = bin()
        .arg("aggregate")
        .arg(&input)
        .arg("--contracts")
        .arg(&c)
        .args(["--now", now, "-o"])
        .arg(&out)
        .arg("--carry-out")
        .arg(&carry)
        .output()
        .unwrap();
    (
        res.status.code().unwrap(),
        std::fs::read_to_string(&out).unwrap_or_default(),
        String::from_utf8(res.stderr).unwrap(),
        std::fs::read_to_string(&carry).unwrap_or_default(),
    )
}

/// `check --format json` of a CSV at `now`: (exit code, per record (verdict, codes)).
fn check(dir: &Path, contracts: &str, csv: &str, now: &str) -> (i32, Vec<(String, Vec<String>)>) {
    let c = dir.join("contracts.json");
    std::fs::write(&c, contracts).unwrap();
    let input = dir.join("check.csv");
    std::fs::write(&input, csv).unwrap();
    check_file(&input, &c, now, None)
}

fn check_file(
    input: &Path,
    contracts: &Path,
    now: &str,
    format: Option<&str>,
) -> (i32, Vec<(String, Vec<String>)>) {
    let mut cmd = bin();
    cmd.arg("check")
        .arg(input)
        .arg("--contracts")
        .arg(contracts)
        .args(["--now", now, "--format", "json"]);
    if let Some(f) = format {
        cmd.args(["--input-format", f]);
    }
    let res = cmd.output().unwrap();
    let text = String::from_utf8(res.stdout).unwrap();
    let verdicts = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("verdict").is_some())
        .map(|v| {
            let mut codes: Vec<String> = v["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["code"].as_str().unwrap().to_owned())
                .collect();
            codes.sort();
            (v["verdict"].as_str().unwrap().to_owned(), codes)
        })
        .collect();
    (res.status.code().unwrap(), verdicts)
}

fn rows(csv_text: &str) -> Vec<Vec<String>> {
    csv::Reader::from_reader(csv_text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

const AWS_CUST3: &str = r#"[{"marketplace":"aws","product":"prod-a1","customer":"cust-3",
  "customer_identifier":"CUST3","status":"active","starts_at":"2026-01-01T00:00:00Z",
  "dimensions":[{"name":"api"}]}]"#;

#[test]
fn aws_sum_keeps_the_latest_start_inside_the_lookback() {
    let d = tempfile::tempdir().unwrap();
    let csv = format!(
        "{HEADER}aws,prod-a1,cust-3,api,7,2026-03-31T06:30:00Z,,\naws,prod-a1,cust-3,api,3,2026-03-31T06:40:00Z,,\n"
    );
    let (code, out, err, _) = aggregate(d.path(), AWS_CUST3, &csv, "2026-03-31T12:15:00Z");
    assert_eq!(code, 0, "{err}");
    let got = rows(&out);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0][4], "10");
    assert_eq!(got[0][5], "2026-03-31T06:40:00Z");
    // The sum is billable where its parts were: at 12:15 (06:00 would be 6h 15m old).
    let (code, v) = check(d.path(), AWS_CUST3, &out, "2026-03-31T12:15:00Z");
    assert_eq!(code, 0);
    assert_eq!(v[0].0, "accepted");
    // The other side: at 12:40 the sum is exactly 6 h old and refused, as its parts are.
    let (code, v) = check(d.path(), AWS_CUST3, &out, "2026-03-31T12:40:00Z");
    assert_eq!(code, 1);
    assert_eq!(
        v[0],
        ("rejected".into(), vec!["timestamp-out-of-bounds".into()])
    );
}

#[test]
fn aws_sum_stays_after_the_contract_start() {
    let d = tempfile::tempdir().unwrap();
    let contracts = AWS_CUST3.replace("2026-01-01T00:00:00Z", "2026-03-31T10:30:00Z");
    let csv = format!(
        "{HEADER}aws,prod-a1,cust-3,api,2,2026-03-31T10:45:00Z,,\naws,prod-a1,cust-3,api,5,2026-03-31T10:50:00Z,,\n"
    );
    let (code, out, err, _) = aggregate(d.path(), &contracts, &csv, "2026-03-31T11:05:00Z");
    assert_eq!(code, 0, "{err}");
    let got = rows(&out);
    assert_eq!(
        (got[0][4].as_str(), got[0][5].as_str()),
        ("7", "2026-03-31T10:50:00Z")
    );
    let (code, v) = check(d.path(), &contracts, &out, "2026-03-31T11:05:00Z");
    assert_eq!((code, v[0].0.as_str()), (0, "accepted"));
}

const GCP: &str = r#"[{"marketplace":"gcp","product":"svc.example.com","customer":"proj-1",
  "status":"cancelled","starts_at":"2026-01-01T00:00:00Z","cancelled_at":"2026-03-31T10:30:00Z",
  "usage_reporting_id":"project:acme","dimensions":[{"name":"svc.example.com/requests"}]},
 {"marketplace":"gcp","product":"svc.example.com","customer":"proj-2","status":"active",
  "starts_at":"2026-01-01T00:00:00Z","usage_reporting_id":"project:acme-2",
  "dimensions":[{"name":"requests"}]}]"#;

#[test]
fn gcp_sum_covers_its_inputs_only_and_one_metric_has_one_name() {
    let d = tempfile::tempdir().unwrap();
    // proj-1: cancelled at 10:30; the short and the full name are one metric.
    // proj-2: the current hour, at 10:25 (10:00-11:00 would end 35 minutes in the future).
    let csv = format!(
        "{HEADER}gcp,svc.example.com,proj-1,requests,4,2026-03-31T10:00:00Z,2026-03-31T10:10:00Z,\n\
gcp,svc.example.com,proj-1,svc.example.com/requests,6,2026-03-31T10:10:00Z,2026-03-31T10:20:00Z,\n\
gcp,svc.example.com,proj-2,requests,1,2026-03-31T10:00:00Z,2026-03-31T10:10:00Z,\n\
gcp,svc.example.com,proj-2,requests,2,2026-03-31T10:10:00Z,2026-03-31T10:20:00Z,\n"
    );
    let (code, out, err, _) = aggregate(d.path(), GCP, &csv, "2026-03-31T10:25:00Z");
    assert_eq!(code, 0, "{err}");
    let got = rows(&out);
    assert_eq!(got.len(), 2, "{out}");
    assert_eq!(
        got[0][2..7],
        [
            "proj-1",
            "svc.example.com/requests",
            "10",
            "2026-03-31T10:00:00Z",
            "2026-03-31T10:20:00Z"
        ]
    );
    assert_eq!(
        got[1][2..7],
        [
            "proj-2",
            "requests",
            "3",
            "2026-03-31T10:00:00Z",
            "2026-03-31T10:20:00Z"
        ]
    );
    let (code, v) = check(d.path(), GCP, &out, "2026-03-31T10:25:00Z");
    assert_eq!(code, 0, "{v:?}");
    assert!(v.iter().all(|(verdict, _)| verdict == "accepted"), "{v:?}");
}

#[test]
fn a_sum_the_core_rejects_keeps_its_parts() {
    let d = tempfile::tempdir().unwrap();
    // Each part is below AWS's maximum 2147483647; their sum is not.
    let csv = format!(
        "{HEADER}aws,prod-a1,cust-3,api,2147483000,2026-03-31T10:10:00Z,,\naws,prod-a1,cust-3,api,2000,2026-03-31T10:20:00Z,,\n"
    );
    let (code, out, err, _) = aggregate(d.path(), AWS_CUST3, &csv, "2026-03-31T11:00:00Z");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("kept 2 record(s)"), "{err}");
    assert!(err.contains("invalid-quantity quantity"), "{err}");
    let got = rows(&out);
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0][4].as_str(), got[1][4].as_str()),
        ("2147483000", "2000")
    );
    // One below the maximum: the sum is written.
    let csv = format!(
        "{HEADER}aws,prod-a1,cust-3,api,2147483000,2026-03-31T10:10:00Z,,\naws,prod-a1,cust-3,api,647,2026-03-31T10:20:00Z,,\n"
    );
    let (code, out, err, _) = aggregate(d.path(), AWS_CUST3, &csv, "2026-03-31T11:00:00Z");
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("kept"), "{err}");
    assert_eq!(rows(&out)[0][4], "2147483647");
}

/// A Microsoft contract without a plan: the records name it. The carried remainder must keep
/// it, or the next hour is refused for "no plan".
const AZURE: &str = r#"[{"marketplace":"azure","product":"offer-x","customer":"sub-1",
  "status":"active","starts_at":"2026-01-01T00:00:00Z",
  "resource_id":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
  "dimensions":[{"name":"gb_hours","unit":0.5}]}]"#;

#[test]
fn the_carry_keeps_the_plan() {
    let d = tempfile::tempdir().unwrap();
    let csv = format!("{HEADER}azure,offer-x,sub-1,gb_hours,1.3,2026-03-31T10:20:00Z,,gold\n");
    let (code, out, err, carry) = aggregate(d.path(), AZURE, &csv, "2026-03-31T11:05:00Z");
    assert_eq!(code, 0, "{err}");
    assert_eq!(rows(&out)[0][4], "1");
    let carried = rows(&carry);
    assert_eq!(carried.len(), 1, "{carry}");
    let header: Vec<&str> = carry.lines().next().unwrap().split(',').collect();
    let plan = header
        .iter()
        .position(|h| *h == "plan")
        .expect("a plan column");
    assert_eq!(carried[0][plan], "gold");
    assert_eq!(carried[0][4], "0.3");
    // Next run: the carry plus the next hour's usage makes one valid, billable event.
    let next = format!(
        "{}azure,offer-x,sub-1,gb_hours,0.2,2026-03-31T11:30:00Z,,gold\n",
        carry
    );
    let next_in = d.path().join("next.csv");
    std::fs::write(&next_in, &next).unwrap();
    let (code, out, err, _) = aggregate(d.path(), AZURE, &next, "2026-03-31T12:05:00Z");
    assert_eq!(code, 0, "{err}");
    let (code, v) = check(d.path(), AZURE, &out, "2026-03-31T12:05:00Z");
    assert_eq!(code, 0, "{v:?} {out}");
    assert_eq!(v, vec![("accepted".into(), vec![])]);
}

#[test]
fn a_microsoft_hour_below_one_unit_is_carried_not_sent_as_zero() {
    let d = tempfile::tempdir().unwrap();
    let csv = format!("{HEADER}azure,offer-x,sub-1,gb_hours,0.3,2026-03-31T10:20:00Z,,gold\n");
    let (code, out, err, carry) = aggregate(d.path(), AZURE, &csv, "2026-03-31T11:05:00Z");
    assert_eq!(code, 0, "{err}");
    assert!(rows(&out).is_empty(), "{out}");
    assert_eq!(rows(&carry)[0][4], "0.3");
}

const EXACT: &str = r#"[{"marketplace":"aws","product":"prod-a1","customer":"cust-3",
  "customer_identifier":"CUST3","status":"active","starts_at":"2026-01-01T00:00:00Z",
  "dimensions":[{"name":"api"}]},
 {"marketplace":"gcp","product":"svc.example.com","customer":"proj-2","status":"active",
  "starts_at":"2026-01-01T00:00:00Z","usage_reporting_id":"project:acme-2",
  "dimensions":[{"name":"requests","unit":3}]}]"#;

/// JSON numbers keep their decimal text: 2147483646.99999999 is not 2147483647, and
/// 9007199254740993.0 (a multiple of 3) is not 9007199254740992 (which is not).
#[test]
fn json_numbers_are_exact_in_json_and_json_lines() {
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("contracts.json");
    std::fs::write(&c, EXACT).unwrap();
    let line = |q: &str, mp: &str| match mp {
        "aws" => format!(
            r#"{{"marketplace":"aws","product":"prod-a1","customer":"cust-3","dimension":"api","quantity":{q},"start_time":"2026-03-31T10:10:00Z"}}"#
        ),
        _ => format!(
            r#"{{"marketplace":"gcp","product":"svc.example.com","customer":"proj-2","dimension":"requests","quantity":{q},"start_time":"2026-03-31T10:00:00Z","end_time":"2026-03-31T10:10:00Z"}}"#
        ),
    };
    let cases = [
        ("2147483646.99999999", "aws", "rejected"),
        ("2147483647", "aws", "accepted"),
        (
            "5.00000000000000000000000000000000000000",
            "aws",
            "accepted",
        ),
        ("9007199254740993.0", "gcp", "accepted"),
        ("9007199254740992.0", "gcp", "rejected"),
    ];
    let lines: Vec<String> = cases.iter().map(|(q, mp, _)| line(q, mp)).collect();
    let want: Vec<&str> = cases.iter().map(|c| c.2).collect();
    // One record per run for Google (one interval per run), so dedup does not interfere.
    for (i, (l, w)) in lines.iter().zip(&want).enumerate() {
        let jl = d.path().join(format!("r{i}.jsonl"));
        std::fs::write(&jl, format!("{l}\n")).unwrap();
        let (_, v) = check_file(&jl, &c, "2026-03-31T11:00:00Z", None);
        assert_eq!(v[0].0, *w, "JSON Lines {l}: {v:?}");
        let j = d.path().join(format!("r{i}.json"));
        std::fs::write(&j, format!("[{l}]")).unwrap();
        let (_, v) = check_file(&j, &c, "2026-03-31T11:00:00Z", None);
        assert_eq!(v[0].0, *w, "JSON {l}: {v:?}");
        if *w == "rejected" {
            assert_eq!(v[0].1, vec!["invalid-quantity".to_owned()]);
        }
    }
}
