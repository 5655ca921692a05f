//! Dedup state: what has already been accepted (in this input or in the ledger's history),
//! keyed compactly so that memory grows with keys, not records.
//!
//! Keys are what the marketplace keys on: a dedup series (the wire identity and the
//! dimension, [`crate::contract::SeriesId`]) plus the clock hour (AWS, Microsoft) or the
//! exact interval (Google). Each key remembers the first quantity, the contract whose record
//! set it (to name the other customer key in hints) and, for keys from the ledger, when the
//! record was sent.
//!
//! [`key_text`] writes a record's key as text, for stores that keep keys outside a session
//! (the CLI's ledger keeps at most one live row per key text, whatever the sender).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rustc_hash::FxHashMap;

use crate::contract::{ContractId, SeriesId};
use crate::model::{Marketplace, UsageRecord};
use crate::time::{format_rfc3339, hour_floor};

/// The marketplace's dedup key of a record, as text:
/// `marketplace|product|customer|dimension|when`, where `when` is the clock hour of the start
/// (AWS and Microsoft: `2026-03-01T10:00:00Z`) or the exact interval (Google:
/// `start/end`, empty end when missing). Two records with the same text are one key to the
/// marketplace: it keeps the first and drops or refuses the rest.
///
/// The text names the seller's customer key, not the wire identity: two contracts that share
/// one wire identity are one key to the marketplace (the session's [`DedupState`] catches
/// that within an input) but two key texts. Google's overlapping intervals are not one key
/// either (the session reports them as `overlapping-interval`).
pub fn key_text(r: &UsageRecord) -> String {
    let when = match r.marketplace {
        Marketplace::Aws | Marketplace::Azure => format_rfc3339(hour_floor(r.start_time)),
        Marketplace::Gcp => format!(
            "{}/{}",
            format_rfc3339(r.start_time),
            r.end_time.map(format_rfc3339).unwrap_or_default()
        ),
    };
    format!(
        "{}|{}|{}|{}|{}",
        r.marketplace, r.product, r.customer, r.dimension, when
    )
}

/// Where a key already held came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// An earlier record of this input (or session).
    Input,
    /// The ledger's history: the record was already written, and sent at this time if known.
    History(Option<DateTime<Utc>>),
}

/// A key already held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The first quantity for the key: the one that stands.
    pub quantity: Decimal,
    /// The contract of the record that set it (its customer key may differ from this
    /// record's when two contracts share a wire identity).
    pub contract: ContractId,
    /// Input or history.
    pub origin: Origin,
}

/// What the state already holds for a record's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prior {
    /// Nothing: the record is the first.
    None,
    /// The same key with the same quantity.
    Same(Seen),
    /// The same key with another quantity (the first one stands).
    Different(Seen),
    /// Google: usage already reported for the same consumer and metric overlaps this
    /// interval; the span given is the covered stretch it falls in.
    Overlap(DateTime<Utc>, DateTime<Utc>),
}

/// Accepted Google intervals of one series: the exact spans, and the stretches they cover
/// merged into disjoint segments (start → end). An overlap search is one ordered-map lookup,
/// whatever the length of the longest interval seen; an insert merges the segments it
/// touches, each segment being merged away at most once.
#[derive(Clone, Debug, Default)]
struct Intervals {
    exact: FxHashMap<(DateTime<Utc>, DateTime<Utc>), Seen>,
    covered: BTreeMap<DateTime<Utc>, DateTime<Utc>>,
}

impl Intervals {
    /// The covered segment that overlaps `[start, end)`, if any. Segments are disjoint and
    /// sorted, so only the last one starting before `end` can reach past `start`.
    fn overlapping(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let (s, e) = self.covered.range(..end).next_back()?;
        (*e > start).then_some((*s, *e))
    }

