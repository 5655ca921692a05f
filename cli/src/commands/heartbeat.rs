//! `metergate heartbeat --contracts FILE [--hour H]`: zero-quantity AWS records for the
//! dimensions of active contracts that have no usage in the ledger for that hour.
//!
//! The hour defaults to the last complete one (the hour before the current one): a heartbeat
//! for the current hour would make a later real record of that hour a duplicate, which AWS
//! drops. The records come from the core (`heartbeat::heartbeats`), are judged like any
//! other (so a heartbeat outside the look-back is rejected, not sent), and go through the same
//! ledger and state machine as `submit`. The plan (which dimensions have no usage, in the
//! ledger's rows or in the agent's hourly sums) is shared with `metergate serve`
//! ([`crate::agent::heartbeat::plan`]).

use std::io::{self, BufWriter, IsTerminal};
use std::path::PathBuf;

use metergate_core::time::{format_rfc3339, hour_floor, parse_rfc3339};
use metergate_core::VerdictKind;

use crate::commands::check::Checker;
use crate::commands::submit::{ledger_err, load_setup, report_run, send_unfinished, SendArgs};
use crate::error::CliError;
use crate::ledger::{self, Enqueued, Ledger, NewRow};
use crate::output::{self, OutRow, OutputFormat, SourceRef};
use crate::submit;

/// `heartbeat` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct HeartbeatArgs {
    /// Contracts: a JSON array. Default: the ledger's contract store (`metergate contracts`).
    #[arg(long, value_name = "FILE")]
    pub contracts: Option<PathBuf>,
    /// The hour to fill, RFC 3339 (any time inside it). Default: the last complete hour.
    #[arg(long, value_name = "RFC3339")]
    pub hour: Option<String>,
    /// Settings (TOML; .json also accepted).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The ledger (default: $METERGATE_LEDGER, else ./metergate-ledger.sqlite).
    /// A postgres:// or postgresql:// URL selects a PostgreSQL ledger shared by several agents.
    #[arg(long, value_name = "PATH|URL")]
    pub ledger: Option<PathBuf>,
    /// Show the heartbeats; write nothing, send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Verdict output, as for `check`.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<OutputFormat>,
    /// FOR TESTS ONLY: judge as if the time were this (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// Marketplace connection.
    #[command(flatten)]
    pub send: SendArgs,
}

/// Runs `heartbeat`.
pub fn run(args: &HeartbeatArgs) -> Result<u8, CliError> {
    let mut setup = load_setup(
        args.contracts.as_ref(),
        args.ledger.as_deref(),
        args.config.as_ref(),
        &[],
        args.now.as_deref(),
    )?;
    let hour = match &args.hour {
        Some(h) => hour_floor(parse_rfc3339(h).map_err(|e| {
            CliError::Usage(format!(
                "--hour {h:?} {e}; give an RFC 3339 time such as 2026-03-01T10:00:00Z"
            ))
        })?),
        None => hour_floor(setup.now) - chrono::Duration::hours(1),
    };
    let path = ledger::resolve_path(args.ledger.as_deref());
    let mut ledger = if args.dry_run && !ledger::exists(&path) {
        None
    } else {
        Some(Ledger::open(&path).map_err(ledger_err)?)
    };
    if let Some(l) = &ledger {
        setup.history = l.history().map_err(ledger_err)?;
    }
    let beats = crate::agent::heartbeat::plan(ledger.as_mut(), setup.validator.contracts(), hour)
        .map_err(ledger_err)?;

    let stdout = io::stdout();
    let tty = stdout.is_terminal();
    let format = args.format.unwrap_or(if tty {
        OutputFormat::Text
    } else {
        OutputFormat::Json
    });
    let mut sink = output::sink(
        format,
        BufWriter::new(stdout.lock()),
        tty && output::color_allowed(),
    );
    let name = format!("heartbeat {}", format_rfc3339(hour));
    sink.begin_input(&name, None)?;
    let mut checker = Checker::new(&setup);
    let mut rows = Vec::new();
    let mut unsendable = 0u64;
    for (i, b) in beats.iter().enumerate() {
        let raw = crate::agent::hourly::raw_of(b);
        let kept = sink.wants_rows().then(|| raw.clone());
        let (verdict, parsed) = checker.judge(crate::input::Row::Record(raw));
        let src = SourceRef {
            file: &name,
            line: i as u64 + 1,
        };
        let row = kept.as_ref().map_or(OutRow::None, OutRow::Raw);
        sink.verdict(&verdict, src, row)?;
        if verdict.verdict != VerdictKind::Accepted {
            continue;
        }
        if let Some(rec) = parsed {
            let c = setup
                .validator
                .contracts()
                .find(rec.marketplace, &rec.product, &rec.customer)
                .map(|(_, c)| c);
            match submit::wire_values(&rec, c) {
                Ok(wire) => rows.push(NewRow {
                    record: rec,
                    source: Some(format!("{name}:{}", i + 1)),
                    wire,
                }),
                Err(why) => {
                    unsendable += 1;
                    eprintln!("metergate: heartbeat {}: not sent: {why}", i + 1);
                }
            }
        }
    }
    let summary = checker.into_summary();
    sink.finish(&summary)?;
    drop(sink);
    let Some(ledger) = ledger.as_mut().filter(|_| !args.dry_run) else {
        eprintln!(
            "metergate: dry run: {} heartbeats for {} would be sent; nothing was written or sent",
            rows.len(),
            format_rfc3339(hour)
        );
        return Ok(u8::from(summary.rejected > 0 || unsendable > 0));
    };
    let mut ids = Vec::new();
    for e in ledger.enqueue(&rows).map_err(ledger_err)? {
        match e {
            Enqueued::New(id) | Enqueued::Requeued(id) => ids.push(id),
            // A heartbeat is a zero for an hour without usage: a live row (usage another
            // sender stored since) already covers the hour.
            Enqueued::Existing(..) | Enqueued::Conflict(_) => {}
        }
    }
    let to_send = ledger.rows(&ids).map_err(ledger_err)?;
    let (stats, expired) = send_unfinished(
        ledger,
        to_send,
        setup.validator.contracts(),
        setup.validator.settings(),
        setup.now,
        &args.send,
    )?;
    report_run(&stats, ledger);
    Ok(u8::from(
        summary.rejected > 0
            || unsendable > 0
            || expired > 0
            || stats.rejected + stats.duplicate + stats.failed > 0,
    ))
}
