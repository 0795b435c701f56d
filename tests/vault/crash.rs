//! A server killed with SIGKILL in the middle of a stream of writes loses no acknowledged write.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::TestApp;

#[tokio::test]
async fn sigkill_mid_stream_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());
    let (token, _) = app.setup().await;
    let acknowledged: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let mut writers = vec![];
    for w in 0..8 {
        let client = app.client.clone();
        let base = app.base.clone();
        let token = token.clone();
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            for n in 0u64.. {
                let path = format!("stream.w{w}-{n}");
                let sent = client
                    .put(format!("{base}/api/v1/records/{path}"))
                    .bearer_auth(&token)
                    .json(&json!({"value": n, "category": "pd:Interest"}))
                    .send()
                    .await;
                match sent {
                    Ok(res) if res.status() == 201 => acknowledged.lock().unwrap().push((path, n)),
                    // The kill: connections drop, requests fail. Stop writing.
                    _ => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.kill();
    for w in writers {
        let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 50,
        "the stream was running: {} writes",
        acknowledged.len()
    );

    let app = TestApp::start(dir.path());
    let token = app.token().await;
    let stored: std::collections::HashMap<String, Value> = app
        .all_records(&token)
        .await
        .iter()
        .map(|r| (r["path"].as_str().unwrap().to_owned(), r["value"].clone()))
        .collect();
    for (path, n) in &acknowledged {
        assert_eq!(
            stored.get(path),
            Some(&json!(n)),
            "acknowledged write {path} lost"
        );
    }
    // The store opened cleanly and the audit chain still holds.
    let verify: Value = app.get_json(&token, "/api/v1/audit/verify").await;
    assert_eq!(verify["ok"], true, "{verify}");
}
