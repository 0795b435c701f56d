//! Intents through the relay: brands subscribe with the vault's subscription body, a vault
//! publishes an intent under a per-intent key, and only the brands whose subscription matches
//! find it in their feed (polling), as the vault's CloudEvent shape.

use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::kit::brand::{ClientKey, jcs_hash};
use crate::kit::grant::rfc3339;
use crate::kit::relay::{AdmittedBrand, Nats, RelayApp};

const PDC_INTENT: &str = include_str!("../../../policies/pdc-intent.json");

async fn ready_relay(nats: &Nats) -> RelayApp {
    let relay = RelayApp::start(&nats.url(), |_| {});
    assert!(
        relay.wait_ready(200, Duration::from_secs(20)).await,
        "not ready; log:\n{}",
        relay.log()
    );
    relay
}

/// What a vault publishes: the intent, the person's terms and their hash, a fresh key.
pub(super) fn relayed_intent(category: &str, geohash: &str) -> Value {
    let terms: Value = serde_json::from_str(PDC_INTENT).unwrap();
    let key = ClientKey::generate("intent");
    let mut jwk = key.public_jwk();
    jwk.as_object_mut().unwrap().remove("kid");
    json!({
        "category": category,
        "text": "Lunch for two near the office",
        "expires_at": rfc3339(OffsetDateTime::now_utc() + time::Duration::hours(2)),
        "location": {"geohash": geohash, "radius_m": 1500},
        "party_size": 2,
        "max_offers": 3,
        "terms_hash": jcs_hash(&terms),
        "terms": terms,
        "jwk": jwk,
    })
}

