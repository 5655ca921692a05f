//! The scheduler inside the running `metergate serve`, over real HTTP against moto: hourly
//! sums closed and sent once (with the unit rule and the carry), a late event for a closed
//! hour refused; heartbeats after the hour plus the grace, and later usage for that hour
//! refused as a duplicate; rows left in the ledger sent earliest deadline first and a row
//! whose window closed ended `expired`, never sent. Counted at the peer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "submit_support/mod.rs"]
mod support;

#[path = "serve_support/mod.rs"]
mod serve_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as CDuration, Utc};
use metergate::ledger::{Enqueued, Ledger, NewRow, Status};
use metergate_core::{ContractSet, UsageRecord};
use serde_json::{json, Value};
use serve_support::Server;
use support::{hours_ago, moto_path, rfc, Peer};

const TOKEN: &str = "sched-token";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn contracts(dir: &Path, products: &[&str], unit: Option<i64>) -> (PathBuf, String) {
    let list: Vec<Value> = products
        .iter()
        .map(|p| {
            let mut d = json!({"name": "gb"});
            if let Some(u) = unit {
                d["unit"] = json!(u);
            }
            json!({"marketplace": "aws", "product": p, "customer": "c1", "status": "active",
                   "starts_at": rfc(hours_ago(48)), "dimensions": [d]})
        })
        .collect();
    let text = Value::Array(list).to_string();
    (write(dir, "contracts.json", &text), text)
}

fn event(product: &str, q: &str, t: DateTime<Utc>) -> Value {
    json!({"marketplace": "aws", "product": product, "customer": "c1", "dimension": "gb",
           "quantity": serde_json::from_str::<Value>(q).unwrap(),
           "start_time": rfc(t)})
}

