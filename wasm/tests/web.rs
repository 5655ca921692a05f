//! `#[wasm_bindgen_test]`s, run under Node by wasm-bindgen-test-runner (see wasm/test.sh):
//!
//!     CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
//!       cargo test --target wasm32-unknown-unknown -p metergate-wasm --test web
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(target_arch = "wasm32")]

use js_sys::{Reflect, JSON};
use metergate_core::Field;
use metergate_wasm::{aggregate_hourly, explain, raw_item, validate, version, JsValidator};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

const CONTRACTS: &str = r#"[{"marketplace":"aws","product":"prod-a1","customer":"cust-1",
  "status":"active","starts_at":"2026-01-01T00:00:00Z","customer_identifier":"Xk8JmQ2pLz9",
  "dimensions":[{"name":"api_calls"},{"name":"data_gb","unit":"5"}]}]"#;
const NOW: &str = "2026-03-01T12:00:00Z";

fn js(text: &str) -> JsValue {
    JSON::parse(text).unwrap()
}

fn get(v: &JsValue, path: &str) -> JsValue {
    path.split('.')
        .fold(v.clone(), |v, k| match k.parse::<u32>() {
            Ok(i) => Reflect::get_u32(&v, i).unwrap(),
            Err(_) => Reflect::get(&v, &JsValue::from_str(k)).unwrap(),
        })
}

fn codes(verdict: &JsValue) -> Vec<String> {
    let findings: js_sys::Array = get(verdict, "findings").into();
    findings
        .iter()
        .map(|f| get(&f, "code").as_string().unwrap())
        .collect()
}

fn opts() -> JsValue {
    js(&format!(r#"{{"now":"{NOW}"}}"#))
}

fn rec(extra: &str) -> String {
    format!(
        r#"{{"marketplace":"aws","product":"prod-a1","customer":"cust-1","dimension":"api_calls",
        "start_time":"2026-03-01T10:00:00Z"{extra}}}"#
    )
}

#[wasm_bindgen_test]
fn js_numbers_are_numbers_strings_are_text_and_nullish_is_missing() {
    let r = raw_item(js(
        r#"{"quantity":12.5,"record_id":"r1","plan":null,"product":"","team":"x","n":3}"#,
    ))
    .unwrap();
    assert_eq!(r.quantity, Some(Field::Number("12.5".into())));
    assert_eq!(r.record_id, Some(Field::Text("r1".into())));
    assert_eq!(r.plan, None);
    assert_eq!(r.product, None);
    assert_eq!(r.attributes.get("team"), Some(&Field::Text("x".into())));
    assert_eq!(r.attributes.get("n"), Some(&Field::Number("3".into())));

    let obj = js_sys::Object::new();
    Reflect::set(&obj, &"quantity".into(), &JsValue::UNDEFINED).unwrap();
    Reflect::set(&obj, &"end_time".into(), &JsValue::from_f64(1e21)).unwrap();
    Reflect::set(&obj, &"plan".into(), &JsValue::from_f64(f64::NAN)).unwrap();
    let r = raw_item(obj.into()).unwrap();
    assert_eq!(r.quantity, None);
    assert_eq!(r.plan, None, "NaN has no JSON form: missing");
    assert_eq!(
        r.end_time,
        Some(Field::Number("1000000000000000000000".into()))
    );

    assert_eq!(
        raw_item(js("[1]")).unwrap_err(),
        "it is an array, not an object"
    );
    assert_eq!(
        raw_item(JsValue::NULL).unwrap_err(),
        "it is null, not an object"
    );
    assert_eq!(
        raw_item(JsValue::UNDEFINED).unwrap_err(),
        "it is null, not an object"
    );
    assert_eq!(
        raw_item(JsValue::from_f64(3.0)).unwrap_err(),
        "it is a number, not an object"
    );
}

