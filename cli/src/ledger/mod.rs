//! The submission ledger: a crash-safe record of everything `metergate submit` sends.
//!
//! One SQLite file (default `$METERGATE_LEDGER`, else `./metergate-ledger.sqlite`; `--ledger`
//! overrides both), or one PostgreSQL database shared by several agents when the location is a
//! `postgres://` or `postgresql://` URL (see [`db`]: the SQL is written once for both engines). Every record is written **before** anything is sent, under a
//! deterministic idempotency key: the marketplace's dedup key plus the quantity, e.g.
//! `aws|prod-a1|cust-1|api_calls|2026-03-01T10:00:00Z|42` (AWS and Azure: the hour; Google: the
//! interval). Each row moves through one state machine:
//!
//! ```text
//!            claim              marketplace answer
//! pending ─────────► sending ─────────────────────► accepted | rejected | duplicate | failed
//!    ▲  │               │  (retryable: stays in sending while backing off)
//!    │  └─► expired     │  (its window closed before it was sent: never sent late)
//!    └──── requeue ─────┴── (a rejected, failed or expired row submitted again, or
//!                            `resume --retry-failed`)
//! ```
//!
//! Every transition is one transaction, logged in `transitions`. The database runs in WAL
//! mode with `synchronous=FULL`, so a committed transition survives a crash or power loss.
//! Each row keeps the exact wire values (`wire`, JSON: timestamp, quantity, identity,
//! allocations), so a row left in `pending` or `sending` by a crash is re-sent identically;
//! the marketplace's idempotency makes the re-send safe.
//!
//! No secret is ever written here: rows hold usage, customer identities and the
//! marketplace's answers only.
//!
//! Several senders may share one ledger (PostgreSQL, or several processes on one SQLite file):
//! a row is sent only by the sender that claimed it ([`Ledger::claim`]), under a lease that
//! another sender takes over once it runs out (a crashed agent's rows are re-sent with their
//! stored wire values by the next).
//!
//! **One live row per dedup key.** Each sender judges new records against its own dedup state
//! (the core's session, fed once from [`Ledger::history`]), which knows nothing of what another
//! sender stored since. So the ledger itself keeps at most one *live* row (`pending`,
//! `sending`, `accepted`, `duplicate`: the statuses [`Ledger::history`] returns,
//! [`Status::counts_as_sent`]) per marketplace dedup key ([`dedup_key`], the core's
//! [`metergate_core::dedup::key_text`]): a unique partial index on `dedup_key` (schema 7).
//! Every insert is `ON CONFLICT DO NOTHING`; a record whose idempotency key is already there is
//! a replay (as ever), one whose dedup key another live row holds with another quantity is
//! not written ([`Enqueued::Conflict`], [`intake::Stored::Conflict`]) and gets the core's
//! `duplicate-request` ([`metergate_core::Validator::shared_ledger_duplicate`]). A re-queue of
//! a `rejected`, `failed` or `expired` row happens only when no other live row holds its key;
//! otherwise the row stays as it ended. Rows whose `dedup_key` is NULL are the later live rows
//! of a key that a ledger held twice before schema 7: kept as they were, outside the index.
//!
//! Schema versions are kept in `PRAGMA user_version` (SQLite) or the `schema_version` table
//! (PostgreSQL) and applied in order by [`Ledger::open`].

pub mod db;
pub mod hourly;
pub mod intake;
pub mod observe;
pub mod report;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use metergate_core::time::{format_rfc3339, hour_floor, parse_rfc3339};
use metergate_core::{HistoryEntry, Marketplace, UsageRecord};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use rust_decimal::Decimal;
use serde::Serialize;

use db::{is_postgres_url, mask_location, Db, DbError, Engine, Exec, ToValue, Tx, Value};

/// The environment variable that names the default ledger.
pub const LEDGER_ENV: &str = "METERGATE_LEDGER";
/// The ledger file used when neither `--ledger` nor `$METERGATE_LEDGER` is given.
pub const DEFAULT_LEDGER: &str = "metergate-ledger.sqlite";

/// Schema migrations, in order; version `n` is `MIGRATIONS[n - 1]`. Version 2 adds the
/// contract store (`contracts`, `contract_history`; see [`crate::contracts::store`]);
/// version 3 the agent's intake tables (see [`intake`]); version 4 the cost imports
/// (`cost_imports`, `cost_periods`; see [`crate::import`]). Version 5 adds the final state
/// `expired` (a table rebuild: SQLite cannot change a CHECK constraint in place) and the
/// agent's hourly sums, hour carries and heartbeat hours (see [`crate::agent::hourly`] and
/// [`crate::agent::heartbeat`]). Migrations run with foreign keys off and are checked with
/// `PRAGMA foreign_key_check` before they commit, as SQLite's documented table-rebuild
/// procedure requires. Version 6 adds the claim leases (`lease_owner`, `lease_until`).
/// Version 7 adds `dedup_key` and the one-live-row-per-key index (see [`dedup_backfill`]).
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE records (
    id                    INTEGER PRIMARY KEY,
    idem_key              TEXT NOT NULL UNIQUE,
    marketplace           TEXT NOT NULL,
    product               TEXT NOT NULL,
    customer              TEXT NOT NULL,
    dimension             TEXT NOT NULL,
    start_time            TEXT NOT NULL,
    start_secs            INTEGER NOT NULL,
    end_time              TEXT,
    quantity              TEXT NOT NULL,
    record_id             TEXT,
    source                TEXT,
    wire                  TEXT NOT NULL,
    status                TEXT NOT NULL CHECK (status IN
                              ('pending','sending','accepted','rejected','duplicate','failed')),
    attempts              INTEGER NOT NULL DEFAULT 0,
    answer                TEXT,
    reason                TEXT,
    marketplace_record_id TEXT,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    sent_at               TEXT,
    finished_at           TEXT
);
CREATE INDEX records_status ON records(status);
CREATE INDEX records_hour ON records(marketplace, product, customer, dimension, start_secs);
CREATE TABLE transitions (
    record      INTEGER NOT NULL REFERENCES records(id),
    at          TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    note        TEXT
);
CREATE INDEX transitions_record ON transitions(record);
"#,
    r#"
CREATE TABLE contracts (
    marketplace    TEXT NOT NULL,
    product        TEXT NOT NULL,
    customer       TEXT NOT NULL,
    marketplace_id TEXT,
    status         TEXT NOT NULL,
    contract       TEXT NOT NULL,
    state_at       TEXT,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (marketplace, product, customer)
);
CREATE INDEX contracts_marketplace_id ON contracts(marketplace, marketplace_id);
CREATE TABLE contract_history (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    cause       TEXT NOT NULL CHECK (cause IN ('sync', 'import', 'event')),
    marketplace TEXT NOT NULL,
    product     TEXT NOT NULL,
    customer    TEXT NOT NULL,
    previous    TEXT,
    new         TEXT,
    applied     INTEGER NOT NULL,
    event_key   TEXT,
    event_time  TEXT,
    detail      TEXT
);
CREATE INDEX contract_history_customer ON contract_history(customer);
CREATE INDEX contract_history_event ON contract_history(event_key);
"#,
    // Version 3: the agent's idempotent intake (`metergate serve`, see [`intake`]). The
    // primary keys are what makes a retried request or record store nothing new.
    r#"
CREATE TABLE intake_requests (
    key        TEXT PRIMARY KEY,
    status     INTEGER NOT NULL,
    answer     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE intake_records (
    record_id  TEXT PRIMARY KEY,
    verdict    TEXT NOT NULL,
    row        INTEGER REFERENCES records(id),
    created_at TEXT NOT NULL
);
"#,
    // Version 4: cost imports (`metergate import orb|costs`, crate::import): what each billing platform
    // last reported per contract, and the per-period amounts of cost files. What was billed
    // is never stored here: it is read from `records` (rows whose source is `orb:...` or
    // `costs:...`), so it cannot drift from what was sent.
    r#"
CREATE TABLE IF NOT EXISTS cost_imports (
    platform    TEXT NOT NULL,
    marketplace TEXT NOT NULL,
    product     TEXT NOT NULL,
    customer    TEXT NOT NULL,
    reference   TEXT,
    since       TEXT NOT NULL,
    currency    TEXT,
    last_total  TEXT,
    last_at     TEXT,
    PRIMARY KEY (platform, marketplace, product, customer)
);
CREATE TABLE IF NOT EXISTS cost_periods (
    marketplace TEXT NOT NULL,
    product     TEXT NOT NULL,
    customer    TEXT NOT NULL,
    period_end  TEXT NOT NULL,
    amount      TEXT NOT NULL,
    currency    TEXT NOT NULL,
    source      TEXT,
    imported_at TEXT NOT NULL,
    PRIMARY KEY (marketplace, product, customer, period_end)
);
CREATE INDEX IF NOT EXISTS records_source ON records(marketplace, product, customer, dimension, source);
"#,
    // Version 5: the final state `expired` (a rebuild of `records`) and the agent's hourly
    // sums and heartbeat hours (`metergate serve`, see [`crate::agent`]).
    r#"
CREATE TABLE records_v5 (
    id                    INTEGER PRIMARY KEY,
    idem_key              TEXT NOT NULL UNIQUE,
    marketplace           TEXT NOT NULL,
    product               TEXT NOT NULL,
    customer              TEXT NOT NULL,
    dimension             TEXT NOT NULL,
    start_time            TEXT NOT NULL,
    start_secs            INTEGER NOT NULL,
    end_time              TEXT,
    quantity              TEXT NOT NULL,
    record_id             TEXT,
    source                TEXT,
    wire                  TEXT NOT NULL,
    status                TEXT NOT NULL CHECK (status IN
                              ('pending','sending','accepted','rejected','duplicate','failed',
                               'expired')),
    attempts              INTEGER NOT NULL DEFAULT 0,
    answer                TEXT,
    reason                TEXT,
    marketplace_record_id TEXT,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    sent_at               TEXT,
    finished_at           TEXT
);
INSERT INTO records_v5 (id, idem_key, marketplace, product, customer, dimension, start_time,
    start_secs, end_time, quantity, record_id, source, wire, status, attempts, answer, reason,
    marketplace_record_id, created_at, updated_at, sent_at, finished_at)
SELECT id, idem_key, marketplace, product, customer, dimension, start_time,
    start_secs, end_time, quantity, record_id, source, wire, status, attempts, answer, reason,
    marketplace_record_id, created_at, updated_at, sent_at, finished_at FROM records;
DROP TABLE records;
ALTER TABLE records_v5 RENAME TO records;
CREATE INDEX records_status ON records(status);
CREATE INDEX records_hour ON records(marketplace, product, customer, dimension, start_secs);
-- Version 4's index (the cost imports), dropped with the old table.
CREATE INDEX IF NOT EXISTS records_source ON records(marketplace, product, customer, dimension, source);
CREATE TABLE hourly_sums (
    marketplace  TEXT NOT NULL,
    product      TEXT NOT NULL,
    customer     TEXT NOT NULL,
    metric       TEXT NOT NULL,
    hour_secs    INTEGER NOT NULL,
    hour         TEXT NOT NULL,
    dimension    TEXT NOT NULL,
    plan         TEXT,
    quantity     TEXT NOT NULL,
    events       INTEGER NOT NULL,
    min_start    TEXT NOT NULL,
    max_start    TEXT NOT NULL,
    max_end      TEXT,
    status       TEXT NOT NULL CHECK (status IN ('open', 'closed', 'refused')),
    record       INTEGER REFERENCES records(id),
    sent_quantity TEXT,
    carried_in   TEXT,
    carried_out  TEXT,
    reason       TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    closed_at    TEXT,
    PRIMARY KEY (marketplace, product, customer, metric, hour_secs)
);
CREATE INDEX hourly_sums_open ON hourly_sums(status, hour_secs);
CREATE TABLE hourly_carry (
    marketplace TEXT NOT NULL,
    product     TEXT NOT NULL,
    customer    TEXT NOT NULL,
    metric      TEXT NOT NULL,
    remainder   TEXT NOT NULL,
    next_hour   TEXT NOT NULL,
    plan        TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (marketplace, product, customer, metric)
);
CREATE TABLE heartbeat_hours (
    hour_secs  INTEGER PRIMARY KEY,
    hour       TEXT NOT NULL,
    written    INTEGER NOT NULL,
    done_at    TEXT NOT NULL
);
"#,
    // Version 6: leases (issue #19). A row in `sending` belongs to the sender named in
    // `lease_owner` until `lease_until` (unix seconds); after that another agent may take it
    // over (see [`Ledger::claim`]).
    r#"
ALTER TABLE records ADD COLUMN lease_owner TEXT;
ALTER TABLE records ADD COLUMN lease_until INTEGER;
"#,
    // Version 7: one live row per marketplace dedup key, whatever the sender. The column is
    // filled (and the unique index built) by `dedup_backfill`, in Rust, so that the key has
    // one definition: the core's (`metergate_core::dedup::key_text`).
    r#"
ALTER TABLE records ADD COLUMN dedup_key TEXT;
"#,
];

