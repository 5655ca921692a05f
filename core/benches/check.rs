//! The per-record path and the dedup state, one core.
//!
//! `cargo bench -p metergate-core --bench check`; criterion prints `thrpt` in elements
//! (records, or keys for dedup) per second. Targets (bench/README.md): the CLI's built-in check
//! at 1,000,000 records/s or more, 500,000 with one typical policy; these benches are the
//! core's share of that, without CSV reading or output.
//!
//! - `check/session_builtin`: `Session::check` on a batch of pre-parsed `RawRecord`s (a mix of
//!   AWS, Azure and Google records, about a third of them with a mistake), a fresh session per
//!   batch so that dedup starts empty each time.
//! - `check/session_dimension_cap`: the same with examples/policies/dimension_cap.rhai.
//! - `check/check_one`: `Validator::check_one` (stateless, as forms call it).
//! - `dedup/hours`: `DedupState::lookup` + `insert` for AWS/Azure hour keys.
//! - `dedup/gcp_intervals`: the same for chained Google intervals (overlap search).
//! - `dedup/gcp_after_long_interval`: one interval over 2020..2025, then one-minute intervals
//!   (issue 16: quadratic before the interval index).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use metergate_core::dedup::{DedupState, Origin, Seen};
use metergate_core::time::parse_rfc3339;
use metergate_core::{
    ContractSet, Field, Marketplace, PolicySource, RawRecord, Settings, Validator,
};
use rust_decimal::Decimal;
use serde_json::json;

const BATCH: usize = 10_000;
const NOW: &str = "2026-03-17T12:30:00Z";
const GCP_PRODUCT: &str = "logstream.endpoints.acme-public.cloud.goog";
const AWS_CUSTOMERS: usize = 200;
const AZURE_CUSTOMERS: usize = 60;
const GCP_CUSTOMERS: usize = 40;

fn t(s: &str) -> DateTime<Utc> {
    parse_rfc3339(s).unwrap()
}

/// A small deterministic generator (xorshift64*), so the batch is the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn contracts() -> ContractSet {
    let mut all = Vec::new();
    for i in 0..AWS_CUSTOMERS {
        all.push(json!({
            "marketplace": "aws", "product": "prod-logstream", "customer": format!("cust-{i}"),
            "status": "active", "starts_at": "2025-06-01T00:00:00Z",
            "customer_identifier": format!("Xk8JmQ2p{i:03}"),
            "dimensions": [{"name": "api_calls"}, {"name": "data_gb", "unit": "5"}, {"name": "seats"}]
        }));
    }
    for i in 0..AZURE_CUSTOMERS {
        all.push(json!({
            "marketplace": "azure", "product": "contoso-analytics-saas", "customer": format!("tenant-{i}"),
            "status": "active", "starts_at": "2025-06-01T00:00:00Z", "plan": "gold",
            "resource_id": format!("0f1e2d3c-4b5a-4978-8796-a5b4c3d2e{i:03}"),
            "dimensions": [{"name": "events_1k"}, {"name": "premium_hours", "unit": "0.5"}]
        }));
    }
    for i in 0..GCP_CUSTOMERS {
        all.push(json!({
            "marketplace": "gcp", "product": GCP_PRODUCT, "customer": format!("acct-{i}"),
            "status": "active", "starts_at": "2026-01-01T00:00:00Z",
            "usage_reporting_id": format!("project:acme-prod-{i}"),
            "dimensions": [{"name": "requests", "type": "int"}, {"name": "storage_gib_hours", "type": "decimal"}]
        }));
    }
    ContractSet::from_json(&serde_json::Value::Array(all).to_string()).unwrap()
}

