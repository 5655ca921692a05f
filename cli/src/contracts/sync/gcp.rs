//! Google: the Partner Procurement API (`cloudcommerceprocurement.googleapis.com`, v1).
//!
//! `GET {endpoint}/v1/providers/{provider}/entitlements?pageSize=100[&pageToken=T]`, following
//! `nextPageToken` to the end. The provider id is `[gcp] provider = "..."` in the config. The
//! endpoint is `$METERGATE_GCP_PROCUREMENT_ENDPOINT` (tests), else the public API; the token
//! is `$METERGATE_GCP_TOKEN` (tests), else Application Default Credentials through
//! `google-cloud-auth` (`GOOGLE_APPLICATION_CREDENTIALS`), scope cloud-platform.
//!
//! Google does not list metric names with an entitlement: they come from the config,
//!
//! ```toml
//! [gcp]
//! provider = "example-partner-id"
//! [gcp.products."example-product.endpoints.example-project.cloud.goog"]
//! metrics = ["example-product.endpoints.example-project.cloud.goog/requests"]
//! product_id = "example-product"   # the entitlement's `product`; default: the service's first label
//! ```
//!
//! An entitlement whose product no configured service names is skipped (and counted). An
//! entitlement becomes a contract: `product` = the service, `customer` = the account id (the
//! last segment of `account`; a stored contract with this `marketplace_id` keeps its own
//! keys), `marketplace_id` = the entitlement id, `usage_reporting_id`, `plan`,
//! `starts_at` = `createTime`. States: `ENTITLEMENT_ACTIVATION_REQUESTED` → `pending`;
//! `ENTITLEMENT_ACTIVE`, `ENTITLEMENT_PENDING_CANCELLATION`, `ENTITLEMENT_PENDING_PLAN_CHANGE`,
//! `ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL` → `active`; `ENTITLEMENT_SUSPENDED` →
//! `suspended`; `ENTITLEMENT_CANCELLED` → `cancelled` at `updateTime`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use google_cloud_auth::credentials::Builder as CredentialsBuilder;
use metergate_core::time::format_rfc3339;
use metergate_core::{ContractStatus, Marketplace};
use serde_json::{json, Value};

use super::{contract_from_json, SyncError, Synced};
use crate::rest::{self, Answer};
use crate::submit::token::{self, error_chain, Secret};

/// Replaces the Procurement API endpoint (tests).
pub const ENDPOINT_ENV: &str = "METERGATE_GCP_PROCUREMENT_ENDPOINT";
/// The public endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://cloudcommerceprocurement.googleapis.com";
/// The OAuth scope the Procurement API takes.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const MAX_ATTEMPTS: u32 = 5;
const MAX_PAGES: usize = 100_000;

fn fail(message: impl Into<String>) -> SyncError {
    SyncError::Call {
        marketplace: Marketplace::Gcp,
        message: message.into(),
    }
}

/// One configured service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Product {
    /// The service name records use as `product`.
    pub service: String,
    /// The entitlement's `product` it matches.
    pub product_id: String,
    /// Metric names.
    pub metrics: Vec<String>,
}

/// The `[gcp]` section of the config: the provider id and the services.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcpConfig {
    /// The Procurement API provider id.
    pub provider: Option<String>,
    /// Configured services.
    pub products: Vec<Product>,
}

