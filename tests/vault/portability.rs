//! Data portability and erasure (issue 6): the export holds every kind of object and validates
//! against the shipped schema, with an audit chain anyone can verify; a backup restores (over the
//! API and the CLI, with the passphrase or the recovery key) to the same vault, including a backup
//! of format 1; damaged or foreign backups are refused without leaving anything behind; deleting
//! everything revokes the brands, tells them with a signed erasure request, signs a receipt and
//! leaves nothing on disk, even when the process dies half-way; and partial deletions leave what
//! they removed unreadable with the vault's keys.
//!
//! Each check reads what a user or a brand would see (status codes, bodies, webhook requests) or
//! what is on disk, and recomputes hashes and signatures here rather than asking the vault.

use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use reqwest::Method;
use serde_json::{Value, json};
use vrm_vault::crypto::VaultKeys;
use vrm_vault::secret::Secret;
use vrm_vault::service::{index_key, open_offline};
use vrm_vault::store::Tree;

use crate::kit::brand::{
    assert_accepted, assert_refused, b64, brand_call, invite, jcs_hash, owner_call, status_json,
    unb64,
};
use crate::kit::disk::{contains_bytes, encodings_of, files_below, residue};
use crate::kit::grant::{
    EMAIL, NAME, PHONE, assert_invalid_token, grant_token, put_record, read_all, read_ok,
    record_value, wall_now,
};
use crate::kit::intent::{
    LOOPBACK, Receiver, Subscriber, accept_sharing, assert_error, categories, eventually,
    intent_body, intent_id, offer_body, publish_pdc_intent, signature_verifies,
};
use crate::kit::owner::PASSPHRASE;
use crate::kit::restore::{restore, restore_on};
use crate::support::{TestApp, cli};

/// The phrase the owner types to confirm deleting everything.
const CONFIRM: &str = "delete everything";
/// The CloudEvents type of the erasure request brands receive.
const ERASURE: &str = "vrm.erasure.requested.v1";
/// The shipped schema of the export.
const SCHEMA: &str = include_str!("../../policies/export.schema.json");
/// The format 1 fixture, made by commit e3258a2: two records, one terms version, one invitation
/// (note "bakery") and eight audit entries.
const FIXTURE_V1: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vault/fixtures/backup-v1.vrmbackup"
);
const FIXTURE_V1_RECOVERY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vault/fixtures/backup-v1.recovery-key"
);
const FIXTURE_V1_PASSPHRASE: &str = "fixture passphrase for backups v1";
/// The sections of an export that a restore must give back unchanged (the audit log grows).
const SECTIONS: [&str; 9] = [
    "records",
    "terms",
    "invitations",
    "brands",
    "agreements",
    "grants",
    "intents",
    "offers",
    "subscriptions",
];
/// The files a vault keeps in its data directory, and the marker of an unfinished deletion.
const VAULT_FILES: [&str; 4] = ["keys.json", "store.keys", "store", "ERASING"];

// ---------------------------------------------------------------------------------------------
// A vault with one of everything
// ---------------------------------------------------------------------------------------------

/// A running vault holding every kind of object: three records, two terms versions, an unused
/// invitation, two brands with agreements (one subscribed with a webhook, one without), an
/// intent, an offer the owner accepted with a grant the brand then used, and the audit log of
/// all of it. The data directory is `root/data`, so that files the CLI needs (passphrases,
/// backups) live beside it rather than in it.
struct Full {
    root: tempfile::TempDir,
    app: TestApp,
    owner: String,
    recovery_key: String,
    /// Subscribed to `food` with a webhook; made the offer and used the grant.
    bistro: Subscriber,
    bistro_agreement: String,
    webhook_secret: String,
    receiver: Receiver,
    /// Onboarded, no subscription.
    shop: Subscriber,
    intent: String,
    offer: String,
    grant: String,
}

impl Full {
    async fn start() -> Full {
        let root = tempfile::tempdir().unwrap();
        let app = TestApp::start_with(&root.path().join("data"), &[LOOPBACK]);
        let (owner, recovery_key) = app.setup().await;
        Self::fill(root, app, owner, recovery_key).await
    }

    async fn fill(
        root: tempfile::TempDir,
        app: TestApp,
        owner: String,
        recovery_key: String,
    ) -> Full {
        for (path, value) in [
            ("contact.email", json!(EMAIL)),
            ("contact.phone", json!(PHONE)),
            ("profile.name", json!(NAME)),
        ] {
            put_record(&app, &owner, path, value).await;
        }
        // A second terms version, so that the export carries the history.
        publish_pdc_intent(&app, &owner).await;
        invite(&app, &owner, json!({ "note": "bakery" })).await;

        let receiver = Receiver::start(&[]).await;
        let bistro = Subscriber::onboard(&app, &owner, "Bistro").await;
        let subscription = bistro
            .subscribe_ok(
                &app,
                &json!({ "categories": ["food"], "webhook_url": receiver.url }),
            )
            .await;
        let webhook_secret = subscription["webhook_secret"].as_str().unwrap().to_owned();
        let bistro_agreement = agreement_of(&app, &owner, &bistro).await;
        let shop = Subscriber::onboard(&app, &owner, "Corner Shop").await;

        let now = wall_now();
        let intent = intent_id(&app, &owner, intent_body("food.lunch", now)).await;
        let offer = bistro
            .offer_ok(&app, &intent, &offer_body(now, &["contact.phone"]))
            .await;
        let accepted = accept_sharing(&app, &owner, &offer).await;
        let grant = accepted["grant_id"].as_str().unwrap().to_owned();
        // The brand uses its grant once, so the grant's use count is part of what is exported.
        let token = grant_token(&app, &bistro.brand, &grant).await;
        let data = read_ok(&app, &token, "the shared phone number").await;
        assert_eq!(data["fields"], json!({ "contact.phone": PHONE }), "{data}");

        // Let the webhook deliveries of the bistro's events finish, so that nothing changes in
        // the vault behind the test's back.
        let events = bistro.events(&app).await.len();
        assert!(events >= 2, "the bistro has {events} events");
        receiver.wait_for(events, StdDuration::from_secs(20)).await;

        Full {
            root,
            app,
            owner,
            recovery_key,
            bistro,
            bistro_agreement,
            webhook_secret,
            receiver,
            shop,
            intent,
            offer,
            grant,
        }
    }

    fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// Writes a file beside the data directory.
    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.root.path().join(name);
        std::fs::write(&path, format!("{contents}\n")).unwrap();
        path
    }
}

