//! `[import.orb]` inside `serve`: Orb's costs imported on a schedule.
//!
//! One thread runs [`crate::import::orb::import_once`] at start and then every
//! `[import.orb] every` (default 1 h). What an import owes becomes `pending` ledger rows, and
//! the send loop is woken to send them; the intake is told the ledger changed, so it judges
//! later usage against them. A failed call imports nothing for that contract (the import's
//! own rule) and the next run tries again. The API key comes from `$ORB_API_KEY`; a missing
//! key or a bad `[import.orb]` section stops the agent at start, not at the first run.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::Utc;

use super::{AgentError, AgentState, Wake};
use crate::import::orb::{import_once, OrbConfig, OrbOptions};
use crate::import::Outcome;

/// The Orb import's schedule and connection, checked at start.
#[derive(Clone, Debug)]
pub struct OrbSchedule {
    /// How often to import.
    pub every: Duration,
    /// How to reach Orb.
    pub options: OrbOptions,
}

/// Reads `[import.orb]` and `$ORB_API_KEY`: `Ok(None)` without the section.
pub fn setup(config: &serde_json::Value, verbose: bool) -> Result<Option<OrbSchedule>, AgentError> {
    let Some(cfg) = OrbConfig::from_config(config).map_err(AgentError::Config)? else {
        return Ok(None);
    };
    let options = OrbOptions::from_env(cfg.url.as_deref(), None, verbose)
        .map_err(|e| AgentError::Config(format!("[import.orb]: {e}")))?;
    let every = cfg
        .every
        .to_std()
        .map_err(|_| AgentError::Config("[import.orb] every: out of range".into()))?;
    Ok(Some(OrbSchedule { every, options }))
}

/// A running import thread; [`ImportLoop::stop`] ends it after the import in flight.
pub(crate) struct ImportLoop {
    stop: mpsc::Sender<()>,
    handle: JoinHandle<()>,
}

impl ImportLoop {
    /// Starts the thread: an import now, then one every `schedule.every`.
    pub(crate) fn spawn(
        state: Arc<AgentState>,
        schedule: OrbSchedule,
    ) -> Result<ImportLoop, AgentError> {
        let (stop, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("metergate-import".into())
            .spawn(move || run(&state, &schedule, &rx))
            .map_err(|source| AgentError::Io {
                what: "cannot start the import thread".into(),
                source,
            })?;
        Ok(ImportLoop { stop, handle })
    }

    /// Asks the thread to stop and waits for it.
    pub(crate) fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.handle.join();
    }
}

fn run(state: &AgentState, schedule: &OrbSchedule, rx: &mpsc::Receiver<()>) {
    loop {
        if state.stopping() {
            return;
        }
        import(state, &schedule.options);
        match rx.recv_timeout(schedule.every) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// One import; what it wrote is handed to the intake's history and the send loop.
fn import(state: &AgentState, options: &OrbOptions) {
    let mut ledger = match state.open_ledger() {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "orb import: cannot open the ledger; trying again at the next run");
            return;
        }
    };
    let validator = state.validator();
    match import_once(&mut ledger, &validator, options, Utc::now(), false) {
        Ok(report) => {
            for c in &report.contracts {
                if c.outcome.is_problem() {
                    tracing::warn!(
                        marketplace = %c.marketplace,
                        product = %crate::text::clean(&c.product),
                        customer = %crate::text::clean(&c.customer),
                        outcome = ?c.outcome,
                        detail = %crate::text::clean(c.detail.as_deref().unwrap_or("")),
                        "orb import"
                    );
                }
            }
            tracing::info!(
                contracts = report.contracts.len(),
                rows = report.rows_written,
                failed = report.count(Outcome::Failed),
                "orb import"
            );
            if report.rows_written > 0 {
                state.ledger_changed();
                state.wake(Wake::Tick);
            }
        }
        Err(e) => {
            tracing::error!(error = %crate::text::clean(&e.to_string()), "orb import failed; trying again at the next run")
        }
    }
}
