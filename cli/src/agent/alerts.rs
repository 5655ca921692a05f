//! Alerts: Slack-compatible JSON (`{"text": ..., "blocks": [...]}`) POSTed to the
//! `[alerts] webhook` when something needs a person:
//!
//! - a marketplace rejected a record (state `rejected` or `duplicate`),
//! - a record expired unsent (state `expired`: its window closed first),
//! - a send still failed after its retries (state `failed`),
//! - an active contract has had no usage for `[alerts] silent_after` (default 6 h): an
//!   outage of the seller's application looks like zero usage.
//!
//! ```toml
//! [alerts]
//! webhook = "https://hooks.slack.com/services/..."   # required to send anything
//! silent_after = "6h"                                # "0s" turns the silence check off
//! attempts = 4                                       # POSTs per message before giving up
//! ```
//!
//! It never floods and never blocks: one tick gives at most one message (every row it
//! finished, coalesced, long lists cut with "and N more"); a silent contract is named once
//! until its usage resumes; messages go through a bounded queue to one delivery thread,
//! which retries with backoff (network errors, 429 and 5xx), so the send loop only formats
//! and enqueues. A full queue drops the message and counts it. No secret is ever put in a
//! message (rows hold usage, customer keys and answers only; wire identities are left out),
//! and the webhook URL — a secret itself — is never logged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use metergate_core::contract::ContractStatus;
use metergate_core::settings::Span;
use metergate_core::time::format_secs;
use metergate_core::ContractSet;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::agent::metrics::{RefusedSum, Tick};
use crate::ledger::{Ledger, LedgerError, LedgerRow};

/// Messages waiting for delivery beyond this are dropped (and counted).
const QUEUE: usize = 64;
/// Lines per section of a message before "and N more".
const MAX_LINES: usize = 15;
/// Slack's limit for a section's text is 3,000 characters; stay under it.
const MAX_SECTION_CHARS: usize = 2_900;
/// Longest reason quoted in a line.
const MAX_REASON_CHARS: usize = 160;

/// Why the `[alerts]` section cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    /// A field is missing, unknown or of the wrong form.
    #[error("[alerts]: {0}")]
    Config(String),
    /// The HTTP client could not be built.
    #[error("alerts: cannot start the webhook client: {0}")]
    Client(String),
}

/// The `[alerts]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    webhook: Option<String>,
    silent_after: Option<String>,
    attempts: Option<u32>,
}

/// The `[alerts]` settings.
#[derive(Clone)]
pub struct AlertsConfig {
    /// Where to POST (http or https). `None`: no alerts are sent.
    pub webhook: Option<reqwest::Url>,
    /// How long an active contract may go without usage before it is named; zero turns
    /// the check off.
    pub silent_after: chrono::Duration,
    /// POSTs per message before it is given up (at least 1).
    pub attempts: u32,
    /// The wait after the first failed POST; it doubles after each further one.
    pub backoff: Duration,
    /// Time limit of one POST.
    pub timeout: Duration,
}

