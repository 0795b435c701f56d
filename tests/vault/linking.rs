//! Brands that received the same intent hold no identifier in common: each knows the person by
//! its own pseudonym, and each knows the intent, its events and its deliveries by ids of its
//! own, so two brands comparing what they got cannot match one intent (issue 17).

use std::collections::BTreeSet;
use std::time::Duration as StdDuration;

use reqwest::Method;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::kit::grant::wall_now;
use crate::kit::intent::{
    LOOPBACK, Receiver, Subscriber, accept_sharing, decline, intent_body, intent_id, offer_body,
};
use crate::support::intent_vault;

/// Every string value in `value` (not the keys).
fn strings_in(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(s) => {
            out.insert(s.clone());
        }
        Value::Array(items) => items.iter().for_each(|v| strings_in(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings_in(v, out)),
        _ => {}
    }
}

/// Everything a brand received about the intent: its webhook requests (bodies and the
/// `webhook-id` header), its feed, and the vault's answers to its offer calls.
struct Received {
    strings: BTreeSet<String>,
}

impl Received {
    fn new() -> Received {
        Received {
            strings: BTreeSet::new(),
        }
    }

    fn add(&mut self, value: &Value) {
        strings_in(value, &mut self.strings);
    }
}

#[tokio::test]
async fn two_brands_receiving_one_intent_share_no_identifier() {
    let (_dir, app, owner) = intent_vault(&[LOOPBACK]).await;
    let hook_a = Receiver::start(&[]).await;
    let hook_b = Receiver::start(&[]).await;
    let a = Subscriber::onboard(&app, &owner, "Bistro A").await;
    let b = Subscriber::onboard(&app, &owner, "Bistro B").await;
    let mut got_a = Received::new();
    let mut got_b = Received::new();
    for (brand, hook) in [(&a, &hook_a), (&b, &hook_b)] {
        brand
            .subscribe_ok(
                &app,
                &json!({ "categories": ["food"], "webhook_url": hook.url }),
            )
            .await;
    }
    let now = wall_now();
    let body = intent_body("food.lunch", now);
    let id = intent_id(&app, &owner, body.clone()).await;

    // Each brand answers with an offer on the intent, named by the id it was given.
    let first_a = hook_a.wait_for(1, StdDuration::from_secs(10)).await;
    let first_b = hook_b.wait_for(1, StdDuration::from_secs(10)).await;
    let seen_a = first_a[0].json()["subject"].as_str().unwrap().to_owned();
    let seen_b = first_b[0].json()["subject"].as_str().unwrap().to_owned();
    assert!(seen_a.starts_with("i_") && seen_b.starts_with("i_"));
    assert_ne!(seen_a, seen_b, "both brands got the same intent id");
    assert_ne!(seen_a, id, "a brand got the vault's own intent id");

    // A brand's id is good for that brand only; the vault's own id is no brand's.
    for (brand, wrong) in [(&a, &seen_b), (&b, &seen_a), (&a, &id)] {
        let (status, answer) = brand.offer_as(&app, wrong, &offer_body(now, &[])).await;
        assert_eq!(status, 404, "{wrong}: {answer}");
    }
    let mut offer_a = offer_body(now, &[]);
    offer_a["name"] = json!("Menu A");
    offer_a["url"] = json!("https://a.example/offers/1");
    let mut offer_b = offer_body(now, &[]);
    offer_b["name"] = json!("Menu B");
    offer_b["url"] = json!("https://b.example/offers/1");
    let (status, made_a) = a.offer_as(&app, &seen_a, &offer_a).await;
    assert_eq!(status, 201, "{made_a}");
    assert_eq!(made_a["intent_id"], seen_a.as_str(), "{made_a}");
    let (status, made_b) = b.offer_as(&app, &seen_b, &offer_b).await;
    assert_eq!(status, 201, "{made_b}");
    assert_eq!(made_b["intent_id"], seen_b.as_str(), "{made_b}");
    got_a.add(&made_a);
    got_b.add(&made_b);
    accept_sharing(&app, &owner, made_a["id"].as_str().unwrap()).await;
    decline(&app, &owner, made_b["id"].as_str().unwrap()).await;

    // The intent, then the decision on the brand's offer: two deliveries each.
    for (brand, hook, got) in [(&a, &hook_a, &mut got_a), (&b, &hook_b, &mut got_b)] {
        for request in hook.wait_for(2, StdDuration::from_secs(10)).await {
            got.add(&request.json());
            got.add(&json!(request.header("webhook-id")));
        }
        for event in brand.events(&app).await {
            got.add(&event);
        }
        let offer = if std::ptr::eq(brand, &a) {
            &made_a
        } else {
            &made_b
        };
        let (status, own) = brand
            .call(
                &app,
                Method::GET,
                &format!("/brand/v1/offers/{}", offer["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(status, 200, "{own}");
        got.add(&own);
    }
    assert!(got_a.strings.contains(&seen_a) && got_b.strings.contains(&seen_b));

    // What both hold may only be public: the vault's address, the event types and formats,
    // what the person wrote in the intent, the offers' shared words, and times.
    let mut public = BTreeSet::new();
    strings_in(&body, &mut public);
    for constant in [
        app.base.as_str(),
        "1.0",
        "application/json",
        "vrm.intent.created.v1",
        "vrm.offer.accepted.v1",
        "vrm.offer.declined.v1",
        "pending",
        "accepted",
        "declined",
        "food",
        "Soup and a main, 12:30 at the corner table",
        "24.00",
        "EUR",
    ] {
        public.insert(constant.to_owned());
    }
    let shared: Vec<&String> = got_a
        .strings
        .intersection(&got_b.strings)
        .filter(|s| !public.contains(*s))
        .filter(|s| time::OffsetDateTime::parse(s, &Rfc3339).is_err())
        .collect();
    assert!(
        shared.is_empty(),
        "the two brands hold these values in common: {shared:?}"
    );
}
