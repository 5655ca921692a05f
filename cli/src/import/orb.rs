//! Orb: each contract's cost from Orb's public REST API.
//!
//! For every contract with the property `orb_subscription_id`:
//!
//! `GET {base}/subscriptions/{id}/costs?timeframe_start=S&timeframe_end=E&view_mode=cumulative&currency=C`
//! with `Authorization: Bearer $ORB_API_KEY`. `{base}` is `https://api.withorb.com/v1`, or
//! `--orb-url`, `[import.orb] url` or `$ORB_API_URL` (tests). `S` is where the contract's
//! costs are counted from: the start stored by its first import, else `--since`, else the
//! contract's `starts_at`. `E` is the next UTC midnight after now (Orb's windows are days,
//! `timeframe_end` exclusive), so today's costs so far are in. `C` is the currency of the
//! contract's cost dimension (Orb converts to it, or answers in that pricing unit).
//!
//! The answer is `{"data": [{"timeframe_start", "timeframe_end", "subtotal", "total",
//! "per_price_costs": [...]}, ...]}`; the costs endpoint is not paginated. In the default
//! cumulative view each datapoint is the total since the start of its billing period
//! (`timeframe_start` is that period's start; `timeframe_end` grows a day at a time), so the
//! total cost is, per billing period, the `total` of its latest datapoint, summed over the
//! periods (`total` includes minimums and discounts; Orb recommends the cumulative view for
//! them). Amounts are decimal strings, read exactly.
//!
//! Errors follow RFC 7807 (`{"type", "status", "title", "detail"}`). 429 and 5xx (and broken
//! connections) are retried with backoff, [`MAX_ATTEMPTS`] calls in all; anything else (401,
//! 404 for an unknown subscription, 400) fails that contract only: nothing is imported for
//! it and the ledger is unchanged for it. The API key never appears in output or the ledger.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, Utc};
use metergate_core::contract::ContractId;
use metergate_core::time::{format_rfc3339, parse_rfc3339};
use metergate_core::Validator;
use rust_decimal::Decimal;
use serde_json::Value;

use super::{cost_dimension, import_state, CostReading, ImportReport, Platform, ReadFailure};
use crate::ledger::{Ledger, LedgerError};
use crate::rest::{self, Answer};
use crate::submit::token::{self, error_chain, log_request, Secret};

/// The contract property holding the Orb subscription id.
pub const SUBSCRIPTION_PROPERTY: &str = "orb_subscription_id";
/// Orb's API.
pub const DEFAULT_BASE_URL: &str = "https://api.withorb.com/v1";
/// The variable holding the API key.
pub const API_KEY_ENV: &str = "ORB_API_KEY";
/// The variable that overrides the base URL (tests).
pub const API_URL_ENV: &str = "ORB_API_URL";
/// Calls per subscription before giving up on 429, 5xx and broken connections.
pub const MAX_ATTEMPTS: u32 = 4;

/// Why an Orb import could not run at all (per-contract failures are in the report).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// No API key, a bad URL or `[import.orb]` section.
    #[error("{0}")]
    Setup(String),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// `[import.orb]` in the config file: the schedule `serve` runs imports on, and the API URL.
///
/// ```toml
/// [import.orb]
/// every = "1h"                          # how often `serve` imports (at least 1m)
/// url = "https://api.withorb.com/v1"    # optional
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrbConfig {
    /// How often `serve` runs [`import_once`].
    pub every: chrono::Duration,
    /// The API base URL, when set.
    pub url: Option<String>,
}

impl OrbConfig {
    /// Reads `[import.orb]` from a config file's JSON form ([`crate::config::load_config_value`]);
    /// `Ok(None)` when the section is absent. Unknown keys and bad values are errors naming
    /// the key.
    pub fn from_config(config: &Value) -> Result<Option<OrbConfig>, String> {
        let Some(sec) = config.get("import").and_then(|i| i.get("orb")) else {
            return Ok(None);
        };
        let obj = sec
            .as_object()
            .ok_or("[import.orb] must be a table".to_owned())?;
        for k in obj.keys() {
            if k != "every" && k != "url" {
                return Err(format!(
                    "[import.orb] {k}: unknown key; the keys are every and url"
                ));
            }
        }
        let every = match obj.get("every") {
            None => chrono::Duration::hours(1),
            Some(v) => {
                let s = v
                    .as_str()
                    .ok_or("[import.orb] every: give a duration such as \"1h\"")?;
                let span = metergate_core::settings::Span::parse(s).ok_or_else(|| {
                    format!("[import.orb] every: {s:?} is not a duration like 30m, 1h or 1d")
                })?;
                if span.0 < chrono::Duration::minutes(1) {
                    return Err(format!("[import.orb] every: {s:?} is below the 1m minimum"));
                }
                span.0
            }
        };
        let url = match obj.get("url") {
            None => None,
            Some(Value::String(u)) => Some(u.clone()),
            Some(_) => return Err("[import.orb] url: give a URL string".into()),
        };
        Ok(Some(OrbConfig { every, url }))
    }
}

