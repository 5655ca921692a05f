//! A throwaway PostgreSQL cluster for tests, one per test binary, with a fresh database per
//! test (PostgreSQL's `initdb` + `pg_ctl`, the Debian package `postgresql`).
//!
//! ```ignore
//! mod pg_support;
//! // A `postgres://` URL of a new, empty database, or None (with a note) when PostgreSQL is
//! // not installed and CI is not set. With CI=true a missing PostgreSQL fails the test.
//! let Some(url) = pg_support::fresh_database() else { return };
//! ```
//!
//! - The binaries: `$METERGATE_PG_BIN`, else `initdb` on `$PATH`, else the newest
//!   `/usr/lib/postgresql/*/bin`.
//! - The cluster is made with `initdb` in a temp dir and listens on 127.0.0.1 only, on a free
//!   port, with its socket in that dir; trust authentication for the superuser `postgres`.
//! - As root (CI), `initdb` and `pg_ctl` run as an unprivileged user through `runuser`:
//!   `$METERGATE_PG_USER`, else `metergate-pg` (scripts/setup.sh makes it), else `nobody`.
//! - It is stopped and its dir removed at the end by a watchdog (a small `sh` in its own
//!   process group) that waits for the test process to disappear, however it ends: normal
//!   exit, panic, or `kill -9`. Nothing relies on `Drop` (statics are never dropped).
//! - Durability settings are off (fsync, synchronous_commit): the tests kill metergate, never
//!   the database server.
//! - [`TestLedger`] and the `both_engines!` macro run a test on SQLite and on PostgreSQL.
//! - Unit tests may use it too: `#[path = "../../tests/pg_support/mod.rs"] mod pg_support;`
//!   (then [`fresh_database`]; the macro is for integration tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// A running cluster (one per test process).
#[derive(Debug)]
pub struct Cluster {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The temp dir holding `data/`, the socket and `server.log` (removed by the watchdog).
    pub dir: PathBuf,
    /// The directory of `initdb`, `pg_ctl` and `psql`.
    pub bin: PathBuf,
    /// The OS user the server runs as when we are root.
    pub os_user: Option<String>,
    /// Seconds spent making the data dir (`initdb`, or a copy of its template).
    pub initdb_secs: f64,
    /// Seconds spent in `pg_ctl start`.
    pub start_secs: f64,
    next_db: AtomicUsize,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// Whether this is CI (`CI=true`/`1`), where nothing may silently skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The cluster of this test process, started on first use. `None` (with a note on stderr)
/// when PostgreSQL is not installed and CI is not set; panics when it is missing in CI or
/// fails to start.
pub fn cluster() -> Option<&'static Cluster> {
    match CLUSTER.get_or_init(start) {
        Ok(c) => Some(c),
        Err(e) if e.starts_with(MISSING) => {
            if in_ci() {
                panic!("{e}; CI=true, so the PostgreSQL tests may not skip: run scripts/setup.sh");
            }
            eprintln!("note: {e}; skipping the PostgreSQL half of this test (scripts/setup.sh installs it)");
            None
        }
        Err(e) => panic!("the test PostgreSQL cluster did not start: {e}"),
    }
}

/// A new, empty database on the cluster, as a `postgres://` URL (see [`cluster`] for `None`).
pub fn fresh_database() -> Option<String> {
    cluster().map(Cluster::create_database)
}

const MISSING: &str = "PostgreSQL is not installed";

