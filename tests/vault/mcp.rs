//! `/mcp`, the MCP server the person's own assistant connects to: every request is an agent's,
//! so a client without a valid token learns from the 401 where to get one, and a sealed vault
//! answers 503 in the vault's JSON shape.

use reqwest::Method;
use serde_json::{Value, json};

use crate::kit::brand::{onboard, owner_call};
use crate::support::ready_vault;

/// An MCP `initialize` request, as any client sends it first.
pub fn initialize() -> Value {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test-assistant", "version": "1"}
        }
    })
}

async fn post_mcp(app: &crate::support::TestApp, token: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&initialize());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn mcp_without_an_agent_token_answers_401_naming_the_resource_metadata() {
    let (_dir, app, owner) = ready_vault().await;

    let res = post_mcp(&app, None).await;
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(
        challenge.contains(r#"resource_metadata=""#)
            && challenge.contains("/.well-known/oauth-protected-resource"),
        "{challenge}"
    );
    assert!(
        !challenge.contains("error="),
        "no token, no error code: {challenge}"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token", "{body}");

    // Not a token of this vault's at all.
    let res = post_mcp(&app, Some("not-a-token")).await;
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );

    // A brand's access token is for the brand API, not for the person's assistant.
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let token = brand.access_token(&app).await;
    let res = post_mcp(&app, Some(&token)).await;
    assert_eq!(res.status(), 401, "a brand's token does not open /mcp");

    // The owner's own session token is not an agent's either.
    let res = post_mcp(&app, Some(&owner)).await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn mcp_on_a_sealed_vault_answers_503_in_the_vaults_shape() {
    let (_dir, app, owner) = ready_vault().await;
    let (status, body) = owner_call(&app, &owner, Method::POST, "/api/v1/vault/lock", None).await;
    assert_eq!(status, 204, "{body}");
    let res = post_mcp(&app, Some("some-token")).await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "vault_sealed", "{body}");
}
