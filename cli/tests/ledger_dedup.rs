//! One live row per marketplace dedup key, whatever the sender: several ledger handles (other
//! agents or `submit` processes) writing the same customer, dimension and hour with different
//! quantities leave exactly one live row (`pending`, `sending`, `accepted` or `duplicate`),
//! through `enqueue`, the agent's intake writer and the re-queues. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg_support;

use chrono::{Duration, Utc};
use metergate::ledger::intake::{Accepted, Claim, Stored};
use metergate::ledger::{dedup_key, Enqueued, Filter, Ledger, NewRow, Outcome, Status};
use metergate_core::time::hour_floor;
use metergate_core::{Marketplace, UsageRecord};
use pg_support::TestLedger;
use rust_decimal::Decimal;

/// An AWS record of `prod-a` for `customer`, dimension `api_calls`, `minute` minutes into the
/// hour two hours ago.
fn row(customer: &str, q: i64, minute: i64) -> NewRow {
    let record = UsageRecord {
        marketplace: Marketplace::Aws,
        product: "prod-a".into(),
        customer: customer.into(),
        dimension: "api_calls".into(),
        quantity: q.into(),
        start_time: hour_floor(Utc::now()) - Duration::hours(2) + Duration::minutes(minute),
        end_time: None,
        record_id: None,
        plan: None,
        allocations: None,
        attributes: Default::default(),
    };
    let wire = metergate::submit::wire_values(&record, None).unwrap();
    NewRow {
        record,
        source: Some("in.jsonl:1".into()),
        wire,
    }
}

fn open(lg: &TestLedger) -> Ledger {
    Ledger::open(lg.path()).unwrap()
}

/// The live rows of `customer` (the one key of these tests per customer).
fn live(l: &Ledger, customer: &str) -> Vec<(i64, Decimal, Status)> {
    l.list(&Filter {
        customer: Some(customer.into()),
        ..Filter::default()
    })
    .unwrap()
    .into_iter()
    .filter(|r| r.status.counts_as_sent())
    .map(|r| (r.id, r.quantity, r.status))
    .collect()
}

fn ended(l: &mut Ledger, id: i64, status: Status) {
    l.claim(&[id]).unwrap();
    l.finish(&[(
        id,
        Outcome {
            status,
            answer: Some("test".into()),
            reason: None,
            marketplace_record_id: None,
        },
    )])
    .unwrap();
}

both_engines!(
    two_handles_keep_one_live_row_per_key,
    many_writers_at_once_leave_one_live_row,
    requeues_never_make_a_second_live_row,
    the_intake_writer_reports_the_key_another_agent_holds,
);

fn two_handles_keep_one_live_row_per_key(lg: &TestLedger) {
    let mut a = open(lg);
    let mut b = open(lg);
    let Enqueued::New(first) = a.enqueue(&[row("c-1", 5, 3)]).unwrap()[0] else {
        panic!("the first row is written");
    };
    // Another quantity for the same hour from another handle: not written.
    assert_eq!(
        b.enqueue(&[row("c-1", 6, 40)]).unwrap(),
        [Enqueued::Conflict(first)]
    );
    // The same quantity is the same record (the idempotency key): as before.
    assert_eq!(
        b.enqueue(&[row("c-1", 5, 59)]).unwrap(),
        [Enqueued::Existing(first, Status::Pending)]
    );
    // Another hour, or another customer, is another key.
    assert!(matches!(
        b.enqueue(&[row("c-1", 6, 60)]).unwrap()[0],
        Enqueued::New(_)
    ));
    assert!(matches!(
        b.enqueue(&[row("c-2", 6, 3)]).unwrap()[0],
        Enqueued::New(_)
    ));
    assert_eq!(
        live(&a, "c-1")
            .iter()
            .filter(|r| r.0 == first || r.1 == Decimal::from(6))
            .count(),
        2,
        "{:?}",
        live(&a, "c-1")
    );
    // The held key stays held while the row is sent and after it is accepted.
    ended(&mut a, first, Status::Accepted);
    assert_eq!(
        b.enqueue(&[row("c-1", 7, 10)]).unwrap(),
        [Enqueued::Conflict(first)]
    );
    let hour_rows: Vec<_> = live(&b, "c-1")
        .into_iter()
        .filter(|r| r.1 != Decimal::from(6))
        .collect();
    assert_eq!(hour_rows, [(first, Decimal::from(5), Status::Accepted)]);
    // The column holds the core's key.
    assert_eq!(
        dedup_key(&row("c-1", 9, 0).record),
        format!(
            "aws|prod-a|c-1|api_calls|{}",
            metergate_core::time::format_rfc3339(hour_floor(Utc::now()) - Duration::hours(2))
        )
    );
}