impl Cluster {
    /// The URL of database `db` (superuser `postgres`, no password: trust on loopback).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// `CREATE DATABASE` with a new name; returns its URL.
    pub fn create_database(&self) -> String {
        let n = self.next_db.fetch_add(1, Ordering::SeqCst);
        let name = format!("t{n}");
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Runs SQL with `psql` on database `db`; returns its unaligned, tuples-only output.
    /// Panics when psql fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self.try_psql(db, sql);
        assert!(
            out.status.success(),
            "psql {sql:?} on {db}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    }

    /// Runs SQL with `psql` on database `db` and hands back its output, failed or not.
    pub fn try_psql(&self, db: &str, sql: &str) -> Output {
        Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .env_remove("PGPASSWORD")
            .stdin(Stdio::null())
            .output()
            .expect("psql runs")
    }
}

/// Runs SQL on the database of a URL from [`fresh_database`].
pub fn psql(url: &str, sql: &str) -> String {
    let c = cluster().expect("a URL came from the cluster");
    let db = url.rsplit('/').next().unwrap();
    c.psql(db, sql)
}

/// The directory of `initdb` and `pg_ctl`: `$METERGATE_PG_BIN` when set (and only it), else
/// `$PATH`, then the newest `/usr/lib/postgresql/*/bin` (Debian keeps them off `$PATH`).
pub fn find_bin() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("METERGATE_PG_BIN").filter(|d| !d.is_empty()) {
        let d = PathBuf::from(d);
        return (d.join("initdb").is_file() && d.join("pg_ctl").is_file()).then_some(d);
    }
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p).find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
    });
    if let Some(d) = on_path {
        // Debian's /usr/bin wrappers (pg_wrapper) need a cluster config; use the real binaries.
        let real = std::fs::canonicalize(d.join("initdb")).ok()?;
        return real.parent().map(Path::to_path_buf);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg("-u")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The unprivileged user to run the server as (only when root).
fn os_user() -> Option<String> {
    if !is_root() {
        return None;
    }
    if let Ok(u) = std::env::var("METERGATE_PG_USER") {
        return Some(u);
    }
    Some(
        ["metergate-pg", "nobody"]
            .into_iter()
            .find(|u| user_exists(u))
            .unwrap_or("nobody")
            .to_owned(),
    )
}

/// `program args` as the cluster's user (through `runuser` when root).
fn as_user(user: Option<&str>, program: &Path) -> Command {
    match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn run(mut c: Command, what: &str) -> Result<(), String> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Stops the cluster and removes its dir once process `$1` is gone. In its own process group,
/// so a Ctrl-C to the test's group does not take it down before it has cleaned up.
const WATCHDOG: &str = r#"trap '' HUP INT TERM
while kill -0 "$1" 2>/dev/null; do sleep 0.3; done
pm=$(head -n 1 "$2/data/postmaster.pid" 2>/dev/null)
if [ -n "$pm" ]; then
  kill -QUIT "$pm" 2>/dev/null
  i=0
  while kill -0 "$pm" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i+1)); done
  kill -KILL "$pm" 2>/dev/null
fi
rm -rf "$2"
"#;

/// A pristine `initdb` output kept under the target dir, per server binary and OS user, so
/// that only the first test binary of a run pays for `initdb` (seconds) and the others copy it
/// (`cp -a` keeps the owner and the 0700 mode PostgreSQL insists on).
/// `None` where Cargo gives no target tmp dir (unit tests): those always run `initdb`.
fn template_dir(bin: &Path, user: Option<&str>) -> Option<PathBuf> {
    let key: String = format!("{}-{}", bin.display(), user.unwrap_or("self"))
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    option_env!("CARGO_TARGET_TMPDIR").map(|d| Path::new(d).join(format!("pg-template{key}")))
}

/// Fills `data` with a fresh cluster: a copy of the template when there is one, else
/// `initdb`, whose output then becomes the template (written aside, then renamed into place,
/// so a concurrent test binary never copies half of one).
fn init_data(bin: &Path, user: Option<&str>, data: &Path) -> Result<(), String> {
    let template = template_dir(bin, user);
    if let Some(template) = template.as_ref().filter(|t| t.join("PG_VERSION").is_file()) {
        let mut c = Command::new("cp");
        c.arg("-a").arg(template).arg(data);
        if run(c, "cp -a (the initdb template)").is_ok() {
            return Ok(());
        }
        let _ = std::fs::remove_dir_all(data);
    }
    let mut c = as_user(user, &bin.join("initdb"));
    c.arg("-D").arg(data).args([
        "-A",
        "trust",
        "-U",
        "postgres",
        "-E",
        "UTF8",
        "--locale=C",
        "-N",
    ]);
    run(c, "initdb")?;
    if let Some(template) = template {
        let staging = template.with_extension(format!("tmp{}", std::process::id()));
        let mut c = Command::new("cp");
        c.arg("-a").arg(data).arg(&staging);
        if run(c, "cp -a").is_ok() && std::fs::rename(&staging, &template).is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
    }
    Ok(())
}

fn start() -> Result<Cluster, String> {
    start_with(&|_| Ok(String::new()))
}

