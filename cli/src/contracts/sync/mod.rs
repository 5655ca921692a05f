//! `metergate contracts sync`: every contract the marketplaces know, into the store.
//!
//! Each marketplace's reader ([`azure`], [`gcp`], [`aws`]) fetches everything first, following
//! every page; only when every call succeeded are its contracts merged into the store, in one
//! transaction. A failed call changes nothing for that marketplace. Merging ([`merge`]):
//!
//! * a synced contract matches a stored one by its marketplace id (Microsoft: the SaaS
//!   subscription id, also `resource_id`; Google: the entitlement id; AWS: the agreement id);
//! * a match keeps its product and customer keys (records use them) and every field the
//!   marketplace does not give (units, metric types, identities), and takes the state, times,
//!   plan and dimension names from the marketplace; a cancellation time already known stands;
//! * AWS: an agreement of an unknown id matches the stored contract of the same product and
//!   `aws_account_id` whose agreement is no longer listed (a renewal or replacement);
//! * a contract the marketplace no longer lists is left as it is.
//!
//! A second sync with nothing new at the marketplace changes nothing. A sync does not move
//! `state_at` (the marketplaces list states without the time they were reached), so an
//! event delivered after a sync is still applied when it is newer than the events before it.

pub mod aws;
pub mod azure;
pub mod gcp;

use chrono::{DateTime, Utc};
use metergate_core::{Contract, ContractStatus, Dimension, Marketplace};
use serde::Serialize;

use super::store::{to_json, Cause, Store, StoreError, Write};

/// One contract as a marketplace describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Synced {
    /// The contract metergate would store for a new customer.
    pub contract: Contract,
    /// The marketplace's id (matched against `marketplace_id`, and Microsoft's `resource_id`).
    pub id: String,
}

/// What a sync did to one contract.
#[derive(Clone, Debug, Serialize)]
pub struct SyncChange {
    /// `added`, `changed` or `ended`.
    pub change: &'static str,
    /// Marketplace.
    pub marketplace: String,
    /// Product.
    pub product: String,
    /// Customer key.
    pub customer: String,
    /// The marketplace's id.
    pub marketplace_id: String,
    /// Status before (none when added).
    pub previous_status: Option<String>,
    /// Status after.
    pub status: String,
}

/// A marketplace's sync failed; the store is unchanged for it.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A call failed (after its retries), or an answer could not be read.
    #[error("{marketplace}: {message}")]
    Call {
        /// Marketplace.
        marketplace: Marketplace,
        /// What failed (never a secret).
        message: String,
    },
    /// The store failed or refused the merged contracts.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn same_contract(s: &Synced, c: &Contract) -> bool {
    c.marketplace == s.contract.marketplace
        && (c.marketplace_id.as_deref() == Some(s.id.as_str())
            || (c.marketplace == Marketplace::Azure
                && c.resource_id
                    .as_deref()
                    .is_some_and(|r| r.eq_ignore_ascii_case(&s.id))))
}

/// AWS: a new agreement (renewal, replacement) carries on the stored contract of the same
/// product and buyer account whose own agreement is no longer listed.
fn successor_of<'a>(
    stored: &'a [Contract],
    s: &Synced,
    listed: &std::collections::HashSet<&str>,
) -> Option<&'a Contract> {
    let n = &s.contract;
    if n.marketplace != Marketplace::Aws || n.aws_account_id.is_none() {
        return None;
    }
    stored.iter().find(|c| {
        c.marketplace == Marketplace::Aws
            && c.product == n.product
            && c.aws_account_id == n.aws_account_id
            && c.marketplace_id
                .as_deref()
                .is_some_and(|id| id != s.id && !listed.contains(id))
    })
}

