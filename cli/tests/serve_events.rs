//! Verification of marketplace lifecycle events (`metergate serve`'s `/v1/events/*`), as
//! library calls against real counterparts: SNS messages signed by a test CA's certificate
//! and served from a loopback HTTPS SNS host; Google-style OIDC tokens with a test JWKS; the
//! Microsoft Get Operation call against the SaaS fulfillment fake.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod serve_events_support;

use metergate::agent::events::{
    self, pubsub::OidcConfig, sns::SnsConfig, EventAuthError, EventsConfig, Verifiers,
};
use serde_json::{json, Value};
use serve_events_support::*;

fn sns_config(pki: &Pki) -> SnsConfig {
    SnsConfig {
        cert_hosts: vec!["localhost".into()],
        trust_roots: Some(pki.ca_pem.clone()),
        ..Default::default()
    }
}

fn verifiers(pki: &Pki, oidc: Option<&Oidc>) -> Verifiers {
    Verifiers::new(EventsConfig {
        aws: sns_config(pki),
        gcp: OidcConfig {
            audience: oidc.map(|_| AUDIENCE.to_owned()),
            jwks_file: oidc.map(|o| o.jwks.clone()),
            email: Some(PUSH_SA.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap()
}

fn unverified<T: std::fmt::Debug>(r: Result<T, EventAuthError>) {
    match r {
        Err(EventAuthError::Unverified(_)) => {}
        other => panic!("expected Unverified, got {other:?}"),
    }
}

#[tokio::test]
async fn sns_signatures_v1_and_v2_verify_and_forgeries_do_not() {
    let pki = Pki::new();
    let host = CertHost::start(&pki);
    let v = verifiers(&pki, None);
    let msg = fixture("aws-sns-unsubscribe-success.json");
    for version in [1, 2] {
        let signed = sign_sns(msg.clone(), &pki.signing_key, version, &host.cert_url());
        let ok = v.aws.verify(signed.to_string().as_bytes()).await.unwrap();
        assert_eq!(ok.kind, events::sns::SnsType::Notification);

        // Tampered message: the signature no longer matches.
        let mut t = signed.clone();
        t["Message"] = t["Message"]
            .as_str()
            .unwrap()
            .replace("Xk8JmQ2pLz9", "SomeoneElse")
            .into();
        unverified(v.aws.verify(t.to_string().as_bytes()).await);
        // Forged: signed with a key that is not the certificate's.
        let f = sign_sns(msg.clone(), &pki.other_key, version, &host.cert_url());
        unverified(v.aws.verify(f.to_string().as_bytes()).await);
        // The right key but a v1 signature labelled v2 (and the other way round).
        let mut swapped = signed.clone();
        swapped["SignatureVersion"] = if version == 1 { "2" } else { "1" }.into();
        unverified(v.aws.verify(swapped.to_string().as_bytes()).await);
    }
    // The certificate was fetched once and then cached.
    assert_eq!(host.requests("cert").len(), 1);
    // SignatureVersion 3 does not exist.
    let mut s = sign_sns(msg.clone(), &pki.signing_key, 2, &host.cert_url());
    s["SignatureVersion"] = "3".into();
    unverified(v.aws.verify(s.to_string().as_bytes()).await);
}

#[tokio::test]
async fn sns_certificate_hosts_and_topics_are_checked() {
    let pki = Pki::new();
    let host = CertHost::start(&pki);
    let v = verifiers(&pki, None);
    let msg = fixture("aws-sns-subscribe-success.json");
    let signed = |url: &str| sign_sns(msg.clone(), &pki.signing_key, 2, url).to_string();
    // A host that is neither sns.<region>.amazonaws.com nor configured.
    let wrong_host = format!("https://127.0.0.1:{}/{CERT_NAME}", host.port);
    unverified(v.aws.verify(signed(&wrong_host).as_bytes()).await);
    // http is refused unless explicitly allowed for a loopback test host.
    let http = format!("http://localhost:{}/{CERT_NAME}", host.port);
    unverified(v.aws.verify(signed(&http).as_bytes()).await);
    // Not a .pem.
    let not_pem = format!("{}/cert.txt", host.base());
    unverified(v.aws.verify(signed(&not_pem).as_bytes()).await);
    // A certificate outside its validity period.
    let expired = format!("{}/SimpleNotificationService-expired.pem", host.base());
    unverified(v.aws.verify(signed(&expired).as_bytes()).await);
    // The production host rule without a test host: sns.<region>.amazonaws.com only.
    assert!(events::sns::is_sns_host("sns.us-east-1.amazonaws.com"));
    assert!(!events::sns::is_sns_host(
        "sns.us-east-1.amazonaws.com.evil.example"
    ));

    // Without the test CA as root, the TLS fetch of the certificate fails: not verified.
    let no_roots = Verifiers::new(EventsConfig {
        aws: SnsConfig {
            cert_hosts: vec!["localhost".into()],
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    match no_roots
        .aws
        .verify(signed(&host.cert_url()).as_bytes())
        .await
    {
        Err(EventAuthError::Unavailable(_)) => {}
        other => panic!("expected the TLS fetch to fail, got {other:?}"),
    }

    // A topic of another account, validly signed by SNS: refused.
    let mut other = msg.clone();
    other["TopicArn"] =
        "arn:aws:sns:us-east-1:111122223333:aws-mp-subscription-notification-7ab3k2example9p2kmq1n5s8"
            .into();
    let o = sign_sns(other, &pki.signing_key, 2, &host.cert_url());
    unverified(v.aws.verify(o.to_string().as_bytes()).await);
    // A Marketplace topic of another product than the message's.
    let mut cross = msg.clone();
    cross["TopicArn"] =
        "arn:aws:sns:us-east-1:287250355862:aws-mp-subscription-notification-otherproduct".into();
    let c = sign_sns(cross, &pki.signing_key, 2, &host.cert_url());
    unverified(v.aws.verify(c.to_string().as_bytes()).await);
}

#[tokio::test]
async fn sns_subscription_confirmation_is_verified_then_confirmed() {
    let pki = Pki::new();
    let host = CertHost::start(&pki);
    let v = verifiers(&pki, None);
    let dir = tempfile::tempdir().unwrap();
    let ledger = store_with_contracts(dir.path());
    let conf = subscription_confirmation(&host.base(), "tok-123");
    let signed = sign_sns(conf.clone(), &pki.signing_key, 1, &host.cert_url());
    let r = events::handle_aws(&v, ledger.clone(), signed.to_string().as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["outcome"], "subscription-confirmed");
    let confirms = host.requests("confirm");
    assert_eq!(confirms.len(), 1);
    assert_eq!(confirms[0]["token"], "tok-123");
    assert_eq!(confirms[0]["topic"], TOPIC);

    // A forged confirmation is not confirmed.
    let mut forged = signed.clone();
    forged["Token"] = "tok-evil".into();
    let r = events::handle_aws(&v, ledger.clone(), forged.to_string().as_bytes()).await;
    assert_eq!(r.status, 401);
    // A signed confirmation whose SubscribeURL points elsewhere is not followed.
    let mut away = conf.clone();
    away["SubscribeURL"] = "https://attacker.example/?Action=ConfirmSubscription".into();
    let away = sign_sns(away, &pki.signing_key, 2, &host.cert_url());
    let r = events::handle_aws(&v, ledger, away.to_string().as_bytes()).await;
    assert_eq!(r.status, 401);
    assert_eq!(host.requests("confirm").len(), 1);
}

#[tokio::test]
async fn sns_notifications_apply_like_contracts_event_and_forgeries_change_nothing() {
    let pki = Pki::new();
    let host = CertHost::start(&pki);
    let v = verifiers(&pki, None);
    let dir = tempfile::tempdir().unwrap();
    let ledger = store_with_contracts(dir.path());
    let before = history_len(&ledger);
    let msg = fixture("aws-sns-unsubscribe-success.json");

    // Forged and tampered: 401, nothing recorded.
    let forged = sign_sns(msg.clone(), &pki.other_key, 2, &host.cert_url());
    let r = events::handle_aws(&v, ledger.clone(), forged.to_string().as_bytes()).await;
    assert_eq!((r.status, r.changed, r.wake.is_some()), (401, false, false));
    assert_eq!(contract_state(&ledger, "cust-acme").0, "active");
    assert_eq!(history_len(&ledger), before);

    // Signed: applied, the contract is cancelled at the event time, and its records wake.
    let signed = sign_sns(msg.clone(), &pki.signing_key, 1, &host.cert_url());
    let r = events::handle_aws(&v, ledger.clone(), signed.to_string().as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["outcome"], "applied");
    assert!(r.changed);
    let w = r.wake.unwrap();
    assert_eq!(
        (w.product.as_str(), w.customer.as_str()),
        ("7ab3k2example9p2kmq1n5s8", "cust-acme")
    );
    assert_eq!(
        contract_state(&ledger, "cust-acme"),
        ("cancelled".into(), Some("2026-03-10T11:02:13Z".into()))
    );
    // A redelivery is a replay: 200, nothing new.
    let n = history_len(&ledger);
    let r = events::handle_aws(&v, ledger.clone(), signed.to_string().as_bytes()).await;
    assert_eq!(
        (r.status, r.body["outcome"].clone()),
        (200, json!("replay"))
    );
    assert!(!r.changed);
    assert_eq!(history_len(&ledger), n);

    // A genuine notification for a customer the store does not hold: 202, nothing changes.
    let mut unknown = msg.clone();
    unknown["MessageId"] = "11111111-0f6d-5e7b-9a1c-2d3e4f5a6b05".into();
    unknown["Message"] = json!({"action": "unsubscribe-success", "customer-identifier": "NotStored1", "product-code": "7ab3k2example9p2kmq1n5s8"}).to_string().into();
    let unknown = sign_sns(unknown, &pki.signing_key, 2, &host.cert_url());
    let r = events::handle_aws(&v, ledger.clone(), unknown.to_string().as_bytes()).await;
    assert_eq!(
        (r.status, r.body["outcome"].clone()),
        (202, json!("no-contract"))
    );
    assert_eq!(history_len(&ledger), n);
}

#[tokio::test]
async fn pubsub_tokens_are_checked_for_signature_audience_time_and_account() {
    let pki = Pki::new();
    let oidc = Oidc::new();
    let v = verifiers(&pki, Some(&oidc));
    let g = v.gcp.as_ref().unwrap();
    let good = oidc.token(&oidc.claims(), false);
    g.verify(Some(&format!("Bearer {good}"))).await.unwrap();

    let bad = |f: &dyn Fn(&mut Value)| {
        let mut c = oidc.claims();
        f(&mut c);
        format!("Bearer {}", oidc.token(&c, false))
    };
    unverified(g.verify(None).await);
    unverified(g.verify(Some("Basic abc")).await);
    unverified(
        g.verify(Some(&format!(
            "Bearer {}",
            oidc.token(&oidc.claims(), true)
        )))
        .await,
    );
    unverified(
        g.verify(Some(&bad(&|c| {
            c["aud"] = "https://other.example/push".into()
        })))
        .await,
    );
    let now = chrono::Utc::now().timestamp();
    unverified(
        g.verify(Some(&bad(&|c| {
            c["iat"] = (now - 7200).into();
            c["exp"] = (now - 3600).into();
        })))
        .await,
    );
    // Inside the leeway (60 s): still good.
    g.verify(Some(&bad(&|c| c["exp"] = (now - 10).into())))
        .await
        .unwrap();
    unverified(
        g.verify(Some(&bad(&|c| c["iat"] = (now + 3600).into())))
            .await,
    );
    unverified(
        g.verify(Some(&bad(&|c| c["iss"] = "https://evil.example".into())))
            .await,
    );
    unverified(
        g.verify(Some(&bad(&|c| c["email"] = "someone@example.com".into())))
            .await,
    );
    // The token's payload tampered after signing.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut c = oidc.claims();
    c["aud"] = AUDIENCE.into();
    c["email"] = "x@y".into();
    parts[1] = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        c.to_string(),
    );
    unverified(g.verify(Some(&format!("Bearer {}", parts.join(".")))).await);
}

#[tokio::test]
async fn pubsub_push_applies_only_with_a_good_token() {
    let pki = Pki::new();
    let oidc = Oidc::new();
    let v = verifiers(&pki, Some(&oidc));
    let dir = tempfile::tempdir().unwrap();
    let ledger = store_with_contracts(dir.path());
    let before = history_len(&ledger);
    let push = fixture("gcp-push-entitlement-cancelled.json").to_string();
    let mut expired = oidc.claims();
    expired["exp"] = (chrono::Utc::now().timestamp() - 3600).into();
    for auth in [
        format!("Bearer {}", oidc.token(&expired, false)),
        format!("Bearer {}", oidc.token(&oidc.claims(), true)),
    ] {
        let r = events::handle_gcp(&v, ledger.clone(), Some(&auth), push.as_bytes()).await;
        assert_eq!(r.status, 401);
    }
    assert_eq!(history_len(&ledger), before);
    assert_eq!(contract_state(&ledger, "cust-initech").0, "active");
    let auth = format!("Bearer {}", oidc.token(&oidc.claims(), false));
    let r = events::handle_gcp(&v, ledger.clone(), Some(&auth), push.as_bytes()).await;
    assert_eq!(
        (r.status, r.body["outcome"].clone()),
        (200, json!("applied"))
    );
    assert!(r.wake.is_some());
    assert_eq!(
        contract_state(&ledger, "cust-initech"),
        ("cancelled".into(), Some("2026-03-13T20:00:00Z".into()))
    );
    // Without an audience configured, the endpoint is off.
    let off = verifiers(&pki, None);
    let r = events::handle_gcp(&off, ledger, Some(&auth), push.as_bytes()).await;
    assert_eq!(r.status, 404);
}
