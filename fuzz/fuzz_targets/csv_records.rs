//! CSV bytes → records → verdicts, through the core's CSV reader
//! (`metergate_core::csv_reader`, which the CLI and the WASM package both use) by way of the
//! WASM package's session (`metergate_wasm::engine::CsvRun`).
//!
//! Invariants: nothing panics; every data row gets exactly one verdict with a line number
//! after the header's and after the previous row's; a reader error only ever ends the input
//! (the rows before it keep their verdicts); the summary counts the verdicts; feeding the bytes
//! in two chunks (split anywhere) gives the same rows as feeding them whole.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = metergate_core::csv_reader::read_all(data);
    // The same bytes in two chunks, split at a point the input picks.
    let cut = data.first().map_or(0, |&b| usize::from(b) % (data.len() + 1));
    let mut r = metergate_core::csv_reader::CsvReader::new();
    let (a, b) = data.split_at(cut);
    let mut split: Vec<_> = r.feed(a).collect();
    if !split.last().is_some_and(Result::is_err) {
        split.extend(r.feed(b));
    }
    if !split.last().is_some_and(Result::is_err) {
        if let Some(x) = r.finish().transpose() {
            split.push(x);
        }
    }
    assert_eq!(whole, split, "chunked at {cut}");

    let mut run = metergate_wasm::engine::CsvRun::new(
        std::sync::Arc::clone(common::base_shared()),
        common::now(),
        &[],
        metergate_wasm::engine::ReportMode::All,
    );
    let mut verdicts = Vec::new();
    if run.push(data, &mut verdicts).is_err() {
        return;
    }
    let Ok(summary) = run.finish(&mut verdicts) else {
        return;
    };
    let mut last_line = 1u64;
    for cv in &verdicts {
        assert!(cv.line > last_line, "line {} after line {last_line}", cv.line);
        last_line = cv.line;
    }
    assert_eq!(summary.records, verdicts.len() as u64);
    assert_eq!(summary.accepted + summary.rejected, summary.records);
});
