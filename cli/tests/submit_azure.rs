//! `metergate submit` to the Microsoft commercial marketplace (`batchUsageEvent`).
//!
//! Two counterparts:
//! - Prism serving Microsoft's own OpenAPI description of the metering API
//!   (`../shared/peers/azure/meteringapi.v1.json`): every request metergate sends must pass
//!   Microsoft's schema (Prism logs a violation otherwise). Prism keeps no state.
//! - tests/peers/azure_fake.py, a stateful fake beside it (and the Entra ID token endpoint):
//!   one event per resource, plan, dimension and hour (`Duplicate` names the original), the
//!   24-hour window (`Expired`), missing or inactive resources, 403, and 5xx before or after
//!   the events land. Counted at the fake: every event it processed is one line of its log.
//!
//! Without Prism (`.peers/prism`, installed by scripts/setup.sh) the Prism test fails with
//! what to run, unless METERGATE_SKIP_PEERS=1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "submit_support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{Duration as CDuration, Utc};
use metergate::ledger::{Filter, Ledger, Status};
use metergate_core::time::hour_floor;
use serde_json::{json, Value};
use support::{hours_ago, ledger_counts, metergate_cmd, rfc};

const OFFER: &str = "offer-x";
const PLAN: &str = "gold";
const SECRET: &str = "test-secret-azure";

