//! Property tests of the core: order independence, aggregation totals, unit splits, batch
//! planning limits, look-back monotonicity, and no panics on any input. Each property runs at
//! most 256 cases so that the suite stays fast.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use metergate_core::aggregate::{aggregate_hourly, aggregate_judged};
use metergate_core::batch::{plan_batches, wire_size};
use metergate_core::model::{Allocation, Tag};
use metergate_core::rules::{aws, azure, gcp};
use metergate_core::settings::Settings;
use metergate_core::time::{hour_floor, parse_rfc3339};
use metergate_core::units::to_units;
use metergate_core::{
    ContractSet, Field, Marketplace, RawRecord, UsageRecord, Validator, VerdictKind,
};
use proptest::prelude::*;
use rust_decimal::Decimal;

const NOW: &str = "2026-03-10T12:00:00Z";

fn now() -> DateTime<Utc> {
    parse_rfc3339(NOW).unwrap()
}

const CONTRACTS: &str = r#"[
 {"marketplace":"aws","product":"prod-a1","customer":"cust-1","status":"active",
  "starts_at":"2026-01-01T00:00:00Z",
  "dimensions":[{"name":"api_calls"},{"name":"storage_gb","unit":5},{"name":"seats"}]},
 {"marketplace":"aws","product":"prod-a1","customer":"cust-2","status":"cancelled",
  "starts_at":"2026-01-01T00:00:00Z","cancelled_at":"2026-03-10T11:00:00Z",
  "dimensions":[{"name":"api_calls"}]},
 {"marketplace":"azure","product":"offer-x","customer":"sub-1","status":"active",
  "starts_at":"2026-01-01T00:00:00Z","plan":"gold",
  "resource_id":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
  "dimensions":[{"name":"requests"},{"name":"gb_hours","unit":0.25}]},
 {"marketplace":"gcp","product":"svc.example.com","customer":"proj-1","status":"active",
  "starts_at":"2026-01-01T00:00:00Z","usage_reporting_id":"project:acme-prod",
  "dimensions":[{"name":"requests"},{"name":"cpu_hours","type":"decimal"},
                {"name":"storage","type":"decimal","unit":0.5}]},
 {"marketplace":"gcp","product":"svc.example.com","customer":"proj-2","status":"ended",
  "starts_at":"2026-01-01T00:00:00Z","ends_at":"2026-03-10T11:30:00Z",
  "usage_reporting_id":"project:acme-old","dimensions":[{"name":"requests"}]}
]"#;

fn contracts() -> ContractSet {
    ContractSet::from_json(CONTRACTS).unwrap()
}

fn validator(settings: Settings) -> Validator {
    Validator::new(contracts(), settings, &[]).unwrap()
}

fn text(s: impl Into<String>) -> Option<Field> {
    Some(Field::Text(s.into()))
}

fn fmt(t: DateTime<Utc>) -> String {
    metergate_core::time::format_rfc3339(t)
}

/// (marketplace, product, customer, dimension) of every contract dimension above.
const KEYS: [(&str, &str, &str, &str); 10] = [
    ("aws", "prod-a1", "cust-1", "api_calls"),
    ("aws", "prod-a1", "cust-1", "storage_gb"),
    ("aws", "prod-a1", "cust-1", "seats"),
    ("aws", "prod-a1", "cust-2", "api_calls"),
    ("azure", "offer-x", "sub-1", "requests"),
    ("azure", "offer-x", "sub-1", "gb_hours"),
    ("gcp", "svc.example.com", "proj-1", "requests"),
    ("gcp", "svc.example.com", "proj-1", "cpu_hours"),
    ("gcp", "svc.example.com", "proj-1", "storage"),
    ("gcp", "svc.example.com", "proj-2", "requests"),
];

/// A record for key `k` in the hour starting `hours_back` hours before now's hour, at
/// `minute`:`second` into it; Google intervals stay inside that hour.
fn record(
    k: usize,
    hours_back: i64,
    minute: i64,
    len_min: i64,
    quantity: &str,
    id: usize,
) -> RawRecord {
    let (mp, product, customer, dimension) = KEYS[k % KEYS.len()];
    let hour = hour_floor(now()) - Duration::hours(hours_back);
    let start = hour + Duration::minutes(minute);
    let mut r = RawRecord {
        marketplace: text(mp),
        product: text(product),
        customer: text(customer),
        dimension: text(dimension),
        quantity: text(quantity),
        start_time: text(fmt(start)),
        record_id: text(id.to_string()),
        ..RawRecord::default()
    };
    if mp == "gcp" {
        let end = (start + Duration::minutes(len_min)).min(hour + Duration::hours(1));
        r.end_time = text(fmt(end));
    }
    r
}

