//! The agent's hourly sums in the ledger (`hourly_sums`; see [`crate::agent::hourly`] for
//! what they are for), on either engine.
//!
//! One row per marketplace key (marketplace, product, customer, metric) and hour: the table's
//! primary key. Several agents sharing one PostgreSQL ledger therefore add their events to
//! the same row, never one row each. Adding is insert-first: `INSERT ... ON CONFLICT DO
//! NOTHING` opens the hour; when the hour exists, its row is read `FOR UPDATE` on PostgreSQL
//! (SQLite's write lock already serialises writers), so two agents adding to one sum at the
//! same moment never lose an event, and an hour being closed by another agent is seen as
//! closed once that agent commits.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use metergate_core::aggregate::metric_key;
use metergate_core::time::{format_rfc3339, hour_floor, parse_rfc3339};
use metergate_core::{Marketplace, UsageRecord};
use rust_decimal::Decimal;

use super::db::{Engine, Exec};
use super::{db_err, Ledger, LedgerError};

/// What [`add_events`] did with one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Added {
    /// Added to the open sum of its hour.
    Open {
        /// The hour.
        hour: DateTime<Utc>,
    },
    /// Its hour is already closed (its sum was made, or a row of its own holds the key: a
    /// heartbeat, a record sent without aggregation): nothing was stored. The intake answers
    /// `duplicate-request` ([`crate::agent::hourly::closed_finding`]).
    Closed {
        /// The hour.
        hour: DateTime<Utc>,
        /// The ledger row that holds the hour's key, if there is one.
        record: Option<i64>,
        /// True when that row is an AWS heartbeat (quantity zero).
        heartbeat: bool,
    },
}

/// Adds accepted events to the open sums of their hours, all in one transaction, and says
/// for each whether its hour was still open.
pub fn add_events(ledger: &mut Ledger, records: &[UsageRecord]) -> Result<Vec<Added>, LedgerError> {
    let path = ledger.path().to_owned();
    let tx = ledger.begin()?;
    let out = add_events_in(&tx, &path, records)?;
    tx.commit().map_err(db_err(&path))?;
    Ok(out)
}

/// `FOR UPDATE` on PostgreSQL (a row lock until the transaction ends); nothing on SQLite,
/// whose write transaction already excludes every other writer.
fn for_update<E: Exec + ?Sized>(tx: &E) -> &'static str {
    match tx.engine() {
        Engine::Postgres => " FOR UPDATE",
        Engine::Sqlite => "",
    }
}

