//! `metergate contracts sync | event | import | list | export | history`: the contract store
//! (see [`crate::contracts`]).

use std::io::{self, BufWriter, IsTerminal, Read, Write as _};
use std::path::PathBuf;

use chrono::Utc;
use metergate_core::time::format_rfc3339;
use metergate_core::Marketplace;

use crate::commands::ledger::table_format;
use crate::config;
use crate::contracts::events::{self, EventError};
use crate::contracts::store::{to_json, Write};
use crate::contracts::sync::aws::AwsSyncConfig;
use crate::contracts::sync::gcp::GcpConfig;
use crate::contracts::sync::{self, SyncChange, SyncError};
use crate::contracts::{store_err, Cause, Store};
use crate::error::{CliError, Location};
use crate::ledger::report::{Format, Table};
use crate::ledger::{self};
use crate::output::OutputFormat;
use crate::submit::aws::AwsOptions;
use crate::submit::azure::AzureOptions;

/// `contracts` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct ContractsArgs {
    /// The ledger that holds the store (default: $METERGATE_LEDGER, else
    /// ./metergate-ledger.sqlite).
    /// A postgres:// or postgresql:// URL selects a PostgreSQL ledger shared by several agents.
    #[arg(long, value_name = "PATH|URL", global = true)]
    pub ledger: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub action: ContractsAction,
}

/// `contracts` subcommands.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum ContractsAction {
    /// Pull every contract from the marketplaces into the store; print what was added,
    /// changed and ended. A failed call changes nothing for that marketplace (exit 2).
    Sync(SyncArgs),
    /// Apply one lifecycle notification (AWS SNS or EventBridge, Microsoft webhook, Google
    /// Pub/Sub) from FILE or `-` (stdin). Unknown or malformed: exit 2, nothing changes.
    Event {
        /// The event document; `-` reads stdin.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Output: text (default on a terminal) or json.
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: Option<OutputFormat>,
    },
    /// Put a contracts JSON file (what --contracts reads) into the store. Importing the same
    /// file again changes nothing.
    Import {
        /// The contracts file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// The stored contracts: text (default on a terminal), json (JSON Lines) or csv.
    List {
        /// Output format.
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: Option<OutputFormat>,
    },
    /// The stored contracts as the JSON array that --contracts reads.
    Export,
    /// Every change and event, oldest first.
    History {
        /// Only this customer key.
        #[arg(long, value_name = "CUSTOMER")]
        customer: Option<String>,
        /// Output format.
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: Option<OutputFormat>,
    },
}

/// `contracts sync` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct SyncArgs {
    /// aws, azure or gcp; repeat for more. Default: azure, gcp when the config names a
    /// provider, and aws when the config names `[aws.products]`.
    #[arg(long = "marketplace", value_name = "MARKETPLACE")]
    pub marketplaces: Vec<String>,
    /// Config (TOML): `[gcp] provider = "..."` and `[gcp.products."<service>"] metrics =
    /// [...]` (Google does not list metric names). Token: METERGATE_GCP_TOKEN, else
    /// Application Default Credentials; endpoint: METERGATE_GCP_PROCUREMENT_ENDPOINT.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output: text (default on a terminal) or json (JSON Lines).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<OutputFormat>,
    /// Microsoft's base URL instead of https://marketplaceapi.microsoft.com/api
    /// (METERGATE_AZURE_ENDPOINT also works). Credentials: AZURE_TENANT_ID, AZURE_CLIENT_ID,
    /// AZURE_CLIENT_SECRET.
    #[arg(long, value_name = "URL")]
    pub azure_endpoint: Option<String>,
    /// AWS: the endpoint instead of the public one, as in the AWS CLI (AWS_ENDPOINT_URL also
    /// works). Credentials and region: the standard AWS chain.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// AWS region (else AWS_REGION, AWS_DEFAULT_REGION or the AWS config file).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// AWS profile of the shared config and credentials files.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Log every HTTP request and answer to stderr (Authorization redacted).
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// FOR TESTS ONLY: the sync's time (RFC 3339), used where the marketplace gives none.
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
}

