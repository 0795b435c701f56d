//! Setup, sealing, unlocking, sessions, and what survives a restart.

use serde_json::{Value, json};

use crate::kit::disk::passphrase_file;
use crate::kit::owner::PASSPHRASE;
use crate::support::{TestApp, cli, create_unlock_key, serve_refuses, serve_refuses_with};

#[tokio::test]
async fn setup_write_restart_unlock_and_records_are_intact() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());
    let status: Value = app.get_json("", "/api/v1/status").await;
    assert_eq!(status["state"], "setup");
    // Before setup, the API says so (and health still answers).
    let res = app.get("", "/api/v1/records").await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "setup_required"
    );
    assert_eq!(app.get("", "/healthz").await.status(), 200);
    assert_eq!(app.get("", "/readyz").await.status(), 503);

    let (token, _) = app.setup().await;
    assert_eq!(app.get("", "/readyz").await.status(), 200);
    // A second setup is refused.
    let again = app
        .client
        .post(app.url("/api/v1/setup"))
        .json(&json!({ "passphrase": "another passphrase entirely" }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);

    assert_eq!(
        app.put(&token, "contact.email", json!({"value": "ana@example.org"}))
            .await
            .status(),
        201
    );
    assert_eq!(
        app.put(
            &token,
            "addresses.home.city",
            json!({"value": {"name": "Lyon", "zip": "69001"}})
        )
        .await
        .status(),
        201
    );
    app.stop();

    let app = TestApp::start(dir.path());
    let status: Value = app.get_json("", "/api/v1/status").await;
    assert_eq!(status["state"], "sealed");
    // Sealed: the old token is gone with the process, and data routes answer 503.
    let res = app.get(&token, "/api/v1/records").await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "30");
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "vault_sealed");
    assert_eq!(app.get("", "/readyz").await.status(), 503);
    assert_eq!(app.get("", "/healthz").await.status(), 200);
    // The web app itself is served while sealed, so the owner can unlock.
    assert_eq!(app.get("", "/").await.status(), 200);

    let token = app.token().await;
    let records: Value = app.get_json(&token, "/api/v1/records").await;
    let mut records = records["records"].as_array().unwrap().clone();
    records.sort_by_key(|r| r["path"].as_str().unwrap().to_owned());
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["path"], "addresses.home.city");
    assert_eq!(records[0]["value"]["name"], "Lyon");
    assert_eq!(records[0]["category"], "pd:PhysicalAddress");
    assert_eq!(records[1]["value"], "ana@example.org");
    assert_eq!(records[1]["category_label"], "Email address");
}

#[tokio::test]
async fn wrong_passphrase_is_401_and_reveals_nothing_then_backs_off() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());
    app.setup().await;
    app.stop();
    let app = TestApp::start(dir.path());
    for _ in 0..3 {
        let res = app.login("not the passphrase at all").await;
        assert_eq!(res.status(), 401);
        assert!(res.headers().get("set-cookie").is_none());
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_credentials");
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    }
    // Still sealed after failures.
    assert_eq!(app.get("", "/readyz").await.status(), 503);
    // The fourth attempt comes too soon: back-off, even with the right passphrase.
    let res = app.login(PASSPHRASE).await;
    assert_eq!(res.status(), 429);
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    tokio::time::sleep(std::time::Duration::from_secs(wait + 1)).await;
    assert_eq!(app.login(PASSPHRASE).await.status(), 201);
}

