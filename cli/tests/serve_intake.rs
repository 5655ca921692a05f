//! `metergate serve` over real HTTP: auth, every status code of `POST /v1/usage`, each body
//! format judged exactly as `check` judges it, idempotent retries (also concurrent ones), live
//! dedup between requests, health, readiness and SIGTERM. No marketplace is called here (the
//! send interval is an hour); `serve_kill.rs` sends to moto.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod serve_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use serve_support::{
    command, hour_ago, intake_contracts as contracts, intake_record as record, Server,
};

const TOKEN: &str = "test-token-1";

struct Fixture {
    server: Server,
    contracts: PathBuf,
    _dir: tempfile::TempDir,
}

fn start_with(extra: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let c = contracts(dir.path());
    let mut args = vec!["--contracts", c.to_str().unwrap(), "--send-interval", "1h"];
    args.extend_from_slice(extra);
    let server = Server::start(
        &args,
        &[("METERGATE_API_TOKEN", "other-token, test-token-1")],
    );
    Fixture {
        server,
        contracts: c,
        _dir: dir,
    }
}

fn rows_in(ledger: &Path) -> u64 {
    let l = metergate::ledger::Ledger::open_existing(ledger).unwrap();
    l.counts().unwrap().iter().map(|(_, n)| n).sum()
}

fn codes(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn refuses_to_start_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let c = contracts(dir.path());
    let c = c.to_str().unwrap();
    let (code, log) = Server::try_start(&["--contracts", c], &[]).err().unwrap();
    assert_eq!(code.and_then(|s| s.code()), Some(2), "{log}");
    assert!(log.contains("METERGATE_API_TOKEN"), "{log}");
    // --insecure-no-auth only on loopback.
    let out = command()
        .args([
            "serve",
            "--insecure-no-auth",
            "--listen",
            "0.0.0.0:0",
            "--contracts",
            c,
        ])
        .arg("--ledger")
        .arg(dir.path().join("l.sqlite"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    // On loopback it runs, and /v1/ needs no token.
    let s = Server::start(&["--contracts", c, "--insecure-no-auth"], &[]);
    let body = record("cust-1", "api_calls", 3, "open-1").to_string();
    assert_eq!(
        s.post("/v1/usage", None, "application/json", &body).status,
        200
    );
}

#[test]
fn a_bad_lease_in_the_config_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let c = contracts(dir.path());
    let config = dir.path().join("serve.toml");
    std::fs::write(&config, "[serve]\nlease = \"soon\"\n").unwrap();
    let out = command()
        .args(["serve", "--insecure-no-auth", "--listen", "127.0.0.1:0"])
        .arg("--contracts")
        .arg(&c)
        .arg("--config")
        .arg(&config)
        .arg("--ledger")
        .arg(dir.path().join("l.sqlite"))
        .env_remove("METERGATE_LEASE_SECS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[serve] lease"));
}

