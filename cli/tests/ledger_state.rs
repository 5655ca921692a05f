//! The ledger on its own: schema, state machine, history, and the `ledger` / `deadlines`
//! commands, each on SQLite and on PostgreSQL (a throwaway cluster, `pg_support`). No peer
//! needed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg_support;
#[path = "submit_support/mod.rs"]
mod support;

use pg_support::TestLedger;

use chrono::Duration;
use metergate::ledger::{
    idempotency_key, load_history, Enqueued, Filter, Ledger, NewRow, Outcome, Status,
};
use metergate_core::{Marketplace, UsageRecord};
use serde_json::{json, Value};
use support::*;

fn record(customer: &str, dim: &str, q: i64, t: chrono::DateTime<chrono::Utc>) -> UsageRecord {
    UsageRecord {
        marketplace: Marketplace::Aws,
        product: "prod-a".into(),
        customer: customer.into(),
        dimension: dim.into(),
        quantity: q.into(),
        start_time: t,
        end_time: None,
        record_id: None,
        plan: None,
        allocations: None,
        attributes: Default::default(),
    }
}

fn row(customer: &str, dim: &str, q: i64, t: chrono::DateTime<chrono::Utc>) -> NewRow {
    let record = record(customer, dim, q, t);
    let wire = metergate::submit::wire_values(&record, None).unwrap();
    NewRow {
        record,
        source: Some("in.jsonl:1".into()),
        wire,
    }
}

fn new_id(e: Enqueued) -> i64 {
    match e {
        Enqueued::New(id) => id,
        other => panic!("{other:?}"),
    }
}

fn outcome(status: Status, answer: &str) -> Outcome {
    Outcome {
        status,
        answer: Some(answer.into()),
        reason: None,
        marketplace_record_id: Some("mrid-1".into()),
    }
}

#[test]
fn schema_is_versioned_and_crash_safe() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.sqlite");
    let l = Ledger::open(&p).unwrap();
    assert_eq!(
        l.schema_version().unwrap(),
        metergate::ledger::SCHEMA_VERSION
    );
    drop(l);
    let conn = rusqlite::Connection::open(&p).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // A file from a newer metergate is refused, not rewritten.
    conn.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(conn);
    let err = Ledger::open(&p).err().unwrap();
    assert!(matches!(
        err,
        metergate::ledger::LedgerError::TooNew { found: 99, .. }
    ));
    // A missing file is an error for read-only use.
    assert!(matches!(
        Ledger::open_existing(&dir.path().join("nope.sqlite"))
            .err()
            .unwrap(),
        metergate::ledger::LedgerError::Missing { .. }
    ));
}

/// PostgreSQL keeps its version in `schema_version`; a database from a newer metergate is
/// refused, not rewritten; the lease columns are there from the start.
#[test]
fn postgres_schema_is_versioned() {
    let Some(lg) = TestLedger::new(pg_support::Engine::Postgres) else {
        return;
    };
    let l = Ledger::open(lg.path()).unwrap();
    assert_eq!(
        l.schema_version().unwrap(),
        metergate::ledger::SCHEMA_VERSION
    );
    assert_eq!(l.engine(), metergate::ledger::db::Engine::Postgres);
    drop(l);
    // Opening again migrates nothing.
    Ledger::open(lg.path()).unwrap();
    assert_eq!(
        lg.psql("SELECT COUNT(*) FROM schema_version"),
        "1",
        "one version row"
    );
    assert_eq!(
        lg.psql(
            "SELECT COUNT(*) FROM information_schema.columns \
             WHERE table_name = 'records' AND column_name IN ('lease_owner', 'lease_until')"
        ),
        "2"
    );
    lg.psql("UPDATE schema_version SET version = 99");
    let err = Ledger::open(lg.path()).err().unwrap();
    assert!(
        matches!(
            err,
            metergate::ledger::LedgerError::TooNew { found: 99, .. }
        ),
        "{err:?}"
    );
}

both_engines!(
    state_machine_and_idempotency_keys,
    a_live_lease_of_another_agent_holds_until_it_ends,
    heartbeat_usage_lookup_is_per_hour,
    ledger_commands_list_export_and_summarise,
    deadlines_lists_pending_rows_and_cancelled_contracts,
);

