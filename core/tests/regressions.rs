//! Regressions from fuzzing (fuzz/run.sh) and the bad-input catalogue (tests/bad_inputs/),
//! and the documented input limits, each tested on both sides.
//!
//! A crash that fuzz/run.sh finds gets a test here named after its target
//! (`fuzz_<target>_<what>`), with the minimal input that reproduced it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use metergate_core::parse::MAX_FIELD_BYTES;
use metergate_core::policy::MAX_POLICY_BYTES;
use metergate_core::time::parse_rfc3339;
use metergate_core::{
    ContractError, ContractSet, Field, PolicyError, PolicySource, RawRecord, Settings, Validator,
    Verdict,
};

const CONTRACTS: &str = r#"[
 {"marketplace":"aws","product":"prod-a1","customer":"cust-1","status":"active","starts_at":"2026-01-01T00:00:00Z",
  "dimensions":[{"name":"api_calls"},{"name":"seats"}]}]"#;
const NOW: &str = "2026-03-10T12:00:00Z";

fn validator(policies: &[PolicySource]) -> Result<Validator, PolicyError> {
    Validator::new(
        ContractSet::from_json(CONTRACTS).unwrap(),
        Settings::default(),
        policies,
    )
}

fn good() -> RawRecord {
    serde_json::from_str(
        r#"{"marketplace":"aws","product":"prod-a1","customer":"cust-1","dimension":"api_calls",
            "quantity":3,"start_time":"2026-03-10T10:00:00Z"}"#,
    )
    .unwrap()
}

fn judge(records: Vec<RawRecord>) -> Vec<Verdict> {
    validator(&[])
        .unwrap()
        .validate(records, &[], parse_rfc3339(NOW).unwrap())
        .verdicts
}

fn codes(v: &Verdict) -> Vec<(String, Option<String>)> {
    v.findings
        .iter()
        .map(|f| (f.code.clone(), f.field.clone()))
        .collect()
}

// ---------------------------------------------------------------------------------------
// MAX_FIELD_BYTES: every text field, at the limit and one byte over.

#[test]
fn field_length_limit_on_every_field() {
    for field in [
        "marketplace",
        "product",
        "customer",
        "dimension",
        "start_time",
        "plan",
    ] {
        let mut at = good();
        at.set(field, Field::Text("a".repeat(MAX_FIELD_BYTES)));
        let mut over = good();
        over.set(field, Field::Text("a".repeat(MAX_FIELD_BYTES + 1)));
        let v = judge(vec![at, over, good_seats()]);
        let length = |v: &Verdict| {
            v.findings.iter().any(|f| {
                f.code == "invalid-record"
                    && f.field.as_deref() == Some(field)
                    && f.message.contains("bytes long")
            })
        };
        assert!(
            !length(&v[0]),
            "{field}: {} bytes is within the limit: {:?}",
            MAX_FIELD_BYTES,
            codes(&v[0])
        );
        assert!(
            length(&v[1]),
            "{field}: {} bytes is over the limit: {:?}",
            MAX_FIELD_BYTES + 1,
            codes(&v[1])
        );
        assert!(
            v[2].accepted(),
            "{field}: the good row after them: {:?}",
            codes(&v[2])
        );
    }
}

fn good_seats() -> RawRecord {
    let mut r = good();
    r.set("dimension", Field::Text("seats".into()));
    r
}

#[test]
fn ten_megabyte_field_is_rejected_not_truncated() {
    let mut r = good();
    r.set("dimension", Field::Text("d".repeat(10 << 20)));
    let v = judge(vec![good(), r, good_seats()]);
    assert!(v[0].accepted() && v[2].accepted());
    assert_eq!(
        codes(&v[1]),
        vec![("invalid-record".to_owned(), Some("dimension".to_owned()))]
    );
    // The message shows the value shortened, never the 10 MB.
    assert!(
        v[1].findings[0].message.len() < 200,
        "{}",
        v[1].findings[0].message.len()
    );
}

#[test]
fn quantity_longer_than_64_bytes_is_invalid_quantity() {
    let mut r = good();
    r.set("quantity", Field::Text("1".repeat(65)));
    let v = judge(vec![r]);
    assert_eq!(
        codes(&v[0]),
        vec![("invalid-quantity".to_owned(), Some("quantity".to_owned()))]
    );
}

#[test]
fn ten_thousand_attributes_are_judged() {
    let mut r = good();
    for i in 0..10_000 {
        r.set(&format!("c{i}"), Field::Text("v".into()));
    }
    let v = judge(vec![r, good_seats()]);
    assert!(v[0].accepted() && v[1].accepted(), "{:?}", codes(&v[0]));
}

// ---------------------------------------------------------------------------------------
// MAX_POLICY_BYTES: at the limit it compiles; one byte over, it is refused before compiling.

fn policy_of_size(n: usize) -> PolicySource {
    let head = "fn check(record, ctx) { }\n// ";
    let source = format!("{head}{}\n", "x".repeat(n - head.len() - 1));
    assert_eq!(source.len(), n);
    PolicySource {
        name: "big".into(),
        source,
    }
}

