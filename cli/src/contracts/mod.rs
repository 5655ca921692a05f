//! Contracts from the marketplaces: the contract store in the ledger file ([`store`]),
//! lifecycle events ([`events`]) and syncs ([`sync`]), and [`load`], the one place every
//! judging command gets its contracts from.
//!
//! `--contracts FILE` wins; without it the contracts come from the store of the ledger
//! (`--ledger`, else `$METERGATE_LEDGER`, else `./metergate-ledger.sqlite`) when that file
//! exists; else there are none.

pub mod events;
pub mod store;
pub mod sync;

use std::path::{Path, PathBuf};

use metergate_core::ContractSet;

use crate::config;
use crate::error::CliError;
use crate::ledger;

pub use store::{Cause, Store, StoreError};

/// Where a command's contracts came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `--contracts FILE`.
    File(PathBuf),
    /// The contract store in this ledger file.
    Store(PathBuf),
    /// Neither: no customer is entitled.
    None,
}

/// The contracts to judge with: `--contracts FILE` when given, else the contract store in the
/// ledger (`ledger` flag, else `$METERGATE_LEDGER`, else the default file) when that file
/// exists or the ledger is a PostgreSQL URL, else none.
pub fn load(
    contracts: Option<&Path>,
    ledger_flag: Option<&Path>,
) -> Result<(ContractSet, Origin), CliError> {
    if let Some(p) = contracts {
        return Ok((config::load_contracts(p)?, Origin::File(p.to_path_buf())));
    }
    let path = ledger::resolve_path(ledger_flag);
    if !ledger::exists(&path) {
        return Ok((ContractSet::default(), Origin::None));
    }
    let mut store = Store::open_existing(&path).map_err(store_err)?;
    let set = store.contract_set().map_err(store_err)?;
    if set.all().is_empty() {
        return Ok((set, Origin::None));
    }
    Ok((set, Origin::Store(path)))
}

/// A store error as a command error (exit 2).
pub fn store_err(e: StoreError) -> CliError {
    CliError::Usage(e.to_string())
}
