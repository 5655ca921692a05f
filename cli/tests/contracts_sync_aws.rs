//! `metergate contracts sync --marketplace aws` against tests/peers/aws_contracts_fake.py, a
//! faithful fake of the Marketplace Agreement and Entitlement APIs (Smithy RPC v2 CBOR, as the
//! official SDKs speak them; SigV4 required), counted at the fake.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "submit_support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use serde_json::{json, Value};

const KEY_ID: &str = "AKIDCONTRACTSFAKE01";
const SECRET: &str = "s3cr3t-aws-contracts-Zq9/xY+kL";
const CODE: &str = "example-product-code";
const PROD: &str = "prod-example123";

struct Fake {
    child: Child,
    port: u16,
    log: PathBuf,
    dir: tempfile::TempDir,
    state_file: PathBuf,
    _state_dir: tempfile::TempDir,
}

fn state(ags: &[Value]) -> String {
    let ents: Vec<Value> = ags
        .iter()
        .filter(|a| a["productId"] == PROD)
        .flat_map(|a| {
            a["dimensions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    json!({
                        "Dimension": d,
                        "CustomerAWSAccountId": a["accountId"],
                        "LicenseArn": a["licenseArn"],
                        "Value": {"BooleanValue": true},
                        "ExpirationDate": "2027-01-01T00:00:00Z",
                    })
                })
                .collect::<Vec<_>>()
        })
        .collect();
    json!({ "agreements": ags, "entitlements": { CODE: ents } }).to_string()
}

impl Fake {
    fn start(ags: &[Value], args: &[&str]) -> Fake {
        let state_dir = tempfile::tempdir().unwrap();
        let state_file = state_dir.path().join("state.json");
        std::fs::write(&state_file, state(ags)).unwrap();
        let mut all = vec![
            "--access-key-id",
            KEY_ID,
            "--state",
            state_file.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        let (child, port, log, dir) = support::start_fake("aws_contracts_fake.py", &all);
        Fake {
            child,
            port,
            log,
            dir,
            state_file,
            _state_dir: state_dir,
        }
    }

    fn set(&self, ags: &[Value]) {
        std::fs::write(&self.state_file, state(ags)).unwrap();
    }

    fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect()
    }

    fn count(&self, op: &str) -> usize {
        self.calls().iter().filter(|c| c["operation"] == op).count()
    }