/// [`add_events`] inside the caller's transaction (the intake's group commit writes its
/// rows, its idempotency entries and the hourly events in one transaction).
pub fn add_events_in<E: Exec + ?Sized>(
    tx: &E,
    path: &str,
    records: &[UsageRecord],
) -> Result<Vec<Added>, LedgerError> {
    let e = db_err(path);
    let now = format_rfc3339(Utc::now());
    let find = format!(
        "SELECT status, quantity, events, min_start, max_start, max_end, record \
         FROM hourly_sums WHERE marketplace = ?1 AND product = ?2 AND customer = ?3 \
         AND metric = ?4 AND hour_secs = ?5{}",
        for_update(tx)
    );
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let mp = r.marketplace.as_str();
        let metric = metric_key(r.marketplace, &r.product, &r.dimension).to_owned();
        let hour = hour_floor(r.start_time);
        let hs = hour.timestamp();
        let start = format_rfc3339(r.start_time);
        let end = r.end_time.map(format_rfc3339);
        let found = tx
            .query_opt(&find, &[&mp, &r.product, &r.customer, &metric, &hs])
            .map_err(&e)?;
        let Some(found) = found else {
            // The hour may already be taken by a row of its own: a heartbeat, or a record
            // sent without aggregation. Then the event would be a duplicate.
            let taken = tx
                .query_opt(
                    "SELECT id, quantity FROM records WHERE marketplace = ?1 AND product = ?2 \
                     AND customer = ?3 AND dimension = ?4 AND start_secs >= ?5 \
                     AND start_secs < ?6 \
                     AND status IN ('pending', 'sending', 'accepted', 'duplicate') LIMIT 1",
                    &[
                        &mp,
                        &r.product,
                        &r.customer,
                        &r.dimension,
                        &hs,
                        &(hs + 3600),
                    ],
                )
                .map_err(&e)?;
            if let Some(t) = taken {
                let id: i64 = t.get(0).map_err(&e)?;
                let q: String = t.get(1).map_err(&e)?;
                out.push(Added::Closed {
                    hour,
                    record: Some(id),
                    heartbeat: r.marketplace == Marketplace::Aws
                        && Decimal::from_str(&q).is_ok_and(|q| q.is_zero()),
                });
                continue;
            }
            // Insert-first: another agent may open the same hour at the same moment.
            let n = tx
                .execute(
                    "INSERT INTO hourly_sums (marketplace, product, customer, metric, hour_secs, \
                     hour, dimension, plan, quantity, events, min_start, max_start, max_end, \
                     status, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10, ?10, ?11, 'open', ?12, ?12) \
                     ON CONFLICT (marketplace, product, customer, metric, hour_secs) DO NOTHING",
                    &[
                        &mp,
                        &r.product,
                        &r.customer,
                        &metric,
                        &hs,
                        &format_rfc3339(hour),
                        &r.dimension,
                        &r.plan,
                        &r.quantity.normalize().to_string(),
                        &start,
                        &end,
                        &now,
                    ],
                )
                .map_err(&e)?;
            if n == 1 {
                out.push(Added::Open { hour });
                continue;
            }
            // Opened by another agent just now: add to it like any open hour.
            let again = tx
                .query_opt(&find, &[&mp, &r.product, &r.customer, &metric, &hs])
                .map_err(&e)?;
            let Some(again) = again else {
                return Err(LedgerError::Corrupt {
                    path: path.to_owned(),
                    id: 0,
                    message: format!("hourly_sums {} {hs}: the hour vanished", r.product),
                });
            };
            out.push(add_to(tx, path, r, &again, &metric, hs, &now)?);
            continue;
        };
        out.push(add_to(tx, path, r, &found, &metric, hs, &now)?);
    }
    Ok(out)
}

/// Adds one event to the hour read in `found` (locked on PostgreSQL), or says it is closed.
fn add_to<E: Exec + ?Sized>(
    tx: &E,
    path: &str,
    r: &UsageRecord,
    found: &super::db::Row,
    metric: &str,
    hs: i64,
    now: &str,
) -> Result<Added, LedgerError> {
    let e = db_err(path);
    let hour = hour_floor(r.start_time);
    let status: String = found.get(0).map_err(&e)?;
    if status != "open" {
        return Ok(Added::Closed {
            hour,
            record: found.get(6).map_err(&e)?,
            heartbeat: false,
        });
    }
    let q: String = found.get(1).map_err(&e)?;
    let min_s: String = found.get(3).map_err(&e)?;
    let max_s: String = found.get(4).map_err(&e)?;
    let max_e: Option<String> = found.get(5).map_err(&e)?;
    let bad = |m: String| LedgerError::Corrupt {
        path: path.to_owned(),
        id: 0,
        message: format!("hourly_sums {} {hs}: {m}", r.product),
    };
    let q = Decimal::from_str(&q).map_err(|x| bad(format!("quantity: {x}")))?;
    let sum = q.saturating_add(r.quantity).normalize();
    let time = |s: &str| parse_rfc3339(s).map_err(|x| bad(format!("{s:?} {x}")));
    let min_s = time(&min_s)?.min(r.start_time);
    let max_s = time(&max_s)?.max(r.start_time);
    let max_e = match (max_e.as_deref().map(time).transpose()?, r.end_time) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    tx.execute(
        "UPDATE hourly_sums SET quantity = ?6, events = events + 1, min_start = ?7, \
         max_start = ?8, max_end = ?9, updated_at = ?10 \
         WHERE marketplace = ?1 AND product = ?2 AND customer = ?3 AND metric = ?4 \
         AND hour_secs = ?5",
        &[
            &r.marketplace.as_str(),
            &r.product,
            &r.customer,
            &metric,
            &hs,
            &sum.to_string(),
            &format_rfc3339(min_s),
            &format_rfc3339(max_s),
            &max_e.map(format_rfc3339),
            &now,
        ],
    )
    .map_err(&e)?;
    Ok(Added::Open { hour })
}

