//! The agent's intake in the ledger: one write transaction per group of requests
//! ([`IntakeTx`]), holding the new `pending` rows, the answer given to each
//! `Idempotency-Key` and the verdict given to each stored `record_id`.
//!
//! Idempotency is enforced by the tables' primary keys, insert-first: a request claims its key
//! with `INSERT ... ON CONFLICT DO NOTHING` before anything is judged, and a request that finds
//! the key taken gets the stored answer instead. The same goes for a record's `record_id`. The
//! transaction is `IMMEDIATE` (it holds SQLite's write lock from its start), so no other writer,
//! in this process or another, can slip in between.

use rusqlite::{params, OptionalExtension, Transaction};

use super::{enqueue_in, now_text, Enqueued, Ledger, LedgerError, NewRow};

/// A write transaction for a group of intake requests. Nothing is visible to other connections
/// before [`IntakeTx::commit`]; dropping it rolls everything back.
pub struct IntakeTx<'l> {
    tx: Transaction<'l>,
    path: String,
    now: String,
}

/// What claiming an `Idempotency-Key` or a `record_id` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim<T> {
    /// The key was free and is now held by this transaction.
    New,
    /// The key was already taken; here is what was answered for it.
    Taken(T),
}

impl Ledger {
    /// Starts an intake transaction (see [`IntakeTx`]).
    pub fn intake_tx(&mut self) -> Result<IntakeTx<'_>, LedgerError> {
        let path = self.path.clone();
        let tx = self.write_tx()?;
        Ok(IntakeTx {
            tx,
            path,
            now: now_text(),
        })
    }

    /// True when the ledger can be written: takes SQLite's write lock and lets it go.
    pub fn probe_writable(&mut self) -> Result<(), LedgerError> {
        let path = self.path.clone();
        let tx = self.write_tx()?;
        tx.rollback()
            .map_err(|source| LedgerError::Sqlite { path, source })
    }
}

impl IntakeTx<'_> {
    /// The open transaction and the ledger's path, for writers of the agent's own tables that
    /// must commit with the group (the hourly sums, [`crate::agent::hourly::add_events_in`]).
    pub fn transaction(&self) -> (&Transaction<'_>, &str) {
        (&self.tx, &self.path)
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
        move |source| LedgerError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Claims an `Idempotency-Key`. `Taken((status, answer))` when a request already holds it.
    pub fn claim_request(&self, key: &str) -> Result<Claim<(u16, String)>, LedgerError> {
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO intake_requests (key, status, answer, created_at) \
                 VALUES (?1, 0, '', ?2) ON CONFLICT (key) DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![key, self.now]))
            .map_err(self.err())?;
        if n == 1 {
            return Ok(Claim::New);
        }
        let (status, answer): (i64, String) = self
            .tx
            .prepare_cached("SELECT status, answer FROM intake_requests WHERE key = ?1")
            .and_then(|mut s| s.query_row([key], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(self.err())?;
        Ok(Claim::Taken((u16::try_from(status).unwrap_or(500), answer)))
    }

    /// Records the answer given to a claimed `Idempotency-Key`.
    pub fn answer_request(&self, key: &str, status: u16, answer: &str) -> Result<(), LedgerError> {
        self.tx
            .prepare_cached("UPDATE intake_requests SET status = ?2, answer = ?3 WHERE key = ?1")
            .and_then(|mut s| s.execute(params![key, i64::from(status), answer]))
            .map_err(self.err())?;
        Ok(())
    }

    /// Claims a `record_id`. `Taken(verdict JSON)` when a record with this id is stored.
    pub fn claim_record(&self, record_id: &str) -> Result<Claim<String>, LedgerError> {
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO intake_records (record_id, verdict, row, created_at) \
                 VALUES (?1, '', NULL, ?2) ON CONFLICT (record_id) DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![record_id, self.now]))
            .map_err(self.err())?;
        if n == 1 {
            return Ok(Claim::New);
        }
        let verdict: Option<String> = self
            .tx
            .prepare_cached("SELECT verdict FROM intake_records WHERE record_id = ?1")
            .and_then(|mut s| s.query_row([record_id], |r| r.get(0)).optional())
            .map_err(self.err())?;
        Ok(Claim::Taken(verdict.unwrap_or_default()))
    }

    /// Keeps a claimed `record_id` with the verdict given to it and its ledger row (none when
    /// the record repeated a key already stored).
    pub fn keep_record(
        &self,
        record_id: &str,
        verdict: &str,
        row: Option<i64>,
    ) -> Result<(), LedgerError> {
        self.tx
            .prepare_cached("UPDATE intake_records SET verdict = ?2, row = ?3 WHERE record_id = ?1")
            .and_then(|mut s| s.execute(params![record_id, verdict, row]))
            .map_err(self.err())?;
        Ok(())
    }

    /// Lets a claimed `record_id` go again (the record was rejected, so nothing is stored).
    pub fn release_record(&self, record_id: &str) -> Result<(), LedgerError> {
        self.tx
            .prepare_cached("DELETE FROM intake_records WHERE record_id = ?1")
            .and_then(|mut s| s.execute([record_id]))
            .map_err(self.err())?;
        Ok(())
    }

    /// Writes rows as `pending`, as [`Ledger::enqueue`] does, inside this transaction.
    pub fn enqueue(&self, rows: &[NewRow]) -> Result<Vec<Enqueued>, LedgerError> {
        enqueue_in(&self.tx, &self.path, rows)
    }

    /// Commits everything: on return, every row is on disk (WAL, `synchronous=FULL`).
    pub fn commit(self) -> Result<(), LedgerError> {
        let path = self.path;
        self.tx
            .commit()
            .map_err(|source| LedgerError::Sqlite { path, source })
    }
}
