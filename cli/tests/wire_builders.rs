//! What `check` accepts, `submit` can send: every record of every conformance case that the
//! core accepts goes through the submitters' wire builders (`metergate::submit::wire_values`,
//! the AWS, Microsoft and Google ones), and none may refuse it. A builder that refuses an
//! accepted record means a wire rule lives outside the core.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use metergate_core::time::parse_rfc3339;
use metergate_core::{
    ContractSet, HistoryEntry, PolicySource, RawRecord, Settings, Validator, VerdictKind,
};
use serde_json::Value;

fn fixture_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    v
}

#[test]
fn no_wire_builder_refuses_a_record_the_core_accepted() {
    let mut accepted = 0;
    let mut by_marketplace = [0usize; 3];
    let mut refused = Vec::new();
    for path in fixture_files() {
        let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let stem = path.file_name().unwrap().to_string_lossy().into_owned();
        for case in file["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let contracts = ContractSet::from_json(&case["contracts"].to_string()).unwrap();
            let settings = match case.get("settings") {
                Some(s) if !s.is_null() => Settings::from_json_value(s.clone()).unwrap(),
                _ => Settings::default(),
            };
            let policies: Vec<PolicySource> = case
                .get("policies")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| PolicySource {
                            name: p["name"].as_str().unwrap().to_owned(),
                            source: p["source"].as_str().unwrap().to_owned(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let v = Validator::new(contracts, settings, &policies).unwrap();
            let now = parse_rfc3339(case["now"].as_str().unwrap()).unwrap();
            let mut session = v.session(now);
            if let Some(Value::Array(h)) = case.get("history") {
                for e in h {
                    let e: HistoryEntry = serde_json::from_value(e.clone()).unwrap();
                    session.add_history(&e);
                }
            }
            for (i, r) in case["records"].as_array().unwrap().iter().enumerate() {
                let raw: RawRecord = serde_json::from_value(r.clone()).unwrap();
                let (verdict, parsed) = session.check_full(raw);
                if verdict.verdict != VerdictKind::Accepted {
                    continue;
                }
                let rec = parsed.expect("an accepted record parses");
                let c = v
                    .contracts()
                    .find(rec.marketplace, &rec.product, &rec.customer)
                    .map(|(_, c)| c);
                accepted += 1;
                by_marketplace[match rec.marketplace {
                    metergate_core::Marketplace::Aws => 0,
                    metergate_core::Marketplace::Azure => 1,
                    metergate_core::Marketplace::Gcp => 2,
                }] += 1;
                if let Err(why) = metergate::submit::wire_values(&rec, c) {
                    refused.push(format!("{stem}: {name:?}: record {i}: {why}"));
                }
            }
        }
    }
    eprintln!(
        "{accepted} accepted records built for the wire (aws, azure, gcp: {by_marketplace:?})"
    );
    assert!(
        refused.is_empty(),
        "{} accepted record(s) refused by a wire builder:\n{}",
        refused.len(),
        refused.join("\n")
    );
    assert!(
        by_marketplace.iter().all(|n| *n >= 20),
        "{by_marketplace:?}"
    );
}
