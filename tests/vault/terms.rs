//! The person's terms: published versions, the narrowing rule enforced at the API, and what
//! brands read without authenticating.

use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::kit::brand::{
    SD_BASE, jcs_hash, narrowed, owner_call, public_terms, publish, sd_base, status_json,
};
use crate::support::ready_vault;

fn assert_rfc3339(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a string"));
    OffsetDateTime::parse(text, &Rfc3339).unwrap_or_else(|e| panic!("{text}: {e}"));
}

fn assert_summary(body: &Value) {
    let summary = body["summary"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert!(!summary.is_empty(), "{body}");
    assert!(
        summary
            .iter()
            .all(|s| s.as_str().is_some_and(|s| !s.trim().is_empty())),
        "{body}"
    );
}

/// Asserts `body` is the terms-version shape of GET /api/v1/terms for `doc` as `version`.
fn assert_version(body: &Value, doc: &Value, version: u64) {
    assert_eq!(&body["terms"], doc, "{body}");
    assert_eq!(body["version"], version, "{body}");
    assert_eq!(body["basis"], "SD-BASE", "{body}");
    // Brands check what they accept: the hash is SHA-256 over the RFC 8785 canonical bytes.
    assert_eq!(body["hash"], jcs_hash(doc), "{body}");
    assert_rfc3339(&body["published_at"]);
    assert_summary(body);
}

async fn versions(app: &crate::support::TestApp, owner: &str) -> Vec<Value> {
    let (status, body) = owner_call(app, owner, Method::GET, "/api/v1/terms/versions", None).await;
    assert_eq!(status, 200, "{body}");
    body["versions"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_new_vault_publishes_sd_base_as_version_1() {
    let (_dir, app, owner) = ready_vault().await;
    let (status, current) = owner_call(&app, &owner, Method::GET, "/api/v1/terms", None).await;
    assert_eq!(status, 200, "{current}");
    assert_version(&current, &sd_base(), 1);

    // Brands read the same terms without any credential.
    let public = public_terms(&app).await;
    for field in ["terms", "hash", "version", "basis", "summary"] {
        assert_eq!(public[field], current[field], "{field}: {public}");
    }

    // The owner's routes are the owner's.
    let res = app
        .client
        .get(app.url("/api/v1/terms"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .client
        .put(app.url("/api/v1/terms"))
        .json(&json!({ "terms": narrowed("pd:Location") }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .client
        .post(app.url("/api/v1/terms/preview"))
        .json(&json!({ "terms": sd_base() }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let listed = versions(&app, &owner).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["version"], 1);
    assert_eq!(listed[0]["current"], true);
    assert_eq!(listed[0]["hash"], current["hash"]);

    let (status, templates) =
        owner_call(&app, &owner, Method::GET, "/api/v1/terms/templates", None).await;
    assert_eq!(status, 200, "{templates}");
    let templates = templates["templates"].as_array().unwrap();
    let ids: Vec<&str> = templates
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["sd-base", "sd-base-dp", "pdc-intent"]);
    assert_eq!(templates[0]["terms"], sd_base());
    assert_eq!(templates[0]["basis"], "SD-BASE");
    assert_eq!(templates[1]["basis"], "SD-BASE-DP");
    assert_eq!(templates[2]["basis"], "PDC-INTENT");
    // Every template the vault offers is one it accepts.
    for template in templates {
        let (status, body) = owner_call(
            &app,
            &owner,
            Method::POST,
            "/api/v1/terms/preview",
            Some(json!({ "terms": template["terms"] })),
        )
        .await;
        assert_eq!(status, 200, "{}: {body}", template["id"]);
        assert_eq!(body["basis"], template["basis"]);
    }
}

#[tokio::test]
async fn narrowed_terms_become_a_new_version_and_old_versions_stay_readable() {
    let (_dir, app, owner) = ready_vault().await;
    let original = public_terms(&app).await;
    let doc = narrowed("pd:PaymentCardNumber");

    let (status, published) = publish(&app, &owner, &doc).await;
    assert_eq!(status, 201, "{published}");
    assert_version(&published, &doc, 2);
    assert_ne!(published["hash"], original["hash"]);

    let (_, current) = owner_call(&app, &owner, Method::GET, "/api/v1/terms", None).await;
    assert_eq!(current, published);
    let public = public_terms(&app).await;
    assert_eq!(public["version"], 2);
    assert_eq!(public["hash"], published["hash"]);
    assert_eq!(public["terms"], doc);

    let listed = versions(&app, &owner).await;
    let summary: Vec<(u64, bool)> = listed
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary, [(2, true), (1, false)], "newest first: {listed:?}");
    assert_eq!(listed[0]["hash"], published["hash"]);
    assert_eq!(listed[1]["hash"], original["hash"]);
    assert_eq!(listed[1]["basis"], "SD-BASE");
    assert_rfc3339(&listed[1]["published_at"]);

    let (status, old) =
        owner_call(&app, &owner, Method::GET, "/api/v1/terms/versions/1", None).await;
    assert_eq!(status, 200, "{old}");
    assert_version(&old, &sd_base(), 1);
    let (status, new) =
        owner_call(&app, &owner, Method::GET, "/api/v1/terms/versions/2", None).await;
    assert_eq!(status, 200, "{new}");
    assert_eq!(new, published);
    let (status, missing) =
        owner_call(&app, &owner, Method::GET, "/api/v1/terms/versions/3", None).await;
    assert_eq!(status, 404, "{missing}");
    assert_eq!(missing["error"], "not_found");

    // Going back to the template is a change too: version 3, with version 1's hash.
    let (status, back) = publish(&app, &owner, &sd_base()).await;
    assert_eq!(status, 201, "{back}");
    assert_eq!(back["version"], 3);
    assert_eq!(back["hash"], original["hash"]);

    let (_, audit) = owner_call(&app, &owner, Method::GET, "/api/v1/audit?limit=200", None).await;
    let published_entries = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "terms.published")
        .count();
    // Version 1 may or may not be logged at setup; the two the owner published must be.
    assert!(published_entries >= 2, "{audit}");
}

#[tokio::test]
async fn identical_terms_publish_no_new_version() {
    let (_dir, app, owner) = ready_vault().await;
    let (status, same) = publish(&app, &owner, &sd_base()).await;
    assert_eq!(status, 200, "{same}");
    assert_version(&same, &sd_base(), 1);

    // The same document with its members in another order is the same terms: the hash is over
    // canonical bytes, not over the text sent. serde_json sorts keys; send the file's order.
    let raw = format!("{{\"terms\": {SD_BASE}}}");
    let res = app
        .client
        .put(app.url("/api/v1/terms"))
        .bearer_auth(&owner)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(res).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 1);

    let doc = narrowed("pd:Location");
    assert_eq!(publish(&app, &owner, &doc).await.0, 201);
    let (status, again) = publish(&app, &owner, &doc).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["version"], 2);
    assert_eq!(versions(&app, &owner).await.len(), 2);
}

/// Puts and previews `doc`, expecting 422 `invalid_terms` at `at` with a message that starts
/// there and names every one of `words`; nothing is published.
async fn assert_refused(
    app: &crate::support::TestApp,
    owner: &str,
    doc: Value,
    at: &str,
    words: &[&str],
) {
    for path in ["/api/v1/terms", "/api/v1/terms/preview"] {
        let method = if path.ends_with("preview") {
            Method::POST
        } else {
            Method::PUT
        };
        let (status, body) =
            owner_call(app, owner, method, path, Some(json!({ "terms": doc }))).await;
        assert_eq!(status, 422, "{path} {at}: {body}");
        assert_eq!(body["error"], "invalid_terms", "{body}");
        assert_eq!(body["at"], at, "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.starts_with(at), "{message}");
        for word in words {
            assert!(message.contains(word), "{word:?} not in {message:?}");
        }
    }
    let public = public_terms(app).await;
    assert_eq!(public["version"], 1, "a refused document was published");
}

#[tokio::test]
async fn terms_wider_than_their_basis_are_refused_with_the_rule_they_break() {
    let (_dir, app, owner) = ready_vault().await;

    // A permission for a purpose SD-BASE forbids.
    let mut doc = sd_base();
    doc["permission"][0]["constraint"][0]["rightOperand"]
        .as_array_mut()
        .unwrap()
        .push(json!({"@id": "dpv:TargetedAdvertising"}));
    assert_refused(
        &app,
        &owner,
        doc,
        "permission[0].constraint[0]",
        &[
            "widen SD-BASE",
            "dpv:TargetedAdvertising",
            "advertising and marketing",
        ],
    )
    .await;

    // A permission whose purpose merely includes a forbidden one (isA follows DPV).
    let mut doc = sd_base();
    doc["permission"][1]["constraint"] = json!([
        {"leftOperand": "purpose", "operator": "isA", "rightOperand": {"@id": "dpv:ServiceProvision"}}
    ]);
    assert_refused(
        &app,
        &owner,
        doc,
        "permission[1].constraint[0]",
        &["widen SD-BASE"],
    )
    .await;

    // A permission to track.
    let mut doc = sd_base();
    doc["permission"][0]["action"] = json!("dpv:Tracking");
    assert_refused(
        &app,
        &owner,
        doc,
        "permission[0]",
        &["widen SD-BASE", "dpv:Tracking"],
    )
    .await;

    // `use` includes distribute.
    let mut doc = sd_base();
    doc["permission"][0]["action"] = json!("use");
    assert_refused(
        &app,
        &owner,
        doc,
        "permission[0]",
        &["\"use\"", "distribute"],
    )
    .await;

    // A permission without a purpose would allow any purpose.
    let mut doc = sd_base();
    doc["permission"][0]
        .as_object_mut()
        .unwrap()
        .remove("constraint");
    assert_refused(
        &app,
        &owner,
        doc,
        "permission[0]",
        &["no purpose constraint"],
    )
    .await;

    // Dropping a prohibition the basis requires.
    let mut doc = sd_base();
    doc["prohibition"]
        .as_array_mut()
        .unwrap()
        .retain(|p| p["action"] != "dpv:Tracking");
    assert_refused(
        &app,
        &owner,
        doc,
        "prohibition",
        &["SD-BASE prohibits tracking"],
    )
    .await;

    // A prohibition that lapses is no prohibition.
    let mut doc = sd_base();
    doc["prohibition"][0]["constraint"] = json!([
        {"leftOperand": "dateTime", "operator": "lt",
         "rightOperand": {"@value": "2027-01-01T00:00:00Z", "@type": "xsd:dateTime"}}
    ]);
    assert_refused(&app, &owner, doc, "prohibition", &["tracking"]).await;

    // A basis the vault does not support (it permits analytics).
    let mut doc = sd_base();
    doc["basis"] = json!("SD-BASE-A");
    assert_refused(&app, &owner, doc, "basis", &["SD-BASE-A"]).await;

    assert_eq!(versions(&app, &owner).await.len(), 1);
}

#[tokio::test]
async fn words_outside_the_vocabulary_are_refused() {
    let (_dir, app, owner) = ready_vault().await;

    let mut doc = sd_base();
    doc["permission"][0]["constraint"]
        .as_array_mut()
        .unwrap()
        .push(json!({"leftOperand": "spatial", "operator": "eq", "rightOperand": "FR"}));
    assert_refused(
        &app,
        &owner,
        doc,
        "permission[0].constraint[1]",
        &["\"spatial\"", "left operand"],
    )
    .await;

    let mut doc = sd_base();
    doc["permission"][0]["constraint"][0]["rightOperand"]
        .as_array_mut()
        .unwrap()
        .push(json!({"@id": "dpv:Whatever"}));
    assert_refused(
        &app,
        &owner,
        doc,
        "permission[0].constraint[0]",
        &["dpv:Whatever"],
    )
    .await;

    let mut doc = sd_base();
    doc["permission"][1]["target"] = json!(["pd:Username", "pd:ShoeSize"]);
    assert_refused(
        &app,
        &owner,
        doc,
        "permission[1].target[1]",
        &["pd:ShoeSize"],
    )
    .await;

    let mut doc = sd_base();
    doc["permission"][0]["constraint"][0]["operator"] = json!("isPartOf");
    assert_refused(
        &app,
        &owner,
        doc,
        "permission[0].constraint[0]",
        &["isPartOf"],
    )
    .await;

    let mut doc = sd_base();
    doc["x-note"] = json!("an extra member could carry meaning nobody checks");
    assert_refused(&app, &owner, doc, "the terms", &["x-note"]).await;

    let mut doc = sd_base();
    doc["@context"][1]["prohibition"] = json!("dct:description");
    assert_refused(&app, &owner, doc, "@context", &[]).await;

    assert_refused(&app, &owner, json!("not a document"), "the terms", &[]).await;

    // A body that is not JSON at all is a malformed request, in the usual error shape.
    let res = app
        .client
        .put(app.url("/api/v1/terms"))
        .bearer_auth(&owner)
        .header("content-type", "application/json")
        .body("{\"terms\": {")
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(res).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_request")),
        "{body}"
    );
    assert_eq!(versions(&app, &owner).await.len(), 1);
}

#[tokio::test]
async fn preview_publishes_nothing() {
    let (_dir, app, owner) = ready_vault().await;
    let doc = narrowed("pd:TelephoneNumber");
    let (status, preview) = owner_call(
        &app,
        &owner,
        Method::POST,
        "/api/v1/terms/preview",
        Some(json!({ "terms": doc })),
    )
    .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["hash"], jcs_hash(&doc));
    assert_eq!(preview["basis"], "SD-BASE");
    assert_summary(&preview);

    let public = public_terms(&app).await;
    assert_eq!(public["version"], 1);
    assert_eq!(public["terms"], sd_base());
    assert_eq!(versions(&app, &owner).await.len(), 1);

    // What the preview announced is what publishing produces.
    let (status, published) = publish(&app, &owner, &doc).await;
    assert_eq!(status, 201, "{published}");
    assert_eq!(published["hash"], preview["hash"]);
    assert_eq!(published["summary"], preview["summary"]);
}

#[tokio::test]
async fn terms_made_by_choosing_are_built_checked_and_published_without_writing_json() {
    let (_dir, app, owner) = ready_vault().await;
    let (status, options) = owner_call(
        &app,
        &owner,
        Method::GET,
        "/api/v1/terms/templates/pdc-intent/choices",
        None,
    )
    .await;
    assert_eq!(status, 200, "{options}");
    // Only what the basis permits is offered, each with words.
    let purposes: Vec<&str> = options["purposes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        purposes,
        [
            "dpv:RequestedServiceProvision",
            "dpv:SellProductsToDataSubject"
        ]
    );
    assert!(
        options["categories"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["label"].as_str().is_some_and(|l| !l.is_empty()))
    );
    assert_eq!(options["retention_days"], json!([1, 7, 30]));

    let mut choices = options["defaults"].clone();
    choices["categories"] = json!(["pd:Location", "pd:Preference"]);
    choices["purposes"] = json!(["dpv:RequestedServiceProvision"]);
    choices["retention_days"] = json!(7);
    choices["max_uses"] = json!(3);
    choices["ends_on"] = json!("2030-06-01");
    choices["refusals"] = json!(["no-changes"]);
    let (status, built) = owner_call(
        &app,
        &owner,
        Method::POST,
        "/api/v1/terms/templates/pdc-intent/build",
        Some(choices.clone()),
    )
    .await;
    assert_eq!(status, 200, "{built}");
    assert_eq!(built["basis"], "PDC-INTENT");
    assert_eq!(built["hash"], jcs_hash(&built["terms"]), "{built}");
    let plain: Vec<&str> = built["plain_summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        plain.contains(
            &"Brands may read your location and preference for requested service provision, \
              before 2030-06-01, at most 3 times."
        ),
        "{plain:#?}"
    );
    assert!(plain.contains(&"Brands must delete what they receive within 7 days of receiving it."));
    assert!(
        plain
            .iter()
            .all(|l| !l.contains("dpv:") && !l.contains("pd:") && !l.contains("PDC-INTENT")),
        "{plain:#?}"
    );

    // The built document publishes like any other, and reads back with its plain summary.
    let (status, published) = owner_call(
        &app,
        &owner,
        Method::PUT,
        "/api/v1/terms",
        Some(json!({ "terms": built["terms"] })),
    )
    .await;
    assert_eq!(status, 201, "{published}");
    assert_eq!(published["hash"], built["hash"]);
    assert_eq!(published["plain_summary"], built["plain_summary"]);

    // A choice the basis does not allow is refused by name, and nothing is built.
    choices["purposes"] = json!(["dpv:Marketing"]);
    let (status, refused) = owner_call(
        &app,
        &owner,
        Method::POST,
        "/api/v1/terms/templates/pdc-intent/build",
        Some(choices.clone()),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"], "invalid_choices", "{refused}");
    assert_eq!(refused["at"], "/purposes", "{refused}");
    choices["purposes"] = json!(["dpv:RequestedServiceProvision"]);
    choices["retention_days"] = json!(90);
    let (status, refused) = owner_call(
        &app,
        &owner,
        Method::POST,
        "/api/v1/terms/templates/pdc-intent/build",
        Some(choices),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["at"], "/retention_days", "{refused}");

    let (status, missing) = owner_call(
        &app,
        &owner,
        Method::GET,
        "/api/v1/terms/templates/no-such/choices",
        None,
    )
    .await;
    assert_eq!(status, 404, "{missing}");
}
