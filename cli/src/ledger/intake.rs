//! The agent's intake in the ledger: one write transaction per group of requests
//! ([`IntakeTx`]), holding the new `pending` rows, the answer given to each
//! `Idempotency-Key` and the verdict given to each stored `record_id`.
//!
//! Idempotency is enforced by the tables' unique keys, insert-first: every write is an
//! `INSERT ... ON CONFLICT DO NOTHING` whose result says whether this transaction got the key,
//! never a check before the insert. A request claims its `Idempotency-Key` before anything is
//! judged, and a request that finds the key taken gets the stored answer instead. A record's
//! `record_id` is claimed when its row is written ([`IntakeTx::store`]): the claim that finds
//! the id taken gets the stored verdict, and the row written for it in this transaction is
//! taken back. The transaction is `IMMEDIATE` (it holds SQLite's write lock from its start),
//! so no other writer, in this process or another, can slip in between. The same insert meets
//! the one-live-row-per-dedup-key index (see [`super`]): a record another agent stored the key
//! of with another quantity is [`Stored::Conflict`], and nothing of it is kept.
//!
//! ## Group writes
//! [`IntakeTx::store`] writes a whole group's accepted records at once, with multi-row
//! statements (up to [`CHUNK`] rows each): one `INSERT` into `records`, one into
//! `intake_records` (the id claim, with its verdict and row) and one into `transitions` per
//! chunk, instead of four or five statements per record. The rows are written in key order,
//! so two writers on a shared server take their locks in the same order.

use std::sync::OnceLock;

use metergate_core::time::format_rfc3339;
use metergate_core::HistoryEntry;

use super::db::{DbError, Engine, Exec, ToValue, Tx};
use super::{
    db_err, dedup_key, enqueue_in, history_entry_in, idempotency_key, now_text, Enqueued, Ledger,
    LedgerError, NewRow,
};

/// The most rows one multi-row statement of [`IntakeTx::store`] writes.
pub const CHUNK: usize = 64;

/// The statement sizes a group is cut into, largest first: each size is one prepared (and
/// cached) statement per table, so a group of 100 rows takes 64 + 8 × 4 + 1 × 4.
const SIZES: [usize; 3] = [CHUNK, 8, 1];

/// One accepted record for [`IntakeTx::store`]: its ledger row (none for a record that repeats
/// a key the ledger already holds) and its `record_id`, kept with the verdict it was given.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// The row to write as `pending`.
    pub row: Option<NewRow>,
    /// The record's `record_id`, if it has one.
    pub record_id: Option<String>,
    /// The verdict (JSON) to keep with the `record_id`; unused without one.
    pub verdict: String,
}

/// What [`IntakeTx::store`] did with one [`Accepted`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Stored: what became of its row (none when it had no row).
    Kept(Option<Enqueued>),
    /// Its `record_id` was already taken (by an earlier request, or by another agent at the
    /// same moment): nothing of it is stored. The verdict given the first time.
    Taken(String),
    /// Another live row holds its dedup key with another quantity (another sender sharing the
    /// ledger stored it first; see [`Enqueued::Conflict`]): nothing of it is stored, its
    /// `record_id` is not kept. That row, as dedup history, for the core's finding
    /// ([`metergate_core::Validator::shared_ledger_duplicate`]).
    Conflict(HistoryEntry),
}

/// A write transaction for a group of intake requests. Nothing is visible to other connections
/// before [`IntakeTx::commit`]; dropping it rolls everything back.
pub struct IntakeTx<'l> {
    tx: Tx<'l>,
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
        let tx = self.begin()?;
        Ok(IntakeTx {
            tx,
            path,
            now: now_text(),
        })
    }

    /// True when the ledger can be written: starts a write transaction (SQLite: takes the
    /// write lock) and lets it go.
    pub fn probe_writable(&mut self) -> Result<(), LedgerError> {
        let path = self.path.clone();
        let tx = self.begin()?;
        tx.rollback().map_err(db_err(&path))
    }
}