#[test]
fn auth_and_status_codes() {
    let f = start_with(&[]);
    let s = &f.server;
    let body = json!([record("cust-1", "api_calls", 5, "a-1")]).to_string();
    // 401: no token, a wrong one, another scheme.
    let r = s.post("/v1/usage", None, "application/json", &body);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        s.post("/v1/usage", Some("test-token-"), "application/json", &body)
            .status,
        401
    );
    assert_eq!(
        s.post(
            "/v1/usage",
            Some("test-token-12"),
            "application/json",
            &body
        )
        .status,
        401
    );
    let r = s.request(
        "POST",
        "/v1/usage",
        &[
            ("Authorization", "Basic dTp0ZXN0LXRva2VuLTE="),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 401);
    assert_eq!(rows_in(&s.ledger()), 0, "nothing stored without a token");

    // 200: every record accepted and committed before the answer.
    let r = s.post("/v1/usage", Some(TOKEN), "application/json", &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["summary"]["accepted"], 1);
    assert_eq!(v["verdicts"][0]["verdict"], "accepted");
    assert_eq!(v["verdicts"][0]["record_id"], "a-1");
    assert_eq!(rows_in(&s.ledger()), 1);
    // The other configured token works too.
    let one = record("cust-1", "seats", 2, "a-2").to_string();
    assert_eq!(
        s.post("/v1/usage", Some("other-token"), "application/json", &one)
            .status,
        200
    );

    // 422: one rejected (no such customer), the accepted one is still stored.
    let mixed = json!([
        record("cust-2", "api_calls", 1, "m-1"),
        record("cust-nobody", "api_calls", 1, "m-2"),
    ])
    .to_string();
    let r = s.post("/v1/usage", Some(TOKEN), "application/json", &mixed);
    assert_eq!(r.status, 422, "{}", r.body);
    let v = r.json();
    assert_eq!(v["summary"]["accepted"], 1);
    assert_eq!(v["summary"]["rejected"], 1);
    assert_eq!(v["verdicts"][1]["verdict"], "rejected");
    assert_eq!(v["verdicts"][1]["index"], 1);
    assert_eq!(rows_in(&s.ledger()), 3);

    // 400: a body that is not readable as a whole.
    for bad in ["[{\"quantity\": 1},", "{oops", "", "[1, 2"] {
        let r = s.post("/v1/usage", Some(TOKEN), "application/json", bad);
        assert_eq!(r.status, 400, "{bad:?}: {}", r.body);
        assert!(r.json()["error"].as_str().unwrap().contains("body"));
    }
    let r = s.post(
        "/v1/usage",
        Some(TOKEN),
        "text/csv",
        "nothing,we,know\n1,2,3\n",
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // 415: not a usage format.
    let r = s.post("/v1/usage", Some(TOKEN), "application/xml", "<r/>");
    assert_eq!(r.status, 415);
    // 400: a bad Idempotency-Key.
    let r = s.request(
        "POST",
        "/v1/usage",
        &[
            ("Authorization", "Bearer test-token-1"),
            ("Idempotency-Key", "a b"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 400);
    assert_eq!(rows_in(&s.ledger()), 3);

    // Health is open; readiness sees the ledger and the contracts.
    assert_eq!(s.get("/healthz").status, 200);
    let r = s.get("/readyz");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["contracts"], 2);
    // /metrics is open (S4 observe; its content is tested in serve_observe_http.rs).
    assert_eq!(s.get("/metrics").status, 200);
    assert_eq!(s.get("/nowhere").status, 404);
}

#[test]
fn body_limit_gives_413() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        "[serve]\nbody_limit = \"1KiB\"\n\n[aws]\nlookback = \"6h\"\n",
    )
    .unwrap();
    let f = start_with(&["--config", cfg.to_str().unwrap()]);
    let s = &f.server;
    let small = record("cust-1", "api_calls", 5, "s-1").to_string();
    assert_eq!(
        s.post("/v1/usage", Some(TOKEN), "application/json", &small)
            .status,
        200
    );
    let big: Vec<Value> = (0..40)
        .map(|i| record("cust-1", "api_calls", 5, &format!("big-{i}")))
        .collect();
    let r = s.post(
        "/v1/usage",
        Some(TOKEN),
        "application/json",
        &json!(big).to_string(),
    );
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(rows_in(&s.ledger()), 1);
    // `check` reads the same config file (the agent's sections are not settings).
    let out = command()
        .args(["check", "--format", "json", "--config"])
        .arg(&cfg)
        .arg("--contracts")
        .arg(&f.contracts)
        .arg("--input-format")
        .arg("jsonl")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The same records as JSON, JSON Lines and CSV give the verdicts `check` gives.
#[test]
fn each_format_matches_check() {
    let f = start_with(&[]);
    let s = &f.server;
    let t = hour_ago();
    // Accepted, unknown dimension, bad quantity, unreadable row, missing field.
    let jsonl = format!(
        "{{\"marketplace\":\"aws\",\"product\":\"prod-a\",\"customer\":\"cust-1\",\"dimension\":\"api_calls\",\"quantity\":4,\"start_time\":\"{t}\",\"record_id\":\"f-1\"}}\n\
         {{\"marketplace\":\"aws\",\"product\":\"prod-a\",\"customer\":\"cust-1\",\"dimension\":\"nope\",\"quantity\":4,\"start_time\":\"{t}\",\"record_id\":\"f-2\"}}\n\
         {{\"marketplace\":\"aws\",\"product\":\"prod-a\",\"customer\":\"cust-2\",\"dimension\":\"seats\",\"quantity\":\"-1\",\"start_time\":\"{t}\",\"record_id\":\"f-3\"}}\n\
         {{not json\n\
         {{\"marketplace\":\"aws\",\"product\":\"prod-a\",\"customer\":\"cust-2\",\"dimension\":\"seats\",\"start_time\":\"{t}\"}}\n"
    );
    let csv = format!(
        "marketplace,product,customer,dimension,quantity,start_time,record_id\n\
         aws,prod-a,cust-1,api_calls,4,{t},f-1\n\
         aws,prod-a,cust-1,nope,4,{t},f-2\n\
         aws,prod-a,cust-2,seats,-1,{t},f-3\n\
         aws,prod-a,cust-2\n\
         aws,prod-a,cust-2,seats,,{t},\n"
    );
    let check = |input: &str, fmt: &str| -> Vec<Value> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(format!("in.{fmt}"));
        std::fs::write(&p, input).unwrap();
        let out = command()
            .args(["check", "--format", "json", "--contracts"])
            .arg(&f.contracts)
            .arg(&p)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v.get("summary").is_none())
            .collect()
    };
    let same = |served: &Value, checked: &[Value], what: &str| {
        let got = served["verdicts"].as_array().unwrap();
        assert_eq!(got.len(), checked.len(), "{what}: {served}");
        for (g, c) in got.iter().zip(checked) {
            assert_eq!(g["index"], c["index"], "{what}");
            assert_eq!(g["record_id"], c["record_id"], "{what}");
            assert_eq!(g["verdict"], c["verdict"], "{what}: {g} vs {c}");
            assert_eq!(codes(g), codes(c), "{what}: {g} vs {c}");
            let fields: Vec<&Value> = g["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| &f["field"])
                .collect();
            let want: Vec<&Value> = c["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| &f["field"])
                .collect();
            assert_eq!(fields, want, "{what}");
            assert_eq!(g["source"]["line"], c["source"]["line"], "{what}");
            assert_eq!(g["source"]["file"], "body");
        }
    };
    let checked_jsonl = check(&jsonl, "jsonl");
    let r = s.post("/v1/usage", Some(TOKEN), "application/x-ndjson", &jsonl);
    assert_eq!(r.status, 422, "{}", r.body);
    same(&r.json(), &checked_jsonl, "ndjson");
    assert_eq!(r.json()["summary"]["accepted"], 1);

    // CSV: the accepted record is now stored, so check with the ledger to compare.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("in.csv");
    std::fs::write(&p, &csv).unwrap();
    let out = command()
        .args(["check", "--format", "json", "--contracts"])
        .arg(&f.contracts)
        .arg("--ledger")
        .arg(s.ledger())
        .arg(&p)
        .output()
        .unwrap();
    let checked_csv: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("summary").is_none())
        .collect();
    let r = s.post("/v1/usage", Some(TOKEN), "text/csv; charset=utf-8", &csv);
    assert_eq!(r.status, 422, "{}", r.body);
    // f-1's record id is stored: its FIRST verdict comes back, as accepted.
    let v = r.json();
    assert_eq!(v["verdicts"][0]["verdict"], "accepted");
    assert_eq!(v["verdicts"][0]["findings"], json!([]));
    let mut rest = v.clone();
    rest["verdicts"] = json!(v["verdicts"].as_array().unwrap()[1..].to_vec());
    same(&rest, &checked_csv[1..], "csv");

    // A JSON array and a single object.
    let arr = json!([record("cust-2", "api_calls", 9, "j-1"), {"quantity": true}]).to_string();
    let checked_arr = check(&arr, "json");
    let r = s.post("/v1/usage", Some(TOKEN), "application/json", &arr);
    assert_eq!(r.status, 422);
    same(&r.json(), &checked_arr, "json array");
    let r = s.post(
        "/v1/usage",
        Some(TOKEN),
        "application/json",
        "{\"quantity\": 1}",
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["summary"]["records"], 1);
}

