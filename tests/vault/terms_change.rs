//! What new terms do to brands that agreed to older ones (DESIGN §5): every brand with an
//! agreement is told (`vrm.terms.updated.v1`, by polling, Server-Sent Events and webhook), its
//! grants are suspended rather than revoked, and accepting the new version restores those the
//! new terms still permit, revokes the others with the deciding rule, and delivers the intents
//! broadcast meanwhile. Also: the brand is told of every grant made for it, and lists its grants.

use std::time::Duration as StdDuration;

use serde_json::{Value, json};
use time::Duration;

use crate::kit::brand::{Brand, Server, narrowed, onboard, owner_brand, publish, status_json};
use crate::kit::catalogue::assert_catalogued;
use crate::kit::grant::{
    EMAIL, assert_invalid_token, create_grant, grant, grant_body, grant_token,
    grant_token_response, id_of, owner_grant, put_record, read_all, read_ok, revoke_grant, seed,
    wall_now,
};
use crate::kit::intent::{
    LOOPBACK, Receiver, SseStream, Subscriber, eventually, intent, intent_body,
    pdc_intent_template, subjects,
};
use crate::support::{TestApp, intent_vault, ready_vault};

const TERMS_UPDATED: &str = "vrm.terms.updated.v1";
const GRANT_CREATED: &str = "vrm.grant.created.v1";
const GRANT_SUSPENDED: &str = "vrm.grant.suspended.v1";
const GRANT_RESTORED: &str = "vrm.grant.restored.v1";
const GRANT_REVOKED: &str = "vrm.grant.revoked.v1";
const INTENT_CREATED: &str = "vrm.intent.created.v1";

const PATIENCE: StdDuration = StdDuration::from_secs(10);

/// A day's grant reading `contact.email` for a purpose PDC-INTENT permits.
async fn intent_terms_grant(app: &TestApp, owner: &str, brand: &Brand) -> String {
    let mut body = grant_body(
        &brand.client_id,
        &["contact.email"],
        wall_now() + Duration::days(1),
    );
    body["purpose"] = json!("dpv:RequestedServiceProvision");
    id_of(&grant(app, owner, body).await)
}