/// Eight handles (eight agents) write the same key with eight quantities at once: one row.
fn many_writers_at_once_leave_one_live_row(lg: &TestLedger) {
    let results: Vec<Enqueued> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                s.spawn(move || {
                    let mut l = open(lg);
                    l.enqueue(&[row("c-race", 10 + i, i)]).unwrap()[0]
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let new: Vec<i64> = results
        .iter()
        .filter_map(|e| match e {
            Enqueued::New(id) => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(new.len(), 1, "{results:?}");
    for e in &results {
        assert!(
            matches!(e, Enqueued::New(_)) || *e == Enqueued::Conflict(new[0]),
            "{results:?}"
        );
    }
    assert_eq!(live(&open(lg), "c-race").len(), 1);
}

fn requeues_never_make_a_second_live_row(lg: &TestLedger) {
    let mut a = open(lg);
    let mut b = open(lg);
    let Enqueued::New(five) = a.enqueue(&[row("c-1", 5, 0)]).unwrap()[0] else {
        panic!()
    };
    ended(&mut a, five, Status::Failed);
    // A failed row is not live: another quantity may take the key.
    let Enqueued::New(six) = b.enqueue(&[row("c-1", 6, 0)]).unwrap()[0] else {
        panic!()
    };
    // Submitting 5 again would put a second live row: it stays failed, nothing changes.
    assert_eq!(
        a.enqueue(&[row("c-1", 5, 0)]).unwrap(),
        [Enqueued::Conflict(six)]
    );
    assert_eq!(a.rows(&[five]).unwrap()[0].status, Status::Failed);
    // `resume --retry-failed` leaves it failed too.
    assert_eq!(a.requeue_failed().unwrap(), 0);
    assert_eq!(a.rows(&[five]).unwrap()[0].status, Status::Failed);
    // Once 6 is refused, the key is free again: the retry takes it.
    ended(&mut b, six, Status::Rejected);
    assert_eq!(a.requeue_failed().unwrap(), 1);
    assert_eq!(live(&a, "c-1"), [(five, Decimal::from(5), Status::Pending)]);
    // Two failed rows of one key: only the earliest goes back.
    ended(&mut a, five, Status::Failed);
    assert_eq!(
        b.enqueue(&[row("c-1", 6, 0)]).unwrap(),
        [Enqueued::Requeued(six)]
    );
    ended(&mut b, six, Status::Failed);
    assert_eq!(a.requeue_failed().unwrap(), 1);
    assert_eq!(live(&a, "c-1"), [(five, Decimal::from(5), Status::Pending)]);
    assert_eq!(a.rows(&[six]).unwrap()[0].status, Status::Failed);
    // An expired row re-submitted while another holds the key stays expired as well.
    ended(&mut a, five, Status::Expired);
    assert_eq!(
        b.enqueue(&[row("c-1", 6, 0)]).unwrap(),
        [Enqueued::Requeued(six)]
    );
    assert_eq!(
        a.enqueue(&[row("c-1", 5, 0)]).unwrap(),
        [Enqueued::Conflict(six)]
    );
    assert_eq!(a.rows(&[five]).unwrap()[0].status, Status::Expired);
    assert_eq!(live(&a, "c-1"), [(six, Decimal::from(6), Status::Pending)]);
    // Every row is still there: nothing is deleted.
    assert_eq!(
        a.list(&Filter {
            customer: Some("c-1".into()),
            ..Filter::default()
        })
        .unwrap()
        .len(),
        2
    );
}

fn accepted(row: NewRow, id: &str) -> Accepted {
    Accepted {
        row: Some(row),
        record_id: Some(id.into()),
        verdict: format!("{{\"id\":\"{id}\"}}"),
    }
}

/// Two agents' intake writers: the second finds the key held, stores nothing, keeps no id.
fn the_intake_writer_reports_the_key_another_agent_holds(lg: &TestLedger) {
    let mut a = open(lg);
    let mut b = open(lg);
    let tx = a.intake_tx().unwrap();
    let got = tx
        .store(&[
            accepted(row("c-1", 5, 0), "a-1"),
            accepted(row("c-2", 1, 0), "a-2"),
        ])
        .unwrap();
    assert!(matches!(got[0], Stored::Kept(Some(Enqueued::New(_)))));
    tx.commit().unwrap();
    let tx = b.intake_tx().unwrap();
    let got = tx
        .store(&[
            accepted(row("c-2", 2, 30), "b-2"),
            accepted(row("c-1", 5, 10), "b-same"),
            accepted(row("c-3", 3, 0), "b-3"),
        ])
        .unwrap();
    match &got[0] {
        Stored::Conflict(first) => {
            assert_eq!(first.customer, "c-2");
            assert_eq!(first.quantity, Decimal::from(1));
        }
        other => panic!("{other:?}"),
    }
    // The same quantity is the same record: kept (the row that holds it).
    assert!(
        matches!(got[1], Stored::Kept(Some(Enqueued::Existing(..)))),
        "{got:?}"
    );
    assert!(matches!(got[2], Stored::Kept(Some(Enqueued::New(_)))));
    // The refused record's id is free again; the others are kept.
    assert_eq!(tx.claim_record("b-2").unwrap(), Claim::New);
    assert!(matches!(tx.claim_record("b-3").unwrap(), Claim::Taken(_)));
    tx.commit().unwrap();
    assert_eq!(live(&a, "c-2").len(), 1);
    assert_eq!(live(&a, "c-2")[0].1, Decimal::from(1));
}
