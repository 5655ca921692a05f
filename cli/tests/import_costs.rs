//! `metergate import costs FILE`: a generic cost export (CSV, JSON) billed once per period,
//! with bad rows named by file, line and field while the good rows go on. Each case runs on
//! SQLite and on PostgreSQL (`pg_support`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg_support;
#[path = "submit_support/mod.rs"]
mod support;

use pg_support::TestLedger;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use metergate::ledger::{Filter, Ledger};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use support::*;

fn contracts(dir: &Path) -> PathBuf {
    let start = rfc(hours_ago(48));
    let v = json!([
        {"marketplace":"aws","product":"prod-a","customer":"cust-1","status":"active","starts_at":start,
         "dimensions":[{"name":"usage_fee","price":"0.01"}],
         "properties":{"internal_customer_identifier":"acme-42"}},
        {"marketplace":"aws","product":"prod-a","customer":"cust-2","status":"active","starts_at":start,
         "dimensions":[{"name":"usage_fee","price":"0.01","currency":"EUR"}]},
        {"marketplace":"aws","product":"prod-a","customer":"cust-3","status":"active","starts_at":start,
         "dimensions":[{"name":"api_calls"}]}
    ]);
    let p = dir.join("contracts.json");
    std::fs::write(&p, v.to_string()).unwrap();
    p
}

fn import(
    file: &Path,
    contracts: &Path,
    ledger: &Path,
    now: DateTime<Utc>,
) -> (i32, Vec<Value>, String) {
    let out = metergate_cmd()
        .args(["import", "costs"])
        .arg(file)
        .args(["--format", "json", "--no-send", "--contracts"])
        .arg(contracts)
        .arg("--ledger")
        .arg(ledger)
        .args(["--now", &rfc(now)])
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("outcome").is_some())
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn quantities(ledger: &Path) -> Vec<(String, Decimal)> {
    Ledger::open_existing(ledger)
        .unwrap()
        .list(&Filter::default())
        .unwrap()
        .into_iter()
        .map(|r| (r.customer, r.quantity))
        .collect()
}

both_engines!(
    import_costs_bills_periods_once_and_names_bad_rows,
    contract_properties_show_in_contracts_list,
);

fn import_costs_bills_periods_once_and_names_bad_rows(lg: &TestLedger) {
    let dir = &lg.dir;
    let contracts = contracts(dir.path());
    let ledger = lg.path();
    let csv = dir.path().join("costs.csv");
    std::fs::write(
        &csv,
        "contract,customer,amount,currency,period_end\n\
         aws/prod-a/cust-1,,10.005,USD,2026-03-31\n\
         ,acme-42,2.00,USD,2026-04-30T00:00:00Z\n\
         aws/prod-a/cust-1,,ten,USD,2026-05-31\n\
         ,cust-2,3.00,USD,2026-03-31\n\
         ,nobody,1.00,USD,2026-03-31\n\
         aws/prod-a/cust-1,,1.00,USD,last tuesday\n\
         aws/prod-a/cust-3,,1.00,USD,2026-03-31\n",
    )
    .unwrap();
    let t0 = hours_ago(3) + Duration::minutes(5);
    let (code, v, err) = import(&csv, &contracts, ledger, t0);
    assert_eq!(code, 1, "{err}");
    // Every bad row is named by file, line and field; the good rows were imported.
    for (line, field) in [
        (4, "amount"),
        (5, "currency"),
        (6, "customer"),
        (7, "period_end"),
        (8, "contract"),
    ] {
        assert!(
            err.contains(&format!("costs.csv:{line}: {field}:")),
            "line {line} {field}: {err}"
        );
    }
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["outcome"], "imported");
    assert_eq!(quantities(ledger), [("cust-1".to_owned(), dec("1200"))]);

    // The same file again, an hour later: nothing new.
    let (_, v, _) = import(&csv, &contracts, ledger, t0 + Duration::hours(1));
    assert_eq!(v[0]["outcome"], "carried");
    assert_eq!(quantities(ledger).len(), 1);

    // A newer export (JSON): April corrected down by $1.50 (a credit), May added.
    let json_file = dir.path().join("costs.json");
    std::fs::write(
        &json_file,
        r#"[
  {"contract": "aws/prod-a/cust-1", "amount": "0.50", "currency": "USD", "period_end": "2026-04-30"},
  {"customer": "acme-42", "amount": 0.995, "currency": "usd", "period_end": "2026-05-31"},
  {"customer": "cust-1", "amount": "x", "currency": "USD", "period_end": "2026-05-31"}
]"#,
    )
    .unwrap();
    let (code, v, err) = import(&json_file, &contracts, ledger, t0 + Duration::hours(2));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("costs.json:4: amount:"), "{err}");
    // Total 10.005 + 0.50 + 0.995 = 11.50; billed 12.00 before: a credit of 0.50, nothing sent.
    assert_eq!(v[0]["outcome"], "credit");
    assert_eq!(
        Decimal::from_str(v[0]["carried"].as_str().unwrap()).unwrap(),
        dec("-0.5")
    );
    assert_eq!(quantities(ledger).len(), 1);

    // June brings $2.00: the credit is offset first, 150 cents are sent.
    std::fs::write(
        &json_file,
        r#"[{"contract": "aws/prod-a/cust-1", "amount": "2.00", "currency": "USD", "period_end": "2026-06-30"}]"#,
    )
    .unwrap();
    let (code, v, err) = import(&json_file, &contracts, ledger, t0 + Duration::hours(3));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        Decimal::from_str(v[0]["quantity"].as_str().unwrap()).unwrap(),
        dec("150")
    );
    let total: Decimal = quantities(ledger).iter().map(|(_, q)| *q).sum();
    assert_eq!(total * dec("0.01"), dec("13.50"));
}

fn contract_properties_show_in_contracts_list(lg: &TestLedger) {
    let dir = &lg.dir;
    let contracts = contracts(dir.path());
    let ledger = lg.path();
    let out = metergate_cmd()
        .args(["contracts", "import"])
        .arg(&contracts)
        .arg("--ledger")
        .arg(ledger)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = metergate_cmd()
        .args(["contracts", "list", "--format", "csv", "--ledger"])
        .arg(ledger)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().next().unwrap().ends_with(",properties"),
        "{text}"
    );
    assert!(
        text.contains("internal_customer_identifier=acme-42"),
        "{text}"
    );
    let out = metergate_cmd()
        .args(["contracts", "list", "--format", "json", "--ledger"])
        .arg(ledger)
        .output()
        .unwrap();
    let first: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(
        first["properties"]["internal_customer_identifier"],
        "acme-42"
    );
}
