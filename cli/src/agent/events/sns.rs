//! Amazon SNS HTTP(S) subscription messages: signature verification and confirmation.
//!
//! AWS Marketplace publishes SaaS subscription and entitlement notifications on SNS topics
//! (`arn:aws:sns:us-east-1:287250355862:aws-mp-subscription-notification-<product code>` and
//! `aws-mp-entitlement-notification-<product code>`). SNS signs every message it POSTs to an
//! HTTP(S) subscriber, and AWS asks the subscriber to verify each one
//! (<https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html>):
//!
//! 1. `SigningCertURL` must be `https` on an SNS host, `sns.<region>.amazonaws.com` (or
//!    `.amazonaws.com.cn`), and name a `.pem` file. The certificate is fetched over TLS
//!    checked against the trusted roots (the system's, or `trust_roots` for tests), so its
//!    authenticity rests on the SNS host, exactly as AWS's own SDK validators do. It must be
//!    within its validity period and hold an RSA key. Fetched keys are cached per URL.
//! 2. The string to sign is `Name\nvalue\n` for, in this order: `Message`, `MessageId`,
//!    `Subject` (only when present), `Timestamp`, `TopicArn`, `Type` for a `Notification`;
//!    `Message`, `MessageId`, `SubscribeURL`, `Timestamp`, `Token`, `TopicArn`, `Type` for a
//!    `SubscriptionConfirmation` or `UnsubscribeConfirmation`.
//! 3. `Signature` (base64) is checked with the certificate's key: `SignatureVersion` `1` is
//!    SHA1withRSA, `2` SHA256withRSA (PKCS #1 v1.5). Any other version is refused.
//!
//! SNS signs the messages of every topic with the same certificate, so a valid signature only
//! proves that SNS sent the message, not that AWS Marketplace published it: anyone can create
//! a topic and subscribe this endpoint to it. So the topic must belong to the AWS Marketplace
//! account ([`MARKETPLACE_TOPIC_ACCOUNT`], configurable for tests), its name must start with
//! `aws-mp-`, and a notification's `product-code` must be the topic's own product code.
//!
//! A verified `SubscriptionConfirmation` is confirmed by GETting its `SubscribeURL` (which
//! must pass the same host rule).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use base64::Engine;
use serde_json::Value;
use x509_cert::der::DecodePem;
use x509_cert::Certificate;

use super::EventAuthError;

/// The AWS account that owns the AWS Marketplace SNS topics (AWS Marketplace Seller Guide,
/// "SaaS product notifications": `arn:aws:sns:us-east-1:287250355862:aws-mp-...`).
pub const MARKETPLACE_TOPIC_ACCOUNT: &str = "287250355862";

/// The prefix of every AWS Marketplace topic name (`aws-mp-subscription-notification-<code>`,
/// `aws-mp-entitlement-notification-<code>`).
pub const MARKETPLACE_TOPIC_PREFIX: &str = "aws-mp-";

/// A certificate larger than this is refused (an SNS signing certificate is ~2 KiB).
const MAX_CERT_BYTES: usize = 64 * 1024;

/// The `rsaEncryption` algorithm identifier.
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// `[serve.events.aws]`: how SNS messages are trusted. The defaults are AWS's production
/// rules; the other settings exist for tests against a local certificate host.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnsConfig {
    /// Hosts allowed for `SigningCertURL` and `SubscribeURL` besides
    /// `sns.<region>.amazonaws.com` (exact host names; for tests).
    #[serde(default)]
    pub cert_hosts: Vec<String>,
    /// A PEM file of root certificates that replaces the system's roots for the HTTPS fetch
    /// of the signing certificate (for tests with a local certificate authority).
    #[serde(default)]
    pub trust_roots: Option<PathBuf>,
    /// Test only: allow `http://` for a loopback host (127.0.0.1, ::1, localhost) named in
    /// `cert_hosts`. Never set this in production.
    #[serde(default)]
    pub allow_http_loopback: bool,
    /// AWS accounts whose topics are accepted (default: AWS Marketplace's,
    /// [`MARKETPLACE_TOPIC_ACCOUNT`]).
    #[serde(default)]
    pub topic_accounts: Option<Vec<String>>,
}

