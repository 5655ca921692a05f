//! Google Cloud Pub/Sub push: the OIDC token of an authenticated push subscription.
//!
//! A push subscription with authentication sends `Authorization: Bearer <JWT>`, a Google-signed
//! OIDC ID token (<https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions>).
//! It is accepted when:
//!
//! * its header names an `RS256` key (`kid`) of the configured key set: a JWKS file
//!   (`jwks_file`) or URL (`jwks_url`, default Google's [`GOOGLE_JWKS_URL`]), fetched again when
//!   an unknown `kid` shows up (Google rotates its keys) but at most once a minute;
//! * the signature is valid with that key;
//! * `iss` is `accounts.google.com` or `https://accounts.google.com`;
//! * `aud` is the configured audience (the push subscription's `audience`, by default its
//!   endpoint URL);
//! * `exp` is in the future and `iat` not in the future, each with `leeway` seconds (default 60);
//! * when `email` is configured, the token's `email` is that service account and
//!   `email_verified` is true.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::EventAuthError;

/// Google's OAuth 2.0 / OIDC signing keys, as a JWKS.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";

/// The issuers Google writes in its ID tokens.
pub const GOOGLE_ISSUERS: [&str; 2] = ["accounts.google.com", "https://accounts.google.com"];

/// The default clock leeway, in seconds.
const DEFAULT_LEEWAY: u64 = 60;

/// How long a fetched key set is used before it is fetched again.
const KEYS_TTL: Duration = Duration::from_secs(3600);

/// The shortest time between two fetches for an unknown `kid`.
const REFETCH_AFTER: Duration = Duration::from_secs(60);

/// `[serve.events.gcp]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The audience the push subscription puts in its tokens. Without it the endpoint is off.
    #[serde(default)]
    pub audience: Option<String>,
    /// A JWKS file of the accepted keys (instead of `jwks_url`; for tests and offline use).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The JWKS URL (default [`GOOGLE_JWKS_URL`]).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// The push subscription's service account; when set, the token's `email` must be it.
    #[serde(default)]
    pub email: Option<String>,
    /// Clock leeway for `exp` and `iat`, seconds (default 60).
    #[serde(default)]
    pub leeway: Option<u64>,
}

/// The claims metergate reads.
#[derive(Clone, Debug, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Issued at, Unix seconds.
    #[serde(default)]
    pub iat: Option<u64>,
    /// The service account of the push subscription.
    #[serde(default)]
    pub email: Option<String>,
    /// Whether Google verified the email.
    #[serde(default)]
    pub email_verified: Option<bool>,
}

struct Keys {
    set: JwkSet,
    fetched: Instant,
}

/// Verifies push tokens: the configuration, an HTTP client and the key cache.
pub struct OidcVerifier {
    audience: String,
    config: OidcConfig,
    http: reqwest::Client,
    keys: tokio::sync::Mutex<Option<Keys>>,
}

fn unverified(m: impl Into<String>) -> EventAuthError {
    EventAuthError::Unverified(m.into())
}

impl OidcVerifier {
    /// A verifier, or `None` when no audience is configured (the endpoint is off).
    pub fn new(config: OidcConfig) -> Result<Option<OidcVerifier>, String> {
        let Some(audience) = config.audience.clone().filter(|a| !a.trim().is_empty()) else {
            return Ok(None);
        };
        if config.jwks_file.is_some() && config.jwks_url.is_some() {
            return Err("[serve.events.gcp]: give jwks_file or jwks_url, not both".into());
        }
        let http = crate::submit::token::http_client()?;
        let v = OidcVerifier {
            audience,
            config,
            http,
            keys: tokio::sync::Mutex::new(None),
        };
        if let Some(path) = &v.config.jwks_file {
            // Read once now, so a bad file stops the start.
            load_file(path)?;
        }
        Ok(Some(v))
    }

    async fn fetch(&self) -> Result<JwkSet, EventAuthError> {
        if let Some(path) = &self.config.jwks_file {
            return load_file(path).map_err(EventAuthError::Unavailable);
        }
        let url = self.config.jwks_url.as_deref().unwrap_or(GOOGLE_JWKS_URL);
        let answer = self.http.get(url).send().await.map_err(|e| {
            EventAuthError::Unavailable(format!(
                "cannot fetch the OIDC keys {url}: {}",
                crate::submit::token::error_chain(&e)
            ))
        })?;
        if !answer.status().is_success() {
            return Err(EventAuthError::Unavailable(format!(
                "the OIDC keys {url} answered HTTP {}",
                answer.status().as_u16()
            )));
        }
        answer.json::<JwkSet>().await.map_err(|e| {
            EventAuthError::Unavailable(format!("the OIDC keys {url} are not a JWKS: {e}"))
        })
    }

    /// The decoding key for `kid`, fetching the set when it is old or lacks the key.
    async fn key(&self, kid: &str) -> Result<DecodingKey, EventAuthError> {
        let mut guard = self.keys.lock().await;
        let stale = guard
            .as_ref()
            .is_none_or(|k| k.fetched.elapsed() > KEYS_TTL);
        let missing = guard
            .as_ref()
            .is_some_and(|k| k.set.find(kid).is_none() && k.fetched.elapsed() > REFETCH_AFTER);
        if stale || missing {
            let set = self.fetch().await?;
            *guard = Some(Keys {
                set,
                fetched: Instant::now(),
            });
        }
        let jwk = guard
            .as_ref()
            .and_then(|k| k.set.find(kid))
            .ok_or_else(|| unverified(format!("no key {kid:?} in the configured key set")))?;
        DecodingKey::from_jwk(jwk).map_err(|e| unverified(format!("key {kid:?}: {e}")))
    }

    /// Verifies an `Authorization` header value (see the module documentation).
    pub async fn verify(&self, authorization: Option<&str>) -> Result<Claims, EventAuthError> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unverified("no Authorization: Bearer token"))?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| unverified(format!("the token is not a JWT: {e}")))?;
        if header.alg != Algorithm::RS256 {
            return Err(unverified(format!(
                "the token is signed with {:?}, not RS256",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| unverified("the token names no key (kid)"))?;
        let key = self.key(&kid).await?;
        let leeway = self.config.leeway.unwrap_or(DEFAULT_LEEWAY);
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&GOOGLE_ISSUERS);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = leeway;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| unverified(format!("the token is refused: {e}")))?;
        let claims = data.claims;
        let now = jsonwebtoken::get_current_timestamp();
        if claims.iat.is_some_and(|iat| iat > now + leeway) {
            return Err(unverified("the token was issued in the future (iat)"));
        }
        if let Some(want) = &self.config.email {
            let ok = claims.email.as_deref() == Some(want.as_str())
                && claims.email_verified == Some(true);
            if !ok {
                return Err(unverified(format!(
                    "the token's email is not the configured service account {want}"
                )));
            }
        }
        Ok(claims)
    }
}

fn load_file(path: &std::path::Path) -> Result<JwkSet, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "[serve.events.gcp] jwks_file {}: cannot read: {e}",
            path.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "[serve.events.gcp] jwks_file {}: not a JWKS: {e}",
            path.display()
        )
    })
}
