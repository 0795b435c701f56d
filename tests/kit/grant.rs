//! Helpers for the data-grant tests: an in-process server on a clock the test moves (so expiry is
//! seen without sleeping), the person's sample data, owner-made grants, the brand data API, and
//! the authorization-code flow with PKCE driven the way a brand's OAuth library and the person's
//! browser would drive it, one redirect at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use reqwest::{Method, Response, Url};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use tokio::sync::oneshot;
use vrm_vault::clock::{Clock as _, ManualClock, SystemClock};
use vrm_vault::http::AppState;
use vrm_vault::service::{Settings, Vault};

use crate::kit::brand::{
    Brand, ClientAuth, Server, b64, owner_call, owner_session, random_id, register, status_json,
};
use crate::kit::owner::PASSPHRASE;

/// The type of the authorization details that ask for data (RFC 9396).
pub const DETAILS_TYPE: &str = "urn:vrm-vault:data-access:v1";
/// The redirect URI code brands register: http is allowed on loopback only.
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
/// The purpose every permitted sample grant declares.
pub const SERVICE: &str = "dpv:ServiceProvision";

/// The person's sample data. The values are distinctive so that a leak is easy to spot in any
/// body, message or log entry.
pub const EMAIL: &str = "alice.liddell@example.org";
pub const WORK_EMAIL: &str = "a.liddell@rabbit-hole.example";
pub const PHONE: &str = "+44 20 7946 0958";
pub const NAME: &str = "Alice Pleasance Liddell";
pub const MEMBERSHIP: &str = "ACME-7731-0042";

/// The vault server run inside the test process on a [`ManualClock`]: the same router and
/// service as the binary, but time moves only when the test calls [`InProcessApp::advance`].
pub struct InProcessApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    shutdown: Option<oneshot::Sender<()>>,
    // Declared last so the directory outlives the shutdown signal sent on drop.
    _dir: tempfile::TempDir,
}

impl InProcessApp {
    /// Binds a free loopback port, starts the vault on a fresh data directory with the clock at
    /// the real time, and serves it in a task of the test's runtime.
    pub async fn start() -> InProcessApp {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut settings = Settings::new(dir.path().to_path_buf());
        settings.issuer = format!("http://{addr}");
        // The tests move the clock by an hour at a time; the owner's session should not be
        // what expires.
        settings.session_idle = Duration::hours(11);
        let clock = Arc::new(ManualClock::new(SystemClock.now()));
        let vault = Vault::start(settings, clock.clone()).unwrap();
        let (shutdown, signal) = oneshot::channel::<()>();
        tokio::spawn(vrm_vault::http::serve(
            listener,
            AppState::new(vault, false),
            async move {
                let _ = signal.await;
            },
        ));
        InProcessApp {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap(),
            clock,
            shutdown: Some(shutdown),
            _dir: dir,
        }
    }

    /// Starts the server and sets the vault up; returns it with the owner's session token.
    pub async fn ready() -> (InProcessApp, String) {
        let app = InProcessApp::start().await;
        let body = owner_session(&app, "/api/v1/setup", PASSPHRASE).await;
        let owner = body["token"].as_str().unwrap().to_owned();
        (app, owner)
    }

    /// Moves the vault's clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        self.clock.advance(Duration::try_from(by).unwrap());
    }

    /// The vault's idea of now.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}

impl Server for InProcessApp {
    fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn base(&self) -> &str {
        &self.base
    }
}

impl Drop for InProcessApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap()
}

pub fn parse_time(value: &Value) -> OffsetDateTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a timestamp"));
    OffsetDateTime::parse(text, &Rfc3339).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The real time, for tests against the spawned binary.
pub fn wall_now() -> OffsetDateTime {
    SystemClock.now()
}

