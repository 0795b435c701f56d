//! Data grants: what a brand may read or write of the person's data, for which purpose, until
//! when and how often. Grants made by the owner and fetched by client credentials, grants asked
//! for through the authorization-code flow with PKCE and decided on the consent page, refresh
//! tokens, every way a grant ends (revoked, expired, used up, its agreement no longer current),
//! and the audit trail of each access. Expiry is seen by moving an in-process server's clock,
//! never by sleeping.

use std::time::Duration as StdDuration;

use reqwest::Method;
use serde_json::{Value, json};
use time::Duration;

use crate::kit::brand::{
    jwt_parts, narrowed, onboard, owner_call, publish, register, register_brand, sd_base,
    status_json,
};
use crate::kit::grant::{
    AuthRequest, DETAILS_TYPE, EMAIL, InProcessApp, MEMBERSHIP, NAME, PHONE, Pkce, REDIRECT_URI,
    SERVICE, WORK_EMAIL, approve, approve_with, assert_error_redirect, assert_invalid_token,
    assert_no_token_issued, assert_oauth_error, audit_entries, client_get, code_brand, code_for,
    code_metadata, consent_request, consent_view, create_grant, day_grant, decide, exchange,
    exchange_ok, field_names, grant, grant_body, grant_token, grant_token_response, id_of, ids,
    location, owner_grant, owner_grants, parse_time, put_record, query_of, read_all, read_ok,
    read_one, record_value, refresh, revoke_grant, rfc3339, seed, set_of, string_set, wall_now,
    write_one,
};
use crate::support::ready_vault;

/// Asserts an owner/brand API error: this status and this `error` code.
fn assert_error(status: u16, body: &Value, expected: (u16, &str), why: &str) {
    assert_eq!(
        (status, body["error"].as_str()),
        (expected.0, Some(expected.1)),
        "{why}: {body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{why}: no message in {body}"
    );
}

/// A consent request that is over (decided or expired) is not found, or in conflict.
fn assert_request_over(status: u16, body: &Value, why: &str) {
    assert!(matches!(status, 404 | 409 | 410), "{why}: {status} {body}");
    assert!(body.get("redirect_to").is_none(), "{why}: {body}");
}

