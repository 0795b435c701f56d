//! Benchmark of the "it's my data" operations: export, backup and delete everything, each on a
//! vault of 1,000 and of 100,000 records, in one run.
//!
//! ```text
//! cargo bench --bench portability
//! ```
//!
//! For each size, the real `vrm-vault serve` binary runs as a child process on 127.0.0.1 with a
//! fresh data directory; the bench sets the vault up, fills it over HTTP (32 concurrent writers,
//! ~300-byte records), then:
//!
//! 1. **Export**: `GET /api/v1/export`, the body read as it streams and parsed afterwards to
//!    check it holds every record. Reports records/s and MiB/s, and the server's peak resident
//!    memory during the export (its peak counter is reset just before, through
//!    `/proc/<pid>/clear_refs`) against its resident memory before.
//! 2. **Backup**: `GET /api/v1/backup`, same measures.
//! 3. **Delete everything**: `DELETE /api/v1/vault`. The request includes an Argon2id check of
//!    the passphrase (the same cost whatever the size), so the figure that matters is the
//!    deletion itself, which the server logs: `total_us`, of which `wind_down_us` is revoking,
//!    telling brands and signing the receipt, and the rest destroying the keys and removing the
//!    store. Both are reported.
//!
//! Targets (issue 6): deletion of 100,000 records within 1 s, and within 3× of 1,000 records.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../kit/mod.rs"]
mod kit;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::kit::machine::{cpu_model, memory_mib};
use crate::kit::owner::Owner;
use crate::kit::server::Server;

const PASSPHRASE: &str = "benchmark passphrase, long enough";
const WRITERS: usize = 32;
const SIZES: [u64; 2] = [1_000, 100_000];

/// The bench's vault: the kit's server with its log at info level, where deletions are timed.
fn start_server() -> Server {
    Server::vault(|cmd| {
        cmd.env("VRM_LOG", "info");
    })
}

/// Resets the peak-resident counter so the next reading is the peak of what follows.
fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

struct Streamed {
    bytes: u64,
    seconds: f64,
    rss_before: f64,
    peak: f64,
    body: Vec<u8>,
}

async fn download(client: &reqwest::Client, server: &Server, path: &str, auth: &str) -> Streamed {
    let pid = server.pid();
    let (rss_before, _) = memory_mib(pid);
    reset_peak(pid);
    let started = Instant::now();
    let mut response = client
        .get(server.url(path))
        .header("authorization", auth)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    let seconds = started.elapsed().as_secs_f64();
    let (_, peak) = memory_mib(pid);
    Streamed {
        bytes: body.len() as u64,
        seconds,
        rss_before,
        peak,
        body,
    }
}

async fn fill(client: &reqwest::Client, server: &Server, auth: &str, count: u64) -> f64 {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let value = "x".repeat(240);
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let (client, next, auth, value) =
            (client.clone(), next.clone(), auth.to_owned(), value.clone());
        let base = server.url("/api/v1/records/");
        writers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return;
                }
                let status = client
                    .put(format!("{base}bench.r{n}"))
                    .header("authorization", &auth)
                    .json(&serde_json::json!({ "value": value, "category": "pd:Preference" }))
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(status, 201, "record {n}");
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    started.elapsed().as_secs_f64()
}

/// `text` without ANSI colour sequences (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A duration the server logged on its deletion line (`total_us=...`, `wind_down_us=...`).
fn logged_deletion_us(server: &Server, field: &str) -> Option<u64> {
    let log = std::fs::read_to_string(&server.log).ok()?;
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("everything deleted"))?;
    let line = strip_ansi(line);
    let (_, rest) = line.split_once(&format!("{field}="))?;
    rest.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

struct SizeResult {
    records: u64,
    fill_seconds: f64,
    export: Streamed,
    export_again: Streamed,
    backup: Streamed,
    delete_request_ms: f64,
    delete_logged_us: u64,
    /// Of which revoking, telling brands and signing the receipt (the rest destroys files).
    wind_down_us: u64,
}