/// The id of the brand's current agreement, as the owner sees it.
async fn agreement_of(app: &TestApp, owner: &str, brand: &Subscriber) -> String {
    let (status, view) = owner_call(
        app,
        owner,
        Method::GET,
        &format!("/api/v1/brands/{}", brand.brand.client_id),
        None,
    )
    .await;
    assert_eq!(status, 200, "{view}");
    view["agreement"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no agreement in {view}"))
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Export, schema and audit chain
// ---------------------------------------------------------------------------------------------

/// `GET /api/v1/export`, checking it is served as a dated JSON attachment.
async fn export(app: &TestApp, owner: &str) -> Value {
    let res = app.get(owner, "/api/v1/export").await;
    assert_eq!(res.status(), 200);
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert!(
        header("content-type").starts_with("application/json"),
        "{}",
        header("content-type")
    );
    let disposition = header("content-disposition");
    assert!(
        disposition.starts_with("attachment; filename=\"vrm-vault-export-20")
            && disposition.ends_with(".json\""),
        "{disposition}"
    );
    serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

/// Every way `export` breaks the schema, as `pointer: message` lines.
fn schema_errors(export: &Value) -> Vec<String> {
    validator()
        .iter_errors(export)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn assert_valid(export: &Value) {
    let errors = schema_errors(export);
    assert!(
        errors.is_empty(),
        "the export breaks its schema: {errors:#?}"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An audit entry's members in the order the hash is computed over, with `hash` empty.
#[derive(serde::Serialize)]
struct Unhashed<'a> {
    seq: &'a Value,
    at: &'a Value,
    actor: &'a Value,
    action: &'a Value,
    target: &'a Value,
    detail: &'a Value,
    prev_hash: &'a Value,
    hash: &'static str,
}

/// The hash an exported audit entry should have, as the schema documents it: SHA-256 (hex) of
/// the compact JSON of the entry with its members in struct order, `detail`'s keys sorted
/// (serde_json's map is sorted), and `hash` empty.
fn entry_hash(entry: &Value) -> String {
    let unhashed = Unhashed {
        seq: &entry["seq"],
        at: &entry["at"],
        actor: &entry["actor"],
        action: &entry["action"],
        target: &entry["target"],
        detail: &entry["detail"],
        prev_hash: &entry["prev_hash"],
        hash: "",
    };
    let bytes = serde_json::to_vec(&unhashed).unwrap();
    hex(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref())
}

/// Verifies an export's audit chain from its JSON alone: numbering, each entry's hash, each
/// link, and the head stored apart.
fn assert_chain(export: &Value) {
    let entries = export["audit"].as_array().unwrap();
    assert!(!entries.is_empty(), "no audit entries");
    let mut prev = "0".repeat(64);
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry["seq"], json!(i + 1), "{entry}");
        assert_eq!(
            entry["prev_hash"],
            json!(prev),
            "entry {} is not linked",
            i + 1
        );
        assert_eq!(
            entry["hash"],
            json!(entry_hash(entry)),
            "entry {} does not match its hash",
            i + 1
        );
        prev = entry["hash"].as_str().unwrap().to_owned();
    }
    let last = entries.last().unwrap();
    assert_eq!(
        export["audit_head"],
        json!({ "seq": last["seq"], "hash": last["hash"] }),
        "the head does not match the last entry"
    );
}

fn actions(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

/// The objects of one section that belong to a brand.
fn of_brand<'a>(export: &'a Value, section: &str, client_id: &str) -> Vec<&'a Value> {
    export[section]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["client_id"] == client_id)
        .collect()
}

/// Asserts a vault restored from a backup exports what it exported when the backup was made:
/// every section identical, the audit log of the backup as the start of the new log (the
/// `vault.backed_up` entry written after the copy is not in it), then the restore.
fn assert_same_vault(before: &Value, after: &Value) {
    // A restored vault holds its brands until the person resumes them; otherwise the same.
    let after = &without_restore_hold(after);
    for section in SECTIONS {
        assert_eq!(before[section], after[section], "{section} differ");
    }
    assert_eq!(before["format"], after["format"]);
    let before_audit = before["audit"].as_array().unwrap();
    let after_audit = after["audit"].as_array().unwrap();
    assert!(
        after_audit.len() > before_audit.len()
            && after_audit[..before_audit.len()] == before_audit[..],
        "the restored log does not start with the exported one: {:?} then {:?}",
        actions(before_audit),
        actions(after_audit)
    );
    let added = actions(&after_audit[before_audit.len()..]);
    assert!(added.contains(&"vault.restored"), "{added:?}");
    assert!(!added.contains(&"vault.backed_up"), "{added:?}");
    assert!(!added.contains(&"vault.erasing"), "{added:?}");
    assert_eq!(added.last(), Some(&"vault.exported"), "{added:?}");
    assert_valid(after);
    assert_chain(after);
}

/// The owner resumes a brand the restore held.
async fn resume(app: &TestApp, owner: &str, client_id: &str) {
    let (status, body) = crate::kit::brand::owner_call(
        app,
        owner,
        reqwest::Method::POST,
        &format!("/api/v1/brands/{client_id}/resume"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "active", "{body}");
    assert_eq!(body["held_after_restore"], false, "{body}");
}

/// `after` with each brand the restore held (suspended, `held_after_restore`) put back as it
/// was before: asserts that the hold is there, and lets the rest be compared as it was.
fn without_restore_hold(after: &Value) -> Value {
    let mut after = after.clone();
    for brand in after["brands"].as_array_mut().into_iter().flatten() {
        let record = if brand.get("value").is_some() {
            &mut brand["value"]
        } else {
            brand
        };
        assert_eq!(
            record["held_after_restore"], true,
            "a restored brand is held: {record}"
        );
        assert_eq!(record["status"], "suspended", "{record}");
        record["status"] = json!("active");
        record.as_object_mut().unwrap().remove("held_after_restore");
    }
    after
}

// ---------------------------------------------------------------------------------------------
// Backup, restore, delete
// ---------------------------------------------------------------------------------------------

/// `GET /api/v1/backup`: the bytes and the entry count it announces.
async fn backup(app: &TestApp, owner: &str) -> (Vec<u8>, u64) {
    let res = app.get(owner, "/api/v1/backup").await;
    assert_eq!(res.status(), 200);
    let header = |name: &str| {
        res.headers()
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header("content-type"), "application/octet-stream");
    let disposition = header("content-disposition");
    assert!(
        disposition.starts_with("attachment; filename=\"vrm-vault-20")
            && disposition.ends_with(".vrmbackup\""),
        "{disposition}"
    );
    let entries: u64 = header("vrm-backup-entries").parse().unwrap();
    let bytes = res.bytes().await.unwrap().to_vec();
    assert!(bytes.starts_with(b"vrm-vault backup\n"), "not a backup");
    assert_eq!(bytes[17..21], 2u32.to_be_bytes(), "not format 2");
    (bytes, entries)
}

/// Restores expecting 201; returns the owner's new session token.
async fn restore_ok(app: &TestApp, backup: &[u8], fields: &[(&str, &str)], entries: u64) -> String {
    let (status, body) = restore(app, backup, fields).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["backup"]["entries"], entries, "{body}");
    assert!(body["csrf_token"].is_string(), "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// `DELETE /api/v1/vault`: status, `Set-Cookie` and body.
async fn delete_vault(
    app: &TestApp,
    owner: &str,
    passphrase: &str,
    confirm: &str,
) -> (u16, Option<String>, Value) {
    let res = app
        .client
        .delete(app.url("/api/v1/vault"))
        .bearer_auth(owner)
        .json(&json!({ "passphrase": passphrase, "confirm": confirm }))
        .send()
        .await
        .unwrap();
    let cookie = res
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = status_json(res).await;
    (status, cookie, body)
}

/// Deletes everything, expecting the signed receipt.
async fn delete_everything(app: &TestApp, owner: &str, passphrase: &str) -> Value {
    let (status, _, body) = delete_vault(app, owner, passphrase, CONFIRM).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// `GET /api/v1/status`'s `state`.
async fn state(app: &TestApp) -> String {
    let (status, body) = status_json(
        app.client
            .get(app.url("/api/v1/status"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["state"].as_str().unwrap().to_owned()
}

/// The names in a directory (none when it does not exist).
fn names_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
        Err(e) => panic!("{}: {e}", dir.display()),
    }
}

fn assert_empty_dir(dir: &Path, why: &str) {
    let names = names_in(dir);
    assert!(names.is_empty(), "{why}: {} holds {names:?}", dir.display());
}

/// Asserts the API is in setup mode: status `setup`, and the owner's old token gets 503
/// `setup_required` on a records call.
async fn assert_setup_mode(app: &TestApp, owner: &str, why: &str) {
    assert_eq!(state(app).await, "setup", "{why}");
    let (status, body) = status_json(app.get(owner, "/api/v1/records").await).await;
    assert_error(status, &body, 503, "setup_required", why);
}

/// Whether a detached ES256 JWS (`header..signature`) signs the RFC 8785 form of `payload`
/// with the public key `jwk`, with this `typ`.
fn detached_jws_verifies(jws: &str, payload: &Value, jwk: &Value, typ: &str) -> bool {
    let parts: Vec<&str> = jws.split('.').collect();
    assert_eq!(parts.len(), 3, "{jws}");
    assert_eq!(parts[1], "", "the payload is not detached: {jws}");
    let header: Value = serde_json::from_slice(&unb64(parts[0])).unwrap();
    assert_eq!(
        (&header["alg"], &header["typ"]),
        (&json!("ES256"), &json!(typ)),
        "{header}"
    );
    let jwk: Jwk = serde_json::from_value(jwk.clone()).unwrap();
    let key = DecodingKey::from_jwk(&jwk).unwrap();
    let canonical = serde_json_canonicalizer::to_vec(payload).unwrap();
    let message = format!("{}.{}", parts[0], b64(&canonical));
    jsonwebtoken::crypto::verify(parts[2], message.as_bytes(), &key, Algorithm::ES256)
        .unwrap_or(false)
}

/// Checks an erasure receipt against the vault it came from: counts, brands and who was told,
/// and its signature (and that a changed receipt no longer verifies).
fn assert_erasure_receipt(full: &Full, body: &Value) {
    let receipt = &body["receipt"];
    assert_eq!(receipt["type"], "vrm-vault/erasure-receipt", "{receipt}");
    assert!(
        receipt["vault_id"].as_str().is_some_and(|v| !v.is_empty()),
        "{receipt}"
    );
    let deleted = &receipt["deleted"];
    for (what, count) in [
        ("records", 3),
        ("terms_versions", 2),
        ("brands", 2),
        ("agreements", 2),
        ("grants", 1),
        ("intents", 1),
        ("offers", 1),
    ] {
        assert_eq!(deleted[what], count, "{what}: {receipt}");
    }
    assert!(deleted["audit_entries"].as_u64().unwrap() > 10, "{receipt}");
    assert_eq!(receipt["problems"], json!([]), "{receipt}");
    let brands = receipt["brands"].as_array().unwrap();
    assert_eq!(brands.len(), 2, "{receipt}");
    let told = |client_id: &str| {
        brands
            .iter()
            .find(|b| b["client_id"] == client_id)
            .unwrap_or_else(|| panic!("{client_id} is not in {receipt}"))
            .clone()
    };
    let bistro = told(&full.bistro.brand.client_id);
    assert_eq!(
        (
            &bistro["client_name"],
            &bistro["pseudonym"],
            &bistro["told"]
        ),
        (&json!("Bistro"), &json!(full.bistro.sub()), &json!(true)),
        "{bistro}"
    );
    let shop = told(&full.shop.brand.client_id);
    assert_eq!(
        (&shop["client_name"], &shop["pseudonym"], &shop["told"]),
        (
            &json!("Corner Shop"),
            &json!(full.shop.sub()),
            &json!(false)
        ),
        "{shop}"
    );
    let signature = body["signature"].as_str().unwrap();
    let typ = "vrm-erasure-receipt+jws";
    assert!(detached_jws_verifies(signature, receipt, &body["jwk"], typ));
    let mut forged = receipt.clone();
    forged["deleted"]["records"] = json!(2);
    assert!(!detached_jws_verifies(
        signature,
        &forged,
        &body["jwk"],
        typ
    ));
}

/// The erasure request the bistro's webhook received: its signature verified with the secret
/// the bistro got when it subscribed, and its content.
async fn assert_bistro_told(full: &Full) {
    let request = eventually(StdDuration::from_secs(10), || async {
        full.receiver
            .received()
            .into_iter()
            .find(|r| r.json()["type"] == ERASURE)
    })
    .await
    .unwrap_or_else(|| panic!("the bistro's webhook got no {ERASURE}"));
    assert_eq!(request.method, "POST");
    assert!(
        signature_verifies(&full.webhook_secret, &request),
        "the erasure request's signature does not verify: {request:?}"
    );
    let event = request.json();
    assert_eq!(event["specversion"], "1.0", "{event}");
    assert_eq!(event["subject"], full.bistro.sub(), "{event}");
    assert_eq!(event["data"]["pseudonym"], full.bistro.sub(), "{event}");
    assert_eq!(
        event["data"]["agreement_id"], full.bistro_agreement,
        "{event}"
    );
    assert!(event["data"]["requested_at"].is_string(), "{event}");
    assert!(event["data"]["request"].is_string(), "{event}");
}

/// Stops the server as [`TestApp::stop`] does (SIGTERM, then waits for a clean exit), keeping
/// the rest of the fixture it belongs to.
fn stop_in_place(app: &mut TestApp) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &app.child.id().to_string()])
        .status();
    let status = app.child.wait().unwrap();
    assert!(status.success(), "server exited with {status}");
}

/// Runs the CLI off the async runtime, so a webhook receiver in this test can answer it.
async fn cli_async(args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&args)
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The export
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_export_holds_every_kind_of_object_and_validates_against_its_schema() {
    let full = Full::start().await;
    let (app, owner) = (&full.app, full.owner.as_str());
    let export = export(app, owner).await;
    assert_valid(&export);
    assert_eq!(
        (&export["format"], &export["format_version"]),
        (&json!("vrm-vault-export"), &json!(1))
    );

    let records: Vec<(&str, &Value)> = export["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["path"].as_str().unwrap(), &r["value"]))
        .collect();
    assert_eq!(records.len(), 3, "{records:?}");
    for (path, value) in [
        ("contact.email", EMAIL),
        ("contact.phone", PHONE),
        ("profile.name", NAME),
    ] {
        assert!(
            records.contains(&(path, &json!(value))),
            "{path}: {records:?}"
        );
    }

    // The terms with their history; each hash is recomputed from its document.
    let terms = export["terms"].as_array().unwrap();
    assert_eq!(terms.len(), 2, "{terms:?}");
    for (version, basis) in [(1, "SD-BASE"), (2, "PDC-INTENT")] {
        let found = terms
            .iter()
            .find(|t| t["version"] == version)
            .unwrap_or_else(|| panic!("no terms version {version}"));
        assert_eq!(found["basis"], basis);
        assert_eq!(
            found["hash"],
            json!(jcs_hash(&found["document"])),
            "{found}"
        );
    }

    // Invitations: the two the brands used and the unused one, without their token hashes.
    let invitations = export["invitations"].as_array().unwrap();
    assert_eq!(invitations.len(), 3, "{invitations:?}");
    let bakery: Vec<_> = invitations
        .iter()
        .filter(|i| i["note"] == "bakery")
        .collect();
    assert_eq!(bakery.len(), 1, "{invitations:?}");
    assert_eq!(bakery[0]["uses"], 0);

    let brands = export["brands"].as_array().unwrap();
    assert_eq!(brands.len(), 2, "{brands:?}");
    for subscriber in [&full.bistro, &full.shop] {
        let brand = of_brand(&export, "brands", &subscriber.brand.client_id);
        assert_eq!(brand.len(), 1, "{brands:?}");
        assert_eq!(brand[0]["client_name"], subscriber.brand.name);
        assert_eq!(brand[0]["pseudonym"], subscriber.sub());
    }

    // Each receipt is the very string the brand is served.
    let agreements = export["agreements"].as_array().unwrap();
    assert_eq!(agreements.len(), 2, "{agreements:?}");
    for subscriber in [&full.bistro, &full.shop] {
        let agreement = of_brand(&export, "agreements", &subscriber.brand.client_id);
        assert_eq!(agreement.len(), 1, "{agreements:?}");
        assert_eq!(agreement[0]["terms_version"], 2);
        let id = agreement[0]["id"].as_str().unwrap();
        let served = app
            .client
            .get(app.url(&format!("/brand/v1/agreements/{id}")))
            .bearer_auth(&subscriber.token)
            .send()
            .await
            .unwrap();
        assert_eq!(served.status(), 200);
        let served = served.text().await.unwrap();
        assert_eq!(
            agreement[0]["receipt"].as_str().unwrap(),
            served,
            "the exported receipt is not the served one"
        );
        // The owner downloads the same bytes from the Brands screen.
        let owned = app
            .client
            .get(app.url(&format!("/api/v1/agreements/{id}/receipt")))
            .bearer_auth(owner)
            .send()
            .await
            .unwrap();
        assert_eq!(owned.status(), 200);
        assert_eq!(
            owned.text().await.unwrap(),
            served,
            "the owner's receipt differs"
        );
    }

    let grants = export["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(
        (
            &grants[0]["id"],
            &grants[0]["client_id"],
            &grants[0]["uses"]
        ),
        (
            &json!(full.grant),
            &json!(full.bistro.brand.client_id),
            &json!(1)
        ),
        "{grants:?}"
    );
    assert!(grants[0]["last_used_at"].is_string(), "{grants:?}");

    let intents = export["intents"].as_array().unwrap();
    assert_eq!(intents.len(), 1, "{intents:?}");
    assert_eq!(intents[0]["id"], full.intent);
    assert_eq!(intents[0]["intent"]["text"], "lunch nearby for two");
    assert_eq!(intents[0]["offers"], json!([full.offer]));
    let offers = export["offers"].as_array().unwrap();
    assert_eq!(offers.len(), 1, "{offers:?}");
    assert_eq!(
        (
            &offers[0]["id"],
            &offers[0]["status"],
            &offers[0]["grant_id"]
        ),
        (&json!(full.offer), &json!("accepted"), &json!(full.grant)),
        "{offers:?}"
    );

    let subscriptions = export["subscriptions"].as_array().unwrap();
    assert_eq!(subscriptions.len(), 1, "{subscriptions:?}");
    assert_eq!(subscriptions[0]["client_id"], full.bistro.brand.client_id);
    assert_eq!(
        subscriptions[0]["subscription"]["categories"],
        json!(["food"])
    );

    // The secrets of the vault's plumbing are not in it, under any name.
    let text = export.to_string();
    assert!(
        !text.contains(&full.webhook_secret),
        "the webhook secret is exported"
    );
    let crate::kit::brand::ClientAuth::Secret(client_secret) = &full.bistro.brand.auth else {
        panic!("the bistro has no client secret")
    };
    assert!(
        !text.contains(client_secret.as_str()),
        "a client secret is exported"
    );

    // The chain verifies from the JSON alone and ends with the export itself.
    assert_chain(&export);
    let audit = export["audit"].as_array().unwrap();
    assert_eq!(audit.last().unwrap()["action"], "vault.exported");
    for action in [
        "record.put",
        "terms.published",
        "brand.registered",
        "offer.accepted",
    ] {
        assert!(
            actions(audit).contains(&action),
            "no {action} in {:?}",
            actions(audit)
        );
    }

    // The schema is served as shipped, and the checks above can fail: a brand carrying its
    // secret's hash, a changed audit entry and a cut log are all caught.
    let res = app
        .client
        .get(app.url("/api/v1/export/schema"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), SCHEMA);
    let mut leaky = export.clone();
    leaky["brands"][0]["secret_hash"] = json!("abc");
    assert!(
        !schema_errors(&leaky).is_empty(),
        "the schema let a secret hash through"
    );
    let mut edited = export.clone();
    edited["audit"][1]["target"] = json!("someone.else");
    assert!(std::panic::catch_unwind(|| assert_chain(&edited)).is_err());
    let mut cut = export.clone();
    cut["audit"].as_array_mut().unwrap().pop();
    assert!(std::panic::catch_unwind(|| assert_chain(&cut)).is_err());
}

// ---------------------------------------------------------------------------------------------
// Backup and restore
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_restored_vault_holds_every_brand_until_the_person_resumes_it() {
    let full = Full::start().await;
    let app = &full.app;
    let old_token = full.bistro.brand.access_token(app).await;
    let (backup, entries) = backup(app, &full.owner).await;
    // Deleting everything told the brands their access ended; the backup predates that.
    delete_everything(app, &full.owner, PASSPHRASE).await;
    let owner = restore_ok(app, &backup, &[("passphrase", PASSPHRASE)], entries).await;

    let brands: Value = app.get_json(&owner, "/api/v1/brands").await;
    let brands = brands["brands"].as_array().unwrap();
    assert_eq!(brands.len(), 2, "{brands:?}");
    for brand in brands {
        assert_eq!(
            (&brand["status"], &brand["held_after_restore"]),
            (&json!("suspended"), &json!(true)),
            "{brand}"
        );
    }
    // The brand's token, its client credentials and its grant are all refused, saying why.
    let res = crate::kit::brand::brand_call(app, &old_token).await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("restored their vault from a backup"),
        "{body}"
    );
    let (status, body) = full.bistro.brand.token_response(app, &[]).await;
    assert_ne!(status, 200, "{body}");
    let (status, body) = full
        .bistro
        .brand
        .token_response(
            app,
            &[(
                "authorization_details",
                &crate::kit::grant::grant_details(&full.grant),
            )],
        )
        .await;
    assert_ne!(status, 200, "no grant token while held: {body}");
    let held = crate::kit::grant::audit_entries(app, &owner, "brands.held_after_restore").await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(
        held[0]["detail"]["brands"].as_array().unwrap().len(),
        2,
        "{held:?}"
    );

    // Resumed by the person, one brand works again; the other stays held.
    resume(app, &owner, &full.bistro.brand.client_id).await;
    let token = full.bistro.brand.access_token(app).await;
    assert_eq!(
        crate::kit::brand::brand_call(app, &token).await.status(),
        200
    );
    let shop: Value = app
        .get_json(
            &owner,
            &format!("/api/v1/brands/{}", full.shop.brand.client_id),
        )
        .await;
    assert_eq!(shop["held_after_restore"], true, "{shop}");
    // Unlocking again later does not hold the resumed brand a second time.
    let (status, _) = crate::kit::brand::owner_call(
        app,
        &owner,
        reqwest::Method::POST,
        "/api/v1/vault/lock",
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(app.login(PASSPHRASE).await.status(), 201);
    assert_eq!(
        crate::kit::brand::brand_call(app, &token).await.status(),
        200
    );
}

#[tokio::test]
async fn a_backup_restored_over_the_api_after_deleting_everything_is_the_same_vault() {
    let full = Full::start().await;
    let app = &full.app;
    let before = export(app, &full.owner).await;
    let (backup, entries) = backup(app, &full.owner).await;
    assert!(entries > 20, "{entries} entries");

    // With the passphrase.
    delete_everything(app, &full.owner, PASSPHRASE).await;
    assert_empty_dir(&full.data(), "after deleting everything");
    let owner = restore_ok(app, &backup, &[("passphrase", PASSPHRASE)], entries).await;
    assert_eq!(state(app).await, "unsealed");
    assert_same_vault(&before, &export(app, &owner).await);
    // The brands are back too, but held: the bistro's credentials work again only once the
    // person resumed it.
    let (status, refused) = full.bistro.brand.token_response(app, &[]).await;
    assert_ne!(status, 200, "a held brand gets no token: {refused}");
    resume(app, &owner, &full.bistro.brand.client_id).await;
    full.bistro.brand.access_token(app).await;
    let restored = crate::kit::grant::audit_entries(app, &owner, "vault.restored").await;
    assert_eq!(restored.len(), 1, "{restored:?}");
    assert_eq!(
        restored[0]["detail"],
        json!({ "backup_format_version": 2, "entries": entries }),
        "{restored:?}"
    );

    // With the recovery key and a new passphrase.
    delete_everything(app, &owner, PASSPHRASE).await;
    assert_empty_dir(&full.data(), "after deleting everything again");
    let new_passphrase = "a brand new passphrase after the restore";
    let owner = restore_ok(
        app,
        &backup,
        &[
            ("recovery_key", &full.recovery_key),
            ("new_passphrase", new_passphrase),
        ],
        entries,
    )
    .await;
    assert_same_vault(&before, &export(app, &owner).await);
    assert_eq!(app.login(PASSPHRASE).await.status(), 401);
    assert_eq!(app.login(new_passphrase).await.status(), 201);
}

#[tokio::test]
async fn a_backup_restored_with_the_cli_after_deleting_everything_is_the_same_vault() {
    let mut full = Full::start().await;
    let before = export(&full.app, &full.owner).await;
    let data = full.data();
    let passphrase = full.file("passphrase.txt", PASSPHRASE);
    let new_passphrase = "another passphrase, set at the restore";
    let new_passphrase_file = full.file("new-passphrase.txt", new_passphrase);
    let recovery = full.file("recovery.txt", &full.recovery_key);
    let backup_file = full.root.path().join("vault.vrmbackup");
    stop_in_place(&mut full.app);

    let offline = |command: &str, extra: &[&str]| {
        let mut list = vec![command, "--data-dir", path_str(&data)];
        list.extend_from_slice(extra);
        args(&list)
    };
    let (ok, _, err) = cli_async(offline(
        "backup",
        &[
            "--passphrase-file",
            path_str(&passphrase),
            "--out",
            path_str(&backup_file),
        ],
    ))
    .await;
    assert!(ok, "{err}");
    let confirm = [
        "--passphrase-file",
        path_str(&passphrase),
        "--confirm",
        CONFIRM,
    ];
    let (ok, _, err) = cli_async(offline("delete-everything", &confirm)).await;
    assert!(ok, "{err}");
    assert_empty_dir(&data, "after delete-everything");

    // With the passphrase.
    let (ok, _, err) = cli_async(args(&[
        "restore",
        "--data-dir",
        path_str(&data),
        "--backup",
        path_str(&backup_file),
        "--passphrase-file",
        path_str(&passphrase),
    ]))
    .await;
    assert!(ok, "{err}");
    let app = TestApp::start(&data);
    assert_eq!(state(&app).await, "sealed");
    let owner = app.token().await;
    assert_same_vault(&before, &export(&app, &owner).await);
    app.stop();

    // With the recovery key and a new passphrase.
    let (ok, _, err) = cli_async(offline("delete-everything", &confirm)).await;
    assert!(ok, "{err}");
    assert_empty_dir(&data, "after delete-everything again");
    let (ok, _, err) = cli_async(args(&[
        "restore",
        "--data-dir",
        path_str(&data),
        "--backup",
        path_str(&backup_file),
        "--recovery-key-file",
        path_str(&recovery),
        "--new-passphrase-file",
        path_str(&new_passphrase_file),
    ]))
    .await;
    assert!(ok, "{err}");
    let app = TestApp::start(&data);
    assert_eq!(app.login(PASSPHRASE).await.status(), 401);
    let res = app.login(new_passphrase).await;
    assert_eq!(res.status(), 201);
    let owner = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_same_vault(&before, &export(&app, &owner).await);
}

/// Checks a vault restored from the format 1 fixture: its records and values, its terms and
/// invitation, an audit chain that verifies, and an export that validates.
async fn assert_fixture_vault(app: &TestApp, owner: &str) {
    assert_eq!(
        record_value(app, owner, "contact.email").await,
        json!("ada@example.org")
    );
    assert_eq!(
        record_value(app, owner, "profile.name").await,
        json!({ "given": "Ada", "family": "Lovelace" })
    );
    let verified = app.get_json(owner, "/api/v1/audit/verify").await;
    assert_eq!(verified["ok"], true, "{verified}");
    let export = export(app, owner).await;
    assert_valid(&export);
    assert_chain(&export);
    let categories: Vec<(&Value, &Value)> = export["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (&r["path"], &r["category"]))
        .collect();
    assert_eq!(categories.len(), 2, "{categories:?}");
    assert!(categories.contains(&(&json!("contact.email"), &json!("pd:EmailAddress"))));
    assert!(categories.contains(&(&json!("profile.name"), &json!("pd:Name"))));
    assert_eq!(export["terms"].as_array().unwrap().len(), 1);
    let invitations = export["invitations"].as_array().unwrap();
    assert_eq!(invitations.len(), 1, "{invitations:?}");
    assert_eq!(invitations[0]["note"], "bakery");
    // The fixture's eight entries come first, unchanged: the chain above links through them.
    let audit = export["audit"].as_array().unwrap();
    assert!(audit.len() > 8, "{:?}", actions(audit));
    assert!(
        !actions(&audit[..8]).contains(&"vault.restored"),
        "{:?}",
        actions(audit)
    );
    assert!(
        actions(&audit[8..]).contains(&"vault.restored"),
        "{:?}",
        actions(audit)
    );
}

#[tokio::test]
async fn a_format_1_backup_still_restores() {
    let backup = std::fs::read(FIXTURE_V1).unwrap();
    assert_eq!(
        backup[17..21],
        1u32.to_be_bytes(),
        "the fixture is not format 1"
    );

    // Over the API, with the passphrase.
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());
    assert_eq!(state(&app).await, "setup");
    let (status, body) = restore(&app, &backup, &[("passphrase", FIXTURE_V1_PASSPHRASE)]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["backup"]["format_version"], 1, "{body}");
    let owner = body["token"].as_str().unwrap().to_owned();
    assert_fixture_vault(&app, &owner).await;

    // With the CLI, with the recovery key; then the offline audit check and export.
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let new_passphrase = "the fixture's new passphrase";
    let new_passphrase_file = root.path().join("new.txt");
    std::fs::write(&new_passphrase_file, format!("{new_passphrase}\n")).unwrap();
    let (ok, _, err) = cli(&[
        "restore",
        "--data-dir",
        path_str(&data),
        "--backup",
        FIXTURE_V1,
        "--recovery-key-file",
        FIXTURE_V1_RECOVERY,
        "--new-passphrase-file",
        path_str(&new_passphrase_file),
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = cli(&[
        "audit",
        "verify",
        "--data-dir",
        path_str(&data),
        "--passphrase-file",
        path_str(&new_passphrase_file),
    ]);
    assert!(ok, "{out}{err}");
    let export_file = root.path().join("export.json");
    let (ok, _, err) = cli(&[
        "export",
        "--data-dir",
        path_str(&data),
        "--passphrase-file",
        path_str(&new_passphrase_file),
        "--out",
        path_str(&export_file),
    ]);
    assert!(ok, "{err}");
    let export: Value = serde_json::from_slice(&std::fs::read(&export_file).unwrap()).unwrap();
    assert_valid(&export);
    assert_chain(&export);
    let email: Vec<_> = export["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "contact.email")
        .collect();
    assert_eq!(email[0]["value"], "ada@example.org", "{email:?}");
    // The served vault, started on what the CLI restored, reads the same.
    let app = TestApp::start(&data);
    let res = app.login(new_passphrase).await;
    assert_eq!(res.status(), 201);
    let owner = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_fixture_vault(&app, &owner).await;
}

#[tokio::test]
async fn a_refused_restore_leaves_the_vault_in_setup_mode_and_the_data_dir_empty() {
    // A real backup to spoil.
    let source_dir = tempfile::tempdir().unwrap();
    let source = TestApp::start(source_dir.path());
    let (source_owner, _) = source.setup().await;
    for i in 0..40 {
        put_record(
            &source,
            &source_owner,
            &format!("notes.n{i}"),
            json!(format!("note {i}")),
        )
        .await;
    }
    let (good, entries) = backup(&source, &source_owner).await;

    // Into a vault that exists.
    let (status, body) = restore(&source, &good, &[("passphrase", PASSPHRASE)]).await;
    assert_error(status, &body, 409, "conflict", "restoring over a vault");
    assert_eq!(
        record_value(&source, &source_owner, "notes.n3").await,
        json!("note 3")
    );

    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x01;
    let random: Vec<u8> = (0..good.len() / 64)
        .flat_map(|_| {
            ring::rand::generate::<[u8; 64]>(&ring::rand::SystemRandom::new())
                .unwrap()
                .expose()
        })
        .collect();
    let cases: [(&str, Vec<u8>, &str, u16, &str); 4] = [
        (
            "cut short",
            good[..good.len() - 100].to_vec(),
            PASSPHRASE,
            422,
            "invalid_backup",
        ),
        (
            "one byte flipped",
            flipped,
            PASSPHRASE,
            422,
            "invalid_backup",
        ),
        ("random bytes", random, PASSPHRASE, 422, "invalid_backup"),
        (
            "the wrong passphrase",
            good.clone(),
            "not the passphrase at all",
            401,
            "invalid_credentials",
        ),
    ];
    for (why, bytes, passphrase, expected, code) in cases {
        let (status, body) = restore(&app, &bytes, &[("passphrase", passphrase)]).await;
        assert_error(status, &body, expected, code, why);
        assert_eq!(state(&app).await, "setup", "{why}");
        assert_empty_dir(dir.path(), why);
    }
    // Nothing was left half-done: the good backup restores into the same server.
    let owner = restore_ok(&app, &good, &[("passphrase", PASSPHRASE)], entries).await;
    assert_eq!(
        record_value(&app, &owner, "notes.n39").await,
        json!("note 39")
    );
}

#[tokio::test]
async fn a_refused_restore_leaves_the_connection_usable() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());
    let (owner, _) = app.setup().await;
    let upload = vec![0u8; 256 * 1024];
    // One client, as a browser tab has: each refusal is followed by an ordinary request.
    for attempt in 0..5 {
        let (status, body) = restore_on(&app.client, &app, &upload, &[("passphrase", "x")]).await;
        assert_error(status, &body, 409, "conflict", "restoring over a vault");
        let next = app
            .client
            .get(app.url("/api/v1/records"))
            .bearer_auth(&owner)
            .send()
            .await;
        assert!(
            next.as_ref().is_ok_and(|r| r.status() == 200),
            "attempt {attempt}: the request after the refusal failed: {next:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Delete everything
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn deleting_everything_revokes_tells_the_brands_signs_a_receipt_and_leaves_nothing() {
    let full = Full::start().await;
    let (app, owner) = (&full.app, full.owner.as_str());
    let grant_token = grant_token(app, &full.bistro.brand, &full.grant).await;
    assert_accepted(app, &full.bistro.token, "before").await;

    // A wrong phrase or passphrase deletes nothing.
    for (passphrase, confirm, expected, code) in [
        (PASSPHRASE, "delete all", 422, "confirmation_required"),
        (
            "not my passphrase at all",
            CONFIRM,
            401,
            "invalid_credentials",
        ),
    ] {
        let (status, _, body) = delete_vault(app, owner, passphrase, confirm).await;
        assert_error(status, &body, expected, code, confirm);
        assert_eq!(state(app).await, "unsealed");
        assert_eq!(
            record_value(app, owner, "contact.email").await,
            json!(EMAIL)
        );
        assert_accepted(app, &full.bistro.token, "after a refused deletion").await;
        read_ok(app, &grant_token, "after a refused deletion").await;
        assert!(full.data().join("keys.json").exists());
    }

    let (status, cookie, body) = delete_vault(app, owner, PASSPHRASE, CONFIRM).await;
    assert_eq!(status, 200, "{body}");
    let cookie = cookie.expect("no Set-Cookie clearing the session");
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
    assert_erasure_receipt(&full, &body);
    assert_bistro_told(&full).await;

    assert_setup_mode(app, owner, "after deleting everything").await;
    assert_empty_dir(&full.data(), "after deleting everything");
    // There is no vault any more: every brand call is told its token is unknown here (not to
    // retry, as a 503 would say).
    for (token, why) in [(&full.bistro.token, "bistro"), (&full.shop.token, "shop")] {
        let (status, body) = status_json(brand_call(app, token).await).await;
        assert_error(
            status,
            &body,
            401,
            "invalid_token",
            &format!("{why}'s token"),
        );
    }
    let (status, body) = status_json(read_all(app, &grant_token).await).await;
    assert_error(status, &body, 401, "invalid_token", "the grant token");
    // The token endpoint answers in RFC 6749's shape, which OAuth libraries read: the client
    // is unknown.
    let (status, body) = full.bistro.brand.token_response(app, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "a new token: {body}"
    );
    assert!(body["error_description"].is_string(), "{body}");
}

#[tokio::test]
async fn delete_everything_on_the_command_line() {
    let mut full = Full::start().await;
    let data = full.data();
    let passphrase = full.file("passphrase.txt", PASSPHRASE);
    // The server stops; the receiver and the brands of the fixture stay.
    stop_in_place(&mut full.app);

    let command = |confirm: &str| {
        args(&[
            "delete-everything",
            "--data-dir",
            path_str(&data),
            "--passphrase-file",
            path_str(&passphrase),
            "--confirm",
            confirm,
            "--allow-loopback-webhooks",
        ])
    };
    let (ok, out, err) = cli_async(command("delete it all")).await;
    assert!(!ok, "a wrong phrase was accepted: {out}");
    assert!(err.contains(CONFIRM), "{err}");
    for name in ["keys.json", "store.keys", "store"] {
        assert!(
            data.join(name).exists(),
            "{name} is gone after a refused deletion"
        );
    }

    let (ok, out, err) = cli_async(command(CONFIRM)).await;
    assert!(ok, "{err}");
    let body: Value = serde_json::from_str(&out).unwrap();
    assert_erasure_receipt(&full, &body);
    assert_bistro_told(&full).await;
    assert_empty_dir(&data, "after delete-everything");
    let app = TestApp::start(&data);
    assert_eq!(state(&app).await, "setup");
}

// ---------------------------------------------------------------------------------------------
// What is left on disk
// ---------------------------------------------------------------------------------------------

/// The wrapped master keys and salts of a `keys.json`, wherever they sit in it.
fn wrapped_keys_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| wrapped_keys_in(v, out)),
        Value::Object(map) => {
            for (name, member) in map {
                match member {
                    Value::String(s) if name == "wrapped_master_key" || name == "salt" => {
                        out.push(s.clone());
                    }
                    _ => wrapped_keys_in(member, out),
                }
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn deleting_everything_leaves_no_marker_and_no_key_anywhere() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let log = root.path().join("server.log");
    let app = TestApp::start_with_logging_to(&data, &[], &log);
    let (owner, _) = app.setup().await;
    let value_marker = "RESIDUEVALUE-5d1e-Grace-Hopper";
    let field_marker = "zqresiduefield8c4b";
    let intent_marker = "RESIDUEINTENT-a93f-sourdough";
    let brand_marker = "ResidueBrand-77e2";
    for i in 0..30 {
        put_record(
            &app,
            &owner,
            &format!("secrets.{field_marker}{i}"),
            json!(format!("{value_marker} #{i}")),
        )
        .await;
    }
    publish_pdc_intent(&app, &owner).await;
    let brand = Subscriber::onboard(&app, &owner, brand_marker).await;
    let (status, body) = brand.subscribe(&app, &categories(&["food"])).await;
    assert_eq!(status, 200, "{body}");
    let mut intent = intent_body("food.dinner", wall_now());
    intent["text"] = json!(intent_marker);
    intent_id(&app, &owner, intent).await;
    assert_eq!(brand.events(&app).await.len(), 1);

    // The keys as they were: the files, and each wrapped key and salt in keys.json.
    let keys_json = std::fs::read(data.join("keys.json")).unwrap();
    let store_keys = std::fs::read(data.join("store.keys")).unwrap();
    let mut secrets: Vec<(String, Vec<u8>)> = vec![
        ("a record value".into(), value_marker.into()),
        ("a field name".into(), field_marker.into()),
        ("the intent's text".into(), intent_marker.into()),
        ("a brand's name".into(), brand_marker.into()),
        ("keys.json".into(), keys_json.clone()),
        ("store.keys".into(), store_keys.clone()),
    ];
    let mut strings = vec![];
    wrapped_keys_in(&serde_json::from_slice(&keys_json).unwrap(), &mut strings);
    assert!(strings.len() >= 3, "{strings:?}");
    for s in strings {
        secrets.push((format!("{s:?} from keys.json"), s.into_bytes()));
    }
    for (i, chunk) in store_keys.chunks(32).enumerate() {
        if chunk.len() == 32 {
            secrets.push((format!("bytes {}.. of store.keys", i * 32), chunk.to_vec()));
        }
    }
    // The scan finds each piece of key material in the key files before the deletion, so the
    // empty result below means something.
    let key_files = [data.join("keys.json"), data.join("store.keys")];
    let before = residue(&key_files, &secrets[4..]);
    assert_eq!(before.len(), secrets.len() - 4, "{before:#?}");

    delete_everything(&app, &owner, PASSPHRASE).await;
    app.stop();
    assert_empty_dir(&data, "after deleting everything");
    assert!(
        std::fs::metadata(&log).unwrap().len() > 0,
        "the server logged nothing"
    );
    let found = residue(&files_below(root.path()), &secrets);
    assert!(found.is_empty(), "left behind: {found:#?}");
}

/// The full store key (`prefix`: the tree's frozen one-byte prefix in `src/store`) and the sealed
/// bytes of a named item of a stopped vault, checked to open with its keys now, so that failing
/// to open later is the deletion's doing.
fn sealed(data: &Path, tree: Tree, prefix: u8, namespace: &str, name: &str) -> (Vec<u8>, Vec<u8>) {
    let (store, _, master) = open_offline(data, &Secret::new(PASSPHRASE)).unwrap();
    let key = index_key(&VaultKeys::derive(&master).index, namespace, name);
    let bytes = store
        .raw_get(tree, &key)
        .unwrap()
        .unwrap_or_else(|| panic!("no {namespace} {name} in the store"));
    let mut full_key = vec![prefix];
    full_key.extend_from_slice(&key);
    store
        .check_raw(&full_key, &bytes)
        .expect("the stored value opens with the vault's keys");
    (full_key, bytes)
}

/// After a partial deletion, on a stopped vault: the marker is nowhere on disk in any encoding;
/// whether sled still holds the old sealed bytes is printed (it may: sled does not erase); and
/// those bytes no longer open with the vault's keys. Returns the reopened store for more checks.
fn assert_unreadable(
    data: &Path,
    marker: &str,
    full_key: &[u8],
    old: &[u8],
) -> (vrm_vault::store::Store, vrm_vault::crypto::KeyedHash) {
    let found = residue(&files_below(data), &[("the marker".into(), marker.into())]);
    assert!(found.is_empty(), "{found:?}");
    let still_there = files_below(data)
        .iter()
        .any(|f| contains_bytes(&std::fs::read(f).unwrap(), old));
    println!(
        "the old sealed value ({} bytes) is {} in sled's files",
        old.len(),
        if still_there { "still" } else { "no longer" }
    );
    let (store, _, master) = open_offline(data, &Secret::new(PASSPHRASE)).unwrap();
    assert!(
        store.check_raw(full_key, old).is_err(),
        "the deleted value still opens with the vault's keys"
    );
    (store, VaultKeys::derive(&master).index)
}

#[tokio::test]
async fn a_deleted_record_no_longer_opens_with_the_vaults_keys() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());
    let (owner, _) = app.setup().await;
    let marker = "PARTIALRECORD-3b7d-Ada-Byron";
    put_record(&app, &owner, "notes.secret", json!(marker)).await;
    for i in 0..20 {
        put_record(
            &app,
            &owner,
            &format!("notes.other{i}"),
            json!(format!("kept {i}")),
        )
        .await;
    }
    app.stop();
    let (full_key, old) = sealed(dir.path(), Tree::Records, 1, "record", "notes.secret");

    let app = TestApp::start(dir.path());
    let owner = app.token().await;
    let (status, body) = owner_call(
        &app,
        &owner,
        Method::DELETE,
        "/api/v1/records/notes.secret",
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    app.stop();

    let (store, index) = assert_unreadable(dir.path(), marker, &full_key, &old);
    let gone = store.get(Tree::Records, &index_key(&index, "record", "notes.secret"));
    assert!(gone.unwrap().is_none());
    for i in 0..20 {
        let key = index_key(&index, "record", &format!("notes.other{i}"));
        let bytes = store.get(Tree::Records, &key).unwrap().unwrap();
        let record: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(record["value"], format!("kept {i}"));
    }
}

#[tokio::test]
async fn an_erased_intent_no_longer_opens_with_the_vaults_keys() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());
    let (owner, _) = app.setup().await;
    publish_pdc_intent(&app, &owner).await;
    let mut bistro = Subscriber::onboard(&app, &owner, "Bistro").await;
    let (status, body) = bistro.subscribe(&app, &categories(&["food"])).await;
    assert_eq!(status, 200, "{body}");
    let marker = "PARTIALINTENT-c4e1-gluten-free-birthday-cake";
    let now = wall_now();
    let mut erased = intent_body("food.dinner", now);
    erased["text"] = json!(marker);
    let erased = intent_id(&app, &owner, erased).await;
    let kept = intent_id(&app, &owner, intent_body("food.lunch", now)).await;
    let offer = bistro.offer_ok(&app, &erased, &offer_body(now, &[])).await;
    app.stop();
    let (full_key, old) = sealed(dir.path(), Tree::Intents, 12, "intent", &erased);

    let app = TestApp::start(dir.path());
    let owner = app.token().await;
    // Tokens name the issuer, whose port changed with the restart.
    bistro.refresh_token(&app).await;
    bistro.owner = Some(owner.clone());
    let path = format!("/api/v1/intents/{erased}/erase");
    let (status, body) = owner_call(&app, &owner, Method::POST, &path, None).await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = owner_call(
        &app,
        &owner,
        Method::GET,
        &format!("/api/v1/intents/{erased}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = owner_call(&app, &owner, Method::POST, &path, None).await;
    assert_eq!(status, 404, "erasing twice");
    // The brand's stream and offer went with it; the other intent stays.
    let subjects = bistro.subjects(&app, "vrm.intent.created.v1").await;
    assert_eq!(subjects, vec![kept.clone()]);
    assert_eq!(bistro.own_offer(&app, &offer).await.0, 404);
    app.stop();

    let (store, index) = assert_unreadable(dir.path(), marker, &full_key, &old);
    let bytes = store
        .get(Tree::Intents, &index_key(&index, "intent", &kept))
        .unwrap()
        .unwrap();
    let intent: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(intent["intent"]["text"], "lunch nearby for two", "{intent}");
}

#[tokio::test]
async fn an_erased_brand_leaves_nothing_of_its_relationship() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());
    let (owner, _) = app.setup().await;
    put_record(&app, &owner, "contact.phone", json!(PHONE)).await;
    publish_pdc_intent(&app, &owner).await;
    let marker = "PartialBrand-0f9a-Delicatessen";
    let mut gone = Subscriber::onboard(&app, &owner, marker).await;
    let mut stays = Subscriber::onboard(&app, &owner, "Bistro").await;
    for brand in [&gone, &stays] {
        let (status, body) = brand.subscribe(&app, &categories(&["food"])).await;
        assert_eq!(status, 200, "{body}");
    }
    let now = wall_now();
    let intent = intent_id(&app, &owner, intent_body("food.lunch", now)).await;
    let offer = gone
        .offer_ok(&app, &intent, &offer_body(now, &["contact.phone"]))
        .await;
    stays.offer_ok(&app, &intent, &offer_body(now, &[])).await;
    let accepted = accept_sharing(&app, &owner, &offer).await;
    let grant = accepted["grant_id"].as_str().unwrap().to_owned();
    read_ok(
        &app,
        &grant_token(&app, &gone.brand, &grant).await,
        "the grant",
    )
    .await;
    app.stop();
    let client_id = gone.brand.client_id.clone();
    let (full_key, old) = sealed(dir.path(), Tree::Brands, 7, "brand", &client_id);

    let app = TestApp::start(dir.path());
    let owner = app.token().await;
    // Tokens name the issuer, whose port changed with the restart: fresh ones, working.
    gone.refresh_token(&app).await;
    stays.refresh_token(&app).await;
    let grant_token = grant_token(&app, &gone.brand, &grant).await;
    read_ok(&app, &grant_token, "the grant, before").await;
    let (status, body) = owner_call(
        &app,
        &owner,
        Method::POST,
        &format!("/api/v1/brands/{client_id}/erase"),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_refused(&app, &gone.token, "the erased brand's token").await;
    assert_invalid_token(
        read_all(&app, &grant_token).await,
        "the erased brand's grant token",
    )
    .await;
    assert_accepted(&app, &stays.token, "the other brand").await;

    let export = export(&app, &owner).await;
    for section in ["brands", "agreements", "grants", "subscriptions", "offers"] {
        let left = of_brand(&export, section, &client_id);
        assert!(left.is_empty(), "{section} of the erased brand: {left:?}");
    }
    // The other brand keeps all it had (it has no grant).
    for section in ["brands", "agreements", "subscriptions", "offers"] {
        let others = of_brand(&export, section, &stays.brand.client_id);
        assert_eq!(others.len(), 1, "{section} of the other brand: {export}");
    }
    assert_eq!(
        export["intents"][0]["offers"].as_array().unwrap().len(),
        1,
        "{export}"
    );
    for intent in export["intents"].as_array().unwrap() {
        assert!(
            !intent["recipients"]
                .as_array()
                .unwrap()
                .contains(&json!(client_id)),
            "the erased brand is still a recipient: {intent}"
        );
    }
    // The audit log keeps that the brand existed (by design), and nothing of what it held.
    let removed: Vec<_> = export["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "brand.erased")
        .collect();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0]["target"], client_id);
    app.stop();

    let (store, index) = assert_unreadable(dir.path(), marker, &full_key, &old);
    let key = index_key(&index, "brand", &stays.brand.client_id);
    let bytes = store.get(Tree::Brands, &key).unwrap().unwrap();
    let brand: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(brand["client_name"], "Bistro");
}

// ---------------------------------------------------------------------------------------------
// A crash in the middle of deleting everything
// ---------------------------------------------------------------------------------------------

/// The named steps of deleting everything at which `VRM_FAILPOINT` aborts the process. The server
/// honours it only when built with the `failpoints` feature, which the package's dev-dependency
/// on itself turns on in every build that includes the tests.
const FAILPOINTS: [&str; 5] = [
    "erase:revoked",
    "erase:notified",
    "erase:receipt",
    "erase:keys-shredded",
    "erase:store-removed",
];

/// Aborts a deletion of everything at `failpoint`, then starts the server again and checks the
/// deletion was finished: setup mode, no vault file left, the brand's old token refused.
async fn crash_at(failpoint: &'static str) {
    let dir = tempfile::tempdir().unwrap();
    let mut app = TestApp::start_with_env(dir.path(), &[], &[("VRM_FAILPOINT", failpoint)]);
    let (owner, _) = app.setup().await;
    put_record(&app, &owner, "contact.email", json!(EMAIL)).await;
    let brand = Subscriber::onboard(&app, &owner, "Bistro").await;
    assert_accepted(&app, &brand.token, failpoint).await;

    let sent = app
        .client
        .delete(app.url("/api/v1/vault"))
        .bearer_auth(&owner)
        .json(&json!({ "passphrase": PASSPHRASE, "confirm": CONFIRM }))
        .send()
        .await;
    assert!(
        sent.is_err(),
        "{failpoint}: the request got an answer: {sent:?}"
    );
    let status = tokio::task::block_in_place(|| app.child.wait().unwrap());
    assert!(
        !status.success(),
        "{failpoint}: the server exited with {status}"
    );
    drop(app);
    // The crash left the deletion half done: the marker is there, and the keys too unless the
    // process got past destroying them.
    let left = names_in(dir.path());
    assert!(
        left.contains(&"ERASING".to_owned()),
        "{failpoint}: {left:?}"
    );
    let keys_destroyed = ["erase:keys-shredded", "erase:store-removed"].contains(&failpoint);
    assert_eq!(
        left.contains(&"keys.json".to_owned()),
        !keys_destroyed,
        "{failpoint}: {left:?}"
    );

    let app = TestApp::start(dir.path());
    assert_setup_mode(&app, &owner, failpoint).await;
    let left: Vec<String> = names_in(dir.path())
        .into_iter()
        .filter(|n| VAULT_FILES.contains(&n.as_str()))
        .collect();
    assert!(left.is_empty(), "{failpoint}: left {left:?}");
    // Refused because there is no vault any more (not merely because the port changed): the
    // token is unknown to a vault in setup mode.
    let (status, body) = status_json(brand_call(&app, &brand.token).await).await;
    assert_error(status, &body, 401, "invalid_token", failpoint);
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("holds no clients")),
        "{failpoint}: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_interrupted_at_any_step_is_finished_at_the_next_start() {
    futures_util::future::join_all(FAILPOINTS.map(crash_at)).await;
}

#[test]
fn the_residue_scanner_finds_what_it_looks_for() {
    // Guard against a scan that cannot fail: a secret written raw, as hex or as base64 at any
    // alignment inside a longer string is found.
    let secret = b"SCANNERCHECK-91ab\x00\xff\x10";
    let dir = tempfile::tempdir().unwrap();
    let mut blobs: Vec<Vec<u8>> = vec![
        [b"..".as_slice(), secret, b".."].concat(),
        hex(&[b"xy".as_slice(), secret].concat()).into_bytes(),
    ];
    for shift in 0..3 {
        use base64::Engine;
        let mut blob = vec![b'x'; shift];
        blob.extend_from_slice(secret);
        blob.extend_from_slice(b"tail");
        blobs.push(
            base64::engine::general_purpose::STANDARD
                .encode(&blob)
                .into_bytes(),
        );
        blobs.push(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(&blob)
                .into_bytes(),
        );
    }
    for (i, blob) in blobs.iter().enumerate() {
        std::fs::write(dir.path().join(format!("f{i}")), blob).unwrap();
    }
    let found = residue(&files_below(dir.path()), &[("s".into(), secret.to_vec())]);
    assert_eq!(found.len(), blobs.len(), "{found:?}");
    assert!(encodings_of(secret).len() >= 9);
}
