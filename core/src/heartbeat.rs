//! AWS heartbeats: zero-quantity records for hours without usage.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::contract::{Contract, ContractSet, ContractStatus};
use crate::model::{Marketplace, UsageRecord};
use crate::time::hour_floor;

/// Zero-quantity AWS records, stamped at the start of `hour`, for every dimension of every
/// contract active during that hour that has no usage yet (`has_usage` says which do).
/// Azure refuses zero and Google needs none, so only AWS contracts get them.
pub fn heartbeats(
    contracts: &ContractSet,
    hour: DateTime<Utc>,
    mut has_usage: impl FnMut(&Contract, &str) -> bool,
) -> Vec<UsageRecord> {
    let hour = hour_floor(hour);
    let mut out = Vec::new();
    for c in contracts.all() {
        let live = c.status == ContractStatus::Active
            && c.starts_at <= hour
            && c.stop_time().is_none_or(|s| s > hour);
        if c.marketplace != Marketplace::Aws || !live {
            continue;
        }
        for d in &c.dimensions {
            if has_usage(c, &d.name) {
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
