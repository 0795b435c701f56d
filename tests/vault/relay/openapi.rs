//! The relay's OpenAPI document (`GET /relay/v1/openapi.json`): its routes against a committed
//! snapshot (as `openapi.rs` does for the vault: `UPDATE_SNAPSHOTS=1 cargo test --test vault
//! openapi::` rewrites it), and every CloudEvent the relay really sends, and the offers page
//! the vault reads, validated against the document's schemas.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::messages::{feed, jwe, offer, receipt, send, subscribe};
use super::offers::{publish, vault_read};
use crate::kit::relay::{AdmittedBrand, Nats, RelayApp};
use crate::openapi::routes;

const SNAPSHOT: &str = "tests/vault/snapshots/relay_openapi_routes.txt";

/// How `instance` breaks the document's schema `reference`, one line per error.
fn schema_errors(spec: &Value, reference: &str, instance: &Value) -> Vec<String> {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": reference,
        "components": spec["components"],
    });
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("{reference} does not compile: {e}"));
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn assert_documented_event(spec: &Value, event: &Value) {
    let kind = event["type"].as_str().unwrap();
    let reference = spec["webhooks"][kind]["post"]["requestBody"]["content"]
        ["application/cloudevents+json"]["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{kind} is not in the relay's webhooks"));
    let errors = schema_errors(spec, reference, event);
    assert!(errors.is_empty(), "{kind}: {errors:#?}\n{event}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_documents_its_routes_and_the_events_it_sends() {
    let nats = Nats::start();
    let relay = RelayApp::start(&nats.url(), |_| {});
    assert!(
        relay.wait_ready(200, Duration::from_secs(20)).await,
        "{}",
        relay.log()
    );
    let (status, spec) = relay.get_json("/relay/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(spec["components"]["schemas"]["ErrorBody"].is_object());
    let mut kinds: Vec<&String> = spec["webhooks"].as_object().unwrap().keys().collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "vrm.erasure.requested.v1",
            "vrm.intent.created.v1",
            "vrm.intent.expired.v1",
            "vrm.intent.withdrawn.v1",
            "vrm.offer.accepted.v1",
            "vrm.offer.declined.v1",
        ]
    );

    let actual = routes(&spec);
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(SNAPSHOT);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::write(&file, &actual).unwrap();
    } else {
        let expected = std::fs::read_to_string(&file).unwrap_or_default();
        assert_eq!(
            expected, actual,
            "/relay/v1/openapi.json no longer matches {SNAPSHOT}; if intended, run \
             `UPDATE_SNAPSHOTS=1 cargo test --test vault openapi::` and commit the snapshot"
        );
    }

    // Every kind of event, as the relay sends it, fits its documented schema.
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
    let (lulu_offer, acceptance) = offer(&relay, &lulu, &lulu_token, &intent).await;
    let (nord_offer, _) = offer(&relay, &nord, &nord_token, &intent).await;
    let (status, page) = vault_read(&relay, &intent, &intent.key).await;
    assert_eq!(status, 200);
    let errors = schema_errors(&spec, "#/components/schemas/OfferPageSchema", &page);
    assert!(errors.is_empty(), "{errors:#?}\n{page}");
    let messages = [
        json!({"type": "accepted", "offer_id": lulu_offer,
               "receipt": receipt(&intent.key, &acceptance), "jwe": jwe()}),
        json!({"type": "declined", "offer_id": nord_offer}),
        json!({"type": "withdrawn"}),
    ];
    for message in &messages {
        let (status, answer) = send(&relay, &intent, message).await;
        assert_eq!(status, 201, "{answer}");
    }
    let expiring = publish(&relay, 3).await;
    let (status, _) = send(&relay, &expiring, &json!({"type": "expired"})).await;
    assert_eq!(status, 201);
    let mut seen = Vec::new();
    // Read before the erasure (which purges the intent's events) and after it.
    for erase in [false, true] {
        if erase {
            let (status, _) = send(&relay, &intent, &json!({"type": "erasure"})).await;
            assert_eq!(status, 201);
        }
        for token in [&lulu_token, &nord_token] {
            let events = feed(&relay, token).await;
            let page = json!({"events": events, "next_cursor": 1});
            let errors = schema_errors(&spec, "#/components/schemas/RelayEventPage", &page);
            assert!(errors.is_empty(), "{errors:#?}");
            for event in &events {
                assert_documented_event(&spec, event);
                seen.push(event["type"].as_str().unwrap().to_owned());
            }
        }
    }
    seen.sort();
    seen.dedup();
    let kinds: Vec<String> = kinds.into_iter().cloned().collect();
    assert_eq!(seen, kinds);
}
