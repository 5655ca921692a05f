//! Dedup state: what has already been accepted (in this input or in the ledger's history),
//! keyed compactly so that memory grows with keys, not records.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use rustc_hash::FxHashMap;

use crate::contract::ContractId;
use crate::model::Marketplace;
use crate::time::{add, hour_floor};

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

/// Accepted Google intervals of one consumer and metric, with the longest one's length so
/// that an overlap search only looks back as far as an interval can reach.
#[derive(Clone, Debug, Default)]
struct Intervals {
    by_span: BTreeMap<(DateTime<Utc>, DateTime<Utc>), Decimal>,
    max_len: Duration,
}

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
        self.hours.len()
            + self
                .intervals
                .values()
                .map(|iv| iv.by_span.len())
                .sum::<usize>()
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
                if let Some(q) = iv.by_span.get(&(start, end)) {
                    return judge(*q);
                }
                // Every interval that starts before `end` and could still reach past `start`.
                let from = (add(start, -iv.max_len), DateTime::<Utc>::MIN_UTC);
                let to = (end, DateTime::<Utc>::MIN_UTC);
                if from >= to {
                    return Prior::None;
                }
                iv.by_span
                    .range(from..to)
                    .map(|((s, e), _)| (*s, *e))
                    .find(|(s, e)| *s < end && *e > start)
                    .map_or(Prior::None, |(s, e)| Prior::Overlap(s, e))
            }
            // A Google key without an end cannot be judged; records always have one.
            (Marketplace::Gcp, None) => Prior::None,
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
                let iv = self.intervals.entry((contract, dim)).or_default();
                iv.by_span.entry((start, end)).or_insert(quantity);
                if end > start {
                    iv.max_len = iv.max_len.max(end - start);
                }
            }
            (Marketplace::Gcp, None) => {}
            _ => {
                self.hours
                    .entry((contract, dim, hour_floor(start).timestamp()))
                    .or_insert(quantity);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    fn t(s: &str) -> DateTime<Utc> {
        parse_rfc3339(&format!("2026-03-10T{s}:00Z")).unwrap()
    }

    #[test]
    fn overlaps_are_found_behind_a_short_interval() {
        let mut d = DedupState::new();
        let q = Decimal::ONE;
        d.insert(Marketplace::Gcp, 0, 0, t("10:00"), Some(t("12:00")), q);
        d.insert(Marketplace::Gcp, 0, 0, t("10:30"), Some(t("10:45")), q);
        assert_eq!(
            d.lookup(Marketplace::Gcp, 0, 0, t("11:00"), Some(t("11:30")), q),
            Prior::Overlap(t("10:00"), t("12:00"))
        );
        // Same start, other end: both are kept and both are seen.
        d.insert(Marketplace::Gcp, 0, 1, t("10:00"), Some(t("10:30")), q);
        d.insert(Marketplace::Gcp, 0, 1, t("10:00"), Some(t("11:00")), q);
        assert_eq!(
            d.lookup(Marketplace::Gcp, 0, 1, t("10:45"), Some(t("11:15")), q),
            Prior::Overlap(t("10:00"), t("11:00"))
        );
        // Chained intervals do not overlap.
        assert_eq!(
            d.lookup(Marketplace::Gcp, 0, 1, t("11:00"), Some(t("12:00")), q),
            Prior::None
        );
        assert_eq!(d.len(), 4);
    }
}
