//! The vault's owner as a script drives it: set up with a passphrase, then the steps that every
//! test and bench with brands repeats (publish a shipped terms template, invite brands).
//!
//! Typed so that a caller holds an [`Owner`] rather than a loose token string, and each step
//! asserts its status with the answer in the message, the same way everywhere.

use serde_json::{Value, json};

/// The passphrase the integration tests set their vaults up with.
pub const PASSPHRASE: &str = "correct horse battery staple";

/// The owner of a freshly set-up vault.
pub struct Owner {
    /// The vault's base URL (`http://127.0.0.1:port`).
    pub base: String,
    /// The session token from setup.
    pub token: String,
    /// The recovery key setup showed once.
    pub recovery_key: String,
    /// `Bearer <token>`, the `Authorization` header value.
    pub auth: String,
}

/// One JSON request: the status and the JSON body (`Null` when empty or not JSON).
pub async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client.request(method.clone(), url);
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let response = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

impl Owner {
    /// `POST /api/v1/setup` with `passphrase`, expecting 201.
    pub async fn setup(client: &reqwest::Client, base: &str, passphrase: &str) -> Owner {
        let (status, body) = call(
            client,
            reqwest::Method::POST,
            &format!("{base}/api/v1/setup"),
            None,
            Some(json!({ "passphrase": passphrase })),
        )
        .await;
        assert_eq!(status, 201, "/api/v1/setup: {body}");
        let token = body["token"].as_str().unwrap().to_owned();
        Owner {
            base: base.to_owned(),
            auth: format!("Bearer {token}"),
            token,
            recovery_key: body["recovery_key"].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// A request to `path` with the owner's token.
    pub async fn call(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        call(client, method, &url, Some(&self.auth), body).await
    }

    /// Publishes the shipped terms template `id` (such as `pdc-intent`) as it is; returns the
    /// hash brands accept, as `GET /brand/v1/terms` shows it.
    pub async fn publish_template(&self, client: &reqwest::Client, id: &str) -> String {
        let (status, templates) = self
            .call(
                client,
                reqwest::Method::GET,
                "/api/v1/terms/templates",
                None,
            )
            .await;
        assert_eq!(status, 200, "templates: {templates}");
        let template = templates["templates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap_or_else(|| panic!("no {id} template: {templates}"))
            .clone();
        let (status, terms) = self
            .call(
                client,
                reqwest::Method::PUT,
                "/api/v1/terms",
                Some(json!({ "terms": template["terms"] })),
            )
            .await;
        assert_eq!(status, 201, "terms: {terms}");
        let (status, terms) = call(
            client,
            reqwest::Method::GET,
            &format!("{}/brand/v1/terms", self.base),
            None,
            None,
        )
        .await;
        assert_eq!(status, 200, "brand terms: {terms}");
        terms["hash"].as_str().unwrap().to_owned()
    }

    /// An invitation for `max_uses` brand registrations; returns its initial access token.
    pub async fn invitation(
        &self,
        client: &reqwest::Client,
        max_uses: usize,
        note: &str,
    ) -> String {
        let (status, invitation) = self
            .call(
                client,
                reqwest::Method::POST,
                "/api/v1/invitations",
                Some(json!({ "max_uses": max_uses, "note": note })),
            )
            .await;
        assert_eq!(status, 201, "invitation: {invitation}");
        invitation["initial_access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}
