//! Crash safety of `metergate serve`: concurrent clients post usage (each request with an
//! `Idempotency-Key`, retried until it gets an answer) while the server is `kill -9`ed a few
//! times and restarted on the same ledger; the send loop sends to moto all along. At the end,
//! counted at the peer: every record billed once, none lost, no key sent with two contents.
//!
//! METERGATE_SERVE_KILLS (default 3) and METERGATE_SERVE_RECORDS (default 800) override.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod serve_support;
#[path = "submit_support/mod.rs"]
mod submit_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serve_support::{try_request, Server};
use submit_support::{count, env_num, generate, ledger_counts, Peer};

const TOKEN: &str = "kill-test-token";
const PER_REQUEST: usize = 4;
const CLIENTS: usize = 8;

#[test]
fn kill_9_during_load_then_restart_sends_everything_once() {
    let kills = env_num("METERGATE_SERVE_KILLS", 3);
    let target = env_num("METERGATE_SERVE_RECORDS", 800) as usize;
    let work = tempfile::tempdir().unwrap();
    // 2 products × 5 dimensions × 4 hours × customers.
    let customers = target.div_ceil(2 * 5 * 4).max(1);
    let data = generate(work.path(), 2, customers, 5, 4);
    let Some(peer) = Peer::start(&["--subscribe-file", data.subs.to_str().unwrap()]) else {
        return;
    };
    let contracts = data.contracts.to_str().unwrap().to_owned();
    let peer_url = peer.url();
    let args = [
        "--contracts",
        contracts.as_str(),
        "--send-interval",
        "200ms",
    ];
    let envs = [
        ("METERGATE_API_TOKEN", TOKEN),
        ("AWS_ENDPOINT_URL", peer_url.as_str()),
    ];
    let server = Server::start(&args, &envs);
    let ledger = server.ledger();
    let addr = Arc::new(Mutex::new(server.addr.clone()));

    // The requests: PER_REQUEST records each, with a key of their own.
    let lines: Vec<String> = std::fs::read_to_string(&data.records)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let requests: Vec<(String, String)> = lines
        .chunks(PER_REQUEST)
        .enumerate()
        .map(|(i, c)| (format!("batch-{i}"), c.join("\n")))
        .collect();
    let next = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();

    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (addr, next, retries, requests) = (
                Arc::clone(&addr),
                Arc::clone(&next),
                Arc::clone(&retries),
                requests.clone(),
            );
            std::thread::spawn(move || {
                let mut ok = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((key, body)) = requests.get(i) else {
                        return ok;
                    };
                    let deadline = Instant::now() + Duration::from_secs(120);
                    loop {
                        let a = addr.lock().unwrap().clone();
                        let r = try_request(
                            &a,
                            "POST",
                            "/v1/usage",
                            &[
                                ("Authorization", &format!("Bearer {TOKEN}")),
                                ("Content-Type", "application/x-ndjson"),
                                ("Idempotency-Key", key),
                            ],
                            body.as_bytes(),
                        );
                        match r {
                            Ok(r) if r.status == 200 => {
                                ok += 1;
                                break;
                            }
                            Ok(r) if r.status != 503 => {
                                panic!("{key}: {} {}", r.status, r.body)
                            }
                            _ => {
                                retries.fetch_add(1, Ordering::SeqCst);
                                assert!(
                                    Instant::now() < deadline,
                                    "{key}: no answer for 2 minutes"
                                );
                                std::thread::sleep(Duration::from_millis(25));
                            }
                        }
                    }
                }
            })
        })
        .collect();

    // Kill the server while the clients post and the send loop sends; restart it.
    let mut server = server;
    for k in 0..kills {
        std::thread::sleep(Duration::from_millis(fastrand::u64(150..600)));
        let dir = server.into_dir();
        eprintln!(
            "kill {k}: after {} of {} requests",
            next.load(Ordering::SeqCst).min(requests.len()),
            requests.len()
        );
        server = Server::start_in(dir, &args, &envs)
            .unwrap_or_else(|(c, log)| panic!("restart: {c:?} {log}"));
        *addr.lock().unwrap() = server.addr.clone();
    }
    let answered: usize = clients.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(answered, requests.len());

    // Let the send loop finish everything.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let c = ledger_counts(&ledger);
        if c["pending"] + c["sending"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rows left unfinished: {c:?}\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = server.terminate(Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(0));

    let c = count(&peer, &data.expected);
    let states = ledger_counts(&ledger);
    println!(
        "serve-kill: kills={kills} requests={} client_retries={} records={} received_at_peer={} billed={} lost={} sent_twice_with_different_content={} duplicate_answers={} unexpected={} ledger={states:?} elapsed={:.1}s",
        requests.len(),
        retries.load(Ordering::SeqCst),
        data.expected.len(),
        c.received,
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
    assert_eq!(
        states["accepted"] as usize,
        data.expected.len(),
        "{states:?}"
    );
    let rows: u64 = states.values().sum();
    assert_eq!(
        rows as usize,
        data.expected.len(),
        "one row per record: {states:?}"
    );
}
