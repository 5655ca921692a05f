//! AWS whole-call exceptions against the moto peer: `BatchMeterUsage` refuses a whole call
//! when one of its records is at fault (a stale contract let it through the core). The
//! submitter splits the call until the faulty records stand alone, rejects them with the
//! exception's name, and sends the others once each. Counted at the peer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "submit_support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use metergate::ledger::{Filter, Ledger, LedgerRow, Status};
use support::*;

type Expected = (String, String, String, DateTime<Utc>, i64);

fn submit(peer: &Peer, records: &Path, contracts: &Path, ledger: &Path) -> std::process::Output {
    peer.metergate()
        .arg("submit")
        .arg(records)
        .arg("--contracts")
        .arg(contracts)
        .arg("--ledger")
        .arg(ledger)
        .args(["--format", "json"])
        .output()
        .unwrap()
}

fn rows(ledger: &Path) -> Vec<LedgerRow> {
    Ledger::open_existing(ledger)
        .unwrap()
        .list(&Filter::default())
        .unwrap()
}

/// Received records per (product, identity, dimension, hour) at the peer.
fn received(peer: &Peer) -> BTreeMap<(String, String, String, i64), usize> {
    let mut out = BTreeMap::new();
    for r in peer.records() {
        let key = (
            r["product"].as_str().unwrap().to_owned(),
            r["identity"].as_str().unwrap().to_owned(),
            r["dimension"].as_str().unwrap().to_owned(),
            (r["timestamp"].as_f64().unwrap() / 3600.0).floor() as i64,
        );
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

fn key_of(e: &Expected) -> (String, String, String, i64) {
    (
        e.0.clone(),
        e.1.clone(),
        e.2.clone(),
        e.3.timestamp().div_euclid(3600),
    )
}

/// ⌈log2 n⌉.
fn log2_ceil(n: usize) -> u64 {
    (usize::BITS - (n.max(1) - 1).leading_zeros()) as u64
}

#[test]
fn faulty_records_are_found_by_splitting_and_the_others_go_through_once() {
    let dir = tempfile::tempdir().unwrap();
    // 1 product × 10 customers × 3 dimensions × 2 hours = 60 records: calls of 25, 25, 10.
    let data = generate(dir.path(), 1, 10, 3, 2);
    let subs = data.subs.to_str().unwrap().to_owned();
    let faults = [
        // A customer AWS no longer knows: 6 records.
        ("InvalidCustomerIdentifierException", "cust-0-4", None),
        // A dimension removed from the listing, for one customer: 2 records.
        ("InvalidUsageDimensionException", "cust-0-7", Some("dim_2")),
        // One customer's dimension is refused for its time: 2 records.
        ("TimestampOutOfBoundsException", "cust-0-1", Some("dim_0")),
    ];
    let mut args = vec!["--subscribe-file".to_owned(), subs];
    for (code, who, dim) in faults {
        args.push("--refuse".into());
        args.push(match dim {
            Some(d) => format!("{code}:identity={who},dimension={d}"),
            None => format!("{code}:identity={who}"),
        });
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Some(peer) = Peer::start(&args) else {
        return;
    };
    let ledger = dir.path().join("l.sqlite");
    let out = submit(&peer, &data.records, &data.contracts, &ledger);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");

    let fault_of = |e: &Expected| {
        faults.iter().find_map(|(code, who, dim)| {
            (e.1 == *who && dim.is_none_or(|d| e.2 == d)).then_some(*code)
        })
    };
    let faulty: Vec<&Expected> = data
        .expected
        .iter()
        .filter(|e| fault_of(e).is_some())
        .collect();
    assert_eq!(faulty.len(), 10);
    let good: Vec<&Expected> = data
        .expected
        .iter()
        .filter(|e| fault_of(e).is_none())
        .collect();

    // At the peer: every good record exactly once and billed; no faulty one ever reached moto.
    let got = received(&peer);
    for e in &good {
        assert_eq!(got.get(&key_of(e)), Some(&1), "{e:?}");
    }
    for e in &faulty {
        assert!(!got.contains_key(&key_of(e)), "{e:?}");
    }
    assert_eq!(got.values().sum::<usize>(), good.len(), "nothing doubled");
    let c = count(&peer, &data.expected);
    assert_eq!(c.billed, good.len());
    assert_eq!(c.lost, faulty.len(), "only the faulty records are unbilled");
    assert_eq!(c.conflicting, 0);
    assert_eq!(c.duplicate_answers, 0);

    // The ledger: faulty rows rejected with the exception's name, all others accepted.
    for r in rows(&ledger) {
        let e = data
            .expected
            .iter()
            .find(|e| {
                e.1 == r.customer
                    && e.2 == r.dimension
                    && e.3.timestamp().div_euclid(3600) == r.start_time.timestamp().div_euclid(3600)
            })
            .unwrap();
        match fault_of(e) {
            Some(code) => {
                assert_eq!(r.status, Status::Rejected, "{r:?}");
                assert_eq!(r.answer.as_deref(), Some(code), "{r:?}");
            }
            None => {
                assert_eq!(r.status, Status::Accepted, "{r:?}");
                assert_eq!(r.answer.as_deref(), Some("Success"));
            }
        }
    }

    // Calls: each refused call holds a faulty record; the split costs at most
    // 1 + 2·f·⌈log2 n⌉ calls per planned call of n records with f faulty ones.
    let calls = peer.calls();
    let refused = calls.iter().filter(|c| c["fault"].is_string()).count();
    let mut bound = 0;
    let mut planned = 0;
    for chunk in data.expected.chunks(25) {
        planned += 1;
        let f = chunk.iter().filter(|e| fault_of(e).is_some()).count() as u64;
        bound += 1 + 2 * f * log2_ceil(chunk.len());
    }
    println!(
        "split: {} records, {} faulty, {} calls ({refused} refused), planned {planned}, bound {bound}",
        data.expected.len(),
        faulty.len(),
        calls.len()
    );
    assert!(refused > 0);
    assert!(calls.len() as u64 <= bound, "{} > {bound}", calls.len());
    assert!(calls.iter().all(|c| c["records"].as_u64().unwrap() <= 25));
}

#[test]
fn a_product_wide_exception_rejects_the_call_without_splitting() {
    let dir = tempfile::tempdir().unwrap();
    // prod-0 and prod-1, 5 customers × 3 dimensions × 2 hours each: 30 records per product.
    let data = generate(dir.path(), 2, 5, 3, 2);
    let subs = data.subs.to_str().unwrap().to_owned();
    let Some(peer) = Peer::start(&[
        "--subscribe-file",
        &subs,
        "--refuse",
        "InvalidProductCodeException:product=prod-1",
    ]) else {
        return;
    };
    let ledger = dir.path().join("l.sqlite");
    let out = submit(&peer, &data.records, &data.contracts, &ledger);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = peer.calls();
    let refused: Vec<_> = calls
        .iter()
        .filter(|c| c["fault"] == "InvalidProductCodeException")
        .collect();
    // 30 records of prod-1: two planned calls (25 + 5), each refused once, never split.
    assert_eq!(refused.len(), 2, "{calls:?}");
    assert_eq!(calls.len(), 4, "{calls:?}");
    for r in rows(&ledger) {
        if r.product == "prod-1" {
            assert_eq!(r.status, Status::Rejected);
            assert_eq!(r.answer.as_deref(), Some("InvalidProductCodeException"));
            assert_eq!(r.attempts, 1);
        } else {
            assert_eq!(r.status, Status::Accepted);
        }
    }
    let c = count(&peer, &data.expected);
    assert_eq!(c.billed, 30);
    assert_eq!(c.received, 30);
}

#[test]
fn a_single_record_call_and_an_all_faulty_call_end_in_bounded_calls() {
    let dir = tempfile::tempdir().unwrap();
    // 1 product × 1 customer × 1 dimension × 1 hour: one record, one call.
    let one = generate(dir.path(), 1, 1, 1, 1);
    let subs = one.subs.to_str().unwrap().to_owned();
    let Some(peer) = Peer::start(&[
        "--subscribe-file",
        &subs,
        "--refuse",
        "InvalidUsageDimensionException:dimension=dim_0",
    ]) else {
        return;
    };
    let ledger = dir.path().join("one.sqlite");
    let out = submit(&peer, &one.records, &one.contracts, &ledger);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(peer.calls().len(), 1);
    assert!(peer.records().is_empty());
    let r = &rows(&ledger)[0];
    assert_eq!(r.status, Status::Rejected);
    assert_eq!(r.answer.as_deref(), Some("InvalidUsageDimensionException"));
    assert_eq!(r.attempts, 1);
    drop(peer);

    // Every record of a call at fault (all 3 dimensions of 4 customers in one hour = 12
    // records, one call): the split ends with each record alone, 2·12 − 1 = 23 calls.
    let dir = tempfile::tempdir().unwrap();
    let all = generate(dir.path(), 1, 4, 3, 1);
    let subs = all.subs.to_str().unwrap().to_owned();
    let Some(peer) = Peer::start(&[
        "--subscribe-file",
        &subs,
        "--refuse",
        "TimestampOutOfBoundsException:product=prod-0",
    ]) else {
        return;
    };
    let ledger = dir.path().join("all.sqlite");
    let out = submit(&peer, &all.records, &all.contracts, &ledger);
    assert_eq!(out.status.code(), Some(1));
    let n = all.expected.len();
    assert_eq!(n, 12);
    assert_eq!(peer.calls().len(), 2 * n - 1);
    assert!(peer.records().is_empty());
    let rs = rows(&ledger);
    assert_eq!(rs.len(), n);
    for r in rs {
        assert_eq!(r.status, Status::Rejected);
        assert_eq!(r.answer.as_deref(), Some("TimestampOutOfBoundsException"));
    }
}
