//! The send loop: every `--send-interval`, or at once on a [`Wake`], the ledger's unfinished
//! rows go out with the existing senders ([`crate::submit`]): first the rows past their
//! deadline are ended unsent ([`submit::expire_late`]), then the rest, one marketplace after
//! the other, one call (at most 25 records of one product) at a time.
//!
//! The senders are synchronous, so the loop runs in its own thread with its own ledger
//! connection. Between two calls it looks at the shutdown flag: on SIGTERM the call in flight
//! finishes and is recorded, and the rest stays `pending` for the next start.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use chrono::Utc;
use metergate_core::Marketplace;

use super::{AgentError, AgentState, LoopMsg, Wake};
use crate::ledger::{Ledger, LedgerError, LedgerRow};
use crate::submit::{self, RateLimiter, RunStats, SubmitError};

/// The most rows per call handed to a sender (AWS and Microsoft take 25 per call).
pub const CALL_ROWS: usize = 25;

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

fn run(state: &AgentState, rx: &mpsc::Receiver<LoopMsg>) {
    let interval = state.options.send_interval;
    let mut ledger: Option<Ledger> = None;
    let mut next = Instant::now();
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(LoopMsg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Ok(LoopMsg::Wake(w)) => {
                if let Wake::Contract {
                    marketplace,
                    product,
                    customer,
                } = &w
                {
                    tracing::info!(%marketplace, product = %crate::text::clean(product), customer = %crate::text::clean(customer), "send now: contract event");
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
        match pass(state, l) {
            Ok(Some((stats, expired))) => {
                tracing::info!(
                    rows = stats.rows,
                    calls = stats.calls,
                    accepted = stats.accepted,
                    rejected = stats.rejected,
                    duplicate = stats.duplicate,
                    failed = stats.failed,
                    expired,
                    "send pass"
                );
                if expired > 0 || stats.rejected + stats.failed > 0 {
                    state.ledger_changed();
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "send loop: ledger error");
                ledger = None;
            }
        }
    }
}

/// One pass. `None` when there was nothing to send.
fn pass(state: &AgentState, ledger: &mut Ledger) -> Result<Option<(RunStats, usize)>, LedgerError> {
    let rows = ledger.unfinished()?;
    if rows.is_empty() {
        return Ok(None);
    }
    let v = state.validator();
    let now = Utc::now();
    let (rows, expired) = submit::expire_late(ledger, rows, v.contracts(), v.settings(), now)?;
    let mut total = RunStats::default();
    let opts = state.options.send.options();
    let policy = state.options.send.policy();
    let verbose = state.options.send.verbose;
    let mut log = |line: &str| {
        if verbose {
            tracing::info!(call = %crate::text::clean(line), "send");
        }
    };
    for m in Marketplace::ALL {
        let mine: Vec<LedgerRow> = rows
            .iter()
            .filter(|r| r.marketplace == m)
            .cloned()
            .collect();
        if mine.is_empty() {
            continue;
        }
        let mut sender = match submit::sender_for(m, &opts) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(marketplace = %m, error = %crate::text::clean(&e), "cannot send; rows stay pending");
                continue;
            }
        };
        let mut limiter = RateLimiter::new(sender.max_calls_per_second());
        let mut by_product: BTreeMap<String, Vec<LedgerRow>> = BTreeMap::new();
        for r in mine {
            by_product.entry(r.product.clone()).or_default().push(r);
        }
        'calls: for (_, rows) in by_product {
            for chunk in rows.chunks(CALL_ROWS) {
                if state.stopping() {
                    break 'calls;
                }
                match submit::send_rows(
                    ledger,
                    sender.as_mut(),
                    chunk.to_vec(),
                    &policy,
                    &mut limiter,
                    &mut log,
                ) {
                    Ok(s) => total.add(&s),
                    Err(SubmitError::Ledger(e)) => return Err(e),
                    Err(SubmitError::Fatal(e)) => {
                        tracing::error!(marketplace = %m, error = %crate::text::clean(&e), "cannot send; rows stay unfinished");
                        break 'calls;
                    }
                }
            }
        }
    }
    Ok(Some((total, expired)))
}
