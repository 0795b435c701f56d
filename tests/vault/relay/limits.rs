//! The relay's abuse limits: intents per source address (through a trusted proxy only),
//! offers per brand per intent and per minute, messages per intent, body sizes per route; and a
//! suspended brand stopping at once on every instance. Refusals are in the vault's error shape.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::brands::operator;
use super::intents::relayed_intent;
use super::offers::{VaultIntent, post_offer, publish, signed_offer};
use crate::kit::brand::{now, random_id};
use crate::kit::intent::Receiver;
use crate::kit::relay::{AdmittedBrand, Nats, RelayApp};

async fn ready_relay(nats: &Nats, configure: impl FnOnce(&mut Command)) -> RelayApp {
    let relay = RelayApp::start(&nats.url(), configure);
    assert!(
        relay.wait_ready(200, Duration::from_secs(20)).await,
        "{}",
        relay.log()
    );
    relay
}

async fn publish_from(relay: &RelayApp, forwarded_for: &str) -> reqwest::Response {
    relay
        .client
        .post(relay.url("/relay/v1/intents"))
        .header("x-forwarded-for", forwarded_for)
        .json(&relayed_intent("food.lunch", "u09tv"))
        .send()
        .await
        .unwrap()
}

/// A 429 in the vault's error shape, with a Retry-After of at least a second.
async fn assert_limited(res: reqwest::Response) {
    assert_eq!(res.status(), 429);
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests");
    assert!(body["message"].as_str().unwrap().contains("too many"));
}

async fn message(relay: &RelayApp, intent: &VaultIntent, body: &Value) -> reqwest::Response {
    message_with(relay, intent, &random_id(), body).await
}

