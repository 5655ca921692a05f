//! Two `metergate submit` processes on one SQLite ledger at the same moment, with the same
//! customers, dimensions and hours but different quantities, against moto: the ledger keeps
//! one live row per key, so moto receives each key once (no `DuplicateRecord`, no key with
//! two quantities), and the process whose records were not written says so and exits 1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "submit_support/mod.rs"]
mod support;

use serde_json::Value;
use support::*;

#[test]
fn two_submits_on_one_sqlite_file_send_each_key_once() {
    let dir = tempfile::tempdir().unwrap();
    // 1 product × 6 customers × 2 dimensions × 3 hours = 36 keys.
    let data = generate(dir.path(), 1, 6, 2, 3);
    let subs = data.subs.to_str().unwrap().to_owned();
    let Some(peer) = Peer::start(&["--subscribe-file", &subs]) else {
        return;
    };
    // The same keys with other quantities (and other record ids).
    let other = dir.path().join("other.jsonl");
    let text: String = std::fs::read_to_string(&data.records)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v["quantity"] = (v["quantity"].as_i64().unwrap() + 1000).into();
            v["record_id"] = format!("other-{}", v["record_id"].as_str().unwrap()).into();
            format!("{v}\n")
        })
        .collect();
    std::fs::write(&other, text).unwrap();
    let ledger = dir.path().join("shared.sqlite");
    let submit = |input: &std::path::Path| {
        peer.metergate()
            .arg("submit")
            .arg(input)
            .arg("--contracts")
            .arg(&data.contracts)
            .arg("--ledger")
            .arg(&ledger)
            .args(["--format", "json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (submit(&data.records), submit(&other));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let codes = [a.status.code(), b.status.code()];
    let stderr = [
        String::from_utf8_lossy(&a.stderr).into_owned(),
        String::from_utf8_lossy(&b.stderr).into_owned(),
    ];
    // One run wrote and sent everything; the other found every key taken, either when it
    // read the history (the core's duplicate-request) or when it wrote (the ledger's).
    let mut sorted = codes;
    sorted.sort();
    assert_eq!(sorted, [Some(0), Some(1)], "{stderr:?}");
    let loser = usize::from(codes[0] == Some(0));
    let conflicts = stderr[loser]
        .lines()
        .filter(|l| l.contains("not written: duplicate-request"))
        .count();
    eprintln!("the later run: {conflicts} records refused by the ledger's one-live-row key");

    let c = count(&peer, &[]);
    let keys = data.expected.len();
    println!(
        "two-submits: keys={keys} received_at_peer={} billed={} duplicate_answers={} conflicting={} refused_at_write={conflicts}",
        c.received, c.billed, c.duplicate_answers, c.conflicting
    );
    assert_eq!(c.received, keys, "each key received once");
    assert_eq!(c.billed, keys);
    assert_eq!(c.duplicate_answers, 0);
    assert_eq!(c.conflicting, 0, "no key sent with two quantities");
    let counts = ledger_counts(&ledger);
    assert_eq!(counts.values().sum::<u64>() as usize, keys, "{counts:?}");
    assert_eq!(counts.get("accepted").copied().unwrap_or(0) as usize, keys);
}
