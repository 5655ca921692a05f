//! Bearer tokens for `/v1/`.
//!
//! Tokens come from the environment variable [`TOKEN_ENV`] (comma-separated for several) and
//! from the file named by `[serve] token_file` (one a line), never from the command line,
//! where `ps` would show them. A presented token is compared with every configured one in
//! constant time ([`subtle`]), and all of them are always compared, so the answer's timing
//! does not tell how much of a token was right or which token matched. Tokens never reach
//! a log: [`Auth`]'s `Debug` shows only how many there are.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use subtle::ConstantTimeEq;

use super::{AgentError, AgentState};

/// The environment variable holding the API tokens, comma-separated.
pub const TOKEN_ENV: &str = "METERGATE_API_TOKEN";

/// The accepted tokens. Empty means no authentication (`--insecure-no-auth`).
#[derive(Clone, Default)]
pub struct Auth {
    tokens: Vec<Vec<u8>>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Auth {{ {} tokens <redacted> }}", self.tokens.len())
    }
}

impl Auth {
    /// Tokens from [`TOKEN_ENV`] and from `token_file`.
    pub fn load(token_file: Option<&Path>) -> Result<Auth, AgentError> {
        let mut tokens = Vec::new();
        if let Ok(v) = std::env::var(TOKEN_ENV) {
            tokens.extend(split_tokens(&v, ','));
        }
        if let Some(p) = token_file {
            let text = std::fs::read_to_string(p).map_err(|e| {
                AgentError::Config(format!(
                    "[serve] token_file {}: cannot read: {e}",
                    p.display()
                ))
            })?;
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .collect();
            tokens.extend(split_tokens(&lines.join("\n"), '\n'));
        }
        Ok(Auth::from_tokens(tokens))
    }

    /// From a list of tokens (blank ones dropped).
    pub fn from_tokens(tokens: Vec<String>) -> Auth {
        Auth {
            tokens: tokens
                .into_iter()
                .map(|t| t.trim().as_bytes().to_vec())
                .filter(|t| !t.is_empty())
                .collect(),
        }
    }

    /// True when no token is configured.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// How many tokens are configured.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// True when there are none (see [`Auth::is_open`]).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// True when `presented` is one of the tokens. Compares with every token, each in
    /// constant time for its length.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let mut ok = subtle::Choice::from(0u8);
        for t in &self.tokens {
            ok |= t.as_slice().ct_eq(presented);
        }
        bool::from(ok)
    }

    /// `Authorization: Bearer <token>` with a good token (always true when open).
    pub fn bearer_ok(&self, headers: &HeaderMap) -> bool {
        if self.is_open() {
            return true;
        }
        match bearer(headers) {
            Some(t) => self.matches(t),
            None => false,
        }
    }

    /// `Authorization: Basic` with a good token as the password (any user name), or a good
    /// bearer token: for pages a browser opens (the status page). Always true when open.
    pub fn basic_or_bearer_ok(&self, headers: &HeaderMap) -> bool {
        if self.bearer_ok(headers) {
            return true;
        }
        let Some(v) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some(b64) = v
            .strip_prefix("Basic ")
            .or_else(|| v.strip_prefix("basic "))
        else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
            return false;
        };
        match decoded.iter().position(|b| *b == b':') {
            Some(i) => self.matches(decoded.get(i + 1..).unwrap_or_default()),
            None => false,
        }
    }
}

fn split_tokens(s: &str, sep: char) -> Vec<String> {
    s.split(sep)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let v = headers.get(header::AUTHORIZATION)?.as_bytes();
    let rest = v
        .strip_prefix(b"Bearer ")
        .or_else(|| v.strip_prefix(b"bearer "))?;
    Some(rest.trim_ascii())
}

/// The 401 answer.
pub fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(serde_json::json!({
            "error": "unauthorized: send Authorization: Bearer <token> with a token from METERGATE_API_TOKEN or the token file"
        })),
    )
        .into_response()
}

/// Middleware for `/v1/` routes: 401 without a good bearer token.
pub async fn require_bearer(
    State(state): State<Arc<AgentState>>,
    req: Request,
    next: Next,
) -> Response {
    if state.auth.bearer_ok(req.headers()) {
        next.run(req).await
    } else {
        unauthorized()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn tokens_match_exactly() {
        let a = Auth::from_tokens(vec!["alpha".into(), " beta ".into(), String::new()]);
        assert_eq!(a.len(), 2);
        assert!(a.matches(b"alpha"));
        assert!(a.matches(b"beta"));
        assert!(!a.matches(b"alph"));
        assert!(!a.matches(b"alphaa"));
        assert!(!a.matches(b""));
        assert!(!format!("{a:?}").contains("alpha"));
    }

    #[test]
    fn headers() {
        let a = Auth::from_tokens(vec!["s3cret".into()]);
        let mut h = HeaderMap::new();
        assert!(!a.bearer_ok(&h));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(a.bearer_ok(&h));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cre"),
        );
        assert!(!a.bearer_ok(&h));
        // user:s3cret
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpzM2NyZXQ="),
        );
        assert!(!a.bearer_ok(&h));
        assert!(a.basic_or_bearer_ok(&h));
        assert!(Auth::default().bearer_ok(&HeaderMap::new()));
    }
}
