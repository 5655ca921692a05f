//! `metergate submit` to Google Cloud Marketplace, against the fake Service Control server
//! tests/peers/gcp_fake.py (no emulator exists; the fake follows the documented semantics:
//! check errors per consumer, partial failures in `reportErrors`, deduplication by
//! operationId, whole-request refusals, 5xx before or after the operations land). Counted
//! at the fake: every operation that landed is one line of its log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "submit_support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Instant;

use chrono::{DateTime, Duration as CDuration, Utc};
use metergate::ledger::{Filter, Ledger, Status};
use serde_json::{json, Value};
use support::{ledger_counts, metergate_cmd, rfc};

const SERVICE: &str = "svc.example.com";
const TOKEN: &str = "test-token-gcp";

/// The fake Service Control server; killed when dropped.
struct GcpFake {
    child: Child,
    port: u16,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl GcpFake {
    fn start(args: &[&str]) -> GcpFake {
        let mut all = vec!["--token", TOKEN];
        all.extend_from_slice(args);
        let (child, port, log, dir) = support::start_fake("gcp_fake.py", &all);
        GcpFake {
            child,
            port,
            log,
            dir,
        }
    }

    fn lines(&self, kind: &str) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == kind)
            .collect()
    }

    /// Operations that landed (each once: the fake deduplicates by operationId).
    fn ops(&self) -> Vec<Value> {
        self.lines("op")
    }

    fn metergate(&self) -> Command {
        let mut c = metergate_cmd();
        for (k, _) in std::env::vars() {
            if k.starts_with("METERGATE_") || k.starts_with("AZURE_") || k.starts_with("GOOGLE_") {
                c.env_remove(k);
            }
        }
        c.env(
            "METERGATE_GCP_ENDPOINT",
            format!("http://127.0.0.1:{}", self.port),
        )
        .env("METERGATE_GCP_TOKEN", TOKEN);
        c
    }
}

impl Drop for GcpFake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Data {
    contracts: PathBuf,
    records: PathBuf,
    /// (consumerId, metric, start, end, value as text)
    expected: Vec<(String, String, String, String, String)>,
}

/// The end of the `k`-th 5-minute interval back from a minute ago (k = 1 is the latest).
fn interval(k: i64) -> (DateTime<Utc>, DateTime<Utc>) {
    let base = Utc::now() - CDuration::minutes(1);
    let base = base - CDuration::seconds(base.timestamp().rem_euclid(60));
    let end = base - CDuration::minutes(5 * (k - 1));
    (end - CDuration::minutes(5), end)
}

