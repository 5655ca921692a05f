//! Microsoft: the SaaS fulfillment API v2 (api-version 2018-08-31).
//!
//! * `GET {endpoint}/saas/subscriptions/?api-version=2018-08-31`, then each `@nextLink` until
//!   there is none. A `@nextLink` is followed only when it points at the same scheme, host and
//!   port as the endpoint: the bearer token is never sent anywhere else.
//! * `GET {endpoint}/saas/subscriptions/{id}/listAvailablePlans?api-version=2018-08-31&planId=P`
//!   once per offer and plan: the plan's `planComponents.meteringDimensions[].id` are the
//!   contract's dimensions.
//!
//! The endpoint and the Entra ID client are the ones `submit` uses (`--azure-endpoint`, else
//! `$METERGATE_AZURE_ENDPOINT`, else `https://marketplaceapi.microsoft.com/api`; credentials
//! from `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`; see
//! [`crate::submit::token`]). 5xx, 429 and broken connections are retried with backoff; a 401
//! renews the token once; anything else fails the sync, and the store stays as it was.
//!
//! A subscription becomes a contract: `product` = `offerId`, `customer` = the subscription id
//! (a stored contract with this `resource_id` keeps its own keys), `resource_id` and
//! `marketplace_id` = the id, `plan` = `planId`, `starts_at` = `term.startDate` (else
//! `created`), `ends_at` = `term.endDate` when `autoRenew` is false. States:
//! `PendingFulfillmentStart` and `NotStarted` → `pending`, `Subscribed` → `active`,
//! `Suspended` → `suspended`, `Unsubscribed` → `cancelled` (the API gives no time: the first
//! sync that sees it, or the webhook's time when the event came first).

use chrono::{DateTime, Utc};
use metergate_core::rules::azure::API_VERSION;
use metergate_core::time::format_rfc3339;
use metergate_core::{ContractStatus, Dimension, Marketplace};
use serde_json::Value;
use std::collections::HashMap;

use super::{SyncError, Synced};
use crate::rest::{self, Answer};
use crate::submit::azure::AzureOptions;
use crate::submit::token::{
    self, error_chain, log_request, random_uuid, EntraCredentials, EntraTokenClient,
};

/// Calls per page or plan before the sync gives up.
const MAX_ATTEMPTS: u32 = 5;
/// Pages followed at most (a loop guard: 100 subscriptions a page).
const MAX_PAGES: usize = 100_000;

fn fail(message: impl Into<String>) -> SyncError {
    SyncError::Call {
        marketplace: Marketplace::Azure,
        message: message.into(),
    }
}

struct Client {
    http: reqwest::Client,
    tokens: EntraTokenClient,
    verbose: bool,
    calls: u64,
}

impl Client {
    async fn get(&mut self, url: &str) -> Result<Value, SyncError> {
        let mut renewed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let tok = self.tokens.token(&self.http).await.map_err(|e| {
                fail(match e {
                    token::TokenError::Refused(m) | token::TokenError::Unavailable(m) => m,
                })
            })?;
            let req = self
                .http
                .get(url)
                .bearer_auth(tok.expose())
                .header("x-ms-requestid", random_uuid().to_string())
                .header("x-ms-correlationid", random_uuid().to_string())
                .header("accept", "application/json")
                .build()
                .map_err(|e| fail(format!("cannot build the request: {}", error_chain(&e))))?;
            log_request(self.verbose, &req);
            self.calls += 1;
            let retry = match rest::send(&self.http, req, url, self.verbose, rest::plain_status)
                .await
                .map_err(fail)?
            {
                Answer::Json(v) => return Ok(v),
                Answer::Retry(m) => m,
                Answer::Status { status: 401, .. } if !renewed => {
                    renewed = true;
                    self.tokens.invalidate();
                    continue;
                }
                Answer::Status { status: 403, body } => return Err(fail(format!(
                    "GET {url}: HTTP 403: the token's app is not the one the offer was published with ({})",
                    token::snippet(&body)
                ))),
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
        }
    }
}

fn origin(url: &reqwest::Url) -> (String, Option<String>, Option<u16>) {
    (
        url.scheme().to_owned(),
        url.host_str().map(str::to_owned),
        url.port_or_known_default(),
    )
}

