//! The OpenAPI snapshot: every route the served `/openapi.json` describes, with its method,
//! operation id and documented status codes, compared with a committed file.
//!
//! One snapshot replaces the route lists that each feature's tests used to keep by hand: a route
//! that disappears from the document, or one that appears without review, shows up as a diff of
//! `tests/vault/snapshots/openapi_routes.txt` (crates.io keeps its OpenAPI snapshot the same
//! way). After an intended change, `UPDATE_SNAPSHOTS=1 cargo test --test vault openapi::`
//! rewrites the file, and the diff goes into the commit for review.

use std::path::Path;

use serde_json::Value;

use crate::support::TestApp;

/// Where the committed snapshot lives, relative to the crate.
const SNAPSHOT: &str = "tests/vault/snapshots/openapi_routes.txt";

/// The methods an OpenAPI path item can hold; any other key (`parameters`, `summary`...) is not an
/// operation.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One line per operation, sorted: `METHOD /path operation_id status status...`.
pub(crate) fn routes(spec: &Value) -> String {
    let mut lines = vec![];
    for (path, item) in spec["paths"].as_object().expect("paths is an object") {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let id = op["operationId"].as_str().unwrap_or("-");
            let mut statuses: Vec<&str> = op["responses"]
                .as_object()
                .map(|r| r.keys().map(String::as_str).collect())
                .unwrap_or_default();
            statuses.sort_unstable();
            lines.push(format!(
                "{} {path} {id} {}",
                method.to_uppercase(),
                statuses.join(" ")
            ));
        }
    }
    lines.sort();
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

#[tokio::test]
async fn the_served_openapi_routes_match_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());
    let spec: Value = app.get_json("", "/openapi.json").await;
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(spec["components"]["schemas"]["ErrorBody"].is_object());

    let actual = routes(&spec);
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(SNAPSHOT);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::write(&file, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&file).unwrap_or_default();
    if expected != actual {
        let gone: Vec<&str> = expected
            .lines()
            .filter(|l| !actual.lines().any(|a| a == *l))
            .collect();
        let new: Vec<&str> = actual
            .lines()
            .filter(|l| !expected.lines().any(|e| e == *l))
            .collect();
        panic!(
            "/openapi.json no longer matches {SNAPSHOT}.\n\
             only in the snapshot:\n  {}\n\
             only in the served document:\n  {}\n\
             If the change is intended, run `UPDATE_SNAPSHOTS=1 cargo test --test vault openapi::` \
             and commit the updated snapshot.",
            gone.join("\n  "),
            new.join("\n  ")
        );
    }
}
