//! The agent's send loop: every tick, close the hours that are due, write the heartbeats
//! that are due, and send every unfinished ledger row, earliest deadline first, with the
//! batch path's senders ([`crate::submit`]: batching, call-rate limit, retries, splitting,
//! every transition in the ledger).
//!
//! Deadlines come from the core ([`metergate_core::window::deadline`], through
//! [`submit::row_deadline`]). A row is never sent after its hard deadline:
//! * before the tick sends anything, a `pending` row whose deadline has passed ends
//!   `expired` (the reason names the deadline and its rule), a `sending` row ends `failed`
//!   (an earlier call may have landed: see [`submit::late_outcome`]);
//! * while the tick sends, every call is checked again against the clock (`now` plus the
//!   time spent in the tick), and a row whose deadline passed meanwhile is ended the same way
//!   instead of being put on the wire.
//!
//! The scheduler is synchronous and takes "now" as an argument, so it is tested without
//! HTTP; the agent runs [`Scheduler::tick`] in a blocking task every send interval and
//! [`Scheduler::send_contract_now`] when a cancellation event arrives.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use chrono::{DateTime, Utc};
use metergate_core::batch::plan_batches;
use metergate_core::window::Deadline;
use metergate_core::{Marketplace, UsageRecord, Validator};
use serde::Serialize;

use crate::agent::heartbeat::{self, HeartbeatConfig};
use crate::agent::hourly::{self, ClosedHour, ConfigError, Due, HourEnd, HourlyConfig};
use crate::ledger::{Ledger, LedgerError, LedgerRow, Outcome, Status};
use crate::submit::{
    self, CallError, MarketplaceSender, RateLimiter, RecordResult, RetryPolicy, RunStats,
    SendOptions, SubmitError,
};

/// Why a tick stopped. A marketplace that cannot be reached does not stop a tick (it is in
/// [`MarketReport::stopped`]); only the ledger can.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// What the scheduler needs besides the ledger and the validator.
#[derive(Clone, Debug, Default)]
pub struct SchedulerConfig {
    /// `[serve] aggregate`.
    pub hourly: HourlyConfig,
    /// `[serve.heartbeat]`.
    pub heartbeat: HeartbeatConfig,
    /// How to reach each marketplace.
    pub send: SendOptions,
    /// Retries per call.
    pub policy: RetryPolicy,
}

impl SchedulerConfig {
    /// Reads `[serve] aggregate` and `[serve.heartbeat]` from the config (JSON; TOML
    /// converted); the connection and retries come from the command line.
    pub fn from_config(
        raw: &serde_json::Value,
        send: SendOptions,
        policy: RetryPolicy,
    ) -> Result<SchedulerConfig, ConfigError> {
        Ok(SchedulerConfig {
            hourly: HourlyConfig::from_config(raw)?,
            heartbeat: HeartbeatConfig::from_config(raw)?,
            send,
            policy,
        })
    }
}

/// One marketplace's part of a tick.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MarketReport {
    /// Calls that reached the marketplace.
    pub calls: u64,
    /// Calls that failed as a whole (throttling, 5xx, network, refused calls), plus one when
    /// the marketplace could not be reached at all.
    pub errors: u64,
    /// The send path's counts.
    pub stats: RunStats,
    /// Why nothing (more) could be sent this tick: no credentials, an access error, ... The
    /// rows stay unfinished for the next tick.
    pub stopped: Option<String>,
    /// When the last call that got an answer per record returned.
    #[serde(serialize_with = "ser_time_opt")]
    pub last_success: Option<DateTime<Utc>>,
}

/// What one tick did, for metrics and alerts.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TickReport {
    /// Rows that reached a final state in this tick (with status, answer and reason):
    /// accepted, rejected, duplicate, failed, expired.
    pub finished: Vec<LedgerRow>,
    /// Rows this tick wrote (hourly sums and heartbeats), as they were written. The intake
    /// adds them to its live dedup history ([`LedgerRow::history_entry`]), so usage that
    /// arrives later for their key is judged against them.
    pub written: Vec<LedgerRow>,
    /// Per marketplace: calls, errors, counts.
    pub markets: BTreeMap<Marketplace, MarketReport>,
    /// When the last successful call of this tick returned.
    #[serde(serialize_with = "ser_time_opt")]
    pub last_success: Option<DateTime<Utc>>,
    /// Heartbeat rows written.
    pub heartbeats: u64,
    /// Hours given heartbeats (possibly none each).
    pub heartbeat_hours: Vec<String>,
    /// Hourly sums closed (queued, carried or refused).
    pub hours_closed: Vec<ClosedHour>,
}

