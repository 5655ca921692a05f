//! Issue 15 items 6, 8 and 10, and issue 14 item 5: hints that cannot mislead (their
//! suggestions, never their text, are compared), hard deadlines over soft ones, and Google's
//! Pacific invoice calendar.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Utc};
use metergate_core::time::parse_rfc3339;
use metergate_core::window::{pacific_invoice_month, pacific_month_cutoff};
use metergate_core::{ContractSet, Finding, RawRecord, Settings, Validator};
use rust_decimal::Decimal;

fn t(s: &str) -> DateTime<Utc> {
    parse_rfc3339(s).unwrap()
}

fn validator(contracts: &str, settings: serde_json::Value) -> Validator {
    Validator::new(
        ContractSet::from_json(contracts).unwrap(),
        Settings::from_json_value(settings).unwrap(),
        &[],
    )
    .unwrap()
}

fn raw(v: serde_json::Value) -> RawRecord {
    serde_json::from_value(v).unwrap()
}

fn findings(v: &Validator, records: &[serde_json::Value], now: &str) -> Vec<Vec<Finding>> {
    let report = v.validate(records.iter().cloned().map(raw), &[], t(now));
    report.verdicts.into_iter().map(|v| v.findings).collect()
}

const AWS: &str = r#"[{"marketplace":"aws","product":"prod-a1","customer":"cust-1",
  "status":"cancelled","starts_at":"2026-01-01T00:00:00Z","cancelled_at":"2026-03-10T12:00:00Z",
  "dimensions":[{"name":"api_calls"}]},
 {"marketplace":"aws","product":"prod-a1","customer":"cust-2","status":"active",
  "starts_at":"2026-01-01T00:00:00Z","dimensions":[{"name":"api_calls"},{"name":"storage_gb","unit":5}]}]"#;

fn aws(customer: &str, dim: &str, q: &str, at: &str) -> serde_json::Value {
    serde_json::json!({"marketplace":"aws","product":"prod-a1","customer":customer,
        "dimension":dim,"quantity":q,"start_time":at})
}

#[test]
fn a_duplicate_after_cancellation_does_not_offer_a_carry_that_can_never_bill() {
    let v = validator(AWS, serde_json::json!({}));
    let f = findings(
        &v,
        &[
            aws("cust-1", "api_calls", "3", "2026-03-10T11:10:00Z"),
            aws("cust-1", "api_calls", "5", "2026-03-10T11:40:00Z"),
        ],
        "2026-03-10T12:10:00Z",
    );
    let dup = f[1].iter().find(|f| f.code == "duplicate-request").unwrap();
    assert!(dup.suggestion.is_none(), "{:?}", dup.hint);
    // The same duplicate on an active contract offers the carry into 12:00, and it bills.
    let f = findings(
        &v,
        &[
            aws("cust-2", "api_calls", "3", "2026-03-10T11:10:00Z"),
            aws("cust-2", "api_calls", "5", "2026-03-10T11:40:00Z"),
        ],
        "2026-03-10T12:10:00Z",
    );
    let dup = f[1].iter().find(|f| f.code == "duplicate-request").unwrap();
    let s = dup.suggestion.as_ref().unwrap();
    assert!(s.carry);
    assert_eq!(s.quantity, Some(Decimal::from(5)));
    assert_eq!(s.start_time, Some(t("2026-03-10T12:00:00Z")));
}

#[test]
fn one_quantity_for_both_quantity_rules() {
    let v = validator(AWS, serde_json::json!({}));
    let f = findings(
        &v,
        &[aws("cust-2", "storage_gb", "17.5", "2026-03-10T11:10:00Z")],
        "2026-03-10T12:10:00Z",
    );
    let q: Vec<_> = f[0]
        .iter()
        .filter(|f| f.code == "invalid-quantity")
        .map(|f| f.suggestion.as_ref().and_then(|s| s.quantity))
        .collect();
    assert_eq!(q, vec![Some(Decimal::from(15)); 2]);
}

#[test]
fn microsoft_is_never_offered_zero() {
    let contracts = r#"[{"marketplace":"azure","product":"offer-x","customer":"sub-1",
      "status":"active","starts_at":"2026-01-01T00:00:00Z","plan":"gold",
      "resource_id":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
      "dimensions":[{"name":"gb_hours","unit":0.25}]}]"#;
    let v = validator(contracts, serde_json::json!({}));
    let rec = |q: &str| {
        serde_json::json!({"marketplace":"azure","product":"offer-x","customer":"sub-1",
            "dimension":"gb_hours","quantity":q,"start_time":"2026-03-10T11:10:00Z"})
    };
    let f = findings(&v, &[rec("0.1")], "2026-03-10T12:10:00Z");
    let unit = f[0].iter().find(|f| f.rule == "all.unit").unwrap();
    assert!(unit.suggestion.is_none(), "{:?}", unit.hint);
    // Above one unit the nearest valid quantity is offered.
    let f = findings(&v, &[rec("0.3")], "2026-03-10T12:10:00Z");
    let unit = f[0].iter().find(|f| f.rule == "all.unit").unwrap();
    assert_eq!(
        unit.suggestion.as_ref().unwrap().quantity,
        Some(Decimal::new(25, 2))
    );
}

