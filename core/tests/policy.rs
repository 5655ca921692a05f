//! Seller policies: the script API, the sandbox limits and the example policies.
//! Every test's name starts with `policy_`, so `cargo test -p metergate-core policy` runs them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use metergate_core::contract::{Contract, ContractStatus, Dimension, MetricType};
use metergate_core::finding::{Finding, Severity};
use metergate_core::model::{Marketplace, UsageRecord};
use metergate_core::policy::{
    PolicyContext, PolicyError, PolicySet, PolicySource, MAX_ARRAY_SIZE, MAX_FINDINGS_PER_CALL,
    MAX_MAP_SIZE, MAX_POLICY_BYTES, MAX_STRING_SIZE, MAX_VARIABLES,
};
use metergate_core::time::parse_rfc3339;
use rust_decimal::Decimal;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Helpers

fn t(s: &str) -> DateTime<Utc> {
    parse_rfc3339(s).unwrap()
}

fn record() -> UsageRecord {
    UsageRecord {
        marketplace: Marketplace::Aws,
        product: "prod-a1".into(),
        customer: "cust-1".into(),
        dimension: "api_calls".into(),
        quantity: Decimal::from(1500),
        start_time: t("2026-03-31T10:00:00Z"),
        end_time: None,
        record_id: None,
        plan: None,
        allocations: None,
        attributes: BTreeMap::new(),
    }
}

fn contract() -> Contract {
    Contract {
        marketplace: Marketplace::Aws,
        product: "prod-a1".into(),
        customer: "cust-1".into(),
        status: ContractStatus::Cancelled,
        status_word: None,
        starts_at: t("2026-01-01T00:00:00Z"),
        ends_at: None,
        cancelled_at: Some(t("2026-04-15T00:00:00Z")),
        plan: Some("gold".into()),
        customer_identifier: None,
        aws_account_id: None,
        license_arn: None,
        resource_id: None,
        resource_uri: None,
        usage_reporting_id: None,
        marketplace_id: None,
        dimensions: vec![
            Dimension {
                name: "api_calls".into(),
                unit: None,
                kind: None,
                price: None,
                currency: None,
            },
            Dimension {
                name: "storage_gb".into(),
                unit: Some(Decimal::from_str("0.5").unwrap()),
                kind: Some(MetricType::Decimal),
                price: None,
                currency: None,
            },
        ],
        properties: Default::default(),
    }
}

fn now() -> DateTime<Utc> {
    t("2026-03-31T12:00:00Z")
}

fn source(name: &str, src: &str) -> PolicySource {
    PolicySource {
        name: name.into(),
        source: src.into(),
    }
}

fn try_compile(name: &str, src: &str) -> Result<PolicySet, PolicyError> {
    PolicySet::compile(&[source(name, src)], &BTreeMap::new())
}

fn compile(src: &str) -> PolicySet {
    try_compile("test", src).unwrap()
}

fn compile_with(name: &str, src: &str, params: Value) -> PolicySet {
    let params = BTreeMap::from([(name.to_owned(), params)]);
    PolicySet::compile(&[source(name, src)], &params).unwrap()
}

fn example(name: &str) -> PolicySource {
    let path = format!(
        "{}/../examples/policies/{name}.rhai",
        env!("CARGO_MANIFEST_DIR")
    );
    let src = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    source(name, &src)
}

fn compile_example(name: &str, params: Value) -> PolicySet {
    let params = BTreeMap::from([(name.to_owned(), params)]);
    PolicySet::compile(&[example(name)], &params).unwrap()
}

fn run_at(
    set: &PolicySet,
    rec: &UsageRecord,
    now: DateTime<Utc>,
    contract: Option<&Contract>,
    findings: &[Finding],
) -> Vec<Finding> {
    let ctx = PolicyContext {
        now,
        contract,
        findings,
    };
    let mut out = Vec::new();
    set.run(rec, &ctx, &mut out);
    out
}

fn run(set: &PolicySet, rec: &UsageRecord) -> Vec<Finding> {
    run_at(set, rec, now(), None, &[])
}

/// (code, severity) of each finding.
fn codes(findings: &[Finding]) -> Vec<(String, Severity)> {
    findings
        .iter()
        .map(|f| (f.code.clone(), f.severity))
        .collect()
}

fn err(code: &str) -> (String, Severity) {
    (code.into(), Severity::Error)
}

fn warning(code: &str) -> (String, Severity) {
    (code.into(), Severity::Warning)
}

/// Exactly one `policy-failed` error from policy `name`.
fn assert_failed(findings: &[Finding], name: &str) {
    assert_eq!(codes(findings), vec![err("policy-failed")], "{findings:#?}");
    assert_eq!(findings[0].rule, format!("policy:{name}"));
    assert_eq!(findings[0].field, None);
}

/// A script whose `check` rejects with `code` when `cond` is false: asserts inside scripts.
fn assert_script(body: &str) {
    let src = format!("fn check(record, ctx) {{ {body} }}");
    let set = try_compile("assert", &src).unwrap_or_else(|e| panic!("{e}"));
    let out = run_at(
        &set,
        &record_with_everything(),
        now(),
        Some(&contract()),
        &[],
    );
    assert!(out.is_empty(), "{body}\n{out:#?}");
}

fn record_with_everything() -> UsageRecord {
    let mut rec = record();
    rec.marketplace = Marketplace::Gcp;
    rec.quantity = Decimal::from_str("2.5").unwrap();
    rec.end_time = Some(t("2026-03-31T10:30:00Z"));
    rec.record_id = Some("r-17".into());
    rec.plan = Some("gold".into());
    rec.attributes
        .insert("internal_customer_identifier".into(), "ACME-9".into());
    rec.attributes.insert("region".into(), "eu".into());
    rec
}

// ---------------------------------------------------------------------------------------
// Reporting

#[test]
fn policy_warn_and_reject_with_and_without_hint() {
    let set = compile(
        r#"fn check(record, ctx) {
            warn("w-one", "a warning");
            warn("w-two", "a warning", "a hint");
            reject("r-one", "an error");
            reject("r-two", "an error", "a hint");
        }"#,
    );
    let out = run(&set, &record());
    assert_eq!(
        codes(&out),
        vec![
            warning("w-one"),
            warning("w-two"),
            err("r-one"),
            err("r-two")
        ]
    );
    assert_eq!(
        out.iter().map(|f| f.hint.is_some()).collect::<Vec<_>>(),
        vec![false, true, false, true]
    );
    assert!(out
        .iter()
        .all(|f| f.rule == "policy:test" && f.field.is_none()));
}

#[test]
fn policy_field_findings() {
    let set = compile(
        r#"fn check(record, ctx) {
            warn_field("quantity", "w", "m");
            reject_field("internal_customer_identifier", "r", "m", "h");
        }"#,
    );
    let out = run(&set, &record());
    assert_eq!(codes(&out), vec![warning("w"), err("r")]);
    assert_eq!(out[0].field.as_deref(), Some("quantity"));
    assert_eq!(
        out[1].field.as_deref(),
        Some("internal_customer_identifier")
    );
    assert!(out[1].hint.is_some());
}