// ---------------------------------------------------------------------------------------------
// Owner-made grants and the brand data API
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_owner_made_grant_reads_exactly_the_granted_fields() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let (brand, receipt) = onboard(&app, &owner, "Acme Books").await;
    let expires = wall_now() + Duration::days(1);
    // `work.phone` is granted but the person has no such record.
    let fields = ["contact.email", "contact.phone", "work.phone"];
    let view = grant(&app, &owner, grant_body(&brand.client_id, &fields, expires)).await;
    let id = id_of(&view);
    assert!(id.starts_with("g_"), "{view}");
    assert_eq!(view["client_id"], brand.client_id, "{view}");
    assert_eq!(view["client_name"], "Acme Books", "{view}");
    assert_eq!(string_set(&view["fields"]), set_of(&fields), "{view}");
    assert_eq!(view["actions"], json!(["read"]), "{view}");
    assert_eq!(view["purpose"], SERVICE, "{view}");
    assert!(
        view["purpose_label"]
            .as_str()
            .is_some_and(|l| !l.is_empty()),
        "{view}"
    );
    assert_eq!(parse_time(&view["expires_at"]), expires, "{view}");
    assert_eq!(view["max_uses"], Value::Null, "{view}");
    assert_eq!(view["uses"], 0, "{view}");
    assert_eq!(view["status"], "active", "{view}");
    assert_eq!(view["origin"], "owner", "{view}");
    assert_eq!(
        view["agreement_id"], receipt["receipt"]["agreement_id"],
        "{view}"
    );
    assert_eq!(view["revoked_at"], Value::Null, "{view}");
    assert_eq!(view["last_used_at"], Value::Null, "{view}");
    assert_eq!(view["decision"]["rule"], "permission[0]", "{view}");
    assert_eq!(owner_grant(&app, &owner, &id).await, view);
    assert_eq!(ids(&owner_grants(&app, &owner, "").await), vec![id.clone()]);

    // The brand fetches a token for the grant by client credentials.
    let (status, issued) = grant_token_response(&app, &brand, &id).await;
    assert_eq!(status, 200, "{issued}");
    assert_eq!(issued["token_type"], "Bearer", "{issued}");
    let details = &issued["authorization_details"][0];
    assert_eq!(details["type"], DETAILS_TYPE, "{issued}");
    assert_eq!(details["grant_id"], id, "{issued}");
    assert_eq!(string_set(&details["fields"]), set_of(&fields), "{issued}");
    let token = issued["access_token"].as_str().unwrap().to_owned();
    let (_, claims) = jwt_parts(&token);
    assert_eq!(
        claims["authorization_details"][0]["grant_id"], id,
        "{claims}"
    );
    let (status, introspected) = brand.introspect(&app, &token).await;
    assert_eq!(status, 200, "{introspected}");
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(
        introspected["authorization_details"][0]["grant_id"], id,
        "{introspected}"
    );

    // Exactly the granted fields that exist, nothing else.
    let body = read_ok(&app, &token, "reading the grant").await;
    assert_eq!(
        body["fields"],
        json!({ "contact.email": EMAIL, "contact.phone": PHONE }),
        "{body}"
    );
    assert_eq!(body["grant_id"], id, "{body}");
    assert_eq!(body["purpose"], SERVICE, "{body}");
    assert_eq!(parse_time(&body["expires_at"]), expires, "{body}");
    assert_eq!(body["uses_left"], Value::Null, "{body}");

    let (status, one) = status_json(read_one(&app, &token, "contact.email").await).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["path"], "contact.email", "{one}");
    assert_eq!(one["value"], EMAIL, "{one}");
    assert_eq!(one["category"], "pd:EmailAddress", "{one}");
    assert_eq!(one["version"], 1, "{one}");
    let (status, absent) = status_json(read_one(&app, &token, "work.phone").await).await;
    assert_eq!(status, 404, "granted but absent: {absent}");

    // A field outside the grant: 403 whose message gives nothing away, and the same answer
    // whether or not the person has such a record, so the brand cannot probe for it.
    let (status, refused) = status_json(read_one(&app, &token, "profile.name").await).await;
    assert_error(status, &refused, (403, "not_granted"), "profile.name");
    let message = refused["message"].as_str().unwrap();
    for secret in [NAME, "profile.name", EMAIL, PHONE] {
        assert!(!message.contains(secret), "{secret} in {message:?}");
    }
    let (status, refused_absent) =
        status_json(read_one(&app, &token, "profile.nickname").await).await;
    assert_eq!(status, 403, "{refused_absent}");
    assert_eq!(refused_absent, refused);
    // The same category as a granted path is not the path.
    let (status, other_email) = status_json(read_one(&app, &token, "work.email").await).await;
    assert_error(status, &other_email, (403, "not_granted"), "work.email");

    // The brand can look at its grant, with the token or with its client credentials.
    let (status, seen) = status_json(
        app.client
            .get(app.url(&format!("/brand/v1/grants/{id}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["id"], id, "{seen}");
    assert_eq!(seen["status"], "active", "{seen}");
    assert_eq!(seen["uses_left"], Value::Null, "{seen}");
    assert_eq!(string_set(&seen["fields"]), set_of(&fields), "{seen}");
    assert_eq!(seen["actions"], json!(["read"]), "{seen}");
    assert_eq!(seen["purpose"], SERVICE, "{seen}");
    let (status, seen) = client_get(&app, &brand, &format!("/brand/v1/grants/{id}")).await;
    assert_eq!((status, &seen["id"]), (200, &json!(id)), "{seen}");

    // Two reads were answered; refused and not-found requests use nothing.
    let after = owner_grant(&app, &owner, &id).await;
    assert_eq!(after["uses"], 2, "{after}");
    parse_time(&after["last_used_at"]);

    // A token that carries no grant reads nothing.
    let plain = brand.access_token(&app).await;
    let (status, body) = status_json(read_all(&app, &plain).await).await;
    assert_error(status, &body, (403, "no_grant"), "a token without a grant");
    let (status, body) = status_json(read_one(&app, &plain, "contact.email").await).await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.to_string().contains(EMAIL), "{body}");
}

#[tokio::test]
async fn the_use_count_is_enforced() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let mut body = grant_body(
        &brand.client_id,
        &["contact.email"],
        wall_now() + Duration::days(1),
    );
    body["max_uses"] = json!(3);
    let view = grant(&app, &owner, body).await;
    assert_eq!(
        (view["max_uses"].as_u64(), view["uses"].as_u64()),
        (Some(3), Some(0))
    );
    let id = id_of(&view);
    let token = grant_token(&app, &brand, &id).await;
    for left in [2, 1, 0] {
        let body = read_ok(&app, &token, &format!("a read leaving {left}")).await;
        assert_eq!(body["uses_left"], left, "{body}");
        assert_eq!(body["fields"], json!({ "contact.email": EMAIL }), "{body}");
    }
    assert_invalid_token(read_all(&app, &token).await, "a fourth read of three").await;
    assert_invalid_token(
        read_one(&app, &token, "contact.email").await,
        "a fourth read of three, by path",
    )
    .await;
    let view = owner_grant(&app, &owner, &id).await;
    assert_eq!(view["status"], "exhausted", "{view}");
    assert_eq!(view["uses"], 3, "{view}");
    let (status, body) = grant_token_response(&app, &brand, &id).await;
    assert_no_token_issued(status, &body, "a token for a used-up grant");
    assert!(!ids(&owner_grants(&app, &owner, "?status=active").await).contains(&id));
    assert!(ids(&owner_grants(&app, &owner, "?status=ended").await).contains(&id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_never_exceed_the_use_count() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let mut body = grant_body(
        &brand.client_id,
        &["contact.email"],
        wall_now() + Duration::days(1),
    );
    body["max_uses"] = json!(20);
    let id = id_of(&grant(&app, &owner, body).await);
    let token = grant_token(&app, &brand, &id).await;

    let start = std::sync::Arc::new(tokio::sync::Barrier::new(60));
    let mut reads = tokio::task::JoinSet::new();
    for _ in 0..60 {
        let (client, url, token, start) = (
            app.client.clone(),
            app.url("/brand/v1/data"),
            token.clone(),
            start.clone(),
        );
        reads.spawn(async move {
            start.wait().await;
            let res = client.get(url).bearer_auth(token).send().await.unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            (status, body)
        });
    }
    let mut ok = 0;
    let mut uses_left = vec![];
    while let Some(result) = reads.join_next().await {
        let (status, body) = result.unwrap();
        match status {
            200 => {
                ok += 1;
                uses_left.push(body["uses_left"].as_u64().unwrap());
            }
            401 => {}
            other => panic!("a concurrent read answered {other}: {body}"),
        }
    }
    assert_eq!(ok, 20, "reads that succeeded out of 60 with max_uses 20");
    // Each successful read saw its own count: no two were given the same use.
    uses_left.sort_unstable();
    assert_eq!(uses_left, (0..20).collect::<Vec<u64>>());
    let view = owner_grant(&app, &owner, &id).await;
    assert_eq!(
        (view["uses"].as_u64(), view["status"].as_str()),
        (Some(20), Some("exhausted"))
    );
}

#[tokio::test]
async fn revocation_is_effective_on_the_very_next_request() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let id = id_of(&day_grant(&app, &owner, &brand, &["contact.email"]).await);
    // Revoking one access token (RFC 7009) ends that token, not the grant.
    let spare = grant_token(&app, &brand, &id).await;
    assert_eq!(brand.revoke(&app, &spare).await, 200);
    assert_invalid_token(read_all(&app, &spare).await, "a revoked access token").await;
    let token = grant_token(&app, &brand, &id).await;
    for i in 0..5 {
        read_ok(&app, &token, &format!("read {i} before the revocation")).await;
    }
    let (status, revoked) = revoke_grant(&app, &owner, &id).await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["id"], id, "{revoked}");
    assert_eq!(revoked["status"], "revoked", "{revoked}");
    parse_time(&revoked["revoked_at"]);
    // The same unexpired token, the first request after the DELETE returned.
    assert_invalid_token(
        read_all(&app, &token).await,
        "the first read after revoking",
    )
    .await;
    assert_invalid_token(
        read_one(&app, &token, "contact.email").await,
        "a read by path after revoking",
    )
    .await;
    let (status, introspected) = brand.introspect(&app, &token).await;
    assert_eq!((status, &introspected), (200, &json!({"active": false})));
    let (status, body) = grant_token_response(&app, &brand, &id).await;
    assert_no_token_issued(status, &body, "a token for a revoked grant");
    assert_eq!(owner_grant(&app, &owner, &id).await["status"], "revoked");
    assert!(ids(&owner_grants(&app, &owner, "?status=ended").await).contains(&id));
    assert!(!ids(&owner_grants(&app, &owner, "?status=active").await).contains(&id));
    let (status, _) = owner_call(&app, &owner, Method::DELETE, "/api/v1/grants/g_nope", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_category_grant_covers_every_record_of_that_category() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let id = id_of(&day_grant(&app, &owner, &brand, &["pd:EmailAddress"]).await);
    let token = grant_token(&app, &brand, &id).await;
    let body = read_ok(&app, &token, "a category grant").await;
    assert_eq!(
        body["fields"],
        json!({ "contact.email": EMAIL, "work.email": WORK_EMAIL }),
        "{body}"
    );
    let (status, one) = status_json(read_one(&app, &token, "work.email").await).await;
    assert_eq!((status, &one["value"]), (200, &json!(WORK_EMAIL)), "{one}");
    let (status, refused) = status_json(read_one(&app, &token, "contact.phone").await).await;
    assert_error(status, &refused, (403, "not_granted"), "another category");

    // Records of the category added after the grant are covered too, whatever their path.
    put_record(&app, &owner, "home.email", json!("alice@home.example")).await;
    let (status, tagged) = owner_call(
        &app,
        &owner,
        Method::PUT,
        "/api/v1/records/misc.backup",
        Some(json!({ "value": "backup@example.net", "category": "pd:EmailAddress" })),
    )
    .await;
    assert_eq!(status, 201, "{tagged}");
    let body = read_ok(&app, &token, "after adding emails").await;
    assert_eq!(
        field_names(&body),
        set_of(&["contact.email", "work.email", "home.email", "misc.backup"]),
        "{body}"
    );
}

#[tokio::test]
async fn a_write_grant_writes_and_a_read_grant_does_not() {
    let (_dir, app, owner) = ready_vault().await;
    // SD-BASE lets brands read for service delivery and update account identifiers for account
    // management; these terms also let them read for account management, so that one grant can
    // both read and write a membership number.
    let mut terms = sd_base();
    terms["permission"][0]["constraint"][0]["rightOperand"]
        .as_array_mut()
        .unwrap()
        .push(json!({"@id": "dpv:AccountManagement"}));
    let (status, published) = publish(&app, &owner, &terms).await;
    assert_eq!(status, 201, "{published}");
    seed(&app, &owner).await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let expires = wall_now() + Duration::days(1);
    let body = |actions: Value| {
        json!({
            "client_id": brand.client_id,
            "fields": ["memberships.acme"],
            "actions": actions,
            "purpose": "dpv:AccountManagement",
            "expires_at": rfc3339(expires),
        })
    };

    let writer = grant(&app, &owner, body(json!(["read", "write"]))).await;
    assert_eq!(string_set(&writer["actions"]), set_of(&["read", "write"]));
    let writer_id = id_of(&writer);
    let token = grant_token(&app, &brand, &writer_id).await;
    let res = write_one(&app, &token, "memberships.acme", json!("ACME-0001-9999")).await;
    let (status, written) = status_json(res).await;
    assert_eq!(status, 200, "{written}");
    assert_eq!(
        record_value(&app, &owner, "memberships.acme").await,
        "ACME-0001-9999"
    );
    let (status, one) = status_json(read_one(&app, &token, "memberships.acme").await).await;
    assert_eq!(
        (status, &one["value"]),
        (200, &json!("ACME-0001-9999")),
        "{one}"
    );
    // Writing outside the grant is refused and changes nothing.
    let (status, refused) =
        status_json(write_one(&app, &token, "contact.email", json!("evil@example.com")).await)
            .await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(record_value(&app, &owner, "contact.email").await, EMAIL);
    let written = audit_entries(&app, &owner, "data.written").await;
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(written[0]["actor"], "brand");
    assert_eq!(written[0]["target"], brand.client_id);
    assert_eq!(written[0]["detail"]["grant"], writer_id);
    assert_eq!(written[0]["detail"]["fields"], json!(["memberships.acme"]));
    assert_eq!(written[0]["detail"]["purpose"], "dpv:AccountManagement");
    assert!(!written[0].to_string().contains("ACME-0001-9999"));

    let reader = grant(&app, &owner, body(json!(["read"]))).await;
    let token = grant_token(&app, &brand, &id_of(&reader)).await;
    let (status, refused) =
        status_json(write_one(&app, &token, "memberships.acme", json!(MEMBERSHIP)).await).await;
    assert_eq!(status, 403, "a read-only grant wrote: {refused}");
    assert_eq!(
        record_value(&app, &owner, "memberships.acme").await,
        "ACME-0001-9999"
    );
}

#[tokio::test]
async fn grants_the_terms_do_not_permit_are_refused_with_the_deciding_rule() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let expires = wall_now() + Duration::days(1);
    for purpose in ["dpv:PersonalisedAdvertising", "dpv:Marketing"] {
        let mut body = grant_body(&brand.client_id, &["contact.email"], expires);
        body["purpose"] = json!(purpose);
        let (status, refused) = create_grant(&app, &owner, body).await;
        assert_error(status, &refused, (422, "grant_not_permitted"), purpose);
        let rule = refused["rule"].as_str().unwrap_or_default();
        assert!(
            rule == "basis SD-BASE" || rule.starts_with("prohibition["),
            "{purpose}: {refused}"
        );
    }
    // Permitted by SD-BASE, but not by any permission of these terms.
    let mut body = grant_body(&brand.client_id, &["contact.email"], expires);
    body["purpose"] = json!("dpv:LegalCompliance");
    let (status, refused) = create_grant(&app, &owner, body).await;
    assert_error(
        status,
        &refused,
        (422, "grant_not_permitted"),
        "LegalCompliance",
    );
    assert_eq!(refused["rule"], "no permission matches", "{refused}");
    // A category the terms do not let brands read.
    let (status, refused) = create_grant(
        &app,
        &owner,
        grant_body(&brand.client_id, &["profile.birthdate"], expires),
    )
    .await;
    assert_error(
        status,
        &refused,
        (422, "grant_not_permitted"),
        "a birth date",
    );
    // Writing an email address: the terms let brands modify identifiers only.
    let mut body = grant_body(&brand.client_id, &["contact.email"], expires);
    body["actions"] = json!(["read", "write"]);
    let (status, refused) = create_grant(&app, &owner, body).await;
    assert_error(
        status,
        &refused,
        (422, "grant_not_permitted"),
        "writing an email",
    );
    assert!(refused["rule"].is_string(), "{refused}");

    // Malformed requests.
    let cases: Vec<(&str, Value)> = vec![
        ("a one-segment path", json!({ "fields": ["contact"] })),
        ("no fields", json!({ "fields": [] })),
        ("an unknown category", json!({ "fields": ["pd:Nonsense"] })),
        ("an unknown action", json!({ "actions": ["delete"] })),
        ("an unknown purpose", json!({ "purpose": "dpv:Nonsense" })),
        (
            "an expiry in the past",
            json!({ "expires_at": rfc3339(wall_now() - Duration::minutes(1)) }),
        ),
        (
            "an expiry beyond a year",
            json!({ "expires_at": rfc3339(wall_now() + Duration::days(400)) }),
        ),
        ("max_uses 0", json!({ "max_uses": 0 })),
        ("max_uses too large", json!({ "max_uses": 1_000_001 })),
    ];
    for (why, change) in cases {
        let mut body = grant_body(&brand.client_id, &["contact.email"], expires);
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, refused) = create_grant(&app, &owner, body).await;
        assert_error(status, &refused, (422, "invalid_grant"), why);
    }
    let (status, refused) = create_grant(
        &app,
        &owner,
        grant_body("no-such-brand", &["contact.email"], expires),
    )
    .await;
    assert_error(status, &refused, (404, "not_found"), "an unknown brand");
    assert_eq!(owner_grants(&app, &owner, "").await, Vec::<Value>::new());
    // Only the owner makes grants.
    let (status, _) = status_json(
        app.client
            .post(app.url("/api/v1/grants"))
            .json(&grant_body(&brand.client_id, &["contact.email"], expires))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_grant_needs_the_brands_current_agreement() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let brand = register_brand(&app, &owner, "Newcomer").await;
    let expires = wall_now() + Duration::days(1);
    let (status, refused) = create_grant(
        &app,
        &owner,
        grant_body(&brand.client_id, &["contact.email"], expires),
    )
    .await;
    assert_error(status, &refused, (409, "no_agreement"), "before accepting");
    brand.accept_current(&app).await;
    grant(
        &app,
        &owner,
        grant_body(&brand.client_id, &["contact.email"], expires),
    )
    .await;
    // New terms: the agreement is no longer on the terms in force.
    let (status, published) = publish(&app, &owner, &narrowed("pd:Location")).await;
    assert_eq!(status, 201, "{published}");
    let (status, refused) = create_grant(
        &app,
        &owner,
        grant_body(&brand.client_id, &["contact.email"], expires),
    )
    .await;
    assert_error(
        status,
        &refused,
        (409, "no_agreement"),
        "under superseded terms",
    );
}

#[tokio::test]
async fn a_grant_ends_when_its_agreement_stops_being_current() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let id = id_of(&day_grant(&app, &owner, &brand, &["contact.email"]).await);
    let token = grant_token(&app, &brand, &id).await;
    read_ok(&app, &token, "under the terms it was made under").await;

    let (status, published) = publish(&app, &owner, &narrowed("pd:Location")).await;
    assert_eq!(status, 201, "{published}");
    assert_invalid_token(read_all(&app, &token).await, "after new terms").await;
    let (status, body) = grant_token_response(&app, &brand, &id).await;
    assert_no_token_issued(status, &body, "a token for a grant under superseded terms");
    let view = owner_grant(&app, &owner, &id).await;
    assert_eq!(
        view["status"], "suspended",
        "a grant waiting for the brand's acceptance: {view}"
    );

    // Accepting the new terms, which still permit it, restores the grant (DESIGN §5: grants
    // stop being covered only *until* the brand accepts). The token issued under the old
    // agreement stays dead; a new one works.
    brand.accept_current(&app).await;
    assert_invalid_token(
        read_all(&app, &token).await,
        "the old token after re-accepting",
    )
    .await;
    assert_eq!(owner_grant(&app, &owner, &id).await["status"], "active");
    let token = grant_token(&app, &brand, &id).await;
    read_ok(&app, &token, "the restored grant under the new agreement").await;
}

