//! Records: optimistic concurrency, and every class of malformed input answered with a clear 4xx.

use serde_json::{Value, json};

use crate::support::TestApp;

async fn ready() -> (tempfile::TempDir, TestApp, String) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());
    let (token, _) = app.setup().await;
    (dir, app, token)
}

#[tokio::test]
async fn etag_and_if_match() {
    let (_dir, app, token) = ready().await;
    let created = app
        .put(&token, "contact.email", json!({"value": "a@example.org"}))
        .await;
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["etag"], "\"1\"");
    assert!(created.headers().contains_key("etag"));

    let put_if = |tag: &'static str, value: &'static str| {
        app.client
            .put(app.url("/api/v1/records/contact.email"))
            .bearer_auth(&token)
            .header("if-match", tag)
            .json(&json!({ "value": value }))
            .send()
    };
    let updated = put_if("\"1\"", "b@example.org").await.unwrap();
    assert_eq!(updated.status(), 200);
    assert_eq!(updated.headers()["etag"], "\"2\"");
    // A writer that read version 1 loses: 412, and nothing changes.
    let stale = put_if("\"1\"", "c@example.org").await.unwrap();
    assert_eq!(stale.status(), 412);
    assert_eq!(
        stale.json::<Value>().await.unwrap()["error"],
        "precondition_failed"
    );
    let current = app.get(&token, "/api/v1/records/contact.email").await;
    assert_eq!(current.headers()["etag"], "\"2\"");
    assert_eq!(
        current.json::<Value>().await.unwrap()["value"],
        "b@example.org"
    );

    // Create-only writes.
    let create_only = |path: &'static str| {
        app.client
            .put(app.url(&format!("/api/v1/records/{path}")))
            .bearer_auth(&token)
            .header("if-none-match", "*")
            // An address, as contact.email must hold one: the 412 is about the precondition.
            .json(&json!({"value": "x@example.org", "category": "pd:Interest"}))
            .send()
    };
    assert_eq!(create_only("contact.email").await.unwrap().status(), 412);
    assert_eq!(create_only("hobbies.climbing").await.unwrap().status(), 201);

    // Conditional delete.
    let delete = |tag: &'static str| {
        app.client
            .delete(app.url("/api/v1/records/contact.email"))
            .bearer_auth(&token)
            .header("if-match", tag)
            .send()
    };
    assert_eq!(delete("\"1\"").await.unwrap().status(), 412);
    assert_eq!(delete("\"2\"").await.unwrap().status(), 204);
    assert_eq!(
        app.get(&token, "/api/v1/records/contact.email")
            .await
            .status(),
        404
    );
    assert_eq!(delete("\"2\"").await.unwrap().status(), 404);
}