impl TickReport {
    /// Hours whose sum the core refused (worth an alert).
    pub fn hours_refused(&self) -> impl Iterator<Item = &ClosedHour> {
        self.hours_closed
            .iter()
            .filter(|h| matches!(h.end, HourEnd::Refused { .. }))
    }

    /// Rows that ended `expired` in this tick.
    pub fn expired(&self) -> impl Iterator<Item = &LedgerRow> {
        self.finished.iter().filter(|r| r.status == Status::Expired)
    }
}

fn ser_time_opt<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&metergate_core::time::format_rfc3339(*t)),
        None => s.serialize_none(),
    }
}

/// A marketplace's sender and its call-rate limit, kept between ticks.
struct Link {
    sender: Box<dyn MarketplaceSender + Send>,
    limiter: RateLimiter,
}

/// The send loop's state: one sender per marketplace (built on first use, rebuilt after it
/// could not reach its marketplace), and the configuration.
pub struct Scheduler {
    cfg: SchedulerConfig,
    links: HashMap<Marketplace, Link>,
    log: Box<dyn FnMut(&str) + Send>,
    stop: Box<dyn Fn() -> bool + Send>,
    /// The first tick's "now": hours that became due before it get no heartbeats.
    since: Option<DateTime<Utc>>,
}

impl Scheduler {
    /// A scheduler; senders are built when first needed.
    pub fn new(cfg: SchedulerConfig) -> Scheduler {
        Scheduler {
            cfg,
            links: HashMap::new(),
            log: Box::new(|_| {}),
            stop: Box::new(|| false),
            since: None,
        }
    }

    /// Asked before each call: when it answers true (shutdown), the tick sends nothing more
    /// and the rest stays pending. The call in flight always finishes and is recorded.
    pub fn with_stop(mut self, stop: impl Fn() -> bool + Send + 'static) -> Scheduler {
        self.stop = Box::new(stop);
        self
    }

    /// Receives one line per call (the send path's `--verbose` lines).
    pub fn with_log(mut self, log: impl FnMut(&str) + Send + 'static) -> Scheduler {
        self.log = Box::new(log);
        self
    }

    /// Uses this sender for its marketplace (instead of building one from the options).
    pub fn set_sender(&mut self, sender: Box<dyn MarketplaceSender + Send>) {
        let limiter = RateLimiter::new(sender.max_calls_per_second());
        self.links
            .insert(sender.marketplace(), Link { sender, limiter });
    }