/// The kind of a verified SNS message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnsType {
    /// `Notification`: `Message` holds the AWS Marketplace notification.
    Notification,
    /// `SubscriptionConfirmation`: GET `SubscribeURL` to start receiving.
    SubscriptionConfirmation,
    /// `UnsubscribeConfirmation`: nothing to do.
    UnsubscribeConfirmation,
}

/// A message whose signature, certificate and topic were verified.
#[derive(Clone, Debug)]
pub struct VerifiedSns {
    /// Its type.
    pub kind: SnsType,
    /// The whole SNS envelope, as received (what [`crate::contracts::events::parse`] reads).
    pub envelope: Value,
    /// `TopicArn`.
    pub topic_arn: String,
    /// `MessageId`.
    pub message_id: String,
    /// `SubscribeURL` of a `SubscriptionConfirmation` (host already checked).
    pub subscribe_url: Option<reqwest::Url>,
}

/// Verifies SNS messages: the configuration, an HTTP client and the certificate cache.
pub struct SnsVerifier {
    config: SnsConfig,
    accounts: Vec<String>,
    http: reqwest::Client,
    /// Signing certificate URL → (the RSA public key, PKCS #1 DER; valid until).
    cache: Mutex<HashMap<String, (Vec<u8>, SystemTime)>>,
}

fn unverified(m: impl Into<String>) -> EventAuthError {
    EventAuthError::Unverified(m.into())
}

/// True for `sns.<region>.amazonaws.com` and `sns.<region>.amazonaws.com.cn`.
pub fn is_sns_host(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let rest = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"));
    let Some(region) = rest.and_then(|r| r.strip_prefix("sns.")) else {
        return false;
    };
    !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The SNS string to sign of a message (see the module documentation).
pub fn string_to_sign(v: &Value) -> Result<String, EventAuthError> {
    let ty = field(v, "Type")?;
    let names: &[&str] = match ty {
        "Notification" => &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ],
        "SubscriptionConfirmation" | "UnsubscribeConfirmation" => &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ],
        other => return Err(unverified(format!("unknown SNS message Type {other:?}"))),
    };
    let mut s = String::new();
    for name in names {
        let value = match (v.get(*name), *name) {
            (None | Some(Value::Null), "Subject") => continue,
            _ => field(v, name)?,
        };
        s.push_str(name);
        s.push('\n');
        s.push_str(value);
        s.push('\n');
    }
    Ok(s)
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a str, EventAuthError> {
    v.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| unverified(format!("the SNS message has no string field {name}")))
}