/// The live statuses: a row in one of them may still be (or has been) billed, so its key is
/// the dedup history ([`Ledger::history`]) and at most one such row per `dedup_key` exists
/// (the unique index built by [`live_dedup_index`]). The same set as [`Status::counts_as_sent`].
const LIVE_STATUSES: &str = "status IN ('pending', 'sending', 'accepted', 'duplicate')";

/// Version 7's unique partial index: at most one live row per dedup key. Rows whose
/// `dedup_key` is NULL are outside it: the later live rows of a key that an older ledger
/// already held twice (see [`dedup_backfill`]).
fn live_dedup_index() -> String {
    format!("CREATE UNIQUE INDEX records_live_dedup ON records(dedup_key) WHERE {LIVE_STATUSES}")
}

/// The note logged (a `transitions` row from a status to itself) on a live row that version 7
/// left out of the one-live-row index because an earlier live row holds its key.
pub const SECOND_LIVE_NOTE: &str = "schema 7: an earlier live row holds this dedup key; this row keeps its state and is left out of the one-live-row index (dedup_key NULL)";

/// Version 7's data step, after its `ALTER TABLE` and before its index, on either engine:
/// every row gets its `dedup_key` ([`dedup_key`]), read in id order. Of the live rows of one
/// key (possible before version 7, when two senders judged the same key apart), the earliest
/// keeps it; each later one keeps its state and everything else, gets no `dedup_key` (so the
/// unique index leaves it out) and a transition noting why ([`SECOND_LIVE_NOTE`]). Nothing is
/// deleted. The rows are read in pages, so a large ledger is not loaded at once.
fn dedup_backfill<E: Exec + ?Sized>(tx: &E, path: &str) -> Result<(), LedgerError> {
    const PAGE: i64 = 5000;
    let e = db_err(path);
    let now = now_text();
    let mut live: HashSet<String> = HashSet::new();
    let mut after = 0i64;
    loop {
        let rows = query_rows(
            tx,
            path,
            &format!("SELECT {COLUMNS} FROM records WHERE id > ?1 ORDER BY id LIMIT ?2"),
            &[&after, &PAGE],
        )?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        for row in &rows {
            let key = dedup_key(&row.usage_record());
            if row.status.counts_as_sent() && !live.insert(key.clone()) {
                tx.execute(
                    "INSERT INTO transitions (record, at, from_status, to_status, note) \
                     VALUES (?1, ?2, ?3, ?3, ?4)",
                    &[&row.id, &now, &row.status.as_str(), &SECOND_LIVE_NOTE],
                )
                .map_err(&e)?;
                continue;
            }
            tx.execute(
                "UPDATE records SET dedup_key = ?2 WHERE id = ?1",
                &[&row.id, &key],
            )
            .map_err(&e)?;
        }
    }
    tx.batch(&live_dedup_index()).map_err(&e)
}

/// The Rust half of a migration step, run right after the step's SQL on either engine.
fn after_step<E: Exec + ?Sized>(version: i64, tx: &E, path: &str) -> Result<(), LedgerError> {
    match version {
        7 => dedup_backfill(tx, path),
        _ => Ok(()),
    }
}

/// PostgreSQL's migrations, as `(version reached, SQL)`, applied in order by [`Ledger::open`]
/// with the version kept in the `schema_version` table. Versions count as SQLite's do: the
/// first reaches version 6, SQLite's schema at version 6 written for PostgreSQL (ids from
/// identity columns, integers `BIGINT`). A later change adds one step to each list.
const PG_MIGRATIONS: &[(i64, &str)] = &[
    (
        6,
        r#"
CREATE TABLE records (
    id                    BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    idem_key              TEXT NOT NULL UNIQUE,
    marketplace           TEXT NOT NULL,
    product               TEXT NOT NULL,
    customer              TEXT NOT NULL,
    dimension             TEXT NOT NULL,
    start_time            TEXT NOT NULL,
    start_secs            BIGINT NOT NULL,
    end_time              TEXT,
    quantity              TEXT NOT NULL,
    record_id             TEXT,
    source                TEXT,
    wire                  TEXT NOT NULL,
    status                TEXT NOT NULL CHECK (status IN
                              ('pending','sending','accepted','rejected','duplicate','failed',
                               'expired')),
    attempts              BIGINT NOT NULL DEFAULT 0,
    answer                TEXT,
    reason                TEXT,
    marketplace_record_id TEXT,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    sent_at               TEXT,
    finished_at           TEXT,
    lease_owner           TEXT,
    lease_until           BIGINT
);
CREATE INDEX records_status ON records(status);
CREATE INDEX records_hour ON records(marketplace, product, customer, dimension, start_secs);
CREATE INDEX records_source ON records(marketplace, product, customer, dimension, source);
CREATE TABLE transitions (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    record      BIGINT NOT NULL REFERENCES records(id),
    at          TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    note        TEXT
);
CREATE INDEX transitions_record ON transitions(record);
CREATE TABLE contracts (
    marketplace    TEXT NOT NULL,
    product        TEXT NOT NULL,
    customer       TEXT NOT NULL,
    marketplace_id TEXT,
    status         TEXT NOT NULL,
    contract       TEXT NOT NULL,
    state_at       TEXT,
    updated_at     TEXT NOT NULL,
    -- The order contracts were first stored in (SQLite's rowid).
    seq            BIGINT GENERATED BY DEFAULT AS IDENTITY UNIQUE,
    PRIMARY KEY (marketplace, product, customer)
);
CREATE INDEX contracts_marketplace_id ON contracts(marketplace, marketplace_id);
CREATE TABLE contract_history (
    id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    at          TEXT NOT NULL,
    cause       TEXT NOT NULL CHECK (cause IN ('sync', 'import', 'event')),
    marketplace TEXT NOT NULL,
    product     TEXT NOT NULL,
    customer    TEXT NOT NULL,
    previous    TEXT,
    new         TEXT,
    applied     BIGINT NOT NULL,
    event_key   TEXT,
    event_time  TEXT,
    detail      TEXT
);
CREATE INDEX contract_history_customer ON contract_history(customer);
CREATE INDEX contract_history_event ON contract_history(event_key);
CREATE TABLE intake_requests (
    key        TEXT PRIMARY KEY,
    status     BIGINT NOT NULL,
    answer     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE intake_records (
    record_id  TEXT PRIMARY KEY,
    verdict    TEXT NOT NULL,
    row        BIGINT REFERENCES records(id),
    created_at TEXT NOT NULL
);
CREATE TABLE cost_imports (
    platform    TEXT NOT NULL,
    marketplace TEXT NOT NULL,
    product     TEXT NOT NULL,
    customer    TEXT NOT NULL,
    reference   TEXT,
    since       TEXT NOT NULL,
    currency    TEXT,
    last_total  TEXT,
    last_at     TEXT,
    PRIMARY KEY (platform, marketplace, product, customer)
);
CREATE TABLE cost_periods (
    marketplace TEXT NOT NULL,
    product     TEXT NOT NULL,
    customer    TEXT NOT NULL,
    period_end  TEXT NOT NULL,
    amount      TEXT NOT NULL,
    currency    TEXT NOT NULL,
    source      TEXT,
    imported_at TEXT NOT NULL,
    PRIMARY KEY (marketplace, product, customer, period_end)
);
CREATE TABLE hourly_sums (
    marketplace  TEXT NOT NULL,
    product      TEXT NOT NULL,
    customer     TEXT NOT NULL,
    metric       TEXT NOT NULL,
    hour_secs    BIGINT NOT NULL,
    hour         TEXT NOT NULL,
    dimension    TEXT NOT NULL,
    plan         TEXT,
    quantity     TEXT NOT NULL,
    events       BIGINT NOT NULL,
    min_start    TEXT NOT NULL,
    max_start    TEXT NOT NULL,
    max_end      TEXT,
    status       TEXT NOT NULL CHECK (status IN ('open', 'closed', 'refused')),
    record       BIGINT REFERENCES records(id),
    sent_quantity TEXT,
    carried_in   TEXT,
    carried_out  TEXT,
    reason       TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    closed_at    TEXT,
    PRIMARY KEY (marketplace, product, customer, metric, hour_secs)
);
CREATE INDEX hourly_sums_open ON hourly_sums(status, hour_secs);
CREATE TABLE hourly_carry (
    marketplace TEXT NOT NULL,
    product     TEXT NOT NULL,
    customer    TEXT NOT NULL,
    metric      TEXT NOT NULL,
    remainder   TEXT NOT NULL,
    next_hour   TEXT NOT NULL,
    plan        TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (marketplace, product, customer, metric)
);
CREATE TABLE heartbeat_hours (
    hour_secs  BIGINT PRIMARY KEY,
    hour       TEXT NOT NULL,
    written    BIGINT NOT NULL,
    done_at    TEXT NOT NULL
);
"#,
    ),
    // Version 7 (see SQLite's): the dedup key column; `dedup_backfill` fills it and builds
    // the index.
    (7, "ALTER TABLE records ADD COLUMN dedup_key TEXT"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The ledger location: `--ledger`, else `$METERGATE_LEDGER`, else
/// `./metergate-ledger.sqlite`. A `postgres://` or `postgresql://` URL selects PostgreSQL.
pub fn resolve_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os(LEDGER_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_LEDGER),
    }
}

/// True when the ledger at `path` may hold something: the file exists, or `path` is a
/// PostgreSQL URL (a database is not looked for before it is opened).
pub fn exists(path: &Path) -> bool {
    is_shared(path) || path.exists()
}

/// True when `path` is a PostgreSQL URL (`postgres://...` or `postgresql://...`): a ledger
/// shared by several agents.
pub fn is_shared(path: &Path) -> bool {
    path.to_str().is_some_and(is_postgres_url)
}

/// The location for messages: a PostgreSQL URL with its password masked, a path as is.
pub fn display(path: &Path) -> String {
    match path.to_str() {
        Some(s) => mask_location(s),
        None => path.display().to_string(),
    }
}

/// Where a row is in the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Written, not yet handed to the marketplace.
    Pending,
    /// Handed to the marketplace (or about to be); the answer is not recorded yet.
    Sending,
    /// The marketplace took it (AWS `Success`).
    Accepted,
    /// The marketplace refused it, or it can no longer be sent.
    Rejected,
    /// The marketplace already had a record for this key with another quantity
    /// (AWS `DuplicateRecord`).
    Duplicate,
    /// No definite answer after every retry. Submitting the record again, or
    /// `metergate resume --retry-failed`, sends it again (safely: same key, same content).
    Failed,
    /// Never sent: its window closed first (the reason names the deadline and its rule).
    /// A row is never sent after its deadline; submitting it again re-queues it only if the
    /// core accepts it again.
    Expired,
}

impl Status {
    /// Every status, in state-machine order.
    pub const ALL: [Status; 7] = [
        Status::Pending,
        Status::Sending,
        Status::Accepted,
        Status::Rejected,
        Status::Duplicate,
        Status::Failed,
        Status::Expired,
    ];

    /// The lowercase name stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sending => "sending",
            Status::Accepted => "accepted",
            Status::Rejected => "rejected",
            Status::Duplicate => "duplicate",
            Status::Failed => "failed",
            Status::Expired => "expired",
        }
    }

    /// True for the end states.
    pub fn is_final(self) -> bool {
        !matches!(self, Status::Pending | Status::Sending)
    }

    /// True when the row's key may already be (or soon be) billed, so the core must treat a
    /// new record with the same key as a duplicate.
    pub fn counts_as_sent(self) -> bool {
        matches!(
            self,
            Status::Pending | Status::Sending | Status::Accepted | Status::Duplicate
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Status, String> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown status {s:?}; one of pending, sending, accepted, rejected, duplicate, failed, expired"
                )
            })
    }
}

