//! Contract properties (the seller's own labels) and money dimensions (`price`): read from
//! contracts JSON, written back, checked, and shown to policies as `ctx.contract.properties`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use metergate_core::time::parse_rfc3339;
use metergate_core::{ContractError, ContractSet, PolicySource, RawRecord, Settings, Validator};

const CONTRACTS: &str = r#"[{"marketplace":"aws","product":"prod-a1","customer":"cust-1",
  "status":"active","starts_at":"2026-01-01T00:00:00Z",
  "dimensions":[{"name":"usage_fee","price":0.01,"currency":"USD"}],
  "properties":{"internal_customer_identifier":"acme-42","orb_subscription_id":"sub_1"}}]"#;

#[test]
fn properties_and_price_round_trip() {
    let set = ContractSet::from_json(CONTRACTS).unwrap();
    let c = &set.all()[0];
    assert_eq!(c.properties["internal_customer_identifier"], "acme-42");
    assert_eq!(c.dimensions[0].price.unwrap().to_string(), "0.01");
    assert_eq!(c.dimensions[0].currency(), "USD");
    let back = serde_json::to_value(c).unwrap();
    assert_eq!(back["properties"]["orb_subscription_id"], "sub_1");
    assert_eq!(back["dimensions"][0]["price"], "0.01");
    // No properties: none written back.
    let plain = ContractSet::from_json(
        r#"[{"marketplace":"aws","product":"p","customer":"c","status":"active",
        "starts_at":"2026-01-01T00:00:00Z"}]"#,
    )
    .unwrap();
    assert!(serde_json::to_value(&plain.all()[0])
        .unwrap()
        .get("properties")
        .is_none());
}

fn invalid(json: &str) -> (&'static str, String) {
    match ContractSet::from_json(json) {
        Err(ContractError::Invalid { field, message, .. }) => (field, message),
        Err(ContractError::Parse { path, .. }) => ("parse", path),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn bad_prices_and_properties_are_refused() {
    let base = |dims: &str, props: &str| {
        format!(
            r#"[{{"marketplace":"aws","product":"p","customer":"c","status":"active",
            "starts_at":"2026-01-01T00:00:00Z","dimensions":{dims},"properties":{props}}}]"#
        )
    };
    assert_eq!(
        invalid(&base(r#"[{"name":"f","price":0}]"#, "{}")).0,
        "dimensions"
    );
    assert_eq!(
        invalid(&base(r#"[{"name":"f","price":-1}]"#, "{}")).0,
        "dimensions"
    );
    assert_eq!(
        invalid(&base(r#"[{"name":"f","currency":"USD"}]"#, "{}")).0,
        "dimensions"
    );
    assert_eq!(
        invalid(&base(
            r#"[{"name":"f","price":1,"currency":"dollars"}]"#,
            "{}"
        ))
        .0,
        "dimensions"
    );
    assert_eq!(invalid(&base("[]", r#"{"":"x"}"#)).0, "properties");
    // Properties are strings.
    assert_eq!(
        invalid(&base("[]", r#"{"n":5}"#)),
        ("parse", "[0].properties.n".into())
    );
}

#[test]
fn policies_see_properties() {
    let set = ContractSet::from_json(CONTRACTS).unwrap();
    let policy = PolicySource {
        name: "needs_id".into(),
        source: r#"fn check(record, ctx) {
            let p = ctx.contract.properties;
            if p.internal_customer_identifier != "acme-42" { reject("no-id", "missing"); }
            if p.missing != () { reject("odd", "a property that is not there"); }
            if ctx.contract.dimensions[0].price != parse_decimal("0.01") { reject("price", "price"); }
        }"#
        .into(),
    };
    let v = Validator::new(set, Settings::default(), &[policy]).unwrap();
    let rec: RawRecord = serde_json::from_str(
        r#"{"marketplace":"aws","product":"prod-a1","customer":"cust-1",
        "dimension":"usage_fee","quantity":3,"start_time":"2026-03-01T10:00:00Z"}"#,
    )
    .unwrap();
    let verdict = v.check_one(rec, parse_rfc3339("2026-03-01T10:30:00Z").unwrap());
    let codes: Vec<&str> = verdict.findings.iter().map(|f| f.code.as_str()).collect();
    assert!(codes.is_empty(), "{codes:?}");
}