#[wasm_bindgen_test]
fn validate_gives_the_cli_shape_and_judges_bad_values_instead_of_throwing() {
    let records = js(&format!(
        "[{},{},{},{},7]",
        rec(r#","quantity":3,"record_id":"r1""#),
        rec(r#","quantity":"3.5","start_time":"2026-03-01T09:00:00Z""#),
        rec(r#","quantity":true,"dimension":"data_gb","start_time":"2026-03-01T11:00:00Z""#),
        rec(r#","quantity":"ten","start_time":"2026-03-01T09:00:00Z""#),
    ));
    let report = validate(records, js(CONTRACTS), opts()).unwrap();
    let v0 = get(&report, "verdicts.0");
    assert_eq!(get(&v0, "verdict").as_string().unwrap(), "accepted");
    assert_eq!(get(&v0, "record_id").as_string().unwrap(), "r1");
    let v1 = get(&report, "verdicts.1");
    assert!(
        get(&v1, "record_id").is_null(),
        "record_id is null, not undefined"
    );
    assert_eq!(codes(&v1), vec!["invalid-quantity"]);
    assert!(get(&v1, "findings.0.hint").is_string());
    assert_eq!(codes(&get(&report, "verdicts.2")), vec!["invalid-quantity"]);
    assert_eq!(codes(&get(&report, "verdicts.3")), vec!["invalid-quantity"]);
    let v4 = get(&report, "verdicts.4");
    assert_eq!(get(&v4, "index").as_f64().unwrap(), 4.0);
    assert_eq!(codes(&v4), vec!["invalid-record"]);
    assert!(get(&v4, "findings.0.field").is_null());
    assert_eq!(get(&report, "summary.records").as_f64().unwrap(), 5.0);
    assert_eq!(get(&report, "summary.rejected").as_f64().unwrap(), 4.0);
    assert_eq!(
        get(&report, "summary.by_code.invalid-quantity")
            .as_f64()
            .unwrap(),
        3.0
    );
}

#[wasm_bindgen_test]
fn unusable_arguments_throw_errors_with_messages() {
    let e = validate(js("{}"), js(CONTRACTS), opts()).unwrap_err();
    let e: JsValue = e.into();
    assert!(e.is_instance_of::<js_sys::Error>());
    assert!(get(&e, "message")
        .as_string()
        .unwrap()
        .starts_with("records:"));

    let e: JsValue = validate(js("[]"), js(r#"[{"marketplace":"aws"}]"#), opts())
        .unwrap_err()
        .into();
    assert!(get(&e, "message")
        .as_string()
        .unwrap()
        .starts_with("contracts:"));

    let e: JsValue = validate(js("[]"), js(CONTRACTS), js(r#"{"now":"tomorrow"}"#))
        .unwrap_err()
        .into();
    assert!(get(&e, "message").as_string().unwrap().starts_with("now:"));

    let e: JsValue = validate(
        js("[]"),
        js(CONTRACTS),
        js(r#"{"settings":{"warning_margin":"soon"}}"#),
    )
    .unwrap_err()
    .into();
    assert!(get(&e, "message")
        .as_string()
        .unwrap()
        .starts_with("settings:"));

    let bad_policy =
        js(r#"{"policies":[{"name":"cap","source":"fn check(record, ctx) {\n  let = 1\n}"}]}"#);
    let e: JsValue = JsValidator::new(js(CONTRACTS), bad_policy)
        .err()
        .unwrap()
        .into();
    let msg = get(&e, "message").as_string().unwrap();
    assert!(msg.starts_with("policy cap: line 2, column "), "{msg}");
}

#[wasm_bindgen_test]
fn validator_policies_history_record_csv_and_deadline() {
    let options = js(
        r#"{"policies":["fn check(record, ctx) { if record.quantity > 100 { reject_field(\"quantity\", \"too-big\", \"over 100\") } }"]}"#,
    );
    let v = JsValidator::new(js(CONTRACTS), options).unwrap();

    let one = v
        .validate_record(js(&rec(r#","quantity":101"#)), Some(NOW.into()))
        .unwrap();
    assert_eq!(codes(&one), vec!["too-big"]);
    assert_eq!(
        get(&one, "findings.0.rule").as_string().unwrap(),
        "policy:policy0"
    );
    assert_eq!(
        get(&one, "findings.0.field").as_string().unwrap(),
        "quantity"
    );

    let history = js(
        r#"[{"marketplace":"aws","product":"prod-a1","customer":"cust-1","dimension":"api_calls",
        "start_time":"2026-03-01T10:00:00Z","quantity":"3"}]"#,
    );
    let report = v
        .validate(
            js(&format!("[{}]", rec(r#","quantity":3"#))),
            Some(NOW.into()),
            history,
        )
        .unwrap();
    assert_eq!(
        codes(&get(&report, "verdicts.0")),
        vec!["duplicate-ignored"]
    );

    let csv = "quantity,start_time,dimension,customer,product,marketplace,record_id,team\n\
               3,2026-03-01T10:00:00Z,api_calls,cust-1,prod-a1,aws,a,x\n\
               \"3\",2026-03-01T10:00:00Z,api_calls,cust-1,prod-a1,aws,,\n\
               7,2026-03-01T11:00:00Z,data_gb,cust-1,prod-a1,aws,c,\n";
    let report = v
        .validate_csv(csv.into(), Some(NOW.into()), JsValue::UNDEFINED)
        .unwrap();
    assert_eq!(get(&report, "verdicts.0.line").as_f64().unwrap(), 2.0);
    assert_eq!(
        get(&report, "verdicts.0.verdict").as_string().unwrap(),
        "accepted"
    );
    assert_eq!(
        codes(&get(&report, "verdicts.1")),
        vec!["duplicate-ignored"]
    );
    assert!(get(&report, "verdicts.1.record_id").is_null());
    assert_eq!(codes(&get(&report, "verdicts.2")), vec!["invalid-quantity"]);
    assert_eq!(get(&report, "verdicts.2.line").as_f64().unwrap(), 4.0);

    let d = v
        .deadline(js(&rec(r#","quantity":3"#)), Some(NOW.into()))
        .unwrap();
    assert_eq!(
        get(&d, "at").as_string().unwrap(),
        "2026-03-01T15:59:59.999999999Z"
    );
    assert_eq!(get(&d, "rule").as_string().unwrap(), "aws.lookback");
    assert!(v
        .deadline(js(r#"{"quantity":"x"}"#), Some(NOW.into()))
        .unwrap()
        .is_null());
}

#[wasm_bindgen_test]
fn explain_aggregate_and_version() {
    let e = explain("late-report").unwrap();
    assert_eq!(get(&e, "severity").as_string().unwrap(), "warning");
    assert!(explain("no-such-code").unwrap().is_null());

    let records = js(&format!(
        "[{},{},{{}}]",
        rec(r#","quantity":3"#),
        rec(r#","quantity":"4.5","start_time":"2026-03-01T10:30:00Z""#)
    ));
    let agg = aggregate_hourly(records, JsValue::UNDEFINED).unwrap();
    assert_eq!(get(&agg, "records.0.quantity").as_string().unwrap(), "7.5");
    assert_eq!(get(&agg, "skipped.0.index").as_f64().unwrap(), 2.0);
    assert_eq!(version(), env!("CARGO_PKG_VERSION"));
}