#[tokio::test]
async fn withdrawal_suspension_and_removal_stop_grants() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;

    // The brand withdraws from its agreement.
    let (quitter, receipt) = onboard(&app, &owner, "Quitter").await;
    let id = id_of(&day_grant(&app, &owner, &quitter, &["contact.email"]).await);
    let token = grant_token(&app, &quitter, &id).await;
    read_ok(&app, &token, "before withdrawing").await;
    let agreement = receipt["receipt"]["agreement_id"].as_str().unwrap();
    let res = quitter
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
    assert_invalid_token(read_all(&app, &token).await, "after withdrawing").await;
    assert_ne!(owner_grant(&app, &owner, &id).await["status"], "active");

    // The owner suspends a brand: refused while suspended, and only then.
    let (paused, _) = onboard(&app, &owner, "Paused").await;
    let id = id_of(&day_grant(&app, &owner, &paused, &["contact.email"]).await);
    let token = grant_token(&app, &paused, &id).await;
    let path = format!("/api/v1/brands/{}", paused.client_id);
    let (status, _) =
        owner_call(&app, &owner, Method::POST, &format!("{path}/suspend"), None).await;
    assert_eq!(status, 200);
    assert_invalid_token(read_all(&app, &token).await, "while suspended").await;
    let (status, body) = grant_token_response(&app, &paused, &id).await;
    assert_no_token_issued(status, &body, "a suspended brand");
    let (status, _) = owner_call(&app, &owner, Method::POST, &format!("{path}/resume"), None).await;
    assert_eq!(status, 200);
    let token = grant_token(&app, &paused, &id).await;
    read_ok(&app, &token, "after resuming").await;

    // The owner removes a brand.
    let (status, _) = owner_call(&app, &owner, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    assert_invalid_token(read_all(&app, &token).await, "after removal").await;
}

