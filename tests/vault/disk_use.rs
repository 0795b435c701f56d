//! What keeps the vault's disk use bounded: the token endpoint's budget per brand, expired
//! token ids pruned as they expire, the audit log's retention with its signed checkpoint, and
//! what the owner is shown of it all.

use std::time::Duration;

use serde_json::Value;

use crate::kit::brand::{Brand, onboard};
use crate::kit::grant::InProcessApp;

/// Asks for a client-credentials token; returns the status, `Retry-After` and the body.
async fn ask_token(app: &InProcessApp, brand: &Brand) -> (u16, Option<u64>, Value) {
    let res = brand
        .oauth_post(app, "/oauth/token", &[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    (status, retry, res.json().await.unwrap())
}

#[tokio::test]
async fn the_token_endpoint_budgets_each_brand() {
    let (app, owner) = InProcessApp::ready().await;
    let (greedy, _) = onboard(&app, &owner, "Greedy").await;
    let (honest, _) = onboard(&app, &owner, "Honest").await;
    let burst = vrm_vault::service::token_budget::TOKEN_BURST;
    for n in 0..burst {
        let (status, _, body) = ask_token(&app, &greedy).await;
        assert_eq!(status, 200, "token {n}: {body}");
    }
    let (status, retry, body) = ask_token(&app, &greedy).await;
    assert_eq!(status, 429, "{body}");
    // RFC 6749's error shape, and when to come back.
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("tokens")
    );
    assert_eq!(retry, Some(10));
    // Another brand's budget is its own.
    let (status, _, body) = ask_token(&app, &honest).await;
    assert_eq!(status, 200, "{body}");
    // Waiting as told lets exactly one more through.
    app.advance(Duration::from_secs(10));
    assert_eq!(ask_token(&app, &greedy).await.0, 200);
    assert_eq!(ask_token(&app, &greedy).await.0, 429);
}

/// `GET /api/v1/storage` as the owner.
async fn storage(app: &InProcessApp, owner: &str) -> Value {
    let res = app
        .client
        .get(format!("{}/api/v1/storage", app.base))
        .bearer_auth(owner)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn part<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["part"] == name)
        .unwrap_or_else(|| panic!("no part {name} in {report}"))
}

/// Waits (in real time, briefly) for the background worker to bring the token ids to `count`.
async fn token_ids_become(app: &InProcessApp, owner: &str, count: u64) {
    for _ in 0..100 {
        if part(&storage(app, owner).await, "tokens")["count"] == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "token ids never became {count}: {}",
        storage(app, owner).await
    );
}

#[tokio::test]
async fn expired_token_ids_are_forgotten_at_their_deadline_without_a_restart() {
    let (app, owner) = InProcessApp::ready().await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    assert_eq!(part(&storage(&app, &owner).await, "tokens")["count"], 0);
    let first = brand.access_token(&app).await;
    app.advance(Duration::from_secs(600));
    let second = brand.access_token(&app).await;
    token_ids_become(&app, &owner, 2).await;
    // The first token's 15 minutes are up; the second has 10 left.
    app.advance(Duration::from_secs(301));
    token_ids_become(&app, &owner, 1).await;
    assert_eq!(
        crate::kit::brand::brand_call(&app, &first).await.status(),
        401
    );
    assert_eq!(
        crate::kit::brand::brand_call(&app, &second).await.status(),
        200
    );
    app.advance(Duration::from_secs(600));
    token_ids_become(&app, &owner, 0).await;
}

