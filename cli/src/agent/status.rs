//! The status page (`GET /`): per marketplace, product and customer, what is pending, sent,
//! rejected, failed and expired, with search and filters — the "Metering" tab sellers know
//! from Tackle and Clazar — read from the ledger.
//!
//! The page itself (HTML, script, style: [`asset`]) holds no data and is open. Its data
//! comes from two JSON endpoints under `/v1/`, so they need the same bearer token as the
//! rest of `/v1/`: the page asks for the token in a sign-in form and keeps it for the
//! browser session only (`sessionStorage`); a browser already signed in with HTTP Basic
//! (the token as password) sends that instead.
//!
//! - `GET /v1/status/summary?marketplace=&product=&customer=&status=&q=`: totals per view
//!   and one group per contract ([`summary`]).
//! - `GET /v1/status/rows?…&limit=&offset=`: the matching rows, newest first, paginated
//!   ([`rows`]).
//!
//! `status` is a view: `pending` (pending or sending), `sent` (accepted), `rejected`
//! (rejected or duplicate), `failed`, `expired`. `q` searches the customer, product,
//! dimension, record id, answer and reason. Everything from the ledger is seller input, so
//! the page writes it with `textContent` only, and its Content-Security-Policy allows no
//! inline script ([`PAGE_HEADERS`]).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use metergate_core::time::{format_rfc3339, parse_rfc3339};
use metergate_core::{window, Contract, ContractSet, Marketplace, Settings};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::agent::http::error;
use crate::agent::AgentState;
use crate::ledger::observe::{GroupCounts, RowQuery, View};
use crate::ledger::{Ledger, LedgerError, LedgerRow};

/// The page.
pub const INDEX_HTML: &str = include_str!("status/index.html");
/// Its script.
pub const STATUS_JS: &str = include_str!("status/status.js");
/// Its own style, on top of the web demo's.
pub const STATUS_CSS: &str = include_str!("status/status.css");
/// The web demo's style sheet, the same file the demo serves, so the two look alike.
pub const BASE_CSS: &str = include_str!("../../../web-demo/css/style.css");

/// Headers for every page asset: no inline script or style, nothing from elsewhere, no
/// framing, no caching of a page that is about to show customer data.
pub const PAGE_HEADERS: [(&str, &str); 4] = [
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
];

/// The page's files by URL path: `(content type, body)`.
pub fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    Some(match path {
        "/" | "/index.html" => ("text/html; charset=utf-8", INDEX_HTML),
        "/status/status.js" => ("text/javascript; charset=utf-8", STATUS_JS),
        "/status/status.css" => ("text/css; charset=utf-8", STATUS_CSS),
        "/status/base.css" => ("text/css; charset=utf-8", BASE_CSS),
        _ => return None,
    })
}

/// Rows per page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 50;
/// The most rows one request returns.
pub const MAX_LIMIT: u32 = 500;
/// The most contracts [`summary`] lists.
pub const MAX_GROUPS: usize = 1_000;

/// A query parameter that cannot be used (answered with 400).
#[derive(Debug, thiserror::Error)]
#[error("query parameter {param}: {message}")]
pub struct ParamError {
    /// The parameter.
    pub param: &'static str,
    /// What is wrong and what to give.
    pub message: String,
}