fn time(v: &Value, field: &str) -> Option<DateTime<Utc>> {
    v.get(field)
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// One subscription as a contract (dimensions filled in later).
fn contract_of(sub: &Value, now: DateTime<Utc>) -> Result<(Synced, String), SyncError> {
    let s = |f: &str| {
        sub.get(f)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let id = s("id")
        .ok_or_else(|| fail("a subscription without an id"))?
        .to_ascii_lowercase();
    let offer = s("offerId").ok_or_else(|| fail(format!("subscription {id}: no offerId")))?;
    let plan = s("planId").ok_or_else(|| fail(format!("subscription {id}: no planId")))?;
    let word = s("saasSubscriptionStatus")
        .ok_or_else(|| fail(format!("subscription {id}: no saasSubscriptionStatus")))?;
    let status = match word {
        "NotStarted" | "PendingFulfillmentStart" => ContractStatus::Pending,
        "Subscribed" => ContractStatus::Active,
        "Suspended" => ContractStatus::Suspended,
        "Unsubscribed" => ContractStatus::Cancelled,
        other => {
            return Err(fail(format!(
                "subscription {id}: unknown saasSubscriptionStatus {other:?}"
            )))
        }
    };
    let term = sub.get("term").cloned().unwrap_or(Value::Null);
    let starts_at = time(&term, "startDate")
        .or_else(|| time(sub, "created"))
        .unwrap_or(now);
    let auto_renew = sub
        .get("autoRenew")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let ends_at = time(&term, "endDate").filter(|e| !auto_renew && *e > starts_at);
    let contract = super::contract_from_json(serde_json::json!({
        "marketplace": "azure",
        "product": offer,
        "customer": id,
        "status": status.as_str(),
        "starts_at": format_rfc3339(starts_at),
        "ends_at": ends_at.map(format_rfc3339),
        "cancelled_at": (status == ContractStatus::Cancelled).then(|| format_rfc3339(now.max(starts_at))),
        "plan": plan,
        "resource_id": id,
        "marketplace_id": id,
    }))
    .map_err(|e| fail(format!("subscription {id}: {e}")))?;
    Ok((Synced { contract, id }, plan.to_owned()))
}

/// Every SaaS subscription of the publisher, as contracts, with each plan's dimensions.
pub fn fetch(opts: &AzureOptions, now: DateTime<Utc>) -> Result<(Vec<Synced>, u64), SyncError> {
    let creds = EntraCredentials::from_env().map_err(fail)?;
    let endpoint = opts.resolved_endpoint();
    let base = reqwest::Url::parse(&endpoint)
        .map_err(|e| fail(format!("the endpoint {endpoint:?} is not a URL: {e}")))?;
    let mut client = Client {
        http: token::http_client().map_err(fail)?,
        tokens: EntraTokenClient::new(creds),
        verbose: opts.verbose,
        calls: 0,
    };
    let rt = token::runtime().map_err(fail)?;
    rt.block_on(async {
        let mut out = Vec::new();
        let mut plans: HashMap<(String, String), Vec<Dimension>> = HashMap::new();
        let mut url = format!("{endpoint}/saas/subscriptions/?api-version={API_VERSION}");
        for _ in 0..MAX_PAGES {
            let page = client.get(&url).await?;
            let subs = page
                .get("subscriptions")
                .and_then(Value::as_array)
                .ok_or_else(|| fail(format!("GET {url}: no subscriptions array in the answer")))?;
            for sub in subs {
                let (mut synced, plan) = contract_of(sub, now)?;
                let key = (synced.contract.product.clone(), plan.clone());
                if !plans.contains_key(&key) {
                    let purl = format!(
                        "{endpoint}/saas/subscriptions/{}/listAvailablePlans?api-version={API_VERSION}&planId={}",
                        synced.id,
                        urlencode(&plan)
                    );
                    let answer = client.get(&purl).await?;
                    let dims = answer
                        .get("plans")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter(|p| p.get("planId").and_then(Value::as_str) == Some(plan.as_str()))
                        .flat_map(|p| {
                            p.pointer("/planComponents/meteringDimensions")
                                .and_then(Value::as_array)
                                .cloned()
                                .unwrap_or_default()
                        })
                        .filter_map(|d| d.get("id").and_then(Value::as_str).map(str::to_owned))
                        .fold(Vec::<Dimension>::new(), |mut v, name| {
                            if !v.iter().any(|d| d.name == name) {
                                v.push(Dimension {
                                    name,
                                    unit: None,
                                    kind: None,
                                    price: None,
                                    currency: None,
                                });
                            }
                            v
                        });
                    plans.insert(key.clone(), dims);
                }
                synced.contract.dimensions = plans.get(&key).cloned().unwrap_or_default();
                out.push(synced);
            }
            let next = page
                .get("@nextLink")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty());
            let Some(next) = next else {
                return Ok((out, client.calls));
            };
            let next_url = base
                .join(next)
                .map_err(|e| fail(format!("@nextLink {next:?} is not a URL: {e}")))?;
            if origin(&next_url) != origin(&base) {
                return Err(fail(format!(
                    "@nextLink {next:?} points away from the endpoint {endpoint}; not followed (the token would go there)"
                )));
            }
            url = next_url.to_string();
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
