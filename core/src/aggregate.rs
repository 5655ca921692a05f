//! Hourly aggregation: the fix for `duplicate-request` and unit remainders.
//!
//! Every aggregated record must stay billable: it takes a time inside its hour that every
//! input record's window allows (AWS and Microsoft: the latest start among the inputs, so the
//! look-back, the contract's start and the future check hold whenever they held for every
//! input; Google: the smallest interval that covers the inputs, so it ends no later than they
//! did). [`aggregate_judged`] then judges each sum with the core like any record, and keeps
//! the parts where the sum would be rejected but a part would not.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::contract::{Contract, ContractSet, MetricType};
use crate::finding::Finding;
use crate::model::{Marketplace, UsageRecord};
use crate::time::{add, hour_floor};
use crate::validator::Validator;

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
    /// The plan of the last hour's records (Microsoft needs it on the wire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// The hour after the last one aggregated: where the remainder belongs.
    #[serde(with = "crate::contract::rfc3339")]
    pub next_hour: DateTime<Utc>,
    /// The remainder (below one unit).
    pub remainder: Decimal,
}

/// An hour whose sum the core would reject while some of its parts would be accepted: the
/// parts were kept as they were instead of the sum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeptParts {
    /// The sum that was not written.
    pub sum: UsageRecord,
    /// Why the core would reject it.
    pub findings: Vec<Finding>,
    /// How many input records were kept in its place.
    pub parts: usize,
}

/// Aggregated records plus the remainders still to carry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregated {
    /// One record per key and hour (or the kept parts), sorted by key then hour.
    pub records: Vec<UsageRecord>,
    /// Remainders below one unit after each key's last hour.
    pub carried: Vec<Carry>,
    /// Hours whose parts were kept because their sum would be rejected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_parts: Vec<KeptParts>,
}

/// The name a Google metric is keyed by: `svc.example.com/requests` and `requests` are one
/// metric of the product `svc.example.com` (the same short name the `gcp.metric` rule
/// resolves with). Other marketplaces' names are used as written.
pub fn metric_key<'a>(mp: Marketplace, product: &str, dimension: &'a str) -> &'a str {
    match mp {
        Marketplace::Gcp => crate::rules::gcp::short_metric_name(product, dimension),
        _ => dimension,
    }
}

type Key = (Marketplace, String, String, String);
/// Per key: the input records of each hour.
type Hours = BTreeMap<DateTime<Utc>, Vec<UsageRecord>>;

/// Sums records into one per (marketplace, product, customer, metric, hour), without judging
/// them (see [`aggregate_judged`]). Where the contract gives the dimension a unit, or meters
/// whole numbers only (AWS, Google int64), each hour sends the largest valid quantity and
/// carries the rest into the key's next hour with usage; what is left after the last hour is
/// returned in [`Aggregated::carried`]. Totals are preserved: sum(out) + sum(carried) ==
/// sum(in). A Microsoft hour whose valid part is 0 is not written (Microsoft refuses zero);
/// its usage is carried.
pub fn aggregate_hourly(
    records: impl IntoIterator<Item = UsageRecord>,
    contracts: Option<&ContractSet>,
) -> Aggregated {
    aggregate(records, contracts, None)
}

/// [`aggregate_hourly`], then every sum judged by the core at `now` like any record. Where a
/// sum would be rejected while one of its parts alone would be accepted, the parts are
/// written unchanged instead, and the hour is listed in [`Aggregated::kept_parts`] with the
/// sum's findings.
pub fn aggregate_judged(
    records: impl IntoIterator<Item = UsageRecord>,
    validator: &Validator,
    now: DateTime<Utc>,
) -> Aggregated {
    aggregate(records, Some(validator.contracts()), Some((validator, now)))
}

