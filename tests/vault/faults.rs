//! Faults: a full disk, damaged files in the data directory, a SIGKILL under mixed load, and a
//! clock set backwards. Each checks what a person would notice: a clear refusal instead of a
//! crash or a wrong value, and nothing acknowledged lost.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;
use vrm_vault::clock::{Clock as _, ManualClock, SystemClock};
use vrm_vault::http::AppState;
use vrm_vault::service::intents::OFFERS_PER_MINUTE;
use vrm_vault::service::{Settings, Vault};

use crate::kit::brand::{Brand, Server, onboard, owner_session, status_json};
use crate::kit::grant::{
    PHONE, assert_invalid_token, assert_no_token_issued, grant, grant_body, grant_token,
    grant_token_response, id_of, owner_grant, put_record, read_all, read_ok, seed, wall_now,
};
use crate::kit::intent::{
    Subscriber, accept_sharing, categories, intent_body, intent_id, offer_body, owner_offers,
};
use crate::kit::owner::PASSPHRASE;
use crate::kit::server::{serve_command, spawn_with_stderr};
use crate::support::{TestApp, cli, intent_vault, ready_vault};

// ---------------------------------------------------------------------------------------------
// Disk full
// ---------------------------------------------------------------------------------------------

/// A tmpfs mounted on a temporary directory, unmounted on drop (also when the test fails).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` reads it). Needs root: without it the test
    /// fails and says so, because a skipped disk-full test would hide a regression.
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "the disk-full test mounts a small tmpfs and needs root (CI runs it as root): \
             mount failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Grows (or shrinks) the filesystem in place.
    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "remount: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy, so that a server still holding files open cannot keep the mount (and the
        // temporary directory's removal) from happening.
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

/// A value of about `bytes` bytes that differs for every `n`.
fn bulky(n: u32, bytes: usize) -> Value {
    let unit = format!("{n:08}-");
    json!(unit.repeat(bytes / unit.len()))
}

/// How long any one request may take in these tests: a server that hangs is a failure to report,
/// not a test that never ends. Longer than the store's flush deadline (10 s), after which a
/// stalled write is answered with an error.
const PATIENCE: Duration = Duration::from_secs(20);

