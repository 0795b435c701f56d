//! Helpers for the intentcasting tests: a vault whose terms in force are the PDC-INTENT template,
//! brands that subscribe and read their events (polling, Server-Sent Events read off the raw
//! response, and a webhook receiver on a loopback port), intents and offers, and the Standard
//! Webhooks signature computed here with ring rather than by the vault's own code.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::kit::brand::{
    Brand, Server, jwt_parts, owner_call, publish, register_brand, status_json,
};
use crate::kit::grant::rfc3339;

/// The loopback flag every webhook test starts the vault with.
pub const LOOPBACK: &str = "--allow-loopback-webhooks";
/// A point in the centre of Paris, its 7-character cell, and cells around it.
pub const PARIS_LAT: f64 = 48.8566;
pub const PARIS_LON: f64 = 2.3522;
pub const PARIS: &str = "u09tvw0";
/// A 3-character cell holding Paris (and not London or Lyon).
pub const PARIS_REGION: &str = "u09";
pub const LONDON: &str = "gcpvj0d";
/// A 4-character cell holding Lyon.
pub const LYON_REGION: &str = "u05k";

/// Asserts an owner/brand API error: this status and this `error` code.
pub fn assert_error(status: u16, body: &Value, expected: u16, code: &str, why: &str) {
    assert_eq!(
        (status, body["error"].as_str()),
        (expected, Some(code)),
        "{why}: {body}"
    );
    assert!(body["message"].is_string(), "{why}: {body}");
}

/// The PDC-INTENT template, as `GET /api/v1/terms/templates` offers it to the owner.
pub async fn pdc_intent_template(app: &impl Server, owner: &str) -> Value {
    let (status, body) = owner_call(app, owner, Method::GET, "/api/v1/terms/templates", None).await;
    assert_eq!(status, 200, "{body}");
    let template = body["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "pdc-intent")
        .unwrap_or_else(|| panic!("no pdc-intent template in {body}"))
        .clone();
    assert_eq!(template["basis"], "PDC-INTENT", "{template}");
    template["terms"].clone()
}

/// Publishes the PDC-INTENT template as the terms in force.
pub async fn publish_pdc_intent(app: &impl Server, owner: &str) {
    let terms = pdc_intent_template(app, owner).await;
    let (status, body) = publish(app, owner, &terms).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["basis"], "PDC-INTENT", "{body}");
}

/// A brand that accepted the terms in force, with an access token carrying every scope.
///
/// Every brand knows an intent by its own id (the vault gives each brand its own alias, so
/// brands cannot match intents with each other). Tests speak of intents by the owner's ids: with
/// the owner's session, [`Subscriber::offer`] sends the brand's own id of the owner's intent and
/// [`Subscriber::subjects`] answers with the owner's ids, both learnt from the owner's view of
/// the intents (`ids_by_brand`). Without it (`owner: None`), ids are passed as they are.
pub struct Subscriber {
    pub brand: Brand,
    pub token: String,
    /// The owner's session token, used only to translate intent ids.
    pub owner: Option<String>,
}

impl Subscriber {
    /// Registers a brand, has it accept the current terms and takes a token.
    pub async fn onboard(app: &impl Server, owner: &str, name: &str) -> Subscriber {
        let brand = register_brand(app, owner, name).await;
        brand.accept_current(app).await;
        let token = brand.access_token(app).await;
        Subscriber {
            brand,
            token,
            owner: Some(owner.to_owned()),
        }
    }

    /// Onboards a brand and subscribes it with `subscription`, expecting 200.
    pub async fn subscribed(
        app: &impl Server,
        owner: &str,
        name: &str,
        subscription: Value,
    ) -> Subscriber {
        let subscriber = Subscriber::onboard(app, owner, name).await;
        subscriber.subscribe_ok(app, &subscription).await;
        subscriber
    }

    /// A fresh access token (after the old one stopped working).
    pub async fn refresh_token(&mut self, app: &impl Server) {
        self.token = self.brand.access_token(app).await;
    }

    /// The token's `sub`: the brand's pairwise pseudonym for the person.
    pub fn sub(&self) -> String {
        jwt_parts(&self.token).1["sub"].as_str().unwrap().to_owned()
    }

    /// A JSON call to the brand API with the bearer token.
    pub async fn call(
        &self,
        app: &impl Server,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = app
            .client()
            .request(method, app.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(body);
        }
        status_json(req.send().await.unwrap()).await
    }