/// The query string of both endpoints, as written (all optional; empty means absent).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Params {
    /// `aws`, `azure` or `gcp`.
    pub marketplace: Option<String>,
    /// A product, exactly.
    pub product: Option<String>,
    /// A customer key, exactly.
    pub customer: Option<String>,
    /// A view: `pending`, `sent`, `rejected`, `failed`, `expired`.
    pub status: Option<String>,
    /// Usage starting at or after (RFC 3339).
    pub since: Option<String>,
    /// Usage starting before (RFC 3339).
    pub until: Option<String>,
    /// Free-text search.
    pub q: Option<String>,
    /// Rows per page (1 to [`MAX_LIMIT`]).
    pub limit: Option<String>,
    /// Rows to skip.
    pub offset: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Params {
    /// The filters, the page size and the offset.
    pub fn parse(&self) -> Result<(RowQuery, u32, u64), ParamError> {
        let bad = |param, message: String| ParamError { param, message };
        let marketplace = given(&self.marketplace)
            .map(|m| {
                Marketplace::parse(m).ok_or_else(|| {
                    bad(
                        "marketplace",
                        format!("{m:?} is not a marketplace; give aws, azure or gcp"),
                    )
                })
            })
            .transpose()?;
        let view = given(&self.status)
            .map(|s| {
                View::parse(s).ok_or_else(|| {
                    bad(
                        "status",
                        format!("{s:?} is not one of pending, sent, rejected, failed, expired"),
                    )
                })
            })
            .transpose()?;
        let time = |param: &'static str, v: &Option<String>| {
            given(v)
                .map(|t| {
                    parse_rfc3339(t).map_err(|e| {
                        bad(
                            param,
                            format!(
                                "{t:?} {e}; give an RFC 3339 time such as 2026-03-01T00:00:00Z"
                            ),
                        )
                    })
                })
                .transpose()
        };
        let since = time("since", &self.since)?;
        let until = time("until", &self.until)?;
        let limit = match given(&self.limit) {
            None => DEFAULT_LIMIT,
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    bad(
                        "limit",
                        format!("{l:?} must be a whole number from 1 to {MAX_LIMIT}"),
                    )
                })?,
        };
        let offset = match given(&self.offset) {
            None => 0,
            Some(o) => o
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= i64::MAX as u64)
                .ok_or_else(|| bad("offset", format!("{o:?} must be a whole number, 0 or more")))?,
        };
        let q = given(&self.q).map(|q| q.chars().take(200).collect::<String>());
        Ok((
            RowQuery {
                marketplace,
                product: given(&self.product).map(str::to_owned),
                customer: given(&self.customer).map(str::to_owned),
                view,
                since,
                until,
                q,
            },
            limit,
            offset,
        ))
    }
}

/// What the page shows of a contract, with the seller's labels (`properties`, #21).
fn contract_json(c: &Contract) -> Value {
    json!({
        "properties": c.properties,
        "status": c.status_text(),
        "state": c.status.as_str(),
        "plan": c.plan,
        "starts_at": format_rfc3339(c.starts_at),
        "ends_at": c.ends_at.map(format_rfc3339),
        "cancelled_at": c.cancelled_at.map(format_rfc3339),
    })
}

