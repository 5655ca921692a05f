//! Crash safety: `submit` a few thousand records to the moto peer, `kill -9` it at random
//! moments, `submit` or `resume` again, repeat; then finish with a `resume`. Counted at the
//! peer: nothing lost, nothing sent twice with different content, every ledger row final.
//!
//! 20 rounds here (METERGATE_KILL_ROUNDS and METERGATE_KILL_RECORDS override; the script
//! bench/kill_resume.sh runs 100 rounds).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "submit_support/mod.rs"]
mod support;

use std::time::Instant;

use support::*;

#[test]
fn kill_and_resume_loses_nothing_and_sends_nothing_twice() {
    let rounds = support::env_num("METERGATE_KILL_ROUNDS", 20);
    let target = support::env_num("METERGATE_KILL_RECORDS", 3000) as usize;
    let seed = support::env_num("METERGATE_KILL_SEED", fastrand::u64(..));
    fastrand::seed(seed);
    // 2 products × 15 dimensions × 4 hours × customers.
    let customers = target.div_ceil(2 * 15 * 4).max(1);
    let dir = tempfile::tempdir().unwrap();
    let data = generate(dir.path(), 2, customers, 15, 4);
    let subs = data.subs.to_str().unwrap().to_owned();
    // A little throttling, so kills also land during backoff.
    let Some(peer) = Peer::start(&[
        "--subscribe-file",
        &subs,
        "--throttle",
        "0.03",
        "--seed",
        "11",
    ]) else {
        return;
    };
    let ledger = dir.path().join("ledger.sqlite");
    let started = Instant::now();
    let kills = support::kill_rounds(
        || peer.metergate(),
        &data.records,
        &data.contracts,
        &ledger,
        rounds,
        30..900,
    );
    // Finish: resume until done, then submit the same file once more (sends nothing).
    let out = peer
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
        "final resume: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = peer.records().len();
    let out = peer
        .metergate()
        .arg("submit")
        .arg(&data.records)
        .arg("--contracts")
        .arg(&data.contracts)
        .arg("--ledger")
        .arg(&ledger)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        peer.records().len(),
        before,
        "a second submit sent records again"
    );

    let c = count(&peer, &data.expected);
    let states = ledger_counts(&ledger);
    let unfinished = states["pending"] + states["sending"];
    let rows: u64 = states.values().sum();
    println!(
        "kill-resume: seed={seed} rounds={rounds} kills={kills} records={} received_at_peer={} resent_identical={} billed={} lost={} sent_twice_with_different_content={} duplicate_answers={} unexpected={} ledger_rows={rows} ledger_unfinished={unfinished} ledger={states:?} elapsed={:.1}s",
        data.expected.len(),
        c.received,
        c.received - c.billed,
        c.billed,
        c.lost,
        c.conflicting,
        c.duplicate_answers,
        c.unexpected,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(c.lost, 0, "records lost");
    assert_eq!(c.conflicting, 0, "keys sent with different content");
    assert_eq!(c.duplicate_answers, 0);
    assert_eq!(c.unexpected, 0);
    assert_eq!(c.billed, data.expected.len());
    assert_eq!(unfinished, 0, "rows left unfinished: {states:?}");
    assert_eq!(rows as usize, data.expected.len());
    assert_eq!(
        states["accepted"] as usize,
        data.expected.len(),
        "{states:?}"
    );
}
