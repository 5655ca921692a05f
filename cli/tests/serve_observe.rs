//! The agent's observability without a server: metrics rendered from a ledger we fill,
//! alerts POSTed to a real loopback HTTP listener that records what it received, and the
//! status page's row queries (filters, search, pagination, totals).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use metergate::agent::alerts::{Alerter, AlertsConfig};
use metergate::agent::metrics::{render, Counters, LedgerGauges, RefusedSum, Tick};
use metergate::agent::status::{self, Params};
use metergate::ledger::{Ledger, NewRow, Outcome, Status};
use metergate_core::time::parse_rfc3339;
use metergate_core::{ContractSet, Marketplace, Settings, UsageRecord};
use rust_decimal::Decimal;
use serde_json::{json, Value};

fn t(s: &str) -> DateTime<Utc> {
    parse_rfc3339(s).unwrap()
}

fn rec(m: Marketplace, product: &str, customer: &str, dim: &str, at: &str, q: &str) -> NewRow {
    NewRow {
        record: UsageRecord {
            marketplace: m,
            product: product.into(),
            customer: customer.into(),
            dimension: dim.into(),
            quantity: Decimal::from_str(q).unwrap(),
            start_time: t(at),
            end_time: None,
            record_id: None,
            plan: None,
            allocations: None,
            attributes: Default::default(),
        },
        source: Some("test".into()),
        wire: json!({"identity": "arn:aws:license-manager::123456789012:license:l-secret"}),
    }
}

fn ids(e: &[metergate::ledger::Enqueued]) -> Vec<i64> {
    e.iter()
        .map(|x| match x {
            metergate::ledger::Enqueued::New(i) => *i,
            other => panic!("{other:?}"),
        })
        .collect()
}

fn end(ledger: &mut Ledger, id: i64, status: Status, answer: &str, reason: &str) {
    ledger.claim(&[id]).unwrap();
    ledger
        .finish(&[(
            id,
            Outcome {
                status,
                answer: Some(answer.into()),
                reason: Some(reason.into()),
                marketplace_record_id: None,
            },
        )])
        .unwrap();
}

const CONTRACTS: &str = r#"[
 {"marketplace":"aws","product":"prod-a","customer":"Acme Secret Corp","status":"active",
  "starts_at":"2026-01-01T00:00:00Z","customer_identifier":"c1","dimensions":[{"name":"api_calls"}]},
 {"marketplace":"aws","product":"prod-a","customer":"quiet-co","status":"active",
  "starts_at":"2026-01-01T00:00:00Z","customer_identifier":"c2","dimensions":[{"name":"api_calls"}]},
 {"marketplace":"aws","product":"prod-a","customer":"gone-co","status":"cancelled",
  "starts_at":"2026-01-01T00:00:00Z","cancelled_at":"2026-03-01T09:30:00Z","customer_identifier":"c3",
  "dimensions":[{"name":"api_calls"}]},
 {"marketplace":"azure","product":"offer-b","customer":"<script>alert(1)</script>","status":"active",
  "starts_at":"2026-01-01T00:00:00Z","resource_id":"6f7e3a52-1c0d-4f7a-9e49-2b8f3c1d0a11",
  "plan":"basic","dimensions":[{"name":"gb"}],"properties":{"region":"eu-west","tier":"gold"}}
]"#;