    fn metergate(&self, ledger: &Path) -> Command {
        let mut c = support::metergate_cmd();
        for (k, _) in std::env::vars() {
            if k.starts_with("METERGATE_") {
                c.env_remove(k);
            }
        }
        c.env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
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

fn agreement(i: usize, status: &str, product: &str) -> Value {
    json!({
        "agreementId": format!("agmt-{i:04}"),
        "status": status,
        "accountId": format!("{:012}", 100_000_000_000u64 + i as u64),
        "productId": product,
        "startTime": "2026-01-02T03:04:05Z",
        "endTime": "2027-01-02T03:04:05Z",
        "dimensions": ["requests", "storage"],
        "licenseArn": format!("arn:aws:license-manager::294406891311:license:l-{i:04}"),
    })
}

fn config(dir: &Path) -> PathBuf {
    let f = dir.join("config.toml");
    std::fs::write(
        &f,
        format!("[aws.products.\"{CODE}\"]\nproduct_id = \"{PROD}\"\n"),
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
            "aws",
            "--format",
            "json",
            "--endpoint-url",
            &format!("http://127.0.0.1:{}", fake.port),
            "--now",
            "2026-06-01T00:00:00Z",
            "--config",
        ])
        .arg(cfg)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !out.contains(SECRET) && !err.contains(SECRET),
        "the secret was printed"
    );
    let summary = out
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
fn sync_pages_through_agreements_and_a_second_sync_changes_nothing() {
    let mut ags: Vec<Value> = (0..5).map(|i| agreement(i, "ACTIVE", PROD)).collect();
    ags.push(agreement(5, "ACTIVE", "prod-someone-else"));
    let fake = Fake::start(&ags, &["--max-page-size", "2"]);
    let ledger = fake.dir.path().join("ledger.sqlite");
    let cfg = config(fake.dir.path());

    let (o, s) = sync(&fake, &ledger, &cfg);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        (s["contracts"].as_u64(), s["added"].as_u64()),
        (Some(5), Some(5))
    );
    // 6 agreements in pages of 2; 10 entitlements in pages of 2; per agreement one describe
    // and 3 terms (2 usage-based + 1 legal) in pages of 2.
    assert_eq!(fake.count("SearchAgreements"), 3);
    assert_eq!(fake.count("GetEntitlements"), 5);
    assert_eq!(fake.count("DescribeAgreement"), 5);
    assert_eq!(fake.count("GetAgreementTerms"), 10);
    assert_eq!(s["calls"].as_u64(), Some(23));
    assert!(fake.calls().iter().all(|c| c["http"] == 200));
    let stored = export(&fake, &ledger);
    assert_eq!(stored.len(), 5);
    let c0 = &stored[0];
    assert_eq!(c0["marketplace"], "aws");
    assert_eq!(c0["product"], CODE);
    assert_eq!(c0["customer"], "100000000000");
    assert_eq!(c0["aws_account_id"], "100000000000");
    assert_eq!(
        c0["license_arn"],
        "arn:aws:license-manager::294406891311:license:l-0000"
    );
    assert_eq!(c0["marketplace_id"], "agmt-0000");
    assert_eq!(c0["status"], "active");
    assert_eq!(c0["starts_at"], "2026-01-02T03:04:05Z");
    assert_eq!(c0["ends_at"], "2027-01-02T03:04:05Z");
    let dims: Vec<&str> = c0["dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(dims, ["requests", "storage"]);

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

    // One cancelled and one expired at AWS: both end; the cancelled one at its endTime.
    ags[1]["status"] = json!("CANCELLED");
    ags[1]["endTime"] = json!("2026-03-01T12:00:00Z");
    ags[2]["status"] = json!("EXPIRED");
    // Renewed, but no successor is listed: ended, as the core's table says.
    ags[4]["status"] = json!("RENEWED");
    fake.set(&ags);
    let (o, s) = sync(&fake, &ledger, &cfg);
    assert!(o.status.success());
    assert_eq!(s["ended"].as_u64(), Some(3));
    let stored = export(&fake, &ledger);
    assert_eq!(stored[1]["status"], "cancelled");
    assert_eq!(stored[1]["cancelled_at"], "2026-03-01T12:00:00Z");
    assert_eq!(stored[2]["status"], "ended");
    assert_eq!(stored[4]["status"], "ended");

    // Agreement 3 renewed: the renewal (a new agreement of the same account) carries the
    // contract on under its own id; nothing is added.
    ags[3]["status"] = json!("RENEWED");
    let mut renewal = agreement(3, "ACTIVE", PROD);
    renewal["agreementId"] = json!("agmt-0103");
    renewal["startTime"] = json!("2027-01-02T03:04:05Z");
    renewal["endTime"] = json!("2028-01-02T03:04:05Z");
    ags.push(renewal);
    fake.set(&ags);
    let (o, s) = sync(&fake, &ledger, &cfg);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        (
            s["added"].as_u64(),
            s["changed"].as_u64(),
            s["ended"].as_u64()
        ),
        (Some(0), Some(1), Some(0))
    );
    let stored = export(&fake, &ledger);
    assert_eq!(stored.len(), 5);
    assert_eq!(stored[3]["marketplace_id"], "agmt-0103");
    assert_eq!(stored[3]["customer"], "100000000003");
    assert_eq!(stored[3]["status"], "active");
    assert_eq!(stored[3]["ends_at"], "2028-01-02T03:04:05Z");