impl GcpConfig {
    /// Reads `gcp.provider` and `gcp.products` from the config (as JSON).
    pub fn from_value(v: &Value) -> Result<GcpConfig, String> {
        let gcp = v.get("gcp").cloned().unwrap_or(Value::Null);
        let provider = match gcp.get("provider") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Some(_) => return Err("gcp.provider: a non-empty string".into()),
        };
        let mut products = Vec::new();
        if let Some(p) = gcp.get("products") {
            let obj = p.as_object().ok_or("gcp.products: a table of services")?;
            for (service, t) in obj {
                let metrics = t
                    .get("metrics")
                    .and_then(Value::as_array)
                    .ok_or(format!(
                        "gcp.products.{service:?}.metrics: a list of metric names"
                    ))?
                    .iter()
                    .map(|m| {
                        m.as_str()
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .ok_or(format!(
                                "gcp.products.{service:?}.metrics: names are non-empty strings"
                            ))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let product_id = match t.get("product_id") {
                    Some(Value::String(s)) => s.clone(),
                    Some(_) => {
                        return Err(format!("gcp.products.{service:?}.product_id: a string"))
                    }
                    None => service.split('.').next().unwrap_or(service).to_owned(),
                };
                products.push(Product {
                    service: service.clone(),
                    product_id,
                    metrics,
                });
            }
        }
        Ok(GcpConfig { provider, products })
    }
}

fn time(v: &Value, field: &str) -> Option<DateTime<Utc>> {
    v.get(field)
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn last_segment(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// One entitlement as a contract, or `None` when no configured service sells it.
fn contract_of(
    e: &Value,
    cfg: &GcpConfig,
    now: DateTime<Utc>,
) -> Result<Option<Synced>, SyncError> {
    let s = |f: &str| {
        e.get(f)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let name = s("name").ok_or_else(|| fail("an entitlement without a name"))?;
    let id = last_segment(name).to_owned();
    let product = s("product").unwrap_or("");
    let external = s("productExternalName").unwrap_or("");
    let Some(p) = cfg
        .products
        .iter()
        .find(|p| p.product_id == product || p.service == external || p.service == product)
    else {
        return Ok(None);
    };
    let word = s("state").ok_or_else(|| fail(format!("entitlement {id}: no state")))?;
    let status = match word {
        "ENTITLEMENT_ACTIVATION_REQUESTED" => ContractStatus::Pending,
        "ENTITLEMENT_ACTIVE"
        | "ENTITLEMENT_PENDING_CANCELLATION"
        | "ENTITLEMENT_PENDING_PLAN_CHANGE"
        | "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL" => ContractStatus::Active,
        "ENTITLEMENT_SUSPENDED" => ContractStatus::Suspended,
        "ENTITLEMENT_CANCELLED" => ContractStatus::Cancelled,
        other => return Err(fail(format!("entitlement {id}: unknown state {other:?}"))),
    };
    let starts_at = time(e, "createTime").unwrap_or(now);
    let cancelled_at = (status == ContractStatus::Cancelled)
        .then(|| time(e, "updateTime").unwrap_or(now).max(starts_at));
    let account = s("account").map(last_segment).unwrap_or(&id).to_owned();
    let contract = contract_from_json(json!({
        "marketplace": "gcp",
        "product": p.service,
        "customer": account,
        "status": status.as_str(),
        "starts_at": format_rfc3339(starts_at),
        "cancelled_at": cancelled_at.map(format_rfc3339),
        "plan": s("plan"),
        "usage_reporting_id": s("usageReportingId"),
        "marketplace_id": id,
        "dimensions": p.metrics.iter().map(|m| json!({"name": m})).collect::<Vec<_>>(),
    }))
    .map_err(|e| fail(format!("entitlement {id}: {e}")))?;
    Ok(Some(Synced { contract, id }))
}

async fn bearer(static_token: &Option<Secret>) -> Result<Secret, SyncError> {
    if let Some(t) = static_token {
        return Ok(t.clone());
    }
    let creds = CredentialsBuilder::default()
        .with_scopes([SCOPE])
        .build_access_token_credentials()
        .map_err(|e| {
            fail(format!(
                "no Google credentials (set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file): {}",
                error_chain(&e)
            ))
        })?;
    creds
        .access_token()
        .await
        .map(|t| Secret::new(t.token))
        .map_err(|e| fail(format!("Google refused a token: {}", error_chain(&e))))
}

/// Every entitlement of the provider that a configured service sells, as contracts. Returns
/// them, the calls made and how many entitlements were skipped.
pub fn fetch(
    cfg: &GcpConfig,
    verbose: bool,
    now: DateTime<Utc>,
) -> Result<(Vec<Synced>, u64, usize), SyncError> {
    let provider = cfg.provider.clone().ok_or_else(|| {
        fail("no provider id: set [gcp] provider = \"<your partner id>\" in --config")
    })?;
    if cfg.products.is_empty() {
        return Err(fail(
            "no services: add [gcp.products.\"<service>\"] metrics = [...] to --config (Google does not list metric names)",
        ));
    }
    let endpoint = std::env::var(ENDPOINT_ENV)
        .ok()
        .map(|s| s.trim().trim_end_matches('/').to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
    let static_token = std::env::var(crate::submit::gcp::TOKEN_ENV)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .map(Secret::new);
    let http = token::http_client().map_err(fail)?;
    let rt = token::runtime().map_err(fail)?;
    rt.block_on(async {
        let tok = bearer(&static_token).await?;
        let mut out = Vec::new();
        let mut skipped = 0;
        let mut calls = 0u64;
        let mut page_token: Option<String> = None;
        let mut seen_accounts: BTreeMap<(String, String), usize> = BTreeMap::new();
        for _ in 0..MAX_PAGES {
            let mut url = format!("{endpoint}/v1/providers/{provider}/entitlements?pageSize=100");
            if let Some(t) = &page_token {
                url.push_str("&pageToken=");
                url.push_str(&urlencode(t));
            }
            let mut attempt = 0;
            let page: Value = loop {
                attempt += 1;
                calls += 1;
                if verbose {
                    eprintln!("metergate: > GET {url}\nmetergate: > authorization: <redacted>");
                }
                let req = http
                    .get(&url)
                    .bearer_auth(tok.expose())
                    .build()
                    .map_err(|e| fail(format!("cannot build the request: {}", error_chain(&e))))?;
                let retry = match rest::send(&http, req, &url, verbose, rest::plain_status)
                    .await
                    .map_err(fail)?
                {
                    Answer::Json(v) => break v,
                    Answer::Retry(m) => m,
                    Answer::Status { status, body } => {
                        return Err(fail(format!(
                            "GET {url}: HTTP {status}: {}",
                            token::snippet(&body)
                        )))
                    }
                };
                if attempt >= MAX_ATTEMPTS {
                    return Err(fail(format!("{retry} (after {attempt} attempts)")));
                }
                rest::pause(attempt).await;
            };
            for e in page
                .get("entitlements")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                match contract_of(e, cfg, now)? {
                    Some(mut s) => {
                        // Two orders of one account for one service: the second is keyed by
                        // account and entitlement.
                        let k = (s.contract.product.clone(), s.contract.customer.clone());
                        let n = seen_accounts.entry(k).or_insert(0);
                        *n += 1;
                        if *n > 1 {
                            s.contract.customer = format!("{}/{}", s.contract.customer, s.id);
                        }
                        out.push(s);
                    }
                    None => skipped += 1,
                }
            }
            page_token = page
                .get("nextPageToken")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if page_token.is_none() {
                return Ok((out, calls, skipped));
            }
        }
        Err(fail(format!("more than {MAX_PAGES} pages; stopped")))
    })
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