    fn cover(&mut self, mut start: DateTime<Utc>, mut end: DateTime<Utc>) {
        if end <= start {
            return;
        }
        // Every segment that overlaps [start, end) is merged into it (touching ones are not,
        // so chained intervals stay apart).
        while let Some((s, e)) = self.overlapping(start, end) {
            self.covered.remove(&s);
            start = start.min(s);
            end = end.max(e);
        }
        self.covered.insert(start, end);
    }
}

/// Accepted keys with their first quantity.
#[derive(Clone, Debug, Default)]
pub struct DedupState {
    hours: FxHashMap<(SeriesId, i64), Seen>,
    intervals: FxHashMap<SeriesId, Intervals>,
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
                .map(|iv| iv.exact.len())
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
        series: SeriesId,
        start: DateTime<Utc>,
        end: Option<DateTime<Utc>>,
        quantity: Decimal,
    ) -> Prior {
        let judge = |seen: &Seen| {
            if seen.quantity == quantity {
                Prior::Same(*seen)
            } else {
                Prior::Different(*seen)
            }
        };
        match (mp, end) {
            (Marketplace::Gcp, Some(end)) => {
                let Some(iv) = self.intervals.get(&series) else {
                    return Prior::None;
                };
                if let Some(seen) = iv.exact.get(&(start, end)) {
                    return judge(seen);
                }
                iv.overlapping(start, end)
                    .map_or(Prior::None, |(s, e)| Prior::Overlap(s, e))
            }
            // A Google key without an end cannot be judged; records always have one.
            (Marketplace::Gcp, None) => Prior::None,
            _ => match self.hours.get(&(series, hour_floor(start).timestamp())) {
                Some(seen) => judge(seen),
                None => Prior::None,
            },
        }
    }

    /// Records an accepted key. The first quantity for a key stands.
    pub fn insert(
        &mut self,
        mp: Marketplace,
        series: SeriesId,
        start: DateTime<Utc>,
        end: Option<DateTime<Utc>>,
        seen: Seen,
    ) {
        match (mp, end) {
            (Marketplace::Gcp, Some(end)) => {
                let iv = self.intervals.entry(series).or_default();
                iv.exact.entry((start, end)).or_insert(seen);
                iv.cover(start, end);
            }
            (Marketplace::Gcp, None) => {}
            _ => {
                self.hours
                    .entry((series, hour_floor(start).timestamp()))
                    .or_insert(seen);
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

    fn seen() -> Seen {
        Seen {
            quantity: Decimal::ONE,
            contract: 0,
            origin: Origin::Input,
        }
    }

    fn record(mp: Marketplace, start: &str, end: Option<&str>, q: i64) -> UsageRecord {
        UsageRecord {
            marketplace: mp,
            product: "p".into(),
            customer: "c".into(),
            dimension: "d".into(),
            quantity: Decimal::from(q),
            start_time: t(start),
            end_time: end.map(t),
            record_id: None,
            plan: None,
            allocations: None,
            attributes: Default::default(),
        }
    }

    #[test]
    fn key_text_is_the_hour_or_the_interval_without_the_quantity() {
        let a = record(Marketplace::Aws, "10:05", None, 1);
        let b = record(Marketplace::Aws, "10:59", None, 2);
        assert_eq!(key_text(&a), "aws|p|c|d|2026-03-10T10:00:00Z");
        assert_eq!(key_text(&a), key_text(&b));
        assert_ne!(
            key_text(&a),
            key_text(&record(Marketplace::Aws, "11:00", None, 1))
        );
        assert_ne!(
            key_text(&a),
            key_text(&record(Marketplace::Azure, "10:05", None, 1))
        );
        let g = record(Marketplace::Gcp, "10:05", Some("10:10"), 1);
        assert_eq!(
            key_text(&g),
            "gcp|p|c|d|2026-03-10T10:05:00Z/2026-03-10T10:10:00Z"
        );
        assert_ne!(
            key_text(&g),
            key_text(&record(Marketplace::Gcp, "10:05", Some("10:11"), 1))
        );
    }

    #[test]
    fn overlaps_are_found_behind_a_short_interval() {
        let mut d = DedupState::new();
        let q = Decimal::ONE;
        d.insert(Marketplace::Gcp, 0, t("10:00"), Some(t("12:00")), seen());
        d.insert(Marketplace::Gcp, 0, t("10:30"), Some(t("10:45")), seen());
        assert_eq!(
            d.lookup(Marketplace::Gcp, 0, t("11:00"), Some(t("11:30")), q),
            Prior::Overlap(t("10:00"), t("12:00"))
        );
        // Same start, other end: both are kept and both are seen.
        d.insert(Marketplace::Gcp, 1, t("10:00"), Some(t("10:30")), seen());
        d.insert(Marketplace::Gcp, 1, t("10:00"), Some(t("11:00")), seen());
        assert_eq!(
            d.lookup(Marketplace::Gcp, 1, t("10:45"), Some(t("11:15")), q),
            Prior::Overlap(t("10:00"), t("11:00"))
        );
        // Chained intervals do not overlap.
        assert_eq!(
            d.lookup(Marketplace::Gcp, 1, t("11:00"), Some(t("12:00")), q),
            Prior::None
        );
        assert_eq!(d.len(), 4);
    }

    #[test]
    fn chained_intervals_stay_apart_and_bridges_merge() {
        let mut d = DedupState::new();
        let q = Decimal::ONE;
        d.insert(Marketplace::Gcp, 0, t("10:00"), Some(t("10:10")), seen());
        d.insert(Marketplace::Gcp, 0, t("10:10"), Some(t("10:20")), seen());
        d.insert(Marketplace::Gcp, 0, t("10:30"), Some(t("10:40")), seen());
        assert_eq!(
            d.lookup(Marketplace::Gcp, 0, t("10:20"), Some(t("10:30")), q),
            Prior::None
        );
        assert_eq!(
            d.lookup(Marketplace::Gcp, 0, t("10:05"), Some(t("10:06")), q),
            Prior::Overlap(t("10:00"), t("10:10"))
        );
        // An interval across the gap joins the segments it overlaps.
        d.insert(Marketplace::Gcp, 0, t("10:15"), Some(t("10:35")), seen());
        assert_eq!(
            d.lookup(Marketplace::Gcp, 0, t("10:39"), Some(t("10:50")), q),
            Prior::Overlap(t("10:10"), t("10:40"))
        );
        assert_eq!(
            d.lookup(Marketplace::Gcp, 0, t("10:40"), Some(t("10:50")), q),
            Prior::None
        );
    }

    /// Regression (issue 16): one very long interval, then many short ones after it. The
    /// cost of each search must not depend on the long interval; here the count of
    /// segments stays small and every short interval is still found as new.
    #[test]
    fn a_long_interval_does_not_slow_later_searches() {
        let mut d = DedupState::new();
        let q = Decimal::ONE;
        let long_start = parse_rfc3339("2020-01-01T00:00:00Z").unwrap();
        let long_end = parse_rfc3339("2025-12-31T00:00:00Z").unwrap();
        d.insert(Marketplace::Gcp, 0, long_start, Some(long_end), seen());
        let base = parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        for i in 0..20_000i64 {
            let s = base + chrono::Duration::minutes(i);
            let e = s + chrono::Duration::minutes(1);
            assert_eq!(d.lookup(Marketplace::Gcp, 0, s, Some(e), q), Prior::None);
            d.insert(Marketplace::Gcp, 0, s, Some(e), seen());
        }
        let iv = d.intervals.get(&0).unwrap();
        // Chained minutes never merge; what matters is that a lookup is one range step.
        assert_eq!(iv.covered.len(), 20_001);
        assert_eq!(
            d.lookup(
                Marketplace::Gcp,
                0,
                base,
                Some(base + chrono::Duration::hours(1)),
                q
            ),
            Prior::Overlap(
                base + chrono::Duration::minutes(59),
                base + chrono::Duration::minutes(60)
            )
        );
    }
}
