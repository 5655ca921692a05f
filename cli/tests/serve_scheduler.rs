//! The agent's scheduler (`metergate serve`, issue #18) as library code against moto: earliest
//! deadline first, expiry, the deadline guard, heartbeats after the hour plus a grace, hourly
//! sums closed with a carry, the send on a cancellation, and `kill -9` during a tick.
//!
//! "Now" is a parameter of every tick; moto judges timestamps against its own clock, so the
//! usage times are picked near the real clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "submit_support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Once;

use chrono::{DateTime, Duration, Utc};
use metergate::agent::heartbeat::HeartbeatConfig;
use metergate::agent::hourly::{self, Added, HourEnd, HourlyConfig};
use metergate::agent::scheduler::{Scheduler, SchedulerConfig, TickReport};
use metergate::ledger::{Ledger, Status};
use metergate::submit::aws::AwsOptions;
use metergate::submit::{RetryPolicy, SendOptions};
use metergate_core::{ContractSet, Marketplace, Settings, UsageRecord, Validator};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use support::*;

/// The AWS SDK reads credentials from the environment: dummy ones, set once for the process.
fn aws_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_CONFIG_FILE", "/nonexistent/metergate-test-config"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/metergate-test-credentials",
            ),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ] {
            std::env::set_var(k, v);
        }
        std::env::remove_var("AWS_PROFILE");
        std::env::remove_var("AWS_SESSION_TOKEN");
    });
}

fn options(peer: &Peer) -> SendOptions {
    aws_env();
    SendOptions {
        aws: AwsOptions {
            endpoint_url: Some(peer.url()),
            region: Some("us-east-1".into()),
            profile: None,
            verbose: false,
        },
        ..SendOptions::default()
    }
}

fn scheduler(peer: &Peer, hourly: HourlyConfig, heartbeat: HeartbeatConfig) -> Scheduler {
    Scheduler::new(SchedulerConfig {
        hourly,
        heartbeat,
        send: options(peer),
        policy: RetryPolicy::default(),
    })
}

fn no_beats() -> HeartbeatConfig {
    HeartbeatConfig {
        enabled: false,
        ..HeartbeatConfig::default()
    }
}

/// AWS contracts: `(product, customer, dimensions, extra fields)`.
fn validator(contracts: &[(&str, &str, &[&str], Value)]) -> Validator {
    let start = rfc(hours_ago(72));
    let list: Vec<Value> = contracts
        .iter()
        .map(|(p, c, dims, extra)| {
            let mut v = json!({
                "marketplace": "aws", "product": p, "customer": c, "status": "active",
                "starts_at": start,
                "dimensions": dims.iter().map(|d| {
                    let mut o = json!({"name": d});
                    if let Some(u) = extra.get("unit") { o["unit"] = u.clone(); }
                    o
                }).collect::<Vec<_>>(),
            });
            if let Some(obj) = extra.as_object() {
                for (k, x) in obj {
                    if k != "unit" {
                        v[k] = x.clone();
                    }
                }
            }
            v
        })
        .collect();
    let set = ContractSet::from_json(&Value::Array(list).to_string()).unwrap();
    Validator::new(set, Settings::default(), &[]).unwrap()
}

fn record(product: &str, customer: &str, dim: &str, q: i64, t: DateTime<Utc>) -> UsageRecord {
    UsageRecord {
        marketplace: Marketplace::Aws,
        product: product.into(),
        customer: customer.into(),
        dimension: dim.into(),
        quantity: Decimal::from(q),
        start_time: t,
        end_time: None,
        record_id: None,
        plan: None,
        allocations: None,
        attributes: BTreeMap::new(),
    }
}

