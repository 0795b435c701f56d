//! What the HTTP side does with slow, greedy and hostile clients, and the operational surface:
//! connection limits, header limits, rate limits behind a trusted proxy, metrics, graceful
//! shutdown with open event streams, and the config file.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::kit::relay::free_port;
use crate::support::{TestApp, serve_refuses_with};
use crate::support::{ready_vault, ready_vault_with};

/// Sends raw bytes on a fresh connection and returns what came back until the server closed
/// the connection or `wait` passed.
fn raw_exchange(base: &str, request: &[u8], wait: Duration) -> String {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or_default()
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_cut_off_and_cannot_hold_connections() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(dir.path(), &["--max-connections", "3"]);
    let addr = app.base.trim_start_matches("http://").to_owned();

    // Three connections that never finish their request head take every slot ...
    let mut idle: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // ... so a fourth client waits: it is not answered while they hold on.
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(1500))
        .build()
        .unwrap();
    assert!(
        quick.get(app.url("/healthz")).send().await.is_err(),
        "a fourth connection was served past --max-connections 3"
    );

    // The header-read timeout (10 s) closes the tricklers, and the vault serves again.
    let started = Instant::now();
    let mut buf = [0u8; 256];
    idle[0]
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let read = idle[0].read(&mut buf).unwrap_or(0);
    let closed_after = started.elapsed();
    let answer = String::from_utf8_lossy(&buf[..read]).into_owned();
    assert!(
        read == 0 || answer.starts_with("HTTP/1.1 408"),
        "a trickling client got {answer:?} instead of having its connection closed"
    );
    assert!(
        closed_after < Duration::from_secs(15),
        "the trickling connection stayed open {closed_after:?}"
    );
    idle.clear();
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    app.stop();
}

#[tokio::test]
async fn oversized_or_too_many_headers_are_refused_with_431_and_bodies_with_413() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());

    let many: String = (0..100).map(|n| format!("X-Filler-{n}: y\r\n")).collect();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n");
    let answer = raw_exchange(&app.base, request.as_bytes(), Duration::from_secs(5));
    assert!(
        status_line(&answer).contains("431"),
        "100 headers: {}",
        status_line(&answer)
    );

    let huge = "a".repeat(20 * 1024);
    let request =
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {huge}\r\nConnection: close\r\n\r\n");
    let answer = raw_exchange(&app.base, request.as_bytes(), Duration::from_secs(5));
    assert!(
        status_line(&answer).contains("431"),
        "a 20 KiB header: {}",
        status_line(&answer)
    );

    // A control: an ordinary request on the same path is answered.
    let answer = raw_exchange(
        &app.base,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(status_line(&answer).contains("200"), "{answer}");

    let (token, _) = app.setup().await;
    let big = "x".repeat(200 * 1024);
    let res = app
        .put(
            &token,
            "notes.big",
            json!({"value": big, "category": "pd:Interest"}),
        )
        .await;
    assert_eq!(res.status(), 413);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "payload_too_large");
    app.stop();
}

