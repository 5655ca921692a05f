//! AWS heartbeats: zero-quantity records for hours without usage.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::contract::{Contract, ContractId, ContractSet, ContractStatus, SeriesId};
use crate::model::{Marketplace, UsageRecord};
use crate::time::hour_floor;

/// Zero-quantity AWS records, stamped at the start of `hour`, for every dimension of every
/// contract active during that hour that has no usage yet (`has_usage` says which do).
/// Azure refuses zero and Google needs none, so only AWS contracts get them.
///
/// Heartbeats key on what AWS keys on (product + wire identity + dimension + hour, as the
/// core's dedup does): a dimension has usage when any contract with the same wire identity
/// has usage for it, and contracts that share an identity get one heartbeat per dimension.
pub fn heartbeats(
    contracts: &ContractSet,
    hour: DateTime<Utc>,
    mut has_usage: impl FnMut(&Contract, &str) -> bool,
) -> Vec<UsageRecord> {
    let hour = hour_floor(hour);
    let mut out = Vec::new();
    let mut done: BTreeSet<SeriesId> = BTreeSet::new();
    for (i, c) in contracts.all().iter().enumerate() {
        let live = c.status == ContractStatus::Active
            && c.starts_at <= hour
            && c.stop_time().is_none_or(|s| s > hour);
        if c.marketplace != Marketplace::Aws || !live {
            continue;
        }
        let id = i as ContractId;
        for (di, d) in c.dimensions.iter().enumerate() {
            // A contract whose identity cannot go on the wire gets none (its records are
            // rejected).
            let Some(series) = contracts.series(id, di) else {
                continue;
            };
            if !done.insert(series) {
                continue;
            }
            let used = contracts.same_identity(id).any(|(oid, o)| {
                o.dimensions.iter().enumerate().any(|(odi, od)| {
                    contracts.series(oid, odi) == Some(series) && has_usage(o, &od.name)
                })
            });
            if used {
                continue;
            }
            out.push(UsageRecord {
                marketplace: Marketplace::Aws,
                product: c.product.clone(),
                customer: c.customer.clone(),
                dimension: d.name.clone(),
                quantity: Decimal::ZERO,
                start_time: hour,
                end_time: None,
                record_id: None,
                plan: None,
                allocations: None,
                attributes: BTreeMap::new(),
            });
        }
    }
    out
}
