//! The contract store: the current contracts and every change to them, in the ledger (its
//! SQLite file or its PostgreSQL database).
//!
//! Two tables (schema version 2 of [`crate::ledger`]):
//!
//! * `contracts`: one row per marketplace + product + customer, holding the contract as its
//!   serde JSON (exactly what a contracts file holds, so the store follows the core's
//!   [`Contract`] as it grows), its `marketplace_id` (for matching events) and `state_at`: the
//!   marketplace's own time of the last event or sync that changed it. An event older than
//!   `state_at` changes nothing.
//! * `contract_history`: every change and every event, with its cause (`sync`, `import` or
//!   `event`), when it was recorded, the previous and new contract (JSON; `NULL` for none),
//!   whether it was applied, the event's key and time, and a detail naming the source (a file,
//!   an event type, an API). A replayed event is found here by its key.
//!
//! Every write is one transaction: a failed call, a bad event or a bad file changes nothing.
//! No secret is ever written here.

use std::path::Path;

use chrono::{DateTime, Utc};
use metergate_core::time::{format_rfc3339, parse_rfc3339};
use metergate_core::{Contract, ContractSet, Marketplace};
use serde::Serialize;

use crate::ledger::db::{DbError, Engine, Exec};
use crate::ledger::{db_err, Ledger, LedgerError};

/// What caused a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cause {
    /// `metergate contracts sync`.
    Sync,
    /// `metergate contracts import`.
    Import,
    /// `metergate contracts event`.
    Event,
}

impl Cause {
    /// The name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Sync => "sync",
            Cause::Import => "import",
            Cause::Event => "event",
        }
    }
}

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The ledger file could not be opened or migrated.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// SQLite failed.
    #[error("ledger {path}: contract store: {source}")]
    Sqlite {
        /// The ledger file.
        path: String,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored contract cannot be read by this build.
    #[error("ledger {path}: contract store: {key}: {message}")]
    Corrupt {
        /// The ledger file.
        path: String,
        /// `marketplace/product/customer`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The change would leave the store with contracts the core refuses.
    #[error("{0}")]
    Invalid(String),
}

/// One stored contract.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    /// The contract.
    pub contract: Contract,
    /// The marketplace time of the last change that an event or a sync applied.
    pub state_at: Option<DateTime<Utc>>,
    /// When the row last changed (wall clock).
    pub updated_at: String,
}

/// One change to write: the new contract (or the same one, for an event recorded but not
/// applied), with what the history row says about it.
#[derive(Clone, Debug)]
pub struct Write {
    /// The contract as it should be stored.
    pub contract: Contract,
    /// The contract before, as stored (`None` when new).
    pub previous: Option<Contract>,
    /// False when the change is only recorded (an older event, an event with no effect).
    pub applied: bool,
    /// The new `state_at` (kept when `None`).
    pub state_at: Option<DateTime<Utc>>,
    /// The event's key (replays are found by it).
    pub event_key: Option<String>,
    /// The event's own time.
    pub event_time: Option<DateTime<Utc>>,
    /// The source: a file, an event type, an API.
    pub detail: String,
}

/// One history row.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryRow {
    /// Row id.
    pub id: i64,
    /// When it was recorded (wall clock).
    pub at: String,
    /// What caused it.
    pub cause: String,
    /// Marketplace.
    pub marketplace: String,
    /// Product.
    pub product: String,
    /// Customer key.
    pub customer: String,
    /// The contract before (JSON).
    pub previous: Option<serde_json::Value>,
    /// The contract after (JSON).
    pub new: Option<serde_json::Value>,
    /// Whether it changed the store.
    pub applied: bool,
    /// The event's key.
    pub event_key: Option<String>,
    /// The event's time.
    pub event_time: Option<String>,
    /// The source.
    pub detail: Option<String>,
}

/// The contract store of one ledger file.
pub struct Store {
    ledger: Ledger,
}

fn key_of(c: &Contract) -> String {
    format!("{}/{}/{}", c.marketplace, c.product, c.customer)
}

/// A contract's JSON, the form it is stored and compared in.
pub fn to_json(c: &Contract) -> String {
    serde_json::to_string(c).unwrap_or_default()
}

