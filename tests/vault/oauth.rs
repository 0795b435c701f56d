//! Brands as OAuth 2.0 clients: discovery (RFC 8414), registration by invitation (RFC 7591),
//! agreement to the person's terms with a signed receipt, client-credentials access tokens
//! (RFC 9068 JWTs), revocation (RFC 7009), introspection (RFC 7662), and every way a token can
//! stop being good.

use std::collections::BTreeSet;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation};
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::kit::brand::{
    ALL_SCOPES, ASSERTION_TYPE, Brand, ClientAuth, ClientKey, assert_accepted, assert_refused,
    assert_scopes, b64, invitation_token, invite, jwks, jwt_parts, narrowed, now, onboard,
    owner_brand, owner_call, public_terms, publish, random_id, receipt_verifies, register,
    register_brand, register_key_brand, status_json, unb64, vault_key,
};
use crate::kit::disk::signing_key_of_stopped_vault;
use crate::support::{TestApp, ready_vault, ready_vault_with};

fn basic_metadata(name: &str) -> Value {
    json!({
        "client_name": name,
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["client_credentials"],
        "scope": ALL_SCOPES,
    })
}

fn rfc3339(value: &Value) -> OffsetDateTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a string"));
    OffsetDateTime::parse(text, &Rfc3339).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// POSTs a form with no client authentication at all.
async fn anonymous_form(app: &TestApp, url: &str, form: &[(&str, &str)]) -> (u16, Value) {
    status_json(app.client.post(url).form(form).send().await.unwrap()).await
}

/// The same brand with a wrong secret.
fn impostor(brand: &Brand) -> Brand {
    Brand {
        client_id: brand.client_id.clone(),
        name: brand.name.clone(),
        auth: ClientAuth::Secret("vrm_not-the-secret".into()),
    }
}

fn key_of(brand: &Brand) -> &ClientKey {
    match &brand.auth {
        ClientAuth::Key(key) => key,
        ClientAuth::Secret(_) => panic!("{} authenticates with a secret", brand.name),
    }
}

/// Asserts the token endpoint refuses the brand because it has not accepted the current terms.
async fn assert_terms_needed(app: &TestApp, brand: &Brand) -> Value {
    let (status, body) = brand.token_response(app, &[]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "unauthorized_client", "{body}");
    let terms = public_terms(app).await;
    assert_eq!(body["terms_hash"], terms["hash"], "{body}");
    assert_eq!(body["terms_uri"], app.url("/brand/v1/terms"), "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.contains(&format!("version {}", terms["version"]))
            && description.contains(terms["hash"].as_str().unwrap()),
        "{description}"
    );
    body
}

/// Asserts the token endpoint refuses the brand as a client (suspended, removed, bad
/// credentials): 401 `invalid_client`, or 400 `unauthorized_client`.
async fn assert_no_token(app: &TestApp, brand: &Brand, why: &str) {
    let (status, body) = brand.token_response(app, &[]).await;
    assert!(
        matches!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")) | (400, Some("unauthorized_client"))
        ),
        "{why}: {status} {body}"
    );
}

/// GETs `path` with a bearer token, expecting 200; returns the body's bytes.
async fn get_with_token(app: &TestApp, path: &str, token: &str) -> bytes::Bytes {
    let res = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "GET {path}");
    res.bytes().await.unwrap()
}