async fn call(
    relay: &RelayApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut req = relay.client.request(method, relay.url(path)).json(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn subscribe(relay: &RelayApp, token: &str, body: Value) {
    let (status, answer) = call(
        relay,
        reqwest::Method::PUT,
        "/relay/v1/subscription",
        Some(token),
        &body,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

async fn poll(relay: &RelayApp, token: &str, cursor: u64) -> (Vec<Value>, u64) {
    let (status, page) = relay
        .get_json(&format!("/relay/v1/intents?cursor={cursor}"), Some(token))
        .await;
    assert_eq!(status, 200, "{page}");
    (
        page["events"].as_array().unwrap().clone(),
        page["next_cursor"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_reaches_only_the_matching_brand() {
    let nats = Nats::start();
    let relay = ready_relay(&nats).await;
    let lulu = AdmittedBrand::admit(&nats, "Chez Lulu");
    let lyon = AdmittedBrand::admit(&nats, "Bouchon Lyonnais");
    let hotel = AdmittedBrand::admit(&nats, "Hotel Paris");
    let (lulu_token, lyon_token, hotel_token) = (
        relay.token(&lulu).await,
        relay.token(&lyon).await,
        relay.token(&hotel).await,
    );
    // Food in Paris; food in Lyon; hotels in Paris.
    subscribe(
        &relay,
        &lulu_token,
        json!({"categories": ["food"], "areas": [{"geohash": "u09"}]}),
    )
    .await;
    subscribe(
        &relay,
        &lyon_token,
        json!({"categories": ["food"], "areas": [{"geohash": "u05k"}]}),
    )
    .await;
    subscribe(
        &relay,
        &hotel_token,
        json!({"categories": ["travel"], "areas": [{"geohash": "u09"}]}),
    )
    .await;

    let intent = relayed_intent("food.lunch", "u09tv");
    let (status, created) = call(
        &relay,
        reqwest::Method::POST,
        "/relay/v1/intents",
        None,
        &intent,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();

    let (events, cursor) = poll(&relay, &lulu_token, 0).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "vrm.intent.created.v1");
    assert_eq!(event["source"], relay.url(""));
    assert_eq!(event["subject"], id);
    let data = &event["data"]["intent"];
    assert_eq!(data["id"], id);
    assert_eq!(data["category"], "food.lunch");
    assert_eq!(data["location"]["geohash"], "u09tv");
    assert_eq!(data["party_size"], 2);
    assert_eq!(data["terms_hash"], intent["terms_hash"]);
    assert_eq!(data["terms"], intent["terms"]);
    assert_eq!(data["jwk"]["x"], intent["jwk"]["x"]);
    assert_eq!(data["disclosed"], json!({}));

    // Nothing new after the cursor; the others got nothing at all.
    let (again, same) = poll(&relay, &lulu_token, cursor).await;
    assert!(again.is_empty());
    assert_eq!(same, cursor);
    for token in [&lyon_token, &hotel_token] {
        let (events, next) = poll(&relay, token, 0).await;
        assert!(events.is_empty(), "{events:?}");
        assert_eq!(next, 0);
    }

    // A second intent: the brand reads only what is new, and the two share no identifier.
    let second = relayed_intent("food.dinner", "u09tu");
    let (status, created2) = call(
        &relay,
        reqwest::Method::POST,
        "/relay/v1/intents",
        None,
        &second,
    )
    .await;
    assert_eq!(status, 201, "{created2}");
    let (events, _) = poll(&relay, &lulu_token, cursor).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["subject"], created2["id"]);
    assert_ne!(events[0]["data"]["intent"]["jwk"]["x"], data["jwk"]["x"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_relay_refuses_is_named() {
    let nats = Nats::start();
    let relay = ready_relay(&nats).await;
    let brand = AdmittedBrand::admit(&nats, "Chez Lulu");
    let token = relay.token(&brand).await;

    let mut fine = relayed_intent("food.lunch", "u09tvw");
    let mut disclosing = relayed_intent("food.lunch", "u09tv");
    disclosing["disclose"] = json!(["contact.email"]);
    let mut forged_terms = relayed_intent("food.lunch", "u09tv");
    forged_terms["terms_hash"] = json!(format!("sha256:{}", "0".repeat(64)));
    let mut no_key = relayed_intent("food.lunch", "u09tv");
    no_key.as_object_mut().unwrap().remove("jwk");
    let mut bad_category = relayed_intent("food.lunch", "u09tv");
    bad_category["category"] = json!("nonsense.thing");
    for (body, at) in [
        (fine.take(), "location.geohash"),
        (disclosing, "disclose"),
        (forged_terms, "terms_hash"),
        (no_key, "jwk"),
        (bad_category, "category"),
    ] {
        let (status, answer) = call(
            &relay,
            reqwest::Method::POST,
            "/relay/v1/intents",
            None,
            &body,
        )
        .await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (422, Some("invalid_intent")),
            "{answer}"
        );
        assert_eq!(answer["at"], at, "{answer}");
    }

    // Subscriptions: the vault's rules (a loopback webhook needs the operator's flag).
    let (status, answer) = call(
        &relay,
        reqwest::Method::PUT,
        "/relay/v1/subscription",
        Some(&token),
        &json!({"categories": []}),
    )
    .await;
    assert_eq!(
        (status, answer["at"].as_str()),
        (422, Some("categories")),
        "{answer}"
    );
    let (status, answer) = call(
        &relay,
        reqwest::Method::PUT,
        "/relay/v1/subscription",
        Some(&token),
        &json!({"categories": ["food"], "webhook_url": "http://127.0.0.1:9/hook"}),
    )
    .await;
    assert_eq!(
        (status, answer["at"].as_str()),
        (422, Some("webhook_url")),
        "{answer}"
    );

    // No token, a vault token shape, a token without intents:read.
    for bad in [None, Some("vrm_at_nope"), Some("vrm_rt_unknown")] {
        let (status, answer) = relay.get_json("/relay/v1/intents", bad).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("invalid_token"))
        );
    }
    let assertion = brand.assertion(&relay.url("/oauth/token"));
    let (_, narrow) = relay
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", crate::kit::brand::ASSERTION_TYPE),
            ("client_assertion", &assertion),
            ("scope", "offers:write"),
        ])
        .await;
    let (status, answer) = relay
        .get_json("/relay/v1/intents", narrow["access_token"].as_str())
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("insufficient_scope"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_instance_matches_subscriptions_made_on_another() {
    let nats = Nats::start();
    let a = ready_relay(&nats).await;
    let brand = AdmittedBrand::admit(&nats, "Chez Lulu");
    let token = a.token(&brand).await;
    subscribe(
        &a,
        &token,
        json!({"categories": ["food"], "areas": [{"geohash": "u09"}]}),
    )
    .await;

    // An instance started afterwards loads the subscription before it says it is ready.
    let b = ready_relay(&nats).await;
    let (status, created) = call(
        &b,
        reqwest::Method::POST,
        "/relay/v1/intents",
        None,
        &relayed_intent("food.lunch", "u09tv"),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    // The token and the feed are in NATS: either instance serves the brand.
    let (events, cursor) = poll(&b, &token, 0).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["subject"], created["id"]);

    // A subscription changed on A reaches B's index through the bucket's watch.
    subscribe(&a, &token, json!({"categories": ["travel"]})).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let cursor = loop {
        let (status, hotel) = call(
            &b,
            reqwest::Method::POST,
            "/relay/v1/intents",
            None,
            &relayed_intent("travel.hotel", "u09tv"),
        )
        .await;
        assert_eq!(status, 201);
        let (events, next) = poll(&a, &token, cursor).await;
        if events.iter().any(|e| e["subject"] == hotel["id"]) {
            break next;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "B never saw the new subscription"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // And no longer food.
    let (status, _) = call(
        &b,
        reqwest::Method::POST,
        "/relay/v1/intents",
        None,
        &relayed_intent("food.lunch", "u09tv"),
    )
    .await;
    assert_eq!(status, 201);
    let (events, _) = poll(&a, &token, cursor).await;
    assert!(events.is_empty(), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_cloudevents_retried_under_one_id() {
    use crate::kit::intent::{Receiver, signature_verifies};

    let nats = Nats::start();
    let relay = RelayApp::start(&nats.url(), |cmd| {
        cmd.arg("--allow-loopback-webhooks");
    });
    assert!(
        relay.wait_ready(200, Duration::from_secs(20)).await,
        "{}",
        relay.log()
    );
    let brand = AdmittedBrand::admit(&nats, "Chez Lulu");
    let other = AdmittedBrand::admit(&nats, "Bouchon Lyonnais");
    let token = relay.token(&brand).await;
    let other_token = relay.token(&other).await;
    // The first attempt fails with 500: the second, a second later, succeeds.
    let receiver = Receiver::start(&[500]).await;
    let lyon_receiver = Receiver::start(&[]).await;
    let (status, subscription) = call(
        &relay,
        reqwest::Method::PUT,
        "/relay/v1/subscription",
        Some(&token),
        &json!({"categories": ["food"], "areas": [{"geohash": "u09"}], "webhook_url": receiver.url}),
    )
    .await;
    assert_eq!(status, 200, "{subscription}");
    let secret = subscription["webhook_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    subscribe(
        &relay,
        &other_token,
        json!({"categories": ["food"], "areas": [{"geohash": "u05k"}], "webhook_url": lyon_receiver.url}),
    )
    .await;

    let (status, created) = call(
        &relay,
        reqwest::Method::POST,
        "/relay/v1/intents",
        None,
        &relayed_intent("food.lunch", "u09tv"),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let got = receiver.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 2, "one failure, one success, nothing more");
    for request in &got {
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.header("content-type"),
            "application/cloudevents+json"
        );
        assert!(
            signature_verifies(&secret, request),
            "bad signature: {:?}",
            request.headers
        );
        let event = request.json();
        assert_eq!(event["type"], "vrm.intent.created.v1");
        assert_eq!(event["subject"], created["id"]);
        assert_eq!(request.header("webhook-id"), event["id"].as_str().unwrap());
    }
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    // The same event is in the brand's feed, and the other brand's endpoint heard nothing.
    let (events, _) = poll(&relay, &token, 0).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0], got[1].json());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(lyon_receiver.received().is_empty());
    // Acknowledged jobs leave the work queue.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("RELAY_DELIVERIES").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stream.info().await.unwrap().state.messages != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the delivered job stayed queued"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
