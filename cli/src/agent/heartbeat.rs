//! AWS heartbeats in the agent: zero-quantity records for an hour without usage, written
//! only after that hour has closed plus a grace (`[serve.heartbeat]`).
//!
//! ```toml
//! [serve.heartbeat]
//! enabled = true    # the default; AWS only (Azure refuses zero, Google needs none)
//! after = "15m"     # write an hour's heartbeats this long after the hour ends
//! catch_up = "0h"   # at start, also hours that became due this long before (default none)
//! ```
//!
//! An hour gets heartbeats when its due time (its end plus `after`) passes while the agent
//! runs. Hours that became due while it was not running get none (unless `catch_up` reaches
//! them): usage for them may still be on its way from clients that buffered it, and a
//! heartbeat would turn that usage into a duplicate.
//!
//! The records come from the core ([`metergate_core::heartbeat::heartbeats`]) for every
//! dimension of every active AWS contract without usage in the hour, in the ledger's rows
//! or in its open or closed hourly sums ([`plan`], shared with `metergate heartbeat`). Each is
//! judged by the core like any record, and the hour's heartbeats plus the mark "this hour is
//! done" (`heartbeat_hours`) are written in one transaction: after a crash an hour has all its
//! heartbeats or none, and never gets them twice.
//!
//! A heartbeat row is ordinary ledger history: usage for its key that arrives later gets
//! `duplicate-request` from the core (a different quantity for a key already sent). The
//! agent's intake learns about new heartbeat rows from
//! [`crate::agent::scheduler::TickReport::written`].

use std::cell::RefCell;

use chrono::{DateTime, Duration, Utc};
use metergate_core::heartbeat::heartbeats;
use metergate_core::settings::Span;
use metergate_core::time::{add, format_rfc3339, hour_floor};
use metergate_core::{ContractSet, UsageRecord, Validator, VerdictKind};
use serde::Deserialize;

use crate::agent::hourly::{raw_of, ConfigError};
use crate::ledger::db::{Db, Exec};
use crate::ledger::{db_err, enqueue_in, hourly, Enqueued, Ledger, LedgerError, NewRow};

/// The default grace after an hour ends before its heartbeats are written.
pub const DEFAULT_AFTER: Duration = Duration::minutes(15);

/// `[serve.heartbeat]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatConfig {
    /// On (the default) or off.
    pub enabled: bool,
    /// How long after an hour ends its heartbeats are written.
    pub after: Duration,
    /// At start, hours that became due up to this long before are given heartbeats too.
    pub catch_up: Duration,
}

