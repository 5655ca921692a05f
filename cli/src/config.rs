//! Everything a verdict depends on besides the records: contracts, settings (TOML), policies,
//! "now" and the ledger's history. `check` and `submit` build their [`Validator`] here.
//!
//! The config file is TOML:
//!
//! ```toml
//! warning_margin = "30m"        # warn this long before a deadline
//!
//! [aws]
//! lookback = "6h"               # or "24h"
//!
//! [params.dimension_cap]        # parameters of the policy dimension_cap.rhai
//! caps = { api_calls = 100000 }
//! ```
//!
//! A file ending in `.json` is read as the same document in JSON.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use metergate_core::time::parse_rfc3339;
use metergate_core::{
    ContractError, ContractSet, HistoryEntry, PolicyError, PolicySource, Settings, Validator,
};

use crate::error::{CliError, Location};

/// The flags every judging command shares.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ValidatorArgs {
    /// Contracts: a JSON array (see examples/contracts.json). Without it the contract store
    /// of the ledger is used (`metergate contracts`); without either no customer is entitled.
    #[arg(long, value_name = "FILE")]
    pub contracts: Option<PathBuf>,
    /// A seller policy in rhai; repeat for more. Its name is the file stem.
    #[arg(long = "policy", value_name = "FILE")]
    pub policies: Vec<PathBuf>,
    /// Settings and policy parameters (TOML; .json also accepted).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The time to judge at, RFC 3339 (default: the system clock).
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// The submission ledger: keys already sent count as duplicates, and its contract store
    /// gives the contracts when --contracts is not given (default: $METERGATE_LEDGER, else
    /// ./metergate-ledger.sqlite, for the contracts only).
    /// A postgres:// or postgresql:// URL selects a PostgreSQL ledger shared by several agents.
    #[arg(long, value_name = "PATH|URL")]
    pub ledger: Option<PathBuf>,
}

/// A validator plus the "now" and history to judge with.
pub struct Setup {
    /// Contracts, settings and compiled policies.
    pub validator: Validator,
    /// The time verdicts are made at.
    pub now: DateTime<Utc>,
    /// Keys already submitted.
    pub history: Vec<HistoryEntry>,
}

impl ValidatorArgs {
    /// Loads everything; the first problem is an exit-2 error naming the file.
    pub fn load(&self) -> Result<Setup, CliError> {
        let now = parse_now(self.now.as_deref())?;
        let (contracts, _) =
            crate::contracts::load(self.contracts.as_deref(), self.ledger.as_deref())?;
        let settings = match &self.config {
            Some(p) => load_settings(p)?,
            None => Settings::default(),
        };
        let validator = build_validator(contracts, settings, &self.policies)?;
        let history = match &self.ledger {
            Some(p) => load_history(p)?,
            None => Vec::new(),
        };
        Ok(Setup {
            validator,
            now,
            history,
        })
    }
}

/// `--now`, or the system clock.
pub fn parse_now(now: Option<&str>) -> Result<DateTime<Utc>, CliError> {
    match now {
        None => Ok(Utc::now()),
        Some(s) => parse_rfc3339(s).map_err(|e| {
            CliError::Usage(format!(
                "--now {s:?} {e}; give an RFC 3339 time such as 2026-03-31T23:50:00Z"
            ))
        }),
    }
}

fn read_text(path: &Path) -> Result<String, CliError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| CliError::open(&name, e))?;
    String::from_utf8(bytes).map_err(|e| {
        let (line, col) = line_col(e.as_bytes(), e.utf8_error().valid_up_to());
        CliError::input(
            Location::at(&name, line, Some(col)),
            "not valid UTF-8; save the file as UTF-8",
        )
    })
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &[u8], offset: usize) -> (u64, u64) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    let col = before.iter().rev().take_while(|b| **b != b'\n').count() as u64 + 1;
    (line, col)
}

/// Reads and checks a contracts file.
pub fn load_contracts(path: &Path) -> Result<ContractSet, CliError> {
    let name = path.display().to_string();
    let text = read_text(path)?;
    ContractSet::from_json(&text).map_err(|e| match e {
        ContractError::Parse {
            line,
            column,
            path: field,
            message,
        } => CliError::input(
            Location::at(&name, line as u64, Some(column as u64)),
            if field.is_empty() || field == "." {
                format!("contracts: {message}")
            } else {
                format!("contracts: field {field}: {message}")
            },
        ),
        ContractError::Invalid {
            index,
            key,
            field,
            message,
        } => CliError::input(
            element_location(&name, &text, index),
            format!("contract [{index}] ({key}): field {field}: {message}"),
        ),
        ContractError::Duplicate { index, first, key } => CliError::input(
            element_location(&name, &text, index),
            format!(
                "contract [{index}] ({key}) repeats contract [{first}]: one contract per marketplace, product and customer"
            ),
        ),
    })
}

/// The line of the `index`-th element of a JSON array, found by reading the text again.
fn element_location(name: &str, text: &str, index: usize) -> Location {
    let reader = crate::input::RecordReader::from_reader(
        name,
        Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
        crate::input::InputFormat::Json,
    );
    let line = reader
        .ok()
        .and_then(|mut r| r.nth(index))
        .and_then(Result::ok)
        .map(|r| r.line);
    match line {
        Some(l) => Location::at(name, l, None),
        None => Location::file(name),
    }
}

