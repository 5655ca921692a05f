//! `metergate submit [FILE ...] --contracts FILE`: validate, write to the ledger, send.
//!
//! 1. Every record is judged by the core at the real clock, with the ledger's history (keys
//!    pending, sending, accepted or duplicate), exactly as `check --ledger` would judge it;
//!    the verdicts are written in `check`'s formats. Rejected records are never sent. An
//!    accepted record whose only news is `duplicate-ignored` is not sent either: the
//!    marketplace would bill it once anyway.
//! 2. The accepted records are written to the ledger as `pending`, with their exact wire
//!    values, before anything is sent.
//! 3. Every unfinished row (these, and any a crash left in `pending` or `sending`) is sent,
//!    one product per call and at most 25 records per call, under 10 calls per second, with
//!    retries. Rows whose deadline has passed are ended without being sent: `expired` when
//!    they never left, `failed` when an earlier call may have carried them.
//!
//! Exit status: 0 when every record was accepted and every row sent ended `accepted`; 1 when
//! a record was rejected (by metergate or the marketplace), a duplicate, or failed; 2 when
//! the command could not run (bad input, no credentials, ...).

use std::io::{self, BufWriter, IsTerminal};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use metergate_core::batch::plan_batches;
use metergate_core::{Code, ContractSet, Settings, UsageRecord};

use crate::commands::check::Checker;
use crate::config::{self, Setup};
use crate::error::CliError;
use crate::input::{InputFormat, InputPath, RecordReader, Row};
use crate::ledger::{self, Enqueued, Ledger, LedgerError, LedgerRow, NewRow, Status};
use crate::output::{self, OutRow, OutputFormat, SourceRef};
use crate::submit::aws::AwsOptions;
use crate::submit::azure::AzureOptions;
use crate::submit::gcp::GcpOptions;
use crate::submit::{self, RetryPolicy, RunStats, SendOptions, SubmitError};

/// How to reach the marketplace: the AWS CLI's flags, plus retries and `--verbose`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SendArgs {
    /// Send AWS calls to this URL instead of the marketplace (as `aws --endpoint-url`).
    /// `AWS_ENDPOINT_URL_MARKETPLACE_METERING` and `AWS_ENDPOINT_URL` also work.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// AWS region (default: the standard chain, e.g. AWS_REGION).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// AWS shared-config profile (default: AWS_PROFILE, else `default`).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Send Microsoft calls to this base URL instead of
    /// https://marketplaceapi.microsoft.com/api (METERGATE_AZURE_ENDPOINT also works).
    /// Entra ID credentials come from AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET.
    #[arg(long, value_name = "URL")]
    pub azure_endpoint: Option<String>,
    /// Calls per batch before its unanswered records are marked failed.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
    /// Log every call, and every HTTP request and answer, to stderr. Authorization and
    /// session-token headers are shown as <redacted>.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

impl SendArgs {
    /// The retry policy.
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            ..RetryPolicy::default()
        }
    }

    fn aws(&self) -> AwsOptions {
        AwsOptions {
            endpoint_url: self.endpoint_url.clone(),
            region: self.region.clone(),
            profile: self.profile.clone(),
            verbose: self.verbose,
        }
    }

    /// How to reach each marketplace.
    pub fn options(&self) -> SendOptions {
        SendOptions {
            aws: self.aws(),
            azure: AzureOptions {
                endpoint: self.azure_endpoint.clone(),
                verbose: self.verbose,
            },
            gcp: GcpOptions {
                endpoint: None,
                verbose: self.verbose,
            },
        }
    }
}

/// `submit` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct SubmitArgs {
    /// Inputs, as for `check`: .csv, .json or .jsonl/.ndjson; `-` or none reads stdin.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The input format, for every input (default: from the extension).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub input_format: Option<InputFormat>,
    /// Contracts: a JSON array (see examples/contracts.json). Identities on the wire come
    /// from here (customer_identifier, or aws_account_id + license_arn). Default: the
    /// ledger's contract store (`metergate contracts`).
    #[arg(long, value_name = "FILE")]
    pub contracts: Option<PathBuf>,
    /// A seller policy in rhai; repeat for more.
    #[arg(long = "policy", value_name = "FILE")]
    pub policies: Vec<PathBuf>,
    /// Settings and policy parameters (TOML; .json also accepted).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The ledger (default: $METERGATE_LEDGER, else ./metergate-ledger.sqlite). Created when
    /// missing.
    /// A postgres:// or postgresql:// URL selects a PostgreSQL ledger shared by several agents.
    #[arg(long, value_name = "PATH|URL")]
    pub ledger: Option<PathBuf>,
    /// Validate and show what would be sent; write nothing, send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Verdict output, as for `check`: text, json (JSON Lines) or csv.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<OutputFormat>,
    /// FOR TESTS ONLY: judge as if the time were this (RFC 3339). The marketplace still
    /// judges at its own clock, so a wrong value here gets whole calls refused.
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// Marketplace connection.
    #[command(flatten)]
    pub send: SendArgs,
}

/// A ledger error as a command error.
pub fn ledger_err(e: LedgerError) -> CliError {
    CliError::Usage(e.to_string())
}

