//! The audit listing as the Activity screen reads it: brand names, plain sentences, and filters
//! by kind, brand and words applied by the vault to the whole log.

use reqwest::Method;
use serde_json::{Value, json};

use crate::kit::brand::owner_call;
use crate::kit::grant::{EMAIL, grant_token, put_record, read_ok, wall_now};
use crate::kit::intent::{Subscriber, categories, intent_body, intent_id, offer_body};
use crate::support::intent_vault;

async fn audit(app: &crate::support::TestApp, owner: &str, query: &str) -> (u16, Value) {
    owner_call(
        app,
        owner,
        Method::GET,
        &format!("/api/v1/audit?{query}"),
        None,
    )
    .await
}

#[tokio::test]
async fn a_brands_read_is_found_by_its_name_and_told_in_words() {
    let (_dir, app, owner) = intent_vault(&[]).await;
    put_record(&app, &owner, "contact.email", json!(EMAIL)).await;
    let bistro = Subscriber::subscribed(&app, &owner, "Bistro Lilas", categories(&["food"])).await;
    let now = wall_now();
    let id = intent_id(&app, &owner, intent_body("food.lunch", now)).await;
    let offer = bistro
        .offer_ok(&app, &id, &offer_body(now, &["contact.email"]))
        .await;
    let (status, accepted) = owner_call(
        &app,
        &owner,
        Method::POST,
        &format!("/api/v1/offers/{offer}/accept"),
        Some(json!({ "share": true })),
    )
    .await;
    assert_eq!(status, 200, "{accepted}");
    let token = grant_token(&app, &bistro.brand, accepted["grant_id"].as_str().unwrap()).await;
    read_ok(&app, &token, "the email address").await;
    // Later entries push the read off a small first page.
    for i in 0..5 {
        put_record(&app, &owner, &format!("notes.n{i}"), json!("x")).await;
    }
    let (status, first) = audit(&app, &owner, "limit=3").await;
    assert_eq!(status, 200, "{first}");
    assert!(
        first["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["action"] != "data.read"),
        "{first}"
    );
    assert_eq!(
        first["entries"][0]["summary"], "You added your n4.",
        "{first}"
    );

    // Searching the brand's name finds the read, worded, with the brand's name.
    let (status, found) = audit(&app, &owner, "limit=3&q=bistro%20lilas%20READ").await;
    assert_eq!(status, 200, "{found}");
    let entries = found["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{found}");
    let read = &entries[0];
    assert_eq!(read["action"], "data.read", "{read}");
    assert_eq!(read["kind"], "reads", "{read}");
    assert_eq!(read["brand_name"], "Bistro Lilas", "{read}");
    assert_eq!(
        read["summary"],
        "Bistro Lilas read your email address, to provide a service you asked for.",
        "{read}"
    );
    // The stored entry is unchanged: the client id stays its target.
    assert_eq!(read["target"], json!(bistro.brand.client_id), "{read}");
    assert!(
        found["next_before"].is_null(),
        "the whole log was searched: {found}"
    );

    // By kind and by brand.
    let (_, reads) = audit(&app, &owner, "kind=reads").await;
    assert_eq!(reads["entries"].as_array().unwrap().len(), 1, "{reads}");
    let (_, about) = audit(&app, &owner, &format!("brand={}", bistro.brand.client_id)).await;
    let about = about["entries"].as_array().unwrap();
    assert!(
        about.iter().any(|e| e["action"] == "data.read"),
        "{about:?}"
    );
    assert!(
        about.iter().any(|e| e["action"] == "brand.registered"),
        "{about:?}"
    );
    assert!(
        about.iter().all(|e| e["brand_name"] == "Bistro Lilas"),
        "{about:?}"
    );
    let (_, security) = audit(&app, &owner, "kind=security").await;
    assert!(
        security["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"] == "security"),
        "{security}"
    );
    let (status, bad) = audit(&app, &owner, "kind=gossip").await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (400, Some("invalid_request")),
        "{bad}"
    );
}
