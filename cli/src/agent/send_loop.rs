//! The send loop: every `--send-interval`, or at once on a [`Wake`], one
//! [`Scheduler::tick`]: due hourly sums are closed, due heartbeats written, rows past their
//! deadline ended `expired` (or `failed` when an earlier call may have landed), and the other
//! unfinished rows sent earliest deadline first with the existing senders
//! ([`crate::submit`]). On [`Wake::Contract`] (a cancellation event) the loop runs
//! [`Scheduler::send_contract_now`] for that contract first: its open hours are closed and its
//! rows sent at once.
//!
//! The senders are synchronous, so the loop runs in its own thread with its own ledger
//! connection. Before each call the scheduler looks at the shutdown flag: on SIGTERM the call
//! in flight finishes and is recorded, and the rest stays `pending` for the next start.
//!
//! After each pass, rows the intake must know about (heartbeats, hourly sums, rows that left
//! the dedup history) make it reload its history ([`AgentState::ledger_changed`]).

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use chrono::Utc;

use super::hourly::HourEnd;
use super::scheduler::{Scheduler, TickReport};
use super::{AgentError, AgentState, LoopMsg, Wake};
use crate::ledger::Ledger;

/// Starts the send loop thread.
pub(crate) fn spawn(
    state: Arc<AgentState>,
    rx: mpsc::Receiver<LoopMsg>,
) -> Result<JoinHandle<()>, AgentError> {
    std::thread::Builder::new()
        .name("metergate-send".into())
        .spawn(move || run(&state, &rx))
        .map_err(|source| AgentError::Io {
            what: "cannot start the send thread".into(),
            source,
        })
}

fn scheduler(state: &Arc<AgentState>) -> Scheduler {
    let verbose = state.options.send.verbose;
    let stop = Arc::clone(state);
    Scheduler::new(state.scheduler.clone())
        .with_log(move |line: &str| {
            if verbose {
                tracing::info!(call = %crate::text::clean(line), "send");
            }
        })
        .with_stop(move || stop.stopping())
}

fn run(state: &Arc<AgentState>, rx: &mpsc::Receiver<LoopMsg>) {
    let interval = state.options.send_interval;
    let mut sched = scheduler(state);
    let mut ledger: Option<Ledger> = None;
    let mut next = Instant::now();
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        let mut contract = None;
        match rx.recv_timeout(wait) {
            Ok(LoopMsg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Ok(LoopMsg::Wake(w)) => {
                if let Wake::Contract {
                    marketplace,
                    product,
                    customer,
                } = w
                {
                    tracing::info!(%marketplace, product = %crate::text::clean(&product), customer = %crate::text::clean(&customer), "send now: contract event");
                    contract = Some((marketplace, product, customer));
                }
            }
            Err(RecvTimeoutError::Timeout) => next = Instant::now() + interval,
        }
        if state.stopping() {
            return;
        }
        if ledger.is_none() {
            match state.open_ledger() {
                Ok(l) => ledger = Some(l),
                Err(e) => {
                    tracing::error!(error = %e, "send loop: cannot open the ledger");
                    continue;
                }
            }
        }
        let Some(l) = ledger.as_mut() else { continue };
        let v = state.validator();
        let now = Utc::now();
        let result = match &contract {
            Some((m, p, c)) => sched.send_contract_now(l, &v, *m, p, c, now),
            None => sched.tick(l, &v, now),
        };
        match result {
            Ok(report) => after_pass(state, l, &report),
            Err(e) => {
                tracing::error!(error = %e, "send loop: ledger error");
                ledger = None;
            }
        }
    }
}

/// Logs a pass, hands it to metrics and alerts, and tells the intake when the ledger changed
/// under it.
fn after_pass(state: &AgentState, ledger: &mut Ledger, report: &TickReport) {
    for (m, r) in &report.markets {
        if let Some(why) = &r.stopped {
            tracing::error!(marketplace = %m, error = %crate::text::clean(why), "cannot send; rows stay unfinished");
        }
        if r.calls > 0 || r.stats.expired > 0 || r.stats.failed > 0 {
            tracing::info!(
                marketplace = %m,
                calls = r.calls,
                errors = r.errors,
                accepted = r.stats.accepted,
                rejected = r.stats.rejected,
                duplicate = r.stats.duplicate,
                failed = r.stats.failed,
                expired = r.stats.expired,
                "send pass"
            );
        }
    }
    for h in report.hours_refused() {
        tracing::warn!(marketplace = %h.hour.marketplace, hour = %metergate_core::time::format_rfc3339(h.hour.hour), "an hourly sum was refused by the core and not sent");
    }
    if report.heartbeats > 0 || !report.hours_closed.is_empty() {
        tracing::info!(
            heartbeats = report.heartbeats,
            hours_closed = report.hours_closed.len(),
            "hours"
        );
    }
    super::metrics::after_tick(state, ledger, &metrics_tick(report));
    let left_history = report.finished.iter().any(|r| !r.status.counts_as_sent());
    if !report.written.is_empty() || left_history {
        state.ledger_changed();
    }

    /// The scheduler's report as metrics and alerts read it.
    fn metrics_tick(report: &TickReport) -> super::metrics::Tick<'_> {
        let mut tick = super::metrics::Tick::new(&report.finished, Utc::now());
        for (m, r) in &report.markets {
            tick.calls.insert(*m, r.calls);
            tick.errors.insert(*m, r.errors);
            if let Some(t) = r.last_success {
                tick.last_success.insert(*m, t);
            }
        }
        tick.refused_sums = report
            .hours_refused()
            .filter_map(|h| match &h.end {
                HourEnd::Refused { codes, reason } => Some(super::metrics::RefusedSum {
                    marketplace: h.hour.marketplace,
                    product: h.hour.product.clone(),
                    customer: h.hour.customer.clone(),
                    dimension: h.hour.dimension.clone(),
                    hour: h.hour.hour,
                    codes: codes.clone(),
                    reason: reason.clone(),
                }),
                _ => None,
            })
            .collect();
        tick
    }
}