#[tokio::test]
async fn recovery_key_unlocks_and_sets_a_new_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());
    let (token, recovery_key) = app.setup().await;
    app.put(
        &token,
        "contact.phone",
        json!({"value": "+33 6 00 00 00 00"}),
    )
    .await;
    app.stop();

    let app = TestApp::start(dir.path());
    let bad = app
        .client
        .post(app.url("/api/v1/session"))
        .json(
            &json!({"recovery_key": "vrmrk-AAAA-BBBB", "new_passphrase": "a brand new passphrase"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let res = app
        .client
        .post(app.url("/api/v1/session"))
        .json(&json!({
            // People copy keys in lower case and with spaces; both are forgiven.
            "recovery_key": recovery_key.to_lowercase().replace('-', " "),
            "new_passphrase": "a brand new passphrase"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let rec: Value = app.get_json(&token, "/api/v1/records/contact.phone").await;
    assert_eq!(rec["value"], "+33 6 00 00 00 00");
    app.stop();

    let app = TestApp::start(dir.path());
    assert_eq!(app.login(PASSPHRASE).await.status(), 401);
    assert_eq!(app.login("a brand new passphrase").await.status(), 201);
}

#[tokio::test]
async fn passphrase_change_keeps_data_and_retires_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());
    let (token, _) = app.setup().await;
    app.put(&token, "profile.name", json!({"value": "Ana"}))
        .await;
    let change = |current: &str, new: &str| {
        app.client
            .put(app.url("/api/v1/passphrase"))
            .bearer_auth(&token)
            .json(&json!({"current_passphrase": current, "new_passphrase": new}))
            .send()
    };
    assert_eq!(
        change("wrong current passphrase", "whatever whatever")
            .await
            .unwrap()
            .status(),
        401
    );
    let weak = change(PASSPHRASE, "short").await.unwrap();
    assert_eq!(weak.status(), 422);
    assert_eq!(
        weak.json::<Value>().await.unwrap()["error"],
        "weak_passphrase"
    );
    assert_eq!(
        change(PASSPHRASE, "my second passphrase")
            .await
            .unwrap()
            .status(),
        204
    );
    app.stop();

    let app = TestApp::start(dir.path());
    assert_eq!(app.login(PASSPHRASE).await.status(), 401);
    let token = {
        let res = app.login("my second passphrase").await;
        assert_eq!(res.status(), 201);
        res.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let rec: Value = app.get_json(&token, "/api/v1/records/profile.name").await;
    assert_eq!(rec["value"], "Ana");
}

#[tokio::test]
async fn cookie_sessions_need_csrf_and_logout_ends_them() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());
    app.setup().await;
    let res = app.login(PASSPHRASE).await;
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain http on loopback: {cookie}"
    );
    let body: Value = res.json().await.unwrap();
    let csrf = body["csrf_token"].as_str().unwrap();
    let pair = cookie.split(';').next().unwrap().to_owned();

    let session: Value = app
        .client
        .get(app.url("/api/v1/session"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["csrf_token"], csrf);

    let put = |csrf: Option<&str>| {
        let mut req = app
            .client
            .put(app.url("/api/v1/records/contact.email"))
            .header("cookie", &pair)
            .json(&json!({"value": "a@example.org"}));
        if let Some(csrf) = csrf {
            req = req.header("x-csrf-token", csrf);
        }
        req.send()
    };
    let refused = put(None).await.unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "csrf_failed"
    );
    assert_eq!(put(Some("forged")).await.unwrap().status(), 403);
    assert_eq!(put(Some(csrf)).await.unwrap().status(), 201);

    let out = app
        .client
        .delete(app.url("/api/v1/session"))
        .header("cookie", &pair)
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let after = app
        .client
        .get(app.url("/api/v1/records"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
}

#[tokio::test]
async fn secure_cookie_and_hsts_behind_tls() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(dir.path(), &["--public-url", "https://vault.example.org"]);
    let res = app
        .client
        .post(app.url("/api/v1/setup"))
        .json(&json!({ "passphrase": PASSPHRASE }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-vrm_session="), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(res.headers().contains_key("strict-transport-security"));
}

#[tokio::test]
async fn cli_init_then_unlock_key_file_unseals_at_boot() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pass = passphrase_file(dir.path(), PASSPHRASE);
    let (ok, recovery, _) = cli(&[
        "init",
        "--data-dir",
        data.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
    ]);
    assert!(ok);
    assert!(recovery.trim().starts_with("vrmrk-"));
    // A second init on the same directory is refused.
    let (ok, _, err) = cli(&[
        "init",
        "--data-dir",
        data.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("already exists"), "{err}");

    let key = dir.path().join("unlock.key");
    create_unlock_key(&data, &pass, &key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let app = TestApp::start_with(&data, &["--unlock-key-file", key.to_str().unwrap()]);
    assert_eq!(app.get("", "/readyz").await.status(), 200);
    app.stop();

    let (ok, _, _) = cli(&[
        "unlock-key",
        "remove",
        "--data-dir",
        data.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
    ]);
    assert!(ok);
    // A removed slot makes the old key file useless: the server refuses to start with it.
    let err = serve_refuses_with(&data, &["--unlock-key-file", key.to_str().unwrap()]);
    assert!(err.contains("does not open this vault"), "{err}");
}

#[tokio::test]
async fn key_file_without_store_or_store_without_key_file_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());
    app.setup().await;
    app.stop();
    let keys = dir.path().join("keys.json");
    let saved = std::fs::read(&keys).unwrap();
    std::fs::remove_file(&keys).unwrap();
    let err = serve_refuses(dir.path());
    assert!(err.contains("no key file"), "{err}");
    // A damaged key file is refused with a clear message, not served.
    std::fs::write(&keys, &saved[..saved.len() / 2]).unwrap();
    let err = serve_refuses(dir.path());
    assert!(err.contains("damaged"), "{err}");
}

#[tokio::test]
async fn help_lists_every_command() {
    let (ok, out, _) = cli(&["--help"]);
    assert!(ok);
    for command in ["serve", "init", "audit", "unlock-key"] {
        assert!(out.contains(command), "{out}");
    }
    let (ok, out, _) = cli(&["serve", "--help"]);
    assert!(ok);
    for option in [
        "--data-dir",
        "--listen",
        "--public-url",
        "--unlock-key-file",
        "VRM_DATA_DIR",
        "VRM_LISTEN",
    ] {
        assert!(out.contains(option), "{option} missing from {out}");
    }
}
