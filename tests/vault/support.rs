//! `TestApp`: the server binary started through the shared test kit (`tests/kit`), and what
//! only the spawned binary has: set-up vaults, the command line (`cli`), a `serve` that must
//! refuse, unlock-key files. Everything that works against any running vault or any data
//! directory lives in the kit (`kit::disk`, `kit::restore`, `kit::grant`, `kit::intent`).

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::kit::brand::{Server, owner_session};
use crate::kit::owner::{Owner, PASSPHRASE};
use crate::kit::server::{serve_command, spawn_with_stderr};

pub struct TestApp {
    pub child: Child,
    pub base: String,
    pub client: reqwest::Client,
}

impl TestApp {
    /// Starts the server on `data_dir` with extra arguments.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> TestApp {
        Self::spawn(data_dir, extra, Stdio::inherit(), "warn")
    }

    /// Starts the server with its log (at info level) written to `log`.
    pub fn start_logging_to(data_dir: &Path, log: &Path) -> TestApp {
        let file = std::fs::File::create(log).unwrap();
        Self::spawn(data_dir, &[], Stdio::from(file), "info")
    }

    /// Starts the server with extra environment variables (such as `VRM_FAILPOINT`).
    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> TestApp {
        Self::spawn_with_env(data_dir, extra, env, Stdio::inherit(), "warn")
    }

    /// Starts the server with extra arguments and its log (at info level) written to `log`.
    pub fn start_with_logging_to(data_dir: &Path, extra: &[&str], log: &Path) -> TestApp {
        let file = std::fs::File::create(log).unwrap();
        Self::spawn_with_env(data_dir, extra, &[], Stdio::from(file), "info")
    }

    /// Starts the server with extra arguments and its log, at `level` (a `VRM_LOG` filter such as
    /// `debug`), written to `log`.
    pub fn start_with_logging_at(
        data_dir: &Path,
        extra: &[&str],
        log: &Path,
        level: &str,
    ) -> TestApp {
        let file = std::fs::File::create(log).unwrap();
        Self::spawn_with_env(data_dir, extra, &[], Stdio::from(file), level)
    }

    fn spawn(data_dir: &Path, extra: &[&str], stderr: Stdio, level: &str) -> TestApp {
        Self::spawn_with_env(data_dir, extra, &[], stderr, level)
    }

    fn spawn_with_env(
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        stderr: Stdio,
        level: &str,
    ) -> TestApp {
        let mut cmd = serve_command(data_dir);
        cmd.args(extra)
            .args(["--log-format", "json"])
            .env("VRM_LOG", level)
            .envs(env.iter().copied());
        let (mut child, addr) = spawn_with_stderr(&mut cmd, stderr);
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not print its address");
        };
        let base = format!("http://{addr}");
        TestApp {
            child,
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                // The server closes a keep-alive connection idle for 10 s (its header-read
                // timeout); a client reusing one at that very moment gets a reset. Dropping idle
                // connections first, as a well-configured client does, avoids the race.
                .pool_idle_timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
        }
    }

    pub fn start(data_dir: &Path) -> TestApp {
        Self::start_with(data_dir, &[])
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server the way systemd would (SIGTERM) and waits for it.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "server exited with {status}");
    }

    /// Sends SIGTERM and waits for the server up to `patience`; `None` if it did not stop (it is
    /// then killed).
    pub async fn stop_within(mut self, patience: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Kills the server without warning (SIGKILL).
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sets the vault up as its owner (the kit's typed [`Owner`]); returns the session token and
    /// the recovery key.
    pub async fn setup(&self) -> (String, String) {
        let owner = Owner::setup(&self.client, &self.base, PASSPHRASE).await;
        assert!(!owner.recovery_key.is_empty(), "setup shows a recovery key");
        (owner.token, owner.recovery_key)
    }

    pub async fn login(&self, passphrase: &str) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/session"))
            .json(&json!({ "passphrase": passphrase }))
            .send()
            .await
            .unwrap()
    }

    pub async fn token(&self) -> String {
        owner_session(self, "/api/v1/session", PASSPHRASE).await["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn put(&self, token: &str, path: &str, body: Value) -> reqwest::Response {
        self.client
            .put(self.url(&format!("/api/v1/records/{path}")))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Every record, following the list's pages.
    pub async fn all_records(&self, token: &str) -> Vec<Value> {
        let mut out = vec![];
        let mut cursor: Option<String> = None;
        loop {
            let url = match &cursor {
                Some(c) => format!("/api/v1/records?cursor={c}"),
                None => "/api/v1/records".to_owned(),
            };
            let page = self.get_json(token, &url).await;
            out.extend(page["records"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }

    /// GET with the owner's token, expecting a JSON body.
    pub async fn get_json(&self, token: &str, path: &str) -> Value {
        self.get(token, path).await.json().await.unwrap()
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

impl Server for TestApp {
    fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn base(&self) -> &str {
        &self.base
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A set-up vault with the owner's session token.
pub async fn ready_vault() -> (tempfile::TempDir, TestApp, String) {
    ready_vault_with(&[]).await
}

pub async fn ready_vault_with(extra: &[&str]) -> (tempfile::TempDir, TestApp, String) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(dir.path(), extra);
    let (owner, _) = app.setup().await;
    (dir, app, owner)
}

/// A set-up vault (the binary, with `extra` arguments) whose terms in force are PDC-INTENT.
pub async fn intent_vault(extra: &[&str]) -> (tempfile::TempDir, TestApp, String) {
    let (dir, app, owner) = ready_vault_with(extra).await;
    crate::kit::intent::publish_pdc_intent(&app, &owner).await;
    (dir, app, owner)
}

/// Runs the CLI and returns (exit success, stdout, stderr).
pub fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vrm-vault"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `serve` on `data_dir` expecting it to refuse; returns what it said.
pub fn serve_refuses(data_dir: &Path) -> String {
    serve_refuses_with(data_dir, &[])
}

/// Starts `serve` on `data_dir` with extra arguments, expecting it to refuse; returns what it
/// said.
pub fn serve_refuses_with(data_dir: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (ok, _, err) = cli(&args);
    assert!(!ok, "the server started: {err}");
    err
}

/// `vrm-vault unlock-key create`: writes an unlock key file for the stopped vault in `data_dir`
/// to `out`, expecting success.
pub fn create_unlock_key(data_dir: &Path, passphrase_file: &Path, out: &Path) {
    let (ok, _, err) = cli(&[
        "unlock-key",
        "create",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--passphrase-file",
        passphrase_file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
}
