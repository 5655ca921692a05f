//! `metergate contracts sync --marketplace azure` against two counterparts:
//! - tests/peers/azure_saas_fake.py, a stateful fake of the SaaS fulfillment API v2 (paged
//!   subscriptions with `@nextLink`, listAvailablePlans) and Entra ID, counted at the fake;
//! - Prism serving Microsoft's own `saasapi.v2.json` (`../shared/peers/azure/`): every request
//!   the sync sends must pass Microsoft's schema.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "submit_support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

const SECRET: &str = "sync-secret-azure-9f8e7d";

struct Fake {
    child: Child,
    port: u16,
    log: PathBuf,
    dir: tempfile::TempDir,
    /// The fake re-reads it on every call.
    state_file: PathBuf,
    _state_dir: tempfile::TempDir,
}

impl Fake {
    fn start(state: &Value, args: &[&str]) -> Fake {
        let state_dir = tempfile::tempdir().unwrap();
        let state_file = state_dir.path().join("state.json");
        std::fs::write(&state_file, state.to_string()).unwrap();
        let mut all = vec![
            "--client-secret",
            SECRET,
            "--state",
            state_file.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        let (child, port, log, dir) = support::start_fake("azure_saas_fake.py", &all);
        Fake {
            child,
            port,
            log,
            dir,
            state_file,
            _state_dir: state_dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == "call")
            .collect()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn metergate(ledger: &Path, api: &str, token_base: &str) -> Command {
    let mut c = support::metergate_cmd();
    for (k, _) in std::env::vars() {
        if k.starts_with("METERGATE_") || k.starts_with("AZURE_") {
            c.env_remove(k);
        }
    }
    c.env("METERGATE_AZURE_ENDPOINT", api)
        .env(
            "METERGATE_AZURE_TOKEN_URL",
            format!("{token_base}/{{tenant}}/oauth2/v2.0/token"),
        )
        .env("AZURE_TENANT_ID", "tenant-1")
        .env("AZURE_CLIENT_ID", "app-1")
        .env("AZURE_CLIENT_SECRET", SECRET)
        .env("METERGATE_LEDGER", ledger);
    c
}

fn sub_id(i: usize) -> String {
    format!("{i:08x}-1111-4222-8333-{:012x}", i * 7919)
}

fn subscription(i: usize, status: &str, plan: &str) -> Value {
    json!({
        "id": sub_id(i),
        "publisherId": "contosopublisher",
        "offerId": if i.is_multiple_of(2) { "offer-even" } else { "offer-odd" },
        "name": format!("sub {i}"),
        "saasSubscriptionStatus": status,
        "beneficiary": {"emailId": "b@example.com", "objectId": "11111111-2222-4333-8444-555555555555", "tenantId": "66666666-7777-4888-9999-000000000000"},
        "purchaser": {"emailId": "b@example.com", "objectId": "11111111-2222-4333-8444-555555555555", "tenantId": "66666666-7777-4888-9999-000000000000"},
        "planId": plan,
        "term": {"termUnit": "P1M", "startDate": "2026-01-01T00:00:00Z", "endDate": "2026-12-31T00:00:00Z"},
        "autoRenew": true,
        "isTest": false,
        "isFreeTrial": false,
        "allowedCustomerOperations": ["Read", "Update", "Delete"],
        "sandboxType": "None",
        "created": "2025-12-31T10:00:00Z",
        "sessionMode": "None"
    })
}

fn plans() -> Value {
    let plan = |id: &str, dims: &[&str]| {
        json!({"planId": id, "displayName": id, "isPrivate": false,
               "planComponents": {"recurrentBillingTerms": [],
                  "meteringDimensions": dims.iter().map(|d| json!({"id": d, "currency": "USD", "pricePerUnit": 0.01, "unitOfMeasure": "per event", "displayName": d})).collect::<Vec<_>>()}})
    };
    json!({
        "offer-even": [plan("silver", &["events", "gb"]), plan("gold", &["events", "gb", "seats"])],
        "offer-odd": [plan("silver", &["api_calls"])],
    })
}

fn state(subs: Vec<Value>) -> Value {
    json!({"subscriptions": subs, "plans": plans()})
}

fn export(ledger: &Path) -> String {
    let o = support::metergate_cmd()
        .args(["contracts", "export", "--ledger"])
        .arg(ledger)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn sync(cmd: &mut Command) -> (Output, Vec<Value>) {
    sync_with(cmd, &[])
}

fn sync_with(cmd: &mut Command, extra: &[&str]) -> (Output, Vec<Value>) {
    let o = cmd
        .args([
            "contracts",
            "sync",
            "--marketplace",
            "azure",
            "--format",
            "json",
        ])
        .args(extra)
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (o, lines)
}

fn summary(lines: &[Value]) -> Value {
    lines.iter().find(|l| l.get("summary").is_some()).unwrap()["summary"].clone()
}

#[test]
fn sync_fills_the_store_follows_pages_and_a_second_sync_changes_nothing() {
    let subs: Vec<Value> = (0..7)
        .map(|i| match i {
            5 => subscription(i, "Suspended", "silver"),
            6 => subscription(i, "PendingFulfillmentStart", "silver"),
            _ => subscription(i, "Subscribed", if i == 4 { "gold" } else { "silver" }),
        })
        .collect();
    let fake = Fake::start(&state(subs.clone()), &["--page-size", "2"]);
    let ledger = fake.dir.path().join("ledger.sqlite");

    let (o, lines) = sync(&mut metergate(&ledger, &fake.url(), &fake.url()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = summary(&lines);
    assert_eq!(
        (s["contracts"].as_u64(), s["added"].as_u64()),
        (Some(7), Some(7))
    );
    // 4 pages, one plan call per offer and plan: (even, silver), (odd, silver), (even, gold).
    let calls = fake.calls();
    let pages = calls
        .iter()
        .filter(|c| c["path"].as_str().unwrap().ends_with("/subscriptions/"))
        .count();
    let plan_calls = calls.len() - pages;
    assert_eq!((pages, plan_calls), (4, 3));
    assert!(calls.iter().all(|c| c["http"] == 200));

    let stored: Vec<Value> = serde_json::from_str(&export(&ledger)).unwrap();
    assert_eq!(stored.len(), 7);
    let c4 = stored
        .iter()
        .find(|c| c["resource_id"] == sub_id(4))
        .unwrap();
    assert_eq!(c4["product"], "offer-even");
    assert_eq!(c4["plan"], "gold");
    assert_eq!(c4["status"], "active");
    assert_eq!(c4["marketplace_id"], sub_id(4));
    let dims: Vec<&str> = c4["dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(dims, ["events", "gb", "seats"]);
    let status = |i: usize| {
        stored
            .iter()
            .find(|c| c["resource_id"] == sub_id(i))
            .unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(status(5), "suspended");
    assert_eq!(status(6), "pending");

    // A second sync: nothing changes, nothing is recorded.
    let before = export(&ledger);
    let hist = history_len(&ledger);
    let (o, lines) = sync(&mut metergate(&ledger, &fake.url(), &fake.url()));
    assert!(o.status.success());
    let s = summary(&lines);
    assert_eq!(
        (
            s["added"].as_u64(),
            s["changed"].as_u64(),
            s["ended"].as_u64(),
            s["unchanged"].as_u64()
        ),
        (Some(0), Some(0), Some(0), Some(7))
    );
    assert_eq!(export(&ledger), before);
    assert_eq!(history_len(&ledger), hist);

    // The marketplace changes: one unsubscribed, one new plan. Units set by hand stay.
    let mut edited: Vec<Value> = serde_json::from_str(&before).unwrap();
    for c in &mut edited {
        if c["resource_id"] == sub_id(0) {
            c["dimensions"][1]["unit"] = json!("5");
            c["customer"] = json!(sub_id(0));
        }
    }
    let f = fake.dir.path().join("edited.json");
    std::fs::write(&f, serde_json::to_string(&edited).unwrap()).unwrap();
    let o = support::metergate_cmd()
        .args(["contracts", "import"])
        .arg(&f)
        .arg("--ledger")
        .arg(&ledger)
        .output()
        .unwrap();
    assert!(o.status.success());
    let mut changed = subs.clone();
    changed[1] = subscription(1, "Unsubscribed", "silver");
    changed[2] = subscription(2, "Subscribed", "gold");
    rewrite_state(&fake, &state(changed));
    let (o, lines) = sync(&mut metergate(&ledger, &fake.url(), &fake.url()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = summary(&lines);
    assert_eq!(
        (s["changed"].as_u64(), s["ended"].as_u64()),
        (Some(1), Some(1)),
        "{lines:?}"
    );
    let stored: Vec<Value> = serde_json::from_str(&export(&ledger)).unwrap();
    let c1 = stored
        .iter()
        .find(|c| c["resource_id"] == sub_id(1))
        .unwrap();
    assert_eq!(c1["status"], "cancelled");
    assert!(c1["cancelled_at"].is_string());
    let c0 = stored
        .iter()
        .find(|c| c["resource_id"] == sub_id(0))
        .unwrap();
    assert_eq!(c0["dimensions"][1]["unit"], "5");
}

fn history_len(ledger: &Path) -> usize {
    let o = support::metergate_cmd()
        .args(["contracts", "history", "--format", "json", "--ledger"])
        .arg(ledger)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).lines().count()
}

fn rewrite_state(fake: &Fake, v: &Value) {
    std::fs::write(&fake.state_file, v.to_string()).unwrap();
}

#[test]
fn a_failed_call_changes_nothing_and_secrets_never_show() {
    let subs: Vec<Value> = (0..5)
        .map(|i| subscription(i, "Subscribed", "silver"))
        .collect();
    // Page 1 always fails (after retries): nothing from page 0 is stored either.
    let fake = Fake::start(
        &state(subs.clone()),
        &["--page-size", "2", "--fail-page", "1"],
    );
    let ledger = fake.dir.path().join("ledger.sqlite");
    let contracts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/events/contracts.json");
    let o = metergate(&ledger, &fake.url(), &fake.url())
        .args(["contracts", "import"])
        .arg(&contracts)
        .output()
        .unwrap();
    assert!(o.status.success());
    let before = export(&ledger);
    let (o, _) = sync_with(
        &mut metergate(&ledger, &fake.url(), &fake.url()),
        &["--verbose"],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nothing changed for azure"), "{err}");
    assert!(err.contains("HTTP 500"), "{err}");
    assert_eq!(export(&ledger), before);
    // The page was retried.
    let failed = fake.calls().iter().filter(|c| c["http"] == 500).count();
    assert!(failed >= 3, "{failed}");

    // A wrong secret: refused, nothing changes, the secret is never printed.
    let (o, _) = sync(
        metergate(&ledger, &fake.url(), &fake.url()).env("AZURE_CLIENT_SECRET", "wrong-secret-123"),
    );
    assert_eq!(o.status.code(), Some(2));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !all.contains("wrong-secret-123") && !all.contains(SECRET),
        "{all}"
    );
    assert!(!err.contains(SECRET) && !err.contains("fake-"), "{err}");
    assert_eq!(export(&ledger), before);
    // Nothing secret in the store either.
    let bytes = std::fs::read(&ledger).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains(SECRET) && !text.contains("fake-"));
}

/// Prism serving Microsoft's saasapi.v2.json; `None` when the peers are skipped.
struct Prism {
    child: Child,
    port: u16,
    out: Arc<Mutex<Vec<String>>>,
}

impl Prism {
    fn start() -> Option<Prism> {
        let bin = support::root().join(".peers/prism/node_modules/.bin/prism");
        // shared/ beside the repository clone, or METERGATE_SHARED_DIR.
        let shared = std::env::var_os("METERGATE_SHARED_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| support::root().join("../shared"));
        let spec = shared.join("peers/azure/saasapi.v2.json");
        if !bin.exists() || !spec.exists() {
            if std::env::var("METERGATE_SKIP_PEERS").is_ok_and(|v| v == "1") {
                eprintln!("skipped: Prism or the SaaS spec is missing and METERGATE_SKIP_PEERS=1");
                return None;
            }
            panic!(
                "the Azure peer is not installed: need {} (run scripts/setup.sh, or `mkdir -p .peers/prism && cd .peers/prism && npm install @stoplight/prism-cli@5`) and {} (the shared/ checkout beside the repository); or set METERGATE_SKIP_PEERS=1",
                bin.display(),
                spec.display()
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(&bin)
            .args(["mock", "-h", "127.0.0.1", "-p", &port.to_string()])
            .arg(&spec)
            .env("NO_COLOR", "1")
            .env("FORCE_COLOR", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("prism starts");
        let out = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = Arc::clone(&out);
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("Prism is listening") {
                        let _ = tx.send(());
                    }
                    out.lock().unwrap().push(line);
                }
            });
        }
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            panic!("prism did not start: {:?}", out.lock().unwrap());
        }
        Some(Prism { child, port, out })
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn every_request_passes_microsofts_schema() {
    let Some(prism) = Prism::start() else { return };
    // Tokens from the fake (Prism has no token endpoint); the API calls go to Prism.
    let fake = Fake::start(&state(vec![]), &[]);
    let ledger = fake.dir.path().join("ledger.sqlite");
    let api = format!("http://127.0.0.1:{}", prism.port);
    let (o, _) = sync(&mut metergate(&ledger, &api, &fake.url()));
    let out = prism.out.lock().unwrap().clone();
    let requests: Vec<&String> = out
        .iter()
        .filter(|l| l.contains("Request received"))
        .collect();
    assert!(
        requests.len() >= 2,
        "Prism saw the subscriptions page and a listAvailablePlans call: {out:#?}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.iter().any(|l| l.contains("listAvailablePlans")),
        "{out:#?}"
    );
    let violations: Vec<&String> = out
        .iter()
        .filter(|l| {
            l.contains("Violation")
                || l.contains("violation")
                || l.contains("Request terminated")
                || l.contains("UNPROCESSABLE")
                || l.contains("UNAUTHORIZED")
        })
        .collect();
    assert!(violations.is_empty(), "{violations:#?}");
    // Prism's generated page links to http://example.com: not followed, and the store is
    // left as it was (a failed page changes nothing).
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("@nextLink"));
}

/// Sync, then an Unsubscribe webhook, then `check` with no --contracts: usage dated before the
/// cancellation is accepted within Microsoft's 24 hours and refused after.
#[test]
fn sync_then_unsubscribe_then_check_judges_with_the_store() {
    let subs = vec![subscription(0, "Subscribed", "silver")];
    let fake = Fake::start(&state(subs), &[]);
    let ledger = fake.dir.path().join("ledger.sqlite");
    let (o, _) = sync(&mut metergate(&ledger, &fake.url(), &fake.url()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let cancel = metergate_core::time::hour_floor(chrono::Utc::now()) - chrono::Duration::hours(2);
    let rfc = metergate_core::time::format_rfc3339;
    let hook = fake.dir.path().join("unsubscribe.json");
    std::fs::write(
        &hook,
        json!({"id": "9d1c7f3e-0000-4a5b-8c7d-000000000001", "activityId": "9d1c7f3e-0000-4a5b-8c7d-000000000002",
               "publisherId": "contosopublisher", "offerId": "offer-even", "planId": "silver", "quantity": null,
               "subscriptionId": sub_id(0), "timeStamp": rfc(cancel), "action": "Unsubscribe",
               "status": "Succeeded", "operationRequestSource": "Azure"})
        .to_string(),
    )
    .unwrap();
    let o = metergate(&ledger, &fake.url(), &fake.url())
        .args(["contracts", "event"])
        .arg(&hook)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let usage = fake.dir.path().join("usage.jsonl");
    std::fs::write(
        &usage,
        json!({"marketplace": "azure", "product": "offer-even", "customer": sub_id(0),
               "dimension": "events", "quantity": 5, "start_time": rfc(cancel - chrono::Duration::minutes(30))})
        .to_string(),
    )
    .unwrap();
    let check = |now: chrono::DateTime<chrono::Utc>| {
        metergate(&ledger, &fake.url(), &fake.url())
            .arg("check")
            .arg(&usage)
            .args(["--format", "json", "--now", &rfc(now)])
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(check(cancel + chrono::Duration::hours(1)), Some(0));
    assert_eq!(check(cancel + chrono::Duration::hours(25)), Some(1));
}