impl IntakeTx<'_> {
    /// The open transaction and the ledger's path, for writers of the agent's own tables that
    /// must commit with the group (the hourly sums, [`super::hourly::add_events_in`]).
    pub fn transaction(&self) -> (&Tx<'_>, &str) {
        (&self.tx, &self.path)
    }

    fn err(&self) -> impl Fn(DbError) -> LedgerError + '_ {
        db_err(&self.path)
    }

    /// Claims an `Idempotency-Key`. `Taken((status, answer))` when a request already holds it.
    pub fn claim_request(&self, key: &str) -> Result<Claim<(u16, String)>, LedgerError> {
        let e = self.err();
        let n = self
            .tx
            .execute(
                "INSERT INTO intake_requests (key, status, answer, created_at) \
                 VALUES (?1, 0, '', ?2) ON CONFLICT (key) DO NOTHING",
                &[&key, &self.now],
            )
            .map_err(&e)?;
        if n == 1 {
            return Ok(Claim::New);
        }
        let row = self
            .tx
            .query_opt(
                "SELECT status, answer FROM intake_requests WHERE key = ?1",
                &[&key],
            )
            .map_err(&e)?;
        let (status, answer): (i64, String) = match row {
            Some(r) => (r.get(0).map_err(&e)?, r.get(1).map_err(&e)?),
            None => (500, String::new()),
        };
        Ok(Claim::Taken((u16::try_from(status).unwrap_or(500), answer)))
    }

    /// Records the answer given to a claimed `Idempotency-Key`.
    pub fn answer_request(&self, key: &str, status: u16, answer: &str) -> Result<(), LedgerError> {
        self.tx
            .execute(
                "UPDATE intake_requests SET status = ?2, answer = ?3 WHERE key = ?1",
                &[&key, &i64::from(status), &answer],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Claims a `record_id`. `Taken(verdict JSON)` when a record with this id is stored.
    pub fn claim_record(&self, record_id: &str) -> Result<Claim<String>, LedgerError> {
        let n = self
            .tx
            .execute(
                "INSERT INTO intake_records (record_id, verdict, row, created_at) \
                 VALUES (?1, '', NULL, ?2) ON CONFLICT (record_id) DO NOTHING",
                &[&record_id, &self.now],
            )
            .map_err(self.err())?;
        if n == 1 {
            return Ok(Claim::New);
        }
        Ok(Claim::Taken(
            self.stored_verdict(record_id)?.unwrap_or_default(),
        ))
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
            .execute(
                "UPDATE intake_records SET verdict = ?2, row = ?3 WHERE record_id = ?1",
                &[&record_id, &verdict, &row],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Lets a claimed `record_id` go again (the record was rejected, so nothing is stored).
    pub fn release_record(&self, record_id: &str) -> Result<(), LedgerError> {
        self.tx
            .execute(
                "DELETE FROM intake_records WHERE record_id = ?1",
                &[&record_id],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// The verdict kept for a stored `record_id`, if one is stored (for a record that is not
    /// stored itself: its first verdict is answered instead).
    pub fn stored_verdict(&self, record_id: &str) -> Result<Option<String>, LedgerError> {
        let e = self.err();
        self.tx
            .query_opt(
                "SELECT verdict FROM intake_records WHERE record_id = ?1",
                &[&record_id],
            )
            .map_err(&e)?
            .map(|r| r.get(0))
            .transpose()
            .map_err(&e)
    }

    /// Stores a group's accepted records, insert-first, and says for each what happened
    /// (same order as `items`):
    ///
    /// 1. the rows, `INSERT ... ON CONFLICT (idem_key) DO NOTHING RETURNING id` (SQLite:
    ///    with the ids given and no `RETURNING`, see below);
    /// 2. the `record_id` claims with their verdicts and rows,
    ///    `INSERT ... ON CONFLICT (record_id) DO NOTHING RETURNING record_id` (SQLite: no
    ///    `RETURNING`; the change count says whether every claim was new). A claim that
    ///    finds its id taken gets [`Stored::Taken`], and the row written for it in step 1 is
    ///    deleted again (nothing else has seen it: the transaction is still open);
    /// 3. the `written` transitions of the new rows;
    /// 4. rows whose key the ledger already held, one by one as [`Ledger::enqueue`] does
    ///    (a `rejected`, `failed` or `expired` row goes back to `pending`, any other stays).
    ///    This comes after the claims, so a record whose id is taken changes nothing. A row
    ///    whose dedup key another live row holds with another quantity gets
    ///    [`Stored::Conflict`], and its `record_id` claim is let go again.
    ///
    /// The insert of step 1 is `ON CONFLICT DO NOTHING` on every unique key: the idempotency
    /// key, and the one live row per dedup key (a row it did not write goes to step 4). On
    /// PostgreSQL (read committed) an insert that meets a key another agent's open
    /// transaction has just written waits for that transaction: a key is stored once, and a
    /// dedup key has one live row, whichever agent judged the record.
    pub fn store(&self, items: &[Accepted]) -> Result<Vec<Stored>, LedgerError> {
        self.store_with(items, Vec::new())
    }

    /// [`IntakeTx::store`], with the column text of some rows already worked out:
    /// `texts[i]`, when given, is [`RowText::of`] `items[i]`'s row (the agent's HTTP workers
    /// build it while the writer judges other requests).
    pub fn store_with(
        &self,
        items: &[Accepted],
        mut texts: Vec<Option<RowText>>,
    ) -> Result<Vec<Stored>, LedgerError> {
        let e = self.err();
        let mut out: Vec<Stored> = vec![Stored::Kept(None); items.len()];
        texts.resize_with(items.len(), || None);
        // 1. The rows, in key order.
        let mut rows: Vec<Pending<'_>> = items
            .iter()
            .zip(texts)
            .enumerate()
            .filter_map(|(i, (a, t))| {
                a.row.as_ref().map(|row| Pending {
                    item: i,
                    row,
                    text: t.unwrap_or_else(|| RowText::of(&row.record, &row.wire)),
                })
            })
            .collect();
        rows.sort_unstable_by(|a, b| a.text.key.cmp(&b.text.key));
        let mut conflicted: Vec<usize> = Vec::new();
        // SQLite: this transaction holds the write lock, so the ids are given here, as SQLite
        // would give them (the largest so far, plus one): no `RETURNING`, whose result table
        // costs SQLite a b-tree insert per row. The statement's change count says whether
        // every row was written; only when one was not are the written ones read back.
        let sqlite = self.tx.engine() == Engine::Sqlite;
        let mut next_id = if sqlite && !rows.is_empty() {
            self.largest("SELECT COALESCE(MAX(id), 0) FROM records")? + 1
        } else {
            0
        };
        for chunk in chunks(&rows) {
            if sqlite {
                let ids: Vec<i64> = (next_id..).take(chunk.len()).collect();
                next_id += chunk.len() as i64;
                let sql = statement(&RECORDS_IDS_SQL, chunk.len(), records_ids_sql);
                let mut params: Vec<&dyn ToValue> =
                    Vec::with_capacity(1 + chunk.len() * (RECORD_PARAMS + 1));
                params.push(&self.now);
                for (r, id) in chunk.iter().zip(&ids) {
                    params.push(id);
                    r.params(&mut params);
                }
                let written = self.tx.execute(sql, &params).map_err(&e)?;
                let mut found = vec![written == chunk.len() as u64; chunk.len()];
                if written != chunk.len() as u64 {
                    let (lo, hi) = (ids[0], ids[ids.len() - 1]);
                    for row in self
                        .tx
                        .query(
                            "SELECT id FROM records WHERE id BETWEEN ?1 AND ?2",
                            &[&lo, &hi],
                        )
                        .map_err(&e)?
                    {
                        let id: i64 = row.get(0).map_err(&e)?;
                        if let Ok(j) = usize::try_from(id - lo) {
                            if let Some(f) = found.get_mut(j) {
                                *f = true;
                            }
                        }
                    }
                }
                for (j, r) in chunk.iter().enumerate() {
                    if found[j] {
                        out[r.item] = Stored::Kept(Some(Enqueued::New(ids[j])));
                    } else {
                        conflicted.push(r.item);
                    }
                }
                continue;
            }
            let sql = statement(&RECORDS_SQL, chunk.len(), records_sql);
            let mut params: Vec<&dyn ToValue> = Vec::with_capacity(1 + chunk.len() * RECORD_PARAMS);
            params.push(&self.now);
            for r in chunk {
                r.params(&mut params);
            }
            let returned = self.tx.query(sql, &params).map_err(&e)?;
            let mut found = vec![false; chunk.len()];
            let mut next = 0;
            for row in returned {
                let id: i64 = row.get(0).map_err(&e)?;
                let key: String = row.get(1).map_err(&e)?;
                // RETURNING gives the rows in the order written, as a rule; search otherwise.
                let j = if chunk.get(next).is_some_and(|r| r.text.key == key) {
                    next
                } else {
                    match chunk.iter().position(|r| r.text.key == key) {
                        Some(j) => j,
                        None => continue,
                    }
                };
                next = j + 1;
                found[j] = true;
                out[chunk[j].item] = Stored::Kept(Some(Enqueued::New(id)));
            }
            conflicted.extend(
                chunk
                    .iter()
                    .zip(found)
                    .filter(|(_, f)| !f)
                    .map(|(r, _)| r.item),
            );
        }
        drop(rows);
        // 2. The record id claims, in id order.
        let mut claims: Vec<usize> = items
            .iter()
            .enumerate()
            .filter(|(_, a)| a.record_id.is_some())
            .map(|(i, _)| i)
            .collect();
        claims.sort_unstable_by(|a, b| items[*a].record_id.cmp(&items[*b].record_id));
        let row_ids: Vec<Option<i64>> = out
            .iter()
            .map(|s| match s {
                Stored::Kept(Some(Enqueued::New(id))) => Some(*id),
                _ => None,
            })
            .collect();
        let mut taken: Vec<usize> = Vec::new();
        // SQLite: no `RETURNING` either (see step 1). The claims written by this call are
        // the rows past the largest rowid before it (ids are distinct within a group).
        let claims_before = if sqlite && !claims.is_empty() {
            self.largest("SELECT COALESCE(MAX(rowid), 0) FROM intake_records")?
        } else {
            0
        };
        for chunk in chunks(&claims) {
            let mut params: Vec<&dyn ToValue> = Vec::with_capacity(1 + chunk.len() * 3);
            params.push(&self.now);
            for &i in chunk {
                params.push(&items[i].record_id);
                params.push(&items[i].verdict);
                params.push(&row_ids[i]);
            }
            if sqlite {
                let sql = statement(&CLAIMS_PLAIN_SQL, chunk.len(), claims_plain_sql);
                let written = self.tx.execute(sql, &params).map_err(&e)?;
                if written == chunk.len() as u64 {
                    continue;
                }
                let mine: std::collections::HashSet<String> = self
                    .tx
                    .query(
                        "SELECT record_id FROM intake_records WHERE rowid > ?1",
                        &[&claims_before],
                    )
                    .map_err(&e)?
                    .into_iter()
                    .map(|r| r.get::<String>(0))
                    .collect::<Result<_, _>>()
                    .map_err(&e)?;
                taken.extend(chunk.iter().copied().filter(|&i| {
                    !items[i]
                        .record_id
                        .as_ref()
                        .is_some_and(|id| mine.contains(id))
                }));
                continue;
            }
            let sql = statement(&CLAIMS_SQL, chunk.len(), claims_sql);
            let returned = self.tx.query(sql, &params).map_err(&e)?;
            let mut found = vec![false; chunk.len()];
            let mut next = 0;
            for row in returned {
                let id: String = row.get(0).map_err(&e)?;
                let is = |j: usize| {
                    chunk
                        .get(j)
                        .is_some_and(|&i| items[i].record_id.as_deref() == Some(id.as_str()))
                };
                let j = if is(next) {
                    next
                } else {
                    match (0..chunk.len()).find(|&j| is(j)) {
                        Some(j) => j,
                        None => continue,
                    }
                };
                next = j + 1;
                found[j] = true;
            }
            taken.extend(chunk.iter().zip(found).filter(|(_, f)| !f).map(|(&i, _)| i));
        }
        for &i in &taken {
            let id = items[i].record_id.as_deref().unwrap_or_default();
            let first = self.stored_verdict(id)?.unwrap_or_default();
            if let Some(row) = row_ids[i] {
                self.tx
                    .execute("DELETE FROM records WHERE id = ?1", &[&row])
                    .map_err(&e)?;
            }
            out[i] = Stored::Taken(first);
        }
        // 3. The transitions of the new rows.
        let new: Vec<i64> = out
            .iter()
            .filter_map(|s| match s {
                Stored::Kept(Some(Enqueued::New(id))) => Some(*id),
                _ => None,
            })
            .collect();
        for chunk in chunks(&new) {
            let sql = statement(&TRANSITIONS_SQL, chunk.len(), transitions_sql);
            let mut params: Vec<&dyn ToValue> = Vec::with_capacity(1 + chunk.len());
            params.push(&self.now);
            for id in chunk {
                params.push(id);
            }
            self.tx.execute(sql, &params).map_err(&e)?;
        }
        // 4. Keys the ledger already held (not for a record whose id is taken).
        for i in conflicted {
            if matches!(out[i], Stored::Taken(_)) {
                continue;
            }
            let Some(row) = items[i].row.as_ref() else {
                continue;
            };
            let done = enqueue_in(&self.tx, &self.path, std::slice::from_ref(row))?;
            let Some(&done) = done.first() else { continue };
            if let Enqueued::Conflict(live) = done {
                out[i] = Stored::Conflict(history_entry_in(&self.tx, &self.path, live)?);
                if let Some(id) = items[i].record_id.as_deref() {
                    self.release_record(id)?;
                }
                continue;
            }
            out[i] = Stored::Kept(Some(done));
            if let Some(id) = items[i].record_id.as_deref() {
                let row = match done {
                    Enqueued::New(r)
                    | Enqueued::Requeued(r)
                    | Enqueued::Existing(r, _)
                    | Enqueued::Conflict(r) => r,
                };
                self.tx
                    .execute(
                        "UPDATE intake_records SET row = ?2 WHERE record_id = ?1",
                        &[&id, &row],
                    )
                    .map_err(&e)?;
            }
        }
        Ok(out)
    }

    /// One integer a query gives (a largest id).
    fn largest(&self, sql: &str) -> Result<i64, LedgerError> {
        let e = self.err();
        match self.tx.query_opt(sql, &[]).map_err(&e)? {
            Some(r) => r.get(0).map_err(&e),
            None => Ok(0),
        }
    }

    /// Writes rows as `pending`, as [`Ledger::enqueue`] does, inside this transaction.
    pub fn enqueue(&self, rows: &[NewRow]) -> Result<Vec<Enqueued>, LedgerError> {
        enqueue_in(&self.tx, &self.path, rows)
    }

    /// Commits everything: on return, every row is on disk (WAL, `synchronous=FULL`).
    pub fn commit(self) -> Result<(), LedgerError> {
        let path = self.path;
        self.tx.commit().map_err(db_err(&path))
    }
}

/// The parameters of one row in the multi-row `INSERT INTO records`.
const RECORD_PARAMS: usize = 13;

/// A row's column text for the multi-row insert of [`IntakeTx::store`]: its idempotency key,
/// times, quantity and wire JSON, worked out once per record. [`RowText::of`] is pure, so the
/// agent builds it on its HTTP workers, off the serialised writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowText {
    key: String,
    dedup: String,
    marketplace: &'static str,
    start: String,
    start_secs: i64,
    end: Option<String>,
    quantity: String,
    wire: String,
}

impl RowText {
    /// The text of the row of `record` with these wire values.
    pub fn of(record: &metergate_core::UsageRecord, wire: &serde_json::Value) -> RowText {
        let r = record;
        RowText {
            key: idempotency_key(r),
            dedup: dedup_key(r),
            marketplace: r.marketplace.as_str(),
            start: format_rfc3339(r.start_time),
            start_secs: r.start_time.timestamp(),
            end: r.end_time.map(format_rfc3339),
            quantity: r.quantity.normalize().to_string(),
            wire: wire.to_string(),
        }
    }
}

/// One row being stored: its place in the caller's items, the row and its text.
struct Pending<'a> {
    item: usize,
    row: &'a NewRow,
    text: RowText,
}

impl Pending<'_> {
    /// This row's values, in the order of `records_sql`.
    fn params<'p>(&'p self, out: &mut Vec<&'p dyn ToValue>) {
        let (r, t) = (&self.row.record, &self.text);
        out.extend([
            &t.key as &dyn ToValue,
            &t.marketplace,
            &r.product,
            &r.customer,
            &r.dimension,
            &t.start,
            &t.start_secs,
            &t.end,
            &t.quantity,
            &r.record_id,
            &self.row.source,
            &t.wire,
            &t.dedup,
        ]);
    }
}

/// Cuts `all` into slices of the sizes in [`SIZES`], largest first.
fn chunks<T>(all: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = all;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = SIZES
            .iter()
            .copied()
            .find(|&n| n <= rest.len())
            .unwrap_or(1);
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Some(head)
    })
}

