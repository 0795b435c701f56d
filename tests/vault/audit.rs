//! The audit log: every change is on the record, and tampering on disk is detected.

use serde_json::{Value, json};
use vrm_vault::store::Tree;

use crate::kit::disk::{passphrase_file, raw_store};
use crate::kit::owner::PASSPHRASE;
use crate::support::{TestApp, cli};

async fn vault_with_entries() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = TestApp::start(&data);
    let (token, _) = app.setup().await;
    for i in 0..5 {
        app.put(
            &token,
            &format!("notes.n{i}"),
            json!({"value": i, "category": "pd:Interest"}),
        )
        .await;
    }
    let page: Value = app.get_json(&token, "/api/v1/audit?limit=3").await;
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["action"], "record.put");
    assert_eq!(entries[0]["target"], "notes.n4");
    // No record value in the log, only what happened to which field.
    assert!(!entries[0].to_string().contains("\"value\""));
    let older: Value = app
        .get_json(
            &token,
            &format!("/api/v1/audit?limit=3&before={}", page["next_before"]),
        )
        .await;
    assert_eq!(
        older["entries"][0]["seq"],
        entries[2]["seq"].as_u64().unwrap() - 1
    );
    let verify: Value = app.get_json(&token, "/api/v1/audit/verify").await;
    assert_eq!(verify["ok"], true, "{verify}");
    assert_eq!(verify["entries"], 8);
    app.stop();
    (dir, data)
}

fn verify_cli(dir: &std::path::Path, data: &std::path::Path) -> (bool, String) {
    let pass = passphrase_file(dir, PASSPHRASE);
    let (ok, out, err) = cli(&[
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
async fn chain_verifies_then_a_flipped_byte_is_detected() {
    let (dir, data) = vault_with_entries().await;
    let (ok, out) = verify_cli(dir.path(), &data);
    assert!(ok, "{out}");
    assert!(out.contains("intact: 8 entries"), "{out}");
    {
        let store = raw_store(&data);
        let key = 3u64.to_be_bytes();
        let mut sealed = store.raw_get(Tree::Audit, &key).unwrap().unwrap();
        let middle = sealed.len() / 2;
        sealed[middle] ^= 0x01;
        store
            .raw_insert_for_tests(Tree::Audit, &key, &sealed)
            .unwrap();
    }
    let (ok, out) = verify_cli(dir.path(), &data);
    assert!(!ok);
    assert!(out.contains("entry 3 cannot be opened"), "{out}");
}

#[tokio::test]
async fn removed_and_reordered_entries_are_detected() {
    let (dir, data) = vault_with_entries().await;
    {
        let store = raw_store(&data);
        store
            .raw_remove_for_tests(Tree::Audit, &4u64.to_be_bytes())
            .unwrap();
    }
    let (ok, out) = verify_cli(dir.path(), &data);
    assert!(!ok);
    assert!(
        out.contains("entry 5 is missing") || out.contains("jumps from 3 to 5"),
        "{out}"
    );

    let (dir, data) = vault_with_entries().await;
    {
        let store = raw_store(&data);
        let a = store
            .raw_get(Tree::Audit, &2u64.to_be_bytes())
            .unwrap()
            .unwrap();
        let b = store
            .raw_get(Tree::Audit, &3u64.to_be_bytes())
            .unwrap()
            .unwrap();
        store
            .raw_insert_for_tests(Tree::Audit, &2u64.to_be_bytes(), &b)
            .unwrap();
        store
            .raw_insert_for_tests(Tree::Audit, &3u64.to_be_bytes(), &a)
            .unwrap();
    }
    let (ok, out) = verify_cli(dir.path(), &data);
    assert!(!ok);
    assert!(out.contains("entry 2 cannot be opened"), "{out}");

    // Removing the newest entry is caught against the stored head.
    let (dir, data) = vault_with_entries().await;
    {
        let store = raw_store(&data);
        store
            .raw_remove_for_tests(Tree::Audit, &8u64.to_be_bytes())
            .unwrap();
    }
    let (ok, out) = verify_cli(dir.path(), &data);
    assert!(!ok);
    assert!(out.contains("removed"), "{out}");
}

#[tokio::test]
async fn the_server_reports_a_broken_chain() {
    let (_dir, data) = vault_with_entries().await;
    {
        let store = raw_store(&data);
        store
            .raw_remove_for_tests(Tree::Audit, &2u64.to_be_bytes())
            .unwrap();
    }
    let app = TestApp::start(&data);
    let token = app.token().await;
    let verify: Value = app.get_json(&token, "/api/v1/audit/verify").await;
    assert_eq!(verify["ok"], false);
    assert!(
        verify["error"].as_str().unwrap().contains("missing"),
        "{verify}"
    );
}