/// (product, identity, dimension, timestamp secs, quantity, status) of each record the peer got.
fn peer_records(peer: &Peer) -> Vec<(String, String, String, i64, i64, String)> {
    peer.records()
        .iter()
        .map(|r| {
            (
                r["product"].as_str().unwrap().to_owned(),
                r["identity"].as_str().unwrap().to_owned(),
                r["dimension"].as_str().unwrap().to_owned(),
                r["timestamp"].as_f64().unwrap() as i64,
                r["quantity"].as_i64().unwrap(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn earliest_deadline_first_and_expired_rows_never_leave() {
    let Some(peer) = Peer::start(&[
        "--subscribe",
        "prod-a:c1",
        "--subscribe",
        "prod-b:c1",
        "--subscribe",
        "prod-c:c1",
        "--subscribe",
        "prod-d:c1",
    ]) else {
        return;
    };
    let v = validator(&[
        ("prod-a", "c1", &["calls"], json!({})),
        ("prod-b", "c1", &["calls"], json!({})),
        ("prod-c", "c1", &["calls"], json!({})),
        ("prod-d", "c1", &["calls"], json!({})),
    ]);
    let now = Utc::now();
    let mut l = Ledger::open(&peer.dir.path().join("l.sqlite")).unwrap();
    // Written in the wrong order on purpose; one product each, so one call each.
    let ids = enqueue(
        &mut l,
        &v,
        &[
            record("prod-a", "c1", "calls", 1, now - Duration::minutes(30)),
            record("prod-b", "c1", "calls", 2, now - Duration::minutes(330)),
            record("prod-c", "c1", "calls", 3, now - Duration::minutes(150)),
            // Its six hours are over: it must end `expired`, unsent.
            record("prod-d", "c1", "calls", 4, now - Duration::minutes(370)),
        ],
    );
    let mut s = scheduler(&peer, HourlyConfig::default(), no_beats());
    let report = s.tick(&mut l, &v, now).unwrap();

    let calls: Vec<String> = peer
        .calls()
        .iter()
        .map(|c| c["product"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        calls,
        ["prod-b", "prod-c", "prod-a"],
        "earliest deadline first"
    );
    assert!(peer_records(&peer).iter().all(|r| r.0 != "prod-d"));

    let expired = l.rows(&[ids[3]]).unwrap().remove(0);
    assert_eq!(expired.status, Status::Expired);
    assert_eq!(expired.answer.as_deref(), Some("metergate"));
    let reason = expired.reason.unwrap();
    assert!(reason.contains("aws.lookback"), "{reason}");
    assert_eq!(expired.attempts, 0, "never claimed");
    for id in &ids[..3] {
        assert_eq!(status_of(&l, *id), Status::Accepted);
    }
    // The report: four rows final, three calls, one expired.
    let mut finished: Vec<i64> = report.finished.iter().map(|r| r.id).collect();
    finished.sort();
    assert_eq!(finished, ids);
    assert_eq!(report.expired().count(), 1);
    let aws = &report.markets[&Marketplace::Aws];
    assert_eq!(aws.calls, 3);
    assert_eq!(aws.errors, 0);
    assert_eq!(aws.stats.expired, 1);
    assert!(report.last_success.is_some());

    // A second tick has nothing to do.
    let again = s.tick(&mut l, &v, Utc::now()).unwrap();
    assert!(again.finished.is_empty());
    assert_eq!(peer.calls().len(), 3);
}

#[test]
fn a_deadline_passing_during_the_tick_is_never_sent_late_and_a_sending_row_fails() {
    let Some(peer) = Peer::start(&["--subscribe", "prod-a:c1"]) else {
        return;
    };
    let v = validator(&[("prod-a", "c1", &["calls", "storage"], json!({}))]);
    let mut l = Ledger::open(&peer.dir.path().join("l.sqlite")).unwrap();
    let t = hours_ago(3);
    let ids = enqueue(
        &mut l,
        &v,
        &[
            record("prod-a", "c1", "calls", 5, t),
            record("prod-a", "c1", "storage", 6, t),
        ],
    );
    // The second row was handed to the marketplace before a crash.
    l.claim(&ids[1..]).unwrap();
    // "Now" is a microsecond before their deadline (6 h after `t`, exclusive): the tick's
    // first look lets the pending row through, but by the time the call would go out the
    // deadline has passed.
    let now = t + Duration::hours(6) - Duration::microseconds(1);
    let mut s = scheduler(&peer, HourlyConfig::default(), no_beats());
    let report = s.tick(&mut l, &v, now).unwrap();
    assert!(peer.calls().is_empty(), "nothing reaches the peer");
    assert_eq!(status_of(&l, ids[0]), Status::Expired);
    assert_eq!(status_of(&l, ids[1]), Status::Failed, "it may have landed");
    assert_eq!(report.finished.len(), 2);

    // Past the deadline at the start of the tick: the same ends.
    let ids2 = enqueue(
        &mut l,
        &v,
        &[record("prod-a", "c1", "calls", 7, hours_ago(2))],
    );
    l.claim(&ids2).unwrap();
    let report = s
        .tick(&mut l, &v, hours_ago(2) + Duration::hours(7))
        .unwrap();
    assert_eq!(status_of(&l, ids2[0]), Status::Failed);
    assert_eq!(report.markets[&Marketplace::Aws].calls, 0);
    assert!(peer.calls().is_empty());
}

#[test]
fn heartbeats_wait_for_the_hour_plus_the_grace_and_block_later_usage() {
    let Some(peer) = Peer::start(&["--subscribe", "prod-a:c1,c2"]) else {
        return;
    };
    let v = validator(&[
        ("prod-a", "c1", &["calls", "storage"], json!({})),
        ("prod-a", "c2", &["calls"], json!({})),
    ]);
    let mut l = Ledger::open(&peer.dir.path().join("l.sqlite")).unwrap();
    let hour = hours_ago(2);
    // c1 has usage for `calls` in that hour: only `storage` and c2's `calls` get heartbeats.
    enqueue(
        &mut l,
        &v,
        &[record(
            "prod-a",
            "c1",
            "calls",
            9,
            hour + Duration::minutes(20),
        )],
    );
    let mut s = scheduler(&peer, HourlyConfig::default(), HeartbeatConfig::default());
    let end = hour + Duration::hours(1);

    // 14 minutes after the hour: none yet (the grace is 15 minutes). The hour before became
    // due before the agent started: it gets none either (usage for it may still come).
    let r = s.tick(&mut l, &v, end + Duration::minutes(14)).unwrap();
    assert_eq!(r.heartbeats, 0);
    assert!(r.heartbeat_hours.is_empty());
    assert!(peer_records(&peer).iter().all(|x| x.4 != 0));

    // 15 minutes after: two heartbeats for the hour, written and sent.
    let r = s.tick(&mut l, &v, end + Duration::minutes(15)).unwrap();
    assert_eq!(r.heartbeats, 2, "{r:?}");
    assert_eq!(r.heartbeat_hours, [rfc(hour)]);
    assert_eq!(r.written.len(), 2);
    let mut beats: Vec<(String, String, i64)> = peer_records(&peer)
        .into_iter()
        .filter(|x| x.4 == 0 && x.3 == hour.timestamp())
        .map(|x| (x.1, x.2, x.3))
        .collect();
    beats.sort();
    assert_eq!(
        beats,
        [
            ("c1".to_owned(), "storage".to_owned(), hour.timestamp()),
            ("c2".to_owned(), "calls".to_owned(), hour.timestamp()),
        ]
    );
    for w in &r.written {
        assert_eq!(status_of(&l, w.id), Status::Accepted);
    }

    // Ticks later write none again for that hour.
    let r2 = s.tick(&mut l, &v, end + Duration::minutes(40)).unwrap();
    assert_eq!(r2.heartbeats, 0);
    assert_eq!(
        peer_records(&peer).iter().filter(|x| x.4 == 0).count(),
        2,
        "each hour's heartbeats are written once"
    );

    // Usage arriving later for that hour: the intake's session knows the heartbeat rows
    // (from `written`), and the core says duplicate-request.
    let mut session = v.session(end + Duration::minutes(50));
    for w in &r.written {
        assert_eq!(w.quantity, Decimal::ZERO);
        assert!(session.add_history(&w.history_entry()));
    }
    let late = record("prod-a", "c2", "calls", 4, hour + Duration::minutes(30));
    let verdict = session.check(hourly::raw_of(&late));
    let codes: Vec<&str> = verdict.findings.iter().map(|f| f.code.as_str()).collect();
    assert!(codes.contains(&"duplicate-request"), "{codes:?}");
    // And the same from the ledger's own history (a restarted agent).
    let mut fresh = v.session(end + Duration::minutes(50));
    for h in l.history().unwrap() {
        fresh.add_history(&h);
    }
    let codes: Vec<String> = fresh
        .check(hourly::raw_of(&late))
        .findings
        .iter()
        .map(|f| f.code.clone())
        .collect();
    assert!(codes.iter().any(|c| c == "duplicate-request"), "{codes:?}");

    // In hourly mode the intake stores the event into its hour's sum: the hour is taken by
    // the heartbeat, so nothing is stored and the answer is duplicate-request.
    let added = hourly::add_events(&mut l, std::slice::from_ref(&late)).unwrap();
    assert!(
        matches!(
            added[0],
            Added::Closed {
                heartbeat: true,
                record: Some(_),
                ..
            }
        ),
        "{added:?}"
    );
    let f = hourly::closed_finding(&late, &added[0]).unwrap();
    assert_eq!(f.code, "duplicate-request");
    assert_eq!(f.field.as_deref(), Some("start_time"));
    assert!(hourly::open_hours(&mut l).unwrap().is_empty());

    // A restarted agent gives none to hours that became due while it was down, unless
    // `catch_up` reaches them; `enabled = false` writes none.
    let two_later = end + Duration::hours(2) + Duration::minutes(20);
    let mut restarted = scheduler(&peer, HourlyConfig::default(), HeartbeatConfig::default());
    assert_eq!(restarted.tick(&mut l, &v, two_later).unwrap().heartbeats, 0);
    let mut catching = scheduler(
        &peer,
        HourlyConfig::default(),
        HeartbeatConfig {
            catch_up: Duration::hours(2),
            ..HeartbeatConfig::default()
        },
    );
    let r = catching.tick(&mut l, &v, two_later).unwrap();
    assert_eq!(
        r.heartbeat_hours,
        [
            rfc(hour + Duration::hours(1)),
            rfc(hour + Duration::hours(2))
        ]
    );
    let mut off = scheduler(&peer, HourlyConfig::default(), no_beats());
    let r3 = off
        .tick(&mut l, &v, end + Duration::hours(4) + Duration::minutes(20))
        .unwrap();
    assert_eq!(r3.heartbeats, 0);
}

fn hourly_all() -> HourlyConfig {
    HourlyConfig {
        all: true,
        ..HourlyConfig::default()
    }
}

/// Hours close as soon as they are over (the kill test runs at the real clock, at any
/// minute).
fn hourly_now() -> HourlyConfig {
    HourlyConfig {
        close_after: Duration::zero(),
        ..hourly_all()
    }
}

#[test]
fn a_closed_hour_is_sent_once_with_the_unit_rule_and_the_carry() {
    let Some(peer) = Peer::start(&["--subscribe", "prod-a:c1"]) else {
        return;
    };
    // Unit 10: whole tens are sent, the rest is carried into the key's next hour.
    let v = validator(&[("prod-a", "c1", &["gb"], json!({"unit": 10}))]);
    let mut l = Ledger::open(&peer.dir.path().join("l.sqlite")).unwrap();
    let h1 = hours_ago(2);
    let h2 = hours_ago(1);
    let added = hourly::add_events(
        &mut l,
        &[
            record("prod-a", "c1", "gb", 7, h1 + Duration::minutes(5)),
            record("prod-a", "c1", "gb", 8, h1 + Duration::minutes(40)),
            record("prod-a", "c1", "gb", 4, h2 + Duration::minutes(1)),
            record("prod-a", "c1", "gb", 3, h2 + Duration::minutes(2)),
        ],
    )
    .unwrap();
    assert!(added.iter().all(|a| matches!(a, Added::Open { .. })));
    // The intake judges events without dedup and without the quantity's form (the sum is
    // judged for those): a fraction of a unit is fine, a negative quantity or an unknown
    // dimension is not.
    let judge = |q: &str, dim: &str| {
        let mut raw = hourly::raw_of(&record("prod-a", "c1", dim, 1, h2 + Duration::minutes(3)));
        raw.set("quantity", metergate_core::Field::Number(q.into()));
        let (verdict, parsed) = hourly::judge_event(&v, raw, 0, h2 + Duration::minutes(4));
        let codes: Vec<String> = verdict.findings.iter().map(|f| f.code.clone()).collect();
        (verdict.accepted(), parsed.is_some(), codes)
    };
    assert_eq!(judge("2.5", "gb"), (true, true, vec![]));
    let (ok, _, codes) = judge("-1", "gb");
    assert!(
        !ok && codes.contains(&"invalid-quantity".to_owned()),
        "{codes:?}"
    );
    let (ok, parsed, codes) = judge("3", "nope");
    assert!(!ok && !parsed, "{codes:?}");
    assert!(l.unfinished().unwrap().is_empty(), "events are no rows");
    let mut s = scheduler(&peer, hourly_all(), no_beats());

    // h1 is over but not by five minutes: still open.
    let r = s.tick(&mut l, &v, h2 + Duration::minutes(4)).unwrap();
    assert!(r.hours_closed.is_empty());
    assert!(peer.calls().is_empty());

    // Both hours over: 15 → send 10, carry 5; then 7 + 5 = 12 → send 10, carry 2.
    let r = s
        .tick(&mut l, &v, h2 + Duration::hours(1) + Duration::minutes(5))
        .unwrap();
    let ends: Vec<&HourEnd> = r.hours_closed.iter().map(|h| &h.end).collect();
    assert_eq!(ends.len(), 2, "{ends:?}");
    match ends[0] {
        HourEnd::Queued {
            quantity, carried, ..
        } => assert_eq!((*quantity, *carried), (Decimal::from(10), Decimal::from(5))),
        other => panic!("{other:?}"),
    }
    match ends[1] {
        HourEnd::Queued {
            quantity, carried, ..
        } => assert_eq!((*quantity, *carried), (Decimal::from(10), Decimal::from(2))),
        other => panic!("{other:?}"),
    }
    let got = peer_records(&peer);
    let mut sent: Vec<(i64, i64)> = got.iter().map(|x| (x.3, x.4)).collect();
    sent.sort();
    // Each sum carries the latest start among its events (billable whenever every event was).
    assert_eq!(
        sent,
        [
            ((h1 + Duration::minutes(40)).timestamp(), 10),
            ((h2 + Duration::minutes(2)).timestamp(), 10),
        ]
    );
    assert!(got.iter().all(|x| x.5 == "Success"));
    assert_eq!(r.written.len(), 2);
    assert!(r.finished.iter().all(|x| x.status == Status::Accepted));

    // A late event for a closed hour is refused, and nothing is sent again.
    let late = hourly::add_events(
        &mut l,
        &[record("prod-a", "c1", "gb", 1, h1 + Duration::minutes(50))],
    )
    .unwrap();
    assert!(
        matches!(
            late[0],
            Added::Closed {
                record: Some(_),
                ..
            }
        ),
        "{late:?}"
    );
    let r = s
        .tick(&mut l, &v, h2 + Duration::hours(1) + Duration::minutes(30))
        .unwrap();
    assert!(r.hours_closed.is_empty());
    assert_eq!(peer.records().len(), 2);
}

#[test]
fn a_cancellation_sends_that_contracts_rows_and_open_hour_at_once() {
    let Some(peer) = Peer::start(&["--subscribe", "prod-a:c1,c2"]) else {
        return;
    };
    let v = validator(&[
        ("prod-a", "c1", &["calls"], json!({})),
        ("prod-a", "c2", &["calls"], json!({})),
    ]);
    let mut l = Ledger::open(&peer.dir.path().join("l.sqlite")).unwrap();
    let now = Utc::now();
    let ids = enqueue(
        &mut l,
        &v,
        &[
            record("prod-a", "c1", "calls", 3, hours_ago(2)),
            record("prod-a", "c2", "calls", 4, hours_ago(2)),
        ],
    );
    // c1's current hour is still open (events this hour, before the cancellation).
    let this_hour = record("prod-a", "c1", "calls", 6, now - Duration::seconds(30));
    hourly::add_events(&mut l, std::slice::from_ref(&this_hour)).unwrap();
    // Shutting down: nothing goes out, everything stays pending for the next start.
    let mut stopping = scheduler(&peer, HourlyConfig::default(), no_beats()).with_stop(|| true);
    let r = stopping.tick(&mut l, &v, now).unwrap();
    assert!(r.finished.is_empty());
    assert!(peer.calls().is_empty());
    assert_eq!(status_of(&l, ids[0]), Status::Pending);

    let mut s = scheduler(&peer, hourly_all(), no_beats());
    let r = s
        .send_contract_now(&mut l, &v, Marketplace::Aws, "prod-a", "c1", now)
        .unwrap();
    assert_eq!(r.hours_closed.len(), 1);
    assert_eq!(status_of(&l, ids[0]), Status::Accepted);
    assert_eq!(
        status_of(&l, ids[1]),
        Status::Pending,
        "another contract waits"
    );
    let got = peer_records(&peer);
    let mut c1: Vec<(i64, i64)> = got
        .iter()
        .filter(|x| x.1 == "c1")
        .map(|x| (x.3, x.4))
        .collect();
    c1.sort();
    assert_eq!(
        c1,
        [
            (hours_ago(2).timestamp(), 3),
            (this_hour.start_time.timestamp(), 6)
        ]
    );
    assert!(got.iter().all(|x| x.1 != "c2"));
    assert_eq!(r.finished.len(), 2);
}

fn tick_until_done(
    s: &mut Scheduler,
    l: &mut Ledger,
    v: &Validator,
    now: DateTime<Utc>,
) -> Vec<TickReport> {
    let mut out = Vec::new();
    for _ in 0..5 {
        let r = s.tick(l, v, now).unwrap();
        out.push(r);
        if l.unfinished().unwrap().is_empty() {
            break;
        }
    }
    out
}

/// Run by `kill_9_during_a_tick_then_a_new_tick_sends_each_row_exactly_once` in a child
/// process: ticks over the ledger named in the environment until killed.
#[test]
fn child_tick_process() {
    let (Ok(ledger), Ok(url)) = (
        std::env::var("METERGATE_TEST_CHILD_LEDGER"),
        std::env::var("METERGATE_TEST_CHILD_PEER"),
    ) else {
        return;
    };
    let contracts = std::env::var("METERGATE_TEST_CHILD_CONTRACTS").unwrap();
    let v = Validator::new(
        ContractSet::from_json(&contracts).unwrap(),
        Settings::default(),
        &[],
    )
    .unwrap();
    aws_env();
    let mut s = Scheduler::new(SchedulerConfig {
        hourly: hourly_now(),
        heartbeat: no_beats(),
        send: SendOptions {
            aws: AwsOptions {
                endpoint_url: Some(url),
                region: Some("us-east-1".into()),
                profile: None,
                verbose: false,
            },
            ..SendOptions::default()
        },
        policy: RetryPolicy::default(),
    });
    let mut l = Ledger::open(std::path::Path::new(&ledger)).unwrap();
    let now = Utc::now();
    tick_until_done(&mut s, &mut l, &v, now);
}

#[test]
fn kill_9_during_a_tick_then_a_new_tick_sends_each_row_exactly_once() {
    if moto_path().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let products = 4;
    let customers = 10;
    let data = generate(dir.path(), products, customers, 2, 3);
    // Throttling and unprocessed records make the tick long and leave rows in `sending`.
    let Some(peer) = Peer::start(&[
        "--subscribe-file",
        data.subs.to_str().unwrap(),
        "--throttle",
        "0.2",
        "--unprocessed",
        "0.1",
        "--seed",
        "7",
    ]) else {
        return;
    };
    let contracts_text = std::fs::read_to_string(&data.contracts).unwrap();
    let v = Validator::new(
        ContractSet::from_json(&contracts_text).unwrap(),
        Settings::default(),
        &[],
    )
    .unwrap();
    let ledger = peer.dir.path().join("l.sqlite");
    let mut l = Ledger::open(&ledger).unwrap();
    // Half the keys as ready rows, half as hourly events (two events per hour each).
    let mut rows = Vec::new();
    let mut events = Vec::new();
    for (i, (p, c, d, t, q)) in data.expected.iter().enumerate() {
        let r = record(p, c, d, *q, *t);
        if i % 2 == 0 {
            rows.push(r);
        } else {
            let mut a = r.clone();
            a.quantity = Decimal::from(q / 2);
            let mut b = r;
            b.quantity = Decimal::from(q - q / 2);
            b.start_time = a.start_time + Duration::seconds(30);
            events.push(a);
            events.push(b);
        }
    }
    enqueue(&mut l, &v, &rows);
    hourly::add_events(&mut l, &events).unwrap();
    drop(l);
    // The hourly sums carry the later event's time.
    let expected: Vec<(String, String, String, DateTime<Utc>, i64)> = data.expected.clone();

    let exe = std::env::current_exe().unwrap();
    // Kill the first child while it closes hours, the next ones once the peer has seen
    // a few more calls (mid-send: rows in `sending`, calls retried or half answered).
    let mut kills = Vec::new();
    for calls_before_kill in [0usize, 3, 9] {
        let seen = peer.calls().len();
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "child_tick_process",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("METERGATE_TEST_CHILD_LEDGER", &ledger)
            .env("METERGATE_TEST_CHILD_PEER", peer.url())
            .env("METERGATE_TEST_CHILD_CONTRACTS", &contracts_text)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            let done = if calls_before_kill == 0 {
                start.elapsed() >= std::time::Duration::from_millis(150)
            } else {
                peer.calls().len() >= seen + calls_before_kill
            };
            if done || start.elapsed() > std::time::Duration::from_secs(120) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        // SIGKILL.
        let _ = child.kill();
        let _ = child.wait();
        kills.push((ledger_counts(&ledger), peer.calls().len()));
    }
    eprintln!("after each kill (ledger, calls at the peer): {kills:?}");
    let (last, calls) = &kills[kills.len() - 1];
    assert!(
        *calls >= 12,
        "the children sent before they were killed: {kills:?}"
    );
    assert!(
        last["pending"] + last["sending"] > 0,
        "killed mid-work: {kills:?}"
    );

    // A new scheduler finishes the work.
    let mut l = Ledger::open(&ledger).unwrap();
    let mut s = scheduler(&peer, hourly_now(), no_beats());
    tick_until_done(&mut s, &mut l, &v, Utc::now());
    let counts = ledger_counts(&ledger);
    assert_eq!(counts["pending"] + counts["sending"], 0, "{counts:?}");
    let open = hourly::open_hours(&mut l).unwrap();
    assert!(open.is_empty(), "{open:?}");

    let c = count(&peer, &expected);
    assert_eq!(c.lost, 0, "{c:?}");
    assert_eq!(c.conflicting, 0, "{c:?}");
    assert_eq!(c.unexpected, 0, "{c:?}");
    assert_eq!(c.billed, expected.len(), "{c:?}");
    // Every ledger row for a key: exactly one (no hour closed twice).
    assert_eq!(
        l.list(&Default::default()).unwrap().len(),
        expected.len(),
        "one row per key"
    );
}