async fn failed_login(app: &TestApp, forwarded_for: Option<&str>) -> u16 {
    let mut request = app
        .client
        .post(app.url("/api/v1/session"))
        .json(&json!({"passphrase": "not the passphrase"}));
    if let Some(ip) = forwarded_for {
        request = request.header("X-Forwarded-For", ip);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_a_trusted_proxy() {
    // Untrusted: X-Forwarded-For is ignored, so changing it does not escape the back-off.
    let (_dir, app, _) = ready_vault().await;
    for n in 0..3 {
        assert_eq!(
            failed_login(&app, Some(&format!("203.0.113.{n}"))).await,
            401
        );
    }
    assert_eq!(failed_login(&app, Some("203.0.113.99")).await, 429);
    app.stop();

    // Trusted (the test client is the "proxy" on 127.0.0.1): each forwarded client has its own
    // back-off, and one client's failures do not lock out another.
    let (_dir, app, _) = ready_vault_with(&["--trusted-proxy", "127.0.0.1"]).await;
    for _ in 0..3 {
        assert_eq!(failed_login(&app, Some("203.0.113.7")).await, 401);
    }
    assert_eq!(failed_login(&app, Some("203.0.113.7")).await, 429);
    // A client cannot pick its address by sending its own header: the proxy appends the real
    // one, which is the one that counts.
    assert_eq!(
        failed_login(&app, Some("198.51.100.1, 203.0.113.7")).await,
        429
    );
    assert_eq!(failed_login(&app, Some("203.0.113.8")).await, 401);
    app.stop();
}

#[tokio::test]
async fn failed_client_authentication_backs_off_per_address() {
    let (_dir, app, _) = ready_vault().await;
    let attempt = || async {
        app.client
            .post(app.url("/oauth/token"))
            .basic_auth("no-such-client", Some("guess"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
    };
    for _ in 0..vrm_vault::service::CLIENT_AUTH_FREE_FAILURES {
        let res = attempt().await;
        assert_eq!(res.status(), 401);
    }
    let res = attempt().await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().get("retry-after").is_some());
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");

    // The brand API authenticates clients the same way and must refuse with its own 429, not
    // turn the back-off into a 400 or 401.
    for request in [
        app.client
            .post(app.url("/brand/v1/agreements"))
            .json(&json!({"terms_hash": "sha256:00"})),
        app.client.get(app.url("/brand/v1/agreements/agr_none")),
    ] {
        let res = request
            .basic_auth("no-such-client", Some("guess"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 429);
        assert!(res.headers().get("retry-after").is_some());
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "too_many_requests", "{body}");
    }
    app.stop();
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_never_name_values() {
    let metrics = format!("127.0.0.1:{}", free_port());
    let (_dir, app, token) = ready_vault_with(&["--metrics-listen", &metrics]).await;
    let res = app
        .put(
            &token,
            "contact.email",
            json!({"value": "metrics-marker@example.org", "category": "pd:EmailAddress"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let res = app.get(&token, "/api/v1/records/contact.email").await;
    assert_eq!(res.status(), 200);

    let text = app
        .client
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            r#"vrm_http_requests_total{method="GET",route="/api/v1/records/{path}",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"vrm_vault_phase{phase="unsealed"} 1"#),
        "{text}"
    );
    assert!(text.contains("vrm_records 1"), "{text}");
    assert!(text.contains("vrm_process_resident_memory_bytes"), "{text}");
    for secret in ["contact.email", "metrics-marker", &token] {
        assert!(!text.contains(secret), "the metrics name {secret:?}");
    }
    // The metrics are not on the public listener.
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_ne!(res.status(), 200);
    app.stop();
}

#[tokio::test]
async fn sigterm_ends_open_event_streams_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let data = dir.path().join("data");
    let app = TestApp::start_logging_to(&data, &log);
    let (token, _) = app.setup().await;
    // An owner event stream: an answer that never ends by itself.
    let stream = app.get(&token, "/api/v1/events").await;
    assert_eq!(stream.status(), 200);
    let status = app
        .stop_within(Duration::from_secs(8))
        .await
        .expect("the server did not stop within 8 s of SIGTERM with an event stream open");
    assert!(status.success(), "exit status {status}");
    // The stream ended rather than being cut: reading it to the end succeeds, at once.
    let rest = tokio::time::timeout(Duration::from_secs(2), stream.bytes())
        .await
        .expect("the event stream was still open 2 s after the server stopped");
    assert!(rest.is_ok(), "the event stream was cut: {rest:?}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("stopped cleanly"), "{log}");
}

#[tokio::test]
async fn a_config_file_sets_what_flags_do_not_and_rejects_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vault.toml");
    let metrics = format!("127.0.0.1:{}", free_port());
    std::fs::write(
        &config,
        format!("max-connections = 8\nmetrics-listen = \"{metrics}\"\ntrusted-proxies = [\"10.0.0.0/8\"]\n"),
    )
    .unwrap();
    let data = dir.path().join("data");
    let app = TestApp::start_with(&data, &["--config", config.to_str().unwrap()]);
    // The file's metrics listener is up.
    let res = app
        .client
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.stop();

    let config_arg = ["--config", config.to_str().unwrap()];
    std::fs::write(&config, "listen-port = 8080\n").unwrap();
    let stderr = serve_refuses_with(&data, &config_arg);
    assert!(
        stderr.contains("unknown option \"listen-port\""),
        "{stderr}"
    );

    std::fs::write(&config, "cache-mb = 1\n").unwrap();
    let stderr = serve_refuses_with(&data, &config_arg);
    assert!(stderr.contains("cache-mb"), "{stderr}");
}

#[tokio::test]
async fn a_refused_body_closes_its_connection_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());
    let (token, _) = app.setup().await;
    // Too large to be read: hyper drops the connection after the answer, so the answer must
    // say so, or a pooling client sends its next request into the closed connection.
    let res = app
        .client
        .put(app.url("/api/v1/records/a.b"))
        .bearer_auth(&token)
        .json(&json!({"value": "x".repeat(200 * 1024), "category": "pd:Age"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(res.headers()["connection"], "close");
    // A body-less refusal, or a success, keeps the connection.
    let res = app.get(&token, "/api/v1/records/no.such").await;
    assert_eq!(res.status(), 404);
    assert!(res.headers().get("connection").is_none());
    app.stop();
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_cors_stays_closed() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());
    for path in [
        "/",
        "/healthz",
        "/api/v1/status",
        "/no/such/page",
        "/api/v1/records",
    ] {
        let res = app
            .client
            .get(app.url(path))
            .header("Origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        if path.starts_with("/api/") {
            assert_eq!(h["cache-control"], "no-store", "{path}");
        }
        assert!(h.get("x-request-id").is_some(), "{path}");
        assert!(
            h.get("access-control-allow-origin").is_none(),
            "{path} answers cross-origin reads"
        );
        assert!(
            h.get("strict-transport-security").is_none(),
            "{path}: HSTS over plain http"
        );
    }
    // A cross-origin preflight is not approved.
    let res = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/records"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "PUT")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert!(res.headers().get("access-control-allow-methods").is_none());
    app.stop();
}

#[tokio::test]
async fn guessing_invitation_tokens_backs_off() {
    let (_dir, app, _) = ready_vault().await;
    let attempt = || async {
        app.client
            .post(app.url("/oauth/register"))
            .bearer_auth("a-guessed-invitation-token")
            .json(&json!({
                "client_name": "Guesser",
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["client_credentials"],
            }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    for _ in 0..3 {
        assert_eq!(attempt().await, 401);
    }
    assert_eq!(attempt().await, 429);
    app.stop();
}

#[tokio::test]
async fn a_page_that_rebinds_its_dns_name_to_the_vault_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(dir.path(), &["--public-url", "https://vault.example.org"]);
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let with_host = |host: String| {
        let request =
            format!("GET /api/v1/status HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        raw_exchange(&app.base, request.as_bytes(), Duration::from_secs(5))
    };
    // The attacker's page, rebound to 127.0.0.1, still sends its own name.
    let answer = with_host(format!("attacker.example:{port}"));
    assert!(status_line(&answer).contains("421"), "{answer}");
    assert!(answer.contains("misdirected_request"), "{answer}");
    // Setup mode is exactly what it must not reach.
    let request = format!(
        "POST /api/v1/setup HTTP/1.1\r\nHost: attacker.example:{port}\r\nContent-Type: application/json\r\nContent-Length: 40\r\nConnection: close\r\n\r\n{{\"passphrase\": \"attacker passphrase!\"}}"
    );
    let answer = raw_exchange(&app.base, request.as_bytes(), Duration::from_secs(5));
    assert!(status_line(&answer).contains("421"), "{answer}");
    // The vault's own names: IP literals, localhost, the public URL's host (behind its proxy).
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        "vault.example.org".to_owned(),
        "VAULT.example.org:443".to_owned(),
    ] {
        let answer = with_host(host.clone());
        assert!(status_line(&answer).contains("200"), "{host}: {answer}");
    }
    // Health checks from a proxy or a monitor answer whatever name they use.
    let request = b"GET /healthz HTTP/1.1\r\nHost: monitor.internal\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(&app.base, request, Duration::from_secs(5));
    assert!(status_line(&answer).contains("200"), "{answer}");
    app.stop();
}

#[tokio::test]
async fn another_sites_page_cannot_post_to_setup_restore_or_login() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());
    let post = |path: &'static str, origin: &'static str| {
        let request = app
            .client
            .post(app.url(path))
            .header("Origin", origin)
            .json(&json!({"passphrase": "an attacker's passphrase"}));
        async move { request.send().await.unwrap() }
    };
    for origin in ["https://evil.example", "null", "http://127.0.0.1:1"] {
        let res = post("/api/v1/setup", origin).await;
        assert_eq!(res.status(), 403, "setup from {origin}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "csrf_failed");
    }
    // A multipart restore is a "simple" request that needs no preflight: refused all the same.
    let res = app
        .client
        .post(app.url("/api/v1/restore"))
        .header("Origin", "https://evil.example")
        .header("Content-Type", "multipart/form-data; boundary=b")
        .body("--b\r\nContent-Disposition: form-data; name=\"passphrase\"\r\n\r\nx\r\n--b--\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // Nothing was set up by the refused requests: the vault's own page still can.
    let own = app.base.clone();
    let res = app
        .client
        .post(app.url("/api/v1/setup"))
        .header("Origin", own)
        .json(&json!({"passphrase": crate::kit::owner::PASSPHRASE}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = post("/api/v1/session", "https://evil.example").await;
    assert_eq!(res.status(), 403);
    app.stop();
}

/// The app's pages are built with DOM calls (`textContent`, `createElement`), never parsed from
/// strings, so a brand's offer text or name cannot become markup. A control shows the scan finds
/// such a call when one is there.
#[test]
fn the_web_app_never_builds_html_from_strings() {
    const SINKS: [&str; 5] = [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "createContextualFragment",
    ];
    fn scan(text: &str) -> Vec<&'static str> {
        SINKS.into_iter().filter(|s| text.contains(s)).collect()
    }
    assert_eq!(scan("el.innerHTML = offer.text"), ["innerHTML"]);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
    let mut dirs = vec![root];
    let mut scanned = 0;
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "js" || e == "html") {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(
                    scan(&text).is_empty(),
                    "{} uses {:?}",
                    path.display(),
                    scan(&text)
                );
                scanned += 1;
            }
        }
    }
    assert!(scanned >= 3, "only {scanned} files scanned");
}
