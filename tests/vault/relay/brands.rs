//! Brand admission and identity at the relay: `vrm-vault relay admit` checks and stores a
//! brand's name and keys, the relay publishes them, and a brand gets relay tokens only with a
//! fresh client assertion signed by its admitted signing key (RFC 7523).

use std::time::Duration;

use serde_json::json;

use crate::kit::brand::{ASSERTION_TYPE, ClientKey};
use crate::kit::relay::{AdmittedBrand, BrandKeys, Nats, RelayApp, admit_command};

async fn ready_relay(nats: &Nats) -> RelayApp {
    let relay = RelayApp::start(&nats.url(), |_| {});
    assert!(
        relay.wait_ready(200, Duration::from_secs(20)).await,
        "not ready; log:\n{}",
        relay.log()
    );
    relay
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admitted_brand_is_published_with_its_public_keys_only() {
    let nats = Nats::start();
    let relay = ready_relay(&nats).await;
    let brand = AdmittedBrand::admit(&nats, "Chez Lulu");
    assert!(brand.client_id.starts_with("rb_"), "{}", brand.client_id);

    let (status, body) = relay
        .get_json(&format!("/relay/v1/brands/{}", brand.client_id), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "Chez Lulu");
    assert_eq!(body["client_id"], brand.client_id.as_str());
    let keys = body["jwks"]["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    let uses: Vec<&str> = keys.iter().map(|k| k["use"].as_str().unwrap()).collect();
    assert_eq!(uses, ["sig", "enc"]);
    assert_eq!(keys[0]["x"], brand.keys.signing.public_jwk()["x"]);
    assert_eq!(keys[1]["x"], brand.keys.encryption.public_jwk()["x"]);

    let other = AdmittedBrand::admit(&nats, "Pizzeria Nord");
    let (status, list) = relay.get_json("/relay/v1/brands", None).await;
    assert_eq!(status, 200);
    let mut ids: Vec<&str> = list["brands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["client_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut want = vec![brand.client_id.as_str(), other.client_id.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);

    for unknown in ["rb_00000000000000000000000000000000", "nope", "rb_a.b"] {
        let (status, body) = relay
            .get_json(&format!("/relay/v1/brands/{unknown}"), None)
            .await;
        assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_refuses_key_sets_a_relay_must_not_publish() {
    let nats = Nats::start();
    let keys = BrandKeys::generate("b");
    let only_signing = json!({"keys": [keys.signing.public_jwk()]});
    let mut with_private = keys.jwks();
    with_private["keys"][0]["d"] = json!("c2VjcmV0");
    let mut off_curve = keys.jwks();
    off_curve["keys"][1]["y"] = off_curve["keys"][0]["y"].clone();
    let cases = [
        (only_signing, "encryption key"),
        (with_private, "private key material"),
        (off_curve, "not a point on P-256"),
    ];
    for (jwks, why) in cases {
        let (ok, stdout, stderr) = admit_command(&nats.url(), "Bad Keys", &jwks);
        assert!(!ok, "admitted {jwks}: {stdout}");
        assert!(stderr.contains(why), "stderr should say {why}: {stderr}");
    }
    let (ok, _, stderr) = admit_command(&nats.url(), " ", &keys.jwks());
    assert!(!ok && stderr.contains("name"), "{stderr}");

    // Nothing refused was stored.
    let relay = ready_relay(&nats).await;
    let (_, list) = relay.get_json("/relay/v1/brands", None).await;
    assert_eq!(list["brands"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admit_fails_clearly_without_nats() {
    let mut nats = Nats::start();
    nats.stop();
    let keys = BrandKeys::generate("b");
    let (ok, _, stderr) = admit_command(&nats.url(), "Nobody Home", &keys.jwks());
    assert!(!ok);
    assert!(stderr.contains("NATS"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brands_get_tokens_with_a_fresh_assertion_by_their_signing_key() {
    let nats = Nats::start();
    // Two instances behind one public URL, as in production: an assertion is for that URL.
    let public = |cmd: &mut std::process::Command| {
        cmd.args(["--public-url", "https://relay.example"]);
    };
    let relay = RelayApp::start(&nats.url(), public);
    let other_instance = RelayApp::start(&nats.url(), public);
    for instance in [&relay, &other_instance] {
        assert!(instance.wait_ready(200, Duration::from_secs(20)).await);
    }
    let brand = AdmittedBrand::admit(&nats, "Chez Lulu");
    let endpoint = "https://relay.example/oauth/token".to_owned();

    let (status, meta) = relay
        .get_json("/.well-known/oauth-authorization-server", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(meta["token_endpoint"], endpoint.as_str());
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );

    let assertion = brand.assertion(&endpoint);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion.as_str()),
    ];
    let (status, body) = relay.token_request(&form).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["access_token"]
            .as_str()
            .unwrap()
            .starts_with("vrm_rt_")
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "intents:read offers:write");

    // Used once: the same assertion is refused, on this instance and on another one.
    for instance in [&relay, &other_instance] {
        let (status, body) = instance.token_request(&form).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client"))
        );
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("already used"),
            "{body}"
        );
    }

    // A narrower scope is granted as asked; an unknown one is refused.
    let narrow = brand.assertion(&endpoint);
    let (status, body) = relay
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &narrow),
            ("scope", "intents:read"),
        ])
        .await;
    assert_eq!(
        (status, body["scope"].as_str()),
        (200, Some("intents:read"))
    );
    let (status, body) = relay
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &brand.assertion(&endpoint)),
            ("scope", "data:read"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_misdirected_assertions_are_refused() {
    let nats = Nats::start();
    let relay = ready_relay(&nats).await;
    let brand = AdmittedBrand::admit(&nats, "Chez Lulu");
    let endpoint = relay.url("/oauth/token");
    let client_id = brand.client_id.as_str();
    let now = crate::kit::brand::now();
    let claims = |aud: &str| {
        json!({"iss": client_id, "sub": client_id, "aud": aud, "jti": crate::kit::brand::random_id(),
               "iat": now, "exp": now + 60})
    };
    let stranger = ClientKey::generate(&brand.keys.signing.kid);
    let cases: Vec<(String, &str)> = vec![
        // Signed by a key that is not the brand's, under the brand's kid.
        (
            stranger.sign(Some("JWT"), &brand.keys.signing.kid, &claims(&endpoint)),
            "not valid",
        ),
        // Signed by the brand's encryption key: never a signing key.
        (
            brand
                .keys
                .encryption
                .sign(Some("JWT"), &brand.keys.encryption.kid, &claims(&endpoint)),
            "not valid",
        ),
        // Meant for a vault, not this relay.
        (
            brand.keys.signing.sign(
                Some("JWT"),
                &brand.keys.signing.kid,
                &claims("https://vault.example/oauth/token"),
            ),
            "aud",
        ),
    ];
    for (assertion, why) in cases {
        let (status, body) = relay
            .token_request(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &assertion),
            ])
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client"))
        );
        let said = body["error_description"].as_str().unwrap_or_default();
        assert!(said.contains(why), "{said} should say {why}");
    }

    // No assertion at all, and another grant type.
    let (status, body) = relay
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", "guess"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, body) = relay
        .token_request(&[
            ("grant_type", "password"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &brand.assertion(&endpoint)),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    // An assertion for a brand that was never admitted.
    let ghost = ClientKey::generate("ghost");
    let ghost_id = "rb_11111111111111111111111111111111";
    let (status, body) = relay
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            (
                "client_assertion",
                &ghost.assertion(ghost_id, &endpoint, "j"),
            ),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
}

pub(super) fn operator(nats: &Nats, verb: &str, client_id: &str) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vrm-vault"))
        .args([
            "relay",
            verb,
            "--nats",
            &nats.url(),
            "--client-id",
            client_id,
        ])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_brand_stops_at_once_and_resumes() {
    let nats = Nats::start();
    let relay = ready_relay(&nats).await;
    let brand = AdmittedBrand::admit(&nats, "Chez Lulu");
    let token = relay.token(&brand).await;
    let (status, _) = relay.get_json("/relay/v1/intents", Some(&token)).await;
    assert_eq!(status, 200);

    let (ok, stdout, stderr) = operator(&nats, "suspend", &brand.client_id);
    assert!(ok, "{stderr}");
    let printed: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(printed["status"], "suspended");

    // Its live token stops, it gets no new one, and it is no longer published.
    let (status, body) = relay.get_json("/relay/v1/intents", Some(&token)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
    let endpoint = relay.url("/oauth/token");
    let (status, body) = relay
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &brand.assertion(&endpoint)),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("suspended")
    );
    let (status, _) = relay
        .get_json(&format!("/relay/v1/brands/{}", brand.client_id), None)
        .await;
    assert_eq!(status, 404);
    let (_, list) = relay.get_json("/relay/v1/brands", None).await;
    assert_eq!(list["brands"], json!([]));

    let (ok, _, stderr) = operator(&nats, "resume", &brand.client_id);
    assert!(ok, "{stderr}");
    let token = relay.token(&brand).await;
    let (status, _) = relay.get_json("/relay/v1/intents", Some(&token)).await;
    assert_eq!(status, 200);

    let (ok, _, stderr) = operator(&nats, "suspend", "rb_00000000000000000000000000000000");
    assert!(!ok);
    assert!(stderr.contains("no such brand"), "{stderr}");
}
