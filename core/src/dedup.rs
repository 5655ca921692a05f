//! Dedup state: what has already been accepted (in this input or in the ledger's history),
//! keyed compactly so that memory grows with keys, not records.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rustc_hash::FxHashMap;

use crate::contract::ContractId;
use crate::model::Marketplace;
use crate::time::hour_floor;

/// What the state already holds for a record's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prior {
    /// Nothing: the record is the first.
    None,
    /// The same key with the same quantity.
    Same(Decimal),
    /// The same key with another quantity (the first one stands).
    Different(Decimal),
    /// Google: another interval for the same consumer and metric overlaps this one.
    Overlap(DateTime<Utc>, DateTime<Utc>),
}

type Intervals = BTreeMap<DateTime<Utc>, (DateTime<Utc>, Decimal)>;

/// Accepted keys with their first quantity.
#[derive(Clone, Debug, Default)]
pub struct DedupState {
    hours: FxHashMap<(ContractId, u32, i64), Decimal>,
    intervals: FxHashMap<(ContractId, u32), Intervals>,
}

impl DedupState {
    /// An empty state.
    pub fn new() -> DedupState {
        DedupState::default()
    }

    /// The number of keys held.
    pub fn len(&self) -> usize {
        self.hours.len() + self.intervals.values().map(BTreeMap::len).sum::<usize>()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Looks a record's key up. AWS and Azure key on the clock hour of `start`; Google on the
    /// exact interval, and reports overlaps.
    pub fn lookup(
        &self,
        mp: Marketplace,
        contract: ContractId,
        dim: u32,
        start: DateTime<Utc>,
        end: Option<DateTime<Utc>>,
        quantity: Decimal,
    ) -> Prior {
        let judge = |q: Decimal| {
            if q == quantity {
                Prior::Same(q)
            } else {
                Prior::Different(q)
            }
        };
        match (mp, end) {
            (Marketplace::Gcp, Some(end)) => {
                let Some(iv) = self.intervals.get(&(contract, dim)) else {
                    return Prior::None;
                };
                if let Some((e, q)) = iv.get(&start) {
                    if *e == end {
                        return judge(*q);
                    }
                    return Prior::Overlap(start, *e);
                }
                if let Some((s, (e, _))) = iv.range(..start).next_back() {
                    if *e > start {
                        return Prior::Overlap(*s, *e);
                    }
                }
                if let Some((s, (e, _))) = iv.range(start..).next() {
                    if *s < end {
                        return Prior::Overlap(*s, *e);
                    }
                }
                Prior::None
            }
            _ => match self
                .hours
                .get(&(contract, dim, hour_floor(start).timestamp()))
            {
                Some(q) => judge(*q),
                None => Prior::None,
            },
        }
    }

    /// Records an accepted key. The first quantity for a key stands.
    pub fn insert(
        &mut self,
        mp: Marketplace,
        contract: ContractId,
        dim: u32,
        start: DateTime<Utc>,
        end: Option<DateTime<Utc>>,
        quantity: Decimal,
    ) {
        match (mp, end) {
            (Marketplace::Gcp, Some(end)) => {
                self.intervals
                    .entry((contract, dim))
                    .or_default()
                    .entry(start)
                    .or_insert((end, quantity));
            }
            _ => {
                self.hours
                    .entry((contract, dim, hour_floor(start).timestamp()))
                    .or_insert(quantity);
            }
        }
    }
}
