//! DPoP (RFC 9449): a brand registered with `dpop_bound_access_tokens` gets tokens only with a
//! proof, bound to its key (`cnf.jkt`, `token_type: DPoP`), and the brand API takes them only
//! as `Authorization: DPoP` with a fresh proof for the request, signed by that key.

use reqwest::Response;
use serde_json::{Value, json};

use crate::kit::brand::{
    Brand, ClientKey, b64, basic_metadata, invitation_token, jwt_parts, now, random_id, register,
    status_json,
};
use crate::kit::grant::InProcessApp;

/// A DPoP proof by `key` for `method` on `url`, with `ath` for `token` and the server's
/// `nonce` if given.
fn proof(
    key: &ClientKey,
    method: &str,
    url: &str,
    token: Option<&str>,
    nonce: Option<&str>,
) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("dpop+jwt".into());
    header.jwk = Some(serde_json::from_value(key.public_jwk()).unwrap());
    let mut claims = json!({"jti": random_id(), "htm": method, "htu": url, "iat": now()});
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    if let Some(token) = token {
        claims["ath"] = json!(b64(ring::digest::digest(
            &ring::digest::SHA256,
            token.as_bytes()
        )
        .as_ref()));
    }
    jsonwebtoken::encode(&header, &claims, &key.encoding_key()).unwrap()
}

async fn token_with(app: &InProcessApp, brand: &Brand, dpop: Option<&str>) -> (u16, Value) {
    let mut request =
        brand.oauth_post(app, "/oauth/token", &[("grant_type", "client_credentials")]);
    if let Some(dpop) = dpop {
        request = request.header("DPoP", dpop);
    }
    status_json(request.send().await.unwrap()).await
}

async fn call(app: &InProcessApp, authorization: &str, dpop: Option<&str>) -> Response {
    let mut request = app
        .client
        .get(format!("{}/brand/v1/agreements", app.base))
        .header("authorization", authorization);
    if let Some(dpop) = dpop {
        request = request.header("DPoP", dpop);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_dpop_client_gets_bound_tokens_and_uses_them_only_with_proofs() {
    let (app, owner) = InProcessApp::ready().await;
    let (_, metadata) = status_json(
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
    assert_eq!(
        metadata["dpop_signing_alg_values_supported"],
        json!(["ES256"])
    );
    let invitation = invitation_token(&app, &owner).await;
    let mut body = basic_metadata("Bound");
    body["dpop_bound_access_tokens"] = json!(true);
    let (status, registered) = status_json(register(&app, Some(&invitation), &body).await).await;
    assert_eq!(status, 201, "{registered}");
    assert_eq!(registered["dpop_bound_access_tokens"], true, "{registered}");
    let brand = Brand::with_secret("Bound", &registered);
    brand.accept_current(&app).await;
    let token_url = format!("{}/oauth/token", app.base);
    let api_url = format!("{}/brand/v1/agreements", app.base);
    let key = ClientKey::generate("dpop");

    // This client must prove possession.
    let (status, body) = token_with(&app, &brand, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_dpop_proof")),
        "{body}"
    );
    // Without the server's nonce: use_dpop_nonce, and the nonce to use (RFC 9449 §8).
    let early = proof(&key, "POST", &token_url, None, None);
    let res = brand
        .oauth_post(
            &app,
            "/oauth/token",
            &[("grant_type", "client_credentials")],
        )
        .header("DPoP", &early)
        .send()
        .await
        .unwrap();
    let nonce = res.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let (status, body) = status_json(res).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("use_dpop_nonce")),
        "{body}"
    );
    let n = Some(nonce.as_str());
    let first = proof(&key, "POST", &token_url, None, n);
    let (status, issued) = token_with(&app, &brand, Some(&first)).await;
    assert_eq!(status, 200, "{issued}");
    assert_eq!(issued["token_type"], "DPoP", "{issued}");
    let token = issued["access_token"].as_str().unwrap().to_owned();
    let (_, claims) = jwt_parts(&token);
    assert!(
        claims["cnf"]["jkt"].as_str().is_some_and(|j| j.len() == 43),
        "{claims}"
    );
    // A proof is good once, and only for the URL it names.
    let (status, body) = token_with(&app, &brand, Some(&first)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_dpop_proof")),
        "replay: {body}"
    );
    let elsewhere = proof(
        &key,
        "POST",
        "https://elsewhere.example/oauth/token",
        None,
        n,
    );
    let (status, _) = token_with(&app, &brand, Some(&elsewhere)).await;
    assert_eq!(status, 400);

    // The brand API: a bound token is refused as a bearer token.
    let res = call(&app, &format!("Bearer {token}"), None).await;
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    // With a proof for this request and token, it works.
    let good = proof(&key, "GET", &api_url, Some(&token), n);
    let res = call(&app, &format!("DPoP {token}"), Some(&good)).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    // Not twice, not by another key, not for another token or method.
    let res = call(&app, &format!("DPoP {token}"), Some(&good)).await;
    assert_eq!(res.status(), 401);
    let stranger = ClientKey::generate("stranger");
    for (bad, why) in [
        (
            proof(&stranger, "GET", &api_url, Some(&token), n),
            "another key",
        ),
        (
            proof(&key, "GET", &api_url, Some("another token"), n),
            "another token",
        ),
        (
            proof(&key, "POST", &api_url, Some(&token), n),
            "another method",
        ),
        (proof(&key, "GET", &api_url, None, n), "no ath"),
    ] {
        let res = call(&app, &format!("DPoP {token}"), Some(&bad)).await;
        assert_eq!(res.status(), 401, "{why}");
        let challenge = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains("invalid_dpop_proof"),
            "{why}: {challenge}"
        );
    }
    // A nonce the vault did not issue (or an old one): use_dpop_nonce with a fresh one.
    let stale = proof(
        &key,
        "GET",
        &api_url,
        Some(&token),
        Some("1.AAAAAAAAAAAAAAAAAAAAAA"),
    );
    let res = call(&app, &format!("DPoP {token}"), Some(&stale)).await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["dpop-nonce"].to_str().unwrap(), nonce);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("use_dpop_nonce"), "{challenge}");
    let (status, introspected) = brand.introspect(&app, &token).await;
    assert_eq!(status, 200);
    assert_eq!(introspected["token_type"], "DPoP", "{introspected}");
    assert_eq!(
        introspected["cnf"]["jkt"], claims["cnf"]["jkt"],
        "{introspected}"
    );
}