fn submit_err(e: SubmitError) -> CliError {
    CliError::Usage(e.to_string())
}

/// Sends rows to their marketplaces and ends the late ones first; returns the run's counts.
pub fn send_unfinished(
    ledger: &mut Ledger,
    rows: Vec<LedgerRow>,
    contracts: &ContractSet,
    settings: &Settings,
    now: DateTime<Utc>,
    send: &SendArgs,
) -> Result<(RunStats, usize), CliError> {
    let (rows, expired) =
        submit::expire_late(ledger, rows, contracts, settings, now).map_err(ledger_err)?;
    if expired > 0 {
        eprintln!("metergate: {expired} unsent rows are past their deadline and were ended without sending: pending ones `expired`, ones that may have landed `failed` (see `metergate ledger list --status expired`)");
    }
    if rows.is_empty() {
        return Ok((RunStats::default(), expired));
    }
    let verbose = send.verbose;
    let mut log = |line: &str| {
        if verbose {
            eprintln!("metergate: {}", crate::text::clean(line));
        }
    };
    let (stats, stopped) =
        submit::send_all(ledger, rows, &send.options(), &send.policy(), &mut log)
            .map_err(ledger_err)?;
    if !stopped.is_empty() {
        report_run(&stats, ledger);
        let why: Vec<String> = stopped.iter().map(|(m, e)| format!("{m}: {e}")).collect();
        return Err(submit_err(SubmitError::Fatal(why.join("; "))));
    }
    Ok((stats, expired))
}

/// Prints a run's counts on stderr.
/// Says why a record was not written: another sender sharing the ledger (an agent, or another
/// `submit`) stored its dedup key with another quantity after this run read the history. The
/// core's finding (`duplicate-request`), as the agent answers it.
fn report_conflict(
    ledger: &Ledger,
    validator: &metergate_core::Validator,
    row: &NewRow,
    live: i64,
) {
    let first = ledger
        .rows(&[live])
        .ok()
        .and_then(|r| r.first().map(LedgerRow::history_entry));
    let finding = first.and_then(|h| validator.shared_ledger_duplicate(&row.record, &h));
    let source = row.source.as_deref().unwrap_or("record");
    match finding {
        Some(f) => eprintln!(
            "metergate: {}: not written: {}: {} (hint: {})",
            crate::text::clean(source),
            f.code,
            crate::text::clean(&f.message),
            crate::text::clean(f.hint.as_deref().unwrap_or_default())
        ),
        None => eprintln!(
            "metergate: {}: not written: {}: ledger row {live} holds this key with another quantity, stored by another sender",
            crate::text::clean(source),
            Code::DuplicateRequest.as_str()
        ),
    }
}

pub fn report_run(stats: &RunStats, ledger: &Ledger) {
    eprintln!(
        "metergate: sent {} rows in {} calls ({} retried, {} split to find refused records, {} records unprocessed and re-sent): {} accepted, {} rejected, {} duplicate, {} failed (ledger {})",
        stats.rows,
        stats.calls,
        stats.retried_calls,
        stats.split_calls,
        stats.unprocessed,
        stats.accepted,
        stats.rejected,
        stats.duplicate,
        stats.failed,
        ledger.path()
    );
}

/// Loads the contracts (`--contracts`, else the contract store of the ledger; see
/// [`crate::contracts::load`]), settings and policies of a sending command.
pub fn load_setup(
    contracts: Option<&PathBuf>,
    ledger: Option<&Path>,
    config_file: Option<&PathBuf>,
    policies: &[PathBuf],
    now: Option<&str>,
) -> Result<Setup, CliError> {
    let now = config::parse_now(now)?;
    let (contracts, _) = crate::contracts::load(contracts.map(PathBuf::as_path), ledger)?;
    let settings = match config_file {
        Some(p) => config::load_settings(p)?,
        None => Settings::default(),
    };
    let validator = config::build_validator(contracts, settings, policies)?;
    Ok(Setup {
        validator,
        now,
        history: Vec::new(),
    })
}

struct Accepted {
    record: UsageRecord,
    source: String,
}