fn aggregate(
    records: impl IntoIterator<Item = UsageRecord>,
    contracts: Option<&ContractSet>,
    judge: Option<(&Validator, DateTime<Utc>)>,
) -> Aggregated {
    let mut sums: BTreeMap<Key, Hours> = BTreeMap::new();
    for r in records {
        let key = (
            r.marketplace,
            r.product.clone(),
            r.customer.clone(),
            metric_key(r.marketplace, &r.product, &r.dimension).to_owned(),
        );
        sums.entry(key)
            .or_default()
            .entry(hour_floor(r.start_time))
            .or_default()
            .push(r);
    }
    let mut out = Aggregated::default();
    for ((mp, product, customer, metric), hours) in sums {
        let contract = contracts
            .and_then(|cs| cs.find(mp, &product, &customer))
            .map(|(_, c)| c);
        let dim = contract.and_then(|c| contract_dimension(c, mp, &product, &metric));
        let unit = dim.and_then(|(_, u, _)| u);
        let integer = contract.is_some()
            && match mp {
                Marketplace::Aws => true,
                Marketplace::Azure => false,
                Marketplace::Gcp => {
                    dim.and_then(|(_, _, k)| k).unwrap_or(MetricType::Int) == MetricType::Int
                }
            };
        let mut carry = Decimal::ZERO;
        let mut last: Option<(DateTime<Utc>, Option<String>)> = None;
        for (hour, parts) in hours {
            let first = parts.first().cloned();
            let Some(first) = first else { continue };
            let name = dim
                .map(|(n, _, _)| n.to_owned())
                .unwrap_or_else(|| first.dimension.clone());
            let sum = parts
                .iter()
                .fold(Decimal::ZERO, |s, r| s.saturating_add(r.quantity));
            let total = sum.saturating_add(carry);
            let send = if unit.is_some() || integer {
                crate::rules::best_quantity(total, integer, unit).unwrap_or(total)
            } else {
                total
            };
            let rest = total.checked_sub(send).unwrap_or(Decimal::ZERO);
            let (start, end) = span(mp, &parts);
            let record = UsageRecord {
                marketplace: mp,
                product: product.clone(),
                customer: customer.clone(),
                dimension: name,
                quantity: send.normalize(),
                start_time: start,
                end_time: end,
                record_id: None,
                plan: first.plan.clone(),
                allocations: None,
                attributes: BTreeMap::new(),
            };
            last = Some((hour, first.plan.clone()));
            if mp == Marketplace::Azure && send.is_zero() {
                carry = total;
                continue;
            }
            if let Some((v, now)) = judge {
                let findings: Vec<Finding> = v
                    .judge_record(&record, now)
                    .into_iter()
                    .filter(Finding::is_error)
                    .collect();
                let some_part_ok = || {
                    parts
                        .iter()
                        .any(|p| !v.judge_record(p, now).iter().any(Finding::is_error))
                };
                if !findings.is_empty() && some_part_ok() {
                    out.kept_parts.push(KeptParts {
                        sum: record,
                        findings,
                        parts: parts.len(),
                    });
                    out.records.extend(parts);
                    // The carry into this hour was not used: it moves on to the next.
                    continue;
                }
            }
            carry = rest;
            out.records.push(record);
        }
        if !carry.is_zero() {
            if let Some((h, plan)) = last {
                out.carried.push(Carry {
                    marketplace: mp,
                    product,
                    customer,
                    dimension: metric,
                    plan,
                    next_hour: add(h, Duration::hours(1)),
                    remainder: carry.normalize(),
                });
            }
        }
    }
    out
}

/// The contract's own name, unit and metric type for a metric key.
fn contract_dimension<'c>(
    c: &'c Contract,
    mp: Marketplace,
    product: &str,
    metric: &str,
) -> Option<(&'c str, Option<Decimal>, Option<MetricType>)> {
    let full = format!("{product}/{metric}");
    c.dimension(metric)
        .or_else(|| {
            (mp == Marketplace::Gcp)
                .then(|| c.dimension(&full))
                .flatten()
        })
        .map(|(_, d)| (d.name.as_str(), d.unit, d.kind))
}

/// The time of an hour's sum: AWS and Microsoft the latest start among the parts; Google the
/// smallest interval covering them.
fn span(mp: Marketplace, parts: &[UsageRecord]) -> (DateTime<Utc>, Option<DateTime<Utc>>) {
    let starts = parts.iter().map(|r| r.start_time);
    match mp {
        Marketplace::Aws | Marketplace::Azure => (starts.max().unwrap_or_default(), None),
        Marketplace::Gcp => {
            let start = starts.min().unwrap_or_default();
            let end = parts
                .iter()
                .map(|r| r.end_time.unwrap_or(add(r.start_time, Duration::hours(1))))
                .max();
            (start, end)
        }
    }
}
