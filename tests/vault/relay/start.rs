//! Starting the relay: its streams and buckets are created idempotently, `/healthz` answers
//! whatever NATS does, and `/readyz` says 503 with `Retry-After` while NATS is away and 200
//! again once it is back.

use std::time::Duration;

use serde_json::Value;

use crate::kit::relay::{Nats, RelayApp};

const STREAMS: [&str; 5] = [
    "RELAY_INTENTS",
    "RELAY_FEEDS",
    "RELAY_DELIVERIES",
    "RELAY_OFFERS",
    "RELAY_MESSAGES",
];
const BUCKETS: [&str; 4] = [
    "relay_brands",
    "relay_subscriptions",
    "relay_tokens",
    "relay_assertions",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_create_and_share_one_layout() {
    let nats = Nats::start();
    let a = RelayApp::start(&nats.url(), |_| {});
    let b = RelayApp::start(&nats.url(), |_| {});
    for relay in [&a, &b] {
        assert!(
            relay.wait_ready(200, Duration::from_secs(20)).await,
            "the relay did not become ready; log:\n{}",
            relay.log()
        );
        let body: Value = relay.readyz().await.json().await.unwrap();
        assert_eq!(body["status"], "ready");
    }
    // What JetStream holds, read with the NATS client as an operator's tool would.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    for name in STREAMS {
        let mut stream = js.get_stream(name).await.unwrap();
        let info = stream.info().await.unwrap();
        assert_eq!(info.config.num_replicas, 1, "{name}");
        assert_eq!(
            info.config.storage,
            async_nats::jetstream::stream::StorageType::File,
            "{name}"
        );
    }
    let deliveries = js.get_stream("RELAY_DELIVERIES").await.unwrap();
    assert_eq!(
        deliveries.cached_info().config.retention,
        async_nats::jetstream::stream::RetentionPolicy::WorkQueue
    );
    assert!(
        js.get_stream("RELAY_INTENTS")
            .await
            .unwrap()
            .cached_info()
            .config
            .allow_message_ttl,
        "intents must be able to expire one by one"
    );
    for bucket in BUCKETS {
        js.get_key_value(bucket).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_nats_and_healthz_does_not() {
    let mut nats = Nats::start();
    let relay = RelayApp::start(&nats.url(), |_| {});
    assert!(
        relay.wait_ready(200, Duration::from_secs(20)).await,
        "not ready; log:\n{}",
        relay.log()
    );

    nats.stop();
    assert!(
        relay.wait_ready(503, Duration::from_secs(15)).await,
        "still ready with NATS gone; log:\n{}",
        relay.log()
    );
    let answer = relay.readyz().await;
    assert_eq!(answer.status(), 503);
    assert_eq!(
        answer
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("5")
    );
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "relay_unavailable", "{body}");
    let health = relay
        .client
        .get(relay.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // NATS comes back on the same port and store: the relay reconnects by itself.
    nats.restart();
    assert!(
        relay.wait_ready(200, Duration::from_secs(30)).await,
        "did not recover; log:\n{}",
        relay.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_started_before_nats_becomes_ready_when_nats_arrives() {
    let mut nats = Nats::start();
    nats.stop();
    let relay = RelayApp::start(&nats.url(), |_| {});
    let answer = relay.readyz().await;
    assert_eq!(answer.status(), 503);
    assert!(answer.headers().contains_key("retry-after"));
    nats.restart();
    assert!(
        relay.wait_ready(200, Duration::from_secs(30)).await,
        "did not become ready; log:\n{}",
        relay.log()
    );
}
