//! One GET of a REST reader (the Microsoft and Google contract syncs, Microsoft's Get
//! Operation for webhooks, Orb's costs): the answer sorted into what the reader does next,
//! and the pause between attempts. Each reader keeps its own loop, since they differ in what
//! a 401, 403 or 404 means.

use std::time::Duration;

use serde_json::Value;

use crate::submit::token::{error_chain, log_answer, snippet};

/// What a GET came back with.
pub enum Answer {
    /// A 2xx with a JSON body.
    Json(Value),
    /// No answer (a broken connection, a timeout), a 429 or a 5xx: worth another attempt.
    /// The text says what happened, starting with `GET <url>`.
    Retry(String),
    /// Any other status: the reader decides (renew a token, or fail).
    Status {
        /// The HTTP status.
        status: u16,
        /// The body as received.
        body: String,
    },
}

/// How [`send`] words a status in a [`Answer::Retry`] text by default: `HTTP 503: <the first
/// 300 characters of the body>`.
pub fn plain_status(status: u16, body: &str) -> String {
    format!("HTTP {status}: {}", snippet(body))
}

/// Sends one built GET and sorts its answer; `describe` words a 429 or 5xx for the retry
/// text (e.g. [`plain_status`]). A 2xx whose body is not JSON is an error.
pub async fn send(
    http: &reqwest::Client,
    req: reqwest::Request,
    url: &str,
    verbose: bool,
    describe: fn(u16, &str) -> String,
) -> Result<Answer, String> {
    let answer = match http.execute(req).await {
        Err(e) => return Ok(Answer::Retry(format!("GET {url}: {}", error_chain(&e)))),
        Ok(a) => a,
    };
    let status = answer.status().as_u16();
    let body = answer.text().await.unwrap_or_default();
    log_answer(verbose, status, &body);
    Ok(match status {
        200..=299 => Answer::Json(
            serde_json::from_str(&body)
                .map_err(|e| format!("GET {url}: the answer is not JSON: {e}"))?,
        ),
        429 | 500..=599 => Answer::Retry(format!("GET {url}: {}", describe(status, &body))),
        _ => Answer::Status { status, body },
    })
}

/// Waits before attempt `attempt + 1`: exponential from 200 ms, capped at 6.4 s, with up to
/// 100 ms of jitter so several agents do not retry in step.
pub async fn pause(attempt: u32) {
    let backoff = Duration::from_millis(100 * (1 << attempt.min(6)) + fastrand::u64(0..100));
    tokio::time::sleep(backoff).await;
}