impl std::fmt::Debug for AlertsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The webhook URL is a credential (Slack's holds its token): only the host is shown.
        f.debug_struct("AlertsConfig")
            .field("webhook", &self.webhook.as_ref().map(redacted))
            .field("silent_after", &self.silent_after)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl Default for AlertsConfig {
    fn default() -> AlertsConfig {
        AlertsConfig {
            webhook: None,
            silent_after: chrono::Duration::hours(6),
            attempts: 4,
            backoff: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
        }
    }
}

/// `scheme://host[:port]/…`: a webhook URL fit for a log line.
pub fn redacted(u: &reqwest::Url) -> String {
    match (u.host_str(), u.port()) {
        (Some(h), Some(p)) => format!("{}://{h}:{p}/…", u.scheme()),
        (Some(h), None) => format!("{}://{h}/…", u.scheme()),
        _ => format!("{}://…", u.scheme()),
    }
}

impl AlertsConfig {
    /// Reads the `alerts` member of the whole config document (absent: no alerts).
    pub fn from_config(config: &Value) -> Result<AlertsConfig, AlertsError> {
        let Some(v) = config.get("alerts") else {
            return Ok(AlertsConfig::default());
        };
        let s: Section =
            serde_json::from_value(v.clone()).map_err(|e| AlertsError::Config(e.to_string()))?;
        let mut out = AlertsConfig::default();
        if let Some(w) = s.webhook {
            let url = reqwest::Url::parse(&w).map_err(|e| {
                AlertsError::Config(format!("webhook is not a URL ({e}); give http(s)://..."))
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(AlertsError::Config(format!(
                    "webhook must be http or https, not {}",
                    url.scheme()
                )));
            }
            out.webhook = Some(url);
        }
        if let Some(t) = s.silent_after {
            out.silent_after = Span::parse(&t)
                .ok_or_else(|| {
                    AlertsError::Config(format!(
                        "silent_after {t:?} is not a duration such as \"6h\", \"90m\" or \"0s\""
                    ))
                })?
                .0;
        }
        if let Some(n) = s.attempts {
            if n == 0 || n > 20 {
                return Err(AlertsError::Config(format!(
                    "attempts {n} must be from 1 to 20"
                )));
            }
            out.attempts = n;
        }
        Ok(out)
    }
}

/// Counts of what the alerter did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlertStats {
    /// Messages handed to the delivery thread.
    pub queued: u64,
    /// Messages the webhook took (2xx).
    pub delivered: u64,
    /// Messages given up after every attempt.
    pub failed: u64,
    /// Messages dropped because the queue was full.
    pub dropped: u64,
    /// POSTs made, retries included.
    pub posts: u64,
}

#[derive(Default)]
struct Shared {
    queued: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    posts: AtomicU64,
}

/// A contract: (marketplace, product, customer).
type ContractKey = (String, String, String);

struct Inner {
    config: AlertsConfig,
    tx: SyncSender<Value>,
    shared: Arc<Shared>,
    /// Silent contracts already named, with the last usage (Unix seconds) they had then.
    silent: Mutex<HashMap<ContractKey, Option<i64>>>,
    /// When the silence check last ran.
    last_check: Mutex<Option<DateTime<Utc>>>,
}

/// Sends alerts; a no-op when no webhook is configured. Cheap to clone; clones share the
/// queue and the memory of silent contracts.
#[derive(Clone, Default)]
pub struct Alerter {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for Alerter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerter")
            .field("config", &self.inner.as_ref().map(|i| &i.config))
            .finish()
    }
}

impl Alerter {
    /// An alerter that sends nothing.
    pub fn disabled() -> Alerter {
        Alerter::default()
    }

