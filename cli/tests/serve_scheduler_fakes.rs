//! The agent's scheduler against the Microsoft metering fake and the Google Service Control
//! fake (tests/peers): earliest deadline first and expiry on Microsoft's 24 h look-back,
//! hourly sums with Microsoft's "never zero" carry, Google interval sums, and Google's
//! post-cancellation expiry. Counted at the fakes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "submit_support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Child;

use chrono::{DateTime, Duration, Utc};
use metergate::agent::heartbeat::HeartbeatConfig;
use metergate::agent::hourly::{self, HourEnd, HourlyConfig};
use metergate::agent::scheduler::{Scheduler, SchedulerConfig};
use metergate::ledger::{Ledger, Status};
use metergate::submit::azure::AzureOptions;
use metergate::submit::gcp::GcpOptions;
use metergate::submit::{RetryPolicy, SendOptions};
use metergate_core::{ContractSet, Marketplace, Settings, UsageRecord, Validator};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use support::{enqueue, hours_ago, rfc, status_of};

const SECRET: &str = "test-secret-azure";
const TOKEN: &str = "test-token-gcp";
const RESOURCE: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const SERVICE: &str = "svc.example.com";

struct Fake {
    child: Child,
    port: u16,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl Fake {
    fn start(script: &str, args: &[&str]) -> Fake {
        let (child, port, log, dir) = support::start_fake(script, args);
        Fake {
            child,
            port,
            log,
            dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn lines(&self, kind: &str) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == kind)
            .collect()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn no_beats() -> HeartbeatConfig {
    HeartbeatConfig {
        enabled: false,
        ..HeartbeatConfig::default()
    }
}

fn scheduler(send: SendOptions, hourly: HourlyConfig) -> Scheduler {
    Scheduler::new(SchedulerConfig {
        hourly,
        heartbeat: no_beats(),
        send,
        policy: RetryPolicy::default(),
    })
}

fn validator(contracts: Value) -> Validator {
    Validator::new(
        ContractSet::from_json(&contracts.to_string()).unwrap(),
        Settings::default(),
        &[],
    )
    .unwrap()
}

fn rec(
    mp: Marketplace,
    product: &str,
    customer: &str,
    dim: &str,
    q: &str,
    start: DateTime<Utc>,
    end: Option<DateTime<Utc>>,
) -> UsageRecord {
    UsageRecord {
        marketplace: mp,
        product: product.into(),
        customer: customer.into(),
        dimension: dim.into(),
        quantity: q.parse().unwrap(),
        start_time: start,
        end_time: end,
        record_id: None,
        plan: (mp == Marketplace::Azure).then(|| "gold".to_owned()),
        allocations: None,
        attributes: BTreeMap::new(),
    }
}

/// Microsoft: earliest deadline first inside the call, expiry on the 24 h look-back, and an
/// hourly sum under one unit carried (Microsoft is never sent zero) into the next hour.
#[test]
fn microsoft_edf_expiry_and_carried_hourly_sums() {
    let fake = Fake::start("azure_fake.py", &["--client-secret", SECRET]);
    // The token URL and credentials come from the environment (one Microsoft test here).
    std::env::set_var(
        "METERGATE_AZURE_TOKEN_URL",
        format!("{}/{{tenant}}/oauth2/v2.0/token", fake.url()),
    );
    std::env::set_var("AZURE_TENANT_ID", "tenant-1");
    std::env::set_var("AZURE_CLIENT_ID", "app-1");
    std::env::set_var("AZURE_CLIENT_SECRET", SECRET);
    let send = SendOptions {
        azure: AzureOptions {
            endpoint: Some(fake.url()),
            verbose: false,
        },
        ..SendOptions::default()
    };
    let v = validator(json!([{
        "marketplace": "azure", "product": "offer-x", "customer": "sub-1", "status": "active",
        "starts_at": rfc(hours_ago(72)), "plan": "gold", "resource_id": RESOURCE,
        "dimensions": [{"name": "requests"}, {"name": "gb_hours", "unit": 0.25}],
    }]));
    let mut l = Ledger::open(&fake.dir.path().join("l.sqlite")).unwrap();
    let now = Utc::now();
    let az = |dim: &str, q: &str, t: DateTime<Utc>| {
        rec(Marketplace::Azure, "offer-x", "sub-1", dim, q, t, None)
    };
    let h1 = hours_ago(3);
    let h2 = hours_ago(2);
    let ids = enqueue(
        &mut l,
        &v,
        &[
            // After the hourly sum below (h2 + 10 min): its deadline comes later.
            az("requests", "5", h2 + Duration::minutes(30)),
            az("requests", "6", now - Duration::hours(23)),
            // Past Microsoft's 24 hours: never sent.
            az("requests", "7", now - Duration::hours(25)),
        ],
    );
    hourly::add_events(
        &mut l,
        &[
            az("gb_hours", "0.1", h1 + Duration::minutes(10)),
            az("gb_hours", "0.1", h1 + Duration::minutes(20)),
            az("gb_hours", "0.2", h2 + Duration::minutes(10)),
        ],
    )
    .unwrap();
    let hourly = HourlyConfig {
        all: true,
        ..HourlyConfig::default()
    };
    let mut s = scheduler(send, hourly);
    let r = s.tick(&mut l, &v, now).unwrap();

    assert_eq!(status_of(&l, ids[2]), Status::Expired);
    assert_eq!(status_of(&l, ids[0]), Status::Accepted);
    assert_eq!(status_of(&l, ids[1]), Status::Accepted);
    // h1: 0.2 is under one unit (0.25): nothing sent, 0.2 carried. h2: 0.2 + 0.2 = 0.4:
    // 0.25 sent, 0.15 carried.
    let ends: Vec<&HourEnd> = r.hours_closed.iter().map(|h| &h.end).collect();
    assert!(
        matches!(ends[0], HourEnd::Nothing { carried, .. } if *carried == "0.2".parse::<Decimal>().unwrap()),
        "{ends:?}"
    );
    assert!(
        matches!(ends[1], HourEnd::Queued { quantity, carried, .. }
            if *quantity == "0.25".parse::<Decimal>().unwrap() && *carried == "0.15".parse::<Decimal>().unwrap()),
        "{ends:?}"
    );
    let events = fake.lines("event");
    let got: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["dimension"].as_str().unwrap().to_owned(),
                e["quantity"].to_string(),
            )
        })
        .collect();
    // One call; in it, the most urgent row first (23 h old), and no expired row.
    assert_eq!(
        got,
        [
            ("requests".to_owned(), "6".to_owned()),
            ("gb_hours".to_owned(), "0.25".to_owned()),
            ("requests".to_owned(), "5".to_owned()),
        ],
        "{events:?}"
    );
    assert!(events.iter().all(|e| e["status"] == "Accepted"));
    assert_eq!(r.markets[&Marketplace::Azure].calls, 1);
    assert_eq!(r.expired().count(), 1);
}