#[tokio::test]
async fn the_list_comes_in_pages_that_cover_every_record_once() {
    let (_dir, app, token) = ready().await;
    for i in 0..25 {
        app.put(
            &token,
            &format!("notes.n{i}"),
            json!({"value": i, "category": "pd:Interest"}),
        )
        .await;
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &cursor {
            Some(c) => format!("/api/v1/records?limit=10&cursor={c}"),
            None => "/api/v1/records?limit=10".to_owned(),
        };
        let page: Value = app.get_json(&token, &url).await;
        pages += 1;
        for r in page["records"].as_array().unwrap() {
            assert!(
                seen.insert(r["path"].as_str().unwrap().to_owned()),
                "duplicate {r}"
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!((pages, seen.len()), (3, 25));
    assert_eq!(
        app.get(&token, "/api/v1/records?cursor=%%%").await.status(),
        400
    );
}

#[tokio::test]
async fn concurrent_conditional_writers_one_wins() {
    let (_dir, app, token) = ready().await;
    app.put(&token, "profile.nickname", json!({"value": "v1"}))
        .await;
    let mut tasks = vec![];
    for i in 0..16 {
        let client = app.client.clone();
        let url = app.url("/api/v1/records/profile.nickname");
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            client
                .put(url)
                .bearer_auth(token)
                .header("if-match", "\"1\"")
                .json(&json!({ "value": format!("writer {i}") }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = vec![];
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        15,
        "{statuses:?}"
    );
}

/// Sends a raw request and returns (status, error code).
async fn attempt(app: &TestApp, req: reqwest::RequestBuilder) -> (u16, String) {
    let _ = app;
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert!(
        body["message"].is_string(),
        "every error has a message: {body}"
    );
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn malformed_input_gets_clear_4xx_and_writes_nothing() {
    let (_dir, app, token) = ready().await;
    let put = |path: &str| {
        app.client
            .put(app.url(&format!("/api/v1/records/{path}")))
            .bearer_auth(&token)
    };
    let json_ct = ("content-type", "application/json");
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "broken JSON",
            put("a.b").header(json_ct.0, json_ct.1).body("{\"value\": "),
            400,
            "invalid_request",
        ),
        (
            "not an object",
            put("a.b").header(json_ct.0, json_ct.1).body("[1,2]"),
            400,
            "invalid_request",
        ),
        (
            "unknown field",
            put("a.b").json(&json!({"value": 1, "category": "pd:Age", "owner": "x"})),
            400,
            "invalid_request",
        ),
        (
            "missing value",
            put("a.b").json(&json!({"category": "pd:Age"})),
            400,
            "invalid_request",
        ),
        (
            "wrong type",
            put("a.b").json(&json!({"value": 1, "category": 7})),
            400,
            "invalid_request",
        ),
        (
            "not JSON",
            put("a.b")
                .header("content-type", "text/plain")
                .body("hello"),
            415,
            "unsupported_media_type",
        ),
        (
            "no content type",
            put("a.b").body("{\"value\": 1}"),
            415,
            "unsupported_media_type",
        ),
        (
            "oversize body",
            put("a.b").json(&json!({"value": "x".repeat(200 * 1024)})),
            413,
            "payload_too_large",
        ),
        (
            "value over 64 KiB",
            put("a.b").json(&json!({"value": "x".repeat(70 * 1024), "category": "pd:Age"})),
            422,
            "invalid_value",
        ),
        (
            "null value",
            put("a.b").json(&json!({"value": null, "category": "pd:Age"})),
            422,
            "invalid_value",
        ),
        (
            "deep value",
            put("a.b").json(
                &json!({"value": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]], "category": "pd:Age"}),
            ),
            422,
            "invalid_value",
        ),
        (
            "unknown category",
            put("a.b").json(&json!({"value": 1, "category": "pd:Nope"})),
            422,
            "invalid_category",
        ),
        (
            "upper-case path",
            put("Contact.email").json(&json!({"value": 1})),
            422,
            "invalid_path",
        ),
        (
            "one-part path",
            put("contact").json(&json!({"value": 1})),
            422,
            "invalid_path",
        ),
        (
            "empty segment",
            put("contact..email").json(&json!({"value": 1})),
            422,
            "invalid_path",
        ),
        (
            "five parts",
            put("a.b.c.d.e").json(&json!({"value": 1})),
            422,
            "invalid_path",
        ),
        (
            "encoded slash",
            put("a%2Fb.c").json(&json!({"value": 1})),
            422,
            "invalid_path",
        ),
        (
            "bad If-Match",
            put("a.b")
                .header("if-match", "")
                .json(&json!({"value": 1, "category": "pd:Age"})),
            400,
            "invalid_request",
        ),
        (
            "unsupported If-None-Match",
            put("a.b")
                .header("if-none-match", "\"3\"")
                .json(&json!({"value": 1, "category": "pd:Age"})),
            400,
            "invalid_request",
        ),
        (
            "no credentials",
            app.client
                .put(app.url("/api/v1/records/a.b"))
                .json(&json!({"value": 1})),
            401,
            "unauthenticated",
        ),
        (
            "bad token",
            app.client
                .put(app.url("/api/v1/records/a.b"))
                .bearer_auth("vrm_s_forged")
                .json(&json!({"value": 1})),
            401,
            "unauthenticated",
        ),
        (
            "wrong method",
            app.client
                .patch(app.url("/api/v1/records/a.b"))
                .bearer_auth(&token),
            405,
            "method_not_allowed",
        ),
        (
            "unknown route",
            app.client
                .get(app.url("/api/v1/nothing-here"))
                .bearer_auth(&token),
            404,
            "not_found",
        ),
        (
            "bad audit query",
            app.client
                .get(app.url("/api/v1/audit?limit=lots"))
                .bearer_auth(&token),
            400,
            "invalid_request",
        ),
    ];
    for (name, req, status, code) in cases {
        let (got_status, got_code) = attempt(&app, req).await;
        assert_eq!((got_status, got_code.as_str()), (status, code), "{name}");
    }
    let records: Value = app.get_json(&token, "/api/v1/records").await;
    assert_eq!(
        records["records"],
        json!([]),
        "no malformed request wrote anything"
    );
    // The vault is still healthy.
    assert_eq!(
        app.put(&token, "a.b", json!({"value": 1, "category": "pd:Age"}))
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn every_response_carries_security_headers() {
    let (_dir, app, token) = ready().await;
    for path in [
        "/",
        "/api/v1/records",
        "/healthz",
        "/api/v1/nothing",
        "/app.js",
    ] {
        let res = app.get(&token, path).await;
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert!(!csp.contains("unsafe-inline"), "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(h.contains_key("x-request-id"), "{path}");
    }
}

#[tokio::test]
async fn a_damaged_record_is_a_500_whose_cause_is_logged_with_the_request_id_not_sent() {
    use vrm_vault::store::Tree;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = TestApp::start(&data);
    let (token, _) = app.setup().await;
    app.put(&token, "contact.email", json!({"value": "a@example.org"}))
        .await;
    app.stop();
    {
        // Flip a byte of the sealed record on disk.
        let store = crate::kit::disk::raw_store(&data);
        let key = store.raw_keys(Tree::Records).unwrap().remove(0);
        let mut sealed = store.raw_get(Tree::Records, &key).unwrap().unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        store
            .raw_insert_for_tests(Tree::Records, &key, &sealed)
            .unwrap();
    }
    let log = dir.path().join("server.log");
    let app = TestApp::start_logging_to(&data, &log);
    let token = app.token().await;
    let res = app.get(&token, "/api/v1/records/contact.email").await;
    assert_eq!(res.status(), 500);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "internal");
    assert!(
        !body.to_string().contains("tamper"),
        "no internal detail sent: {body}"
    );
    app.stop();
    let log = std::fs::read_to_string(&log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("request failed"))
        .unwrap_or_else(|| panic!("no failure logged in {log}"));
    let entry: Value = serde_json::from_str(line).unwrap();
    assert_eq!(entry["fields"]["request_id"], request_id.as_str(), "{line}");
    assert_eq!(entry["fields"]["route"], "/api/v1/records/{path}", "{line}");
    assert!(
        entry["fields"]["detail"]
            .as_str()
            .unwrap()
            .contains("tampered"),
        "{line}"
    );
    // The path's value never appears in the log.
    assert!(!log.contains("a@example.org"));
}
