//! Intentcasting end to end: the person's intents reach exactly the brands that subscribed to
//! their category and area and accepted terms that permit it, by polling, Server-Sent Events and
//! signed webhooks; brands answer with offers, which the person accepts or declines.

use std::collections::BTreeSet;
use std::time::Duration as StdDuration;

use reqwest::Method;
use serde_json::{Value, json};
use time::Duration;

use crate::kit::brand::{owner_brand, owner_call, publish, status_json};
use crate::kit::grant::{
    EMAIL, InProcessApp, PHONE, audit_entries, grant_token, owner_grant, parse_time, put_record,
    read_ok, rfc3339, wall_now,
};
use crate::kit::intent::{
    LONDON, LOOPBACK, LYON_REGION, PARIS, PARIS_LAT, PARIS_LON, PARIS_REGION, Receiver, SseStream,
    Subscriber, accept_sharing, assert_error, categories, create_intent, decline, eventually,
    food_in, intent, intent_at, intent_body, intent_id, offer_body, owner_intent, owner_offers,
    publish_pdc_intent, signature_verifies, subjects, withdraw,
};
use crate::support::{intent_vault, ready_vault, ready_vault_with};

const CREATED: &str = "vrm.intent.created.v1";
const WITHDRAWN: &str = "vrm.intent.withdrawn.v1";
const EXPIRED: &str = "vrm.intent.expired.v1";
const ACCEPTED: &str = "vrm.offer.accepted.v1";
const DECLINED: &str = "vrm.offer.declined.v1";

/// How long a test waits for something the vault does in the background.
const PATIENCE: StdDuration = StdDuration::from_secs(10);

