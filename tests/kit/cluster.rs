//! A three-node (or any size) NATS JetStream cluster on loopback for the relay's scale and fault
//! tests and benches: each node is a real `nats-server` (the binary `NATS_SERVER_BIN` names) with
//! JetStream, a server name, cluster routes to every other node, and its own store directory in a
//! temporary directory, on free 127.0.0.1 ports. Nodes are killed (SIGKILL, as a crash) and
//! restarted one by one on the same ports and stores.
//!
//! ```ignore
//! let mut cluster = NatsCluster::start(3);
//! let relay = RelayApp::start(&cluster.nats_arg(), |c| { c.args(["--replicas", "3"]); });
//! cluster.kill(0);
//! cluster.restart(0);
//! ```

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::kit::relay::{free_port, nats_server_bin};

/// The cluster's name in every node's configuration.
pub const CLUSTER_NAME: &str = "vrm-relay-test";

/// One node's ports and process.
struct Node {
    name: String,
    client_port: u16,
    cluster_port: u16,
    monitor_port: u16,
    child: Option<Child>,
}

/// A NATS cluster whose nodes are killed on drop. Node `i` is named `n<i>`.
pub struct NatsCluster {
    nodes: Vec<Node>,
    // Each node's store is `<dir>/n<i>`, and its log `<dir>/n<i>.log`; kept until drop so a
    // restarted node comes back with what it held.
    dir: TempDir,
}

impl NatsCluster {
    /// Starts `size` nodes routed to each other and waits until JetStream answers healthy on
    /// every one (a meta leader is elected and each node is current).
    pub fn start(size: usize) -> NatsCluster {
        assert!(size >= 1, "a cluster needs at least one node");
        let nodes = (0..size)
            .map(|i| Node {
                name: format!("n{i}"),
                client_port: free_port(),
                cluster_port: free_port(),
                monitor_port: free_port(),
                child: None,
            })
            .collect();
        let mut cluster = NatsCluster {
            nodes,
            dir: TempDir::new().unwrap(),
        };
        for i in 0..size {
            cluster.spawn(i);
        }
        for i in 0..size {
            cluster.wait_healthy(i, Duration::from_secs(60));
        }
        cluster
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Every node's client URL, `nats://127.0.0.1:<port>`.
    pub fn urls(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.url(i)).collect()
    }

    /// Node `i`'s client URL.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].client_port)
    }

    /// The relay's `--nats` value naming every node: `nats://...,nats://...`.
    pub fn nats_arg(&self) -> String {
        self.urls().join(",")
    }

    /// Node `i`'s client port.
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].client_port
    }

    /// Whether node `i`'s process runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// Kills node `i` with SIGKILL (a crash: no lame-duck mode, no leadership hand-over), keeping
    /// its store.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again on its ports and store and waits until it accepts clients. It
    /// rejoins the cluster by itself; [`NatsCluster::wait_healthy`] waits until its JetStream is
    /// current too.
    pub fn restart(&mut self, i: usize) {
        assert!(
            self.nodes[i].child.is_none(),
            "node n{i} is already running"
        );
        self.spawn(i);
    }

    /// Waits (at most `within`) until node `i`'s monitoring endpoint says JetStream is healthy
    /// (`/healthz` 200: it sees a meta leader and its streams are current); panics with its log
    /// otherwise.
    pub fn wait_healthy(&self, i: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.healthy(i) {
            assert!(
                Instant::now() < deadline,
                "NATS node n{i} did not become healthy within {within:?}; its log:\n{}",
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether node `i`'s `/healthz` answers 200 now.
    pub fn healthy(&self, i: usize) -> bool {
        monitor_healthy(self.nodes[i].monitor_port)
    }

    /// Node `i`'s log so far (for failure messages).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("n{i}.log"))
    }

    /// Node `i`'s configuration file, written next to its store.
    fn config(&self, i: usize) -> PathBuf {
        let node = &self.nodes[i];
        let routes: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| format!("    nats-route://127.0.0.1:{}", n.cluster_port))
            .collect();
        let store = self.dir.path().join(&node.name);
        let text = format!(
            "server_name: {name}\n\
             listen: 127.0.0.1:{client}\n\
             http: 127.0.0.1:{monitor}\n\
             jetstream {{\n  store_dir: \"{store}\"\n}}\n\
             cluster {{\n  name: {CLUSTER_NAME}\n  listen: 127.0.0.1:{cluster}\n  routes: [\n{routes}\n  ]\n}}\n",
            name = node.name,
            client = node.client_port,
            monitor = node.monitor_port,
            cluster = node.cluster_port,
            store = store.display(),
            routes = routes.join("\n"),
        );
        let path = self.dir.path().join(format!("{}.conf", node.name));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn spawn(&mut self, i: usize) {
        let config = self.config(i);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .unwrap();
        let child = Command::new(nats_server_bin())
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.nodes[i].child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.nodes[i].client_port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server n{i} did not start on {addr}; its log:\n{}",
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether the `nats-server` whose monitoring listens on 127.0.0.1:`port` says it is healthy
/// (`GET /healthz` 200: JetStream sees a meta leader and is current).
pub fn monitor_healthy(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
