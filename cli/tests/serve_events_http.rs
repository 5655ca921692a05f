//! `POST /v1/events/aws|azure|gcp` over real HTTP against the running `metergate serve`:
//! signed and forged events for the three marketplaces (a test CA and a loopback HTTPS SNS
//! host; the SaaS fulfillment fake's Get Operation; test OIDC keys), and the send of a
//! contract's pending records at once after its cancellation, counted at moto.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod serve_events_support;
mod serve_support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use serve_events_support::*;
use serve_support::Server;

const TOKEN: &str = "events-http-token";
const SECRET: &str = "events-http-secret";

fn toml_str(p: &Path) -> String {
    format!("{:?}", p.to_str().unwrap())
}

fn post(s: &Server, path: &str, headers: &[(&str, &str)], body: &Value) -> serve_support::Reply {
    let mut h = vec![("Content-Type", "application/json")];
    h.extend_from_slice(headers);
    s.request("POST", path, &h, body.to_string().as_bytes())
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn signed_events_apply_and_forged_ones_get_401_for_all_three_marketplaces() {
    let pki = Pki::new();
    let host = CertHost::start(&pki);
    let oidc = Oidc::new();
    let unsubscribe = fixture("azure-webhook-unsubscribe.json");
    let op = json!({
        "id": unsubscribe["id"], "activityId": unsubscribe["activityId"],
        "subscriptionId": unsubscribe["subscriptionId"], "offerId": unsubscribe["offerId"],
        "publisherId": unsubscribe["publisherId"], "planId": unsubscribe["planId"],
        "quantity": null, "action": "Unsubscribe", "timeStamp": unsubscribe["timeStamp"],
        "status": "Succeeded",
    });
    let work = tempfile::tempdir().unwrap();
    let state_file = work.path().join("saas.json");
    std::fs::write(
        &state_file,
        json!({"subscriptions": [], "plans": {}, "operations": [op]}).to_string(),
    )
    .unwrap();
    let (child, port, saas_log, _d) = submit_support::start_fake(
        "azure_saas_fake.py",
        &[
            "--client-secret",
            SECRET,
            "--state",
            state_file.to_str().unwrap(),
        ],
    );
    let _saas = KillOnDrop(child);
    let saas = format!("http://127.0.0.1:{port}");

    let config = work.path().join("metergate.toml");
    std::fs::write(
        &config,
        format!(
            "[serve.events.aws]\ncert_hosts = [\"localhost\"]\ntrust_roots = {}\n\n[serve.events.azure]\nendpoint = \"{saas}\"\n\n[serve.events.gcp]\naudience = \"{AUDIENCE}\"\njwks_file = {}\nemail = \"{PUSH_SA}\"\n",
            toml_str(&pki.ca_pem),
            toml_str(&oidc.jwks)
        ),
    )
    .unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let ledger = sdir.path().join("ledger.sqlite");
    import_contracts(&ledger, &root().join("tests/events/contracts.json"));
    let token_url = format!("{saas}/{{tenant}}/oauth2/v2.0/token");
    let s = Server::start_in(
        sdir,
        &[
            "--config",
            config.to_str().unwrap(),
            "--send-interval",
            "1h",
        ],
        &[
            ("METERGATE_API_TOKEN", TOKEN),
            ("AZURE_TENANT_ID", "tenant-1"),
            ("AZURE_CLIENT_ID", "app-1"),
            ("AZURE_CLIENT_SECRET", SECRET),
            ("METERGATE_AZURE_TOKEN_URL", token_url.as_str()),
        ],
    )
    .unwrap();
    let history0 = history_len(&ledger);

    // AWS: forged, tampered and wrong-host messages: 401 and nothing changes.
    let msg = fixture("aws-sns-unsubscribe-success.json");
    let forged = sign_sns(msg.clone(), &pki.other_key, 2, &host.cert_url());
    assert_eq!(post(&s, "/v1/events/aws", &[], &forged).status, 401);
    let mut tampered = sign_sns(msg.clone(), &pki.signing_key, 1, &host.cert_url());
    tampered["Timestamp"] = "2026-03-10T11:02:14.000Z".into();
    assert_eq!(post(&s, "/v1/events/aws", &[], &tampered).status, 401);
    let wrong_host = format!("https://127.0.0.1:{}/{CERT_NAME}", host.port);
    let elsewhere = sign_sns(msg.clone(), &pki.signing_key, 2, &wrong_host);
    assert_eq!(post(&s, "/v1/events/aws", &[], &elsewhere).status, 401);
    // Not JSON at all.
    let r = s.request("POST", "/v1/events/aws", &[], b"not json");
    assert_eq!(r.status, 401);
    assert_eq!(contract_state(&ledger, "cust-acme").0, "active");
    assert_eq!(history_len(&ledger), history0);

    // A signed SubscriptionConfirmation is confirmed at the SNS host.
    let conf = sign_sns(
        subscription_confirmation(&host.base(), "tok-http"),
        &pki.signing_key,
        2,
        &host.cert_url(),
    );
    let r = post(&s, "/v1/events/aws", &[], &conf);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(host.requests("confirm").len(), 1);

    // Signed v1 and v2 notifications (no bearer token: the signature is the auth).
    let v1 = sign_sns(msg.clone(), &pki.signing_key, 1, &host.cert_url());
    let r = post(&s, "/v1/events/aws", &[], &v1);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["outcome"], "applied");
    assert_eq!(contract_state(&ledger, "cust-acme").0, "cancelled");
    let r = post(&s, "/v1/events/aws", &[], &v1);
    assert_eq!(
        (r.status, r.json()["outcome"].clone()),
        (200, json!("replay"))
    );
    let mut resub = fixture("aws-sns-subscribe-success.json");
    resub["Timestamp"] = "2026-04-01T00:00:00.000Z".into();
    let v2 = sign_sns(resub, &pki.signing_key, 2, &host.cert_url());
    let r = post(&s, "/v1/events/aws", &[], &v2);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(contract_state(&ledger, "cust-acme").0, "active");

    // Google: wrong audience, expired, bad signature: 401; a good token applies.
    let push = fixture("gcp-push-entitlement-cancelled.json");
    let mut wrong_aud = oidc.claims();
    wrong_aud["aud"] = "https://other.example/push".into();
    let mut expired = oidc.claims();
    expired["exp"] = (chrono::Utc::now().timestamp() - 3600).into();
    for t in [
        oidc.token(&wrong_aud, false),
        oidc.token(&expired, false),
        oidc.token(&oidc.claims(), true),
    ] {
        let auth = format!("Bearer {t}");
        let r = post(&s, "/v1/events/gcp", &[("Authorization", &auth)], &push);
        assert_eq!(r.status, 401, "{}", r.body);
    }
    // The API token is not an OIDC token.
    let api = format!("Bearer {TOKEN}");
    assert_eq!(
        post(&s, "/v1/events/gcp", &[("Authorization", &api)], &push).status,
        401
    );
    assert_eq!(contract_state(&ledger, "cust-initech").0, "active");
    let auth = format!("Bearer {}", oidc.token(&oidc.claims(), false));
    let r = post(&s, "/v1/events/gcp", &[("Authorization", &auth)], &push);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(contract_state(&ledger, "cust-initech").0, "cancelled");

    // Microsoft: an operation the API does not confirm: 401; the confirmed one applies.
    let mut mismatch = unsubscribe.clone();
    mismatch["action"] = "Reinstate".into();
    assert_eq!(post(&s, "/v1/events/azure", &[], &mismatch).status, 401);
    let mut unknown = unsubscribe.clone();
    unknown["id"] = "8a9b0c1d-0006-4e2f-9a3b-000000000000".into();
    assert_eq!(post(&s, "/v1/events/azure", &[], &unknown).status, 401);
    assert_eq!(contract_state(&ledger, "cust-contoso").0, "active");
    let r = post(&s, "/v1/events/azure", &[], &unsubscribe);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(contract_state(&ledger, "cust-contoso").0, "cancelled");
    let ops = std::fs::read_to_string(&saas_log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("/operations/"))
        .count();
    assert_eq!(ops, 3, "one Get Operation per webhook, counted at the fake");

    // The intake judges with the reloaded contracts: usage of the cancelled Google
    // entitlement dated now is refused.
    let rec = json!({"marketplace": "gcp", "product": "metergate-demo.endpoints.example-project.cloud.goog",
        "customer": "cust-initech", "dimension": "metergate-demo.endpoints.example-project.cloud.goog/requests",
        "quantity": 1, "start_time": metergate_core::time::format_rfc3339(metergate_core::time::hour_floor(chrono::Utc::now()) - chrono::Duration::hours(1))});
    let r = s.post(
        "/v1/usage",
        Some(TOKEN),
        "application/json",
        &rec.to_string(),
    );
    assert_eq!(r.status, 422, "{}", r.body);
}