/// Starts another cluster of this test process (besides [`cluster`]'s) after `setup` has run on
/// its fresh data dir: `setup` writes files there (certificates, `pg_hba.conf`; they are then
/// handed to the server's OS user) and returns lines for `postgresql.conf` (say `ssl = on`).
/// It is stopped and removed when the test process ends.
pub fn start_with(setup: &dyn Fn(&Path) -> Result<String, String>) -> Result<Cluster, String> {
    let t0 = Instant::now();
    let bin = find_bin().ok_or_else(|| {
        format!("{MISSING} (no initdb/pg_ctl in $METERGATE_PG_BIN, on PATH or in /usr/lib/postgresql/*/bin)")
    })?;
    let user = os_user();
    let dir = tempfile::Builder::new()
        .prefix("metergate-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    // The watchdog first: whatever happens from here on, the dir goes away with us.
    Command::new("sh")
        .args(["-c", WATCHDOG, "metergate-pg-watchdog"])
        .arg(std::process::id().to_string())
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("the cluster watchdog (sh): {e}"))?;
    if let Some(u) = &user {
        let mut c = Command::new("chown");
        c.arg(u).arg(&dir);
        run(c, "chown")?;
    }
    let data = dir.join("data");
    init_data(&bin, user.as_deref(), &data)?;
    let initdb_secs = t0.elapsed().as_secs_f64();
    let extra = setup(&data)?;
    if let Some(u) = &user {
        let mut c = Command::new("chown");
        c.arg("-R").arg(u).arg(&data);
        run(c, "chown -R")?;
    }
    let conf = format!(
        "\n# metergate tests\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
         fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n{extra}\n",
        dir.display()
    );
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .map_err(|e| e.to_string())?;
    std::io::Write::write_all(&mut f, conf.as_bytes()).map_err(|e| e.to_string())?;
    drop(f);
    // A free port can be taken between our probe and the server's bind: try a few.
    let t1 = Instant::now();
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port()?;
        let mut c = as_user(user.as_deref(), &bin.join("pg_ctl"));
        c.arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-w", "-t", "60", "-o", &format!("-p {port}"), "start"]);
        match run(c, "pg_ctl start") {
            Ok(()) => {
                let cluster = Cluster {
                    port,
                    dir: dir.clone(),
                    bin,
                    os_user: user,
                    initdb_secs,
                    start_secs: t1.elapsed().as_secs_f64(),
                    next_db: AtomicUsize::new(0),
                };
                eprintln!(
                    "pg_support: PostgreSQL on 127.0.0.1:{port} in {:.2} s (data dir {initdb_secs:.2} s, start {:.2} s)",
                    t0.elapsed().as_secs_f64(),
                    cluster.start_secs
                );
                return Ok(cluster);
            }
            Err(e) => {
                last = format!(
                    "{e}\n{}",
                    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
                )
            }
        }
    }
    Err(last)
}

/// Which ledger engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// A SQLite file.
    Sqlite,
    /// A database on the test cluster.
    Postgres,
}

/// A fresh, empty ledger location for one test on one engine, with a scratch dir.
pub struct TestLedger {
    /// Which engine.
    pub engine: Engine,
    /// What `--ledger` / `METERGATE_LEDGER` / `Ledger::open` take: a path or a URL.
    pub location: String,
    /// A scratch dir for other files (the SQLite file lives here too).
    pub dir: tempfile::TempDir,
}

impl TestLedger {
    /// A new ledger on `engine`; `None` for PostgreSQL when it is not installed (not in CI).
    pub fn new(engine: Engine) -> Option<TestLedger> {
        let dir = tempfile::tempdir().unwrap();
        let location = match engine {
            Engine::Sqlite => dir
                .path()
                .join("ledger.sqlite")
                .to_str()
                .unwrap()
                .to_owned(),
            Engine::Postgres => fresh_database()?,
        };
        Some(TestLedger {
            engine,
            location,
            dir,
        })
    }

    /// The location as a path (what the path-taking APIs accept; a URL stays a URL).
    pub fn path(&self) -> &Path {
        Path::new(&self.location)
    }

    /// Runs SQL on the PostgreSQL database (panics on SQLite).
    pub fn psql(&self, sql: &str) -> String {
        assert_eq!(self.engine, Engine::Postgres);
        psql(&self.location, sql)
    }
}

/// Generates `mod NAME { #[test] fn sqlite(); #[test] fn postgres(); }` calling
/// `NAME(&TestLedger)` on a fresh ledger of each engine (the PostgreSQL one skips with a note
/// only when PostgreSQL is missing outside CI).
#[macro_export]
macro_rules! both_engines {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                let l = $crate::pg_support::TestLedger::new($crate::pg_support::Engine::Sqlite)
                    .unwrap();
                super::$name(&l);
            }
            #[test]
            fn postgres() {
                if let Some(l) =
                    $crate::pg_support::TestLedger::new($crate::pg_support::Engine::Postgres)
                {
                    super::$name(&l);
                }
            }
        }
    )+};
}