/// Sends a request, giving up after [`PATIENCE`]; `None` means no answer came.
async fn within(req: reqwest::RequestBuilder) -> Option<(u16, Value)> {
    let res = req.timeout(PATIENCE).send().await.ok()?;
    let status = res.status().as_u16();
    let text = tokio::time::timeout(PATIENCE, res.text())
        .await
        .ok()?
        .ok()?;
    Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

fn put_request(app: &TestApp, token: &str, path: &str, value: &Value) -> reqwest::RequestBuilder {
    app.client
        .put(app.url(&format!("/api/v1/records/{path}")))
        .bearer_auth(token)
        .json(&json!({ "value": value, "category": "pd:Interest" }))
}

fn get_request(app: &TestApp, token: &str, path: &str) -> reqwest::RequestBuilder {
    app.client.get(app.url(path)).bearer_auth(token)
}

#[tokio::test]
async fn a_full_disk_refuses_writes_clearly_and_recovers_when_space_returns() {
    let fs = Tmpfs::mount("16m");
    let data_dir: PathBuf = fs.path().join("vault");
    let app = TestApp::start(&data_dir);
    let (token, _) = app.setup().await;
    // What went wrong, collected so that one run shows every phase: filling, reading while full,
    // writing once space returns, and the restart.
    let mut problems: Vec<String> = vec![];

    // Write until the server refuses (bounded: 8 MiB holds far fewer than 400 such values).
    let mut acknowledged: Vec<(String, Value)> = vec![];
    let mut refusal = None;
    for n in 0..400u32 {
        let path = format!("fill.n{n}");
        let value = bulky(n, 32 * 1024);
        match within(put_request(&app, &token, &path, &value)).await {
            Some((201, _)) => acknowledged.push((path, value)),
            Some(answer) => {
                refusal = Some(answer);
                break;
            }
            None => {
                problems.push(format!("write {n} (the disk filling up) got no answer"));
                break;
            }
        }
    }
    if let Some((status, body)) = &refusal {
        eprintln!(
            "refused after {} writes: {status} {body}",
            acknowledged.len()
        );
        assert!(
            acknowledged.len() > 5,
            "refused before the disk could be full: {status} {body}"
        );
        // The writer's reserve refuses before sled sees the full disk, so the answer is always
        // 507, never the 503 of a failed write.
        if !(*status == 507 && body["error"] == "insufficient_storage") {
            problems.push(format!(
                "a full disk must answer 507 insufficient_storage: {status} {body}"
            ));
        }
        if !body["message"].is_string() {
            problems.push(format!("the refusal has no message: {body}"));
        }
    } else if problems.is_empty() {
        panic!("8 MiB never filled up after 400 writes of 32 KiB");
    }

    // Earlier acknowledged writes read back exactly; a read may fail, but never with other data.
    let mut unreadable = vec![];
    for (path, value) in &acknowledged {
        let at = format!("/api/v1/records/{path}");
        match within(get_request(&app, &token, &at)).await {
            Some((200, got)) => assert_eq!(&got["value"], value, "{path} while the disk is full"),
            Some((status, body)) => unreadable.push(format!("{path}: {status} {body}")),
            None => unreadable.push(format!("{path}: no answer")),
        }
    }
    if !unreadable.is_empty() {
        problems.push(format!(
            "{} of {} acknowledged records unreadable while the disk is full, first: {}",
            unreadable.len(),
            acknowledged.len(),
            unreadable[0]
        ));
    }

    // Space returns: writes are accepted again, and the audit chain holds.
    fs.resize("64m");
    let after = json!("room again");
    match within(put_request(&app, &token, "after.space", &after)).await {
        Some((201, _)) => acknowledged.push(("after.space".into(), after)),
        other => problems.push(format!("a write once space returned: {other:?}")),
    }
    match within(get_request(&app, &token, "/api/v1/audit/verify")).await {
        Some((200, verify)) if verify["ok"] == true => {}
        other => problems.push(format!("the audit chain once space returned: {other:?}")),
    }
    // It must stop; a failed final flush may make the exit status say so.
    match app.stop_within(Duration::from_secs(20)).await {
        Some(status) => eprintln!("stopped after the disk was full: {status}"),
        None => problems.push("the server did not stop within 20 s of SIGTERM".into()),
    }

    // A restart opens the vault with everything acknowledged, and writes.
    let app = TestApp::start(&data_dir);
    let token = app.token().await;
    for (path, value) in &acknowledged {
        let at = format!("/api/v1/records/{path}");
        let answer = within(get_request(&app, &token, &at)).await;
        assert_eq!(
            answer
                .as_ref()
                .map(|(status, body)| (*status, &body["value"])),
            Some((200, value)),
            "acknowledged {path} after the restart"
        );
    }
    let verify = app.get_json(&token, "/api/v1/audit/verify").await;
    assert_eq!(
        verify["ok"], true,
        "the audit chain after the restart: {verify}"
    );
    let res = app
        .put(
            &token,
            "after.restart",
            json!({ "value": 1, "category": "pd:Interest" }),
        )
        .await;
    assert_eq!(res.status(), 201, "a write after the restart");
    app.stop();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Damaged files
// ---------------------------------------------------------------------------------------------

/// What `serve` did on a data directory.
enum Started {
    Running(TestApp),
    Refused { status: ExitStatus, stderr: String },
}

/// Starts `serve` with its log (at info level) written to `log`; a server that exits instead of
/// listening is a refusal, with what it wrote on stderr.
fn start_or_refusal(data_dir: &Path, log: &Path) -> Started {
    let mut cmd = serve_command(data_dir);
    cmd.args(["--log-format", "json"]).env("VRM_LOG", "info");
    // The kit waits for the address on a thread, so a server that neither listens nor exits
    // fails the test instead of blocking it; one that exits closes its stdout at once.
    let (mut child, addr) =
        spawn_with_stderr(&mut cmd, Stdio::from(std::fs::File::create(log).unwrap()));
    match addr {
        Some(addr) => Started::Running(TestApp {
            child,
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .timeout(PATIENCE)
                .build()
                .unwrap(),
        }),
        None => {
            // A refusing server closes its stdout a moment before its exit status is there.
            let deadline = std::time::Instant::now() + PATIENCE;
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("the server neither listened nor exited");
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            Started::Refused {
                status,
                stderr: std::fs::read_to_string(log).unwrap(),
            }
        }
    }
}

/// Copies a directory tree (a stopped vault's data directory).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Bytes that look like nothing sled or the vault wrote (a fixed xorshift stream).
fn garbage(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn truncate_to(file: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn overwrite_at(file: &Path, at: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(bytes).unwrap();
}

fn file_len(file: &Path) -> u64 {
    std::fs::metadata(file).unwrap().len()
}

/// Replaces the first occurrence of `from` in a text file.
fn edit_text(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
}

/// One base64url character of the passphrase slot's wrapped master key, changed: the file
/// still parses, the key no longer opens.
fn flip_wrapped_key(keys: &Path) {
    let text = std::fs::read_to_string(keys).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    let wrapped = json["passphrase"]["wrapped_master_key"].as_str().unwrap();
    let mut flipped = wrapped.as_bytes().to_vec();
    let middle = flipped.len() / 2;
    flipped[middle] = if flipped[middle] == b'A' { b'B' } else { b'A' };
    edit_text(keys, wrapped, std::str::from_utf8(&flipped).unwrap());
}

/// The vault's messages at warn level or above in a JSON log, one per line.
fn log_problems(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["level"] == "ERROR" || entry["level"] == "WARN")
        .map(|entry| {
            let fields = &entry["fields"];
            match fields["detail"].as_str().or(fields["error"].as_str()) {
                Some(detail) => format!("{}: {detail}", fields["message"].as_str().unwrap_or("")),
                None => fields["message"].as_str().unwrap_or("").to_owned(),
            }
        })
        .collect()
}

/// What the owner can see of a vault whose files were damaged, checked against what was written:
/// a refusal to start or to unseal, or the records, every one of them either exactly as written,
/// missing, or an error. Returns a line for the report; panics on a wrong value, on a record that
/// was deleted coming back, on a panic, and on a refusal that says nothing.
async fn observe_damaged(
    case: &str,
    data_dir: &Path,
    written: &[(String, Value)],
    deleted: &[String],
) -> String {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("server.log");
    let app = match start_or_refusal(data_dir, &log) {
        Started::Refused { status, stderr } => {
            assert!(!status.success(), "{case}: {status}");
            assert!(
                !stderr.contains("panicked"),
                "{case}: panic at start: {stderr}"
            );
            let said = stderr.lines().rev().find(|l| !l.trim().is_empty());
            let said = said.unwrap_or_else(|| panic!("{case}: refused to start silently"));
            assert!(said.starts_with("vrm-vault: "), "{case}: {stderr}");
            return format!("{case}: serve refused to start ({status}): {said}");
        }
        Started::Running(app) => app,
    };
    let login = within(
        app.client
            .post(app.url("/api/v1/session"))
            .json(&json!({ "passphrase": PASSPHRASE })),
    )
    .await;
    let (status, body) = login.unwrap_or_else(|| panic!("{case}: unsealing got no answer"));
    if status != 201 {
        app.kill();
        let log = std::fs::read_to_string(&log).unwrap();
        // sled panics on some damage instead of returning an error; the vault turns that into
        // a clear `store_damaged` refusal. Any other panic is a bug.
        assert!(
            !log.contains("panicked") || body["error"] == "store_damaged",
            "{case}: {log}"
        );
        assert!(
            body["error"].is_string() && body["message"].is_string(),
            "{case}: {status} {body}"
        );
        return format!(
            "{case}: started sealed; unsealing refused: {status} {body}; log: {:?}",
            log_problems(&log)
        );
    }
    let token = body["token"].as_str().unwrap().to_owned();
    let (mut intact, mut missing, mut failed) = (0, vec![], vec![]);
    for (path, value) in written {
        let at = format!("/api/v1/records/{path}");
        match within(get_request(&app, &token, &at)).await {
            Some((200, got)) => {
                assert_eq!(
                    &got["value"], value,
                    "{case}: {path} opened to another value"
                );
                intact += 1;
            }
            Some((404, _)) => missing.push(path.clone()),
            other => failed.push(format!("{path}: {other:?}")),
        }
    }
    for path in deleted {
        let at = format!("/api/v1/records/{path}");
        let answer = within(get_request(&app, &token, &at)).await;
        assert!(
            !matches!(answer, Some((200, _))),
            "{case}: deleted record {path} came back: {answer:?}"
        );
    }
    let verify = within(get_request(&app, &token, "/api/v1/audit/verify")).await;
    app.kill();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(!log.contains("panicked"), "{case}: {log}");
    // Records that vanished are a known limit (SECURITY.md): sled reads damage in its log as the
    // log's end. When the cut keeps whole groups, the audit entries and head go with the records
    // and the shorter chain still verifies, so the loss is silent; the report says which it was.
    let loss = match (&verify, missing.is_empty()) {
        (_, true) => "",
        (Some((200, v)), false) if v["ok"] == true => " (SILENT: the audit log still verifies)",
        (_, false) => " (detected: the audit log does not verify)",
    };
    format!(
        "{case}: unsealed; {intact} of {} records intact, {} missing{}{loss}, {} unreadable{}; \
         audit verify: {verify:?}; log: {:?}",
        written.len(),
        missing.len(),
        missing
            .first()
            .map(|p| format!(" (first {p})"))
            .unwrap_or_default(),
        failed.len(),
        failed
            .first()
            .map(|f| format!(" (first {f})"))
            .unwrap_or_default(),
        log_problems(&log)
    )
}

#[tokio::test]
async fn damaged_files_are_refused_clearly_and_never_read_as_other_values() {
    // A stopped vault with records spread over several of sled's segments, some deleted.
    let (golden, app, token) = ready_vault().await;
    let mut written = vec![];
    for n in 0..80u32 {
        let (path, value) = (format!("bulk.n{n}"), bulky(n, 6 * 1024));
        let res = app
            .put(
                &token,
                &path,
                json!({ "value": value, "category": "pd:Interest" }),
            )
            .await;
        assert_eq!(res.status(), 201);
        written.push((path, value));
    }
    let mut deleted = vec![];
    for n in (0..80).step_by(10) {
        let (path, _) = written.remove(n - deleted.len());
        let res = app
            .client
            .delete(app.url(&format!("/api/v1/records/{path}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
        deleted.push(path);
    }
    app.stop();
    let sled_log = golden.path().join("store").join("db");
    assert!(
        file_len(&sled_log) > 1 << 20,
        "sled's log is smaller than expected"
    );

    type Damage = fn(&Path);
    // Each damage, and what the server must say about it (where a refusal is the only right
    // answer). sled's own files are left to sled's recovery: any outcome without a wrong value
    // is allowed, and the report records which one it was.
    let cases: [(&str, Damage, &[&str]); 9] = [
        (
            "(a) keys.json truncated",
            |d| {
                let keys = d.join("keys.json");
                truncate_to(&keys, file_len(&keys) / 2);
            },
            &["serve refused to start"],
        ),
        (
            "(b1) keys.json: a byte of its JSON flipped",
            |d| overwrite_at(&d.join("keys.json"), 0, b"["),
            &["serve refused to start"],
        ),
        (
            "(b2) keys.json: the wrapped master key changed",
            |d| flip_wrapped_key(&d.join("keys.json")),
            &["unsealing refused"],
        ),
        (
            "(b3) keys.json: Argon2id memory cost inflated",
            |d| {
                edit_text(
                    &d.join("keys.json"),
                    "\"m_kib\": 65536",
                    "\"m_kib\": 6553600",
                )
            },
            &["serve refused to start"],
        ),
        (
            "(c1) store/db truncated to half",
            |d| {
                let db = d.join("store").join("db");
                truncate_to(&db, file_len(&db) / 2);
            },
            &[],
        ),
        (
            "(c2) store/db truncated to nothing",
            |d| truncate_to(&d.join("store").join("db"), 0),
            // sled reads its header as corrupt: damage, not a passing failure.
            &["store_damaged"],
        ),
        (
            "(d) store/db: 4 KiB of garbage in the middle",
            |d| {
                let db = d.join("store").join("db");
                overwrite_at(&db, file_len(&db) / 2, &garbage(4096));
            },
            &[],
        ),
        (
            "(e) store.keys removed",
            |d| std::fs::remove_file(d.join("store.keys")).unwrap(),
            &["store_damaged", "store.keys is missing"],
        ),
        (
            "(f) store.keys: bytes flipped",
            |d| {
                let keys = d.join("store.keys");
                overwrite_at(&keys, file_len(&keys) / 2, &garbage(16));
            },
            &["store_damaged", "store.keys does not open"],
        ),
    ];
    let mut report = vec![];
    for (case, damage, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(golden.path(), dir.path());
        damage(dir.path());
        let seen = observe_damaged(case, dir.path(), &written, &deleted).await;
        for expected in expected {
            assert!(seen.contains(expected), "expected {expected:?}: {seen}");
        }
        report.push(seen);
    }
    eprintln!("{}", report.join("\n"));
}

#[tokio::test]
async fn a_store_that_lost_its_last_writes_is_refused_until_restored_or_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let record = json!({"value": "kept", "category": "pd:Interest"});
    let app = TestApp::start(&data);
    let (token, _) = app.setup().await;
    assert_eq!(
        app.put(&token, "early.one", record.clone()).await.status(),
        201
    );
    app.stop();
    let older = dir.path().join("older-store");
    copy_tree(&data.join("store"), &older);

    let app = TestApp::start(&data);
    let token = app.token().await;
    assert_eq!(
        app.put(&token, "late.one", record.clone()).await.status(),
        201
    );
    app.stop();
    // The store comes back without its last writes, records and audit entries together, as sled
    // does with a log cut short: the shorter chain still verifies on its own.
    std::fs::remove_dir_all(data.join("store")).unwrap();
    copy_tree(&older, &data.join("store"));

    let app = TestApp::start_logging_to(&data, &log);
    let (status, body) = status_json(app.login(PASSPHRASE).await).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"], "store_damaged", "{body}");
    app.stop();
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("lost acknowledged writes"), "{said}");
    // The offline commands refuse it the same way (their own audit entries would otherwise push
    // the chain back past the marker and hide the loss).
    let passphrase = dir.path().join("passphrase");
    std::fs::write(&passphrase, PASSPHRASE).unwrap();
    let (ok, _, err) = cli(&[
        "audit",
        "verify",
        "--data-dir",
        data.to_str().unwrap(),
        "--passphrase-file",
        passphrase.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("lost acknowledged writes"), "{err}");

    // Removing the marker, as the log says, accepts the loss: what is left is served exactly.
    std::fs::remove_file(data.join("audit-head.json")).unwrap();
    let app = TestApp::start(&data);
    let token = app.token().await;
    let (status, early) = status_json(app.get(&token, "/api/v1/records/early.one").await).await;
    assert_eq!((status, &early["value"]), (200, &json!("kept")), "{early}");
    let res = app.get(&token, "/api/v1/records/late.one").await;
    assert_eq!(res.status(), 404);
    app.stop();
}

// ---------------------------------------------------------------------------------------------
// SIGKILL under mixed load
// ---------------------------------------------------------------------------------------------

/// What the clients were told before the kill. A request without an answer (cut by the kill)
/// leaves its item unknown, so it is checked neither way.
#[derive(Default)]
struct Told {
    /// Records whose write was acknowledged and whose deletion was not attempted.
    present: Vec<(String, Value)>,
    /// Records whose deletion was acknowledged.
    deleted: Vec<String>,
    /// Intents created, with the offers on each that were acknowledged.
    intents: Vec<(String, Vec<String>)>,
    brand_reads: u32,
}

/// The owner writes records and deletes every third one it wrote, until a request fails.
async fn owner_writes(
    app: (reqwest::Client, String),
    owner: String,
    w: u32,
    told: Arc<Mutex<Told>>,
) {
    let (client, base) = app;
    for n in 0..5_000u32 {
        let path = format!("mixed.w{w}-{n}");
        let value = json!({ "writer": w, "n": n });
        let put = client
            .put(format!("{base}/api/v1/records/{path}"))
            .bearer_auth(&owner)
            .json(&json!({ "value": value, "category": "pd:Interest" }))
            .send()
            .await;
        match put {
            Ok(res) if res.status() == 201 => told.lock().unwrap().present.push((path, value)),
            _ => return,
        }
        if n % 3 == 2 {
            let victim = format!("mixed.w{w}-{}", n - 2);
            let delete = client
                .delete(format!("{base}/api/v1/records/{victim}"))
                .bearer_auth(&owner)
                .send()
                .await;
            // Whatever the answer, the record's fate may now be either.
            told.lock().unwrap().present.retain(|(p, _)| *p != victim);
            match delete {
                Ok(res) if res.status() == 204 => told.lock().unwrap().deleted.push(victim),
                _ => return,
            }
        }
    }
}

/// The brand reads its granted field, which must always be exactly what the owner shared.
async fn brand_reads(app: (reqwest::Client, String), token: String, told: Arc<Mutex<Told>>) {
    let (client, base) = app;
    for _ in 0..50_000 {
        let Ok(res) = client
            .get(format!("{base}/brand/v1/data"))
            .bearer_auth(&token)
            .send()
            .await
        else {
            return;
        };
        if res.status() != 200 {
            return;
        }
        let Ok(body) = res.json::<Value>().await else {
            return;
        };
        assert_eq!(
            body["fields"],
            json!({ "contact.phone": PHONE }),
            "a granted read"
        );
        told.lock().unwrap().brand_reads += 1;
    }
}

/// The `id` of what a request created (201), or `None` when it got no such answer.
async fn created_id(sent: reqwest::Result<reqwest::Response>) -> Option<String> {
    Some(created(sent).await?["id"].as_str().unwrap().to_owned())
}

async fn created(sent: reqwest::Result<reqwest::Response>) -> Option<Value> {
    let res = sent.ok().filter(|res| res.status() == 201)?;
    res.json::<Value>().await.ok()
}

/// The owner creates intents and the brand offers on each, within the brand's offer rate limit.
async fn intents_and_offers(
    app: (reqwest::Client, String),
    owner: String,
    brand_token: String,
    told: Arc<Mutex<Told>>,
) {
    let (client, base) = app;
    // One offer was made during the set-up; the limit is per minute. Paced to last about as long
    // as the rest of the load.
    for _ in 0..(OFFERS_PER_MINUTE - 2) {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let now = wall_now();
        let created = client
            .post(format!("{base}/api/v1/intents"))
            .bearer_auth(&owner)
            .json(&intent_body("food.lunch", now))
            .send()
            .await;
        let Some(view) = self::created(created).await else {
            return;
        };
        let id = view["id"].as_str().unwrap().to_owned();
        // The brand, the only recipient, names the intent by its own id of it.
        let Some(seen) = view["ids_by_brand"]
            .as_object()
            .and_then(|ids| ids.values().next())
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            panic!("the intent reached no brand: {view}");
        };
        told.lock().unwrap().intents.push((id.clone(), vec![]));
        let offered = client
            .post(format!("{base}/brand/v1/intents/{seen}/offers"))
            .bearer_auth(&brand_token)
            .json(&offer_body(now, &["contact.phone"]))
            .send()
            .await;
        let Some(offer) = created_id(offered).await else {
            return;
        };
        let mut told = told.lock().unwrap();
        if let Some((_, offers)) = told.intents.last_mut() {
            offers.push(offer);
        }
    }
}

#[tokio::test]
async fn sigkill_under_mixed_load_loses_nothing_acknowledged() {
    let (dir, app, owner) = intent_vault(&[]).await;
    put_record(&app, &owner, "contact.phone", json!(PHONE)).await;
    let bistro = Subscriber::subscribed(&app, &owner, "Bistro", categories(&["food"])).await;
    // The brand reads through a grant it got the intentcasting way: an accepted offer.
    let now = wall_now();
    let first = intent_id(&app, &owner, intent_body("food.lunch", now)).await;
    let offer = bistro
        .offer_ok(&app, &first, &offer_body(now, &["contact.phone"]))
        .await;
    let accepted = accept_sharing(&app, &owner, &offer).await;
    let grant = accepted["grant_id"].as_str().unwrap().to_owned();
    let data_token = grant_token(&app, &bistro.brand, &grant).await;

    let told: Arc<Mutex<Told>> = Arc::default();
    let conn = || (app.client.clone(), app.base.clone());
    let mut load = vec![];
    for w in 0..3 {
        load.push(tokio::spawn(owner_writes(
            conn(),
            owner.clone(),
            w,
            told.clone(),
        )));
    }
    load.push(tokio::spawn(brand_reads(
        conn(),
        data_token.clone(),
        told.clone(),
    )));
    load.push(tokio::spawn(intents_and_offers(
        conn(),
        owner.clone(),
        bistro.token.clone(),
        told.clone(),
    )));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.kill();
    for task in load {
        tokio::time::timeout(PATIENCE, task)
            .await
            .expect("a client kept going after the kill")
            .unwrap();
    }
    let told = std::mem::take(&mut *told.lock().unwrap());
    let offers: usize = told.intents.iter().map(|(_, o)| o.len()).sum();
    eprintln!(
        "before the kill: {} records kept, {} deleted, {} intents, {offers} offers, {} brand reads",
        told.present.len(),
        told.deleted.len(),
        told.intents.len(),
        told.brand_reads
    );
    assert!(
        told.present.len() > 20 && !told.deleted.is_empty() && offers > 2 && told.brand_reads > 20,
        "the load was running when the server was killed"
    );

    let app = TestApp::start(dir.path());
    let owner = app.token().await;
    let stored: HashMap<String, Value> = app
        .all_records(&owner)
        .await
        .iter()
        .map(|r| (r["path"].as_str().unwrap().to_owned(), r["value"].clone()))
        .collect();
    for (path, value) in &told.present {
        assert_eq!(stored.get(path), Some(value), "acknowledged write {path}");
    }
    for path in &told.deleted {
        assert!(
            !stored.contains_key(path),
            "acknowledged deletion {path} undone"
        );
        let res = app.get(&owner, &format!("/api/v1/records/{path}")).await;
        assert_eq!(res.status(), 404, "acknowledged deletion {path} undone");
    }
    for (intent, offers) in &told.intents {
        let listed: Vec<String> = owner_offers(&app, &owner, intent)
            .await
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect();
        for offer in offers {
            assert!(
                listed.contains(offer),
                "acknowledged offer {offer} on {intent}: {listed:?}"
            );
        }
    }
    let verify = app.get_json(&owner, "/api/v1/audit/verify").await;
    assert_eq!(verify["ok"], true, "{verify}");
    // The grant survived the kill too (with a new token: the restarted server's address, the
    // tokens' issuer, changed).
    let data_token = grant_token(&app, &bistro.brand, &grant).await;
    let data = read_ok(&app, &data_token, "the granted read after the restart").await;
    assert_eq!(data["fields"], json!({ "contact.phone": PHONE }), "{data}");
    app.stop();
}

// ---------------------------------------------------------------------------------------------
// A clock set backwards
// ---------------------------------------------------------------------------------------------

/// A vault served in the test process on a clock the test sets, on a data directory the test
/// keeps, so that it can be stopped and started again on the same data with the clock elsewhere.
struct ClockedVault {
    base: String,
    client: reqwest::Client,
    shutdown: oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    vault: Vault,
}

impl ClockedVault {
    /// Serves the vault in `data_dir` on `clock`. `issuer` keeps the tokens' issuer across a
    /// restart (the port changes), so that an old token is judged by its expiry alone.
    async fn start(data_dir: &Path, issuer: Option<&str>, clock: Arc<ManualClock>) -> ClockedVault {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut settings = Settings::new(data_dir.to_path_buf());
        settings.issuer = issuer.map_or_else(|| format!("http://{addr}"), str::to_owned);
        // The clock moves by hours; the owner's session is not what should expire.
        settings.session_idle = time::Duration::hours(11);
        let vault = Vault::start(settings, clock).unwrap();
        let (shutdown, signal) = oneshot::channel::<()>();
        let served = tokio::spawn(vrm_vault::http::serve(
            listener,
            AppState::new(vault.clone(), false),
            async move {
                let _ = signal.await;
            },
        ));
        ClockedVault {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .timeout(PATIENCE)
                .build()
                .unwrap(),
            shutdown,
            served,
            vault,
        }
    }

    /// Stops the way the binary does on SIGTERM: stops serving, then flushes the vault; returns
    /// once the vault (and its store) is closed.
    async fn stop(self) {
        let ClockedVault {
            client,
            shutdown,
            served,
            vault,
            ..
        } = self;
        // Its idle connections would keep the server draining.
        drop(client);
        let _ = shutdown.send(());
        tokio::time::timeout(PATIENCE, served)
            .await
            .expect("the in-process server did not stop")
            .unwrap()
            .unwrap();
        vault.flush().unwrap();
    }

    /// Unseals (or sets up) the vault; returns the owner's session token.
    async fn owner(&self, path: &str) -> String {
        owner_session(self, path, PASSPHRASE).await["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

impl Server for ClockedVault {
    fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn base(&self) -> &str {
        &self.base
    }
}

/// Asserts a grant is over and stays so: reported expired, no new token, the old one refused.
async fn assert_grant_over(
    app: &ClockedVault,
    owner: &str,
    brand: &Brand,
    id: &str,
    token: &str,
    why: &str,
) {
    assert_invalid_token(read_all(app, token).await, why).await;
    let view = owner_grant(app, owner, id).await;
    assert_eq!(view["status"], "expired", "{why}: {view}");
    let (status, body) = grant_token_response(app, brand, id).await;
    assert_no_token_issued(status, &body, why);
}

#[tokio::test]
async fn a_clock_set_back_revives_no_expired_grant_or_token() {
    use time::Duration as Span;
    let dir = tempfile::tempdir().unwrap();
    let t0 = SystemClock.now();
    let clock = Arc::new(ManualClock::new(t0));
    let app = ClockedVault::start(dir.path(), None, clock.clone()).await;
    let issuer = app.base.clone();
    let owner = app.owner("/api/v1/setup").await;
    seed(&app, &owner).await;
    let (brand, _) = onboard(&app, &owner, "Acme").await;
    let body = grant_body(&brand.client_id, &["contact.email"], t0 + Span::hours(1));
    let id = id_of(&grant(&app, &owner, body).await);

    // A token (15 minutes) outlived, then the clock set back to within its life.
    let early = grant_token(&app, &brand, &id).await;
    read_ok(&app, &early, "a fresh token").await;
    clock.set(t0 + Span::minutes(20));
    assert_invalid_token(read_all(&app, &early).await, "a token 20 minutes old").await;
    clock.set(t0 + Span::minutes(5));
    let why = "a token 20 minutes old, with the clock set back to 5 minutes after its issue";
    assert_invalid_token(read_all(&app, &early).await, why).await;
    let (_, introspected) = brand.introspect(&app, &early).await;
    assert_eq!(introspected, json!({ "active": false }), "{why}");

    // The grant (one hour) outlived, then the clock set back to within its life, and to within
    // the life of a token issued before it ended.
    clock.set(t0 + Span::minutes(50));
    let late = grant_token(&app, &brand, &id).await;
    read_ok(&app, &late, "ten minutes before the grant ends").await;
    clock.set(t0 + Span::hours(2));
    assert_grant_over(
        &app,
        &owner,
        &brand,
        &id,
        &late,
        "an hour after the grant ended",
    )
    .await;
    clock.set(t0 + Span::minutes(55));
    let why = "the clock set back to five minutes before the grant's end";
    assert_grant_over(&app, &owner, &brand, &id, &late, why).await;

    // A restart with the clock still behind: this vault has already told the owner and the
    // brand that the grant is over.
    app.stop().await;
    let behind = Arc::new(ManualClock::new(t0 + Span::minutes(55)));
    let app = ClockedVault::start(dir.path(), Some(&issuer), behind).await;
    let owner = app.owner("/api/v1/session").await;
    let why = "restarted with the clock five minutes before the grant's end";
    assert_grant_over(&app, &owner, &brand, &id, &late, why).await;
    app.stop().await;
}