fn fmt(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn raw(cells: &[(&str, String)]) -> RawRecord {
    let mut r = RawRecord::default();
    for (k, v) in cells {
        r.set(k, Field::Text(v.clone()));
    }
    r
}

/// BATCH records as the CSV reader hands them over: every cell text. About two thirds good
/// (one per customer, dimension and hour), the rest mistakes of the kinds bench/gen_data.mjs
/// makes.
fn records() -> Vec<RawRecord> {
    let now = t(NOW);
    let hour = |h: i64| now - chrono::Duration::minutes(30) - chrono::Duration::hours(h);
    let mut rng = Rng(0x6d65_7465_7267_6174);
    let mut out = Vec::with_capacity(BATCH);
    let mut i = 0u64;
    while out.len() < BATCH {
        i += 1;
        let id = format!("r-{i:07}");
        let mistake = rng.below(100) < 35;
        let kind = rng.below(7);
        let rec = match rng.below(20) {
            // AWS, 45 %
            0..=8 => {
                let c = rng.below(AWS_CUSTOMERS as u64);
                let (dim, q) = match rng.below(3) {
                    0 => ("api_calls", rng.below(240_000).to_string()),
                    1 => ("data_gb", (rng.below(400) * 5).to_string()),
                    _ => ("seats", (1 + rng.below(60)).to_string()),
                };
                let mut start = fmt(
                    hour(rng.below(5) as i64) + chrono::Duration::minutes(rng.below(30) as i64)
                );
                let (mut dim, mut q, mut cust) = (dim.to_owned(), q, format!("cust-{c}"));
                if mistake {
                    match kind {
                        0 => start = fmt(now - chrono::Duration::hours(9)),
                        1 => q = "17".into(),
                        2 => dim = "api_call".into(),
                        3 => q = "1,5".into(),
                        4 => start = start.trim_end_matches('Z').to_owned(),
                        5 => cust = format!("{cust}x"),
                        _ => {} // a duplicate of its hour, if the key was seen
                    }
                }
                raw(&[
                    ("record_id", id),
                    ("marketplace", "aws".into()),
                    ("product", "prod-logstream".into()),
                    ("customer", cust),
                    ("dimension", dim),
                    ("quantity", q),
                    ("start_time", start),
                    ("team", "ingest".into()),
                ])
            }
            // Azure, 35 %
            9..=15 => {
                let c = rng.below(AZURE_CUSTOMERS as u64);
                let (dim, q) = if rng.below(2) == 0 {
                    ("events_1k", format!("{}.{}", rng.below(900), rng.below(10)))
                } else {
                    ("premium_hours", format!("{}.5", rng.below(8)))
                };
                let mut start =
                    fmt(hour(rng.below(23) as i64)
                        + chrono::Duration::minutes(rng.below(30) as i64));
                let (mut dim, mut q, mut cust) = (dim.to_owned(), q, format!("tenant-{c}"));
                if mistake {
                    match kind {
                        0 => start = fmt(now - chrono::Duration::hours(30)),
                        1 => q = "1.3".into(),
                        2 => dim = "event_1k".into(),
                        3 => q = "0".into(),
                        4 => start = start.trim_end_matches('Z').to_owned(),
                        5 => cust = cust.to_uppercase(),
                        _ => {}
                    }
                }
                raw(&[
                    ("record_id", id),
                    ("marketplace", "azure".into()),
                    ("product", "contoso-analytics-saas".into()),
                    ("customer", cust),
                    ("dimension", dim),
                    ("quantity", q),
                    ("start_time", start),
                    ("plan", "gold".into()),
                    ("team", "search".into()),
                ])
            }
            // Google, 20 %
            _ => {
                let c = rng.below(GCP_CUSTOMERS as u64);
                let h = hour(rng.below(23) as i64 + 1);
                let h = h - chrono::Duration::minutes(30);
                let (dim, q) = if rng.below(2) == 0 {
                    (
                        "requests".to_owned(),
                        (1000 + rng.below(90_000)).to_string(),
                    )
                } else {
                    (
                        format!("{GCP_PRODUCT}/storage_gib_hours"),
                        format!("{}.{:02}", rng.below(1000), rng.below(100)),
                    )
                };
                let (mut start, mut end) = (fmt(h), fmt(h + chrono::Duration::hours(1)));
                let (mut dim, mut q, mut cust) = (dim, q, format!("acct-{c}"));
                if mistake {
                    match kind {
                        0 => {
                            start = fmt(now + chrono::Duration::minutes(10));
                            end = fmt(now + chrono::Duration::minutes(70));
                        }
                        1 => q = "12.5".into(),
                        2 => dim = "request".into(),
                        3 => q = "-100".into(),
                        4 => start = start.trim_end_matches('Z').to_owned(),
                        5 => cust = format!("{cust}x"),
                        _ => {}
                    }
                }
                raw(&[
                    ("record_id", id),
                    ("marketplace", "gcp".into()),
                    ("product", GCP_PRODUCT.into()),
                    ("customer", cust),
                    ("dimension", dim),
                    ("quantity", q),
                    ("start_time", start),
                    ("end_time", end),
                    ("team", "billing".into()),
                ])
            }
        };
        out.push(rec);
    }
    out
}

fn dimension_cap() -> PolicySource {
    let path = format!(
        "{}/../examples/policies/dimension_cap.rhai",
        env!("CARGO_MANIFEST_DIR")
    );
    PolicySource {
        name: "dimension_cap".into(),
        source: std::fs::read_to_string(path).unwrap(),
    }
}

fn check(c: &mut Criterion) {
    let now = t(NOW);
    let recs = records();
    let builtin = Validator::new(contracts(), Settings::default(), &[]).unwrap();
    let settings = Settings::from_json_value(json!({
        "params": {"dimension_cap": {"caps": {"api_calls": 200000, "data_gb": 1800, "events_1k": 850}}}
    }))
    .unwrap();
    let capped = Validator::new(contracts(), settings, &[dimension_cap()]).unwrap();

    // A sanity check, outside the timing: the mix has accepted and rejected records.
    let mut s = builtin.session(now);
    for r in recs.clone() {
        s.check(r);
    }
    let summary = s.into_summary();
    assert!(summary.accepted > BATCH as u64 / 3 && summary.rejected > BATCH as u64 / 5);

    let mut group = c.benchmark_group("check");
    // Flat sampling: 10 samples of equal size, so a slow batch does not stretch the run.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(BATCH as u64));
    for (label, v) in [
        ("session_builtin", &builtin),
        ("session_dimension_cap", &capped),
    ] {
        group.bench_function(label, |b| {
            b.iter_batched(
                || recs.clone(),
                |batch| {
                    let mut s = v.session(now);
                    for r in batch {
                        black_box(s.check(r));
                    }
                    s.into_summary()
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.bench_function("check_one", |b| {
        b.iter_batched(
            || recs.clone(),
            |batch| {
                for r in batch {
                    black_box(builtin.check_one(r, now));
                }
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

fn dedup(c: &mut Criterion) {
    const KEYS: usize = 100_000;
    let start = t("2026-03-16T12:00:00Z");
    // AWS/Azure: (contract, dimension, hour) keys, each looked up then inserted; every tenth
    // key repeats an earlier one.
    let hour_keys: Vec<(u32, u32, DateTime<Utc>, Decimal)> = (0..KEYS)
        .map(|i| {
            let i = if i % 10 == 9 { i / 2 } else { i };
            let contract = (i % 5_000) as u32;
            let dim = ((i / 5_000) % 3) as u32;
            let hour = (i / 15_000) as i64;
            (
                contract,
                dim,
                start + chrono::Duration::hours(hour) + chrono::Duration::minutes((i % 60) as i64),
                Decimal::from(i % 1000),
            )
        })
        .collect();
    // Google: chained hourly intervals per (contract, metric).
    #[allow(clippy::type_complexity)]
    let gcp_keys: Vec<(u32, u32, DateTime<Utc>, DateTime<Utc>, Decimal)> = (0..KEYS)
        .map(|i| {
            let contract = (i % 2_000) as u32;
            let dim = ((i / 2_000) % 2) as u32;
            let h = (i / 4_000) as i64;
            let s = start + chrono::Duration::hours(h);
            (
                contract,
                dim,
                s,
                s + chrono::Duration::hours(1),
                Decimal::from(i % 1000),
            )
        })
        .collect();

    let mut group = c.benchmark_group("dedup");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(KEYS as u64));
    group.bench_function("hours", |b| {
        b.iter(|| {
            let mut d = DedupState::new();
            for &(cid, dim, at, q) in &hour_keys {
                let mp = if cid % 2 == 0 {
                    Marketplace::Aws
                } else {
                    Marketplace::Azure
                };
                let series = cid * 4 + dim;
                black_box(d.lookup(mp, series, at, None, q));
                d.insert(mp, series, at, None, seen(cid, q));
            }
            d.len()
        });
    });
    group.bench_function("gcp_intervals", |b| {
        b.iter(|| {
            let mut d = DedupState::new();
            for &(cid, dim, s, e, q) in &gcp_keys {
                let series = cid * 4 + dim;
                black_box(d.lookup(Marketplace::Gcp, series, s, Some(e), q));
                d.insert(Marketplace::Gcp, series, s, Some(e), seen(cid, q));
            }
            d.len()
        });
    });
    // Issue 16: one interval spanning 2020..2025, then one-minute intervals of the same
    // series. Before the interval index this was quadratic (every search walked back over
    // everything the long interval could reach).
    let long = (t("2020-01-01T00:00:00Z"), t("2025-12-31T00:00:00Z"));
    let minutes: Vec<(DateTime<Utc>, DateTime<Utc>)> = (0..KEYS as i64)
        .map(|i| {
            let s = t("2026-01-01T00:00:00Z") + chrono::Duration::minutes(i);
            (s, s + chrono::Duration::minutes(1))
        })
        .collect();
    group.bench_function("gcp_after_long_interval", |b| {
        b.iter(|| {
            let mut d = DedupState::new();
            d.insert(
                Marketplace::Gcp,
                0,
                long.0,
                Some(long.1),
                seen(0, Decimal::ONE),
            );
            for &(s, e) in &minutes {
                black_box(d.lookup(Marketplace::Gcp, 0, s, Some(e), Decimal::ONE));
                d.insert(Marketplace::Gcp, 0, s, Some(e), seen(0, Decimal::ONE));
            }
            d.len()
        });
    });
    group.finish();
}

fn seen(contract: u32, quantity: Decimal) -> Seen {
    Seen {
        quantity,
        contract,
        origin: Origin::Input,
    }
}

criterion_group!(benches, check, dedup);
criterion_main!(benches);