impl Store {
    /// Opens (creating when missing) the ledger at `path` and its contract store.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            ledger: Ledger::open(path)?,
        })
    }

    /// Opens an existing ledger; a missing file is an error.
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            ledger: Ledger::open_existing(path)?,
        })
    }

    /// The ledger file.
    pub fn path(&self) -> String {
        self.ledger.path().to_owned()
    }

    /// Every stored contract, in the order they were first stored.
    pub fn all(&mut self) -> Result<Vec<Stored>, StoreError> {
        let path = self.path();
        let e = store_err(&path);
        let order = match self.ledger.engine() {
            Engine::Sqlite => "rowid",
            Engine::Postgres => "seq",
        };
        let rows = self
            .ledger
            .db()
            .query(
                &format!(
                    "SELECT marketplace, product, customer, contract, state_at, updated_at \
                     FROM contracts ORDER BY {order}"
                ),
                &[],
            )
            .map_err(&e)?;
        let mut out = Vec::new();
        for r in rows {
            let read = || -> Result<(String, String, Option<String>, String), DbError> {
                Ok((
                    format!(
                        "{}/{}/{}",
                        r.get::<String>(0)?,
                        r.get::<String>(1)?,
                        r.get::<String>(2)?
                    ),
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            };
            let (key, json, state_at, updated_at) = read().map_err(&e)?;
            let bad = |message: String| StoreError::Corrupt {
                path: path.clone(),
                key: key.clone(),
                message,
            };
            let contract: Contract =
                serde_json::from_str(&json).map_err(|x| bad(format!("contract: {x}")))?;
            let state_at = state_at
                .map(|s| parse_rfc3339(&s).map_err(|x| bad(format!("state_at {s:?} {x}"))))
                .transpose()?;
            out.push(Stored {
                contract,
                state_at,
                updated_at,
            });
        }
        Ok(out)
    }

    /// The stored contracts as a checked set (the one `check` and `submit` judge with).
    pub fn contract_set(&mut self) -> Result<ContractSet, StoreError> {
        let all = self.all()?.into_iter().map(|s| s.contract).collect();
        ContractSet::new(all).map_err(|e| {
            StoreError::Invalid(format!(
                "ledger {}: the contract store holds contracts the core refuses: {e}",
                self.ledger.path()
            ))
        })
    }

    /// True when an event with this key is already in the history.
    pub fn has_event(&mut self, key: &str) -> Result<bool, StoreError> {
        let path = self.path();
        let e = store_err(&path);
        Ok(self
            .ledger
            .db()
            .query_opt(
                "SELECT EXISTS (SELECT 1 FROM contract_history WHERE event_key = ?1)",
                &[&key],
            )
            .map_err(&e)?
            .map(|r| r.get::<bool>(0))
            .transpose()
            .map_err(&e)?
            .unwrap_or(false))
    }

    /// Writes changes, all in one transaction, after checking that the store they leave is
    /// one the core accepts. Returns how many rows changed.
    pub fn write(&mut self, cause: Cause, writes: &[Write]) -> Result<usize, StoreError> {
        // The whole store after the change must pass the core's checks.
        let mut after: Vec<Contract> = self.all()?.into_iter().map(|s| s.contract).collect();
        let mut index: std::collections::HashMap<String, usize> = after
            .iter()
            .enumerate()
            .map(|(i, c)| (key_of(c), i))
            .collect();
        for w in writes.iter().filter(|w| w.applied) {
            let k = key_of(&w.contract);
            match index.get(&k) {
                Some(i) => {
                    if let Some(slot) = after.get_mut(*i) {
                        *slot = w.contract.clone();
                    }
                }
                None => {
                    index.insert(k, after.len());
                    after.push(w.contract.clone());
                }
            }
        }
        ContractSet::new(after)
            .map_err(|e| StoreError::Invalid(format!("the change is refused: {e}")))?;

        let path = self.path();
        let e = store_err(&path);
        let now = format_rfc3339(Utc::now());
        let tx = self.ledger.begin()?;
        let mut changed = 0;
        for w in writes {
            let c = &w.contract;
            let new_json = to_json(c);
            let current: Option<String> = tx
                .query_opt(
                    "SELECT contract FROM contracts WHERE marketplace = ?1 AND product = ?2 \
                     AND customer = ?3",
                    &[&c.marketplace.as_str(), &c.product, &c.customer],
                )
                .map_err(&e)?
                .map(|r| r.get(0))
                .transpose()
                .map_err(&e)?;
            if w.applied && current.as_deref() != Some(new_json.as_str()) {
                let marketplace_id = c.marketplace_id.as_deref().or(match c.marketplace {
                    Marketplace::Azure => c.resource_id.as_deref(),
                    _ => None,
                });
                tx.execute(
                    "INSERT INTO contracts (marketplace, product, customer, marketplace_id, \
                     status, contract, state_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                     ON CONFLICT (marketplace, product, customer) DO UPDATE SET \
                     marketplace_id = excluded.marketplace_id, status = excluded.status, \
                     contract = excluded.contract, \
                     state_at = COALESCE(excluded.state_at, contracts.state_at), \
                     updated_at = excluded.updated_at",
                    &[
                        &c.marketplace.as_str(),
                        &c.product,
                        &c.customer,
                        &marketplace_id,
                        &c.status.as_str(),
                        &new_json,
                        &w.state_at.map(format_rfc3339),
                        &now,
                    ],
                )
                .map_err(&e)?;
                changed += 1;
            } else if w.applied {
                if let Some(t) = w.state_at {
                    tx.execute(
                        "UPDATE contracts SET state_at = ?4 WHERE marketplace = ?1 AND \
                         product = ?2 AND customer = ?3",
                        &[
                            &c.marketplace.as_str(),
                            &c.product,
                            &c.customer,
                            &format_rfc3339(t),
                        ],
                    )
                    .map_err(&e)?;
                }
            }
            let effective = w.applied && current.as_deref() != Some(new_json.as_str());
            if effective || w.event_key.is_some() {
                tx.execute(
                    "INSERT INTO contract_history (at, cause, marketplace, product, customer, \
                     previous, new, applied, event_key, event_time, detail) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    &[
                        &now,
                        &cause.as_str(),
                        &c.marketplace.as_str(),
                        &c.product,
                        &c.customer,
                        &w.previous.as_ref().map(to_json),
                        &effective.then(|| new_json.clone()),
                        &effective,
                        &w.event_key,
                        &w.event_time.map(format_rfc3339),
                        &w.detail,
                    ],
                )
                .map_err(&e)?;
            }
        }
        tx.commit().map_err(&e)?;
        Ok(changed)
    }

    /// History rows, oldest first, optionally of one customer.
    pub fn history(&mut self, customer: Option<&str>) -> Result<Vec<HistoryRow>, StoreError> {
        let path = self.path();
        let e = store_err(&path);
        let rows = self
            .ledger
            .db()
            .query(
                "SELECT id, at, cause, marketplace, product, customer, previous, new, applied, \
                 event_key, event_time, detail FROM contract_history \
                 WHERE CAST(?1 AS TEXT) IS NULL OR customer = ?1 ORDER BY id",
                &[&customer],
            )
            .map_err(&e)?;
        let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
        rows.iter()
            .map(|r| {
                Ok(HistoryRow {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    cause: r.get(2)?,
                    marketplace: r.get(3)?,
                    product: r.get(4)?,
                    customer: r.get(5)?,
                    previous: json(r.get(6)?),
                    new: json(r.get(7)?),
                    applied: r.get(8)?,
                    event_key: r.get(9)?,
                    event_time: r.get(10)?,
                    detail: r.get(11)?,
                })
            })
            .collect::<Result<Vec<_>, DbError>>()
            .map_err(&e)
    }
}

/// A database error as a store error: SQLite's keep [`StoreError::Sqlite`], others go through
/// the ledger's (with the location masked).
fn store_err(path: &str) -> impl Fn(DbError) -> StoreError + '_ {
    move |e| match e {
        DbError::Sqlite(source) => StoreError::Sqlite {
            path: path.to_owned(),
            source,
        },
        other => StoreError::Ledger(db_err(path)(other)),
    }
}
