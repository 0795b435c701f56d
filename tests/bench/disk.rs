//! Disk use under a steady load: does the data directory level off?
//!
//! ```text
//! cargo bench --bench disk                                   # two runs of 60 s
//! VRM_DISK_SECONDS=30 cargo bench --profile dev --bench disk  # shorter, on the debug build
//! VRM_DISK_RUNS=capped VRM_DISK_SECONDS=120 cargo bench --bench disk   # only the capped run
//! ```
//!
//! The real `vrm-vault serve` binary runs on 127.0.0.1 with a fresh data directory. The bench
//! sets the vault up with 200 records of 1 KiB and one brand holding a grant to read
//! `contact.email`, then drives a closed loop of four concurrent clients through three equal
//! phases: owner overwrites of the 200 records (`PUT /api/v1/records/bench.rN`, each one audit
//! entry), brand reads of the granted field (`GET /brand/v1/data/contact.email`, each one
//! `data.read` audit entry), and both mixed. It does this twice: with the default audit
//! retention (half a million entries, not reached), and with the count cap at `VRM_DISK_CAP`
//! entries (default 5,000, reached within seconds), where the live contents stay constant and
//! only the store's reuse of freed space decides whether the files keep growing.
//!
//! Every `VRM_DISK_SAMPLE_SECONDS` (default 5) it samples the data directory's size (every file
//! below it), the store files' size and live contents (`GET /api/v1/storage`), and the audit
//! log's entries and pruned count, and prints one line per sample. At the end of each phase it
//! prints the data directory's growth per operation in that phase: what one write or one
//! audited read costs on disk there. The load stops by itself; nothing is asserted (it measures).
//!
//! Measured on the 2-core development machine (debug build of the vault, dependencies
//! optimised; `VRM_DISK_SECONDS=45 cargo bench --profile dev --bench disk`), about 2,000
//! operations a second:
//!
//! | retention | write | audited read | data directory after 45 s |
//! |---|---|---|---|
//! | default (cap not reached) | +1,517 B | +932 B | 172 MiB, growing linearly (live 51 MiB) |
//! | 5,000 entries | +0 B once capped | +0 B | 11–14.5 MiB, level (live 2 MiB) |
//!
//! A longer look at the capped run (`VRM_DISK_RUNS=capped VRM_DISK_SECONDS=120
//! VRM_DISK_SAMPLE_SECONDS=10`): 166,894 overwrites and 152,462 audited reads, 320,583 entries
//! pruned; the data directory stayed between 10.5 and 14 MiB, 12 MiB at the end.
//!
//! So the store itself levels off: sled reuses the space of overwritten records and pruned
//! entries once the live contents stop growing (its files stay about six times the live bytes,
//! a bounded amplification). What grew without limit was what the vault kept: an audit entry
//! per write and per brand read (about 350 bytes live, three times that on disk), and every
//! token id ever issued; the retention and the `jti` expiry bound both.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../kit/mod.rs"]
mod kit;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::kit::brand::{Remote, onboard};
use crate::kit::grant::{day_grant, grant_token, id_of, put_record};
use crate::kit::owner::{Owner, PASSPHRASE};
use crate::kit::server::Server;

const RECORDS: usize = 200;
const CLIENTS: usize = 4;
const MIB: f64 = 1048576.0;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    crate::kit::disk::files_below(dir)
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Write,
    Read,
    Mixed,
}

struct Load {
    vault: Remote,
    owner: String,
    token: String,
    writes: AtomicU64,
    reads: AtomicU64,
    errors: AtomicU64,
}

