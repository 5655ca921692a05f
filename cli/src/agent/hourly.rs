//! Hourly aggregation in the agent (`[serve] aggregate = "hourly"`).
//!
//! Events for the same marketplace key (marketplace, product, customer, metric) and clock hour
//! are summed in the ledger table `hourly_sums` as they arrive ([`add_events`], called by the
//! intake after each event was judged on its own: entitlement, dimension, window, quantity
//! form). Once the hour is over (plus [`HourlyConfig::close_after`]), or earlier when its
//! deadline comes near or its contract is cancelled, [`close_due`] closes it: the sum plus the
//! remainder carried from the key's previous hour goes through the core's unit rule
//! ([`metergate_core::aggregate::aggregate_hourly`]: the largest valid quantity is sent, the
//! rest is carried to the key's next hour with usage, in `hourly_carry`), the sum is judged
//! by the core with the ledger's history of its hour (dedup, policies, windows), and it
//! becomes one `pending` ledger row, sent by the scheduler like any other.
//!
//! Every step is one SQLite transaction: adding an event, and closing an hour (reading the
//! sum and the carry, writing the ledger row, the new carry and the closed mark). After a
//! `kill -9` at any point an hour is either still open with all its events or closed with
//! exactly one row; it is never lost or doubled. An event for an hour already closed is
//! refused ([`Added::Closed`]): its hour's sum has gone (or is going) to the marketplace, and
//! a second record for that key would be a `duplicate-request`.
//!
//! Configuration (the `[serve]` table of the config file):
//!
//! ```toml
//! [serve]
//! aggregate = "hourly"          # every marketplace and product; "none" (default): send as is
//!
//! # or, instead, per marketplace and product:
//! [serve.aggregate]
//! aws = "hourly"                # every AWS product
//! products = ["svc.example.com"] # these products, on any marketplace
//! close_after = "5m"            # close an hour this long after it ends (default 5m)
//! ```
//!
//! Records with AWS usage allocations are never aggregated (a sum cannot keep their tags):
//! they go to the ledger as they are.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use metergate_core::aggregate::{aggregate_hourly, metric_key};
use metergate_core::settings::Span;
use metergate_core::time::{add, format_rfc3339, hour_floor, parse_rfc3339};
use metergate_core::window;
use metergate_core::{
    Code, Field, HistoryEntry, Marketplace, RawRecord, UsageRecord, Validator, VerdictKind,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ledger::db::{Engine, Exec};
pub use crate::ledger::hourly::{add_events, add_events_in, Added};
use crate::ledger::{db_err, enqueue_in, history_entry_in, Enqueued, Ledger, LedgerError, NewRow};

/// How long after its end an hour is closed, by default: events stamped inside an hour may
/// reach the agent a little after it ends.
pub const DEFAULT_CLOSE_AFTER: Duration = Duration::minutes(5);

/// An hour is closed early when its sum's hard deadline is less than this far away (a
/// cancelled contract's post-cancellation window, for instance).
pub const CLOSE_BEFORE_DEADLINE: Duration = Duration::minutes(15);

/// A section of the config file the agent reads is wrong.
#[derive(Debug, thiserror::Error)]
#[error("config [{section}]: {message}")]
pub struct ConfigError {
    /// The section, e.g. `serve.aggregate`.
    pub section: String,
    /// What is wrong.
    pub message: String,
}

/// Which records are summed per hour before sending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HourlyConfig {
    /// Every record.
    pub all: bool,
    /// Every record of these marketplaces.
    pub marketplaces: BTreeSet<Marketplace>,
    /// Every record of these products.
    pub products: BTreeSet<String>,
    /// How long after its end an hour is closed.
    pub close_after: Duration,
}