/// Runs `submit`.
pub fn run(args: &SubmitArgs) -> Result<u8, CliError> {
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
    let mut setup = load_setup(
        args.contracts.as_ref(),
        args.ledger.as_deref(),
        args.config.as_ref(),
        &args.policies,
        args.now.as_deref(),
    )?;
    let path = ledger::resolve_path(args.ledger.as_deref());
    let mut ledger = if args.dry_run {
        if ledger::exists(&path) {
            Some(Ledger::open(&path).map_err(ledger_err)?)
        } else {
            None
        }
    } else {
        Some(Ledger::open(&path).map_err(ledger_err)?)
    };
    if let Some(l) = &ledger {
        setup.history = l.history().map_err(ledger_err)?;
    }

    // 1. Judge, writing verdicts as `check` does, and keep what can be sent.
    let stdout = io::stdout();
    let stdout_tty = stdout.is_terminal();
    let format = args.format.unwrap_or(if stdout_tty {
        OutputFormat::Text
    } else {
        OutputFormat::Json
    });
    let color = stdout_tty && output::color_allowed();
    let out = BufWriter::with_capacity(256 * 1024, stdout.lock());
    let mut sink = output::sink(format, out, color);
    let mut checker = Checker::new(&setup);
    let wants_rows = sink.wants_rows();
    let mut accepted: Vec<Accepted> = Vec::new();
    let mut repeats = 0u64;
    for (input, fmt) in inputs.iter().zip(&formats) {
        let mut reader = RecordReader::open(input, *fmt)?;
        sink.begin_input(&input.name, reader.csv_headers())?;
        while let Some(rec) = reader.next_record()? {
            let kept = match (&rec.row, wants_rows, reader.csv_row().is_some()) {
                (Row::Record(raw), true, false) => Some(raw.clone()),
                _ => None,
            };
            let (verdict, parsed) = checker.judge(rec.row);
            let row = match (&kept, reader.csv_row()) {
                (Some(raw), _) => OutRow::Raw(raw),
                (None, Some(r)) => OutRow::Csv(r),
                (None, None) => OutRow::None,
            };
            sink.verdict(
                &verdict,
                SourceRef {
                    file: &input.name,
                    line: rec.line,
                },
                row,
            )?;
            if verdict.verdict == metergate_core::VerdictKind::Accepted {
                if verdict
                    .findings
                    .iter()
                    .any(|f| f.code == Code::DuplicateIgnored.as_str())
                {
                    repeats += 1;
                } else if let Some(record) = parsed {
                    accepted.push(Accepted {
                        record,
                        source: format!("{}:{}", input.name, rec.line),
                    });
                }
            }
        }
    }
    let summary = checker.into_summary();
    sink.finish(&summary)?;
    drop(sink);
    if repeats > 0 {
        eprintln!("metergate: {repeats} accepted records repeat a key already sent with the same quantity (duplicate-ignored); they are not sent again");
    }

    // 2. Wire values from the contracts.
    let contracts = setup.validator.contracts();
    let mut new_rows = Vec::with_capacity(accepted.len());
    let mut unsendable = 0u64;
    for a in accepted {
        let c = contracts
            .find(a.record.marketplace, &a.record.product, &a.record.customer)
            .map(|(_, c)| c);
        match submit::wire_values(&a.record, c) {
            Ok(wire) => new_rows.push(NewRow {
                record: a.record,
                source: Some(a.source),
                wire,
            }),
            Err(why) => {
                unsendable += 1;
                eprintln!(
                    "metergate: {}: not sent: {}",
                    crate::text::clean(&a.source),
                    crate::text::clean(&why.to_string())
                );
            }
        }
    }

    if args.dry_run {
        let recs: Vec<UsageRecord> = new_rows.iter().map(|r| r.record.clone()).collect();
        let calls = plan_batches(&recs).len();
        let waiting = match &ledger {
            Some(l) => l.unfinished().map_err(ledger_err)?.len(),
            None => 0,
        };
        eprintln!(
            "metergate: dry run: {} records would be written to {} and sent in {} calls; {} unfinished ledger rows would be re-sent; nothing was written or sent",
            new_rows.len(),
            ledger::display(&path),
            calls,
            waiting
        );
        return Ok(u8::from(summary.rejected > 0 || unsendable > 0));
    }
    let Some(ledger) = ledger.as_mut() else {
        return Err(CliError::Usage("the ledger is not open".into()));
    };

    // 3. Write everything before sending anything.
    let mut new = 0u64;
    let mut requeued = 0u64;
    let mut existing = 0u64;
    let mut conflicts = 0u64;
    for chunk in new_rows.chunks(5000) {
        for (e, row) in ledger
            .enqueue(chunk)
            .map_err(ledger_err)?
            .into_iter()
            .zip(chunk)
        {
            match e {
                Enqueued::New(_) => new += 1,
                Enqueued::Requeued(_) => requeued += 1,
                Enqueued::Existing(..) => existing += 1,
                Enqueued::Conflict(live) => {
                    conflicts += 1;
                    report_conflict(ledger, &setup.validator, row, live);
                }
            }
        }
    }
    if requeued > 0 || existing > 0 || conflicts > 0 {
        eprintln!("metergate: ledger: {new} new rows, {requeued} earlier rejected, failed or expired rows queued again, {existing} already present, {conflicts} not written (duplicate-request: another sender stored the key first)");
    }

    // 4. Send every unfinished row: these, and any an earlier run left behind.
    let rows = ledger.unfinished().map_err(ledger_err)?;
    let (stats, expired) = send_unfinished(
        ledger,
        rows,
        setup.validator.contracts(),
        setup.validator.settings(),
        setup.now,
        &args.send,
    )?;
    report_run(&stats, ledger);
    let bad = summary.rejected > 0
        || unsendable > 0
        || conflicts > 0
        || expired > 0
        || stats.rejected + stats.duplicate + stats.failed > 0;
    let stuck = ledger
        .counts()
        .map_err(ledger_err)?
        .iter()
        .any(|(s, n)| *s == Status::Pending && *n > 0);
    Ok(u8::from(bad || stuck))
}
