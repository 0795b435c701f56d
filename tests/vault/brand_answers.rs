//! What a brand's OAuth library reads when something is refused: RFC 6750 challenges that say
//! which check refused a token (and none when no token was sent), `invalid_client` that carries
//! the Basic challenge only for Basic clients, and a vault with no owner (erased, or never set
//! up) answering brands as a vault that does not know them; the issuer in every authorization
//! response (RFC 9207).

use std::time::Duration as StdDuration;

use reqwest::{Response, Url};
use serde_json::{Value, json};

use crate::kit::brand::{
    ASSERTION_TYPE, ClientKey, narrowed, onboard, publish, random_id, register_key_brand,
    status_json,
};
use crate::kit::grant::{
    AuthRequest, InProcessApp, Pkce, assert_error_redirect, code_brand, consent_request, day_grant,
    decide, grant_token, id_of, location, query_of, read_all, revoke_grant, seed,
};
use crate::kit::owner::PASSPHRASE;

/// A refused brand call: its status, its `WWW-Authenticate` challenge and its JSON body.
async fn refusal(res: Response) -> (u16, String, Value) {
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let (status, body) = status_json(res).await;
    (status, challenge, body)
}

/// The `error_description` of an RFC 6750 challenge.
fn description_of(challenge: &str) -> String {
    let (_, rest) = challenge
        .split_once("error_description=\"")
        .unwrap_or_else(|| panic!("no error_description in {challenge}"));
    rest.split('"').next().unwrap().to_owned()
}

/// Asserts a 401 `invalid_token` whose description (the same in the header and the body)
/// contains `says`.
async fn assert_token_refused(res: Response, says: &str, why: &str) {
    let (status, challenge, body) = refusal(res).await;
    assert_eq!(status, 401, "{why}: {body}");
    assert!(
        challenge.starts_with("Bearer realm=\"vrm-vault\", error=\"invalid_token\""),
        "{why}: {challenge}"
    );
    let description = description_of(&challenge);
    assert!(description.contains(says), "{why}: {description}");
    assert_eq!(body["error"], "invalid_token", "{why}: {body}");
    assert_eq!(body["error_description"], description, "{why}: {body}");
}

#[tokio::test]
async fn a_refused_token_says_why_and_no_token_gets_a_bare_challenge() {
    let (app, owner) = InProcessApp::ready().await;
    seed(&app, &owner).await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;

    // RFC 6750 §3.1: a request without any token gets the realm and no error code.
    let res = app
        .client
        .get(format!("{}/brand/v1/data", app.base))
        .send()
        .await
        .unwrap();
    let (status, challenge, body) = refusal(res).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(challenge, "Bearer realm=\"vrm-vault\"");
    assert!(body.get("error_description").is_none(), "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("Authorization"),
        "{body}"
    );

    assert_token_refused(read_all(&app, "not.a.jwt").await, "malformed", "garbage").await;

    let id = id_of(&day_grant(&app, &owner, &brand, &["contact.email"]).await);
    let revoked = grant_token(&app, &brand, &id).await;
    assert_eq!(brand.revoke(&app, &revoked).await, 200);
    assert_token_refused(read_all(&app, &revoked).await, "revoked", "a revoked token").await;

    let stale = grant_token(&app, &brand, &id).await;
    app.advance(StdDuration::from_secs(16 * 60));
    assert_token_refused(read_all(&app, &stale).await, "expired", "an expired token").await;

    let token = grant_token(&app, &brand, &id).await;
    let (status, _) = revoke_grant(&app, &owner, &id).await;
    assert!(status < 300, "revoking the grant: {status}");
    assert_token_refused(
        read_all(&app, &token).await,
        "grant of this token has ended: the grant is revoked",
        "a revoked grant",
    )
    .await;

    let id = id_of(&day_grant(&app, &owner, &brand, &["contact.email"]).await);
    let token = grant_token(&app, &brand, &id).await;
    let (status, published) = publish(&app, &owner, &narrowed("pd:Location")).await;
    assert_eq!(status, 201, "{published}");
    assert_token_refused(
        read_all(&app, &token).await,
        "terms changed",
        "new terms in force",
    )
    .await;
}

/// A form POST to an OAuth endpoint: its status, `WWW-Authenticate` and JSON body.
async fn oauth_form(
    request: reqwest::RequestBuilder,
    form: &[(&str, &str)],
) -> (u16, Option<String>, Value) {
    let res = request.form(form).send().await.unwrap();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = status_json(res).await;
    (status, challenge, body)
}