/// One row as the page shows it: everything but the wire values (marketplace identities
/// the page does not need), plus its view and, while unfinished, its deadline.
fn row_json(
    r: &LedgerRow,
    contracts: &ContractSet,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Value {
    let view = View::of_status(r.status.as_str()).map(View::as_str);
    let deadline = (!r.status.is_final())
        .then(|| {
            let rec = r.usage_record();
            let c = contracts
                .find(rec.marketplace, &rec.product, &rec.customer)
                .map(|(_, c)| c);
            window::hard_deadline(&rec, c, settings, now)
        })
        .flatten()
        .map(|d| json!({"at": format_rfc3339(d.at), "rule": d.rule}));
    json!({
        "id": r.id,
        "view": view,
        "status": r.status.as_str(),
        "marketplace": r.marketplace.as_str(),
        "product": r.product,
        "customer": r.customer,
        "dimension": r.dimension,
        "start_time": format_rfc3339(r.start_time),
        "end_time": r.end_time.map(format_rfc3339),
        "quantity": r.quantity.to_string(),
        "attempts": r.attempts,
        "answer": r.answer,
        "reason": r.reason,
        "record_id": r.record_id,
        "marketplace_record_id": r.marketplace_record_id,
        "source": r.source,
        "created_at": r.created_at,
        "sent_at": r.sent_at,
        "finished_at": r.finished_at,
        "deadline": deadline,
    })
}

/// `GET /v1/status/rows`: `{"total", "limit", "offset", "rows": [...]}`, newest first.
pub fn rows(
    ledger: &Ledger,
    contracts: &ContractSet,
    settings: &Settings,
    params: &Params,
    now: DateTime<Utc>,
) -> Result<Result<Value, ParamError>, LedgerError> {
    let (q, limit, offset) = match params.parse() {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let (total, found) = ledger.status_rows(&q, limit, offset)?;
    let rows: Vec<Value> = found
        .iter()
        .map(|r| row_json(r, contracts, settings, now))
        .collect();
    Ok(Ok(json!({
        "total": total,
        "limit": limit,
        "offset": offset,
        "rows": rows,
    })))
}

/// `GET /v1/status/summary`: totals per view, one group per contract (at most
/// [`MAX_GROUPS`]; `truncated` says when more matched) with its contract when known, and
/// the marketplaces and products the filters can choose from. `limit`/`offset` are ignored.
pub fn summary(
    ledger: &Ledger,
    contracts: &ContractSet,
    params: &Params,
    now: DateTime<Utc>,
) -> Result<Result<Value, ParamError>, LedgerError> {
    let (q, _, _) = match params.parse() {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let (groups, t, truncated) = ledger.status_groups(&q, MAX_GROUPS)?;
    let totals = json!({
        "pending": t.pending,
        "sent": t.sent,
        "rejected": t.rejected,
        "failed": t.failed,
        "expired": t.expired,
    });
    let groups: Vec<Value> = groups
        .iter()
        .map(|g: &GroupCounts| {
            let contract = Marketplace::parse(&g.marketplace)
                .and_then(|m| contracts.find(m, &g.product, &g.customer))
                .map(|(_, c)| contract_json(c));
            let mut v = json!(g);
            if let Some(obj) = v.as_object_mut() {
                obj.insert("contract".into(), contract.unwrap_or(Value::Null));
            }
            v
        })
        .collect();
    let products: Vec<Value> = ledger
        .products()?
        .into_iter()
        .map(|(m, p)| json!({"marketplace": m, "product": p}))
        .collect();
    Ok(Ok(json!({
        "now": format_rfc3339(now),
        "totals": totals,
        "groups": groups,
        "truncated": truncated,
        "products": products,
    })))
}

/// `GET /` and `GET /status/{file}`: the page's files, with [`PAGE_HEADERS`].
pub async fn get_asset(uri: Uri) -> Response {
    let Some((content_type, body)) = asset(uri.path()) else {
        return error(StatusCode::NOT_FOUND, "no such file");
    };
    let mut res = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    for (k, v) in PAGE_HEADERS {
        res.headers_mut()
            .insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    res
}

/// Which of the two JSON endpoints.
#[derive(Clone, Copy)]
enum Endpoint {
    Summary,
    Rows,
}

async fn answer(
    state: Arc<AgentState>,
    headers: &HeaderMap,
    uri: &Uri,
    which: Endpoint,
) -> Response {
    // The same token as the rest of /v1/: a bearer header, or HTTP Basic with the token as
    // the password. Checked before anything else is read.
    if !state.auth.basic_or_bearer_ok(headers) {
        return crate::agent::auth::unauthorized();
    }
    let params = match Query::<Params>::try_from_uri(uri) {
        Ok(Query(p)) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("query string: {e}")),
    };
    let read = tokio::task::spawn_blocking(move || {
        let v = state.validator();
        let now = Utc::now();
        state.with_reader(|ledger| match which {
            Endpoint::Summary => summary(ledger, v.contracts(), &params, now),
            Endpoint::Rows => rows(ledger, v.contracts(), v.settings(), &params, now),
        })
    })
    .await;
    let mut res = match read {
        Ok(Ok(Ok(body))) => (StatusCode::OK, axum::Json(body)).into_response(),
        Ok(Ok(Err(e))) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "status page: cannot read the ledger");
            error(StatusCode::SERVICE_UNAVAILABLE, "the ledger cannot be read")
        }
        Err(e) => {
            tracing::error!(error = %e, "status page: the reader failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "the reader failed")
        }
    };
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `GET /v1/status/summary`.
pub async fn get_summary(
    State(state): State<Arc<AgentState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(state, &headers, &uri, Endpoint::Summary).await
}

/// `GET /v1/status/rows`.
pub async fn get_rows(
    State(state): State<Arc<AgentState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(state, &headers, &uri, Endpoint::Rows).await
}
