//! The contract store: `contracts import | list | export | history | event`, and the judging
//! commands reading contracts from it.
//!
//! Event fixtures are in tests/events/ (real-shaped messages from the marketplaces' public
//! docs): `expected.json` says what each one does to a fresh import of `contracts.json`.
//!
//! Every case runs on SQLite and on PostgreSQL (a throwaway cluster, `pg_support`): the
//! store lives in the ledger, selected by `METERGATE_LEDGER` (a path or a `postgres://` URL).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg_support;

use pg_support::TestLedger;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn events_dir() -> PathBuf {
    root().join("tests/events")
}

fn metergate(ledger: &TestLedger) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_metergate"));
    c.env_remove("METERGATE_LEDGER")
        .env("NO_COLOR", "1")
        .env("METERGATE_LEDGER", &ledger.location)
        .current_dir(ledger.dir.path());
    c
}

fn run(ledger: &TestLedger, args: &[&str]) -> Output {
    metergate(ledger).args(args).output().unwrap()
}

fn ok(ledger: &TestLedger, args: &[&str]) -> String {
    let o = run(ledger, args);
    assert!(
        o.status.success(),
        "metergate {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Imports tests/events/contracts.json into the test's ledger; hands back its scratch dir and
/// the ledger.
fn fresh(ledger: &TestLedger) -> (&tempfile::TempDir, &TestLedger) {
    let contracts = events_dir().join("contracts.json");
    ok(
        ledger,
        &["contracts", "import", contracts.to_str().unwrap()],
    );
    (&ledger.dir, ledger)
}

fn list(ledger: &TestLedger) -> Vec<Value> {
    ok(ledger, &["contracts", "list", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn export(ledger: &TestLedger) -> String {
    ok(ledger, &["contracts", "export"])
}

fn history(ledger: &TestLedger) -> Vec<Value> {
    ok(ledger, &["contracts", "history", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn event(ledger: &TestLedger, file: &Path) -> (i32, Value, String) {
    let o = run(
        ledger,
        &[
            "contracts",
            "event",
            file.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let v = serde_json::from_str(out.trim()).unwrap_or(Value::Null);
    (
        o.status.code().unwrap(),
        v,
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

fn contract<'a>(all: &'a [Value], customer: &str) -> &'a Value {
    all.iter().find(|c| c["customer"] == customer).unwrap()
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .map(|s| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))
}

both_engines!(
    import_twice_changes_nothing_and_export_round_trips,
    a_bad_import_changes_nothing,
    every_event_fixture_applies_then_replays_as_nothing,
    an_older_event_is_recorded_and_changes_nothing,
    bad_events_exit_2_naming_what_is_wrong_and_change_nothing,
    events_read_stdin,
    check_judges_with_the_store_after_an_unsubscribe_pending_event,
    deadlines_read_the_store,
    sync_of_aws_without_products_says_what_to_configure_and_changes_nothing,
    the_config_may_hold_gcp_products_for_sync_and_check_still_reads_it,
    submit_judges_with_the_store,
);

fn import_twice_changes_nothing_and_export_round_trips(t: &TestLedger) {
    let (dir, ledger) = fresh(t);
    let before = export(ledger);
    let hist = history(ledger).len();
    assert_eq!(hist, 4, "one import row per contract");
    let contracts = events_dir().join("contracts.json");
    ok(
        ledger,
        &["contracts", "import", contracts.to_str().unwrap()],
    );
    assert_eq!(export(ledger), before);
    assert_eq!(history(ledger).len(), hist);

    // The export is what --contracts reads, and reads back the same.
    let exported = dir.path().join("exported.json");
    std::fs::write(&exported, &before).unwrap();
    let original: Value =
        serde_json::from_str(&std::fs::read_to_string(&contracts).unwrap()).unwrap();
    let back: Value = serde_json::from_str(&before).unwrap();
    assert_eq!(original, back);

    // A changed contract is recorded with its previous and new values.
    let mut changed = original.clone();
    changed[0]["status"] = json!("suspended");
    let f = dir.path().join("changed.json");
    std::fs::write(&f, serde_json::to_string(&changed).unwrap()).unwrap();
    ok(ledger, &["contracts", "import", f.to_str().unwrap()]);
    let h = history(ledger);
    assert_eq!(h.len(), hist + 1);
    let last = h.last().unwrap();
    assert_eq!(last["cause"], "import");
    assert_eq!(last["previous"]["status"], "active");
    assert_eq!(last["new"]["status"], "suspended");
    let only = ok(
        ledger,
        &[
            "contracts",
            "history",
            "--customer",
            "cust-acme",
            "--format",
            "json",
        ],
    );
    assert_eq!(only.lines().count(), 2);

    // csv and text lists have a header and one line per contract.
    let csv = ok(ledger, &["contracts", "list", "--format", "csv"]);
    assert_eq!(csv.lines().count(), 5);
    assert!(csv.starts_with("marketplace,product,customer,status"));
}

fn a_bad_import_changes_nothing(t: &TestLedger) {
    let (dir, ledger) = fresh(t);
    let before = export(ledger);
    let f = dir.path().join("bad.json");
    std::fs::write(
        &f,
        r#"[{"marketplace":"aws","product":"p","customer":"c","status":"cancelled","starts_at":"2026-01-01T00:00:00Z"}]"#,
    )
    .unwrap();
    let o = run(ledger, &["contracts", "import", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cancelled_at"));
    assert_eq!(export(ledger), before);
}

fn every_event_fixture_applies_then_replays_as_nothing(t: &TestLedger) {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(events_dir().join("expected.json")).unwrap())
            .unwrap();
    let mut count = 0;
    for (file, want) in expected.as_object().unwrap() {
        count += 1;
        // A ledger of its own for each fixture, on the same engine.
        let own = TestLedger::new(t.engine).unwrap();
        let (_dir, ledger) = fresh(&own);
        let path = events_dir().join(file);
        let (code, out, err) = event(ledger, &path);
        assert_eq!(code, 0, "{file}: {err}");
        assert_eq!(out["outcome"], want["outcome"], "{file}: {out}");
        let all = list(ledger);
        let c = contract(&all, want["customer"].as_str().unwrap());
        assert_eq!(c["status"], want["status"], "{file}: {c}");
        for field in ["cancelled_at", "ends_at"] {
            if want.get(field).is_some() {
                assert_eq!(time(&c[field]), time(&want[field]), "{file}: {field}");
            }
        }
        for field in ["plan", "marketplace_id"] {
            if want.get(field).is_some() {
                assert_eq!(c[field], want[field], "{file}: {field}");
            }
        }
        // The history names the event; a replay changes nothing and records nothing.
        let h = history(ledger);
        let last = h.last().unwrap();
        assert_eq!(last["cause"], "event", "{file}");
        assert_eq!(last["applied"], want["outcome"] == "applied", "{file}");
        let before = (export(ledger), h.len());
        let (code, out, _) = event(ledger, &path);
        assert_eq!(code, 0);
        assert_eq!(out["outcome"], "replay", "{file}");
        assert_eq!((export(ledger), history(ledger).len()), before, "{file}");
    }
    assert_eq!(count, 30);
}

fn an_older_event_is_recorded_and_changes_nothing(t: &TestLedger) {
    let (_dir, ledger) = fresh(t);
    let d = events_dir();
    // unsubscribe-pending (10:00), then subscribe-success (09:00) arriving late.
    let (code, out, _) = event(ledger, &d.join("aws-sns-unsubscribe-pending.json"));
    assert_eq!((code, out["outcome"].as_str()), (0, Some("applied")));
    let before = export(ledger);
    let (code, out, _) = event(ledger, &d.join("aws-sns-subscribe-success.json"));
    assert_eq!((code, out["outcome"].as_str()), (0, Some("stale")));
    assert_eq!(export(ledger), before);
    let h = history(ledger);
    let last = h.last().unwrap();
    assert_eq!(last["applied"], false);
    assert_eq!(last["event_time"], "2026-03-10T09:00:00Z");

    // unsubscribe-success (11:02) is newer: still cancelled, the earlier time stands.
    let (_, out, _) = event(ledger, &d.join("aws-sns-unsubscribe-success.json"));
    assert_eq!(out["outcome"], "recorded");
    let all = list(ledger);
    assert_eq!(
        time(&contract(&all, "cust-acme")["cancelled_at"]),
        time(&json!("2026-03-10T10:00:00Z"))
    );

    // Google: cancelled (18:00) then an older ACTIVE (10:00): stale.
    event(ledger, &d.join("gcp-entitlement-cancelled.json"));
    let (_, out, _) = event(ledger, &d.join("gcp-entitlement-active.json"));
    assert_eq!(out["outcome"], "stale");
    assert_eq!(
        contract(&list(ledger), "cust-initech")["status"],
        "cancelled"
    );

    // Microsoft: suspend (08:00) then reinstate (09:00) in order: active again.
    event(ledger, &d.join("azure-webhook-suspend.json"));
    let (_, out, _) = event(ledger, &d.join("azure-webhook-reinstate.json"));
    assert_eq!(out["outcome"], "applied");
    assert_eq!(contract(&list(ledger), "cust-contoso")["status"], "active");
}

fn bad_events_exit_2_naming_what_is_wrong_and_change_nothing(t: &TestLedger) {
    let (_dir, ledger) = fresh(t);
    let before = (export(ledger), history(ledger).len());
    let cases = [
        ("unknown-shape.json", "unknown event"),
        ("sns-unknown-action.json", "Message.action"),
        ("sns-no-timestamp.json", "Timestamp"),
        ("azure-bad-timestamp.json", "timeStamp"),
        ("gcp-unknown-type.json", "eventType"),
        ("gcp-push-not-base64.json", "message.data"),
        (
            "azure-unknown-subscription.json",
            "no contract in the store",
        ),
        ("not-json.json", "not JSON"),
    ];
    for (file, says) in cases {
        let (code, _, err) = event(ledger, &events_dir().join("bad").join(file));
        assert_eq!(code, 2, "{file}");
        assert!(err.contains(says), "{file}: {err}");
        assert!(err.contains(file), "{file}: {err}");
    }
    assert_eq!((export(ledger), history(ledger).len()), before);
}

fn events_read_stdin(t: &TestLedger) {
    let (_dir, ledger) = fresh(t);
    let text = std::fs::read(events_dir().join("azure-webhook-suspend.json")).unwrap();
    let mut child = metergate(ledger)
        .args(["contracts", "event", "-", "--format", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "suspended");
}

fn usage(dir: &Path, at: &str) -> PathBuf {
    let f = dir.join(format!("usage-{}.jsonl", at.replace(':', "")));
    std::fs::write(
        &f,
        json!({"marketplace": "aws", "product": "7ab3k2example9p2kmq1n5s8", "customer": "cust-acme",
               "dimension": "api_calls", "quantity": 3, "start_time": at})
        .to_string(),
    )
    .unwrap();
    f
}

fn verdict(ledger: &TestLedger, file: &Path, now: &str) -> (i32, Value) {
    let o = run(
        ledger,
        &[
            "check",
            file.to_str().unwrap(),
            "--now",
            now,
            "--format",
            "json",
        ],
    );
    let first: Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    (o.status.code().unwrap(), first)
}

/// Import, then an unsubscribe-pending event, then `check` with no --contracts: usage dated
/// before the cancellation is accepted until one hour after it and refused after.
fn check_judges_with_the_store_after_an_unsubscribe_pending_event(t: &TestLedger) {
    let (dir, ledger) = fresh(t);
    let (code, out, _) = event(
        ledger,
        &events_dir().join("aws-sns-unsubscribe-pending.json"),
    );
    assert_eq!((code, out["status"].as_str()), (0, Some("cancelled")));
    // Cancelled at 10:00:00.
    let before = usage(dir.path(), "2026-03-10T09:40:00Z");
    let (code, v) = verdict(ledger, &before, "2026-03-10T10:59:00Z");
    assert_eq!((code, v["verdict"].as_str()), (0, Some("accepted")), "{v}");
    let (code, v) = verdict(ledger, &before, "2026-03-10T11:01:00Z");
    assert_eq!((code, v["verdict"].as_str()), (1, Some("rejected")), "{v}");
    // Usage dated after the cancellation is refused even inside the hour.
    let after = usage(dir.path(), "2026-03-10T10:10:00Z");
    let (code, _) = verdict(ledger, &after, "2026-03-10T10:30:00Z");
    assert_eq!(code, 1);
    // --contracts still wins over the store.
    let o = run(
        ledger,
        &[
            "check",
            before.to_str().unwrap(),
            "--now",
            "2026-03-10T11:01:00Z",
            "--contracts",
            events_dir().join("contracts.json").to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0));
}

fn deadlines_read_the_store(t: &TestLedger) {
    let (_dir, ledger) = fresh(t);
    event(
        ledger,
        &events_dir().join("aws-sns-unsubscribe-pending.json"),
    );
    let out = ok(
        ledger,
        &[
            "deadlines",
            "--now",
            "2026-03-10T10:30:00Z",
            "--format",
            "json",
        ],
    );
    let line: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(line["customer"], "cust-acme");
    assert_eq!(line["kind"], "cancelled");
}

fn sync_of_aws_without_products_says_what_to_configure_and_changes_nothing(t: &TestLedger) {
    let (_dir, ledger) = fresh(t);
    let before = export(ledger);
    let o = run(ledger, &["contracts", "sync", "--marketplace", "aws"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("[aws.products"));
    assert_eq!(export(ledger), before);
}

fn the_config_may_hold_gcp_products_for_sync_and_check_still_reads_it(t: &TestLedger) {
    let (dir, ledger) = fresh(t);
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        "warning_margin = \"30m\"\n[gcp]\nprovider = \"p\"\n[gcp.products.\"svc.example\"]\nmetrics = [\"svc.example/requests\"]\n",
    )
    .unwrap();
    let f = usage(dir.path(), "2026-03-10T09:40:00Z");
    let o = run(
        ledger,
        &[
            "check",
            f.to_str().unwrap(),
            "--now",
            "2026-03-10T10:00:00Z",
            "--config",
            cfg.to_str().unwrap(),
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `submit` judges with the store too (a dry run: nothing is sent).
fn submit_judges_with_the_store(t: &TestLedger) {
    let (dir, ledger) = fresh(t);
    event(
        ledger,
        &events_dir().join("aws-sns-unsubscribe-pending.json"),
    );
    let before = usage(dir.path(), "2026-03-10T09:40:00Z");
    let dry = |now: &str| {
        run(
            ledger,
            &[
                "submit",
                before.to_str().unwrap(),
                "--dry-run",
                "--now",
                now,
                "--format",
                "json",
            ],
        )
    };
    let o = dry("2026-03-10T10:59:00Z");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 records would be written"));
    let o = dry("2026-03-10T11:01:00Z");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("0 records would be written"));
}