/// A ledger with rows in every view: returns it with the rows by name.
fn filled(dir: &tempfile::TempDir) -> (Ledger, BTreeMap<&'static str, i64>) {
    let mut l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
    let e = l
        .enqueue(&[
            rec(
                Marketplace::Aws,
                "prod-a",
                "Acme Secret Corp",
                "api_calls",
                "2026-03-01T08:00:00Z",
                "10",
            ),
            rec(
                Marketplace::Aws,
                "prod-a",
                "Acme Secret Corp",
                "api_calls",
                "2026-03-01T09:00:00Z",
                "11",
            ),
            rec(
                Marketplace::Aws,
                "prod-a",
                "Acme Secret Corp",
                "api_calls",
                "2026-03-01T10:00:00Z",
                "12",
            ),
            rec(
                Marketplace::Aws,
                "prod-a",
                "gone-co",
                "api_calls",
                "2026-03-01T09:00:00Z",
                "5",
            ),
            rec(
                Marketplace::Azure,
                "offer-b",
                "<script>alert(1)</script>",
                "gb",
                "2026-03-01T07:00:00Z",
                "3",
            ),
            rec(
                Marketplace::Azure,
                "offer-b",
                "<script>alert(1)</script>",
                "gb",
                "2026-03-01T08:00:00Z",
                "4",
            ),
        ])
        .unwrap();
    let id = ids(&e);
    end(&mut l, id[0], Status::Accepted, "Success", "ok");
    end(
        &mut l,
        id[1],
        Status::Rejected,
        "CustomerNotSubscribed",
        "Acme Secret Corp is not subscribed (100%_match)",
    );
    end(
        &mut l,
        id[4],
        Status::Failed,
        "ThrottlingException",
        "no definite answer after 8 calls",
    );
    l.claim(&[id[5]]).unwrap();
    let names = BTreeMap::from([
        ("accepted", id[0]),
        ("rejected", id[1]),
        ("pending_acme", id[2]),
        ("pending_gone", id[3]),
        ("failed", id[4]),
        ("sending", id[5]),
    ]);
    (l, names)
}

#[test]
fn metrics_render_from_the_ledger_without_customer_names() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, names) = filled(&dir);
    let contracts = ContractSet::from_json(CONTRACTS).unwrap();
    let now = t("2026-03-01T10:10:00Z");

    let counters = Counters::new();
    let finished = ledger
        .rows(&[names["accepted"], names["rejected"]])
        .unwrap();
    let mut tick = Tick::new(&finished, now);
    tick.calls = BTreeMap::from([(Marketplace::Aws, 3u64)]);
    tick.errors = BTreeMap::from([(Marketplace::Aws, 1u64)]);
    counters.observe(&tick);
    let gauges = LedgerGauges::read(&ledger, &contracts, &Settings::default(), now).unwrap();
    let text = render(&counters, &gauges);

    let has = |line: &str| {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        )
    };
    has("metergate_send_calls_total{marketplace=\"aws\"} 3");
    has("metergate_send_errors_total{marketplace=\"aws\"} 1");
    has("metergate_records_finished_total{marketplace=\"aws\",status=\"accepted\"} 1");
    has("metergate_records_finished_total{marketplace=\"aws\",status=\"rejected\"} 1");
    has("metergate_ledger_records{marketplace=\"aws\",status=\"pending\"} 2");
    has("metergate_ledger_records{marketplace=\"azure\",status=\"sending\"} 1");
    has("metergate_ledger_unsuccessful_records{marketplace=\"aws\",status=\"rejected\",answer=\"CustomerNotSubscribed\"} 1");
    has("metergate_ledger_unsuccessful_records{marketplace=\"azure\",status=\"failed\",answer=\"ThrottlingException\"} 1");
    has("metergate_pending_records{marketplace=\"aws\"} 2");
    has("metergate_pending_records{marketplace=\"azure\"} 1");
    // gone-co was cancelled at 09:30: AWS takes its usage for one hour after, to 10:30.
    has("metergate_next_deadline_seconds{marketplace=\"aws\"} 1200");
    // Azure's look-back is 24 h from 08:00.
    has(&format!(
        "metergate_next_deadline_seconds{{marketplace=\"azure\"}} {}",
        (t("2026-03-02T08:00:00Z") - now).num_seconds()
    ));
    assert!(text.contains("metergate_oldest_pending_age_seconds{marketplace=\"aws\"}"));
    let last = text
        .lines()
        .find(|l| {
            l.starts_with("metergate_last_successful_send_timestamp_seconds{marketplace=\"aws\"}")
        })
        .unwrap();
    assert!(last.ends_with(|c: char| c.is_ascii_digit()), "{last}");
    assert!(text.contains("# TYPE metergate_pending_records gauge"));

    for secret in [
        "Acme",
        "gone-co",
        "script",
        "prod-a",
        "offer-b",
        "api_calls",
        "l-secret",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into /metrics:\n{text}"
        );
    }
}