impl SnsVerifier {
    /// A verifier for this configuration (reads `trust_roots`).
    pub fn new(config: SnsConfig) -> Result<SnsVerifier, String> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("metergate/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.trust_roots {
            let pem = std::fs::read(path).map_err(|e| {
                format!(
                    "[serve.events.aws] trust_roots {}: cannot read: {e}",
                    path.display()
                )
            })?;
            let roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                format!(
                    "[serve.events.aws] trust_roots {}: not PEM certificates: {e}",
                    path.display()
                )
            })?;
            if roots.is_empty() {
                return Err(format!(
                    "[serve.events.aws] trust_roots {}: no certificate in the file",
                    path.display()
                ));
            }
            b = b.tls_certs_only(roots);
        }
        let http = b
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let accounts = config
            .topic_accounts
            .clone()
            .unwrap_or_else(|| vec![MARKETPLACE_TOPIC_ACCOUNT.to_owned()]);
        Ok(SnsVerifier {
            config,
            accounts,
            http,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Checks a `SigningCertURL` or `SubscribeURL` against the host rule.
    pub fn check_url(&self, url: &str, field: &str) -> Result<reqwest::Url, EventAuthError> {
        let u = reqwest::Url::parse(url)
            .map_err(|e| unverified(format!("{field} {url:?} is not a URL: {e}")))?;
        let host = u.host_str().unwrap_or_default().to_owned();
        let configured = self
            .config
            .cert_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&host));
        if !u.username().is_empty() || u.password().is_some() {
            return Err(unverified(format!("{field} carries credentials")));
        }
        if !(is_sns_host(&host) || configured) {
            return Err(unverified(format!(
                "{field} host {host:?} is not an SNS host (sns.<region>.amazonaws.com)"
            )));
        }
        let scheme_ok = u.scheme() == "https"
            || (u.scheme() == "http"
                && self.config.allow_http_loopback
                && configured
                && is_loopback(&host));
        if !scheme_ok {
            return Err(unverified(format!("{field} is not https")));
        }
        Ok(u)
    }

    fn check_topic(&self, topic: &str) -> Result<(String, String), EventAuthError> {
        // arn:aws:sns:<region>:<account>:<name>
        let parts: Vec<&str> = topic.split(':').collect();
        let (Some(account), Some(name)) = (parts.get(4), parts.get(5)) else {
            return Err(unverified(format!(
                "TopicArn {topic:?} is not an SNS topic ARN"
            )));
        };
        if parts.len() != 6 || parts.first() != Some(&"arn") || parts.get(2) != Some(&"sns") {
            return Err(unverified(format!(
                "TopicArn {topic:?} is not an SNS topic ARN"
            )));
        }
        if !self.accounts.iter().any(|a| a == account) {
            return Err(unverified(format!(
                "TopicArn {topic:?} does not belong to AWS Marketplace (account {account})"
            )));
        }
        if !name.starts_with(MARKETPLACE_TOPIC_PREFIX) {
            return Err(unverified(format!(
                "TopicArn {topic:?} is not an AWS Marketplace topic ({MARKETPLACE_TOPIC_PREFIX}...)"
            )));
        }
        Ok(((*account).to_owned(), (*name).to_owned()))
    }

    /// The RSA key of a signing certificate, from the cache or fetched.
    async fn key(&self, url: &reqwest::Url) -> Result<Vec<u8>, EventAuthError> {
        let now = SystemTime::now();
        if let Ok(cache) = self.cache.lock() {
            if let Some((k, until)) = cache.get(url.as_str()) {
                if now < *until {
                    return Ok(k.clone());
                }
            }
        }
        let answer = self.http.get(url.clone()).send().await.map_err(|e| {
            EventAuthError::Unavailable(format!(
                "cannot fetch the signing certificate {url}: {}",
                crate::submit::token::error_chain(&e)
            ))
        })?;
        let status = answer.status();
        if !status.is_success() {
            return Err(unverified(format!(
                "the signing certificate {url} answered HTTP {}",
                status.as_u16()
            )));
        }
        let body = answer.bytes().await.map_err(|e| {
            EventAuthError::Unavailable(format!("cannot read the signing certificate {url}: {e}"))
        })?;
        if body.len() > MAX_CERT_BYTES {
            return Err(unverified(format!(
                "the signing certificate {url} is larger than {MAX_CERT_BYTES} bytes"
            )));
        }
        let cert = Certificate::from_pem(&body).map_err(|e| {
            unverified(format!(
                "the signing certificate {url} is not a PEM certificate: {e}"
            ))
        })?;
        let tbs = cert.tbs_certificate();
        let validity = tbs.validity();
        let (from, until) = (
            validity.not_before.to_system_time(),
            validity.not_after.to_system_time(),
        );
        if now < from || now > until {
            return Err(unverified(format!(
                "the signing certificate {url} is outside its validity period"
            )));
        }
        let spki = tbs.subject_public_key_info();
        if spki.algorithm.oid.to_string() != RSA_ENCRYPTION {
            return Err(unverified(format!(
                "the signing certificate {url} does not hold an RSA key"
            )));
        }
        let key = spki.subject_public_key.raw_bytes().to_vec();
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(url.to_string(), (key.clone(), until));
        }
        Ok(key)
    }

    /// Verifies one message body (see the module documentation).
    pub async fn verify(&self, body: &[u8]) -> Result<VerifiedSns, EventAuthError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| unverified(format!("the body is not an SNS JSON message: {e}")))?;
        let ty = field(&v, "Type")?;
        let kind = match ty {
            "Notification" => SnsType::Notification,
            "SubscriptionConfirmation" => SnsType::SubscriptionConfirmation,
            "UnsubscribeConfirmation" => SnsType::UnsubscribeConfirmation,
            other => return Err(unverified(format!("unknown SNS message Type {other:?}"))),
        };
        let alg: &'static dyn aws_lc_rs::signature::VerificationAlgorithm =
            match field(&v, "SignatureVersion")? {
                "1" => &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                "2" => &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
                other => {
                    return Err(unverified(format!(
                        "SignatureVersion {other:?} is not 1 or 2"
                    )))
                }
            };
        let signature = base64::engine::general_purpose::STANDARD
            .decode(field(&v, "Signature")?.trim())
            .map_err(|e| unverified(format!("Signature is not base64: {e}")))?;
        let topic = field(&v, "TopicArn")?.to_owned();
        let (_, topic_name) = self.check_topic(&topic)?;
        let cert_url = self.check_url(field(&v, "SigningCertURL")?, "SigningCertURL")?;
        if !cert_url.path().ends_with(".pem") {
            return Err(unverified("SigningCertURL does not name a .pem file"));
        }
        let text = string_to_sign(&v)?;
        let key = self.key(&cert_url).await?;
        aws_lc_rs::signature::UnparsedPublicKey::new(alg, &key)
            .verify(text.as_bytes(), &signature)
            .map_err(|_| unverified("the signature does not match the message"))?;
        let subscribe_url = match kind {
            SnsType::SubscriptionConfirmation => {
                Some(self.check_url(field(&v, "SubscribeURL")?, "SubscribeURL")?)
            }
            _ => None,
        };
        if kind == SnsType::Notification {
            // The notification must be about the topic's own product.
            let inner: Value = serde_json::from_str(field(&v, "Message")?)
                .map_err(|e| unverified(format!("Message is not JSON: {e}")))?;
            let code = inner
                .get("product-code")
                .and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or_default();
            if code.is_empty() || !topic_name.ends_with(&format!("-{code}")) {
                return Err(unverified(format!(
                    "the notification's product-code {code:?} is not the one of its topic {topic_name:?}"
                )));
            }
        }
        Ok(VerifiedSns {
            kind,
            message_id: field(&v, "MessageId")?.to_owned(),
            envelope: v,
            topic_arn: topic,
            subscribe_url,
        })
    }

    /// Confirms a verified `SubscriptionConfirmation`: GETs its `SubscribeURL`.
    pub async fn confirm(&self, m: &VerifiedSns) -> Result<(), EventAuthError> {
        let Some(url) = &m.subscribe_url else {
            return Err(unverified("not a SubscriptionConfirmation"));
        };
        let answer = self.http.get(url.clone()).send().await.map_err(|e| {
            EventAuthError::Unavailable(format!(
                "cannot confirm the subscription to {}: {}",
                m.topic_arn,
                crate::submit::token::error_chain(&e)
            ))
        })?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(EventAuthError::Unavailable(format!(
                "SNS answered HTTP {} to the confirmation of {}",
                answer.status().as_u16(),
                m.topic_arn
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sns_hosts() {
        assert!(is_sns_host("sns.us-east-1.amazonaws.com"));
        assert!(is_sns_host("sns.cn-north-1.amazonaws.com.cn"));
        assert!(!is_sns_host("sns.us-east-1.amazonaws.com.evil.example"));
        assert!(!is_sns_host("evilsns.us-east-1.amazonaws.com"));
        assert!(!is_sns_host("sns..amazonaws.com"));
        assert!(!is_sns_host("s3.us-east-1.amazonaws.com"));
        assert!(!is_sns_host("sns.us-east-1.amazonaws.com:443"));
    }

    #[test]
    fn string_to_sign_orders_fields_and_skips_a_missing_subject() {
        let v = serde_json::json!({
            "Type": "Notification", "MessageId": "m", "TopicArn": "t", "Message": "x\ny",
            "Timestamp": "2026-01-01T00:00:00.000Z", "Signature": "s", "SignatureVersion": "1"
        });
        assert_eq!(
            string_to_sign(&v).unwrap(),
            "Message\nx\ny\nMessageId\nm\nTimestamp\n2026-01-01T00:00:00.000Z\nTopicArn\nt\nType\nNotification\n"
        );
        let mut c = v.clone();
        c["Type"] = "SubscriptionConfirmation".into();
        c["Token"] = "tok".into();
        c["SubscribeURL"] = "https://sns.us-east-1.amazonaws.com/?a".into();
        assert_eq!(
            string_to_sign(&c).unwrap(),
            "Message\nx\ny\nMessageId\nm\nSubscribeURL\nhttps://sns.us-east-1.amazonaws.com/?a\nTimestamp\n2026-01-01T00:00:00.000Z\nToken\ntok\nTopicArn\nt\nType\nSubscriptionConfirmation\n"
        );
    }
}
