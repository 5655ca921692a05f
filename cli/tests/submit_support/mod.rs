//! Shared by the submit and ledger tests: the moto peer (tests/peers/aws_harness.py) on
//! loopback, data relative to the real clock, and a `metergate` command pointed at the peer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as CDuration, Utc};
use serde_json::{json, Value};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `.peers/moto`, or `None` when the peer tests are skipped with METERGATE_SKIP_PEERS=1.
/// Without moto and without the skip flag, the test fails with what to run.
pub fn moto_path() -> Option<PathBuf> {
    let p = root().join(".peers/moto");
    if p.join("moto/__init__.py").exists() {
        return Some(p);
    }
    if std::env::var("METERGATE_SKIP_PEERS").is_ok_and(|v| v == "1") {
        eprintln!("skipped: moto is not installed and METERGATE_SKIP_PEERS=1");
        return None;
    }
    panic!(
        "the AWS peer (moto) is not installed in {}: run scripts/peers/install_moto.sh (or scripts/setup.sh), or set METERGATE_SKIP_PEERS=1 to skip the peer tests",
        p.display()
    );
}

/// A running harness; killed when dropped.
pub struct Peer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The JSON Lines log of calls and records it received.
    pub log: PathBuf,
    /// A scratch directory for the test.
    pub dir: tempfile::TempDir,
}

impl Peer {
    /// Starts the harness with extra arguments (`--subscribe`, `--throttle`, ...). `None`
    /// when the peer tests are skipped.
    pub fn start(args: &[&str]) -> Option<Peer> {
        let moto = moto_path()?;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("peer.jsonl");
        let mut child = Command::new("python3")
            .arg(root().join("tests/peers/aws_harness.py"))
            .args(["--port", "0", "--log"])
            .arg(&log)
            .args(args)
            .env("PYTHONPATH", &moto)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the harness prints its port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the harness said {line:?}, not PORT <n>"));
        Some(Peer {
            child,
            port,
            log,
            dir,
        })
    }

    /// The peer's URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn lines(&self, kind: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == kind)
            .collect()
    }

    /// Every record moto received (including repeats and unprocessed ones).
    pub fn records(&self) -> Vec<Value> {
        self.lines("record")
    }

    /// Every BatchMeterUsage call that reached the harness.
    pub fn calls(&self) -> Vec<Value> {
        self.lines("call")
    }

    /// A `metergate` command with dummy credentials, region us-east-1 and the endpoint set
    /// through `AWS_ENDPOINT_URL`, isolated from any AWS config on the machine.
    pub fn metergate(&self) -> Command {
        let mut c = metergate_cmd();
        c.env("AWS_ENDPOINT_URL", self.url());
        c
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary with a clean AWS environment (no endpoint).
pub fn metergate_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_metergate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k == "METERGATE_LEDGER" {
            c.env_remove(k);
        }
    }
    c.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/nonexistent/metergate-test-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/metergate-test-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_COLOR", "1");
    c
}

/// A generated data set: contracts and records, relative to the real clock.
pub struct Data {
    /// Contracts JSON file.
    pub contracts: PathBuf,
    /// Records JSON Lines file.
    pub records: PathBuf,
    /// (product, customer, dimension, usage time, quantity) of each record.
    pub expected: Vec<(String, String, String, DateTime<Utc>, i64)>,
    /// Products and their customers, for `--subscribe-file`.
    pub subs: PathBuf,
}

/// The start of the current hour minus `h` hours.
pub fn hours_ago(h: i64) -> DateTime<Utc> {
    metergate_core::time::hour_floor(Utc::now()) - CDuration::hours(h)
}

/// RFC 3339 with Z.
pub fn rfc(t: DateTime<Utc>) -> String {
    metergate_core::time::format_rfc3339(t)
}

/// `products × customers × dims × hours` records (one per customer, dimension and hour,
/// hourly within the last `hours` complete hours), all customers subscribed at the peer.
pub fn generate(dir: &Path, products: usize, customers: usize, dims: usize, hours: i64) -> Data {
    let mut contracts = Vec::new();
    let mut subs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut lines = String::new();
    let mut expected = Vec::new();
    let dim_names: Vec<String> = (0..dims).map(|d| format!("dim_{d}")).collect();
    let start = rfc(hours_ago(hours + 24));
    for p in 0..products {
        let product = format!("prod-{p}");
        for c in 0..customers {
            let customer = format!("cust-{p}-{c}");
            contracts.push(json!({
                "marketplace": "aws", "product": product, "customer": customer,
                "status": "active", "starts_at": start,
                "dimensions": dim_names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
            }));
            subs.entry(product.clone())
                .or_default()
                .push(customer.clone());
            for (d, dim) in dim_names.iter().enumerate() {
                for h in 1..=hours {
                    // Inside the hour, so the timestamp is sent with its minutes.
                    let t = hours_ago(h) + CDuration::minutes(7 + (c as i64 % 40));
                    let q = ((p * 131 + c * 17 + d * 7) as i64 + h * 3) % 97 + 1;
                    lines.push_str(
                        &json!({
                            "marketplace": "aws", "product": product, "customer": customer,
                            "dimension": dim, "quantity": q, "start_time": rfc(t),
                            "record_id": format!("r-{p}-{c}-{d}-{h}"),
                        })
                        .to_string(),
                    );
                    lines.push('\n');
                    expected.push((product.clone(), customer.clone(), dim.clone(), t, q));
                }
            }
        }
    }
    let cpath = dir.join("contracts.json");
    std::fs::write(&cpath, serde_json::to_string_pretty(&contracts).unwrap()).unwrap();
    let rpath = dir.join("records.jsonl");
    std::fs::write(&rpath, lines).unwrap();
    let spath = dir.join("subs.json");
    std::fs::write(&spath, serde_json::to_string(&subs).unwrap()).unwrap();
    Data {
        contracts: cpath,
        records: rpath,
        expected,
        subs: spath,
    }
}

