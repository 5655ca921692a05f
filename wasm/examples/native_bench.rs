//! Native side of the WASM-vs-native timing (wasm/bench/bench.mjs runs both on the same files):
//!
//!     cargo run --release -p metergate-wasm --example native_bench -- DIR
//!
//! DIR holds contracts.json, records.json (an array) and records.csv, as bench/gen.mjs makes
//! them. Prints per-record times (best of a few runs) as JSON.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Instant;

use metergate_core::RawRecord;
use metergate_wasm::engine;

fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        std::hint::black_box(f());
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: native_bench DIR"));
    let contracts = std::fs::read_to_string(dir.join("contracts.json")).unwrap();
    let records = std::fs::read_to_string(dir.join("records.json")).unwrap();
    let csv = std::fs::read_to_string(dir.join("records.csv")).unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    let now = engine::parse_now(meta["now"].as_str().unwrap()).unwrap();
    let v = std::sync::Arc::new(engine::build_validator(&contracts, &[], None).unwrap());
    let raws: Vec<RawRecord> = serde_json::from_str(&records).unwrap();
    let n = raws.len() as f64;
    let runs = 5;
    let validate_only = best(runs, || v.validate(raws.iter().cloned(), &[], now));
    let parse_validate = best(runs, || {
        let raws: Vec<RawRecord> = serde_json::from_str(&records).unwrap();
        v.validate(raws, &[], now)
    });
    let parse_validate_json = best(runs, || {
        let raws: Vec<RawRecord> = serde_json::from_str(&records).unwrap();
        serde_json::to_string(&v.validate(raws, &[], now)).unwrap()
    });
    let csv_json = best(runs, || {
        serde_json::to_string(&engine::validate_csv(&v, csv.as_bytes(), &[], now).unwrap()).unwrap()
    });
    let us = |s: f64| s / n * 1e6;
    println!(
        "{}",
        serde_json::json!({
            "records": n,
            "us_per_record": {
                "validate_only": us(validate_only),
                "parse_json_validate": us(parse_validate),
                "parse_json_validate_to_json": us(parse_validate_json),
                "csv_validate_to_json": us(csv_json),
            }
        })
    );
}