    // And the store's history says so.
    let o = fake
        .metergate(&ledger)
        .args(["contracts", "history", "--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("agmt-0001"));
}

fn assert_failed_sync_changes_nothing(fail: &str, op: &str, attempts: usize, code: &str) {
    let ags: Vec<Value> = (0..3).map(|i| agreement(i, "ACTIVE", PROD)).collect();
    let fake = Fake::start(&ags, &["--max-page-size", "2"]);
    let ledger = fake.dir.path().join("ledger.sqlite");
    let cfg = config(fake.dir.path());
    let (o, _) = sync(&fake, &ledger, &cfg);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let before = export(&fake, &ledger);
    assert_eq!(before.len(), 3);
    // The marketplace changes, then the sync fails part-way: nothing changes in the store.
    let mut changed = ags.clone();
    changed[0]["status"] = json!("CANCELLED");
    changed.push(agreement(7, "ACTIVE", PROD));
    fake.set(&changed);
    let fake2 = Fake::start(&changed, &["--max-page-size", "2", "--fail", fail]);
    let (o, _) = sync(&fake2, &ledger, &cfg);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("nothing changed for aws") && err.contains(code),
        "{err}"
    );
    assert_eq!(fake2.count(op), attempts, "{op} attempts at the fake");
    assert_eq!(export(&fake, &ledger), before);
}

#[test]
fn throttling_beyond_the_retries_changes_nothing() {
    assert_failed_sync_changes_nothing(
        "GetAgreementTerms:400:ThrottlingException",
        "GetAgreementTerms",
        3,
        "ThrottlingException",
    );
}

#[test]
fn a_server_error_beyond_the_retries_changes_nothing() {
    assert_failed_sync_changes_nothing(
        "GetEntitlements:500:InternalServiceErrorException",
        "GetEntitlements",
        3,
        "InternalServiceErrorException",
    );
}

#[test]
fn access_denied_is_not_retried_and_changes_nothing() {
    assert_failed_sync_changes_nothing(
        "SearchAgreements:403:AccessDeniedException",
        "SearchAgreements",
        1,
        "AccessDeniedException",
    );
}

#[test]
fn an_unknown_access_key_is_refused_at_the_fake_and_the_secret_stays_hidden() {
    let fake = Fake::start(&[agreement(0, "ACTIVE", PROD)], &[]);
    let ledger = fake.dir.path().join("ledger.sqlite");
    let cfg = config(fake.dir.path());
    let o = fake
        .metergate(&ledger)
        .env("AWS_ACCESS_KEY_ID", "AKIDSOMEONEELSE")
        .args([
            "contracts",
            "sync",
            "--marketplace",
            "aws",
            "--endpoint-url",
        ])
        .arg(format!("http://127.0.0.1:{}", fake.port))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("UnrecognizedClientException"), "{err}");
    assert!(!err.contains(SECRET));
    assert_eq!(fake.calls()[0]["http"], 403);
    assert!(export(&fake, &ledger).is_empty());
}

#[test]
fn sync_then_unsubscribe_pending_then_check_judges_with_the_store() {
    let fake = Fake::start(&[agreement(0, "ACTIVE", PROD)], &[]);
    let ledger = fake.dir.path().join("ledger.sqlite");
    let cfg = config(fake.dir.path());
    let (o, _) = sync(&fake, &ledger, &cfg);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let rfc = metergate_core::time::format_rfc3339;
    let cancel = metergate_core::time::hour_floor(chrono::Utc::now()) - chrono::Duration::hours(2);
    let sns = fake.dir.path().join("unsubscribe-pending.json");
    let message = json!({"action": "unsubscribe-pending", "customer-aws-account-id": "100000000000",
                         "product-code": CODE});
    std::fs::write(
        &sns,
        json!({"Type": "Notification", "MessageId": "5e0b1c2d-0000-4a5b-8c7d-000000000001",
               "TopicArn": "arn:aws:sns:us-east-1:287250355862:aws-mp-subscription-notification-example",
               "Message": message.to_string(), "Timestamp": rfc(cancel), "SignatureVersion": "1"})
        .to_string(),
    )
    .unwrap();
    let o = fake
        .metergate(&ledger)
        .args(["contracts", "event"])
        .arg(&sns)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let usage = fake.dir.path().join("usage.jsonl");
    std::fs::write(
        &usage,
        json!({"marketplace": "aws", "product": CODE, "customer": "100000000000",
               "dimension": "requests", "quantity": 5,
               "start_time": rfc(cancel - chrono::Duration::minutes(30))})
        .to_string(),
    )
    .unwrap();
    let check = |now: chrono::DateTime<chrono::Utc>| {
        fake.metergate(&ledger)
            .arg("check")
            .arg(&usage)
            .args(["--format", "json", "--now", &rfc(now)])
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(check(cancel + chrono::Duration::minutes(30)), Some(0));
    assert_eq!(check(cancel + chrono::Duration::hours(3)), Some(1));
}
