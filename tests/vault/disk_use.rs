//! What keeps the vault's disk use bounded: the token endpoint's budget per brand, expired
//! token ids pruned as they expire, the audit log's retention with its signed checkpoint, and
//! what the owner is shown of it all.

use std::time::Duration;

use serde_json::Value;

use crate::kit::brand::{Brand, onboard};
use crate::kit::grant::InProcessApp;

/// Asks for a client-credentials token; returns the status, `Retry-After` and the body.
async fn ask_token(app: &InProcessApp, brand: &Brand) -> (u16, Option<u64>, Value) {
    let res = brand
        .oauth_post(app, "/oauth/token", &[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    (status, retry, res.json().await.unwrap())
}

#[tokio::test]
async fn the_token_endpoint_budgets_each_brand() {
    let (app, owner) = InProcessApp::ready().await;
    let (greedy, _) = onboard(&app, &owner, "Greedy").await;
    let (honest, _) = onboard(&app, &owner, "Honest").await;
    let burst = vrm_vault::service::token_budget::TOKEN_BURST;
    for n in 0..burst {
        let (status, _, body) = ask_token(&app, &greedy).await;
        assert_eq!(status, 200, "token {n}: {body}");
    }
    let (status, retry, body) = ask_token(&app, &greedy).await;
    assert_eq!(status, 429, "{body}");
    // RFC 6749's error shape, and when to come back.
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("tokens")
    );
    assert_eq!(retry, Some(10));
    // Another brand's budget is its own.
    let (status, _, body) = ask_token(&app, &honest).await;
    assert_eq!(status, 200, "{body}");
    // Waiting as told lets exactly one more through.
    app.advance(Duration::from_secs(10));
    assert_eq!(ask_token(&app, &greedy).await.0, 200);
    assert_eq!(ask_token(&app, &greedy).await.0, 429);
}
