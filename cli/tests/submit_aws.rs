//! `metergate submit`, `resume`, `heartbeat` and `check --ledger` against the moto peer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "submit_support/mod.rs"]
mod support;

use std::collections::BTreeMap;

use chrono::Duration;
use metergate::ledger::{Ledger, NewRow, Status};
use serde_json::{json, Value};
use support::*;

fn verdicts(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("verdict").is_some())
        .collect()
}

fn codes(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["code"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn contracts_json() -> String {
    let start = rfc(hours_ago(48));
    json!([
        {"marketplace":"aws","product":"prod-a","customer":"cust-1","status":"active","starts_at":start,
         "dimensions":[{"name":"api_calls"},{"name":"storage"}]},
        {"marketplace":"aws","product":"prod-a","customer":"cust-2","status":"active","starts_at":start,
         "dimensions":[{"name":"api_calls"}]},
        {"marketplace":"aws","product":"prod-b","customer":"acme","status":"active","starts_at":start,
         "aws_account_id":"111122223333",
         "license_arn":"arn:aws:license-manager::111122223333:license:l-0123456789abcdef",
         "dimensions":[{"name":"api_calls"}]},
        {"marketplace":"aws","product":"prod-b","customer":"legacy","status":"active","starts_at":start,
         "customer_identifier":"LegacyCustId123","dimensions":[{"name":"api_calls"}]}
    ])
    .to_string()
}

fn rec(
    product: &str,
    customer: &str,
    dim: &str,
    q: i64,
    t: chrono::DateTime<chrono::Utc>,
) -> String {
    json!({"marketplace":"aws","product":product,"customer":customer,"dimension":dim,
           "quantity":q,"start_time":rfc(t)})
    .to_string()
}

#[test]
fn submit_sends_only_accepted_records_and_records_every_answer() {
    // cust-2 is not subscribed at the peer: AWS answers CustomerNotSubscribed.
    let Some(peer) = Peer::start(&[
        "--subscribe",
        "prod-a:cust-1",
        "--subscribe",
        "prod-b:111122223333,LegacyCustId123",
    ]) else {
        return;
    };
    let dir = peer.dir.path().to_path_buf();
    let contracts = write(&dir, "contracts.json", &contracts_json());
    let h2 = hours_ago(2) + Duration::minutes(15);
    let lines = [
        rec("prod-a", "cust-1", "api_calls", 10, h2),
        rec("prod-a", "cust-1", "storage", 3, h2),
        rec("prod-a", "cust-2", "api_calls", 4, h2),
        rec("prod-b", "acme", "api_calls", 7, h2),
        rec("prod-b", "legacy", "api_calls", 8, h2),
        // Rejected by the core: unknown dimension, future time, negative quantity.
        rec("prod-a", "cust-1", "no_such_dim", 1, h2),
        rec("prod-a", "cust-1", "api_calls", 1, hours_ago(-2)),
        rec("prod-a", "cust-2", "api_calls", -5, hours_ago(3)),
    ];
    let input = write(&dir, "in.jsonl", &(lines.join("\n") + "\n"));
    let ledger = dir.join("l.sqlite");
    let out = peer
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
    let v = verdicts(&out.stdout);
    let kinds: Vec<&str> = v.iter().map(|v| v["verdict"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "accepted", "accepted", "accepted", "accepted", "accepted", "rejected", "rejected",
            "rejected"
        ]
    );

    // At the peer: exactly the five accepted records, never a rejected one.
    let got = peer.records();
    assert_eq!(got.len(), 5, "{got:#?}");
    let by_dim_q: Vec<(String, i64)> = got
        .iter()
        .map(|r| {
            (
                r["identity"].as_str().unwrap().to_owned(),
                r["quantity"].as_i64().unwrap(),
            )
        })
        .collect();
    for q in [1, -5] {
        assert!(!by_dim_q.iter().any(|(_, x)| *x == q));
    }
    assert!(!got.iter().any(|r| r["dimension"] == "no_such_dim"));
    // Timestamps go out exactly as given.
    assert!(got
        .iter()
        .all(|r| r["timestamp"].as_f64().unwrap() == h2.timestamp() as f64));
    // Identities: CustomerIdentifier, the contract's customer_identifier, and the account-id
    // form without any CustomerIdentifier member on the wire.
    let acme = got
        .iter()
        .find(|r| r["product"] == "prod-b" && r["account_id"].is_string())
        .unwrap();
    assert_eq!(acme["account_id"], "111122223333");
    assert_eq!(
        acme["license_arn"],
        "arn:aws:license-manager::111122223333:license:l-0123456789abcdef"
    );
    assert!(
        !acme["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == "CustomerIdentifier"),
        "{acme}"
    );
    assert_eq!(acme["status"], "Success");
    let legacy = got
        .iter()
        .find(|r| r["identity"] == "LegacyCustId123")
        .unwrap();
    assert_eq!(legacy["status"], "Success");
    assert!(!legacy["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k == "CustomerAWSAccountId"));

    // Calls: signed for aws-marketplace, one product each, at most 25 records.
    let calls = peer.calls();
    assert!(!calls.is_empty());
    for c in &calls {
        assert_eq!(c["signed"], true);
        assert_eq!(c["service"], "aws-marketplace");
        assert_eq!(c["region"], "us-east-1");
        assert!(c["records"].as_u64().unwrap() <= 25);
    }
    let products: Vec<&str> = calls
        .iter()
        .map(|c| c["product"].as_str().unwrap())
        .collect();
    assert_eq!(products.len(), 2, "one call per product: {products:?}");

    // The ledger: five rows, with the marketplace's answers.
    let l = Ledger::open_existing(&ledger).unwrap();
    let rows = l.list(&Default::default()).unwrap();
    assert_eq!(rows.len(), 5);
    let by_customer: BTreeMap<(String, String), &metergate::ledger::LedgerRow> = rows
        .iter()
        .map(|r| ((r.customer.clone(), r.dimension.clone()), r))
        .collect();
    let c2 = by_customer[&("cust-2".to_owned(), "api_calls".to_owned())];
    assert_eq!(c2.status, Status::Rejected);
    assert_eq!(c2.answer.as_deref(), Some("CustomerNotSubscribed"));
    let c1 = by_customer[&("cust-1".to_owned(), "api_calls".to_owned())];
    assert_eq!(c1.status, Status::Accepted);
    assert_eq!(c1.answer.as_deref(), Some("Success"));
    let id = c1.marketplace_record_id.as_deref().unwrap();
    assert!(got.iter().any(|r| r["metering_record_id"] == id));
    assert_eq!(c1.attempts, 1);
    assert_eq!(
        c1.idem_key,
        format!("aws|prod-a|cust-1|api_calls|{}|10", rfc(hours_ago(2)))
    );
    assert_eq!(c1.wire["timestamp"], rfc(h2));
    assert_eq!(c1.wire["quantity"], 10);
    assert_eq!(c1.wire["customer_identifier"], "cust-1");
    let t = l.transitions(c1.id).unwrap();
    let path: Vec<&str> = t.iter().map(|x| x.2.as_str()).collect();
    assert_eq!(path, ["pending", "sending", "accepted"]);

    // Across runs: the same file again sends nothing (duplicate-ignored), and a changed
    // quantity for an hour already sent is caught as duplicate-request, before it goes.
    let again = write(
        &dir,
        "again.jsonl",
        &[
            rec("prod-a", "cust-1", "api_calls", 10, h2),
            rec(
                "prod-a",
                "cust-1",
                "api_calls",
                11,
                h2 + Duration::minutes(5),
            ),
        ]
        .join("\n"),
    );
    let out = peer
        .metergate()
        .arg("submit")
        .arg(&again)
        .arg("--contracts")
        .arg(&contracts)
        .arg("--ledger")
        .arg(&ledger)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = verdicts(&out.stdout);
    assert_eq!(v[0]["verdict"], "accepted");
    assert_eq!(codes(&v[0]), ["duplicate-ignored"]);
    assert_eq!(v[1]["verdict"], "rejected");
    assert!(codes(&v[1]).contains(&"duplicate-request".to_owned()));
    assert_eq!(peer.records().len(), 5, "nothing new reached the peer");

    // `check --ledger` sees the same history.
    let out = metergate_cmd()
        .arg("check")
        .arg(&again)
        .arg("--contracts")
        .arg(&contracts)
        .arg("--ledger")
        .arg(&ledger)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let v = verdicts(&out.stdout);
    assert_eq!(codes(&v[0]), ["duplicate-ignored"]);
    assert!(codes(&v[1]).contains(&"duplicate-request".to_owned()));

    // A rejected row submitted again is sent again (the customer may have subscribed since).
    let retry = write(
        &dir,
        "retry.jsonl",
        &rec("prod-a", "cust-2", "api_calls", 4, h2),
    );
    let out = peer
        .metergate()
        .arg("submit")
        .arg(&retry)
        .arg("--contracts")
        .arg(&contracts)
        .arg("--ledger")
        .arg(&ledger)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(peer.records().len(), 6);
    let l = Ledger::open_existing(&ledger).unwrap();
    let row = l
        .list(&metergate::ledger::Filter {
            customer: Some("cust-2".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(row.len(), 1);
    assert_eq!(row[0].attempts, 2);
}

/// Issue 14 item 8: re-running `submit` on a file that was all sent finds every record in
/// the ledger (`duplicate-ignored`, "nothing left to do"), exits 0 and sends nothing.
#[test]
fn submitting_a_file_twice_sends_nothing_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), 1, 2, 2, 2);
    let subs = data.subs.to_str().unwrap().to_owned();
    let Some(peer) = Peer::start(&["--subscribe-file", &subs]) else {
        return;
    };
    let ledger = dir.path().join("twice.sqlite");
    let run = || {
        peer.metergate()
            .arg("submit")
            .arg(&data.records)
            .arg("--contracts")
            .arg(&data.contracts)
            .arg("--ledger")
            .arg(&ledger)
            .args(["--format", "json"])
            .output()
            .unwrap()
    };
    let first = run();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let (records, calls) = (peer.records().len(), peer.calls().len());
    assert_eq!(records, data.expected.len());
    let second = run();
    assert_eq!(
        second.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let vs = verdicts(&second.stdout);
    assert_eq!(vs.len(), data.expected.len());
    for v in &vs {
        assert_eq!(v["verdict"], "accepted", "{v}");
        assert_eq!(codes(v), vec!["duplicate-ignored".to_owned()], "{v}");
    }
    // Counted at the peer: no second call, no second record.
    assert_eq!(peer.records().len(), records);
    assert_eq!(peer.calls().len(), calls);
    assert_eq!(
        ledger_counts(&ledger)["accepted"],
        data.expected.len() as u64
    );
}

#[test]
fn throttling_5xx_and_unprocessed_are_retried_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), 2, 5, 10, 3); // 300 records, 12 calls without faults
    let subs = data.subs.to_str().unwrap().to_owned();
    let Some(peer) = Peer::start(&[
        "--subscribe-file",
        &subs,
        "--throttle",
        "0.25",
        "--server-error",
        "0.2",
        "--unprocessed",
        "0.1",
        "--seed",
        "3",
    ]) else {
        return;
    };
    let ledger = dir.path().join("l.sqlite");
    let out = peer
        .metergate()
        .arg("submit")
        .arg(&data.records)
        .arg("--contracts")
        .arg(&data.contracts)
        .arg("--ledger")
        .arg(&ledger)
        .args(["--max-attempts", "12", "--format", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let calls = peer.calls();
    let faults = |k: &str| calls.iter().filter(|c| c["fault"] == k).count();
    assert!(faults("throttle") > 0 && faults("5xx") > 0, "{calls:?}");
    let c = count(&peer, &data.expected);
    println!(
        "faults: calls={} throttled={} 5xx={} unprocessed={} received={} billed={} lost={} conflicting={}",
        calls.len(),
        faults("throttle"),
        faults("5xx"),
        peer.records().iter().filter(|r| r["status"] == "Unprocessed").count(),
        c.received,
        c.billed,
        c.lost,
        c.conflicting
    );
    assert!(peer.records().iter().any(|r| r["status"] == "Unprocessed"));
    assert_eq!(c.lost, 0);
    assert_eq!(c.conflicting, 0);
    assert_eq!(c.billed, data.expected.len());
    let states = ledger_counts(&ledger);
    assert_eq!(
        states["accepted"] as usize,
        data.expected.len(),
        "{states:?}"
    );
    // Under 10 calls in any one second, retries included.
    let mut times: Vec<f64> = calls.iter().map(|c| c["t"].as_f64().unwrap()).collect();
    times.sort_by(f64::total_cmp);
    for w in times.windows(11) {
        assert!(w[10] - w[0] >= 0.95, "11 calls within {:.3}s", w[10] - w[0]);
    }
}

#[test]
fn resume_resends_rows_left_in_sending_identically() {
    let Some(peer) = Peer::start(&["--subscribe", "prod-a:cust-1"]) else {
        return;
    };
    let dir = peer.dir.path().to_path_buf();
    let contracts = write(&dir, "contracts.json", &contracts_json());
    let ledger = dir.join("l.sqlite");
    let t = hours_ago(1) + Duration::seconds(1234) + Duration::milliseconds(500);
    // A crash after the call went out: the row is in `sending`, the peer has the record.
    let mut l = Ledger::open(&ledger).unwrap();
    let record = metergate_core::UsageRecord {
        marketplace: metergate_core::Marketplace::Aws,
        product: "prod-a".into(),
        customer: "cust-1".into(),
        dimension: "api_calls".into(),
        quantity: 42.into(),
        start_time: t,
        end_time: None,
        record_id: None,
        plan: None,
        allocations: None,
        attributes: Default::default(),
    };
    let wire = metergate::submit::wire_values(&record, None).unwrap();
    let ids = l
        .enqueue(&[NewRow {
            record,
            source: None,
            wire,
        }])
        .unwrap();
    let id = match ids[0] {
        metergate::ledger::Enqueued::New(id) => id,
        other => panic!("{other:?}"),
    };
    l.claim(&[id]).unwrap();
    drop(l);
    for _ in 0..2 {
        let out = peer
            .metergate()
            .args(["resume", "--ledger"])
            .arg(&ledger)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let got = peer.records();
    assert_eq!(got.len(), 1, "the second resume has nothing to send");
    assert_eq!(got[0]["quantity"], 42);
    assert_eq!(
        got[0]["timestamp"].as_f64().unwrap(),
        t.timestamp() as f64 + 0.5
    );
    let l = Ledger::open_existing(&ledger).unwrap();
    let row = &l.rows(&[id]).unwrap()[0];
    assert_eq!(row.status, Status::Accepted);
    assert_eq!(row.attempts, 2);
    let _ = contracts;
}

#[test]
fn verbose_log_redacts_secrets_and_the_ledger_holds_none() {
    let Some(peer) = Peer::start(&["--subscribe", "prod-a:cust-1"]) else {
        return;
    };
    let dir = peer.dir.path().to_path_buf();
    let contracts = write(&dir, "contracts.json", &contracts_json());
    let input = write(
        &dir,
        "in.jsonl",
        &rec("prod-a", "cust-1", "api_calls", 5, hours_ago(1)),
    );
    let ledger = dir.join("l.sqlite");
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY";
    let token = "IQoJb3JpZ2luX2VjSESSIONTOKENVALUE";
    let out = peer
        .metergate()
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_SESSION_TOKEN", token)
        .arg("submit")
        .arg(&input)
        .arg("--contracts")
        .arg(&contracts)
        .arg("--ledger")
        .arg(&ledger)
        .arg("--verbose")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(stderr.contains("authorization: <redacted>"), "{stderr}");
    assert!(
        stderr.contains("x-amz-security-token: <redacted>"),
        "{stderr}"
    );
    assert!(stderr.contains("batchmeterusage"));
    let all = [
        out.stdout.clone(),
        out.stderr.clone(),
        std::fs::read(&ledger).unwrap(),
    ];
    for bytes in all {
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(secret) && !text.contains(token));
        assert!(!text.contains("Signature="));
    }
}

#[test]
fn heartbeat_sends_zero_for_dimensions_without_usage() {
    let Some(peer) = Peer::start(&[
        "--subscribe",
        "prod-a:cust-1,cust-2",
        "--subscribe",
        "prod-b:111122223333,LegacyCustId123",
    ]) else {
        return;
    };
    let dir = peer.dir.path().to_path_buf();
    let contracts = write(&dir, "contracts.json", &contracts_json());
    let ledger = dir.join("l.sqlite");
    let hour = hours_ago(1);
    let input = write(
        &dir,
        "in.jsonl",
        &rec(
            "prod-a",
            "cust-1",
            "api_calls",
            5,
            hour + Duration::minutes(3),
        ),
    );
    let out = peer
        .metergate()
        .arg("submit")
        .arg(&input)
        .arg("--contracts")
        .arg(&contracts)
        .arg("--ledger")
        .arg(&ledger)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = peer
        .metergate()
        .arg("heartbeat")
        .arg("--contracts")
        .arg(&contracts)
        .arg("--ledger")
        .arg(&ledger)
        .args(["--hour", &rfc(hour), "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let zeros: Vec<(String, String)> = peer
        .records()
        .iter()
        .filter(|r| r["quantity"] == 0)
        .map(|r| {
            (
                r["identity"].as_str().unwrap().to_owned(),
                r["dimension"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // cust-1/api_calls has usage; the other four dimensions get a heartbeat.
    let mut want = vec![
        ("111122223333".to_owned(), "api_calls".to_owned()),
        ("LegacyCustId123".to_owned(), "api_calls".to_owned()),
        ("cust-1".to_owned(), "storage".to_owned()),
        ("cust-2".to_owned(), "api_calls".to_owned()),
    ];
    let mut got = zeros.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert!(peer
        .records()
        .iter()
        .filter(|r| r["quantity"] == 0)
        .all(|r| r["timestamp"].as_f64().unwrap() == hour.timestamp() as f64));
    // A second run finds usage everywhere and sends nothing.
    let n = peer.records().len();
    let out = peer
        .metergate()
        .arg("heartbeat")
        .arg("--contracts")
        .arg(&contracts)
        .arg("--ledger")
        .arg(&ledger)
        .args(["--hour", &rfc(hour)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(peer.records().len(), n);
}

#[test]
fn dry_run_writes_and_sends_nothing() {
    let Some(peer) = Peer::start(&["--subscribe", "prod-a:cust-1"]) else {
        return;
    };
    let dir = peer.dir.path().to_path_buf();
    let contracts = write(&dir, "contracts.json", &contracts_json());
    let input = write(
        &dir,
        "in.jsonl",
        &rec("prod-a", "cust-1", "api_calls", 5, hours_ago(1)),
    );
    let ledger = dir.join("l.sqlite");
    let out = peer
        .metergate()
        .arg("submit")
        .arg(&input)
        .arg("--contracts")
        .arg(&contracts)
        .arg("--ledger")
        .arg(&ledger)
        .arg("--dry-run")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!ledger.exists());
    assert!(peer.calls().is_empty());
}

#[test]
fn no_credentials_stops_without_losing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let contracts = write(dir.path(), "contracts.json", &contracts_json());
    let input = write(
        dir.path(),
        "in.jsonl",
        &rec("prod-a", "cust-1", "api_calls", 5, hours_ago(1)),
    );
    let ledger = dir.path().join("l.sqlite");
    let out = metergate_cmd()
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .arg("submit")
        .arg(&input)
        .arg("--contracts")
        .arg(&contracts)
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
    let states = ledger_counts(&ledger);
    assert_eq!(states["pending"] + states["sending"], 1, "{states:?}");
}
