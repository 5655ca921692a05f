#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `metergate explain` and `metergate aggregate`.

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn bin() -> Command {
    assert_cmd::cargo::cargo_bin_cmd!("metergate")
}

#[test]
fn explain_every_code_in_text_and_json() {
    for code in metergate_core::Code::ALL {
        let out = bin().args(["explain", code.as_str()]).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.starts_with(code.as_str()));
        assert!(text.contains("How to fix:"));
        assert!(text.contains("source:"));

        let out = bin()
            .args(["explain", code.as_str(), "--format", "json"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let expected =
            serde_json::to_value(metergate_core::explain::explain(code.as_str()).unwrap()).unwrap();
        assert_eq!(v, expected);
    }
}

#[test]
fn explain_names_the_rules() {
    bin()
        .args(["explain", "duplicate-request"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("aws.dedup").and(predicate::str::contains("azure.dedup")));
}

#[test]
fn explain_unknown_code_exits_2() {
    bin()
        .args(["explain", "duplicate-requests"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("did you mean duplicate-request"));
}

const CONTRACTS: &str = r#"[
 {"marketplace":"aws","product":"prod-a1","customer":"cust-1","status":"active",
  "starts_at":"2026-01-01T00:00:00Z","dimensions":[{"name":"api_calls"},{"name":"storage_gb","unit":5}]},
 {"marketplace":"gcp","product":"svc.example.com","customer":"proj-1","status":"active",
  "starts_at":"2026-01-01T00:00:00Z","dimensions":[{"name":"requests"}]}
]"#;

const USAGE: &str =
    "record_id,marketplace,product,customer,dimension,quantity,start_time,end_time,team\n\
a,aws,prod-a1,cust-1,api_calls,3,2026-03-31T22:05:00Z,,x\n\
b,aws,prod-a1,cust-1,api_calls,4,2026-03-31T22:45:00Z,,x\n\
c,aws,prod-a1,cust-1,storage_gb,7,2026-03-31T21:10:00Z,,x\n\
d,aws,prod-a1,cust-1,storage_gb,4,2026-03-31T22:10:00Z,,x\n\
e,aws,prod-a1,cust-1,api_calls,lots,2026-03-31T22:45:00Z,,x\n\
f,gcp,svc.example.com,proj-1,requests,10,2026-03-31T22:00:00Z,2026-03-31T22:30:00Z,y\n\
g,gcp,svc.example.com,proj-1,requests,5,2026-03-31T22:30:00Z,2026-03-31T23:00:00Z,y\n\
h,aws\n";

fn rows(csv_text: &str) -> Vec<Vec<String>> {
    csv::Reader::from_reader(csv_text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

#[test]
fn aggregate_sums_hours_carries_units_and_reports_bad_rows() {
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("c.json");
    std::fs::write(&c, CONTRACTS).unwrap();
    let u = d.path().join("u.csv");
    std::fs::write(&u, USAGE).unwrap();
    let out = d.path().join("out.csv");
    let carry = d.path().join("carry.csv");
    let res = bin()
        .args(["aggregate"])
        .arg(&u)
        .arg("--contracts")
        .arg(&c)
        .arg("-o")
        .arg(&out)
        .arg("--carry-out")
        .arg(&carry)
        .output()
        .unwrap();
    let err = String::from_utf8(res.stderr).unwrap();
    assert_eq!(res.status.code(), Some(1), "{err}");
    let name = u.display().to_string();
    assert!(
        err.contains(&format!("{name}:6: skipped: invalid-quantity quantity")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{name}:9: skipped: invalid-record row")),
        "{err}"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        text.lines().next().unwrap(),
        "record_id,marketplace,product,customer,dimension,quantity,start_time,end_time"
    );
    let got: Vec<Vec<String>> = rows(&text).into_iter().map(|r| r[1..].to_vec()).collect();
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        got,
        vec![
            s(&[
                "aws",
                "prod-a1",
                "cust-1",
                "api_calls",
                "7",
                "2026-03-31T22:45:00Z",
                ""
            ]),
            s(&[
                "aws",
                "prod-a1",
                "cust-1",
                "storage_gb",
                "5",
                "2026-03-31T21:10:00Z",
                ""
            ]),
            s(&[
                "aws",
                "prod-a1",
                "cust-1",
                "storage_gb",
                "5",
                "2026-03-31T22:10:00Z",
                ""
            ]),
            s(&[
                "gcp",
                "svc.example.com",
                "proj-1",
                "requests",
                "15",
                "2026-03-31T22:00:00Z",
                "2026-03-31T23:00:00Z"
            ]),
        ]
    );
    // 7 + 4 = 11 of unit 5: 10 sent, 1 carried into 23:00.
    let carried = rows(&std::fs::read_to_string(&carry).unwrap());
    assert_eq!(carried.len(), 1);
    assert_eq!(
        carried[0][1..7],
        s(&[
            "aws",
            "prod-a1",
            "cust-1",
            "storage_gb",
            "1",
            "2026-03-31T23:00:00Z"
        ])
    );
}

#[test]
fn aggregate_to_stdout_lists_carries_on_stderr() {
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("c.json");
    std::fs::write(&c, CONTRACTS).unwrap();
    let jl = "{\"marketplace\":\"aws\",\"product\":\"prod-a1\",\"customer\":\"cust-1\",\"dimension\":\"storage_gb\",\"quantity\":7,\"start_time\":\"2026-03-31T21:10:00Z\"}\n";
    bin()
        .args(["aggregate", "-", "--input-format", "jsonl", "--contracts"])
        .arg(&c)
        .write_stdin(jl)
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "aws,prod-a1,cust-1,storage_gb,5,2026-03-31T21:10:00Z",
        ))
        .stderr(predicate::str::contains(
            "carry aws prod-a1 cust-1 storage_gb 2 into 2026-03-31T22:00:00Z",
        ));
}

#[test]
fn aggregate_without_contracts_sends_everything() {
    bin()
        .args(["aggregate", "--input-format", "csv"])
        .write_stdin("marketplace,product,customer,dimension,quantity,start_time\naws,p,c,d,7,2026-03-31T21:10:00Z\naws,p,c,d,1.5,2026-03-31T21:50:00Z\n")
        .assert()
        .code(0)
        .stdout("marketplace,product,customer,dimension,quantity,start_time\naws,p,c,d,8.5,2026-03-31T21:50:00Z\n");
}

#[test]
fn aggregate_bad_input_exits_2() {
    bin()
        .args(["aggregate", "/no/such/file.csv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/no/such/file.csv"));
    bin()
        .args(["aggregate", "--input-format", "json"])
        .write_stdin("{")
        .assert()
        .code(2);
}
