//! The event catalogue, checked from the brand's side: every CloudEvent a test brand receives
//! (by polling, which every `Subscriber` read goes through, or by webhook) must be one of the
//! types of the served OpenAPI document's `webhooks` section and validate against its schema.
//!
//! The document is fetched once per test process (every server of the binary serves the same
//! one) and each type's validator is built once.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::brand::Server;

static DOCUMENT: OnceCell<Value> = OnceCell::const_new();
static VALIDATORS: OnceLock<Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>> =
    OnceLock::new();

/// The served OpenAPI document.
pub async fn document(app: &impl Server) -> &'static Value {
    DOCUMENT
        .get_or_init(|| async {
            let res = app
                .client()
                .get(app.url("/openapi.json"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.json().await.unwrap()
        })
        .await
}

/// Every event type of the catalogue.
pub async fn catalogued_types(app: &impl Server) -> Vec<String> {
    document(app).await["webhooks"]
        .as_object()
        .expect("the document has a webhooks section")
        .keys()
        .cloned()
        .collect()
}

/// The validator of events of `kind`: the document itself as the root schema, pointed at the
/// event's schema, so its `$ref`s resolve inside it.
fn validator(document: &Value, kind: &str) -> std::sync::Arc<jsonschema::Validator> {
    let cache = VALIDATORS.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(v) = cache.lock().unwrap().get(kind) {
        return v.clone();
    }
    let reference = document["webhooks"][kind]["post"]["requestBody"]["content"]
        ["application/cloudevents+json"]["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{kind} is not in the event catalogue (webhooks)"))
        .to_owned();
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": reference,
        "components": document["components"],
    });
    let built = std::sync::Arc::new(
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("the schema of {kind} does not compile: {e}")),
    );
    cache.lock().unwrap().insert(kind.to_owned(), built.clone());
    built
}

/// How `event` breaks its catalogued schema, as `pointer: message` lines (none when valid).
/// Panics when its type is not catalogued at all.
pub async fn catalogue_errors(app: &impl Server, event: &Value) -> Vec<String> {
    let document = document(app).await;
    let kind = event["type"]
        .as_str()
        .unwrap_or_else(|| panic!("an event without a type: {event}"));
    validator(document, kind)
        .iter_errors(event)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Asserts `event` is a catalogued type and valid against its schema.
pub async fn assert_catalogued(app: &impl Server, event: &Value) {
    let errors = catalogue_errors(app, event).await;
    assert!(
        errors.is_empty(),
        "a {} event breaks its catalogued schema: {errors:#?}\n{event}",
        event["type"]
    );
}