async fn run_size(records: u64) -> SizeResult {
    let server = start_server();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(WRITERS)
        .build()
        .unwrap();
    let auth = Owner::setup(&client, &server.url(""), PASSPHRASE)
        .await
        .auth;
    println!("{records} records: filling …");
    let fill_seconds = fill(&client, &server, &auth, records).await;

    let export = download(&client, &server, "/api/v1/export", &auth).await;
    let document: serde_json::Value = serde_json::from_slice(&export.body).unwrap();
    assert_eq!(
        document["records"].as_array().unwrap().len() as u64,
        records,
        "the export holds every record"
    );
    // A second export: if the first one's peak was caches warming up (sled's, the allocator's),
    // this one stays at the level the first one left.
    let export_again = download(&client, &server, "/api/v1/export", &auth).await;
    let backup = download(&client, &server, "/api/v1/backup", &auth).await;

    let started = Instant::now();
    let response = client
        .delete(server.url("/api/v1/vault"))
        .header("authorization", &auth)
        .json(&serde_json::json!({ "passphrase": PASSPHRASE, "confirm": "delete everything" }))
        .send()
        .await
        .unwrap();
    let delete_request_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(response.status(), 200);
    let receipt: serde_json::Value = response.json().await.unwrap();
    assert_eq!(receipt["receipt"]["deleted"]["records"], records);
    // Give the log line a moment to reach the file.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let delete_logged_us =
        logged_deletion_us(&server, "total_us").expect("the deletion's log line");
    let wind_down_us = logged_deletion_us(&server, "wind_down_us").unwrap_or_default();
    SizeResult {
        records,
        fill_seconds,
        export: Streamed {
            body: Vec::new(),
            ..export
        },
        backup: Streamed {
            body: Vec::new(),
            ..backup
        },
        delete_request_ms,
        delete_logged_us,
        wind_down_us,
        export_again: Streamed {
            body: Vec::new(),
            ..export_again
        },
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let results: Vec<SizeResult> = SIZES.iter().map(|&n| rt.block_on(run_size(n))).collect();
    let cpu = cpu_model();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("\nmachine: {cores} cores, {cpu}");
    println!(
        "{:>9} | {:>8} | {:>22} | {:>22} | {:>18} | {:>14}",
        "records",
        "fill s",
        "export rec/s (MiB/s)",
        "backup rec/s (MiB/s)",
        "peak MiB exp/bak",
        "delete ms"
    );
    for r in &results {
        let rate = |s: &Streamed| {
            format!(
                "{:.0} ({:.1})",
                r.records as f64 / s.seconds,
                s.bytes as f64 / 1048576.0 / s.seconds
            )
        };
        println!(
            "{:>9} | {:>8.1} | {:>22} | {:>22} | {:>18} | {:>14}",
            r.records,
            r.fill_seconds,
            rate(&r.export),
            rate(&r.backup),
            format!(
                "{:.0}→{:.0} / {:.0}→{:.0}",
                r.export.rss_before, r.export.peak, r.backup.rss_before, r.backup.peak
            ),
            format!(
                "{:.1} ({:.1} + {:.1}; {:.0} req)",
                r.delete_logged_us as f64 / 1000.0,
                r.wind_down_us as f64 / 1000.0,
                (r.delete_logged_us - r.wind_down_us) as f64 / 1000.0,
                r.delete_request_ms
            ),
        );
    }
    if let [small, large] = results.as_slice() {
        let ratio = large.delete_logged_us as f64 / (small.delete_logged_us.max(1)) as f64;
        println!(
            "\ndelete everything: {:.1} ms for {} records, {:.1} ms for {} records: {:.2}x \
             (target <= 3x, and <= 1000 ms; the request adds one Argon2id check of the passphrase)",
            small.delete_logged_us as f64 / 1000.0,
            small.records,
            large.delete_logged_us as f64 / 1000.0,
            large.records,
            ratio
        );
        println!(
            "export: {:.0} MiB for {} records; server resident {:.0} MiB before, peak {:.0} MiB \
             during the first export, {:.0} MiB during a second one",
            large.export.bytes as f64 / 1048576.0,
            large.records,
            large.export.rss_before,
            large.export.peak,
            large.export_again.peak
        );
    }
}