async fn message_with(
    relay: &RelayApp,
    intent: &VaultIntent,
    jti: &str,
    body: &Value,
) -> reqwest::Response {
    let path = format!("/relay/v1/intents/{}/messages", intent.id);
    let token = intent.key.sign(
        Some("JWT"),
        "intent",
        &json!({"sub": intent.id, "aud": relay.url(&path), "exp": now() + 60, "jti": jti}),
    );
    relay
        .client
        .post(relay.url(&path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intents_are_limited_per_source_address_named_only_by_a_trusted_proxy() {
    let nats = Nats::start();
    let proxied = ready_relay(&nats, |cmd| {
        cmd.args(["--intents-per-hour", "2", "--trusted-proxy", "127.0.0.1"]);
    })
    .await;
    for _ in 0..2 {
        assert_eq!(publish_from(&proxied, "203.0.113.9").await.status(), 201);
    }
    assert_limited(publish_from(&proxied, "203.0.113.9").await).await;
    // Another address behind the same proxy has its own budget.
    assert_eq!(publish_from(&proxied, "198.51.100.7").await.status(), 201);

    // Without the operator's word, X-Forwarded-For is ignored: every request is the peer's.
    let direct = ready_relay(&nats, |cmd| {
        cmd.env("VRM_RELAY_INTENTS_PER_HOUR", "1");
    })
    .await;
    assert_eq!(publish_from(&direct, "192.0.2.1").await.status(), 201);
    assert_limited(publish_from(&direct, "192.0.2.2").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_are_limited_per_brand_per_intent_and_per_minute() {
    let nats = Nats::start();
    let relay = ready_relay(&nats, |cmd| {
        cmd.args([
            "--offers-per-minute",
            "3",
            "--offers-per-brand-per-intent",
            "2",
        ]);
    })
    .await;
    let lulu = AdmittedBrand::admit(&nats, "Chez Lulu");
    let nord = AdmittedBrand::admit(&nats, "Pizzeria Nord");
    let lulu_token = relay.token(&lulu).await;
    let nord_token = relay.token(&nord).await;
    for token in [&lulu_token, &nord_token] {
        super::messages::subscribe(&relay, token, json!({"categories": ["food"]})).await;
    }
    let intent = publish(&relay, 5).await;
    let second = publish(&relay, 5).await;

    for _ in 0..2 {
        let (status, answer) = post_offer(
            &relay,
            &lulu_token,
            &intent.id,
            &signed_offer(&lulu, &intent),
        )
        .await;
        assert_eq!(status, 201, "{answer}");
    }
    let (status, answer) = post_offer(
        &relay,
        &lulu_token,
        &intent.id,
        &signed_offer(&lulu, &intent),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("offer_limit")),
        "{answer}"
    );
    assert!(answer["message"].as_str().unwrap().contains("one brand"));
    // Three offers this minute: the fourth, on another intent, waits.
    let res = relay
        .client
        .post(relay.url(&format!("/relay/v1/intents/{}/offers", second.id)))
        .bearer_auth(&lulu_token)
        .json(&signed_offer(&lulu, &second))
        .send()
        .await
        .unwrap();
    assert_limited(res).await;
    // Another brand has its own budgets.
    let (status, answer) = post_offer(
        &relay,
        &nord_token,
        &intent.id,
        &signed_offer(&nord, &intent),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_per_intent_and_body_sizes_are_limited() {
    let nats = Nats::start();
    let relay = ready_relay(&nats, |cmd| {
        cmd.args(["--messages-per-intent", "3"]);
    })
    .await;
    let brand = AdmittedBrand::admit(&nats, "Chez Lulu");
    let token = relay.token(&brand).await;
    let intent = publish(&relay, 3).await;

    // A repeated withdrawal is answered alike, but each one spends the intent's budget.
    for _ in 0..3 {
        assert_eq!(
            message(&relay, &intent, &json!({"type": "withdrawn"}))
                .await
                .status(),
            201
        );
    }
    // A refused message does not use up its token: the same jti is refused for the limit
    // again, not as a replay.
    let jti = random_id();
    let withdraw = json!({"type": "withdrawn"});
    assert_limited(message_with(&relay, &intent, &jti, &withdraw).await).await;
    assert_limited(message_with(&relay, &intent, &jti, &withdraw).await).await;

    // Each route reads no more than its kind of body needs.
    let padding = |bytes: usize| "x".repeat(bytes);
    let mut big_offer = signed_offer(&brand, &intent);
    big_offer["description"] = json!(padding(20 * 1024));
    let mut big_intent = relayed_intent("food.lunch", "u09tv");
    big_intent["text"] = json!(padding(200 * 1024));
    let cases = [
        (
            reqwest::Method::POST,
            format!("/relay/v1/intents/{}/offers", intent.id),
            big_offer,
        ),
        (
            reqwest::Method::PUT,
            "/relay/v1/subscription".to_owned(),
            json!({"categories": ["food"], "padding": padding(20 * 1024)}),
        ),
        (
            reqwest::Method::POST,
            format!("/relay/v1/intents/{}/messages", intent.id),
            json!({"type": "accepted", "offer_id": "ro_1", "receipt": "r",
                   "jwe": padding(100 * 1024)}),
        ),
        (
            reqwest::Method::POST,
            "/relay/v1/intents".to_owned(),
            big_intent,
        ),
    ];
    // A fresh client each time: the relay closes a connection whose body it refused unread,
    // and a pooled connection would be reused after that.
    for (method, path, body) in cases {
        let res = reqwest::Client::new()
            .request(method, relay.url(&path))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 413, "{path}");
        let answer: Value = res.json().await.unwrap();
        assert_eq!(answer["error"], "payload_too_large", "{path}");
    }
    // A small enough subscription still passes.
    let res = reqwest::Client::new()
        .put(relay.url("/relay/v1/subscription"))
        .bearer_auth(&token)
        .json(&json!({"categories": ["food"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_brand_gets_nothing_more_on_any_instance() {
    let nats = Nats::start();
    let loopback = |cmd: &mut Command| {
        cmd.arg("--allow-loopback-webhooks");
    };
    let a = ready_relay(&nats, loopback).await;
    let b = ready_relay(&nats, loopback).await;
    let brand = AdmittedBrand::admit(&nats, "Chez Lulu");
    let token = a.token(&brand).await;
    let hook = Receiver::start(&[]).await;
    let res = a
        .client
        .put(a.url("/relay/v1/subscription"))
        .bearer_auth(&token)
        .json(&json!({"categories": ["food"], "areas": [{"geohash": "u09"}], "webhook_url": hook.url}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let intent = publish(&a, 3).await;
    assert_eq!(hook.wait_for(1, Duration::from_secs(20)).await.len(), 1);
    let (status, offer) = post_offer(&a, &token, &intent.id, &signed_offer(&brand, &intent)).await;
    assert_eq!(status, 201, "{offer}");

    let (ok, _, stderr) = operator(&nats, "suspend", &brand.client_id);
    assert!(ok, "{stderr}");
    // Its token stops on the other instance at its next request.
    let (status, answer) = post_offer(&b, &token, &intent.id, &signed_offer(&brand, &intent)).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("invalid_token"))
    );
    // A message for it is taken from the vault, but no webhook goes out to it.
    let res = message(
        &b,
        &intent,
        &json!({"type": "declined", "offer_id": offer["id"]}),
    )
    .await;
    assert_eq!(res.status(), 201);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hook.received().len(), 1, "a suspended brand got a webhook");
}