/// `customers × intervals` records of two metrics (requests: int64, cpu_hours: double).
fn generate(dir: &Path, customers: usize, intervals: i64) -> Data {
    let mut contracts = Vec::new();
    let mut lines = String::new();
    let mut expected = Vec::new();
    let starts = rfc(Utc::now() - CDuration::days(30));
    for c in 0..customers {
        let customer = format!("cust-{c}");
        let consumer = format!("project_number:{}", 100 + c);
        contracts.push(json!({
            "marketplace": "gcp", "product": SERVICE, "customer": customer, "status": "active",
            "starts_at": starts, "usage_reporting_id": consumer,
            "dimensions": [{"name": "requests"}, {"name": "cpu_hours", "type": "decimal"}],
        }));
        for k in 1..=intervals {
            let (s, e) = interval(k);
            let q = (c as i64 * 13 + k * 7) % 50 + 1;
            let cpu = format!("{}.25", q % 9);
            for (dim, value) in [("requests", q.to_string()), ("cpu_hours", cpu)] {
                lines.push_str(
                    &json!({
                        "marketplace": "gcp", "product": SERVICE, "customer": customer,
                        "dimension": dim, "quantity": value.parse::<f64>().unwrap(),
                        "start_time": rfc(s), "end_time": rfc(e),
                    })
                    .to_string(),
                );
                lines.push('\n');
                expected.push((
                    consumer.clone(),
                    format!("{SERVICE}/{dim}"),
                    rfc(s),
                    rfc(e),
                    value,
                ));
            }
        }
    }
    let cpath = dir.join("contracts.json");
    std::fs::write(&cpath, serde_json::to_string_pretty(&contracts).unwrap()).unwrap();
    let rpath = dir.join("records.jsonl");
    std::fs::write(&rpath, lines).unwrap();
    Data {
        contracts: cpath,
        records: rpath,
        expected,
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// (consumerId, metric, start, end).
type Interval = (String, String, String, String);

/// Landed operations per (consumer, metric, start, end): their values and distinct ids.
fn landed(fake: &GcpFake) -> BTreeMap<Interval, (Vec<String>, BTreeSet<String>)> {
    let mut out: BTreeMap<_, (Vec<String>, BTreeSet<String>)> = BTreeMap::new();
    for op in fake.ops() {
        let key = (
            op["consumerId"].as_str().unwrap().to_owned(),
            op["metric"].as_str().unwrap().to_owned(),
            op["startTime"].as_str().unwrap().to_owned(),
            op["endTime"].as_str().unwrap().to_owned(),
        );
        let e = out.entry(key).or_default();
        e.0.push(value_text(&op["value"]));
        e.1.insert(op["operationId"].as_str().unwrap().to_owned());
    }
    out
}

/// (lost, doubled): expected intervals never landed with their value, and intervals that
/// landed more than once.
fn lost_and_doubled(fake: &GcpFake, data: &Data) -> (usize, usize) {
    let got = landed(fake);
    let mut lost = 0;
    for (c, m, s, e, v) in &data.expected {
        match got.get(&(c.clone(), m.clone(), s.clone(), e.clone())) {
            Some((values, _))
                if values.len() == 1
                    && values[0].parse::<f64>().unwrap() == v.parse::<f64>().unwrap() => {}
            _ => lost += 1,
        }
    }
    let doubled = got.values().filter(|(v, _)| v.len() > 1).count();
    (lost, doubled)
}

fn submit(fake: &GcpFake, data: &Data, ledger: &Path, extra: &[&str]) -> std::process::Output {
    fake.metergate()
        .arg("submit")
        .arg(&data.records)
        .arg("--contracts")
        .arg(&data.contracts)
        .arg("--ledger")
        .arg(ledger)
        .args(["--format", "json"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn checks_then_reports_with_one_deterministic_operation_id_per_interval() {
    let fake = GcpFake::start(&[]);
    let data = generate(fake.dir.path(), 3, 4);
    let ledger = fake.dir.path().join("ledger.sqlite");
    let out = submit(&fake, &data, &ledger, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ledger_counts(&ledger)["accepted"],
        data.expected.len() as u64
    );
    assert_eq!(lost_and_doubled(&fake, &data), (0, 0));

    // Every row's marketplace id is its operationId, the UUIDv5 of its interval.
    let l = Ledger::open_existing(&ledger).unwrap();
    let rows = l.list(&Filter::default()).unwrap();
    let ops: BTreeMap<String, Value> = fake
        .ops()
        .into_iter()
        .map(|o| (o["operationId"].as_str().unwrap().to_owned(), o))
        .collect();
    for r in &rows {
        let id = r.marketplace_record_id.clone().unwrap();
        let metric = format!("{SERVICE}/{}", r.dimension);
        let want = metergate::submit::gcp::operation_id(
            SERVICE,
            &r.customer,
            &metric,
            &rfc(r.start_time),
            &rfc(r.end_time.unwrap()),
        );
        assert_eq!(id, want.to_string());
        let op = &ops[&id];
        assert_eq!(op["metric"], metric.as_str());
        // int64 values are JSON strings (proto3), doubles are numbers.
        if r.dimension == "requests" {
            assert!(op["value"].is_string(), "{op}");
        } else {
            assert!(op["value"].is_number(), "{op}");
        }
    }
    // One check per consumer, with the operationId of an operation that was reported.
    let checks = fake.lines("check");
    let consumers: BTreeSet<&str> = checks
        .iter()
        .map(|c| c["consumerId"].as_str().unwrap())
        .collect();
    assert_eq!(consumers.len(), 3);
    for c in &checks {
        assert!(ops.contains_key(c["operationId"].as_str().unwrap()), "{c}");
    }
    // No request was refused and every body stayed under 1 MB.
    for call in fake.lines("call") {
        assert_eq!(call["http"], 200, "{call}");
        assert!(call["bytes"].as_u64().unwrap_or(0) < 1_000_000);
    }

    // Submitting the same file again sends nothing.
    let before = fake.lines("call").len();
    let out = submit(&fake, &data, &ledger, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fake.lines("call").len(), before);
}

#[test]
fn billing_disabled_customer_is_rejected_and_never_reported() {
    let fake = GcpFake::start(&["--check-error", "project_number:101=BILLING_DISABLED"]);
    let data = generate(fake.dir.path(), 3, 2);
    let ledger = fake.dir.path().join("ledger.sqlite");
    let out = submit(&fake, &data, &ledger, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let l = Ledger::open_existing(&ledger).unwrap();
    for r in l.list(&Filter::default()).unwrap() {
        if r.customer == "cust-1" {
            assert_eq!(r.status, Status::Rejected);
            assert_eq!(r.answer.as_deref(), Some("BILLING_DISABLED"));
        } else {
            assert_eq!(r.status, Status::Accepted, "{r:?}");
        }
    }
    assert!(fake
        .ops()
        .iter()
        .all(|o| o["consumerId"] != "project_number:101"));
    assert_eq!(fake.ops().len(), data.expected.len() - 4);
}

#[test]
fn partial_failures_and_5xx_resend_the_same_operation_ids() {
    let fake = GcpFake::start(&[
        "--fail-rate",
        "0.1",
        "--fail-after-rate",
        "0.15",
        "--report-error-rate",
        "0.25",
        "--seed",
        "7",
    ]);
    let data = generate(fake.dir.path(), 2, 6);
    let ledger = fake.dir.path().join("ledger.sqlite");
    let out = submit(&fake, &data, &ledger, &["--max-attempts", "40"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ledger_counts(&ledger)["accepted"],
        data.expected.len() as u64
    );
    assert_eq!(lost_and_doubled(&fake, &data), (0, 0));
    let calls = fake.lines("call");
    let after = calls.iter().filter(|c| c["http"] == 500).count();
    let partial = calls
        .iter()
        .filter(|c| c["errors"].as_u64().unwrap_or(0) > 0)
        .count();
    let before = calls.iter().filter(|c| c["http"] == 503).count();
    println!("gcp faults: 503 before={before} 500 after={after} partial={partial}");
    assert!(partial > 0, "no partial failure was injected: {calls:?}");
    // Seed 7 injects a 503 (nothing landed) and a 500 after the operations landed: the
    // re-send carried the same operationIds, and the fake deduplicated them.
    assert!(before > 0 && after > 0, "{calls:?}");
    assert!(!fake.lines("dup").is_empty());
    for (_, (_, ids)) in landed(&fake) {
        assert_eq!(ids.len(), 1);
    }
}

#[test]
fn a_wrong_token_stops_the_run_and_keeps_the_rows() {
    let fake = GcpFake::start(&[]);
    let data = generate(fake.dir.path(), 1, 2);
    let ledger = fake.dir.path().join("ledger.sqlite");
    let out = fake
        .metergate()
        .env("METERGATE_GCP_TOKEN", "wrong")
        .arg("submit")
        .arg(&data.records)
        .arg("--contracts")
        .arg(&data.contracts)
        .arg("--ledger")
        .arg(&ledger)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(fake.ops().is_empty());
    let states = ledger_counts(&ledger);
    assert_eq!(
        states["pending"] + states["sending"],
        data.expected.len() as u64
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("wrong"), "the token was printed: {stderr}");
}

#[test]
fn kill_and_resume_loses_nothing_and_reports_nothing_twice() {
    let rounds = support::env_num("METERGATE_KILL_ROUNDS", 10);
    let seed = support::env_num("METERGATE_KILL_SEED", fastrand::u64(..));
    fastrand::seed(seed);
    let fake = GcpFake::start(&[
        "--fail-rate",
        "0.1",
        "--fail-after-rate",
        "0.1",
        "--report-error-rate",
        "0.05",
        "--seed",
        "3",
    ]);
    // 12 customers × 10 intervals × 2 metrics = 240 operations, 3 calls of ≤100.
    let data = generate(fake.dir.path(), 12, 10);
    let ledger = fake.dir.path().join("ledger.sqlite");
    let started = Instant::now();
    let kills = support::kill_rounds(
        || fake.metergate(),
        &data.records,
        &data.contracts,
        &ledger,
        rounds,
        20..600,
    );
    // Finish: one more submit (enqueues whatever no killed run wrote, sends every unfinished
    // row), then the same file again, which must send nothing.
    let out = submit(&fake, &data, &ledger, &["--max-attempts", "30"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "final submit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = fake.lines("call").len();
    let out = submit(&fake, &data, &ledger, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fake.lines("call").len(),
        before,
        "a second submit sent again"
    );
    let (lost, doubled) = lost_and_doubled(&fake, &data);
    let states = ledger_counts(&ledger);
    println!(
        "gcp kill-resume: seed={seed} rounds={rounds} kills={kills} operations={} landed={} repeats_deduplicated={} lost={lost} doubled={doubled} ledger={states:?} elapsed={:.1}s",
        data.expected.len(),
        fake.ops().len(),
        fake.lines("dup").len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!((lost, doubled), (0, 0), "seed {seed}");
    assert_eq!(states["accepted"], data.expected.len() as u64, "{states:?}");
}

/// Kills a child process when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn one_file_mixing_all_three_marketplaces_goes_to_each() {
    let dir = tempfile::tempdir().unwrap();
    let subs = dir.path().join("subs.json");
    std::fs::write(&subs, r#"{"prod-a": ["cust-a"]}"#).unwrap();
    let Some(aws) = support::Peer::start(&["--subscribe-file", subs.to_str().unwrap()]) else {
        return;
    };
    let gcp = GcpFake::start(&[]);
    let (child, az_port, az_log, _az_dir) =
        support::start_fake("azure_fake.py", &["--client-secret", "s3"]);
    let _azure = KillOnDrop(child);
    let az_url = format!("http://127.0.0.1:{az_port}");

    let starts = rfc(Utc::now() - CDuration::days(30));
    let sub = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    let contracts = json!([
        {"marketplace": "aws", "product": "prod-a", "customer": "cust-a", "status": "active",
         "starts_at": starts, "dimensions": [{"name": "api_calls"}]},
        {"marketplace": "azure", "product": "offer-x", "customer": "sub-a", "status": "active",
         "starts_at": starts, "plan": "gold", "resource_id": sub, "dimensions": [{"name": "requests"}]},
        {"marketplace": "gcp", "product": SERVICE, "customer": "proj-a", "status": "active",
         "starts_at": starts, "usage_reporting_id": "project_number:5", "dimensions": [{"name": "requests"}]},
    ]);
    let cpath = dir.path().join("contracts.json");
    std::fs::write(&cpath, contracts.to_string()).unwrap();
    let mut lines = String::new();
    for k in 1..=3i64 {
        let t = support::hours_ago(k) + CDuration::minutes(9);
        let (s, e) = interval(k);
        for r in [
            json!({"marketplace": "aws", "product": "prod-a", "customer": "cust-a",
                   "dimension": "api_calls", "quantity": k, "start_time": rfc(t)}),
            json!({"marketplace": "azure", "product": "offer-x", "customer": "sub-a",
                   "dimension": "requests", "quantity": k * 10, "start_time": rfc(t)}),
            json!({"marketplace": "gcp", "product": SERVICE, "customer": "proj-a",
                   "dimension": "requests", "quantity": k * 100, "start_time": rfc(s), "end_time": rfc(e)}),
        ] {
            lines.push_str(&r.to_string());
            lines.push('\n');
        }
    }
    let rpath = dir.path().join("mixed.jsonl");
    std::fs::write(&rpath, lines).unwrap();
    let ledger = dir.path().join("ledger.sqlite");

    let mut cmd = aws.metergate();
    for (k, _) in std::env::vars() {
        if k.starts_with("METERGATE_") || k.starts_with("AZURE_") || k.starts_with("GOOGLE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env(
        "METERGATE_GCP_ENDPOINT",
        format!("http://127.0.0.1:{}", gcp.port),
    )
    .env("METERGATE_GCP_TOKEN", TOKEN)
    .env("METERGATE_AZURE_ENDPOINT", &az_url)
    .env(
        "METERGATE_AZURE_TOKEN_URL",
        format!("{az_url}/{{tenant}}/oauth2/v2.0/token"),
    )
    .env("AZURE_TENANT_ID", "tenant-1")
    .env("AZURE_CLIENT_ID", "app-1")
    .env("AZURE_CLIENT_SECRET", "s3");
    let out = cmd
        .arg("submit")
        .arg(&rpath)
        .arg("--contracts")
        .arg(&cpath)
        .arg("--ledger")
        .arg(&ledger)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = Ledger::open_existing(&ledger)
        .unwrap()
        .list(&Filter::default())
        .unwrap();
    assert_eq!(rows.len(), 9);
    assert!(
        rows.iter().all(|r| r.status == Status::Accepted),
        "{rows:#?}"
    );
    let aws_billed = aws
        .records()
        .iter()
        .filter(|r| r["status"] == "Success")
        .count();
    assert_eq!(aws_billed, 3);
    let az_accepted = std::fs::read_to_string(&az_log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "event" && v["status"] == "Accepted")
        .count();
    assert_eq!(az_accepted, 3);
    assert_eq!(gcp.ops().len(), 3);
}

#[test]
fn decimal_values_go_out_as_the_exact_decimal_the_ledger_stores() {
    let fake = GcpFake::start(&[]);
    let dir = fake.dir.path();
    let contracts = dir.join("exact-contracts.json");
    std::fs::write(
        &contracts,
        json!([{"marketplace": "gcp", "product": SERVICE, "customer": "cust-x", "status": "active",
            "starts_at": rfc(Utc::now() - CDuration::days(30)), "usage_reporting_id": "project_number:900",
            "dimensions": [{"name": "requests"}, {"name": "cpu_hours", "type": "decimal"}]}])
        .to_string(),
    )
    .unwrap();
    // CSV keeps the decimal text exactly as written. 1e20 is a double exactly, but f64
    // formatting would write it with an exponent; 9007199254740993 is no double (2^53 + 1),
    // so the core rejects it for a decimal metric and it is never sent; as an int64 it goes
    // out as the exact string.
    let (s, e) = interval(1);
    let (s2, e2) = interval(2);
    let input = dir.join("exact.csv");
    std::fs::write(
        &input,
        format!(
            "marketplace,product,customer,dimension,quantity,start_time,end_time\n\
             gcp,{SERVICE},cust-x,cpu_hours,100000000000000000000,{s},{e}\n\
             gcp,{SERVICE},cust-x,cpu_hours,9007199254740993,{s2},{e2}\n\
             gcp,{SERVICE},cust-x,requests,9007199254740993,{s},{e}\n",
            s = rfc(s),
            e = rfc(e),
            s2 = rfc(s2),
            e2 = rfc(e2)
        ),
    )
    .unwrap();
    let ledger = dir.join("exact.sqlite");
    let out = fake
        .metergate()
        .arg("submit")
        .arg(&input)
        .arg("--contracts")
        .arg(&contracts)
        .arg("--ledger")
        .arg(&ledger)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("verdict").is_some())
        .collect();
    assert_eq!(verdicts[0]["verdict"], "accepted");
    assert_eq!(verdicts[1]["verdict"], "rejected");
    assert_eq!(verdicts[1]["findings"][0]["code"], "invalid-quantity");
    assert_eq!(verdicts[2]["verdict"], "accepted");
    let bodies: Vec<String> = fake
        .lines("body")
        .iter()
        .filter(|b| b["method"] == "report")
        .map(|b| b["text"].as_str().unwrap().to_owned())
        .collect();
    let all = bodies.join("\n");
    assert!(
        all.contains(r#""doubleValue":100000000000000000000}"#),
        "{all}"
    );
    assert!(all.contains(r#""int64Value":"9007199254740993""#), "{all}");
    assert!(!all.contains("e+20") && !all.contains("e20"), "{all}");
    assert_eq!(fake.ops().len(), 2);
}