fn state_machine_and_idempotency_keys(lg: &TestLedger) {
    let mut l = Ledger::open(lg.path()).unwrap();
    let t = hours_ago(2) + Duration::minutes(20);
    let a = row("cust-1", "api_calls", 5, t);
    assert_eq!(
        idempotency_key(&a.record),
        format!("aws|prod-a|cust-1|api_calls|{}|5", rfc(hours_ago(2)))
    );
    let ids = l
        .enqueue(&[a.clone(), row("cust-2", "api_calls", 6, t)])
        .unwrap();
    let (ia, ib) = (new_id(ids[0]), new_id(ids[1]));
    // The same key again changes nothing.
    assert_eq!(
        l.enqueue(std::slice::from_ref(&a)).unwrap(),
        [Enqueued::Existing(ia, Status::Pending)]
    );
    assert_eq!(l.unfinished().unwrap().len(), 2);

    l.claim(&[ia, ib]).unwrap();
    l.claim(&[ia, ib]).unwrap(); // a retry: still sending, attempts 2
    let rows = l.rows(&[ia]).unwrap();
    assert_eq!(rows[0].status, Status::Sending);
    assert_eq!(rows[0].attempts, 2);
    l.finish(&[
        (ia, outcome(Status::Accepted, "Success")),
        (ib, outcome(Status::Rejected, "CustomerNotSubscribed")),
    ])
    .unwrap();
    // An end state is never overwritten, and a final row cannot be claimed (it is left out
    // of the claim: another agent may have ended it since it was read).
    l.finish(&[(ia, outcome(Status::Failed, "x"))]).unwrap();
    assert_eq!(l.rows(&[ia]).unwrap()[0].status, Status::Accepted);
    assert!(l.claim(&[ia]).unwrap().is_empty());
    assert!(l.unfinished().unwrap().is_empty());

    // History: accepted counts, rejected does not.
    let h = l.history().unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].customer, "cust-1");
    assert_eq!(h[0].start_time, t);

    // A rejected key submitted again goes back to pending; an accepted one does not.
    let again = l.enqueue(&[row("cust-2", "api_calls", 6, t), a]).unwrap();
    assert_eq!(
        again,
        [
            Enqueued::Requeued(ib),
            Enqueued::Existing(ia, Status::Accepted)
        ]
    );
    let trans: Vec<String> = l
        .transitions(ib)
        .unwrap()
        .into_iter()
        .map(|x| x.2)
        .collect();
    assert_eq!(trans, ["pending", "sending", "rejected", "pending"]);

    // Failed rows are re-queued on request.
    l.claim(&[ib]).unwrap();
    l.finish(&[(ib, outcome(Status::Failed, "ThrottlingException"))])
        .unwrap();
    assert_eq!(l.requeue_failed().unwrap(), 1);
    assert_eq!(l.rows(&[ib]).unwrap()[0].status, Status::Pending);

    // Filters.
    let f = Filter {
        status: Some(Status::Accepted),
        ..Default::default()
    };
    assert_eq!(l.list(&f).unwrap().len(), 1);
    let f = Filter {
        since: Some(hours_ago(1)),
        ..Default::default()
    };
    assert!(l.list(&f).unwrap().is_empty());
    let f = Filter {
        customer: Some("cust-2".into()),
        until: Some(hours_ago(1)),
        ..Default::default()
    };
    assert_eq!(l.list(&f).unwrap().len(), 1);
    assert_eq!(load_history(lg.path()).unwrap().len(), 2);
}

fn heartbeat_usage_lookup_is_per_hour(lg: &TestLedger) {
    let mut l = Ledger::open(lg.path()).unwrap();
    let hour = hours_ago(3);
    l.enqueue(&[row("cust-1", "api_calls", 5, hour + Duration::minutes(59))])
        .unwrap();
    let has = |l: &Ledger, h, d: &str| {
        l.has_usage_in_hour(Marketplace::Aws, "prod-a", "cust-1", d, h)
            .unwrap()
    };
    assert!(has(&l, hour, "api_calls"));
    assert!(!has(&l, hour, "storage"));
    assert!(!has(&l, hour + Duration::hours(1), "api_calls"));
    assert!(!has(&l, hour - Duration::hours(1), "api_calls"));
}