type SqlCache = OnceLock<[String; SIZES.len()]>;

static RECORDS_SQL: SqlCache = OnceLock::new();
static CLAIMS_SQL: SqlCache = OnceLock::new();
static RECORDS_IDS_SQL: SqlCache = OnceLock::new();
static CLAIMS_PLAIN_SQL: SqlCache = OnceLock::new();
static TRANSITIONS_SQL: SqlCache = OnceLock::new();

/// The statement text for `n` rows (`n` one of [`SIZES`]), built once.
fn statement(cache: &'static SqlCache, n: usize, make: fn(usize) -> String) -> &'static str {
    let all = cache.get_or_init(|| SIZES.map(make));
    let i = SIZES
        .iter()
        .position(|&s| s == n)
        .unwrap_or(SIZES.len() - 1);
    &all[i]
}

/// `?1` is "now"; row `j`'s values start at `?(2 + j * width)`.
fn values(n: usize, width: usize, row: impl Fn(usize) -> String) -> String {
    (0..n)
        .map(|j| row(2 + j * width))
        .collect::<Vec<_>>()
        .join(", ")
}

fn records_sql(n: usize) -> String {
    let width = RECORD_PARAMS;
    format!(
        "INSERT INTO records (idem_key, marketplace, product, customer, dimension, start_time, \
         start_secs, end_time, quantity, record_id, source, wire, dedup_key, status, created_at, \
         updated_at) VALUES {} ON CONFLICT DO NOTHING RETURNING id, idem_key",
        values(n, width, |b| {
            let p: Vec<String> = (b..b + width).map(|i| format!("?{i}")).collect();
            format!("({}, 'pending', ?1, ?1)", p.join(", "))
        })
    )
}

/// [`records_sql`] with the ids given (SQLite): `(id, values...)`, no `RETURNING`.
fn records_ids_sql(n: usize) -> String {
    let width = RECORD_PARAMS + 1;
    format!(
        "INSERT INTO records (id, idem_key, marketplace, product, customer, dimension, \
         start_time, start_secs, end_time, quantity, record_id, source, wire, dedup_key, \
         status, created_at, updated_at) VALUES {} ON CONFLICT DO NOTHING",
        values(n, width, |b| {
            let p: Vec<String> = (b..b + width).map(|i| format!("?{i}")).collect();
            format!("({}, 'pending', ?1, ?1)", p.join(", "))
        })
    )
}

/// [`claims_sql`] without `RETURNING` (SQLite).
fn claims_plain_sql(n: usize) -> String {
    format!(
        "INSERT INTO intake_records (record_id, verdict, row, created_at) VALUES {} \
         ON CONFLICT (record_id) DO NOTHING",
        values(n, 3, |b| format!("(?{b}, ?{}, ?{}, ?1)", b + 1, b + 2))
    )
}

fn claims_sql(n: usize) -> String {
    format!(
        "INSERT INTO intake_records (record_id, verdict, row, created_at) VALUES {} \
         ON CONFLICT (record_id) DO NOTHING RETURNING record_id",
        values(n, 3, |b| format!("(?{b}, ?{}, ?{}, ?1)", b + 1, b + 2))
    )
}

fn transitions_sql(n: usize) -> String {
    format!(
        "INSERT INTO transitions (record, at, from_status, to_status, note) VALUES {}",
        values(n, 1, |b| format!("(?{b}, ?1, NULL, 'pending', 'written')"))
    )
}