/// Why the ledger cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// SQLite failed.
    #[error("ledger {path}: {source}")]
    Sqlite {
        /// The ledger file.
        path: String,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer metergate.
    #[error("ledger {path}: schema version {found} is newer than this metergate knows ({known}); upgrade metergate")]
    TooNew {
        /// The ledger file.
        path: String,
        /// Its `user_version`.
        found: i64,
        /// [`SCHEMA_VERSION`].
        known: i64,
    },
    /// A read-only command was pointed at a file that does not exist.
    #[error("ledger {path}: the ledger file does not exist (metergate submit creates it)")]
    Missing {
        /// The ledger file.
        path: String,
    },
    /// PostgreSQL failed (or a value had an unexpected type).
    #[error("ledger {path}: {source}")]
    Db {
        /// The ledger location (password masked).
        path: String,
        /// The cause.
        #[source]
        source: DbError,
    },
    /// The PostgreSQL server could not be reached (or refused the connection) at start.
    #[error("ledger {path}: cannot connect to the PostgreSQL server: {message}")]
    Unreachable {
        /// The ledger location (password masked).
        path: String,
        /// The driver's reason (password masked).
        message: String,
    },
    /// A row's dedup key kept changing under the write (other senders ending and writing
    /// rows for it at that very moment); nothing was written for it.
    #[error("ledger {path}: the dedup key {key} kept changing under this write; try again")]
    Contended {
        /// The ledger location (password masked).
        path: String,
        /// The dedup key.
        key: String,
    },
    /// A step that does not run on this engine yet.
    #[error("ledger {path}: not yet on PostgreSQL: {what}")]
    NotYet {
        /// The ledger location (password masked).
        path: String,
        /// What cannot run.
        what: String,
    },
    /// A row holds a value this build cannot read.
    #[error("ledger {path}: row {id}: {message}")]
    Corrupt {
        /// The ledger file.
        path: String,
        /// The row id.
        id: i64,
        /// What is wrong.
        message: String,
    },
}

/// A record to write before sending.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRow {
    /// The parsed record as the core accepted it.
    pub record: UsageRecord,
    /// Where it came from (`file:line`), for people.
    pub source: Option<String>,
    /// The exact values to put on the wire (marketplace-specific JSON), re-sent verbatim.
    pub wire: serde_json::Value,
}

/// What [`Ledger::enqueue`] did with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// A new row in `pending`.
    New(i64),
    /// An earlier `rejected` or `failed` row with the same key, back in `pending`.
    Requeued(i64),
    /// The key is already in the ledger in this state; nothing changed.
    Existing(i64, Status),
    /// Another live row (this id) holds the record's dedup key with another quantity: written
    /// by another sender sharing the ledger. Nothing was written; the marketplace would keep
    /// that row's quantity and drop this one (the core's `duplicate-request`).
    Conflict(i64),
}

/// One ledger row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LedgerRow {
    /// Row id.
    pub id: i64,
    /// The idempotency key.
    pub idem_key: String,
    /// Marketplace.
    pub marketplace: Marketplace,
    /// Product.
    pub product: String,
    /// The customer key (as in contracts and records).
    pub customer: String,
    /// Dimension.
    pub dimension: String,
    /// Usage start.
    #[serde(serialize_with = "ser_time")]
    pub start_time: DateTime<Utc>,
    /// Google: usage end.
    #[serde(serialize_with = "ser_time_opt")]
    pub end_time: Option<DateTime<Utc>>,
    /// Quantity.
    pub quantity: Decimal,
    /// The seller's record id.
    pub record_id: Option<String>,
    /// `file:line` of the input.
    pub source: Option<String>,
    /// The exact wire values.
    pub wire: serde_json::Value,
    /// State.
    pub status: Status,
    /// How many calls carried it.
    pub attempts: i64,
    /// The marketplace's answer (`Success`, `CustomerNotSubscribed`, an error code, ...).
    pub answer: Option<String>,
    /// Why it ended as it did, in words.
    pub reason: Option<String>,
    /// The marketplace's id for the record (AWS `MeteringRecordId`).
    pub marketplace_record_id: Option<String>,
    /// When the row was written.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// When it was last handed to the marketplace.
    pub sent_at: Option<String>,
    /// When it reached its end state.
    pub finished_at: Option<String>,
}

fn ser_time<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_rfc3339(*t))
}

fn ser_time_opt<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format_rfc3339(*t)),
        None => s.serialize_none(),
    }
}

impl LedgerRow {
    /// The row as a core record (for batching and deadlines).
    pub fn usage_record(&self) -> UsageRecord {
        UsageRecord {
            marketplace: self.marketplace,
            product: self.product.clone(),
            customer: self.customer.clone(),
            dimension: self.dimension.clone(),
            quantity: self.quantity,
            start_time: self.start_time,
            end_time: self.end_time,
            record_id: self.record_id.clone(),
            plan: None,
            allocations: None,
            attributes: Default::default(),
        }
    }

    /// The row as dedup history for the core.
    pub fn history_entry(&self) -> HistoryEntry {
        HistoryEntry {
            marketplace: self.marketplace,
            product: self.product.clone(),
            customer: self.customer.clone(),
            dimension: self.dimension.clone(),
            start_time: self.start_time,
            end_time: self.end_time,
            quantity: self.quantity,
            // Only rows the marketplace answered count as sent; a pending or sending row is
            // shown as "not yet answered".
            sent_at: if self.status.is_final() {
                self.sent_at.as_deref().and_then(|t| parse_rfc3339(t).ok())
            } else {
                None
            },
        }
    }
}

/// The end of one row's trip: its final state and what the marketplace said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// An end state (never `pending` or `sending`).
    pub status: Status,
    /// The marketplace's answer code, or `metergate` when metergate decided.
    pub answer: Option<String>,
    /// Why, in words.
    pub reason: Option<String>,
    /// The marketplace's record id.
    pub marketplace_record_id: Option<String>,
}

/// Filters for [`Ledger::list`]. Times filter on the usage start time.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only this state.
    pub status: Option<Status>,
    /// Only this marketplace.
    pub marketplace: Option<Marketplace>,
    /// Only this customer key.
    pub customer: Option<String>,
    /// Usage at or after.
    pub since: Option<DateTime<Utc>>,
    /// Usage before.
    pub until: Option<DateTime<Utc>>,
}

/// The idempotency key: the marketplace's dedup key ([`dedup_key`]) plus the quantity.
///
/// AWS and Azure deduplicate per customer, dimension and hour, so the key holds the hour;
/// Google holds the exact interval. The quantity is normalised (`5.0` and `5` are one key).
pub fn idempotency_key(r: &UsageRecord) -> String {
    format!("{}|{}", dedup_key(r), r.quantity.normalize())
}

/// The marketplace's dedup key of a record, as the core writes it
/// ([`metergate_core::dedup::key_text`]): the `dedup_key` column, of which at most one live
/// row ([`Status::counts_as_sent`]) exists in a ledger.
pub fn dedup_key(r: &UsageRecord) -> String {
    metergate_core::dedup::key_text(r)
}

fn now_text() -> String {
    format_rfc3339(Utc::now())
}

/// One logged transition: `(at, from, to, note)`.
pub type Transition = (String, Option<String>, String, Option<String>);

/// How long a claimed row stays reserved for its sender when nothing else is configured:
/// a few send-call timeouts. Another agent takes a row over once its lease has run out.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);
/// The environment variable that sets the lease in whole seconds (tests use a short one).
pub const LEASE_ENV: &str = "METERGATE_LEASE_SECS";

/// The page cache, in KiB, of a connection tuned by [`Ledger::tune_for_bulk_writes`].
pub const WRITER_CACHE_KIB: u32 = 64 * 1024;

/// An open ledger: a SQLite file or a PostgreSQL database (see [`db`]).
pub struct Ledger {
    db: Db,
    /// The location for messages (a PostgreSQL URL with its password masked).
    path: String,
    /// Who this process is when it claims rows (see [`Ledger::claim`]).
    owner: String,
    /// How long a claim holds.
    lease: Duration,
    /// Claim rows whatever their lease (`metergate resume`: an operator's recovery).
    take_over: bool,
}

const COLUMNS: &str = "id, idem_key, marketplace, product, customer, dimension, start_time, \
    end_time, quantity, record_id, source, wire, status, attempts, answer, reason, \
    marketplace_record_id, created_at, updated_at, sent_at, finished_at";

/// Turns a database error into a ledger error naming the (masked) location. SQLite's errors
/// keep their own variant, [`LedgerError::Sqlite`].
pub(crate) fn db_err(path: &str) -> impl Fn(DbError) -> LedgerError + '_ {
    move |e| match e {
        DbError::Sqlite(source) => LedgerError::Sqlite {
            path: path.to_owned(),
            source,
        },
        source => LedgerError::Db {
            path: path.to_owned(),
            source,
        },
    }
}

/// This process's claim owner: host, boot, process id and a random suffix, so that a lease of
/// a process that died on this machine is recognised as void at once (see [`owner_is_dead`]).
fn process_owner() -> String {
    static OWNER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    OWNER
        .get_or_init(|| {
            format!(
                "{}:{}:{}:{:08x}",
                machine().0,
                machine().1,
                std::process::id(),
                fastrand::u32(..)
            )
        })
        .clone()
}