#[test]
fn intake_verdicts_are_counted_by_finding_code() {
    let counters = Counters::new();
    let validator = metergate_core::Validator::new(
        ContractSet::from_json(CONTRACTS).unwrap(),
        Settings::default(),
        &[],
    )
    .unwrap();
    let raw = r#"[{"marketplace":"aws","product":"prod-a","customer":"nobody-Secret","dimension":"api_calls","quantity":1,"start_time":"2026-03-01T10:00:00Z"}]"#;
    let report = validator_report(&validator, raw, t("2026-03-01T10:05:00Z"));
    counters.observe_verdicts(&report);
    let text = render(&counters, &LedgerGauges::default());
    assert!(
        text.contains("metergate_intake_records_total{verdict=\"rejected\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "metergate_intake_findings_total{code=\"customer-not-entitled\",severity=\"error\"} 1"
        ),
        "{text}"
    );
    assert!(!text.contains("nobody"));
}

fn validator_report(
    v: &metergate_core::Validator,
    json_text: &str,
    now: DateTime<Utc>,
) -> Vec<metergate_core::Verdict> {
    let raws: Vec<metergate_core::RawRecord> = serde_json::from_str(json_text).unwrap();
    v.validate(raws, &[], now).verdicts
}

/// A loopback HTTP server that answers each POST with the next status in `answers` (then
/// 200) and records every body.
struct Hook {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

fn hook(answers: Vec<u16>) -> Hook {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/services/T000/B000/SECRETTOKEN",
        listener.local_addr().unwrap()
    );
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&bodies);
    std::thread::spawn(move || {
        let mut answers = answers.into_iter();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            seen.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap());
            let code = answers.next().unwrap_or(200);
            let _ = write!(
                conn,
                "HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            );
        }
    });
    Hook { url, bodies }
}

fn alerter(url: &str, silent_after: &str) -> Alerter {
    let mut cfg = AlertsConfig::from_config(&json!({"alerts": {
        "webhook": url, "silent_after": silent_after, "attempts": 3}}))
    .unwrap();
    cfg.backoff = Duration::from_millis(20);
    Alerter::start(cfg).unwrap()
}

fn all_text(v: &Value) -> String {
    v.to_string()
}

