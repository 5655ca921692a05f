//! Lifecycle events over HTTP: `POST /v1/events/aws`, `/v1/events/azure`, `/v1/events/gcp`.
//!
//! These endpoints are outside the bearer-token rule: each marketplace's own proof is the
//! auth ([`sns`]: the SNS signature; [`azure`]: the operation confirmed with the fulfillment
//! API; [`pubsub`]: Google's OIDC token). A verified event is applied exactly as
//! `metergate contracts event` applies it ([`crate::contracts::events::parse`] and
//! [`crate::contracts::events::apply`] on the ledger's contract store).
//!
//! Answers (see [`Reply`]):
//!
//! | case | status | why |
//! |---|---|---|
//! | applied, recorded, stale or a replay | 200 | SNS, Pub/Sub and Microsoft stop delivering on 2xx |
//! | SNS `SubscriptionConfirmation` confirmed, `UnsubscribeConfirmation` | 200 | |
//! | verified, but for no stored contract | 202 | see below |
//! | verified, but a shape `contracts event` does not know | 202 | a redelivery would not help |
//! | not verifiable (bad signature, host, topic, token, unknown or mismatching operation) | 401 | nothing changes |
//! | the verifier's counterpart is unreachable, or the store failed | 503 | the marketplace delivers again later |
//! | the endpoint is not configured | 404 | |
//!
//! An event for a contract the store does not hold yet (typically a new subscription whose
//! `contracts sync` has not run) gets 202 and changes nothing. Answering 5xx would make SNS
//! retry a few times and Pub/Sub for up to 7 days, a storm that no retry can fix, since only
//! `contracts sync` or `contracts import` adds contracts; and the marketplace's API stays the
//! source of truth that the next sync reads, so nothing is lost. The answer and the log say
//! `no-contract`.

pub mod azure;
pub mod pubsub;
pub mod sns;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use metergate_core::Marketplace;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{AgentState, Wake};
use crate::contracts::events::{self, Applied, Effect, Event, EventError, Outcome};
use crate::contracts::store::{Store, StoreError};

/// Why an event is not used.
#[derive(Debug, thiserror::Error)]
pub enum EventAuthError {
    /// The event is not proven to come from the marketplace: 401, nothing changes.
    #[error("unverifiable event: {0}")]
    Unverified(String),
    /// The proof cannot be checked now (a certificate host, key URL or API is unreachable):
    /// 503, the marketplace delivers again.
    #[error("cannot verify the event now: {0}")]
    Unavailable(String),
}

/// `[serve.events]` of the config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// `[serve.events.aws]`.
    #[serde(default)]
    pub aws: sns::SnsConfig,
    /// `[serve.events.azure]`.
    #[serde(default)]
    pub azure: azure::AzureConfig,
    /// `[serve.events.gcp]`.
    #[serde(default)]
    pub gcp: pubsub::OidcConfig,
}

impl EventsConfig {
    /// Reads `serve.events` from the whole config (as JSON); missing is all defaults.
    pub fn from_config(root: &Value) -> Result<EventsConfig, String> {
        match root.get("serve").and_then(|s| s.get("events")) {
            None | Some(Value::Null) => Ok(EventsConfig::default()),
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| format!("config: [serve.events]: {e}")),
        }
    }
}

/// The three verifiers, built once when the agent starts.
pub struct Verifiers {
    /// SNS (always on: its defaults are AWS's production rules).
    pub aws: sns::SnsVerifier,
    /// Microsoft (on when Entra ID credentials are in the environment).
    pub azure: Option<azure::OperationConfirmer>,
    /// Google (on when `[serve.events.gcp] audience` is set).
    pub gcp: Option<pubsub::OidcVerifier>,
}

impl Verifiers {
    /// Builds the verifiers of this configuration.
    pub fn new(config: EventsConfig) -> Result<Verifiers, String> {
        Ok(Verifiers {
            aws: sns::SnsVerifier::new(config.aws)?,
            azure: azure::OperationConfirmer::new(config.azure)?,
            gcp: pubsub::OidcVerifier::new(config.gcp)?,
        })
    }
}

/// A contract whose pending records should go out at once (a cancellation or an end).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractKey {
    /// Marketplace.
    pub marketplace: Marketplace,
    /// Product.
    pub product: String,
    /// Customer key.
    pub customer: String,
}