/// This machine's host name and the start of its boot id (Linux), for lease owners.
fn machine() -> (String, String) {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let host = read("/proc/sys/kernel/hostname")
        .or_else(|| read("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "host".into())
        .replace(':', "_");
    let boot: String = read("/proc/sys/kernel/random/boot_id")
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .collect();
    (host, if boot.is_empty() { "-".into() } else { boot })
}

/// True when `owner` was a process on this machine that is no longer running (its lease is
/// void: `metergate resume` after a `kill -9` need not wait for it to run out). Unknown
/// (another machine, no `/proc`) counts as alive.
fn owner_is_dead(owner: &str, me: &str) -> bool {
    let theirs: Vec<&str> = owner.rsplitn(3, ':').collect();
    let mine: Vec<&str> = me.rsplitn(3, ':').collect();
    // [suffix, pid, host:boot]
    let (Some(their_pid), Some(their_machine), Some(my_pid), Some(my_machine)) =
        (theirs.get(1), theirs.get(2), mine.get(1), mine.get(2))
    else {
        return false;
    };
    if their_machine != my_machine || owner == me {
        return false;
    }
    if their_pid == my_pid {
        // Same pid, another suffix: an earlier process that had this pid is gone.
        return true;
    }
    let proc_fs = Path::new("/proc/self").exists();
    proc_fs && their_pid.chars().all(|c| c.is_ascii_digit()) && !pid_runs(their_pid)
}

/// True when `/proc` shows the process running: present and not a zombie (a process killed
/// with `kill -9` and not yet reaped by its parent has ended all the same).
fn pid_runs(pid: &str) -> bool {
    match std::fs::read_to_string(Path::new("/proc").join(pid).join("stat")) {
        // The state follows the command name in parentheses: `pid (comm) S ...`.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_none_or(|state| !matches!(state, 'Z' | 'X')),
        Err(_) => Path::new("/proc").join(pid).exists(),
    }
}

/// How long a SQLite connection waits for another one's lock (its busy timeout), and how long
/// opening a ledger keeps trying when SQLite answers "locked" without waiting.
const SQLITE_BUSY_WAIT: Duration = Duration::from_secs(10);

/// True when SQLite said the database is busy or locked by another connection.
fn is_busy(e: &LedgerError) -> bool {
    let source = match e {
        LedgerError::Sqlite { source, .. } => source,
        LedgerError::Db {
            source: DbError::Sqlite(source),
            ..
        } => source,
        _ => return false,
    };
    matches!(
        source.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn lease_from_env() -> Duration {
    std::env::var(LEASE_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(DEFAULT_LEASE, Duration::from_secs)
}

impl Ledger {
    /// Opens (creating when missing) the ledger at `path` and brings its schema up to date.
    /// A path of the form `postgres://...` or `postgresql://...` opens that PostgreSQL
    /// database instead (an unreachable server is [`LedgerError::Unreachable`]).
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        match path.to_str().filter(|s| is_postgres_url(s)) {
            Some(url) => Ledger::open_postgres(url),
            None => Ledger::open_sqlite(path),
        }
    }

    /// Opens a ledger by location string: a PostgreSQL URL or a SQLite path.
    pub fn open_location(location: &str) -> Result<Ledger, LedgerError> {
        Ledger::open(Path::new(location))
    }

    fn with_db(db: Db, path: String) -> Ledger {
        Ledger {
            db,
            path,
            owner: process_owner(),
            lease: lease_from_env(),
            take_over: false,
        }
    }

    fn open_sqlite(path: &Path) -> Result<Ledger, LedgerError> {
        // Switching a new file to WAL needs a lock SQLite does not wait for (the busy
        // timeout does not apply to it): when two processes create one ledger at the same
        // moment, one gets "database is locked" at once. That one tries again, on a fresh
        // connection, for as long as the busy timeout would have waited.
        let deadline = std::time::Instant::now() + SQLITE_BUSY_WAIT;
        let mut pause = std::time::Duration::from_millis(10);
        loop {
            match Ledger::open_sqlite_once(path) {
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(250));
                }
                other => return other,
            }
        }
    }

    fn open_sqlite_once(path: &Path) -> Result<Ledger, LedgerError> {
        let name = path.display().to_string();
        let db = Db::open_sqlite(path).map_err(db_err(&name))?;
        let mut ledger = Ledger::with_db(db, name);
        ledger.configure()?;
        ledger.migrate()?;
        Ok(ledger)
    }

    fn open_postgres(url: &str) -> Result<Ledger, LedgerError> {
        let name = mask_location(url);
        let db = Db::connect_postgres(url).map_err(|e| LedgerError::Unreachable {
            path: name.clone(),
            message: redact(&with_causes(&e), url),
        })?;
        let mut ledger = Ledger::with_db(db, name);
        ledger.migrate_postgres()?;
        Ok(ledger)
    }

    /// Opens an existing ledger; a missing file is an error (for read-only commands). A
    /// PostgreSQL database is opened as by [`Ledger::open`].
    pub fn open_existing(path: &Path) -> Result<Ledger, LedgerError> {
        if !exists(path) {
            return Err(LedgerError::Missing {
                path: path.display().to_string(),
            });
        }
        Ledger::open(path)
    }

    /// The location as given, with a PostgreSQL password masked (`postgres://u:***@h/db`):
    /// safe for every message and log line.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The engine behind this ledger.
    pub fn engine(&self) -> Engine {
        self.db.engine()
    }

    /// The connection, for ledger-side SQL elsewhere in this crate (the contract store, the
    /// cost imports, the agent's tables).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Starts a write transaction on either engine (see [`Db::transaction`]).
    pub(crate) fn begin(&mut self) -> Result<Tx<'_>, LedgerError> {
        let path = self.path.clone();
        self.db.transaction().map_err(|e| db_err(&path)(e))
    }

    /// The SQLite connection, for code not yet converted to the engine-neutral layer; on
    /// PostgreSQL [`LedgerError::NotYet`].
    pub(crate) fn connection(&mut self) -> Result<&mut Connection, LedgerError> {
        let path = self.path.clone();
        self.db.sqlite_mut().ok_or(LedgerError::NotYet {
            path,
            what: "this SQLite-only step".into(),
        })
    }

    /// The process's claim owner (see [`Ledger::claim`]).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Sets how long a claim holds (default [`DEFAULT_LEASE`], or `$METERGATE_LEASE_SECS`).
    pub fn set_lease(&mut self, lease: Duration) {
        self.lease = lease;
    }

    /// From now on, claim rows in `sending` whatever their lease: for `metergate resume`, the
    /// operator's recovery after a crash, which re-sends every row left unfinished (safely:
    /// the stored wire values, and the marketplace's idempotency). Agents never do this; they
    /// wait for a lease to run out.
    pub fn take_over_leases(&mut self) {
        self.take_over = true;
    }

    fn err(&self) -> impl Fn(DbError) -> LedgerError + '_ {
        db_err(&self.path)
    }

    /// SQLite: whether this connection checkpoints the WAL itself when it passes 1,000
    /// pages after a commit (SQLite's default: on). An agent turns it off on its intake
    /// writer and runs [`Ledger::checkpoint`] on another connection, so no commit waits for
    /// a checkpoint. Nothing on PostgreSQL.
    pub fn set_auto_checkpoint(&mut self, on: bool) -> Result<(), LedgerError> {
        let path = self.path.clone();
        let Some(conn) = self.db.sqlite_mut() else {
            return Ok(());
        };
        let pages = if on { 1000 } else { 0 };
        conn.pragma_update(None, "wal_autocheckpoint", pages)
            .map_err(|source| LedgerError::Sqlite { path, source })
    }

    /// SQLite: settings for a connection that writes many rows per transaction (the agent's
    /// intake writer): a page cache of [`WRITER_CACHE_KIB`] KiB instead of SQLite's 2 MiB, so
    /// the indexes' pages stay in memory as the ledger grows, and statement journals kept in
    /// memory (`temp_store=MEMORY`) instead of spilling to a temporary file (a multi-row
    /// `INSERT` that may fail halfway keeps one). Durability is unchanged: both are
    /// per-connection caches. Nothing on PostgreSQL.
    pub fn tune_for_bulk_writes(&mut self) -> Result<(), LedgerError> {
        let path = self.path.clone();
        let Some(conn) = self.db.sqlite_mut() else {
            return Ok(());
        };
        conn.execute_batch(&format!(
            "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-{WRITER_CACHE_KIB};"
        ))
        .map_err(|source| LedgerError::Sqlite { path, source })
    }

    /// SQLite: a `PASSIVE` checkpoint: copies what it can of the WAL into the database file
    /// without waiting for (or blocking) the writer or the readers. Returns the WAL's frames
    /// and the frames copied so far. Nothing on PostgreSQL (`None`).
    pub fn checkpoint(&mut self) -> Result<Option<(i64, i64)>, LedgerError> {
        let path = self.path.clone();
        let Some(conn) = self.db.sqlite_mut() else {
            return Ok(None);
        };
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        })
        .map(Some)
        .map_err(|source| LedgerError::Sqlite { path, source })
    }

    fn configure(&mut self) -> Result<(), LedgerError> {
        let path = self.path.clone();
        let e = |source| LedgerError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = self.connection()?;
        conn.busy_timeout(SQLITE_BUSY_WAIT).map_err(e)?;
        // WAL: readers never block the writer; FULL: a commit is on disk before it returns.
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(e)?;
        if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
            return Err(LedgerError::Sqlite {
                path: path.clone(),
                source: rusqlite::Error::InvalidParameterName(format!(
                    "cannot switch to WAL mode (got {mode})"
                )),
            });
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(e)?;
        Ok(())
    }

    fn migrate(&mut self) -> Result<(), LedgerError> {
        let path = self.path.clone();
        let e = |source| LedgerError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = self.connection()?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(e)?;
        if version >= SCHEMA_VERSION {
            return if version > SCHEMA_VERSION {
                Err(LedgerError::TooNew {
                    path,
                    found: version,
                    known: SCHEMA_VERSION,
                })
            } else {
                Ok(())
            };
        }
        // SQLite's table-rebuild procedure: foreign keys off (a no-op inside a transaction,
        // so before it), the changes, `foreign_key_check`, commit, foreign keys on again.
        conn.execute_batch("PRAGMA foreign_keys=OFF;").map_err(e)?;
        let result = Self::migrate_from(conn, &path);
        let on = conn.execute_batch("PRAGMA foreign_keys=ON;").map_err(e);
        result.and(on)
    }

    fn migrate_from(conn: &mut Connection, path: &str) -> Result<(), LedgerError> {
        let e = |source| LedgerError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        // Read again under the write lock: another process may have migrated meanwhile.
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(e)?;
        if version > SCHEMA_VERSION {
            return Err(LedgerError::TooNew {
                path: path.to_owned(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql).map_err(e)?;
            after_step(i as i64 + 1, &*tx, path)?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
                .map_err(e)?;
        }
        let broken: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()
            .map_err(e)?;
        if let Some(table) = broken {
            return Err(LedgerError::Corrupt {
                path: path.to_owned(),
                id: 0,
                message: format!("after the schema upgrade, table {table} has a row whose reference is missing; the upgrade was not applied"),
            });
        }
        tx.commit().map_err(e)
    }

    /// PostgreSQL's migrations: the version lives in `schema_version`; every step runs in one
    /// transaction under an advisory lock, so agents starting together migrate once.
    fn migrate_postgres(&mut self) -> Result<(), LedgerError> {
        let path = self.path.clone();
        let e = db_err(&path);
        // Most opens find the schema current: one read, no lock.
        let current = self
            .db
            .query_opt(
                "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = 'schema_version')",
                &[],
            )
            .map_err(&e)?
            .map(|r| r.get::<bool>(0))
            .transpose()
            .map_err(&e)?
            .unwrap_or(false)
            && self.schema_version()? == SCHEMA_VERSION;
        if current {
            return Ok(());
        }
        let tx = self.db.transaction().map_err(&e)?;
        tx.batch(&format!(
            "SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK}); \
             CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)"
        ))
        .map_err(&e)?;
        let found: Option<i64> = tx
            .query_opt("SELECT MAX(version) FROM schema_version", &[])
            .map_err(&e)?
            .map(|r| r.get::<Option<i64>>(0))
            .transpose()
            .map_err(&e)?
            .flatten();
        let version = found.unwrap_or(0);
        if version > SCHEMA_VERSION {
            return Err(LedgerError::TooNew {
                path: path.clone(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        for (to, sql) in PG_MIGRATIONS.iter().filter(|(to, _)| *to > version) {
            tx.batch(sql).map_err(&e)?;
            if *to > 6 {
                // The first step reaches version 6 at once; later ones carry their own.
                after_step(*to, &tx, &path)?;
            }
            tx.execute("DELETE FROM schema_version", &[]).map_err(&e)?;
            tx.execute("INSERT INTO schema_version (version) VALUES (?1)", &[to])
                .map_err(&e)?;
        }
        tx.commit().map_err(&e)
    }

    /// The schema version of the open ledger (`PRAGMA user_version` on SQLite, the
    /// `schema_version` table on PostgreSQL; the two count alike from version 6).
    pub fn schema_version(&self) -> Result<i64, LedgerError> {
        let sql = match self.engine() {
            Engine::Sqlite => "PRAGMA user_version",
            Engine::Postgres => "SELECT MAX(version) FROM schema_version",
        };
        Ok(self
            .db
            .query_opt(sql, &[])
            .map_err(self.err())?
            .map(|r| r.get::<Option<i64>>(0))
            .transpose()
            .map_err(self.err())?
            .flatten()
            .unwrap_or(0))
    }

    /// Writes records as `pending`, all in one transaction, before anything is sent. A key
    /// already in the ledger is left alone, unless its row ended `rejected`, `failed` or
    /// `expired`: then it goes back to `pending` with the new wire values (a deliberate second
    /// try). A record whose dedup key another live row holds with another quantity (written
    /// by another sender since this one read the history) is not written:
    /// [`Enqueued::Conflict`]; nor is a re-queue that would make a second live row (the
    /// ended row stays as it is).
    pub fn enqueue(&mut self, rows: &[NewRow]) -> Result<Vec<Enqueued>, LedgerError> {
        let path = self.path.clone();
        let tx = self.begin()?;
        let out = enqueue_in(&tx, &path, rows)?;
        tx.commit().map_err(db_err(&path))?;
        Ok(out)
    }

    /// Claims rows for one send call, in one transaction, right before the call that carries
    /// them: of `ids`, those `pending`, or `sending` with no live lease, a lease of this
    /// process, or a lease of a process on this machine that has died, move to (or stay in)
    /// `sending`, count the attempt, and take a lease (this process, until now + the lease).
    /// Returns the ids claimed, in the order given; the caller sends only those. Rows that are
    /// missing, already ended, leased by another live sender, or (PostgreSQL) being claimed
    /// by another agent's transaction right now (`FOR UPDATE SKIP LOCKED`) are left out; on
    /// SQLite the write lock serialises claims.
    pub fn claim(&mut self, ids: &[i64]) -> Result<Vec<i64>, LedgerError> {
        let path = self.path.clone();
        let e = db_err(&path);
        let owner = self.owner.clone();
        let take_over = self.take_over;
        let now = Utc::now();
        let now_text = format_rfc3339(now);
        let now_secs = now.timestamp();
        let until =
            now_secs.saturating_add(i64::try_from(self.lease.as_secs()).unwrap_or(i64::MAX));
        let engine = self.engine();
        let tx = self.begin()?;
        let mut found: HashMap<i64, (String, Option<String>, Option<i64>)> = HashMap::new();
        let lock = match engine {
            Engine::Postgres => " FOR UPDATE SKIP LOCKED",
            Engine::Sqlite => "",
        };
        for chunk in ids.chunks(CLAIM_CHUNK) {
            let list: Vec<String> = (1..=chunk.len()).map(|i| format!("?{i}")).collect();
            let sql = format!(
                "SELECT id, status, lease_owner, lease_until FROM records WHERE id IN ({}){lock}",
                list.join(", ")
            );
            let args: Vec<&dyn ToValue> = chunk.iter().map(|i| i as &dyn ToValue).collect();
            for r in tx.query(&sql, &args).map_err(&e)? {
                let id: i64 = r.get(0).map_err(&e)?;
                found.insert(
                    id,
                    (
                        r.get(1).map_err(&e)?,
                        r.get(2).map_err(&e)?,
                        r.get(3).map_err(&e)?,
                    ),
                );
            }
        }
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            let Some((status, lease_owner, lease_until)) = found.remove(id) else {
                continue;
            };
            let status = parse_status(&path, *id, &status)?;
            if status.is_final() {
                continue;
            }
            if status == Status::Sending {
                let live = lease_until.is_some_and(|u| u > now_secs);
                let theirs = lease_owner
                    .as_deref()
                    .is_some_and(|o| o != owner && !owner_is_dead(o, &owner));
                if live && theirs && !take_over {
                    continue;
                }
            }
            tx.execute(
                "UPDATE records SET status = 'sending', attempts = attempts + 1, \
                 sent_at = ?2, updated_at = ?2, lease_owner = ?3, lease_until = ?4 WHERE id = ?1",
                &[id, &now_text, &owner, &until],
            )
            .map_err(&e)?;
            if status != Status::Sending {
                tx.execute(
                    "INSERT INTO transitions (record, at, from_status, to_status, note) \
                     VALUES (?1, ?2, ?3, 'sending', NULL)",
                    &[id, &now_text, &status.as_str()],
                )
                .map_err(&e)?;
            } else if lease_owner.as_deref().is_some_and(|o| o != owner) {
                tx.execute(
                    "INSERT INTO transitions (record, at, from_status, to_status, note) \
                     VALUES (?1, ?2, 'sending', 'sending', ?3)",
                    &[
                        id,
                        &now_text,
                        &"taken over: the earlier sender's lease ran out",
                    ],
                )
                .map_err(&e)?;
            }
            claimed.push(*id);
        }
        tx.commit().map_err(&e)?;
        Ok(claimed)
    }

    /// Of `ids`, the rows another live sender holds right now: `sending` under a lease that
    /// has not run out, of another process that is not known dead (none after
    /// [`Ledger::take_over_leases`]). Callers leave those rows to their holder: they neither
    /// send nor end them (the holder ends them, or its lease runs out).
    pub fn held_elsewhere(&self, ids: &[i64]) -> Result<HashSet<i64>, LedgerError> {
        let mut out = HashSet::new();
        if self.take_over {
            return Ok(out);
        }
        let now = Utc::now().timestamp();
        let e = self.err();
        for chunk in ids.chunks(CLAIM_CHUNK) {
            let list: Vec<String> = (1..=chunk.len()).map(|i| format!("?{i}")).collect();
            let sql = format!(
                "SELECT id, lease_owner, lease_until FROM records WHERE status = 'sending' \
                 AND lease_owner IS NOT NULL AND id IN ({})",
                list.join(", ")
            );
            let args: Vec<&dyn ToValue> = chunk.iter().map(|i| i as &dyn ToValue).collect();
            for r in self.db.query(&sql, &args).map_err(&e)? {
                let id: i64 = r.get(0).map_err(&e)?;
                let owner: String = r.get(1).map_err(&e)?;
                let until: Option<i64> = r.get(2).map_err(&e)?;
                if until.is_some_and(|u| u > now)
                    && owner != self.owner
                    && !owner_is_dead(&owner, &self.owner)
                {
                    out.insert(id);
                }
            }
        }
        Ok(out)
    }

    /// `rows` without those another live sender holds ([`Ledger::held_elsewhere`]): what a
    /// sender may send or end itself.
    pub fn without_held_elsewhere(
        &self,
        rows: Vec<LedgerRow>,
    ) -> Result<Vec<LedgerRow>, LedgerError> {
        let sending: Vec<i64> = rows
            .iter()
            .filter(|r| r.status == Status::Sending)
            .map(|r| r.id)
            .collect();
        let held = self.held_elsewhere(&sending)?;
        Ok(rows.into_iter().filter(|r| !held.contains(&r.id)).collect())
    }

    /// Records end states, all in one transaction, and lets go of their leases. Rows not in
    /// `pending`/`sending` are left alone (an end state is never overwritten).
    pub fn finish(&mut self, outcomes: &[(i64, Outcome)]) -> Result<(), LedgerError> {
        let path = self.path.clone();
        let e = db_err(&path);
        let now = now_text();
        let lock = match self.engine() {
            Engine::Postgres => " FOR UPDATE",
            Engine::Sqlite => "",
        };
        let get = format!("SELECT status FROM records WHERE id = ?1{lock}");
        let tx = self.begin()?;
        for (id, o) in outcomes {
            if !o.status.is_final() {
                return Err(LedgerError::Corrupt {
                    path: path.clone(),
                    id: *id,
                    message: format!("{} is not an end state", o.status),
                });
            }
            let Some(from) = tx.query_opt(&get, &[id]).map_err(&e)? else {
                continue;
            };
            let from: String = from.get(0).map_err(&e)?;
            if parse_status(&path, *id, &from)?.is_final() {
                continue;
            }
            tx.execute(
                "UPDATE records SET status = ?2, answer = ?3, reason = ?4, \
                 marketplace_record_id = COALESCE(?5, marketplace_record_id), \
                 updated_at = ?6, finished_at = ?6, lease_owner = NULL, lease_until = NULL \
                 WHERE id = ?1",
                &[
                    id,
                    &o.status.as_str(),
                    &o.answer,
                    &o.reason,
                    &o.marketplace_record_id,
                    &now,
                ],
            )
            .map_err(&e)?;
            tx.execute(
                "INSERT INTO transitions (record, at, from_status, to_status, note) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                &[id, &now, &from, &o.status.as_str(), &o.answer],
            )
            .map_err(&e)?;
        }
        tx.commit().map_err(&e)
    }

    /// Puts `failed` rows back in `pending` (for `resume --retry-failed`). Returns how many.
    ///
    /// One live row per dedup key holds here too: a failed row stays failed when a live row
    /// holds its key (another quantity was stored or sent for that hour since), and of
    /// several failed rows of one key only the earliest goes back. A failed row left out of
    /// the index at version 7 (no `dedup_key`) stays failed. On PostgreSQL, a live row that
    /// another agent writes for one of the keys during this statement makes it fail (nothing
    /// changes; run it again).
    pub fn requeue_failed(&mut self) -> Result<usize, LedgerError> {
        let path = self.path.clone();
        let e = db_err(&path);
        let now = now_text();
        let tx = self.begin()?;
        let which = format!(
            "status = 'failed' AND dedup_key IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM records l WHERE l.dedup_key = records.dedup_key \
                 AND l.{LIVE_STATUSES}) \
             AND id = (SELECT MIN(f.id) FROM records f WHERE f.dedup_key = records.dedup_key \
                 AND f.status = 'failed')"
        );
        tx.execute(
            &format!(
                "INSERT INTO transitions (record, at, from_status, to_status, note) \
                 SELECT id, ?1, 'failed', 'pending', 'retry failed' FROM records WHERE {which}"
            ),
            &[&now],
        )
        .map_err(&e)?;
        let n = tx
            .execute(
                &format!(
                    "UPDATE records SET status = 'pending', updated_at = ?1, finished_at = NULL, \
                     lease_owner = NULL, lease_until = NULL WHERE {which}"
                ),
                &[&now],
            )
            .map_err(&e)?;
        tx.commit().map_err(&e)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Rows still to send (`pending` and `sending`), oldest first.
    pub fn unfinished(&self) -> Result<Vec<LedgerRow>, LedgerError> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM records WHERE status IN ('pending', 'sending') ORDER BY id"
            ),
            &[],
        )
    }

    /// Rows by id, in the order given (missing ids are skipped).
    pub fn rows(&self, ids: &[i64]) -> Result<Vec<LedgerRow>, LedgerError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let mut v = self.query(
                &format!("SELECT {COLUMNS} FROM records WHERE id = ?1"),
                &[id],
            )?;
            out.append(&mut v);
        }
        Ok(out)
    }

    /// Rows matching a filter, oldest first.
    pub fn list(&self, f: &Filter) -> Result<Vec<LedgerRow>, LedgerError> {
        let mut sql = format!("SELECT {COLUMNS} FROM records WHERE 1 = 1");
        let mut args: Vec<Value> = Vec::new();
        if let Some(s) = f.status {
            args.push(s.as_str().into());
            sql.push_str(&format!(" AND status = ?{}", args.len()));
        }
        if let Some(m) = f.marketplace {
            args.push(m.as_str().into());
            sql.push_str(&format!(" AND marketplace = ?{}", args.len()));
        }
        if let Some(c) = &f.customer {
            args.push(c.clone().into());
            sql.push_str(&format!(" AND customer = ?{}", args.len()));
        }
        if let Some(t) = f.since {
            args.push(t.timestamp().into());
            sql.push_str(&format!(" AND start_secs >= ?{}", args.len()));
        }
        if let Some(t) = f.until {
            // start_secs is whole seconds; a fractional `until` still excludes its own second
            // only when the record starts at or after it.
            let secs = t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0);
            args.push(secs.into());
            sql.push_str(&format!(" AND start_secs < ?{}", args.len()));
        }
        sql.push_str(" ORDER BY id");
        let refs: Vec<&dyn ToValue> = args.iter().map(|v| v as &dyn ToValue).collect();
        self.query(&sql, &refs)
    }

    /// Dedup history for the core: every row whose key may be billed (`pending`, `sending`,
    /// `accepted`, `duplicate`).
    pub fn history(&self) -> Result<Vec<HistoryEntry>, LedgerError> {
        Ok(self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM records \
                     WHERE {LIVE_STATUSES} ORDER BY id"
                ),
                &[],
            )?
            .iter()
            .map(LedgerRow::history_entry)
            .collect())
    }

    /// Dedup history of one product for usage starting in `[from, to)` (unix seconds): what
    /// the agent judges an hour's sum against without loading the whole ledger.
    pub fn history_between(
        &self,
        marketplace: Marketplace,
        product: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<HistoryEntry>, LedgerError> {
        Ok(self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM records WHERE marketplace = ?1 AND product = ?2 \
                     AND start_secs >= ?3 AND start_secs < ?4 \
                     AND {LIVE_STATUSES} ORDER BY id"
                ),
                &[&marketplace.as_str(), &product, &from, &to],
            )?
            .iter()
            .map(LedgerRow::history_entry)
            .collect())
    }

    /// Rows of one contract still to send (`pending` and `sending`), oldest first.
    pub fn unfinished_of(
        &self,
        marketplace: Marketplace,
        product: &str,
        customer: &str,
    ) -> Result<Vec<LedgerRow>, LedgerError> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM records WHERE status IN ('pending', 'sending') \
                 AND marketplace = ?1 AND product = ?2 AND customer = ?3 ORDER BY id"
            ),
            &[&marketplace.as_str(), &product, &customer],
        )
    }

    /// True when the ledger holds usage that counts (pending, sending, accepted or duplicate)
    /// for this key within the hour that starts at `hour`.
    pub fn has_usage_in_hour(
        &self,
        marketplace: Marketplace,
        product: &str,
        customer: &str,
        dimension: &str,
        hour: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let start = hour_floor(hour).timestamp();
        let row = self
            .db
            .query_opt(
                "SELECT EXISTS (SELECT 1 FROM records WHERE marketplace = ?1 AND product = ?2 \
                 AND customer = ?3 AND dimension = ?4 AND start_secs >= ?5 AND start_secs < ?6 \
                 AND status IN ('pending', 'sending', 'accepted', 'duplicate'))",
                &[
                    &marketplace.as_str(),
                    &product,
                    &customer,
                    &dimension,
                    &start,
                    &(start + 3600),
                ],
            )
            .map_err(self.err())?;
        Ok(match row {
            Some(r) => r.get::<bool>(0).map_err(self.err())?,
            None => false,
        })
    }

    /// Row counts per state.
    pub fn counts(&self) -> Result<Vec<(Status, u64)>, LedgerError> {
        let rows = self
            .db
            .query("SELECT status, COUNT(*) FROM records GROUP BY status", &[])
            .map_err(self.err())?;
        let mut out: Vec<(Status, u64)> = Status::ALL.iter().map(|s| (*s, 0)).collect();
        for row in rows {
            let s: String = row.get(0).map_err(self.err())?;
            let n: i64 = row.get(1).map_err(self.err())?;
            let s = parse_status(&self.path, 0, &s)?;
            if let Some(slot) = out.iter_mut().find(|(x, _)| *x == s) {
                slot.1 = n.max(0) as u64;
            }
        }
        Ok(out)
    }

    /// The transitions of one row: `(at, from, to, note)`, oldest first.
    pub fn transitions(&self, id: i64) -> Result<Vec<Transition>, LedgerError> {
        let order = match self.engine() {
            Engine::Sqlite => "rowid",
            Engine::Postgres => "id",
        };
        let rows = self
            .db
            .query(
                &format!(
                    "SELECT at, from_status, to_status, note FROM transitions WHERE record = ?1 \
                     ORDER BY {order}"
                ),
                &[&id],
            )
            .map_err(self.err())?;
        rows.iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .collect::<Result<Vec<_>, DbError>>()
            .map_err(self.err())
    }

    fn query(&self, sql: &str, args: &[&dyn ToValue]) -> Result<Vec<LedgerRow>, LedgerError> {
        query_rows(&self.db, &self.path, sql, args)
    }
}

