//! `metergate explain CODE`.

use std::io::{self, Write};

use metergate_core::explain::explain;
use metergate_core::rules::closest;
use metergate_core::Code;

use crate::error::CliError;

/// `explain` output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExplainFormat {
    /// Plain text.
    Text,
    /// The explanation as one JSON object.
    Json,
}

/// `explain` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct ExplainArgs {
    /// A finding code, e.g. duplicate-request.
    #[arg(value_name = "CODE")]
    pub code: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text", value_name = "FORMAT")]
    pub format: ExplainFormat,
}

/// Runs `explain`.
pub fn run(args: &ExplainArgs) -> Result<u8, CliError> {
    let Some(e) = explain(&args.code) else {
        let all: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        let guess = closest(&args.code, all.iter().copied())
            .map(|c| format!("did you mean {c}? "))
            .unwrap_or_default();
        return Err(CliError::Usage(format!(
            "unknown code {:?}: {guess}metergate defines {} (policy codes are the policy's own)",
            args.code,
            all.join(", ")
        )));
    };
    let mut out = io::stdout().lock();
    match args.format {
        ExplainFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &e).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        ExplainFormat::Text => {
            writeln!(out, "{} ({})", e.code, e.severity.as_str())?;
            writeln!(out)?;
            writeln!(out, "{}", e.meaning)?;
            writeln!(out)?;
            writeln!(out, "How to fix: {}", e.fix)?;
            writeln!(out)?;
            writeln!(out, "Rules that produce it:")?;
            let width = e.rules.iter().map(|r| r.id.len()).max().unwrap_or(0);
            for r in &e.rules {
                writeln!(out, "  {:<width$}  {}", r.id, r.value)?;
                writeln!(out, "  {:<width$}  source: {}", "", r.source)?;
            }
        }
    }
    out.flush()?;
    Ok(0)
}
