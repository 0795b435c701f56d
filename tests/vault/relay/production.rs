//! The README's production layout for the relay runs as written: its fenced blocks tagged
//! `relay-production <file>` (the NATS node configuration, the NATS and relay systemd units, the
//! nginx site) are taken from README.md and started on loopback. Only addresses become free
//! loopback ports, the certificate a self-signed one, the binaries' paths the built ones, and
//! `--allow-loopback-webhooks` is added for the test's brand. The units are checked with
//! `systemd-analyze verify` when it is installed; their `ExecStart` lines are what runs. An
//! intent then goes through nginx to a brand's webhook, also with one relay instance killed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tempfile::TempDir;

use crate::kit::brand::{ASSERTION_TYPE, random_id};
use crate::kit::cluster::monitor_healthy;
use crate::kit::intent::{Receiver, signature_verifies};
use crate::kit::relay::{AdmittedBrand, free_port, nats_server_bin};
use crate::kit::relay_traffic::{VaultIntent, publish_intent, send};
use crate::kit::server::Server;

/// The README's `relay-production` blocks by file name.
fn blocks() -> BTreeMap<String, String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut found = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in readme.lines() {
        match &mut current {
            None => {
                let mut words = line.trim_end().split(' ');
                if let (Some(fence), Some("relay-production"), Some(name), None) =
                    (words.next(), words.next(), words.next(), words.next())
                    && fence.starts_with("```")
                {
                    current = Some((name.to_owned(), String::new()));
                }
            }
            Some(_) if line.trim_end() == "```" => {
                let (name, text) = current.take().unwrap();
                assert!(
                    found.insert(name.clone(), text).is_none(),
                    "two blocks {name}"
                );
            }
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    assert!(current.is_none(), "a relay-production block is not closed");
    found
}

/// `text` with each `(from, to)` replaced, every `from` required to be there.
fn substitute(text: &str, pairs: &[(String, String)]) -> String {
    let mut out = text.to_owned();
    for (from, to) in pairs {
        assert!(out.contains(from.as_str()), "{from:?} is not in\n{text}");
        out = out.replace(from.as_str(), to);
    }
    out
}

/// The `ExecStart=` command line of a unit, split into words (the README's have no quoting).
fn exec_start(unit: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("no ExecStart line");
    line.split_whitespace().map(str::to_owned).collect()
}

fn command(words: &[String]) -> Command {
    let mut cmd = Command::new(&words[0]);
    cmd.args(&words[1..]);
    cmd
}

/// A child killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// nginx, stopped on drop with SIGTERM so that its master also stops its workers (SIGKILL would
/// leave them holding the port).
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn nginx_bin() -> PathBuf {
    which("nginx")
        .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file()))
        .expect("the relay's production test needs nginx: apt-get install nginx (.ci/run does)")
}