/// True when the ledger holds usage for this key in the hour: a row in `pending`, `sending`,
/// `accepted` or `duplicate`, or an hourly sum that is open or closed (not refused). What
/// heartbeats must not cover.
pub fn has_usage<E: Exec + ?Sized>(
    tx: &E,
    path: &str,
    c: (Marketplace, &str, &str),
    dimension: &str,
    hour: DateTime<Utc>,
) -> Result<bool, LedgerError> {
    let e = db_err(path);
    let start = hour_floor(hour).timestamp();
    let (mp, product, customer) = c;
    let row = tx
        .query_opt(
            "SELECT EXISTS (SELECT 1 FROM records WHERE marketplace = ?1 AND product = ?2 \
             AND customer = ?3 AND dimension = ?4 AND start_secs >= ?5 AND start_secs < ?7 \
             AND status IN ('pending', 'sending', 'accepted', 'duplicate')) \
             OR EXISTS (SELECT 1 FROM hourly_sums WHERE marketplace = ?1 AND product = ?2 \
             AND customer = ?3 AND metric = ?6 AND hour_secs = ?5 AND status != 'refused')",
            &[
                &mp.as_str(),
                &product,
                &customer,
                &dimension,
                &start,
                &metric_key(mp, product, dimension),
                &(start + 3600),
            ],
        )
        .map_err(&e)?;
    match row {
        Some(r) => r.get::<bool>(0).map_err(&e),
        None => Ok(false),
    }
}

/// The latest hour whose heartbeats are done (unix seconds), if any.
pub fn last_heartbeat_hour(ledger: &Ledger) -> Result<Option<i64>, LedgerError> {
    let e = db_err(ledger.path());
    let row = ledger
        .db()
        .query_opt("SELECT MAX(hour_secs) FROM heartbeat_hours", &[])
        .map_err(&e)?;
    match row {
        Some(r) => r.get::<Option<i64>>(0).map_err(&e),
        None => Ok(None),
    }
}

/// Claims the heartbeats of one hour, insert-first: true when this transaction holds the hour
/// now, false when it is done already (or another agent is writing it: on PostgreSQL the
/// insert waits for that agent's transaction, then finds the hour taken). So each hour's
/// heartbeats are written once across every agent.
pub fn claim_heartbeat_hour<E: Exec + ?Sized>(
    tx: &E,
    path: &str,
    hour: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, LedgerError> {
    let n = tx
        .execute(
            "INSERT INTO heartbeat_hours (hour_secs, hour, written, done_at) \
             VALUES (?1, ?2, 0, ?3) ON CONFLICT (hour_secs) DO NOTHING",
            &[
                &hour.timestamp(),
                &format_rfc3339(hour),
                &format_rfc3339(now),
            ],
        )
        .map_err(db_err(path))?;
    Ok(n == 1)
}

/// Records how many heartbeat rows an hour claimed with [`claim_heartbeat_hour`] wrote.
pub fn heartbeats_written<E: Exec + ?Sized>(
    tx: &E,
    path: &str,
    hour: DateTime<Utc>,
    written: usize,
) -> Result<(), LedgerError> {
    tx.execute(
        "UPDATE heartbeat_hours SET written = ?2 WHERE hour_secs = ?1",
        &[&hour.timestamp(), &(written as i64)],
    )
    .map_err(db_err(path))?;
    Ok(())
}
