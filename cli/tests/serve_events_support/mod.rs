//! Shared pieces of the event endpoint tests: a test certificate authority, SNS-signed
//! messages (signature versions 1 and 2), the loopback SNS certificate host
//! (tests/peers/sns_cert_host.py), test OIDC keys and tokens, and a contract store.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Child;

use aws_lc_rs::signature::{self, KeyPair as _, RsaKeyPair};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, RsaKeySize, PKCS_RSA_SHA256,
};
use serde_json::{json, Value};

#[path = "../submit_support/mod.rs"]
pub mod submit_support;

/// The AWS Marketplace topic of the fixtures' product.
pub const TOPIC: &str =
    "arn:aws:sns:us-east-1:287250355862:aws-mp-subscription-notification-7ab3k2example9p2kmq1n5s8";

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// An event fixture of tests/events/.
pub fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(root().join("tests/events").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A test CA, the SNS signing key and certificate it issued, and a TLS server certificate for
/// 127.0.0.1 / localhost, all written as PEM files into `dir`.
pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The CA certificate (the trust root to configure).
    pub ca_pem: PathBuf,
    /// The SNS signing key (PEM): signs messages.
    pub signing_key: String,
    /// A second key (PEM), not the certificate's, for forged signatures.
    pub other_key: String,
    /// Directory the cert host serves `.pem` files from.
    pub served: PathBuf,
    /// The TLS server certificate and key files of the cert host.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// The name of the signing certificate file, as SNS names them.
pub const CERT_NAME: &str = "SimpleNotificationService-0123456789abcdef0123456789abcdef.pem";

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let served = dir.path().join("served");
        std::fs::create_dir_all(&served).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "metergate test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let signing = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).unwrap();
        let mut sp = CertificateParams::new(vec!["sns.amazonaws.com".to_owned()]).unwrap();
        sp.distinguished_name
            .push(DnType::CommonName, "sns.amazonaws.com");
        let signing_cert = sp.signed_by(&signing, &issuer).unwrap();
        std::fs::write(served.join(CERT_NAME), signing_cert.pem()).unwrap();
        // A certificate whose validity ended: served under another name.
        let mut old = CertificateParams::new(vec!["sns.amazonaws.com".to_owned()]).unwrap();
        old.not_before = rcgen::date_time_ymd(2020, 1, 1);
        old.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let old_cert = old.signed_by(&signing, &issuer).unwrap();
        std::fs::write(
            served.join("SimpleNotificationService-expired.pem"),
            old_cert.pem(),
        )
        .unwrap();

        let server_key = KeyPair::generate().unwrap();
        let srv =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let server_cert = srv.signed_by(&server_key, &issuer).unwrap();
        let ca_pem = dir.path().join("ca.pem");
        std::fs::write(&ca_pem, ca_cert.pem()).unwrap();
        let server_cert_path = dir.path().join("server.pem");
        let server_key_path = dir.path().join("server.key");
        std::fs::write(&server_cert_path, server_cert.pem()).unwrap();
        std::fs::write(&server_key_path, server_key.serialize_pem()).unwrap();
        let other = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).unwrap();
        Pki {
            ca_pem,
            signing_key: signing.serialize_pem(),
            other_key: other.serialize_pem(),
            served,
            server_cert: server_cert_path,
            server_key: server_key_path,
            dir,
        }
    }
}

/// The SNS string to sign, written here independently of the code under test (AWS's
/// documented field lists).
pub fn string_to_sign(v: &Value) -> String {
    let names: &[&str] = if v["Type"] == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let mut s = String::new();
    for n in names {
        if let Some(x) = v.get(*n).and_then(Value::as_str) {
            s.push_str(&format!("{n}\n{x}\n"));
        }
    }
    s
}