/// `GET /brand/v1/grants` with the brand's client secret.
async fn brand_grants(app: &TestApp, brand: &Brand) -> Vec<Value> {
    let res = app
        .client()
        .get(app.url("/brand/v1/grants"))
        .header("authorization", brand.basic())
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(res).await;
    assert_eq!(status, 200, "{body}");
    body["grants"].as_array().unwrap().clone()
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

#[tokio::test]
async fn new_terms_tell_brands_suspend_grants_and_acceptance_restores_them() {
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
    let grant_id = intent_terms_grant(&app, &owner, &bistro.brand).await;
    let token = grant_token(&app, &bistro.brand, &grant_id).await;
    read_ok(&app, &token, "before the change").await;

    // The brand is told of the grant (item: a grant made by the person reaches the brand).
    let events = bistro.events(&app).await;
    let created = of_type(&events, GRANT_CREATED);
    assert_eq!(created.len(), 1, "{events:?}");
    assert_eq!(created[0]["subject"], grant_id);
    assert_eq!(created[0]["data"]["grant"]["id"], grant_id);
    assert_eq!(created[0]["data"]["grant"]["state"], "active");
    assert_eq!(created[0]["data"]["person"], bistro.sub());
    let view = owner_grant(&app, &owner, &grant_id).await;
    assert_eq!(view["brand_told"][0]["event"], GRANT_CREATED, "{view}");

    // Server-Sent Events opened before the change get the notice live.
    let cursor = bistro.poll(&app, 0).await.1.to_string();
    let mut sse = SseStream::open(&app, &bistro.token, Some(&cursor)).await;

    // A new version that changes only the wording.
    let mut terms = pdc_intent_template(&app, &owner).await;
    terms["description"] = json!("The same rules, said more kindly.");
    let (status, published) = publish(&app, &owner, &terms).await;
    assert_eq!(status, 201, "{published}");
    let new_version = published["version"].as_u64().unwrap();
    let new_hash = published["hash"].as_str().unwrap().to_owned();

    // Polling, with the token issued under the old agreement, reads the notice.
    let events = bistro.events(&app).await;
    let updated = of_type(&events, TERMS_UPDATED);
    assert_eq!(updated.len(), 1, "{events:?}");
    let data = &updated[0]["data"];
    assert_eq!(data["terms"]["version"], new_version, "{data}");
    assert_eq!(data["terms"]["hash"], new_hash, "{data}");
    assert_eq!(data["accepted_version"], new_version - 1, "{data}");
    assert_eq!(data["person"], bistro.sub(), "{data}");
    assert_eq!(data["accept"]["method"], "POST");
    assert_eq!(
        data["accept"]["url"],
        app.url("/brand/v1/agreements"),
        "{data}"
    );
    assert_eq!(data["accept"]["body"]["terms_hash"], new_hash);
    assert_eq!(data["grants_suspended"], json!([grant_id]));
    let changes = data["changes"].as_array().unwrap();
    assert!(
        changes[0].as_str().unwrap().contains("Only the wording"),
        "{changes:?}"
    );
    let suspended = of_type(&events, GRANT_SUSPENDED);
    assert_eq!(suspended.len(), 1, "{events:?}");
    assert_eq!(suspended[0]["data"]["grant"]["state"], "suspended");

    // Server-Sent Events and the webhook carry it too.
    let live = loop {
        let event = sse.next(PATIENCE).await.expect("no SSE event");
        if event.data["type"] == TERMS_UPDATED {
            break event;
        }
    };
    assert_eq!(live.data["data"]["terms"]["hash"], new_hash);
    let hooked = eventually(PATIENCE, || async {
        receiver
            .received()
            .into_iter()
            .find(|r| r.json()["type"] == TERMS_UPDATED)
    })
    .await
    .expect("no vrm.terms.updated.v1 webhook");
    assert_eq!(hooked.json()["data"]["terms"]["hash"], new_hash);

    // The grant is suspended, not revoked: the brand's reads say which version to accept.
    let res = read_all(&app, &token).await;
    let body = res.text().await.unwrap();
    assert!(
        body.contains(&format!("accept version {new_version}")),
        "{body}"
    );
    let view = owner_grant(&app, &owner, &grant_id).await;
    assert_eq!(view["status"], "suspended", "{view}");
    let listed = brand_grants(&app, &bistro.brand).await;
    assert_eq!(listed[0]["id"], grant_id);
    assert_eq!(listed[0]["state"], "suspended");
    let (status, _) = grant_token_response(&app, &bistro.brand, &grant_id).await;
    assert_eq!(status, 400, "no token before accepting");
    // The owner sees who has not accepted yet.
    let seen = owner_brand(&app, &owner, &bistro.brand.client_id).await;
    assert_eq!(
        seen["terms_update"]["current_version"], new_version,
        "{seen}"
    );
    assert_eq!(seen["terms_update"]["suspended_grants"], 1, "{seen}");

    // An intent broadcast meanwhile does not reach the brand yet.
    let meanwhile = intent(&app, &owner, intent_body("food.lunch", wall_now())).await;
    assert_eq!(meanwhile["recipients_count"], 0, "{meanwhile}");
    let meanwhile = meanwhile["id"].as_str().unwrap().to_owned();

    // Accepting restores the grant, tells the brand, and delivers the missed intent.
    bistro.brand.accept_current(&app).await;
    bistro.refresh_token(&app).await;
    let events = bistro.events(&app).await;
    let restored = of_type(&events, GRANT_RESTORED);
    assert_eq!(restored.len(), 1, "{events:?}");
    assert_eq!(restored[0]["data"]["grant"]["state"], "active");
    assert_eq!(restored[0]["data"]["terms"]["version"], new_version);
    // The brand knows the intent by its own alias (issue 17: no identifier shared between brands).
    let delivered = bistro
        .as_owner_ids(&app, subjects(&events, INTENT_CREATED))
        .await;
    assert_eq!(delivered, vec![meanwhile.clone()]);
    let token = grant_token(&app, &bistro.brand, &grant_id).await;
    read_ok(&app, &token, "the restored grant").await;
    let view = owner_grant(&app, &owner, &grant_id).await;
    assert_eq!(view["status"], "active", "{view}");
    let told: Vec<&str> = view["brand_told"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["event"].as_str().unwrap())
        .collect();
    assert_eq!(told, [GRANT_CREATED, GRANT_SUSPENDED, GRANT_RESTORED]);
    let seen = owner_brand(&app, &owner, &bistro.brand.client_id).await;
    assert!(seen["terms_update"].is_null(), "{seen}");

    // Accepting again changes nothing and sends nothing twice.
    let res = bistro.brand.accept(&app, &new_hash).await;
    assert_eq!(res.status(), 200);
    let again = bistro.events(&app).await;
    assert_eq!(again.len(), events.len(), "{again:?}");
}

#[tokio::test]
async fn new_terms_that_forbid_a_grant_revoke_it_with_the_rule() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let expires = wall_now() + Duration::days(1);
    let email = id_of(
        &grant(
            &app,
            &owner,
            grant_body(&brand.client_id, &["contact.email"], expires),
        )
        .await,
    );
    let phone = id_of(
        &grant(
            &app,
            &owner,
            grant_body(&brand.client_id, &["contact.phone"], expires),
        )
        .await,
    );

    // Email addresses are no longer shared under the new terms; phone numbers still are.
    let (status, published) = publish(&app, &owner, &narrowed("pd:EmailAddress")).await;
    assert_eq!(status, 201, "{published}");
    brand.accept_current(&app).await;

    let email_view = owner_grant(&app, &owner, &email).await;
    assert_eq!(email_view["status"], "revoked", "{email_view}");
    let rule = email_view["revocation"]["rule"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!rule.is_empty(), "{email_view}");
    assert_eq!(owner_grant(&app, &owner, &phone).await["status"], "active");

    let listed = brand_grants(&app, &brand).await;
    let listed_email = listed.iter().find(|g| g["id"] == email).unwrap();
    assert_eq!(listed_email["state"], "revoked");
    assert_eq!(listed_email["revocation"]["rule"], rule);

    // The brand was told, with the rule; a token for the revoked grant is refused.
    let token = brand.access_token(&app).await;
    let res = app
        .client()
        .get(app.url("/brand/v1/intents"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, page) = status_json(res).await;
    assert_eq!(status, 200, "{page}");
    let events = page["events"].as_array().unwrap();
    for event in events {
        assert_catalogued(&app, event).await;
    }
    let revoked = of_type(events, GRANT_REVOKED);
    assert_eq!(revoked.len(), 1, "{events:?}");
    assert_eq!(revoked[0]["subject"], email);
    assert_eq!(revoked[0]["data"]["rule"], rule);
    assert_eq!(of_type(events, GRANT_RESTORED)[0]["subject"], phone);
    let (status, _) = grant_token_response(&app, &brand, &email).await;
    assert_eq!(status, 400);
    read_ok(
        &app,
        &grant_token(&app, &brand, &phone).await,
        "the phone grant",
    )
    .await;
}

#[tokio::test]
async fn the_brand_is_told_when_the_person_revokes_a_grant() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let expires = wall_now() + Duration::days(1);
    let (status, made) = create_grant(
        &app,
        &owner,
        grant_body(&brand.client_id, &["contact.email"], expires),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let id = id_of(&made);
    let token = grant_token(&app, &brand, &id).await;
    let (status, body) = revoke_grant(&app, &owner, &id).await;
    assert!(matches!(status, 200 | 204), "{body}");
    assert_invalid_token(read_all(&app, &token).await, "after revocation").await;

    let token = brand.access_token(&app).await;
    let res = app
        .client()
        .get(app.url("/brand/v1/intents"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (_, page) = status_json(res).await;
    let events = page["events"].as_array().unwrap();
    for event in events {
        assert_catalogued(&app, event).await;
    }
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, [GRANT_CREATED, GRANT_REVOKED], "{events:?}");
    assert_eq!(events[1]["data"]["grant"]["state"], "revoked");
    assert!(events[1]["data"]["rule"].is_null());
    let view = owner_grant(&app, &owner, &id).await;
    assert_eq!(view["brand_told"][1]["event"], GRANT_REVOKED, "{view}");
    let listed = brand_grants(&app, &brand).await;
    assert_eq!(listed[0]["purpose"], "dpv:ServiceProvision");
    assert_eq!(listed[0]["state"], "revoked");
    assert!(listed[0]["revocation"].is_null(), "{listed:?}");
}

#[tokio::test]
async fn new_terms_that_forbid_a_grants_purpose_revoke_it_with_the_rule() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let expires = wall_now() + Duration::days(1);
    // SD-BASE permits both purposes; PDC-INTENT only the requested service.
    let plain = id_of(
        &grant(
            &app,
            &owner,
            grant_body(&brand.client_id, &["contact.phone"], expires),
        )
        .await,
    );
    let mut asked = grant_body(&brand.client_id, &["contact.phone"], expires);
    asked["purpose"] = json!("dpv:RequestedServiceProvision");
    let asked = id_of(&grant(&app, &owner, asked).await);

    let terms = pdc_intent_template(&app, &owner).await;
    let (status, published) = publish(&app, &owner, &terms).await;
    assert_eq!(status, 201, "{published}");
    assert_eq!(
        owner_grant(&app, &owner, &plain).await["status"],
        "suspended"
    );
    brand.accept_current(&app).await;

    let view = owner_grant(&app, &owner, &plain).await;
    assert_eq!(view["status"], "revoked", "{view}");
    let rule = view["revocation"]["rule"].as_str().unwrap();
    assert!(!rule.is_empty(), "{view}");
    assert!(
        view["revocation"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{view}"
    );
    assert_eq!(owner_grant(&app, &owner, &asked).await["status"], "active");
    let listed = brand_grants(&app, &brand).await;
    let revoked = listed.iter().find(|g| g["id"] == plain).unwrap();
    assert_eq!(revoked["revocation"]["rule"], rule);
    read_ok(
        &app,
        &grant_token(&app, &brand, &asked).await,
        "the permitted grant",
    )
    .await;
}
