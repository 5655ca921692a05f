//! `metergate ledger list | export | summary`: what was sent, and what became of it.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use metergate_core::time::parse_rfc3339;
use metergate_core::{ContractSet, Marketplace};

use crate::commands::submit::ledger_err;
use crate::error::CliError;
use crate::ledger::report::{self, Format, LedgerSummary};
use crate::ledger::{self, Filter, Ledger, Status};
use crate::output::OutputFormat;

/// `ledger` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct LedgerArgs {
    /// The ledger (default: $METERGATE_LEDGER, else ./metergate-ledger.sqlite).
    /// A postgres:// or postgresql:// URL selects a PostgreSQL ledger shared by several agents.
    #[arg(long, value_name = "PATH|URL", global = true)]
    pub ledger: Option<PathBuf>,
    /// Contracts whose properties `list` and `export` show (default: the ledger's contract
    /// store).
    #[arg(long, value_name = "FILE", global = true)]
    pub contracts: Option<PathBuf>,
    /// What to show.
    #[command(subcommand)]
    pub action: LedgerAction,
}

/// `ledger` subcommands.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum LedgerAction {
    /// Rows, oldest first: text (default on a terminal), json (JSON Lines, whole rows) or csv.
    List {
        /// Filters.
        #[command(flatten)]
        filter: FilterArgs,
        /// Output format.
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: Option<OutputFormat>,
    },
    /// Export for reconciliation with the seller portal: csv (default) or json. Columns:
    /// submitted_at, marketplace, product, customer, dimension, usage_time, quantity, status,
    /// reason, marketplace_record_id, properties (the contract's, `key=value;...`).
    Export {
        /// Filters.
        #[command(flatten)]
        filter: FilterArgs,
        /// csv or json.
        #[arg(long, value_enum, value_name = "FORMAT", default_value = "csv")]
        format: ExportFormat,
    },
    /// Rows and quantities per marketplace and state.
    Summary {
        /// Output format.
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: Option<OutputFormat>,
    },
}

/// `ledger export --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// CSV with a header row.
    Csv,
    /// One JSON array.
    Json,
}

/// Row filters. Times filter on the usage time (the record's start).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct FilterArgs {
    /// pending, sending, accepted, rejected, duplicate or failed.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// aws, azure or gcp.
    #[arg(long, value_name = "MARKETPLACE")]
    pub marketplace: Option<String>,
    /// The customer key.
    #[arg(long, value_name = "CUSTOMER")]
    pub customer: Option<String>,
    /// Usage at or after this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub since: Option<String>,
    /// Usage before this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub until: Option<String>,
}

fn time_flag(name: &str, v: Option<&str>) -> Result<Option<DateTime<Utc>>, CliError> {
    v.map(|s| {
        parse_rfc3339(s).map_err(|e| {
            CliError::Usage(format!(
                "--{name} {s:?} {e}; give an RFC 3339 time such as 2026-03-01T00:00:00Z"
            ))
        })
    })
    .transpose()
}

impl FilterArgs {
    /// The ledger filter, or a usage error naming the flag.
    pub fn filter(&self) -> Result<Filter, CliError> {
        let status = self
            .status
            .as_deref()
            .map(|s| {
                s.parse::<Status>()
                    .map_err(|e| CliError::Usage(format!("--status: {e}")))
            })
            .transpose()?;
        let marketplace = self
            .marketplace
            .as_deref()
            .map(|m| {
                Marketplace::parse(m).ok_or_else(|| {
                    CliError::Usage(format!("--marketplace {m:?}: one of aws, azure, gcp"))
                })
            })
            .transpose()?;
        Ok(Filter {
            status,
            marketplace,
            customer: self.customer.clone(),
            since: time_flag("since", self.since.as_deref())?,
            until: time_flag("until", self.until.as_deref())?,
        })
    }
}

/// `--format` of `check` as a table format; the default is text on a terminal, else JSON.
pub fn table_format(f: Option<OutputFormat>, tty: bool) -> Format {
    match f {
        Some(OutputFormat::Text) => Format::Text,
        Some(OutputFormat::Json) => Format::Json,
        Some(OutputFormat::Csv) => Format::Csv,
        None if tty => Format::Text,
        None => Format::Json,
    }
}

/// Runs `ledger`.
pub fn run(args: &LedgerArgs) -> Result<u8, CliError> {
    let path = ledger::resolve_path(args.ledger.as_deref());
    let ledger = Ledger::open_existing(&path).map_err(ledger_err)?;
    let contracts = match &args.action {
        LedgerAction::Summary { .. } => ContractSet::default(),
        _ => crate::contracts::load(args.contracts.as_deref(), Some(&path))?.0,
    };
    let stdout = io::stdout();
    let tty = stdout.is_terminal();
    let mut out = BufWriter::new(stdout.lock());
    match &args.action {
        LedgerAction::List { filter, format } => {
            let rows = ledger.list(&filter.filter()?).map_err(ledger_err)?;
            report::write_list_with(&rows, &contracts, table_format(*format, tty), &mut out)?;
        }
        LedgerAction::Export { filter, format } => {
            let rows = ledger.list(&filter.filter()?).map_err(ledger_err)?;
            let f = match format {
                ExportFormat::Csv => Format::Csv,
                ExportFormat::Json => Format::Json,
            };
            report::write_export_with(&rows, &contracts, f, &mut out)?;
        }
        LedgerAction::Summary { format } => {
            let rows = ledger.list(&Filter::default()).map_err(ledger_err)?;
            LedgerSummary::of(&rows).write(table_format(*format, tty), &mut out)?;
        }
    }
    out.flush()?;
    Ok(0)
}
