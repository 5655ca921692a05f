//! Policy throughput: records per second through compiled policies, one core.
//!
//! `cargo bench -p metergate-core --bench policy`; criterion prints `thrpt` in elements
//! (records) per second. The target is 500,000 records/s with one typical policy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::hint::black_box;

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use metergate_core::contract::{Contract, ContractStatus, Dimension};
use metergate_core::finding::Finding;
use metergate_core::model::{Marketplace, UsageRecord};
use metergate_core::policy::{PolicyContext, PolicySet, PolicySource};
use metergate_core::time::parse_rfc3339;
use rust_decimal::Decimal;
use serde_json::json;

const BATCH: usize = 1_000;

fn t(s: &str) -> DateTime<Utc> {
    parse_rfc3339(s).unwrap()
}

fn records() -> Vec<UsageRecord> {
    (0..BATCH)
        .map(|i| {
            let mut attributes = BTreeMap::new();
            if i % 10 != 0 {
                attributes.insert(
                    "internal_customer_identifier".to_owned(),
                    format!("ACME-{i}"),
                );
            }
            UsageRecord {
                marketplace: Marketplace::Aws,
                product: "prod-a1b2c3".into(),
                customer: format!("cust-{}", i % 50),
                dimension: if i % 3 == 0 {
                    "storage_gb".into()
                } else {
                    "api_calls".into()
                },
                // Mostly ordinary usage; one record in a hundred over the api_calls cap.
                quantity: Decimal::from(if i % 100 == 7 {
                    150_000
                } else {
                    (i * 37) % 1000 + 1
                }),
                start_time: t("2026-03-31T10:00:00Z"),
                end_time: None,
                record_id: Some(format!("r-{i}")),
                plan: None,
                allocations: None,
                attributes,
            }
        })
        .collect()
}

fn contract() -> Contract {
    Contract {
        marketplace: Marketplace::Aws,
        product: "prod-a1b2c3".into(),
        customer: "cust-1".into(),
        status: ContractStatus::Active,
        status_word: None,
        starts_at: t("2026-01-01T00:00:00Z"),
        ends_at: None,
        cancelled_at: None,
        plan: None,
        customer_identifier: None,
        aws_account_id: None,
        license_arn: None,
        resource_id: None,
        resource_uri: None,
        usage_reporting_id: None,
        marketplace_id: None,
        dimensions: vec![
            Dimension {
                name: "api_calls".into(),
                unit: None,
                kind: None,
                price: None,
                currency: None,
            },
            Dimension {
                name: "storage_gb".into(),
                unit: None,
                kind: None,
                price: None,
                currency: None,
            },
        ],
        properties: Default::default(),
    }
}

fn example(name: &str) -> PolicySource {
    let path = format!(
        "{}/../examples/policies/{name}.rhai",
        env!("CARGO_MANIFEST_DIR")
    );
    PolicySource {
        name: name.into(),
        source: std::fs::read_to_string(path).unwrap(),
    }
}

fn params() -> BTreeMap<String, serde_json::Value> {
    BTreeMap::from([
        (
            "dimension_cap".to_owned(),
            json!({"caps": {"api_calls": 100000, "storage_gb": 5000}}),
        ),
        (
            "spike".to_owned(),
            json!({"max_per_hour": {"api_calls": 50000}}),
        ),
    ])
}

fn bench_set(c: &mut Criterion, label: &str, set: &PolicySet) {
    let recs = records();
    let contract = contract();
    let findings: Vec<Finding> = Vec::new();
    let now = t("2026-03-31T12:00:00Z");
    let mut group = c.benchmark_group("policy");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(label, |b| {
        let mut out = Vec::with_capacity(64);
        b.iter(|| {
            for rec in &recs {
                out.clear();
                let ctx = PolicyContext {
                    now,
                    contract: Some(&contract),
                    findings: &findings,
                };
                set.run(black_box(rec), &ctx, &mut out);
                black_box(&out);
            }
        });
    });
    group.finish();
}

fn policies(c: &mut Criterion) {
    let params = params();
    for name in [
        "dimension_cap",
        "require_internal_id",
        "month_end_cutoff",
        "spike",
    ] {
        let set = PolicySet::compile(&[example(name)], &params).unwrap();
        bench_set(c, name, &set);
    }
    let trivial = PolicySource {
        name: "trivial".into(),
        source: "fn check(record, ctx) { }".into(),
    };
    bench_set(
        c,
        "empty_check",
        &PolicySet::compile(&[trivial], &params).unwrap(),
    );
    let all: Vec<PolicySource> = [
        "dimension_cap",
        "require_internal_id",
        "month_end_cutoff",
        "spike",
    ]
    .into_iter()
    .map(example)
    .collect();
    bench_set(
        c,
        "all_four_examples",
        &PolicySet::compile(&all, &params).unwrap(),
    );
}

/// The hostile set: every policy of the bad-input catalogue (`tests/bad_inputs/cases/policy_*`)
/// that compiles, run on the record its case makes misbehave (`record_id` "bad"). Each must
/// end within a few tens of milliseconds per record: the limits count operations (callbacks
/// and size-dependent builtins included), never time.
fn hostile(c: &mut Criterion) {
    let dir = format!("{}/../tests/bad_inputs/cases", env!("CARGO_MANIFEST_DIR"));
    let mut cases: Vec<(String, String)> = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("policy_") {
            continue;
        }
        for file in std::fs::read_dir(&path).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "rhai") {
                let source = std::fs::read_to_string(&file).unwrap();
                if !source.contains("@@REPEAT") {
                    cases.push((name.clone(), source));
                }
            }
        }
    }
    cases.sort();
    let mut rec = records().swap_remove(1);
    rec.record_id = Some("bad".into());
    let contract = contract();
    let now = t("2026-03-31T12:00:00Z");
    let mut group = c.benchmark_group("hostile");
    group
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(200))
        .measurement_time(std::time::Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    for (name, source) in cases {
        let src = PolicySource {
            name: "hostile".into(),
            source,
        };
        let Ok(set) = PolicySet::compile(&[src], &BTreeMap::new()) else {
            continue;
        };
        group.bench_function(name.trim_start_matches("policy_"), |b| {
            let mut out = Vec::with_capacity(8);
            b.iter(|| {
                out.clear();
                let ctx = PolicyContext {
                    now,
                    contract: Some(&contract),
                    findings: &[],
                };
                set.run(black_box(&rec), &ctx, &mut out);
                black_box(&out);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, policies, hostile);
criterion_main!(benches);