    /// Starts the delivery thread when a webhook is configured; otherwise a no-op alerter.
    /// The thread ends once every clone of the alerter is dropped and its queue is empty.
    pub fn start(config: AlertsConfig) -> Result<Alerter, AlertsError> {
        let Some(url) = config.webhook.clone() else {
            return Ok(Alerter::disabled());
        };
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AlertsError::Client(e.without_url().to_string()))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| AlertsError::Client(e.to_string()))?;
        let (tx, rx) = sync_channel::<Value>(QUEUE);
        let shared = Arc::new(Shared::default());
        let worker = Arc::clone(&shared);
        let (attempts, backoff) = (config.attempts.max(1), config.backoff);
        std::thread::Builder::new()
            .name("metergate-alerts".into())
            .spawn(move || {
                while let Ok(msg) = rx.recv() {
                    let ok = rt.block_on(deliver(&client, &url, &msg, attempts, backoff, &worker));
                    let n = if ok {
                        &worker.delivered
                    } else {
                        &worker.failed
                    };
                    n.fetch_add(1, Ordering::SeqCst);
                }
            })
            .map_err(|e| AlertsError::Client(e.to_string()))?;
        Ok(Alerter {
            inner: Some(Arc::new(Inner {
                config,
                tx,
                shared,
                silent: Mutex::new(HashMap::new()),
                last_check: Mutex::new(None),
            })),
        })
    }

    /// True when a webhook is configured.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// What the alerter did so far.
    pub fn stats(&self) -> AlertStats {
        let Some(i) = &self.inner else {
            return AlertStats::default();
        };
        let s = &i.shared;
        AlertStats {
            queued: s.queued.load(Ordering::SeqCst),
            delivered: s.delivered.load(Ordering::SeqCst),
            failed: s.failed.load(Ordering::SeqCst),
            dropped: s.dropped.load(Ordering::SeqCst),
            posts: s.posts.load(Ordering::SeqCst),
        }
    }

    /// Waits (up to `timeout`) until every queued message was delivered or given up; true
    /// when it was. For tests and shutdown.
    pub fn flush(&self, timeout: Duration) -> bool {
        let until = std::time::Instant::now() + timeout;
        loop {
            let s = self.stats();
            if s.delivered + s.failed >= s.queued {
                return true;
            }
            if std::time::Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn enqueue(&self, msg: Value) {
        let Some(i) = &self.inner else { return };
        match i.tx.try_send(msg) {
            Ok(()) => {
                i.shared.queued.fetch_add(1, Ordering::SeqCst);
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                i.shared.dropped.fetch_add(1, Ordering::SeqCst);
                tracing::warn!(
                    queue = QUEUE,
                    "alert dropped: the webhook queue is full or its thread stopped"
                );
            }
        }
    }

    /// Alerts about the rows one tick finished badly (rejected, duplicate, expired,
    /// failed), all in one message. Only formats and enqueues: never blocks.
    pub fn on_tick(&self, tick: &Tick<'_>) {
        if self.inner.is_none() {
            return;
        }
        if let Some(msg) = tick_message(tick.finished, &tick.refused_sums, tick.now) {
            self.enqueue(msg);
        }
    }

    /// [`Alerter::check_silent`], unless it already ran less than `every` ago.
    pub fn check_silent_at_most_every(
        &self,
        ledger: &Ledger,
        contracts: &ContractSet,
        now: DateTime<Utc>,
        every: chrono::Duration,
    ) -> Result<usize, LedgerError> {
        let Some(i) = &self.inner else { return Ok(0) };
        {
            let mut last = match i.last_check.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            if last.is_some_and(|t| now >= t && now - t < every) {
                return Ok(0);
            }
            *last = Some(now);
        }
        self.check_silent(ledger, contracts, now)
    }

    /// Names, in one message, the active contracts that have had no usage for
    /// `silent_after` and were not named yet; forgets a contract once its usage resumes or
    /// it is no longer active. Returns how many were newly named. One grouped ledger query:
    /// call it from the blocking side of the send loop (each tick is fine).
    pub fn check_silent(
        &self,
        ledger: &Ledger,
        contracts: &ContractSet,
        now: DateTime<Utc>,
    ) -> Result<usize, LedgerError> {
        let Some(i) = &self.inner else { return Ok(0) };
        let after = i.config.silent_after;
        if after <= chrono::Duration::zero() {
            return Ok(0);
        }
        let last: HashMap<ContractKey, i64> = ledger
            .last_usage_per_contract()?
            .into_iter()
            .map(|(m, p, c, t)| ((m, p, c), t))
            .collect();
        let mut newly = Vec::new();
        let mut memory = match i.silent.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut active = std::collections::HashSet::new();
        for c in contracts.all() {
            if c.status != ContractStatus::Active {
                continue;
            }
            let key = (
                c.marketplace.as_str().to_owned(),
                c.product.clone(),
                c.customer.clone(),
            );
            let used = last.get(&key).copied();
            if let Some(&was) = memory.get(&key) {
                if used > was {
                    // Usage resumed since it was named: forget it, so the next silence alerts.
                    memory.remove(&key);
                }
            }
            active.insert(key.clone());
            let since = used
                .and_then(|t| DateTime::<Utc>::from_timestamp(t, 0))
                .map_or(c.starts_at, |t| t.max(c.starts_at));
            if since + after > now || memory.contains_key(&key) {
                continue;
            }
            memory.insert(key, used);
            newly.push((c.marketplace, c.product.clone(), c.customer.clone(), used));
        }
        memory.retain(|k, _| active.contains(k));
        drop(memory);
        if newly.is_empty() {
            return Ok(0);
        }
        let n = newly.len();
        let lines: Vec<String> = newly
            .iter()
            .map(|(m, p, c, used)| {
                let last = used
                    .and_then(|t| DateTime::<Utc>::from_timestamp(t, 0))
                    .map_or("no usage recorded yet".to_owned(), |t| {
                        format!("last usage {}", format_secs(t))
                    });
                format!("• {} {} customer {} — {last}", m, code(p), code(c))
            })
            .collect();
        let hours = after.num_minutes() as f64 / 60.0;
        let title = format!(
            "{n} active contract{} with no usage for {hours} h",
            plural(n)
        );
        let body = format!(
            "*No usage for {hours} h* (an outage of the application looks like zero usage)\n{}",
            section_text(&lines)
        );
        self.enqueue(message(&title, &[body], now));
        Ok(n)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Escapes a value for Slack mrkdwn (`&`, `<`, `>`), with controls made visible.
fn esc(s: &str) -> String {
    crate::text::clean(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A value in code style; a backquote inside cannot end it early.
fn code(s: &str) -> String {
    format!("`{}`", esc(&s.replace('`', "'")))
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

/// Lines joined, at most [`MAX_LINES`] and [`MAX_SECTION_CHARS`], with "and N more".
fn section_text(lines: &[String]) -> String {
    let mut out = String::new();
    let mut shown = 0;
    for l in lines.iter().take(MAX_LINES) {
        if out.len() + l.len() + 40 > MAX_SECTION_CHARS {
            break;
        }
        out.push_str(l);
        out.push('\n');
        shown += 1;
    }
    if shown < lines.len() {
        out.push_str(&format!("…and {} more", lines.len() - shown));
    }
    out.trim_end().to_owned()
}

/// One line about a row: where, when, how much, and what came back.
fn row_line(r: &LedgerRow) -> String {
    let answer = r.answer.as_deref().unwrap_or("no answer");
    let reason = r
        .reason
        .as_deref()
        .map(|x| format!(": {}", esc(&cut(x, MAX_REASON_CHARS))))
        .unwrap_or_default();
    format!(
        "• {} {} customer {} dimension {} at {} quantity {} — {}{reason}",
        r.marketplace,
        code(&r.product),
        code(&r.customer),
        code(&r.dimension),
        format_secs(r.start_time),
        r.quantity,
        code(answer),
    )
}

/// One line about an hourly sum the core refused.
fn sum_line(h: &RefusedSum) -> String {
    format!(
        "• {} {} customer {} dimension {} hour {} — {}: {}",
        h.marketplace,
        code(&h.product),
        code(&h.customer),
        code(&h.dimension),
        format_secs(h.hour),
        code(&h.codes.join(", ")),
        esc(&cut(&h.reason, MAX_REASON_CHARS)),
    )
}

/// The message about a tick's bad endings, or `None` when every row went through.
fn tick_message(rows: &[LedgerRow], refused: &[RefusedSum], now: DateTime<Utc>) -> Option<Value> {
    let pick = |words: &[&str]| -> Vec<String> {
        rows.iter()
            .filter(|r| words.contains(&r.status.as_str()))
            .map(row_line)
            .collect()
    };
    let groups = [
        (
            "rejected by the marketplace",
            pick(&["rejected", "duplicate"]),
        ),
        ("expired unsent (the window closed)", pick(&["expired"])),
        ("still failing after retries", pick(&["failed"])),
    ];
    let sums: Vec<String> = refused.iter().map(sum_line).collect();
    let mut title = Vec::new();
    let mut sections = Vec::new();
    for (what, lines) in &groups {
        if lines.is_empty() {
            continue;
        }
        let n = lines.len();
        title.push(format!("{n} record{} {what}", plural(n)));
        sections.push(format!(
            "*{n} record{} {what}*\n{}",
            plural(n),
            section_text(lines)
        ));
    }
    if !sums.is_empty() {
        let n = sums.len();
        title.push(format!("{n} hourly sum{} refused", plural(n)));
        sections.push(format!(
            "*{n} hourly sum{} refused when the hour closed* (nothing was sent for {})\n{}",
            plural(n),
            if n == 1 { "it" } else { "them" },
            section_text(&sums)
        ));
    }
    if sections.is_empty() {
        return None;
    }
    Some(message(&title.join(", "), &sections, now))
}

/// A Slack-compatible message: `text` (the notification line) and `blocks`.
fn message(title: &str, sections: &[String], now: DateTime<Utc>) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": cut(&format!("metergate: {title}"), 150)}
    })];
    for s in sections {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": s}}));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": format!("metergate serve · {}", format_secs(now))}]
    }));
    json!({"text": format!("metergate: {}", esc(title)), "blocks": blocks})
}

