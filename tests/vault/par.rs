//! Pushed authorization requests (RFC 9126): the brand pushes its authorization request in the
//! back channel and sends the browser with a single-use, short-lived `request_uri`; a client
//! can require that for itself at registration.

use std::time::Duration as StdDuration;

use reqwest::Response;
use serde_json::{Value, json};

use crate::kit::brand::{Brand, invitation_token, register, status_json};
use crate::kit::grant::{
    AuthRequest, InProcessApp, Pkce, REDIRECT_URI, approve, assert_error_redirect, code_brand,
    code_metadata, consent_request, data_details, exchange_ok, location, no_redirects, query_of,
    seed,
};

/// Pushes `request`'s parameters with the brand's client authentication.
async fn push(app: &InProcessApp, brand: &Brand, request: &AuthRequest) -> (u16, Value) {
    let form: Vec<(&str, &str)> = request
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    status_json(
        brand
            .oauth_post(app, "/oauth/par", &form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The browser's request with only `client_id` and `request_uri` (RFC 9126 §4).
async fn authorize_pushed(app: &InProcessApp, client_id: &str, request_uri: &str) -> Response {
    no_redirects()
        .get(format!("{}/oauth/authorize", app.base))
        .query(&[("client_id", client_id), ("request_uri", request_uri)])
        .send()
        .await
        .unwrap()
}

/// A refusal the browser gets, with no redirect to anyone.
async fn assert_no_redirect(res: Response, why: &str) {
    assert!(res.headers().get("location").is_none(), "{why}");
    let (status, body) = status_json(res).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{why}: {body}"
    );
}

#[tokio::test]
async fn a_pushed_request_runs_the_code_flow_once() {
    let (app, owner) = InProcessApp::ready().await;
    seed(&app, &owner).await;
    let (status, metadata) = status_json(
        app.client
            .get(format!(
                "{}/.well-known/oauth-authorization-server",
                app.base
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        metadata["pushed_authorization_request_endpoint"],
        format!("{}/oauth/par", app.base)
    );
    assert_eq!(metadata["require_pushed_authorization_requests"], false);

    let brand = code_brand(&app, &owner, "Acme").await;
    let pkce = Pkce::generate();
    let request = AuthRequest::new(&app, &brand, &pkce, &["contact.email"]);
    let (status, pushed) = push(&app, &brand, &request).await;
    assert_eq!(status, 201, "{pushed}");
    assert_eq!(pushed["expires_in"], 90, "{pushed}");
    let request_uri = pushed["request_uri"].as_str().unwrap().to_owned();
    assert!(
        request_uri.starts_with("urn:ietf:params:oauth:request_uri:"),
        "{pushed}"
    );

    // The browser carries only client_id and request_uri; the consent page opens.
    let res = authorize_pushed(&app, &brand.client_id, &request_uri).await;
    assert_eq!(res.status(), 303);
    let to = location(&app, &res).unwrap();
    assert_eq!(to.path(), "/consent", "{to}");
    let id = query_of(&to)["request"].clone();
    let code = approve(&app, &owner, &id, &request).await;
    let tokens = exchange_ok(&app, &brand, &code, &pkce).await;
    assert!(tokens["access_token"].is_string(), "{tokens}");

    // Used once; and only by the client that pushed it.
    assert_no_redirect(
        authorize_pushed(&app, &brand.client_id, &request_uri).await,
        "a used request_uri",
    )
    .await;
    let (_, pushed) = push(&app, &brand, &request).await;
    let request_uri = pushed["request_uri"].as_str().unwrap().to_owned();
    let other = code_brand(&app, &owner, "Other").await;
    assert_no_redirect(
        authorize_pushed(&app, &other.client_id, &request_uri).await,
        "another client's request_uri",
    )
    .await;
    assert_no_redirect(
        authorize_pushed(
            &app,
            &brand.client_id,
            "urn:ietf:params:oauth:request_uri:nope",
        )
        .await,
        "an unknown request_uri",
    )
    .await;

    // Short-lived: 90 seconds.
    let (_, pushed) = push(&app, &brand, &request).await;
    let request_uri = pushed["request_uri"].as_str().unwrap().to_owned();
    app.advance(StdDuration::from_secs(91));
    assert_no_redirect(
        authorize_pushed(&app, &brand.client_id, &request_uri).await,
        "an expired request_uri",
    )
    .await;
}

#[tokio::test]
async fn a_bad_pushed_request_is_refused_in_the_back_channel() {
    let (app, owner) = InProcessApp::ready().await;
    seed(&app, &owner).await;
    let brand = code_brand(&app, &owner, "Acme").await;
    let pkce = Pkce::generate();
    let cases = [
        (
            AuthRequest::new(&app, &brand, &pkce, &["contact.email"]).without("code_challenge"),
            "invalid_request",
        ),
        (
            AuthRequest::new(&app, &brand, &pkce, &["contact.email"]).set(
                "authorization_details",
                &data_details(&app, &["contact.email"], "dpv:Marketing").to_string(),
            ),
            "invalid_authorization_details",
        ),
        (
            AuthRequest::new(&app, &brand, &pkce, &["contact.email"])
                .set("redirect_uri", "https://elsewhere.example/cb"),
            "invalid_request",
        ),
        (
            AuthRequest::new(&app, &brand, &pkce, &["contact.email"])
                .set("request_uri", "urn:ietf:params:oauth:request_uri:x"),
            "invalid_request",
        ),
    ];
    for (request, error) in cases {
        let (status, body) = push(&app, &brand, &request).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(error)),
            "{body}"
        );
        assert!(body["error_description"].is_string(), "{body}");
    }
    // Without client authentication: nothing is pushed.
    let request = AuthRequest::new(&app, &brand, &pkce, &["contact.email"]);
    let res = app
        .client
        .post(format!("{}/oauth/par", app.base))
        .form(&request.params)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(res).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
}

#[tokio::test]
async fn a_client_can_require_pushed_requests_for_itself() {
    let (app, owner) = InProcessApp::ready().await;
    seed(&app, &owner).await;
    let token = invitation_token(&app, &owner).await;
    let mut metadata = code_metadata("Strict");
    metadata["require_pushed_authorization_requests"] = json!(true);
    let (status, body) = status_json(register(&app, Some(&token), &metadata).await).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["require_pushed_authorization_requests"], true,
        "{body}"
    );
    let brand = Brand::with_secret("Strict", &body);
    brand.accept_current(&app).await;
    let pkce = Pkce::generate();
    let request = AuthRequest::new(&app, &brand, &pkce, &["contact.email"]);

    // Sent straight to the authorization endpoint: back to the brand with the reason.
    let res = request.send(&app).await;
    assert_error_redirect(&app, &res, &request, "invalid_request");
    let to = location(&app, &res).unwrap();
    assert!(to.as_str().starts_with(REDIRECT_URI), "{to}");
    assert!(
        query_of(&to)["error_description"].contains("PAR")
            || query_of(&to)["error_description"].contains("push"),
        "{to}"
    );

    // Pushed, it works.
    let (status, pushed) = push(&app, &brand, &request).await;
    assert_eq!(status, 201, "{pushed}");
    let res = authorize_pushed(
        &app,
        &brand.client_id,
        pushed["request_uri"].as_str().unwrap(),
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&app, &res).unwrap().path(), "/consent");
    // A brand that did not ask for it keeps the plain flow.
    let plain = code_brand(&app, &owner, "Plain").await;
    consent_request(
        &app,
        &AuthRequest::new(&app, &plain, &pkce, &["contact.email"]),
    )
    .await;
}
