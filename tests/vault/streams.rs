//! A brand's event stream (`GET /brand/v1/events`) lives no longer than its token: it ends
//! within seconds of the token's expiry or of a revocation, also while no event comes (a
//! quiet stream used to stay open until the next event).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::json;

use crate::kit::brand::{jwt_parts, owner_call};
use crate::kit::intent::{Subscriber, categories};
use crate::support::{TestApp, intent_vault};

/// How soon after its token stops being valid a stream must end. The stream ends at the token's
/// `exp` by a timer; the margin is for a loaded machine (the full suite now runs three-node NATS
/// clusters beside it, and an ending 1.01 s late was seen there).
const WITHIN: Duration = Duration::from_secs(3);

/// Opens the brand's event stream with `token`, expecting 200.
async fn open_stream(app: &TestApp, token: &str) -> reqwest::Response {
    let response = app
        .client
        .get(app.url("/brand/v1/events"))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response
}

/// Reads the stream until it ends (keep-alives and events are read past); `None` if it is still
/// open after `patience`.
async fn ended_within(response: &mut reqwest::Response, patience: Duration) -> Option<Instant> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Err(_) => return None,
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None) | Err(_)) => return Some(Instant::now()),
        }
    }
}

/// The wall-clock instant of a token's `exp`, as an `Instant`.
fn expiry_of(token: &str) -> Instant {
    let exp = jwt_parts(token).1["exp"].as_u64().unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let left = Duration::from_secs(exp).saturating_sub(now);
    Instant::now() + left
}

#[tokio::test]
async fn a_quiet_stream_ends_when_its_token_expires() {
    let (_dir, app, owner) = intent_vault(&["--access-token-seconds", "2"]).await;
    let brand = Subscriber::subscribed(&app, &owner, "Quiet Bistro", categories(&["food"])).await;
    let expires = expiry_of(&brand.token);
    let mut stream = open_stream(&app, &brand.token).await;
    let ended = ended_within(&mut stream, Duration::from_secs(6))
        .await
        .expect("the stream was still open 6 s after it opened, its token long expired");
    assert!(
        ended + Duration::from_millis(50) >= expires,
        "the stream ended {:?} before its token expired",
        expires - ended
    );
    assert!(
        ended <= expires + WITHIN,
        "the stream ended {:?} after its token expired",
        ended - expires
    );
}

#[tokio::test]
async fn a_quiet_stream_ends_when_access_is_withdrawn() {
    let (_dir, app, owner) = intent_vault(&[]).await;

    // The brand revokes its own token.
    let brand = Subscriber::subscribed(&app, &owner, "Revoking", categories(&["food"])).await;
    let mut stream = open_stream(&app, &brand.token).await;
    assert!(
        ended_within(&mut stream, Duration::from_millis(300))
            .await
            .is_none()
    );
    let revoked = Instant::now();
    assert_eq!(brand.brand.revoke(&app, &brand.token).await, 200);
    let ended = ended_within(&mut stream, Duration::from_secs(3))
        .await
        .expect("the stream outlived its revoked token");
    assert!(
        ended - revoked <= WITHIN,
        "ended {:?} after",
        ended - revoked
    );

    // The owner suspends the brand.
    let brand = Subscriber::subscribed(&app, &owner, "Suspended", categories(&["food"])).await;
    let mut stream = open_stream(&app, &brand.token).await;
    assert!(
        ended_within(&mut stream, Duration::from_millis(300))
            .await
            .is_none()
    );
    let suspended = Instant::now();
    let path = format!("/api/v1/brands/{}/suspend", brand.brand.client_id);
    let (status, body) = owner_call(&app, &owner, Method::POST, &path, None).await;
    assert_eq!(status, 200, "{body}");
    let ended = ended_within(&mut stream, Duration::from_secs(3))
        .await
        .expect("the stream outlived its brand's suspension");
    assert!(
        ended - suspended <= WITHIN,
        "ended {:?} after",
        ended - suspended
    );

    // The owner deletes everything.
    let brand = Subscriber::subscribed(&app, &owner, "Erased", categories(&["food"])).await;
    let mut stream = open_stream(&app, &brand.token).await;
    assert!(
        ended_within(&mut stream, Duration::from_millis(300))
            .await
            .is_none()
    );
    let erased = Instant::now();
    let (status, body) = owner_call(
        &app,
        &owner,
        Method::DELETE,
        "/api/v1/vault",
        Some(json!({
            "passphrase": crate::kit::owner::PASSPHRASE,
            "confirm": "delete everything",
        })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ended = ended_within(&mut stream, Duration::from_secs(5))
        .await
        .expect("the stream outlived deleting everything");
    assert!(
        ended - erased <= Duration::from_secs(3),
        "ended {:?} after",
        ended - erased
    );
}