impl Load {
    async fn write(&self, n: u64) {
        let value = json!({ "value": format!("{n:0>1000}"), "category": "pd:Interest" });
        let res = self
            .vault
            .client
            .put(format!(
                "{}/api/v1/records/bench.r{}",
                self.vault.base,
                n % RECORDS as u64
            ))
            .bearer_auth(&self.owner)
            .json(&value)
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => self.writes.fetch_add(1, Ordering::Relaxed),
            _ => self.errors.fetch_add(1, Ordering::Relaxed),
        };
    }

    async fn read(&self) {
        let res = self
            .vault
            .client
            .get(format!("{}/brand/v1/data/contact.email", self.vault.base))
            .bearer_auth(&self.token)
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => self.reads.fetch_add(1, Ordering::Relaxed),
            _ => self.errors.fetch_add(1, Ordering::Relaxed),
        };
    }

    async fn storage(&self) -> Value {
        self.vault
            .client
            .get(format!("{}/api/v1/storage", self.vault.base))
            .bearer_auth(&self.owner)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

async fn run(label: &str, cap: Option<u64>, seconds: u64, sample: u64) {
    let server = Server::vault(|_| {});
    let vault = Remote {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        base: server.url(""),
    };
    let owner = Owner::setup(&vault.client, &vault.base, PASSPHRASE).await;
    if let Some(cap) = cap {
        let res = vault
            .client
            .put(format!("{}/api/v1/audit/retention", vault.base))
            .bearer_auth(&owner.token)
            .json(&json!({ "days": 365, "max_entries": cap }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    put_record(
        &vault,
        &owner.token,
        "contact.email",
        json!("a@example.org"),
    )
    .await;
    for n in 0..RECORDS {
        let value = json!(format!("{n:0>1000}"));
        put_record(&vault, &owner.token, &format!("bench.r{n}"), value).await;
    }
    let (brand, _) = onboard(&vault, &owner.token, "Bench").await;
    let grant = day_grant(&vault, &owner.token, &brand, &["contact.email"]).await;
    let token = grant_token(&vault, &brand, &id_of(&grant)).await;
    let load = Arc::new(Load {
        token,
        owner: owner.token.clone(),
        vault,
        writes: AtomicU64::new(0),
        reads: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let data = server.data.path().to_path_buf();

    println!(
        "\n== {label}: audit cap {} ==",
        cap.map_or("default (500,000)".into(), |c| c.to_string())
    );
    println!(
        "{:>5} {:>6} {:>8} {:>8} {:>10} {:>10} {:>9} {:>8} {:>8}",
        "s", "phase", "writes", "reads", "dir MiB", "store MiB", "live MiB", "audit", "pruned"
    );
    let start = Instant::now();
    let phase_len = Duration::from_secs(seconds / 3);
    let mut summary = Vec::new();
    for phase in [Phase::Write, Phase::Read, Phase::Mixed] {
        let (w0, r0, d0) = (
            load.writes.load(Ordering::Relaxed),
            load.reads.load(Ordering::Relaxed),
            dir_bytes(&data),
        );
        let end = Instant::now() + phase_len;
        let mut clients = tokio::task::JoinSet::new();
        for c in 0..CLIENTS as u64 {
            let load = load.clone();
            clients.spawn(async move {
                let mut n = c;
                while Instant::now() < end {
                    let write = match phase {
                        Phase::Write => true,
                        Phase::Read => false,
                        Phase::Mixed => n % 2 == 0,
                    };
                    if write {
                        load.write(n).await;
                    } else {
                        load.read().await;
                    }
                    n += CLIENTS as u64;
                }
            });
        }
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_secs(sample).min(end - Instant::now())).await;
            let report = load.storage().await;
            println!(
                "{:>5} {:>6} {:>8} {:>8} {:>10.2} {:>10.2} {:>9.2} {:>8} {:>8}",
                start.elapsed().as_secs(),
                format!("{phase:?}").to_lowercase(),
                load.writes.load(Ordering::Relaxed),
                load.reads.load(Ordering::Relaxed),
                dir_bytes(&data) as f64 / MIB,
                report["store_bytes"].as_u64().unwrap_or(0) as f64 / MIB,
                report["live_bytes"].as_u64().unwrap_or(0) as f64 / MIB,
                report["audit"]["entries"],
                report["audit"]["pruned"],
            );
        }
        while clients.join_next().await.is_some() {}
        let (w1, r1, d1) = (
            load.writes.load(Ordering::Relaxed),
            load.reads.load(Ordering::Relaxed),
            dir_bytes(&data),
        );
        summary.push((phase, w1 - w0, r1 - r0, d1 as i64 - d0 as i64));
    }
    println!("per phase: data directory growth per operation");
    for (phase, writes, reads, grown) in summary {
        let ops = (writes + reads).max(1);
        println!(
            "  {:<6} {writes:>7} writes {reads:>7} reads  {:>+9.2} MiB  {:>+7.0} B/op",
            format!("{phase:?}").to_lowercase(),
            grown as f64 / MIB,
            grown as f64 / ops as f64
        );
    }
    println!("errors: {}", load.errors.load(Ordering::Relaxed));
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let seconds = env_u64("VRM_DISK_SECONDS", 60).max(3);
    let sample = env_u64("VRM_DISK_SAMPLE_SECONDS", 5).max(1);
    let cap = env_u64("VRM_DISK_CAP", 5_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // `VRM_DISK_RUNS=capped` (or `default`) runs one of the two, for a longer look at it.
    let runs = std::env::var("VRM_DISK_RUNS").unwrap_or_default();
    if runs != "capped" {
        rt.block_on(run("default retention", None, seconds, sample));
    }
    if runs != "default" {
        rt.block_on(run("capped retention", Some(cap), seconds, sample));
    }
}
