//! Parse-only floor: every row of a CSV file (header row first) into a `RawRecord` through
//! `RawRecord::set`, counted. No rule runs. Prints the number of records.
//!
//! This is the least any CSV checker built on metergate-core has to do, so bench/run.sh
//! reports the other measurements as multiples of it.

use std::io::Write;
use std::process::ExitCode;

use metergate_core::{Field, RawRecord};

fn run(path: &str) -> Result<u64, Box<dyn std::error::Error>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_path(path)?;
    let headers: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
    let mut row = csv::StringRecord::new();
    let mut records = 0u64;
    let mut with_quantity = 0u64;
    while reader.read_record(&mut row)? {
        let mut raw = RawRecord::default();
        for (name, cell) in headers.iter().zip(row.iter()) {
            raw.set(name, Field::Text(cell.to_owned()));
        }
        records += 1;
        // Use the record, so that building it cannot be optimized away.
        with_quantity += u64::from(raw.quantity.is_some());
        drop(std::hint::black_box(raw));
    }
    std::hint::black_box(with_quantity);
    Ok(records)
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: metergate-floor FILE.csv");
        return ExitCode::from(2);
    };
    match run(&path) {
        Ok(n) => {
            let _ = writeln!(std::io::stdout(), "{n}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("metergate-floor: {path}: {e}");
            ExitCode::from(2)
        }
    }
}