/// Reads settings and policy parameters from TOML (or JSON for `.json`).
pub fn load_settings(path: &Path) -> Result<Settings, CliError> {
    let (value, _) = split_cli_sections(load_config_value(path)?);
    Settings::from_json_value(value).map_err(|e| {
        CliError::input(
            Location::file(&path.display().to_string()),
            format!("config: field {e}"),
        )
    })
}

/// Reads the config file as JSON (TOML converted), for the sections only the CLI reads.
pub fn load_config_value(path: &Path) -> Result<serde_json::Value, CliError> {
    let name = path.display().to_string();
    let text = read_text(path)?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        serde_json::from_str::<serde_json::Value>(&text).map_err(|e| {
            CliError::input(
                Location::at(&name, e.line() as u64, Some(e.column() as u64)),
                format!("config: {e}"),
            )
        })
    } else {
        let t = toml::from_str::<toml::Table>(&text).map_err(|e| {
            let loc = match e.span() {
                Some(s) => {
                    let (l, c) = line_col(text.as_bytes(), s.start);
                    Location::at(&name, l, Some(c))
                }
                None => Location::file(&name),
            };
            CliError::input(loc, format!("config: {}", e.message().trim()))
        })?;
        Ok(toml_to_json(toml::Value::Table(t)))
    }
}

/// The top-level config sections only the agent (`metergate serve`) reads; each agent module
/// parses its own section from the raw config (see `crate::agent::config`).
pub const AGENT_SECTIONS: [&str; 3] = ["serve", "alerts", "import"];

/// Splits off the config keys that only the CLI reads (`[gcp] provider` and
/// `[gcp.products."<service>"]`, which `contracts sync` uses, and the agent's sections
/// [`AGENT_SECTIONS`], dropped here), so the core's settings never see them and one config
/// file serves `check`, `submit` and `serve` alike. Returns (settings, the removed `gcp` keys
/// as an object).
pub fn split_cli_sections(mut value: serde_json::Value) -> (serde_json::Value, serde_json::Value) {
    let mut removed = serde_json::Map::new();
    if let Some(root) = value.as_object_mut() {
        for s in AGENT_SECTIONS {
            root.remove(s);
        }
    }
    if let Some(gcp) = value
        .get_mut("gcp")
        .and_then(serde_json::Value::as_object_mut)
    {
        for key in ["products", "provider"] {
            if let Some(p) = gcp.remove(key) {
                removed.insert(key.to_owned(), p);
            }
        }
        if gcp.is_empty() {
            if let Some(root) = value.as_object_mut() {
                root.remove("gcp");
            }
        }
    }
    (value, serde_json::Value::Object(removed))
}

/// TOML to JSON: datetimes become strings.
pub fn toml_to_json(v: toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        toml::Value::String(s) => J::String(s),
        toml::Value::Integer(i) => J::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(a.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => {
            J::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect())
        }
    }
}

/// Reads policies (name = file stem) and compiles them with the contracts and settings.
pub fn build_validator(
    contracts: ContractSet,
    settings: Settings,
    policy_files: &[PathBuf],
) -> Result<Validator, CliError> {
    let mut sources = Vec::with_capacity(policy_files.len());
    let mut names: Vec<(String, String)> = Vec::new();
    for p in policy_files {
        let display = p.display().to_string();
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.is_empty() {
            return Err(CliError::Usage(format!("--policy {display}: no file name")));
        }
        if let Some((_, other)) = names.iter().find(|(n, _)| *n == name) {
            return Err(CliError::Usage(format!(
                "--policy {display}: the policy name {name:?} is already taken by {other}; policy names are file stems and must differ"
            )));
        }
        let source = read_text(p)?;
        names.push((name.clone(), display));
        sources.push(PolicySource { name, source });
    }
    Validator::new(contracts, settings, &sources).map_err(|e| match e {
        PolicyError::Compile {
            name,
            line,
            column,
            message,
        } => {
            let file = names
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(name.clone(), |(_, d)| d.clone());
            CliError::input(
                Location::at(&file, line as u64, Some(column as u64)),
                format!("policy {name} does not compile: {message}"),
            )
        }
        other => {
            let msg = other.to_string();
            match names.iter().find(|(n, _)| {
                msg.contains(&format!("{n:?}")) || msg.contains(&format!("policy {n}"))
            }) {
                Some((_, file)) => CliError::input(Location::file(file), msg),
                None => CliError::Usage(format!("--policy: {msg}")),
            }
        }
    })
}

/// The keys already submitted, from the ledger at `path` (SQLite, written by `metergate
/// submit`): rows in pending, sending, accepted or duplicate. See [`crate::ledger`].
pub fn load_history(path: &Path) -> Result<Vec<HistoryEntry>, CliError> {
    crate::ledger::load_history(path).map_err(|e| CliError::Usage(format!("--ledger: {e}")))
}
