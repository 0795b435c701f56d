//! Brands, typed: a brand is an OAuth 2.0 client of the vault, so these speak the protocol the
//! way a brand's own library would (invitation, RFC 7591 registration, agreement,
//! client-credentials tokens), and decode what comes back by hand rather than trusting the
//! vault's own code to check itself.
//!
//! Shared by the integration tests and the benches, so that a brand is set up the same way
//! everywhere: [`register_brand`] or [`register_with`], then [`Brand::accept`] and
//! [`Brand::token_response`]. Everything takes a [`Server`], the vault as a client sees it:
//! the spawned binary (`TestApp` in the tests), a server run in-process on a test clock, or a
//! bench's [`Remote`].

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use reqwest::{Method, RequestBuilder, Response};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

/// A running vault the helpers can speak to: the spawned binary (the tests' `TestApp`), a server
/// run in-process on a clock the test moves ([`grant::InProcessApp`](super::grant::InProcessApp)), or a [`Remote`].
///
/// Not to be confused with [`crate::kit::server::Server`], the child process handle: this is
/// the client's view of any vault, whoever started it.
pub trait Server: Sync {
    fn client(&self) -> &reqwest::Client;
    /// The issuer: `http://127.0.0.1:<port>`.
    fn base(&self) -> &str;
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }
}

/// A vault known only by its address, with the client to speak to it: what a bench holds.
pub struct Remote {
    pub client: reqwest::Client,
    /// The issuer: `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Server for Remote {
    fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn base(&self) -> &str {
        &self.base
    }
}

/// Every scope a brand can ask for, in the order the contract lists them.
pub const ALL_SCOPES: &str = "intents:read offers:write agreements:read";
/// RFC 7523's client assertion type.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The template a new vault publishes as version 1 of its terms.
pub const SD_BASE: &str = include_str!("../../policies/sd-base.json");

pub fn sd_base() -> Value {
    serde_json::from_str(SD_BASE).unwrap()
}

/// Asserts a space-separated scope string names exactly these scopes, in any order (RFC 6749
/// §3.3: the order does not matter).
pub fn assert_scopes(actual: &Value, expected: &str) {
    let text = actual
        .as_str()
        .unwrap_or_else(|| panic!("scope {actual} is not a string"));
    let set = |s: &str| -> std::collections::BTreeSet<String> {
        s.split(' ').map(str::to_owned).collect()
    };
    assert_eq!(set(text), set(expected), "scope {text:?}");
}

/// base64url without padding, as JOSE writes it.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text)
        .unwrap_or_else(|e| panic!("{text:?} is not base64url without padding: {e}"))
}

/// The header and claims of a compact JWS, decoded without checking anything.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {token}");
    (
        serde_json::from_slice(&unb64(parts[0])).unwrap(),
        serde_json::from_slice(&unb64(parts[1])).unwrap(),
    )
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A fresh random identifier (for `jti`s and names).
pub fn random_id() -> String {
    b64(&ring::rand::generate::<[u8; 16]>(&SystemRandom::new())
        .unwrap()
        .expose())
}