/// The stateful Azure fake (metering + Entra ID token endpoint); killed when dropped.
struct AzureFake {
    child: Child,
    port: u16,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl AzureFake {
    fn start(args: &[&str]) -> AzureFake {
        let mut all = vec!["--client-secret", SECRET];
        all.extend_from_slice(args);
        let (child, port, log, dir) = support::start_fake("azure_fake.py", &all);
        AzureFake {
            child,
            port,
            log,
            dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn lines(&self, kind: &str) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == kind)
            .collect()
    }

    fn events(&self) -> Vec<Value> {
        self.lines("event")
    }

    /// metergate with Entra ID credentials in the environment and both endpoints here.
    fn metergate(&self) -> Command {
        let mut c = metergate_cmd();
        azure_env(&mut c, &self.url(), &self.url());
        c
    }
}

impl Drop for AzureFake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Points a command at a metering endpoint and a token endpoint, with test credentials.
fn azure_env(c: &mut Command, metering: &str, token_base: &str) {
    for (k, _) in std::env::vars() {
        if k.starts_with("METERGATE_") || k.starts_with("AZURE_") || k.starts_with("GOOGLE_") {
            c.env_remove(k);
        }
    }
    c.env("METERGATE_AZURE_ENDPOINT", metering)
        .env(
            "METERGATE_AZURE_TOKEN_URL",
            format!("{token_base}/{{tenant}}/oauth2/v2.0/token"),
        )
        .env("AZURE_TENANT_ID", "tenant-1")
        .env("AZURE_CLIENT_ID", "app-1")
        .env("AZURE_CLIENT_SECRET", SECRET);
}

/// Prism mocking Microsoft's metering OpenAPI; killed when dropped.
struct Prism {
    child: Child,
    port: u16,
    out: Arc<Mutex<Vec<String>>>,
}

impl Prism {
    /// `None` when the peer tests are skipped with METERGATE_SKIP_PEERS=1.
    fn start() -> Option<Prism> {
        let bin = support::root().join(".peers/prism/node_modules/.bin/prism");
        let spec = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/peers/azure/meteringapi.v1.json");
        if !bin.exists() || !spec.exists() {
            if std::env::var("METERGATE_SKIP_PEERS").is_ok_and(|v| v == "1") {
                eprintln!(
                    "skipped: Prism or the metering spec is missing and METERGATE_SKIP_PEERS=1"
                );
                return None;
            }
            panic!(
                "the Azure peer is not installed: need {} (run scripts/setup.sh, or `mkdir -p .peers/prism && cd .peers/prism && npm install @stoplight/prism-cli@5`) and {} (the shared/ checkout beside the repository); or set METERGATE_SKIP_PEERS=1 to skip the peer tests",
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

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn output(&self) -> Vec<String> {
        self.out.lock().unwrap().clone()
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Data {
    contracts: PathBuf,
    records: PathBuf,
    /// (resource, dimension, hour, quantity) of each record.
    expected: Vec<(String, String, String, f64)>,
}

fn resource_id(c: usize) -> String {
    format!("{c:08x}-0000-4000-8000-{:012x}", c * 7919)
}

fn resource_uri(c: usize) -> String {
    format!("/subscriptions/{}/resourceGroups/rg-{c}/providers/Microsoft.Solutions/applications/app-{c}", resource_id(c + 1000))
}

/// `customers × 2 dimensions × hours` records, hourly within the last `hours` hours. Every
/// fourth customer is a managed application (resourceUri); the others SaaS (resourceId).
/// `scale` multiplies quantities (to make "the same key with another quantity").
fn generate(dir: &Path, name: &str, customers: usize, hours: i64, scale: f64) -> Data {
    let mut contracts = Vec::new();
    let mut lines = String::new();
    let mut expected = Vec::new();
    let starts = rfc(hours_ago(48));
    for c in 0..customers {
        let customer = format!("sub-{c}");
        let mut contract = json!({
            "marketplace": "azure", "product": OFFER, "customer": customer, "status": "active",
            "starts_at": starts, "plan": PLAN,
            "dimensions": [{"name": "requests"}, {"name": "gb_hours", "unit": 0.25}],
        });
        let resource = if c % 4 == 3 {
            contract["resource_uri"] = json!(resource_uri(c));
            resource_uri(c)
        } else {
            contract["resource_id"] = json!(resource_id(c));
            resource_id(c)
        };
        contracts.push(contract);
        for h in 1..=hours {
            let t = hours_ago(h) + CDuration::minutes(3 + (c as i64 % 50));
            let q = ((c * 31) as i64 + h * 5) % 40 + 1;
            for (dim, qty) in [
                ("requests", q as f64 * scale),
                ("gb_hours", q as f64 * 0.25 * scale),
            ] {
                lines.push_str(
                    &json!({
                        "marketplace": "azure", "product": OFFER, "customer": customer,
                        "dimension": dim, "quantity": qty, "start_time": rfc(t),
                    })
                    .to_string(),
                );
                lines.push('\n');
                expected.push((
                    resource.to_lowercase(),
                    dim.to_owned(),
                    rfc(hour_floor(t)),
                    qty,
                ));
            }
        }
    }
    let cpath = dir.join(format!("{name}-contracts.json"));
    std::fs::write(&cpath, serde_json::to_string_pretty(&contracts).unwrap()).unwrap();
    let rpath = dir.join(format!("{name}-records.jsonl"));
    std::fs::write(&rpath, lines).unwrap();
    Data {
        contracts: cpath,
        records: rpath,
        expected,
    }
}

fn submit(cmd: &mut Command, data: &Data, ledger: &Path, extra: &[&str]) -> std::process::Output {
    cmd.arg("submit")
        .arg(&data.records)
        .arg("--contracts")
        .arg(&data.contracts)
        .arg("--ledger")
        .arg(ledger)
        .args(["--format", "json"])
        .args(extra)
        .output()
        .unwrap()
}

type Key = (String, String, String);
/// Accepted (quantity, usageEventId) per key.
type Accepted = BTreeMap<Key, Vec<(f64, String)>>;
/// Every quantity seen per key.
type Seen = BTreeMap<Key, BTreeSet<String>>;

/// Accepted events at the fake per (resource, dimension, hour), and every quantity seen.
fn at_fake(fake: &AzureFake) -> (Accepted, Seen) {
    let mut accepted: BTreeMap<Key, Vec<(f64, String)>> = BTreeMap::new();
    let mut quantities: BTreeMap<Key, BTreeSet<String>> = BTreeMap::new();
    for e in fake.events() {
        let key = (
            e["resource"].as_str().unwrap().to_owned(),
            e["dimension"].as_str().unwrap().to_owned(),
            e["effectiveStartTime"].as_str().unwrap().to_owned(),
        );
        quantities
            .entry(key.clone())
            .or_default()
            .insert(e["quantity"].to_string());
        if e["status"] == "Accepted" {
            accepted.entry(key).or_default().push((
                e["quantity"].as_f64().unwrap(),
                e["usageEventId"].as_str().unwrap().to_owned(),
            ));
        }
    }
    (accepted, quantities)
}

/// (lost, doubled, conflicting) against what was generated.
fn count(fake: &AzureFake, data: &Data) -> (usize, usize, usize) {
    let (accepted, quantities) = at_fake(fake);
    let lost = data
        .expected
        .iter()
        .filter(|(r, d, h, q)| {
            !matches!(accepted.get(&(r.clone(), d.clone(), h.clone())), Some(v) if v.len() == 1 && (v[0].0 - q).abs() < 1e-9)
        })
        .count();
    let doubled = accepted.values().filter(|v| v.len() > 1).count();
    let conflicting = quantities.values().filter(|q| q.len() > 1).count();
    (lost, doubled, conflicting)
}

#[test]
fn every_request_passes_microsofts_schema_in_prism() {
    let Some(prism) = Prism::start() else { return };
    let tokens = AzureFake::start(&[]);
    // 2 SaaS + 2 managed-app customers × 2 dimensions × 7 hours = 56 events: 3 calls.
    let data = generate(tokens.dir.path(), "prism", 4, 7, 1.0);
    let ledger = tokens.dir.path().join("ledger.sqlite");
    let mut cmd = metergate_cmd();
    azure_env(&mut cmd, &prism.url(), &tokens.url());
    let out = submit(
        &mut cmd,
        &data,
        &ledger,
        &["--max-attempts", "1", "--verbose"],
    );
    // Prism answers its static example, which names none of the events sent: the rows end
    // failed (no definite answer), and that is not what this test is about.
    assert_ne!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = prism.output();
    let received = lines
        .iter()
        .filter(|l| l.contains("Request received"))
        .count();
    assert_eq!(received, 3, "{lines:#?}");
    let answered_200 = lines
        .iter()
        .filter(|l| l.contains("Responding with \"200\""))
        .count();
    assert_eq!(answered_200, 3, "{lines:#?}");
    let violations: Vec<&String> = lines
        .iter()
        .filter(|l| {
            l.contains("Violation")
                || l.contains("did not pass the validation")
                || l.contains("Invalid security scheme")
                || l.contains('✖')
        })
        .collect();
    assert!(
        violations.is_empty(),
        "Prism found violations: {violations:#?}"
    );
    // The secret and the bearer token never show, even with --verbose.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("batchUsageEvent?api-version=2018-08-31"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET));
    assert!(!stderr.contains("Bearer"), "a token was printed");
    let ledger_bytes = std::fs::read(&ledger).unwrap();
    assert!(!String::from_utf8_lossy(&ledger_bytes).contains(SECRET));
}

#[test]
fn accepted_once_per_hour_and_duplicates_name_the_original() {
    let fake = AzureFake::start(&[]);
    let data = generate(fake.dir.path(), "a", 4, 3, 1.0);
    let ledger = fake.dir.path().join("first.sqlite");
    let out = submit(&mut fake.metergate(), &data, &ledger, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ledger_counts(&ledger)["accepted"],
        data.expected.len() as u64
    );
    assert_eq!(count(&fake, &data), (0, 0, 0));
    let (accepted, _) = at_fake(&fake);
    let ids: BTreeSet<String> = accepted
        .values()
        .flatten()
        .map(|(_, id)| id.clone())
        .collect();
    let rows = Ledger::open_existing(&ledger)
        .unwrap()
        .list(&Filter::default())
        .unwrap();
    for r in &rows {
        assert_eq!(r.answer.as_deref(), Some("Accepted"));
        assert!(
            ids.contains(r.marketplace_record_id.as_deref().unwrap()),
            "{r:?}"
        );
        // The stored event is the hour, not the minute.
        assert!(r.wire["effective_start_time"]
            .as_str()
            .unwrap()
            .ends_with(":00:00Z"));
    }

    // Another ledger sends the same events again: Microsoft answers Duplicate with the same
    // quantity, which is ours: accepted, with the original event's id.
    let again = fake.dir.path().join("second.sqlite");
    let out = submit(&mut fake.metergate(), &data, &again, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for r in Ledger::open_existing(&again)
        .unwrap()
        .list(&Filter::default())
        .unwrap()
    {
        assert_eq!(r.status, Status::Accepted);
        assert_eq!(r.answer.as_deref(), Some("Duplicate"));
        assert!(ids.contains(r.marketplace_record_id.as_deref().unwrap()));
    }

    // Other quantities for the same hours: the originals stand; the rows are duplicates
    // that keep the original's id.
    let other = generate(fake.dir.path(), "b", 4, 3, 2.0);
    let third = fake.dir.path().join("third.sqlite");
    let out = submit(&mut fake.metergate(), &other, &third, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = Ledger::open_existing(&third)
        .unwrap()
        .list(&Filter::default())
        .unwrap();
    assert_eq!(rows.len(), other.expected.len());
    for r in rows {
        assert_eq!(r.status, Status::Duplicate);
        assert_eq!(r.answer.as_deref(), Some("Duplicate"));
        assert!(ids.contains(r.marketplace_record_id.as_deref().unwrap()));
    }
    // Still exactly one accepted event per key, with the first quantities.
    assert_eq!(count(&fake, &data).0, 0);
    assert_eq!(count(&fake, &data).1, 0);
}

#[test]
fn final_statuses_are_recorded_and_never_retried() {
    let known: Vec<String> = (0..4)
        .filter(|c| *c != 2)
        .map(|c| {
            if c % 4 == 3 {
                resource_uri(c)
            } else {
                resource_id(c)
            }
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let known_file = dir.path().join("known.json");
    std::fs::write(&known_file, serde_json::to_string(&known).unwrap()).unwrap();
    let inactive = resource_id(1);
    let fake = AzureFake::start(&[
        "--resources",
        known_file.to_str().unwrap(),
        "--inactive",
        &inactive,
    ]);
    let data = generate(fake.dir.path(), "a", 4, 2, 1.0);
    let ledger = fake.dir.path().join("ledger.sqlite");
    let out = submit(&mut fake.metergate(), &data, &ledger, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for r in Ledger::open_existing(&ledger)
        .unwrap()
        .list(&Filter::default())
        .unwrap()
    {
        let (status, answer) = match r.customer.as_str() {
            "sub-1" => (Status::Rejected, "ResourceNotActive"),
            "sub-2" => (Status::Rejected, "ResourceNotFound"),
            _ => (Status::Accepted, "Accepted"),
        };
        assert_eq!(
            (r.status, r.answer.as_deref()),
            (status, Some(answer)),
            "{r:?}"
        );
        assert_eq!(r.attempts, 1, "a final answer was retried: {r:?}");
    }
    // Each event reached the fake once.
    assert_eq!(fake.events().len(), data.expected.len());

    // Usage older than 24 hours at Microsoft's clock: Expired, final. (metergate judges as
    // if it were 26 hours ago, so its own 24-hour rule lets the record through.)
    let t = hours_ago(30) + CDuration::minutes(10);
    let old = fake.dir.path().join("old.jsonl");
    std::fs::write(
        &old,
        json!({"marketplace": "azure", "product": OFFER, "customer": "sub-0", "dimension": "requests",
               "quantity": 3, "start_time": rfc(t)})
        .to_string(),
    )
    .unwrap();
    let before = fake.events().len();
    let out = fake
        .metergate()
        .arg("submit")
        .arg(&old)
        .arg("--contracts")
        .arg(&data.contracts)
        .arg("--ledger")
        .arg(&ledger)
        .args(["--now", &rfc(Utc::now() - CDuration::hours(26))])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = Ledger::open_existing(&ledger)
        .unwrap()
        .list(&Filter::default())
        .unwrap();
    let r = rows.iter().find(|r| r.start_time == t).unwrap();
    assert_eq!(
        (r.status, r.answer.as_deref()),
        (Status::Rejected, Some("Expired"))
    );
    assert_eq!(fake.events().len(), before + 1);
}

#[test]
fn server_errors_are_retried_and_nothing_is_billed_twice() {
    let fake = AzureFake::start(&[
        "--fail-rate",
        "0.2",
        "--fail-after-rate",
        "0.25",
        "--seed",
        "4",
    ]);
    let data = generate(fake.dir.path(), "a", 8, 4, 1.0);
    let ledger = fake.dir.path().join("ledger.sqlite");
    let out = submit(
        &mut fake.metergate(),
        &data,
        &ledger,
        &["--max-attempts", "30"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ledger_counts(&ledger)["accepted"],
        data.expected.len() as u64
    );
    assert_eq!(count(&fake, &data), (0, 0, 0));
    let calls = fake.lines("call");
    assert!(calls.iter().any(|c| c["http"] == 503), "{calls:?}");
    // Seed 4 injects both: a 503 (nothing landed) and a 500 after the events landed, whose
    // re-send came back as Duplicate of themselves, with the same quantities.
    assert!(calls.iter().any(|c| c["http"] == 500), "{calls:?}");
    assert!(fake.events().iter().any(|e| e["status"] == "Duplicate"));
}

#[test]
fn bad_credentials_and_403_stop_the_run_and_keep_the_rows() {
    let fake = AzureFake::start(&[]);
    let data = generate(fake.dir.path(), "a", 2, 2, 1.0);
    let ledger = fake.dir.path().join("ledger.sqlite");
    let out = submit(
        fake.metergate()
            .env("AZURE_CLIENT_SECRET", "not-the-secret"),
        &data,
        &ledger,
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("not-the-secret"));
    assert!(fake.events().is_empty());
    let states = ledger_counts(&ledger);
    assert_eq!(
        states["pending"] + states["sending"],
        data.expected.len() as u64
    );

    // Without credentials at all.
    let out = submit(
        fake.metergate().env_remove("AZURE_CLIENT_SECRET"),
        &data,
        &ledger,
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let forbidden = AzureFake::start(&["--forbid"]);
    let out = submit(&mut forbidden.metergate(), &data, &ledger, &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let states = ledger_counts(&ledger);
    assert_eq!(
        states["pending"] + states["sending"],
        data.expected.len() as u64
    );
    // The rows go out once the app is the right one.
    let out = fake
        .metergate()
        .args(["resume", "--contracts"])
        .arg(&data.contracts)
        .arg("--ledger")
        .arg(&ledger)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&fake, &data), (0, 0, 0));
}

#[test]
fn kill_and_resume_loses_nothing_and_bills_nothing_twice() {
    let rounds = support::env_num("METERGATE_KILL_ROUNDS", 10);
    let seed = support::env_num("METERGATE_KILL_SEED", fastrand::u64(..));
    fastrand::seed(seed);
    let fake = AzureFake::start(&[
        "--fail-rate",
        "0.1",
        "--fail-after-rate",
        "0.1",
        "--seed",
        "9",
    ]);
    // 20 customers × 2 dimensions × 6 hours = 240 events, 10 calls.
    let data = generate(fake.dir.path(), "k", 20, 6, 1.0);
    let ledger = fake.dir.path().join("ledger.sqlite");
    let started = Instant::now();
    let kills = support::kill_rounds(
        || fake.metergate(),
        &data.records,
        &data.contracts,
        &ledger,
        rounds,
        20..700,
    );
    // Finish: one more submit writes what no killed run wrote and sends every unfinished
    // row. Records already in the ledger are rejected by metergate as duplicate-request
    // (Microsoft keeps one event per hour, whatever the quantity), so its exit status is 1
    // whenever an earlier round wrote rows; it must not be 2.
    let out = submit(
        &mut fake.metergate(),
        &data,
        &ledger,
        &["--max-attempts", "30"],
    );
    assert_ne!(
        out.status.code(),
        Some(2),
        "final submit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = fake
        .metergate()
        .args(["resume", "--contracts"])
        .arg(&data.contracts)
        .arg("--ledger")
        .arg(&ledger)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same file once more sends nothing: every record is already in the ledger.
    let before = fake.lines("call").len();
    let out = submit(&mut fake.metergate(), &data, &ledger, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fake.lines("call").len(),
        before,
        "a second submit sent again"
    );
    let (lost, doubled, conflicting) = count(&fake, &data);
    let states = ledger_counts(&ledger);
    println!(
        "azure kill-resume: seed={seed} rounds={rounds} kills={kills} events={} received_at_fake={} lost={lost} doubled={doubled} conflicting={conflicting} ledger={states:?} elapsed={:.1}s",
        data.expected.len(),
        fake.events().len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!((lost, doubled, conflicting), (0, 0, 0), "seed {seed}");
    assert_eq!(states["accepted"], data.expected.len() as u64, "{states:?}");
}

/// One Azure customer (resource `resource_id(0)`) on `plan`, dimension `requests`.
fn one_contract(dir: &Path, name: &str, plan: &str) -> PathBuf {
    let p = dir.join(format!("{name}-contracts.json"));
    let c = json!([{"marketplace": "azure", "product": OFFER, "customer": "sub-0",
        "status": "active", "starts_at": rfc(hours_ago(48)), "plan": plan,
        "resource_id": resource_id(0), "dimensions": [{"name": "requests"}]}]);
    std::fs::write(&p, c.to_string()).unwrap();
    p
}

/// Submits CSV `rows` (`quantity,start_time`) for sub-0/requests.
fn submit_csv(
    fake: &AzureFake,
    contracts: &Path,
    ledger: &Path,
    rows: &[(&str, String)],
) -> std::process::Output {
    let input = ledger.with_extension("csv");
    let mut text = "marketplace,product,customer,dimension,quantity,start_time\n".to_owned();
    for (q, t) in rows {
        text.push_str(&format!("azure,{OFFER},sub-0,requests,{q},{t}\n"));
    }
    std::fs::write(&input, text).unwrap();
    fake.metergate()
        .arg("submit")
        .arg(&input)
        .arg("--contracts")
        .arg(contracts)
        .arg("--ledger")
        .arg(ledger)
        .output()
        .unwrap()
}

#[test]
fn a_duplicate_after_a_plan_change_ends_duplicate_with_the_original_quantity() {
    let fake = AzureFake::start(&[]);
    let dir = fake.dir.path();
    let t = rfc(hours_ago(1) + CDuration::minutes(10));
    let later = rfc(hours_ago(1) + CDuration::minutes(40));
    // 10 minutes past the hour, on plan gold: accepted.
    let gold = one_contract(dir, "gold", "gold");
    let first = dir.join("first.sqlite");
    let out = submit_csv(&fake, &gold, &first, &[("5", t)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let original = Ledger::open_existing(&first)
        .unwrap()
        .list(&Filter::default())
        .unwrap()[0]
        .marketplace_record_id
        .clone()
        .unwrap();
    // The customer moves to plan platinum within the hour; the seller's other system (another
    // ledger) sends the same hour under the new plan. Microsoft keeps one event per resource,
    // dimension and hour, and its Duplicate answer echoes the gold event.
    let platinum = one_contract(dir, "platinum", "platinum");
    for (name, q) in [("other-quantity", "7"), ("same-quantity", "5")] {
        let ledger = dir.join(format!("{name}.sqlite"));
        let out = submit_csv(&fake, &platinum, &ledger, &[(q, later.clone())]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows = Ledger::open_existing(&ledger)
            .unwrap()
            .list(&Filter::default())
            .unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.status, Status::Duplicate, "{r:?}");
        assert_eq!(r.answer.as_deref(), Some("Duplicate"));
        assert_eq!(r.attempts, 1, "matched on the first answer, never retried");
        assert_eq!(r.marketplace_record_id.as_deref(), Some(original.as_str()));
        let why = r.reason.as_deref().unwrap();
        assert!(why.contains("quantity 5 under plan gold"), "{why}");
    }
    // At the fake: one accepted event for the hour, with the first quantity.
    let accepted: Vec<Value> = fake
        .events()
        .into_iter()
        .filter(|e| e["status"] == "Accepted")
        .collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0]["plan"], "gold");
    assert_eq!(accepted[0]["quantity"], 5);
    assert_eq!(fake.events().len(), 3);
}

#[test]
fn the_quantity_goes_out_as_the_exact_decimal_the_ledger_stores() {
    let fake = AzureFake::start(&[]);
    let dir = fake.dir.path();
    let contracts = one_contract(dir, "gold", "gold");
    let ledger = dir.join("exact.sqlite");
    let q = "12345678901234567890.5";
    let out = submit_csv(
        &fake,
        &contracts,
        &ledger,
        &[(q, rfc(hours_ago(1) + CDuration::minutes(10)))],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = &Ledger::open_existing(&ledger)
        .unwrap()
        .list(&Filter::default())
        .unwrap()[0];
    assert_eq!(row.wire["quantity"], q);
    let bodies = fake.lines("body");
    assert_eq!(bodies.len(), 1);
    let text = bodies[0]["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("\"quantity\":{q},")),
        "the body carries the exact decimal as a JSON number: {text}"
    );
}
