//! The agent's config file: the same TOML (or `.json`) file `check` and `submit` read, plus
//! sections only the agent reads. The core's settings never see those sections
//! ([`crate::config::split_cli_sections`] drops them); each agent module parses its own
//! section from the raw JSON value kept in [`crate::agent::AgentState::config`].
//!
//! This module reads `[serve]`:
//!
//! ```toml
//! [serve]
//! listen = "127.0.0.1:8700"          # --listen wins
//! ledger = "/var/lib/metergate/ledger.sqlite"   # --ledger wins
//! contracts = "/etc/metergate/contracts.json"  # --contracts wins
//! send_interval = "60s"              # --send-interval wins
//! token_file = "/etc/metergate/token" # one token a line; METERGATE_API_TOKEN also works
//! body_limit = "10MiB"               # larger bodies get 413
//! lease = "2m"                       # how long a claimed row stays this agent's; METERGATE_LEASE_SECS wins
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use metergate_core::Settings;
use serde::Deserialize;

use super::AgentError;

/// The default body limit: 10 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 10 * 1024 * 1024;

/// The `[serve]` keys this module reads. Other keys of the section (`aggregate`,
/// `heartbeat`, ...) belong to other modules and are left alone.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ServeSection {
    /// Listen address.
    pub listen: Option<String>,
    /// Ledger file.
    pub ledger: Option<PathBuf>,
    /// Contracts file.
    pub contracts: Option<PathBuf>,
    /// Send interval (`60s`, `5m`, `500ms`).
    pub send_interval: Option<String>,
    /// A file of API tokens, one a line (blank lines and `#` comments skipped).
    pub token_file: Option<PathBuf>,
    /// The largest request body, in bytes or with a unit (`10MiB`, `512KiB`, `1MB`).
    pub body_limit: Option<serde_json::Value>,
    /// How long a row this agent claimed for sending stays its own before another agent on
    /// the same ledger may take it over (`120s` by default; `$METERGATE_LEASE_SECS` wins).
    pub lease: Option<String>,
}

/// A loaded config file.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// The whole file as JSON (`Null` without a file).
    pub raw: serde_json::Value,
    /// Its `[serve]` section.
    pub serve: ServeSection,
    /// The core's settings.
    pub settings: Settings,
}

impl Loaded {
    /// Reads `path` (or nothing: defaults).
    pub fn load(path: Option<&Path>) -> Result<Loaded, AgentError> {
        let Some(path) = path else {
            return Ok(Loaded::default());
        };
        let raw = crate::config::load_config_value(path)?;
        let serve = match raw.get("serve") {
            None => ServeSection::default(),
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| AgentError::Config(format!("{}: [serve]: {e}", path.display())))?,
        };
        let settings = crate::config::load_settings(path)?;
        Ok(Loaded {
            raw,
            serve,
            settings,
        })
    }

    /// The body limit in bytes.
    pub fn body_limit(&self) -> Result<usize, AgentError> {
        match &self.serve.body_limit {
            None => Ok(DEFAULT_BODY_LIMIT),
            Some(serde_json::Value::Number(n)) => n
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| bad_limit(&n.to_string())),
            Some(serde_json::Value::String(s)) => parse_size(s).ok_or_else(|| bad_limit(s)),
            Some(other) => Err(bad_limit(&other.to_string())),
        }
    }
}

fn bad_limit(s: &str) -> AgentError {
    AgentError::Config(format!(
        "[serve] body_limit = {s}: give a positive size in bytes or with a unit, e.g. \"10MiB\""
    ))
}

/// `1048576`, `512KiB`, `10MiB`, `1GiB`, `500KB`, `1MB` (KB/MB are powers of 1000).
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().ok()?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult).filter(|n| *n > 0)
}

/// `500ms`, `90s`, `5m`, `1h`.
pub fn parse_interval(s: &str) -> Option<Duration> {
    if let Some(ms) = s.strip_suffix("ms") {
        return ms
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Duration::from_millis);
    }
    let span = metergate_core::settings::Span::parse(s)?;
    let secs = u64::try_from(span.0.num_seconds())
        .ok()
        .filter(|n| *n > 0)?;
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10MiB"), Some(10 << 20));
        assert_eq!(parse_size("512 KiB"), Some(512 << 10));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("1MB"), Some(1_000_000));
        assert_eq!(parse_size("0"), None);
        assert_eq!(parse_size("MiB"), None);
        assert_eq!(parse_size("5 parsecs"), None);
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_interval("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_interval("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_interval("0s"), None);
        assert_eq!(parse_interval("soon"), None);
    }
}
