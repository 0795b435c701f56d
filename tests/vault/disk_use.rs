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

/// `GET /api/v1/storage` as the owner.
async fn storage(app: &InProcessApp, owner: &str) -> Value {
    let res = app
        .client
        .get(format!("{}/api/v1/storage", app.base))
        .bearer_auth(owner)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn part<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["part"] == name)
        .unwrap_or_else(|| panic!("no part {name} in {report}"))
}

/// Waits (in real time, briefly) for the background worker to bring the token ids to `count`.
async fn token_ids_become(app: &InProcessApp, owner: &str, count: u64) {
    for _ in 0..100 {
        if part(&storage(app, owner).await, "tokens")["count"] == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "token ids never became {count}: {}",
        storage(app, owner).await
    );
}

#[tokio::test]
async fn expired_token_ids_are_forgotten_at_their_deadline_without_a_restart() {
    let (app, owner) = InProcessApp::ready().await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    assert_eq!(part(&storage(&app, &owner).await, "tokens")["count"], 0);
    let first = brand.access_token(&app).await;
    app.advance(Duration::from_secs(600));
    let second = brand.access_token(&app).await;
    token_ids_become(&app, &owner, 2).await;
    // The first token's 15 minutes are up; the second has 10 left.
    app.advance(Duration::from_secs(301));
    token_ids_become(&app, &owner, 1).await;
    assert_eq!(
        crate::kit::brand::brand_call(&app, &first).await.status(),
        401
    );
    assert_eq!(
        crate::kit::brand::brand_call(&app, &second).await.status(),
        200
    );
    app.advance(Duration::from_secs(600));
    token_ids_become(&app, &owner, 0).await;
}