/// `PUT /api/v1/audit/retention` with a bearer token.
async fn set_retention(
    client: &reqwest::Client,
    base: &str,
    owner: &str,
    body: Value,
) -> (u16, Value) {
    crate::kit::brand::status_json(
        client
            .put(format!("{base}/api/v1/audit/retention"))
            .bearer_auth(owner)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn verify_cli(dir: &std::path::Path, data: &std::path::Path) -> (bool, String) {
    let pass = crate::kit::disk::passphrase_file(dir, crate::kit::owner::PASSPHRASE);
    let (ok, out, err) = crate::support::cli(&[
        "audit",
        "verify",
        "--data-dir",
        data.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
    ]);
    (ok, format!("{out}{err}"))
}

#[tokio::test]
async fn the_count_cap_prunes_the_oldest_entries_and_verify_starts_from_the_signed_checkpoint() {
    use serde_json::json;
    use vrm_vault::store::Tree;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = crate::support::TestApp::start(&data);
    let (owner, _) = app.setup().await;
    let (status, body) = set_retention(
        &app.client,
        &app.base,
        &owner,
        json!({ "days": 0, "max_entries": 1000 }),
    )
    .await;
    assert_eq!((status, &body["at"]), (422, &json!("days")), "{body}");
    let (status, body) = set_retention(
        &app.client,
        &app.base,
        &owner,
        json!({ "days": 365, "max_entries": 100 }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for i in 0..120 {
        let res = app
            .put(
                &owner,
                &format!("notes.n{i}"),
                json!({"value": i, "category": "pd:Interest"}),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    // The worker prunes in the background, down to 99 entries each time the log passes 100:
    // wait until it has caught up with the writes.
    let mut report = Value::Null;
    let mut last = 0;
    for _ in 0..100 {
        report = app.get_json(&owner, "/api/v1/storage").await;
        let pruned = report["audit"]["pruned"].as_u64().unwrap();
        if pruned > 0 && pruned == last && report["audit"]["entries"].as_u64().unwrap() <= 100 {
            break;
        }
        last = pruned;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        report["audit"]["pruned"].as_u64().unwrap() >= 20,
        "{report}"
    );
    assert!(
        report["audit"]["entries"].as_u64().unwrap() <= 100,
        "{report}"
    );
    assert_eq!(report["audit"]["retention"]["max_entries"], 100);
    // A larger cap stops the pruning, so that what follows (an export appends an entry) sees
    // one checkpoint.
    let (status, body) = set_retention(
        &app.client,
        &app.base,
        &owner,
        json!({ "days": 365, "max_entries": 1000 }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let pruned = app.get_json(&owner, "/api/v1/storage").await["audit"]["pruned"]
        .as_u64()
        .unwrap();
    let verify = app.get_json(&owner, "/api/v1/audit/verify").await;
    assert_eq!(verify["ok"], true, "{verify}");
    assert_eq!(verify["pruned"], pruned, "{verify}");
    assert!(verify["pruned_through"].is_string(), "{verify}");
    // The log's oldest page starts right after the checkpoint, and the pruning is on the record.
    let page = app
        .get_json(
            &owner,
            &format!("/api/v1/audit?before={}&limit=1", pruned + 2),
        )
        .await;
    assert_eq!(page["entries"][0]["seq"], pruned + 1, "{page}");
    assert_eq!(page["next_before"], Value::Null, "{page}");
    let newest = app.get_json(&owner, "/api/v1/audit?limit=200").await;
    assert!(
        newest["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "audit.pruned"),
        "{newest}"
    );
    // An export carries the checkpoint its audit section follows.
    let export = app.get_json(&owner, "/api/v1/export").await;
    assert_eq!(
        export["audit_checkpoint"]["pruned"], pruned,
        "{}",
        export["audit_checkpoint"]
    );
    assert_eq!(export["audit"][0]["seq"], pruned + 1);
    assert_eq!(
        export["audit"][0]["prev_hash"],
        export["audit_checkpoint"]["last_hash"]
    );
    app.stop();

    let (ok, out) = verify_cli(dir.path(), &data);
    assert!(ok, "{out}");
    assert!(out.contains("intact"), "{out}");
    assert!(
        out.contains(&format!("the first {pruned} entries")),
        "{out}"
    );

    let key = b"audit_checkpoint";
    let original = crate::kit::disk::raw_store(&data)
        .raw_get(Tree::Meta, key)
        .unwrap()
        .unwrap();
    // A checkpoint re-sealed with the store's own key but claiming more pruned entries, as
    // someone with the store's key but not the checkpoint's would make it, fails its signature.
    {
        let passphrase = vrm_vault::secret::Secret::new(crate::kit::owner::PASSPHRASE);
        let (store, _, _) = vrm_vault::service::open_offline(&data, &passphrase).unwrap();
        let mut checkpoint: Value =
            serde_json::from_slice(&store.get(Tree::Meta, key).unwrap().unwrap()).unwrap();
        checkpoint["pruned"] = json!(pruned + 1);
        store
            .transact_offline(|tx| {
                tx.insert(Tree::Meta, key, &serde_json::to_vec(&checkpoint).unwrap())
            })
            .unwrap();
    }
    let (ok, out) = verify_cli(dir.path(), &data);
    assert!(!ok, "{out}");
    assert!(
        out.contains("does not carry the vault's signature"),
        "{out}"
    );

    // A flipped byte does not even open.
    let mut flipped = original.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 1;
    crate::kit::disk::raw_store(&data)
        .raw_insert_for_tests(Tree::Meta, key, &flipped)
        .unwrap();
    let (ok, out) = verify_cli(dir.path(), &data);
    assert!(!ok, "{out}");

    // Without the checkpoint, what is left does not start a chain.
    crate::kit::disk::raw_store(&data)
        .raw_remove_for_tests(Tree::Meta, key)
        .unwrap();
    let (ok, out) = verify_cli(dir.path(), &data);
    assert!(!ok, "{out}");
    assert!(out.contains("jumps from 0 to"), "{out}");

    // Put back, it verifies again.
    crate::kit::disk::raw_store(&data)
        .raw_insert_for_tests(Tree::Meta, key, &original)
        .unwrap();
    let (ok, out) = verify_cli(dir.path(), &data);
    assert!(ok, "{out}");
}

#[tokio::test]
async fn entries_older_than_the_retention_are_pruned_when_they_come_of_age() {
    use serde_json::json;

    let (app, owner) = InProcessApp::ready().await;
    let (status, body) = set_retention(
        &app.client,
        &app.base,
        &owner,
        json!({ "days": 1, "max_entries": 1_000_000 }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let before = storage(&app, &owner).await["audit"].clone();
    assert_eq!(before["pruned"], 0, "{before}");
    // Two days on: everything before is past its day (the owner logs in again).
    app.advance(Duration::from_secs(2 * 86_400));
    let owner =
        crate::kit::brand::owner_session(&app, "/api/v1/session", crate::kit::owner::PASSPHRASE)
            .await["token"]
            .as_str()
            .unwrap()
            .to_owned();
    let mut audit = Value::Null;
    for _ in 0..100 {
        audit = storage(&app, &owner).await["audit"].clone();
        if audit["pruned"].as_u64().unwrap() >= before["entries"].as_u64().unwrap() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        audit["pruned"].as_u64().unwrap() >= before["entries"].as_u64().unwrap(),
        "{audit}"
    );
    let oldest = time::OffsetDateTime::parse(
        audit["oldest"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(oldest > app.now() - time::Duration::days(1), "{audit}");
    let verify: Value = app
        .client
        .get(format!("{}/api/v1/audit/verify", app.base))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
}
