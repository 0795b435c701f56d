//! Starting the real server binary: the command line every caller starts from, spawning it and
//! waiting for the address it prints, and a [`Server`] handle that kills it on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

/// `vrm-vault serve` on a free loopback port with `data` as its data directory: what every test
/// and bench starts, before its own flags and environment.
pub fn serve_command(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vrm-vault"));
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"]);
    cmd
}

/// Spawns `cmd` with its stderr sent to `stderr` and waits (at most 30 s) for the
/// `... listening on http://<addr>` line on its stdout. Returns the child and, if it printed
/// one, that address; the caller decides how to fail without it.
pub fn spawn_with_stderr(cmd: &mut Command, stderr: Stdio) -> (Child, Option<SocketAddr>) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Read stdout on a thread so a server that hangs before printing cannot hang the caller;
    // the thread then keeps draining stdout so the child never writes into a closed pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some((_, url)) = line.split_once(" listening on http://") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .ok()
        .and_then(|addr| addr.parse().ok());
    (child, addr)
}

/// Spawns `cmd` with its stderr written to `log` and waits for its address. A server that does
/// not print it is killed, and the caller panics showing its log.
pub fn spawn_server(cmd: &mut Command, log: &Path) -> (Child, SocketAddr) {
    let (mut child, addr) =
        spawn_with_stderr(cmd, Stdio::from(std::fs::File::create(log).unwrap()));
    match addr {
        Some(addr) => (child, addr),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the server did not print its address; stderr:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        }
    }
}

/// A server child process with its stderr in a log file, killed on drop (also when the caller
/// panics).
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// Where its stderr (logs) goes: shown if it fails to start.
    pub log: PathBuf,
    /// Its data directory (for a server that is not the vault, an empty one).
    pub data: TempDir,
    // Dropped after `child` is killed, with the log file in it.
    _logs: TempDir,
}

impl Server {
    /// Starts the vault on a fresh data directory, with `configure` adding its flags and
    /// environment to the [`serve_command`].
    pub fn vault(configure: impl FnOnce(&mut Command)) -> Server {
        let data = TempDir::new().unwrap();
        let mut cmd = serve_command(data.path());
        configure(&mut cmd);
        Server::spawn(cmd, data)
    }

    /// Starts `cmd`, any program that prints the vault's `listening on` line, with `data` kept
    /// until it stops.
    pub fn spawn(mut cmd: Command, data: TempDir) -> Server {
        let logs = TempDir::new().unwrap();
        let log = logs.path().join("stderr.log");
        let (child, addr) = spawn_server(&mut cmd, &log);
        Server {
            child,
            addr,
            log,
            data,
            _logs: logs,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many bytes the server has logged so far.
    pub fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