/// Reads ledger rows (`SELECT {COLUMNS} ...`) on any connection.
pub(crate) fn query_rows<E: Exec + ?Sized>(
    ex: &E,
    path: &str,
    sql: &str,
    args: &[&dyn ToValue],
) -> Result<Vec<LedgerRow>, LedgerError> {
    let e = db_err(path);
    let rows = ex.query(sql, args).map_err(&e)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let raw = RawRow::from_row(&r).map_err(&e)?;
        out.push(raw.into_row(path)?);
    }
    Ok(out)
}

/// Claims at most this many rows per `SELECT ... IN (...)`.
const CLAIM_CHUNK: usize = 100;

/// The key of PostgreSQL's advisory lock held while migrating (`metergat` in ASCII).
const PG_MIGRATION_LOCK: i64 = 0x6d65_7465_7267_6174;

/// An error and its causes, `a: b: c` (the driver's "error connecting to server" says why only
/// in its source).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// `message` with the URL's password (if any) replaced, in case a driver message quotes it.
fn redact(message: &str, url: &str) -> String {
    let masked = mask_location(url);
    let mut out = message.replace(url, &masked);
    if let Some(pw) = password_of(url).filter(|p| p.len() >= 3) {
        out = out.replace(&pw, "***");
    }
    out
}

