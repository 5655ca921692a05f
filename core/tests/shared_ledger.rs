//! The finding for a key another sender stored first in a shared ledger
//! ([`Validator::shared_ledger_duplicate`]): the same code, rule and field the session gives
//! when the key is in its history, for each marketplace's dedup rule.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use metergate_core::dedup::key_text;
use metergate_core::parse::parse_record;
use metergate_core::time::parse_rfc3339;
use metergate_core::{ContractSet, HistoryEntry, RawRecord, Settings, UsageRecord, Validator};
use rust_decimal::Decimal;

const CONTRACTS: &str = r#"[
 {"marketplace":"aws","product":"prod-a1","customer":"cust-1","status":"active","starts_at":"2026-01-01T00:00:00Z",
  "dimensions":[{"name":"api_calls"}]},
 {"marketplace":"azure","product":"offer-1","customer":"sub-1","status":"active","starts_at":"2026-01-01T00:00:00Z",
  "resource_id":"11111111-2222-3333-4444-555555555555","plan":"basic","dimensions":[{"name":"api_calls"}]}]"#;
const NOW: &str = "2026-03-10T12:00:00Z";

fn validator() -> Validator {
    Validator::new(
        ContractSet::from_json(CONTRACTS).unwrap(),
        Settings::default(),
        &[],
    )
    .unwrap()
}

fn raw(mp: &str, product: &str, customer: &str, q: i64, start: &str) -> RawRecord {
    serde_json::from_value(serde_json::json!({
        "marketplace": mp, "product": product, "customer": customer, "dimension": "api_calls",
        "quantity": q, "start_time": start, "plan": "basic"
    }))
    .unwrap()
}

fn parsed(r: RawRecord) -> UsageRecord {
    parse_record(r).unwrap()
}

fn entry(r: &UsageRecord, q: i64) -> HistoryEntry {
    HistoryEntry {
        marketplace: r.marketplace,
        product: r.product.clone(),
        customer: r.customer.clone(),
        dimension: r.dimension.clone(),
        start_time: r.start_time,
        end_time: r.end_time,
        quantity: Decimal::from(q),
        sent_at: None,
    }
}

#[test]
fn another_quantity_stored_first_is_the_sessions_duplicate_request() {
    let v = validator();
    let now = parse_rfc3339(NOW).unwrap();
    for (mp, product, customer) in [("aws", "prod-a1", "cust-1"), ("azure", "offer-1", "sub-1")] {
        let first = parsed(raw(mp, product, customer, 5, "2026-03-10T10:05:00Z"));
        let rec = parsed(raw(mp, product, customer, 6, "2026-03-10T10:40:00Z"));
        assert_eq!(key_text(&first), key_text(&rec), "one key per hour");
        let f = v.shared_ledger_duplicate(&rec, &entry(&first, 5)).unwrap();
        // What the session says with the first record in its history.
        let report = v.validate(
            [raw(mp, product, customer, 6, "2026-03-10T10:40:00Z")],
            &[entry(&first, 5)],
            now,
        );
        let s = report.verdicts[0]
            .findings
            .iter()
            .find(|f| f.code == "duplicate-request")
            .unwrap();
        assert_eq!(
            (
                f.code.as_str(),
                f.rule.as_str(),
                f.field.as_deref(),
                f.severity
            ),
            (
                s.code.as_str(),
                s.rule.as_str(),
                s.field.as_deref(),
                s.severity
            ),
            "{mp}"
        );
        assert!(f.hint.is_some());
    }
    // AWS: the same quantity is the same record (the ledger's idempotency key), not an error.
    let first = parsed(raw("aws", "prod-a1", "cust-1", 5, "2026-03-10T10:05:00Z"));
    assert!(v
        .shared_ledger_duplicate(&first, &entry(&first, 5))
        .is_none());
}
