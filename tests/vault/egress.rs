//! Where the vault's outbound webhooks may go: never through a proxy named by the environment
//! (it would reach any host a brand names, past the address filter), through a proxy the
//! self-hoster configured only after the target was checked, and with failures told to the
//! brand as fixed phrases that say nothing of the network behind the vault.

use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::kit::grant::wall_now;
use crate::kit::intent::{Subscriber, eventually, intent_body, intent_id, publish_pdc_intent};
use crate::support::TestApp;

const PATIENCE: StdDuration = StdDuration::from_secs(10);

/// A TCP listener standing in for a proxy: it records the first line of every connection (the
/// `CONNECT host:port` a proxy would be asked) and closes it.
struct FakeProxy {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeProxy {
    async fn start() -> FakeProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 2048];
                    let n =
                        tokio::time::timeout(StdDuration::from_secs(2), stream.read(&mut buffer))
                            .await
                            .map_or(0, |r| r.unwrap_or(0));
                    let text = String::from_utf8_lossy(&buffer[..n]);
                    let first = text.lines().next().unwrap_or("(nothing)").to_owned();
                    recorded.lock().unwrap().push(first);
                    let _ = stream
                        .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
                        .await;
                });
            }
        });
        FakeProxy { url, seen, task }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A set-up vault started with `extra` flags and `env`, its terms in force PDC-INTENT.
async fn vault(extra: &[&str], env: &[(&str, &str)]) -> (tempfile::TempDir, TestApp, String) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with_env(dir.path(), extra, env);
    let (owner, _) = app.setup().await;
    publish_pdc_intent(&app, &owner).await;
    (dir, app, owner)
}

/// Waits until the brand's own view of its subscription shows a delivery error; returns it.
async fn last_error(app: &TestApp, brand: &Subscriber) -> String {
    eventually(PATIENCE, || async {
        let (status, body) = brand
            .call(app, Method::GET, "/brand/v1/subscription", None)
            .await;
        assert_eq!(status, 200, "{body}");
        body["last_error"].as_str().map(str::to_owned)
    })
    .await
    .unwrap_or_else(|| panic!("{} never saw a delivery fail", brand.brand.name))
}

/// The phrases a brand may see: none names a host, an address or a port.
const PHRASES: &[&str] = &[
    "refused: address not allowed",
    "host not found",
    "connection refused",
    "timed out",
    "TLS failure",
    "could not connect through the webhook proxy",
    "could not connect",
];

#[tokio::test]
async fn proxy_variables_in_the_environment_are_not_followed() {
    let proxy = FakeProxy::start().await;
    let mut env: Vec<(&str, &str)> = Vec::new();
    for name in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        env.push((name, &proxy.url));
    }
    env.extend([("NO_PROXY", ""), ("no_proxy", "")]);
    let (_dir, app, owner) = vault(&[], &env).await;
    let targets = [
        "https://localhost:8443/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::ffff:127.0.0.1]:8443/hook",
    ];
    let mut brands = Vec::new();
    for (i, url) in targets.iter().enumerate() {
        let brand = Subscriber::onboard(&app, &owner, &format!("Scanner {i}")).await;
        brand
            .subscribe_ok(&app, &json!({ "categories": ["food"], "webhook_url": url }))
            .await;
        brands.push(brand);
    }
    intent_id(&app, &owner, intent_body("food.lunch", wall_now())).await;
    for (brand, url) in brands.iter().zip(targets) {
        let error = last_error(&app, brand).await;
        assert_eq!(error, "refused: address not allowed", "{url}");
    }
    assert_eq!(
        proxy.seen(),
        Vec::<String>::new(),
        "the vault asked the environment's proxy to reach an internal address"
    );
}

#[tokio::test]
async fn a_configured_proxy_is_used_only_for_allowed_targets() {
    let proxy = FakeProxy::start().await;
    let (_dir, app, owner) = vault(&["--webhook-proxy", &proxy.url], &[]).await;
    let inside = Subscriber::onboard(&app, &owner, "Inside").await;
    inside
        .subscribe_ok(
            &app,
            &json!({ "categories": ["food"], "webhook_url": "https://localhost:8443/hook" }),
        )
        .await;
    // A public address written in the URL is allowed: the proxy is asked to reach it.
    let outside = Subscriber::onboard(&app, &owner, "Outside").await;
    outside
        .subscribe_ok(
            &app,
            &json!({ "categories": ["food"], "webhook_url": "https://93.184.215.14/hook" }),
        )
        .await;
    intent_id(&app, &owner, intent_body("food.lunch", wall_now())).await;

    assert_eq!(
        last_error(&app, &inside).await,
        "refused: address not allowed"
    );
    let error = last_error(&app, &outside).await;
    assert!(PHRASES.contains(&error.as_str()), "{error}");
    assert!(
        !error.contains("93.184") && !error.contains("127.0.0.1"),
        "{error}"
    );
    let seen = eventually(PATIENCE, || async {
        let seen = proxy.seen();
        (!seen.is_empty()).then_some(seen)
    })
    .await
    .expect("the configured proxy was never used");
    assert!(
        seen.iter()
            .all(|line| line.starts_with("CONNECT 93.184.215.14:443")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn delivery_errors_name_no_internal_detail() {
    // A closed port on this machine: the raw error names the address and port.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (_dir, app, owner) = vault(&["--allow-loopback-webhooks"], &[]).await;
    let brand = Subscriber::onboard(&app, &owner, "Closed Port").await;
    let url = format!("http://127.0.0.1:{closed}/hook");
    brand
        .subscribe_ok(&app, &json!({ "categories": ["food"], "webhook_url": url }))
        .await;
    intent_id(&app, &owner, intent_body("food.lunch", wall_now())).await;
    assert_eq!(last_error(&app, &brand).await, "connection refused");
}