/// RSA PKCS #1 v1.5 signature of `msg` with a PEM key: SHA1 (`version` 1) or SHA256 (2),
/// made by the `openssl` command (another implementation than the one under test; aws-lc-rs
/// has no SHA1 signing).
pub fn rsa_sign(key_pem: &str, version: u8, msg: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, key_pem).unwrap();
    let digest = if version == 1 { "-sha1" } else { "-sha256" };
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", digest, "-sign"])
        .arg(&key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the openssl command signs the test messages");
    child.stdin.take().unwrap().write_all(msg).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// Sets `SigningCertURL`, `SignatureVersion` and `Signature` of an SNS message.
pub fn sign_sns(mut v: Value, key: &str, version: u8, cert_url: &str) -> Value {
    v["SigningCertURL"] = cert_url.into();
    v["SignatureVersion"] = version.to_string().into();
    let sig = rsa_sign(key, version, string_to_sign(&v).as_bytes());
    v["Signature"] = base64::engine::general_purpose::STANDARD.encode(sig).into();
    v
}

/// A SubscriptionConfirmation for `TOPIC`, with its SubscribeURL on `host_base`.
pub fn subscription_confirmation(host_base: &str, token: &str) -> Value {
    json!({
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": token,
        "TopicArn": TOPIC,
        "Message": format!("You have chosen to subscribe to the topic {TOPIC}.\nTo confirm the subscription, visit the SubscribeURL included in this message."),
        "SubscribeURL": format!("{host_base}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token={token}"),
        "Timestamp": "2026-03-10T10:00:00.000Z",
    })
}

/// The loopback SNS host (tests/peers/sns_cert_host.py) over HTTPS with the test CA.
pub struct CertHost {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl CertHost {
    pub fn start(pki: &Pki) -> CertHost {
        let (child, port, log, dir) = submit_support::start_fake(
            "sns_cert_host.py",
            &[
                "--dir",
                pki.served.to_str().unwrap(),
                "--cert",
                pki.server_cert.to_str().unwrap(),
                "--key",
                pki.server_key.to_str().unwrap(),
            ],
        );
        CertHost {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    /// `https://localhost:PORT`.
    pub fn base(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// The signing certificate's URL.
    pub fn cert_url(&self) -> String {
        format!("{}/{CERT_NAME}", self.base())
    }

    /// Logged requests of a type (`cert`, `confirm`).
    pub fn requests(&self, kind: &str) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == kind)
            .collect()
    }
}

impl Drop for CertHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Test OIDC keys: a JWKS file and a signer of Google-like ID tokens.
pub struct Oidc {
    pub dir: tempfile::TempDir,
    pub jwks: PathBuf,
    key: String,
    other: String,
}

pub const KID: &str = "test-kid-1";
pub const AUDIENCE: &str = "https://metergate.example/v1/events/gcp";
pub const PUSH_SA: &str = "pubsub-push@example-project.iam.gserviceaccount.com";

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl Oidc {
    pub fn new() -> Oidc {
        let dir = tempfile::tempdir().unwrap();
        let kp = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).unwrap();
        let key = kp.serialize_pem();
        let other = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)
            .unwrap()
            .serialize_pem();
        let pair = RsaKeyPair::from_pkcs8(&kp.serialize_der()).unwrap();
        let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let jwks = json!({"keys": [{
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": KID,
            "n": b64url(&c.n), "e": b64url(&c.e),
        }]});
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, jwks.to_string()).unwrap();
        Oidc {
            dir,
            jwks: path,
            key,
            other,
        }
    }

    /// Claims of a good token, issued now for an hour.
    pub fn claims(&self) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": "https://accounts.google.com",
            "aud": AUDIENCE,
            "azp": "1234567890",
            "sub": "1234567890",
            "email": PUSH_SA,
            "email_verified": true,
            "iat": now,
            "exp": now + 3600,
        })
    }

    /// An RS256 JWT of `claims`, signed with the JWKS key (or another key when `forged`).
    pub fn token(&self, claims: &Value, forged: bool) -> String {
        let header = json!({"alg": "RS256", "kid": KID, "typ": "JWT"});
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let key = if forged { &self.other } else { &self.key };
        let sig = rsa_sign(key, 2, input.as_bytes());
        format!("{input}.{}", b64url(&sig))
    }
}

/// A ledger with tests/events/contracts.json imported, via `metergate contracts import`.
pub fn store_with_contracts(dir: &Path) -> PathBuf {
    let ledger = dir.join("ledger.db");
    import_contracts(&ledger, &root().join("tests/events/contracts.json"));
    ledger
}

/// `metergate contracts import FILE` into `ledger`.
pub fn import_contracts(ledger: &Path, file: &Path) {
    let out = submit_support::metergate_cmd()
        .env("METERGATE_LEDGER", ledger)
        .args(["contracts", "import"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (status, cancelled_at) of a stored contract, by customer key.
pub fn contract_state(ledger: &Path, customer: &str) -> (String, Option<String>) {
    let mut store = metergate::contracts::store::Store::open_existing(ledger).unwrap();
    let all = store.all().unwrap();
    let c = &all
        .iter()
        .find(|s| s.contract.customer == customer)
        .unwrap()
        .contract;
    let v = serde_json::to_value(c).unwrap();
    (
        v["status"].as_str().unwrap().to_owned(),
        v["cancelled_at"].as_str().map(str::to_owned),
    )
}

/// How many history rows the store holds.
pub fn history_len(ledger: &Path) -> usize {
    let conn = rusqlite::Connection::open(ledger).unwrap();
    conn.query_row("SELECT COUNT(*) FROM contract_history", [], |r| {
        r.get::<_, i64>(0)
    })
    .unwrap() as usize
}
