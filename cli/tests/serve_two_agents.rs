//! Two `metergate serve` agents on one PostgreSQL ledger behind one client load, against moto.
//! One of them is `kill -9`ed at random moments and restarted, round after round, while
//! concurrent clients post usage (each request with its own `Idempotency-Key`, retried on the
//! other agent when a connection fails) and both send loops send. With a short lease
//! (METERGATE_LEASE_SECS) the survivor takes over the rows a killed agent had claimed.
//!
//! Counted at the peer (moto's recorded BatchMeterUsage records): 0 lost, 0 keys sent with two
//! different contents, nothing unexpected; in the ledger: one row per record, every row final.
//!
//! Also here (one cluster per test binary): the intake's arbiter across agents. The same
//! `Idempotency-Key` or `record_id` sent to both agents at the same moment is stored once; the
//! same customer, dimension and hour with two quantities, one to each agent at the same
//! moment, is accepted by one and refused (`duplicate-request`) by the other, and moto
//! receives that key once.
//!
//! METERGATE_TWO_AGENT_ROUNDS (default 20), METERGATE_TWO_AGENT_RECORDS (default 1200) and
//! METERGATE_TWO_AGENT_PACE_MS (default 250: each client's pause between requests, so that the
//! load lasts through most rounds) override.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg_support;
mod serve_support;
#[path = "submit_support/mod.rs"]
mod submit_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use serve_support::{
    intake_contracts, intake_record as record, request, try_request, Reply, Server,
};
use submit_support::{count, env_num, generate, metergate_cmd, Peer};

const TOKEN: &str = "two-agent-token";
const PER_REQUEST: usize = 4;
const CLIENTS: usize = 8;
/// Seconds a claim holds its rows: short, so a killed agent's rows are taken over quickly.
const LEASE_SECS: &str = "2";

/// Rows per status, through `metergate ledger summary` (the CLI works the same on both
/// engines).
fn ledger_states(url: &str) -> BTreeMap<String, u64> {
    let out = metergate_cmd()
        .args(["ledger", "summary", "--format", "json", "--ledger", url])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "ledger summary: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut states: BTreeMap<String, u64> = [
        "pending",
        "sending",
        "accepted",
        "rejected",
        "duplicate",
        "failed",
        "expired",
    ]
    .into_iter()
    .map(|s| (s.to_owned(), 0))
    .collect();
    if let Some(m) = v["by_status"].as_object() {
        for (k, s) in m {
            states.insert(k.clone(), s["rows"].as_u64().unwrap_or(0));
        }
    }
    states
}

