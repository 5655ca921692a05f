//! `metergate serve`: the always-on metering agent.
//!
//! One process holds the pieces the batch commands already have behind an HTTP intake:
//!
//! - [`http`]: the axum router, the body limit, `/healthz` and `/readyz`, and where every
//!   route is mounted;
//! - [`auth`]: bearer tokens for `/v1/` (constant-time compare);
//! - [`intake`]: `POST /v1/usage`, judged by the core at the real clock with the ledger's
//!   history, idempotent, and committed to the ledger (group commit) before the answer;
//! - [`send_loop`]: every `--send-interval`, or at once on a [`Wake`], runs the [`scheduler`]
//!   in a dedicated thread: [`hourly`] sums closed, [`heartbeat`]s written, and the unfinished
//!   rows sent earliest deadline first with the existing senders ([`crate::submit`]);
//! - [`import_loop`]: with `[import.orb]`, Orb's costs imported at start and on its schedule;
//! - [`config`]: the config file, and the sections only the agent reads.
//!
//! Shared state is one [`AgentState`] behind an `Arc`. Connections are per task: the intake
//! writer and the send loop hold their own [`Ledger`]; the read-only endpoints (`/readyz`,
//! `/metrics`, the status page) borrow one from a small pool ([`AgentState::with_reader`]),
//! so a scrape does not pay for a new connection (a TCP connect and sign-in on PostgreSQL).

pub mod alerts;
pub mod auth;
pub mod checkpoint;
pub mod config;
pub mod events;
pub mod heartbeat;
pub mod hourly;
pub mod http;
pub mod import_loop;
pub mod intake;
pub mod metrics;
pub mod scheduler;
pub mod send_loop;
pub mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::Duration;

use metergate_core::{Marketplace, Settings, Validator};

use crate::commands::submit::SendArgs;
use crate::error::CliError;
use crate::ledger::{Ledger, LedgerError};

/// Everything `metergate serve` was started with (flags, with the config's `[serve]` section
/// filling what the flags left out).
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The config file, if any.
    pub config: Option<PathBuf>,
    /// The ledger file (created when missing).
    pub ledger: PathBuf,
    /// A contracts file; without it the ledger's contract store.
    pub contracts: Option<PathBuf>,
    /// Seller policies (rhai files).
    pub policies: Vec<PathBuf>,
    /// How often the send loop runs.
    pub send_interval: Duration,
    /// `[serve] lease`: how long this agent's claims hold (`None`: the ledger's default, or
    /// `$METERGATE_LEASE_SECS`, which wins over the config).
    pub lease: Option<Duration>,
    /// Run without a token (loopback addresses only).
    pub insecure_no_auth: bool,
    /// How to reach the marketplaces.
    pub send: SendArgs,
}

/// Why the agent cannot start or go on.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A bad flag, config value or environment.
    #[error("{0}")]
    Config(String),
    /// The contracts, policies or config could not be loaded.
    #[error(transparent)]
    Load(#[from] CliError),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The listener or the runtime failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The agent is shutting down or one of its threads is gone.
    #[error("the agent is shutting down")]
    Stopped,
}

/// A reason for the send loop to run now instead of at its next tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Run a pass now.
    Tick,
    /// A contract was cancelled (or is about to be): send its pending records at once.
    Contract {
        /// Marketplace.
        marketplace: Marketplace,
        /// Product.
        product: String,
        /// Customer key.
        customer: String,
    },
}

/// Messages to the send loop.
#[derive(Debug)]
pub(crate) enum LoopMsg {
    Wake(Wake),
    Stop,
}

/// The agent's shared state, held as `Arc<AgentState>` by every route and task.
pub struct AgentState {
    /// The options it runs with.
    pub options: ServeOptions,
    /// The whole config file as JSON (TOML converted), for each module to parse its own
    /// section (`serve`, `alerts`, `import`, ...); `Null` without a config file.
    pub config: serde_json::Value,
    /// The config's `[serve]` keys this module reads.
    pub serve: config::ServeSection,
    /// The core's settings from the config.
    pub settings: Settings,
    /// The bearer tokens.
    pub auth: auth::Auth,
    /// The largest request body, in bytes (413 above).
    pub body_limit: usize,
    /// `[serve] aggregate` and `[serve.heartbeat]`, with the marketplace connection: what
    /// the send loop's [`scheduler::Scheduler`] and the intake's hourly path use.
    pub scheduler: scheduler::SchedulerConfig,
    /// Counters for `/metrics`.
    pub metrics: metrics::Counters,
    /// Alert delivery.
    pub alerts: alerts::Alerter,
    validator: RwLock<Arc<Validator>>,
    /// Bumped whenever the ledger or the contracts change behind the intake's back (contracts
    /// reloaded, rows ended by the send loop), so the intake rebuilds its dedup state.
    generation: AtomicU64,
    loop_tx: Mutex<mpsc::Sender<LoopMsg>>,
    intake: intake::IntakeHandle,
    stopping: AtomicBool,
    /// Idle connections for the read-only endpoints (see [`AgentState::with_reader`]).
    readers: Mutex<Vec<Ledger>>,
}

