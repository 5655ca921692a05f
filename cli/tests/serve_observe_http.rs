//! `metergate serve`'s observability over real HTTP against the running binary: the status
//! page and its data need the token (bearer or Basic), `/metrics` is open and names no
//! customer, and an alert reaches a loopback webhook when moto rejects a record.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod serve_support;
mod submit_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::Duration as CDuration;
use serde_json::{json, Value};
use serve_support::Server;
use submit_support::{hours_ago, rfc, Peer};

const TOKEN: &str = "observe-token-1";

fn contracts(dir: &std::path::Path) -> String {
    let start = rfc(hours_ago(48));
    let text = json!([
        {"marketplace":"aws","product":"prod-a","customer":"cust-1","status":"active","starts_at":start,
         "dimensions":[{"name":"api_calls"}]},
        {"marketplace":"aws","product":"prod-a","customer":"cust-2","status":"active","starts_at":start,
         "dimensions":[{"name":"api_calls"}]},
        {"marketplace":"aws","product":"prod-a","customer":"Acme-Secret-Customer","status":"active",
         "starts_at":start,"dimensions":[{"name":"api_calls"}]}
    ])
    .to_string();
    let p = dir.join("contracts.json");
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

fn usage(customer: &str, q: i64) -> String {
    json!({"marketplace":"aws","product":"prod-a","customer":customer,"dimension":"api_calls",
           "quantity":q,"start_time":rfc(hours_ago(1) + CDuration::minutes(5))})
    .to_string()
}

fn get(s: &Server, path: &str, auth: Option<&str>) -> serve_support::Reply {
    let mut h: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = auth {
        h.push(("Authorization", a));
    }
    s.request("GET", path, &h, b"")
}

#[test]
fn the_status_data_needs_the_token_and_metrics_name_no_customer() {
    let dir = tempfile::tempdir().unwrap();
    let c = contracts(dir.path());
    // An hour between sends, and an endpoint where nothing listens: nothing leaves.
    let s = Server::start(
        &["--contracts", &c, "--send-interval", "1h"],
        &[
            ("METERGATE_API_TOKEN", TOKEN),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ],
    );
    let body = format!(
        "[{},{}]",
        usage("Acme-Secret-Customer", 3),
        usage("nobody-Secret", 1)
    );
    let r = s.post("/v1/usage", Some(TOKEN), "application/json", &body);
    assert_eq!(r.status, 422, "{}", r.body);

    // The page itself is open and holds no data; it forbids inline script.
    let page = get(&s, "/", None);
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("script-src 'self'"));
    assert!(!page.body.contains("Acme"));
    for f in [
        "/status/status.js",
        "/status/status.css",
        "/status/base.css",
    ] {
        assert_eq!(get(&s, f, None).status, 200, "{f}");
    }
    assert_eq!(get(&s, "/status/nope.js", None).status, 404);

    // Its data needs the token: none, a wrong one, a good bearer, Basic with the token.
    for path in ["/v1/status/rows", "/v1/status/summary"] {
        assert_eq!(get(&s, path, None).status, 401, "{path}");
        assert_eq!(get(&s, path, Some("Bearer wrong")).status, 401, "{path}");
        let basic_wrong = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("me:wrong")
        );
        assert_eq!(get(&s, path, Some(&basic_wrong)).status, 401, "{path}");
    }
    let bearer = format!("Bearer {TOKEN}");
    let rows = get(&s, "/v1/status/rows?status=pending&q=acme", Some(&bearer));
    assert_eq!(rows.status, 200, "{}", rows.body);
    assert_eq!(rows.header("cache-control"), Some("no-store"));
    let v = rows.json();
    assert_eq!(v["total"], 1);
    assert_eq!(v["rows"][0]["customer"], "Acme-Secret-Customer");
    assert_eq!(v["rows"][0]["deadline"]["rule"], "aws.lookback");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("seller:{TOKEN}"))
    );
    let sum = get(&s, "/v1/status/summary", Some(&basic));
    assert_eq!(sum.status, 200, "{}", sum.body);
    assert_eq!(sum.json()["totals"]["pending"], 1);
    let bad = get(&s, "/v1/status/rows?status=accepted", Some(&bearer));
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().unwrap().contains("status"));

    // /metrics: open, Prometheus text, and no customer anywhere in it.
    let m = get(&s, "/metrics", None);
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().contains("version=0.0.4"));
    for line in [
        "metergate_pending_records{marketplace=\"aws\"} 1",
        "metergate_ledger_records{marketplace=\"aws\",status=\"pending\"} 1",
        "metergate_intake_records_total{verdict=\"accepted\"} 1",
        "metergate_intake_records_total{verdict=\"rejected\"} 1",
        "metergate_intake_findings_total{code=\"customer-not-entitled\",severity=\"error\"} 1",
    ] {
        assert!(
            m.body.lines().any(|l| l == line),
            "missing {line:?}:\n{}",
            m.body
        );
    }
    assert!(m
        .body
        .contains("metergate_next_deadline_seconds{marketplace=\"aws\"}"));
    assert!(m
        .body
        .contains("metergate_oldest_pending_age_seconds{marketplace=\"aws\"}"));
    for secret in ["Acme", "nobody", "prod-a", "api_calls", TOKEN] {
        assert!(!m.body.contains(secret), "{secret} in /metrics");
    }
    for path in ["/healthz", "/readyz"] {
        assert!(!get(&s, path, None).body.contains("Acme"), "{path}");
    }
}