/// The answer to one event delivery.
#[derive(Clone, Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body: `{"outcome": ..., ...}`.
    pub body: Value,
    /// The store changed: reload the contracts.
    pub changed: bool,
    /// Send this contract's pending records now.
    pub wake: Option<ContractKey>,
}

impl Reply {
    fn new(status: u16, outcome: &str, detail: impl Into<String>) -> Reply {
        Reply {
            status,
            body: json!({"outcome": outcome, "detail": detail.into()}),
            changed: false,
            wake: None,
        }
    }

    /// The answer to an event that could not be verified.
    pub fn refused(e: &EventAuthError) -> Reply {
        match e {
            EventAuthError::Unverified(m) => Reply::new(401, "unverified", m.clone()),
            EventAuthError::Unavailable(m) => Reply::new(503, "unavailable", m.clone()),
        }
    }

    /// The answer of an endpoint that is not configured.
    pub fn off(what: &str) -> Reply {
        Reply::new(404, "not-configured", what)
    }

    /// A 200 with an outcome word.
    pub fn ok(outcome: &str, detail: impl Into<String>) -> Reply {
        Reply::new(200, outcome, detail)
    }
}

/// Parses and applies one verified event document to the ledger's contract store
/// (blocking: run it off the async executor).
pub fn apply_verified(ledger: &Path, text: &str, source: &str) -> Reply {
    let ev = match events::parse(text, source) {
        Ok(ev) => ev,
        Err(e) => return Reply::new(202, "unknown-event", e.to_string()),
    };
    let applied = Store::open(ledger)
        .map_err(EventError::from)
        .and_then(|mut store| events::apply(&mut store, &ev, source));
    match applied {
        Ok(done) => reply_of(&ev, &done),
        Err(e @ EventError::NoContract { .. }) => Reply::new(202, "no-contract", e.to_string()),
        Err(EventError::Store(StoreError::Invalid(m))) => Reply::new(202, "refused-by-core", m),
        Err(e) => Reply::new(503, "store-failed", e.to_string()),
    }
}

fn reply_of(ev: &Event, done: &Applied) -> Reply {
    let stops = matches!(ev.effect, Effect::Cancel | Effect::End);
    let wake = (stops && done.outcome != Outcome::Stale).then(|| ContractKey {
        marketplace: ev.marketplace,
        product: done.product.clone(),
        customer: done.customer.clone(),
    });
    Reply {
        status: 200,
        body: serde_json::to_value(done).unwrap_or(Value::Null),
        changed: done.outcome == Outcome::Applied,
        wake,
    }
}

/// `POST /v1/events/aws`, without HTTP: verify, confirm or apply.
pub async fn handle_aws(v: &Verifiers, ledger: PathBuf, body: &[u8]) -> Reply {
    let m = match v.aws.verify(body).await {
        Ok(m) => m,
        Err(e) => return Reply::refused(&e),
    };
    match m.kind {
        sns::SnsType::SubscriptionConfirmation => match v.aws.confirm(&m).await {
            Ok(()) => Reply::ok("subscription-confirmed", m.topic_arn),
            Err(e) => Reply::refused(&e),
        },
        sns::SnsType::UnsubscribeConfirmation => Reply::ok("unsubscribed", m.topic_arn),
        sns::SnsType::Notification => {
            let text = m.envelope.to_string();
            let source = format!("SNS {}", m.message_id);
            blocking(move || apply_verified(&ledger, &text, &source)).await
        }
    }
}

/// `POST /v1/events/azure`, without HTTP: confirm with Get Operation, then apply.
pub async fn handle_azure(v: &Verifiers, ledger: PathBuf, body: &[u8]) -> Reply {
    let Some(c) = &v.azure else {
        return Reply::off("Microsoft webhooks need AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET to confirm operations");
    };
    if let Err(e) = c.confirm(body).await {
        return Reply::refused(&e);
    }
    let text = String::from_utf8_lossy(body).into_owned();
    let id = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    let source = format!("webhook operation {id}");
    blocking(move || apply_verified(&ledger, &text, &source)).await
}

