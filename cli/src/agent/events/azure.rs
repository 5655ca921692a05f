//! Microsoft SaaS fulfillment webhooks: each one is confirmed with the API before it is used.
//!
//! Microsoft's webhook carries no signature metergate can check, and Microsoft asks the
//! receiver to confirm it with the fulfillment API ("Implementing a webhook on the SaaS
//! service": call Get Operation). So for a webhook body `{"id", "subscriptionId", "action",
//! "status", ...}` metergate calls
//! `GET {endpoint}/saas/subscriptions/{subscriptionId}/operations/{id}?api-version=2018-08-31`
//! with the publisher's Entra ID token (the client and endpoint `contracts sync` uses:
//! `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`; `[serve.events.azure] endpoint`,
//! else `$METERGATE_AZURE_ENDPOINT`, else Microsoft's).
//!
//! The webhook is used only when the operation exists (404 → refused) and its `id`, `action`,
//! `subscriptionId` (case-insensitive) and `status` are the webhook's. A refused webhook gets
//! 401; when the API cannot be reached or fails (5xx, 429, a refused token) the answer is 503,
//! so Microsoft delivers the webhook again later.

use metergate_core::rules::azure::API_VERSION;
use serde::Deserialize;
use serde_json::Value;

use super::EventAuthError;
use crate::rest::{self, Answer};
use crate::submit::token::{self, error_chain, random_uuid, EntraCredentials, EntraTokenClient};

/// Calls before a failing API is reported as unavailable.
const MAX_ATTEMPTS: u32 = 3;

/// `[serve.events.azure]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    /// The fulfillment API base URL (default: `$METERGATE_AZURE_ENDPOINT`, else Microsoft's).
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// Confirms webhooks with Get Operation.
pub struct OperationConfirmer {
    endpoint: String,
    http: reqwest::Client,
    tokens: tokio::sync::Mutex<EntraTokenClient>,
}

fn unverified(m: impl Into<String>) -> EventAuthError {
    EventAuthError::Unverified(m.into())
}

fn text<'a>(v: &'a Value, f: &str) -> Result<&'a str, EventAuthError> {
    v.get(f)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| unverified(format!("the webhook has no {f}")))
}

/// A path segment: ids are GUIDs, so anything else is refused rather than escaped.
fn segment<'a>(s: &'a str, f: &str) -> Result<&'a str, EventAuthError> {
    if s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        Ok(s)
    } else {
        Err(unverified(format!("the webhook's {f} {s:?} is not an id")))
    }
}

impl OperationConfirmer {
    /// A confirmer, or `None` when no Entra ID credentials are in the environment (the
    /// endpoint is off).
    pub fn new(config: AzureConfig) -> Result<Option<OperationConfirmer>, String> {
        let Ok(creds) = EntraCredentials::from_env() else {
            return Ok(None);
        };
        let opts = crate::submit::azure::AzureOptions {
            endpoint: config.endpoint,
            ..Default::default()
        };
        Ok(Some(OperationConfirmer {
            endpoint: opts.resolved_endpoint(),
            http: token::http_client()?,
            tokens: tokio::sync::Mutex::new(EntraTokenClient::new(creds)),
        }))
    }

    /// Confirms one webhook body: `Ok` with the operation when it exists and matches.
    pub async fn confirm(&self, body: &[u8]) -> Result<Value, EventAuthError> {
        let hook: Value = serde_json::from_slice(body)
            .map_err(|e| unverified(format!("the body is not JSON: {e}")))?;
        let id = segment(text(&hook, "id")?, "id")?;
        let sub = segment(text(&hook, "subscriptionId")?, "subscriptionId")?;
        let url = format!(
            "{}/saas/subscriptions/{sub}/operations/{id}?api-version={API_VERSION}",
            self.endpoint
        );
        let op = self.get(&url).await?;
        for f in ["id", "subscriptionId", "action", "status"] {
            let (a, b) = (
                text(&hook, f)?,
                op.get(f).and_then(Value::as_str).unwrap_or(""),
            );
            let same = if f == "action" || f == "status" {
                a == b.trim()
            } else {
                a.eq_ignore_ascii_case(b.trim())
            };
            if !same {
                return Err(unverified(format!(
                    "the operation's {f} is {b:?}, the webhook says {a:?}"
                )));
            }
        }
        Ok(op)
    }

    async fn get(&self, url: &str) -> Result<Value, EventAuthError> {
        let unavailable = |m: String| EventAuthError::Unavailable(m);
        let mut renewed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let tok = {
                let mut t = self.tokens.lock().await;
                t.token(&self.http).await.map_err(|e| {
                    unavailable(match e {
                        token::TokenError::Refused(m) | token::TokenError::Unavailable(m) => m,
                    })
                })?
            };
            let req = self
                .http
                .get(url)
                .bearer_auth(tok.expose())
                .header("x-ms-requestid", random_uuid().to_string())
                .header("x-ms-correlationid", random_uuid().to_string())
                .header("accept", "application/json")
                .build()
                .map_err(|e| {
                    unavailable(format!("cannot build the request: {}", error_chain(&e)))
                })?;
            let retry = match rest::send(&self.http, req, url, false, rest::plain_status)
                .await
                .map_err(unavailable)?
            {
                Answer::Json(v) => return Ok(v),
                Answer::Retry(m) => m,
                // Microsoft answers 404 for an operation it does not know, and 400 for an id
                // it cannot read.
                Answer::Status {
                    status: status @ (400 | 404),
                    ..
                } => {
                    return Err(unverified(format!(
                        "no such operation (GET {url}: HTTP {status})"
                    )))
                }
                Answer::Status { status: 401, .. } if !renewed => {
                    renewed = true;
                    self.tokens.lock().await.invalidate();
                    continue;
                }
                Answer::Status { status, body } => {
                    return Err(unavailable(format!(
                        "GET {url}: HTTP {status}: {}",
                        token::snippet(&body)
                    )))
                }
            };
            if attempt >= MAX_ATTEMPTS {
                return Err(unavailable(format!("{retry} (after {attempt} attempts)")));
            }
            rest::pause(attempt).await;
        }
    }
}
