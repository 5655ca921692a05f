//! `metergate serve`: the always-on agent (see [`crate::agent`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::agent::config::{parse_interval, Loaded};
use crate::agent::{self, ServeOptions};
use crate::commands::submit::SendArgs;
use crate::error::CliError;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8700";

/// `serve` flags. Each one may also be given in the config's `[serve]` section; the flag wins.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// Where to listen (default 127.0.0.1:8700; port 0 picks a free port, printed on stdout).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Settings, policy parameters and the agent's sections ([serve], ...): TOML, or .json.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The ledger (default: [serve] ledger, $METERGATE_LEDGER, else
    /// ./metergate-ledger.sqlite). Created when missing.
    /// A postgres:// or postgresql:// URL selects a PostgreSQL ledger shared by several agents.
    #[arg(long, value_name = "PATH|URL")]
    pub ledger: Option<PathBuf>,
    /// Contracts: a JSON array. Default: the ledger's contract store (`metergate contracts`).
    #[arg(long, value_name = "FILE")]
    pub contracts: Option<PathBuf>,
    /// A seller policy in rhai; repeat for more.
    #[arg(long = "policy", value_name = "FILE")]
    pub policies: Vec<PathBuf>,
    /// How often pending records are sent: 500ms, 30s, 5m, 1h (default 60s).
    #[arg(long, value_name = "DURATION")]
    pub send_interval: Option<String>,
    /// Run without an API token. Refused unless the listen address is loopback.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Marketplace connection.
    #[command(flatten)]
    pub send: SendArgs,
}

/// Runs `serve` until SIGTERM or SIGINT.
pub fn run(args: &ServeArgs) -> Result<u8, CliError> {
    init_tracing();
    let loaded = Loaded::load(args.config.as_deref()).map_err(to_cli)?;
    let listen = match (args.listen, &loaded.serve.listen) {
        (Some(a), _) => a,
        (None, Some(s)) => s.parse().map_err(|e| {
            CliError::Usage(format!(
                "[serve] listen = {s:?}: {e}; give an address such as 127.0.0.1:8700"
            ))
        })?,
        (None, None) => DEFAULT_LISTEN
            .parse()
            .map_err(|e| CliError::Usage(format!("{e}")))?,
    };
    let interval_text = args
        .send_interval
        .clone()
        .or_else(|| loaded.serve.send_interval.clone())
        .unwrap_or_else(|| "60s".to_owned());
    let send_interval = parse_interval(&interval_text).ok_or_else(|| {
        CliError::Usage(format!(
            "--send-interval {interval_text:?}: give a positive duration such as 500ms, 30s, 5m or 1h"
        ))
    })?;
    let lease = match &loaded.serve.lease {
        None => None,
        Some(text) => Some(
            parse_interval(text)
                .filter(|d| d.as_secs() >= 1)
                .ok_or_else(|| {
                    CliError::Usage(format!(
                "[serve] lease = {text:?}: give a duration of at least 1s, such as 30s, 2m or 10m"
            ))
                })?,
        ),
    };
    let ledger = match (&args.ledger, &loaded.serve.ledger) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => p.clone(),
        (None, None) => crate::ledger::resolve_path(None),
    };
    let opts = ServeOptions {
        listen,
        config: args.config.clone(),
        ledger,
        contracts: args
            .contracts
            .clone()
            .or_else(|| loaded.serve.contracts.clone()),
        policies: args.policies.clone(),
        send_interval,
        lease,
        insecure_no_auth: args.insecure_no_auth,
        send: args.send.clone(),
    };
    agent::run(opts, loaded).map_err(to_cli)?;
    Ok(0)
}

fn to_cli(e: agent::AgentError) -> CliError {
    match e {
        agent::AgentError::Load(e) => e,
        other => CliError::Usage(other.to_string()),
    }
}

/// Logs on stderr: `METERGATE_LOG` filters (default `info`), `METERGATE_LOG_FORMAT=json` for
/// JSON lines.
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("METERGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("METERGATE_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