fn ids_of(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn categories_match_by_segment_prefix() {
    let (_dir, app, owner) = intent_vault(&[]).await;
    let food = Subscriber::subscribed(&app, &owner, "All Food", categories(&["food"])).await;
    let dinner =
        Subscriber::subscribed(&app, &owner, "Dinner Only", categories(&["food.dinner"])).await;
    let travel = Subscriber::subscribed(&app, &owner, "Travel", categories(&["travel"])).await;

    // "foo" is a prefix of "food" as a string but not a category: refused, naming the field.
    for bad in ["foo", "food.lunchbox", "Food", "food..lunch"] {
        let (status, body) = food.subscribe(&app, &categories(&[bad])).await;
        assert_error(status, &body, 422, "invalid_subscription", bad);
        assert!(
            body["message"].as_str().unwrap().contains("categories"),
            "{bad}: {body}"
        );
        assert_eq!(body["at"], json!("categories"), "{bad}: {body}");
    }
    // The refused updates left the subscription as it was.
    let (status, current) = food
        .call(&app, Method::GET, "/brand/v1/subscription", None)
        .await;
    assert_eq!(status, 200, "{current}");
    assert_eq!(current["categories"], json!(["food"]), "{current}");

    let now = wall_now();
    let lunch = intent(&app, &owner, intent_body("food.lunch", now)).await;
    assert_eq!(lunch["recipients_count"], 1, "{lunch}");
    let lunch = lunch["id"].as_str().unwrap().to_owned();
    let supper = intent(&app, &owner, intent_body("food.dinner", now)).await;
    assert_eq!(supper["recipients_count"], 2, "{supper}");
    let supper = supper["id"].as_str().unwrap().to_owned();

    assert_eq!(
        food.subjects(&app, CREATED).await,
        ids_of(&[&lunch, &supper])
    );
    assert_eq!(dinner.subjects(&app, CREATED).await, ids_of(&[&supper]));
    assert!(travel.events(&app).await.is_empty());

    // Polling resumes after the cursor: nothing new means an empty page and the same cursor.
    let (first, cursor) = food.poll(&app, 0).await;
    assert_eq!(first.len(), 2);
    let (again, same) = food.poll(&app, cursor).await;
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(same, cursor);
    let third = intent_id(&app, &owner, intent_body("food.breakfast", now)).await;
    let (next, after) = food.poll(&app, cursor).await;
    assert_eq!(
        food.as_owner_ids(&app, subjects(&next, CREATED)).await,
        ids_of(&[&third])
    );
    assert!(after > cursor, "{after} after {cursor}");
}

#[tokio::test]
async fn areas_match_by_geohash_cell_and_by_circle() {
    let (_dir, app, owner) = intent_vault(&[]).await;
    let cell = Subscriber::subscribed(
        &app,
        &owner,
        "Paris Cell",
        food_in(json!([{ "geohash": PARIS_REGION }])),
    )
    .await;
    let circle = Subscriber::subscribed(
        &app,
        &owner,
        "Paris Circle",
        food_in(json!([{ "lat": PARIS_LAT, "lon": PARIS_LON, "radius_m": 3000 }])),
    )
    .await;
    let lyon = Subscriber::subscribed(
        &app,
        &owner,
        "Lyon",
        food_in(json!([{ "geohash": LYON_REGION }])),
    )
    .await;
    let everywhere =
        Subscriber::subscribed(&app, &owner, "Everywhere", categories(&["food"])).await;

    let now = wall_now();
    let paris = intent_id(&app, &owner, intent_at("food.lunch", now, PARIS, 500)).await;
    let london = intent_id(&app, &owner, intent_at("food.lunch", now, LONDON, 500)).await;
    // An intent without a place reaches every area.
    let nowhere = intent_id(&app, &owner, intent_body("food.lunch", now)).await;

    assert_eq!(
        cell.subjects(&app, CREATED).await,
        ids_of(&[&paris, &nowhere])
    );
    assert_eq!(
        circle.subjects(&app, CREATED).await,
        ids_of(&[&paris, &nowhere])
    );
    assert_eq!(lyon.subjects(&app, CREATED).await, ids_of(&[&nowhere]));
    // A subscription without areas gets everything in its categories.
    assert_eq!(
        everywhere.subjects(&app, CREATED).await,
        ids_of(&[&paris, &london, &nowhere])
    );
    assert_eq!(
        owner_intent(&app, &owner, &london).await["recipients_count"],
        1
    );

    // The event carries the place as the person gave it.
    let events = cell.events(&app).await;
    assert_eq!(
        events[0]["data"]["intent"]["location"],
        json!({ "geohash": PARIS, "radius_m": 500 }),
        "{}",
        events[0]
    );
}

// ---------------------------------------------------------------------------------------------
// Who may receive intents
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn sd_base_terms_do_not_permit_intentcasting() {
    // A new vault's terms are SD-BASE, whose basis does not cover intentcasting.
    let (_dir, app, owner) = ready_vault().await;
    let mut brand =
        Subscriber::subscribed(&app, &owner, "Early Bistro", categories(&["food"])).await;
    let now = wall_now();
    let before = intent(&app, &owner, intent_body("food.lunch", now)).await;
    assert_eq!(before["recipients_count"], 0, "{before}");
    assert!(brand.events(&app).await.is_empty());

    // Once the person publishes PDC-INTENT and the brand accepts it, intents do reach it; the
    // one created under SD-BASE never does.
    publish_pdc_intent(&app, &owner).await;
    brand.brand.accept_current(&app).await;
    brand.refresh_token(&app).await;
    let after = intent_id(&app, &owner, intent_body("food.lunch", now)).await;
    assert_eq!(brand.subjects(&app, CREATED).await, ids_of(&[&after]));
}

#[tokio::test]
async fn a_brand_without_a_current_agreement_receives_nothing() {
    let (_dir, app, owner) = intent_vault(&[]).await;
    let mut control = Subscriber::subscribed(&app, &owner, "Control", categories(&["food"])).await;
    let mut leaver = Subscriber::subscribed(&app, &owner, "Leaver", categories(&["food"])).await;
    let now = wall_now();

    // The brand withdraws its agreement.
    let view = owner_brand(&app, &owner, &leaver.brand.client_id).await;
    let agreement = view["agreement"]["id"].as_str().unwrap();
    let res = leaver
        .brand
        .brand_request(
            &app,
            Method::DELETE,
            &format!("/brand/v1/agreements/{agreement}"),
            json!({}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let while_withdrawn = intent(&app, &owner, intent_body("food.lunch", now)).await;
    assert_eq!(while_withdrawn["recipients_count"], 1, "{while_withdrawn}");
    let while_withdrawn = while_withdrawn["id"].as_str().unwrap().to_owned();

    // New terms: the agreement on the old ones is no longer current.
    let mut terms = crate::kit::intent::pdc_intent_template(&app, &owner).await;
    terms["title"] = json!("Intentcasting, second edition");
    let (status, body) = publish(&app, &owner, &terms).await;
    assert_eq!(status, 201, "{body}");
    let under_new_terms = intent(&app, &owner, intent_body("food.lunch", now)).await;
    assert_eq!(under_new_terms["recipients_count"], 0, "{under_new_terms}");

    // Back on the terms in force, the brands receive the intents still open that they missed
    // (DESIGN §5: agreements stop covering deliveries *until* the brand accepts), oldest first,
    // then new ones. (Their old tokens died with the old terms.)
    let under_new_terms = under_new_terms["id"].as_str().unwrap().to_owned();
    for brand in [&mut leaver, &mut control] {
        brand.brand.accept_current(&app).await;
        brand.refresh_token(&app).await;
    }
    let later = intent_id(&app, &owner, intent_body("food.lunch", now)).await;
    // The two missed intents may carry the same second, so their order is not asserted.
    let missed: BTreeSet<String> = ids_of(&[&while_withdrawn, &under_new_terms])
        .into_iter()
        .collect();
    for brand in [&leaver, &control] {
        let got = brand.subjects(&app, CREATED).await;
        let (late, new) = got.split_at(got.len() - 1);
        assert_eq!(late.iter().cloned().collect::<BTreeSet<_>>(), missed);
        assert_eq!(late.len(), 2, "{got:?}");
        assert_eq!(new, std::slice::from_ref(&later));
    }
    // Accepting again delivers nothing twice.
    let hash = crate::kit::brand::public_terms(&app).await["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(control.brand.accept(&app, &hash).await.status(), 200);
    assert_eq!(control.subjects(&app, CREATED).await.len(), 3);
}

#[tokio::test]
async fn a_suspended_brand_receives_nothing() {
    let (_dir, app, owner) = intent_vault(&[]).await;
    let control = Subscriber::subscribed(&app, &owner, "Control", categories(&["food"])).await;
    let mut paused = Subscriber::subscribed(&app, &owner, "Paused", categories(&["food"])).await;
    let path = format!("/api/v1/brands/{}", paused.brand.client_id);
    let now = wall_now();

    let (status, body) =
        owner_call(&app, &owner, Method::POST, &format!("{path}/suspend"), None).await;
    assert_eq!(status, 200, "{body}");
    let missed = intent(&app, &owner, intent_body("food.lunch", now)).await;
    assert_eq!(missed["recipients_count"], 1, "{missed}");
    let missed = missed["id"].as_str().unwrap().to_owned();

    let (status, body) =
        owner_call(&app, &owner, Method::POST, &format!("{path}/resume"), None).await;
    assert_eq!(status, 200, "{body}");
    paused.refresh_token(&app).await;
    let later = intent_id(&app, &owner, intent_body("food.lunch", now)).await;
    assert_eq!(paused.subjects(&app, CREATED).await, ids_of(&[&later]));
    assert_eq!(
        control.subjects(&app, CREATED).await,
        ids_of(&[&missed, &later])
    );
}

/// Only active brands receive anything, so a webhook still pending when the brand is suspended
/// must not go out while it is suspended (it carries the disclosed data), and neither may news
/// of the intent's withdrawal.
#[tokio::test]
async fn a_suspended_brand_gets_no_pending_webhook() {
    let (_dir, app, owner) = intent_vault(&[LOOPBACK]).await;
    put_record(&app, &owner, "contact.email", json!(EMAIL)).await;
    let receiver = Receiver::start(&[500]).await;
    let brand = Subscriber::onboard(&app, &owner, "Flaky Bistro").await;
    brand
        .subscribe_ok(
            &app,
            &json!({ "categories": ["food"], "webhook_url": receiver.url }),
        )
        .await;
    let mut body = intent_body("food.lunch", wall_now());
    body["disclose"] = json!(["contact.email"]);
    let id = intent_id(&app, &owner, body).await;
    receiver.wait_for(1, PATIENCE).await;

    let path = format!("/api/v1/brands/{}/suspend", brand.brand.client_id);
    let (status, body) = owner_call(&app, &owner, Method::POST, &path, None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = withdraw(&app, &owner, &id).await;
    assert_eq!(status, 200, "{body}");
    // Longer than the first retry's backoff with its jitter.
    let more = eventually(StdDuration::from_secs(4), || async {
        let got = receiver.received();
        (got.len() > 1).then_some(got)
    })
    .await;
    if let Some(got) = more {
        let late: Vec<String> = got[1..]
            .iter()
            .map(|r| {
                let carries = if r.body.windows(EMAIL.len()).any(|w| w == EMAIL.as_bytes()) {
                    " with the disclosed email"
                } else {
                    ""
                };
                format!("{}{carries}", r.json()["type"])
            })
            .collect();
        panic!("a suspended brand received {late:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// What brands see
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn each_brand_sees_its_own_pseudonym_and_fresh_event_ids() {
    let (_dir, app, owner) = intent_vault(&[]).await;
    let a = Subscriber::subscribed(&app, &owner, "Bistro A", categories(&["food"])).await;
    let b = Subscriber::subscribed(&app, &owner, "Bistro B", categories(&["food"])).await;
    let id = intent_id(&app, &owner, intent_body("food.lunch", wall_now())).await;

    let event_a = a.events(&app).await.remove(0);
    let event_b = b.events(&app).await.remove(0);
    // Each brand knows the intent by its own id: not the vault's, not the other brand's.
    assert_eq!(event_a["subject"], a.seen_id(&app, &id).await);
    assert_eq!(event_b["subject"], b.seen_id(&app, &id).await);
    assert_ne!(event_a["subject"], event_b["subject"]);
    assert_ne!(event_a["subject"], id);
    assert_eq!(event_a["data"]["person"], a.sub(), "{event_a}");
    assert_eq!(event_b["data"]["person"], b.sub(), "{event_b}");
    assert_ne!(a.sub(), b.sub());
    assert_eq!(
        owner_brand(&app, &owner, &a.brand.client_id).await["pseudonym"],
        a.sub()
    );
    assert_ne!(
        event_a["id"], event_b["id"],
        "event ids are per brand delivery"
    );
    // Nothing in a brand's event names the person otherwise, or the other brand.
    let text = event_a.to_string();
    assert!(
        !text.contains(&b.sub()) && !text.contains(&b.brand.client_id),
        "{text}"
    );
}

#[tokio::test]
async fn brands_see_only_the_disclosed_fields() {
    let (_dir, app, owner) = intent_vault(&[]).await;
    put_record(&app, &owner, "contact.email", json!(EMAIL)).await;
    put_record(&app, &owner, "contact.phone", json!(PHONE)).await;
    let brand = Subscriber::subscribed(&app, &owner, "Bistro", categories(&["food"])).await;
    let now = wall_now();

    let mut quiet = intent_body("food.lunch", now);
    quiet["disclose"] = json!([]);
    let quiet = intent_id(&app, &owner, quiet).await;
    let mut open = intent_body("food.lunch", now);
    open["disclose"] = json!(["contact.email"]);
    let open = intent(&app, &owner, open).await;
    assert_eq!(open["disclose"], json!(["contact.email"]), "{open}");
    let open = open["id"].as_str().unwrap().to_owned();

    let events = brand.events(&app).await;
    assert_eq!(
        brand.as_owner_ids(&app, subjects(&events, CREATED)).await,
        ids_of(&[&quiet, &open])
    );
    let first = &events[0]["data"]["intent"];
    assert_eq!(first["disclosed"], json!({}), "{first}");
    let text = events[0].to_string();
    assert!(!text.contains(EMAIL) && !text.contains(PHONE), "{text}");

    let second = &events[1]["data"]["intent"];
    assert_eq!(
        second["disclosed"],
        json!({ "contact.email": EMAIL }),
        "{second}"
    );
    assert!(!events[1].to_string().contains(PHONE), "{}", events[1]);
    // The brand sees the intent, not the vault's bookkeeping.
    let keys: BTreeSet<&str> = second
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for hidden in [
        "disclose",
        "recipients",
        "recipients_count",
        "offers",
        "offers_count",
    ] {
        assert!(!keys.contains(hidden), "{hidden} in {second}");
    }
    assert_eq!(second["id"], brand.seen_id(&app, &open).await);
    assert_eq!(second["category"], "food.lunch");
    assert_eq!(second["text"], "lunch nearby for two");
}

// ---------------------------------------------------------------------------------------------
// Invalid intents
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_intents_are_refused_naming_the_field() {
    let (_dir, app, owner) = intent_vault(&[]).await;
    let brand = Subscriber::subscribed(&app, &owner, "Bistro", categories(&["food"])).await;
    let now = wall_now();
    let with = |key: &str, value: Value| {
        let mut body = intent_at("food.lunch", now, PARIS, 1500);
        body[key] = value;
        body
    };
    let cases = [
        (
            "expires_at",
            with("expires_at", json!(rfc3339(now - Duration::minutes(5)))),
        ),
        (
            "expires_at",
            with("expires_at", json!(rfc3339(now + Duration::days(31)))),
        ),
        ("category", with("category", json!("food.sushi"))),
        ("category", with("category", json!("food"))),
        (
            "location.geohash",
            with(
                "location",
                json!({ "geohash": "u09tvw0q", "radius_m": 1500 }),
            ),
        ),
        (
            "location.radius_m",
            with("location", json!({ "geohash": PARIS, "radius_m": 50_001 })),
        ),
        (
            "price_max.amount",
            with(
                "price_max",
                json!({ "amount": "15.999", "currency": "EUR" }),
            ),
        ),
        (
            "price_max.amount",
            with("price_max", json!({ "amount": "-3", "currency": "EUR" })),
        ),
        (
            "price_max.currency",
            with("price_max", json!({ "amount": "15.00", "currency": "eur" })),
        ),
        ("party_size", with("party_size", json!(0))),
        ("max_offers", with("max_offers", json!(51))),
        ("tags", with("tags", json!(["Vegan"]))),
        (
            "window.from",
            with(
                "window",
                json!({ "from": rfc3339(now + Duration::hours(2)), "to": rfc3339(now + Duration::hours(1)) }),
            ),
        ),
        (
            "disclose",
            with("disclose", json!(["contact.nothing_here"])),
        ),
    ];
    for (field, body) in cases {
        let (status, answer) = create_intent(&app, &owner, body.clone()).await;
        assert_error(status, &answer, 422, "invalid_intent", &body.to_string());
        assert!(
            answer["message"].as_str().unwrap().contains(field),
            "the message does not name {field}: {answer}"
        );
        // The field is also named apart from the sentence, for clients to point at.
        assert_eq!(answer["at"], json!(field), "{answer}");
    }
    // Nothing was created or sent.
    let (status, list) = owner_call(&app, &owner, Method::GET, "/api/v1/intents", None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["intents"], json!([]), "{list}");
    assert!(brand.events(&app).await.is_empty());
    assert!(
        audit_entries(&app, &owner, "intent.created")
            .await
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn webhooks_are_signed_cloudevents() {
    let (_dir, app, owner) = intent_vault(&[LOOPBACK]).await;
    let receiver = Receiver::start(&[]).await;
    let brand = Subscriber::onboard(&app, &owner, "Hooked Bistro").await;
    let subscription = brand
        .subscribe_ok(
            &app,
            &json!({ "categories": ["food"], "webhook_url": receiver.url }),
        )
        .await;
    let secret = subscription["webhook_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{subscription}");
    assert_eq!(subscription["webhook_url"], receiver.url);
    // The secret is shown once.
    let (_, again) = brand
        .call(&app, Method::GET, "/brand/v1/subscription", None)
        .await;
    assert!(again.get("webhook_secret").is_none(), "{again}");

    let id = intent_id(&app, &owner, intent_body("food.lunch", wall_now())).await;
    let got = receiver.wait_for(1, PATIENCE).await;
    let request = &got[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hooks/vrm");
    assert_eq!(
        request.header("content-type"),
        "application/cloudevents+json"
    );
    assert!(signature_verifies(&secret, request), "{request:?}");
    let timestamp: i64 = request.header("webhook-timestamp").parse().unwrap();
    assert!(
        (timestamp - wall_now().unix_timestamp()).abs() < 300,
        "webhook-timestamp {timestamp}"
    );
    // A signature made with another secret, or over another body, does not verify.
    let mut tampered = request.clone();
    tampered.body.push(b' ');
    assert!(!signature_verifies(&secret, &tampered));
    assert!(!signature_verifies(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        request
    ));

    let event = request.json();
    assert_eq!(event["specversion"], "1.0", "{event}");
    assert_eq!(event["id"], request.header("webhook-id"), "{event}");
    assert_eq!(event["source"], app.base, "{event}");
    assert_eq!(event["type"], CREATED, "{event}");
    let seen = brand.seen_id(&app, &id).await;
    assert_eq!(event["subject"], seen, "{event}");
    assert_eq!(event["datacontenttype"], "application/json", "{event}");
    parse_time(&event["time"]);
    assert_eq!(event["data"]["intent"]["id"], seen, "{event}");
    assert_eq!(event["data"]["person"], brand.sub(), "{event}");
    // The same event is in the brand's feed.
    assert_eq!(brand.events(&app).await, vec![event.clone()]);

    let succeeded = eventually(PATIENCE, || async {
        let entries = audit_entries(&app, &owner, "delivery.succeeded").await;
        (!entries.is_empty()).then_some(entries)
    })
    .await
    .expect("a delivery.succeeded audit entry");
    assert_eq!(succeeded[0]["target"], brand.brand.client_id);
    assert_eq!(succeeded[0]["detail"]["event"], event["id"]);
    let created = audit_entries(&app, &owner, "intent.created").await;
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0]["actor"], "owner");
    assert_eq!(created[0]["target"], id);
    assert_eq!(created[0]["detail"]["recipients"], 1);
    // Exactly one delivery: a success is not repeated.
    assert_eq!(receiver.received().len(), 1);

    // A rotated secret signs the next delivery, and for 24 hours the old one too (two
    // space-separated signatures), so the brand's receiver can switch without losing one.
    let rotated = brand.rotate_secret(&app).await;
    let new_secret = rotated["webhook_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    let until = parse_time(&rotated["previous_secret_signs_until"]);
    let minutes = (until - wall_now()).whole_minutes();
    assert!((23 * 60..=24 * 60).contains(&minutes), "{rotated}");
    intent_id(&app, &owner, intent_body("food.dinner", wall_now())).await;
    let got = receiver.wait_for(2, PATIENCE).await;
    assert_eq!(got[1].header("webhook-signature").split(' ').count(), 2);
    assert!(signature_verifies(&new_secret, &got[1]));
    assert!(signature_verifies(&secret, &got[1]));

    // After a leak the brand rotates with no overlap: only the newest secret signs.
    let (status, leaked) = brand
        .call(
            &app,
            Method::POST,
            "/brand/v1/subscription/rotate-secret?overlap_seconds=0",
            None,
        )
        .await;
    assert_eq!(status, 200, "{leaked}");
    assert!(
        leaked.get("previous_secret_signs_until").is_none(),
        "{leaked}"
    );
    let newest = leaked["webhook_secret"].as_str().unwrap().to_owned();
    intent_id(&app, &owner, intent_body("food.dinner", wall_now())).await;
    let got = receiver.wait_for(3, PATIENCE).await;
    assert!(signature_verifies(&newest, &got[2]));
    assert!(!signature_verifies(&new_secret, &got[2]));
    assert!(!signature_verifies(&secret, &got[2]));
    let (status, body) = brand
        .call(
            &app,
            Method::POST,
            "/brand/v1/subscription/rotate-secret?overlap_seconds=604801",
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("invalid_overlap")),
        "{body}"
    );
}

#[tokio::test]
async fn a_failed_webhook_is_retried_with_the_same_id() {
    let (_dir, app, owner) = intent_vault(&[LOOPBACK]).await;
    // The receiver fails the first delivery and takes the next.
    let receiver = Receiver::start(&[500]).await;
    let brand = Subscriber::onboard(&app, &owner, "Flaky Bistro").await;
    let subscription = brand
        .subscribe_ok(
            &app,
            &json!({ "categories": ["food"], "webhook_url": receiver.url }),
        )
        .await;
    let secret = subscription["webhook_secret"].as_str().unwrap().to_owned();
    intent_id(&app, &owner, intent_body("food.lunch", wall_now())).await;

    receiver.wait_for(1, PATIENCE).await;
    // Between the attempts the owner sees the brand's webhook failing, with the delivery pending.
    let failing = eventually(StdDuration::from_secs(2), || async {
        let view = owner_brand(&app, &owner, &brand.brand.client_id).await;
        (view["delivery"]["status"] == "failing").then_some(view)
    })
    .await;
    let got = receiver.wait_for(2, PATIENCE).await;
    let failing = failing.expect("the owner never saw the delivery failing");
    assert_eq!(failing["delivery"]["pending"], 1, "{failing}");
    assert!(
        failing["delivery"]["last_error"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{failing}"
    );

    let (first, second) = (&got[0], &got[1]);
    assert_eq!(first.header("webhook-id"), second.header("webhook-id"));
    assert_eq!(
        first.json(),
        second.json(),
        "the retry sends the same event"
    );
    assert!(signature_verifies(&secret, first) && signature_verifies(&secret, second));
    // Backoff: not at once, and within seconds. The bounds hold whether the first retry waits
    // one second (as `delivery::backoff` documents) or two (as it does today), plus jitter.
    let gap = second.at - first.at;
    assert!(
        gap >= StdDuration::from_millis(900) && gap <= StdDuration::from_secs(5),
        "retried after {gap:?}"
    );
    // The second attempt succeeded: no third.
    let status = eventually(PATIENCE, || async {
        let view = owner_brand(&app, &owner, &brand.brand.client_id).await;
        (view["delivery"]["status"] == "ok" && view["delivery"]["pending"] == 0).then_some(view)
    })
    .await
    .expect("the delivery never recovered");
    assert!(status["delivery"]["last_error"].is_null(), "{status}");
    assert_eq!(receiver.received().len(), 2);

    let failed = audit_entries(&app, &owner, "delivery.failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["target"], brand.brand.client_id);
    assert_eq!(failed[0]["detail"]["event"], first.header("webhook-id"));
    assert_eq!(failed[0]["detail"]["attempt"], 1);
    let succeeded = audit_entries(&app, &owner, "delivery.succeeded").await;
    assert_eq!(succeeded.len(), 1, "{succeeded:?}");
    assert_eq!(succeeded[0]["detail"]["attempt"], 2);
}

#[tokio::test]
async fn loopback_webhooks_need_the_flag() {
    let (_dir, app, owner) = intent_vault(&[]).await;
    let brand = Subscriber::onboard(&app, &owner, "Local Bistro").await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]:9/hook",
        "http://bistro.example/hook",
        "https://user:pw@bistro.example/hook",
    ] {
        let (status, body) = brand
            .subscribe(&app, &json!({ "categories": ["food"], "webhook_url": url }))
            .await;
        assert_error(status, &body, 422, "invalid_subscription", url);
        assert!(
            body["message"].as_str().unwrap().contains("webhook_url"),
            "{url}: {body}"
        );
    }
    let (status, body) = brand
        .subscribe(
            &app,
            &json!({ "categories": ["food"], "webhook_url": "https://bistro.example/hook" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["webhook_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );

    let (_dir2, local, owner2) = intent_vault(&[LOOPBACK]).await;
    let brand = Subscriber::onboard(&local, &owner2, "Local Bistro").await;
    let (status, body) = brand
        .subscribe(
            &local,
            &json!({ "categories": ["food"], "webhook_url": "http://127.0.0.1:9/hook" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Even with the flag, plain http elsewhere is refused.
    let (status, body) = brand
        .subscribe(
            &local,
            &json!({ "categories": ["food"], "webhook_url": "http://bistro.example/hook" }),
        )
        .await;
    assert_error(status, &body, 422, "invalid_subscription", "http elsewhere");
}

// ---------------------------------------------------------------------------------------------
// Server-Sent Events
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn server_sent_events_resume_after_the_last_event_id() {
    let (_dir, app, owner) = intent_vault(&[]).await;
    let brand =
        Subscriber::subscribed(&app, &owner, "Streaming Bistro", categories(&["food"])).await;
    let now = wall_now();
    let first = intent_id(&app, &owner, intent_body("food.lunch", now)).await;

    let mut stream = SseStream::open(&app, &brand.token, None).await;
    let one = stream.next(PATIENCE).await.expect("the stored event");
    assert_eq!(one.data["subject"], brand.seen_id(&app, &first).await);
    assert_eq!(one.data["type"], CREATED);
    // Live: an intent created while the stream is open arrives on it.
    let second = intent_id(&app, &owner, intent_body("food.dinner", now)).await;
    let two = stream.next(PATIENCE).await.expect("the live event");
    assert_eq!(two.data["subject"], brand.seen_id(&app, &second).await);
    let (one_id, two_id): (u64, u64) = (one.id.parse().unwrap(), two.id.parse().unwrap());
    assert!(two_id > one_id, "{one_id} then {two_id}");
    drop(stream);

    // Disconnected: this one waits in the feed.
    let third = intent_id(&app, &owner, intent_body("food.breakfast", now)).await;
    let mut stream = SseStream::open(&app, &brand.token, Some(&two.id)).await;
    let three = stream.next(PATIENCE).await.expect("the missed event");
    assert_eq!(
        three.data["subject"],
        brand.seen_id(&app, &third).await,
        "resumed at the wrong place"
    );
    let fourth = intent_id(&app, &owner, intent_body("food.groceries", now)).await;
    let four = stream.next(PATIENCE).await.expect("the next live event");
    assert_eq!(four.data["subject"], brand.seen_id(&app, &fourth).await);
    // No duplicates: nothing else is pending.
    assert!(stream.next(StdDuration::from_millis(500)).await.is_none());
    drop(stream);

    // Resuming from an earlier id replays exactly what came after it.
    let mut stream = SseStream::open(&app, &brand.token, Some(&one.id)).await;
    let mut replayed = vec![];
    while let Some(event) = stream.next(StdDuration::from_millis(500)).await {
        replayed.push(event.data["subject"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        brand.as_owner_ids(&app, replayed).await,
        ids_of(&[&second, &third, &fourth])
    );
    // The SSE ids are the polling cursors.
    let (_, cursor) = brand.poll(&app, 0).await;
    assert_eq!(cursor.to_string(), four.id);

    // A Last-Event-ID that is not one of ours is refused.
    let res = app
        .client
        .get(app.url("/brand/v1/events"))
        .bearer_auth(&brand.token)
        .header("last-event-id", "evt_nonsense")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

// ---------------------------------------------------------------------------------------------
// Offers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn offers_reach_the_owner_and_stay_private_between_brands() {
    let (_dir, app, owner) = intent_vault(&[]).await;
    let bistro = Subscriber::subscribed(&app, &owner, "Bistro", categories(&["food"])).await;
    // The other brand is in London and does not receive the Paris intent.
    let other = Subscriber::subscribed(
        &app,
        &owner,
        "London Pub",
        food_in(json!([{ "geohash": "gcp" }])),
    )
    .await;
    let now = wall_now();
    let id = intent_id(&app, &owner, intent_at("food.lunch", now, PARIS, 500)).await;
    assert!(other.events(&app).await.is_empty());

    let offer = bistro.offer_ok(&app, &id, &offer_body(now, &[])).await;
    let offers = owner_offers(&app, &owner, &id).await;
    assert_eq!(offers.len(), 1, "{offers:?}");
    let seen = &offers[0];
    assert_eq!(seen["id"], offer);
    assert_eq!(seen["intent_id"], id);
    assert_eq!(seen["client_id"], bistro.brand.client_id);
    assert_eq!(seen["brand_name"], "Bistro");
    assert_eq!(seen["status"], "pending");
    assert_eq!(seen["name"], "Two-course lunch");
    assert_eq!(
        seen["price"],
        json!({ "amount": "24.00", "currency": "EUR" })
    );
    assert_eq!(owner_intent(&app, &owner, &id).await["offers_count"], 1);

    let (status, own) = bistro.own_offer(&app, &offer).await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(
        (&own["id"], &own["status"]),
        (&json!(offer), &json!("pending"))
    );
    let (status, body) = other.own_offer(&app, &offer).await;
    assert_error(status, &body, 404, "not_found", "another brand's offer");
    let (status, body) = other.offer(&app, &id, &offer_body(now, &[])).await;
    assert_error(
        status,
        &body,
        404,
        "not_found",
        "an intent the brand did not receive",
    );
    let (status, body) = bistro
        .offer(&app, "i_doesnotexist", &offer_body(now, &[]))
        .await;
    assert_error(status, &body, 404, "not_found", "an unknown intent");
    assert_eq!(owner_offers(&app, &owner, &id).await.len(), 1);

    let received = audit_entries(&app, &owner, "offer.received").await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["actor"], "brand");
    assert_eq!(received[0]["target"], bistro.brand.client_id);
    assert_eq!(received[0]["detail"]["offer"], offer);
    assert_eq!(received[0]["detail"]["intent"], id);
}

#[tokio::test]
async fn invalid_offers_are_refused_naming_the_field() {
    let (_dir, app, owner) = intent_vault(&[]).await;
    let bistro = Subscriber::subscribed(&app, &owner, "Bistro", categories(&["food"])).await;
    let now = wall_now();
    let id = intent_id(&app, &owner, intent_at("food.lunch", now, PARIS, 500)).await;
    let with = |key: &str, value: Value| {
        let mut body = offer_body(now, &[]);
        body[key] = value;
        body
    };
    let cases = [
        ("name", with("name", json!(" "))),
        (
            "valid_until",
            with("valid_until", json!(rfc3339(now - Duration::minutes(1)))),
        ),
        ("url", with("url", json!("http://bistro.example/lunch"))),
        (
            "data_requested",
            with("data_requested", json!(["Not A Path"])),
        ),
    ];
    for (field, body) in cases {
        let (status, answer) = bistro.offer(&app, &id, &body).await;
        assert_error(status, &answer, 422, "invalid_offer", &body.to_string());
        assert_eq!(answer["at"], json!(field), "{answer}");
    }
    assert!(owner_offers(&app, &owner, &id).await.is_empty());
}

#[tokio::test]
async fn a_withdrawn_intent_takes_no_offers_and_its_recipients_are_told() {
    let (_dir, app, owner) = intent_vault(&[]).await;
    let bistro = Subscriber::subscribed(&app, &owner, "Bistro", categories(&["food"])).await;
    let bystander = Subscriber::subscribed(&app, &owner, "Hotel", categories(&["travel"])).await;
    let now = wall_now();
    let id = intent_id(&app, &owner, intent_body("food.lunch", now)).await;

    let (status, view) = withdraw(&app, &owner, &id).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "withdrawn", "{view}");
    let (status, body) = withdraw(&app, &owner, &id).await;
    assert_error(status, &body, 409, "conflict", "withdrawn twice");

    let (status, body) = bistro.offer(&app, &id, &offer_body(now, &[])).await;
    assert_error(
        status,
        &body,
        409,
        "intent_closed",
        "an offer on a withdrawn intent",
    );
    assert!(owner_offers(&app, &owner, &id).await.is_empty());

    let events = bistro.events(&app).await;
    assert_eq!(
        bistro
            .as_owner_ids(&app, subjects(&events, WITHDRAWN))
            .await,
        ids_of(&[&id])
    );
    let told = events.iter().find(|e| e["type"] == WITHDRAWN).unwrap();
    assert_eq!(told["data"]["person"], bistro.sub(), "{told}");
    assert_eq!(
        told["data"]["intent"]["id"],
        bistro.seen_id(&app, &id).await,
        "{told}"
    );
    assert!(bystander.events(&app).await.is_empty());
}

#[tokio::test]
async fn max_offers_caps_the_offers_an_intent_takes() {
    let (_dir, app, owner) = intent_vault(&[]).await;
    let a = Subscriber::subscribed(&app, &owner, "Bistro A", categories(&["food"])).await;
    let b = Subscriber::subscribed(&app, &owner, "Bistro B", categories(&["food"])).await;
    let now = wall_now();
    let mut body = intent_body("food.lunch", now);
    body["max_offers"] = json!(1);
    let id = intent_id(&app, &owner, body).await;

    a.offer_ok(&app, &id, &offer_body(now, &[])).await;
    let (status, answer) = b.offer(&app, &id, &offer_body(now, &[])).await;
    assert_error(status, &answer, 409, "offer_limit", "a second offer");
    let (status, answer) = a.offer(&app, &id, &offer_body(now, &[])).await;
    assert_error(
        status,
        &answer,
        409,
        "offer_limit",
        "a second offer by the same brand",
    );
    assert_eq!(owner_offers(&app, &owner, &id).await.len(), 1);
}

#[tokio::test]
async fn an_expired_intent_takes_no_offers_and_its_recipients_are_told() {
    let (app, owner) = InProcessApp::ready().await;
    publish_pdc_intent(&app, &owner).await;
    let mut bistro = Subscriber::subscribed(&app, &owner, "Bistro", categories(&["food"])).await;
    let mut body = intent_body("food.lunch", app.now());
    body["expires_at"] = json!(rfc3339(app.now() + Duration::minutes(10)));
    let id = intent_id(&app, &owner, body).await;
    let still_open = intent_id(&app, &owner, intent_body("food.dinner", app.now())).await;
    bistro
        .offer_ok(&app, &id, &offer_body(app.now(), &[]))
        .await;

    app.advance(StdDuration::from_secs(11 * 60));
    bistro.refresh_token(&app).await;
    let (status, answer) = bistro.offer(&app, &id, &offer_body(app.now(), &[])).await;
    assert_error(
        status,
        &answer,
        409,
        "intent_closed",
        "an offer after expiry",
    );
    assert_eq!(owner_intent(&app, &owner, &id).await["status"], "expired");
    assert_eq!(
        owner_intent(&app, &owner, &still_open).await["status"],
        "open"
    );

    // The background worker tells the brand, once.
    let events = eventually(PATIENCE, || async {
        let events = bistro.events(&app).await;
        (!subjects(&events, EXPIRED).is_empty()).then_some(events)
    })
    .await
    .expect("no vrm.intent.expired.v1 event");
    assert_eq!(
        bistro.as_owner_ids(&app, subjects(&events, EXPIRED)).await,
        ids_of(&[&id])
    );
    let told = events.iter().find(|e| e["type"] == EXPIRED).unwrap();
    assert_eq!(told["data"]["person"], bistro.sub(), "{told}");
    // Two more ticks of the worker (every 0.5 s) announce nothing again.
    tokio::time::sleep(StdDuration::from_millis(1200)).await;
    assert_eq!(
        bistro
            .as_owner_ids(&app, subjects(&bistro.events(&app).await, EXPIRED))
            .await,
        ids_of(&[&id])
    );
    let expired = audit_entries(&app, &owner, "intent.expired").await;
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(expired[0]["actor"], "system");
    assert_eq!(expired[0]["target"], id);
}

#[tokio::test]
async fn accepting_with_share_grants_the_requested_fields() {
    let (_dir, app, owner) = intent_vault(&[]).await;
    put_record(&app, &owner, "contact.phone", json!(PHONE)).await;
    put_record(&app, &owner, "contact.email", json!(EMAIL)).await;
    let bistro = Subscriber::subscribed(&app, &owner, "Bistro", categories(&["food"])).await;
    let now = wall_now();
    let id = intent_id(&app, &owner, intent_body("food.lunch", now)).await;
    let offer = bistro
        .offer_ok(&app, &id, &offer_body(now, &["contact.phone"]))
        .await;

    let accepted = accept_sharing(&app, &owner, &offer).await;
    assert_eq!(accepted["status"], "accepted", "{accepted}");
    let grant_id = accepted["grant_id"].as_str().unwrap().to_owned();
    assert!(grant_id.starts_with("g_"), "{accepted}");
    assert_eq!(owner_intent(&app, &owner, &id).await["status"], "fulfilled");

    let grant = owner_grant(&app, &owner, &grant_id).await;
    assert_eq!(grant["client_id"], bistro.brand.client_id, "{grant}");
    assert_eq!(grant["fields"], json!(["contact.phone"]), "{grant}");
    assert_eq!(grant["actions"], json!(["read"]), "{grant}");
    assert_eq!(grant["status"], "active", "{grant}");
    let expires = parse_time(&grant["expires_at"]);
    assert!(
        expires > now + Duration::minutes(110) && expires < now + Duration::minutes(130),
        "{grant}"
    );

    // The brand is told, with the grant, and can use it for what it asked, nothing more.
    let events = bistro.events(&app).await;
    let told = events
        .iter()
        .find(|e| e["type"] == ACCEPTED)
        .unwrap_or_else(|| panic!("no {ACCEPTED} in {events:?}"));
    assert_eq!(told["data"]["offer"]["id"], offer, "{told}");
    assert_eq!(told["data"]["offer"]["grant_id"], grant_id, "{told}");
    assert_eq!(told["data"]["person"], bistro.sub(), "{told}");
    let (status, own) = bistro.own_offer(&app, &offer).await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(
        (&own["status"], &own["grant_id"]),
        (&json!("accepted"), &json!(grant_id))
    );
    let token = grant_token(&app, &bistro.brand, &grant_id).await;
    let data = read_ok(&app, &token, "the shared phone number").await;
    assert_eq!(data["fields"], json!({ "contact.phone": PHONE }), "{data}");

    // A decided offer stays decided; a fulfilled intent takes no more offers.
    let (status, body) = owner_call(
        &app,
        &owner,
        Method::POST,
        &format!("/api/v1/offers/{offer}/decline"),
        None,
    )
    .await;
    assert_error(
        status,
        &body,
        409,
        "conflict",
        "declining an accepted offer",
    );
    let (status, body) = bistro.offer(&app, &id, &offer_body(now, &[])).await;
    assert_error(
        status,
        &body,
        409,
        "intent_closed",
        "an offer on a fulfilled intent",
    );
}

#[tokio::test]
async fn declining_tells_the_brand() {
    let (_dir, app, owner) = intent_vault(&[]).await;
    let bistro = Subscriber::subscribed(&app, &owner, "Bistro", categories(&["food"])).await;
    let now = wall_now();
    let id = intent_id(&app, &owner, intent_body("food.lunch", now)).await;
    let offer = bistro
        .offer_ok(&app, &id, &offer_body(now, &["contact.phone"]))
        .await;

    let declined = decline(&app, &owner, &offer).await;
    assert_eq!(declined["status"], "declined", "{declined}");
    assert!(declined["grant_id"].is_null(), "{declined}");
    // Declining an offer leaves the intent open for others.
    assert_eq!(owner_intent(&app, &owner, &id).await["status"], "open");

    let events = bistro.events(&app).await;
    let told = events
        .iter()
        .find(|e| e["type"] == DECLINED)
        .unwrap_or_else(|| panic!("no {DECLINED} in {events:?}"));
    assert_eq!(told["data"]["offer"]["id"], offer, "{told}");
    assert!(told["data"]["offer"]["grant_id"].is_null(), "{told}");
    assert!(events.iter().all(|e| e["type"] != ACCEPTED), "{events:?}");
    let (status, own) = bistro.own_offer(&app, &offer).await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["status"], "declined", "{own}");
    let (status, body) = owner_call(
        &app,
        &owner,
        Method::POST,
        &format!("/api/v1/offers/{offer}/accept"),
        None,
    )
    .await;
    assert_error(status, &body, 409, "conflict", "accepting a declined offer");
    assert_eq!(audit_entries(&app, &owner, "offer.declined").await.len(), 1);
}

#[tokio::test]
async fn offers_are_rate_limited_per_brand() {
    let (_dir, app, owner) = intent_vault(&[]).await;
    let busy = Subscriber::subscribed(&app, &owner, "Busy Bistro", categories(&["food"])).await;
    let calm = Subscriber::subscribed(&app, &owner, "Calm Bistro", categories(&["food"])).await;
    let now = wall_now();
    let mut body = intent_body("food.lunch", now);
    body["max_offers"] = json!(50);
    let id = intent_id(&app, &owner, body).await;

    for _ in 0..30 {
        busy.offer_ok(&app, &id, &offer_body(now, &[])).await;
    }
    let seen = busy.seen_id(&app, &id).await;
    let res = app
        .client
        .post(app.url(&format!("/brand/v1/intents/{seen}/offers")))
        .bearer_auth(&busy.token)
        .json(&offer_body(now, &[]))
        .send()
        .await
        .unwrap();
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, answer) = status_json(res).await;
    assert_error(
        status,
        &answer,
        429,
        "too_many_requests",
        "the 31st offer in a minute",
    );
    let retry_after: u64 = retry_after
        .expect("429 without Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(owner_offers(&app, &owner, &id).await.len(), 30);
    // The limit is the busy brand's own.
    calm.offer_ok(&app, &id, &offer_body(now, &[])).await;
}

// ---------------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_intent_taxonomy_names_its_categories() {
    // The routes themselves are in the OpenAPI snapshot (`openapi.rs`).
    let (_dir, app, _owner) = ready_vault_with(&[]).await;
    // The taxonomy the owner picks from.
    let (status, body) = status_json(
        app.client
            .get(app.url("/api/v1/intent-categories"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let lunch = body["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "food.lunch")
        .cloned();
    assert_eq!(
        lunch,
        Some(json!({ "id": "food.lunch", "label": "Lunch" })),
        "{body}"
    );
    // The limits the web app checks before sending are the domain's own.
    {
        use vrm_vault::domain::intents::{geo, intent};
        assert_eq!(
            body["limits"],
            json!({
                "max_text_chars": intent::MAX_TEXT_CHARS,
                "max_tags": intent::MAX_TAGS,
                "max_tag_chars": intent::MAX_TAG_CHARS,
                "max_party_size": intent::MAX_PARTY_SIZE,
                "max_offers": intent::MAX_OFFERS_LIMIT,
                "default_max_offers": intent::DEFAULT_MAX_OFFERS,
                "max_disclosed": intent::MAX_DISCLOSED,
                "max_geohash_chars": geo::MAX_PRECISION,
                "max_radius_m": intent::MAX_RADIUS_M,
            }),
            "{body}"
        );
    }
}