    /// The configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.cfg
    }

    /// One tick at `now`: close the hours that are due, write the heartbeats that are due,
    /// end the rows whose window closed, and send every other unfinished row, earliest
    /// deadline first.
    pub fn tick(
        &mut self,
        ledger: &mut Ledger,
        validator: &Validator,
        now: DateTime<Utc>,
    ) -> Result<TickReport, SchedulerError> {
        let started = Instant::now();
        let mut report = TickReport::default();
        let mut written: Vec<i64> = Vec::new();
        if self.cfg.hourly.enabled() {
            let closed = hourly::close_due(ledger, validator, Due::Regular(&self.cfg.hourly), now)?;
            written.extend(closed.iter().filter_map(queued_id));
            report.hours_closed = closed;
        }
        let since = *self.since.get_or_insert(now);
        for hour in heartbeat::due_hours(ledger, &self.cfg.heartbeat, now, since)? {
            if let Some(b) = heartbeat::write_hour(ledger, validator, hour, now)? {
                report.heartbeats += b.rows.len() as u64;
                report
                    .heartbeat_hours
                    .push(metergate_core::time::format_rfc3339(b.hour));
                written.extend(b.rows);
            }
        }
        report.written = ledger.rows(&written)?;
        let rows = ledger.unfinished()?;
        self.send(ledger, validator, rows, now, started, &mut report)?;
        Ok(report)
    }

    /// Sends every unfinished row of one contract at once (after a cancellation event),
    /// closing its open hours first, whatever their time: the hour after a cancellation is
    /// the window sellers most often miss.
    pub fn send_contract_now(
        &mut self,
        ledger: &mut Ledger,
        validator: &Validator,
        marketplace: Marketplace,
        product: &str,
        customer: &str,
        now: DateTime<Utc>,
    ) -> Result<TickReport, SchedulerError> {
        let started = Instant::now();
        let mut report = TickReport::default();
        let closed = hourly::close_due(
            ledger,
            validator,
            Due::Contract {
                marketplace,
                product,
                customer,
            },
            now,
        )?;
        let written: Vec<i64> = closed.iter().filter_map(queued_id).collect();
        report.hours_closed = closed;
        report.written = ledger.rows(&written)?;
        let rows = ledger.unfinished_of(marketplace, product, customer)?;
        self.send(ledger, validator, rows, now, started, &mut report)?;
        Ok(report)
    }

    fn send(
        &mut self,
        ledger: &mut Ledger,
        validator: &Validator,
        rows: Vec<LedgerRow>,
        now: DateTime<Utc>,
        started: Instant,
        report: &mut TickReport,
    ) -> Result<(), SchedulerError> {
        let contracts = validator.contracts();
        let settings = validator.settings();
        let mut touched: Vec<i64> = Vec::new();
        let mut late: Vec<(i64, Outcome)> = Vec::new();
        let mut live: Vec<(Deadline, LedgerRow)> = Vec::new();
        // Rows another agent holds under a live lease are its to send or end: the claim in
        // submit::send_rows would skip them anyway, and ending them here could race its call.
        for r in ledger.without_held_elsewhere(rows)? {
            let d = submit::row_deadline(&r, contracts, settings, now);
            if d.hard && d.at < now {
                late.push((r.id, submit::late_outcome(&r, false, &d)));
                touched.push(r.id);
            } else {
                live.push((d, r));
            }
        }
        ledger.finish(&late)?;
        // Earliest deadline first: the core's batch planner keeps the order (each call is
        // placed where its first row is), and the calls of every marketplace go out in the
        // order of their most urgent row.
        live.sort_by(|(a, ra), (b, rb)| a.at.cmp(&b.at).then(ra.id.cmp(&rb.id)));
        let recs: Vec<UsageRecord> = live.iter().map(|(_, r)| r.usage_record()).collect();
        let batches = plan_batches(&recs);
        let mut deadlines = HashMap::new();
        let mut was_sent = BTreeSet::new();
        for (d, r) in &live {
            deadlines.insert(r.id, d.clone());
            if r.status == Status::Sending {
                was_sent.insert(r.id);
            }
        }
        let mut slots: Vec<Option<LedgerRow>> = live.into_iter().map(|(_, r)| Some(r)).collect();
        let mut stopped: BTreeSet<Marketplace> = BTreeSet::new();
        for batch in batches {
            let m = batch.marketplace;
            let rows: Vec<LedgerRow> = batch
                .records
                .iter()
                .filter_map(|i| slots.get_mut(*i).and_then(Option::take))
                .collect();
            if stopped.contains(&m) || rows.is_empty() {
                continue;
            }
            if (self.stop)() {
                // Shutting down: what is left stays pending for the next start.
                break;
            }
            let entry = report.markets.entry(m).or_default();
            if let std::collections::hash_map::Entry::Vacant(v) = self.links.entry(m) {
                match submit::sender_for(m, &self.cfg.send) {
                    Ok(sender) => {
                        let limiter = RateLimiter::new(sender.max_calls_per_second());
                        v.insert(Link { sender, limiter });
                    }
                    Err(e) => {
                        entry.errors += 1;
                        entry.stopped = Some(e);
                        stopped.insert(m);
                        continue;
                    }
                }
            }
            let Some(link) = self.links.get_mut(&m) else {
                continue;
            };
            touched.extend(rows.iter().map(|r| r.id));
            let mut guard = Guard {
                inner: link.sender.as_mut(),
                deadlines: &deadlines,
                was_sent: &mut was_sent,
                now,
                started,
                calls: 0,
                errors: 0,
                last_success: None,
            };
            let result = submit::send_rows(
                ledger,
                &mut guard,
                rows,
                &self.cfg.policy,
                &mut link.limiter,
                &mut *self.log,
            );
            entry.calls += guard.calls;
            entry.errors += guard.errors;
            let success = guard.last_success;
            if success > entry.last_success {
                entry.last_success = success;
            }
            if success > report.last_success {
                report.last_success = success;
            }
            match result {
                Ok(stats) => entry.stats.add(&stats),
                Err(SubmitError::Fatal(e)) => {
                    entry.errors += 1;
                    entry.stopped = Some(e);
                    stopped.insert(m);
                    // Build it again next tick (credentials may have been fixed).
                    self.links.remove(&m);
                }
                Err(SubmitError::Ledger(e)) => return Err(e.into()),
            }
        }
        for r in &late {
            if let Some(row) = ledger.rows(&[r.0])?.into_iter().next() {
                report
                    .markets
                    .entry(row.marketplace)
                    .or_default()
                    .stats
                    .expired += u64::from(row.status == Status::Expired);
            }
        }
        report.finished.extend(
            ledger
                .rows(&touched)?
                .into_iter()
                .filter(|r| r.status.is_final()),
        );
        Ok(())
    }
}