/// What the peer saw, per (product, identity, dimension, hour).
#[derive(Debug, Default)]
pub struct PeerCounts {
    /// Records received in all (repeats included, unprocessed ones too).
    pub received: usize,
    /// Keys received at least once with `Success`.
    pub billed: usize,
    /// Expected records never billed.
    pub lost: usize,
    /// Keys received with two different quantities.
    pub conflicting: usize,
    /// Records answered `DuplicateRecord`.
    pub duplicate_answers: usize,
    /// Billed keys that were not expected.
    pub unexpected: usize,
}

/// Counts at the peer against what was generated.
pub fn count(peer: &Peer, expected: &[(String, String, String, DateTime<Utc>, i64)]) -> PeerCounts {
    let mut out = PeerCounts::default();
    let mut quantities: BTreeMap<(String, String, String, i64), BTreeSet<i64>> = BTreeMap::new();
    let mut billed: BTreeMap<(String, String, String, i64), i64> = BTreeMap::new();
    for r in peer.records() {
        out.received += 1;
        let ts = r["timestamp"].as_f64().unwrap();
        let key = (
            r["product"].as_str().unwrap().to_owned(),
            r["identity"].as_str().unwrap().to_owned(),
            r["dimension"].as_str().unwrap().to_owned(),
            (ts / 3600.0).floor() as i64,
        );
        let q = r["quantity"].as_i64().unwrap();
        quantities.entry(key.clone()).or_default().insert(q);
        match r["status"].as_str().unwrap() {
            "Success" => {
                billed.insert(key, q);
            }
            "DuplicateRecord" => out.duplicate_answers += 1,
            _ => {}
        }
    }
    out.billed = billed.len();
    out.conflicting = quantities.values().filter(|q| q.len() > 1).count();
    let mut want = BTreeSet::new();
    for (p, c, d, t, q) in expected {
        let key = (
            p.clone(),
            c.clone(),
            d.clone(),
            t.timestamp().div_euclid(3600),
        );
        if billed.get(&key) != Some(q) {
            out.lost += 1;
        }
        want.insert(key);
    }
    out.unexpected = billed.keys().filter(|k| !want.contains(*k)).count();
    out
}

/// Waits for a child with a deadline; kills it when the deadline passes.
pub fn wait_max(child: &mut Child, max: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if start.elapsed() > max {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every row's status in the ledger, counted.
pub fn ledger_counts(path: &Path) -> BTreeMap<String, u64> {
    let l = metergate::ledger::Ledger::open_existing(path).unwrap();
    l.counts()
        .unwrap()
        .into_iter()
        .map(|(s, n)| (s.to_string(), n))
        .collect()
}

/// Starts a Python fake from tests/peers; returns it with its port, log and a scratch dir.
pub fn start_fake(script: &str, args: &[&str]) -> (Child, u16, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("fake.jsonl");
    let mut child = Command::new("python3")
        .arg(root().join("tests/peers").join(script))
        .args(["--port", "0", "--log"])
        .arg(&log)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs the fake (python3 is needed for the peer tests)");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the fake prints its port");
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the fake said {line:?}, not PORT <n>"));
    (child, port, log, dir)
}

pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Kill-and-resume: `rounds` runs against one ledger, `submit` on even rounds and `resume` on
/// odd ones, each SIGKILLed after a random delay from `delay_ms` unless it exits first.
/// Returns how many runs were killed.
pub fn kill_rounds(
    mut metergate: impl FnMut() -> Command,
    records: &Path,
    contracts: &Path,
    ledger: &Path,
    rounds: u64,
    delay_ms: std::ops::Range<u64>,
) -> u64 {
    let mut kills = 0;
    for round in 0..rounds {
        let mut cmd = metergate();
        if round % 2 == 0 {
            cmd.arg("submit")
                .arg(records)
                .arg("--contracts")
                .arg(contracts);
        } else {
            cmd.arg("resume").arg("--contracts").arg(contracts);
        }
        cmd.arg("--ledger")
            .arg(ledger)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let delay = Duration::from_millis(fastrand::u64(delay_ms.clone()));
        if wait_max(&mut child, delay).is_none() {
            kills += 1; // SIGKILL'd by wait_max
        }
    }
    kills
}

/// Writes records as pending rows with their wire values, as the intake does after judging
/// them; returns the new rows' ids.
pub fn enqueue(
    l: &mut metergate::ledger::Ledger,
    v: &metergate_core::Validator,
    recs: &[metergate_core::UsageRecord],
) -> Vec<i64> {
    let rows: Vec<metergate::ledger::NewRow> = recs
        .iter()
        .map(|r| {
            let c = v
                .contracts()
                .find(r.marketplace, &r.product, &r.customer)
                .map(|(_, c)| c);
            metergate::ledger::NewRow {
                record: r.clone(),
                source: None,
                wire: metergate::submit::wire_values(r, c).unwrap(),
            }
        })
        .collect();
    l.enqueue(&rows)
        .unwrap()
        .into_iter()
        .map(|e| match e {
            metergate::ledger::Enqueued::New(id) => id,
            other => panic!("{other:?}"),
        })
        .collect()
}

/// A ledger row's state.
pub fn status_of(l: &metergate::ledger::Ledger, id: i64) -> metergate::ledger::Status {
    l.rows(&[id]).unwrap()[0].status
}
