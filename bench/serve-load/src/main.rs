//! `serve-load`: a load generator for `metergate serve`.
//!
//! ```text
//! serve-load contracts FILE --customers N --dims D          write a contracts file
//! serve-load run --addr HOST:PORT --token T --mode single|batch
//!                [--requests N] [--batch B] [--connections C] [--customer-offset K]
//! ```
//!
//! Every record has a key of its own (customer × dimension × hour within the last 5 complete
//! hours), so every accepted record is really written to the ledger. Each connection is one
//! thread with a keep-alive HTTP/1.1 connection; latency is measured per request, from the
//! first byte written to the last byte read. Every request (head and real JSON body) is built
//! before the clock starts, and the answers are read into reused buffers, so the generator
//! takes as little as it can of the cores it shares with the server. Prints one line of
//! `key=value` results.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const HOURS: u64 = 5;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn num(args: &[String], name: &str, default: u64) -> u64 {
    arg(args, name)
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| die(&format!("{name}: not a number: {v}")))
        })
        .unwrap_or(default)
}

fn die(msg: &str) -> ! {
    eprintln!("serve-load: {msg}");
    std::process::exit(2)
}

/// RFC 3339 of a Unix time (UTC).
fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn contracts(args: &[String]) {
    let file = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| die("contracts FILE"));
    let customers = num(args, "--customers", 2000);
    let dims = num(args, "--dims", 50);
    let start = rfc3339(now_secs() - 30 * 86_400);
    let dim_list: Vec<String> = (0..dims)
        .map(|d| format!("{{\"name\":\"d{d}\"}}"))
        .collect();
    let dim_list = dim_list.join(",");
    let mut out = String::from("[\n");
    for c in 0..customers {
        if c > 0 {
            out.push_str(",\n");
        }
        out.push_str(&format!(
            "{{\"marketplace\":\"aws\",\"product\":\"bench\",\"customer\":\"c{c}\",\"status\":\"active\",\"starts_at\":\"{start}\",\"dimensions\":[{dim_list}]}}"
        ));
    }
    out.push_str("\n]\n");
    std::fs::write(&file, out).unwrap_or_else(|e| die(&format!("{file}: {e}")));
}

/// The n-th record: a key of its own.
fn record(n: u64, dims: u64, hour0: u64) -> String {
    let per_customer = dims * HOURS;
    let c = n / per_customer;
    let r = n % per_customer;
    let d = r / HOURS;
    let h = r % HOURS;
    let t = hour0 - (h + 1) * 3600 + 420;
    format!(
        "{{\"marketplace\":\"aws\",\"product\":\"bench\",\"customer\":\"c{c}\",\"dimension\":\"d{d}\",\"quantity\":{},\"start_time\":\"{}\",\"record_id\":\"r{n}\"}}",
        n % 97 + 1,
        rfc3339(t)
    )
}

struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| die(&format!("{addr}: {e}")));
        let _ = s.set_nodelay(true);
        let w = s.try_clone().unwrap_or_else(|e| die(&e.to_string()));
        Conn {
            r: BufReader::with_capacity(64 * 1024, s),
            w,
        }
    }

    /// One POST of a request built by [`request`] (head and body); returns the status. The
    /// answer is read in full (status line, headers, `Content-Length` bytes of body) into
    /// buffers reused from one request to the next.
    fn post(&mut self, req: &[u8], line: &mut String, body: &mut Vec<u8>) -> u16 {
        self.w
            .write_all(req)
            .unwrap_or_else(|e| die(&format!("write: {e}")));
        line.clear();
        self.r
            .read_line(line)
            .unwrap_or_else(|e| die(&format!("read: {e}")));
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| die(&format!("no status line: {line:?}")));
        let mut len = 0usize;
        loop {
            line.clear();
            self.r
                .read_line(line)
                .unwrap_or_else(|e| die(&format!("read: {e}")));
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        body.clear();
        body.resize(len, 0);
        self.r
            .read_exact(body)
            .unwrap_or_else(|e| die(&format!("read body: {e}")));
        status
    }
}

/// One whole HTTP request (head and body) posting `body` to `/v1/usage`.
fn request(addr: &str, token: &str, body: &str) -> Vec<u8> {
    let head = format!(
        "POST /v1/usage HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut buf = Vec::with_capacity(head.len() + body.len());
    buf.extend_from_slice(head.as_bytes());
    buf.extend_from_slice(body.as_bytes());
    buf
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

fn run(args: &[String]) {
    let addr = arg(args, "--addr").unwrap_or_else(|| die("--addr HOST:PORT"));
    let token = arg(args, "--token").unwrap_or_default();
    let mode = arg(args, "--mode").unwrap_or_else(|| "single".into());
    let batch = if mode == "batch" {
        num(args, "--batch", 100)
    } else {
        1
    };
    let requests = num(args, "--requests", 20_000);
    let conns = num(args, "--connections", 32);
    let dims = num(args, "--dims", 50);
    let offset = num(args, "--record-offset", 0);
    let hour0 = now_secs() / 3600 * 3600;
    // Every request (head and JSON body) is built before the clock starts, so the generator
    // spends its share of the 2 cores on HTTP only, not on formatting records.
    let reqs: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..requests)
            .map(|i| {
                let first = offset + i * batch;
                let body = if batch == 1 {
                    record(first, dims, hour0)
                } else {
                    let recs: Vec<String> = (first..first + batch)
                        .map(|n| record(n, dims, hour0))
                        .collect();
                    format!("[{}]", recs.join(","))
                };
                request(&addr, &token, &body)
            })
            .collect(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let (next, bad, addr, reqs) = (
                Arc::clone(&next),
                Arc::clone(&bad),
                addr.clone(),
                Arc::clone(&reqs),
            );
            std::thread::spawn(move || {
                let mut c = Conn::open(&addr);
                let mut lat = Vec::with_capacity((requests / conns.max(1) + 1) as usize * 2);
                let (mut line, mut body) = (String::with_capacity(256), Vec::new());
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(req) = reqs.get(i as usize) else {
                        return lat;
                    };
                    let t = Instant::now();
                    let status = c.post(req, &mut line, &mut body);
                    lat.push(t.elapsed().as_micros() as u64);
                    if status != 200 {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let mut lat: Vec<u64> = Vec::with_capacity(requests as usize);
    for t in threads {
        lat.extend(t.join().unwrap_or_default());
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    lat.sort_unstable();
    let n = lat.len() as f64;
    println!(
        "mode={mode} connections={conns} requests={} records={} non_200={} seconds={secs:.2} requests_per_s={:.0} records_per_s={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        lat.len(),
        lat.len() as u64 * batch,
        bad.load(Ordering::Relaxed),
        n / secs,
        n * batch as f64 / secs,
        pct(&lat, 0.50),
        pct(&lat, 0.99),
        pct(&lat, 1.0),
    );
    let _ = Duration::from_secs(0);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("contracts") => contracts(&args),
        Some("run") => run(&args),
        _ => {
            eprintln!("usage: serve-load contracts FILE [--customers N] [--dims D]\n       serve-load run --addr HOST:PORT --token T [--mode single|batch] [--requests N] [--batch B] [--connections C] [--dims D] [--record-offset K]");
            std::process::exit(2)
        }
    }
}
