//! JSON records → verdicts, the way the WASM package judges them (`validate` /
//! `Validator.validate`: each array item read as a record or marked unreadable, then
//! `metergate_wasm::engine::validate_items`, the function the wasm export calls). The CLI's
//! readers are covered by tests/bad_inputs (see csv_records.rs for why they are not linked).
//!
//! Invariants: nothing panics; every item gets one verdict at its own index.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use metergate_core::RawRecord;
use serde_json::value::RawValue;

fuzz_target!(|data: &[u8]| {
    let v = common::base();
    let now = common::now();

    // The WASM path: an array of JS values, each one a record or not.
    let items: Option<Vec<Result<RawRecord, String>>> =
        match serde_json::from_slice::<Vec<Box<RawValue>>>(data) {
            Ok(items) => Some(
                items
                    .iter()
                    .map(|item| {
                        if item.get().starts_with('{') {
                            serde_json::from_str::<RawRecord>(item.get()).map_err(|e| e.to_string())
                        } else {
                            Err("not an object".to_owned())
                        }
                    })
                    .collect(),
            ),
            Err(_) => None,
        };
    if let Some(items) = items {
        let n = items.len();
        let report = metergate_wasm::engine::validate_items(v, items, &[], now);
        assert_eq!(report.verdicts.len(), n);
        common::check_report(&report);
    }
});