/// `POST /v1/events/gcp`, without HTTP: verify the OIDC token, then apply the push envelope.
pub async fn handle_gcp(
    v: &Verifiers,
    ledger: PathBuf,
    authorization: Option<&str>,
    body: &[u8],
) -> Reply {
    let Some(o) = &v.gcp else {
        return Reply::off("Pub/Sub push needs [serve.events.gcp] audience");
    };
    if let Err(e) = o.verify(authorization).await {
        return Reply::refused(&e);
    }
    let text = String::from_utf8_lossy(body).into_owned();
    let id = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| {
            v.pointer("/message/messageId")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let source = format!("Pub/Sub message {id}");
    blocking(move || apply_verified(&ledger, &text, &source)).await
}

async fn blocking(f: impl FnOnce() -> Reply + Send + 'static) -> Reply {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Reply::new(503, "store-failed", e.to_string()),
    }
}

/// The three routes, for [`super::http::router`]: `POST /v1/events/aws|azure|gcp`, outside
/// the bearer-token rule. The verifiers are built here from `[serve.events]` (the start
/// already refused a bad section, see [`check_config`]).
pub fn routes(state: &Arc<AgentState>) -> Router<Arc<AgentState>> {
    let built = EventsConfig::from_config(&state.config).and_then(Verifiers::new);
    if let Err(e) = &built {
        tracing::error!(error = %e, "lifecycle event endpoints disabled");
    }
    let v = Arc::new(built);
    let aws = Arc::clone(&v);
    let azure = Arc::clone(&v);
    let gcp = v;
    Router::new()
        .route(
            "/v1/events/aws",
            post(move |State(s): State<Arc<AgentState>>, body: Bytes| async move {
                let r = match aws.as_ref() {
                    Ok(v) => handle_aws(v, s.options.ledger.clone(), &body).await,
                    Err(e) => Reply::new(503, "misconfigured", e.clone()),
                };
                finish(&s, Marketplace::Aws, r).await
            }),
        )
        .route(
            "/v1/events/azure",
            post(move |State(s): State<Arc<AgentState>>, body: Bytes| async move {
                let r = match azure.as_ref() {
                    Ok(v) => handle_azure(v, s.options.ledger.clone(), &body).await,
                    Err(e) => Reply::new(503, "misconfigured", e.clone()),
                };
                finish(&s, Marketplace::Azure, r).await
            }),
        )
        .route(
            "/v1/events/gcp",
            post(
                move |State(s): State<Arc<AgentState>>, headers: HeaderMap, body: Bytes| async move {
                    let auth = headers
                        .get(axum::http::header::AUTHORIZATION)
                        .and_then(|h| h.to_str().ok());
                    let r = match gcp.as_ref() {
                        Ok(v) => handle_gcp(v, s.options.ledger.clone(), auth, &body).await,
                        Err(e) => Reply::new(503, "misconfigured", e.clone()),
                    };
                    finish(&s, Marketplace::Gcp, r).await
                },
            ),
        )
}

/// Reads `[serve.events]` and builds the verifiers once, so a bad section stops the start.
pub fn check_config(config: &Value) -> Result<(), String> {
    EventsConfig::from_config(config)
        .and_then(Verifiers::new)
        .map(|_| ())
}

/// Reloads the contracts after a change, wakes the send loop after a cancellation, logs, and
/// turns the [`Reply`] into the answer.
async fn finish(state: &Arc<AgentState>, marketplace: Marketplace, r: Reply) -> Response {
    let detail = r.body.get("detail").and_then(Value::as_str).unwrap_or("");
    let outcome = r.body.get("outcome").and_then(Value::as_str).unwrap_or("");
    match r.status {
        200..=299 => {
            tracing::info!(%marketplace, status = r.status, outcome, detail = %crate::text::clean(detail), "lifecycle event")
        }
        _ => {
            tracing::warn!(%marketplace, status = r.status, outcome, detail = %crate::text::clean(detail), "lifecycle event refused")
        }
    }
    if r.changed {
        let st = Arc::clone(state);
        let reloaded = tokio::task::spawn_blocking(move || st.reload_contracts()).await;
        match reloaded {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot reload the contracts after an event"),
            Err(e) => tracing::error!(error = %e, "cannot reload the contracts after an event"),
        }
    }
    if let Some(k) = r.wake {
        state.wake(Wake::Contract {
            marketplace: k.marketplace,
            product: k.product,
            customer: k.customer,
        });
    }
    let code = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(r.body)).into_response()
}
