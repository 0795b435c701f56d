//! Locking the running vault from the app: sealed as after a restart (keys gone, sessions ended,
//! brands 503), and unlocked again with the passphrase, without a restart.

use reqwest::Method;
use serde_json::{Value, json};

use crate::kit::brand::{brand_call, onboard, owner_call};
use crate::kit::owner::PASSPHRASE;
use crate::support::ready_vault;

#[tokio::test]
async fn locking_seals_the_running_vault_until_the_passphrase_opens_it_again() {
    let (_dir, app, owner) = ready_vault().await;
    assert_eq!(
        app.put(&owner, "contact.email", json!({"value": "ana@example.org"}))
            .await
            .status(),
        201
    );
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let token = brand.access_token(&app).await;
    assert_eq!(brand_call(&app, &token).await.status(), 200);

    let (status, body) = owner_call(&app, &owner, Method::POST, "/api/v1/vault/lock", None).await;
    assert_eq!(status, 204, "{body}");

    // Sealed, as after a restart: the status says so, the owner's session is over, brands get 503.
    let state: Value = app.get_json("", "/api/v1/status").await;
    assert_eq!(state["state"], "sealed", "{state}");
    let res = app.get(&owner, "/api/v1/records").await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "vault_sealed");
    let res = brand_call(&app, &token).await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "vault_sealed");
    assert_eq!(app.get("", "/readyz").await.status(), 503);
    // Locking a locked vault is no error (two tabs may both ask), but needs a session.
    let (status, _) = owner_call(&app, &owner, Method::POST, "/api/v1/vault/lock", None).await;
    assert_eq!(status, 503, "the old session cannot reach a sealed vault");

    // The passphrase opens it again in the same process; data and brand are as they were.
    let res = app.login("not the passphrase at all").await;
    assert_eq!(res.status(), 401);
    let res = app.login(PASSPHRASE).await;
    assert_eq!(res.status(), 201);
    let owner = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let records: Value = app.get_json(&owner, "/api/v1/records").await;
    assert_eq!(
        records["records"][0]["value"], "ana@example.org",
        "{records}"
    );
    assert_eq!(
        brand_call(&app, &token).await.status(),
        200,
        "the brand's token works again"
    );
    let fresh = brand.access_token(&app).await;
    assert_eq!(brand_call(&app, &fresh).await.status(), 200);

    // The log tells: locked by the owner, then unlocked.
    let log: Value = app.get_json(&owner, "/api/v1/audit?kind=security").await;
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    let sealed = actions.iter().position(|a| *a == "vault.sealed");
    let unsealed = actions.iter().position(|a| *a == "vault.unsealed");
    assert!(
        matches!((unsealed, sealed), (Some(u), Some(s)) if u < s),
        "newest first: unlocked after locked: {actions:?}"
    );
}

#[tokio::test]
async fn locking_and_unlocking_again_and_again_keeps_working() {
    let (_dir, app, mut owner) = ready_vault().await;
    for round in 0..3 {
        let (status, body) =
            owner_call(&app, &owner, Method::POST, "/api/v1/vault/lock", None).await;
        assert_eq!(status, 204, "round {round}: {body}");
        let res = app.login(PASSPHRASE).await;
        assert_eq!(res.status(), 201, "round {round}");
        owner = res.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            app.put(
                &owner,
                &format!("notes.round{round}"),
                json!({"value": round})
            )
            .await
            .status(),
            201
        );
    }
    let records: Value = app.get_json(&owner, "/api/v1/records").await;
    assert_eq!(records["records"].as_array().unwrap().len(), 3, "{records}");
}