fn wait_until(what: &str, max: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < max, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn codes(reply: &Value) -> Vec<Vec<String>> {
    reply["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v["findings"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|f| f["code"].as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect()
}

fn start(peer: &Peer, dir: tempfile::TempDir, contracts: &Path, config: &str) -> Server {
    let cfg = write(dir.path(), "metergate.toml", config);
    Server::start_in(
        dir,
        &[
            "--contracts",
            contracts.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "--send-interval",
            "200ms",
        ],
        &[
            ("METERGATE_API_TOKEN", TOKEN),
            ("AWS_ENDPOINT_URL", &peer.url()),
        ],
    )
    .unwrap_or_else(|(code, log)| panic!("serve did not start ({code:?}):\n{log}"))
}

#[test]
fn hourly_sums_close_once_with_the_carry_and_late_events_are_refused() {
    let Some(peer) = Peer::start(&["--subscribe", "prod-a:c1"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = contracts(dir.path(), &["prod-a"], Some(10));
    let server = start(
        &peer,
        dir,
        &c,
        "[serve.aggregate]\naws = \"hourly\"\nclose_after = \"1m\"\n\n[serve.heartbeat]\nenabled = false\n",
    );
    let h = hours_ago(2);
    // One request, so no tick can close the hour between the events. 7 + 8.5 = 15.5: a
    // fraction is fine for an event (the sum is judged), 10 is sent, 5.5 carried.
    let body = Value::Array(vec![
        event("prod-a", "7", h + CDuration::minutes(5)),
        event("prod-a", "8.5", h + CDuration::minutes(25)),
    ])
    .to_string();
    let r = server.post("/v1/usage", Some(TOKEN), "application/json", &body);
    assert_eq!(r.status, 200, "{}", r.body);
    wait_until(
        "the hour's sum at the peer",
        Duration::from_secs(30),
        || !peer.records().is_empty(),
    );
    let recs = peer.records();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0]["quantity"], 10);
    assert_eq!(
        recs[0]["timestamp"].as_f64().unwrap() as i64,
        (h + CDuration::minutes(25)).timestamp()
    );
    // The hour is closed: a late event for it is refused and stores nothing.
    let late = Value::Array(vec![event("prod-a", "2", h + CDuration::minutes(40))]).to_string();
    let r = server.post("/v1/usage", Some(TOKEN), "application/json", &late);
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(codes(&r.json()), [["duplicate-request"]]);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(peer.records().len(), 1, "sent once");
    let mut l = Ledger::open_existing(&server.ledger()).unwrap();
    let rows = l.list(&Default::default()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, Status::Accepted);
    assert!(metergate::agent::hourly::open_hours(&mut l)
        .unwrap()
        .is_empty());
}

#[test]
fn heartbeats_after_the_grace_then_usage_for_that_hour_is_a_duplicate() {
    let Some(peer) = Peer::start(&["--subscribe", "prod-a:c1"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = contracts(dir.path(), &["prod-a"], None);
    // A zero grace and a catch-up of an hour: the last complete hour is due at once.
    let server = start(
        &peer,
        dir,
        &c,
        "[serve.heartbeat]\nafter = \"0m\"\ncatch_up = \"1h\"\n",
    );
    let last = hours_ago(1);
    wait_until("the heartbeat at the peer", Duration::from_secs(30), || {
        !peer.records().is_empty()
    });
    let recs = peer.records();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0]["quantity"], 0);
    assert_eq!(
        recs[0]["timestamp"].as_f64().unwrap() as i64,
        last.timestamp()
    );
    // The intake learns about the heartbeat row (the send loop tells it after the tick):
    // usage for that hour is refused.
    std::thread::sleep(Duration::from_millis(600));
    let body = Value::Array(vec![event("prod-a", "5", last + CDuration::minutes(30))]).to_string();
    let r = server.post("/v1/usage", Some(TOKEN), "application/json", &body);
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(codes(&r.json()), [["duplicate-request"]], "{}", r.body);
    assert!(r.body.contains("heartbeat"), "{}", r.body);
    // Usage for the current hour is fine, and no second heartbeat is written.
    let now_body = Value::Array(vec![event(
        "prod-a",
        "5",
        Utc::now() - CDuration::seconds(5),
    )])
    .to_string();
    let r = server.post("/v1/usage", Some(TOKEN), "application/json", &now_body);
    assert_eq!(r.status, 200, "{}", r.body);
    wait_until("the usage at the peer", Duration::from_secs(30), || {
        peer.records().len() == 2
    });
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        peer.records().iter().filter(|r| r["quantity"] == 0).count(),
        1
    );
}

fn seed(ledger: &Path, contracts: &str, recs: &[UsageRecord]) -> Vec<i64> {
    let set = ContractSet::from_json(contracts).unwrap();
    let mut l = Ledger::open(ledger).unwrap();
    let rows: Vec<NewRow> = recs
        .iter()
        .map(|r| NewRow {
            record: r.clone(),
            source: None,
            wire: metergate::submit::wire_values(
                r,
                set.find(r.marketplace, &r.product, &r.customer)
                    .map(|(_, c)| c),
            )
            .unwrap(),
        })
        .collect();
    l.enqueue(&rows)
        .unwrap()
        .into_iter()
        .map(|e| match e {
            Enqueued::New(id) => id,
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_restart_sends_what_the_ledger_holds_earliest_deadline_first_and_expires_the_late() {
    if moto_path().is_none() {
        return;
    }
    let Some(peer) = Peer::start(&[
        "--subscribe",
        "p1:c1",
        "--subscribe",
        "p2:c1",
        "--subscribe",
        "p3:c1",
    ]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (c, text) = contracts(dir.path(), &["p1", "p2", "p3"], None);
    let now = Utc::now();
    let rec = |p: &str, q: i64, ago: i64| UsageRecord {
        marketplace: metergate_core::Marketplace::Aws,
        product: p.into(),
        customer: "c1".into(),
        dimension: "gb".into(),
        quantity: q.into(),
        start_time: now - CDuration::minutes(ago),
        end_time: None,
        record_id: None,
        plan: None,
        allocations: None,
        attributes: Default::default(),
    };
    let ids = seed(
        &dir.path().join("ledger.sqlite"),
        &text,
        &[
            rec("p1", 1, 20),
            rec("p2", 2, 340),
            rec("p3", 3, 200),
            rec("p1", 4, 365),
        ],
    );
    let server = start(&peer, dir, &c, "[serve.heartbeat]\nenabled = false\n");
    let ledger = server.ledger();
    wait_until("every row answered", Duration::from_secs(30), || {
        peer.calls().len() >= 3
            && Ledger::open_existing(&ledger)
                .and_then(|l| l.unfinished())
                .is_ok_and(|u| u.is_empty())
    });
    let order: Vec<String> = peer
        .calls()
        .iter()
        .map(|c| c["product"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(order, ["p2", "p3", "p1"]);
    let l = Ledger::open_existing(&server.ledger()).unwrap();
    let rows = l.rows(&ids).unwrap();
    let states: Vec<Status> = rows.iter().map(|r| r.status).collect();
    assert_eq!(
        states,
        [
            Status::Accepted,
            Status::Accepted,
            Status::Accepted,
            Status::Expired
        ]
    );
    assert!(rows[3].reason.as_deref().unwrap().contains("aws.lookback"));
    assert!(peer.records().iter().all(|r| r["quantity"] != 4));
}