#[test]
fn policy_size_limit() {
    assert!(validator(&[policy_of_size(MAX_POLICY_BYTES)]).is_ok());
    match validator(&[policy_of_size(MAX_POLICY_BYTES + 1)]) {
        Err(PolicyError::TooLarge { size, limit, .. }) => {
            assert_eq!((size, limit), (MAX_POLICY_BYTES + 1, MAX_POLICY_BYTES));
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a policy over the limit compiled"),
    }
}

#[test]
fn policy_nesting_a_thousand_deep_is_a_compile_error() {
    let source = format!(
        "fn check(record, ctx) {{ let x = {}1{}; }}",
        "(".repeat(1000),
        ")".repeat(1000)
    );
    let r = validator(&[PolicySource {
        name: "deep".into(),
        source,
    }]);
    assert!(
        matches!(r, Err(PolicyError::Compile { .. })),
        "{:?}",
        r.err()
    );
}

// ---------------------------------------------------------------------------------------
// JSON shapes that must not crash.

#[test]
fn record_with_a_field_nested_100000_deep() {
    let text = format!(
        r#"{{"marketplace":"aws","product":"prod-a1","customer":"cust-1","dimension":"api_calls","quantity":3,"start_time":"2026-03-10T10:00:00Z","deep":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    // Either a record (the deep value is not a string, so it is no attribute) or an error;
    // never a stack overflow.
    if let Ok(r) = serde_json::from_str::<RawRecord>(&text) {
        assert!(judge(vec![r])[0].accepted());
    }
    let quantity = text.replace(
        r#""quantity":3"#,
        &format!(
            r#""quantity":{}1{}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        ),
    );
    if let Ok(r) = serde_json::from_str::<RawRecord>(&quantity) {
        let v = judge(vec![r]);
        assert_eq!(codes(&v[0])[0].0, "invalid-quantity");
    }
}

#[test]
fn contracts_nested_100000_deep_is_an_error() {
    let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        ContractSet::from_json(&text),
        Err(ContractError::Parse { .. })
    ));
}

#[test]
fn contracts_at_the_ends_of_time_do_not_panic() {
    let text = r#"[
     {"marketplace":"aws","product":"p","customer":"first","status":"active","starts_at":"0001-01-01T00:00:00Z","dimensions":[{"name":"d"}]},
     {"marketplace":"aws","product":"p","customer":"last","status":"cancelled","starts_at":"9999-12-31T23:59:58Z",
      "cancelled_at":"9999-12-31T23:59:59Z","dimensions":[{"name":"d"}]},
     {"marketplace":"gcp","product":"p","customer":"last","status":"ended","starts_at":"9999-12-31T23:00:00Z",
      "ends_at":"9999-12-31T23:59:59Z","dimensions":[{"name":"d"}]}]"#;
    let v = Validator::new(
        ContractSet::from_json(text).unwrap(),
        Settings::default(),
        &[],
    )
    .unwrap();
    for (mp, customer, start) in [
        ("aws", "first", "0001-01-01T00:00:00Z"),
        ("aws", "last", "9999-12-31T23:59:58Z"),
        ("gcp", "last", "9999-12-31T23:00:00Z"),
    ] {
        for now in ["0001-01-01T00:00:00Z", NOW, "9999-12-31T23:59:59Z"] {
            let now = parse_rfc3339(now).unwrap();
            let mut r = RawRecord::default();
            for (k, val) in [
                ("marketplace", mp),
                ("product", "p"),
                ("customer", customer),
                ("dimension", "d"),
                ("quantity", "1"),
                ("start_time", start),
                ("end_time", "9999-12-31T23:59:59Z"),
            ] {
                r.set(k, Field::Text(val.into()));
            }
            let _ = v.deadline(r.clone(), now);
            let verdict = v.check_one(r.clone(), now);
            assert_eq!(
                verdict.accepted(),
                !verdict.findings.iter().any(|f| f.is_error())
            );
            let _ = v.validate(vec![r.clone(), r], &[], now);
        }
    }
}

// ---------------------------------------------------------------------------------------
// MAX_SUGGEST_LEN: "did you mean" compares names up to 256 bytes and no longer ones (20
// contract dimensions of 4,000 characters took 4.7 s for 20 records).

#[test]
fn did_you_mean_is_bounded_by_length() {
    use metergate_core::rules::{closest, MAX_SUGGEST_LEN};
    let at = "d".repeat(MAX_SUGGEST_LEN);
    let near = format!("{}e", "d".repeat(MAX_SUGGEST_LEN - 1));
    assert_eq!(closest(&near, [at.as_str()].into_iter()), Some(at.as_str()));
    let long = "d".repeat(MAX_SUGGEST_LEN + 1);
    let long_near = format!("{}e", "d".repeat(MAX_SUGGEST_LEN));
    assert_eq!(closest(&long_near, [long.as_str()].into_iter()), None);
    assert_eq!(closest(&near, [long.as_str()].into_iter()), None);
    assert_eq!(closest(&long_near, [at.as_str()].into_iter()), None);

    // Long dimensions still get their finding, without a suggestion.
    let dims: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"name":"{}{i}"}}"#, "x".repeat(4000)))
        .collect();
    let contracts = format!(
        r#"[{{"marketplace":"aws","product":"prod-a1","customer":"cust-1","status":"active","starts_at":"2026-01-01T00:00:00Z","dimensions":[{}]}}]"#,
        dims.join(",")
    );
    let v = Validator::new(
        ContractSet::from_json(&contracts).unwrap(),
        Settings::default(),
        &[],
    )
    .unwrap();
    let rec: RawRecord = serde_json::from_str(&format!(
        r#"{{"marketplace":"aws","product":"prod-a1","customer":"cust-1","dimension":"{}y",
            "quantity":3,"start_time":"2026-03-10T10:00:00Z"}}"#,
        "x".repeat(4000)
    ))
    .unwrap();
    let verdicts = v
        .validate(vec![rec; 20], &[], parse_rfc3339(NOW).unwrap())
        .verdicts;
    for v in &verdicts {
        assert!(codes(v)
            .iter()
            .any(|(c, f)| c == "invalid-usage-dimension" && f.as_deref() == Some("dimension")));
    }
}
