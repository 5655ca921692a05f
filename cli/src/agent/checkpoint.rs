//! The WAL checkpointer (SQLite ledgers): checkpoints off the intake writer's thread.
//!
//! By default SQLite checkpoints inside the commit that takes the WAL past 1,000 pages, so
//! every so often one group's commit also copies the WAL into the database file and syncs it,
//! and every request of that group waits for it. The agent turns that off on the intake
//! writer's connection ([`Ledger::set_auto_checkpoint`]) and runs `PASSIVE` checkpoints here,
//! on a connection of its own: the writer tells it after each commit ([`Nudge`]), and it
//! checkpoints at most once per [`INTERVAL`]. A `PASSIVE` checkpoint neither waits for nor
//! blocks the writer; SQLite starts the WAL over once a checkpoint has copied all of it.
//! Durability is unchanged: a commit is on disk (in the WAL, `synchronous=FULL`) before it
//! returns, whether the WAL has been checkpointed or not.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::AgentError;
use crate::ledger::Ledger;

/// The shortest time between two checkpoints.
pub const INTERVAL: Duration = Duration::from_millis(50);

/// The writer's side: tells the checkpointer that a commit added to the WAL. Never blocks.
#[derive(Clone, Debug)]
pub struct Nudge(mpsc::SyncSender<()>);

impl Nudge {
    /// A commit happened (nudges already waiting are merged into one).
    pub fn committed(&self) {
        let _ = self.0.try_send(());
    }
}

/// Starts the checkpointer on `ledger` (a connection of its own). Returns its [`Nudge`] and
/// its thread, which ends once every [`Nudge`] is dropped, after a last checkpoint.
pub fn spawn(ledger: Ledger) -> Result<(Nudge, JoinHandle<()>), AgentError> {
    let (tx, rx) = mpsc::sync_channel::<()>(1);
    let handle = std::thread::Builder::new()
        .name("metergate-checkpoint".into())
        .spawn(move || run(ledger, &rx))
        .map_err(|source| AgentError::Io {
            what: "cannot start the checkpoint thread".into(),
            source,
        })?;
    Ok((Nudge(tx), handle))
}

fn run(mut ledger: Ledger, rx: &mpsc::Receiver<()>) {
    let mut failing = false;
    while rx.recv().is_ok() {
        match ledger.checkpoint() {
            Ok(_) => failing = false,
            Err(e) => {
                // The WAL grows meanwhile; the next nudge tries again.
                if !failing {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
                failing = true;
            }
        }
        std::thread::sleep(INTERVAL);
    }
    let _ = ledger.checkpoint();
}
