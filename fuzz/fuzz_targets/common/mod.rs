//! Shared set-up and invariants for the fuzz targets.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use metergate_core::{
    ContractSet, Finding, PolicySource, Report, Settings, Summary, Validator, Verdict, VerdictKind,
};

/// The conformance fixtures' three contracts (tests/conformance/README.md), plus a cancelled
/// and an ended one so the post-cancel rules run too.
pub const CONTRACTS: &str = r#"[
 {"marketplace":"aws","product":"prod-a1","customer":"cust-1","status":"active","starts_at":"2026-01-01T00:00:00Z",
  "dimensions":[{"name":"api_calls"},{"name":"storage_gb","unit":5},{"name":"seats"}]},
 {"marketplace":"aws","product":"prod-a1","customer":"cust-gone","status":"cancelled","starts_at":"2026-01-01T00:00:00Z",
  "cancelled_at":"2026-03-10T09:30:00Z","dimensions":[{"name":"api_calls"}]},
 {"marketplace":"azure","product":"offer-x","customer":"sub-1","status":"active","starts_at":"2026-01-01T00:00:00Z",
  "plan":"gold","resource_id":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
  "dimensions":[{"name":"requests"},{"name":"gb_hours","unit":0.25}]},
 {"marketplace":"gcp","product":"svc.example.com","customer":"proj-1","status":"active","starts_at":"2026-01-01T00:00:00Z",
  "usage_reporting_id":"project:acme-prod",
  "dimensions":[{"name":"requests"},{"name":"cpu_hours","type":"decimal"},{"name":"storage","type":"decimal","unit":0.5}]},
 {"marketplace":"gcp","product":"svc.example.com","customer":"proj-old","status":"ended","starts_at":"2025-01-01T00:00:00Z",
  "ends_at":"2026-03-01T00:00:00Z","dimensions":[{"name":"requests"}]}
]"#;

/// "Now" of every target: the fixtures' usual one.
pub fn now() -> DateTime<Utc> {
    match metergate_core::time::parse_rfc3339("2026-03-10T12:00:00Z") {
        Ok(t) => t,
        Err(e) => panic!("fixed now: {e}"),
    }
}

pub fn contracts() -> ContractSet {
    match ContractSet::from_json(CONTRACTS) {
        Ok(c) => c,
        Err(e) => panic!("fixed contracts: {e}"),
    }
}

/// The validator over [`CONTRACTS`] with default settings and no policy, built once.
pub fn base() -> &'static Validator {
    base_shared()
}

/// [`base`], shared (for sessions that hold their validator).
pub fn base_shared() -> &'static std::sync::Arc<Validator> {
    static V: std::sync::OnceLock<std::sync::Arc<Validator>> = std::sync::OnceLock::new();
    V.get_or_init(|| std::sync::Arc::new(validator(&[])))
}

/// A validator over [`CONTRACTS`] with default settings and the given policies.
pub fn validator(policies: &[PolicySource]) -> Validator {
    match Validator::new(contracts(), Settings::default(), policies) {
        Ok(v) => v,
        Err(e) => panic!("fixed validator: {e}"),
    }
}

/// A verdict is `rejected` exactly when it has an error finding, and every finding has a code
/// and a rule.
pub fn check_verdict(v: &Verdict) {
    let has_error = v.findings.iter().any(Finding::is_error);
    assert_eq!(
        v.verdict == VerdictKind::Rejected,
        has_error,
        "verdict vs findings: {v:?}"
    );
    for f in &v.findings {
        assert!(!f.code.is_empty(), "empty code: {f:?}");
        assert!(!f.rule.is_empty(), "empty rule: {f:?}");
        assert!(!f.message.is_empty(), "empty message: {f:?}");
    }
}

/// The summary counts what the verdicts say.
pub fn check_summary(verdicts: &[&Verdict], s: &Summary) {
    let mut expect = Summary::default();
    for v in verdicts {
        check_verdict(v);
        expect.add(v);
    }
    assert_eq!(&expect, s, "summary does not count the verdicts");
    assert_eq!(s.accepted + s.rejected, s.records);
}

pub fn check_report(r: &Report) {
    let vs: Vec<&Verdict> = r.verdicts.iter().collect();
    check_summary(&vs, &r.summary);
    for (i, v) in r.verdicts.iter().enumerate() {
        assert_eq!(v.index, i as u64, "verdict index");
    }
}