#[test]
fn a_cancellation_sends_the_contracts_pending_records_at_once() {
    let pki = Pki::new();
    let host = CertHost::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let product = "7ab3k2example9p2kmq1n5s8";
    let subs = work.path().join("subs.json");
    std::fs::write(
        &subs,
        json!({ product: ["cust-acme", "Xk8JmQ2pLz9"] }).to_string(),
    )
    .unwrap();
    let Some(peer) = submit_support::Peer::start(&["--subscribe-file", subs.to_str().unwrap()])
    else {
        return;
    };
    let start = metergate_core::time::hour_floor(chrono::Utc::now()) - chrono::Duration::days(2);
    let contracts = work.path().join("contracts.json");
    std::fs::write(
        &contracts,
        json!([{"marketplace": "aws", "product": product, "customer": "cust-acme",
                "customer_identifier": "Xk8JmQ2pLz9", "status": "active",
                "starts_at": metergate_core::time::format_rfc3339(start),
                "dimensions": [{"name": "api_calls"}]}])
        .to_string(),
    )
    .unwrap();
    let sdir = tempfile::tempdir().unwrap();
    import_contracts(&sdir.path().join("ledger.sqlite"), &contracts);
    let config = work.path().join("metergate.toml");
    std::fs::write(
        &config,
        format!(
            "[serve.events.aws]\ncert_hosts = [\"localhost\"]\ntrust_roots = {}\n",
            toml_str(&pki.ca_pem)
        ),
    )
    .unwrap();
    let peer_url = peer.url();
    let s = Server::start_in(
        sdir,
        &[
            "--config",
            config.to_str().unwrap(),
            "--send-interval",
            "1h",
        ],
        &[
            ("METERGATE_API_TOKEN", TOKEN),
            ("AWS_ENDPOINT_URL", peer_url.as_str()),
        ],
    )
    .unwrap();
    // One record, accepted and pending: the next tick is an hour away.
    let t = metergate_core::time::hour_floor(chrono::Utc::now()) - chrono::Duration::hours(1)
        + chrono::Duration::minutes(5);
    let rec = json!({"marketplace": "aws", "product": product, "customer": "cust-acme",
        "dimension": "api_calls", "quantity": 3, "start_time": metergate_core::time::format_rfc3339(t),
        "record_id": "before-cancel-1"});
    let r = s.post(
        "/v1/usage",
        Some(TOKEN),
        "application/json",
        &rec.to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        peer.records().len(),
        0,
        "nothing is sent before the next tick"
    );

    // unsubscribe-pending, now: the hour after a cancellation is the one sellers miss.
    let mut ev = fixture("aws-sns-unsubscribe-pending.json");
    ev["Timestamp"] = metergate_core::time::format_rfc3339(chrono::Utc::now()).into();
    let ev = sign_sns(ev, &pki.signing_key, 2, &host.cert_url());
    let r = post(&s, "/v1/events/aws", &[], &ev);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["outcome"], "applied");
    let deadline = Instant::now() + Duration::from_secs(30);
    while peer.records().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let got = peer.records();
    assert_eq!(got.len(), 1, "the pending record went out at once: {got:?}");
}