/// The password part of a PostgreSQL URL, if any.
fn password_of(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let before_query = rest.split('?').next().unwrap_or(rest);
    let userinfo = &before_query[..before_query.rfind('@')?];
    userinfo.split_once(':').map(|(_, p)| p.to_owned())
}

/// Writes records as `pending` inside the caller's transaction (any engine, or a raw SQLite
/// transaction); see [`Ledger::enqueue`].
///
/// Insert-first on the dedup key: the insert is `ON CONFLICT DO NOTHING` (any unique key: the
/// idempotency key, or the live row of the dedup key), and a row it did not write is looked
/// up afterwards. A re-queue sets the row back to `pending` only when no other live row holds
/// its dedup key (on PostgreSQL under a savepoint, so that a row another agent's transaction
/// writes at that moment turns it into [`Enqueued::Conflict`], not an error).
pub(crate) fn enqueue_in<E: Exec + ?Sized>(
    tx: &E,
    path: &str,
    rows: &[NewRow],
) -> Result<Vec<Enqueued>, LedgerError> {
    let now = now_text();
    rows.iter()
        .map(|row| enqueue_one(tx, path, row, &now))
        .collect()
}

/// How many times [`enqueue_one`] tries a row whose conflicting row vanished before it could
/// be read (another sender ended it right then).
const ENQUEUE_TRIES: usize = 3;

fn enqueue_one<E: Exec + ?Sized>(
    tx: &E,
    path: &str,
    row: &NewRow,
    now: &str,
) -> Result<Enqueued, LedgerError> {
    let e = db_err(path);
    let r = &row.record;
    let key = idempotency_key(r);
    let dkey = dedup_key(r);
    let wire = row.wire.to_string();
    for _ in 0..ENQUEUE_TRIES {
        let existing = tx
            .query_opt(
                "SELECT id, status FROM records WHERE idem_key = ?1",
                &[&key],
            )
            .map_err(&e)?;
        if let Some(x) = existing {
            let id: i64 = x.get(0).map_err(&e)?;
            let status: String = x.get(1).map_err(&e)?;
            let status = parse_status(path, id, &status)?;
            if !matches!(status, Status::Rejected | Status::Failed | Status::Expired) {
                return Ok(Enqueued::Existing(id, status));
            }
            if requeue(tx, path, id, &dkey, &wire, row, now)? {
                tx.execute(
                    "INSERT INTO transitions (record, at, from_status, to_status, note) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    &[&id, &now, &status.as_str(), &"pending", &"submitted again"],
                )
                .map_err(&e)?;
                return Ok(Enqueued::Requeued(id));
            }
            match live_row_id(tx, path, &dkey)? {
                Some(live) => return Ok(Enqueued::Conflict(live)),
                None => continue,
            }
        }
        let inserted = tx
            .query_opt(
                "INSERT INTO records (idem_key, marketplace, product, customer, dimension, \
                 start_time, start_secs, end_time, quantity, record_id, source, wire, status, \
                 created_at, updated_at, dedup_key) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'pending', ?13, ?13, ?14) \
                 ON CONFLICT DO NOTHING RETURNING id",
                &[
                    &key,
                    &r.marketplace.as_str(),
                    &r.product,
                    &r.customer,
                    &r.dimension,
                    &format_rfc3339(r.start_time),
                    &r.start_time.timestamp(),
                    &r.end_time.map(format_rfc3339),
                    &r.quantity.normalize().to_string(),
                    &r.record_id,
                    &row.source,
                    &wire,
                    &now,
                    &dkey,
                ],
            )
            .map_err(&e)?;
        if let Some(x) = inserted {
            let id: i64 = x.get(0).map_err(&e)?;
            tx.execute(
                "INSERT INTO transitions (record, at, from_status, to_status, note) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                &[&id, &now, &None::<String>, &"pending", &"written"],
            )
            .map_err(&e)?;
            return Ok(Enqueued::New(id));
        }
        // Not written: the same idempotency key was written meanwhile (the next round finds
        // it), or another live row holds the dedup key.
        let taken = tx
            .query_opt("SELECT 1 FROM records WHERE idem_key = ?1", &[&key])
            .map_err(&e)?
            .is_some();
        if taken {
            continue;
        }
        if let Some(live) = live_row_id(tx, path, &dkey)? {
            return Ok(Enqueued::Conflict(live));
        }
    }
    Err(LedgerError::Contended {
        path: path.to_owned(),
        key: dkey,
    })
}

/// Puts an ended row back in `pending` with new wire values, unless another live row holds
/// its dedup key. True when it did.
fn requeue<E: Exec + ?Sized>(
    tx: &E,
    path: &str,
    id: i64,
    dkey: &str,
    wire: &str,
    row: &NewRow,
    now: &str,
) -> Result<bool, LedgerError> {
    let e = db_err(path);
    let pg = tx.engine() == Engine::Postgres;
    if pg {
        tx.batch("SAVEPOINT mg_requeue").map_err(&e)?;
    }
    let n = tx.execute(
        &format!(
            "UPDATE records SET status = 'pending', dedup_key = ?6, wire = ?2, source = ?3, \
             record_id = ?4, updated_at = ?5, finished_at = NULL, lease_owner = NULL, \
             lease_until = NULL WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM records l \
             WHERE l.dedup_key = ?6 AND l.{LIVE_STATUSES} AND l.id <> ?1)"
        ),
        &[&id, &wire, &row.source, &row.record.record_id, &now, &dkey],
    );
    match n {
        Ok(n) => {
            if pg {
                tx.batch("RELEASE SAVEPOINT mg_requeue").map_err(&e)?;
            }
            Ok(n == 1)
        }
        // PostgreSQL: another agent's transaction wrote a live row for the key after this
        // statement's snapshot; it committed, so the key is held.
        Err(err) if pg && err.is_unique_violation() => {
            tx.batch("ROLLBACK TO SAVEPOINT mg_requeue; RELEASE SAVEPOINT mg_requeue")
                .map_err(&e)?;
            Ok(false)
        }
        Err(err) => Err(e(err)),
    }
}