impl Default for HeartbeatConfig {
    fn default() -> HeartbeatConfig {
        HeartbeatConfig {
            enabled: true,
            after: DEFAULT_AFTER,
            catch_up: Duration::zero(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    enabled: Option<bool>,
    after: Option<Span>,
    catch_up: Option<Span>,
}

impl HeartbeatConfig {
    /// Reads `serve.heartbeat` from the config (as JSON; TOML converted).
    pub fn from_config(raw: &serde_json::Value) -> Result<HeartbeatConfig, ConfigError> {
        let Some(v) = raw.get("serve").and_then(|s| s.get("heartbeat")) else {
            return Ok(HeartbeatConfig::default());
        };
        let s: Section = serde_json::from_value(v.clone()).map_err(|e| ConfigError {
            section: "serve.heartbeat".into(),
            message: format!(
                "{e} (keys: enabled = true|false, after = \"15m\", catch_up = \"0h\")"
            ),
        })?;
        let mut cfg = HeartbeatConfig::default();
        if let Some(b) = s.enabled {
            cfg.enabled = b;
        }
        if let Some(a) = s.after {
            if a.0 >= Duration::hours(5) {
                return Err(ConfigError {
                    section: "serve.heartbeat".into(),
                    message: format!(
                        "after {a} must be under 5h: AWS takes a record for at most 6 hours"
                    ),
                });
            }
            cfg.after = a.0;
        }
        if let Some(c) = s.catch_up {
            if c.0 >= Duration::hours(6) {
                return Err(ConfigError {
                    section: "serve.heartbeat".into(),
                    message: format!(
                        "catch_up {c} must be under 6h: AWS takes a record for at most 6 hours"
                    ),
                });
            }
            cfg.catch_up = c.0;
        }
        Ok(cfg)
    }

    /// The latest hour whose heartbeats are due at `now`: it ended at least `after` ago.
    pub fn latest_due(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        hour_floor(add(now, -self.after)) - Duration::hours(1)
    }
}

fn plan_on<E: Exec + ?Sized>(
    conn: Option<&E>,
    path: &str,
    contracts: &ContractSet,
    hour: DateTime<Utc>,
) -> Result<Vec<UsageRecord>, LedgerError> {
    let failure: RefCell<Option<LedgerError>> = RefCell::new(None);
    let beats = heartbeats(contracts, hour, |c, dim| {
        let Some(conn) = conn else { return false };
        match hourly::has_usage(
            conn,
            path,
            (c.marketplace, &c.product, &c.customer),
            dim,
            hour,
        ) {
            Ok(b) => b,
            Err(e) => {
                failure.borrow_mut().get_or_insert(e);
                true
            }
        }
    });
    match failure.into_inner() {
        Some(e) => Err(e),
        None => Ok(beats),
    }
}

/// The heartbeats of `hour` (the core's [`heartbeats`]) given what the ledger holds; without
/// a ledger, every dimension of every active AWS contract. Shared by `metergate heartbeat`
/// and the agent.
pub fn plan(
    ledger: Option<&mut Ledger>,
    contracts: &ContractSet,
    hour: DateTime<Utc>,
) -> Result<Vec<UsageRecord>, LedgerError> {
    match ledger {
        Some(l) => {
            let path = l.path().to_owned();
            plan_on(Some(l.db()), &path, contracts, hour)
        }
        None => plan_on(None::<&Db>, "", contracts, hour),
    }
}

/// The heartbeats written for one hour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HourBeats {
    /// The hour.
    pub hour: DateTime<Utc>,
    /// The new ledger rows (`pending`).
    pub rows: Vec<i64>,
    /// Heartbeats the core refused (e.g. outside the look-back), not written.
    pub refused: usize,
}

/// The hours whose heartbeats are due at `now` and not yet written, oldest first: those whose
/// due time (end plus `after`) passed after `since` (when the agent started) less `catch_up`,
/// and after the last hour already done.
pub fn due_hours(
    ledger: &mut Ledger,
    cfg: &HeartbeatConfig,
    now: DateTime<Utc>,
    since: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, LedgerError> {
    if !cfg.enabled {
        return Ok(Vec::new());
    }
    let latest = cfg.latest_due(now);
    // The first hour whose due time is after `since - catch_up`.
    let mut first = hour_floor(add(since, -(cfg.after + cfg.catch_up)));
    let last = hourly::last_heartbeat_hour(ledger)?;
    if let Some(next) = last.and_then(|l| DateTime::<Utc>::from_timestamp(l + 3600, 0)) {
        first = first.max(next);
    }
    let mut out = Vec::new();
    let mut h = first;
    while h <= latest {
        out.push(h);
        h += Duration::hours(1);
    }
    Ok(out)
}

/// Writes the heartbeats of one hour, judged by the core at `now`, and marks the hour done,
/// in one transaction. `None` when the hour was already done.
pub fn write_hour(
    ledger: &mut Ledger,
    validator: &Validator,
    hour: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<HourBeats>, LedgerError> {
    let hour = hour_floor(hour);
    let path = ledger.path().to_owned();
    let tx = ledger.begin()?;
    // Insert-first: the hour is this agent's to write, or done (dropping `tx` rolls back).
    if !hourly::claim_heartbeat_hour(&tx, &path, hour, now)? {
        return Ok(None);
    }
    let beats = plan_on(Some(&tx), &path, validator.contracts(), hour)?;
    let name = format!("heartbeat {}", format_rfc3339(hour));
    let mut rows = Vec::new();
    let mut refused = 0usize;
    for (i, b) in beats.iter().enumerate() {
        let verdict = validator.check_one(raw_of(b), now);
        if verdict.verdict != VerdictKind::Accepted {
            refused += 1;
            continue;
        }
        let c = validator
            .contracts()
            .find(b.marketplace, &b.product, &b.customer)
            .map(|(_, c)| c);
        match crate::submit::wire_values(b, c) {
            Ok(wire) => rows.push(NewRow {
                record: b.clone(),
                source: Some(format!("{name}:{}", i + 1)),
                wire,
            }),
            Err(_) => refused += 1,
        }
    }
    let mut ids = Vec::new();
    for x in enqueue_in(&tx, &path, &rows)? {
        if let Enqueued::New(id) | Enqueued::Requeued(id) = x {
            ids.push(id);
        }
    }
    hourly::heartbeats_written(&tx, &path, hour, ids.len())?;
    tx.commit().map_err(db_err(&path))?;
    Ok(Some(HourBeats {
        hour,
        rows: ids,
        refused,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use metergate_core::time::parse_rfc3339;
    use serde_json::json;

    #[test]
    fn config_and_due_hour() {
        let d = HeartbeatConfig::from_config(&json!({})).unwrap();
        assert!(d.enabled);
        assert_eq!(d.after, Duration::minutes(15));
        let off =
            HeartbeatConfig::from_config(&json!({"serve": {"heartbeat": {"enabled": false}}}))
                .unwrap();
        assert!(!off.enabled);
        let c = HeartbeatConfig::from_config(&json!({"serve": {"heartbeat": {"after": "30m"}}}))
            .unwrap();
        assert_eq!(c.after, Duration::minutes(30));
        assert!(
            HeartbeatConfig::from_config(&json!({"serve": {"heartbeat": {"after": "6h"}}}))
                .is_err()
        );
        assert!(HeartbeatConfig::from_config(&json!({"serve": {"heartbeat": {"x": 1}}})).is_err());
        let c = HeartbeatConfig::from_config(&json!({"serve": {"heartbeat": {"catch_up": "2h"}}}))
            .unwrap();
        assert_eq!(c.catch_up, Duration::hours(2));
        // 10:00–11:00 is due at 11:15, not at 11:14:59.
        let t = |s: &str| parse_rfc3339(s).unwrap();
        assert_eq!(
            d.latest_due(t("2026-03-10T11:15:00Z")),
            t("2026-03-10T10:00:00Z")
        );
        assert_eq!(
            d.latest_due(t("2026-03-10T11:14:59Z")),
            t("2026-03-10T09:00:00Z")
        );
    }
}
