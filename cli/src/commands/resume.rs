//! `metergate resume`: send again whatever the ledger holds in `pending` or `sending`.
//!
//! After a crash (or `kill -9`), rows can be left `pending` (written, never sent) or
//! `sending` (handed to the marketplace, answer not recorded). `resume` re-sends both exactly
//! as stored — same timestamp, same quantity, same identity — and the marketplace's
//! idempotency makes the re-send safe: AWS answers a repeat with the first record's result.
//! Rows whose deadline has passed are ended without sending (a `pending` row `expired`, a
//! `sending` row `failed`). `submit` does the same before sending new records, but leaves alone
//! rows another live sender holds under a lease; `resume` takes those over too.

use std::path::PathBuf;

use crate::commands::submit::{ledger_err, load_setup, report_run, send_unfinished, SendArgs};
use crate::error::CliError;
use crate::ledger::{self, Ledger};

/// `resume` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct ResumeArgs {
    /// The ledger (default: $METERGATE_LEDGER, else ./metergate-ledger.sqlite).
    /// A postgres:// or postgresql:// URL selects a PostgreSQL ledger shared by several agents.
    #[arg(long, value_name = "PATH|URL")]
    pub ledger: Option<PathBuf>,
    /// Contracts, for post-cancellation deadlines (default: the ledger's contract store;
    /// without either only the look-back counts).
    #[arg(long, value_name = "FILE")]
    pub contracts: Option<PathBuf>,
    /// Settings (TOML; .json also accepted), e.g. the AWS look-back profile.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Also send again the rows that ended `failed` (no definite answer).
    #[arg(long)]
    pub retry_failed: bool,
    /// FOR TESTS ONLY: judge deadlines as if the time were this (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// Marketplace connection.
    #[command(flatten)]
    pub send: SendArgs,
}

/// Runs `resume`: exit 0 when nothing is left unfinished and every row sent ended accepted.
pub fn run(args: &ResumeArgs) -> Result<u8, CliError> {
    let setup = load_setup(
        args.contracts.as_ref(),
        args.ledger.as_deref(),
        args.config.as_ref(),
        &[],
        args.now.as_deref(),
    )?;
    let path = ledger::resolve_path(args.ledger.as_deref());
    let mut ledger = Ledger::open_existing(&path).map_err(ledger_err)?;
    // Resuming is the operator's recovery: rows left `sending` are re-sent even when their
    // sender's lease has not run out yet.
    ledger.take_over_leases();
    if args.retry_failed {
        let n = ledger.requeue_failed().map_err(ledger_err)?;
        if n > 0 {
            eprintln!("metergate: {n} failed rows queued again");
        }
    }
    let rows = ledger.unfinished().map_err(ledger_err)?;
    if rows.is_empty() {
        eprintln!("metergate: nothing to resume in {}", ledger.path());
        return Ok(0);
    }
    let (stats, expired) = send_unfinished(
        &mut ledger,
        rows,
        setup.validator.contracts(),
        setup.validator.settings(),
        setup.now,
        &args.send,
    )?;
    report_run(&stats, &ledger);
    let left = ledger
        .counts()
        .map_err(ledger_err)?
        .iter()
        .any(|(s, n)| !s.is_final() && *n > 0);
    let bad = expired > 0 || stats.rejected + stats.duplicate + stats.failed > 0;
    Ok(u8::from(bad || left))
}