#[tokio::test]
async fn only_a_basic_client_is_challenged_for_basic() {
    let (app, owner) = InProcessApp::ready().await;
    let key = ClientKey::generate("brand-key-1");
    let keyed = register_key_brand(&app, &owner, "Keyed", key).await;
    let token_url = format!("{}/oauth/token", app.base);
    let stranger = ClientKey::generate("brand-key-1");
    let forged = stranger.assertion(&keyed.client_id, &token_url, &random_id());
    let assertion_form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", forged.as_str()),
    ];
    for endpoint in ["/oauth/token", "/oauth/introspect", "/oauth/revoke"] {
        let url = format!("{}{endpoint}", app.base);
        // A private_key_jwt client whose assertion fails: no Basic challenge, which OAuth
        // libraries would report instead of the error (oauth4webapi throws a bare challenge).
        let mut form = assertion_form.to_vec();
        form.push(("token", "whatever"));
        let (status, challenge, body) = oauth_form(app.client.post(&url), &form).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_client")),
            "{endpoint}: {body}"
        );
        assert_eq!(challenge, None, "{endpoint}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{body}"
        );

        // A client that tried HTTP Basic gets 401 with the Basic challenge (RFC 6749 §5.2).
        let (status, challenge, body) = oauth_form(
            app.client
                .post(&url)
                .basic_auth(&keyed.client_id, Some("wrong")),
            &[("grant_type", "client_credentials"), ("token", "whatever")],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{endpoint}: {body}"
        );
        assert_eq!(
            challenge.as_deref(),
            Some("Basic realm=\"vrm-vault\""),
            "{endpoint}"
        );

        // No authentication at all: asked for Basic, the one scheme a header can carry.
        let (status, challenge, body) = oauth_form(
            app.client.post(&url),
            &[("grant_type", "client_credentials"), ("token", "x")],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{endpoint}: {body}"
        );
        assert!(
            challenge.is_some_and(|c| c.starts_with("Basic")),
            "{endpoint}"
        );
    }
}

#[tokio::test]
async fn after_delete_everything_brands_are_told_they_are_unknown_not_to_retry() {
    let (app, owner) = InProcessApp::ready().await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let token = brand.access_token(&app).await;
    let res = app
        .client
        .delete(format!("{}/api/v1/vault", app.base))
        .bearer_auth(&owner)
        .json(&json!({ "passphrase": PASSPHRASE, "confirm": "delete everything" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // The token endpoint: the client is unknown (401 with the Basic challenge), nothing to
    // wait for.
    let res = brand
        .oauth_post(
            &app,
            "/oauth/token",
            &[("grant_type", "client_credentials")],
        )
        .send()
        .await
        .unwrap();
    assert!(!res.headers().contains_key("retry-after"));
    let challenge = res.headers().get("www-authenticate").cloned();
    let (status, body) = status_json(res).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("not registered"),
        "{body}"
    );
    assert_eq!(challenge.unwrap(), "Basic realm=\"vrm-vault\"");

    // The brand API: the token is unknown.
    let res = app
        .client
        .get(format!("{}/brand/v1/agreements", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(!res.headers().contains_key("retry-after"));
    assert_token_refused(res, "holds no clients", "a token of the erased vault").await;

    // No keys, no terms; and the person's own routes still say to set the vault up.
    let (status, body) = status_json(
        app.client
            .get(format!("{}/oauth/jwks", app.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (200, json!({ "keys": [] })));
    let (status, body) = status_json(
        app.client
            .get(format!("{}/brand/v1/terms", app.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, body) = status_json(
        app.client
            .get(format!("{}/api/v1/records", app.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("setup_required")),
        "{body}"
    );
}

#[tokio::test]
async fn every_authorization_response_names_the_issuer() {
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
        metadata["authorization_response_iss_parameter_supported"],
        true
    );
    let issuer = metadata["issuer"].as_str().unwrap().to_owned();
    let brand = code_brand(&app, &owner, "Acme").await;
    let pkce = Pkce::generate();

    // A code (RFC 9207 §2).
    let request = AuthRequest::new(&app, &brand, &pkce, &["contact.email"]);
    let id = consent_request(&app, &request).await;
    let (status, body) = decide(&app, &owner, &id, json!({ "decision": "approve" })).await;
    assert_eq!(status, 200, "{body}");
    let to = Url::parse(body["redirect_to"].as_str().unwrap()).unwrap();
    let query = query_of(&to);
    assert!(query.contains_key("code"), "{to}");
    assert_eq!(query.get("iss"), Some(&issuer), "{to}");

    // The person declines.
    let id = consent_request(&app, &request).await;
    let (status, body) = decide(&app, &owner, &id, json!({ "decision": "deny" })).await;
    assert_eq!(status, 200, "{body}");
    let to = Url::parse(body["redirect_to"].as_str().unwrap()).unwrap();
    assert_eq!(
        query_of(&to).get("error").map(String::as_str),
        Some("access_denied")
    );
    assert_eq!(query_of(&to).get("iss"), Some(&issuer), "{to}");

    // An error found by the authorization endpoint itself.
    let bad = AuthRequest::new(&app, &brand, &pkce, &["contact.email"]).without("code_challenge");
    let res = bad.send(&app).await;
    assert_error_redirect(&app, &res, &bad, "invalid_request");
    let to = location(&app, &res).unwrap();
    assert_eq!(query_of(&to).get("iss"), Some(&issuer), "{to}");
}
