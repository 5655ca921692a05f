//! Bearer tokens for the hand-written JSON clients, and the HTTP plumbing they share.
//!
//! # Microsoft Entra ID (client credentials)
//!
//! [`EntraTokenClient`] is a small, documented OAuth 2.0 client-credentials client for the
//! marketplace metering API, whose resource (audience) is
//! [`TOKEN_RESOURCE`] (`20e940b3-4c77-4b0b-9a53-9e16a1b010a7`):
//!
//! ```text
//! POST https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token
//! Content-Type: application/x-www-form-urlencoded
//!
//! grant_type=client_credentials&client_id=…&client_secret=…&scope=20e940b3-…/.default
//! ```
//!
//! answered with `{"token_type":"Bearer","expires_in":3599,"access_token":"…"}`. A token URL
//! ending in `/oauth2/token` (Entra ID v1, the URL in Microsoft's metering OpenAPI) is sent
//! `resource=20e940b3-…` instead of `scope`. Tokens are cached until five minutes before
//! they expire.
//!
//! Tenant, client id and secret come from the environment only (`AZURE_TENANT_ID`,
//! `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`, the names the Azure SDKs use), never from the
//! command line. `METERGATE_AZURE_TOKEN_URL` replaces the token URL (for tests; `{tenant}`
//! in it is replaced by the tenant id). The secret is never printed, logged or stored.
//!
//! Why not `azure_identity`: it brings the `azure_core`/`typespec` HTTP pipeline (its own
//! retry policy, its own async client) for a single form POST, and its authority-host
//! override does not take a plain-HTTP loopback token endpoint for tests.

use std::fmt;
use std::time::{Duration, Instant};

use metergate_core::rules::azure::TOKEN_RESOURCE;

use super::CallError;

/// `AZURE_TENANT_ID`.
pub const TENANT_ENV: &str = "AZURE_TENANT_ID";
/// `AZURE_CLIENT_ID`.
pub const CLIENT_ID_ENV: &str = "AZURE_CLIENT_ID";
/// `AZURE_CLIENT_SECRET`.
pub const CLIENT_SECRET_ENV: &str = "AZURE_CLIENT_SECRET";
/// Replaces the Entra ID token URL (tests).
pub const TOKEN_URL_ENV: &str = "METERGATE_AZURE_TOKEN_URL";
/// The token URL used when [`TOKEN_URL_ENV`] is not set.
pub const DEFAULT_TOKEN_URL: &str = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token";
/// Tokens are renewed this long before they expire.
const RENEW_MARGIN: Duration = Duration::from_secs(300);

/// A secret string: `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An Entra ID app registration's client credentials.
#[derive(Clone, Debug)]
pub struct EntraCredentials {
    /// Directory (tenant) id.
    pub tenant: String,
    /// Application (client) id.
    pub client_id: String,
    /// Client secret.
    pub secret: Secret,
}

impl EntraCredentials {
    /// Reads `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET`.
    pub fn from_env() -> Result<EntraCredentials, String> {
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let (tenant, client_id, secret) =
            (get(TENANT_ENV), get(CLIENT_ID_ENV), get(CLIENT_SECRET_ENV));
        let missing: Vec<&str> = [
            (TENANT_ENV, tenant.is_none()),
            (CLIENT_ID_ENV, client_id.is_none()),
            (CLIENT_SECRET_ENV, secret.is_none()),
        ]
        .iter()
        .filter(|(_, m)| *m)
        .map(|(n, _)| *n)
        .collect();
        match (tenant, client_id, secret) {
            (Some(tenant), Some(client_id), Some(secret)) => Ok(EntraCredentials {
                tenant: tenant.trim().to_owned(),
                client_id: client_id.trim().to_owned(),
                secret: Secret::new(secret),
            }),
            _ => Err(format!(
                "no Microsoft Entra ID credentials: set {} in the environment (the app registration named in the offer's technical configuration)",
                missing.join(", ")
            )),
        }
    }
}