/// Google: an hour of intervals becomes one operation over the smallest covering interval;
/// a cancelled contract's rows past the post-cancellation hour expire; a cancellation sends
/// the contract's open hour at once.
#[test]
fn google_interval_sums_post_cancel_expiry_and_send_on_cancellation() {
    let fake = Fake::start("gcp_fake.py", &["--token", TOKEN]);
    std::env::set_var("METERGATE_GCP_TOKEN", TOKEN);
    let send = SendOptions {
        gcp: GcpOptions {
            endpoint: Some(fake.url()),
            verbose: false,
        },
        ..SendOptions::default()
    };
    let now = Utc::now();
    let stop = now - Duration::hours(3);
    let v = validator(json!([
        {"marketplace": "gcp", "product": SERVICE, "customer": "proj-1", "status": "active",
         "starts_at": rfc(now - Duration::days(30)), "usage_reporting_id": "project_number:101",
         "dimensions": [{"name": "requests"}]},
        {"marketplace": "gcp", "product": SERVICE, "customer": "proj-2", "status": "cancelled",
         "starts_at": rfc(now - Duration::days(30)), "cancelled_at": rfc(stop),
         "usage_reporting_id": "project_number:102", "dimensions": [{"name": "requests"}]},
    ]));
    let mut l = Ledger::open(&fake.dir.path().join("l.sqlite")).unwrap();
    let g = |c: &str, q: &str, s: DateTime<Utc>, e: DateTime<Utc>| {
        rec(Marketplace::Gcp, SERVICE, c, "requests", q, s, Some(e))
    };
    // proj-2 was cancelled 3 h ago: usage before it had one hour to be sent.
    let late = enqueue(
        &mut l,
        &v,
        &[g(
            "proj-2",
            "9",
            stop - Duration::minutes(30),
            stop - Duration::minutes(20),
        )],
    );
    let h = hours_ago(2);
    hourly::add_events(
        &mut l,
        &[
            g(
                "proj-1",
                "3",
                h + Duration::minutes(5),
                h + Duration::minutes(10),
            ),
            g(
                "proj-1",
                "4",
                h + Duration::minutes(20),
                h + Duration::minutes(30),
            ),
        ],
    )
    .unwrap();
    let hourly = HourlyConfig {
        all: true,
        ..HourlyConfig::default()
    };
    let mut s = scheduler(send, hourly);
    let r = s.tick(&mut l, &v, now).unwrap();
    assert_eq!(status_of(&l, late[0]), Status::Expired);
    let reason = l.rows(&late).unwrap()[0].reason.clone().unwrap();
    assert!(reason.contains("gcp.post_cancel"), "{reason}");
    let ops = fake.lines("op");
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(ops[0]["consumerId"], "project_number:101");
    assert_eq!(ops[0]["value"].to_string(), "\"7\"");
    assert_eq!(ops[0]["startTime"], rfc(h + Duration::minutes(5)));
    assert_eq!(ops[0]["endTime"], rfc(h + Duration::minutes(30)));
    assert_eq!(r.hours_closed.len(), 1);

    // The current hour of proj-1 is open; a cancellation event sends it now.
    let t = now - Duration::minutes(3);
    hourly::add_events(&mut l, &[g("proj-1", "2", t, t + Duration::minutes(1))]).unwrap();
    let r = s
        .send_contract_now(&mut l, &v, Marketplace::Gcp, SERVICE, "proj-1", now)
        .unwrap();
    assert_eq!(r.hours_closed.len(), 1);
    assert_eq!(r.finished.len(), 1);
    assert_eq!(r.finished[0].status, Status::Accepted);
    assert_eq!(fake.lines("op").len(), 2);
    assert!(fake.lines("dup").is_empty());
}
