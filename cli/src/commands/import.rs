//! `metergate import orb | costs FILE`: a billing platform's costs become marketplace usage
//! (see [`crate::import`]).
//!
//! Like `submit`: every contract's owed amount becomes one record for the current hour,
//! judged by the core (ledger history, policies), written to the ledger as `pending` with its
//! wire values, then every unfinished row is sent with the marketplace senders, because a
//! seller who runs an import expects the marketplace to bill it. `--no-send` only writes the
//! rows (`metergate resume`, or `serve`, sends them); `--dry-run` reads, judges and reports,
//! and writes nothing.
//!
//! Exit status: 0 when every contract imported (or had nothing to import) and every row sent
//! was accepted; 1 when a contract failed (API error, bad rows, currency), a record was
//! rejected, or a row was not accepted; 2 when the command could not run.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use crate::commands::submit::{ledger_err, load_setup, report_run, send_unfinished, SendArgs};
use crate::config;
use crate::error::CliError;
use crate::import::orb::{import_once, ImportError, OrbConfig, OrbOptions};
use crate::import::{self, ImportReport, Platform};
use crate::ledger::{self, Ledger, Status};

/// `import` flags shared by both sources.
#[derive(Clone, Debug, clap::Args)]
pub struct ImportCommon {
    /// Contracts (default: the ledger's contract store). Contracts carry
    /// `properties.orb_subscription_id` and a dimension with a `price`.
    #[arg(long, value_name = "FILE")]
    pub contracts: Option<PathBuf>,
    /// A seller policy in rhai; repeat for more.
    #[arg(long = "policy", value_name = "FILE")]
    pub policies: Vec<PathBuf>,
    /// Settings, policy parameters and `[import.orb]` (TOML; .json also accepted).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The ledger (default: $METERGATE_LEDGER, else ./metergate-ledger.sqlite).
    /// A postgres:// or postgresql:// URL selects a PostgreSQL ledger shared by several agents.
    #[arg(long, value_name = "PATH|URL")]
    pub ledger: Option<PathBuf>,
    /// Read, judge and show what would be imported; write nothing, send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the rows to the ledger but do not send them (`metergate resume` or `serve` does).
    #[arg(long)]
    pub no_send: bool,
    /// Report: text (default on a terminal) or json (JSON Lines, a summary line last).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<crate::output::OutputFormat>,
    /// FOR TESTS ONLY: import as if the time were this (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// Marketplace connection.
    #[command(flatten)]
    pub send: SendArgs,
}

/// `import` subcommands.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum ImportSource {
    /// Orb: each contract's cost from `/v1/subscriptions/{orb_subscription_id}/costs`
    /// (API key from ORB_API_KEY).
    Orb {
        /// Count costs from this time for contracts imported for the first time (default:
        /// the contract's starts_at; ideally a billing-period start). Later imports keep it.
        #[arg(long, value_name = "RFC3339")]
        since: Option<String>,
        /// Orb's API base URL (default: [import.orb] url, else $ORB_API_URL, else
        /// https://api.withorb.com/v1).
        #[arg(long, value_name = "URL")]
        orb_url: Option<String>,
        /// Common flags.
        #[command(flatten)]
        common: ImportCommon,
    },
    /// A cost export (CSV, JSON array or JSON Lines) with the columns contract (or customer),
    /// amount, currency and period_end.
    Costs {
        /// The file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Common flags.
        #[command(flatten)]
        common: ImportCommon,
    },
}

/// `import` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct ImportArgs {
    /// Where the costs come from.
    #[command(subcommand)]
    pub source: ImportSource,
}

fn open_ledger(common: &ImportCommon) -> Result<Ledger, CliError> {
    let path = ledger::resolve_path(common.ledger.as_deref());
    if common.dry_run && !ledger::exists(&path) {
        // Nothing is written in a dry run, not even a new ledger file.
        return Ledger::open(std::path::Path::new(":memory:")).map_err(ledger_err);
    }
    Ledger::open(&path).map_err(ledger_err)
}

/// Runs `import`.
pub fn run(args: &ImportArgs) -> Result<u8, CliError> {
    let (common, platform) = match &args.source {
        ImportSource::Orb { common, .. } => (common, Platform::Orb),
        ImportSource::Costs { common, .. } => (common, Platform::Costs),
    };
    let setup = load_setup(
        common.contracts.as_ref(),
        common.ledger.as_deref(),
        common.config.as_ref(),
        &common.policies,
        common.now.as_deref(),
    )?;
    let now = setup.now;
    let mut ledger = open_ledger(common)?;
    let mut bad_rows = 0usize;
    let report: ImportReport = match &args.source {
        ImportSource::Orb { since, orb_url, .. } => {
            let cfg = match &common.config {
                Some(p) => OrbConfig::from_config(&config::load_config_value(p)?)
                    .map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))?,
                None => None,
            };
            let since = since
                .as_deref()
                .map(|s| {
                    metergate_core::time::parse_rfc3339(s).map_err(|e| {
                        CliError::Usage(format!(
                            "--since {s:?} {e}; give an RFC 3339 time such as 2026-03-01T00:00:00Z"
                        ))
                    })
                })
                .transpose()?;
            let url = orb_url
                .as_deref()
                .or(cfg.as_ref().and_then(|c| c.url.as_deref()));
            let opts = OrbOptions::from_env(url, since, common.send.verbose)
                .map_err(|e| CliError::Usage(e.to_string()))?;
            import_once(&mut ledger, &setup.validator, &opts, now, common.dry_run).map_err(|e| {
                match e {
                    ImportError::Ledger(l) => ledger_err(l),
                    other => CliError::Usage(other.to_string()),
                }
            })?
        }
        ImportSource::Costs { file, .. } => {
            std::fs::metadata(file).map_err(|e| CliError::open(&file.display().to_string(), e))?;
            let (report, bad) = import::costs::import_file(
                &mut ledger,
                &setup.validator,
                file,
                now,
                common.dry_run,
            )?;
            for e in &bad {
                eprintln!("metergate: {}", crate::text::clean(&e.to_string()));
            }
            bad_rows = bad.len();
            report
        }
    };
    let stdout = io::stdout();
    let json = match common.format {
        Some(crate::output::OutputFormat::Json) => true,
        Some(_) => false,
        None => !stdout.is_terminal(),
    };
    {
        let mut out = stdout.lock();
        import::write_report(&report, platform, json, common.dry_run, &mut out)?;
        out.flush()?;
    }
    if bad_rows > 0 {
        eprintln!("metergate: {bad_rows} rows were not imported (above); the other rows were");
    }
    let mut bad = report.has_problems() || bad_rows > 0;
    if common.dry_run || common.no_send {
        return Ok(u8::from(bad));
    }
    let rows = ledger.unfinished().map_err(ledger_err)?;
    if !rows.is_empty() {
        let (stats, expired) = send_unfinished(
            &mut ledger,
            rows,
            setup.validator.contracts(),
            setup.validator.settings(),
            now,
            &common.send,
        )?;
        report_run(&stats, &ledger);
        bad |= expired > 0 || stats.rejected + stats.duplicate + stats.failed > 0;
        let stuck = ledger
            .counts()
            .map_err(ledger_err)?
            .iter()
            .any(|(s, n)| *s == Status::Pending && *n > 0);
        bad |= stuck;
    }
    Ok(u8::from(bad))
}