/// A contract from its JSON (what a contracts file holds), so readers follow the core's
/// [`Contract`] as it grows. `null` fields are dropped first.
pub fn contract_from_json(mut v: serde_json::Value) -> Result<Contract, String> {
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, x| !x.is_null());
    }
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// The stored contract `old` updated with what the marketplace says.
pub fn merge(old: &Contract, s: &Synced, now: DateTime<Utc>) -> Contract {
    let n = &s.contract;
    let mut c = old.clone();
    c.status = n.status;
    // The state as the marketplace said it now, not as the old contract wrote it.
    c.status_word = n.status_word.clone();
    c.starts_at = n.starts_at;
    c.ends_at = n.ends_at;
    c.cancelled_at = match n.status {
        ContractStatus::Cancelled => old
            .cancelled_at
            .filter(|_| old.status == ContractStatus::Cancelled)
            .or(n.cancelled_at)
            .or(Some(now)),
        ContractStatus::Ended => old
            .cancelled_at
            .filter(|_| old.status == ContractStatus::Ended),
        _ => None,
    };
    if n.plan.is_some() {
        c.plan = n.plan.clone();
    }
    c.marketplace_id = Some(s.id.clone());
    if n.resource_id.is_some() {
        c.resource_id = n.resource_id.clone();
    }
    for (slot, new) in [
        (&mut c.aws_account_id, &n.aws_account_id),
        (&mut c.license_arn, &n.license_arn),
        (&mut c.usage_reporting_id, &n.usage_reporting_id),
    ] {
        if new.is_some() {
            *slot = new.clone();
        }
    }
    if !n.dimensions.is_empty() {
        c.dimensions = n
            .dimensions
            .iter()
            .map(|d| {
                old.dimensions
                    .iter()
                    .find(|o| o.name == d.name)
                    .cloned()
                    .unwrap_or_else(|| Dimension {
                        name: d.name.clone(),
                        unit: d.unit,
                        kind: d.kind,
                        price: d.price,
                        currency: d.currency.clone(),
                    })
            })
            .collect();
    }
    c
}

/// Merges one marketplace's contracts into the store (one transaction); returns the changes.
pub fn apply(
    store: &mut Store,
    marketplace: Marketplace,
    synced: &[Synced],
    now: DateTime<Utc>,
    detail: &str,
) -> Result<Vec<SyncChange>, SyncError> {
    let stored: Vec<Contract> = store.all()?.into_iter().map(|s| s.contract).collect();
    let mut writes = Vec::new();
    let mut changes = Vec::new();
    // Stored contracts by their marketplace id (Microsoft: also by resource_id).
    let mut by_id: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, c) in stored.iter().enumerate() {
        if c.marketplace != marketplace {
            continue;
        }
        if let Some(id) = &c.marketplace_id {
            by_id.entry(id.clone()).or_insert(i);
        }
        if marketplace == Marketplace::Azure {
            if let Some(r) = &c.resource_id {
                by_id.entry(r.to_ascii_lowercase()).or_insert(i);
            }
        }
    }
    let listed: std::collections::HashSet<&str> = synced.iter().map(|s| s.id.as_str()).collect();
    for s in synced {
        let old = by_id
            .get(&s.id)
            .or_else(|| by_id.get(&s.id.to_ascii_lowercase()))
            .and_then(|i| stored.get(*i))
            .filter(|c| same_contract(s, c))
            .or_else(|| successor_of(&stored, s, &listed));
        let new = match old {
            Some(o) => merge(o, s, now),
            None => {
                let mut c = s.contract.clone();
                c.marketplace_id = Some(s.id.clone());
                c
            }
        };
        if old.is_some_and(|o| to_json(o) == to_json(&new)) {
            continue;
        }
        let stops = matches!(
            new.status,
            ContractStatus::Cancelled | ContractStatus::Ended
        );
        let change = match old {
            None => "added",
            Some(o)
                if stops
                    && !matches!(o.status, ContractStatus::Cancelled | ContractStatus::Ended) =>
            {
                "ended"
            }
            Some(_) => "changed",
        };
        changes.push(SyncChange {
            change,
            marketplace: marketplace.to_string(),
            product: new.product.clone(),
            customer: new.customer.clone(),
            marketplace_id: s.id.clone(),
            previous_status: old.map(|o| o.status.to_string()),
            status: new.status.to_string(),
        });
        writes.push(Write {
            contract: new,
            previous: old.cloned(),
            applied: true,
            // The marketplace gives no time of the state it lists: an event that comes after
            // the sync is judged against the times of earlier events only.
            state_at: None,
            event_key: None,
            event_time: None,
            detail: detail.to_owned(),
        });
    }
    if !writes.is_empty() {
        store.write(Cause::Sync, &writes)?;
    }
    Ok(changes)
}
