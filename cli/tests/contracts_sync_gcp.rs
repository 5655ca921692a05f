//! `metergate contracts sync --marketplace gcp` against tests/peers/gcp_procurement_fake.py,
//! a faithful fake of the Partner Procurement API (paged entitlements), counted at the fake.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "submit_support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use serde_json::{json, Value};

const TOKEN: &str = "gcp-test-token-5c4b3a";
const SERVICE: &str = "example-product.endpoints.example-project.cloud.goog";

struct Fake {
    child: Child,
    port: u16,
    log: PathBuf,
    dir: tempfile::TempDir,
    state_file: PathBuf,
    _state_dir: tempfile::TempDir,
}

impl Fake {
    fn start(ents: &[Value], args: &[&str]) -> Fake {
        let state_dir = tempfile::tempdir().unwrap();
        let state_file = state_dir.path().join("state.json");
        std::fs::write(&state_file, json!({ "entitlements": ents }).to_string()).unwrap();
        let mut all = vec!["--token", TOKEN, "--state", state_file.to_str().unwrap()];
        all.extend_from_slice(args);
        let (child, port, log, dir) = support::start_fake("gcp_procurement_fake.py", &all);
        Fake {
            child,
            port,
            log,
            dir,
            state_file,
            _state_dir: state_dir,
        }
    }

    fn set(&self, ents: &[Value]) {
        std::fs::write(
            &self.state_file,
            json!({ "entitlements": ents }).to_string(),
        )
        .unwrap();
    }

    fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect()
    }

    fn metergate(&self, ledger: &Path) -> Command {
        let mut c = support::metergate_cmd();
        for (k, _) in std::env::vars() {
            if k.starts_with("METERGATE_") || k.starts_with("GOOGLE_") {
                c.env_remove(k);
            }
        }
        c.env(
            "METERGATE_GCP_PROCUREMENT_ENDPOINT",
            format!("http://127.0.0.1:{}", self.port),
        )
        .env("METERGATE_GCP_TOKEN", TOKEN)
        .env("METERGATE_LEDGER", ledger);
        c
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ent(i: usize, state: &str, product: &str) -> Value {
    json!({
        "name": format!("providers/example-partner-id/entitlements/ent-{i:04}"),
        "account": format!("providers/example-partner-id/accounts/acct-{i:04}"),
        "provider": "example-partner-id",
        "product": product,
        "plan": if i.is_multiple_of(2) { "standard" } else { "premium" },
        "state": state,
        "usageReportingId": format!("project_number:{}", 100_000 + i),
        "createTime": "2026-01-02T03:04:05.123456Z",
        "updateTime": "2026-02-01T00:00:00Z",
        "productExternalName": if product == "example-product" { SERVICE.to_owned() } else { format!("{product}.endpoints.other.cloud.goog") },
    })
}

fn config(dir: &Path) -> PathBuf {
    let f = dir.join("config.toml");
    std::fs::write(
        &f,
        format!(
            "warning_margin = \"30m\"\n[gcp]\nprovider = \"example-partner-id\"\n[gcp.products.\"{SERVICE}\"]\nmetrics = [\"{SERVICE}/requests\", \"{SERVICE}/storage\"]\n"
        ),
    )
    .unwrap();
    f
}

fn sync(fake: &Fake, ledger: &Path, cfg: &Path) -> (Output, Value) {
    let o = fake
        .metergate(ledger)
        .args([
            "contracts",
            "sync",
            "--marketplace",
            "gcp",
            "--format",
            "json",
            "--config",
        ])
        .arg(cfg)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l.get("summary").is_some())
        .map(|l| l["summary"].clone())
        .unwrap_or(Value::Null);
    (o, summary)
}