/// A loopback webhook that answers 200 and records each JSON body.
fn hook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/services/T0/B0/WEBHOOKSECRET",
        listener.local_addr().unwrap()
    );
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&bodies);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_ok() {
                if let Ok(v) = serde_json::from_slice(&body) {
                    seen.lock().unwrap().push(v);
                }
            }
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            );
        }
    });
    (url, bodies)
}

#[test]
fn an_alert_reaches_the_webhook_when_moto_rejects_a_record() {
    // cust-2 is not subscribed at the peer: AWS answers CustomerNotSubscribed.
    let Some(peer) = Peer::start(&["--subscribe", "prod-a:cust-1"]) else {
        return;
    };
    let dir = peer.dir.path().to_path_buf();
    let c = contracts(&dir);
    let (url, bodies) = hook();
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!("[alerts]\nwebhook = \"{url}\"\nsilent_after = \"0s\"\n"),
    )
    .unwrap();
    let peer_url = peer.url();
    let s = Server::start(
        &[
            "--contracts",
            &c,
            "--config",
            config.to_str().unwrap(),
            "--send-interval",
            "1s",
        ],
        &[
            ("METERGATE_API_TOKEN", TOKEN),
            ("AWS_ENDPOINT_URL", peer_url.as_str()),
        ],
    );
    let body = format!("{}\n{}\n", usage("cust-1", 4), usage("cust-2", 5));
    let r = s.post("/v1/usage", Some(TOKEN), "application/x-ndjson", &body);
    assert_eq!(r.status, 200, "{}", r.body);

    let until = Instant::now() + Duration::from_secs(60);
    while bodies.lock().unwrap().is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Give a second message (if any were wrongly sent) the time to arrive.
    std::thread::sleep(Duration::from_millis(1500));
    let got = bodies.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "one alert: {got:?}\n{}", s.logs());
    let msg = &got[0];
    let text = msg["text"].as_str().unwrap();
    assert!(text.contains("1 record rejected"), "{text}");
    let blocks = msg["blocks"].to_string();
    assert!(blocks.contains("CustomerNotSubscribed"), "{blocks}");
    assert!(
        blocks.contains("cust-2") && !blocks.contains("cust-1"),
        "{blocks}"
    );
    assert!(!msg.to_string().contains("WEBHOOKSECRET"));
    assert!(!msg.to_string().contains(TOKEN));
    assert!(
        !s.logs().contains("WEBHOOKSECRET"),
        "the webhook URL was logged"
    );

    // Counted at the peer: both records reached moto, once each.
    let recs = peer.records();
    assert_eq!(recs.len(), 2, "{recs:?}");

    // And the metrics agree.
    let m = get(&s, "/metrics", None);
    for line in [
        "metergate_records_finished_total{marketplace=\"aws\",status=\"accepted\"} 1",
        "metergate_records_finished_total{marketplace=\"aws\",status=\"rejected\"} 1",
        "metergate_ledger_unsuccessful_records{marketplace=\"aws\",status=\"rejected\",answer=\"CustomerNotSubscribed\"} 1",
        "metergate_pending_records{marketplace=\"aws\"} 0",
    ] {
        assert!(m.body.lines().any(|l| l == line), "missing {line:?}:\n{}", m.body);
    }
    assert!(m
        .body
        .lines()
        .any(|l| l.starts_with("metergate_send_calls_total{marketplace=\"aws\"} ")));
    assert!(m
        .body
        .contains("metergate_last_successful_send_timestamp_seconds{marketplace=\"aws\"}"));
}
