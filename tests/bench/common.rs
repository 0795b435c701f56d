//! What the server benches share: starting a server process and learning its address, reading a
//! process's memory from `/proc`, latency percentiles, and naming the machine in the report.
//!
//! Each bench is a crate of its own (`harness = false`), so each includes this file with
//! `#[path = "common.rs"] mod common;` and uses only the part it needs; hence `dead_code` is
//! allowed here.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `vrm-vault serve` on a free loopback port with `data` as its data directory: what every bench
/// starts, before its own flags and environment.
pub fn serve_command(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vrm-vault"));
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"]);
    cmd
}

/// Spawns `cmd` with its stderr written to `log` and waits (at most 30 s) for the
/// `... listening on http://<addr>` line on its stdout; returns the child and that address. A
/// server that does not print it is killed, and the bench panics showing its log.
pub fn spawn_server(cmd: &mut Command, log: &Path) -> (Child, SocketAddr) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Read stdout on a thread so a server that hangs before printing cannot hang the bench;
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

/// Resident and peak resident memory of a process, in MiB, from `/proc/<pid>/status` (NaN
/// where it cannot be read).
pub fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |name: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

/// p50 and p99 of latencies in microseconds, in milliseconds (NaN when there are none).
pub fn percentiles(latencies_us: &[u32]) -> (f64, f64) {
    if latencies_us.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut sorted = latencies_us.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| f64::from(sorted[((sorted.len() - 1) as f64 * q).round() as usize]) / 1000.0;
    (at(0.50), at(0.99))
}

/// The CPU's model name, from `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The 1, 5 and 15-minute load averages, which say how much the machine was shared.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
