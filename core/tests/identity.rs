//! Contract states as written, wire identities and the dedup series (issue 14 items 1-4).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use metergate_core::time::parse_rfc3339;
use metergate_core::{
    status_of, wire_identity, Contract, ContractError, ContractSet, ContractStatus, Marketplace,
    RawRecord, Settings, WireIdentity,
};

const AZ: &str = r#"{"marketplace":"azure","product":"offer-x","customer":"sub-1","status":"Subscribed",
  "starts_at":"2026-01-01T00:00:00Z","plan":"gold","resource_id":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
  "dimensions":[{"name":"requests"}]}"#;

#[test]
fn a_contract_keeps_its_state_word_and_round_trips() {
    let c: Contract = serde_json::from_str(AZ).unwrap();
    assert_eq!(c.status, ContractStatus::Active);
    assert_eq!(c.status_word.as_deref(), Some("Subscribed"));
    assert_eq!(c.status_text(), "Subscribed");
    let text = serde_json::to_string(&c).unwrap();
    assert!(text.contains(r#""status":"Subscribed""#), "{text}");
    let back: Contract = serde_json::from_str(&text).unwrap();
    assert_eq!(back, c);
    // The canonical word keeps no separate spelling.
    let plain: Contract = serde_json::from_str(&AZ.replace("Subscribed", "active")).unwrap();
    assert_eq!(plain.status_word, None);
    assert_eq!(plain.status_text(), "active");
}

#[test]
fn a_foreign_word_is_a_contract_error_on_status_with_the_index() {
    let text = format!(
        "[{AZ}, {}]",
        AZ.replace("azure", "gcp").replace("sub-1", "p")
    );
    match ContractSet::from_json(&text) {
        Err(ContractError::Invalid {
            index,
            field,
            message,
            ..
        }) => {
            assert_eq!((index, field), (1, "status"));
            assert!(message.contains("ACTIVE") && message.contains("PENDING_CANCELLATION"));
        }
        other => panic!("{other:?}"),
    }
    assert!(status_of(Marketplace::Aws, "Subscribed").is_err());
}

#[test]
fn empty_identity_fields_are_unset_and_the_identity_comes_from_one_place() {
    let c: Contract = serde_json::from_str(
        r#"{"marketplace":"aws","product":"p","customer":"cust-1","status":"ACTIVE",
            "starts_at":"2026-01-01T00:00:00Z","customer_identifier":"","aws_account_id":"",
            "license_arn":""}"#,
    )
    .unwrap();
    assert_eq!(c.customer_identifier, None);
    assert_eq!(
        wire_identity(&c).unwrap(),
        WireIdentity::AwsCustomerIdentifier("cust-1".into())
    );
}

#[test]
fn the_hint_names_the_other_customer_key_with_the_same_identity() {
    let contracts = ContractSet::from_json(
        r#"[{"marketplace":"aws","product":"p","customer":"cust-a","status":"active",
             "starts_at":"2026-01-01T00:00:00Z","customer_identifier":"CID","dimensions":[{"name":"d"}]},
            {"marketplace":"aws","product":"p","customer":"cust-b","status":"active",
             "starts_at":"2026-01-01T00:00:00Z","customer_identifier":"CID","dimensions":[{"name":"d"}]}]"#,
    )
    .unwrap();
    let rec = |c: &str, q: u32| -> RawRecord {
        serde_json::from_str(&format!(
            r#"{{"marketplace":"aws","product":"p","customer":"{c}","dimension":"d","quantity":{q},"start_time":"2026-03-10T10:00:00Z"}}"#
        ))
        .unwrap()
    };
    let now = parse_rfc3339("2026-03-10T12:00:00Z").unwrap();
    let r = metergate_core::validate(
        &[rec("cust-a", 5), rec("cust-b", 6)],
        &contracts,
        &Settings::default(),
        now,
    );
    let f = &r.verdicts[1].findings[0];
    assert_eq!(f.code, "duplicate-request");
    assert!(f.hint.as_deref().unwrap().contains("cust-a"), "{f:?}");
}