fn export(fake: &Fake, ledger: &Path) -> Vec<Value> {
    let o = fake
        .metergate(ledger)
        .args(["contracts", "export"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn sync_pages_through_entitlements_and_a_second_sync_changes_nothing() {
    let mut ents: Vec<Value> = (0..5)
        .map(|i| ent(i, "ENTITLEMENT_ACTIVE", "example-product"))
        .collect();
    ents[3] = ent(3, "ENTITLEMENT_ACTIVATION_REQUESTED", "example-product");
    ents.push(ent(5, "ENTITLEMENT_ACTIVE", "someone-elses-product"));
    let fake = Fake::start(&ents, &["--max-page-size", "2"]);
    let ledger = fake.dir.path().join("ledger.sqlite");
    let cfg = config(fake.dir.path());

    let (o, s) = sync(&fake, &ledger, &cfg);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        (s["contracts"].as_u64(), s["added"].as_u64()),
        (Some(5), Some(5))
    );
    assert_eq!(s["calls"].as_u64(), Some(3), "6 entitlements in pages of 2");
    assert_eq!(fake.calls().len(), 3);
    let stored = export(&fake, &ledger);
    assert_eq!(stored.len(), 5);
    let c0 = &stored[0];
    assert_eq!(c0["product"], SERVICE);
    assert_eq!(c0["customer"], "acct-0000");
    assert_eq!(c0["marketplace_id"], "ent-0000");
    assert_eq!(c0["usage_reporting_id"], "project_number:100000");
    assert_eq!(c0["dimensions"][1]["name"], format!("{SERVICE}/storage"));
    assert_eq!(stored[3]["status"], "pending");

    // Second sync: nothing changes.
    let (o, s) = sync(&fake, &ledger, &cfg);
    assert!(o.status.success());
    assert_eq!(
        (
            s["added"].as_u64(),
            s["changed"].as_u64(),
            s["unchanged"].as_u64()
        ),
        (Some(0), Some(0), Some(5))
    );
    assert_eq!(export(&fake, &ledger), stored);

    // One cancelled at Google: ended, cancelled at its updateTime.
    ents[1] = ent(1, "ENTITLEMENT_CANCELLED", "example-product");
    ents[1]["updateTime"] = json!("2026-03-01T12:00:00Z");
    fake.set(&ents);
    let (o, s) = sync(&fake, &ledger, &cfg);
    assert!(o.status.success());
    assert_eq!(s["ended"].as_u64(), Some(1));
    let stored = export(&fake, &ledger);
    assert_eq!(stored[1]["status"], "cancelled");
    assert_eq!(stored[1]["cancelled_at"], "2026-03-01T12:00:00Z");
}

#[test]
fn a_failed_page_changes_nothing() {
    let ents: Vec<Value> = (0..5)
        .map(|i| ent(i, "ENTITLEMENT_ACTIVE", "example-product"))
        .collect();
    let fake = Fake::start(&ents, &["--max-page-size", "2", "--fail-page", "2"]);
    let ledger = fake.dir.path().join("ledger.sqlite");
    let cfg = config(fake.dir.path());
    let (o, _) = sync(&fake, &ledger, &cfg);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("nothing changed for gcp") && err.contains("503"),
        "{err}"
    );
    assert!(!err.contains(TOKEN));
    assert!(export(&fake, &ledger).is_empty());
    // A wrong token: refused (401), nothing changes, the token is not printed.
    let o = fake
        .metergate(&ledger)
        .env("METERGATE_GCP_TOKEN", "wrong-token-77")
        .args(["contracts", "sync", "--marketplace", "gcp", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("401") && !err.contains("wrong-token-77"),
        "{err}"
    );
    assert!(export(&fake, &ledger).is_empty());
}

#[test]
fn without_a_provider_the_sync_says_what_to_configure() {
    let fake = Fake::start(&[], &[]);
    let ledger = fake.dir.path().join("ledger.sqlite");
    let o = fake
        .metergate(&ledger)
        .args(["contracts", "sync", "--marketplace", "gcp"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("[gcp] provider"));
    assert!(fake.calls().is_empty());
}
