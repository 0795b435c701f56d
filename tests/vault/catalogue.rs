//! The event catalogue (the OpenAPI document's `webhooks` section): one brand's life makes the
//! vault send every type it lists, each received event validates against its schema (by polling
//! and by webhook), and the catalogue lists nothing the vault never sends. Every other test's
//! polled events are checked against the catalogue too (`kit::catalogue`, called by
//! `Subscriber::poll`).

use std::collections::BTreeSet;
use std::time::Duration as StdDuration;

use serde_json::{Value, json};
use time::Duration;

use crate::kit::brand::{Server, publish, status_json};
use crate::kit::catalogue::{assert_catalogued, catalogue_errors, catalogued_types, document};
use crate::kit::grant::{EMAIL, put_record, revoke_grant, rfc3339, wall_now};
use crate::kit::intent::{
    LOOPBACK, Receiver, Subscriber, accept_sharing, decline, eventually, intent_body, intent_id,
    offer_body, pdc_intent_template, withdraw,
};
use crate::kit::owner::PASSPHRASE;
use crate::support::intent_vault;

/// How long an expected event may take to arrive (a bound, not a wait): webhook retries back off
/// 1 s, 2 s, 4 s …, and under the full suite, beside three-node NATS clusters, 15 s was once not
/// enough for every webhook.
const PATIENCE: StdDuration = StdDuration::from_secs(30);

fn types_of(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_catalogued_event_is_sent_and_matches_its_schema() {
    let (_dir, app, owner) = intent_vault(&[LOOPBACK]).await;
    put_record(&app, &owner, "contact.email", json!(EMAIL)).await;
    let receiver = Receiver::start(&[]).await;
    let mut bistro = Subscriber::onboard(&app, &owner, "Bistro Lilas").await;
    bistro
        .subscribe_ok(
            &app,
            &json!({ "categories": ["food"], "webhook_url": receiver.url }),
        )
        .await;

    // Intents: one that expires soon, one whose offer is accepted with sharing, one whose offer
    // is declined and which is then withdrawn.
    let now = wall_now();
    let mut soon = intent_body("food.lunch", now);
    soon["expires_at"] = json!(rfc3339(now + Duration::seconds(3)));
    soon["disclose"] = json!(["contact.email"]);
    let soon = intent_id(&app, &owner, soon).await;
    let shared = intent_id(&app, &owner, intent_body("food.dinner", now)).await;
    let offer = bistro
        .offer_ok(&app, &shared, &offer_body(now, &["contact.email"]))
        .await;
    let accepted = accept_sharing(&app, &owner, &offer).await;
    let grant_id = accepted["grant_id"].as_str().unwrap().to_owned();
    let declined = intent_id(&app, &owner, intent_body("food.lunch", now)).await;
    let offer = bistro
        .offer_ok(&app, &declined, &offer_body(now, &[]))
        .await;
    decline(&app, &owner, &offer).await;
    let (status, body) = withdraw(&app, &owner, &declined).await;
    assert_eq!(status, 200, "{body}");

    // New terms suspend the grant; accepting restores it; the person then revokes it.
    let mut terms = pdc_intent_template(&app, &owner).await;
    terms["description"] = json!("The same rules, said more kindly.");
    let (status, published) = publish(&app, &owner, &terms).await;
    assert_eq!(status, 201, "{published}");
    bistro.brand.accept_current(&app).await;
    bistro.refresh_token(&app).await;
    let (status, body) = revoke_grant(&app, &owner, &grant_id).await;
    assert!(matches!(status, 200 | 204), "{body}");

    // The soon-expiring intent's expiry is announced by the background worker, under the
    // brand's own alias of the intent.
    let soon = bistro.seen_id(&app, &soon).await;
    let polled = eventually(PATIENCE, || async {
        let events = bistro.events(&app).await;
        events
            .iter()
            .any(|e| e["type"] == "vrm.intent.expired.v1" && e["subject"] == soon)
            .then_some(events)
    })
    .await
    .expect("no vrm.intent.expired.v1");

    // Deleting everything sends the erasure request, by webhook only.
    let pending = eventually(PATIENCE, || async {
        let got = receiver.received();
        (got.len() >= polled.len()).then_some(got)
    })
    .await
    .expect("the webhooks of the polled events did not all arrive");
    let res = app
        .client()
        .delete(app.url("/api/v1/vault"))
        .bearer_auth(&owner)
        .json(&json!({ "passphrase": PASSPHRASE, "confirm": "delete everything" }))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(res).await;
    assert_eq!(status, 200, "{body}");
    let hooked = eventually(PATIENCE, || async {
        let got = receiver.received();
        got.iter()
            .any(|r| r.json()["type"] == "vrm.erasure.requested.v1")
            .then_some(got)
    })
    .await
    .expect("no vrm.erasure.requested.v1 webhook");
    assert!(hooked.len() > pending.len());

    // Every webhook body validates too (polled events were checked as they were read).
    let hooked: Vec<Value> = hooked.iter().map(|r| r.json()).collect();
    for event in &hooked {
        assert_catalogued(&app, event).await;
    }
    let mut seen = types_of(&polled);
    seen.extend(types_of(&hooked));
    let catalogue: BTreeSet<String> = catalogued_types(&app).await.into_iter().collect();
    assert_eq!(
        seen, catalogue,
        "the types sent and the types catalogued differ"
    );
}

#[tokio::test]
async fn the_document_types_the_event_page() {
    let (_dir, app, _owner) = intent_vault(&[]).await;
    let document = document(&app).await;
    let items = &document["components"]["schemas"]["EventPage"]["properties"]["events"]["items"];
    let one_of = items["oneOf"].as_array().unwrap();
    assert_eq!(
        one_of.len(),
        document["webhooks"].as_object().unwrap().len(),
        "{items}"
    );
    // Each webhook names a schema that exists.
    for (kind, hook) in document["webhooks"].as_object().unwrap() {
        let reference = hook["post"]["requestBody"]["content"]["application/cloudevents+json"]
            ["schema"]["$ref"]
            .as_str()
            .unwrap();
        let name = reference.trim_start_matches("#/components/schemas/");
        assert!(
            document["components"]["schemas"][name].is_object(),
            "{kind}: {reference}"
        );
    }
    // An event with a wrong data shape is refused, so the check above can fail.
    let broken = json!({
        "specversion": "1.0", "id": "evt_x", "source": "http://x", "type": "vrm.grant.created.v1",
        "subject": "g_x", "time": "2026-01-01T00:00:00Z", "datacontenttype": "application/json",
        "data": { "person": "p" },
    });
    let errors = catalogue_errors(&app, &broken).await;
    assert!(
        !errors.is_empty(),
        "a grant event without its grant was accepted"
    );
}
