//! # metergate (CLI)
//!
//! The command-line front of [`metergate_core`]: `check`, `explain` and `aggregate`. The
//! pieces other commands reuse are public: [`input`] (streaming CSV / JSON / JSON Lines
//! readers with line numbers), [`config`] (contracts, settings, policies, "now" → a
//! [`metergate_core::Validator`]), [`output`] (JSON Lines, text and CSV writers) and
//! [`commands::check::Checker`] (judging rows in order with whole-input indices).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod agent;
pub mod commands;
pub mod config;
pub mod contracts;
pub mod error;
pub mod import;
pub mod input;
pub mod ledger;
pub mod output;
pub mod rest;
pub mod submit;
pub mod text;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::{CliError, Location};

/// Check and submit cloud-marketplace usage records before the marketplace rejects them.
#[derive(Debug, Parser)]
#[command(name = "metergate", version, about, long_about = None)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Judge usage records: exit 0 when all are accepted, 1 when any is rejected, 2 on a
    /// usage or input error.
    Check(commands::check::CheckArgs),
    /// Explain a finding code: what it means, the rules behind it, how to fix it.
    Explain(commands::explain::ExplainArgs),
    /// Sum records into one per customer, dimension and hour (carrying unit remainders).
    Aggregate(commands::aggregate::AggregateArgs),
    /// Validate, write to the ledger, and send accepted records to their marketplaces (AWS
    /// BatchMeterUsage, Microsoft batchUsageEvent, Google Service Control): exit 0 when all
    /// were accepted, 1 otherwise, 2 on an error.
    Submit(commands::submit::SubmitArgs),
    /// Send again what the ledger holds in pending or sending (after a crash).
    Resume(commands::resume::ResumeArgs),
    /// Show the submission ledger: list, export, summary.
    Ledger(commands::ledger::LedgerArgs),
    /// Send AWS zero-quantity records for dimensions without usage in an hour.
    Heartbeat(commands::heartbeat::HeartbeatArgs),
    /// List what must be sent before when: pending ledger rows and cancelled contracts.
    Deadlines(commands::deadlines::DeadlinesArgs),
    /// The contract store: sync from the marketplaces, apply lifecycle events, import,
    /// list, export, history. Judging commands read it when --contracts is not given.
    Contracts(commands::contracts::ContractsArgs),
    /// Turn a billing platform's costs into usage: `import orb` (Orb's API) or `import costs
    /// FILE` (a CSV/JSON cost export). Bills what is owed since the last import, once.
    Import(commands::import::ImportArgs),
    /// Run the metering agent: an HTTP intake (POST /v1/usage), judged and committed to the
    /// ledger before the answer, and a send loop that submits what is pending.
    Serve(commands::serve::ServeArgs),
}

/// Runs the command line of this process.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Check(a) => commands::check::run(a),
        Command::Explain(a) => commands::explain::run(a),
        Command::Aggregate(a) => commands::aggregate::run(a),
        Command::Submit(a) => commands::submit::run(a),
        Command::Resume(a) => commands::resume::run(a),
        Command::Ledger(a) => commands::ledger::run(a),
        Command::Heartbeat(a) => commands::heartbeat::run(a),
        Command::Deadlines(a) => commands::deadlines::run(a),
        Command::Contracts(a) => commands::contracts::run(a),
        Command::Import(a) => commands::import::run(a),
        Command::Serve(a) => commands::serve::run(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if !e.is_broken_pipe() {
                eprintln!("metergate: error: {}", text::clean(&e.to_string()));
            }
            ExitCode::from(2)
        }
    }
}