    /// `PUT /brand/v1/subscription`.
    pub async fn subscribe(&self, app: &impl Server, subscription: &Value) -> (u16, Value) {
        self.call(
            app,
            Method::PUT,
            "/brand/v1/subscription",
            Some(subscription),
        )
        .await
    }

    /// Subscribes with `subscription`, expecting 200; returns the answer (which shows a webhook
    /// subscription's `webhook_secret`, once).
    pub async fn subscribe_ok(&self, app: &impl Server, subscription: &Value) -> Value {
        let (status, body) = self.subscribe(app, subscription).await;
        assert_eq!(status, 200, "{}: {body}", self.brand.name);
        body
    }

    /// `POST /brand/v1/subscription/rotate-secret`, expecting 200; returns the answer with the
    /// new `webhook_secret`.
    pub async fn rotate_secret(&self, app: &impl Server) -> Value {
        let (status, rotated) = self
            .call(
                app,
                Method::POST,
                "/brand/v1/subscription/rotate-secret",
                None,
            )
            .await;
        assert_eq!(status, 200, "{rotated}");
        rotated
    }

    /// One page of `GET /brand/v1/intents?cursor=`: its events and next cursor.
    pub async fn poll(&self, app: &impl Server, cursor: u64) -> (Vec<Value>, u64) {
        let (status, page) = self
            .call(
                app,
                Method::GET,
                &format!("/brand/v1/intents?cursor={cursor}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{}: {page}", self.brand.name);
        // Every event a test brand reads must be in the catalogue and match its schema.
        for event in page["events"].as_array().unwrap() {
            super::catalogue::assert_catalogued(app, event).await;
        }
        (
            page["events"].as_array().unwrap().clone(),
            page["next_cursor"].as_u64().unwrap(),
        )
    }

    /// Every event of the brand's stream, from the start.
    pub async fn events(&self, app: &impl Server) -> Vec<Value> {
        self.poll(app, 0).await.0
    }

    /// The subjects of the brand's events of this type, oldest first, as the owner's intent ids.
    pub async fn subjects(&self, app: &impl Server, kind: &str) -> Vec<String> {
        let seen = subjects(&self.events(app).await, kind);
        self.as_owner_ids(app, seen).await
    }

    /// The owner's ids of intents this brand knows by `ids` (an id the owner has no intent for
    /// is kept as it is).
    pub async fn as_owner_ids(&self, app: &impl Server, ids: Vec<String>) -> Vec<String> {
        let Some(owner) = &self.owner else {
            return ids;
        };
        let (status, list) = owner_call(app, owner, Method::GET, "/api/v1/intents", None).await;
        assert_eq!(status, 200, "{list}");
        let mut owner_id_of = BTreeMap::new();
        for intent in list["intents"].as_array().unwrap() {
            if let Some(seen) = intent["ids_by_brand"][&self.brand.client_id].as_str() {
                owner_id_of.insert(seen.to_owned(), intent["id"].as_str().unwrap().to_owned());
            }
        }
        ids.into_iter()
            .map(|id| owner_id_of.get(&id).cloned().unwrap_or(id))
            .collect()
    }

    /// The id this brand knows the owner's intent `owner_id` by: its own alias of it (the id as
    /// given if the brand did not receive it, or without the owner's session).
    pub async fn seen_id(&self, app: &impl Server, owner_id: &str) -> String {
        let Some(owner) = &self.owner else {
            return owner_id.to_owned();
        };
        let (status, view) = owner_call(
            app,
            owner,
            Method::GET,
            &format!("/api/v1/intents/{owner_id}"),
            None,
        )
        .await;
        match view["ids_by_brand"][&self.brand.client_id].as_str() {
            Some(seen) if status == 200 => seen.to_owned(),
            _ => owner_id.to_owned(),
        }
    }

    /// `POST /brand/v1/intents/{id}/offers` on the owner's intent `intent_id`, named by the
    /// brand's own id of it.
    pub async fn offer(&self, app: &impl Server, intent_id: &str, body: &Value) -> (u16, Value) {
        let seen = self.seen_id(app, intent_id).await;
        self.offer_as(app, &seen, body).await
    }

    /// `POST /brand/v1/intents/{id}/offers` with `id` exactly as given.
    pub async fn offer_as(&self, app: &impl Server, id: &str, body: &Value) -> (u16, Value) {
        self.call(
            app,
            Method::POST,
            &format!("/brand/v1/intents/{id}/offers"),
            Some(body),
        )
        .await
    }

    /// Makes an offer, expecting 201; returns its id.
    pub async fn offer_ok(&self, app: &impl Server, intent_id: &str, body: &Value) -> String {
        let (status, offer) = self.offer(app, intent_id, body).await;
        assert_eq!(status, 201, "{}: {offer}", self.brand.name);
        assert_eq!(offer["status"], "pending", "{offer}");
        let id = offer["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("o_"), "{offer}");
        id
    }

    /// `GET /brand/v1/offers/{id}`.
    pub async fn own_offer(&self, app: &impl Server, id: &str) -> (u16, Value) {
        self.call(app, Method::GET, &format!("/brand/v1/offers/{id}"), None)
            .await
    }
}

/// The subjects of the events of this type, in order.
pub fn subjects(events: &[Value], kind: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == kind)
        .map(|e| e["subject"].as_str().unwrap().to_owned())
        .collect()
}

/// A subscription to these categories, everywhere, without a webhook.
pub fn categories(list: &[&str]) -> Value {
    json!({ "categories": list })
}

/// A subscription to `food` in these areas.
pub fn food_in(areas: Value) -> Value {
    json!({ "categories": ["food"], "areas": areas })
}

/// An intent body of this category expiring in an hour of `now`, without a place.
pub fn intent_body(category: &str, now: OffsetDateTime) -> Value {
    json!({
        "category": category,
        "text": "lunch nearby for two",
        "expires_at": rfc3339(now + Duration::hours(1)),
    })
}

/// An intent body of this category at `geohash` within `radius_m`.
pub fn intent_at(category: &str, now: OffsetDateTime, geohash: &str, radius_m: u32) -> Value {
    let mut body = intent_body(category, now);
    body["location"] = json!({ "geohash": geohash, "radius_m": radius_m });
    body
}

/// `POST /api/v1/intents`.
pub async fn create_intent(app: &impl Server, owner: &str, body: Value) -> (u16, Value) {
    owner_call(app, owner, Method::POST, "/api/v1/intents", Some(body)).await
}

/// Creates an intent, expecting 201; returns its view.
pub async fn intent(app: &impl Server, owner: &str, body: Value) -> Value {
    let (status, view) = create_intent(app, owner, body).await;
    assert_eq!(status, 201, "{view}");
    assert!(view["id"].as_str().unwrap().starts_with("i_"), "{view}");
    assert_eq!(view["status"], "open", "{view}");
    view
}

/// Creates an intent; returns its id.
pub async fn intent_id(app: &impl Server, owner: &str, body: Value) -> String {
    intent(app, owner, body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The owner's view of one intent.
pub async fn owner_intent(app: &impl Server, owner: &str, id: &str) -> Value {
    let (status, view) = owner_call(
        app,
        owner,
        Method::GET,
        &format!("/api/v1/intents/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{view}");
    view
}

/// `DELETE /api/v1/intents/{id}`.
pub async fn withdraw(app: &impl Server, owner: &str, id: &str) -> (u16, Value) {
    owner_call(
        app,
        owner,
        Method::DELETE,
        &format!("/api/v1/intents/{id}"),
        None,
    )
    .await
}

/// The offers on an intent, as the owner sees them.
pub async fn owner_offers(app: &impl Server, owner: &str, intent_id: &str) -> Vec<Value> {
    let (status, body) = owner_call(
        app,
        owner,
        Method::GET,
        &format!("/api/v1/intents/{intent_id}/offers"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["offers"].as_array().unwrap().clone()
}

/// The owner accepts an offer sharing what it asked for, for two hours; expects 200 and returns
/// the answer (with the new `grant_id`).
pub async fn accept_sharing(app: &impl Server, owner: &str, offer: &str) -> Value {
    let (status, accepted) = owner_call(
        app,
        owner,
        Method::POST,
        &format!("/api/v1/offers/{offer}/accept"),
        Some(json!({ "share": true, "expires_in_hours": 2 })),
    )
    .await;
    assert_eq!(status, 200, "{accepted}");
    accepted
}

/// The owner declines an offer, expecting 200; returns the answer.
pub async fn decline(app: &impl Server, owner: &str, offer: &str) -> Value {
    let (status, declined) = owner_call(
        app,
        owner,
        Method::POST,
        &format!("/api/v1/offers/{offer}/decline"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{declined}");
    declined
}

/// An offer body valid for a day of `now`, asking for `data_requested`.
pub fn offer_body(now: OffsetDateTime, data_requested: &[&str]) -> Value {
    json!({
        "name": "Two-course lunch",
        "description": "Soup and a main, 12:30 at the corner table",
        "price": {"amount": "24.00", "currency": "EUR"},
        "valid_until": rfc3339(now + Duration::days(1)),
        "url": "https://bistro.example/offers/1",
        "data_requested": data_requested,
    })
}

/// Polls `check` every 100 ms until it yields something or `within` has passed.
pub async fn eventually<T, F, Fut>(within: StdDuration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Standard Webhooks
// ---------------------------------------------------------------------------------------------

/// Whether `webhook-signature` holds a `v1,` signature that is the HMAC-SHA256, keyed with the
/// bytes of the `whsec_` secret, of `{webhook-id}.{webhook-timestamp}.{body}`.
pub fn signature_verifies(secret: &str, request: &Received) -> bool {
    let key_bytes = STANDARD
        .decode(
            secret
                .strip_prefix("whsec_")
                .unwrap_or_else(|| panic!("{secret:?} is not a whsec_ secret")),
        )
        .unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key_bytes);
    let mut signed = Vec::new();
    signed.extend_from_slice(request.header("webhook-id").as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(request.header("webhook-timestamp").as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(&request.body);
    // The header may carry several space-separated signatures (during a secret rotation).
    request
        .header("webhook-signature")
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| STANDARD.decode(s).ok())
        .any(|tag| ring::hmac::verify(&key, &signed, &tag).is_ok())
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A webhook endpoint on a free loopback port: it records every request and answers with the
/// statuses of its script in turn, then 204.
pub struct Receiver {
    pub url: String,
    requests: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start(script: &[u16]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/vrm", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.to_vec()));
        let recorded = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let recorded = recorded.clone();
                let script = script.clone();
                tokio::spawn(async move {
                    let _ = serve_one(stream, &recorded, &script).await;
                });
            }
        });
        Receiver {
            url,
            requests,
            task,
        }
    }

    /// What it received so far.
    pub fn received(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits until it received at least `n` requests (at most `within`); returns them all.
    pub async fn wait_for(&self, n: usize, within: StdDuration) -> Vec<Received> {
        eventually(within, || async {
            let got = self.received();
            (got.len() >= n).then_some(got)
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "the receiver got {} requests, not {n}, within {within:?}",
                self.received().len()
            )
        })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP/1.1 request (headers, then a `content-length` body), records it and answers
/// with the next status of the script, closing the connection.
async fn serve_one(
    mut stream: TcpStream,
    recorded: &Mutex<Vec<Received>>,
    script: &Mutex<Vec<u16>>,
) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let path = request_line.next().unwrap_or_default().to_owned();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[header_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let status = {
        let mut script = script.lock().unwrap();
        if script.is_empty() {
            204
        } else {
            script.remove(0)
        }
    };
    recorded.lock().unwrap().push(Received {
        at: Instant::now(),
        method,
        path,
        headers,
        body,
    });
    let response = if status == 204 {
        "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n".to_owned()
    } else {
        format!("HTTP/1.1 {status} Scripted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
    };
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

// ---------------------------------------------------------------------------------------------
// Server-Sent Events, read off the raw response
// ---------------------------------------------------------------------------------------------

/// One Server-Sent Event: its `id:` and its `data:` parsed as JSON.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: String,
    pub data: Value,
}

/// An open `GET /brand/v1/events` response, read chunk by chunk.
pub struct SseStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl SseStream {
    /// Opens the brand's event stream, resuming after `last_event_id` when given.
    pub async fn open(app: &impl Server, token: &str, last_event_id: Option<&str>) -> SseStream {
        let mut req = app
            .client()
            .get(app.url("/brand/v1/events"))
            .bearer_auth(token)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        SseStream {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next event carrying data (comments and keep-alives skipped), or `None` when none came
    /// within `within` or the stream ended.
    pub async fn next(&mut self, within: StdDuration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            // Events end with a blank line (axum writes LF line ends). Bytes are kept until a
            // whole event is in, so a chunk that splits a character does no harm.
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block = String::from_utf8(self.buffer[..end].to_vec()).unwrap();
                self.buffer.drain(..end + 2);
                let mut id = None;
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("id:") {
                        id = Some(value.trim_start().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let data = serde_json::from_str(&data.join("\n")).unwrap();
                return Some(SseEvent {
                    id: id.unwrap_or_else(|| panic!("an event without id: {block}")),
                    data,
                });
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .unwrap()?;
            self.buffer.extend_from_slice(&chunk);
        }
    }
}