/// How to reach Orb.
#[derive(Clone, Debug)]
pub struct OrbOptions {
    /// The API key (`$ORB_API_KEY`).
    pub api_key: Secret,
    /// The API base URL, without a trailing slash.
    pub base_url: String,
    /// Where costs are counted from for contracts imported for the first time (default: the
    /// contract's `starts_at`). Contracts already imported keep their stored start.
    pub since: Option<DateTime<Utc>>,
    /// Log requests and answers (the key redacted).
    pub verbose: bool,
}

impl OrbOptions {
    /// The key from `$ORB_API_KEY`; the URL from `url` (a flag or `[import.orb] url`), else
    /// `$ORB_API_URL`, else [`DEFAULT_BASE_URL`].
    pub fn from_env(
        url: Option<&str>,
        since: Option<DateTime<Utc>>,
        verbose: bool,
    ) -> Result<OrbOptions, ImportError> {
        let key = std::env::var(API_KEY_ENV)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| {
                ImportError::Setup(format!(
                    "no Orb API key: set {API_KEY_ENV} (an Orb API key; never on the command line)"
                ))
            })?;
        let env_url = std::env::var(API_URL_ENV).ok().filter(|u| !u.is_empty());
        let base = url
            .map(str::to_owned)
            .or(env_url)
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        reqwest::Url::parse(&base)
            .map_err(|e| ImportError::Setup(format!("the Orb URL {base:?} is not a URL: {e}")))?;
        Ok(OrbOptions {
            api_key: Secret::new(key),
            base_url: base.trim_end_matches('/').to_owned(),
            since,
            verbose,
        })
    }
}

/// The total of a costs answer: per billing period (`timeframe_start`), the `total` of the
/// datapoint with the latest `timeframe_end`, summed.
pub fn total_of(answer: &Value) -> Result<Decimal, String> {
    let data = answer
        .get("data")
        .and_then(Value::as_array)
        .ok_or("the answer has no data array")?;
    let mut periods: BTreeMap<String, (DateTime<Utc>, Decimal)> = BTreeMap::new();
    for (i, d) in data.iter().enumerate() {
        let field = |name: &str| {
            d.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("data[{i}].{name} is missing or not a string"))
        };
        let start = field("timeframe_start")?;
        let end_s = field("timeframe_end")?;
        let end =
            parse_rfc3339(end_s).map_err(|e| format!("data[{i}].timeframe_end {end_s:?} {e}"))?;
        let start_t =
            parse_rfc3339(start).map_err(|e| format!("data[{i}].timeframe_start {start:?} {e}"))?;
        let total_s = field("total")?;
        let total: Decimal = total_s
            .parse()
            .map_err(|_| format!("data[{i}].total {total_s:?} is not a decimal"))?;
        let key = format_rfc3339(start_t);
        match periods.get(&key) {
            Some((e, _)) if *e >= end => {}
            _ => {
                periods.insert(key, (end, total));
            }
        }
    }
    periods
        .values()
        .try_fold(Decimal::ZERO, |s, (_, t)| s.checked_add(*t))
        .ok_or_else(|| "the totals overflow a decimal".to_owned())
}

fn orb_error(status: u16, body: &str) -> String {
    let v: Option<Value> = serde_json::from_str(body).ok();
    let part = |k: &str| {
        v.as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match (part("title"), part("detail")) {
        (Some(t), Some(d)) => format!("HTTP {status}: {t}: {d}"),
        (Some(t), None) => format!("HTTP {status}: {t}"),
        _ => format!("HTTP {status}: {}", token::snippet(body)),
    }
}

async fn fetch_costs(
    http: &reqwest::Client,
    opts: &OrbOptions,
    subscription: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    currency: &str,
) -> Result<Decimal, String> {
    let mut url = reqwest::Url::parse(&format!("{}/subscriptions/", opts.base_url))
        .map_err(|e| format!("bad Orb URL: {e}"))?;
    url.path_segments_mut()
        .map_err(|_| "the Orb URL cannot have a path".to_owned())?
        .pop_if_empty()
        .push(subscription)
        .push("costs");
    url.query_pairs_mut()
        .append_pair("timeframe_start", &format_rfc3339(start))
        .append_pair("timeframe_end", &format_rfc3339(end))
        .append_pair("view_mode", "cumulative")
        .append_pair("currency", currency);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let req = http
            .get(url.clone())
            .bearer_auth(opts.api_key.expose())
            .header("accept", "application/json")
            .build()
            .map_err(|e| format!("cannot build the request: {}", error_chain(&e)))?;
        log_request(opts.verbose, &req);
        let retry = match rest::send(http, req, url.as_str(), opts.verbose, orb_error).await? {
            Answer::Json(v) => return total_of(&v).map_err(|e| format!("GET {url}: {e}")),
            Answer::Retry(m) => m,
            Answer::Status { status, body } => {
                return Err(format!("GET {url}: {}", orb_error(status, &body)))
            }
        };
        if attempt >= MAX_ATTEMPTS {
            return Err(format!("{retry} (after {attempt} attempts)"));
        }
        rest::pause(attempt).await;
    }
}