impl Default for HourlyConfig {
    fn default() -> HourlyConfig {
        HourlyConfig {
            all: false,
            marketplaces: BTreeSet::new(),
            products: BTreeSet::new(),
            close_after: DEFAULT_CLOSE_AFTER,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AggregateSection {
    Mode(Mode),
    Table(AggregateTable),
}

#[derive(Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Hourly,
    None,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AggregateTable {
    aws: Option<Mode>,
    azure: Option<Mode>,
    gcp: Option<Mode>,
    #[serde(default)]
    products: Vec<String>,
    close_after: Option<Span>,
}

impl HourlyConfig {
    /// Reads `serve.aggregate` from the config (as JSON; TOML converted). Missing: nothing is
    /// aggregated.
    pub fn from_config(raw: &serde_json::Value) -> Result<HourlyConfig, ConfigError> {
        let Some(v) = raw.get("serve").and_then(|s| s.get("aggregate")) else {
            return Ok(HourlyConfig::default());
        };
        let bad = |message: String| ConfigError {
            section: "serve.aggregate".into(),
            message,
        };
        let section: AggregateSection = serde_json::from_value(v.clone()).map_err(|_| {
            bad(format!(
                "{v} is neither \"hourly\" nor \"none\" nor a table of aws/azure/gcp = \"hourly\"|\"none\", products = [...], close_after = \"5m\""
            ))
        })?;
        let mut cfg = HourlyConfig::default();
        match section {
            AggregateSection::Mode(m) => cfg.all = m == Mode::Hourly,
            AggregateSection::Table(t) => {
                for (m, mode) in [
                    (Marketplace::Aws, t.aws),
                    (Marketplace::Azure, t.azure),
                    (Marketplace::Gcp, t.gcp),
                ] {
                    if mode == Some(Mode::Hourly) {
                        cfg.marketplaces.insert(m);
                    }
                }
                cfg.products = t.products.into_iter().collect();
                if let Some(s) = t.close_after {
                    if s.0 >= Duration::hours(1) {
                        return Err(bad(format!(
                            "close_after {s} must be under 1h: the sum must leave inside its window"
                        )));
                    }
                    cfg.close_after = s.0;
                }
            }
        }
        Ok(cfg)
    }

    /// True when anything is aggregated.
    pub fn enabled(&self) -> bool {
        self.all || !self.marketplaces.is_empty() || !self.products.is_empty()
    }

    /// True when this (accepted) record goes into an hourly sum instead of its own ledger row.
    pub fn applies(&self, r: &UsageRecord) -> bool {
        r.allocations.as_ref().is_none_or(Vec::is_empty)
            && (self.all
                || self.marketplaces.contains(&r.marketplace)
                || self.products.contains(&r.product))
    }
}

type Key = (Marketplace, String, String, String);

/// Judges one event for an hourly sum, at `now`: every rule of the core (entitlement,
/// dimension, window, identity, negative quantity, policies) except the ones the hourly sum
/// settles, which are judged on the sum when the hour closes: dedup (events of one hour share
/// a key by design) and the quantity's form (whole numbers, units, Microsoft's no-zero).
/// Returns the verdict and, when accepted, the parsed record (for [`add_events`]).
pub fn judge_event(
    validator: &Validator,
    raw: RawRecord,
    index: u64,
    now: DateTime<Utc>,
) -> (metergate_core::Verdict, Option<UsageRecord>) {
    let parsed = metergate_core::parse::parse_record(raw.clone()).ok();
    let verdict = validator.check_one(raw, now);
    let findings: Vec<_> = verdict
        .findings
        .into_iter()
        .filter(|f| {
            !(f.code == Code::InvalidQuantity.as_str()
                && f.rule != "all.quantity"
                && f.field.as_deref() == Some("quantity"))
        })
        .collect();
    let verdict = metergate_core::Verdict::from_findings(index, verdict.record_id, findings);
    let parsed = parsed.filter(|_| verdict.verdict == VerdictKind::Accepted);
    (verdict, parsed)
}

/// The finding for an event whose hour is already closed ([`Added::Closed`]): a
/// `duplicate-request` on `start_time`, saying what closed the hour. `None` for
/// [`Added::Open`].
pub fn closed_finding(r: &UsageRecord, added: &Added) -> Option<metergate_core::Finding> {
    let Added::Closed {
        hour, heartbeat, ..
    } = added
    else {
        return None;
    };
    let next = format_rfc3339(add(*hour, Duration::hours(1)));
    let what = if *heartbeat {
        "was already closed by a heartbeat (a zero-quantity record)"
    } else {
        "is already closed: its sum is in the ledger and goes (or went) to the marketplace"
    };
    Some(
        metergate_core::Finding::new(
            Code::DuplicateRequest,
            "serve.hourly",
            Some("start_time"),
            format!(
                "the hour {} of {} {what}; a second record for it would be dropped",
                format_rfc3339(*hour),
                r.dimension
            ),
        )
        .hint(format!(
            "send {} with a time in a later hour (from {next}), or close hours later ([serve.aggregate] close_after)",
            r.quantity
        )),
    )
}

/// One open hour, as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OpenHour {
    /// Marketplace.
    pub marketplace: Marketplace,
    /// Product.
    pub product: String,
    /// Customer key.
    pub customer: String,
    /// The metric key (the core's [`metric_key`]).
    pub metric: String,
    /// The dimension as the first event named it.
    pub dimension: String,
    /// The hour.
    pub hour: DateTime<Utc>,
    /// The first event's plan (Microsoft).
    pub plan: Option<String>,
    /// The sum so far.
    pub quantity: Decimal,
    /// How many events.
    pub events: i64,
    /// The earliest event start.
    pub min_start: DateTime<Utc>,
    /// The latest event start.
    pub max_start: DateTime<Utc>,
    /// The latest event end (Google).
    pub max_end: Option<DateTime<Utc>>,
}

impl OpenHour {
    /// The sum as one record, at the time the core's aggregation gives a sum: AWS and
    /// Microsoft the latest start among the events, Google the smallest interval covering
    /// them (so the record is billable whenever every event was).
    pub fn record(&self, quantity: Decimal) -> UsageRecord {
        let (start, end) = match self.marketplace {
            Marketplace::Gcp => (self.min_start, self.max_end),
            _ => (self.max_start, None),
        };
        UsageRecord {
            marketplace: self.marketplace,
            product: self.product.clone(),
            customer: self.customer.clone(),
            dimension: self.dimension.clone(),
            quantity,
            start_time: start,
            end_time: end,
            record_id: None,
            plan: self.plan.clone(),
            allocations: None,
            attributes: BTreeMap::new(),
        }
    }
}

/// The open hours in the ledger, oldest first.
pub fn open_hours(ledger: &mut Ledger) -> Result<Vec<OpenHour>, LedgerError> {
    let path = ledger.path().to_owned();
    read_open(ledger.db(), &path, None)
}

fn read_open<E: Exec + ?Sized>(
    conn: &E,
    path: &str,
    only: Option<(&Key, i64)>,
) -> Result<Vec<OpenHour>, LedgerError> {
    let e = db_err(path);
    let mut sql = String::from(
        "SELECT marketplace, product, customer, metric, dimension, hour_secs, plan, quantity, \
         events, min_start, max_start, max_end FROM hourly_sums WHERE status = 'open'",
    );
    if only.is_some() {
        sql.push_str(
            " AND marketplace = ?1 AND product = ?2 AND customer = ?3 AND metric = ?4 \
             AND hour_secs = ?5",
        );
    }
    sql.push_str(" ORDER BY hour_secs, marketplace, product, customer, metric");
    let rows = match only {
        Some(((mp, p, c, m), hs)) => {
            if conn.engine() == Engine::Postgres {
                // Closing: lock the hour against the intakes and other agents' closers.
                sql.push_str(" FOR UPDATE");
            }
            conn.query(&sql, &[&mp.as_str(), p, c, m, &hs])
        }
        None => conn.query(&sql, &[]),
    }
    .map_err(&e)?;
    let mut out = Vec::with_capacity(rows.len());
    for x in rows {
        let mp: String = x.get(0).map_err(&e)?;
        let product: String = x.get(1).map_err(&e)?;
        let customer: String = x.get(2).map_err(&e)?;
        let metric: String = x.get(3).map_err(&e)?;
        let dimension: String = x.get(4).map_err(&e)?;
        let hs: i64 = x.get(5).map_err(&e)?;
        let plan: Option<String> = x.get(6).map_err(&e)?;
        let q: String = x.get(7).map_err(&e)?;
        let events: i64 = x.get(8).map_err(&e)?;
        let min_s: String = x.get(9).map_err(&e)?;
        let max_s: String = x.get(10).map_err(&e)?;
        let max_e: Option<String> = x.get(11).map_err(&e)?;
        let bad = |m: String| LedgerError::Corrupt {
            path: path.to_owned(),
            id: 0,
            message: format!("hourly_sums {product} {hs}: {m}"),
        };
        let time = |s: &str| parse_rfc3339(s).map_err(|x| bad(format!("{s:?} {x}")));
        out.push(OpenHour {
            marketplace: Marketplace::parse(&mp)
                .ok_or_else(|| bad(format!("unknown marketplace {mp:?}")))?,
            hour: DateTime::<Utc>::from_timestamp(hs, 0)
                .ok_or_else(|| bad("hour out of range".into()))?,
            quantity: Decimal::from_str(&q).map_err(|x| bad(format!("quantity: {x}")))?,
            min_start: time(&min_s)?,
            max_start: time(&max_s)?,
            max_end: max_e.as_deref().map(time).transpose()?,
            product,
            customer,
            metric,
            dimension,
            plan,
            events,
        });
    }
    Ok(out)
}

/// How an hour ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "end", rename_all = "lowercase")]
pub enum HourEnd {
    /// Its sum is a `pending` ledger row.
    Queued {
        /// The row.
        id: i64,
        /// The quantity sent.
        quantity: Decimal,
        /// What is carried to the key's next hour.
        carried: Decimal,
    },
    /// Nothing to send this hour (a Microsoft sum under one unit, carried whole; or the same
    /// key and quantity already in the ledger).
    Nothing {
        /// What is carried to the key's next hour.
        carried: Decimal,
        /// Why.
        reason: String,
    },
    /// The core refused the sum (its findings); nothing is sent and the carry is kept.
    Refused {
        /// The error findings' codes.
        codes: Vec<String>,
        /// Their messages.
        reason: String,
    },
}

/// One hour closed by [`close_due`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClosedHour {
    /// The hour as it was before closing.
    pub hour: OpenHour,
    /// What became of it.
    pub end: HourEnd,
}

/// Which open hours [`close_due`] closes.
#[derive(Clone, Debug)]
pub enum Due<'a> {
    /// Hours over for [`HourlyConfig::close_after`], or whose deadline is near.
    Regular(&'a HourlyConfig),
    /// Every open hour of one contract, now (after a cancellation).
    Contract {
        /// Marketplace.
        marketplace: Marketplace,
        /// Product.
        product: &'a str,
        /// Customer key.
        customer: &'a str,
    },
}

/// Closes the open hours that are due at `now`, oldest first, each in its own transaction;
/// returns what became of each.
pub fn close_due(
    ledger: &mut Ledger,
    validator: &Validator,
    due: Due<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<ClosedHour>, LedgerError> {
    let candidates = open_hours(ledger)?;
    let mut out = Vec::new();
    for h in candidates {
        let closing = match &due {
            Due::Regular(cfg) => {
                let over = add(h.hour, Duration::hours(1) + cfg.close_after) <= now;
                over || near_deadline(&h, validator, now)
            }
            Due::Contract {
                marketplace,
                product,
                customer,
            } => h.marketplace == *marketplace && h.product == *product && h.customer == *customer,
        };
        if !closing {
            continue;
        }
        if let Some(c) = close_one(ledger, validator, &h, now)? {
            out.push(c);
        }
    }
    Ok(out)
}

fn near_deadline(h: &OpenHour, validator: &Validator, now: DateTime<Utc>) -> bool {
    let rec = h.record(h.quantity);
    let contracts = validator.contracts();
    let c = contracts
        .find(rec.marketplace, &rec.product, &rec.customer)
        .map(|(_, c)| c);
    let d = window::deadline(&rec, c, validator.settings(), now);
    d.hard && add(now, CLOSE_BEFORE_DEADLINE) >= d.at
}

/// The history of the sum's neighbourhood: the product's keys from an hour before to an
/// hour after (Google intervals may straddle hours).
fn history_near<E: Exec + ?Sized>(
    conn: &E,
    path: &str,
    h: &OpenHour,
) -> Result<Vec<HistoryEntry>, LedgerError> {
    let e = db_err(path);
    let from = h.hour.timestamp() - 3600;
    let to = h.hour.timestamp() + 7200;
    let found = conn
        .query(
            "SELECT customer, dimension, start_time, end_time, quantity, status, sent_at \
             FROM records WHERE marketplace = ?1 AND product = ?2 AND start_secs >= ?3 \
             AND start_secs < ?4 AND status IN ('pending', 'sending', 'accepted', 'duplicate')",
            &[&h.marketplace.as_str(), &h.product, &from, &to],
        )
        .map_err(&e)?;
    type Raw = (
        String,
        String,
        String,
        Option<String>,
        String,
        String,
        Option<String>,
    );
    let rows: Vec<Raw> = found
        .iter()
        .map(|x| {
            Ok((
                x.get(0)?,
                x.get(1)?,
                x.get(2)?,
                x.get(3)?,
                x.get(4)?,
                x.get(5)?,
                x.get(6)?,
            ))
        })
        .collect::<Result<_, _>>()
        .map_err(&e)?;
    let mut out = Vec::with_capacity(rows.len());
    for (customer, dimension, start, end, q, status, sent_at) in rows {
        let (Ok(start_time), Ok(quantity)) = (parse_rfc3339(&start), Decimal::from_str(&q)) else {
            continue;
        };
        let answered = status == "accepted" || status == "duplicate";
        out.push(HistoryEntry {
            marketplace: h.marketplace,
            product: h.product.clone(),
            customer,
            dimension,
            start_time,
            end_time: end.as_deref().and_then(|t| parse_rfc3339(t).ok()),
            quantity,
            sent_at: if answered {
                sent_at.as_deref().and_then(|t| parse_rfc3339(t).ok())
            } else {
                None
            },
        });
    }
    Ok(out)
}

/// The record as raw input, for judging it like any record the intake receives.
pub fn raw_of(r: &UsageRecord) -> RawRecord {
    let mut raw = RawRecord::default();
    raw.set("marketplace", Field::Text(r.marketplace.as_str().into()));
    raw.set("product", Field::Text(r.product.clone()));
    raw.set("customer", Field::Text(r.customer.clone()));
    raw.set("dimension", Field::Text(r.dimension.clone()));
    raw.set(
        "quantity",
        Field::Number(r.quantity.normalize().to_string()),
    );
    raw.set("start_time", Field::Text(format_rfc3339(r.start_time)));
    if let Some(end) = r.end_time {
        raw.set("end_time", Field::Text(format_rfc3339(end)));
    }
    if let Some(p) = &r.plan {
        raw.set("plan", Field::Text(p.clone()));
    }
    if let Some(id) = &r.record_id {
        raw.set("record_id", Field::Text(id.clone()));
    }
    raw
}

/// Closes one hour in one transaction. `None` when it was no longer open (closed meanwhile).
fn close_one(
    ledger: &mut Ledger,
    validator: &Validator,
    seen: &OpenHour,
    now: DateTime<Utc>,
) -> Result<Option<ClosedHour>, LedgerError> {
    let path = ledger.path().to_owned();
    let e = db_err(&path);
    let key: Key = (
        seen.marketplace,
        seen.product.clone(),
        seen.customer.clone(),
        seen.metric.clone(),
    );
    let hs = seen.hour.timestamp();
    let tx = ledger.begin()?;
    // Read again under the write lock: the intake may have added an event since.
    let Some(h) = read_open(&tx, &path, Some((&key, hs)))?.into_iter().next() else {
        return Ok(None);
    };
    let carry: Option<(String, String)> = match tx
        .query_opt(
            "SELECT remainder, next_hour FROM hourly_carry WHERE marketplace = ?1 \
             AND product = ?2 AND customer = ?3 AND metric = ?4",
            &[&key.0.as_str(), &key.1, &key.2, &key.3],
        )
        .map_err(&e)?
    {
        Some(x) => Some((x.get(0).map_err(&e)?, x.get(1).map_err(&e)?)),
        None => None,
    };
    // A carry belongs to the key's next hour with usage: this one, unless the carry was made
    // after it (an event for an earlier hour arrived late and opened it again). Then the old
    // carry waits for its own hour and this hour's remainder joins it.
    let old: Option<(Decimal, DateTime<Utc>)> =
        carry.and_then(|(q, next)| Some((Decimal::from_str(&q).ok()?, parse_rfc3339(&next).ok()?)));
    let (carried_in, waiting) = match old {
        Some((q, next)) if next <= h.hour => (q, None),
        Some((q, next)) => (Decimal::ZERO, Some((q, next))),
        None => (Decimal::ZERO, None),
    };

    // The core's unit rule over the sum plus the carry.
    let mut parts = vec![h.record(h.quantity)];
    if !carried_in.is_zero() {
        parts.push(h.record(carried_in));
    }
    let agg = aggregate_hourly(parts, Some(validator.contracts()));
    let carried_out = agg
        .carried
        .first()
        .map(|c| c.remainder)
        .unwrap_or(Decimal::ZERO);
    let sum = agg.records.into_iter().next();

    let end = match sum {
        None => HourEnd::Nothing {
            carried: carried_out,
            reason: "the sum is below one unit Microsoft can bill; it is carried".into(),
        },
        Some(rec) => {
            let mut session = validator.session(now);
            for entry in history_near(&tx, &path, &h)? {
                session.add_history(&entry);
            }
            let (verdict, parsed) = session.check_full(raw_of(&rec));
            let errors: Vec<_> = verdict.findings.iter().filter(|f| f.is_error()).collect();
            if verdict.verdict == VerdictKind::Rejected || parsed.is_none() {
                HourEnd::Refused {
                    codes: errors.iter().map(|f| f.code.clone()).collect(),
                    reason: errors
                        .iter()
                        .map(|f| f.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                }
            } else if verdict
                .findings
                .iter()
                .any(|f| f.code == Code::DuplicateIgnored.as_str())
            {
                HourEnd::Nothing {
                    carried: carried_out,
                    reason: "the same key and quantity are already in the ledger".into(),
                }
            } else {
                let contract = validator
                    .contracts()
                    .find(rec.marketplace, &rec.product, &rec.customer)
                    .map(|(_, c)| c);
                match crate::submit::wire_values(&rec, contract) {
                    Err(why) => HourEnd::Refused {
                        codes: Vec::new(),
                        reason: why,
                    },
                    Ok(wire) => {
                        let row = NewRow {
                            source: Some(format!(
                                "hourly {} ({} events)",
                                format_rfc3339(h.hour),
                                h.events
                            )),
                            record: rec.clone(),
                            wire,
                        };
                        match enqueue_in(&tx, &path, &[row])?.first() {
                            Some(Enqueued::New(id) | Enqueued::Requeued(id)) => HourEnd::Queued {
                                id: *id,
                                quantity: rec.quantity,
                                carried: carried_out,
                            },
                            // Another sender sharing the ledger stored the key meanwhile.
                            Some(Enqueued::Conflict(live)) => {
                                let first = history_entry_in(&tx, &path, *live)?;
                                let f = validator.shared_ledger_duplicate(&rec, &first);
                                HourEnd::Refused {
                                    codes: vec![Code::DuplicateRequest.as_str().to_owned()],
                                    reason: f.map(|f| f.message).unwrap_or_default(),
                                }
                            }
                            _ => HourEnd::Nothing {
                                carried: carried_out,
                                reason: "the same key and quantity are already in the ledger"
                                    .into(),
                            },
                        }
                    }
                }
            }
        }
    };

    let stamp = format_rfc3339(now);
    let (status, record, sent, carried, reason) = match &end {
        HourEnd::Queued {
            id,
            quantity,
            carried,
        } => ("closed", Some(*id), Some(*quantity), Some(*carried), None),
        HourEnd::Nothing { carried, reason } => (
            "closed",
            None,
            Some(Decimal::ZERO),
            Some(*carried),
            Some(reason.clone()),
        ),
        HourEnd::Refused { reason, .. } => ("refused", None, None, None, Some(reason.clone())),
    };
    tx.execute(
        "UPDATE hourly_sums SET status = ?6, record = ?7, sent_quantity = ?8, carried_in = ?9, \
         carried_out = ?10, reason = ?11, closed_at = ?12, updated_at = ?12 \
         WHERE marketplace = ?1 AND product = ?2 AND customer = ?3 AND metric = ?4 \
         AND hour_secs = ?5",
        &[
            &key.0.as_str(),
            &key.1,
            &key.2,
            &key.3,
            &hs,
            &status,
            &record,
            &sent.map(|q| q.normalize().to_string()),
            &carried_in.normalize().to_string(),
            &carried.map(|q| q.normalize().to_string()),
            &reason,
            &stamp,
        ],
    )
    .map_err(&e)?;
    // The carry moves on only when the hour used it (a refused hour keeps it for the next).
    if let Some(c) = carried {
        let next = add(h.hour, Duration::hours(1));
        let (c, next) = match waiting {
            Some((q, n)) => (c.saturating_add(q), n.max(next)),
            None => (c, next),
        };
        if c.is_zero() {
            tx.execute(
                "DELETE FROM hourly_carry WHERE marketplace = ?1 AND product = ?2 \
                 AND customer = ?3 AND metric = ?4",
                &[&key.0.as_str(), &key.1, &key.2, &key.3],
            )
            .map_err(&e)?;
        } else {
            tx.execute(
                "INSERT INTO hourly_carry (marketplace, product, customer, metric, remainder, \
                 next_hour, plan, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (marketplace, product, customer, metric) DO UPDATE SET \
                 remainder = excluded.remainder, next_hour = excluded.next_hour, \
                 plan = excluded.plan, updated_at = excluded.updated_at",
                &[
                    &key.0.as_str(),
                    &key.1,
                    &key.2,
                    &key.3,
                    &c.normalize().to_string(),
                    &format_rfc3339(next),
                    &h.plan,
                    &stamp,
                ],
            )
            .map_err(&e)?;
        }
    }
    tx.commit().map_err(&e)?;
    Ok(Some(ClosedHour { hour: h, end }))
}

/// True when the ledger's hourly sums hold usage for this key in the hour starting at `hour`
/// (open, or closed with a row): heartbeats must not cover it.
pub fn has_usage_in_hour(
    ledger: &mut Ledger,
    marketplace: Marketplace,
    product: &str,
    customer: &str,
    dimension: &str,
    hour: DateTime<Utc>,
) -> Result<bool, LedgerError> {
    let path = ledger.path().to_owned();
    let e = db_err(&path);
    let metric = metric_key(marketplace, product, dimension);
    let row = ledger
        .db()
        .query_opt(
            "SELECT EXISTS (SELECT 1 FROM hourly_sums WHERE marketplace = ?1 AND product = ?2 \
             AND customer = ?3 AND metric = ?4 AND hour_secs = ?5 AND status != 'refused')",
            &[
                &marketplace.as_str(),
                &product,
                &customer,
                &metric,
                &hour_floor(hour).timestamp(),
            ],
        )
        .map_err(&e)?;
    match row {
        Some(r) => r.get::<bool>(0).map_err(&e),
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(mp: Marketplace, product: &str) -> UsageRecord {
        UsageRecord {
            marketplace: mp,
            product: product.into(),
            customer: "c".into(),
            dimension: "d".into(),
            quantity: Decimal::ONE,
            start_time: DateTime::<Utc>::UNIX_EPOCH,
            end_time: None,
            record_id: None,
            plan: None,
            allocations: None,
            attributes: BTreeMap::new(),
        }
    }

    #[test]
    fn config_forms() {
        let none = HourlyConfig::from_config(&json!({})).unwrap();
        assert!(!none.enabled());
        let all = HourlyConfig::from_config(&json!({"serve": {"aggregate": "hourly"}})).unwrap();
        assert!(all.applies(&rec(Marketplace::Gcp, "x")));
        let off = HourlyConfig::from_config(&json!({"serve": {"aggregate": "none"}})).unwrap();
        assert!(!off.enabled());
        let some = HourlyConfig::from_config(&json!({"serve": {"aggregate": {
            "aws": "hourly", "azure": "none", "products": ["svc"], "close_after": "2m"}}}))
        .unwrap();
        assert!(some.applies(&rec(Marketplace::Aws, "p")));
        assert!(!some.applies(&rec(Marketplace::Azure, "p")));
        assert!(some.applies(&rec(Marketplace::Gcp, "svc")));
        assert_eq!(some.close_after, Duration::minutes(2));
        // Records with allocations are never summed.
        let mut tagged = rec(Marketplace::Aws, "p");
        tagged.allocations = Some(vec![metergate_core::model::Allocation {
            quantity: Decimal::ONE,
            tags: Vec::new(),
        }]);
        assert!(!some.applies(&tagged));
        for bad in [
            json!({"serve": {"aggregate": "daily"}}),
            json!({"serve": {"aggregate": {"aws": "weekly"}}}),
            json!({"serve": {"aggregate": {"close_after": "2h"}}}),
            json!({"serve": {"aggregate": {"typo": 1}}}),
        ] {
            let e = HourlyConfig::from_config(&bad).unwrap_err();
            assert_eq!(e.section, "serve.aggregate");
        }
    }
}