/// Why no token could be had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// The identity provider refused the credentials (or the request): nothing can be sent.
    Refused(String),
    /// The identity provider could not be reached or failed (5xx): try again later.
    Unavailable(String),
}

impl TokenError {
    /// As the error of a marketplace call.
    pub fn into_call_error(self) -> CallError {
        match self {
            TokenError::Refused(m) => CallError::Fatal(m),
            TokenError::Unavailable(m) => CallError::Retryable {
                answer: "token".into(),
                reason: m,
            },
        }
    }
}

#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    /// A number on v2, a string on v1.
    expires_in: Option<serde_json::Value>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The Entra ID client-credentials client (see the module documentation).
pub struct EntraTokenClient {
    creds: EntraCredentials,
    url: String,
    cached: Option<(Secret, Instant)>,
}

impl fmt::Debug for EntraTokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntraTokenClient")
            .field("client_id", &self.creds.client_id)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl EntraTokenClient {
    /// A client for these credentials; the URL is `METERGATE_AZURE_TOKEN_URL` when set, else
    /// the v2 endpoint of the tenant.
    pub fn new(creds: EntraCredentials) -> EntraTokenClient {
        let template = std::env::var(TOKEN_URL_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_TOKEN_URL.to_owned());
        let url = template.trim().replace("{tenant}", &creds.tenant);
        EntraTokenClient {
            creds,
            url,
            cached: None,
        }
    }

    /// The token URL in use.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The form fields of a token request (v1 sends `resource`, v2 `scope`).
    pub fn form(&self) -> Vec<(&'static str, String)> {
        let audience = if self.url.trim_end_matches('/').ends_with("/oauth2/token") {
            ("resource", TOKEN_RESOURCE.to_owned())
        } else {
            ("scope", format!("{TOKEN_RESOURCE}/.default"))
        };
        vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", self.creds.client_id.clone()),
            ("client_secret", self.creds.secret.expose().to_owned()),
            audience,
        ]
    }

    /// Forgets the cached token (after a 401).
    pub fn invalidate(&mut self) {
        self.cached = None;
    }

    /// A valid access token, from the cache or a new request.
    pub async fn token(&mut self, http: &reqwest::Client) -> Result<Secret, TokenError> {
        if let Some((tok, until)) = &self.cached {
            if Instant::now() < *until {
                return Ok(tok.clone());
            }
        }
        let answer = http
            .post(&self.url)
            .form(&self.form())
            .send()
            .await
            .map_err(|e| {
                TokenError::Unavailable(format!(
                    "cannot reach the Entra ID token endpoint {}: {}",
                    self.url,
                    error_chain(&e)
                ))
            })?;
        let status = answer.status().as_u16();
        let text = answer.text().await.unwrap_or_default();
        let parsed: Option<TokenAnswer> = serde_json::from_str(&text).ok();
        if !(200..300).contains(&status) {
            let (code, desc) = parsed
                .map(|p| {
                    (
                        p.error.unwrap_or_default(),
                        p.error_description.unwrap_or_default(),
                    )
                })
                .unwrap_or_default();
            // AADSTS descriptions carry trace ids and timestamps on further lines.
            let desc = desc.lines().next().unwrap_or("").to_owned();
            let msg = format!(
                "Entra ID refused a token for client {} (HTTP {status} {code}): {desc}",
                self.creds.client_id
            );
            return Err(if status >= 500 || status == 429 {
                TokenError::Unavailable(msg)
            } else {
                TokenError::Refused(msg)
            });
        }
        let p = parsed.ok_or_else(|| {
            TokenError::Unavailable(format!(
                "the token endpoint {} did not answer JSON",
                self.url
            ))
        })?;
        let token = p.access_token.filter(|t| !t.is_empty()).ok_or_else(|| {
            TokenError::Refused(format!(
                "the token endpoint {} answered without an access_token",
                self.url
            ))
        })?;
        let secs = match &p.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .unwrap_or(3600);
        let life = Duration::from_secs(secs);
        let until = Instant::now() + life.saturating_sub(RENEW_MARGIN).max(life / 2);
        let tok = Secret::new(token);
        self.cached = Some((tok.clone(), until));
        Ok(tok)
    }
}

