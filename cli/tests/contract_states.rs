//! Contract states in each marketplace's own words (issue 14 item 1): contracts copied from
//! Partner Center, the Procurement API and the Agreement API load as they are; a state name
//! of another marketplace stops the run (exit 2) naming the file, the contract and the
//! words allowed there; messages and `deadlines` show the state as the contract wrote it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assert_cmd::Command;
use serde_json::{json, Value};

const NOW: &str = "2026-03-10T12:00:00Z";

fn bin() -> Command {
    assert_cmd::cargo::cargo_bin_cmd!("metergate")
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn contracts() -> Value {
    json!([
        {"marketplace": "azure", "product": "offer-x", "customer": "sub-1", "status": "Subscribed",
         "starts_at": "2026-01-01T00:00:00Z", "plan": "gold",
         "resource_id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "dimensions": [{"name": "requests"}]},
        {"marketplace": "azure", "product": "offer-x", "customer": "sub-2", "status": "Unsubscribed",
         "starts_at": "2026-01-01T00:00:00Z", "cancelled_at": "2026-03-10T10:30:00Z", "plan": "gold",
         "resource_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "dimensions": [{"name": "requests"}]},
        {"marketplace": "gcp", "product": "svc.example.com", "customer": "proj-1",
         "status": "PENDING_CANCELLATION", "starts_at": "2026-01-01T00:00:00Z",
         "usage_reporting_id": "projects/acme-prod", "dimensions": [{"name": "svc.example.com/requests"}]},
        {"marketplace": "aws", "product": "prod-a1", "customer": "cust-1", "status": "ACTIVE",
         "starts_at": "2026-01-01T00:00:00Z", "aws_account_id": "123456789012",
         "license_arn": "arn:aws:license-manager::123456789012:license:l-0123456789abcdef",
         "customer_identifier": "", "dimensions": [{"name": "api_calls"}]},
        {"marketplace": "aws", "product": "prod-a1", "customer": "cust-2", "status": "NotStarted",
         "starts_at": "2026-01-01T00:00:00Z", "dimensions": [{"name": "api_calls"}]}
    ])
}

fn records() -> String {
    [
        json!({"marketplace": "azure", "product": "offer-x", "customer": "sub-1", "dimension": "requests", "quantity": 3, "start_time": "2026-03-10T10:00:00Z"}),
        json!({"marketplace": "azure", "product": "offer-x", "customer": "sub-2", "dimension": "requests", "quantity": 3, "start_time": "2026-03-10T10:00:00Z"}),
        json!({"marketplace": "gcp", "product": "svc.example.com", "customer": "proj-1", "dimension": "requests", "quantity": 3, "start_time": "2026-03-10T11:00:00Z", "end_time": "2026-03-10T11:30:00Z"}),
        json!({"marketplace": "aws", "product": "prod-a1", "customer": "cust-1", "dimension": "api_calls", "quantity": 3, "start_time": "2026-03-10T10:00:00Z"}),
    ]
    .iter()
    .map(|v| format!("{v}\n"))
    .collect()
}

#[test]
fn marketplace_words_load_and_judge() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = contracts();
    // The foreign word sits on the last contract; without it everything loads.
    all.as_array_mut().unwrap().pop();
    let c = dir.path().join("contracts.json");
    std::fs::write(&c, all.to_string()).unwrap();
    let r = dir.path().join("records.jsonl");
    std::fs::write(&r, records()).unwrap();
    let (code, out, err) = run(bin()
        .arg("check")
        .arg(&r)
        .arg("--contracts")
        .arg(&c)
        .args(["--now", NOW, "--format", "json"]));
    assert_eq!(code, 0, "{out}\n{err}");
    let verdicts: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v.get("summary").is_none())
        .collect();
    assert_eq!(verdicts.len(), 4);
    assert!(verdicts.iter().all(|v| v["verdict"] == "accepted"), "{out}");

    // `deadlines` names the cancelled contract's state as written (no ledger here: only
    // contracts are listed).
    let (code, out, err) = run(bin()
        .current_dir(dir.path())
        .env_remove("METERGATE_LEDGER")
        .arg("deadlines")
        .arg("--contracts")
        .arg(&c)
        .args(["--now", NOW, "--format", "json"]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("\"Unsubscribed\""), "{out}");
}

#[test]
fn a_state_of_another_marketplace_exits_2_naming_file_contract_and_allowed_words() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("contracts.json");
    // Pretty-printed, so that the contract's line can be named.
    std::fs::write(&c, serde_json::to_string_pretty(&contracts()).unwrap()).unwrap();
    let r = dir.path().join("records.jsonl");
    std::fs::write(&r, records()).unwrap();
    let (code, out, err) = run(bin()
        .arg("check")
        .arg(&r)
        .arg("--contracts")
        .arg(&c)
        .args(["--now", NOW]));
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("contracts.json"), "{err}");
    assert!(err.contains("contract [4]"), "{err}");
    assert!(err.contains("status"), "{err}");
    assert!(err.contains("NotStarted"), "{err}");
    // The words allowed on an AWS contract are listed.
    for w in ["active", "ACTIVE", "TERMINATED", "EXPIRED"] {
        assert!(err.contains(w), "{w}: {err}");
    }
    assert!(out.is_empty(), "{out}");
}

#[test]
fn a_word_no_marketplace_uses_exits_2_too() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("contracts.json");
    let mut all = contracts();
    all[0]["status"] = json!("live");
    all.as_array_mut().unwrap().pop();
    std::fs::write(&c, all.to_string()).unwrap();
    let r = dir.path().join("records.jsonl");
    std::fs::write(&r, records()).unwrap();
    let (code, _, err) = run(bin()
        .arg("check")
        .arg(&r)
        .arg("--contracts")
        .arg(&c)
        .args(["--now", NOW]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("contract [0]") && err.contains("Subscribed"),
        "{err}"
    );
}
