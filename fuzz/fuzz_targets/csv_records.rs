//! CSV bytes → records → verdicts, through the WASM package's reader
//! (`metergate_wasm::engine::validate_csv`). The CLI's reader is not linked here: it would bring
//! the submitters' AWS SDK, reqwest and SQLite into an instrumented build that then takes most
//! of CI's time; tests/bad_inputs covers it instead.
//!
//! Invariants: nothing panics; every data row gets exactly one verdict with a line number
//! after the header's and after the previous row's; a reader error only ever ends the input
//! (the rows before it keep their verdicts); the summary counts the verdicts.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The WASM package (a JS string is always UTF-8).
    if let Ok(text) = std::str::from_utf8(data) {
        let report = metergate_wasm::engine::validate_csv(common::base(), text, &[], common::now());
        let mut last_line = 1u64;
        for cv in &report.verdicts {
            assert!(
                cv.line >= last_line,
                "wasm: line {} after line {last_line}",
                cv.line
            );
            last_line = cv.line;
        }
        assert_eq!(report.summary.records, report.verdicts.len() as u64);
        assert_eq!(
            report.summary.accepted + report.summary.rejected,
            report.summary.records
        );
    }
});