/// Headers whose values are secrets: never printed.
pub const REDACTED_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// The reqwest client both JSON senders use: rustls, short connect timeout, 30 s per call,
/// no redirects (a metering API never redirects; following one could leak the token).
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("metergate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", error_chain(&e)))
}

/// A single-threaded async runtime for the blocking [`super::MarketplaceSender`] calls.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// An error and its sources, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s.chars().take(400).collect()
}

/// A transport failure (no HTTP answer) as a retryable call error: the outcome is unknown.
pub fn transport_error(e: &reqwest::Error) -> CallError {
    let answer = if e.is_timeout() {
        "timeout"
    } else {
        "connection"
    };
    CallError::Retryable {
        answer: answer.into(),
        reason: error_chain(e),
    }
}

/// `--verbose`: a request's method, URL, headers (secrets redacted) and body, on stderr.
pub fn log_request(verbose: bool, req: &reqwest::Request) {
    if !verbose {
        return;
    }
    let mut s = format!("metergate: > {} {}\n", req.method(), req.url());
    for (name, value) in req.headers() {
        let shown = if REDACTED_HEADERS.contains(&name.as_str().to_ascii_lowercase().as_str()) {
            "<redacted>".to_owned()
        } else {
            value.to_str().unwrap_or("<binary>").to_owned()
        };
        s.push_str(&format!("metergate: > {name}: {shown}\n"));
    }
    if let Some(b) = req.body().and_then(reqwest::Body::as_bytes) {
        s.push_str(&format!("metergate: > {}\n", String::from_utf8_lossy(b)));
    }
    eprint!("{s}");
}

/// `--verbose`: an answer's status and body, on stderr.
pub fn log_answer(verbose: bool, status: u16, body: &str) {
    if verbose {
        eprintln!("metergate: < HTTP {status}\nmetergate: < {body}");
    }
}

/// The first 300 characters of a body, for reasons.
pub fn snippet(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(300).collect()
}

/// A random (version 4) uuid, for request and correlation ids.
pub fn random_uuid() -> uuid::Uuid {
    let mut b = [0u8; 16];
    for x in &mut b {
        *x = fastrand::u8(..);
    }
    uuid::Builder::from_random_bytes(b).into_uuid()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn creds() -> EntraCredentials {
        EntraCredentials {
            tenant: "t-1".into(),
            client_id: "app-1".into(),
            secret: Secret::new("s3cret".into()),
        }
    }

    #[test]
    fn secrets_never_show() {
        let c = creds();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"));
        let client = EntraTokenClient {
            creds: c,
            url: "u".into(),
            cached: Some((Secret::new("tok-abc".into()), Instant::now())),
        };
        let shown = format!("{client:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("tok-abc"));
    }

    #[test]
    fn v2_sends_scope_and_v1_sends_resource() {
        let mut client = EntraTokenClient {
            creds: creds(),
            url: DEFAULT_TOKEN_URL.replace("{tenant}", "t-1"),
            cached: None,
        };
        let form = client.form();
        assert!(form.contains(&("scope", format!("{TOKEN_RESOURCE}/.default"))));
        assert!(form.contains(&("grant_type", "client_credentials".into())));
        client.url = "https://login.microsoftonline.com/t-1/oauth2/token".into();
        assert!(client
            .form()
            .contains(&("resource", TOKEN_RESOURCE.to_owned())));
    }

    #[test]
    fn random_uuids_are_v4() {
        let u = random_uuid();
        assert_eq!(u.get_version_num(), 4);
        assert_ne!(u, random_uuid());
    }
}
