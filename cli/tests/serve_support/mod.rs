//! Shared by the `serve_*` tests: start `metergate serve` on an ephemeral loopback port, learn
//! the port from its first stdout line, talk HTTP/1.1 to it, and stop it (SIGTERM or
//! `kill -9`).
//!
//! ```ignore
//! mod serve_support;
//! let s = serve_support::Server::start(&["--contracts", c], &[("METERGATE_API_TOKEN", "t")]);
//! let r = s.post("/v1/usage", Some("t"), "application/json", body);
//! assert_eq!(r.status, 200);
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running `metergate serve`; killed when dropped.
pub struct Server {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Its stderr (the logs).
    pub log: PathBuf,
    /// A scratch directory (the ledger lives here unless the test gave `--ledger`).
    pub dir: tempfile::TempDir,
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl Reply {
    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The binary, with a clean environment for the AWS SDK (no endpoint, dummy credentials).
pub fn command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_metergate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("METERGATE_") {
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

impl Server {
    /// Starts `metergate serve --listen 127.0.0.1:0 --ledger DIR/ledger.sqlite ARGS` with the
    /// extra environment `envs`, and waits for its "listening on" line. Give `--ledger` in
    /// `args` to use another ledger (a path or a `postgres://` URL) instead.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Server {
        Server::try_start(args, envs).unwrap_or_else(|(code, log)| {
            panic!("metergate serve did not start (exit {code:?}):\n{log}")
        })
    }

    /// Like [`Server::start`], but a server that exits before listening is an `Err` with its
    /// exit status and stderr (for tests of refusals to start).
    pub fn try_start(
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<Server, (Option<ExitStatus>, String)> {
        let dir = tempfile::tempdir().unwrap();
        Server::start_in(dir, args, envs)
    }

    /// Like [`Server::try_start`] in a given scratch directory (to restart on the same ledger).
    pub fn start_in(
        dir: tempfile::TempDir,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<Server, (Option<ExitStatus>, String)> {
        let ledger = dir.path().join("ledger.sqlite");
        let log = dir
            .path()
            .join(format!("serve-{}.log", std::process::id() ^ rand_u32()));
        let mut c = command();
        c.args(["serve", "--listen", "127.0.0.1:0"]);
        // The scratch ledger unless the test gives its own (a path or a postgres:// URL).
        if !args.contains(&"--ledger") {
            c.arg("--ledger").arg(&ledger);
        }
        c.args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = c.spawn().expect("metergate starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the server never blocks on a full pipe.
            let mut sink = Vec::new();
            let _ = r.read_to_end(&mut sink);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let addr = line
            .trim()
            .strip_prefix("metergate: listening on http://")
            .map(str::to_owned);
        match addr {
            Some(addr) => Ok(Server {
                child: Some(child),
                addr,
                log,
                dir,
            }),
            None => {
                let _ = child.kill();
                let status = child.wait().ok();
                Err((status, std::fs::read_to_string(&log).unwrap_or_default()))
            }
        }
    }

    /// The ledger in the scratch directory.
    pub fn ledger(&self) -> PathBuf {
        self.dir.path().join("ledger.sqlite")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// The logs so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One request; `token` adds `Authorization: Bearer`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        request(&self.addr, method, path, headers, body)
    }

    /// `POST path` with a bearer token (when given) and a content type.
    pub fn post(&self, path: &str, token: Option<&str>, content_type: &str, body: &str) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut h: Vec<(&str, &str)> = vec![("Content-Type", content_type)];
        if let Some(a) = &auth {
            h.push(("Authorization", a));
        }
        self.request("POST", path, &h, body.as_bytes())
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], b"")
    }

    /// Sends SIGTERM and waits for the exit (at most `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let pid = self.pid();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        self.wait(timeout)
    }

    /// `kill -9`, and waits.
    pub fn kill9(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.child = None;
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let c = self.child.as_mut()?;
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                self.child = None;
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server and hands back its scratch directory (to restart on the same ledger).
    pub fn into_dir(mut self) -> tempfile::TempDir {
        self.kill9();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn rand_u32() -> u32 {
    use std::time::SystemTime;
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    try_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

/// [`request`], with a connection that fails or closes without an answer as an `Err` (a
/// killed server).
pub fn try_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Reply, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    // The server may answer (413) before reading everything: a failed write is not fatal.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Result<Reply, String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP status in {text:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(rest.get(..n).unwrap_or(rest));
        s = rest.get(n + 2..).unwrap_or("");
    }
    out
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The start of usage for intake tests: seven minutes into the last complete hour.
pub fn hour_ago() -> String {
    let t = metergate_core::time::hour_floor(chrono::Utc::now()) - chrono::Duration::hours(1)
        + chrono::Duration::minutes(7);
    metergate_core::time::format_rfc3339(t)
}

/// Writes the intake tests' contracts (two active AWS customers of `prod-a`, dimensions
/// `api_calls` and `seats`) into `dir` and returns the file.
pub fn intake_contracts(dir: &Path) -> PathBuf {
    let start =
        metergate_core::time::format_rfc3339(chrono::Utc::now() - chrono::Duration::days(30));
    let c = serde_json::json!([{
        "marketplace": "aws", "product": "prod-a", "customer": "cust-1",
        "status": "active", "starts_at": start,
        "dimensions": [{"name": "api_calls"}, {"name": "seats"}]
    }, {
        "marketplace": "aws", "product": "prod-a", "customer": "cust-2",
        "status": "active", "starts_at": start,
        "dimensions": [{"name": "api_calls"}, {"name": "seats"}]
    }]);
    let p = dir.join("contracts.json");
    std::fs::write(&p, serde_json::to_string_pretty(&c).unwrap()).unwrap();
    p
}

/// One AWS usage record of `prod-a` at [`hour_ago`], as the intake takes it.
pub fn intake_record(customer: &str, dim: &str, q: i64, id: &str) -> serde_json::Value {
    serde_json::json!({
        "marketplace": "aws", "product": "prod-a", "customer": customer,
        "dimension": dim, "quantity": q, "start_time": hour_ago(), "record_id": id
    })
}
