//! A brand probing for fields its grant does not cover (issue 17, item 3): the answer never
//! depends on whether the person has such a record, in any state of the grant, and the refusals
//! are summarised in the audit log. Expiry is seen by moving an in-process server's clock.

use std::time::Duration as StdDuration;

use serde_json::{Value, json};
use time::Duration;

use crate::kit::brand::{Brand, onboard};
use crate::kit::grant::{
    InProcessApp, audit_entries, grant, grant_body, grant_token, id_of, read_all, read_one,
    revoke_grant, seed,
};

/// Granted and stored, granted and missing, not granted and stored, not granted and missing.
const GRANTED: &str = "contact.email";
const GRANTED_MISSING: &str = "work.phone";
const UNGRANTED: &str = "profile.name";
const UNGRANTED_MISSING: &str = "health.condition";

/// What a brand sees for a request: status, `WWW-Authenticate` and body.
async fn answer(app: &InProcessApp, token: &str, path: &str) -> (u16, Option<String>, Value) {
    let res = read_one(app, token, path).await;
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, challenge, res.json().await.unwrap())
}

/// Asserts that a stored and a missing field outside the grant get the same answer, and
/// returns it.
async fn same_answer_for_ungranted(app: &InProcessApp, token: &str, why: &str) -> (u16, Value) {
    let stored = answer(app, token, UNGRANTED).await;
    let missing = answer(app, token, UNGRANTED_MISSING).await;
    assert_eq!(
        stored, missing,
        "{why}: a stored and a missing ungranted field differ"
    );
    (stored.0, stored.2)
}

async fn a_grant(app: &InProcessApp, owner: &str, brand: &Brand, extra: Value) -> String {
    let mut body = grant_body(
        &brand.client_id,
        &[GRANTED, GRANTED_MISSING],
        app.now() + Duration::hours(1),
    );
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    id_of(&grant(app, owner, body).await)
}

#[tokio::test]
async fn an_ended_grant_answers_every_path_alike() {
    let (app, owner) = InProcessApp::ready().await;
    seed(&app, &owner).await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;

    // Active: a field outside the grant is not granted, stored or not.
    let active = a_grant(&app, &owner, &brand, json!({})).await;
    let token = grant_token(&app, &brand, &active).await;
    let (status, body) = same_answer_for_ungranted(&app, &token, "active").await;
    assert_eq!((status, body["error"].as_str()), (403, Some("not_granted")));
    assert_eq!(answer(&app, &token, GRANTED).await.0, 200);
    assert_eq!(answer(&app, &token, GRANTED_MISSING).await.0, 404);

    // Used up, revoked, expired: before, a stored ungranted field answered 401 and a missing
    // one 403. Now every path, granted or not, stored or not, gets the grant's end.
    let used_up = a_grant(&app, &owner, &brand, json!({"max_uses": 1})).await;
    let used_up_token = grant_token(&app, &brand, &used_up).await;
    assert_eq!(answer(&app, &used_up_token, GRANTED).await.0, 200);
    let revoked = a_grant(&app, &owner, &brand, json!({})).await;
    let revoked_token = grant_token(&app, &brand, &revoked).await;
    assert_eq!(revoke_grant(&app, &owner, &revoked).await.0, 200);
    for (token, why) in [(&used_up_token, "used up"), (&revoked_token, "revoked")] {
        let (status, body) = same_answer_for_ungranted(&app, token, why).await;
        assert_eq!(status, 401, "{why}: {body}");
        let ended = answer(&app, token, UNGRANTED).await;
        for path in [GRANTED, GRANTED_MISSING] {
            assert_eq!(answer(&app, token, path).await, ended, "{why}: {path}");
        }
    }

    // Expired: a token fresh enough that only the grant's end can stop it.
    let expiring = a_grant(&app, &owner, &brand, json!({})).await;
    app.advance(StdDuration::from_secs(50 * 60));
    let token = grant_token(&app, &brand, &expiring).await;
    app.advance(StdDuration::from_secs(11 * 60));
    let (status, body) = same_answer_for_ungranted(&app, &token, "expired").await;
    assert_eq!(status, 401, "expired: {body}");
    let ended = answer(&app, &token, UNGRANTED).await;
    for path in [GRANTED, GRANTED_MISSING] {
        assert_eq!(answer(&app, &token, path).await, ended, "expired: {path}");
    }

    // Writing is refused the same way once the grant has ended.
    let write = |path: &'static str| {
        let token = revoked_token.clone();
        let app = &app;
        async move {
            let res = crate::kit::grant::write_one(app, &token, path, json!("x")).await;
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    assert_eq!(write(UNGRANTED).await, write(UNGRANTED_MISSING).await);
}

#[tokio::test]
async fn probing_is_summarised_in_the_audit_log_without_the_paths() {
    let (app, owner) = InProcessApp::ready().await;
    seed(&app, &owner).await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let id = a_grant(&app, &owner, &brand, json!({})).await;
    let token = grant_token(&app, &brand, &id).await;
    assert_eq!(revoke_grant(&app, &owner, &id).await.0, 200);

    // Fifty probes of `health.*` after the grant ended: before, none was on the record.
    for n in 0..50 {
        let path = format!("health.probe{n}");
        assert_eq!(read_one(&app, &token, &path).await.status(), 401);
    }
    let entries = audit_entries(&app, &owner, "access.refused").await;
    // One entry at the 1st, 2nd, 4th … refusal: six for fifty, the newest counting 32.
    assert_eq!(entries.len(), 6, "{entries:?}");
    let newest = &entries[0];
    assert_eq!(newest["target"], brand.client_id, "{newest}");
    assert_eq!(newest["detail"]["grant"], id, "{newest}");
    assert_eq!(newest["detail"]["refused"], 32, "{newest}");
    assert_eq!(newest["detail"]["answer"], "grant_ended", "{newest}");
    let text = serde_json::to_string(&entries).unwrap();
    assert!(
        !text.contains("health."),
        "an entry names a probed path: {text}"
    );

    // A live grant's refusals are counted too, under its own grant.
    let live = a_grant(&app, &owner, &brand, json!({})).await;
    let token = grant_token(&app, &brand, &live).await;
    assert_eq!(read_one(&app, &token, "health.x").await.status(), 403);
    let entries = audit_entries(&app, &owner, "access.refused").await;
    assert_eq!(entries[0]["detail"]["grant"], live, "{entries:?}");
    assert_eq!(entries[0]["detail"]["answer"], "not_granted");
    // Reading everything with an ended grant is refused and counted too.
    assert_eq!(revoke_grant(&app, &owner, &live).await.0, 200);
    assert_eq!(read_all(&app, &token).await.status(), 401);
    let entries = audit_entries(&app, &owner, "access.refused").await;
    assert_eq!(entries[0]["detail"]["grant"], live, "{entries:?}");
    assert_eq!(entries[0]["detail"]["refused"], 2, "{entries:?}");
    assert_eq!(entries[0]["detail"]["answer"], "grant_ended");
}