#[test]
fn two_agents_one_killed_at_random_send_everything_once() {
    // METERGATE_TWO_AGENT_LEDGER runs the same against another ledger (e.g. a shared SQLite
    // file, to tell the harness from the engine when something fails).
    let url = match std::env::var("METERGATE_TWO_AGENT_LEDGER") {
        Ok(l) if !l.is_empty() => l,
        _ => match pg_support::fresh_database() {
            Some(url) => url,
            None => return,
        },
    };
    let rounds = env_num("METERGATE_TWO_AGENT_ROUNDS", 20) as usize;
    let target = env_num("METERGATE_TWO_AGENT_RECORDS", 1200) as usize;
    let work = tempfile::tempdir().unwrap();
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
        "--ledger",
        url.as_str(),
    ];
    let envs = [
        ("METERGATE_API_TOKEN", TOKEN),
        ("AWS_ENDPOINT_URL", peer_url.as_str()),
        ("METERGATE_LEASE_SECS", LEASE_SECS),
    ];
    let started = Instant::now();
    let mut servers = [Server::start(&args, &envs), Server::start(&args, &envs)];
    let addrs = Arc::new(Mutex::new([
        servers[0].addr.clone(),
        servers[1].addr.clone(),
    ]));

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
    let replays = Arc::new(AtomicUsize::new(0));
    // Pace the load so that it lasts through the kill rounds rather than ending after the first.
    let pace = Duration::from_millis(env_num("METERGATE_TWO_AGENT_PACE_MS", 250));

    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let (addrs, next, retries, replays, requests) = (
                Arc::clone(&addrs),
                Arc::clone(&next),
                Arc::clone(&retries),
                Arc::clone(&replays),
                requests.clone(),
            );
            std::thread::spawn(move || {
                let mut ok = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((key, body)) = requests.get(i) else {
                        return ok;
                    };
                    // Spread over both agents; on a failure, the same request (same key) goes
                    // to the other one.
                    let mut which = (i + n) % 2;
                    let deadline = Instant::now() + Duration::from_secs(60);
                    loop {
                        let a = addrs.lock().unwrap()[which].clone();
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
                                if r.header("idempotent-replayed") == Some("true") {
                                    replays.fetch_add(1, Ordering::SeqCst);
                                }
                                ok += 1;
                                break;
                            }
                            Ok(r) if r.status != 503 => {
                                panic!("{key} on agent {which}: {} {}", r.status, r.body)
                            }
                            _ => {
                                retries.fetch_add(1, Ordering::SeqCst);
                                assert!(
                                    Instant::now() < deadline,
                                    "{key}: no answer from either agent for 60 s"
                                );
                                which = 1 - which;
                                std::thread::sleep(Duration::from_millis(10));
                            }
                        }
                    }
                    std::thread::sleep(pace);
                }
            })
        })
        .collect();

    // Kill one agent (at random) at random moments, restart it on the same database; at least
    // `rounds` times, and on until the load is over.
    let mut kills = 0usize;
    while kills < rounds || next.load(Ordering::SeqCst) < requests.len() {
        std::thread::sleep(Duration::from_millis(fastrand::u64(100..700)));
        let victim = fastrand::usize(0..2);
        servers[victim].kill9();
        servers[victim] = Server::start(&args, &envs);
        addrs.lock().unwrap()[victim] = servers[victim].addr.clone();
        kills += 1;
        eprintln!(
            "round {kills}: killed agent {victim} after {} of {} requests ({:.1} s)",
            next.load(Ordering::SeqCst).min(requests.len()),
            requests.len(),
            started.elapsed().as_secs_f64()
        );
        if kills > rounds * 4 {
            break;
        }
    }
    let answered: usize = clients.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(answered, requests.len());

    // Let both send loops finish (a killed agent's claims expire after the lease).
    let deadline = Instant::now() + Duration::from_secs(60);
    let states = loop {
        let c = ledger_states(&url);
        if c["pending"] + c["sending"] == 0 {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "rows left unfinished: {c:?}\nagent 0:\n{}\nagent 1:\n{}",
            servers[0].logs(),
            servers[1].logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for s in servers.iter_mut() {
        let status = s.terminate(Duration::from_secs(20));
        assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", s.logs());
    }

    let c = count(&peer, &data.expected);
    println!(
        "serve-two-agents: rounds={kills} requests={} client_retries={} replays={} records={} calls_at_peer={} received_at_peer={} billed={} lost={} sent_twice_with_different_content={} duplicate_answers={} unexpected={} ledger={states:?} elapsed={:.1}s",
        requests.len(),
        retries.load(Ordering::SeqCst),
        replays.load(Ordering::SeqCst),
        data.expected.len(),
        peer.calls().len(),
        c.received,
        c.billed,
        c.lost,
        c.conflicting,
        c.duplicate_answers,
        c.unexpected,
        started.elapsed().as_secs_f64()
    );
    assert!(kills >= rounds);
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

/// Two agents on one fresh database, sending nothing (the send interval is an hour).
fn two_idle_agents() -> Option<(String, [Server; 2], tempfile::TempDir)> {
    let url = pg_support::fresh_database()?;
    let dir = tempfile::tempdir().unwrap();
    let c = intake_contracts(dir.path());
    let args = [
        "--contracts",
        c.to_str().unwrap(),
        "--send-interval",
        "1h",
        "--ledger",
        url.as_str(),
    ];
    let envs = [("METERGATE_API_TOKEN", TOKEN)];
    let a = Server::start(&args, &envs);
    let b = Server::start(&args, &envs);
    Some((url, [a, b], dir))
}

/// `n` requests at once, alternating between the agents, with the key `key(i)`.
fn burst(servers: &[Server; 2], n: usize, body: &str, key: impl Fn(usize) -> String) -> Vec<Reply> {
    let addrs = [servers[0].addr.clone(), servers[1].addr.clone()];
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let (addr, body, key) = (addrs[i % 2].clone(), body.to_owned(), key(i));
                sc.spawn(move || {
                    request(
                        &addr,
                        "POST",
                        "/v1/usage",
                        &[
                            ("Authorization", &format!("Bearer {TOKEN}")),
                            ("Content-Type", "application/json"),
                            ("Idempotency-Key", &key),
                        ],
                        body.as_bytes(),
                    )
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn rows(url: &str) -> u64 {
    ledger_states(url).values().sum()
}

#[test]
fn one_key_on_both_agents_at_once_is_stored_once() {
    let Some((url, servers, _dir)) = two_idle_agents() else {
        return;
    };
    let body = json!([
        record("cust-1", "api_calls", 5, "i-1"),
        record("cust-2", "api_calls", 7, "i-2"),
        record("cust-nobody", "api_calls", 1, "i-3"),
    ])
    .to_string();
    // 16 clients, 8 on each agent, the same request under the same key.
    let replies = burst(&servers, 16, &body, |_| "req-0001".to_owned());
    let first = &replies[0];
    assert_eq!(first.status, 422, "{}", first.body);
    for r in &replies {
        assert_eq!(r.status, first.status);
        assert_eq!(
            r.body, first.body,
            "every retry gets the first answer, byte for byte"
        );
    }
    let replayed = replies
        .iter()
        .filter(|r| r.header("idempotent-replayed") == Some("true"))
        .count();
    assert_eq!(replayed, 15, "one stored answer, 15 replays");
    assert_eq!(rows(&url), 2);

    // The same records under 16 keys over both agents: the record ids hold.
    let replies = burst(&servers, 16, &body, |i| format!("other-{i}"));
    for r in &replies {
        let v = r.json();
        assert_eq!(v["verdicts"][0]["verdict"], "accepted", "{v}");
        assert_eq!(v["verdicts"][1]["verdict"], "accepted", "{v}");
        assert_eq!(v["verdicts"][2]["verdict"], "rejected", "{v}");
    }
    assert_eq!(rows(&url), 2, "one row per record id across both agents");
}

#[test]
fn sigterm_on_postgres_keeps_pending_rows_for_the_other_agent() {
    let Some((url, mut servers, _dir)) = two_idle_agents() else {
        return;
    };
    let body = record("cust-1", "seats", 3, "t-1").to_string();
    let r = servers[0].post("/v1/usage", Some(TOKEN), "application/json", &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let status = servers[0].terminate(Duration::from_secs(20));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        servers[0].logs()
    );
    assert_eq!(ledger_states(&url)["pending"], 1);
    // The other agent sees the row: the same record again is a replay of it, not a new row.
    let r = servers[1].post("/v1/usage", Some(TOKEN), "application/json", &body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(rows(&url), 1);
}

/// The same customer, dimension and hour with two quantities, one to each agent at the same
/// moment (each agent's dedup state knows nothing of the other's records): the ledger keeps
/// one live row per key, so exactly one agent answers 200 and the other 422
/// `duplicate-request`, and moto receives each key once, with the accepted quantity.
#[test]
fn one_hour_with_two_quantities_on_both_agents_is_accepted_once() {
    let Some(url) = pg_support::fresh_database() else {
        return;
    };
    let Some(peer) = Peer::start(&["--subscribe", "prod-a:cust-1,cust-2"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let c = intake_contracts(dir.path());
    let peer_url = peer.url();
    let args = [
        "--contracts",
        c.to_str().unwrap(),
        "--send-interval",
        "200ms",
        "--ledger",
        url.as_str(),
    ];
    let envs = [
        ("METERGATE_API_TOKEN", TOKEN),
        ("AWS_ENDPOINT_URL", peer_url.as_str()),
    ];
    let mut servers = [Server::start(&args, &envs), Server::start(&args, &envs)];
    // 2 customers × 2 dimensions × 3 hours = 12 keys; quantity 5 to agent 0, 6 to agent 1.
    let mut keys = Vec::new();
    for customer in ["cust-1", "cust-2"] {
        for dim in ["api_calls", "seats"] {
            for h in 1..=3i64 {
                keys.push((customer, dim, h));
            }
        }
    }
    let start = |h: i64| {
        metergate_core::time::format_rfc3339(
            metergate_core::time::hour_floor(chrono::Utc::now()) - chrono::Duration::hours(h)
                + chrono::Duration::minutes(7 + h),
        )
    };
    // One record to each agent first (other keys): each builds its dedup state from the
    // ledger on its first request, and keeps it; from now on neither knows what the other
    // stores.
    for (agent, customer) in [(0, "cust-1"), (1, "cust-2")] {
        let body = json!({
            "marketplace": "aws", "product": "prod-a", "customer": customer,
            "dimension": "api_calls", "quantity": 1, "start_time": start(5),
            "record_id": format!("warm-{agent}"),
        })
        .to_string();
        let r = servers[agent].post("/v1/usage", Some(TOKEN), "application/json", &body);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let addrs = [servers[0].addr.clone(), servers[1].addr.clone()];
    let replies: Vec<[Reply; 2]> = std::thread::scope(|sc| {
        let hs: Vec<_> = keys
            .iter()
            .map(|&(customer, dim, h)| {
                let (addrs, t) = (addrs.clone(), start(h));
                sc.spawn(move || {
                    let post = |agent: usize, q: i64| {
                        let body = json!({
                            "marketplace": "aws", "product": "prod-a", "customer": customer,
                            "dimension": dim, "quantity": q, "start_time": t,
                            "record_id": format!("{customer}-{dim}-{h}-agent{agent}"),
                        })
                        .to_string();
                        request(
                            &addrs[agent],
                            "POST",
                            "/v1/usage",
                            &[
                                ("Authorization", &format!("Bearer {TOKEN}")),
                                ("Content-Type", "application/json"),
                            ],
                            body.as_bytes(),
                        )
                    };
                    std::thread::scope(|both| {
                        let a = both.spawn(|| post(0, 5));
                        let b = both.spawn(|| post(1, 6));
                        [a.join().unwrap(), b.join().unwrap()]
                    })
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut winners = BTreeMap::new();
    let mut refused_on = [0usize; 2];
    for (&(customer, dim, h), pair) in keys.iter().zip(&replies) {
        let ok: Vec<usize> = (0..2).filter(|&i| pair[i].status == 200).collect();
        assert_eq!(
            ok.len(),
            1,
            "{customer} {dim} {h}: {} {} / {} {}",
            pair[0].status,
            pair[0].body,
            pair[1].status,
            pair[1].body
        );
        let loser = 1 - ok[0];
        refused_on[loser] += 1;
        let v = pair[loser].json();
        assert_eq!(pair[loser].status, 422, "{v}");
        assert_eq!(v["verdicts"][0]["verdict"], "rejected", "{v}");
        let codes: Vec<&str> = v["verdicts"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["code"].as_str())
            .collect();
        assert!(codes.contains(&"duplicate-request"), "{v}");
        assert_eq!(pair[ok[0]].json()["verdicts"][0]["verdict"], "accepted");
        winners.insert((customer, dim, h), if ok[0] == 0 { 5 } else { 6 });
    }
    eprintln!("keys={} refused on agent 0/1: {refused_on:?}", keys.len());

    // Both send loops send what was stored; then count at the peer.
    let deadline = Instant::now() + Duration::from_secs(60);
    let states = loop {
        let c = ledger_states(&url);
        if c["pending"] + c["sending"] == 0 {
            break c;
        }
        assert!(Instant::now() < deadline, "rows left unfinished: {c:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    for s in servers.iter_mut() {
        let status = s.terminate(Duration::from_secs(20));
        assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", s.logs());
    }
    // The warm-up records are keys too.
    winners.insert(("cust-1", "api_calls", 5), 1);
    winners.insert(("cust-2", "api_calls", 5), 1);
    assert_eq!(states["accepted"] as usize, winners.len(), "{states:?}");
    assert_eq!(
        rows(&url) as usize,
        winners.len(),
        "one row per key: {states:?}"
    );
    let records = peer.records();
    assert_eq!(
        records.len(),
        winners.len(),
        "each key received once: {records:?}"
    );
    let mut seen = BTreeMap::new();
    for r in &records {
        let ts = r["timestamp"].as_f64().unwrap() as i64;
        let h = (metergate_core::time::hour_floor(chrono::Utc::now()).timestamp()
            - ts.div_euclid(3600) * 3600)
            / 3600;
        let key = (
            r["identity"].as_str().unwrap().to_owned(),
            r["dimension"].as_str().unwrap().to_owned(),
            h,
        );
        assert_eq!(r["status"], "Success", "{r}");
        assert!(
            seen.insert(key, r["quantity"].as_i64().unwrap()).is_none(),
            "a key twice at the peer: {records:?}"
        );
    }
    let want: BTreeMap<(String, String, i64), i64> = winners
        .iter()
        .map(|(&(c, d, h), &q)| ((c.to_owned(), d.to_owned(), h), q))
        .collect();
    assert_eq!(
        seen, want,
        "moto billed the quantity each client was told was accepted"
    );
}
