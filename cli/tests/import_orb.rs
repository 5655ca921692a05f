//! `metergate import orb` against the Orb fake (tests/peers/orb_fake.py), and end to end
//! with moto: Orb's costs billed once, to the cent, less what is still carried.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "submit_support/mod.rs"]
mod support;

#[path = "serve_support/mod.rs"]
mod serve_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use metergate::ledger::{Filter, Ledger, Status};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use support::*;

const KEY: &str = "test-orb-key";

/// The Orb fake; killed when dropped.
struct Orb {
    child: Child,
    port: u16,
    state: PathBuf,
    log: PathBuf,
    subs: Value,
}

impl Orb {
    fn start(dir: &Path) -> Orb {
        let state = dir.join("orb_state.json");
        let log = dir.join("orb_calls.jsonl");
        std::fs::write(&state, r#"{"subscriptions": {}}"#).unwrap();
        let mut child = Command::new("python3")
            .arg(root().join("tests/peers/orb_fake.py"))
            .args([
                "--port",
                "0",
                "--lifetime",
                "900",
                "--api-key",
                KEY,
                "--state",
            ])
            .arg(&state)
            .arg("--log")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().strip_prefix("PORT ").unwrap().parse().unwrap();
        Orb {
            child,
            port,
            state,
            log,
            subs: json!({}),
        }
    }

    fn save(&self, outage: bool) {
        let v = json!({"outage": outage, "subscriptions": self.subs});
        std::fs::write(&self.state, v.to_string()).unwrap();
    }

    fn subscription(&mut self, id: &str, start: DateTime<Utc>) {
        self.subs[id] = json!({"currency": "USD", "start_date": rfc(start), "events": []});
        self.save(false);
    }

    fn cost(&mut self, id: &str, at: DateTime<Utc>, amount: &str) {
        self.subs[id]["events"].as_array_mut().unwrap().push(
            json!({"at": rfc(at), "price_id": "price_usage", "quantity": "1", "amount": amount}),
        );
        self.save(false);
    }

    fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn cmd(&self, base: Command) -> Command {
        let mut c = base;
        c.env("ORB_API_KEY", KEY)
            .env("ORB_API_URL", format!("http://127.0.0.1:{}/v1", self.port));
        c
    }
}

impl Drop for Orb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn contracts(dir: &Path, subs: &[(&str, &str)]) -> PathBuf {
    let start = rfc(hours_ago(48));
    let v: Vec<Value> = subs
        .iter()
        .map(|(customer, sub)| {
            json!({"marketplace":"aws","product":"prod-a","customer":customer,"status":"active",
                   "starts_at":start,
                   "dimensions":[{"name":"api_calls"},{"name":"usage_fee","price":"0.01"}],
                   "properties":{"orb_subscription_id":sub,"internal_customer_identifier":format!("int-{customer}")}})
        })
        .collect();
    let p = dir.join("contracts.json");
    std::fs::write(&p, Value::Array(v).to_string()).unwrap();
    p
}

/// Runs `import orb --format json` and returns (exit code, per-contract lines, stderr).
fn import(
    mut c: Command,
    contracts: &Path,
    ledger: &Path,
    now: DateTime<Utc>,
    extra: &[&str],
) -> (i32, Vec<Value>, String) {
    let out = c
        .args(["import", "orb", "--format", "json", "--contracts"])
        .arg(contracts)
        .arg("--ledger")
        .arg(ledger)
        .args(["--now", &rfc(now)])
        .args(extra)
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("outcome").is_some())
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn d(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap()).unwrap()
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn rows(ledger: &Path) -> Vec<metergate::ledger::LedgerRow> {
    Ledger::open_existing(ledger)
        .unwrap()
        .list(&Filter::default())
        .unwrap()
}

#[test]
fn import_orb_bills_each_hour_once_and_offsets_credits() {
    let dir = tempfile::tempdir().unwrap();
    let mut orb = Orb::start(dir.path());
    orb.subscription("sub_1", hours_ago(48));
    let contracts = contracts(dir.path(), &[("cust-1", "sub_1")]);
    let ledger = dir.path().join("l.sqlite");
    let t0 = hours_ago(5);

    // Hour 1: $12.345 is 1234 cents, half a cent carried.
    orb.cost("sub_1", t0 + Duration::minutes(1), "12.345");
    let (code, v, err) = import(
        orb.cmd(metergate_cmd()),
        &contracts,
        &ledger,
        t0 + Duration::minutes(10),
        &["--no-send"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(v[0]["outcome"], "imported");
    assert_eq!(
        (d(&v[0]["quantity"]), d(&v[0]["carried"])),
        (dec("1234"), dec("0.005"))
    );

    // The same hour again, with a new cost: nothing is added; it waits for the next hour.
    orb.cost("sub_1", t0 + Duration::minutes(20), "1.00");
    let (code, v, err) = import(
        orb.cmd(metergate_cmd()),
        &contracts,
        &ledger,
        t0 + Duration::minutes(40),
        &["--no-send"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(v[0]["outcome"], "same-hour");
    assert_eq!(rows(&ledger).len(), 1);

    // Hour 2: the dollar and the carried half cent.
    let (code, v, err) = import(
        orb.cmd(metergate_cmd()),
        &contracts,
        &ledger,
        t0 + Duration::minutes(65),
        &["--no-send"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (d(&v[0]["quantity"]), d(&v[0]["carried"])),
        (dec("100"), dec("0.005"))
    );

    // Hour 3: a $5 credit. Nothing negative is sent; the credit is kept.
    orb.cost("sub_1", t0 + Duration::minutes(90), "-5.00");
    let (code, v, err) = import(
        orb.cmd(metergate_cmd()),
        &contracts,
        &ledger,
        t0 + Duration::minutes(125),
        &["--no-send"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(v[0]["outcome"], "credit");
    assert_eq!(
        (d(&v[0]["quantity"]), d(&v[0]["carried"])),
        (dec("0"), dec("-4.995"))
    );
    assert_eq!(rows(&ledger).len(), 2);

    // Hour 4: $10 more, the credit offset first: 5.005 owed, 500 cents sent.
    orb.cost("sub_1", t0 + Duration::minutes(150), "10.00");
    let (code, v, err) = import(
        orb.cmd(metergate_cmd()),
        &contracts,
        &ledger,
        t0 + Duration::minutes(185),
        &["--no-send"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (d(&v[0]["quantity"]), d(&v[0]["carried"])),
        (dec("500"), dec("0.005"))
    );
    let all = rows(&ledger);
    let qty: Decimal = all.iter().map(|r| r.quantity).sum();
    assert_eq!(qty, dec("1834"));
    assert!(all
        .iter()
        .all(|r| r.quantity > Decimal::ZERO && r.dimension == "usage_fee"));
    assert!(all.iter().all(|r| r.source.as_deref() == Some("orb:sub_1")));
    // Orb's total to the cent = billed + carried.
    assert_eq!(qty * dec("0.01") + dec("0.005"), dec("18.345"));
    // Properties are shown, never on the wire.
    assert!(all
        .iter()
        .all(|r| !r.wire.to_string().contains("int-cust-1")));
    let out = metergate_cmd()
        .args(["ledger", "export", "--format", "json", "--ledger"])
        .arg(&ledger)
        .arg("--contracts")
        .arg(&contracts)
        .output()
        .unwrap();
    let exp: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        exp[0]["properties"]["internal_customer_identifier"],
        "int-cust-1"
    );
}

#[test]
fn import_orb_unknown_subscription_and_outage_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut orb = Orb::start(dir.path());
    orb.subscription("sub_1", hours_ago(48));
    let contracts = contracts(
        dir.path(),
        &[("cust-1", "sub_1"), ("cust-2", "sub_missing")],
    );
    let ledger = dir.path().join("l.sqlite");
    orb.cost("sub_1", hours_ago(3), "2.50");

    // An unknown subscription fails alone (404); the other contract imports.
    let (code, v, err) = import(
        orb.cmd(metergate_cmd()),
        &contracts,
        &ledger,
        hours_ago(3) + Duration::minutes(5),
        &["--no-send"],
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(v[0]["outcome"], "imported");
    assert_eq!(v[1]["outcome"], "failed");
    assert!(v[1]["detail"].as_str().unwrap().contains("404"));
    assert_eq!(rows(&ledger).len(), 1);

    // An outage: every call fails after its retries; nothing is imported, nothing changes.
    orb.cost("sub_1", hours_ago(2), "7.00");
    orb.save(true);
    let before = orb.calls().len();
    let (code, v, err) = import(
        orb.cmd(metergate_cmd()),
        &contracts,
        &ledger,
        hours_ago(2) + Duration::minutes(5),
        &["--no-send"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(v.iter().all(|c| c["outcome"] == "failed"));
    let outage: Vec<Value> = orb.calls()[before..].to_vec();
    assert_eq!(
        outage.len(),
        2 * metergate::import::orb::MAX_ATTEMPTS as usize
    );
    assert!(outage.iter().all(|c| c["status"] == 500));
    assert_eq!(rows(&ledger).len(), 1);

    // After the outage, the next hour bills what the outage hour could not.
    orb.save(false);
    let (_, v, err) = import(
        orb.cmd(metergate_cmd()),
        &contracts,
        &ledger,
        hours_ago(1) + Duration::minutes(5),
        &["--no-send"],
    );
    assert_eq!(v[0]["outcome"], "imported", "{err}");
    assert_eq!(d(&v[0]["quantity"]), dec("700"));

    // A wrong key is refused by Orb (401): a failure, not a crash.
    let mut c = orb.cmd(metergate_cmd());
    c.env("ORB_API_KEY", "wrong");
    let (code, v, _) = import(
        c,
        &contracts,
        &ledger,
        hours_ago(1) + Duration::minutes(9),
        &["--dry-run"],
    );
    assert_eq!(code, 1);
    assert!(v[0]["detail"].as_str().unwrap().contains("401"));
    // No key at all: the command cannot run.
    let mut c = orb.cmd(metergate_cmd());
    c.env_remove("ORB_API_KEY");
    let (code, _, _) = import(
        c,
        &contracts,
        &ledger,
        hours_ago(1) + Duration::minutes(9),
        &[],
    );
    assert_eq!(code, 2);
}

#[test]
fn import_orb_to_moto_bills_orb_total_to_the_cent() {
    let Some(peer) = Peer::start(&["--subscribe", "prod-a:cust-1"]) else {
        return;
    };
    let dir = peer.dir.path().to_path_buf();
    let mut orb = Orb::start(&dir);
    orb.subscription("sub_1", hours_ago(48));
    let contracts = contracts(&dir, &[("cust-1", "sub_1")]);
    let ledger = dir.join("l.sqlite");
    let costs = [("3.337", 4), ("0.004", 3), ("-1.20", 2), ("9.9995", 1)];
    let mut carried = Decimal::ZERO;
    for (i, (amount, h)) in costs.iter().enumerate() {
        orb.cost("sub_1", hours_ago(*h), amount);
        let now = hours_ago(*h) + Duration::minutes(5);
        // The first import only writes (resume sends it), the others send at once.
        let extra: &[&str] = if i == 0 { &["--no-send"] } else { &[] };
        let (code, v, err) = import(orb.cmd(peer.metergate()), &contracts, &ledger, now, extra);
        assert_eq!(code, 0, "{err}");
        carried = d(&v[0]["carried"]);
        if i == 0 {
            let out = peer
                .metergate()
                .arg("resume")
                .arg("--ledger")
                .arg(&ledger)
                .arg("--contracts")
                .arg(&contracts)
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // Once more in the last hour: nothing new reaches the peer.
    let sent_before = peer.records().len();
    let (code, _, err) = import(
        orb.cmd(peer.metergate()),
        &contracts,
        &ledger,
        hours_ago(1) + Duration::minutes(30),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(peer.records().len(), sent_before);

    let records: Vec<Value> = peer
        .records()
        .into_iter()
        .filter(|r| r["status"] != "Unprocessed")
        .collect();
    assert!(!records.is_empty());
    let billed: Decimal = records
        .iter()
        .map(|r| Decimal::from(r["quantity"].as_i64().unwrap()))
        .sum();
    let total: Decimal = costs.iter().map(|(a, _)| dec(a)).sum();
    assert_eq!(
        billed * dec("0.01"),
        total - carried,
        "billed {billed} cents of {total}, carried {carried}"
    );
    assert!(records.iter().all(|r| r["dimension"] == "usage_fee"));
    assert!(rows(&ledger).iter().all(|r| r.status == Status::Accepted));
}

/// `serve` with `[import.orb]`: an import at start, its row sent by the send loop; counted
/// at moto. Without `$ORB_API_KEY` the agent refuses to start.
#[test]
fn serve_imports_orb_at_start_and_sends_it() {
    let Some(peer) = Peer::start(&["--subscribe", "prod-a:cust-1"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut orb = Orb::start(dir.path());
    orb.subscription("sub_1", hours_ago(48));
    orb.cost("sub_1", hours_ago(3), "4.567");
    let contracts = contracts(dir.path(), &[("cust-1", "sub_1")]);
    let cfg = dir.path().join("metergate.toml");
    std::fs::write(&cfg, "[import.orb]\nevery = \"1h\"\n").unwrap();
    let args = [
        "--contracts",
        contracts.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--send-interval",
        "200ms",
    ];
    let orb_url = format!("http://127.0.0.1:{}/v1", orb.port);
    let aws = peer.url();
    let envs = [
        ("METERGATE_API_TOKEN", "serve-orb-token"),
        ("AWS_ENDPOINT_URL", aws.as_str()),
        ("ORB_API_URL", orb_url.as_str()),
    ];

    let refused = serve_support::Server::try_start(&args, &envs);
    let Err((status, log)) = refused else {
        panic!("serve started without ORB_API_KEY");
    };
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{log}");

    let mut with_key = envs.to_vec();
    with_key.push(("ORB_API_KEY", KEY));
    let mut server = serve_support::Server::start(&args, &with_key);
    let start = std::time::Instant::now();
    while peer.records().is_empty() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "no record reached moto:\n{}",
            server.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.terminate(std::time::Duration::from_secs(20));
    let recs = peer.records();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0]["dimension"], "usage_fee");
    // 4.567 at 0.01 a unit: 456 units sent, 0.007 carried.
    assert_eq!(recs[0]["quantity"], 456);
    assert_eq!(orb.calls().len(), 1, "one import at start");
}
