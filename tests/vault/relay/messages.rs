//! The vault's messages to brands through the relay, and its long poll for offers: each
//! message reaches exactly the brands it concerns, by polling and by webhook; forged receipts,
//! replayed tokens and second decisions are refused; an erasure leaves nothing of the intent in
//! the relay's streams. Publishing is idempotent by the intent's key.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::offers::{VaultIntent, acceptance, offer_body, post_offer, publish, vault_read};
use crate::kit::brand::{ClientKey, b64, now, random_id};
use crate::kit::intent::Receiver;
use crate::kit::relay::{AdmittedBrand, Nats, RelayApp};

async fn ready_relay(nats: &Nats) -> RelayApp {
    let relay = RelayApp::start(&nats.url(), |cmd| {
        cmd.arg("--allow-loopback-webhooks");
    });
    assert!(
        relay.wait_ready(200, Duration::from_secs(20)).await,
        "{}",
        relay.log()
    );
    relay
}

async fn subscribe(relay: &RelayApp, token: &str, body: Value) {
    let res = relay
        .client
        .put(relay.url("/relay/v1/subscription"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// The vault's token for `route` of its intent, signed by the intent's key.
fn vault_token(relay: &RelayApp, intent: &VaultIntent, route: &str, jti: &str) -> String {
    let aud = relay.url(&format!("/relay/v1/intents/{}/{route}", intent.id));
    intent.key.sign(
        Some("JWT"),
        &intent.key.kid,
        &json!({"sub": intent.id, "aud": aud, "exp": now() + 60, "jti": jti}),
    )
}

async fn send_with(
    relay: &RelayApp,
    intent: &VaultIntent,
    token: &str,
    body: &Value,
) -> (u16, Value) {
    let res = relay
        .client
        .post(relay.url(&format!("/relay/v1/intents/{}/messages", intent.id)))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Sends a message with a fresh token.
async fn send(relay: &RelayApp, intent: &VaultIntent, body: &Value) -> (u16, Value) {
    let token = vault_token(relay, intent, "messages", &random_id());
    send_with(relay, intent, &token, body).await
}

/// A brand's whole feed.
async fn feed(relay: &RelayApp, token: &str) -> Vec<Value> {
    let (status, page) = relay
        .get_json("/relay/v1/intents?cursor=0", Some(token))
        .await;
    assert_eq!(status, 200, "{page}");
    page["events"].as_array().unwrap().clone()
}

fn types_about(events: &[Value], intent_id: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["subject"] == intent_id)
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

/// A brand's offer with a valid acceptance: its id and the acceptance JWS.
async fn offer(
    relay: &RelayApp,
    brand: &AdmittedBrand,
    token: &str,
    intent: &VaultIntent,
) -> (String, String) {
    let signing = &brand.keys.signing;
    let offer = offer_body();
    let jws = acceptance(
        signing,
        &signing.kid,
        &intent.id,
        &intent.terms_hash,
        &offer,
    );
    let mut body = offer;
    body["acceptance"] = json!(jws);
    let (status, created) = post_offer(relay, token, &intent.id, &body).await;
    assert_eq!(status, 201, "{created}");
    (created["id"].as_str().unwrap().to_owned(), jws)
}

fn receipt(signer: &ClientKey, acceptance: &str) -> String {
    signer.sign(
        Some("JWT"),
        &signer.kid,
        &json!({"acceptance": acceptance, "accepted_at": "2030-01-01T12:00:00Z"}),
    )
}

/// A compact JWE's form (the relay cannot read it, so any ciphertext will do here).
fn jwe() -> String {
    let header = b64(json!({"alg": "ECDH-ES+A256KW", "enc": "A256GCM"})
        .to_string()
        .as_bytes());
    format!(
        "{header}.a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5.aXZpdml2aXZpdml2.Y2lwaGVy.dGFndGFndGFndGFn"
    )
}

/// Every message `stream` holds, read one sequence after another (a work queue takes no
/// second consumer).
async fn scan(js: &async_nats::jetstream::Context, stream: &str) -> Vec<(String, String)> {
    let mut stream = js.get_stream(stream).await.unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut all = Vec::new();
    if state.messages == 0 {
        return all;
    }
    for sequence in state.first_sequence..=state.last_sequence {
        if let Ok(message) = stream.get_raw_message(sequence).await {
            all.push((
                message.subject.to_string(),
                String::from_utf8_lossy(&message.payload).into_owned(),
            ));
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_reaches_exactly_the_brands_it_concerns() {
    let nats = Nats::start();
    let relay = ready_relay(&nats).await;
    let lulu = AdmittedBrand::admit(&nats, "Chez Lulu");
    let nord = AdmittedBrand::admit(&nats, "Pizzeria Nord");
    let hotel = AdmittedBrand::admit(&nats, "Hotel Paris");
    let (lulu_token, nord_token, hotel_token) = (
        relay.token(&lulu).await,
        relay.token(&nord).await,
        relay.token(&hotel).await,
    );
    let lulu_hook = Receiver::start(&[]).await;
    let hotel_hook = Receiver::start(&[]).await;
    let area = json!([{"geohash": "u09"}]);
    subscribe(
        &relay,
        &lulu_token,
        json!({"categories": ["food"], "areas": area, "webhook_url": lulu_hook.url}),
    )
    .await;
    subscribe(
        &relay,
        &nord_token,
        json!({"categories": ["food"], "areas": area}),
    )
    .await;
    subscribe(
        &relay,
        &hotel_token,
        json!({"categories": ["travel"], "areas": area, "webhook_url": hotel_hook.url}),
    )
    .await;

    let intent = publish(&relay, 3).await;
    let (lulu_offer, lulu_acceptance) = offer(&relay, &lulu, &lulu_token, &intent).await;
    let (nord_offer, _) = offer(&relay, &nord, &nord_token, &intent).await;

    // Forged receipts: signed by another key, or over another acceptance. The vault's error shape.
    let stranger = ClientKey::generate(&intent.key.kid);
    for forged in [
        receipt(&stranger, &lulu_acceptance),
        receipt(&intent.key, "eyJ.other.jws"),
    ] {
        let (status, answer) = send(
            &relay,
            &intent,
            &json!({"type": "accepted", "offer_id": lulu_offer, "receipt": forged}),
        )
        .await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (422, Some("invalid_message")),
            "{answer}"
        );
        assert_eq!(answer["at"], "receipt");
        assert!(
            answer["message"].as_str().unwrap().starts_with("receipt:"),
            "{answer}"
        );
    }
    // A malformed JWE, an offer of no such id, a token signed by another key, a token without jti.
    let good_receipt = receipt(&intent.key, &lulu_acceptance);
    let (status, answer) = send(
        &relay,
        &intent,
        &json!({"type": "accepted", "offer_id": lulu_offer, "receipt": good_receipt, "jwe": "a.b.c"}),
    )
    .await;
    assert_eq!(
        (status, answer["at"].as_str()),
        (422, Some("jwe")),
        "{answer}"
    );
    let (status, answer) = send(
        &relay,
        &intent,
        &json!({"type": "declined", "offer_id": "ro_nope"}),
    )
    .await;
    assert_eq!(
        (status, answer["at"].as_str()),
        (422, Some("offer_id")),
        "{answer}"
    );
    let aud = relay.url(&format!("/relay/v1/intents/{}/messages", intent.id));
    let foreign = stranger.sign(
        Some("JWT"),
        "x",
        &json!({"sub": intent.id, "aud": aud, "exp": now() + 60, "jti": random_id()}),
    );
    let no_jti = intent.key.sign(
        Some("JWT"),
        "x",
        &json!({"sub": intent.id, "aud": aud, "exp": now() + 60}),
    );
    for token in [
        foreign,
        no_jti,
        vault_token(&relay, &intent, "offers", &random_id()),
    ] {
        let (status, answer) =
            send_with(&relay, &intent, &token, &json!({"type": "withdrawn"})).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("invalid_token")),
            "{answer}"
        );
    }

    // The acceptance, with its receipt and the disclosed fields: to Lulu only.
    let accepted =
        json!({"type": "accepted", "offer_id": lulu_offer, "receipt": good_receipt, "jwe": jwe()});
    let token = vault_token(&relay, &intent, "messages", &random_id());
    let (status, first) = send_with(&relay, &intent, &token, &accepted).await;
    assert_eq!(status, 201, "{first}");
    assert!(first["id"].as_str().unwrap().starts_with("rm_"));
    // The same token again is a replay, whatever the body.
    let (status, answer) = send_with(&relay, &intent, &token, &json!({"type": "withdrawn"})).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("replayed")),
        "{answer}"
    );
    // The same acceptance again (a retry) gets the same id; another decision is refused.
    let (status, again) = send(&relay, &intent, &accepted).await;
    assert_eq!((status, &again["id"]), (201, &first["id"]), "{again}");
    let (status, answer) = send(
        &relay,
        &intent,
        &json!({"type": "declined", "offer_id": lulu_offer}),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("offer_decided")),
        "{answer}"
    );

    let (status, _) = send(
        &relay,
        &intent,
        &json!({"type": "declined", "offer_id": nord_offer}),
    )
    .await;
    assert_eq!(status, 201);

    let lulu_events = feed(&relay, &lulu_token).await;
    assert_eq!(
        types_about(&lulu_events, &intent.id),
        ["vrm.intent.created.v1", "vrm.offer.accepted.v1"]
    );
    let event = &lulu_events[1];
    assert_eq!(event["source"], relay.url(""));
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(
        event["data"],
        json!({
            "offer": {"id": lulu_offer, "intent_id": intent.id, "status": "accepted"},
            "offer_id": lulu_offer,
            "intent_id": intent.id,
            "receipt": good_receipt,
            "jwe": jwe(),
        })
    );
    let nord_events = feed(&relay, &nord_token).await;
    assert_eq!(
        types_about(&nord_events, &intent.id),
        ["vrm.intent.created.v1", "vrm.offer.declined.v1"]
    );
    assert_eq!(
        nord_events[1]["data"],
        json!({
            "offer": {"id": nord_offer, "intent_id": intent.id, "status": "declined"},
            "offer_id": nord_offer,
            "intent_id": intent.id,
        })
    );

    // Withdrawal: to both brands the intent reached; then it takes no more offers.
    let (status, _) = send(&relay, &intent, &json!({"type": "withdrawn"})).await;
    assert_eq!(status, 201);
    let (status, answer) = send(&relay, &intent, &json!({"type": "expired"})).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("intent_closed")),
        "{answer}"
    );
    let mut late = offer_body();
    late["acceptance"] = json!(acceptance(
        &lulu.keys.signing,
        &lulu.keys.signing.kid,
        &intent.id,
        &intent.terms_hash,
        &offer_body()
    ));
    let (status, answer) = post_offer(&relay, &lulu_token, &intent.id, &late).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("intent_closed")),
        "{answer}"
    );
    for token in [&lulu_token, &nord_token] {
        let events = feed(&relay, token).await;
        let withdrawn = events
            .iter()
            .find(|e| e["type"] == "vrm.intent.withdrawn.v1")
            .unwrap();
        assert_eq!(withdrawn["data"], json!({"intent": {"id": intent.id}}));
    }

    // Lulu's webhook heard what its feed holds, under the same ids; the hotel heard nothing.
    let hooks = lulu_hook.wait_for(3, Duration::from_secs(20)).await;
    let by_id = |a: &Value, b: &Value| a["id"].as_str().cmp(&b["id"].as_str());
    let mut hooked: Vec<Value> = hooks.iter().map(|r| r.json()).collect();
    hooked.sort_by(by_id);
    hooked.dedup_by(|a, b| a["id"] == b["id"]);
    let mut lulu_events = feed(&relay, &lulu_token).await;
    lulu_events.sort_by(by_id);
    assert_eq!(hooked, lulu_events);
    assert!(hotel_hook.received().is_empty());
    assert!(feed(&relay, &hotel_token).await.is_empty());

    // Erasure: to every brand it reached or that offered; then nothing of it is left.
    let (status, erased) = send(&relay, &intent, &json!({"type": "erasure"})).await;
    assert_eq!(status, 201, "{erased}");
    for (token, hook) in [(&lulu_token, Some(&lulu_hook)), (&nord_token, None)] {
        let events = feed(&relay, token).await;
        assert_eq!(
            events.len(),
            1,
            "only the erasure request is left: {events:?}"
        );
        let request = &events[0];
        assert_eq!(request["type"], "vrm.erasure.requested.v1");
        assert_eq!(request["subject"], intent.id.as_str());
        assert_eq!(request["data"]["intent"], json!({"id": intent.id}));
        assert_eq!(request["data"]["basis"], "GDPR Art. 17 and 19");
        assert!(
            request["data"]["request"]
                .as_str()
                .unwrap()
                .contains("erase")
        );
        assert!(request["data"]["requested_at"].is_string());
        if let Some(hook) = hook {
            let got = hook.wait_for(4, Duration::from_secs(20)).await;
            assert!(
                got.iter().any(|r| r.json() == *request),
                "no erasure webhook"
            );
        }
    }
    assert!(feed(&relay, &hotel_token).await.is_empty());
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    // The scan sees what is there: the two erasure requests are.
    let feeds = scan(&js, "RELAY_FEEDS").await;
    assert_eq!(
        feeds
            .iter()
            .filter(|(s, _)| s.ends_with(".erasure"))
            .count(),
        2,
        "{feeds:?}"
    );
    for stream in [
        "RELAY_DELIVERIES",
        "RELAY_INTENTS",
        "RELAY_OFFERS",
        "RELAY_MESSAGES",
        "RELAY_FEEDS",
    ] {
        for (subject, payload) in scan(&js, stream).await {
            let erasure_request = subject.ends_with(".erasure");
            assert!(
                erasure_request || !payload.contains(&intent.id),
                "{stream} still holds {subject}: {payload:.200}"
            );
            assert!(
                !payload.contains(&lulu_acceptance),
                "{stream} still holds the acceptance"
            );
        }
    }
    // The vault's own reads see it gone.
    let (status, _) = vault_read(&relay, &intent, &intent.key).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_waits_for_offers_and_publishes_once_per_key() {
    let nats = Nats::start();
    let relay = ready_relay(&nats).await;
    let other = ready_relay(&nats).await;
    let lulu = AdmittedBrand::admit(&nats, "Chez Lulu");
    let nord = AdmittedBrand::admit(&nats, "Pizzeria Nord");
    let lulu_token = relay.token(&lulu).await;
    let nord_token = relay.token(&nord).await;
    for token in [&lulu_token, &nord_token] {
        subscribe(
            &relay,
            token,
            json!({"categories": ["food"], "areas": [{"geohash": "u09"}]}),
        )
        .await;
    }
    let intent = publish(&relay, 3).await;

    // The same body under the same key again (a retry after a 503): the same intent, 200.
    for instance in [&relay, &other] {
        let res = instance
            .client
            .post(instance.url("/relay/v1/intents"))
            .json(&intent.body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let again: Value = res.json().await.unwrap();
        assert_eq!(again["id"], intent.id.as_str());
    }
    assert_eq!(feed(&relay, &lulu_token).await.len(), 1, "delivered once");
    let mut changed = intent.body.clone();
    changed["text"] = json!("Dinner instead");
    let res = relay
        .client
        .post(relay.url("/relay/v1/intents"))
        .json(&changed)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["error"], "intent_exists");

    // Nothing yet: a short wait ends empty with the cursor unchanged.
    let path = format!("/relay/v1/intents/{}/offers", intent.id);
    let read = |after: u64, wait: u64| {
        let token = intent.key.sign(
            Some("JWT"),
            "intent",
            &json!({"sub": intent.id, "aud": other.url(&path), "exp": now() + 60}),
        );
        let url = other.url(&format!("{path}?after={after}&wait={wait}"));
        let client = other.client.clone();
        async move {
            let res = client.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        }
    };
    let started = Instant::now();
    let empty = read(0, 1).await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(empty, json!({"offers": [], "next_after": 0}));

    // A long poll on one instance wakes when an offer is taken by the other.
    let waiting = tokio::spawn(read(0, 20));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let (lulu_offer, lulu_acceptance) = offer(&relay, &lulu, &lulu_token, &intent).await;
    let page = waiting.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the wait did not end with the offer"
    );
    assert_eq!(page["next_after"], 1);
    let got = &page["offers"][0];
    assert_eq!(got["id"], lulu_offer.as_str());
    assert_eq!(got["n"], 1);
    assert_eq!(got["intent_id"], intent.id.as_str());
    assert_eq!(
        got["brand"],
        json!({"client_id": lulu.client_id, "name": "Chez Lulu"})
    );
    assert_eq!(got["offer"], offer_body_without_time(got));
    assert_eq!(got["acceptance"], lulu_acceptance.as_str());
    assert!(got["received_at"].is_string());

    // After the cursor only what is new; without parameters, everything.
    let (nord_offer, _) = offer(&relay, &nord, &nord_token, &intent).await;
    let page = read(1, 5).await;
    assert_eq!(page["next_after"], 2);
    assert_eq!(page["offers"].as_array().unwrap().len(), 1);
    assert_eq!(page["offers"][0]["id"], nord_offer.as_str());
    let (status, all) = vault_read(&relay, &intent, &intent.key).await;
    assert_eq!(status, 200);
    assert_eq!(all["next_after"], 2);
    assert_eq!(all["offers"].as_array().unwrap().len(), 2);

    // Expiry notice: to both brands, the intent closes.
    let (status, _) = send(&relay, &intent, &json!({"type": "expired"})).await;
    assert_eq!(status, 201);
    for token in [&lulu_token, &nord_token] {
        let events = feed(&relay, token).await;
        assert_eq!(
            types_about(&events, &intent.id),
            ["vrm.intent.created.v1", "vrm.intent.expired.v1"]
        );
        assert_eq!(events[1]["data"], json!({"intent": {"id": intent.id}}));
    }
}

/// The offer as the brand sent it (its `valid_until` is the one it chose).
fn offer_body_without_time(got: &Value) -> Value {
    let mut expected = offer_body();
    expected["valid_until"] = got["offer"]["valid_until"].clone();
    expected
}