fn queued_id(h: &ClosedHour) -> Option<i64> {
    match h.end {
        HourEnd::Queued { id, .. } => Some(id),
        _ => None,
    }
}

/// Wraps a marketplace's sender so that no row goes on the wire after its deadline: before
/// each call, rows whose deadline passed (by `now` plus the time spent in the tick) are ended
/// instead ([`submit::late_outcome`]) and the rest go out in the next call. Counts calls,
/// errors and the last success.
struct Guard<'a> {
    inner: &'a mut (dyn MarketplaceSender + Send),
    deadlines: &'a HashMap<i64, Deadline>,
    was_sent: &'a mut BTreeSet<i64>,
    now: DateTime<Utc>,
    started: Instant,
    calls: u64,
    errors: u64,
    last_success: Option<DateTime<Utc>>,
}

impl Guard<'_> {
    fn clock(&self) -> DateTime<Utc> {
        let spent = chrono::Duration::from_std(self.started.elapsed()).unwrap_or_default();
        metergate_core::time::add(self.now, spent)
    }
}

impl MarketplaceSender for Guard<'_> {
    fn marketplace(&self) -> Marketplace {
        self.inner.marketplace()
    }

    fn max_calls_per_second(&self) -> u32 {
        self.inner.max_calls_per_second()
    }

    fn send(&mut self, product: &str, rows: &[LedgerRow]) -> Result<Vec<RecordResult>, CallError> {
        let t = self.clock();
        let late: Vec<Option<Outcome>> = rows
            .iter()
            .map(|r| {
                self.deadlines
                    .get(&r.id)
                    .filter(|d| d.hard && d.at < t)
                    .map(|d| submit::late_outcome(r, self.was_sent.contains(&r.id), d))
            })
            .collect();
        if late.iter().any(Option::is_some) {
            // End the late rows; the others go out in the next call, without them.
            return Ok(late
                .into_iter()
                .map(|o| match o {
                    Some(o) => RecordResult::Done(o),
                    None => RecordResult::Retry {
                        reason:
                            "held back while rows past their deadline were taken out of the call"
                                .into(),
                    },
                })
                .collect());
        }
        self.calls += 1;
        let answer = self.inner.send(product, rows);
        match &answer {
            Ok(_) => self.last_success = Some(self.clock()),
            Err(CallError::Retryable { .. }) => {
                // The call may have landed: a later deadline miss is `failed`, not `expired`.
                self.errors += 1;
                self.was_sent.extend(rows.iter().map(|r| r.id));
            }
            Err(_) => self.errors += 1,
        }
        if let Ok(results) = &answer {
            for (r, res) in rows.iter().zip(results) {
                if matches!(res, RecordResult::Retry { .. }) {
                    self.was_sent.insert(r.id);
                }
            }
        }
        answer
    }
}