/// The next UTC midnight after `now`: Orb's `timeframe_end` (exclusive, whole days).
fn next_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let day = now.date_naive();
    day.checked_add_days(Days::new(1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(now, |t| t.and_utc())
}

/// One Orb import: reads every linked contract's cost and writes what is owed to the ledger
/// as `pending` rows (see [`crate::import`]); sends nothing. `dry_run` reads and judges but
/// writes nothing. A contract whose call fails gets [`super::Outcome::Failed`] and nothing
/// else changes for it; the others go on.
///
/// Blocking (it runs its own single-threaded runtime): from async code, call it inside
/// `tokio::task::spawn_blocking`.
pub fn import_once(
    ledger: &mut Ledger,
    validator: &Validator,
    opts: &OrbOptions,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<ImportReport, ImportError> {
    let contracts = validator.contracts();
    let mut jobs: Vec<(ContractId, String, DateTime<Utc>, String)> = Vec::new();
    let mut since_map: BTreeMap<ContractId, String> = BTreeMap::new();
    let mut readings: Vec<Result<CostReading, ReadFailure>> = Vec::new();
    for (i, c) in contracts.all().iter().enumerate() {
        let id = i as ContractId;
        let Some(sub) = c
            .properties
            .get(SUBSCRIPTION_PROPERTY)
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        let currency = match cost_dimension(c) {
            Ok(d) => d.currency().to_owned(),
            Err(message) => {
                readings.push(Err(ReadFailure {
                    contract: id,
                    reference: sub.clone(),
                    message,
                }));
                continue;
            }
        };
        let stored = import_state(ledger, Platform::Orb, c)?;
        let since = match stored.as_ref().and_then(|s| parse_rfc3339(&s.since).ok()) {
            Some(t) => t,
            None => opts.since.unwrap_or(c.starts_at),
        };
        since_map.insert(id, format_rfc3339(since));
        jobs.push((id, sub.clone(), since, currency));
    }
    if !jobs.is_empty() {
        let http = token::http_client().map_err(ImportError::Setup)?;
        let rt = token::runtime().map_err(ImportError::Setup)?;
        let end = next_midnight(now);
        rt.block_on(async {
            for (id, sub, since, currency) in &jobs {
                let r = fetch_costs(&http, opts, sub, *since, end, currency).await;
                readings.push(match r {
                    Ok(total) => Ok(CostReading {
                        contract: *id,
                        total,
                        currency: currency.clone(),
                        reference: sub.clone(),
                    }),
                    Err(message) => Err(ReadFailure {
                        contract: *id,
                        reference: sub.clone(),
                        message,
                    }),
                });
            }
        });
    }
    // Contract order, whatever order the readings came in.
    readings.sort_by_key(|r| match r {
        Ok(c) => c.contract,
        Err(f) => f.contract,
    });
    Ok(super::plan(
        Some(ledger),
        validator,
        Platform::Orb,
        readings,
        &since_map,
        now,
        dry_run,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_section() {
        let none = OrbConfig::from_config(&json!({"aws": {}})).unwrap();
        assert!(none.is_none());
        let c = OrbConfig::from_config(&json!({"import": {"orb": {"every": "30m"}}}))
            .unwrap()
            .unwrap();
        assert_eq!(c.every, chrono::Duration::minutes(30));
        assert!(c.url.is_none());
        let d = OrbConfig::from_config(&json!({"import": {"orb": {}}}))
            .unwrap()
            .unwrap();
        assert_eq!(d.every, chrono::Duration::hours(1));
        for bad in [
            json!({"import": {"orb": {"every": "soon"}}}),
            json!({"import": {"orb": {"every": "10s"}}}),
            json!({"import": {"orb": {"evry": "1h"}}}),
            json!({"import": {"orb": {"url": 5}}}),
            json!({"import": {"orb": "1h"}}),
        ] {
            assert!(OrbConfig::from_config(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cumulative_totals_per_billing_period() {
        let answer = json!({"data": [
            {"timeframe_start": "2026-02-01T00:00:00Z", "timeframe_end": "2026-02-27T00:00:00Z",
             "subtotal": "40.00", "total": "50.00", "per_price_costs": []},
            {"timeframe_start": "2026-02-01T00:00:00Z", "timeframe_end": "2026-03-01T00:00:00Z",
             "subtotal": "45.10", "total": "50.00", "per_price_costs": []},
            {"timeframe_start": "2026-03-01T00:00:00Z", "timeframe_end": "2026-03-02T00:00:00Z",
             "subtotal": "1.005", "total": "1.005", "per_price_costs": []}
        ]});
        assert_eq!(total_of(&answer).unwrap().to_string(), "51.005");
        assert!(total_of(&json!({"data": [{"timeframe_start": "x"}]})).is_err());
        assert!(total_of(&json!({})).is_err());
        assert_eq!(total_of(&json!({"data": []})).unwrap(), Decimal::ZERO);
    }
}
