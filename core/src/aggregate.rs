//! Hourly aggregation: the fix for `duplicate-request` and unit remainders.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::contract::ContractSet;
use crate::model::{Marketplace, UsageRecord};
use crate::time::{add, hour_floor};
use crate::units::to_units;

/// What is left over after the last hour of a key: carry it into the next run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carry {
    /// Marketplace.
    pub marketplace: Marketplace,
    /// Product.
    pub product: String,
    /// Customer.
    pub customer: String,
    /// Dimension.
    pub dimension: String,
    /// The hour after the last one aggregated: where the remainder belongs.
    #[serde(with = "crate::contract::rfc3339")]
    pub next_hour: DateTime<Utc>,
    /// The remainder (below one unit).
    pub remainder: Decimal,
}

/// Aggregated records plus the remainders still to carry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregated {
    /// One record per key and hour, sorted by key then hour.
    pub records: Vec<UsageRecord>,
    /// Remainders below one unit after each key's last hour.
    pub carried: Vec<Carry>,
}

type Key = (Marketplace, String, String, String);
/// Per key: the sum of each hour and the plan of its first record.
type Hours = BTreeMap<DateTime<Utc>, (Decimal, Option<String>)>;

/// Sums records into one per (marketplace, product, customer, dimension, hour). Where the
/// contract gives the dimension a unit, each hour sends the largest whole multiple and carries
/// the rest into the key's next hour with usage; what is left after the last hour is returned
/// in [`Aggregated::carried`]. Totals are preserved: sum(out) + sum(carried) == sum(in).
/// Google records become hour-long intervals `[hour, hour + 1h)`.
pub fn aggregate_hourly(
    records: impl IntoIterator<Item = UsageRecord>,
    contracts: Option<&ContractSet>,
) -> Aggregated {
    let mut sums: BTreeMap<Key, Hours> = BTreeMap::new();
    for r in records {
        let hour = hour_floor(r.start_time);
        let slot = sums
            .entry((r.marketplace, r.product, r.customer, r.dimension))
            .or_default()
            .entry(hour)
            .or_insert((Decimal::ZERO, r.plan.clone()));
        slot.0 = slot.0.saturating_add(r.quantity);
    }
    let mut out = Aggregated::default();
    for ((mp, product, customer, dimension), hours) in sums {
        let unit = contracts
            .and_then(|cs| cs.find(mp, &product, &customer))
            .and_then(|(_, c)| {
                // The exact name first; a Google `service/metric` also by its short name.
                let short = match (mp, dimension.split_once('/')) {
                    (Marketplace::Gcp, Some((service, metric))) if service == product => {
                        c.dimension(metric)
                    }
                    _ => None,
                };
                c.dimension(&dimension).or(short).and_then(|(_, d)| d.unit)
            });
        let mut carry = Decimal::ZERO;
        let mut last = None;
        for (hour, (sum, plan)) in hours {
            let total = sum.saturating_add(carry);
            let send = match unit.and_then(|u| to_units(total, u).map(|s| (s, u))) {
                Some((s, u)) => {
                    carry = s.remainder;
                    s.billable(u)
                }
                None => {
                    carry = Decimal::ZERO;
                    total
                }
            };
            last = Some(hour);
            out.records.push(UsageRecord {
                marketplace: mp,
                product: product.clone(),
                customer: customer.clone(),
                dimension: dimension.clone(),
                quantity: send.normalize(),
                start_time: hour,
                end_time: (mp == Marketplace::Gcp).then(|| add(hour, Duration::hours(1))),
                record_id: None,
                plan,
                allocations: None,
                attributes: BTreeMap::new(),
            });
        }
        if !carry.is_zero() {
            if let Some(h) = last {
                out.carried.push(Carry {
                    marketplace: mp,
                    product,
                    customer,
                    dimension,
                    next_hour: add(h, Duration::hours(1)),
                    remainder: carry.normalize(),
                });
            }
        }
    }
    out
}