/// One row as dedup history, read in the caller's transaction (the live row an
/// [`Enqueued::Conflict`] names, for the core's finding).
pub(crate) fn history_entry_in<E: Exec + ?Sized>(
    tx: &E,
    path: &str,
    id: i64,
) -> Result<HistoryEntry, LedgerError> {
    query_rows(
        tx,
        path,
        &format!("SELECT {COLUMNS} FROM records WHERE id = ?1"),
        &[&id],
    )?
    .first()
    .map(LedgerRow::history_entry)
    .ok_or_else(|| LedgerError::Corrupt {
        path: path.to_owned(),
        id,
        message: "the live row of a dedup key is gone".into(),
    })
}

/// The live row ([`LIVE_STATUSES`]) that holds a dedup key, if any.
pub(crate) fn live_row_id<E: Exec + ?Sized>(
    tx: &E,
    path: &str,
    dkey: &str,
) -> Result<Option<i64>, LedgerError> {
    let e = db_err(path);
    tx.query_opt(
        &format!("SELECT id FROM records WHERE dedup_key = ?1 AND {LIVE_STATUSES}"),
        &[&dkey],
    )
    .map_err(&e)?
    .map(|r| r.get(0))
    .transpose()
    .map_err(&e)
}

struct RawRow {
    id: i64,
    idem_key: String,
    marketplace: String,
    product: String,
    customer: String,
    dimension: String,
    start_time: String,
    end_time: Option<String>,
    quantity: String,
    record_id: Option<String>,
    source: Option<String>,
    wire: String,
    status: String,
    attempts: i64,
    answer: Option<String>,
    reason: Option<String>,
    marketplace_record_id: Option<String>,
    created_at: String,
    updated_at: String,
    sent_at: Option<String>,
    finished_at: Option<String>,
}

fn parse_status(path: &str, id: i64, s: &str) -> Result<Status, LedgerError> {
    s.parse().map_err(|message| LedgerError::Corrupt {
        path: path.to_owned(),
        id,
        message,
    })
}

impl RawRow {
    fn from_row(r: &db::Row) -> Result<RawRow, DbError> {
        Ok(RawRow {
            id: r.get(0)?,
            idem_key: r.get(1)?,
            marketplace: r.get(2)?,
            product: r.get(3)?,
            customer: r.get(4)?,
            dimension: r.get(5)?,
            start_time: r.get(6)?,
            end_time: r.get(7)?,
            quantity: r.get(8)?,
            record_id: r.get(9)?,
            source: r.get(10)?,
            wire: r.get(11)?,
            status: r.get(12)?,
            attempts: r.get(13)?,
            answer: r.get(14)?,
            reason: r.get(15)?,
            marketplace_record_id: r.get(16)?,
            created_at: r.get(17)?,
            updated_at: r.get(18)?,
            sent_at: r.get(19)?,
            finished_at: r.get(20)?,
        })
    }

    fn into_row(self, path: &str) -> Result<LedgerRow, LedgerError> {
        let id = self.id;
        let bad = |message: String| LedgerError::Corrupt {
            path: path.to_owned(),
            id,
            message,
        };
        let time =
            |s: &str, what: &str| parse_rfc3339(s).map_err(|e| bad(format!("{what} {s:?} {e}")));
        Ok(LedgerRow {
            id,
            marketplace: Marketplace::parse(&self.marketplace)
                .ok_or_else(|| bad(format!("unknown marketplace {:?}", self.marketplace)))?,
            start_time: time(&self.start_time, "start_time")?,
            end_time: self
                .end_time
                .as_deref()
                .map(|s| time(s, "end_time"))
                .transpose()?,
            quantity: Decimal::from_str(&self.quantity)
                .map_err(|e| bad(format!("quantity {:?}: {e}", self.quantity)))?,
            wire: serde_json::from_str(&self.wire).map_err(|e| bad(format!("wire: {e}")))?,
            status: parse_status(path, id, &self.status)?,
            idem_key: self.idem_key,
            product: self.product,
            customer: self.customer,
            dimension: self.dimension,
            record_id: self.record_id,
            source: self.source,
            attempts: self.attempts,
            answer: self.answer,
            reason: self.reason,
            marketplace_record_id: self.marketplace_record_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
            sent_at: self.sent_at,
            finished_at: self.finished_at,
        })
    }
}

/// The dedup history in the ledger at `path`, for `metergate check --ledger PATH`: rows in
/// `pending`, `sending`, `accepted` or `duplicate`. A missing file is an error.
pub fn load_history(path: &Path) -> Result<Vec<HistoryEntry>, LedgerError> {
    Ledger::open_existing(path)?.history()
}