#[tokio::test]
async fn a_brand_cannot_use_another_brands_grant() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let (acme, _) = onboard(&app, &owner, "Acme").await;
    let (rival, _) = onboard(&app, &owner, "Rival").await;
    let id = id_of(&day_grant(&app, &owner, &acme, &["contact.email"]).await);

    let (status, body) = grant_token_response(&app, &rival, &id).await;
    assert_no_token_issued(status, &body, "another brand's grant id");
    assert!(!body.to_string().contains(EMAIL), "{body}");
    let (status, body) = grant_token_response(&app, &rival, "g_does_not_exist").await;
    assert_no_token_issued(status, &body, "an unknown grant id");

    let (status, body) = client_get(&app, &rival, &format!("/brand/v1/grants/{id}")).await;
    assert!(matches!(status, 403 | 404), "{status} {body}");
    assert!(body.get("fields").is_none(), "{body}");
    let rival_token = rival.access_token(&app).await;
    let (status, body) = status_json(
        app.client
            .get(app.url(&format!("/brand/v1/grants/{id}")))
            .bearer_auth(&rival_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(matches!(status, 403 | 404), "{status} {body}");
    // The grant is intact for its own brand.
    let token = grant_token(&app, &acme, &id).await;
    read_ok(&app, &token, "the grant's own brand").await;
}

// ---------------------------------------------------------------------------------------------
// Expiry, on a clock the test moves
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_grant_expires_on_the_vaults_clock() {
    let (app, owner) = InProcessApp::ready().await;
    seed(&app, &owner).await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let view = grant(
        &app,
        &owner,
        grant_body(
            &brand.client_id,
            &["contact.email"],
            app.now() + Duration::hours(1),
        ),
    )
    .await;
    let id = id_of(&view);
    read_ok(&app, &grant_token(&app, &brand, &id).await, "a new grant").await;

    app.advance(StdDuration::from_secs(50 * 60));
    // A token fresh enough that only the grant's end can stop it.
    let token = grant_token(&app, &brand, &id).await;
    read_ok(&app, &token, "ten minutes before the end").await;
    assert_eq!(owner_grant(&app, &owner, &id).await["status"], "active");

    app.advance(StdDuration::from_secs(11 * 60));
    assert_invalid_token(read_all(&app, &token).await, "a minute after the end").await;
    let view = owner_grant(&app, &owner, &id).await;
    assert_eq!(view["status"], "expired", "{view}");
    let (status, body) = grant_token_response(&app, &brand, &id).await;
    assert_no_token_issued(status, &body, "a token for an expired grant");
    let (_, introspected) = brand.introspect(&app, &token).await;
    assert_eq!(introspected, json!({"active": false}));
    assert!(ids(&owner_grants(&app, &owner, "?status=ended").await).contains(&id));
}

#[tokio::test]
async fn an_authorization_code_lives_sixty_seconds() {
    let (app, owner) = InProcessApp::ready().await;
    seed(&app, &owner).await;
    let brand = code_brand(&app, &owner, "Acme").await;

    let pkce = Pkce::generate();
    let request = AuthRequest::new(&app, &brand, &pkce, &["contact.email"]);
    let code = code_for(&app, &owner, &request).await;
    app.advance(StdDuration::from_secs(59));
    exchange_ok(&app, &brand, &code, &pkce).await;

    let pkce = Pkce::generate();
    let request = AuthRequest::new(&app, &brand, &pkce, &["contact.email"]);
    let code = code_for(&app, &owner, &request).await;
    app.advance(StdDuration::from_secs(61));
    let (status, body) = exchange(&app, &brand, &code, Some(&pkce.verifier), REDIRECT_URI).await;
    assert_oauth_error(status, &body, "invalid_grant", "a code 61 s old");
}

#[tokio::test]
async fn a_consent_request_lives_ten_minutes() {
    let (app, owner) = InProcessApp::ready().await;
    seed(&app, &owner).await;
    let brand = code_brand(&app, &owner, "Acme").await;
    let pkce = Pkce::generate();
    let request = AuthRequest::new(&app, &brand, &pkce, &["contact.email"]);
    let id = consent_request(&app, &request).await;
    let (status, view) = consent_view(&app, &owner, &id).await;
    assert_eq!(status, 200, "{view}");
    let open = view["expires_in"].as_u64().unwrap();
    assert!((590..=600).contains(&open), "{view}");

    app.advance(StdDuration::from_secs(9 * 60));
    let (status, view) = consent_view(&app, &owner, &id).await;
    assert_eq!(status, 200, "{view}");
    assert!(
        (1..=60).contains(&view["expires_in"].as_u64().unwrap()),
        "{view}"
    );

    app.advance(StdDuration::from_secs(61));
    let (status, view) = consent_view(&app, &owner, &id).await;
    assert_request_over(status, &view, "viewing a request 10 min 1 s old");
    let (status, decided) = decide(&app, &owner, &id, json!({ "decision": "approve" })).await;
    assert_request_over(status, &decided, "approving a request 10 min 1 s old");
    assert_eq!(owner_grants(&app, &owner, "").await, Vec::<Value>::new());
}

// ---------------------------------------------------------------------------------------------
// The authorization-code flow with PKCE
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_authorization_code_flow_grants_what_the_person_approved() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let brand = code_brand(&app, &owner, "Acme Books").await;
    let pkce = Pkce::generate();
    let fields = ["contact.email", "contact.phone"];
    let request = AuthRequest::new(&app, &brand, &pkce, &fields);
    let id = consent_request(&app, &request).await;

    // Only the owner sees the consent page's data.
    let (status, _) = status_json(
        app.client
            .get(app.url(&format!("/api/v1/consent/{id}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, view) = consent_view(&app, &owner, &id).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["request_id"], id, "{view}");
    assert_eq!(view["client_id"], brand.client_id, "{view}");
    assert_eq!(view["client_name"], "Acme Books", "{view}");
    assert_eq!(view["redirect_uri"], REDIRECT_URI, "{view}");
    assert_eq!(view["purpose"], SERVICE, "{view}");
    assert!(
        view["purpose_label"]
            .as_str()
            .is_some_and(|l| !l.is_empty())
    );
    assert_eq!(view["actions"], json!(["read"]), "{view}");
    assert_eq!(view["decision"]["permitted"], true, "{view}");
    parse_time(&view["expires_at"]);
    let shown: Vec<&Value> = view["fields"].as_array().unwrap().iter().collect();
    assert_eq!(shown.len(), 2, "{view}");
    let email = shown
        .iter()
        .find(|f| f["field"] == "contact.email")
        .unwrap_or_else(|| panic!("{view}"));
    assert_eq!(email["category"], "pd:EmailAddress", "{view}");
    assert_eq!(email["category_label"], "Email address", "{view}");
    assert_eq!(email["present"], true, "{view}");
    assert!(email["masked_value"].is_string(), "{view}");
    // The page shows a hint of each value, never the value.
    let text = view.to_string();
    for secret in [EMAIL, "liddell", PHONE, "7946 0958"] {
        assert!(
            !text.contains(secret),
            "{secret} on the consent page: {view}"
        );
    }

    // Nor can anyone but the owner decide.
    let (status, body) = status_json(
        app.client
            .post(app.url(&format!("/api/v1/consent/{id}")))
            .json(&json!({ "decision": "approve" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(body.get("redirect_to").is_none(), "{body}");

    let code = approve(&app, &owner, &id, &request).await;
    let tokens = exchange_ok(&app, &brand, &code, &pkce).await;
    assert_eq!(tokens["token_type"], "Bearer", "{tokens}");
    assert!(
        (1..=900).contains(&tokens["expires_in"].as_u64().unwrap()),
        "{tokens}"
    );
    assert!(
        tokens["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("vrmrt_"),
        "{tokens}"
    );
    let details = &tokens["authorization_details"][0];
    assert_eq!(details["type"], DETAILS_TYPE, "{tokens}");
    assert_eq!(string_set(&details["fields"]), set_of(&fields), "{tokens}");
    assert_eq!(details["actions"], json!(["read"]), "{tokens}");
    assert_eq!(details["purpose"], SERVICE, "{tokens}");
    assert_eq!(
        details["locations"],
        json!([app.url("/brand/v1")]),
        "{tokens}"
    );
    let grant_id = details["grant_id"].as_str().unwrap().to_owned();
    let token = tokens["access_token"].as_str().unwrap();
    let (_, claims) = jwt_parts(token);
    assert_eq!(
        claims["authorization_details"][0]["grant_id"], grant_id,
        "{claims}"
    );

    let body = read_ok(&app, token, "a consented grant").await;
    assert_eq!(
        body["fields"],
        json!({ "contact.email": EMAIL, "contact.phone": PHONE }),
        "{body}"
    );
    let view = owner_grant(&app, &owner, &grant_id).await;
    assert_eq!(view["origin"], "consent", "{view}");
    assert_eq!(view["client_id"], brand.client_id, "{view}");
    assert_eq!(view["status"], "active", "{view}");

    // A decision is made once.
    let (status, again) = decide(&app, &owner, &id, json!({ "decision": "approve" })).await;
    assert_request_over(status, &again, "a second decision");
    assert_eq!(owner_grants(&app, &owner, "").await.len(), 1);
}

#[tokio::test]
async fn a_request_the_terms_forbid_goes_back_to_the_brand_at_once() {
    // It used to reach the person, who could only approve it into a 422 while the brand
    // waited. RFC 9396 §5: the brand gets invalid_authorization_details, naming the rule.
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let brand = code_brand(&app, &owner, "Adco").await;
    let pkce = Pkce::generate();
    let request = AuthRequest::new(&app, &brand, &pkce, &["contact.email"]).set(
        "authorization_details",
        &crate::kit::grant::data_details(&app, &["contact.email"], "dpv:Marketing").to_string(),
    );
    let res = request.send(&app).await;
    assert_error_redirect(&app, &res, &request, "invalid_authorization_details");
    let to = location(&app, &res).unwrap();
    let description = query_of(&to)["error_description"].clone();
    assert!(description.contains("basis SD-BASE"), "{description}");
    assert_eq!(owner_grants(&app, &owner, "").await, Vec::<Value>::new());
    // The same brand asking for what the terms allow reaches the consent page.
    let allowed = AuthRequest::new(&app, &brand, &pkce, &["contact.email"]);
    let id = consent_request(&app, &allowed).await;
    let (status, view) = consent_view(&app, &owner, &id).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["decision"]["permitted"], true, "{view}");
}

#[tokio::test]
async fn denying_sends_the_brand_access_denied() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let brand = code_brand(&app, &owner, "Acme").await;
    let pkce = Pkce::generate();
    let request = AuthRequest::new(&app, &brand, &pkce, &["contact.email"]);
    let id = consent_request(&app, &request).await;
    let (status, body) = decide(&app, &owner, &id, json!({ "decision": "deny" })).await;
    assert_eq!(status, 200, "{body}");
    let to = reqwest::Url::parse(body["redirect_to"].as_str().unwrap()).unwrap();
    assert!(to.as_str().starts_with(&format!("{REDIRECT_URI}?")), "{to}");
    let query = query_of(&to);
    assert_eq!(
        query.get("error").map(String::as_str),
        Some("access_denied"),
        "{to}"
    );
    assert_eq!(query.get("state"), Some(&request.state), "{to}");
    assert!(!query.contains_key("code"), "{to}");
    assert_eq!(owner_grants(&app, &owner, "").await, Vec::<Value>::new());
    let (status, again) = decide(&app, &owner, &id, json!({ "decision": "approve" })).await;
    assert_request_over(status, &again, "approving after denying");
}

#[tokio::test]
async fn the_person_can_narrow_but_not_widen_at_consent() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let brand = code_brand(&app, &owner, "Acme").await;
    let asked = ["contact.email", "contact.phone"];

    // Untick the phone and shorten the default week to an hour.
    let pkce = Pkce::generate();
    let request = AuthRequest::new(&app, &brand, &pkce, &asked);
    let id = consent_request(&app, &request).await;
    let until = wall_now() + Duration::hours(1);
    let code = approve_with(
        &app,
        &owner,
        &id,
        &request,
        json!({ "decision": "approve", "fields": ["contact.email"], "expires_at": rfc3339(until) }),
    )
    .await;
    let tokens = exchange_ok(&app, &brand, &code, &pkce).await;
    let details = &tokens["authorization_details"][0];
    assert_eq!(details["fields"], json!(["contact.email"]), "{tokens}");
    let token = tokens["access_token"].as_str().unwrap();
    let body = read_ok(&app, token, "a narrowed grant").await;
    assert_eq!(body["fields"], json!({ "contact.email": EMAIL }), "{body}");
    let (status, refused) = status_json(read_one(&app, token, "contact.phone").await).await;
    assert_error(status, &refused, (403, "not_granted"), "the unticked field");
    let view = owner_grant(&app, &owner, details["grant_id"].as_str().unwrap()).await;
    assert_eq!(parse_time(&view["expires_at"]), until, "{view}");

    // Adding a field, or a later end, is not the person's to add on the brand's behalf.
    for (why, decision) in [
        (
            "an extra field",
            json!({ "decision": "approve", "fields": ["contact.email", "profile.name"] }),
        ),
        (
            "a later end",
            json!({ "decision": "approve",
                    "expires_at": rfc3339(wall_now() + Duration::days(30)) }),
        ),
    ] {
        let pkce = Pkce::generate();
        let request = AuthRequest::new(&app, &brand, &pkce, &["contact.email"]);
        let id = consent_request(&app, &request).await;
        let (status, refused) = decide(&app, &owner, &id, decision).await;
        assert_error(status, &refused, (422, "invalid_grant"), why);
        assert!(refused.get("redirect_to").is_none(), "{why}: {refused}");
    }
    assert_eq!(owner_grants(&app, &owner, "").await.len(), 1);
}

#[tokio::test]
async fn pkce_with_s256_is_required() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let brand = code_brand(&app, &owner, "Acme").await;
    let pkce = Pkce::generate();
    let fields = ["contact.email"];
    let plain = AuthRequest::new(&app, &brand, &pkce, &fields)
        .set("code_challenge", &pkce.verifier)
        .set("code_challenge_method", "plain");
    let res = plain.send(&app).await;
    assert_error_redirect(&app, &res, &plain, "invalid_request");
    let missing = AuthRequest::new(&app, &brand, &pkce, &fields)
        .without("code_challenge")
        .without("code_challenge_method");
    let res = missing.send(&app).await;
    assert_error_redirect(&app, &res, &missing, "invalid_request");
    // Without a method RFC 7636 means plain.
    let unnamed = AuthRequest::new(&app, &brand, &pkce, &fields).without("code_challenge_method");
    let res = unnamed.send(&app).await;
    assert_error_redirect(&app, &res, &unnamed, "invalid_request");
    let garbled =
        AuthRequest::new(&app, &brand, &pkce, &fields).set("authorization_details", "not json");
    let res = garbled.send(&app).await;
    // RFC 9396 §5 names this error; the brand learns it on its redirect URI all the same.
    assert_error_redirect(&app, &res, &garbled, "invalid_authorization_details");

    // The verifier must match the challenge.
    let request = AuthRequest::new(&app, &brand, &pkce, &fields);
    let code = code_for(&app, &owner, &request).await;
    let other = Pkce::generate();
    let (status, body) = exchange(&app, &brand, &code, Some(&other.verifier), REDIRECT_URI).await;
    assert_oauth_error(status, &body, "invalid_grant", "a wrong verifier");
    let request = AuthRequest::new(&app, &brand, &pkce, &fields);
    let code = code_for(&app, &owner, &request).await;
    let (status, body) = exchange(&app, &brand, &code, None, REDIRECT_URI).await;
    assert_oauth_error(status, &body, "invalid_grant", "no verifier");
}

#[tokio::test]
async fn a_reused_code_revokes_what_it_issued() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let brand = code_brand(&app, &owner, "Acme").await;
    let pkce = Pkce::generate();
    let request = AuthRequest::new(&app, &brand, &pkce, &["contact.email"]);
    let code = code_for(&app, &owner, &request).await;
    let tokens = exchange_ok(&app, &brand, &code, &pkce).await;
    let token = tokens["access_token"].as_str().unwrap();
    read_ok(&app, token, "before the code is replayed").await;

    let (status, body) = exchange(&app, &brand, &code, Some(&pkce.verifier), REDIRECT_URI).await;
    assert_oauth_error(status, &body, "invalid_grant", "a code used twice");
    assert_invalid_token(read_all(&app, token).await, "a token from a replayed code").await;
    let (status, body) = refresh(&app, &brand, tokens["refresh_token"].as_str().unwrap()).await;
    assert_oauth_error(
        status,
        &body,
        "invalid_grant",
        "a refresh token from a replayed code",
    );
    let grant_id = tokens["authorization_details"][0]["grant_id"]
        .as_str()
        .unwrap();
    assert_eq!(
        owner_grant(&app, &owner, grant_id).await["status"],
        "revoked"
    );
}

#[tokio::test]
async fn redirect_uris_are_matched_exactly() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let brand = code_brand(&app, &owner, "Acme").await;
    let pkce = Pkce::generate();
    let fields = ["contact.email"];
    // An unregistered redirect URI or an unknown client: nowhere safe to send the browser.
    for (why, request) in [
        (
            "another path",
            AuthRequest::new(&app, &brand, &pkce, &fields)
                .set("redirect_uri", "http://127.0.0.1:9/elsewhere"),
        ),
        (
            "a trailing slash",
            AuthRequest::new(&app, &brand, &pkce, &fields)
                .set("redirect_uri", &format!("{REDIRECT_URI}/")),
        ),
        (
            "another host",
            AuthRequest::new(&app, &brand, &pkce, &fields)
                .set("redirect_uri", "https://attacker.example/callback"),
        ),
        (
            "an unknown client",
            AuthRequest::new(&app, &brand, &pkce, &fields).set("client_id", "no-such-client"),
        ),
    ] {
        let res = request.send(&app).await;
        let status = res.status().as_u16();
        let to = location(&app, &res);
        assert_eq!((status, to), (400, None), "{why}");
    }

    // The token request must name the redirect URI the authorization request named.
    let request = AuthRequest::new(&app, &brand, &pkce, &fields);
    let code = code_for(&app, &owner, &request).await;
    let (status, body) = exchange(
        &app,
        &brand,
        &code,
        Some(&pkce.verifier),
        "http://127.0.0.1:9/elsewhere",
    )
    .await;
    assert_oauth_error(
        status,
        &body,
        "invalid_grant",
        "another redirect_uri at the token endpoint",
    );
    // Nor may another brand exchange the code.
    let request = AuthRequest::new(&app, &brand, &pkce, &fields);
    let code = code_for(&app, &owner, &request).await;
    let thief = code_brand(&app, &owner, "Thief").await;
    let (status, body) = exchange(&app, &thief, &code, Some(&pkce.verifier), REDIRECT_URI).await;
    assert_oauth_error(status, &body, "invalid_grant", "another brand's code");
}

#[tokio::test]
async fn code_clients_must_register_safe_redirect_uris() {
    let (_dir, app, owner) = ready_vault().await;
    let invitation = crate::kit::brand::invitation_token(&app, &owner).await;
    let mut cases = vec![];
    let mut without = code_metadata("No redirect");
    without.as_object_mut().unwrap().remove("redirect_uris");
    cases.push(("no redirect_uris", without));
    for (why, uri) in [
        ("plain http off loopback", "http://brand.example/callback"),
        ("a fragment", "https://brand.example/callback#frag"),
        ("not a URL", "callback"),
    ] {
        let mut metadata = code_metadata(why);
        metadata["redirect_uris"] = json!([uri]);
        cases.push((why, metadata));
    }
    for (why, metadata) in cases {
        let (status, body) = status_json(register(&app, Some(&invitation), &metadata).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_client_metadata")),
            "{why}: {body}"
        );
    }
    let mut https = code_metadata("Good");
    https["redirect_uris"] = json!(["https://brand.example/callback"]);
    let (status, body) = status_json(register(&app, Some(&invitation), &https).await).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        string_set(&body["grant_types"]),
        set_of(&["authorization_code", "refresh_token"]),
        "{body}"
    );
}

#[tokio::test]
async fn refresh_tokens_rotate() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let brand = code_brand(&app, &owner, "Acme").await;
    let pkce = Pkce::generate();
    let request = AuthRequest::new(&app, &brand, &pkce, &["contact.email"]);
    let code = code_for(&app, &owner, &request).await;
    let first = exchange_ok(&app, &brand, &code, &pkce).await;
    let grant_id = first["authorization_details"][0]["grant_id"].clone();
    let rt1 = first["refresh_token"].as_str().unwrap().to_owned();

    // Another brand cannot use it.
    let other = code_brand(&app, &owner, "Other").await;
    let (status, body) = refresh(&app, &other, &rt1).await;
    assert_oauth_error(
        status,
        &body,
        "invalid_grant",
        "another brand's refresh token",
    );

    let (status, second) = refresh(&app, &brand, &rt1).await;
    assert_eq!(status, 200, "{second}");
    let rt2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert!(rt2.starts_with("vrmrt_") && rt2 != rt1, "{second}");
    assert_eq!(second["authorization_details"][0]["grant_id"], grant_id);
    read_ok(
        &app,
        second["access_token"].as_str().unwrap(),
        "a refreshed token",
    )
    .await;

    let (status, third) = refresh(&app, &brand, &rt2).await;
    assert_eq!(status, 200, "the new refresh token: {third}");
    let rt3 = third["refresh_token"].as_str().unwrap().to_owned();
    // An old refresh token replayed: refused, and the whole family with it (the replay means
    // someone else holds one).
    let (status, body) = refresh(&app, &brand, &rt1).await;
    assert_oauth_error(
        status,
        &body,
        "invalid_grant",
        "a rotated-out refresh token",
    );
    let (status, body) = refresh(&app, &brand, &rt3).await;
    assert_oauth_error(status, &body, "invalid_grant", "the newest after a replay");
}

#[tokio::test]
async fn refresh_tokens_die_with_their_grant() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let brand = code_brand(&app, &owner, "Acme").await;
    let pkce = Pkce::generate();
    let request = AuthRequest::new(&app, &brand, &pkce, &["contact.email"]);
    let code = code_for(&app, &owner, &request).await;
    let tokens = exchange_ok(&app, &brand, &code, &pkce).await;
    let grant_id = tokens["authorization_details"][0]["grant_id"]
        .as_str()
        .unwrap();
    let (status, _) = revoke_grant(&app, &owner, grant_id).await;
    assert_eq!(status, 200);
    let (status, body) = refresh(&app, &brand, tokens["refresh_token"].as_str().unwrap()).await;
    assert_oauth_error(status, &body, "invalid_grant", "refreshing a revoked grant");
}