#[test]
fn one_tick_gives_one_coalesced_alert_after_retries() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
    // 30 rejected rows, 1 failed, 1 accepted in one tick.
    let rows: Vec<NewRow> = (0..32)
        .map(|i| {
            rec(
                Marketplace::Aws,
                "prod-a",
                &format!("cust-{i}"),
                "api_calls",
                "2026-03-01T10:00:00Z",
                "1",
            )
        })
        .collect();
    let id = ids(&l.enqueue(&rows).unwrap());
    for (n, i) in id.iter().enumerate() {
        match n {
            0 => end(&mut l, *i, Status::Accepted, "Success", "ok"),
            1 => end(
                &mut l,
                *i,
                Status::Failed,
                "ThrottlingException",
                "no definite answer after 8 calls",
            ),
            _ => end(
                &mut l,
                *i,
                Status::Rejected,
                "CustomerNotSubscribed",
                "<!channel> not subscribed & gone",
            ),
        }
    }
    let finished = l.rows(&id).unwrap();

    // The hook fails twice with 503, then takes the message.
    let h = hook(vec![503, 503]);
    let a = alerter(&h.url, "6h");
    let mut tick = Tick::new(&finished, t("2026-03-01T10:05:00Z"));
    tick.refused_sums = vec![RefusedSum {
        marketplace: Marketplace::Azure,
        product: "offer-b".into(),
        customer: "cust-z".into(),
        dimension: "gb".into(),
        hour: t("2026-03-01T09:00:00Z"),
        codes: vec!["invalid-quantity".into()],
        reason: "the sum is not a whole number of units".into(),
    }];
    a.on_tick(&tick);
    // A tick where everything went through alerts nobody.
    a.on_tick(&Tick::new(&finished[..1], t("2026-03-01T10:06:00Z")));
    assert!(a.flush(Duration::from_secs(10)));
    let s = a.stats();
    assert_eq!(
        (s.queued, s.delivered, s.failed, s.posts),
        (1, 1, 0, 3),
        "{s:?}"
    );
    let bodies = h.bodies.lock().unwrap().clone();
    assert_eq!(
        bodies.len(),
        3,
        "the same message three times (two retries)"
    );
    assert!(bodies.iter().all(|b| *b == bodies[0]));
    let msg = &bodies[0];
    let text = msg["text"].as_str().unwrap();
    assert!(text.contains("30 records rejected"), "{text}");
    assert!(text.contains("1 record still failing"), "{text}");
    assert!(text.contains("1 hourly sum refused"), "{text}");
    let blocks = msg["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    let sections: Vec<&str> = blocks
        .iter()
        .filter(|b| b["type"] == "section")
        .map(|b| b["text"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(sections.len(), 3);
    assert!(sections[2].contains("invalid-quantity") && sections[2].contains("cust-z"));
    assert!(sections[0].contains("…and 15 more"), "{}", sections[0]);
    assert!(sections[0].contains("CustomerNotSubscribed"));
    // Seller text cannot ping a channel or break out of the formatting.
    assert!(sections[0].contains("&lt;!channel&gt;"), "{}", sections[0]);
    assert!(!all_text(msg).contains("<!channel>"));
    // No secrets: neither the webhook's path nor the wire identity.
    assert!(!all_text(msg).contains("SECRETTOKEN"));
    assert!(!all_text(msg).contains("l-secret"));
}

#[test]
fn a_webhook_that_keeps_refusing_is_given_up_and_4xx_is_not_retried() {
    let h = hook(vec![500, 500, 500, 400]);
    let a = alerter(&h.url, "6h");
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
    let id = ids(&l
        .enqueue(&[rec(
            Marketplace::Aws,
            "p",
            "c",
            "d",
            "2026-03-01T10:00:00Z",
            "1",
        )])
        .unwrap());
    end(
        &mut l,
        id[0],
        Status::Rejected,
        "InvalidUsageDimension",
        "no",
    );
    let finished = l.rows(&id).unwrap();
    let tick = Tick::new(&finished, t("2026-03-01T10:05:00Z"));
    a.on_tick(&tick);
    assert!(a.flush(Duration::from_secs(10)));
    a.on_tick(&tick);
    assert!(a.flush(Duration::from_secs(10)));
    let s = a.stats();
    // 3 POSTs for the first (all 500), 1 for the second (400: not retried).
    assert_eq!(
        (s.queued, s.delivered, s.failed, s.posts),
        (2, 0, 2, 4),
        "{s:?}"
    );
    assert_eq!(h.bodies.lock().unwrap().len(), 4);
}

#[test]
fn silent_contracts_are_named_once_until_usage_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
    let contracts = ContractSet::from_json(CONTRACTS).unwrap();
    // Acme used at 08:00 (and a zero heartbeat at 12:00, which is not usage); the Azure
    // customer at 13:00; quiet-co never; gone-co is cancelled (never silent).
    l.enqueue(&[
        rec(
            Marketplace::Aws,
            "prod-a",
            "Acme Secret Corp",
            "api_calls",
            "2026-03-01T08:00:00Z",
            "3",
        ),
        rec(
            Marketplace::Aws,
            "prod-a",
            "Acme Secret Corp",
            "api_calls",
            "2026-03-01T12:00:00Z",
            "0",
        ),
        rec(
            Marketplace::Azure,
            "offer-b",
            "<script>alert(1)</script>",
            "gb",
            "2026-03-01T13:00:00Z",
            "1",
        ),
    ])
    .unwrap();
    let h = hook(vec![]);
    let a = alerter(&h.url, "6h");
    let now = t("2026-03-01T15:00:00Z");
    // Acme: 7 h without usage; quiet-co: since January; Azure: 2 h (fine).
    assert_eq!(a.check_silent(&l, &contracts, now).unwrap(), 2);
    // Named already: not again.
    assert_eq!(
        a.check_silent(&l, &contracts, t("2026-03-01T16:00:00Z"))
            .unwrap(),
        0
    );
    // Acme's usage resumes, then stops again: named again once its silence is long enough.
    l.enqueue(&[rec(
        Marketplace::Aws,
        "prod-a",
        "Acme Secret Corp",
        "api_calls",
        "2026-03-01T16:00:00Z",
        "1",
    )])
    .unwrap();
    assert_eq!(
        a.check_silent(&l, &contracts, t("2026-03-01T17:00:00Z"))
            .unwrap(),
        0
    );
    // 22:30: Acme silent since 16:00, the Azure customer since 13:00; quiet-co still named.
    assert_eq!(
        a.check_silent(&l, &contracts, t("2026-03-01T22:30:00Z"))
            .unwrap(),
        2
    );
    assert!(a.flush(Duration::from_secs(10)));
    let bodies = h.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2);
    let first = bodies[0]["blocks"].to_string();
    assert!(bodies[0]["text"]
        .as_str()
        .unwrap()
        .contains("2 active contracts"));
    assert!(
        first.contains("Acme Secret Corp") && first.contains("quiet-co"),
        "{first}"
    );
    assert!(first.contains("last usage 2026-03-01T08:00:00Z"), "{first}");
    assert!(!first.contains("gone-co") && !first.contains("script"));
    let second = bodies[1]["blocks"].to_string();
    assert!(
        second.contains("Acme Secret Corp") && !second.contains("quiet-co"),
        "{second}"
    );
    // Seller input is escaped for Slack.
    assert!(
        second.contains("&lt;script&gt;") && !second.contains("<script>"),
        "{second}"
    );
}