/// The tests' throwaway PostgreSQL cluster (see `pg_fresh` in the tests below).
#[cfg(test)]
#[path = "../../tests/pg_support/mod.rs"]
mod pg_support;

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-4 ledger (before `expired`) keeps every row, transition and intake reference
    /// through the table rebuild, and takes `expired` afterwards.
    #[test]
    fn migration_5_rebuilds_records_keeping_rows_and_references() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v4.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..4] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch(
                "PRAGMA user_version = 4;
                 INSERT INTO records (id, idem_key, marketplace, product, customer, dimension,
                   start_time, start_secs, quantity, wire, status, created_at, updated_at)
                 VALUES (7, 'k', 'aws', 'p', 'c', 'd', '2026-03-01T10:00:00Z', 1772359200, '5',
                   '{}', 'pending', 't', 't');
                 INSERT INTO transitions (record, at, from_status, to_status, note)
                 VALUES (7, 't', NULL, 'pending', 'written');
                 INSERT INTO intake_records (record_id, verdict, row, created_at)
                 VALUES ('r-7', '{}', 7, 't');",
            )
            .unwrap();
            let refused = conn.execute("UPDATE records SET status = 'expired' WHERE id = 7", []);
            assert!(refused.is_err(), "version 4 has no expired state");
        }
        let mut l = Ledger::open(&path).unwrap();
        assert_eq!(l.schema_version().unwrap(), SCHEMA_VERSION);
        let rows = l.unfinished().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].id, 7);
        assert_eq!(l.transitions(7).unwrap().len(), 1);
        let row: i64 = l
            .connection()
            .unwrap()
            .query_row(
                "SELECT row FROM intake_records WHERE record_id = 'r-7'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(row, 7);
        l.finish(&[(
            7,
            Outcome {
                status: Status::Expired,
                answer: Some("metergate".into()),
                reason: Some("deadline".into()),
                marketplace_record_id: None,
            },
        )])
        .unwrap();
        assert_eq!(l.rows(&[7]).unwrap()[0].status, Status::Expired);
        assert_eq!(l.transitions(7).unwrap().len(), 2);
        // Foreign keys are on again: a transition of a missing row is refused.
        let bad = l.connection().unwrap().execute(
            "INSERT INTO transitions (record, at, to_status) VALUES (999, 't', 'pending')",
            [],
        );
        assert!(bad.is_err());
        // The indices came back.
        let n: i64 = l
            .connection()
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'records' \
                 AND name IN ('records_status', 'records_hour', 'records_source')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 3);
        drop(l);
        // Opening again changes nothing.
        let l = Ledger::open(&path).unwrap();
        assert_eq!(l.rows(&[7]).unwrap()[0].status, Status::Expired);
    }

    /// Rows of a ledger at version 6 (written with plain SQL, as an older metergate left
    /// them): the key `c|10:00` twice live (two senders judged it apart), once rejected, and
    /// another key once.
    const V6_ROWS: &str = "
        INSERT INTO records (idem_key, marketplace, product, customer, dimension, start_time,
          start_secs, quantity, wire, status, created_at, updated_at) VALUES
        ('k5', 'aws', 'p', 'c', 'd', '2026-03-01T10:05:00Z', 1772359500, '5', '{}', 'accepted', 't', 't'),
        ('k6', 'aws', 'p', 'c', 'd', '2026-03-01T10:40:00Z', 1772361600, '6', '{}', 'pending', 't', 't'),
        ('k7', 'aws', 'p', 'c', 'd', '2026-03-01T10:50:00Z', 1772362200, '7', '{}', 'rejected', 't', 't'),
        ('k8', 'aws', 'p', 'c', 'd', '2026-03-01T11:05:00Z', 1772363100, '8', '{}', 'pending', 't', 't');";

    /// What version 7 made of [`V6_ROWS`] (ids 1 to 4): the earliest live row holds the key,
    /// the second keeps its state outside the index with a transition saying so, nothing is
    /// deleted, and a new record of the key is refused.
    fn check_v7(l: &mut Ledger) {
        assert_eq!(l.schema_version().unwrap(), SCHEMA_VERSION);
        let keys: Vec<(i64, Option<String>, String)> =
            l.db.query("SELECT id, dedup_key, status FROM records ORDER BY id", &[])
                .unwrap()
                .iter()
                .map(|r| (r.get(0).unwrap(), r.get(1).unwrap(), r.get(2).unwrap()))
                .collect();
        let hour = Some("aws|p|c|d|2026-03-01T10:00:00Z".to_owned());
        assert_eq!(
            keys,
            [
                (1, hour.clone(), "accepted".to_owned()),
                (2, None, "pending".to_owned()),
                (3, hour, "rejected".to_owned()),
                (
                    4,
                    Some("aws|p|c|d|2026-03-01T11:00:00Z".to_owned()),
                    "pending".to_owned()
                ),
            ]
        );
        let t = l.transitions(2).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].1.as_deref(), t[0].2.as_str()),
            (Some("pending"), "pending")
        );
        assert_eq!(t[0].3.as_deref(), Some(SECOND_LIVE_NOTE));
        assert!(l.transitions(1).unwrap().is_empty());
        let mut rec = l.rows(&[1]).unwrap()[0].usage_record();
        rec.quantity = Decimal::from(9);
        let row = NewRow {
            record: rec,
            source: None,
            wire: serde_json::json!({}),
        };
        assert_eq!(l.enqueue(&[row]).unwrap(), [Enqueued::Conflict(1)]);
        // The rejected row of the key submitted again: the key is held, it stays rejected.
        let mut again = l.rows(&[3]).unwrap()[0].usage_record();
        again.record_id = None;
        let again = NewRow {
            record: again,
            source: None,
            wire: serde_json::json!({}),
        };
        assert_eq!(l.enqueue(&[again]).unwrap(), [Enqueued::Conflict(1)]);
        assert_eq!(l.rows(&[3]).unwrap()[0].status, Status::Rejected);
        assert_eq!(l.history().unwrap().len(), 3, "both live rows stay history");
    }

    #[test]
    fn sqlite_migration_7_keeps_second_live_rows_out_of_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v6.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..6] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch("PRAGMA user_version = 6;").unwrap();
            conn.execute_batch(V6_ROWS).unwrap();
        }
        check_v7(&mut Ledger::open(&path).unwrap());
        // Opening again changes nothing.
        let l = Ledger::open(&path).unwrap();
        assert_eq!(l.transitions(2).unwrap().len(), 1);
    }

    #[test]
    fn postgres_migration_7_keeps_second_live_rows_out_of_the_index() {
        let Some(url) = pg_fresh() else { return };
        {
            let db = Db::open(&url).unwrap();
            db.batch(PG_MIGRATIONS[0].1).unwrap();
            db.batch(
                "CREATE TABLE schema_version (version BIGINT NOT NULL); \
                 INSERT INTO schema_version (version) VALUES (6);",
            )
            .unwrap();
            db.batch(V6_ROWS).unwrap();
        }
        check_v7(&mut Ledger::open_location(&url).unwrap());
        let l = Ledger::open_location(&url).unwrap();
        assert_eq!(l.transitions(2).unwrap().len(), 1);
    }

    /// The index's statuses are the history's: [`Status::counts_as_sent`].
    #[test]
    fn the_live_statuses_are_the_history_statuses() {
        let listed: Vec<Status> = Status::ALL
            .into_iter()
            .filter(|s| LIVE_STATUSES.contains(&format!("'{}'", s.as_str())))
            .collect();
        let counted: Vec<Status> = Status::ALL
            .into_iter()
            .filter(|s| s.counts_as_sent())
            .collect();
        assert_eq!(listed, counted);
        assert!(live_dedup_index().ends_with(&format!("WHERE {LIVE_STATUSES}")));
    }

    fn new_row(customer: &str, hours_ago: i64) -> NewRow {
        let t = hour_floor(Utc::now()) - chrono::Duration::hours(hours_ago);
        let record = UsageRecord {
            marketplace: Marketplace::Aws,
            product: "prod-a".into(),
            customer: customer.into(),
            dimension: "api_calls".into(),
            quantity: Decimal::from(5),
            start_time: t,
            end_time: None,
            record_id: None,
            plan: None,
            allocations: None,
            attributes: Default::default(),
        };
        NewRow {
            record,
            source: None,
            wire: serde_json::json!({"q": 5}),
        }
    }

    fn ids(e: &[Enqueued]) -> Vec<i64> {
        e.iter()
            .map(|x| match x {
                Enqueued::New(id)
                | Enqueued::Requeued(id)
                | Enqueued::Existing(id, _)
                | Enqueued::Conflict(id) => *id,
            })
            .collect()
    }

    /// Leases on any engine: `open` opens the same ledger again (another agent).
    fn leases(open: &dyn Fn() -> Ledger) {
        let mut a = open();
        let mut b = open();
        // Another machine: its leases are never judged dead from here.
        b.owner = "elsewhere:-:1:b".into();
        let rows = ids(&a.enqueue(&[new_row("c-1", 2), new_row("c-2", 2)]).unwrap());
        let (x, y) = (rows[0], rows[1]);
        assert_eq!(a.claim(&[x, y]).unwrap(), [x, y]);
        // b finds both held by a live lease.
        assert!(b.claim(&[x, y]).unwrap().is_empty());
        // a may claim again (a retry), counting the attempt.
        assert_eq!(a.claim(&[x]).unwrap(), [x]);
        assert_eq!(a.rows(&[x]).unwrap()[0].attempts, 2);
        // A lease that ran out is taken over, and the take-over is logged.
        a.set_lease(Duration::ZERO);
        assert_eq!(a.claim(&[y]).unwrap(), [y]);
        assert_eq!(b.claim(&[y, x]).unwrap(), [y]);
        let t = a.transitions(y).unwrap();
        assert_eq!(t.len(), 3, "{t:?}");
        assert_eq!(t[2].1.as_deref(), Some("sending"));
        assert_eq!(t[2].2, "sending");
        // Now y is b's: a leaves it alone.
        a.set_lease(DEFAULT_LEASE);
        assert!(a.claim(&[y]).unwrap().is_empty());
        assert_eq!(a.held_elsewhere(&[x, y]).unwrap(), HashSet::from([y]));
        assert_eq!(b.held_elsewhere(&[x, y]).unwrap(), HashSet::from([x]));
        // resume takes over whatever the lease.
        let mut r = open();
        r.owner = "elsewhere:-:2:r".into();
        r.take_over_leases();
        assert_eq!(r.claim(&[y]).unwrap(), [y]);
        // An ended row is never claimed, and finishing lets go of the lease.
        b.finish(&[(
            x,
            Outcome {
                status: Status::Accepted,
                answer: Some("Success".into()),
                reason: None,
                marketplace_record_id: None,
            },
        )])
        .unwrap();
        assert!(a.claim(&[x]).unwrap().is_empty());
        let lease =
            a.db.query_opt(
                "SELECT lease_owner, lease_until FROM records WHERE id = ?1",
                &[&x],
            )
            .unwrap()
            .unwrap();
        assert_eq!(lease.values(), [Value::Null, Value::Null]);
        // Missing ids are left out.
        assert!(a.claim(&[999_999]).unwrap().is_empty());
    }

    /// Two agents claiming the same rows at once never both get one.
    fn concurrent_claims(open: &(dyn Fn() -> Ledger + Sync)) {
        let mut l = open();
        let rows: Vec<NewRow> = (0..60).map(|i| new_row(&format!("k-{i}"), 3)).collect();
        let all = ids(&l.enqueue(&rows).unwrap());
        let got: Vec<Vec<i64>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..3)
                .map(|n| {
                    let all = all.clone();
                    s.spawn(move || {
                        let mut l = open();
                        l.owner = format!("elsewhere-{n}:-:1:x");
                        let mut mine = Vec::new();
                        for chunk in all.chunks(7) {
                            mine.extend(l.claim(chunk).unwrap());
                        }
                        mine
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut seen: Vec<i64> = got.concat();
        let n = seen.len();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), n, "a row was claimed twice: {got:?}");
        assert_eq!(seen, all, "every row was claimed by someone");
    }

    /// The state machine's other steps on any engine: requeue, re-enqueue, lists, counts,
    /// observe queries.
    fn round_trip(l: &mut Ledger) {
        let rows = ids(&l
            .enqueue(&[new_row("c-1", 5), new_row("c-1", 4), new_row("c-2", 3)])
            .unwrap());
        let failed = Outcome {
            status: Status::Failed,
            answer: Some("ThrottlingException".into()),
            reason: Some("no answer".into()),
            marketplace_record_id: None,
        };
        assert_eq!(l.claim(&rows).unwrap(), rows);
        l.finish(&[(rows[0], failed.clone())]).unwrap();
        assert_eq!(l.requeue_failed().unwrap(), 1);
        assert_eq!(l.rows(&[rows[0]]).unwrap()[0].status, Status::Pending);
        l.finish(&[(rows[1], failed.clone())]).unwrap();
        // Submitting a failed row again re-queues it.
        assert_eq!(
            l.enqueue(&[new_row("c-1", 4)]).unwrap(),
            [Enqueued::Requeued(rows[1])]
        );
        assert_eq!(l.transitions(rows[1]).unwrap().len(), 4);
        let c = l.counts().unwrap();
        assert!(c.contains(&(Status::Pending, 2)) && c.contains(&(Status::Sending, 1)));
        let f = Filter {
            customer: Some("c-1".into()),
            ..Filter::default()
        };
        assert_eq!(l.list(&f).unwrap().len(), 2);
        assert_eq!(l.history().unwrap().len(), 3);
        assert!(l
            .has_usage_in_hour(
                Marketplace::Aws,
                "prod-a",
                "c-2",
                "api_calls",
                hour_floor(Utc::now()) - chrono::Duration::hours(3)
            )
            .unwrap());
        let first = l.earliest_unfinished_per_contract().unwrap();
        let got: Vec<(String, i64)> = first.iter().map(|r| (r.customer.clone(), r.id)).collect();
        assert_eq!(
            got,
            [("c-1".to_owned(), rows[0]), ("c-2".to_owned(), rows[2])]
        );
        assert_eq!(l.unfinished_by_marketplace().unwrap()[0].1, 3);
        assert_eq!(l.last_usage_per_contract().unwrap().len(), 2);
        let q = observe::RowQuery {
            q: Some("C-1".into()),
            ..observe::RowQuery::default()
        };
        let (total, page) = l.status_rows(&q, 1, 0).unwrap();
        assert_eq!((total, page.len()), (2, 1), "search ignores ASCII case");
        let (groups, totals, more) = l.status_groups(&observe::RowQuery::default(), 1).unwrap();
        assert_eq!((groups.len(), more), (1, true));
        assert_eq!(totals.pending, 3);
    }

    #[test]
    fn sqlite_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        round_trip(&mut Ledger::open(&dir.path().join("l.sqlite")).unwrap());
    }

    #[test]
    fn postgres_round_trip() {
        let Some(url) = pg_fresh() else { return };
        round_trip(&mut Ledger::open_location(&url).unwrap());
    }

    #[test]
    fn sqlite_claims_take_leases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        leases(&|| Ledger::open(&path).unwrap());
        let path2 = dir.path().join("c.sqlite");
        concurrent_claims(&|| Ledger::open(&path2).unwrap());
    }

    /// A fresh database on the server `METERGATE_TEST_PG_URL` names, else on the tests'
    /// throwaway cluster (`cli/tests/pg_support`: `None` with a note when PostgreSQL is not
    /// installed, a failure with CI=true).
    fn pg_fresh() -> Option<String> {
        let Ok(base) = std::env::var("METERGATE_TEST_PG_URL") else {
            return super::pg_support::fresh_database();
        };
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let name = format!(
            "mg_unit_{}_{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let admin = Db::open(&base).unwrap();
        admin
            .batch(&format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
        admin.batch(&format!("CREATE DATABASE {name}")).unwrap();
        let (head, query) = match base.split_once('?') {
            Some((h, q)) => (h.to_owned(), format!("?{q}")),
            None => (base.clone(), String::new()),
        };
        let scheme_end = head.find("://").unwrap() + 3;
        let server = match head[scheme_end..].find('/') {
            Some(i) => &head[..scheme_end + i],
            None => head.as_str(),
        };
        Some(format!("{server}/{name}{query}"))
    }

    #[test]
    fn postgres_claims_take_leases_and_skip_locked_rows() {
        let Some(url) = pg_fresh() else { return };
        leases(&|| Ledger::open_location(&url).unwrap());
        let Some(url2) = pg_fresh() else { return };
        concurrent_claims(&|| Ledger::open_location(&url2).unwrap());
    }

    #[test]
    fn postgres_schema_is_versioned_like_sqlite() {
        let Some(url) = pg_fresh() else { return };
        let l = Ledger::open_location(&url).unwrap();
        assert_eq!(l.engine(), Engine::Postgres);
        assert_eq!(l.schema_version().unwrap(), SCHEMA_VERSION);
        drop(l);
        // Several agents opening at once migrate once.
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| Ledger::open_location(&url).unwrap());
            }
        });
        let l = Ledger::open_location(&url).unwrap();
        let n: i64 =
            l.db.query_opt("SELECT COUNT(*) FROM schema_version", &[])
                .unwrap()
                .unwrap()
                .get(0)
                .unwrap();
        assert_eq!(n, 1);
        // A newer schema is refused.
        l.db.execute("UPDATE schema_version SET version = ?1", &[&99i64])
            .unwrap();
        drop(l);
        assert!(matches!(
            Ledger::open_location(&url),
            Err(LedgerError::TooNew { found: 99, .. })
        ));
    }

    #[test]
    fn dead_owners_on_this_machine_are_recognised() {
        let me = process_owner();
        assert!(!owner_is_dead(&me, &me));
        let (host, boot) = machine();
        let mine = |pid: &str, suffix: &str| format!("{host}:{boot}:{pid}:{suffix}");
        // This pid with another suffix: an earlier process.
        assert!(owner_is_dead(
            &mine(&std::process::id().to_string(), "zzzzzzzz"),
            &me
        ));
        if Path::new("/proc/self").exists() {
            assert!(owner_is_dead(&mine("999999999", "x"), &me));
            assert!(!owner_is_dead(&mine("1", "x"), &me), "pid 1 runs");
        }
        assert!(!owner_is_dead("elsewhere:-:1:x", &me));
        assert!(!owner_is_dead("garbage", &me));
    }

    #[test]
    fn unreachable_postgres_is_its_own_error_and_hides_the_password() {
        let e = Ledger::open_location("postgres://me:hunter22@127.0.0.1:1/db?connect_timeout=2")
            .err()
            .unwrap();
        assert!(matches!(e, LedgerError::Unreachable { .. }), "{e:?}");
        let text = e.to_string();
        assert!(!text.contains("hunter22"), "{text}");
        assert!(text.contains("postgres://me:***@127.0.0.1:1/db"), "{text}");
    }
}
