//! The person's own AI assistant connecting over MCP: discovery (RFC 9728, RFC 8414), registration
//! without an invitation (RFC 7591), the person's approval on the consent page, the code flow with
//! PKCE and `resource=<public url>/mcp` (RFC 8707), refresh rotation, revocation, Settings'
//! "Disconnect", and that a brand's token and an assistant's never pass for each other.
//!
//! The MCP server itself is another feature (tests/vault/mcp.rs); here a probe route at
//! `/agent-probe` takes the same `AgentCaller` extractor (tokens are for the resource `/mcp`
//! whatever path carries them), served in-process beside the real router on a clock the test
//! moves.

use std::sync::Arc;

use axum::extract::Query;
use reqwest::Method;
use serde_json::{Value, json};
use time::Duration;
use tokio::sync::oneshot;
use vrm_vault::clock::{Clock as _, ManualClock, SystemClock};
use vrm_vault::domain::agents::AgentScope;
use vrm_vault::http::AppState;
use vrm_vault::http::agents::AgentCaller;
use vrm_vault::http::extract::Unsealed;
use vrm_vault::service::{Settings, Vault};

use crate::kit::brand::{
    Server, assert_refused, jwt_parts, onboard, owner_call, owner_session, status_json,
};
use crate::kit::grant::{Pkce, location, no_redirects, put_record, query_of};
use crate::kit::owner::PASSPHRASE;

const REDIRECT: &str = "http://127.0.0.1:33418/callback";
/// Where the probe answers: beside the real `/mcp`, which is the MCP server.
const PROBE: &str = "/agent-probe";
const EMAIL: &str = "ana.lima@example.org";

/// The vault in-process with a `/mcp` probe: it answers the agent the extractor let in, and,
/// with `?need=<scope>`, first requires that scope.
struct AgentApp {
    base: String,
    client: reqwest::Client,
    clock: Arc<ManualClock>,
    shutdown: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Server for AgentApp {
    fn client(&self) -> &reqwest::Client {
        &self.client
    }
    fn base(&self) -> &str {
        &self.base
    }
}

impl Drop for AgentApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

#[derive(serde::Deserialize)]
struct Need {
    need: Option<String>,
}

async fn probe(
    caller: AgentCaller,
    Unsealed(_open): Unsealed,
    Query(need): Query<Need>,
) -> Result<axum::Json<Value>, vrm_vault::error::AppError> {
    if let Some(scope) = need.need.as_deref().and_then(AgentScope::parse) {
        caller.require(scope)?;
    }
    let agent = caller.0;
    Ok(axum::Json(json!({
        "client_id": agent.client_id,
        "name": agent.name,
        "scopes": agent.scopes,
        "fields": agent.fields,
    })))
}

impl AgentApp {
    /// Starts the vault, sets it up, and returns it with the owner's session token.
    async fn ready() -> (AgentApp, String) {
        let app = AgentApp::start().await;
        let body = owner_session(&app, "/api/v1/setup", PASSPHRASE).await;
        let owner = body["token"].as_str().unwrap().to_owned();
        (app, owner)
    }

    /// Starts the vault in setup mode.
    async fn start() -> AgentApp {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut settings = Settings::new(dir.path().to_path_buf());
        settings.issuer = format!("http://{addr}");
        settings.session_idle = Duration::hours(11);
        let clock = Arc::new(ManualClock::new(SystemClock.now()));
        let vault = Vault::start(settings, clock.clone()).unwrap();
        // Loopback is a trusted proxy, so a test can name a client's address in
        // X-Forwarded-For (without it, every client is 127.0.0.1).
        let state =
            AppState::new(vault, false).with_trusted_proxies(vec!["127.0.0.0/8".parse().unwrap()]);
        let mcp = axum::Router::new()
            .route(PROBE, axum::routing::get(probe))
            .with_state(state.clone());
        let router = vrm_vault::http::app(state).merge(mcp);
        let (shutdown, signal) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = signal.await;
                })
                .await
        });
        AgentApp {
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

    fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    fn resource(&self) -> String {
        self.url("/mcp")
    }

    async fn mcp(&self, token: Option<&str>, need: Option<&str>) -> reqwest::Response {
        let mut req = self.client.get(self.url(PROBE));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(need) = need {
            req = req.query(&[("need", need)]);
        }
        req.send().await.unwrap()
    }
}

