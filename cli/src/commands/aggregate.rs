//! `metergate aggregate FILE` — one record per customer, dimension and hour.
//!
//! Each sum keeps a time its inputs' windows allow (the latest start on AWS and Microsoft, the
//! covering interval on Google). With `--contracts`, every sum is judged by the core at
//! `--now` like any record; where the core would reject the sum but accept a part, the parts
//! are written unchanged and stderr says why.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use metergate_core::aggregate::{aggregate_hourly, aggregate_judged, Carry};
use metergate_core::model::RECORD_FIELDS;
use metergate_core::parse::parse_record;
use metergate_core::time::format_rfc3339;
use metergate_core::{Marketplace, UsageRecord};

use crate::config::{build_validator, load_contracts, load_settings, parse_now};
use crate::error::CliError;
use crate::input::{InputFormat, InputPath, RecordReader, Row};
use crate::text::clean;

/// `aggregate` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct AggregateArgs {
    /// Inputs (CSV, JSON or JSON Lines); `-` or none reads stdin.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The input format, for every input (default: from the extension).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub input_format: Option<InputFormat>,
    /// Contracts: their dimension units decide what is sent and what is carried, and every
    /// sum is judged against them.
    #[arg(long, value_name = "FILE")]
    pub contracts: Option<PathBuf>,
    /// Settings (TOML; .json also accepted), as for `check`: the look-back profile the sums
    /// are judged with.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The time to judge the sums at, RFC 3339 (default: the system clock).
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// Write the aggregated CSV here instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Write the carried remainders here, as records (CSV) to feed the next run, instead of
    /// listing them on stderr.
    #[arg(long, value_name = "FILE")]
    pub carry_out: Option<PathBuf>,
}

/// Runs `aggregate`; exit status 1 when rows were skipped.
pub fn run(args: &AggregateArgs) -> Result<u8, CliError> {
    let inputs = InputPath::list(&args.files)?;
    let formats = inputs
        .iter()
        .map(|i| i.format(args.input_format))
        .collect::<Result<Vec<_>, _>>()?;
    for i in &inputs {
        if let Some(p) = &i.path {
            std::fs::metadata(p).map_err(|e| CliError::open(&i.name, e))?;
        }
    }
    let now = parse_now(args.now.as_deref())?;
    let settings = match &args.config {
        Some(p) => load_settings(p)?,
        None => Default::default(),
    };
    let validator = match &args.contracts {
        Some(p) => Some(build_validator(load_contracts(p)?, settings, &[])?),
        None => None,
    };

    let mut columns: Option<Vec<&'static str>> = None;
    let mut skipped = 0u64;
    let mut had_allocations = false;
    let mut fatal: Option<CliError> = None;
    let mut records: Vec<UsageRecord> = Vec::new();
    let stderr = io::stderr();
    'inputs: for (input, format) in inputs.iter().zip(&formats) {
        let mut reader = match RecordReader::open(input, *format) {
            Ok(r) => r,
            Err(e) => {
                fatal = Some(e);
                break;
            }
        };
        if columns.is_none() {
            columns = Some(known_columns(reader.csv_headers()));
        }
        loop {
            let rec = match reader.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    fatal = Some(e);
                    break 'inputs;
                }
            };
            let findings = match rec.row {
                Row::Record(raw) => {
                    had_allocations |= raw.allocations.is_some();
                    match parse_record(raw) {
                        Ok(r) => {
                            records.push(r);
                            continue;
                        }
                        Err(f) => f,
                    }
                }
                Row::Unreadable { finding, .. } => vec![finding],
            };
            skipped += 1;
            let mut e = stderr.lock();
            let _ = write!(e, "{}:{}: skipped:", clean(&input.name), rec.line);
            for f in &findings {
                let _ = write!(
                    e,
                    " {} {}: {};",
                    clean(&f.code),
                    clean(f.field.as_deref().unwrap_or("row")),
                    clean(&f.message)
                );
            }
            let _ = writeln!(e);
        }
    }
    if let Some(e) = fatal {
        return Err(e);
    }
    let agg = match &validator {
        Some(v) => aggregate_judged(records, v, now),
        None => aggregate_hourly(records, None),
    };
    for k in &agg.kept_parts {
        let mut e = stderr.lock();
        let _ = write!(
            e,
            "metergate: kept {} record(s) of {} {} {} {} at {} as they were: their sum {} would be rejected:",
            k.parts,
            k.sum.marketplace,
            k.sum.product,
            k.sum.customer,
            k.sum.dimension,
            format_rfc3339(k.sum.start_time),
            k.sum.quantity
        );
        for f in &k.findings {
            let _ = write!(
                e,
                " {} {}: {};",
                f.code,
                f.field.as_deref().unwrap_or("record"),
                f.message
            );
        }
        let _ = writeln!(e);
    }
    let mut columns = columns.unwrap_or_else(|| {
        RECORD_FIELDS
            .iter()
            .copied()
            .filter(|c| *c != "allocations")
            .collect()
    });
    for (name, needed) in [
        ("end_time", agg.records.iter().any(|r| r.end_time.is_some())),
        ("plan", agg.records.iter().any(|r| r.plan.is_some())),
    ] {
        if needed && !columns.contains(&name) {
            columns.push(name);
        }
    }

    let out: Box<dyn Write> = match &args.output {
        Some(p) => {
            Box::new(File::create(p).map_err(|e| CliError::open(&p.display().to_string(), e))?)
        }
        None => Box::new(io::stdout().lock()),
    };
    write_records(BufWriter::new(out), &columns, agg.records.iter())?;

    if !agg.carried.is_empty() {
        match &args.carry_out {
            Some(p) => {
                let f = File::create(p).map_err(|e| CliError::open(&p.display().to_string(), e))?;
                let carried: Vec<UsageRecord> = agg.carried.iter().map(carry_record).collect();
                let mut cols = columns.clone();
                for (name, needed) in [
                    ("end_time", carried.iter().any(|r| r.end_time.is_some())),
                    // Microsoft needs planId on the wire: a carry without it is refused.
                    ("plan", carried.iter().any(|r| r.plan.is_some())),
                ] {
                    if needed && !cols.contains(&name) {
                        cols.push(name);
                    }
                }
                write_records(BufWriter::new(f), &cols, carried.iter())?;
            }
            None => {
                let mut e = stderr.lock();
                let _ = writeln!(
                    e,
                    "metergate: {} remainder(s) below one unit to carry into the next run:",
                    agg.carried.len()
                );
                for c in &agg.carried {
                    let _ = writeln!(
                        e,
                        "  carry {} {} {} {} {} into {}{}",
                        c.marketplace,
                        clean(&c.product),
                        clean(&c.customer),
                        clean(&c.dimension),
                        c.remainder,
                        format_rfc3339(c.next_hour),
                        c.plan
                            .as_deref()
                            .map(|p| format!(" (plan {p})"))
                            .unwrap_or_default()
                    );
                }
            }
        }
    }
    if had_allocations {
        eprintln!("metergate: note: AWS allocations are not aggregated; the output has none");
    }
    if skipped > 0 {
        eprintln!("metergate: {skipped} row(s) skipped");
        return Ok(1);
    }
    Ok(0)
}