fn quantity_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..200).prop_map(|n| n.to_string()),
        (0u32..2000, 1u32..3).prop_map(|(n, s)| Decimal::new(i64::from(n), s).to_string()),
        Just("-1".to_owned()),
        Just("0".to_owned()),
        Just("abc".to_owned()),
        Just("2147483648".to_owned()),
    ]
}

fn settings_strategy() -> impl Strategy<Value = Settings> {
    (any::<bool>(), prop::sample::select(vec!["0s", "30m", "2h"])).prop_map(|(long, margin)| {
        Settings::from_json_value(serde_json::json!({
            "aws": {"lookback": if long { "24h" } else { "6h" }},
            "warning_margin": margin,
        }))
        .unwrap()
    })
}

/// Records with pairwise distinct dedup keys: each (key, hour) at most once.
fn distinct_records() -> impl Strategy<Value = Vec<RawRecord>> {
    prop::collection::btree_set((0usize..KEYS.len(), 0i64..30), 1..24).prop_flat_map(|keys| {
        let keys: Vec<(usize, i64)> = keys.into_iter().collect();
        let n = keys.len();
        (
            Just(keys),
            prop::collection::vec((0i64..60, 1i64..60, quantity_text()), n),
        )
            .prop_map(|(keys, rest)| {
                keys.iter()
                    .zip(rest)
                    .enumerate()
                    .map(|(i, ((k, h), (m, len, q)))| record(*k, *h, m, len, &q, i))
                    .collect::<Vec<_>>()
            })
    })
}

type Outcome = (VerdictKind, Vec<String>);