#[test]
fn the_earliest_allowed_start_is_allowed() {
    for (lookback, old) in [
        ("6h", "2026-03-10T06:00:00Z"),
        ("24h", "2026-03-09T12:00:00Z"),
    ] {
        let v = validator(AWS, serde_json::json!({"aws": {"lookback": lookback}}));
        let f = findings(
            &v,
            &[aws("cust-2", "api_calls", "1", old)],
            "2026-03-10T12:00:00Z",
        );
        let lb = f[0]
            .iter()
            .find(|f| f.code == "timestamp-out-of-bounds")
            .unwrap();
        let earliest = lb.suggestion.as_ref().unwrap().start_time.unwrap();
        assert!(earliest > t(old), "{lookback}: {earliest}");
        let again = findings(
            &v,
            &[aws(
                "cust-2",
                "api_calls",
                "1",
                &metergate_core::time::format_rfc3339(earliest),
            )],
            "2026-03-10T12:00:00Z",
        );
        assert!(!again[0].iter().any(Finding::is_error), "{:?}", again[0]);
    }
}

#[test]
fn a_hard_deadline_wins_over_the_soft_lateness() {
    let contracts = r#"[{"marketplace":"gcp","product":"svc.example.com","customer":"proj-1",
      "status":"cancelled","starts_at":"2026-01-01T00:00:00Z","cancelled_at":"2026-03-10T10:30:00Z",
      "usage_reporting_id":"project:acme","dimensions":[{"name":"requests"}]},
     {"marketplace":"gcp","product":"svc.example.com","customer":"proj-2",
      "status":"active","starts_at":"2026-01-01T00:00:00Z",
      "usage_reporting_id":"project:acme-2","dimensions":[{"name":"requests"}]}]"#;
    let v = validator(contracts, serde_json::json!({}));
    let rec = |c: &str| {
        raw(
            serde_json::json!({"marketplace":"gcp","product":"svc.example.com","customer":c,
            "dimension":"requests","quantity":1,"start_time":"2026-03-10T10:00:00Z",
            "end_time":"2026-03-10T10:05:00Z"}),
        )
    };
    // Soft lateness would close at 11:05, the hard post-cancel window at 11:30: the hard one.
    let d = v
        .deadline(rec("proj-1"), t("2026-03-10T10:40:00Z"))
        .unwrap();
    assert!(d.hard);
    assert_eq!(d.rule, "gcp.post_cancel");
    assert_eq!(d.at, t("2026-03-10T11:30:00Z"));
    // With nothing hard, the soft lateness is still shown.
    let d = v
        .deadline(rec("proj-2"), t("2026-03-10T10:40:00Z"))
        .unwrap();
    assert!(!d.hard);
    assert_eq!(d.rule, "gcp.lateness");
}

#[test]
fn google_invoices_on_the_pacific_calendar() {
    // 06:59:59Z on April 1 is still March 31 in PDT; 07:00Z is April.
    assert_eq!(pacific_invoice_month(t("2026-04-01T06:59:59Z")), (2026, 3));
    assert_eq!(pacific_invoice_month(t("2026-04-01T07:00:00Z")), (2026, 4));
    // 07:59:59Z on January 1 is still December 31 in PST.
    assert_eq!(pacific_invoice_month(t("2027-01-01T07:59:59Z")), (2026, 12));
    assert_eq!(pacific_invoice_month(t("2027-01-01T08:00:00Z")), (2027, 1));
    // The cutoffs: 01:00 local on day 1, PST in winter, PDT in summer.
    assert_eq!(
        pacific_month_cutoff(t("2026-02-15T00:00:00Z")),
        t("2026-03-01T09:00:00Z")
    );
    assert_eq!(
        pacific_month_cutoff(t("2026-04-01T06:59:59Z")),
        t("2026-04-01T08:00:00Z")
    );
    assert_eq!(
        pacific_month_cutoff(t("2026-04-01T07:00:00Z")),
        t("2026-05-01T08:00:00Z")
    );
    // November 1, 2026 is the day DST ends (at 02:00): 01:00 is still PDT.
    assert_eq!(
        pacific_month_cutoff(t("2026-10-15T00:00:00Z")),
        t("2026-11-01T08:00:00Z")
    );
    assert_eq!(
        pacific_month_cutoff(t("2026-11-15T00:00:00Z")),
        t("2026-12-01T09:00:00Z")
    );
    // A year when DST rules differed: 2006 kept April-to-October DST, so November 1 was PST.
    assert_eq!(
        pacific_month_cutoff(t("2006-10-15T00:00:00Z")),
        t("2006-11-01T09:00:00Z")
    );
    // ...and started on the first Sunday of April (April 2, 2006): April 1 was still PST.
    assert_eq!(
        pacific_month_cutoff(t("2006-03-15T00:00:00Z")),
        t("2006-04-01T09:00:00Z")
    );
}
