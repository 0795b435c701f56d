//! Sharing only part of what a brand asks for: the terms are asked field by field before the
//! person tries (`POST /api/v1/sharing/check`), accepting an offer can share a chosen subset of
//! its fields, and a refusal names only the refused fields, in words, never in vocabulary codes.

use reqwest::Method;
use serde_json::{Value, json};

use crate::kit::brand::owner_call;
use crate::kit::grant::{EMAIL, grant_token, owner_grant, put_record, read_ok, wall_now};
use crate::kit::intent::{
    Subscriber, assert_error, categories, intent_body, intent_id, offer_body,
};
use crate::support::intent_vault;

fn no_codes(text: &str) {
    for code in ["pd:", "dpv:", "p7012:", "permission[", "prohibition["] {
        assert!(!text.contains(code), "{code} in {text:?}");
    }
}

async fn accept(
    app: &crate::support::TestApp,
    owner: &str,
    offer: &str,
    body: Value,
) -> (u16, Value) {
    owner_call(
        app,
        owner,
        Method::POST,
        &format!("/api/v1/offers/{offer}/accept"),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn an_offer_can_be_accepted_sharing_only_the_fields_the_terms_allow() {
    let (_dir, app, owner) = intent_vault(&[]).await;
    put_record(&app, &owner, "contact.email", json!(EMAIL)).await;
    put_record(&app, &owner, "profile.birthdate", json!("1990-04-01")).await;
    let bistro = Subscriber::subscribed(&app, &owner, "Bistro", categories(&["food"])).await;
    let now = wall_now();
    let id = intent_id(&app, &owner, intent_body("food.lunch", now)).await;
    let asked = ["contact.email", "profile.birthdate"];
    let offer = bistro.offer_ok(&app, &id, &offer_body(now, &asked)).await;

    // Before trying: the terms allow the email address for answering a wish, not the birth date.
    let (status, check) = owner_call(
        &app,
        &owner,
        Method::POST,
        "/api/v1/sharing/check",
        Some(json!({
            "client_id": bistro.brand.client_id,
            "fields": asked,
            "purposes": ["dpv:RequestedServiceProvision", "dpv:Marketing"],
        })),
    )
    .await;
    assert_eq!(status, 200, "{check}");
    let wish = &check["purposes"][0];
    assert_eq!(wish["purpose"], "dpv:RequestedServiceProvision", "{check}");
    assert_eq!(wish["allowed"], false, "{check}");
    let fields = wish["fields"].as_array().unwrap();
    assert_eq!(
        fields
            .iter()
            .map(|f| (
                f["field"].as_str().unwrap(),
                f["allowed"].as_bool().unwrap()
            ))
            .collect::<Vec<_>>(),
        vec![("contact.email", true), ("profile.birthdate", false)],
        "{check}"
    );
    assert_eq!(fields[1]["label"], "your date of birth", "{check}");
    let reason = fields[1]["reason"].as_str().unwrap();
    assert!(reason.contains("your date of birth"), "{reason}");
    no_codes(reason);
    no_codes(wish["reason"].as_str().unwrap());
    // Marketing is never allowed, for either field.
    let marketing = &check["purposes"][1];
    assert_eq!(marketing["allowed"], false, "{check}");
    assert!(
        marketing["fields"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["allowed"] == false),
        "{check}"
    );
    no_codes(marketing["reason"].as_str().unwrap());

    // Asking to share both is refused, naming only the birth date, and saying the email could go alone.
    let (status, refused) = accept(&app, &owner, &offer, json!({ "share": true })).await;
    assert_error(
        status,
        &refused,
        422,
        "grant_not_permitted",
        "sharing both fields",
    );
    let message = refused["message"].as_str().unwrap();
    no_codes(message);
    assert!(message.contains("your date of birth"), "{message}");
    assert!(
        message.contains("You can share your email address without it"),
        "{message}"
    );
    assert_eq!(
        message.matches("email").count(),
        1,
        "the email is named only as what can still go: {message}"
    );

    // A field the offer did not ask for, or none, is refused before any grant is made.
    let (status, body) = accept(
        &app,
        &owner,
        &offer,
        json!({ "share": true, "fields": ["contact.phone"] }),
    )
    .await;
    assert_error(status, &body, 422, "invalid_grant", "a field not asked for");
    let (status, body) = accept(&app, &owner, &offer, json!({ "share": true, "fields": [] })).await;
    assert_error(status, &body, 422, "invalid_grant", "no field");

    // Sharing only the email address works, and the brand can read exactly that.
    let (status, accepted) = accept(
        &app,
        &owner,
        &offer,
        json!({ "share": true, "fields": ["contact.email"], "expires_in_hours": 1 }),
    )
    .await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["status"], "accepted", "{accepted}");
    let grant_id = accepted["grant_id"].as_str().unwrap();
    let grant = owner_grant(&app, &owner, grant_id).await;
    assert_eq!(grant["fields"], json!(["contact.email"]), "{grant}");
    let token = grant_token(&app, &bistro.brand, grant_id).await;
    let data = read_ok(&app, &token, "the shared email address").await;
    assert_eq!(data["fields"], json!({ "contact.email": EMAIL }), "{data}");
}

#[tokio::test]
async fn checking_needs_a_brand_with_an_agreement_and_readable_input() {
    let (_dir, app, owner) = intent_vault(&[]).await;
    let bistro = Subscriber::subscribed(&app, &owner, "Bistro", categories(&["food"])).await;
    let check = |body: Value| {
        let app = &app;
        let owner = &owner;
        async move {
            owner_call(
                app,
                owner,
                Method::POST,
                "/api/v1/sharing/check",
                Some(body),
            )
            .await
        }
    };
    let (status, body) = check(json!({ "client_id": "nobody", "fields": ["contact.email"], "purposes": ["dpv:ServiceProvision"] })).await;
    assert_error(status, &body, 404, "not_found", "an unknown brand");
    let cid = bistro.brand.client_id.clone();
    let (status, body) =
        check(json!({ "client_id": cid, "fields": ["contact.email"], "purposes": [] })).await;
    assert_error(status, &body, 422, "invalid_grant", "no purpose");
    let (status, body) = check(
        json!({ "client_id": cid, "fields": ["contact.email"], "purposes": ["dpv:Nonsense"] }),
    )
    .await;
    assert_error(status, &body, 422, "invalid_grant", "an unknown purpose");
    let (status, body) =
        check(json!({ "client_id": cid, "fields": [], "purposes": ["dpv:ServiceProvision"] }))
            .await;
    assert_error(status, &body, 422, "invalid_grant", "no field");
}