/// A client-credentials request authenticated by exactly this client assertion.
async fn token_with_assertion(app: &TestApp, assertion: &str) -> (u16, Value) {
    status_json(
        app.client
            .post(app.url("/oauth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", assertion),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn events_chained(receipt: &Value) -> Vec<String> {
    let events = receipt["receipt"]["events"].as_array().unwrap();
    assert!(!events.is_empty(), "{receipt}");
    for (i, event) in events.iter().enumerate() {
        rfc3339(&event["at"]);
        assert!(
            event["hash"].as_str().is_some_and(|h| !h.is_empty()),
            "{event}"
        );
        if i == 0 {
            // The chain starts from nothing: null, or a hash of all zeros.
            assert!(
                event["prev"].is_null() || event["prev"] == json!("0".repeat(64)),
                "the first event has a prev: {event}"
            );
        } else {
            assert_eq!(
                event["prev"],
                events[i - 1]["hash"],
                "event {i} breaks the chain"
            );
        }
    }
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn metadata_advertises_endpoints_that_exist() {
    let (_dir, app, _owner) = ready_vault().await;
    let (status, meta) = status_json(
        app.client
            .get(app.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{meta}");
    assert_eq!(meta["issuer"], app.base);
    for (field, path) in [
        ("token_endpoint", "/oauth/token"),
        ("registration_endpoint", "/oauth/register"),
        ("jwks_uri", "/oauth/jwks"),
        ("revocation_endpoint", "/oauth/revoke"),
        ("introspection_endpoint", "/oauth/introspect"),
        ("vrm_terms_endpoint", "/brand/v1/terms"),
        ("vrm_agreements_endpoint", "/brand/v1/agreements"),
        ("vrm_resource", "/brand/v1"),
        ("authorization_endpoint", "/oauth/authorize"),
    ] {
        assert_eq!(meta[field], app.url(path), "{field}: {meta}");
    }
    assert_eq!(
        meta["grant_types_supported"],
        json!(["client_credentials", "authorization_code", "refresh_token"])
    );
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        meta["authorization_details_types_supported"],
        json!(["urn:vrm-vault:data-access:v1"])
    );
    // `none` is for the person's assistants, public clients (tests/vault/agents.rs).
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "private_key_jwt", "none"])
    );
    let algs = meta["token_endpoint_auth_signing_alg_values_supported"]
        .as_array()
        .unwrap_or_else(|| panic!("{meta}"));
    assert!(algs.contains(&json!("ES256")), "{meta}");
    assert!(
        !algs.contains(&json!("none")) && !algs.contains(&json!("HS256")),
        "{meta}"
    );
    // Brand scopes, and the assistants' `agent.*` scopes (tests/vault/agents.rs).
    let supported: Vec<&str> = meta["scopes_supported"]
        .as_array()
        .unwrap_or_else(|| panic!("{meta}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .filter(|s| !s.starts_with("agent."))
        .collect();
    assert_scopes(&json!(supported.join(" ")), ALL_SCOPES);
    assert_eq!(meta["response_types_supported"], json!(["code"]));

    // Every advertised endpoint is there and answers a credential-less request the way its RFC
    // says, not with 404 or 405.
    let url = |field: &str| meta[field].as_str().unwrap().to_owned();
    let res = app.client.get(url("jwks_uri")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    for field in [
        "token_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
    ] {
        let (status, body) = anonymous_form(
            &app,
            &url(field),
            &[("grant_type", "client_credentials"), ("token", "x")],
        )
        .await;
        assert_eq!(status, 401, "{field}: {body}");
        assert_eq!(body["error"], "invalid_client", "{field}: {body}");
        assert!(body["error_description"].is_string(), "{field}: {body}");
    }
    let (status, body) = status_json(
        app.client
            .post(url("registration_endpoint"))
            .json(&basic_metadata("Nobody"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &body["error"]), (401, &json!("invalid_token")));
    let res = app
        .client
        .get(url("vrm_terms_endpoint"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .client
        .get(url("vrm_agreements_endpoint"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
}

#[tokio::test]
async fn jwks_publishes_only_public_es256_keys() {
    let (_dir, app, _owner) = ready_vault().await;
    let (status, set) =
        status_json(app.client.get(app.url("/oauth/jwks")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{set}");
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "a new vault has one key: {set}");
    let key = &keys[0];
    let members: BTreeSet<&str> = key
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // No "d": the private scalar must never be published.
    assert_eq!(
        members,
        BTreeSet::from(["alg", "crv", "kid", "kty", "use", "x", "y"]),
        "{key}"
    );
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()));
    assert_eq!(unb64(key["x"].as_str().unwrap()).len(), 32);
    assert_eq!(unb64(key["y"].as_str().unwrap()).len(), 32);
    // jsonwebtoken, as a brand would use it, reads it.
    vault_key(&app, key["kid"].as_str().unwrap()).await;
}

// ---------------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn registration_needs_a_live_invitation() {
    let (_dir, app, owner) = ready_vault().await;
    let mut metadata = basic_metadata("Acme Books");
    metadata["client_uri"] = json!("https://books.example");

    // Registration failures from one address are throttled after three in a row, so each test
    // makes at most three.
    for token in [None, Some("vrmia_not-an-invitation")] {
        let (status, body) = status_json(register(&app, token, &metadata).await).await;
        assert_eq!(status, 401, "{token:?}: {body}");
        assert_eq!(body["error"], "invalid_token", "{body}");
    }

    let before = OffsetDateTime::now_utc();
    let invitation = invite(&app, &owner, json!({ "note": "Acme Books" })).await;
    let token = invitation["initial_access_token"].as_str().unwrap();
    assert!(token.starts_with("vrmia_"), "{invitation}");
    assert_eq!(invitation["max_uses"], 1);
    assert_eq!(invitation["uses"], 0);
    assert_eq!(invitation["note"], "Acme Books");
    assert_eq!(
        invitation["registration_endpoint"],
        app.url("/oauth/register")
    );
    let expires = rfc3339(&invitation["expires_at"]) - before;
    assert!(
        expires > time::Duration::hours(71) && expires <= time::Duration::hours(73),
        "the default lifetime is 72 hours: {invitation}"
    );

    let (status, registered) = status_json(register(&app, Some(token), &metadata).await).await;
    assert_eq!(status, 201, "{registered}");
    let client_id = registered["client_id"].as_str().unwrap();
    let secret = registered["client_secret"].as_str().unwrap();
    assert!(!client_id.is_empty() && secret.len() >= 32, "{registered}");
    assert_eq!(registered["client_secret_expires_at"], 0);
    let issued_at = registered["client_id_issued_at"].as_u64().unwrap();
    assert!(issued_at.abs_diff(now()) < 60, "{registered}");
    assert_eq!(registered["client_name"], "Acme Books");
    assert_eq!(registered["client_uri"], "https://books.example");
    assert_eq!(
        registered["token_endpoint_auth_method"],
        "client_secret_basic"
    );
    assert_eq!(registered["grant_types"], json!(["client_credentials"]));
    assert_scopes(&registered["scope"], ALL_SCOPES);

    // One use: spent.
    let (status, body) = status_json(register(&app, Some(token), &metadata).await).await;
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("invalid_token")),
        "{body}"
    );
    let (_, listed) = owner_call(&app, &owner, Method::GET, "/api/v1/invitations", None).await;
    let listed_text = listed.to_string();
    assert!(
        !listed_text.contains(token),
        "the list shows the token: {listed}"
    );
    let entry = &listed["invitations"][0];
    assert_eq!(entry["id"], invitation["id"]);
    assert_eq!(entry["status"], "spent");
    assert_eq!(entry["uses"], 1);
    rfc3339(&entry["created_at"]);

    // Out-of-range invitations are refused, and none is created.
    for body in [
        json!({ "max_uses": 0 }),
        json!({ "max_uses": 101 }),
        json!({ "expires_in_hours": 0 }),
        json!({ "expires_in_hours": 721 }),
        // Far beyond what a duration holds: refused like any other, not a panic (found by
        // tests/interop/test_schemathesis.py).
        json!({ "expires_in_hours": i64::MAX }),
        json!({ "expires_in_hours": i64::MIN }),
        json!({ "note": "x".repeat(201) }),
    ] {
        let (status, answer) = owner_call(
            &app,
            &owner,
            Method::POST,
            "/api/v1/invitations",
            Some(body.clone()),
        )
        .await;
        assert!(matches!(status, 400 | 422), "{body}: {status} {answer}");
    }
    let (_, listed) = owner_call(&app, &owner, Method::GET, "/api/v1/invitations", None).await;
    assert_eq!(
        listed["invitations"].as_array().unwrap().len(),
        1,
        "{listed}"
    );

    // The owner sees the brand, not bound by an agreement yet.
    let (status, brands) = owner_call(&app, &owner, Method::GET, "/api/v1/brands", None).await;
    assert_eq!(status, 200, "{brands}");
    let brands = brands["brands"].as_array().unwrap();
    assert_eq!(brands.len(), 1, "{brands:?}");
    let acme = brands
        .iter()
        .find(|b| b["client_id"] == client_id)
        .unwrap_or_else(|| panic!("{brands:?}"));
    assert_eq!(acme["client_name"], "Acme Books");
    assert_eq!(acme["client_uri"], "https://books.example");
    assert_eq!(acme["status"], "active");
    assert_eq!(acme["token_endpoint_auth_method"], "client_secret_basic");
    assert_scopes(&acme["scope"], ALL_SCOPES);
    assert!(acme["pseudonym"].as_str().is_some_and(|p| !p.is_empty()));
    assert!(acme["agreement"].is_null(), "{acme}");
    rfc3339(&acme["registered_at"]);
    assert!(
        !acme.to_string().contains(secret),
        "the owner sees the secret"
    );
    assert_eq!(&owner_brand(&app, &owner, client_id).await, acme);
    let (status, _) = owner_call(
        &app,
        &owner,
        Method::GET,
        "/api/v1/brands/no-such-client",
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn invitations_can_serve_several_brands_and_be_withdrawn() {
    let (_dir, app, owner) = ready_vault().await;
    // The owner's session token is no invitation.
    let (status, body) =
        status_json(register(&app, Some(&owner), &basic_metadata("Sneaky")).await).await;
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("invalid_token")),
        "{body}"
    );

    // Two uses: two brands, then spent.
    let twice = invite(
        &app,
        &owner,
        json!({ "max_uses": 2, "expires_in_hours": 1 }),
    )
    .await;
    assert_eq!(twice["max_uses"], 2);
    let expires = rfc3339(&twice["expires_at"]) - OffsetDateTime::now_utc();
    assert!(expires <= time::Duration::hours(1), "{twice}");
    let token = twice["initial_access_token"].as_str().unwrap();
    let mut ids = BTreeSet::new();
    for name in ["Brand Two", "Brand Three"] {
        let (status, body) =
            status_json(register(&app, Some(token), &basic_metadata(name)).await).await;
        assert_eq!(status, 201, "{body}");
        ids.insert(body["client_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 2);
    let (status, _) =
        status_json(register(&app, Some(token), &basic_metadata("Brand Four")).await).await;
    assert_eq!(status, 401);
    let (_, listed) = owner_call(&app, &owner, Method::GET, "/api/v1/invitations", None).await;
    let entry = &listed["invitations"][0];
    assert_eq!(entry["id"], twice["id"], "{listed}");
    assert_eq!(
        (&entry["uses"], &entry["status"]),
        (&json!(2), &json!("spent"))
    );

    // A deleted invitation no longer works.
    let deleted = invite(&app, &owner, json!({})).await;
    let (status, _) = owner_call(
        &app,
        &owner,
        Method::DELETE,
        &format!("/api/v1/invitations/{}", deleted["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = status_json(
        register(
            &app,
            deleted["initial_access_token"].as_str(),
            &basic_metadata("Too Late"),
        )
        .await,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn invalid_client_metadata_is_refused_without_spending_the_invitation() {
    let (_dir, app, owner) = ready_vault().await;
    let token = invitation_token(&app, &owner).await;
    let with = |patch: Value| {
        let mut metadata = basic_metadata("Acme");
        for (k, v) in patch.as_object().unwrap() {
            metadata[k] = v.clone();
        }
        metadata
    };
    let oct = json!({"keys": [{"kty": "oct", "k": b64(b"a shared secret is no public key"), "kid": "k1"}]});
    for (why, metadata) in [
        (
            "client_secret_post",
            with(json!({"token_endpoint_auth_method": "client_secret_post"})),
        ),
        ("none", with(json!({"token_endpoint_auth_method": "none"}))),
        (
            "no jwks",
            with(json!({"token_endpoint_auth_method": "private_key_jwt"})),
        ),
        (
            "a symmetric key",
            with(json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": oct})),
        ),
        (
            "password grant",
            with(json!({"grant_types": ["client_credentials", "password"]})),
        ),
        (
            "code grant",
            with(json!({"grant_types": ["authorization_code"]})),
        ),
        (
            "unknown scope",
            with(json!({"scope": "intents:read admin"})),
        ),
    ] {
        let (status, body) = status_json(register(&app, Some(&token), &metadata).await).await;
        assert_eq!(status, 400, "{why}: {body}");
        assert_eq!(body["error"], "invalid_client_metadata", "{why}: {body}");
        assert!(body["error_description"].is_string(), "{why}: {body}");
    }
    // The brand fixes its metadata and the one-use invitation still lets it in.
    let (status, body) =
        status_json(register(&app, Some(&token), &basic_metadata("Acme")).await).await;
    assert_eq!(status, 201, "{body}");
}

// ---------------------------------------------------------------------------------------------
// Agreement and tokens
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn tokens_wait_for_the_current_terms_to_be_accepted() {
    let (_dir, app, owner) = ready_vault().await;
    let brand = register_brand(&app, &owner, "Acme").await;
    assert_terms_needed(&app, &brand).await;

    let wrong = format!("sha256:{}", "0".repeat(64));
    let (status, body) = status_json(brand.accept(&app, &wrong).await).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "terms_changed", "{body}");
    assert_terms_needed(&app, &brand).await;
    // Only the brand itself can accept on its behalf.
    let hash = public_terms(&app).await["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = status_json(impostor(&brand).accept(&app, &hash).await).await;
    assert_eq!(status, 401);
    assert_terms_needed(&app, &brand).await;

    brand.accept_current(&app).await;
    let (status, issued) = brand.token_response(&app, &[]).await;
    assert_eq!(status, 200, "{issued}");
    assert_eq!(issued["token_type"], "Bearer");
    assert_eq!(issued["expires_in"], 900);
    assert_scopes(&issued["scope"], ALL_SCOPES);
    assert_accepted(
        &app,
        issued["access_token"].as_str().unwrap(),
        "a fresh token",
    )
    .await;

    // The owner sees the agreement.
    let seen = owner_brand(&app, &owner, &brand.client_id).await;
    let agreement = &seen["agreement"];
    assert_eq!(agreement["terms_version"], 1, "{seen}");
    assert_eq!(agreement["terms_hash"], hash);
    assert_eq!(agreement["status"], "accepted");
    assert_eq!(agreement["current"], true);
    rfc3339(&agreement["accepted_at"]);
    let (status, all) = owner_call(&app, &owner, Method::GET, "/api/v1/agreements", None).await;
    assert_eq!(status, 200, "{all}");
    let listed = &all["agreements"][0];
    assert_eq!(listed["id"], agreement["id"]);
    assert_eq!(listed["client_id"], brand.client_id);
    assert_eq!(listed["client_name"], "Acme");
    assert_eq!(listed["status"], "accepted");
    assert_eq!(listed["current"], true);

    // RFC 6749 §5.1: token responses must not be cached.
    let res = brand
        .oauth_post(
            &app,
            "/oauth/token",
            &[("grant_type", "client_credentials")],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cache = res
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(
        cache.as_deref().is_some_and(|c| c.contains("no-store")),
        "{cache:?}"
    );

    // Client authentication failures. RFC 6749 §5.2: a client that tried HTTP Basic gets 401
    // with a Basic challenge.
    let res = impostor(&brand)
        .oauth_post(
            &app,
            "/oauth/token",
            &[("grant_type", "client_credentials")],
        )
        .send()
        .await
        .unwrap();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = status_json(res).await;
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("invalid_client")),
        "{body}"
    );
    assert!(
        challenge.as_deref().is_some_and(|c| c.starts_with("Basic")),
        "{challenge:?}"
    );
    let stranger = Brand {
        client_id: "no-such-client".into(),
        name: "Stranger".into(),
        auth: ClientAuth::Secret("vrm_whatever".into()),
    };
    let (status, body) = stranger.token_response(&app, &[]).await;
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("invalid_client")),
        "{body}"
    );

    // Grants and scopes the vault does not offer.
    let (status, body) = status_json(
        brand
            .oauth_post(&app, "/oauth/token", &[("grant_type", "password")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("unsupported_grant_type")),
        "{body}"
    );
    let (status, body) = brand.token_response(&app, &[("scope", "admin")]).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_scope")),
        "{body}"
    );

    // A narrower scope gives a narrower token.
    let (status, narrow) = brand
        .token_response(&app, &[("scope", "agreements:read")])
        .await;
    assert_eq!(status, 200, "{narrow}");
    assert_eq!(narrow["scope"], "agreements:read");
    assert_accepted(
        &app,
        narrow["access_token"].as_str().unwrap(),
        "agreements:read",
    )
    .await;
    let (status, intents_only) = brand
        .token_response(&app, &[("scope", "intents:read")])
        .await;
    assert_eq!(status, 200, "{intents_only}");
    let res =
        crate::kit::brand::brand_call(&app, intents_only["access_token"].as_str().unwrap()).await;
    assert_eq!(
        res.status(),
        403,
        "a token without agreements:read listed agreements"
    );
}

#[tokio::test]
async fn access_tokens_are_es256_jwts_for_the_brand_api() {
    let (_dir, app, owner) = ready_vault().await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let token = brand.access_token(&app).await;
    let (header, claims) = jwt_parts(&token);
    assert_eq!(header["typ"], "at+jwt", "{header}");
    assert_eq!(header["alg"], "ES256", "{header}");
    let kid = header["kid"].as_str().unwrap();

    assert_eq!(claims["iss"], app.base, "{claims}");
    let resource = app.url("/brand/v1");
    assert!(
        claims["aud"] == json!(resource) || claims["aud"] == json!([resource]),
        "{claims}"
    );
    let pseudonym = owner_brand(&app, &owner, &brand.client_id).await["pseudonym"].clone();
    assert_eq!(claims["sub"], pseudonym, "{claims}");
    assert_ne!(claims["sub"], brand.client_id);
    assert_eq!(claims["client_id"], brand.client_id);
    assert_scopes(&claims["scope"], ALL_SCOPES);
    assert!(
        claims["jti"].as_str().is_some_and(|j| j.len() >= 16),
        "{claims}"
    );
    let iat = claims["iat"].as_u64().unwrap();
    let exp = claims["exp"].as_u64().unwrap();
    assert!(iat.abs_diff(now()) < 60, "{claims}");
    assert!(exp > iat && exp - iat <= 900, "{claims}");

    // A brand's JWT library, given only the JWKS, accepts it.
    let key = vault_key(&app, kid).await;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[&app.base]);
    validation.set_audience(&[&resource]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let decoded = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap();
    assert_eq!(decoded.claims, claims);

    let again = brand.access_token(&app).await;
    let (_, second) = jwt_parts(&again);
    assert_ne!(second["jti"], claims["jti"]);
    assert_eq!(second["sub"], claims["sub"]);
}

#[tokio::test]
async fn pseudonyms_are_pairwise_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());
    let (owner, _) = app.setup().await;
    let (a, receipt_a) = onboard(&app, &owner, "Brand A").await;
    let (b, receipt_b) = onboard(&app, &owner, "Brand B").await;
    let sub_a = jwt_parts(&a.access_token(&app).await).1["sub"].clone();
    let sub_b = jwt_parts(&b.access_token(&app).await).1["sub"].clone();
    assert_ne!(sub_a, sub_b, "two brands can correlate the person");
    assert_eq!(receipt_a["receipt"]["parties"]["person"], sub_a);
    assert_eq!(receipt_b["receipt"]["parties"]["person"], sub_b);
    app.stop();

    let app = TestApp::start(dir.path());
    let owner = app.token().await;
    // Registrations and agreements survive: the same credentials get tokens right away.
    assert_eq!(jwt_parts(&a.access_token(&app).await).1["sub"], sub_a);
    assert_eq!(jwt_parts(&b.access_token(&app).await).1["sub"], sub_b);
    assert_eq!(
        owner_brand(&app, &owner, &a.client_id).await["pseudonym"],
        sub_a
    );
    assert_eq!(
        owner_brand(&app, &owner, &b.client_id).await["pseudonym"],
        sub_b
    );
}

// ---------------------------------------------------------------------------------------------
// Receipts
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn receipts_are_canonical_signed_and_chained() {
    let (_dir, app, owner) = ready_vault().await;
    let brand = register_brand(&app, &owner, "Acme Books").await;
    let terms = public_terms(&app).await;
    let res = brand.accept(&app, terms["hash"].as_str().unwrap()).await;
    assert_eq!(res.status(), 201);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let posted: Value = res.json().await.unwrap();
    let receipt = &posted["receipt"];
    let id = receipt["agreement_id"].as_str().unwrap();
    let token = brand.access_token(&app).await;
    let pseudonym = jwt_parts(&token).1["sub"].clone();

    assert_eq!(receipt["issuer"], app.base);
    assert_eq!(receipt["terms"]["hash"], terms["hash"]);
    assert_eq!(receipt["terms"]["version"], 1);
    assert_eq!(receipt["terms"]["basis"], "SD-BASE");
    assert_eq!(
        receipt["terms"]["basis_iri"],
        "https://w3id.org/dpv/standards/p7012#SD-BASE"
    );
    assert_eq!(receipt["parties"]["person"], pseudonym);
    assert_eq!(receipt["parties"]["brand"], brand.client_id);
    assert_eq!(receipt["parties"]["brand_name"], "Acme Books");
    let set = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    // What sd-base's permissions allow, and nothing it prohibits.
    assert_eq!(
        set(&receipt["data_categories"]),
        set(&json!([
            "pd:Name",
            "pd:EmailAddress",
            "pd:TelephoneNumber",
            "pd:PhysicalAddress",
            "pd:Location",
            "pd:Language",
            "pd:Preference",
            "pd:PaymentCardNumber",
            "pd:Identifier",
            "pd:Username"
        ]))
    );
    assert_eq!(
        set(&receipt["purposes"]),
        set(&json!([
            "p7012:ServiceDelivery",
            "dpv:ServiceProvision",
            "dpv:RequestedServiceProvision",
            "dpv:DeliveryOfGoods",
            "dpv:PaymentManagement",
            "dpv:CustomerOrderManagement",
            "dpv:CustomerCare",
            "dpv:CommunicationForCustomerCare",
            "dpv:AccountManagement",
            "dpv:ServiceRegistration"
        ]))
    );
    assert_eq!(receipt["retention"], "P90D");
    assert_eq!(receipt["status"], "accepted");
    let types = events_chained(&posted);
    assert_eq!(types.last().unwrap(), "accepted", "{types:?}");
    assert!(
        receipt_verifies(&app, &posted).await,
        "the receipt's signature does not verify"
    );

    // The signature covers the receipt: change a word and it no longer verifies.
    let mut forged = posted.clone();
    forged["receipt"]["parties"]["brand_name"] = json!("Someone Else");
    assert!(!receipt_verifies(&app, &forged).await);

    // Fetching it gives the same bytes each time, in RFC 8785 canonical form; with the access
    // token or with client authentication alike.
    let path = format!("/brand/v1/agreements/{id}");
    let first = get_with_token(&app, &path, &token).await;
    let second = get_with_token(&app, &path, &token).await;
    assert_eq!(first, second, "the receipt changed between two reads");
    let parsed: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(
        serde_json_canonicalizer::to_vec(&parsed).unwrap(),
        first.to_vec(),
        "the receipt is not in canonical form"
    );
    assert_eq!(parsed["receipt"], posted["receipt"]);
    let res = brand
        .brand_request(&app, Method::GET, &path, json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), first);

    // The brand's list names it.
    let (status, list) = status_json(crate::kit::brand::brand_call(&app, &token).await).await;
    assert_eq!(status, 200, "{list}");
    let entry = list["agreements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id || a["agreement_id"] == id)
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(entry["status"], "accepted");

    let res = app
        .client
        .get(app.url("/brand/v1/agreements/no-such-agreement"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // Another brand cannot read it.
    let (other, _) = onboard(&app, &owner, "Other").await;
    let other_token = other.access_token(&app).await;
    let res = app
        .client
        .get(app.url(&path))
        .bearer_auth(&other_token)
        .send()
        .await
        .unwrap();
    assert!(
        matches!(res.status().as_u16(), 403 | 404),
        "{}",
        res.status()
    );

    // Withdrawing adds a signed, chained event.
    let res = brand
        .brand_request(&app, Method::DELETE, &path, json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let withdrawn: Value = res.json().await.unwrap();
    assert_eq!(withdrawn["receipt"]["status"], "withdrawn");
    let after = events_chained(&withdrawn);
    assert_eq!(after.len(), types.len() + 1);
    assert_eq!(after.last().unwrap(), "withdrawn");
    assert_eq!(
        withdrawn["receipt"]["events"][types.len() - 1],
        posted["receipt"]["events"][types.len() - 1],
        "history was rewritten"
    );
    assert!(receipt_verifies(&app, &withdrawn).await);
}

// ---------------------------------------------------------------------------------------------
// When tokens stop working
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn new_terms_need_a_new_agreement() {
    let (_dir, app, owner) = ready_vault().await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let old_token = brand.access_token(&app).await;
    assert_accepted(&app, &old_token, "before the change").await;
    let old_hash = public_terms(&app).await["hash"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, published) = publish(&app, &owner, &narrowed("pd:Location")).await;
    assert_eq!(status, 201, "{published}");
    assert_refused(&app, &old_token, "a token under superseded terms").await;
    let refusal = assert_terms_needed(&app, &brand).await;
    assert_eq!(refusal["terms_hash"], published["hash"]);
    let seen = owner_brand(&app, &owner, &brand.client_id).await;
    assert_eq!(seen["agreement"]["current"], false, "{seen}");
    assert_eq!(seen["agreement"]["terms_version"], 1);

    // Accepting the old terms again is accepting terms that are no longer offered.
    let (status, body) = status_json(brand.accept(&app, &old_hash).await).await;
    assert_eq!(
        (status, &body["error"]),
        (409, &json!("terms_changed")),
        "{body}"
    );

    let receipt = brand.accept_current(&app).await;
    assert_eq!(receipt["receipt"]["terms"]["version"], 2);
    assert_eq!(receipt["receipt"]["terms"]["hash"], published["hash"]);
    assert!(
        !receipt["receipt"]["data_categories"]
            .as_array()
            .unwrap()
            .contains(&json!("pd:Location"))
    );
    let token = brand.access_token(&app).await;
    assert_accepted(&app, &token, "after accepting version 2").await;
    // The token issued under version 1 stays dead.
    assert_refused(
        &app,
        &old_token,
        "a token under superseded terms, after re-accepting",
    )
    .await;
    let seen = owner_brand(&app, &owner, &brand.client_id).await;
    assert_eq!(seen["agreement"]["current"], true, "{seen}");
    assert_eq!(seen["agreement"]["terms_version"], 2);
}

#[tokio::test]
async fn revoked_tokens_stop_at_once() {
    let (_dir, app, owner) = ready_vault().await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let (other, _) = onboard(&app, &owner, "Other").await;
    let token = brand.access_token(&app).await;
    let (_, claims) = jwt_parts(&token);

    let (status, active) = brand.introspect(&app, &token).await;
    assert_eq!(status, 200, "{active}");
    assert_eq!(active["active"], true, "{active}");
    for field in ["scope", "client_id", "sub", "exp", "iat", "iss", "jti"] {
        assert_eq!(active[field], claims[field], "{field}: {active}");
    }
    assert!(
        active["aud"] == claims["aud"] || active["aud"] == json!([claims["aud"]]),
        "{active}"
    );
    assert_eq!(active["token_type"], "Bearer");

    // Another brand learns nothing about this brand's token (its pseudonym would let the two
    // correlate the person), and cannot revoke it.
    let (status, peek) = other.introspect(&app, &token).await;
    assert_eq!(status, 200, "{peek}");
    assert_eq!(peek, json!({"active": false}));
    other.revoke(&app, &token).await;
    assert_accepted(&app, &token, "after another brand tried to revoke it").await;

    // Without client authentication, nothing.
    let (status, body) =
        anonymous_form(&app, &app.url("/oauth/revoke"), &[("token", &token)]).await;
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("invalid_client")),
        "{body}"
    );
    assert_accepted(&app, &token, "after an anonymous revocation").await;

    assert_eq!(brand.revoke(&app, &token).await, 200);
    assert_refused(&app, &token, "a revoked token").await;
    let (status, inactive) = brand.introspect(&app, &token).await;
    assert_eq!(status, 200);
    assert_eq!(inactive, json!({"active": false}));
    // RFC 7009: revoking again, or revoking nonsense, is not an error.
    assert_eq!(brand.revoke(&app, &token).await, 200);
    assert_eq!(brand.revoke(&app, "not-a-token").await, 200);
    let (_, nonsense) = brand.introspect(&app, "not-a-token").await;
    assert_eq!(nonsense, json!({"active": false}));
    // The brand's other tokens are untouched.
    assert_accepted(&app, &brand.access_token(&app).await, "a new token").await;
}

#[tokio::test]
async fn a_suspended_brand_is_refused_until_resumed() {
    let (_dir, app, owner) = ready_vault().await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let token = brand.access_token(&app).await;
    let path = format!("/api/v1/brands/{}", brand.client_id);

    let (status, suspended) =
        owner_call(&app, &owner, Method::POST, &format!("{path}/suspend"), None).await;
    assert_eq!(status, 200, "{suspended}");
    assert_eq!(suspended["status"], "suspended");
    assert_eq!(suspended["client_id"], brand.client_id);
    assert_refused(&app, &token, "a suspended brand's token").await;
    assert_no_token(&app, &brand, "a suspended brand").await;
    let (_, introspected) = brand.introspect(&app, &token).await;
    assert_ne!(introspected["active"], true, "{introspected}");

    let (status, resumed) =
        owner_call(&app, &owner, Method::POST, &format!("{path}/resume"), None).await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["status"], "active");
    assert_eq!(resumed["agreement"]["status"], "accepted", "{resumed}");
    assert_accepted(&app, &brand.access_token(&app).await, "after resuming").await;
}

#[tokio::test]
async fn a_removed_brand_is_gone() {
    let (_dir, app, owner) = ready_vault().await;
    let (brand, receipt) = onboard(&app, &owner, "Acme").await;
    let token = brand.access_token(&app).await;
    let path = format!("/api/v1/brands/{}", brand.client_id);

    let (status, _) = owner_call(&app, &owner, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    assert_refused(&app, &token, "a removed brand's token").await;
    let (status, body) = brand.token_response(&app, &[]).await;
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("invalid_client")),
        "{body}"
    );
    let (status, _) = owner_call(&app, &owner, Method::GET, &path, None).await;
    assert_eq!(status, 404);
    let (_, brands) = owner_call(&app, &owner, Method::GET, "/api/v1/brands", None).await;
    assert_eq!(brands["brands"], json!([]));
    // The owner keeps the record of the agreement, ended.
    let (_, agreements) = owner_call(&app, &owner, Method::GET, "/api/v1/agreements", None).await;
    let ended = agreements["agreements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == receipt["receipt"]["agreement_id"])
        .unwrap_or_else(|| panic!("{agreements}"));
    assert_eq!(ended["status"], "terminated", "{ended}");
    assert_eq!(ended["current"], false, "{ended}");
    rfc3339(&ended["ended_at"]);
}

#[tokio::test]
async fn ending_an_agreement_ends_its_tokens() {
    let (_dir, app, owner) = ready_vault().await;

    // The owner terminates.
    let (brand, receipt) = onboard(&app, &owner, "Terminated").await;
    let id = receipt["receipt"]["agreement_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = brand.access_token(&app).await;
    let (status, ended) = owner_call(
        &app,
        &owner,
        Method::DELETE,
        &format!("/api/v1/agreements/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["id"], id);
    assert_eq!(ended["status"], "terminated");
    rfc3339(&ended["ended_at"]);
    assert_refused(&app, &token, "a token under a terminated agreement").await;
    assert_terms_needed(&app, &brand).await;
    // The brand's receipt records it, signed.
    let res = brand
        .brand_request(
            &app,
            Method::GET,
            &format!("/brand/v1/agreements/{id}"),
            json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let terminated: Value = res.json().await.unwrap();
    assert_eq!(events_chained(&terminated).last().unwrap(), "terminated");
    assert_eq!(terminated["receipt"]["status"], "terminated");
    assert!(receipt_verifies(&app, &terminated).await);

    // The brand withdraws.
    let (brand, receipt) = onboard(&app, &owner, "Withdrawn").await;
    let id = receipt["receipt"]["agreement_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = brand.access_token(&app).await;
    let res = brand
        .brand_request(
            &app,
            Method::DELETE,
            &format!("/brand/v1/agreements/{id}"),
            json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_refused(&app, &token, "a token under a withdrawn agreement").await;
    assert_terms_needed(&app, &brand).await;
    let (_, agreements) = owner_call(&app, &owner, Method::GET, "/api/v1/agreements", None).await;
    let withdrawn = agreements["agreements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("{agreements}"));
    assert_eq!(withdrawn["status"], "withdrawn");
    rfc3339(&withdrawn["ended_at"]);

    // Accepting again starts over.
    brand.accept_current(&app).await;
    assert_accepted(
        &app,
        &brand.access_token(&app).await,
        "after accepting again",
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Forgeries
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn forged_tokens_are_refused() {
    let (_dir, app, owner) = ready_vault().await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let token = brand.access_token(&app).await;
    assert_accepted(&app, &token, "the genuine token").await;
    let (header, claims) = jwt_parts(&token);
    let kid = header["kid"].as_str().unwrap();
    let parts: Vec<&str> = token.split('.').collect();

    // Signed by another P-256 key claiming the vault's kid.
    let other = ClientKey::generate(kid);
    assert_refused(
        &app,
        &other.sign(Some("at+jwt"), kid, &claims),
        "another key",
    )
    .await;

    // alg: none, with no signature and with the genuine one.
    let none = b64(json!({"alg": "none", "typ": "at+jwt", "kid": kid})
        .to_string()
        .as_bytes());
    assert_refused(&app, &format!("{none}.{}.", parts[1]), "alg none").await;
    assert_refused(
        &app,
        &format!("{none}.{}.{}", parts[1], parts[2]),
        "alg none, genuine signature",
    )
    .await;

    // HS256 keyed with what is public: the JWK's text, and the raw point.
    let set: Value = app
        .client
        .get(app.url("/oauth/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap()
        .clone();
    let raw_jwks_text = app
        .client
        .get(app.url("/oauth/jwks"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let x = unb64(jwk["x"].as_str().unwrap());
    let y = unb64(jwk["y"].as_str().unwrap());
    let mut point = vec![4u8];
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("the JWK's JSON", jwk.to_string().into_bytes()),
        ("the JWKS text", raw_jwks_text.into_bytes()),
        ("x || y", [x.clone(), y.clone()].concat()),
        ("04 || x || y", point),
    ];
    for (what, secret) in secrets {
        let mut hs = Header::new(Algorithm::HS256);
        hs.typ = Some("at+jwt".into());
        hs.kid = Some(kid.to_owned());
        let forged =
            jsonwebtoken::encode(&hs, &claims, &EncodingKey::from_secret(&secret)).unwrap();
        assert_refused(&app, &forged, &format!("HS256 keyed with {what}")).await;
    }

    // The genuine signature over changed claims or a changed header.
    for (what, change) in [
        (
            "a wider scope",
            json!({"scope": "intents:read offers:write agreements:read admin"}),
        ),
        (
            "a later expiry",
            json!({"exp": claims["exp"].as_u64().unwrap() + 86_400}),
        ),
        ("another person", json!({"sub": "someone-else"})),
    ] {
        let mut changed = claims.clone();
        for (k, v) in change.as_object().unwrap() {
            changed[k] = v.clone();
        }
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64(changed.to_string().as_bytes()),
            parts[2]
        );
        assert_refused(&app, &forged, &format!("tampered payload: {what}")).await;
    }
    let jwt_typ = b64(json!({"alg": "ES256", "typ": "JWT", "kid": kid})
        .to_string()
        .as_bytes());
    assert_refused(
        &app,
        &format!("{jwt_typ}.{}.{}", parts[1], parts[2]),
        "tampered header",
    )
    .await;

    // Not JWTs at all.
    let unsigned = parts[..2].join(".");
    for junk in ["", "a.b", "a.b.c", "vrm_opaque", unsigned.as_str()] {
        assert_refused(&app, junk, &format!("junk {junk:?}")).await;
    }
    // The genuine token still works after all that.
    assert_accepted(&app, &token, "the genuine token, last").await;
}

/// Tokens signed with the vault's own key that differ from a genuine one in one claim: each
/// check has to refuse on its own, since the signature is good.
#[tokio::test]
async fn tokens_with_the_vaults_signature_but_wrong_claims_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());
    let (owner, _) = app.setup().await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    app.stop();
    let (kid, pkcs8) = signing_key_of_stopped_vault(dir.path());
    let vault = ClientKey::from_pkcs8(pkcs8, &kid);

    let app = TestApp::start(dir.path());
    app.token().await;
    let token = brand.access_token(&app).await;
    let (header, claims) = jwt_parts(&token);
    assert_eq!(
        header["kid"], kid,
        "the key read from disk is not the active one"
    );

    // Control: the same claims re-signed with the same key are accepted, so every refusal below
    // is the claim's doing.
    assert_accepted(
        &app,
        &vault.sign(Some("at+jwt"), &kid, &claims),
        "re-signed genuine",
    )
    .await;

    let with = |change: Value| {
        let mut changed = claims.clone();
        for (k, v) in change.as_object().unwrap() {
            changed[k] = v.clone();
        }
        vault.sign(Some("at+jwt"), &kid, &changed)
    };
    let cases = [
        ("aud = the issuer", with(json!({"aud": app.base}))),
        (
            "aud = another resource",
            with(json!({"aud": "https://elsewhere.example/brand/v1"})),
        ),
        ("no aud", {
            let mut c = claims.clone();
            c.as_object_mut().unwrap().remove("aud");
            vault.sign(Some("at+jwt"), &kid, &c)
        }),
        (
            "iss = another vault",
            with(json!({"iss": "https://elsewhere.example"})),
        ),
        (
            "expired",
            with(json!({"iat": now() - 1000, "exp": now() - 100})),
        ),
        ("not yet valid", with(json!({"nbf": now() + 3600}))),
        ("an unknown jti", with(json!({"jti": random_id()}))),
        ("typ JWT", vault.sign(Some("JWT"), &kid, &claims)),
        ("no typ", vault.sign(None, &kid, &claims)),
        (
            "the receipt typ",
            vault.sign(Some("vrm-receipt+jwt"), &kid, &claims),
        ),
        (
            "an unknown kid",
            vault.sign(Some("at+jwt"), "not-the-kid", &claims),
        ),
    ];
    for (what, forged) in cases {
        assert_refused(&app, &forged, what).await;
    }
    assert_accepted(&app, &token, "the genuine token, last").await;
}

#[tokio::test]
async fn tokens_expire() {
    let (_dir, app, owner) = ready_vault_with(&["--access-token-seconds", "1"]).await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    // Ask at the start of a second, so the one-second token is still good when first used.
    let into_second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(
        1010 - into_second.min(1000),
    )))
    .await;
    let (status, issued) = brand.token_response(&app, &[]).await;
    assert_eq!(status, 200, "{issued}");
    assert_eq!(issued["expires_in"], 1);
    let token = issued["access_token"].as_str().unwrap();
    let (_, claims) = jwt_parts(token);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        1
    );
    assert_accepted(&app, token, "a one-second token, at once").await;

    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_refused(&app, token, "an expired token").await;
    let (_, introspected) = brand.introspect(&app, token).await;
    assert_eq!(introspected, json!({"active": false}));
}

// ---------------------------------------------------------------------------------------------
// private_key_jwt
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn private_key_jwt_clients_sign_single_use_assertions() {
    let (_dir, app, owner) = ready_vault().await;
    let brand = register_key_brand(&app, &owner, "Keyed", ClientKey::generate("brand-key-1")).await;
    let key = key_of(&brand);
    let token_url = app.url("/oauth/token");

    assert_terms_needed(&app, &brand).await;
    brand.accept_current(&app).await;
    assert_accepted(
        &app,
        &brand.access_token(&app).await,
        "a keyed brand's token",
    )
    .await;

    // An assertion is good once.
    let assertion = key.assertion(&brand.client_id, &token_url, &random_id());
    let (status, body) = token_with_assertion(&app, &assertion).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = token_with_assertion(&app, &assertion).await;
    // RFC 6749 §5.2: a client that did not use HTTP Basic gets no Basic challenge, so a 400.
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_client")),
        "replay: {body}"
    );

    let id = brand.client_id.as_str();
    let claims = |iss: &str, aud: &str, iat: u64, exp: u64| json!({"iss": iss, "sub": id, "aud": aud, "jti": random_id(), "iat": iat, "exp": exp});
    let stranger = ClientKey::generate("brand-key-1");
    let cases = [
        (
            "signed by another key with the registered kid",
            stranger.assertion(id, &token_url, &random_id()),
        ),
        (
            "for another audience",
            key.assertion(id, "https://elsewhere.example/oauth/token", &random_id()),
        ),
        (
            "expired",
            key.sign(
                Some("JWT"),
                &key.kid,
                &claims(id, &token_url, now() - 600, now() - 300),
            ),
        ),
        (
            "issued by someone else",
            key.sign(
                Some("JWT"),
                &key.kid,
                &claims("someone-else", &token_url, now(), now() + 60),
            ),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"JWT"}"#),
                b64(claims(id, &token_url, now(), now() + 60)
                    .to_string()
                    .as_bytes())
            ),
        ),
    ];
    for (what, assertion) in cases {
        let (status, body) = token_with_assertion(&app, &assertion).await;
        assert_eq!(
            (status, &body["error"]),
            (400, &json!("invalid_client")),
            "{what}: {body}"
        );
    }
    // A keyed client has no secret to fall back on.
    let (status, body) = status_json(
        app.client
            .post(&token_url)
            .basic_auth(id, Some(""))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("invalid_client")),
        "{body}"
    );

    // Revocation and introspection take the same authentication.
    let token = brand.access_token(&app).await;
    let (status, active) = brand.introspect(&app, &token).await;
    assert_eq!((status, &active["active"]), (200, &json!(true)), "{active}");
    assert_eq!(brand.revoke(&app, &token).await, 200);
    assert_refused(&app, &token, "a keyed brand's revoked token").await;
}

// ---------------------------------------------------------------------------------------------
// Signing keys, audit, OpenAPI
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn rotating_the_signing_key_keeps_receipts_verifiable() {
    let (_dir, app, owner) = ready_vault().await;
    let (brand, receipt) = onboard(&app, &owner, "Acme").await;
    let old_kid = jwt_parts(&brand.access_token(&app).await).0["kid"].clone();

    let (status, rotated) = owner_call(
        &app,
        &owner,
        Method::POST,
        "/api/v1/signing-keys/rotate",
        None,
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["previous_kid"], old_kid);
    assert_ne!(rotated["kid"], old_kid);
    let kids: BTreeSet<String> = jwks(&app)
        .await
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert!(kids.contains(rotated["kid"].as_str().unwrap()), "{kids:?}");
    assert!(
        kids.contains(old_kid.as_str().unwrap()),
        "the previous key left the JWKS at once"
    );

    let token = brand.access_token(&app).await;
    assert_eq!(jwt_parts(&token).0["kid"], rotated["kid"]);
    assert_accepted(&app, &token, "a token from the new key").await;
    assert!(
        receipt_verifies(&app, &receipt).await,
        "an earlier receipt stopped verifying"
    );
}

#[tokio::test]
async fn the_audit_log_records_the_brand_lifecycle() {
    let (_dir, app, owner) = ready_vault().await;
    let invitation = invite(&app, &owner, json!({})).await;
    let initial = invitation["initial_access_token"].as_str().unwrap();
    let (status, registered) =
        status_json(register(&app, Some(initial), &basic_metadata("Acme")).await).await;
    assert_eq!(status, 201, "{registered}");
    let brand = Brand {
        client_id: registered["client_id"].as_str().unwrap().to_owned(),
        name: "Acme".into(),
        auth: ClientAuth::Secret(registered["client_secret"].as_str().unwrap().to_owned()),
    };
    let receipt = brand.accept_current(&app).await;
    let token = brand.access_token(&app).await;
    assert_eq!(brand.revoke(&app, &token).await, 200);
    let path = format!("/api/v1/brands/{}", brand.client_id);
    let mut owner_steps = vec![
        (Method::POST, format!("{path}/suspend")),
        (Method::POST, format!("{path}/resume")),
        (Method::POST, "/api/v1/signing-keys/rotate".to_owned()),
    ];
    let unused = invite(&app, &owner, json!({})).await;
    owner_steps.push((
        Method::DELETE,
        format!("/api/v1/invitations/{}", unused["id"].as_str().unwrap()),
    ));
    owner_steps.push((
        Method::DELETE,
        format!(
            "/api/v1/agreements/{}",
            receipt["receipt"]["agreement_id"].as_str().unwrap()
        ),
    ));
    owner_steps.push((Method::DELETE, path.clone()));
    for (method, step) in owner_steps {
        let (status, body) = owner_call(&app, &owner, method, &step, None).await;
        assert!(matches!(status, 200 | 204), "{step}: {status} {body}");
    }
    let (status, _) = publish(&app, &owner, &narrowed("pd:Location")).await;
    assert_eq!(status, 201);
    let (other, receipt) = onboard(&app, &owner, "Other").await;
    let res = other
        .brand_request(
            &app,
            Method::DELETE,
            &format!(
                "/brand/v1/agreements/{}",
                receipt["receipt"]["agreement_id"].as_str().unwrap()
            ),
            json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let (status, page) =
        owner_call(&app, &owner, Method::GET, "/api/v1/audit?limit=200", None).await;
    assert_eq!(status, 200, "{page}");
    assert!(page["next_before"].is_null(), "more than one page: {page}");
    let entries = page["entries"].as_array().unwrap();
    let find = |action: &str, target: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action && (target.is_empty() || e["target"] == target))
            .unwrap_or_else(|| panic!("no {action} on {target:?} in {page}"))
    };
    for (action, actor) in [
        ("invitation.created", "owner"),
        ("invitation.deleted", "owner"),
        ("terms.published", "owner"),
        ("signing_key.created", "system"),
        ("signing_key.rotated", "owner"),
    ] {
        assert_eq!(find(action, "")["actor"], actor, "{action}");
    }
    for (action, actor) in [
        ("brand.registered", "brand"),
        ("agreement.accepted", "brand"),
        ("token.issued", "brand"),
        ("token.revoked", "brand"),
        ("brand.suspended", "owner"),
        ("brand.resumed", "owner"),
        ("agreement.terminated", "owner"),
        ("brand.removed", "owner"),
    ] {
        assert_eq!(find(action, &brand.client_id)["actor"], actor, "{action}");
    }
    assert_eq!(
        find("agreement.withdrawn", &other.client_id)["actor"],
        "brand"
    );
    // Nothing secret is on the record.
    let text = page.to_string();
    for secret in [
        initial,
        unused["initial_access_token"].as_str().unwrap(),
        registered["client_secret"].as_str().unwrap(),
        token.as_str(),
    ] {
        assert!(!text.contains(secret), "the audit log holds a secret");
    }
    let (_, verify) = owner_call(&app, &owner, Method::GET, "/api/v1/audit/verify", None).await;
    assert_eq!(verify["ok"], true, "{verify}");
}