fn wait_port(port: u16, what: &str, log: &Path) {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {addr}; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_production_layout_carries_an_intent_through_nginx() {
    let began = Instant::now();
    let blocks = blocks();
    let names: Vec<&str> = blocks.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "nats.conf",
            "nats.service",
            "nginx.conf",
            "vrm-vault-relay@.service"
        ]
    );
    let dir = TempDir::new().unwrap();
    let nats_bin = nats_server_bin().display().to_string();
    let relay_bin = env!("CARGO_BIN_EXE_vrm-vault").to_owned();
    let client_ports = [free_port(), free_port(), free_port()];
    let cluster_ports = [free_port(), free_port(), free_port()];
    let addresses: Vec<(String, String)> = (0..3)
        .flat_map(|k| {
            [
                (
                    format!("nats{}.internal:4222", k + 1),
                    format!("127.0.0.1:{}", client_ports[k]),
                ),
                (
                    format!("nats{}.internal:6222", k + 1),
                    format!("127.0.0.1:{}", cluster_ports[k]),
                ),
            ]
        })
        .collect();

    // Three NATS nodes: the README's file, renamed for nodes 2 and 3 as it says.
    let mut nodes = Vec::new();
    let mut monitor_ports = Vec::new();
    for i in 1..=3 {
        let mut conf = blocks["nats.conf"].clone();
        if i != 1 {
            conf = substitute(
                &conf,
                &[
                    ("server_name: nats1".into(), format!("server_name: nats{i}")),
                    (
                        "listen: nats1.internal:".into(),
                        format!("listen: nats{i}.internal:"),
                    ),
                ],
            );
        }
        let monitor = free_port();
        monitor_ports.push(monitor);
        let store = dir.path().join(format!("nats{i}"));
        // Each address once per line it is on: a node's own ports appear twice.
        for (from, to) in &addresses {
            conf = conf.replace(from.as_str(), to);
        }
        let conf = substitute(
            &conf,
            &[
                ("127.0.0.1:8222".into(), format!("127.0.0.1:{monitor}")),
                ("/var/lib/nats".into(), store.display().to_string()),
            ],
        );
        assert!(
            conf.lines()
                .all(|l| l.trim_start().starts_with('#') || !l.contains(".internal")),
            "{conf}"
        );
        let conf_path = dir.path().join(format!("nats{i}.conf"));
        std::fs::write(&conf_path, conf).unwrap();
        let unit = substitute(
            &blocks["nats.service"],
            &[
                ("/usr/local/bin/nats-server".into(), nats_bin.clone()),
                (
                    "/etc/nats/relay.conf".into(),
                    conf_path.display().to_string(),
                ),
            ],
        );
        std::fs::write(dir.path().join(format!("nats{i}.service")), &unit).unwrap();
        let log = dir.path().join(format!("nats{i}.log"));
        let child = command(&exec_start(&unit))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        nodes.push(Killed(child));
        wait_port(client_ports[i - 1], "nats-server", &log);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !monitor_ports.iter().all(|p| monitor_healthy(*p)) {
        assert!(
            Instant::now() < deadline,
            "the NATS cluster did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    println!("NATS cluster healthy after {:?}", began.elapsed());
    // Two relay instances from the template unit.
    let nginx_port = free_port();
    let public_url = format!("https://127.0.0.1:{nginx_port}");
    let relay_ports = [free_port(), free_port()];
    let metrics_ports = [free_port(), free_port()];
    let mut instances = Vec::new();
    for i in 1..=2 {
        let mut pairs = vec![
            ("/usr/local/bin/vrm-vault".to_owned(), relay_bin.clone()),
            ("https://relay.example.org".to_owned(), public_url.clone()),
        ];
        pairs.extend(
            addresses
                .iter()
                .filter(|(from, _)| from.ends_with(":4222"))
                .cloned(),
        );
        let unit = substitute(&blocks["vrm-vault-relay@.service"], &pairs);
        std::fs::write(
            dir.path().join(format!("vrm-vault-relay@{i}.service")),
            &unit,
        )
        .unwrap();
        let line = exec_start(&unit)
            .into_iter()
            .map(|w| {
                w.replace("%i", &i.to_string())
                    .replace(
                        &format!("127.0.0.1:809{i}"),
                        &format!("127.0.0.1:{}", relay_ports[i - 1]),
                    )
                    .replace(
                        &format!("127.0.0.1:919{i}"),
                        &format!("127.0.0.1:{}", metrics_ports[i - 1]),
                    )
            })
            .collect::<Vec<_>>();
        let mut cmd = command(&line);
        cmd.arg("--allow-loopback-webhooks").env("VRM_LOG", "info");
        instances.push(Some(Server::spawn(cmd, TempDir::new().unwrap())));
    }

    // The units pass systemd's own checks (their paths now the built binaries').
    match which("systemd-analyze") {
        Some(analyze) => {
            let units: Vec<PathBuf> = ["nats1.service", "vrm-vault-relay@1.service"]
                .iter()
                .map(|u| dir.path().join(u))
                .collect();
            let out = Command::new(analyze)
                .arg("verify")
                .args(&units)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
        }
        None => println!("systemd-analyze is not installed: the units' ExecStart lines ran"),
    }

    // nginx with the README's site, on a self-signed certificate.
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let site = substitute(
        &blocks["nginx.conf"],
        &[
            (
                "listen 443 ssl http2;".into(),
                format!("listen 127.0.0.1:{nginx_port} ssl http2;"),
            ),
            (
                "127.0.0.1:8091".into(),
                format!("127.0.0.1:{}", relay_ports[0]),
            ),
            (
                "127.0.0.1:8092".into(),
                format!("127.0.0.1:{}", relay_ports[1]),
            ),
            (
                "/etc/letsencrypt/live/relay.example.org/fullchain.pem".into(),
                cert.display().to_string(),
            ),
            (
                "/etc/letsencrypt/live/relay.example.org/privkey.pem".into(),
                key.display().to_string(),
            ),
        ],
    );
    let prefix = dir.path().join("nginx");
    std::fs::create_dir(&prefix).unwrap();
    // nginx's workers may run as another user (nobody, when the test runs as root): their
    // temporary directory must be theirs to write.
    let temp = prefix.join("temp");
    std::fs::create_dir(&temp).unwrap();
    std::fs::set_permissions(&temp, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let log = prefix.join("error.log");
    let main_conf = format!(
        "daemon off;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {log};\n\
         events {{}}\nhttp {{\n    access_log off;\n    client_body_temp_path {t}/body;\n    \
         proxy_temp_path {t}/proxy;\n    fastcgi_temp_path {t}/fastcgi;\n    \
         uwsgi_temp_path {t}/uwsgi;\n    scgi_temp_path {t}/scgi;\n{site}}}\n",
        p = prefix.display(),
        log = log.display(),
        t = temp.display(),
    );
    let conf = prefix.join("nginx.conf");
    std::fs::write(&conf, main_conf).unwrap();
    let nginx = Nginx(
        Command::new(nginx_bin())
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(nginx_port, "nginx", &log);

    // Through nginx: ready, a brand, an intent, the webhook.
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    // Under a loaded machine the instances took up to 54 s to be ready through nginx here.
    let deadline = Instant::now() + Duration::from_secs(120);
    while send(http.get(format!("{public_url}/readyz")))
        .await
        .status()
        != Some(200)
        || send(http.get(format!("http://127.0.0.1:{}/readyz", relay_ports[0])))
            .await
            .status()
            != Some(200)
        || send(http.get(format!("http://127.0.0.1:{}/readyz", relay_ports[1])))
            .await
            .status()
            != Some(200)
    {
        assert!(
            Instant::now() < deadline,
            "not ready through nginx; nginx log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("ready through nginx after {:?}", began.elapsed());
    let metrics = send(http.get(format!("{public_url}/metrics"))).await;
    assert_eq!(metrics.status(), Some(404), "metrics must not be public");

    let nats_arg = (0..3)
        .map(|k| format!("nats://127.0.0.1:{}", client_ports[k]))
        .collect::<Vec<_>>()
        .join(",");
    let brand = AdmittedBrand::admit_via(&nats_arg, "Chez Lulu");
    let assertion = brand.keys.signing.assertion(
        &brand.client_id,
        &format!("{public_url}/oauth/token"),
        &random_id(),
    );
    let token = send(http.post(format!("{public_url}/oauth/token")).form(&[
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", &assertion),
    ]))
    .await;
    assert_eq!(token.status(), Some(200), "{token:?}");
    let token = token.body()["access_token"].as_str().unwrap().to_owned();
    let receiver = Receiver::start(&[]).await;
    let subscribed = send(
        http.put(format!("{public_url}/relay/v1/subscription"))
            .bearer_auth(&token)
            .json(
                &json!({"categories": ["food"], "areas": [{"geohash": "u09"}],
                          "webhook_url": receiver.url}),
            ),
    )
    .await;
    assert_eq!(subscribed.status(), Some(200), "{subscribed:?}");
    let secret = subscribed.body()["webhook_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut published = Vec::new();
    for round in 0..2 {
        if round == 1 {
            // One instance dies: nginx sends the next requests to the other.
            drop(instances[0].take());
        }
        let intent = VaultIntent::new("food.lunch", "u09tv", 3);
        let created = publish_intent(&http, &public_url, &intent).await;
        assert_eq!(created.status(), Some(201), "round {round}: {created:?}");
        published.push(created.body()["id"].as_str().unwrap().to_owned());
    }
    println!("both intents acknowledged after {:?}", began.elapsed());
    // At least once: the killed instance may have sent a webhook it never acknowledged, which
    // the other sends again under the same id. De-duplicated, each intent arrived once.
    published.sort();
    let received_ids = |got: &[crate::kit::intent::Received]| {
        let mut ids: Vec<String> = got
            .iter()
            .map(|r| {
                r.json()["data"]["intent"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let got = crate::kit::intent::eventually(Duration::from_secs(90), || async {
        let got = receiver.received();
        (received_ids(&got) == published).then_some(got)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "webhooks received: {:?}",
            received_ids(&receiver.received())
        )
    });
    println!("both webhooks received after {:?}", began.elapsed());
    for request in &got {
        assert!(signature_verifies(&secret, request));
        let event = request.json();
        assert_eq!(event["source"], public_url.as_str());
        assert_eq!(request.header("webhook-id"), event["id"].as_str().unwrap());
    }
    let ids = received_ids(&got);
    assert_eq!(ids, published);
    drop(nginx);
    drop(instances);
    drop(nodes);
}
