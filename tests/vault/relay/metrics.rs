//! The relay's Prometheus metrics (`--metrics-listen`): each instance counts what it accepted
//! and delivered itself, and reports the lag of the relay's durable consumers.

use std::time::Duration;

use serde_json::json;

use crate::kit::intent::Receiver;
use crate::kit::relay::{AdmittedBrand, Nats, RelayApp, free_port};
use crate::kit::relay_traffic::{
    VaultIntent, accepted_offer, client, offer_body, post_offer, publish_intent, send,
};

/// The exposition of `http://127.0.0.1:{port}/metrics`.
async fn scrape(port: u16) -> String {
    let res = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    res.text().await.unwrap()
}

/// The value of the sample named exactly `sample` (with its labels), if present.
fn value(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

fn counts(text: &str) -> [f64; 5] {
    [
        "vrm_relay_intents_accepted_total",
        "vrm_relay_offers_accepted_total",
        "vrm_relay_events_delivered_total",
        "vrm_relay_deliveries_retried_total",
        "vrm_relay_deliveries_failed_total",
    ]
    .map(|name| value(text, name).unwrap_or_else(|| panic!("no {name} in\n{text}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_instance_counts_what_it_did_and_reports_consumer_lag() {
    let nats = Nats::start();
    let (port_a, port_b) = (free_port(), free_port());
    let start = |port: u16| {
        RelayApp::start(&nats.url(), |c| {
            c.args(["--metrics-listen", &format!("127.0.0.1:{port}")])
                .args(["--public-url", "http://relay.test"])
                .arg("--allow-loopback-webhooks");
        })
    };
    let (a, b) = (start(port_a), start(port_b));
    for relay in [&a, &b] {
        assert!(
            relay.wait_ready(200, Duration::from_secs(20)).await,
            "{}",
            relay.log()
        );
    }
    assert_eq!(counts(&scrape(port_a).await), [0.0; 5]);

    // A brand whose endpoint fails once, then answers.
    let brand = AdmittedBrand::admit(&nats, "Chez Lulu");
    let http = client();
    let assertion = brand.keys.signing.assertion(
        &brand.client_id,
        "http://relay.test/oauth/token",
        &crate::kit::brand::random_id(),
    );
    let token = send(http.post(a.url("/oauth/token")).form(&[
        ("grant_type", "client_credentials"),
        ("client_assertion_type", crate::kit::brand::ASSERTION_TYPE),
        ("client_assertion", &assertion),
    ]))
    .await;
    let token = token.body()["access_token"].as_str().unwrap().to_owned();
    let receiver = Receiver::start(&[500]).await;
    let subscribed = send(
        http.put(a.url("/relay/v1/subscription"))
            .bearer_auth(&token)
            .json(
                &json!({"categories": ["food"], "areas": [{"geohash": "u09"}],
                          "webhook_url": receiver.url}),
            ),
    )
    .await;
    assert_eq!(subscribed.status(), Some(200), "{subscribed:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // An intent and an offer through instance A only.
    let intent = VaultIntent::new("food.lunch", "u09tv", 3);
    let created = publish_intent(&http, &a.url(""), &intent).await;
    assert_eq!(created.status(), Some(201), "{created:?}");
    let intent_id = created.body()["id"].as_str().unwrap().to_owned();
    let offer = accepted_offer(
        &brand.keys.signing,
        &intent_id,
        intent.terms_hash(),
        &offer_body("Menu du jour"),
    );
    let posted = post_offer(&http, &a.url(""), &token, &intent_id, &offer).await;
    assert_eq!(posted.status(), Some(201), "{posted:?}");
    receiver.wait_for(2, Duration::from_secs(20)).await;

    // Whichever instance made the two webhook attempts counts them; A counts the writes.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (text_a, text_b) = loop {
        let (text_a, text_b) = (scrape(port_a).await, scrape(port_b).await);
        let (ca, cb) = (counts(&text_a), counts(&text_b));
        if ca[2] + cb[2] >= 1.0 || std::time::Instant::now() > deadline {
            break (text_a, text_b);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (ca, cb) = (counts(&text_a), counts(&text_b));
    assert_eq!(&ca[..2], &[1.0, 1.0], "{text_a}");
    assert_eq!(&cb[..2], &[0.0, 0.0], "{text_b}");
    assert_eq!(ca[2] + cb[2], 1.0, "one delivery\n{text_a}\n{text_b}");
    assert_eq!(ca[3] + cb[3], 1.0, "one retry\n{text_a}\n{text_b}");
    assert_eq!(ca[4] + cb[4], 0.0);

    // The webhook consumer is reported, caught up, from either instance.
    for text in [&text_a, &text_b] {
        assert_eq!(value(text, "vrm_relay_jetstream_up"), Some(1.0), "{text}");
        let labels = r#"{stream="RELAY_DELIVERIES",consumer="webhooks"}"#;
        assert_eq!(
            value(text, &format!("vrm_relay_consumer_pending{labels}")),
            Some(0.0),
            "{text}"
        );
        assert!(value(text, &format!("vrm_relay_consumer_ack_pending{labels}")).is_some());
        // Nothing names a brand, an intent or a vault.
        assert!(!text.contains(&brand.client_id) && !text.contains(&intent_id));
    }
}