fn cli_ledger(lg: &TestLedger) -> &std::path::Path {
    let p = lg.path();
    let mut l = Ledger::open(p).unwrap();
    let ids = l
        .enqueue(&[
            row("cust-1", "api_calls", 5, hours_ago(2)),
            row(
                "cust-2",
                "api_calls",
                7,
                hours_ago(5) + Duration::minutes(30),
            ),
            row("cust-1", "storage", 1, hours_ago(1)),
        ])
        .unwrap();
    let ia = new_id(ids[0]);
    l.claim(&[ia]).unwrap();
    l.finish(&[(ia, outcome(Status::Accepted, "Success"))])
        .unwrap();
    p
}

fn ledger_commands_list_export_and_summarise(lg: &TestLedger) {
    let p = cli_ledger(lg);
    let run = |args: &[&str]| {
        let out = metergate_cmd()
            .arg("ledger")
            .arg("--ledger")
            .arg(p)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let list = run(&["list", "--format", "json"]);
    let rows: Vec<Value> = list
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["status"], "accepted");
    assert_eq!(rows[0]["marketplace_record_id"], "mrid-1");
    let pending = run(&[
        "list",
        "--status",
        "pending",
        "--customer",
        "cust-1",
        "--format",
        "json",
    ]);
    assert_eq!(pending.lines().count(), 1);
    let since = run(&[
        "list",
        "--since",
        &rfc(hours_ago(2)),
        "--until",
        &rfc(hours_ago(1)),
        "--format",
        "csv",
    ]);
    assert_eq!(since.lines().count(), 2, "{since}"); // header + the row at hours_ago(2)

    let csv = run(&["export", "--format", "csv"]);
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        header,
        [
            "submitted_at",
            "marketplace",
            "product",
            "customer",
            "dimension",
            "usage_time",
            "quantity",
            "status",
            "reason",
            "marketplace_record_id",
            "properties"
        ]
    );
    let recs: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(recs.len(), 3);
    assert_eq!(&recs[0][7], "accepted");
    assert_eq!(&recs[0][9], "mrid-1");
    assert!(!recs[0][0].is_empty());
    let json: Value = serde_json::from_str(&run(&["export", "--format", "json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);

    let summary: Value = serde_json::from_str(&run(&["summary", "--format", "json"])).unwrap();
    assert_eq!(summary["rows"], 3);
    assert_eq!(summary["by_status"]["pending"]["rows"], 2);
    assert_eq!(
        summary["by_marketplace"]["aws"]["accepted"]["quantity"],
        "5"
    );

    let bad = metergate_cmd()
        .args(["ledger", "list", "--status", "sent", "--ledger"])
        .arg(p)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

fn deadlines_lists_pending_rows_and_cancelled_contracts(lg: &TestLedger) {
    let p = cli_ledger(lg);
    let now = hours_ago(0) + Duration::minutes(10);
    let stop = now - Duration::minutes(20);
    let contracts = json!([
        {"marketplace":"aws","product":"prod-a","customer":"cust-1","status":"active",
         "starts_at": rfc(hours_ago(48)), "dimensions":[{"name":"api_calls"},{"name":"storage"}]},
        {"marketplace":"aws","product":"prod-a","customer":"cust-2","status":"active",
         "starts_at": rfc(hours_ago(48)), "dimensions":[{"name":"api_calls"}]},
        {"marketplace":"aws","product":"prod-a","customer":"gone","status":"cancelled",
         "starts_at": rfc(hours_ago(48)), "cancelled_at": rfc(stop), "dimensions":[{"name":"api_calls"}]}
    ]);
    let cpath = lg.dir.path().join("c.json");
    std::fs::write(&cpath, contracts.to_string()).unwrap();
    let out = metergate_cmd()
        .arg("deadlines")
        .arg("--contracts")
        .arg(&cpath)
        .arg("--ledger")
        .arg(p)
        .args(["--now", &rfc(now), "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    // Soonest first: cancelled at stop → stop + 1h; cust-2's row from hours_ago(5)+30m →
    // just before + 6h; cust-1/storage at hours_ago(1) → just before + 6h.
    assert_eq!(lines[0]["kind"], "cancelled");
    assert_eq!(lines[0]["deadline"], rfc(stop + Duration::hours(1)));
    assert_eq!(lines[0]["rule"], "aws.post_cancel");
    assert_eq!(lines[1]["kind"], "pending");
    assert_eq!(lines[1]["customer"], "cust-2");
    // The last instant (inclusive): 6 h is already refused, so 1 ns before it.
    assert_eq!(
        lines[1]["deadline"],
        rfc(hours_ago(5) + Duration::minutes(30) + Duration::hours(6) - Duration::nanoseconds(1))
    );
    assert_eq!(lines[1]["rule"], "aws.lookback");
    assert_eq!(lines[2]["dimension"], "storage");
}

/// An unreachable PostgreSQL ledger is exit 2 for every command that opens one, and the
/// password in the URL appears nowhere in the output. No cluster needed: port 1 is closed.
#[test]
fn unreachable_postgres_is_exit_2_and_never_shows_the_password() {
    let url = "postgres://metergate:s3cret-pw@127.0.0.1:1/ledger";
    let dir = tempfile::tempdir().unwrap();
    let cpath = dir.path().join("c.json");
    std::fs::write(&cpath, "[]").unwrap();
    let cases: [&[&str]; 4] = [
        &["ledger", "list", "--ledger", url],
        &["ledger", "summary", "--ledger", url],
        &["contracts", "list", "--ledger", url],
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--insecure-no-auth",
            "--contracts",
            cpath.to_str().unwrap(),
            "--ledger",
            url,
        ],
    ];
    for args in cases {
        let out = metergate_cmd()
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(
            !text.contains("s3cret-pw"),
            "{args:?} shows the password: {text}"
        );
        assert!(
            text.contains("127.0.0.1:1"),
            "{args:?} names the server: {text}"
        );
    }
    // The same with METERGATE_LEDGER.
    let out = metergate_cmd()
        .args(["ledger", "list"])
        .env("METERGATE_LEDGER", url)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("s3cret-pw"));
}

/// Raw SQL on the test's ledger, either engine (to play another agent).
fn raw_sql(lg: &TestLedger, sql: &str) {
    match lg.engine {
        pg_support::Engine::Sqlite => {
            rusqlite::Connection::open(lg.path())
                .unwrap()
                .execute_batch(sql)
                .unwrap();
        }
        pg_support::Engine::Postgres => {
            lg.psql(sql);
        }
    }
}

/// Another agent (on another machine) holds a row in `sending` under a live lease: this one
/// leaves it alone; once the lease has run out, this one takes it over. A claim sets this
/// agent's own lease, and finishing clears it.
fn a_live_lease_of_another_agent_holds_until_it_ends(lg: &TestLedger) {
    let mut l = Ledger::open(lg.path()).unwrap();
    let t = hours_ago(2) + Duration::minutes(5);
    let ids = l
        .enqueue(&[
            row("cust-1", "api_calls", 5, t),
            row("cust-2", "api_calls", 6, t),
        ])
        .unwrap();
    let (ia, ib) = (new_id(ids[0]), new_id(ids[1]));
    let now = chrono::Utc::now().timestamp();
    raw_sql(
        lg,
        &format!(
            "UPDATE records SET status = 'sending', lease_owner = 'elsewhere:0badb007:4242:00c0ffee', \
             lease_until = {} WHERE id = {ia}",
            now + 600
        ),
    );
    // Only the pending row is claimed; the other agent's live lease holds.
    assert_eq!(l.claim(&[ia, ib]).unwrap(), [ib]);
    assert_eq!(l.claim(&[ia]).unwrap(), Vec::<i64>::new());
    // Its lease runs out: taken over, and re-claimable by this agent (a retry) while held.
    raw_sql(
        lg,
        &format!(
            "UPDATE records SET lease_until = {} WHERE id = {ia}",
            now - 1
        ),
    );
    assert_eq!(l.claim(&[ia]).unwrap(), [ia]);
    assert_eq!(l.claim(&[ia, ib]).unwrap(), [ia, ib]);
    l.finish(&[
        (ia, outcome(Status::Accepted, "Success")),
        (ib, outcome(Status::Accepted, "Success")),
    ])
    .unwrap();
    assert!(l.unfinished().unwrap().is_empty());
    assert_eq!(l.claim(&[ia, ib]).unwrap(), Vec::<i64>::new());
}