/// The known columns of a CSV header, in its order; all of them for JSON.
fn known_columns(headers: Option<&[String]>) -> Vec<&'static str> {
    let known = RECORD_FIELDS
        .iter()
        .copied()
        .filter(|c| *c != "allocations");
    match headers {
        None => known.collect(),
        Some(h) => h
            .iter()
            .filter_map(|c| known.clone().find(|k| k == c))
            .collect(),
    }
}

/// A remainder as a record dated at the hour it belongs to.
fn carry_record(c: &Carry) -> UsageRecord {
    UsageRecord {
        marketplace: c.marketplace,
        product: c.product.clone(),
        customer: c.customer.clone(),
        dimension: c.dimension.clone(),
        quantity: c.remainder,
        start_time: c.next_hour,
        end_time: (c.marketplace == Marketplace::Gcp)
            .then(|| c.next_hour + chrono::Duration::hours(1)),
        record_id: None,
        plan: c.plan.clone(),
        allocations: None,
        attributes: Default::default(),
    }
}

fn write_records<'a, W: Write>(
    out: W,
    columns: &[&str],
    records: impl Iterator<Item = &'a UsageRecord>,
) -> Result<(), CliError> {
    let mut w = csv::Writer::from_writer(out);
    let io = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(e) => CliError::Output(e),
        other => CliError::Output(io::Error::other(format!("{other:?}"))),
    };
    w.write_record(columns).map_err(io)?;
    for r in records {
        let cells = columns.iter().map(|c| match *c {
            "marketplace" => r.marketplace.as_str().to_owned(),
            "product" => r.product.clone(),
            "customer" => r.customer.clone(),
            "dimension" => r.dimension.clone(),
            "quantity" => r.quantity.to_string(),
            "start_time" => format_rfc3339(r.start_time),
            "end_time" => r.end_time.map(format_rfc3339).unwrap_or_default(),
            "record_id" => r.record_id.clone().unwrap_or_default(),
            "plan" => r.plan.clone().unwrap_or_default(),
            _ => String::new(),
        });
        w.write_record(cells).map_err(io)?;
    }
    w.flush()?;
    Ok(())
}
