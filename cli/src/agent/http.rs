//! The HTTP surface: the axum router, the body limit (413), `/healthz`, `/readyz`, and where
//! every route is mounted.
//!
//! | route | auth | what |
//! |---|---|---|
//! | `POST /v1/usage` | bearer | [`super::intake`] |
//! | `POST /v1/events/aws\|azure\|gcp` | the marketplace's own proof | lifecycle events, [`super::events`] |
//! | `GET /healthz` | none | the process is alive |
//! | `GET /readyz` | none | the ledger is writable and contracts are loaded |
//! | `GET /metrics` | none | Prometheus text, no customer names ([`super::metrics`]) |
//! | `GET /`, `/status/*` | none | the status page's HTML, script and style; no data ([`super::status`]) |
//! | `GET /v1/status/summary\|rows` | bearer, or Basic with the token as password | the status page's data |

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::{auth, intake, metrics, status, AgentState};

/// The whole router, with the body limit of the config.
pub fn router(state: Arc<AgentState>) -> Router {
    let limit = state.body_limit;
    let v1 = Router::new()
        .route("/v1/usage", post(intake::post_usage))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require_bearer,
        ));
    let open = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        // Lifecycle events (S3, agent/events): outside the bearer rule, each marketplace's
        // own proof is checked there.
        .merge(super::events::routes(&state))
        // S4 observe: metrics and the status page (its data routes check the token).
        .route("/metrics", get(metrics::get_metrics))
        .route("/", get(status::get_asset))
        .route("/status/{file}", get(status::get_asset))
        .route("/v1/status/summary", get(status::get_summary))
        .route("/v1/status/rows", get(status::get_rows));
    Router::new()
        .merge(v1)
        .merge(open)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// A JSON error answer: `{"error": message}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let res = next.run(req).await;
    // Headers are never logged: they carry the bearer token.
    tracing::debug!(
        %method,
        path = %crate::text::clean(&path),
        status = res.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    res
}

async fn healthz() -> Response {
    (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response()
}

async fn readyz(State(state): State<Arc<AgentState>>) -> Response {
    let st = Arc::clone(&state);
    let ledger = tokio::task::spawn_blocking(move || st.with_reader(|l| l.probe_writable())).await;
    let ledger_ok = match ledger {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let contracts = state.validator().contracts().all().len();
    let stopping = state.stopping();
    let ready = ledger_ok.is_ok() && contracts > 0 && !stopping;
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "ledger": match &ledger_ok { Ok(()) => "writable".to_owned(), Err(e) => crate::text::clean(e).into_owned() },
        "contracts": contracts,
        "stopping": stopping,
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such route")
}