/// What an MCP client sends to register (the Python SDK's fields).
fn registration(name: &str) -> Value {
    json!({
        "client_name": name,
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
}

async fn register_agent(app: &AgentApp, body: &Value) -> (u16, Value) {
    status_json(
        app.client
            .post(app.url("/oauth/register"))
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn registered(app: &AgentApp, name: &str) -> String {
    let (status, body) = register_agent(app, &registration(name)).await;
    assert_eq!(status, 201, "{body}");
    body["client_id"].as_str().unwrap().to_owned()
}

/// The authorization request's query.
fn authorize_query(
    client_id: &str,
    pkce: &Pkce,
    resource: &str,
    scope: &str,
) -> Vec<(String, String)> {
    [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("state", "st-123"),
        ("code_challenge", &pkce.challenge),
        ("code_challenge_method", "S256"),
        ("resource", resource),
        ("scope", scope),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

async fn authorize(app: &AgentApp, query: &[(String, String)]) -> reqwest::Response {
    no_redirects()
        .get(app.url("/oauth/authorize"))
        .query(query)
        .send()
        .await
        .unwrap()
}

/// Sends the authorization request and returns the consent request's id.
async fn consent_id(app: &AgentApp, query: &[(String, String)]) -> String {
    let res = authorize(app, query).await;
    let to = location(app, &res).unwrap_or_else(|| panic!("no Location: {}", res.status()));
    assert_eq!(res.status(), 303, "{to}");
    assert_eq!(to.path(), "/consent", "{to}");
    query_of(&to)
        .get("agent")
        .unwrap_or_else(|| panic!("{to}"))
        .clone()
}

/// The person approves with `answer`; returns the code sent back to the assistant.
async fn approve(app: &AgentApp, owner: &str, id: &str, answer: Value) -> String {
    let (status, body) = owner_call(
        app,
        owner,
        Method::POST,
        &format!("/api/v1/agents/consent/{id}"),
        Some(answer),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let to = reqwest::Url::parse(body["redirect_to"].as_str().unwrap()).unwrap();
    assert!(to.as_str().starts_with(REDIRECT), "{to}");
    let query = query_of(&to);
    assert_eq!(query.get("state").map(String::as_str), Some("st-123"));
    assert_eq!(query.get("iss"), Some(&app.base), "{to}");
    query.get("code").unwrap_or_else(|| panic!("{to}")).clone()
}

async fn token_request(app: &AgentApp, form: &[(&str, &str)]) -> (u16, Value) {
    status_json(
        app.client
            .post(app.url("/oauth/token"))
            .form(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn exchange(app: &AgentApp, client_id: &str, code: &str, pkce: &Pkce) -> (u16, Value) {
    let resource = app.resource();
    token_request(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &pkce.verifier),
            ("resource", &resource),
        ],
    )
    .await
}

/// Registers, approves reading `contact.email` with every scope but proposing offers, and
/// exchanges the code: returns the client id and the token response.
async fn connected(app: &AgentApp, owner: &str) -> (String, Value) {
    let client_id = registered(app, "Claude").await;
    let pkce = Pkce::generate();
    let id = consent_id(
        app,
        &authorize_query(&client_id, &pkce, &app.resource(), ""),
    )
    .await;
    let code = approve(
        app,
        owner,
        &id,
        json!({
            "decision": "approve",
            "scopes": ["agent.records.read", "agent.intents.read", "agent.offers.read"],
            "fields": ["contact.email"],
        }),
    )
    .await;
    let (status, tokens) = exchange(app, &client_id, &code, &pkce).await;
    assert_eq!(status, 200, "{tokens}");
    (client_id, tokens)
}

fn challenge(res: &reqwest::Response) -> String {
    res.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn an_mcp_client_discovers_the_vault_from_a_401() {
    let (app, _owner) = AgentApp::ready().await;
    let res = app.mcp(None, None).await;
    assert_eq!(res.status(), 401);
    let metadata_url = app.url("/.well-known/oauth-protected-resource");
    let header = challenge(&res);
    assert!(
        header.starts_with("Bearer ")
            && header.contains(&format!("resource_metadata=\"{metadata_url}\""))
            && !header.contains("error="),
        "{header}"
    );
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let (status, prm) = status_json(app.client.get(app.url(path)).send().await.unwrap()).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(prm["resource"], app.resource(), "{prm}");
        assert_eq!(prm["authorization_servers"], json!([app.base]), "{prm}");
        assert_eq!(prm["bearer_methods_supported"], json!(["header"]), "{prm}");
        let scopes: Vec<&str> = prm["scopes_supported"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(
            scopes,
            [
                "agent.records.read",
                "agent.intents.read",
                "agent.intents.write",
                "agent.offers.read",
                "agent.offers.decline",
                "agent.offers.propose"
            ]
        );
    }
    let (_, meta) = status_json(
        app.client
            .get(app.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(meta["issuer"], app.base);
    assert_eq!(meta["registration_endpoint"], app.url("/oauth/register"));
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    let supported = meta["scopes_supported"].as_array().unwrap();
    assert!(supported.contains(&json!("agent.offers.propose")), "{meta}");
    assert!(supported.contains(&json!("intents:read")), "{meta}");
    let methods = meta["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(methods.contains(&json!("none")), "{meta}");
}

#[tokio::test]
async fn an_assistant_registers_without_an_invitation_but_can_do_nothing_unapproved() {
    let (app, owner) = AgentApp::ready().await;
    let (status, body) = register_agent(&app, &registration("Claude")).await;
    assert_eq!(status, 201, "{body}");
    let client_id = body["client_id"].as_str().unwrap();
    assert!(client_id.starts_with("agent-"), "{body}");
    assert!(body.get("client_secret").is_none(), "{body}");
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert_eq!(body["redirect_uris"], json!([REDIRECT]));
    assert_eq!(
        body["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );

    // Not a connected assistant yet: Settings lists nothing, and no code means no token.
    let (_, listed) = owner_call(&app, &owner, Method::GET, "/api/v1/agents", None).await;
    assert_eq!(listed["agents"], json!([]), "{listed}");
    let (status, body) = token_request(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", "vrmac_guessed"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &"a".repeat(43)),
        ],
    )
    .await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_grant")),
        "{body}"
    );
    let (status, body) = token_request(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "unsupported_grant_type", "{body}");

    // What only brands may have still needs an invitation; bad redirect URIs are refused.
    let mut brand_like = registration("Acme");
    brand_like["token_endpoint_auth_method"] = json!("client_secret_basic");
    let (status, body) = register_agent(&app, &brand_like).await;
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("invalid_token")),
        "{body}"
    );
    let mut remote_http = registration("Sneaky");
    remote_http["redirect_uris"] = json!(["http://evil.example/callback"]);
    let (status, body) = register_agent(&app, &remote_http).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_redirect_uri")),
        "{body}"
    );
}

#[tokio::test]
async fn the_person_approves_scopes_and_fields_and_the_token_carries_them() {
    let (app, owner) = AgentApp::ready().await;
    put_record(&app, &owner, "contact.email", json!(EMAIL)).await;
    put_record(&app, &owner, "contact.phone", json!("+351 912 345 678")).await;
    let client_id = registered(&app, "Claude").await;
    let pkce = Pkce::generate();
    let id = consent_id(
        &app,
        &authorize_query(&client_id, &pkce, &app.resource(), ""),
    )
    .await;

    let (status, view) = owner_call(
        &app,
        &owner,
        Method::GET,
        &format!("/api/v1/agents/consent/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["client_name"], "Claude");
    assert_eq!(view["scopes"].as_array().unwrap().len(), 6, "{view}");
    assert_eq!(
        view["scopes"][0]["words"],
        "Read the parts of your profile you choose"
    );
    let fields = view["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 2, "{view}");
    assert_eq!(fields[0]["path"], "contact.email");
    assert!(
        !view.to_string().contains(EMAIL),
        "values are masked: {view}"
    );

    // The person cannot give more than asked.
    let (status, body) = owner_call(
        &app,
        &owner,
        Method::POST,
        &format!("/api/v1/agents/consent/{id}"),
        Some(json!({"decision": "approve", "scopes": ["intents:read"], "fields": []})),
    )
    .await;
    assert_eq!(
        (status, &body["error"]),
        (422, &json!("invalid_scope")),
        "{body}"
    );

    let code = approve(
        &app,
        &owner,
        &id,
        json!({
            "decision": "approve",
            "scopes": ["agent.records.read", "agent.offers.read"],
            "fields": ["contact.email"],
        }),
    )
    .await;
    // A wrong verifier is refused, and the code is then spent (a replay revokes).
    let (status, tokens) = exchange(&app, &client_id, &code, &pkce).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(tokens["scope"], "agent.records.read agent.offers.read");
    let access = tokens["access_token"].as_str().unwrap();
    let (header, claims) = jwt_parts(access);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["aud"], app.resource());
    assert_eq!(claims["client_id"], client_id.as_str());
    assert_eq!(claims["scope"], "agent.records.read agent.offers.read");

    let res = app.mcp(Some(access), None).await;
    assert_eq!(res.status(), 200);
    let agent: Value = res.json().await.unwrap();
    assert_eq!(agent["client_id"], client_id.as_str());
    assert_eq!(agent["fields"], json!(["contact.email"]));
    assert_eq!(
        agent["scopes"],
        json!(["agent.records.read", "agent.offers.read"])
    );
    let res = app.mcp(Some(access), Some("agent.offers.read")).await;
    assert_eq!(res.status(), 200);
    let res = app.mcp(Some(access), Some("agent.offers.decline")).await;
    assert_eq!(res.status(), 403);
    assert!(
        challenge(&res).contains("insufficient_scope"),
        "{}",
        challenge(&res)
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");

    // Settings lists it with its last use, in plain words.
    let (_, listed) = owner_call(&app, &owner, Method::GET, "/api/v1/agents", None).await;
    let agents = listed["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1, "{listed}");
    assert_eq!(agents[0]["name"], "Claude");
    assert_eq!(agents[0]["fields"], json!(["contact.email"]));
    assert_eq!(
        agents[0]["scopes"][1]["words"],
        "See the offers brands send you"
    );

    // Replaying the code revokes what it gave.
    let (status, body) = exchange(&app, &client_id, &code, &pkce).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_grant")),
        "{body}"
    );
    assert_eq!(app.mcp(Some(access), None).await.status(), 401);
}

#[tokio::test]
async fn pkce_and_the_resource_are_checked() {
    let (app, owner) = AgentApp::ready().await;
    let client_id = registered(&app, "Claude").await;
    let pkce = Pkce::generate();

    // Another resource is refused at the authorization endpoint, back to the assistant.
    let query = authorize_query(&client_id, &pkce, &app.url("/brand/v1"), "");
    let res = authorize(&app, &query).await;
    assert_eq!(res.status(), 303);
    let to = location(&app, &res).unwrap();
    assert!(to.as_str().starts_with(REDIRECT), "{to}");
    assert_eq!(
        query_of(&to).get("error").map(String::as_str),
        Some("invalid_target")
    );
    // No PKCE: refused.
    let no_pkce: Vec<_> = authorize_query(&client_id, &pkce, &app.resource(), "")
        .into_iter()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .collect();
    let to = location(&app, &authorize(&app, &no_pkce).await).unwrap();
    assert_eq!(
        query_of(&to).get("error").map(String::as_str),
        Some("invalid_request")
    );
    // A brand scope: refused.
    let query = authorize_query(&client_id, &pkce, &app.resource(), "intents:read");
    let to = location(&app, &authorize(&app, &query).await).unwrap();
    assert_eq!(
        query_of(&to).get("error").map(String::as_str),
        Some("invalid_scope")
    );
    // A redirect URI it did not register: no redirect at all.
    let mut query = authorize_query(&client_id, &pkce, &app.resource(), "");
    query.retain(|(k, _)| k != "redirect_uri");
    query.push(("redirect_uri".into(), "https://evil.example/cb".into()));
    assert_eq!(authorize(&app, &query).await.status(), 400);

    // A loopback redirect URI on another port is the same (RFC 8252 §7.3).
    let mut query = authorize_query(&client_id, &pkce, &app.resource(), "agent.intents.read");
    query.retain(|(k, _)| k != "redirect_uri");
    let other_port = "http://127.0.0.1:51999/callback";
    query.push(("redirect_uri".into(), other_port.into()));
    let id = consent_id(&app, &query).await;
    let (_, body) = owner_call(
        &app,
        &owner,
        Method::POST,
        &format!("/api/v1/agents/consent/{id}"),
        Some(json!({"decision": "approve"})),
    )
    .await;
    let to = reqwest::Url::parse(body["redirect_to"].as_str().unwrap()).unwrap();
    assert!(to.as_str().starts_with(other_port), "{to}");
    let code = query_of(&to).get("code").unwrap().clone();

    let resource = app.resource();
    let wrong_verifier = "b".repeat(43);
    for (form, error) in [
        (
            vec![
                ("code_verifier", wrong_verifier.as_str()),
                ("resource", resource.as_str()),
                ("redirect_uri", other_port),
            ],
            "invalid_grant",
        ),
        (
            vec![
                ("code_verifier", pkce.verifier.as_str()),
                ("resource", "https://elsewhere.example/mcp"),
                ("redirect_uri", other_port),
            ],
            "invalid_target",
        ),
    ] {
        let mut request = vec![
            ("grant_type", "authorization_code"),
            ("client_id", client_id.as_str()),
            ("code", code.as_str()),
        ];
        request.extend(form);
        let (status, body) = token_request(&app, &request).await;
        assert_eq!((status, &body["error"]), (400, &json!(error)), "{body}");
    }
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_replayed_one_revokes_everything() {
    let (app, owner) = AgentApp::ready().await;
    let (client_id, tokens) = connected(&app, &owner).await;
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert!(first.starts_with("vrmart_"), "{tokens}");
    let resource = app.resource();
    let refresh = |token: String| {
        let app = &app;
        let client_id = client_id.clone();
        let resource = resource.clone();
        async move {
            token_request(
                app,
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", &client_id),
                    ("refresh_token", &token),
                    ("resource", &resource),
                ],
            )
            .await
        }
    };
    let (status, second) = refresh(first.clone()).await;
    assert_eq!(status, 200, "{second}");
    let next = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(next, first);
    let access = second["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.mcp(Some(&access), None).await.status(), 200);

    // The spent one comes back: everything is revoked, the current one too.
    let (status, body) = refresh(first).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_grant")),
        "{body}"
    );
    assert_eq!(app.mcp(Some(&access), None).await.status(), 401);
    let (status, _) = refresh(next).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn revoking_a_token_or_disconnecting_refuses_the_next_call() {
    let (app, owner) = AgentApp::ready().await;
    let (client_id, tokens) = connected(&app, &owner).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.mcp(Some(access), None).await.status(), 200);
    // RFC 7009, as a public client: by client_id.
    let res = app
        .client
        .post(app.url("/oauth/revoke"))
        .form(&[("client_id", client_id.as_str()), ("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app.mcp(Some(access), None).await;
    assert_eq!(res.status(), 401);
    assert!(
        challenge(&res).contains("error=\"invalid_token\""),
        "{}",
        challenge(&res)
    );

    // Connected again, then disconnected from Settings.
    let (client_id, tokens) = connected(&app, &owner).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.mcp(Some(access), None).await.status(), 200);
    let (_, listed) = owner_call(&app, &owner, Method::GET, "/api/v1/agents", None).await;
    assert_eq!(listed["agents"].as_array().unwrap().len(), 2, "{listed}");
    let (status, _) = owner_call(
        &app,
        &owner,
        Method::DELETE,
        &format!("/api/v1/agents/{client_id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let res = app.mcp(Some(access), None).await;
    assert_eq!(res.status(), 401);
    let header = challenge(&res);
    assert!(
        header.contains("error=\"invalid_token\"") && header.contains("resource_metadata="),
        "{header}"
    );
    let (status, body) = token_request(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, 401, "an unknown client: {body}");
    let (_, listed) = owner_call(&app, &owner, Method::GET, "/api/v1/agents", None).await;
    assert_eq!(listed["agents"].as_array().unwrap().len(), 1, "{listed}");
    let (status, _) = owner_call(
        &app,
        &owner,
        Method::DELETE,
        &format!("/api/v1/agents/{client_id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_unapproved_registration_expires_after_an_hour() {
    let (app, _owner) = AgentApp::ready().await;
    let client_id = registered(&app, "Forgotten").await;
    let pkce = Pkce::generate();
    app.advance(Duration::minutes(59));
    consent_id(
        &app,
        &authorize_query(&client_id, &pkce, &app.resource(), ""),
    )
    .await;
    app.advance(Duration::minutes(2));
    let res = authorize(
        &app,
        &authorize_query(&client_id, &pkce, &app.resource(), ""),
    )
    .await;
    let (status, body) = status_json(res).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("unknown client_id"),
        "{body}"
    );
}

#[tokio::test]
async fn registrations_are_rate_limited_per_address() {
    let (app, _owner) = AgentApp::ready().await;
    for i in 0..5 {
        let (status, body) = register_agent(&app, &registration(&format!("Agent {i}"))).await;
        assert_eq!(status, 201, "{body}");
    }
    let res = app
        .client
        .post(app.url("/oauth/register"))
        .json(&registration("One too many"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 600, "{retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "slow_down", "{body}");
    app.advance(Duration::minutes(10));
    let (status, body) = register_agent(&app, &registration("Later")).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn a_brand_token_is_no_agent_token_and_the_other_way_round() {
    let (app, owner) = AgentApp::ready().await;
    let (brand, _) = onboard(&app, &owner, "Bistro").await;
    let brand_token = brand.access_token(&app).await;
    let res = app.mcp(Some(&brand_token), None).await;
    assert_eq!(res.status(), 401);
    assert!(
        challenge(&res).contains("error=\"invalid_token\""),
        "{}",
        challenge(&res)
    );

    let (client_id, tokens) = connected(&app, &owner).await;
    let agent_token = tokens["access_token"].as_str().unwrap();
    assert_refused(&app, agent_token, "an assistant's token on the brand API").await;
    // Nor does the brand's token endpoint take an assistant as a brand.
    let (status, body) = token_request(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn a_sealed_vault_answers_an_assistant_503_in_its_own_shape() {
    let (app, owner) = AgentApp::ready().await;
    let (_, tokens) = connected(&app, &owner).await;
    let access = tokens["access_token"].as_str().unwrap();
    let (status, _) = owner_call(&app, &owner, Method::POST, "/api/v1/vault/lock", None).await;
    assert_eq!(status, 204);
    let res = app.mcp(Some(access), None).await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "vault_sealed", "{body}");
    // No token at all is still the discovery challenge, whatever the vault's phase.
    let res = app.mcp(None, None).await;
    assert_eq!(res.status(), 401);
    assert!(challenge(&res).contains("resource_metadata="));
    // The metadata is there while sealed too: nothing in it is secret.
    let res = app
        .client
        .get(app.url("/.well-known/oauth-protected-resource"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_flood_of_requests_from_elsewhere_does_not_push_out_the_persons_request() {
    let (app, owner) = AgentApp::ready().await;
    let client_id = registered(&app, "Claude").await;
    let pkce = Pkce::generate();
    let query = authorize_query(&client_id, &pkce, &app.resource(), "");
    let from = |address: &'static str| {
        let query = query.clone();
        let app = &app;
        async move {
            let res = no_redirects()
                .get(app.url("/oauth/authorize"))
                .query(&query)
                .header("x-forwarded-for", address)
                .send()
                .await
                .unwrap();
            let to = location(app, &res).unwrap();
            query_of(&to).get("agent").unwrap().clone()
        }
    };
    let persons = from("198.51.100.7").await;
    let mut flood = Vec::new();
    for _ in 0..30 {
        flood.push(from("203.0.113.9").await);
    }
    let view = |id: String| {
        let app = &app;
        let owner = owner.clone();
        async move {
            owner_call(
                app,
                &owner,
                Method::GET,
                &format!("/api/v1/agents/consent/{id}"),
                None,
            )
            .await
            .0
        }
    };
    assert_eq!(
        view(persons).await,
        200,
        "the person's request is still open"
    );
    assert_eq!(
        view(flood[0].clone()).await,
        404,
        "the flood displaced its own oldest"
    );
    assert_eq!(view(flood[29].clone()).await, 200);
}

#[tokio::test]
async fn a_restored_backup_does_not_bring_back_an_assistants_tokens() {
    let (app, owner) = AgentApp::ready().await;
    let (client_id, tokens) = connected(&app, &owner).await;
    let backup = app
        .client
        .get(app.url("/api/v1/backup"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(backup.status(), 200);
    let backup = backup.bytes().await.unwrap();

    // A new vault in setup mode takes the backup; the person logs in.
    let fresh = AgentApp::start().await;
    let (status, body) =
        crate::kit::restore::restore(&fresh, &backup, &[("passphrase", PASSPHRASE)]).await;
    assert!(status < 300, "{status}: {body}");
    let login = owner_session(&fresh, "/api/v1/session", PASSPHRASE).await;
    let owner = login["token"].as_str().unwrap();
    let (_, listed) = owner_call(&fresh, owner, Method::GET, "/api/v1/agents", None).await;
    assert_eq!(
        listed["agents"][0]["client_id"],
        client_id.as_str(),
        "{listed}"
    );
    let (status, body) = token_request(
        &fresh,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_grant")),
        "{body}"
    );
}

#[tokio::test]
async fn the_export_lists_assistants_without_their_token_material() {
    let (app, owner) = AgentApp::ready().await;
    let (client_id, tokens) = connected(&app, &owner).await;
    let waiting = registered(&app, "Not yet approved").await;
    let res = app
        .client
        .get(app.url("/api/v1/export"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let export: Value = serde_json::from_str(&text).unwrap();
    let schema: Value =
        serde_json::from_str(include_str!("../../policies/export.schema.json")).unwrap();
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&export)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let assistants = export["assistants"].as_array().unwrap();
    assert_eq!(assistants.len(), 2, "{assistants:?}");
    let approved = assistants
        .iter()
        .find(|a| a["client_id"] == client_id.as_str())
        .unwrap();
    assert_eq!(approved["approval"]["fields"], json!(["contact.email"]));
    let pending = assistants
        .iter()
        .find(|a| a["client_id"] == waiting.as_str())
        .unwrap();
    assert_eq!(pending["approval"], Value::Null);
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert!(
        !text.contains("\"refresh\""),
        "no refresh token state in the export"
    );
    assert!(!text.contains(refresh));
}