/// `sha256:<hex>` of the RFC 8785 canonical bytes of `value`: how terms are named.
pub fn jcs_hash(value: &Value) -> String {
    let bytes = serde_json_canonicalizer::to_vec(value).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// POSTs a passphrase to `path` (`/api/v1/setup` or `/api/v1/session`), expecting 201; returns
/// the body, which carries the owner's session and CSRF tokens (and, from setup, the recovery
/// key).
pub async fn owner_session(app: &impl Server, path: &str, passphrase: &str) -> Value {
    let (status, body) = status_json(
        app.client()
            .post(app.url(path))
            .json(&json!({ "passphrase": passphrase }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{path}: {body}");
    body
}

/// The status and JSON body of a response (`Null` when the body is empty or not JSON).
pub async fn status_json(res: Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// An owner API call with the session token.
pub async fn owner_call(
    app: &impl Server,
    owner: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .client()
        .request(method, app.url(path))
        .bearer_auth(owner);
    if let Some(body) = body {
        req = req.json(&body);
    }
    status_json(req.send().await.unwrap()).await
}

/// Publishes `terms` as the owner.
pub async fn publish(app: &impl Server, owner: &str, terms: &Value) -> (u16, Value) {
    owner_call(
        app,
        owner,
        Method::PUT,
        "/api/v1/terms",
        Some(json!({ "terms": terms })),
    )
    .await
}

/// The terms as brands see them (public, no authentication).
pub async fn public_terms(app: &impl Server) -> Value {
    let (status, body) = status_json(
        app.client()
            .get(app.url("/brand/v1/terms"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The sd-base template without `category` among the targets of its first permission: a
/// narrower, valid document.
pub fn narrowed(category: &str) -> Value {
    let mut doc = sd_base();
    let targets = doc["permission"][0]["target"].as_array_mut().unwrap();
    let before = targets.len();
    targets.retain(|t| t != category);
    assert_eq!(targets.len(), before - 1, "{category} is not in sd-base");
    doc
}

/// Creates an invitation (the owner's side) and returns its body.
pub async fn invite(app: &impl Server, owner: &str, body: Value) -> Value {
    let (status, invitation) =
        owner_call(app, owner, Method::POST, "/api/v1/invitations", Some(body)).await;
    assert_eq!(status, 201, "{invitation}");
    invitation
}

/// An invitation's initial access token.
pub async fn invitation_token(app: &impl Server, owner: &str) -> String {
    invite(app, owner, json!({})).await["initial_access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// RFC 7591 registration with `initial_token` as the bearer token (none when `None`).
pub async fn register(
    app: &impl Server,
    initial_token: Option<&str>,
    metadata: &Value,
) -> Response {
    let mut req = app.client().post(app.url("/oauth/register")).json(metadata);
    if let Some(token) = initial_token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

/// A brand's P-256 signing key, for `private_key_jwt`.
pub struct ClientKey {
    pkcs8: Vec<u8>,
    pub kid: String,
}

impl ClientKey {
    pub fn generate(kid: &str) -> ClientKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        ClientKey {
            pkcs8: pkcs8.as_ref().to_vec(),
            kid: kid.to_owned(),
        }
    }

    /// A key from its PKCS#8 document.
    pub fn from_pkcs8(pkcs8: Vec<u8>, kid: &str) -> ClientKey {
        ClientKey {
            pkcs8,
            kid: kid.to_owned(),
        }
    }

    /// The uncompressed public point: `04 || x || y`.
    pub fn public_point(&self) -> Vec<u8> {
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &self.pkcs8,
            &SystemRandom::new(),
        )
        .unwrap();
        let point = pair.public_key().as_ref().to_vec();
        assert_eq!((point.len(), point[0]), (65, 4));
        point
    }

    /// The public key as a JWK (RFC 7518 §6.2).
    pub fn public_jwk(&self) -> Value {
        let point = self.public_point();
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": b64(&point[1..33]),
            "y": b64(&point[33..65]),
            "kid": self.kid,
            "use": "sig",
            "alg": "ES256",
        })
    }

    pub fn encoding_key(&self) -> EncodingKey {
        EncodingKey::from_ec_der(&self.pkcs8)
    }

    /// Signs `claims` as an ES256 JWS with this key's `kid` and the given `typ`.
    pub fn sign(&self, typ: Option<&str>, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = typ.map(str::to_owned);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding_key()).unwrap()
    }

    /// An RFC 7523 client assertion: iss = sub = `client_id`, valid for a minute.
    pub fn assertion(&self, client_id: &str, aud: &str, jti: &str) -> String {
        self.sign(
            Some("JWT"),
            &self.kid,
            &json!({
                "iss": client_id,
                "sub": client_id,
                "aud": aud,
                "jti": jti,
                "iat": now(),
                "exp": now() + 60,
            }),
        )
    }
}

/// How a brand authenticates itself.
pub enum ClientAuth {
    Secret(String),
    Key(ClientKey),
}

/// A registered brand.
pub struct Brand {
    pub client_id: String,
    pub name: String,
    pub auth: ClientAuth,
}

impl Brand {
    /// The brand a `client_secret_basic` registration answered with (`body`, the 201's).
    pub fn with_secret(name: &str, body: &Value) -> Brand {
        Brand {
            client_id: body["client_id"].as_str().unwrap().to_owned(),
            name: name.to_owned(),
            auth: ClientAuth::Secret(body["client_secret"].as_str().unwrap().to_owned()),
        }
    }

    /// `Basic base64(client_id:client_secret)`, the `Authorization` header value of a
    /// `client_secret_basic` brand, for callers that build their own requests (the benches).
    pub fn basic(&self) -> String {
        let ClientAuth::Secret(secret) = &self.auth else {
            panic!("{} authenticates with a key, not a secret", self.name)
        };
        let pair = format!("{}:{secret}", self.client_id);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    /// A form POST to an OAuth endpoint with this brand's client authentication: HTTP Basic, or
    /// a fresh client assertion whose audience is the token endpoint.
    pub fn oauth_post(
        &self,
        app: &impl Server,
        path: &str,
        form: &[(&str, &str)],
    ) -> RequestBuilder {
        let mut fields: Vec<(String, String)> = form
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let req = app.client().post(app.url(path));
        let req = match &self.auth {
            ClientAuth::Secret(secret) => req.basic_auth(&self.client_id, Some(secret)),
            ClientAuth::Key(key) => {
                fields.push(("client_assertion_type".into(), ASSERTION_TYPE.into()));
                fields.push((
                    "client_assertion".into(),
                    key.assertion(&self.client_id, &app.url("/oauth/token"), &random_id()),
                ));
                req
            }
        };
        req.form(&fields)
    }

    /// A JSON request to the brand API with this brand's client authentication (HTTP Basic, or
    /// the assertion fields in the body, with the issuer as audience).
    pub fn brand_request(
        &self,
        app: &impl Server,
        method: Method,
        path: &str,
        body: Value,
    ) -> RequestBuilder {
        let req = app.client().request(method, app.url(path));
        match &self.auth {
            ClientAuth::Secret(secret) => req.basic_auth(&self.client_id, Some(secret)).json(&body),
            ClientAuth::Key(key) => {
                let mut body = body;
                body["client_assertion_type"] = json!(ASSERTION_TYPE);
                body["client_assertion"] =
                    json!(key.assertion(&self.client_id, app.base(), &random_id()));
                req.json(&body)
            }
        }
    }

    /// Accepts the terms with this hash: `POST /brand/v1/agreements`.
    pub async fn accept(&self, app: &impl Server, terms_hash: &str) -> Response {
        self.brand_request(
            app,
            Method::POST,
            "/brand/v1/agreements",
            json!({ "terms_hash": terms_hash }),
        )
        .send()
        .await
        .unwrap()
    }

    /// Accepts whatever terms are current, expecting a receipt.
    pub async fn accept_current(&self, app: &impl Server) -> Value {
        let hash = public_terms(app).await["hash"].as_str().unwrap().to_owned();
        let (status, receipt) = status_json(self.accept(app, &hash).await).await;
        assert_eq!(status, 201, "{receipt}");
        receipt
    }

    /// A client-credentials token request, with extra form fields.
    pub async fn token_response(&self, app: &impl Server, extra: &[(&str, &str)]) -> (u16, Value) {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend_from_slice(extra);
        status_json(
            self.oauth_post(app, "/oauth/token", &form)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// An access token, expecting the token endpoint to issue one.
    pub async fn access_token(&self, app: &impl Server) -> String {
        let (status, body) = self.token_response(app, &[]).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn introspect(&self, app: &impl Server, token: &str) -> (u16, Value) {
        status_json(
            self.oauth_post(app, "/oauth/introspect", &[("token", token)])
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn revoke(&self, app: &impl Server, token: &str) -> u16 {
        self.oauth_post(
            app,
            "/oauth/revoke",
            &[("token", token), ("token_type_hint", "access_token")],
        )
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
    }
}

/// RFC 7591 metadata of a brand that takes client-credentials tokens with every scope and
/// authenticates with a client secret (HTTP Basic).
pub fn basic_metadata(name: &str) -> Value {
    json!({
        "client_name": name,
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["client_credentials"],
        "scope": ALL_SCOPES,
    })
}

/// Registers a `client_secret_basic` brand through a fresh invitation.
pub async fn register_brand(app: &impl Server, owner: &str, name: &str) -> Brand {
    let token = invitation_token(app, owner).await;
    register_with(app, &token, &basic_metadata(name)).await
}

/// Registers a `client_secret_basic` brand described by `metadata` (which names it in
/// `client_name`) with the invitation's `initial_token`, expecting 201.
pub async fn register_with(app: &impl Server, initial_token: &str, metadata: &Value) -> Brand {
    let name = metadata["client_name"].as_str().unwrap_or_default();
    let (status, body) = status_json(register(app, Some(initial_token), metadata).await).await;
    assert_eq!(status, 201, "registration of {name}: {body}");
    Brand::with_secret(name, &body)
}

/// Registers a `private_key_jwt` brand whose JWKS holds `key`.
pub async fn register_key_brand(
    app: &impl Server,
    owner: &str,
    name: &str,
    key: ClientKey,
) -> Brand {
    let token = invitation_token(app, owner).await;
    let (status, body) = status_json(
        register(
            app,
            Some(&token),
            &json!({
                "client_name": name,
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": { "keys": [key.public_jwk()] },
                "grant_types": ["client_credentials"],
                "scope": ALL_SCOPES,
            }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["token_endpoint_auth_method"], "private_key_jwt");
    assert!(
        body.get("client_secret").is_none_or(Value::is_null),
        "a private_key_jwt client got a secret: {body}"
    );
    Brand {
        client_id: body["client_id"].as_str().unwrap().to_owned(),
        name: name.to_owned(),
        auth: ClientAuth::Key(key),
    }
}

/// Registers a basic brand and has it accept the current terms; returns it and its receipt.
pub async fn onboard(app: &impl Server, owner: &str, name: &str) -> (Brand, Value) {
    let brand = register_brand(app, owner, name).await;
    let receipt = brand.accept_current(app).await;
    (brand, receipt)
}

/// `GET /brand/v1/agreements` with a bearer token: the brand API call the access tests use.
pub async fn brand_call(app: &impl Server, token: &str) -> Response {
    app.client()
        .get(app.url("/brand/v1/agreements"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Asserts the brand API refuses `token` the way RFC 6750 says: 401 with a Bearer challenge.
pub async fn assert_refused(app: &impl Server, token: &str, why: &str) {
    let res = brand_call(app, token).await;
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.text().await.unwrap();
    assert_eq!(
        status, 401,
        "{why}: the brand API answered {status}: {body}"
    );
    let challenge = challenge.unwrap_or_else(|| panic!("{why}: 401 without WWW-Authenticate"));
    assert!(
        challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_token\""),
        "{why}: {challenge}"
    );
}

/// Asserts the brand API accepts `token`.
pub async fn assert_accepted(app: &impl Server, token: &str, why: &str) {
    let res = brand_call(app, token).await;
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    assert_eq!(status, 200, "{why}: {body}");
}

/// The vault's JWKS.
pub async fn jwks(app: &impl Server) -> JwkSet {
    app.client()
        .get(app.url("/oauth/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The vault's public key for `kid`.
pub async fn vault_key(app: &impl Server, kid: &str) -> DecodingKey {
    let set = jwks(app).await;
    let jwk = set
        .find(kid)
        .unwrap_or_else(|| panic!("kid {kid} is not in the JWKS"));
    DecodingKey::from_jwk(jwk).unwrap()
}

/// Whether a receipt's detached JWS verifies against the vault's JWKS over the RFC 8785 bytes
/// of its `receipt` object.
pub async fn receipt_verifies(app: &impl Server, receipt: &Value) -> bool {
    let signature = receipt["signature"].as_str().unwrap();
    let parts: Vec<&str> = signature.split('.').collect();
    assert_eq!(parts.len(), 3, "{signature}");
    assert_eq!(parts[1], "", "the payload is not detached: {signature}");
    let header: Value = serde_json::from_slice(&unb64(parts[0])).unwrap();
    assert_eq!(header["alg"], "ES256", "{header}");
    let key = vault_key(app, header["kid"].as_str().unwrap()).await;
    let payload = serde_json_canonicalizer::to_vec(&receipt["receipt"]).unwrap();
    let message = format!("{}.{}", parts[0], b64(&payload));
    jsonwebtoken::crypto::verify(parts[2], message.as_bytes(), &key, Algorithm::ES256)
        .unwrap_or(false)
}

/// The owner's view of one brand.
pub async fn owner_brand(app: &impl Server, owner: &str, client_id: &str) -> Value {
    let (status, brand) = owner_call(
        app,
        owner,
        Method::GET,
        &format!("/api/v1/brands/{client_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{brand}");
    brand
}