#[test]
fn no_webhook_means_no_alerter_work() {
    let a = Alerter::start(AlertsConfig::from_config(&json!({})).unwrap()).unwrap();
    assert!(!a.enabled());
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
    let contracts = ContractSet::from_json(CONTRACTS).unwrap();
    assert_eq!(
        a.check_silent(&l, &contracts, t("2026-03-05T00:00:00Z"))
            .unwrap(),
        0
    );
}

fn params(pairs: &[(&str, &str)]) -> Params {
    let v: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
        .collect();
    serde_json::from_value(Value::Object(v)).unwrap()
}

fn customers(v: &Value) -> Vec<String> {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["customer"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn status_rows_filter_search_and_paginate() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, names) = filled(&dir);
    let contracts = ContractSet::from_json(CONTRACTS).unwrap();
    let s = Settings::default();
    let now = t("2026-03-01T10:10:00Z");
    let rows = |p: &[(&str, &str)]| {
        status::rows(&ledger, &contracts, &s, &params(p), now)
            .unwrap()
            .unwrap()
    };

    let all = rows(&[]);
    assert_eq!(all["total"], 6);
    let got: Vec<i64> = all["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    let mut want: Vec<i64> = names.values().copied().collect();
    want.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(got, want, "newest first");
    assert!(
        all["rows"][0].get("wire").is_none(),
        "wire identities stay out"
    );

    let p = rows(&[("status", "pending")]);
    assert_eq!(p["total"], 3, "pending and sending");
    let r = rows(&[("status", "rejected")]);
    assert_eq!(customers(&r), ["Acme Secret Corp"]);
    assert_eq!(r["rows"][0]["answer"], "CustomerNotSubscribed");
    assert_eq!(r["rows"][0]["view"], "rejected");
    assert_eq!(rows(&[("status", "sent")])["total"], 1);
    assert_eq!(rows(&[("status", "failed")])["total"], 1);
    assert_eq!(rows(&[("status", "expired")])["total"], 0);
    assert_eq!(rows(&[("marketplace", "azure")])["total"], 2);
    assert_eq!(
        rows(&[("product", "prod-a"), ("customer", "gone-co")])["total"],
        1
    );
    assert_eq!(
        rows(&[
            ("since", "2026-03-01T09:00:00Z"),
            ("until", "2026-03-01T10:00:00Z")
        ])["total"],
        2
    );

    // Search: case-insensitive substring; LIKE wildcards in the query are literal.
    assert_eq!(rows(&[("q", "acme")])["total"], 3);
    assert_eq!(rows(&[("q", "throttling")])["total"], 1);
    assert_eq!(rows(&[("q", "100%_match")])["total"], 1);
    assert_eq!(rows(&[("q", "%")])["total"], 1);
    assert_eq!(rows(&[("q", "_match")])["total"], 1);
    assert_eq!(
        rows(&[("q", "_")])["total"],
        4,
        "api_calls holds an underscore"
    );

    // Pages.
    let p1 = rows(&[("limit", "4")]);
    let p2 = rows(&[("limit", "4"), ("offset", "4")]);
    assert_eq!(
        (
            p1["rows"].as_array().unwrap().len(),
            p2["rows"].as_array().unwrap().len()
        ),
        (4, 2)
    );
    assert_eq!(p2["total"], 6);

    // A pending row shows its deadline: gone-co's closes an hour after its cancellation.
    let gone = rows(&[("customer", "gone-co")]);
    assert_eq!(gone["rows"][0]["deadline"]["rule"], "aws.post_cancel");
    assert_eq!(gone["rows"][0]["deadline"]["at"], "2026-03-01T10:30:00Z");
    assert_eq!(
        rows(&[("status", "sent")])["rows"][0]["deadline"],
        Value::Null
    );

    // Bad parameters name the parameter.
    for (k, v) in [
        ("marketplace", "ebay"),
        ("status", "accepted"),
        ("limit", "0"),
        ("limit", "501"),
        ("offset", "-1"),
        ("since", "yesterday"),
    ] {
        let e = status::rows(&ledger, &contracts, &s, &params(&[(k, v)]), now)
            .unwrap()
            .unwrap_err();
        assert_eq!(e.param, k);
    }
}

#[test]
fn status_summary_groups_per_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = filled(&dir);
    let contracts = ContractSet::from_json(CONTRACTS).unwrap();
    let now = t("2026-03-01T10:10:00Z");
    let v = status::summary(&ledger, &contracts, &params(&[]), now)
        .unwrap()
        .unwrap();
    assert_eq!(
        v["totals"],
        json!({"pending": 3, "sent": 1, "rejected": 1, "failed": 1, "expired": 0})
    );
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    let acme = groups
        .iter()
        .find(|g| g["customer"] == "Acme Secret Corp")
        .unwrap();
    assert_eq!(
        (
            acme["pending"].as_u64(),
            acme["sent"].as_u64(),
            acme["rejected"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(acme["last_usage"], "2026-03-01T10:00:00Z");
    assert_eq!(acme["contract"]["status"], "active");
    let az = groups.iter().find(|g| g["marketplace"] == "azure").unwrap();
    assert_eq!(az["contract"]["plan"], "basic");
    assert_eq!(
        az["contract"]["properties"],
        json!({"region": "eu-west", "tier": "gold"})
    );
    assert_eq!(
        (az["pending"].as_u64(), az["failed"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(v["truncated"], false);
    assert_eq!(v["products"].as_array().unwrap().len(), 2);
    // Filters apply to the summary too.
    let f = status::summary(&ledger, &contracts, &params(&[("status", "failed")]), now)
        .unwrap()
        .unwrap();
    assert_eq!(f["groups"].as_array().unwrap().len(), 1);
    assert_eq!(f["totals"]["failed"], 1);
    assert_eq!(f["totals"]["pending"], 0);
}

#[test]
fn the_page_writes_ledger_values_as_text_only() {
    let (ct, html) = status::asset("/").unwrap();
    assert!(ct.starts_with("text/html"));
    assert!(html.contains("/status/status.js"));
    assert!(
        !html.contains("<script>"),
        "no inline script (the CSP forbids it)"
    );
    let (_, js) = status::asset("/status/status.js").unwrap();
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!js.contains(sink), "status.js uses {sink}");
    }
    assert!(js.contains("sessionStorage"));
    assert!(status::asset("/status/base.css")
        .unwrap()
        .1
        .contains("--accent"));
    assert!(status::asset("/nope").is_none());
    let csp = status::PAGE_HEADERS
        .iter()
        .find(|(k, _)| *k == "content-security-policy")
        .unwrap()
        .1;
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
}
