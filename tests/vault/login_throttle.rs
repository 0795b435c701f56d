//! The login back-off against parallel guesses and against strangers who would lock the owner
//! out (issue 17, items 1 and 2). The vault trusts the test client as its proxy, so each test
//! can speak for as many client addresses as it needs through `X-Forwarded-For`.

use futures_util::future::join_all;
use serde_json::json;
use vrm_vault::domain::login::{FREE_FAILURES, GLOBAL_FREE_FAILURES};

use crate::kit::owner::PASSPHRASE;
use crate::support::{TestApp, ready_vault_with};

const PROXIED: &[&str] = &["--trusted-proxy", "127.0.0.1"];

/// A login attempt from `address`, with the device cookie `device` if given: (status, the
/// device cookie the answer set, if any).
async fn login(
    app: &TestApp,
    address: &str,
    passphrase: &str,
    device: Option<&str>,
) -> (u16, Option<String>) {
    let mut request = app
        .client
        .post(app.url("/api/v1/session"))
        .header("X-Forwarded-For", address)
        .json(&json!({ "passphrase": passphrase }));
    if let Some(device) = device {
        request = request.header("Cookie", format!("vrm_device={device}"));
    }
    let res = request.send().await.unwrap();
    if res.status() == 429 {
        assert!(
            res.headers().get("retry-after").is_some(),
            "429 without Retry-After"
        );
    }
    (res.status().as_u16(), device_cookie(&res))
}

fn device_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("vrm_device="))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test]
async fn parallel_wrong_passphrases_are_checked_at_most_the_free_budget() {
    let (_dir, app, owner) = ready_vault_with(PROXIED).await;

    // Twelve wrong passphrases at once from one address: before, all twelve were checked
    // (12 × 401) and only then did the back-off start.
    let statuses: Vec<u16> = join_all((0..12).map(|_| async {
        login(&app, "203.0.113.1", "not the passphrase", None)
            .await
            .0
    }))
    .await;
    let checked = count(&statuses, 401);
    assert!(
        (1..=FREE_FAILURES as usize).contains(&checked),
        "{checked} of 12 parallel wrong passphrases were checked: {statuses:?}"
    );
    assert_eq!(count(&statuses, 429), 12 - checked, "{statuses:?}");

    // The other passphrase checks share the budget and the guard: changing the passphrase ...
    let statuses: Vec<u16> = join_all((0..12).map(|_| async {
        app.client
            .put(app.url("/api/v1/passphrase"))
            .bearer_auth(&owner)
            .header("X-Forwarded-For", "203.0.113.2")
            .json(&json!({"current_passphrase": "not the passphrase",
                          "new_passphrase": "a perfectly good new one"}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }))
    .await;
    let checked = count(&statuses, 401);
    assert!(
        (1..=FREE_FAILURES as usize).contains(&checked),
        "{statuses:?}"
    );
    assert_eq!(count(&statuses, 429), 12 - checked, "{statuses:?}");

    // ... and deleting everything.
    let statuses: Vec<u16> = join_all((0..12).map(|_| async {
        app.client
            .delete(app.url("/api/v1/vault"))
            .bearer_auth(&owner)
            .header("X-Forwarded-For", "203.0.113.3")
            .json(&json!({"passphrase": "not the passphrase",
                          "confirm": vrm_vault::service::erase::CONFIRM_PHRASE}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }))
    .await;
    let checked = count(&statuses, 401);
    assert!(
        (1..=FREE_FAILURES as usize).contains(&checked),
        "{statuses:?}"
    );
    assert_eq!(count(&statuses, 429), 12 - checked, "{statuses:?}");

    // An honest attempt from another address is not held by any of it.
    assert_eq!(login(&app, "203.0.113.4", PASSPHRASE, None).await.0, 201);
    app.stop();
}

#[tokio::test]
async fn strangers_on_rotating_addresses_cannot_lock_out_a_known_device() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(dir.path(), PROXIED);
    app.setup().await;
    // The owner's browser logs in once and keeps the device cookie it is given.
    let (status, device) = login(&app, "192.0.2.10", PASSPHRASE, None).await;
    assert_eq!(status, 201);
    let device = device.expect("a login sets a device cookie");

    // Strangers guess from a new address each time until the global back-off stops them.
    let mut locked_after = None;
    for n in 0..GLOBAL_FREE_FAILURES + 5 {
        let (status, cookie) = login(&app, &format!("198.51.100.{n}"), "a guess", None).await;
        assert!(cookie.is_none(), "a failed login set a device cookie");
        if status == 429 {
            locked_after = Some(n);
            break;
        }
        assert_eq!(status, 401);
    }
    assert_eq!(locked_after, Some(GLOBAL_FREE_FAILURES));
    // The global back-off now holds every unknown client for a second, doubling with each
    // further failure. An unknown browser, even with the right passphrase, is held like the
    // strangers, and so is an altered device cookie (these answers come at once, well within
    // the second) ...
    assert_eq!(login(&app, "192.0.2.11", PASSPHRASE, None).await.0, 429);
    let mut forged = device.clone();
    forged.pop();
    forged.push(if device.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        login(&app, "192.0.2.13", PASSPHRASE, Some(&forged)).await.0,
        429
    );
    // ... but the owner's known device logs in, from any address.
    let (status, renewed) = login(&app, "192.0.2.12", PASSPHRASE, Some(&device)).await;
    assert_eq!(status, 201);
    assert!(renewed.is_some());
    app.stop();

    // After a restart the vault is sealed, and the device-cookie key (beside the key file) still
    // recognises the device: an address the strangers locked does not lock the owner's device.
    let app = TestApp::start_with(dir.path(), PROXIED);
    for _ in 0..FREE_FAILURES {
        assert_eq!(login(&app, "198.51.100.200", "a guess", None).await.0, 401);
    }
    assert_eq!(login(&app, "198.51.100.200", PASSPHRASE, None).await.0, 429);
    assert_eq!(
        login(&app, "198.51.100.200", PASSPHRASE, Some(&device))
            .await
            .0,
        201
    );
    assert_eq!(app.get("", "/readyz").await.status(), 200);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = dir.path().join("device-cookie.key");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    app.stop();
}
