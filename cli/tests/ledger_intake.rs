//! The agent's intake writes on their own ([`metergate::ledger::intake`]): a group's rows, ids
//! and transitions in multi-row statements, insert-first on the unique keys. No peer needed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{Duration, Utc};
use metergate::ledger::intake::{Accepted, Claim, Stored};
use metergate::ledger::{Enqueued, Filter, Ledger, NewRow, Outcome, Status};
use metergate_core::time::hour_floor;
use metergate_core::{Marketplace, UsageRecord};

fn row(customer: &str, dim: &str, q: i64, hours_ago: i64) -> NewRow {
    let record = UsageRecord {
        marketplace: Marketplace::Aws,
        product: "prod-a".into(),
        customer: customer.into(),
        dimension: dim.into(),
        quantity: q.into(),
        start_time: hour_floor(Utc::now()) - Duration::hours(hours_ago),
        end_time: None,
        record_id: None,
        plan: None,
        allocations: None,
        attributes: Default::default(),
    };
    let wire = metergate::submit::wire_values(&record, None).unwrap();
    NewRow {
        record,
        source: Some("serve#1:1".into()),
        wire,
    }
}

fn accepted(row: Option<NewRow>, id: Option<&str>) -> Accepted {
    Accepted {
        row,
        record_id: id.map(str::to_owned),
        verdict: format!(
            "{{\"index\":0,\"record_id\":{id:?},\"verdict\":\"accepted\",\"findings\":[]}}"
        ),
    }
}

fn count(l: &Ledger) -> usize {
    l.list(&Filter::default()).unwrap().len()
}

/// Enough rows to use every statement size (64, 8 and 1), each with its id and transition.
#[test]
fn a_group_is_written_with_every_row_claim_and_transition() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
    let items: Vec<Accepted> = (0..150)
        .map(|i| {
            accepted(
                Some(row(&format!("c{i}"), "api_calls", i + 1, 2)),
                Some(&format!("r-{i}")),
            )
        })
        .chain([
            accepted(None, Some("repeat-1")),
            accepted(Some(row("x", "seats", 1, 3)), None),
        ])
        .collect();
    let tx = l.intake_tx().unwrap();
    let out = tx.store(&items).unwrap();
    tx.commit().unwrap();
    assert_eq!(out.len(), 152);
    let ids: Vec<i64> = out
        .iter()
        .filter_map(|s| match s {
            Stored::Kept(Some(Enqueued::New(id))) => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 151);
    assert_eq!(out[150], Stored::Kept(None), "an id with no row of its own");
    assert_eq!(count(&l), 151);
    // Each item got its own row, in the caller's order.
    let rows = l.rows(&ids).unwrap();
    for (i, r) in rows.iter().take(150).enumerate() {
        assert_eq!(r.customer, format!("c{i}"));
        assert_eq!(r.record_id, None);
        assert_eq!(r.status, Status::Pending);
        assert_eq!(l.transitions(r.id).unwrap().len(), 1);
    }
    // Every id is held: claiming any again finds it with its verdict.
    let tx = l.intake_tx().unwrap();
    for id in ["r-0", "r-63", "r-64", "r-149", "repeat-1"] {
        match tx.claim_record(id).unwrap() {
            Claim::Taken(v) => assert!(v.contains("accepted"), "{id}: {v}"),
            Claim::New => panic!("{id} was not kept"),
        }
    }
    assert_eq!(tx.claim_record("r-150").unwrap(), Claim::New);
}

/// An id already held (an earlier request, or another agent at the same moment) stores
/// nothing: the first verdict comes back and the row written for it is taken back.
#[test]
fn a_taken_id_stores_nothing_and_gives_the_first_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
    let tx = l.intake_tx().unwrap();
    tx.store(&[accepted(Some(row("c1", "api_calls", 5, 2)), Some("r-1"))])
        .unwrap();
    tx.commit().unwrap();
    // Same id, other content, beside a new record.
    let tx = l.intake_tx().unwrap();
    let out = tx
        .store(&[
            accepted(Some(row("c1", "api_calls", 6, 2)), Some("r-1")),
            accepted(Some(row("c2", "api_calls", 1, 2)), Some("r-2")),
        ])
        .unwrap();
    tx.commit().unwrap();
    match &out[0] {
        Stored::Taken(first) => assert!(first.contains("\"r-1\""), "{first}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(out[1], Stored::Kept(Some(Enqueued::New(_)))));
    let all = l.list(&Filter::default()).unwrap();
    assert_eq!(all.len(), 2, "the taken id's row was not kept");
    assert!(all.iter().all(|r| r.quantity != 6.into()));
}

/// A key the ledger holds: left alone while it counts as sent, back to `pending` when it
/// ended `rejected`; and never touched for a record whose id is taken.
#[test]
fn keys_already_held_are_requeued_only_when_final_and_unsent() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
    let e = l
        .enqueue(&[row("c1", "api_calls", 5, 2), row("c2", "api_calls", 5, 2)])
        .unwrap();
    let (Enqueued::New(a), Enqueued::New(b)) = (e[0], e[1]) else {
        panic!("{e:?}")
    };
    l.claim(&[b]).unwrap();
    l.finish(&[(
        b,
        Outcome {
            status: Status::Rejected,
            answer: Some("InvalidUsageDimension".into()),
            reason: None,
            marketplace_record_id: None,
        },
    )])
    .unwrap();
    // An id already held by an unrelated record.
    let tx = l.intake_tx().unwrap();
    tx.store(&[accepted(None, Some("held"))]).unwrap();
    tx.commit().unwrap();

    let tx = l.intake_tx().unwrap();
    let out = tx
        .store(&[
            accepted(Some(row("c1", "api_calls", 5, 2)), Some("n-1")),
            accepted(Some(row("c2", "api_calls", 5, 2)), Some("n-2")),
        ])
        .unwrap();
    tx.commit().unwrap();
    assert_eq!(
        out[0],
        Stored::Kept(Some(Enqueued::Existing(a, Status::Pending)))
    );
    assert_eq!(out[1], Stored::Kept(Some(Enqueued::Requeued(b))));
    assert_eq!(l.rows(&[b]).unwrap()[0].status, Status::Pending);

    // A rejected row again, but under an id that is taken: it stays rejected.
    l.claim(&[b]).unwrap();
    l.finish(&[(
        b,
        Outcome {
            status: Status::Rejected,
            answer: Some("InvalidUsageDimension".into()),
            reason: None,
            marketplace_record_id: None,
        },
    )])
    .unwrap();
    let tx = l.intake_tx().unwrap();
    let out = tx
        .store(&[accepted(Some(row("c2", "api_calls", 5, 2)), Some("held"))])
        .unwrap();
    tx.commit().unwrap();
    assert!(matches!(out[0], Stored::Taken(_)), "{out:?}");
    assert_eq!(l.rows(&[b]).unwrap()[0].status, Status::Rejected);
    assert_eq!(count(&l), 2);
}
