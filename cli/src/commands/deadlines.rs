//! `metergate deadlines --contracts FILE [--ledger PATH]`: what must be sent, and by when.
//!
//! Two kinds of line, soonest deadline first, each with the exact last instant and the rule
//! that sets it (the core's `window::deadline`):
//! * `pending` / `sending`: ledger rows not yet answered;
//! * `cancelled` / `ended` (or the contract's own word, `Unsubscribed`, `EXPIRED`, ...):
//!   contracts that stopped taking usage (in the last day, or whose
//!   window is still open): usage dated before the stop must be sent by the deadline shown.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use metergate_core::time::{format_rfc3339, format_secs, human_duration};
use metergate_core::window::{self, stop_instant, Deadline};
use metergate_core::UsageRecord;

use crate::commands::ledger::table_format;
use crate::commands::submit::{ledger_err, load_setup};
use crate::error::CliError;
use crate::ledger::report::Table;
use crate::ledger::{self, Ledger};
use crate::output::OutputFormat;

/// `deadlines` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct DeadlinesArgs {
    /// Contracts: a JSON array. Default: the ledger's contract store (`metergate contracts`).
    #[arg(long, value_name = "FILE")]
    pub contracts: Option<PathBuf>,
    /// The ledger (default: $METERGATE_LEDGER, else ./metergate-ledger.sqlite). When the
    /// file does not exist only contracts are listed.
    /// A postgres:// or postgresql:// URL selects a PostgreSQL ledger shared by several agents.
    #[arg(long, value_name = "PATH|URL")]
    pub ledger: Option<PathBuf>,
    /// Settings (TOML; .json also accepted), e.g. the AWS look-back profile.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output: text (default on a terminal), json (JSON Lines) or csv.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<OutputFormat>,
    /// The time to measure from (RFC 3339; default: the system clock).
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
}

struct Line {
    deadline: Deadline,
    kind: String,
    marketplace: String,
    product: String,
    customer: String,
    dimension: Option<String>,
    usage: String,
    quantity: Option<String>,
    ledger_id: Option<i64>,
}

fn left(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if at == DateTime::<Utc>::MAX_UTC {
        "no deadline".into()
    } else if at >= now {
        format!("in {}", human_duration(at - now))
    } else {
        format!("passed {} ago", human_duration(now - at))
    }
}

/// Runs `deadlines`.
pub fn run(args: &DeadlinesArgs) -> Result<u8, CliError> {
    let setup = load_setup(
        args.contracts.as_ref(),
        args.ledger.as_deref(),
        args.config.as_ref(),
        &[],
        args.now.as_deref(),
    )?;
    let now = setup.now;
    let contracts = setup.validator.contracts();
    let settings = setup.validator.settings();
    let mut lines = Vec::new();

    let path = ledger::resolve_path(args.ledger.as_deref());
    if args.ledger.is_some() || ledger::exists(&path) {
        let ledger = Ledger::open_existing(&path).map_err(ledger_err)?;
        for r in ledger.unfinished().map_err(ledger_err)? {
            let rec = r.usage_record();
            let c = contracts
                .find(rec.marketplace, &rec.product, &rec.customer)
                .map(|(_, c)| c);
            lines.push(Line {
                deadline: window::deadline(&rec, c, settings, now),
                kind: r.status.to_string(),
                marketplace: r.marketplace.to_string(),
                product: r.product.clone(),
                customer: r.customer.clone(),
                dimension: Some(r.dimension.clone()),
                usage: format_rfc3339(r.start_time),
                quantity: Some(r.quantity.to_string()),
                ledger_id: Some(r.id),
            });
        }
    }

    for c in contracts.all() {
        let Some(stop) = stop_instant(c, now) else {
            continue;
        };
        // The last usage the contract can carry is dated just before it stopped.
        let last = UsageRecord {
            marketplace: c.marketplace,
            product: c.product.clone(),
            customer: c.customer.clone(),
            dimension: c
                .dimensions
                .first()
                .map(|d| d.name.clone())
                .unwrap_or_default(),
            quantity: rust_decimal::Decimal::ZERO,
            start_time: stop - Duration::seconds(1),
            end_time: None,
            record_id: None,
            plan: None,
            allocations: None,
            attributes: BTreeMap::new(),
        };
        let d = window::deadline(&last, Some(c), settings, now);
        if d.at < now - Duration::days(1) {
            continue;
        }
        lines.push(Line {
            deadline: d,
            // The state as the contract wrote it (`Unsubscribed`, `EXPIRED`, ...).
            kind: match &c.status_word {
                Some(w) => w.clone(),
                None if c.cancelled_at.is_some_and(|t| t <= stop) => "cancelled".into(),
                None => "ended".into(),
            },
            marketplace: c.marketplace.to_string(),
            product: c.product.clone(),
            customer: c.customer.clone(),
            dimension: None,
            usage: format!("before {}", format_secs(stop)),
            quantity: None,
            ledger_id: None,
        });
    }
    lines.sort_by_key(|l| l.deadline.at);

    let stdout = io::stdout();
    let tty = stdout.is_terminal();
    let rows = lines
        .iter()
        .map(|l| {
            let open = l.deadline.at != DateTime::<Utc>::MAX_UTC;
            vec![
                open.then(|| format_rfc3339(l.deadline.at)),
                Some(left(l.deadline.at, now)),
                Some(l.deadline.rule.clone()).filter(|r| !r.is_empty()),
                Some(if l.deadline.hard { "hard" } else { "soft" }.to_owned()),
                Some(l.kind.clone()),
                Some(l.marketplace.clone()),
                Some(l.product.clone()),
                Some(l.customer.clone()),
                l.dimension.clone(),
                Some(l.usage.clone()),
                l.quantity.clone(),
                l.ledger_id.map(|i| i.to_string()),
            ]
        })
        .collect();
    let table = Table {
        header: vec![
            "deadline",
            "left",
            "rule",
            "strict",
            "kind",
            "marketplace",
            "product",
            "customer",
            "dimension",
            "usage",
            "quantity",
            "ledger_id",
        ],
        rows,
    };
    let mut out = BufWriter::new(stdout.lock());
    table.write(table_format(args.format, tty), &mut out)?;
    out.flush()?;
    Ok(0)
}