/// Runs `contracts`.
pub fn run(args: &ContractsArgs) -> Result<u8, CliError> {
    let path = ledger::resolve_path(args.ledger.as_deref());
    let stdout = io::stdout();
    let tty = stdout.is_terminal();
    let mut out = BufWriter::new(stdout.lock());
    let code = match &args.action {
        ContractsAction::Import { file } => {
            let set = config::load_contracts(file)?;
            let mut store = Store::open(&path).map_err(store_err)?;
            let stored = store.all().map_err(store_err)?;
            let (mut added, mut changed, mut same) = (0, 0, 0);
            let mut writes = Vec::new();
            for c in set.all() {
                let old = stored.iter().map(|s| &s.contract).find(|s| {
                    s.marketplace == c.marketplace
                        && s.product == c.product
                        && s.customer == c.customer
                });
                match old {
                    Some(o) if to_json(o) == to_json(c) => same += 1,
                    Some(_) => changed += 1,
                    None => added += 1,
                }
                if old.is_none_or(|o| to_json(o) != to_json(c)) {
                    writes.push(Write {
                        contract: c.clone(),
                        previous: old.cloned(),
                        applied: true,
                        state_at: None,
                        event_key: None,
                        event_time: None,
                        detail: format!("import {}", file.display()),
                    });
                }
            }
            if !writes.is_empty() {
                store.write(Cause::Import, &writes).map_err(store_err)?;
            }
            eprintln!(
                "metergate: imported {}: {added} added, {changed} changed, {same} unchanged (ledger {})",
                file.display(),
                store.path()
            );
            0
        }
        ContractsAction::List { format } => {
            let mut store = Store::open_existing(&path).map_err(store_err)?;
            let all = store.all().map_err(store_err)?;
            match table_format(*format, tty) {
                Format::Json => {
                    for s in &all {
                        let mut v = serde_json::to_value(&s.contract)
                            .map_err(|e| CliError::Usage(e.to_string()))?;
                        if let Some(o) = v.as_object_mut() {
                            o.insert(
                                "state_at".into(),
                                s.state_at
                                    .map(format_rfc3339)
                                    .map_or(serde_json::Value::Null, serde_json::Value::String),
                            );
                            o.insert("updated_at".into(), s.updated_at.clone().into());
                        }
                        serde_json::to_writer(&mut out, &v)
                            .map_err(|e| CliError::Output(e.into()))?;
                        out.write_all(b"\n")?;
                    }
                }
                f => {
                    let rows = all
                        .iter()
                        .map(|s| {
                            let c = &s.contract;
                            vec![
                                Some(c.marketplace.to_string()),
                                Some(c.product.clone()),
                                Some(c.customer.clone()),
                                Some(c.status.to_string()),
                                Some(format_rfc3339(c.starts_at)),
                                c.cancelled_at.map(format_rfc3339),
                                c.ends_at.map(format_rfc3339),
                                c.plan.clone(),
                                c.marketplace_id.clone(),
                                Some(
                                    c.dimensions
                                        .iter()
                                        .map(|d| d.name.as_str())
                                        .collect::<Vec<_>>()
                                        .join(" "),
                                )
                                .filter(|s| !s.is_empty()),
                                s.state_at.map(format_rfc3339),
                                crate::ledger::report::properties_cell(
                                    Some(&c.properties).filter(|p| !p.is_empty()),
                                ),
                            ]
                        })
                        .collect();
                    Table {
                        header: vec![
                            "marketplace",
                            "product",
                            "customer",
                            "status",
                            "starts_at",
                            "cancelled_at",
                            "ends_at",
                            "plan",
                            "marketplace_id",
                            "dimensions",
                            "state_at",
                            "properties",
                        ],
                        rows,
                    }
                    .write(f, &mut out)?;
                }
            }
            0
        }
        ContractsAction::Export => {
            let mut store = Store::open_existing(&path).map_err(store_err)?;
            let all: Vec<_> = store
                .all()
                .map_err(store_err)?
                .into_iter()
                .map(|s| s.contract)
                .collect();
            serde_json::to_writer_pretty(&mut out, &all).map_err(|e| CliError::Output(e.into()))?;
            out.write_all(b"\n")?;
            0
        }
        ContractsAction::History { customer, format } => {
            let mut store = Store::open_existing(&path).map_err(store_err)?;
            let rows = store.history(customer.as_deref()).map_err(store_err)?;
            match table_format(*format, tty) {
                Format::Json => {
                    for r in &rows {
                        serde_json::to_writer(&mut out, r)
                            .map_err(|e| CliError::Output(e.into()))?;
                        out.write_all(b"\n")?;
                    }
                }
                f => {
                    let status = |v: &Option<serde_json::Value>| {
                        v.as_ref()
                            .and_then(|v| v.get("status"))
                            .and_then(|s| s.as_str())
                            .map(str::to_owned)
                    };
                    let rows = rows
                        .iter()
                        .map(|r| {
                            vec![
                                Some(r.at.clone()),
                                Some(r.cause.clone()),
                                Some(r.marketplace.clone()),
                                Some(r.product.clone()),
                                Some(r.customer.clone()),
                                status(&r.previous),
                                status(&r.new),
                                Some(if r.applied { "yes" } else { "no" }.to_owned()),
                                r.event_time.clone(),
                                r.detail.clone(),
                            ]
                        })
                        .collect();
                    Table {
                        header: vec![
                            "at",
                            "cause",
                            "marketplace",
                            "product",
                            "customer",
                            "previous_status",
                            "status",
                            "applied",
                            "event_time",
                            "detail",
                        ],
                        rows,
                    }
                    .write(f, &mut out)?;
                }
            }
            0
        }
        ContractsAction::Event { file, format } => {
            let name = file.display().to_string();
            let text = if name == "-" {
                let mut s = String::new();
                io::stdin()
                    .read_to_string(&mut s)
                    .map_err(|e| CliError::read("-", e))?;
                s
            } else {
                std::fs::read_to_string(file).map_err(|e| CliError::open(&name, e))?
            };
            let ev = events::parse(&text, &name).map_err(event_err)?;
            let mut store = Store::open_existing(&path).map_err(store_err)?;
            let done = events::apply(&mut store, &ev, &name).map_err(event_err)?;
            match table_format(*format, tty) {
                Format::Json => {
                    serde_json::to_writer(&mut out, &done)
                        .map_err(|e| CliError::Output(e.into()))?;
                    out.write_all(b"\n")?;
                }
                _ => writeln!(
                    out,
                    "{}",
                    crate::text::clean(&format!(
                        "{}: {} {}/{}/{} at {}: {} -> {}: {}",
                        serde_json::to_value(&done.outcome)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        done.event,
                        done.marketplace,
                        done.product,
                        done.customer,
                        done.at,
                        done.previous_status,
                        done.status,
                        done.note
                    ))
                )?,
            }
            0
        }
        ContractsAction::Sync(a) => run_sync(a, &path, tty, &mut out)?,
    };
    out.flush()?;
    Ok(code)
}

