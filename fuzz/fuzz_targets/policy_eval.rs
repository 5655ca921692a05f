//! Policy source → compile → run on records, under the production limits (the sandbox's
//! `MAX_*` constants, as `Validator::new` sets them).
//!
//! Invariants: compiling never panics; a policy only ever adds findings after the built-in
//! ones (the built-in findings of each record are the same as without it); every finding
//! it adds carries its rule `policy:fuzz`; judging the same records twice gives the same
//! verdicts (no state carried between calls).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use metergate_core::{PolicySource, RawRecord, Settings, Validator};

/// Records with distinct keys (so that a record the policy rejects changes no other's dedup),
/// good and bad, with attributes.
const RECORDS: &str = r#"[
 {"marketplace":"aws","product":"prod-a1","customer":"cust-1","dimension":"api_calls","quantity":3,"start_time":"2026-03-10T10:00:00Z","record_id":"r1","team":"a"},
 {"marketplace":"aws","product":"prod-a1","customer":"cust-1","dimension":"storage_gb","quantity":"7","start_time":"2026-03-10T10:00:00Z"},
 {"marketplace":"azure","product":"offer-x","customer":"sub-1","dimension":"requests","quantity":"120000","start_time":"2026-03-09T23:00:00Z","plan":"gold","attributes":{"internal_id":"x-1"}},
 {"marketplace":"gcp","product":"svc.example.com","customer":"proj-1","dimension":"cpu_hours","quantity":"0.5","start_time":"2026-03-10T09:00:00Z","end_time":"2026-03-10T10:00:00Z"},
 {"marketplace":"gcp","product":"svc.example.com","customer":"proj-old","dimension":"requests","quantity":"0","start_time":"2026-02-28T09:00:00Z","end_time":"2026-02-28T10:00:00Z"},
 {"marketplace":"aws","product":"prod-a1","customer":"nobody","dimension":"api_calls","quantity":1,"start_time":"2026-03-10T11:00:00Z"}
]"#;

fn records() -> Vec<RawRecord> {
    match serde_json::from_str(RECORDS) {
        Ok(r) => r,
        Err(e) => panic!("fixed records: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let mut settings = Settings::default();
    let params = serde_json::json!({"cap": 1000, "names": ["a", "b"], "max_per_hour": {"api_calls": 5}, "on": true});
    settings.params.insert("fuzz".to_owned(), params);
    let policy = PolicySource {
        name: "fuzz".to_owned(),
        source: source.to_owned(),
    };
    let Ok(v) = Validator::new(common::contracts(), settings, &[policy]) else {
        return;
    };
    let now = common::now();
    let first = v.validate(records(), &[], now);
    common::check_report(&first);
    let plain = common::base().validate(records(), &[], now);
    for (with, without) in first.verdicts.iter().zip(&plain.verdicts) {
        let n = without.findings.len();
        assert!(with.findings.len() >= n);
        assert_eq!(
            with.findings[..n],
            without.findings[..],
            "a policy changed built-in findings"
        );
        for f in &with.findings[n..] {
            assert_eq!(
                f.rule, "policy:fuzz",
                "policy finding with another rule: {f:?}"
            );
        }
    }
    let again = v.validate(records(), &[], now);
    assert_eq!(first, again, "the same records judged twice differ");
    // One record alone gives what it got in the session (keys are distinct).
    for (i, r) in records().into_iter().enumerate() {
        let one = v.check_one(r, now);
        assert_eq!(
            one.findings, first.verdicts[i].findings,
            "check_one differs for record {i}"
        );
    }
});