/// A string of JSON values as a set (order-insensitive comparisons of `fields`, `actions`).
pub fn string_set(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{value} is not an array"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

pub fn set_of(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Writes a record as the owner (default category from its path).
pub async fn put_record(app: &impl Server, owner: &str, path: &str, value: Value) {
    let (status, body) = owner_call(
        app,
        owner,
        Method::PUT,
        &format!("/api/v1/records/{path}"),
        Some(json!({ "value": value })),
    )
    .await;
    assert!(
        status == 200 || status == 201,
        "PUT {path}: {status} {body}"
    );
}

/// A record's value as the owner sees it.
pub async fn record_value(app: &impl Server, owner: &str, path: &str) -> Value {
    let (status, body) = owner_call(
        app,
        owner,
        Method::GET,
        &format!("/api/v1/records/{path}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["value"].clone()
}

/// Stores the sample data: two email addresses, a phone number, a name and a membership number.
pub async fn seed(app: &impl Server, owner: &str) {
    for (path, value) in [
        ("contact.email", EMAIL),
        ("work.email", WORK_EMAIL),
        ("contact.phone", PHONE),
        ("profile.name", NAME),
        ("memberships.acme", MEMBERSHIP),
    ] {
        put_record(app, owner, path, json!(value)).await;
    }
}

/// The body of `POST /api/v1/grants`: reading `fields` for service provision until `expires_at`.
pub fn grant_body(client_id: &str, fields: &[&str], expires_at: OffsetDateTime) -> Value {
    json!({
        "client_id": client_id,
        "fields": fields,
        "actions": ["read"],
        "purpose": SERVICE,
        "expires_at": rfc3339(expires_at),
    })
}

pub async fn create_grant(app: &impl Server, owner: &str, body: Value) -> (u16, Value) {
    owner_call(app, owner, Method::POST, "/api/v1/grants", Some(body)).await
}

/// Creates a grant, expecting 201; returns the grant view.
pub async fn grant(app: &impl Server, owner: &str, body: Value) -> Value {
    let (status, view) = create_grant(app, owner, body).await;
    assert_eq!(status, 201, "{view}");
    view
}

/// A grant reading `fields` for a day: the common case.
pub async fn day_grant(app: &impl Server, owner: &str, brand: &Brand, fields: &[&str]) -> Value {
    grant(
        app,
        owner,
        grant_body(&brand.client_id, fields, wall_now() + Duration::days(1)),
    )
    .await
}

pub fn id_of(view: &Value) -> String {
    view["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {view}"))
        .to_owned()
}

/// The owner's view of one grant.
pub async fn owner_grant(app: &impl Server, owner: &str, id: &str) -> Value {
    let (status, view) = owner_call(
        app,
        owner,
        Method::GET,
        &format!("/api/v1/grants/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{view}");
    view
}

/// The owner's list of grants, `query` being `""` or `"?status=..."`.
pub async fn owner_grants(app: &impl Server, owner: &str, query: &str) -> Vec<Value> {
    let (status, body) = owner_call(
        app,
        owner,
        Method::GET,
        &format!("/api/v1/grants{query}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["grants"].as_array().unwrap().clone()
}

pub fn ids(grants: &[Value]) -> Vec<String> {
    grants.iter().map(id_of).collect()
}

pub async fn revoke_grant(app: &impl Server, owner: &str, id: &str) -> (u16, Value) {
    owner_call(
        app,
        owner,
        Method::DELETE,
        &format!("/api/v1/grants/{id}"),
        None,
    )
    .await
}

/// `authorization_details` naming an owner-made grant, for the client-credentials grant.
pub fn grant_details(grant_id: &str) -> String {
    json!([{ "type": DETAILS_TYPE, "grant_id": grant_id }]).to_string()
}

/// A client-credentials token request for an owner-made grant.
pub async fn grant_token_response(
    app: &impl Server,
    brand: &Brand,
    grant_id: &str,
) -> (u16, Value) {
    brand
        .token_response(app, &[("authorization_details", &grant_details(grant_id))])
        .await
}

/// An access token for an owner-made grant, expecting the token endpoint to issue one.
pub async fn grant_token(app: &impl Server, brand: &Brand, grant_id: &str) -> String {
    let (status, body) = grant_token_response(app, brand, grant_id).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Asserts the token endpoint issued nothing for this request.
pub fn assert_no_token_issued(status: u16, body: &Value, why: &str) {
    assert!(
        (400..500).contains(&status) && body.get("access_token").is_none(),
        "{why}: {status} {body}"
    );
    assert!(body["error"].is_string(), "{why}: {body}");
}

/// `GET /brand/v1/data` with a bearer token.
pub async fn read_all(app: &impl Server, token: &str) -> Response {
    app.client()
        .get(app.url("/brand/v1/data"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// `GET /brand/v1/data/{path}` with a bearer token.
pub async fn read_one(app: &impl Server, token: &str, path: &str) -> Response {
    app.client()
        .get(app.url(&format!("/brand/v1/data/{path}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// `PUT /brand/v1/data/{path}` with a bearer token.
pub async fn write_one(app: &impl Server, token: &str, path: &str, value: Value) -> Response {
    app.client()
        .put(app.url(&format!("/brand/v1/data/{path}")))
        .bearer_auth(token)
        .json(&json!({ "value": value }))
        .send()
        .await
        .unwrap()
}

/// `GET /brand/v1/data`, expecting 200; returns the body.
pub async fn read_ok(app: &impl Server, token: &str, why: &str) -> Value {
    let (status, body) = status_json(read_all(app, token).await).await;
    assert_eq!(status, 200, "{why}: {body}");
    body
}

/// The names of the fields a `GET /brand/v1/data` body carries.
pub fn field_names(body: &Value) -> BTreeSet<String> {
    body["fields"]
        .as_object()
        .unwrap_or_else(|| panic!("no fields object in {body}"))
        .keys()
        .cloned()
        .collect()
}

/// Asserts a brand data request was refused as RFC 6750 says for a dead token or grant: 401
/// with a Bearer `invalid_token` challenge.
pub async fn assert_invalid_token(res: Response, why: &str) {
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.text().await.unwrap();
    assert_eq!(status, 401, "{why}: {body}");
    let challenge = challenge.unwrap_or_else(|| panic!("{why}: 401 without WWW-Authenticate"));
    assert!(
        challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_token\""),
        "{why}: {challenge}"
    );
}

/// A GET on the brand API authenticated by the brand's client secret (HTTP Basic).
pub async fn client_get(app: &impl Server, brand: &Brand, path: &str) -> (u16, Value) {
    let ClientAuth::Secret(secret) = &brand.auth else {
        panic!("{} has no secret", brand.name)
    };
    status_json(
        app.client()
            .get(app.url(path))
            .basic_auth(&brand.client_id, Some(secret))
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Audit entries (newest first) with this action.
pub async fn audit_entries(app: &impl Server, owner: &str, action: &str) -> Vec<Value> {
    let (status, page) = owner_call(app, owner, Method::GET, "/api/v1/audit?limit=200", None).await;
    assert_eq!(status, 200, "{page}");
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The authorization-code flow
// ---------------------------------------------------------------------------------------------

/// RFC 7591 metadata of a brand that asks the person through the authorization-code flow.
pub fn code_metadata(name: &str) -> Value {
    json!({
        "client_name": name,
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "redirect_uris": [REDIRECT_URI],
    })
}

/// Registers a code brand (client_secret_basic) and has it accept the current terms.
pub async fn code_brand(app: &impl Server, owner: &str, name: &str) -> Brand {
    let token = crate::kit::brand::invitation_token(app, owner).await;
    let (status, body) = status_json(register(app, Some(&token), &code_metadata(name)).await).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["redirect_uris"], json!([REDIRECT_URI]), "{body}");
    let brand = Brand::with_secret(name, &body);
    brand.accept_current(app).await;
    brand
}

/// A PKCE verifier and its S256 challenge (RFC 7636).
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn generate() -> Pkce {
        let verifier = format!("{}{}", random_id(), random_id());
        let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
        Pkce {
            challenge: b64(digest.as_ref()),
            verifier,
        }
    }
}

/// `authorization_details` asking to read `fields` for `purpose`.
pub fn data_details(app: &impl Server, fields: &[&str], purpose: &str) -> Value {
    json!([{
        "type": DETAILS_TYPE,
        "fields": fields,
        "actions": ["read"],
        "purpose": purpose,
        "locations": [app.url("/brand/v1")],
    }])
}

/// The query of an authorization request, as an editable list of parameters.
pub struct AuthRequest {
    pub params: Vec<(String, String)>,
    pub state: String,
}

impl AuthRequest {
    /// A complete, valid request for `brand` reading `fields` for service provision.
    pub fn new(app: &impl Server, brand: &Brand, pkce: &Pkce, fields: &[&str]) -> AuthRequest {
        let state = format!("st-{}", random_id());
        let params = [
            ("response_type", "code".to_owned()),
            ("client_id", brand.client_id.clone()),
            ("redirect_uri", REDIRECT_URI.to_owned()),
            ("state", state.clone()),
            ("code_challenge", pkce.challenge.clone()),
            ("code_challenge_method", "S256".to_owned()),
            (
                "authorization_details",
                data_details(app, fields, SERVICE).to_string(),
            ),
            ("resource", app.url("/brand/v1")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        AuthRequest { params, state }
    }

    pub fn set(mut self, key: &str, value: &str) -> AuthRequest {
        self.params.retain(|(k, _)| k != key);
        self.params.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn without(mut self, key: &str) -> AuthRequest {
        self.params.retain(|(k, _)| k != key);
        self
    }

    /// `GET /oauth/authorize` as the browser sends it, without following the redirect.
    pub async fn send(&self, app: &impl Server) -> Response {
        no_redirects()
            .get(app.url("/oauth/authorize"))
            .query(&self.params)
            .send()
            .await
            .unwrap()
    }
}

/// A client that shows each redirect instead of following it.
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The `Location` of a response, resolved against the server's base URL.
pub fn location(app: &impl Server, res: &Response) -> Option<Url> {
    let text = res.headers().get("location")?.to_str().unwrap();
    Some(Url::parse(app.base()).unwrap().join(text).unwrap())
}

pub fn query_of(url: &Url) -> BTreeMap<String, String> {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Asserts `res` redirects the browser back to the brand with `error` and the request's state.
pub fn assert_error_redirect(
    app: &impl Server,
    res: &Response,
    request: &AuthRequest,
    error: &str,
) {
    let status = res.status().as_u16();
    let to = location(app, res).unwrap_or_else(|| panic!("{status} without Location"));
    assert_eq!(status, 303, "{to}");
    assert!(
        to.as_str().starts_with(&format!("{REDIRECT_URI}?")),
        "redirected to {to}"
    );
    let query = query_of(&to);
    assert_eq!(query.get("error").map(String::as_str), Some(error), "{to}");
    assert_eq!(query.get("state"), Some(&request.state), "{to}");
    assert!(!query.contains_key("code"), "{to}");
}

/// Sends the authorization request and follows it to the consent page; returns the request id.
pub async fn consent_request(app: &impl Server, request: &AuthRequest) -> String {
    let res = request.send(app).await;
    let status = res.status().as_u16();
    let to = location(app, &res);
    let body = res.text().await.unwrap();
    assert_eq!(status, 303, "{body}");
    let to = to.unwrap_or_else(|| panic!("303 without Location: {body}"));
    assert_eq!(to.path(), "/consent", "{to}");
    assert_eq!(
        to.host_str(),
        Url::parse(app.base()).unwrap().host_str(),
        "{to}"
    );
    query_of(&to)
        .remove("request")
        .unwrap_or_else(|| panic!("no request id in {to}"))
}

/// The consent page's data.
pub async fn consent_view(app: &impl Server, owner: &str, id: &str) -> (u16, Value) {
    owner_call(
        app,
        owner,
        Method::GET,
        &format!("/api/v1/consent/{id}"),
        None,
    )
    .await
}

/// The person's decision on a consent request.
pub async fn decide(app: &impl Server, owner: &str, id: &str, decision: Value) -> (u16, Value) {
    owner_call(
        app,
        owner,
        Method::POST,
        &format!("/api/v1/consent/{id}"),
        Some(decision),
    )
    .await
}

/// Approves as asked and returns the `code` from the redirect, checking its `state`.
pub async fn approve(app: &impl Server, owner: &str, id: &str, request: &AuthRequest) -> String {
    approve_with(app, owner, id, request, json!({ "decision": "approve" })).await
}

/// Approves with `decision` (which may narrow) and returns the `code` from the redirect.
pub async fn approve_with(
    app: &impl Server,
    owner: &str,
    id: &str,
    request: &AuthRequest,
    decision: Value,
) -> String {
    let (status, body) = decide(app, owner, id, decision).await;
    assert_eq!(status, 200, "{body}");
    let to = Url::parse(body["redirect_to"].as_str().unwrap()).unwrap();
    assert!(
        to.as_str().starts_with(&format!("{REDIRECT_URI}?")),
        "redirected to {to}"
    );
    let mut query = query_of(&to);
    assert_eq!(query.get("state"), Some(&request.state), "{to}");
    assert!(!query.contains_key("error"), "{to}");
    query
        .remove("code")
        .unwrap_or_else(|| panic!("no code in {to}"))
}

/// The whole front channel: authorization request, consent approved as asked; returns the code.
pub async fn code_for(app: &impl Server, owner: &str, request: &AuthRequest) -> String {
    let id = consent_request(app, request).await;
    approve(app, owner, &id, request).await
}

/// `POST /oauth/token` with grant_type=authorization_code.
pub async fn exchange(
    app: &impl Server,
    brand: &Brand,
    code: &str,
    verifier: Option<&str>,
    redirect_uri: &str,
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
    ];
    if let Some(verifier) = verifier {
        form.push(("code_verifier", verifier));
    }
    status_json(
        brand
            .oauth_post(app, "/oauth/token", &form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Exchanges a code as a well-behaved brand does, expecting tokens.
pub async fn exchange_ok(app: &impl Server, brand: &Brand, code: &str, pkce: &Pkce) -> Value {
    let (status, body) = exchange(app, brand, code, Some(&pkce.verifier), REDIRECT_URI).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// `POST /oauth/token` with grant_type=refresh_token.
pub async fn refresh(app: &impl Server, brand: &Brand, refresh_token: &str) -> (u16, Value) {
    status_json(
        brand
            .oauth_post(
                app,
                "/oauth/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                ],
            )
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Asserts an RFC 6749 §5.2 error with this code.
pub fn assert_oauth_error(status: u16, body: &Value, error: &str, why: &str) {
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some(error)),
        "{why}: {body}"
    );
    assert!(body.get("access_token").is_none(), "{why}: {body}");
}