fn event_err(e: EventError) -> CliError {
    CliError::Usage(e.to_string())
}

fn run_sync(
    a: &SyncArgs,
    path: &std::path::Path,
    tty: bool,
    out: &mut dyn io::Write,
) -> Result<u8, CliError> {
    let now = config::parse_now(a.now.as_deref())?;
    let mut wanted = Vec::new();
    for m in &a.marketplaces {
        let mp = Marketplace::parse(m).ok_or_else(|| {
            CliError::Usage(format!("--marketplace {m:?}: one of aws, azure, gcp"))
        })?;
        if !wanted.contains(&mp) {
            wanted.push(mp);
        }
    }
    // Read the config first, so that a bad one stops the sync before any call.
    let (gcp_cfg, aws_cfg) = match &a.config {
        Some(c) => {
            let v = config::load_config_value(c)?;
            let bad = |e: String| {
                CliError::input(
                    Location::file(&c.display().to_string()),
                    format!("config: {e}"),
                )
            };
            (
                GcpConfig::from_value(&v).map_err(bad)?,
                AwsSyncConfig::from_value(&v).map_err(bad)?,
            )
        }
        None => (GcpConfig::default(), AwsSyncConfig::default()),
    };
    if wanted.is_empty() {
        wanted.push(Marketplace::Azure);
        if gcp_cfg.provider.is_some() {
            wanted.push(Marketplace::Gcp);
        }
        if !aws_cfg.products.is_empty() {
            wanted.push(Marketplace::Aws);
        }
        eprintln!(
            "metergate: note: syncing {}",
            wanted
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(" and ")
        );
    }
    let mut store = Store::open(path).map_err(store_err)?;
    let json = matches!(table_format(a.format, tty), Format::Json);
    let mut failed = false;
    for m in wanted {
        let result: Result<(Vec<SyncChange>, usize, u64), SyncError> = (|| {
            let (synced, calls) = match m {
                Marketplace::Azure => sync::azure::fetch(
                    &AzureOptions {
                        endpoint: a.azure_endpoint.clone(),
                        verbose: a.verbose,
                    },
                    now,
                )?,
                Marketplace::Gcp => {
                    let (synced, calls, skipped) = sync::gcp::fetch(&gcp_cfg, a.verbose, now)?;
                    if skipped > 0 {
                        eprintln!("metergate: gcp: {skipped} entitlements are for products no [gcp.products] service names; skipped");
                    }
                    (synced, calls)
                }
                Marketplace::Aws => {
                    let (synced, calls, skipped) = sync::aws::fetch(
                        &aws_cfg,
                        &AwsOptions {
                            endpoint_url: a.endpoint_url.clone(),
                            region: a.region.clone(),
                            profile: a.profile.clone(),
                            verbose: a.verbose,
                        },
                        now,
                    )?;
                    if skipped > 0 {
                        eprintln!("metergate: aws: {skipped} agreements are for products no [aws.products] entry names; skipped");
                    }
                    (synced, calls)
                }
            };
            let changes = sync::apply(&mut store, m, &synced, now, &format!("sync {m}"))?;
            Ok((changes, synced.len(), calls))
        })();
        match result {
            Ok((changes, seen, calls)) => {
                let count = |k: &str| changes.iter().filter(|c| c.change == k).count();
                let (added, changed, ended) = (count("added"), count("changed"), count("ended"));
                if json {
                    for c in &changes {
                        serde_json::to_writer(&mut *out, c)
                            .map_err(|e| CliError::Output(e.into()))?;
                        out.write_all(b"\n")?;
                    }
                    serde_json::to_writer(
                        &mut *out,
                        &serde_json::json!({"summary": {
                            "marketplace": m.as_str(), "contracts": seen, "added": added,
                            "changed": changed, "ended": ended,
                            "unchanged": seen - changes.len(), "calls": calls,
                            "at": format_rfc3339(Utc::now()),
                        }}),
                    )
                    .map_err(|e| CliError::Output(e.into()))?;
                    out.write_all(b"\n")?;
                } else {
                    for c in &changes {
                        let line = format!(
                            "{} {} {}/{} ({}): {} -> {}",
                            c.change,
                            c.marketplace,
                            c.product,
                            c.customer,
                            c.marketplace_id,
                            c.previous_status.as_deref().unwrap_or("-"),
                            c.status
                        );
                        writeln!(out, "{}", crate::text::clean(&line))?;
                    }
                    writeln!(
                        out,
                        "{m}: {seen} contracts: {added} added, {changed} changed, {ended} ended, {} unchanged ({calls} calls)",
                        seen - changes.len()
                    )?;
                }
            }
            Err(e) => {
                failed = true;
                eprintln!(
                    "metergate: sync failed, nothing changed for {m}: {}",
                    crate::text::clean(&e.to_string())
                );
            }
        }
    }
    Ok(if failed { 2 } else { 0 })
}