/// The most idle reader connections kept (concurrent readers beyond it open their own and
/// close it after use).
const IDLE_READERS: usize = 2;

impl AgentState {
    /// The current validator (contracts, settings, policies).
    pub fn validator(&self) -> Arc<Validator> {
        match self.validator.read() {
            Ok(v) => Arc::clone(&v),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Loads the contracts again (`--contracts`, else the ledger's contract store), after a
    /// lifecycle event changed them; the intake judges with them from its next request on.
    pub fn reload_contracts(&self) -> Result<(), AgentError> {
        let v = build_validator(&self.options, &self.settings)?;
        match self.validator.write() {
            Ok(mut g) => *g = Arc::new(v),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(v),
        }
        self.ledger_changed();
        tracing::info!(
            contracts = self.validator().contracts().all().len(),
            "contracts reloaded"
        );
        Ok(())
    }

    /// Tells the intake that rows changed state outside it (the send loop ended some, a
    /// heartbeat or an hourly sum was written), so it reloads its dedup history.
    pub fn ledger_changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The current generation (see [`AgentState::ledger_changed`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Makes the send loop run now.
    pub fn wake(&self, w: Wake) {
        if let Ok(tx) = self.loop_tx.lock() {
            let _ = tx.send(LoopMsg::Wake(w));
        }
    }

    /// True once shutdown has begun.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Opens a connection to the ledger (one per task), with `[serve] lease` applied unless
    /// `$METERGATE_LEASE_SECS` is set.
    pub fn open_ledger(&self) -> Result<Ledger, LedgerError> {
        let mut ledger = Ledger::open(&self.options.ledger)?;
        if let Some(lease) = self.options.lease {
            if std::env::var_os(crate::ledger::LEASE_ENV).is_none() {
                ledger.set_lease(lease);
            }
        }
        Ok(ledger)
    }

    /// Runs `f` on a pooled ledger connection: an idle one when there is one, else a new
    /// one. A connection whose call failed is dropped rather than returned, so a broken
    /// connection (a restarted database) is never handed out twice. Blocking: call it from a
    /// blocking thread.
    pub fn with_reader<T, E: From<LedgerError>>(
        &self,
        f: impl FnOnce(&mut Ledger) -> Result<T, E>,
    ) -> Result<T, E> {
        let idle = match self.readers.lock() {
            Ok(mut g) => g.pop(),
            Err(poisoned) => poisoned.into_inner().pop(),
        };
        let mut ledger = match idle {
            Some(l) => l,
            None => self.open_ledger()?,
        };
        let out = f(&mut ledger)?;
        let mut g = match self.readers.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if g.len() < IDLE_READERS {
            g.push(ledger);
        }
        Ok(out)
    }

    /// The intake writer.
    pub(crate) fn intake(&self) -> &intake::IntakeHandle {
        &self.intake
    }
}

/// Builds the validator from the options: contracts, settings, policies.
fn build_validator(opts: &ServeOptions, settings: &Settings) -> Result<Validator, AgentError> {
    let (contracts, _) = crate::contracts::load(opts.contracts.as_deref(), Some(&opts.ledger))?;
    Ok(crate::config::build_validator(
        contracts,
        settings.clone(),
        &opts.policies,
    )?)
}

/// Runs the agent until SIGTERM or SIGINT: the HTTP server, the intake writer and the send
/// loop. Prints `metergate: listening on http://ADDR` on stdout once the socket is bound.
pub fn run(opts: ServeOptions, loaded: config::Loaded) -> Result<(), AgentError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("metergate-http")
        .build()
        .map_err(|source| AgentError::Io {
            what: "cannot start the runtime".into(),
            source,
        })?;
    rt.block_on(serve(opts, loaded))
}

async fn serve(opts: ServeOptions, loaded: config::Loaded) -> Result<(), AgentError> {
    let auth = auth::Auth::load(loaded.serve.token_file.as_deref())?;
    if auth.is_open() {
        if !opts.insecure_no_auth {
            return Err(AgentError::Config(format!(
                "no API token: set {} (comma-separated for several) or [serve] token_file in the config; --insecure-no-auth runs without one on a loopback address",
                auth::TOKEN_ENV
            )));
        }
        if !opts.listen.ip().is_loopback() {
            return Err(AgentError::Config(format!(
                "--insecure-no-auth is allowed on a loopback address only, not {}",
                opts.listen
            )));
        }
        tracing::warn!("running WITHOUT authentication (--insecure-no-auth, loopback only)");
    }
    // [serve.events] (S3): a bad section stops the start, not the first event.
    events::check_config(&loaded.raw).map_err(AgentError::Config)?;
    // The ledger first: it is created and migrated before anything else uses it.
    let mut ledger = Ledger::open(&opts.ledger)?;
    // SQLite: the intake writer's connection keeps a bigger page cache, and WAL checkpoints
    // run on a connection of their own, never inside an intake commit (see `checkpoint`).
    let checkpointer = if ledger.engine() == crate::ledger::db::Engine::Sqlite {
        ledger.tune_for_bulk_writes()?;
        ledger.set_auto_checkpoint(false)?;
        Some(checkpoint::spawn(Ledger::open(&opts.ledger)?)?)
    } else {
        None
    };
    let (nudge, checkpointer) = checkpointer.unzip();
    let validator = build_validator(&opts, &loaded.settings)?;
    if validator.contracts().all().is_empty() {
        tracing::warn!("no contracts loaded (--contracts or the ledger's contract store): every record will be rejected; /readyz answers 503");
    }
    // [import.orb] (issue #21): a bad section or a missing API key stops the start.
    let orb = import_loop::setup(&loaded.raw, opts.send.verbose)?;
    let (loop_tx, loop_rx) = mpsc::channel();
    let (intake, intake_rx) = intake::IntakeHandle::new();
    let scheduler = scheduler::SchedulerConfig::from_config(
        &loaded.raw,
        opts.send.options(),
        opts.send.policy(),
    )
    .map_err(|e| AgentError::Config(e.to_string()))?;
    let state = Arc::new(AgentState {
        scheduler,
        // S4 observe: alerts start their delivery thread when [alerts] webhook is set.
        alerts: alerts::Alerter::start(
            alerts::AlertsConfig::from_config(&loaded.raw)
                .map_err(|e| AgentError::Config(e.to_string()))?,
        )
        .map_err(|e| AgentError::Config(e.to_string()))?,
        metrics: metrics::Counters::default(),
        body_limit: loaded.body_limit()?,
        config: loaded.raw,
        serve: loaded.serve,
        settings: loaded.settings,
        auth,
        validator: RwLock::new(Arc::new(validator)),
        generation: AtomicU64::new(0),
        loop_tx: Mutex::new(loop_tx),
        intake,
        stopping: AtomicBool::new(false),
        readers: Mutex::new(Vec::new()),
        options: opts,
    });
    let writer = intake::spawn_writer(Arc::clone(&state), ledger, intake_rx, nudge)?;
    let sender = send_loop::spawn(Arc::clone(&state), loop_rx)?;
    let importer = match orb {
        Some(schedule) => Some(import_loop::ImportLoop::spawn(
            Arc::clone(&state),
            schedule,
        )?),
        None => None,
    };

    let listener = tokio::net::TcpListener::bind(state.options.listen)
        .await
        .map_err(|source| AgentError::Io {
            what: format!("cannot listen on {}", state.options.listen),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| AgentError::Io {
        what: "cannot read the listening address".into(),
        source,
    })?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "metergate: listening on http://{addr}");
        let _ = out.flush();
    }
    tracing::info!(
        %addr,
        ledger = %crate::ledger::db::mask_location(&state.options.ledger.to_string_lossy()),
        "listening"
    );

    let app = http::router(Arc::clone(&state));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await;

    // Requests in flight are answered; now the loops.
    state.stopping.store(true, Ordering::SeqCst);
    if let Ok(tx) = state.loop_tx.lock() {
        let _ = tx.send(LoopMsg::Stop);
    }
    state.intake.stop();
    let alerts = state.alerts.clone();
    let joined = tokio::task::spawn_blocking(move || {
        if let Some(i) = importer {
            i.stop();
        }
        let _ = writer.join();
        // The writer's nudge is gone with it: the checkpointer makes its last checkpoint.
        if let Some(c) = checkpointer {
            let _ = c.join();
        }
        let _ = sender.join();
        // S4 observe: alerts of the last pass get a few seconds to reach the webhook.
        if !alerts.flush(std::time::Duration::from_secs(5)) {
            tracing::warn!("stopping with alerts still undelivered");
        }
    })
    .await;
    if joined.is_err() {
        tracing::error!("a worker thread panicked during shutdown");
    }
    tracing::info!("stopped; unsent rows stay pending in the ledger");
    served.map_err(|source| AgentError::Io {
        what: "the HTTP server failed".into(),
        source,
    })
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = term => tracing::info!("SIGTERM: finishing the requests and the call in flight"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: finishing the requests and the call in flight"),
    }
}