/// POSTs one message, retrying network errors, 429 and 5xx with doubling waits.
async fn deliver(
    client: &reqwest::Client,
    url: &reqwest::Url,
    msg: &Value,
    attempts: u32,
    backoff: Duration,
    shared: &Shared,
) -> bool {
    let mut wait = backoff;
    for attempt in 1..=attempts {
        shared.posts.fetch_add(1, Ordering::SeqCst);
        let res = client.post(url.clone()).json(msg).send().await;
        let retry = match res {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) => {
                let st = r.status();
                tracing::warn!(webhook = %redacted(url), status = st.as_u16(), attempt, "alert webhook refused the message");
                st.is_server_error() || st == reqwest::StatusCode::TOO_MANY_REQUESTS
            }
            Err(e) => {
                // Without the URL: it holds the webhook's secret.
                tracing::warn!(webhook = %redacted(url), error = %e.without_url(), attempt, "alert webhook unreachable");
                true
            }
        };
        if !retry || attempt == attempts {
            break;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(60));
    }
    tracing::error!(webhook = %redacted(url), attempts, "alert given up");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_the_section() {
        let c = AlertsConfig::from_config(&json!({})).unwrap();
        assert!(c.webhook.is_none());
        assert_eq!(c.silent_after, chrono::Duration::hours(6));
        let c = AlertsConfig::from_config(&json!({"alerts": {
            "webhook": "http://127.0.0.1:9/hook/SECRET", "silent_after": "90m", "attempts": 2}}))
        .unwrap();
        assert_eq!(c.silent_after, chrono::Duration::minutes(90));
        assert_eq!(c.attempts, 2);
        assert!(!format!("{c:?}").contains("SECRET"));
        for bad in [
            json!({"alerts": {"webhook": "ftp://x/"}}),
            json!({"alerts": {"webhook": "not a url"}}),
            json!({"alerts": {"silent_after": "6 hours"}}),
            json!({"alerts": {"attempts": 0}}),
            json!({"alerts": {"hook": "http://x/"}}),
        ] {
            assert!(AlertsConfig::from_config(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mrkdwn_is_escaped() {
        assert_eq!(code("<@here> & `x`"), "`&lt;@here&gt; &amp; 'x'`");
        let lines: Vec<String> = (0..40).map(|i| format!("line {i}")).collect();
        let t = section_text(&lines);
        assert!(t.ends_with("…and 25 more"), "{t}");
    }
}
