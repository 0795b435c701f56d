//! A webhook held by an instance that dies is sent by another: instance A takes the job and
//! is killed while the brand's endpoint has not answered; after the consumer's ack wait (20 s)
//! instance B sends the same event under the same `webhook-id`, and counts it delivered.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::kit::brand::{ASSERTION_TYPE, random_id};
use crate::kit::relay::{AdmittedBrand, Nats, RelayApp, free_port};
use crate::kit::relay_traffic::{VaultIntent, client, publish_intent, send};

/// One request's `webhook-id` and when it arrived.
type Seen = Arc<Mutex<Vec<(String, Instant)>>>;

/// Reads one request; returns its `webhook-id`.
async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_owned())
    };
    let length: usize = header("content-length")?.parse().ok()?;
    while buffer.len() < end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    header("webhook-id")
}

/// An endpoint that never answers its first request (holding the connection open) and answers
/// 204 to every later one.
async fn stalling_endpoint() -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let recorded = seen.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let Some(id) = read_request(&mut stream).await else {
                continue;
            };
            let first = {
                let mut seen = recorded.lock().unwrap();
                seen.push((id, Instant::now()));
                seen.len() == 1
            };
            if first {
                held.push(stream);
            } else {
                let _ = stream
                    .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_held_by_a_dead_instance_is_sent_by_another() {
    let nats = Nats::start();
    let metrics_b = free_port();
    let a = RelayApp::start(&nats.url(), |c| {
        c.args([
            "--public-url",
            "http://relay.test",
            "--allow-loopback-webhooks",
        ]);
    });
    assert!(
        a.wait_ready(200, Duration::from_secs(20)).await,
        "{}",
        a.log()
    );
    let brand = AdmittedBrand::admit(&nats, "Chez Lulu");
    let http = client();
    let assertion = brand.keys.signing.assertion(
        &brand.client_id,
        "http://relay.test/oauth/token",
        &random_id(),
    );
    let token = send(http.post(a.url("/oauth/token")).form(&[
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", &assertion),
    ]))
    .await;
    let token = token.body()["access_token"].as_str().unwrap().to_owned();
    let (url, seen) = stalling_endpoint().await;
    let subscribed = send(
        http.put(a.url("/relay/v1/subscription"))
            .bearer_auth(&token)
            .json(
                &json!({"categories": ["food"], "areas": [{"geohash": "u09"}],
                          "webhook_url": url}),
            ),
    )
    .await;
    assert_eq!(subscribed.status(), Some(200), "{subscribed:?}");

    // Only A runs: it takes the job, and the endpoint keeps it waiting.
    let created = publish_intent(
        &http,
        &a.url(""),
        &VaultIntent::new("food.lunch", "u09tv", 3),
    )
    .await;
    assert_eq!(created.status(), Some(201), "{created:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "A never sent the webhook");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // B starts, A dies holding the job.
    let b = RelayApp::start(&nats.url(), |c| {
        c.args([
            "--public-url",
            "http://relay.test",
            "--allow-loopback-webhooks",
        ])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_b}")]);
    });
    assert!(
        b.wait_ready(200, Duration::from_secs(20)).await,
        "{}",
        b.log()
    );
    let mut a = a;
    a.server.child.kill().unwrap();
    a.server.child.wait().unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no instance sent the webhook again; B's log:\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].0, seen[1].0, "the same event, under one webhook-id");
    let after = seen[1].1 - seen[0].1;
    println!("the webhook came again from the other instance {after:?} after the first attempt");
    // Not before the ack wait: no instance took the job while A held it.
    assert!(after >= Duration::from_secs(19), "{after:?}");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = reqwest::get(format!("http://127.0.0.1:{metrics_b}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("vrm_relay_events_delivered_total 1\n") {
            break;
        }
        assert!(Instant::now() < deadline, "B did not count it:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