fn outcomes(v: &Validator, records: Vec<RawRecord>) -> BTreeMap<String, Outcome> {
    let report = v.validate(records.clone(), &[], now());
    records
        .iter()
        .zip(report.verdicts)
        .map(|(r, v)| {
            let mut codes: Vec<String> = v.findings.iter().map(|f| f.code.clone()).collect();
            codes.sort();
            (r.record_id_text().unwrap().to_owned(), (v.verdict, codes))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// With distinct dedup keys, the order of the input changes no verdict and no finding.
    #[test]
    fn order_does_not_change_verdicts(
        (records, shuffled) in distinct_records()
            .prop_flat_map(|r| (Just(r.clone()), Just(r).prop_shuffle())),
        settings in settings_strategy(),
    ) {
        let v = validator(settings);
        prop_assert_eq!(outcomes(&v, records), outcomes(&v, shuffled));
    }

    /// Two records with the same key: whichever comes first is judged as the only one would
    /// be, and the pair's verdicts just swap.
    #[test]
    fn same_hour_duplicates_swap(
        k in 0usize..KEYS.len(),
        h in 0i64..5,
        (m1, m2) in (0i64..30, 30i64..60),
        q1 in 1u32..4,
        q2 in 1u32..4,
    ) {
        let v = validator(Settings::default());
        let a = record(k, h, m1, 60, &q1.to_string(), 0);
        // Google keys are whole intervals: give the second the same interval.
        let b = if KEYS[k].0 == "gcp" {
            record(k, h, m1, 60, &q2.to_string(), 1)
        } else {
            record(k, h, m2, 60, &q2.to_string(), 1)
        };
        let ab = v.validate([a.clone(), b.clone()], &[], now());
        let ba = v.validate([b.clone(), a.clone()], &[], now());
        let alone_a = v.check_one(a, now());
        let alone_b = v.check_one(b, now());
        prop_assert_eq!(&ab.verdicts[0].findings, &alone_a.findings);
        prop_assert_eq!(&ba.verdicts[0].findings, &alone_b.findings);
        if alone_a.accepted() && alone_b.accepted() {
            let second = &ab.verdicts[1];
            let codes: Vec<&str> = second.findings.iter().map(|f| f.code.as_str()).collect();
            prop_assert!(
                codes.contains(&"duplicate-request") || codes.contains(&"duplicate-ignored"),
                "second record not flagged: {:?}", codes
            );
            prop_assert_eq!(q1 == q2 && KEYS[k].0 != "azure", second.accepted());
        }
    }
}

fn usage(mp: Marketplace, p: &str, c: &str, d: &str, q: Decimal, t: DateTime<Utc>) -> UsageRecord {
    UsageRecord {
        marketplace: mp,
        product: p.into(),
        customer: c.into(),
        dimension: d.into(),
        quantity: q,
        start_time: t,
        // Google intervals stay inside their hour, so that inputs of two hours never overlap.
        end_time: (mp == Marketplace::Gcp)
            .then(|| (t + Duration::minutes(5)).min(hour_floor(t) + Duration::hours(1))),
        record_id: None,
        plan: None,
        allocations: None,
        attributes: BTreeMap::new(),
    }
}

fn usage_strategy() -> impl Strategy<Value = UsageRecord> {
    (
        0usize..KEYS.len() + 2,
        0i64..(48 * 3600),
        0i64..100_000,
        0u32..4,
    )
        .prop_map(|(k, secs, m, scale)| {
            // Two keys beyond the contracts: no unit, no contract.
            let (mp, p, c, d) = KEYS
                .get(k)
                .copied()
                .unwrap_or(("aws", "prod-z", "nobody", "x"));
            let mp = Marketplace::parse(mp).unwrap();
            let t = now() - Duration::seconds(secs);
            usage(mp, p, c, d, Decimal::new(m, scale), t)
        })
}

type AggKey = (Marketplace, String, String, String);

fn key_of(r: &UsageRecord) -> AggKey {
    (
        r.marketplace,
        r.product.clone(),
        r.customer.clone(),
        r.dimension.clone(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// sum(out) + sum(carried) == sum(in) for every key; one record per key and hour; whole
    /// multiples of the unit sent and remainders below one unit carried.
    #[test]
    fn aggregate_preserves_totals(records in prop::collection::vec(usage_strategy(), 0..60)) {
        let cs = contracts();
        let mut want: BTreeMap<AggKey, Decimal> = BTreeMap::new();
        for r in &records {
            *want.entry(key_of(r)).or_default() += r.quantity;
        }
        let out = aggregate_hourly(records, Some(&cs));
        let mut got: BTreeMap<AggKey, Decimal> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for r in &out.records {
            *got.entry(key_of(r)).or_default() += r.quantity;
            prop_assert!(seen.insert((key_of(r), hour_floor(r.start_time))), "duplicate key {:?}", key_of(r));
            if let Some(unit) = unit_of(&cs, r) {
                prop_assert!(to_units(r.quantity, unit).unwrap().remainder.is_zero());
            }
        }
        let mut carried = BTreeSet::new();
        for c in &out.carried {
            let k = (c.marketplace, c.product.clone(), c.customer.clone(), c.dimension.clone());
            *got.entry(k.clone()).or_default() += c.remainder;
            prop_assert!(carried.insert(k), "two carries for one key");
            prop_assert!(c.remainder > Decimal::ZERO);
        }
        prop_assert_eq!(want, got);
    }

    /// `units * unit + remainder == quantity` and `0 <= remainder < unit`, exactly.
    #[test]
    fn to_units_splits_exactly(
        q in prop_oneof![
            (any::<i64>(), 0u32..12).prop_map(|(m, s)| Decimal::new(m, s)),
            (any::<i64>(), 0u32..29).prop_map(|(m, s)| Decimal::new(m, s)),
            Just(Decimal::MAX), Just(Decimal::MIN),
        ],
        unit in prop_oneof![
            (1i64..1_000_000, 0u32..8).prop_map(|(m, s)| Decimal::new(m, s)),
            (1i64..i64::MAX, 0u32..29).prop_map(|(m, s)| Decimal::new(m, s)),
            Just(Decimal::new(6_666_666_666_666_666_667, 28)),
        ],
    ) {
        // `None` is allowed only where the exact result does not fit a Decimal; the next
        // property shows ordinary values always split.
        if let Some(u) = to_units(q, unit) {
            prop_assert_eq!(u.units.fract(), Decimal::ZERO);
            prop_assert!(u.remainder >= Decimal::ZERO && u.remainder < unit, "{:?}", u);
            let back = u.units.checked_mul(unit).and_then(|b| b.checked_add(u.remainder));
            prop_assert_eq!(back, Some(q));
            prop_assert_eq!(u.billable(unit) + u.remainder, q);
        }
    }

    /// Quantities and units of ordinary size always split.
    #[test]
    fn to_units_splits_ordinary_values(
        q in (any::<i64>(), 0u32..12).prop_map(|(m, s)| Decimal::new(m, s)),
        unit in (1i64..1_000_000, 0u32..8).prop_map(|(m, s)| Decimal::new(m, s)),
    ) {
        prop_assert!(to_units(q, unit).is_some());
    }
}

fn unit_of(cs: &ContractSet, r: &UsageRecord) -> Option<Decimal> {
    let (_, c) = cs.find(r.marketplace, &r.product, &r.customer)?;
    c.dimension(&r.dimension)?.1.unit
}

fn batch_record_strategy() -> impl Strategy<Value = UsageRecord> {
    (
        0usize..3,
        0usize..4,
        prop_oneof![Just(0usize), Just(0usize), Just(0usize), 1usize..400],
    )
        .prop_map(|(mp, p, tags)| {
            let mp = Marketplace::ALL[mp];
            let product = format!("product-{p}");
            let mut r = usage(mp, &product, "c", "d", Decimal::ONE, now());
            if tags > 0 {
                // Big records, to reach the size limits with few of them.
                r.allocations = Some(
                    (0..tags)
                        .map(|i| Allocation {
                            quantity: Decimal::ZERO,
                            tags: vec![
                                Tag {
                                    key: format!("k{i}"),
                                    value: "v".repeat(256)
                                };
                                5
                            ],
                        })
                        .collect(),
                );
            }
            r
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Every record in exactly one call; AWS ≤ 25 records of one product and under 1 MB;
    /// Azure ≤ 25; Google one service, under 1 MB; input order kept within a call.
    #[test]
    fn plan_batches_respects_limits(records in prop::collection::vec(batch_record_strategy(), 0..120)) {
        let batches = plan_batches(&records);
        let mut seen = vec![0u32; records.len()];
        for b in &batches {
            prop_assert!(!b.records.is_empty());
            prop_assert!(b.records.windows(2).all(|w| w[0] < w[1]));
            let bytes: usize = b.records.iter().map(|i| wire_size(&records[*i])).sum();
            for i in &b.records {
                seen[*i] += 1;
                let r = &records[*i];
                prop_assert_eq!(r.marketplace, b.marketplace);
                if r.marketplace != Marketplace::Azure {
                    prop_assert_eq!(&r.product, &b.product);
                }
            }
            let (max_n, max_bytes) = match b.marketplace {
                Marketplace::Aws => (aws::MAX_BATCH_RECORDS, aws::MAX_BATCH_BYTES),
                Marketplace::Azure => (azure::MAX_BATCH_EVENTS, usize::MAX),
                Marketplace::Gcp => (gcp::MAX_OPERATIONS_PER_REPORT, gcp::MAX_REQUEST_BYTES),
            };
            prop_assert!(b.records.len() <= max_n);
            // A single record over the limit can only travel alone.
            prop_assert!(b.records.len() == 1 || bytes < max_bytes, "{} bytes", bytes);
        }
        prop_assert!(seen.iter().all(|n| *n == 1), "lost or repeated: {:?}", seen);
    }

    /// A record accepted at `now` is accepted at every earlier instant that is not before its
    /// own time (its start; for Google its end): the look-back only ever closes.
    #[test]
    fn accepted_stays_accepted_earlier(
        k in 0usize..KEYS.len(),
        secs_back in 0i64..(30 * 3600),
        len_min in 1i64..60,
        earlier in 0.0f64..1.0,
        settings in settings_strategy(),
        now_shift in 0i64..(40 * 86_400),
    ) {
        let v = validator(settings);
        let (mp, product, customer, dimension) = KEYS[k];
        let now = now() + Duration::seconds(now_shift - 20 * 86_400);
        let start = now - Duration::seconds(secs_back);
        let mut r = RawRecord {
            marketplace: text(mp),
            product: text(product),
            customer: text(customer),
            dimension: text(dimension),
            quantity: text("5"),
            start_time: text(fmt(start)),
            ..RawRecord::default()
        };
        let mut own = start;
        if mp == "gcp" {
            let end = start + Duration::minutes(len_min);
            own = end;
            r.end_time = text(fmt(end));
        }
        if own <= now && v.check_one(r.clone(), now).accepted() {
            let span = (now - own).num_seconds();
            let then = own + Duration::seconds((span as f64 * earlier) as i64);
            let verdict = v.check_one(r, then);
            prop_assert!(verdict.accepted(), "accepted at {} but not at {}: {:?}", now, then, verdict.findings);
        }
    }
}

fn any_field() -> impl Strategy<Value = Option<Field>> {
    prop_oneof![
        Just(None),
        any::<String>().prop_map(|s| Some(Field::Text(s))),
        "[a-z0-9:/ ._@#-]{0,12}".prop_map(|s| Some(Field::Text(s))),
        "-?[0-9]{0,30}(\\.[0-9]{0,30})?(e[0-9]{1,3})?".prop_map(|s| Some(Field::Number(s))),
        "20[0-9]{2}-[01][0-9]-[0-3][0-9][T ][0-2][0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,12})?(Z|[+-][0-2][0-9]:[0-5][0-9])?"
            .prop_map(|s| Some(Field::Text(s))),
        prop::sample::select(vec!["boolean", "array", "object"]).prop_map(|k| Some(Field::Wrong(k))),
    ]
}

/// A field that is usually right for its slot, so that checks past parsing get reached.
fn field_or(valid: Vec<&'static str>) -> impl Strategy<Value = Option<Field>> {
    prop_oneof![
        3 => prop::sample::select(valid).prop_map(|s| Some(Field::Text(s.to_owned()))),
        1 => any_field(),
    ]
}

fn any_allocations() -> impl Strategy<Value = Option<serde_json::Value>> {
    prop_oneof![
        Just(None),
        any::<String>().prop_map(|s| Some(serde_json::Value::String(s))),
        (prop::collection::vec((-3i64..2_147_483_649, prop::collection::vec((any::<String>(), any::<String>()), 0..7)), 0..4))
            .prop_map(|v| Some(serde_json::json!(v.into_iter().map(|(q, tags)| serde_json::json!({
                "quantity": q,
                "tags": tags.into_iter().map(|(k, v)| serde_json::json!({"key": k, "value": v})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>()))),
        Just(Some(serde_json::json!({"quantity": 1}))),
        Just(Some(serde_json::json!([{"quantity": "1e400", "tags": [{"key": 1}]}]))),
    ]
}

fn any_raw() -> impl Strategy<Value = RawRecord> {
    (
        (
            field_or(vec!["aws", "azure", "gcp"]),
            field_or(vec!["prod-a1", "offer-x", "svc.example.com"]),
            field_or(vec!["cust-1", "cust-2", "sub-1", "proj-1", "proj-2"]),
            field_or(vec![
                "api_calls",
                "storage_gb",
                "requests",
                "gb_hours",
                "svc.example.com/storage",
                "storage",
            ]),
            field_or(vec![
                "0",
                "1",
                "17",
                "0.25",
                "-3",
                "2147483648",
                "9223372036854775808",
            ]),
        ),
        (
            field_or(vec![
                "2026-03-10T10:00:00Z",
                "2026-03-10T11:59:59+00:00",
                "2026-03-10T12:00:01Z",
            ]),
            field_or(vec![
                "2026-03-10T10:30:00Z",
                "2026-03-10T12:05:00Z",
                "2026-03-10T09:00:00Z",
            ]),
            any_field(),
            field_or(vec!["gold", "silver"]),
            any_allocations(),
            prop::collection::btree_map("[a-z]{1,6}", any_field(), 0..3),
        ),
    )
        .prop_map(
            |((m, p, c, d, q), (s, e, id, plan, allocations, attrs))| RawRecord {
                marketplace: m,
                product: p,
                customer: c,
                dimension: d,
                quantity: q,
                start_time: s,
                end_time: e,
                record_id: id,
                plan,
                allocations,
                attributes: attrs
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k, v)))
                    .collect(),
                duplicate_keys: Vec::new(),
            },
        )
}

fn contract_json() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        any::<String>().prop_map(serde_json::Value::String),
        Just(serde_json::json!("2026-01-01T00:00:00Z")),
        Just(serde_json::json!("2026-03-10T11:00:00Z")),
        Just(serde_json::json!("active")),
        Just(serde_json::json!("cancelled")),
        Just(serde_json::json!("aws")),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>().prop_map(|n| serde_json::json!(n)),
        Just(serde_json::json!([{"name": "d", "unit": 0}])),
        Just(serde_json::json!([{"name": "d", "unit": "1e-30"}, {"name": "d"}])),
        Just(serde_json::Value::Null),
    ];
    let keys = prop::sample::select(vec![
        "marketplace",
        "product",
        "customer",
        "status",
        "starts_at",
        "ends_at",
        "cancelled_at",
        "plan",
        "dimensions",
        "aws_account_id",
        "license_arn",
        "resource_id",
        "usage_reporting_id",
        "other",
    ]);
    prop_oneof![
        any::<String>(),
        prop::collection::vec(prop::collection::btree_map(keys, value, 0..14), 0..4)
            .prop_map(|v| serde_json::to_string(&v).unwrap()),
        // A valid set with one value replaced by noise.
        (0usize..CONTRACTS.len(), any::<String>()).prop_map(|(at, noise)| {
            let mut at = at;
            while !CONTRACTS.is_char_boundary(at) {
                at -= 1;
            }
            format!("{}{}{}", &CONTRACTS[..at], noise, &CONTRACTS[at..])
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary values in every field: a verdict, never a panic, and rejected iff an error.
    #[test]
    fn no_record_panics(records in prop::collection::vec(any_raw(), 1..6), settings in settings_strategy()) {
        let v = validator(settings);
        let mut s = v.session(now());
        for r in &records {
            let one = v.check_one(r.clone(), now());
            let _ = v.deadline(r.clone(), now());
            let verdict = s.check(r.clone());
            prop_assert_eq!(verdict.accepted(), !verdict.findings.iter().any(|f| f.is_error()));
            prop_assert_eq!(one.accepted(), !one.findings.iter().any(|f| f.is_error()));
        }
        prop_assert_eq!(s.summary().records, records.len() as u64);
    }

    /// Arbitrary contracts JSON: a set or an error, never a panic.
    #[test]
    fn no_contracts_json_panics(text in contract_json()) {
        if let Ok(cs) = ContractSet::from_json(&text) {
            let v = Validator::new(cs, Settings::default(), &[]).unwrap();
            let r = record(0, 1, 0, 30, "3", 0);
            let _ = v.check_one(r, now());
        }
    }

    /// Arbitrary record JSON text: a record or an error, never a panic.
    #[test]
    fn no_record_json_panics(text in prop_oneof![
        any::<String>(),
        "\\{\"(quantity|allocations|attributes|start_time)\": ?(\"[^\"]{0,8}\"|[0-9.e+-]{1,30}|\\[\\]|\\{\\}|null|true)\\}",
    ]) {
        if let Ok(r) = serde_json::from_str::<RawRecord>(&text) {
            let _ = validator(Settings::default()).check_one(r, now());
        }
    }

    /// Arbitrary settings values: settings or an error, never a panic.
    #[test]
    fn no_settings_panics(margin in any::<String>(), lookback in any::<String>()) {
        let _ = Settings::from_json_value(serde_json::json!({"warning_margin": margin}));
        let _ = Settings::from_json_value(serde_json::json!({"aws": {"lookback": lookback}}));
    }
}

/// Every built-in finding has a hint (the issue asks for concrete hints).
#[test]
fn findings_carry_hints() {
    let v = validator(Settings::default());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(200));
    runner
        .run(&prop::collection::vec(any_raw(), 1..4), |records| {
            for r in records {
                for f in v.check_one(r, now()).findings {
                    prop_assert!(
                        f.hint.as_deref().is_some_and(|h| !h.is_empty()),
                        "no hint: {:?}",
                        f
                    );
                }
            }
            Ok(())
        })
        .unwrap();
}

fn raw_of(r: &UsageRecord) -> RawRecord {
    RawRecord {
        marketplace: text(r.marketplace.as_str()),
        product: text(r.product.clone()),
        customer: text(r.customer.clone()),
        dimension: text(r.dimension.clone()),
        quantity: text(r.quantity.to_string()),
        start_time: text(fmt(r.start_time)),
        end_time: r.end_time.map(|t| Field::Text(fmt(t))),
        ..RawRecord::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// What `aggregate_hourly` emits never collides with itself in the validator.
    #[test]
    fn aggregated_records_are_not_duplicates(records in prop::collection::vec(usage_strategy(), 0..60)) {
        let out = aggregate_hourly(records, Some(&contracts()));
        let v = validator(Settings::default());
        let report = v.validate(out.records.iter().map(raw_of), &[], now());
        for verdict in &report.verdicts {
            for f in &verdict.findings {
                prop_assert!(
                    !matches!(f.code.as_str(), "duplicate-request" | "duplicate-ignored" | "overlapping-interval"),
                    "{:?}", f
                );
            }
        }
    }
}

/// Heartbeats: one zero record per unused dimension of each active AWS contract, each one
/// accepted by the validator once its hour is over.
#[test]
fn heartbeats_are_accepted() {
    use metergate_core::heartbeat::heartbeats;
    let cs = contracts();
    let hour = hour_floor(now()) - Duration::hours(2);
    let beats = heartbeats(&cs, hour + Duration::minutes(17), |_, d| d == "seats");
    let dims: Vec<&str> = beats.iter().map(|r| r.dimension.as_str()).collect();
    // cust-2 is cancelled; Azure and Google get none; `seats` had usage.
    assert_eq!(dims, ["api_calls", "storage_gb"]);
    let v = validator(Settings::default());
    for b in &beats {
        assert_eq!(b.start_time, hour);
        assert!(b.quantity.is_zero());
        let verdict = v.check_one(raw_of(b), hour + Duration::hours(1));
        assert!(
            verdict.accepted() && verdict.findings.is_empty(),
            "{:?}",
            verdict.findings
        );
    }
    // Before the contract starts there is nothing to send.
    let early = parse_rfc3339("2025-12-31T23:00:00Z").unwrap();
    assert!(heartbeats(&cs, early, |_, _| false).is_empty());
}

/// A record that may break any quantity or time rule: fractions, zero, negative, near AWS's
/// maximum; from two days ago to two hours ahead.
fn any_usage() -> impl Strategy<Value = UsageRecord> {
    (
        0usize..KEYS.len() + 1,
        -7200i64..(48 * 3600),
        prop_oneof![
            (-5i64..100_000, 0u32..4).prop_map(|(m, s)| Decimal::new(m, s)),
            (2_147_483_000i64..2_147_483_700, 0u32..2).prop_map(|(m, s)| Decimal::new(m, s)),
            Just(Decimal::ZERO),
        ],
    )
        .prop_map(|(k, secs, q)| {
            let (mp, p, c, d) = KEYS
                .get(k)
                .copied()
                .unwrap_or(("aws", "prod-z", "nobody", "x"));
            let mp = Marketplace::parse(mp).unwrap();
            usage(mp, p, c, d, q, now() - Duration::seconds(secs))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// `aggregate` never turns accepted records into a rejected sum: every record it writes
    /// from records the core accepts is accepted too (a sum the core would reject is replaced
    /// by its parts, and then it really is rejected).
    #[test]
    fn aggregate_keeps_accepted_records_billable(
        records in prop::collection::vec(any_usage(), 0..40),
        settings in settings_strategy(),
    ) {
        let v = validator(settings);
        let accepted: Vec<UsageRecord> = records
            .into_iter()
            .filter(|r| !v.judge_record(r, now()).iter().any(|f| f.is_error()))
            .collect();
        let total: Decimal = accepted.iter().map(|r| r.quantity).sum();
        let out = aggregate_judged(accepted, &v, now());
        for r in &out.records {
            let findings = v.judge_record(r, now());
            prop_assert!(!findings.iter().any(|f| f.is_error()), "{:?} -> {:?}", r, findings);
        }
        for k in &out.kept_parts {
            prop_assert!(!k.findings.is_empty());
        }
        let sent: Decimal = out.records.iter().map(|r| r.quantity).sum();
        let carried: Decimal = out.carried.iter().map(|c| c.remainder).sum();
        prop_assert_eq!(sent + carried, total);
    }

    /// No hint proposes a record that the core rejects: every suggestion left on a finding,
    /// applied to its record, passes the core where it claims to.
    #[test]
    fn no_hint_suggestion_is_rejected(
        records in prop::collection::vec(any_usage(), 1..12),
        settings in settings_strategy(),
    ) {
        let v = validator(settings);
        let mut session = v.session(now());
        for r in &records {
            let (verdict, parsed) = session.check_full(raw_of(r));
            let Some(parsed) = parsed else { continue };
            for f in &verdict.findings {
                if let Some(s) = &f.suggestion {
                    let (candidate, at) = s.apply(&parsed, now());
                    let judged = v.judge_record(&candidate, at);
                    prop_assert!(s.accepts(&judged), "{:?}: {:?} -> {:?}", f.hint, candidate, judged);
                }
            }
        }
    }
}