#[test]
fn policy_rule_names_the_policy_and_policies_run_in_order() {
    let sources = [
        source("first", r#"fn check(record, ctx) { warn("a", "m") }"#),
        source(
            "second-one",
            r#"fn check(record, ctx) { reject("b", "m") }"#,
        ),
    ];
    let set = PolicySet::compile(&sources, &BTreeMap::new()).unwrap();
    assert!(!set.is_empty());
    assert_eq!(set.names().collect::<Vec<_>>(), vec!["first", "second-one"]);
    let out = run(&set, &record());
    assert_eq!(codes(&out), vec![warning("a"), err("b")]);
    assert_eq!(out[0].rule, "policy:first");
    assert_eq!(out[1].rule, "policy:second-one");
}

#[test]
fn policy_empty_set_does_nothing() {
    let set = PolicySet::compile(&[], &BTreeMap::new()).unwrap();
    assert!(set.is_empty());
    assert!(PolicySet::default().is_empty());
    assert!(run(&set, &record()).is_empty());
}

#[test]
fn policy_codes_are_checked() {
    for bad in [
        r#""""#,
        r#""Upper""#,
        r#""with space""#,
        r#""é""#,
        &format!("\"{}\"", "a".repeat(65)),
    ] {
        let set = compile(&format!(r#"fn check(record, ctx) {{ warn({bad}, "m") }}"#));
        assert_failed(&run(&set, &record()), "test");
    }
    let ok = "a".repeat(64);
    let set = compile(&format!(
        r#"fn check(record, ctx) {{ warn("x-1_b:c.d", "m"); reject("{ok}", "m") }}"#
    ));
    assert_eq!(
        codes(&run(&set, &record())),
        vec![warning("x-1_b:c.d"), err(&ok)]
    );
}

#[test]
fn policy_bad_code_fails_even_when_caught() {
    let set = compile(
        r#"fn check(record, ctx) {
            try { reject("NOT VALID", "m") } catch { }
            warn("fine", "m");
        }"#,
    );
    assert_failed(&run(&set, &record()), "test");
}

#[test]
fn policy_too_many_findings_fail() {
    let set = compile(&format!(
        r#"fn check(record, ctx) {{ for i in 0..{MAX_FINDINGS_PER_CALL} {{ warn("w", "m") }} }}"#
    ));
    assert_eq!(run(&set, &record()).len(), MAX_FINDINGS_PER_CALL);
    let set = compile(&format!(
        r#"fn check(record, ctx) {{ for i in 0..{} {{ try {{ warn("w", "m") }} catch {{ }} }} }}"#,
        MAX_FINDINGS_PER_CALL + 1
    ));
    assert_failed(&run(&set, &record()), "test");
}

#[test]
fn policy_failure_drops_the_calls_other_findings() {
    let set = compile(r#"fn check(record, ctx) { reject("first", "m"); throw "boom"; }"#);
    assert_failed(&run(&set, &record()), "test");
}

#[test]
fn policy_wrong_argument_types_fail() {
    let set = compile(r#"fn check(record, ctx) { warn("code", 42) }"#);
    assert_failed(&run(&set, &record()), "test");
}

// ---------------------------------------------------------------------------------------
// What a script reads

#[test]
fn policy_record_fields_are_readable() {
    assert_script(
        r#"
        if record.marketplace != "gcp" { throw "marketplace" }
        if record.product != "prod-a1" { throw "product" }
        if record.customer != "cust-1" { throw "customer" }
        if record.dimension != "api_calls" { throw "dimension" }
        if type_of(record.quantity) != "decimal" { throw "quantity type" }
        if record.quantity != parse_decimal("2.5") { throw "quantity" }
        if record.start_time.to_string() != "2026-03-31T10:00:00Z" { throw "start_time" }
        if record.end_time.to_string() != "2026-03-31T10:30:00Z" { throw "end_time" }
        if record.record_id != "r-17" { throw "record_id" }
        if record.plan != "gold" { throw "plan" }
        if record.attributes["internal_customer_identifier"] != "ACME-9" { throw "attr index" }
        if record.attributes.region != "eu" { throw "attr property" }
        if record.attributes["nope"] != () { throw "attr absent" }
        if !("region" in record.attributes) { throw "attr in" }
        if "nope" in record.attributes { throw "attr not in" }
        if record.attributes.len() != 2 { throw "attr len" }
        if record.attributes.keys() != ["internal_customer_identifier", "region"] { throw "attr keys" }
        if record.attributes.to_map().region != "eu" { throw "attr map" }
        "#,
    );
}

#[test]
fn policy_absent_record_fields_are_unit() {
    let set = compile(
        r#"fn check(record, ctx) {
            if record.end_time == () && record.record_id == () && record.plan == () && record.attributes.is_empty() {
                warn("all-absent", "m")
            }
        }"#,
    );
    assert_eq!(codes(&run(&set, &record())), vec![warning("all-absent")]);
}

#[test]
fn policy_record_is_read_only() {
    for body in [
        "record.quantity = 5;",
        "record.attributes.region = \"x\";",
        "ctx.now = ctx.now;",
    ] {
        let set = compile(&format!("fn check(record, ctx) {{ {body} }}"));
        assert_failed(&run(&set, &record_with_everything()), "test");
    }
}

#[test]
fn policy_quantity_works_with_integers_and_decimals() {
    assert_script(
        r#"
        let q = record.quantity; // 2.5
        if !(q > 2) || !(q < 3) || !(q >= 2) || q <= 2 || q == 2 { throw "compare int" }
        if !(2 < q) { throw "int first" }
        if q * 2 != 5 || q + 1 != parse_decimal("3.5") || q - 1 != parse_decimal("1.5") { throw "arith" }
        if q * 100 / 50 != 5 { throw "scale" }
        if q.floor() != 2 || q.ceiling() != 3 { throw "round" }
        if to_decimal(3) != 3 { throw "to_decimal" }
        "#,
    );
}

#[test]
fn policy_ctx_fields_are_readable() {
    assert_script(
        r#"
        if ctx.now.to_string() != "2026-03-31T12:00:00Z" { throw "now" }
        let c = ctx.contract;
        if c.status != "cancelled" { throw "status" }
        if c.marketplace != "aws" || c.product != "prod-a1" || c.customer != "cust-1" { throw "key" }
        if c.starts_at != time("2026-01-01T00:00:00Z") { throw "starts_at" }
        if c.cancelled_at != time("2026-04-15T00:00:00Z") { throw "cancelled_at" }
        if c.ends_at != () { throw "ends_at" }
        if c.stop_time != c.cancelled_at { throw "stop_time" }
        if c.plan != "gold" { throw "plan" }
        if c.dimension_names != ["api_calls", "storage_gb"] { throw "names" }
        if !c.has_dimension("storage_gb") || c.has_dimension("nope") { throw "has" }
        let d = c.dimensions;
        if d.len() != 2 || d[0].name != "api_calls" || d[0].unit != () || d[0].type != () { throw "dim 0" }
        if d[1].unit != parse_decimal("0.5") || d[1].type != "decimal" { throw "dim 1" }
        if type_of(ctx.params) != "map" || ctx.params.len() != 0 { throw "params" }
        if ctx.findings.len() != 0 { throw "findings" }
        "#,
    );
}

#[test]
fn policy_ctx_contract_absent_is_unit() {
    let set =
        compile(r#"fn check(record, ctx) { if ctx.contract == () { warn("no-contract", "m") } }"#);
    assert_eq!(codes(&run(&set, &record())), vec![warning("no-contract")]);
}

#[test]
fn policy_ctx_params_are_converted() {
    let set = compile_with(
        "p",
        r#"fn check(record, ctx) {
            let p = ctx.params;
            if p.int != 7 || type_of(p.int) != "i64" { throw "int" }
            if p.dec != parse_decimal("0.75") { throw "dec" }
            if p.s != "txt" || p.b != true || p.n != () { throw "scalars" }
            if p.list != [1, "two"] { throw "list" }
            if p.nested.caps.api_calls != 100000 { throw "nested" }
            if p.missing != () { throw "missing" }
            warn("ok", "m");
        }"#,
        json!({"int": 7, "dec": 0.75, "s": "txt", "b": true, "n": null, "list": [1, "two"],
               "nested": {"caps": {"api_calls": 100000}}}),
    );
    assert_eq!(codes(&run(&set, &record())), vec![warning("ok")]);
}

#[test]
fn policy_ctx_findings_are_readable() {
    let builtin = vec![
        Finding::new(
            metergate_core::finding::Code::WindowClosing,
            "aws.lookback",
            Some("start_time"),
            "closing".into(),
        )
        .hint("send now".into()),
        Finding::new(
            metergate_core::finding::Code::InvalidQuantity,
            "aws.quantity",
            None,
            "bad".into(),
        ),
    ];
    let set = compile(
        r#"fn check(record, ctx) {
            let f = ctx.findings;
            if f.len() != 2 { throw "len" }
            if f[0].code != "window-closing" || f[0].severity != "warning" || f[0].field != "start_time"
                || f[0].hint != "send now" || f[0].rule != "aws.lookback" || f[0].message != "closing" { throw "first" }
            if f[1].severity != "error" || f[1].field != () || f[1].hint != () { throw "second" }
            if f.some(Fn("is_error")) { warn("already-rejected", "m") }
        }
        fn is_error(f) { f.severity == "error" }"#,
    );
    let out = run_at(&set, &record(), now(), None, &builtin);
    assert_eq!(codes(&out), vec![warning("already-rejected")]);
}

// ---------------------------------------------------------------------------------------
// Times

#[test]
fn policy_time_fields_and_calendar() {
    assert_script(
        r#"
        let s = record.start_time; // 2026-03-31T10:00:00Z, a Tuesday
        if s.year != 2026 || s.month != 3 || s.day != 31 || s.hour != 10 || s.minute != 0 || s.second != 0 { throw "fields" }
        if s.weekday != 2 { throw "weekday" }
        if time("2026-03-29T00:00:00Z").weekday != 7 || time("2026-03-30T00:00:00Z").weekday != 1 { throw "iso weekday" }
        if s.offset != "+00:00" { throw "offset" }
        if s.unix != 1774951200 { throw "unix" }
        if s.days_in_month() != 31 || time("2028-02-10T00:00:00Z").days_in_month() != 29
            || time("2026-02-10T00:00:00Z").days_in_month() != 28 || time("2026-04-30T00:00:00Z").days_in_month() != 30 { throw "days" }
        if s.end_of_month().to_string() != "2026-04-01T00:00:00Z" { throw "end_of_month" }
        if time("2026-12-05T00:00:00Z").end_of_month().to_string() != "2027-01-01T00:00:00Z" { throw "december" }
        if s.start_of_month().to_string() != "2026-03-01T00:00:00Z" { throw "start_of_month" }
        if s.start_of_day().to_string() != "2026-03-31T00:00:00Z" { throw "start_of_day" }
        if `${s}` != "2026-03-31T10:00:00Z" { throw "interpolation" }
        "#,
    );
}

#[test]
fn policy_time_arithmetic_and_comparisons() {
    assert_script(
        r#"
        let s = record.start_time;
        let e = record.end_time;
        if !(s < e) || !(e > s) || s >= e || !(s <= s) || s != s || s == e { throw "compare" }
        let d = e - s;
        if d != minutes(30) || d.minutes != 30 || d.seconds != 1800 || d.hours != 0 { throw "difference" }
        if s + minutes(30) != e || e - minutes(30) != s || minutes(30) + s != e { throw "shift" }
        if hours(1) != minutes(60) || days(1) != hours(24) || seconds(60) != minutes(1) { throw "units" }
        if !(hours(1) > minutes(59)) || hours(1) < minutes(59) || !(-hours(1) < seconds(0)) { throw "duration compare" }
        if hours(1) + minutes(30) != minutes(90) || hours(1) - minutes(90) != -minutes(30) { throw "duration arith" }
        if minutes(10) * 6 != hours(1) || (s - e).abs() != d { throw "mul abs" }
        if days(2).days != 2 || (-hours(36)).days != -1 { throw "days getter" }
        if (s + days(1)).day != 1 || (s + days(1)).month != 4 { throw "rollover" }
        "#,
    );
}

#[test]
fn policy_time_offsets() {
    assert_script(
        r#"
        let ist = time("2026-03-31T23:45:00+05:30");
        if ist.hour != 23 || ist.minute != 45 || ist.offset != "+05:30" { throw "local fields" }
        if ist != time("2026-03-31T18:15:00Z") { throw "same instant" }
        if ist.to_utc().hour != 18 || ist.to_string() != "2026-03-31T23:45:00+05:30" { throw "to_utc" }
        if ist.to_utc().to_string() != "2026-03-31T18:15:00Z" { throw "utc string" }
        let at = time_at(2026, 3, 31, 23, 45, "+05:30");
        if at != ist { throw "time_at" }
        if time_at(2026, 3, 31, 18, 15) != ist { throw "time_at utc" }
        if time_at(2026, 3, 31, 18, 15, 30, "Z") != ist + seconds(30) { throw "time_at seconds" }
        let s = record.start_time; // 10:00Z
        if s.in_offset("+05:30").hour != 15 || s.in_offset("+05:30").minute != 30 { throw "in_offset" }
        if s.in_offset("-11:00").day != 30 { throw "west" }
        if time("2026-03-31T20:00:00Z").in_offset("+05:30").day != 1 { throw "next day" }
        if time("2026-03-31T20:00:00Z").in_offset("+05:30").end_of_month().to_string() != "2026-05-01T00:00:00+05:30" { throw "local month end" }
        if time("2026-03-31T20:00:00Z").in_offset("+05:30") != time("2026-03-31T20:00:00Z") { throw "same" }
        if time_at(2026, 2, 15, 12, 0, "-08:00").to_utc().hour != 20 { throw "negative offset" }
        "#,
    );
}

#[test]
fn policy_bad_times_fail_the_record() {
    for body in [
        r#"time("2026-03-31T23:45:00")"#,
        r#"time("yesterday")"#,
        r#"time_at(2026, 2, 30, 0, 0)"#,
        r#"time_at(2026, 3, 31, 24, 0, "Z")"#,
        r#"time_at(2026, 3, 31, 10, 0, "+5:30")"#,
        r#"record.start_time.in_offset("IST")"#,
        r#"record.start_time + days(999999999)"#,
        r#"hours(9223372036854775807)"#,
    ] {
        let set = compile(&format!("fn check(record, ctx) {{ {body}; }}"));
        assert_failed(&run(&set, &record()), "test");
    }
}

// ---------------------------------------------------------------------------------------
// Compiling

#[test]
fn policy_compile_error_names_line_and_column() {
    let err = try_compile("broken", "fn check(record, ctx) {\n    let x = ;\n}\n").unwrap_err();
    match err {
        PolicyError::Compile {
            name, line, column, ..
        } => {
            assert_eq!(name, "broken");
            assert_eq!(line, 2);
            assert_eq!(column, 13);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn policy_undefined_variable_is_a_compile_error() {
    let err = try_compile(
        "strict",
        "fn check(record, ctx) {\n  if nope > 1 { warn(\"a\", \"b\") }\n}",
    )
    .unwrap_err();
    assert!(
        matches!(err, PolicyError::Compile { line: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn policy_without_check_is_refused() {
    for src in [
        "fn other(record, ctx) {}",
        "fn check(record) {}",
        "fn check(record, ctx, extra) {}",
        "",
    ] {
        assert_eq!(
            try_compile("nocheck", src).unwrap_err(),
            PolicyError::MissingCheck {
                name: "nocheck".into()
            }
        );
    }
}

#[test]
fn policy_names_are_checked() {
    let ok = r#"fn check(record, ctx) {}"#;
    assert!(matches!(
        try_compile("", ok),
        Err(PolicyError::InvalidName { .. })
    ));
    assert!(matches!(
        try_compile("a b", ok),
        Err(PolicyError::InvalidName { .. })
    ));
    let twice = [source("same", ok), source("same", ok)];
    assert_eq!(
        PolicySet::compile(&twice, &BTreeMap::new()).unwrap_err(),
        PolicyError::Duplicate {
            name: "same".into()
        }
    );
}

#[test]
fn policy_top_level_statements_never_run() {
    let set = compile(r#"reject("top-level", "m"); fn check(record, ctx) { warn("inside", "m") }"#);
    assert_eq!(codes(&run(&set, &record())), vec![warning("inside")]);
}

// ---------------------------------------------------------------------------------------
// The sandbox

#[test]
fn policy_source_over_64_kib_is_refused() {
    let body = "fn check(record, ctx) {}\n";
    let big = format!("{body}{}", "/".repeat(MAX_POLICY_BYTES + 1 - body.len()));
    assert_eq!(
        try_compile("big", &big).unwrap_err(),
        PolicyError::TooLarge {
            name: "big".into(),
            size: MAX_POLICY_BYTES + 1,
            limit: MAX_POLICY_BYTES
        }
    );
    let fits = format!("{body}{}", "/".repeat(MAX_POLICY_BYTES - body.len()));
    assert!(try_compile("fits", &fits).is_ok());
}

#[test]
fn policy_limit_operations_stops_an_infinite_loop() {
    let set = compile("fn check(record, ctx) { loop { } }");
    assert_failed(&run(&set, &record()), "test");
    let set = compile("fn check(record, ctx) { let i = 0; while true { i += 1; } }");
    assert_failed(&run(&set, &record()), "test");
}

#[test]
fn policy_limit_operations_is_per_record() {
    // About 60% of the budget each call: passes every time, so the budget is not shared.
    let set = compile(
        r#"fn check(record, ctx) { let n = 0; for i in 0..20000 { n += 1; } warn("done", "m") }"#,
    );
    for _ in 0..3 {
        assert_eq!(codes(&run(&set, &record())), vec![warning("done")]);
    }
}

#[test]
fn policy_limits_hold_across_repeated_calls() {
    // Calls on one thread reuse the engine, its scope and the collector. Interleave calls
    // that break each limit with calls that stay just inside it, many times over: every
    // breaking call fails, and nothing one call did (operations, variables, findings, a
    // failure) leaks into the next.
    let bombs = [
        "fn check(record, ctx) { loop { } }",
        "fn down(n) { down(n + 1) } fn check(record, ctx) { down(0) }",
        r#"fn check(record, ctx) { let s = "xxxxxxxx"; loop { s += s; } }"#,
        "fn check(record, ctx) { let a = [1]; loop { a += a; } }",
        r#"fn check(record, ctx) { let m = #{}; let n = 0; loop { m[`${n}`] = n; n += 1; } }"#,
        r#"fn check(record, ctx) { warn("a", "m"); reject("BAD CODE", "m") }"#,
    ];
    let bombs: Vec<PolicySet> = bombs.iter().map(|src| compile(src)).collect();
    let variables = (0..MAX_VARIABLES / 2)
        .map(|i| format!("let v{i} = {i};"))
        .collect::<String>();
    let fine = compile(&format!(
        r#"fn fact(n) {{ if n <= 1 {{ 1 }} else {{ n * fact(n - 1) }} }}
           fn check(record, ctx) {{
               {variables}
               let n = 0; for i in 0..20000 {{ n += 1; }}
               let s = ""; s.pad({MAX_STRING_SIZE}, "x");
               let a = []; a.pad({MAX_ARRAY_SIZE}, 0);
               if fact(10) == 3628800 && s.len() == {MAX_STRING_SIZE} {{ warn("ok", "m") }}
           }}"#
    ));
    for _ in 0..5 {
        for bomb in &bombs {
            assert_failed(&run(bomb, &record()), "test");
            assert_eq!(codes(&run(&fine, &record())), vec![warning("ok")]);
        }
    }
}

#[test]
fn policy_limit_call_levels_stops_recursion() {
    let set = compile("fn down(n) { down(n + 1) } fn check(record, ctx) { down(0) }");
    assert_failed(&run(&set, &record()), "test");
    // Shallow recursion is fine.
    let set = compile(
        r#"fn fact(n) { if n <= 1 { 1 } else { n * fact(n - 1) } } fn check(record, ctx) { if fact(10) == 3628800 { warn("ok", "m") } }"#,
    );
    assert_eq!(codes(&run(&set, &record())), vec![warning("ok")]);
}

#[test]
fn policy_limit_expr_depth_is_a_compile_error() {
    let deep = format!(
        "fn check(record, ctx) {{ let x = {}1{}; }}",
        "(".repeat(200),
        ")".repeat(200)
    );
    assert!(matches!(
        try_compile("deep", &deep),
        Err(PolicyError::Compile { .. })
    ));
    let top = format!(
        "{}1{}; fn check(record, ctx) {{ }}",
        "(".repeat(200),
        ")".repeat(200)
    );
    assert!(matches!(
        try_compile("deep", &top),
        Err(PolicyError::Compile { .. })
    ));
}

#[test]
fn policy_limit_string_size_stops_a_string_bomb() {
    let set = compile(r#"fn check(record, ctx) { let s = "xxxxxxxx"; loop { s += s; } }"#);
    assert_failed(&run(&set, &record()), "test");
    let set = compile(&format!(
        r#"fn check(record, ctx) {{ let s = ""; s.pad({}, "x"); }}"#,
        MAX_STRING_SIZE + 1
    ));
    assert_failed(&run(&set, &record()), "test");
    let set = compile(&format!(
        r#"fn check(record, ctx) {{ let s = ""; s.pad({MAX_STRING_SIZE}, "x"); if s.len() == {MAX_STRING_SIZE} {{ warn("ok", "m") }} }}"#
    ));
    assert_eq!(codes(&run(&set, &record())), vec![warning("ok")]);
    // Many strings in one array count together.
    let set = compile(
        r#"fn check(record, ctx) { let s = ""; s.pad(1000, "x"); let a = []; loop { a.push(s); } }"#,
    );
    assert_failed(&run(&set, &record()), "test");
}

#[test]
fn policy_limit_array_size_stops_an_array_bomb() {
    let set = compile("fn check(record, ctx) { let a = [1]; loop { a += a; } }");
    assert_failed(&run(&set, &record()), "test");
    let set = compile(&format!(
        "fn check(record, ctx) {{ let a = []; a.pad({}, 0); }}",
        MAX_ARRAY_SIZE + 1
    ));
    assert_failed(&run(&set, &record()), "test");
    let set = compile(&format!(
        r#"fn check(record, ctx) {{ let a = []; a.pad({MAX_ARRAY_SIZE}, 0); warn("ok", "m") }}"#
    ));
    assert_eq!(codes(&run(&set, &record())), vec![warning("ok")]);
    let set = compile("fn check(record, ctx) { let a = [[1, 2, 3]]; loop { a.push(a); } }");
    assert_failed(&run(&set, &record()), "test");
}

#[test]
fn policy_limit_array_size_counts_elements_written_by_index() {
    // rhai checks only the written element; the policy sandbox checks the container too.
    let set = compile(&format!(
        "fn check(record, ctx) {{ let big = []; big.pad({MAX_ARRAY_SIZE}, 0); let a = []; a.pad(64, 0); \
         for i in 0..64 {{ a[i] = big; }} a.len(); }}"
    ));
    assert_failed(&run(&set, &record()), "test");
}

#[test]
fn policy_limit_map_size_counts_entries_written_by_key() {
    // A map grown by `m[k] = v` in a loop, with big values: fails instead of using memory.
    let set = compile(&format!(
        r#"fn check(record, ctx) {{ let big = []; big.pad({MAX_ARRAY_SIZE}, 0); let m = #{{}}; let n = 0;
           loop {{ m[`${{n}}`] = big; n += 1; }} }}"#
    ));
    let started = std::time::Instant::now();
    assert_failed(&run(&set, &record()), "test");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let set = compile(
        r#"fn check(record, ctx) { let k = ""; k.pad(1000, "x"); let m = #{}; let n = 0; loop { m[k + n] = 0; n += 1; } }"#,
    );
    assert_failed(&run(&set, &record()), "test");
}

#[test]
fn policy_limit_data_check_steps() {
    // Reading a full-size array in a tight loop: every read walks it, and the walks add up.
    let set = compile(&format!("fn check(record, ctx) {{ let a = []; a.pad({MAX_ARRAY_SIZE}, 0); let n = 0; loop {{ a[0] = n; n += 1; }} }}"));
    let started = std::time::Instant::now();
    assert_failed(&run(&set, &record()), "test");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // Summing a 1000-item array by index is well within it.
    let set = compile(
        r#"fn check(record, ctx) { let a = []; a.pad(1000, 1); let s = 0; for i in 0..1000 { s += a[i]; } if s == 1000 { warn("ok", "m") } }"#,
    );
    assert_eq!(codes(&run(&set, &record())), vec![warning("ok")]);
}

#[test]
fn policy_limit_data_depth() {
    let set = compile("fn check(record, ctx) { let a = []; loop { a = [a]; } }");
    assert_failed(&run(&set, &record()), "test");
}

#[test]
fn policy_closures_and_this_are_disabled() {
    assert!(matches!(
        try_compile("c", "fn check(record, ctx) { let f = |x| x + 1; }"),
        Err(PolicyError::Compile { .. })
    ));
    assert!(matches!(
        try_compile(
            "c",
            "fn check(record, ctx) { let a = [1]; a.map(|x| a.len()); }"
        ),
        Err(PolicyError::Compile { .. })
    ));
    assert!(matches!(
        try_compile("t", "fn grow() { this.x = 1; } fn check(record, ctx) { }"),
        Err(PolicyError::Compile { .. })
    ));
    // Named functions work where closures would.
    let set = compile(
        r#"fn double(x) { x * 2 } fn check(record, ctx) { if [1, 2].map(Fn("double")) == [2, 4] { warn("ok", "m") } }"#,
    );
    assert_eq!(codes(&run(&set, &record())), vec![warning("ok")]);
}

#[test]
fn policy_limit_map_size() {
    let set = compile(&format!(
        r#"fn check(record, ctx) {{ let m = #{{}}; for i in 0..{} {{ m[`k${{i}}`] = i; }} m.len(); warn("unreachable", "m") }}"#,
        MAX_MAP_SIZE + 1
    ));
    assert_failed(&run(&set, &record()), "test");
    let set = compile(&format!(
        r#"fn check(record, ctx) {{ let m = #{{}}; for i in 0..{MAX_MAP_SIZE} {{ m[`k${{i}}`] = i; }} warn("ok", "m") }}"#
    ));
    assert_eq!(codes(&run(&set, &record())), vec![warning("ok")]);
}

#[test]
fn policy_limit_variables() {
    let lets: String = (0..=MAX_VARIABLES)
        .map(|i| format!("let v{i} = {i};\n"))
        .collect();
    let set = compile(&format!("fn check(record, ctx) {{\n{lets} }}"));
    assert_failed(&run(&set, &record()), "test");
}

#[test]
fn policy_limit_functions_is_a_compile_error() {
    let fns: String = (0..=metergate_core::policy::MAX_FUNCTIONS)
        .map(|i| format!("fn f{i}() {{ {i} }}\n"))
        .collect();
    let src = format!("{fns}fn check(record, ctx) {{}}");
    assert!(matches!(
        try_compile("many", &src),
        Err(PolicyError::Compile { .. })
    ));
}

#[test]
fn policy_eval_and_import_are_disabled() {
    assert!(matches!(
        try_compile("e", r#"fn check(record, ctx) { eval("1") }"#),
        Err(PolicyError::Compile { .. })
    ));
    assert!(matches!(
        try_compile("i", r#"fn check(record, ctx) { import "x" as y; }"#),
        Err(PolicyError::Compile { .. })
    ));
    assert!(matches!(
        try_compile("i", r#"import "x" as y; fn check(record, ctx) { }"#),
        Err(PolicyError::Compile { .. })
    ));
}

#[test]
fn policy_no_clock_no_sleep_no_host_access() {
    for call in [
        "timestamp()",
        "sleep(1)",
        "exit()",
        "parse_json(\"{}\")",
        "open_file(\"/etc/passwd\")",
        "Fn(\"get$con\" + \"tract\").call(ctx)",
    ] {
        let set = compile(&format!("fn check(record, ctx) {{ {call}; }}"));
        assert_failed(&run(&set, &record()), "test");
    }
}

#[test]
fn policy_print_and_debug_go_nowhere() {
    let set = compile(
        r#"fn check(record, ctx) { print("hello"); debug(record.quantity); warn("ok", "m") }"#,
    );
    assert_eq!(codes(&run(&set, &record())), vec![warning("ok")]);
}

#[test]
fn policy_runtime_error_does_not_affect_the_next_record() {
    let set = compile(
        r#"fn check(record, ctx) {
            if record.quantity > 1000 { let m = #{}; m.missing.deeper; throw "too big" }
            warn("seen", "m");
        }"#,
    );
    let mut big = record();
    big.quantity = Decimal::from(5000);
    let mut small = record();
    small.quantity = Decimal::from(5);
    assert_failed(&run(&set, &big), "test");
    assert_eq!(codes(&run(&set, &small)), vec![warning("seen")]);
    assert_failed(&run(&set, &big), "test");
    assert_eq!(codes(&run(&set, &small)), vec![warning("seen")]);
}

#[test]
fn policy_one_failing_policy_leaves_the_others_alone() {
    let sources = [
        source("bad", "fn check(record, ctx) { loop {} }"),
        source("good", r#"fn check(record, ctx) { warn("good", "m") }"#),
    ];
    let set = PolicySet::compile(&sources, &BTreeMap::new()).unwrap();
    let out = run(&set, &record());
    assert_eq!(codes(&out), vec![err("policy-failed"), warning("good")]);
    assert_eq!(out[0].rule, "policy:bad");
    assert_eq!(out[1].rule, "policy:good");
}

#[test]
fn policy_no_state_is_carried_between_calls() {
    let set = compile_with(
        "state",
        r#"fn check(record, ctx) {
            let p = ctx.params;
            if p.seen != () { reject("state-leaked", "params") }
            p.seen = true;
            ctx.params.seen2 = true;
            if ctx.params.seen2 != () { reject("state-leaked", "direct") }
            warn("ok", "m");
        }"#,
        json!({"caps": {}}),
    );
    for _ in 0..3 {
        let out = run(&set, &record());
        assert!(out.iter().all(|f| f.code != "state-leaked"), "{out:#?}");
    }
}

#[test]
fn policy_sets_run_on_many_threads() {
    let set = compile_example("dimension_cap", json!({"caps": {"api_calls": 1000}}));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let set = set.clone();
            std::thread::spawn(move || {
                let mut rec = record();
                let mut seen = Vec::new();
                for q in 0..200 {
                    rec.quantity = Decimal::from(q * 10 + i);
                    seen.push(codes(&run(&set, &rec)));
                }
                seen
            })
        })
        .collect();
    for h in handles {
        let seen = h.join().unwrap();
        assert!(seen[0].is_empty());
        assert_eq!(seen[90], vec![warning("near-cap")]);
        assert_eq!(seen[150], vec![err("over-cap")]);
    }
}

// ---------------------------------------------------------------------------------------
// The examples

#[test]
fn policy_examples_all_compile() {
    let dir = format!("{}/../examples/policies", env!("CARGO_MANIFEST_DIR"));
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rhai") {
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            sources.push(source(&name, &std::fs::read_to_string(&path).unwrap()));
        }
    }
    assert!(sources.len() >= 4);
    let set = PolicySet::compile(&sources, &BTreeMap::new()).unwrap();
    // With no params the examples only apply their defaults: nothing fails.
    let out = run(&set, &record());
    assert!(out.iter().all(|f| f.code != "policy-failed"), "{out:#?}");
}

#[test]
fn policy_example_month_end_cutoff() {
    let set = compile_example("month_end_cutoff", json!({}));
    let rec = record(); // usage on 2026-03-31
                        // Default cutoff: 2026-03-31 23:45 IST = 18:15Z.
    assert!(run_at(&set, &rec, t("2026-03-31T18:14:59Z"), None, &[]).is_empty());
    let out = run_at(&set, &rec, t("2026-03-31T18:15:00Z"), None, &[]);
    assert_eq!(codes(&out), vec![warning("month-end-cutoff-seller")]);
    assert_eq!(out[0].rule, "policy:month_end_cutoff");
    assert!(out[0].hint.is_some());
    // Sent in April for March usage: past the cutoff too.
    assert_eq!(
        codes(&run_at(&set, &rec, t("2026-04-01T02:00:00Z"), None, &[])),
        vec![warning("month-end-cutoff-seller")]
    );
    // April usage sent in April: fine.
    let mut april = record();
    april.start_time = t("2026-04-01T01:00:00Z");
    assert!(run_at(&set, &april, t("2026-04-01T02:00:00Z"), None, &[]).is_empty());
    // February (28 days).
    let mut feb = record();
    feb.start_time = t("2026-02-10T00:00:00Z");
    assert!(run_at(&set, &feb, t("2026-02-28T18:00:00Z"), None, &[]).is_empty());
    assert!(!run_at(&set, &feb, t("2026-02-28T18:30:00Z"), None, &[]).is_empty());
}

#[test]
fn policy_example_month_end_cutoff_params() {
    let set = compile_example(
        "month_end_cutoff",
        json!({"offset": "-08:00", "hour": 12, "minute": 0, "action": "reject"}),
    );
    let rec = record();
    // Cutoff 2026-03-31 12:00 at -08:00 = 20:00Z.
    assert!(run_at(&set, &rec, t("2026-03-31T19:59:00Z"), None, &[]).is_empty());
    assert_eq!(
        codes(&run_at(&set, &rec, t("2026-03-31T20:00:00Z"), None, &[])),
        vec![err("month-end-cutoff-seller")]
    );
    // A bad offset in the params fails the record, naming the policy.
    let set = compile_example("month_end_cutoff", json!({"offset": "IST"}));
    assert_failed(&run(&set, &rec), "month_end_cutoff");
}

#[test]
fn policy_example_dimension_cap() {
    let set = compile_example(
        "dimension_cap",
        json!({"caps": {"api_calls": 100000, "storage_gb": 12.5}}),
    );
    let mut rec = record();
    for (q, expected) in [
        ("100", vec![]),
        ("80000", vec![]),
        ("80001", vec![warning("near-cap")]),
        ("100000", vec![warning("near-cap")]),
        ("100000.5", vec![err("over-cap")]),
        ("2000000", vec![err("over-cap")]),
    ] {
        rec.quantity = Decimal::from_str(q).unwrap();
        let out = run(&set, &rec);
        assert_eq!(codes(&out), expected, "quantity {q}");
        assert!(out
            .iter()
            .all(|f| f.field.as_deref() == Some("quantity") && f.rule == "policy:dimension_cap"));
    }
    rec.dimension = "storage_gb".into();
    rec.quantity = Decimal::from(13);
    assert_eq!(codes(&run(&set, &rec)), vec![err("over-cap")]);
    rec.quantity = Decimal::from(11);
    assert_eq!(codes(&run(&set, &rec)), vec![warning("near-cap")]);
    rec.dimension = "uncapped".into();
    rec.quantity = Decimal::from(10_000_000);
    assert!(run(&set, &rec).is_empty());
    // A custom threshold.
    let set = compile_example(
        "dimension_cap",
        json!({"caps": {"api_calls": 1000}, "near_percent": 95}),
    );
    rec.dimension = "api_calls".into();
    rec.quantity = Decimal::from(900);
    assert!(run(&set, &rec).is_empty());
    rec.quantity = Decimal::from(960);
    assert_eq!(codes(&run(&set, &rec)), vec![warning("near-cap")]);
}

#[test]
fn policy_example_require_internal_id() {
    let set = compile_example("require_internal_id", json!({}));
    let mut rec = record();
    let out = run(&set, &rec);
    assert_eq!(codes(&out), vec![err("missing-internal-id")]);
    assert_eq!(
        out[0].field.as_deref(),
        Some("internal_customer_identifier")
    );
    rec.attributes
        .insert("internal_customer_identifier".into(), "   ".into());
    assert_eq!(codes(&run(&set, &rec)), vec![err("missing-internal-id")]);
    rec.attributes
        .insert("internal_customer_identifier".into(), "ACME-9".into());
    assert!(run(&set, &rec).is_empty());

    let set = compile_example(
        "require_internal_id",
        json!({"attribute": "crm_id", "marketplaces": ["azure"]}),
    );
    assert!(run(&set, &rec).is_empty(), "aws is not checked");
    rec.marketplace = Marketplace::Azure;
    let out = run(&set, &rec);
    assert_eq!(codes(&out), vec![err("missing-internal-id")]);
    assert_eq!(out[0].field.as_deref(), Some("crm_id"));
    rec.attributes.insert("crm_id".into(), "42".into());
    assert!(run(&set, &rec).is_empty());
}

#[test]
fn policy_example_spike() {
    let set = compile_example(
        "spike",
        json!({"max_per_hour": {"api_calls": 1000}, "reject_factor": 5}),
    );
    let mut rec = record();
    rec.quantity = Decimal::from(900);
    assert!(run(&set, &rec).is_empty());
    rec.quantity = Decimal::from(1001);
    assert_eq!(codes(&run(&set, &rec)), vec![warning("spike")]);
    rec.quantity = Decimal::from(5001);
    assert_eq!(codes(&run(&set, &rec)), vec![err("spike-extreme")]);
    // Google: 600 in 30 minutes is 1200 an hour.
    rec.marketplace = Marketplace::Gcp;
    rec.quantity = Decimal::from(600);
    rec.end_time = Some(t("2026-03-31T10:30:00Z"));
    assert_eq!(codes(&run(&set, &rec)), vec![warning("spike")]);
    rec.end_time = Some(t("2026-03-31T11:00:00Z"));
    assert!(run(&set, &rec).is_empty());
    // Zero quantities.
    rec.quantity = Decimal::ZERO;
    let out = run(&set, &rec);
    assert_eq!(codes(&out), vec![err("zero-quantity")]);
    assert_eq!(out[0].field.as_deref(), Some("quantity"));
    rec.marketplace = Marketplace::Aws;
    assert!(run(&set, &rec).is_empty());
    // One number for every dimension; zero allowed.
    let set = compile_example("spike", json!({"max_per_hour": 10, "allow_zero": true}));
    rec.marketplace = Marketplace::Azure;
    assert!(run(&set, &rec).is_empty());
    rec.dimension = "anything".into();
    rec.quantity = Decimal::from(11);
    assert_eq!(codes(&run(&set, &rec)), vec![warning("spike")]);
    rec.quantity = Decimal::from(101);
    assert_eq!(codes(&run(&set, &rec)), vec![err("spike-extreme")]);
}

// ---------------------------------------------------------------------------------------
// Hostile policies, part 2 (issue 16): panics, callbacks and size-dependent builtins.

#[test]
fn policy_transcendental_functions_are_left_out() {
    // tan(PI() / 2) panicked in rust_decimal ("Tan overflowed"): the process ended.
    for call in [
        "tan(PI() / 2)",
        "sin(PI())",
        "cos(PI())",
        "sqrt(2.0)",
        "exp(100.0)",
        "ln(0.5)",
        "log(0.5)",
    ] {
        let set = compile(&format!("fn check(record, ctx) {{ let y = {call}; }}"));
        assert_failed(&run(&set, &record()), "test");
    }
}

#[test]
fn policy_decimal_functions_never_panic_at_the_extremes() {
    assert_script(
        r#"
        let m = parse_decimal("79228162514264337593543950335");
        for x in [m, -m, parse_decimal("0.0000000000000000000000000001"), parse_decimal("7922816251426433759354395033.5")] {
            let all = [x.floor(), x.ceiling(), x.round(), x.round(0), x.round(27), x.round(100),
                       x.round_up(0), x.round_down(0), x.round_half_up(0), x.round_half_down(0),
                       x.int, x.fraction, x.abs()];
        }
        let p = 1.5 ** 0.5;
        let q = 2.0 ** 10;
        if q != 1024 { reject("pow", "2 ** 10") }
        if parse_decimal("2.345").round(2) != parse_decimal("2.34") { reject("round", "half even") }
        if parse_decimal("2.345").round_half_up(2) != parse_decimal("2.35") { reject("round", "half up") }
        if parse_decimal("1.25").floor != 1 { reject("floor", "getter") }
        if parse_int("ff", 16) != 255 { reject("parse", "radix") }
        if to_decimal(3) != 3 { reject("to_decimal", "int") }
        if parse_decimal("12.9").to_int() != 12 { reject("to_int", "truncates") }
    "#,
    );
    for call in [
        r#"parse_decimal("79228162514264337593543950335").to_int()"#,
        r#"parse_decimal("1.5").round(-1)"#,
        r#"parse_int("10", 37)"#,
        r#"parse_decimal("79228162514264337593543950335") * 2"#,
        r#"parse_decimal("79228162514264337593543950335") ** 2"#,
        r#"parse_decimal("10") ** 1000001"#,
    ] {
        let set = compile(&format!("fn check(record, ctx) {{ let y = {call}; }}"));
        assert_failed(&run(&set, &record()), "test");
    }
}

#[test]
fn policy_callback_operations_count() {
    // 8,000 reduces of 1,000 items with a trivial callback: 10 s and `accepted` before.
    let items = vec!["x"; 1000].join(",");
    let set = compile(&format!(
        r#"fn z(acc, x) {{ x }} fn check(record, ctx) {{ for i in 0..8000 {{ "{items}".split(",").reduce(Fn("z"), 0); }} }}"#
    ));
    assert_failed(&run(&set, &record()), "test");
    let set = compile(&format!(
        r#"fn z(acc, x) {{ x }} fn check(record, ctx) {{ loop {{ "{items}".split(",").reduce(Fn("z"), 0); }} }}"#
    ));
    assert_failed(&run(&set, &record()), "test");
    // A few callbacks are fine.
    let set = compile(
        r#"fn add(acc, x) { acc + x } fn check(record, ctx) { if [1, 2, 3].reduce(Fn("add"), 0) == 6 { warn("ok", "m") } }"#,
    );
    assert_eq!(codes(&run(&set, &record())), vec![warning("ok")]);
}

#[test]
fn policy_size_dependent_builtins_are_charged() {
    for body in [
        r#"loop { let s = "é".pad(8000, "é"); }"#,
        r#"let s = "a,"; s.pad(2000, "a,"); loop { let p = s.split(","); }"#,
        r#"loop { let t = "é"; t.pad(8000, "é"); let u = t.to_upper().to_lower(); }"#,
        r#"let a = []; a.pad(1000, "xxxxxxxxxx"); loop { let b = a.len(); }"#,
    ] {
        let set = compile(&format!("fn check(record, ctx) {{ {body} }}"));
        assert_failed(&run(&set, &record()), "test");
    }
    // Refused before building 256 MB.
    let set =
        compile(r#"fn check(record, ctx) { let s = "a"; s.pad(16000, "a"); s.replace("a", s); }"#);
    assert_failed(&run(&set, &record()), "test");
    let set = compile(r#"fn check(record, ctx) { let s = "a"; s.pad(16000, "a"); s.split(""); }"#);
    assert_failed(&run(&set, &record()), "test");
    // The same builtins on ordinary sizes work as before.
    assert_script(
        r#"
        let s = "ab"; s.pad(5, "xy");
        if s != "abxyx" { reject("pad", s) }
        let s = "ab"; s.pad(4, 'z');
        if s != "abzz" { reject("pad", s) }
        if "a-b-c".split("-") != ["a", "b", "c"] { reject("split", "str") }
        if "a-b".split('-') != ["a", "b"] { reject("split", "char") }
        if "abc".split("") != ["", "a", "b", "c", ""] { reject("split", "empty") }
        let r = "aXbX"; r.replace("X", "yy");
        if r != "ayybyy" { reject("replace", r) }
        let r = "aXb"; r.replace('X', '-');
        if r != "a-b" { reject("replace", "chars") }
        if "Straße".to_upper() != "STRASSE" { reject("upper", "ß") }
        let u = "AbC"; u.make_lower();
        if u != "abc" { reject("lower", u) }
        let a = [1]; a.pad(3, 0);
        if a != [1, 0, 0] { reject("pad", "array") }
    "#,
    );
}

#[test]
fn policy_sort_and_dedup_callback_errors_fail_the_record() {
    for body in [
        r#"fn slow(a, b) { loop {} } fn check(record, ctx) { [3, 1, 2].sort(Fn("slow")) }"#,
        r#"fn bad(a, b) { throw "no" } fn check(record, ctx) { [3, 1, 2].sort(Fn("bad")) }"#,
        r#"fn deep(a, b) { deep(a, b) } fn check(record, ctx) { [3, 1, 2].sort(Fn("deep")) }"#,
        r#"fn text(a, b) { "x" } fn check(record, ctx) { [3, 1, 2].sort(Fn("text")) }"#,
        r#"fn slow(a, b) { loop {} } fn check(record, ctx) { [1, 1, 2].dedup(Fn("slow")) }"#,
        r#"fn bad(a, b) { throw "no" } fn check(record, ctx) { [1, 1, 2].dedup(Fn("bad")) }"#,
        r#"fn bad(a, b) { throw "no" } fn check(record, ctx) { [1, 1, 2].dedup("bad") }"#,
        r#"fn check(record, ctx) { [3, 1, 2].sort("missing") }"#,
    ] {
        let set = compile(body);
        assert_failed(&run(&set, &record()), "test");
    }
    // Caught or not, a limit hit inside a callback fails the record.
    let set = compile(
        r#"fn slow(a, b) { loop {} } fn check(record, ctx) { try { [3, 1, 2].sort(Fn("slow")) } catch {} }"#,
    );
    assert_failed(&run(&set, &record()), "test");
    // Sorting and dedup still work, stably, and a comparer that is no total order never panics.
    assert_script(
        r#"
        let a = [5, 3, 9, 1, 3, 7, 2, 8, 6, 4, 0];
        a.sort(Fn("cmp"));
        if a != [0, 1, 2, 3, 3, 4, 5, 6, 7, 8, 9] { reject("sort", "ints " + a) }
        let b = [#{k: 2, i: 0}, #{k: 1, i: 1}, #{k: 2, i: 2}, #{k: 1, i: 3}];
        b.sort(Fn("by_k"));
        if b.map(Fn("i")) != [1, 3, 0, 2] { reject("sort", "stable") }
        let c = [4, 1, 3]; c.sort(Fn("lt"));
        if c != [1, 3, 4] { reject("sort", "bool comparer") }
        let d = []; for i in 0..300 { d.push((i * 37) % 300); }
        d.sort(Fn("always"));
        if d.len() != 300 { reject("sort", "lost items") }
        let e = [1, 1, 2, 2, 2, 1]; e.dedup(Fn("same"));
        if e != [1, 2, 1] { reject("dedup", "fn") }
        let f = [1, 1, 2]; f.dedup();
        if f != [1, 2] { reject("dedup", "plain") }
        let g = [3, 1, 2]; g.sort();
        if g != [1, 2, 3] { reject("sort", "plain") }
    } fn cmp(a, b) { a - b } fn by_k(x, y) { x.k - y.k } fn i(x) { x.i }
      fn lt(a, b) { a < b } fn always(a, b) { 1 } fn same(a, b) { a == b } fn unused() {
    "#,
    );
}