// ---------------------------------------------------------------------------------------------
// The audit trail, and revoking everything a brand holds
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_access_is_audited_without_values() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let id = id_of(&day_grant(&app, &owner, &brand, &["contact.email", "contact.phone"]).await);
    let token = grant_token(&app, &brand, &id).await;
    read_ok(&app, &token, "a full read").await;
    let (status, _) = status_json(read_one(&app, &token, "contact.phone").await).await;
    assert_eq!(status, 200);

    let reads = audit_entries(&app, &owner, "data.read").await;
    assert_eq!(reads.len(), 2, "{reads:?}");
    for entry in &reads {
        assert_eq!(entry["actor"], "brand", "{entry}");
        assert_eq!(entry["target"], brand.client_id, "{entry}");
        assert_eq!(entry["detail"]["grant"], id, "{entry}");
        assert_eq!(entry["detail"]["purpose"], SERVICE, "{entry}");
        let text = entry.to_string();
        assert!(!text.contains(EMAIL) && !text.contains(PHONE), "{entry}");
    }
    assert_eq!(reads[0]["detail"]["fields"], json!(["contact.phone"]));
    assert_eq!(
        string_set(&reads[1]["detail"]["fields"]),
        set_of(&["contact.email", "contact.phone"])
    );

    let (status, accesses) = owner_call(
        &app,
        &owner,
        Method::GET,
        &format!("/api/v1/grants/{id}/accesses"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{accesses}");
    let list = accesses["accesses"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{accesses}");
    assert_eq!(list[0]["action"], "data.read", "{accesses}");
    assert_eq!(list[0]["fields"], json!(["contact.phone"]), "{accesses}");
    assert_eq!(list[0]["purpose"], SERVICE, "{accesses}");
    assert!(parse_time(&list[0]["at"]) >= parse_time(&list[1]["at"]));
    assert_eq!(
        string_set(&list[1]["fields"]),
        set_of(&["contact.email", "contact.phone"])
    );

    let (status, verified) =
        owner_call(&app, &owner, Method::GET, "/api/v1/audit/verify", None).await;
    assert_eq!((status, &verified["ok"]), (200, &json!(true)), "{verified}");
}

#[tokio::test]
async fn revoking_all_of_a_brands_grants_leaves_other_brands_alone() {
    let (_dir, app, owner) = ready_vault().await;
    seed(&app, &owner).await;
    let (acme, _) = onboard(&app, &owner, "Acme").await;
    let (other, _) = onboard(&app, &owner, "Other").await;
    let mut acme_tokens = vec![];
    let mut acme_ids = vec![];
    for fields in [&["contact.email"][..], &["contact.phone"][..]] {
        let id = id_of(&day_grant(&app, &owner, &acme, fields).await);
        acme_tokens.push(grant_token(&app, &acme, &id).await);
        acme_ids.push(id);
    }
    let other_id = id_of(&day_grant(&app, &owner, &other, &["contact.email"]).await);
    let other_token = grant_token(&app, &other, &other_id).await;

    let path = format!("/api/v1/brands/{}/grants", acme.client_id);
    let (status, body) = owner_call(&app, &owner, Method::DELETE, &path, None).await;
    assert_eq!((status, &body), (200, &json!({ "revoked": 2 })));
    for (token, id) in acme_tokens.iter().zip(&acme_ids) {
        assert_invalid_token(
            read_all(&app, token).await,
            "a grant revoked with its brand's",
        )
        .await;
        assert_eq!(owner_grant(&app, &owner, id).await["status"], "revoked");
    }
    read_ok(&app, &other_token, "another brand's grant").await;
    let (status, body) = owner_call(&app, &owner, Method::DELETE, &path, None).await;
    assert_eq!((status, &body), (200, &json!({ "revoked": 0 })));
    for (method, path) in [
        (Method::DELETE, "/api/v1/brands/no-such-brand/grants"),
        (Method::GET, "/api/v1/grants/g_nope"),
        (Method::GET, "/api/v1/grants/g_nope/accesses"),
    ] {
        let (status, body) = owner_call(&app, &owner, method.clone(), path, None).await;
        assert_error(
            status,
            &body,
            (404, "not_found"),
            &format!("{method} {path}"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_authorization_server_metadata_describes_grants() {
    // The grant routes themselves are in the OpenAPI snapshot (`openapi.rs`).
    let (_dir, app, _owner) = ready_vault().await;
    let (status, meta) = status_json(
        app.client
            .get(app.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{meta}");
    assert_eq!(
        meta["authorization_endpoint"],
        app.url("/oauth/authorize"),
        "{meta}"
    );
    assert_eq!(meta["response_types_supported"], json!(["code"]), "{meta}");
    assert_eq!(
        meta["code_challenge_methods_supported"],
        json!(["S256"]),
        "{meta}"
    );
    assert_eq!(
        meta["authorization_details_types_supported"],
        json!([DETAILS_TYPE]),
        "{meta}"
    );
    assert_eq!(
        string_set(&meta["grant_types_supported"]),
        set_of(&["client_credentials", "authorization_code", "refresh_token"]),
        "{meta}"
    );
}
