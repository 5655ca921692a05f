//! Contracts JSON → `ContractSet::from_json` → `Validator` → verdicts and deadlines.
//!
//! The input is the contracts text, optionally followed by a line `---` and a settings JSON
//! object (the WASM `settings` option / the CLI's converted config). When both load, records
//! aimed at every contract and dimension, at the edges of its dates, are judged: nothing may
//! panic, whatever the dates (year 1 to 9999, cancelled the second it starts, ...).
#![no_main]

mod common;

use chrono::{DateTime, Duration, Utc};
use libfuzzer_sys::fuzz_target;
use metergate_core::{ContractSet, Field, RawRecord, Settings, Validator};

fn record(c: &metergate_core::Contract, dim: &str, at: DateTime<Utc>, q: &str) -> RawRecord {
    let mut r = RawRecord::default();
    r.set(
        "marketplace",
        Field::Text(c.marketplace.as_str().to_owned()),
    );
    r.set("product", Field::Text(c.product.clone()));
    r.set("customer", Field::Text(c.customer.clone()));
    r.set("dimension", Field::Text(dim.to_owned()));
    r.set("quantity", Field::Text(q.to_owned()));
    let t = metergate_core::time::format_rfc3339(at);
    r.set("start_time", Field::Text(t));
    let end = metergate_core::time::add(at, Duration::hours(1));
    r.set(
        "end_time",
        Field::Text(metergate_core::time::format_rfc3339(end)),
    );
    if let Some(p) = &c.plan {
        r.set("plan", Field::Text(p.clone()));
    }
    r
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (contracts_text, settings_text) = match text.split_once("\n---\n") {
        Some((c, s)) => (c, Some(s)),
        None => (text, None),
    };
    let Ok(contracts) = ContractSet::from_json(contracts_text) else {
        return;
    };
    let settings = match settings_text.map(serde_json::from_str::<serde_json::Value>) {
        None => Settings::default(),
        Some(Ok(v)) => match Settings::from_json_value(v) {
            Ok(s) => s,
            Err(_) => return,
        },
        Some(Err(_)) => return,
    };
    let Ok(v) = Validator::new(contracts.clone(), settings, &[]) else {
        return;
    };
    let now = common::now();
    let mut records = Vec::new();
    for c in contracts.all().iter().take(8) {
        let found = contracts.find(c.marketplace, &c.product, &c.customer);
        assert!(
            found.is_some(),
            "a loaded contract is not found by its own key"
        );
        let mut times = vec![
            c.starts_at,
            now,
            metergate_core::time::add(now, Duration::hours(-2)),
        ];
        times.push(metergate_core::time::add(
            c.starts_at,
            Duration::seconds(-1),
        ));
        if let Some(stop) = c.stop_time() {
            times.push(stop);
            times.push(metergate_core::time::add(stop, Duration::seconds(-1)));
        }
        let mut dims: Vec<&str> = c
            .dimensions
            .iter()
            .take(4)
            .map(|d| d.name.as_str())
            .collect();
        dims.push("not-a-dimension");
        for d in dims {
            for &t in &times {
                for q in ["0", "1", "5", "0.25", "-1"] {
                    records.push(record(c, d, t, q));
                }
            }
        }
    }
    for r in records.iter().take(64) {
        let _ = v.deadline(r.clone(), now);
        let one = v.check_one(r.clone(), now);
        common::check_verdict(&one);
    }
    let report = v.validate(records, &[], now);
    common::check_report(&report);
});