#[test]
fn live_dedup_between_requests() {
    let f = start_with(&[]);
    let s = &f.server;
    let a = record("cust-1", "api_calls", 5, "d-1").to_string();
    assert_eq!(
        s.post("/v1/usage", Some(TOKEN), "application/json", &a)
            .status,
        200
    );
    // Same hour, another quantity: AWS would drop it.
    let b = record("cust-1", "api_calls", 6, "d-2").to_string();
    let r = s.post("/v1/usage", Some(TOKEN), "application/json", &b);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(codes(&r.json()["verdicts"][0]).contains(&"duplicate-request".to_owned()));
    // Same quantity, another record id: accepted, a repeat, nothing new stored.
    let c = record("cust-1", "api_calls", 5, "d-3").to_string();
    let r = s.post("/v1/usage", Some(TOKEN), "application/json", &c);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(codes(&r.json()["verdicts"][0]).contains(&"duplicate-ignored".to_owned()));
    assert_eq!(rows_in(&s.ledger()), 1);
}

#[test]
fn idempotent_retries_under_concurrency() {
    let f = start_with(&[]);
    let s = &f.server;
    let body = json!([
        record("cust-1", "api_calls", 5, "i-1"),
        record("cust-2", "api_calls", 7, "i-2"),
        record("cust-nobody", "api_calls", 1, "i-3"),
    ])
    .to_string();
    // 16 clients send the same request with the same key at once.
    let addr = s.addr.clone();
    let replies: Vec<serve_support::Reply> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..16)
            .map(|_| {
                let (addr, body) = (addr.clone(), body.clone());
                sc.spawn(move || {
                    serve_support::request(
                        &addr,
                        "POST",
                        "/v1/usage",
                        &[
                            ("Authorization", "Bearer test-token-1"),
                            ("Content-Type", "application/json"),
                            ("Idempotency-Key", "req-0001"),
                        ],
                        body.as_bytes(),
                    )
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let first = &replies[0];
    assert_eq!(first.status, 422);
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
    assert_eq!(replayed, 15);
    assert_eq!(rows_in(&s.ledger()), 2);

    // 16 clients send the same records under different keys: the record ids hold.
    let replies: Vec<serve_support::Reply> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..16)
            .map(|i| {
                let (addr, body) = (addr.clone(), body.clone());
                sc.spawn(move || {
                    let key = format!("other-{i}");
                    serve_support::request(
                        &addr,
                        "POST",
                        "/v1/usage",
                        &[
                            ("Authorization", "Bearer test-token-1"),
                            ("Idempotency-Key", &key),
                        ],
                        body.as_bytes(),
                    )
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &replies {
        let v = r.json();
        assert_eq!(v["verdicts"][0]["verdict"], "accepted");
        assert_eq!(
            v["verdicts"][0]["findings"],
            json!([]),
            "the first verdict: {v}"
        );
        assert_eq!(v["verdicts"][1]["verdict"], "accepted");
        assert_eq!(v["verdicts"][2]["verdict"], "rejected");
    }
    assert_eq!(rows_in(&s.ledger()), 2);
    // A rejected record's id is not kept: corrected, it goes in.
    let fixed = record("cust-2", "seats", 1, "i-3").to_string();
    assert_eq!(
        s.post("/v1/usage", Some(TOKEN), "application/json", &fixed)
            .status,
        200
    );
    assert_eq!(rows_in(&s.ledger()), 3);
}

#[test]
fn sigterm_stops_cleanly_and_keeps_pending_rows() {
    let mut f = start_with(&[]);
    let body = record("cust-1", "api_calls", 5, "t-1").to_string();
    assert_eq!(
        f.server
            .post("/v1/usage", Some(TOKEN), "application/json", &body)
            .status,
        200
    );
    let status = f
        .server
        .terminate(Duration::from_secs(20))
        .expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", f.server.logs());
    let counts = metergate::ledger::Ledger::open_existing(&f.server.ledger())
        .unwrap()
        .counts()
        .unwrap();
    let pending = counts
        .iter()
        .find(|(s, _)| s.as_str() == "pending")
        .unwrap()
        .1;
    assert_eq!(pending, 1);
}
