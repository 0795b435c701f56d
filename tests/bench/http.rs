//! End-to-end throughput and memory benchmark for the `vrm-vault` server.
//!
//! Run it with:
//!
//! ```text
//! cargo bench --bench http
//! ```
//!
//! It takes about two to three minutes (the `grants` section about 45 s of it) and prints a
//! plain-text table and a summary. What it measures, in this order, all on 127.0.0.1 (the section
//! names in brackets):
//!
//! 1. **Raw sled ceiling** [`sled`]: sled 0.34 opened the way the vault opens it (its default
//!    cache, high-throughput mode), inserting batches of 32 values of ~300 bytes under fresh
//!    32-byte keys, each batch followed by `flush()`. This is the best a durable, group-committed
//!    store can do on this disk, and the yardstick for the HTTP write numbers.
//! 2. **Durable writes over HTTP** [`records`]: the real `vrm-vault serve` binary runs as a child
//!    process; 32 concurrent writers, each on its own keep-alive HTTP/1.1 connection, `PUT` fresh
//!    records. The server acknowledges a write only after its group-commit fsync, so every 2xx is
//!    durable.
//! 3. **Reads over HTTP** [`records`]: 32 connections cycle `GET` through ~1000 existing records.
//!    The baseline is a constant-JSON axum endpoint served by this very binary re-executed with
//!    `--constant-server`, so both servers are separate processes measured by the same load
//!    generator with the same connections and duration.
//! 4. **Granted-field reads** [`grants`]: a fresh vault with one record (`contact.email`), one
//!    brand (invited, registered with `client_secret_basic`, terms accepted) and one owner-made
//!    read grant of that record without a use limit; the brand's client-credentials token naming
//!    the grant then drives `GET /brand/v1/data/contact.email` on 64 connections, against the
//!    constant endpoint on 64 connections, and again both with wrk when it is installed. Only 200
//!    answers count and anything else stops the bench; the grant's use count and the audit log
//!    must grow by exactly the number of 200s. Every such read is also a durable write (the use
//!    count and a `data.read` audit entry), so the section parses the store writer's trace log for
//!    how many writes each group commit (one fsync) carried and how long commit + fsync took, and
//!    reads `/proc` for the CPU time per request of each server (by thread: the tokio workers,
//!    the store's writer thread, sled's I/O threads) and for how the writer thread spent the run
//!    (on a CPU, waiting for one, blocked). `VRM_BENCH_GROUP_LOG=0` runs the vault without the
//!    trace log.
//! 5. **Resident memory** [`memory`]: the vault is filled up to 100,000 records, then the
//!    server's `VmRSS` and `VmHWM` are read from `/proc/<pid>/status`, before and after listing
//!    every record (`GET /api/v1/records`, 1,000 per page).
//!
//! To run only some sections, name them in `VRM_BENCH_ONLY` (comma-separated) or after `--`:
//!
//! ```text
//! VRM_BENCH_ONLY=grants cargo bench --bench http
//! cargo bench --bench http -- grants
//! ```
//!
//! The load generator is a small hyper 1 client (one task per connection, looping until a
//! deadline) running on its own tokio runtime in this process. It counts 2xx responses, everything
//! else separately, and keeps every request's latency for p50/p99.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../kit/mod.rs"]
mod kit;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use tempfile::TempDir;
use tokio::net::TcpStream;

use crate::kit::brand::{Remote, register_brand};
use crate::kit::grant::{day_grant, grant_token, id_of};
use crate::kit::machine::{cpu_model, memory_mib, percentiles};
use crate::kit::proc_stats::{CpuSample, GroupStats};
use crate::kit::server::Server;

/// Concurrent connections for every HTTP test.
const CONNECTIONS: usize = 32;
/// How long the raw sled test runs.
const SLED_DURATION: Duration = Duration::from_secs(5);
/// How long each timed HTTP test runs (kept at or above 5 s so one-off stalls average out).
const HTTP_DURATION: Duration = Duration::from_secs(10);
/// Unmeasured run before each read test, so caches and connections are warm for both servers.
const WARMUP: Duration = Duration::from_secs(1);
/// Records the memory test fills the vault up to.
const TARGET_RECORDS: u64 = 100_000;
/// The fill stops here even if the target is not reached, so the bench always ends.
const FILL_TIME_LIMIT: Duration = Duration::from_secs(300);
/// A request that takes longer than this counts as an error and its connection is replaced.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Records the read test cycles through.
const READ_SET: usize = 1024;
/// How many non-2xx response bodies each test keeps for the report.
const SAMPLE_ERRORS: usize = 5;

const PASSPHRASE: &str = "bench passphrase 123";
const SLED_BATCH: usize = 32;

fn main() {
    // `cargo bench` passes `--bench` (and maybe filters): only our own flag matters.
    if std::env::args().any(|a| a == "--constant-server") {
        constant_server();
        return;
    }
    let sections = selected_sections();

    let cpu = cpu_model();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("vrm-vault HTTP bench on {cores} cores, {cpu}");
    println!("sections: {}", sections.join(", "));
    println!();

    // 1. Raw sled ceiling (no server running yet, so it has the machine to itself).
    let raw = sections.contains(&"sled").then(|| {
        let raw = raw_sled_ceiling();
        println!(
            "raw sled: {} inserts in {:.1} s = {:.0} inserts/s",
            raw.inserts,
            raw.elapsed.as_secs_f64(),
            raw.per_sec()
        );
        raw
    });

    // The load generator's own runtime; the servers are separate processes.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // 2 and 3. Durable writes, record reads, the constant endpoint (and wrk).
    let records = sections.contains(&"records").then(|| records_section(&rt));

    // 4. Granted-field reads by a brand, against the constant endpoint with 64 connections.
    let grants = sections.contains(&"grants").then(|| grants_section(&rt));

    // 5. Resident memory with 100,000 records.
    let memory = sections.contains(&"memory").then(|| memory_section(&rt));

    // 6. Summary.
    println!();
    println!("==================== summary ====================");
    println!("machine: {cores} cores, {cpu}");
    let mut errors = 0;
    if let Some(raw) = &raw {
        println!(
            "raw sled batched insert+flush (batch 32):  {:.0} inserts/s",
            raw.per_sec()
        );
    }
    if let Some(r) = &records {
        let ratio = raw.as_ref().map_or_else(
            || "n/a without the sled section".to_owned(),
            |raw| format!("{:.2}", r.writes.per_sec() / raw.per_sec()),
        );
        println!(
            "HTTP durable writes, 32 writers:           {:.0} writes/s  (ratio {ratio} of raw, \
             target >= 0.30)",
            r.writes.per_sec(),
        );
        let (p50, p99) = r.reads.percentiles();
        println!(
            "HTTP record reads, 32 conns:               {:.0} reads/s   (p50 {:.2} ms, p99 {:.2} ms)",
            r.reads.per_sec(),
            p50,
            p99
        );
        println!(
            "constant axum endpoint, 32 conns:          {:.0} req/s     (ratio {:.2}, target >= \
             0.50)",
            r.constant.per_sec(),
            r.reads.per_sec() / r.constant.per_sec()
        );
        match &r.with_wrk {
            Some((reads, constant)) => println!(
                "same reads / constant, driven by wrk:      {reads:.0} / {constant:.0} req/s (ratio {:.2}, \
                 target >= 0.50)",
                reads / constant
            ),
            None => println!("same reads / constant, driven by wrk:      wrk not installed"),
        }
        errors += r.writes.errors + r.reads.errors + r.constant.errors;
    }
    if let Some(g) = &grants {
        // Labels padded to the same column as the lines above.
        let label = |text: String| format!("{text:<43}");
        let (p50, p99) = g.reads.percentiles();
        println!(
            "{}{:.0} reads/s   (p50 {p50:.2} ms, p99 {p99:.2} ms)",
            label(format!("granted-field reads, {GRANT_CONNECTIONS} conns:")),
            g.reads.per_sec()
        );
        let (p50, p99) = g.constant.percentiles();
        println!(
            "{}{:.0} req/s     (p50 {p50:.2} ms, p99 {p99:.2} ms)",
            label(format!(
                "constant axum endpoint, {GRANT_CONNECTIONS} conns:"
            )),
            g.constant.per_sec()
        );
        println!(
            "{}ratio {:.2} (target >= 0.50)",
            label("granted reads / constant:".into()),
            g.reads.per_sec() / g.constant.per_sec()
        );
        if let (Some(granted), Some(constant)) = (g.reads.server_cpu_us, g.constant.server_cpu_us) {
            // CPU per request is far less sensitive to the machine's other load than rates.
            println!(
                "{}{granted:.1} µs granted, {constant:.1} µs constant ({:.1}x)",
                label("server CPU per request:".into()),
                granted / constant
            );
        }
        match &g.with_wrk {
            Some((reads, constant)) => println!(
                "{}{:.0} / {:.0} req/s (ratio {:.2})",
                label("same, driven by wrk:".into()),
                reads.per_sec,
                constant.per_sec,
                reads.per_sec / constant.per_sec
            ),
            None => println!("{}wrk not installed", label("same, driven by wrk:".into())),
        }
        if let Some(groups) = &g.groups {
            println!(
                "{}{:.1} writes per fsync on average ({} groups)",
                label("writer groups during the granted reads:".into()),
                groups.mean_size(),
                groups.len()
            );
        }
        errors += g.reads.errors + g.constant.errors;
    }
    if let Some(m) = &memory {
        println!(
            "server RSS with {} records:{:pad$}{:.0} MiB (peak {:.0} MiB); after full \
             list: {:.0} MiB",
            m.records,
            "",
            m.before.rss,
            m.before.hwm,
            m.after.rss,
            pad = 43usize.saturating_sub(format!("server RSS with {} records:", m.records).len())
        );
        errors += m.fill.errors;
    }
    println!("errors (non-2xx or failed requests):       {errors}");
}

// ---------------------------------------------------------------------------------------------
// Section selection
// ---------------------------------------------------------------------------------------------

/// The sections, in the order they run.
const SECTIONS: [&str; 4] = ["sled", "records", "grants", "memory"];

/// The sections to run: those named in `VRM_BENCH_ONLY` (comma-separated) and those given as
/// arguments (`cargo bench --bench http -- grants`); every section when none is named. An unknown
/// name in the variable stops the bench; unknown arguments are ignored (cargo passes its own).
fn selected_sections() -> Vec<&'static str> {
    let mut asked: Vec<String> = Vec::new();
    if let Ok(only) = std::env::var("VRM_BENCH_ONLY") {
        for name in only.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            assert!(
                SECTIONS.contains(&name),
                "VRM_BENCH_ONLY: unknown section {name:?}; the sections are {SECTIONS:?}"
            );
            asked.push(name.to_owned());
        }
    }
    asked.extend(
        std::env::args()
            .skip(1)
            .filter(|a| SECTIONS.contains(&a.as_str())),
    );
    if asked.is_empty() {
        return SECTIONS.to_vec();
    }
    SECTIONS
        .into_iter()
        .filter(|s| asked.iter().any(|a| a == s))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Records: durable writes, record reads, the constant endpoint
// ---------------------------------------------------------------------------------------------

struct RecordsResults {
    writes: LoadResult,
    reads: LoadResult,
    constant: LoadResult,
    with_wrk: Option<(f64, f64)>,
}

fn records_section(rt: &tokio::runtime::Runtime) -> RecordsResults {
    // 2. Durable writes.
    let vault = Server::start_vault();
    let token = rt.block_on(setup_vault(vault.addr));
    let auth = format!("Bearer {token}");
    let value = record_value();
    let writes = rt.block_on(run_load(
        vault.addr,
        CONNECTIONS,
        Some(Instant::now() + HTTP_DURATION),
        {
            let (auth, value) = (auth.clone(), value.clone());
            move |conn, seq| Some(put_record(&auth, &format!("bench.w{conn}-{seq}"), &value))
        },
    ));
    writes.print("HTTP durable writes (PUT)");

    // 3a. Reads of existing records: keep only those the server really has.
    let read_set = rt.block_on(existing_paths(vault.addr, &auth));
    assert!(
        !read_set.is_empty(),
        "none of the records written in the write test can be read back"
    );
    let read_set = Arc::new(read_set);
    let get = {
        let (auth, read_set) = (auth.clone(), read_set.clone());
        move |conn: usize, seq: u64| {
            // Connections start at different offsets so they do not all hit the same record.
            let i = (conn * 31 + seq as usize) % read_set.len();
            Some(get_request(
                &format!("/api/v1/records/{}", read_set[i]),
                Some(&auth),
            ))
        }
    };
    rt.block_on(run_load(
        vault.addr,
        CONNECTIONS,
        Some(Instant::now() + WARMUP),
        get.clone(),
    ));
    let reads = rt.block_on(run_load(
        vault.addr,
        CONNECTIONS,
        Some(Instant::now() + HTTP_DURATION),
        get,
    ));
    reads.print(&format!(
        "HTTP record reads (GET, {} records)",
        read_set.len()
    ));

    // 3b. The constant endpoint, same generator, same connections, same duration.
    let constant = measure_constant(rt, CONNECTIONS);

    // 3c. The same comparison driven by wrk, when it is installed: a C load generator takes less
    // of the two cores away from the servers than the in-process one above, which costs the busier
    // server more. Both are reported; neither is tuned.
    let with_wrk = wrk_comparison(vault.addr, &auth, &read_set);
    RecordsResults {
        writes,
        reads,
        constant,
        with_wrk,
    }
}

/// A fresh constant server, warmed up, then measured with `connections` connections for
/// `HTTP_DURATION`; killed before this returns so it competes with nothing afterwards.
fn measure_constant(rt: &tokio::runtime::Runtime, connections: usize) -> LoadResult {
    let server = Server::start_constant();
    let get = |_: usize, _: u64| Some(get_request("/", None));
    rt.block_on(run_load(
        server.addr,
        connections,
        Some(Instant::now() + WARMUP),
        get,
    ));
    let cpu_before = (
        CpuSample::of(server.child.id()),
        CpuSample::of(std::process::id()),
    );
    let result = rt.block_on(run_load(
        server.addr,
        connections,
        Some(Instant::now() + HTTP_DURATION),
        get,
    ));
    let cpu_after = (
        CpuSample::of(server.child.id()),
        CpuSample::of(std::process::id()),
    );
    result.print(&format!(
        "constant axum endpoint (GET /, {connections} conns)"
    ));
    let mut result = result;
    result.server_cpu_us = Some(cpu_after.0.print_since(
        &cpu_before.0,
        result.ok,
        result.elapsed,
        "constant server",
    ));
    cpu_after
        .1
        .print_since(&cpu_before.1, result.ok, result.elapsed, "load generator");
    result
}

// ---------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------

struct MemoryResults {
    fill: LoadResult,
    records: u64,
    before: Memory,
    after: Memory,
}

/// A fresh vault filled to exactly 100,000 records, then its memory is measured. Every write goes
/// to a fresh path, so each acknowledged one created a record; counting by listing would inflate
/// the server's peak memory before we measure it.
fn memory_section(rt: &tokio::runtime::Runtime) -> MemoryResults {
    let vault = Server::start_vault();
    let token = rt.block_on(setup_vault(vault.addr));
    let auth = format!("Bearer {token}");
    let value = record_value();
    let already = 0;
    println!("filling the vault from {already} to {TARGET_RECORDS} records…");
    let fill = rt.block_on(fill_vault(vault.addr, &auth, &value, already));
    fill.print("fill writes (PUT)");
    let before = vault.memory();
    let list_start = Instant::now();
    let (list_bytes, records) = rt.block_on(list_all(vault.addr, &auth));
    let list_time = list_start.elapsed();
    let after = vault.memory();
    println!(
        "full list: {:.1} MiB of JSON in {:.2} s",
        list_bytes as f64 / MIB,
        list_time.as_secs_f64()
    );
    println!(
        "server memory with {records} records (counted by the list): VmRSS {:.1} MiB, VmHWM {:.1} MiB; after full \
         list: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        before.rss, before.hwm, after.rss, after.hwm
    );
    MemoryResults {
        fill,
        records,
        before,
        after,
    }
}

// ---------------------------------------------------------------------------------------------
// Granted-field reads
// ---------------------------------------------------------------------------------------------

/// Connections for the granted-read comparison (brands are many clients at once).
const GRANT_CONNECTIONS: usize = 64;
/// The record the brand reads, and its value.
const GRANT_FIELD: &str = "contact.email";
const GRANT_VALUE: &str = "bench.reader@example.org";

struct GrantResults {
    reads: LoadResult,
    constant: LoadResult,
    with_wrk: Option<(WrkResult, WrkResult)>,
    /// The writer's groups during the measured in-process run, when logged.
    groups: Option<GroupStats>,
}

/// What the brand needs to read, and what the owner needs to check its use.
struct GrantSetup {
    owner_auth: String,
    brand_auth: String,
    grant_id: String,
}

/// A vault with one record, one brand that accepted the terms, one owner-made grant of that
/// record without a use limit, and a token for it; then the brand's reads of the record over
/// `GRANT_CONNECTIONS` connections against the constant endpoint over as many.
///
/// Every read is a durable write too (the grant's use count and a `data.read` audit entry,
/// group-committed by the store's writer thread). The writer logs each group at trace level, so
/// the vault runs with `VRM_LOG=info,vrm_vault::store=trace` and the log is parsed for group sizes
/// and commit-and-fsync times (`VRM_BENCH_GROUP_LOG=0` turns that off).
fn grants_section(rt: &tokio::runtime::Runtime) -> GrantResults {
    let log_groups = std::env::var("VRM_BENCH_GROUP_LOG").map_or(true, |v| v != "0");
    let vault = if log_groups {
        Server::start_vault_with(&[
            ("VRM_LOG", "info,vrm_vault::store=trace"),
            ("NO_COLOR", "1"),
        ])
    } else {
        Server::start_vault()
    };
    let setup = rt.block_on(setup_grant(vault.addr));
    println!(
        "granted reads: vault pid {}, grant {}, {GRANT_CONNECTIONS} connections",
        vault.child.id(),
        setup.grant_id
    );
    let uri = format!("/brand/v1/data/{GRANT_FIELD}");
    let get = {
        let auth = setup.brand_auth.clone();
        move |_: usize, _: u64| Some(get_request(&uri, Some(&auth)))
    };
    rt.block_on(run_load(
        vault.addr,
        GRANT_CONNECTIONS,
        Some(Instant::now() + WARMUP),
        get.clone(),
    ))
    .expect_only(200, "granted reads (warm-up)");

    let uses_before = rt.block_on(grant_uses(vault.addr, &setup));
    let audit_before = rt.block_on(audit_seq(vault.addr, &setup.owner_auth));
    let log_before = vault.log_len();
    let cpu_before = (
        CpuSample::of(vault.child.id()),
        CpuSample::of(std::process::id()),
    );
    let reads = rt.block_on(run_load(
        vault.addr,
        GRANT_CONNECTIONS,
        Some(Instant::now() + HTTP_DURATION),
        get,
    ));
    let cpu_after = (
        CpuSample::of(vault.child.id()),
        CpuSample::of(std::process::id()),
    );
    let log_after = vault.log_len();
    reads.print(&format!("granted reads (GET /brand/v1/data/{GRANT_FIELD})"));
    reads.expect_only(200, "granted reads");
    let mut reads = reads;
    reads.server_cpu_us = Some(cpu_after.0.print_since(
        &cpu_before.0,
        reads.ok,
        reads.elapsed,
        "vault server",
    ));
    cpu_after
        .0
        .print_thread_time(&cpu_before.0, "vrm-store-write", reads.elapsed);
    cpu_after
        .1
        .print_since(&cpu_before.1, reads.ok, reads.elapsed, "load generator");
    let uses = rt.block_on(grant_uses(vault.addr, &setup)) - uses_before;
    let audited = rt.block_on(audit_seq(vault.addr, &setup.owner_auth)) - audit_before;
    println!(
        "  check: {} answers 200, grant uses +{uses}, audit entries +{audited}",
        reads.ok
    );
    assert!(
        uses == reads.ok && audited == reads.ok,
        "every 200 must be exactly one use of the grant and one audit entry"
    );
    let groups = log_groups.then(|| {
        let groups = GroupStats::from_log(&vault.log, log_before, log_after);
        groups.print_rates(reads.elapsed);
        groups
    });

    // The constant endpoint right after, same generator, connections and duration. The vault
    // stays up but idle.
    let constant = measure_constant(rt, GRANT_CONNECTIONS);
    println!("granted reads/s: {:.0}", reads.per_sec());
    println!("constant/s:      {:.0}", constant.per_sec());
    println!(
        "ratio:           {:.2} (target >= 0.50)",
        reads.per_sec() / constant.per_sec()
    );

    // The same pair driven by wrk, lighter on the shared cores than the in-process generator.
    let with_wrk = wrk_installed().then(|| {
        let uses_before = rt.block_on(grant_uses(vault.addr, &setup));
        let log_before = vault.log_len();
        let url = format!("http://{}/brand/v1/data/{GRANT_FIELD}", vault.addr);
        let header = format!("Authorization: {}", setup.brand_auth);
        let cpu_before = CpuSample::of(vault.child.id());
        let reads = run_wrk(&url, GRANT_CONNECTIONS, Some(&header), None)
            .unwrap_or_else(|| panic!("wrk gave no result for the granted reads"));
        let cpu_after = CpuSample::of(vault.child.id());
        let log_after = vault.log_len();
        let uses = rt.block_on(grant_uses(vault.addr, &setup)) - uses_before;
        reads.print(&format!("wrk: granted reads, {GRANT_CONNECTIONS} conns"));
        // wrk stops counting at its deadline with up to one request per connection in flight,
        // which the server may still complete.
        assert!(
            reads.non_2xx == 0
                && (reads.requests..=reads.requests + GRANT_CONNECTIONS as u64).contains(&uses),
            "wrk: {} non-2xx answers, {} responses counted for {uses} uses of the grant:\n{}",
            reads.non_2xx,
            reads.requests,
            reads.text
        );
        println!(
            "  check: wrk counted {} responses, all 2xx; grant uses +{uses}",
            reads.requests
        );
        cpu_after.print_since(&cpu_before, reads.requests, reads.elapsed, "vault server");
        cpu_after.print_thread_time(&cpu_before, "vrm-store-write", reads.elapsed);
        if log_groups {
            GroupStats::from_log(&vault.log, log_before, log_after).print_rates(reads.elapsed);
        }
        let server = Server::start_constant();
        let cpu_before = CpuSample::of(server.child.id());
        let constant = run_wrk(
            &format!("http://{}/", server.addr),
            GRANT_CONNECTIONS,
            None,
            None,
        )
        .unwrap_or_else(|| panic!("wrk gave no result for the constant endpoint"));
        let cpu_after = CpuSample::of(server.child.id());
        drop(server);
        constant.print(&format!(
            "wrk: constant endpoint, {GRANT_CONNECTIONS} conns"
        ));
        cpu_after.print_since(
            &cpu_before,
            constant.requests,
            constant.elapsed,
            "constant server",
        );
        println!(
            "wrk: granted reads/s {:.0}, constant/s {:.0}, ratio {:.2}",
            reads.per_sec,
            constant.per_sec,
            reads.per_sec / constant.per_sec
        );
        (reads, constant)
    });
    GrantResults {
        reads,
        constant,
        with_wrk,
        groups,
    }
}

/// Sets up the vault at `addr` for granted reads, checking each step and the first read.
async fn setup_grant(addr: SocketAddr) -> GrantSetup {
    let owner_auth = format!("Bearer {}", setup_vault(addr).await);
    let owner = Some(owner_auth.as_str());
    let (status, body) = call(
        addr,
        json_request(
            "PUT",
            &format!("/api/v1/records/{GRANT_FIELD}"),
            owner,
            &serde_json::json!({ "value": GRANT_VALUE }),
        ),
    )
    .await;
    assert_eq!(status, 201, "record: {body}");

    // The brand, set up the kit's way: invitation, registration with a client secret, acceptance
    // of the terms.
    let vault = Remote {
        client: reqwest::Client::new(),
        base: format!("http://{addr}"),
    };
    let owner_token = owner_auth.strip_prefix("Bearer ").unwrap();
    let brand = register_brand(&vault, owner_token, "Bench Reader Ltd").await;
    brand.accept_current(&vault).await;

    // The owner's grant, the kit's way: read the record, no use limit, for a day.
    let grant = day_grant(&vault, owner_token, &brand, &[GRANT_FIELD]).await;
    assert!(
        grant["max_uses"].is_null(),
        "the grant has a use limit: {grant}"
    );
    let grant_id = id_of(&grant);

    // Its token, by client credentials naming the grant.
    let brand_auth = format!("Bearer {}", grant_token(&vault, &brand, &grant_id).await);

    // The read the bench repeats works and returns the value.
    let (status, field) = call(
        addr,
        get_request(&format!("/brand/v1/data/{GRANT_FIELD}"), Some(&brand_auth)),
    )
    .await;
    assert_eq!(status, 200, "granted read: {field}");
    assert_eq!(field["value"], GRANT_VALUE, "granted read: {field}");
    GrantSetup {
        owner_auth,
        brand_auth,
        grant_id,
    }
}

/// The grant's use count, as the owner sees it.
async fn grant_uses(addr: SocketAddr, setup: &GrantSetup) -> u64 {
    let (status, grant) = call(
        addr,
        get_request(
            &format!("/api/v1/grants/{}", setup.grant_id),
            Some(&setup.owner_auth),
        ),
    )
    .await;
    assert_eq!(status, 200, "grant: {grant}");
    assert_eq!(grant["status"], "active", "grant: {grant}");
    grant["uses"].as_u64().unwrap()
}

/// The sequence number of the newest audit entry (the log's length).
async fn audit_seq(addr: SocketAddr, owner_auth: &str) -> u64 {
    let (status, page) = call(addr, get_request("/api/v1/audit?limit=1", Some(owner_auth))).await;
    assert_eq!(status, 200, "audit: {page}");
    page["entries"][0]["seq"].as_u64().unwrap()
}

fn json_request(
    method: &str,
    uri: &str,
    auth: Option<&str>,
    body: &serde_json::Value,
) -> Request<Full<Bytes>> {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(HOST, "127.0.0.1")
        .header(CONTENT_TYPE, "application/json");
    if let Some(auth) = auth {
        req = req.header(AUTHORIZATION, auth);
    }
    req.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

/// One request on a fresh connection; the status and the JSON body (`null` when not JSON).
async fn call(addr: SocketAddr, req: Request<Full<Bytes>>) -> (u16, serde_json::Value) {
    let (status, body) = one_shot(addr, req).await;
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

// ---------------------------------------------------------------------------------------------
// Raw sled
// ---------------------------------------------------------------------------------------------

struct RawResult {
    inserts: u64,
    elapsed: Duration,
}

impl RawResult {
    fn per_sec(&self) -> f64 {
        self.inserts as f64 / self.elapsed.as_secs_f64()
    }
}

/// Batches of 32 inserts, each batch made durable with `flush()`: what a group commit of 32
/// concurrent writers costs at the storage layer, without HTTP, JSON, crypto or auth on top.
fn raw_sled_ceiling() -> RawResult {
    let dir = TempDir::new().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(vrm_vault::store::DEFAULT_CACHE_BYTES)
        .mode(sled::Mode::HighThroughput)
        .open()
        .unwrap();
    let mut rng = SplitMix(0x5eed);
    let mut inserts = 0u64;
    let start = Instant::now();
    while start.elapsed() < SLED_DURATION {
        for _ in 0..SLED_BATCH {
            // Random keys are fresh (2^-256 collision odds) and scatter like hashed record ids.
            let key: Vec<u8> = (0..4).flat_map(|_| rng.next().to_le_bytes()).collect();
            // ~300 bytes of noise: encrypted record values do not compress either.
            let value: Vec<u8> = (0..38).flat_map(|_| rng.next().to_le_bytes()).collect();
            db.insert(key, &value[..300]).unwrap();
        }
        db.flush().unwrap();
        inserts += SLED_BATCH as u64;
    }
    RawResult {
        inserts,
        elapsed: start.elapsed(),
    }
}

/// A tiny deterministic PRNG: good enough for incompressible bench data, no dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/// The bench's ways to start the kit's server: the vault as a self-hoster runs it, and this
/// binary as the constant-endpoint server that bounds what the HTTP stack alone costs.
impl Server {
    fn start_vault() -> Server {
        // The server's own defaults (cache size included): what a self-hoster runs.
        Server::start_vault_with(&[])
    }

    /// A vault server with extra environment variables (e.g. its log filter).
    fn start_vault_with(envs: &[(&str, &str)]) -> Server {
        Server::vault(|cmd| {
            cmd.envs(envs.iter().copied());
        })
    }

    /// Re-executes this bench binary as the constant-endpoint server.
    fn start_constant() -> Server {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.arg("--constant-server");
        Server::spawn(cmd, TempDir::new().unwrap())
    }

    fn memory(&self) -> Memory {
        let (rss, hwm) = memory_mib(self.child.id());
        Memory { rss, hwm }
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// Resident and peak-resident memory in MiB.
struct Memory {
    rss: f64,
    hwm: f64,
}

/// The baseline server: a constant small JSON body from axum 0.8 on a multi-thread runtime, the
/// same runtime flavour the vault uses. Serves until killed.
fn constant_server() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(|| async {
                (
                    [(CONTENT_TYPE, "application/json")],
                    r#"{"status":"ok","version":"0.1.0"}"#,
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!(
            "constant-server listening on http://{}",
            listener.local_addr().unwrap()
        );
        axum::serve(listener, app).await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// A ~100-character string value, the size of a typical preference or address line.
fn record_value() -> String {
    let text = "prefers email over phone, no marketing, weekly digest on mondays; language en-GB; \
                timezone Europe/London";
    serde_json::json!({ "value": text, "category": "pd:Preference" }).to_string()
}

fn put_record(auth: &str, path: &str, body: &str) -> Request<Full<Bytes>> {
    Request::put(format!("/api/v1/records/{path}"))
        .header(HOST, "127.0.0.1")
        .header(AUTHORIZATION, auth)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

fn get_request(uri: &str, auth: Option<&str>) -> Request<Full<Bytes>> {
    let mut req = Request::get(uri).header(HOST, "127.0.0.1");
    if let Some(auth) = auth {
        req = req.header(AUTHORIZATION, auth);
    }
    req.body(Full::new(Bytes::new())).unwrap()
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    // Small requests and responses: do not let Nagle batch them behind delayed ACKs.
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One request on a fresh connection, for setup and checks; returns status and body.
async fn one_shot(addr: SocketAddr, req: Request<Full<Bytes>>) -> (u16, Bytes) {
    let mut sender = connect(addr).await.unwrap();
    let response = sender.send_request(req).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body)
}

/// Creates the vault and returns the owner's bearer token.
async fn setup_vault(addr: SocketAddr) -> String {
    let body = serde_json::json!({ "passphrase": PASSPHRASE }).to_string();
    let req = Request::post("/api/v1/setup")
        .header(HOST, "127.0.0.1")
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let (status, body) = one_shot(addr, req).await;
    assert_eq!(status, 201, "setup: {}", String::from_utf8_lossy(&body));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    json["token"].as_str().unwrap().to_owned()
}

/// Picks the read set among records the write test created, keeping only those that exist.
async fn existing_paths(addr: SocketAddr, auth: &str) -> Vec<String> {
    let mut sender = connect(addr).await.unwrap();
    let mut found = Vec::new();
    // The first 32 writes of each of the 32 writers: 1024 candidates.
    for seq in 0..READ_SET / CONNECTIONS {
        for conn in 0..CONNECTIONS {
            let path = format!("bench.w{conn}-{seq}");
            sender.ready().await.unwrap();
            let response = sender
                .send_request(get_request(&format!("/api/v1/records/{path}"), Some(auth)))
                .await
                .unwrap();
            let ok = response.status().is_success();
            response.into_body().collect().await.unwrap();
            if ok {
                found.push(path);
            }
        }
    }
    if found.len() < READ_SET {
        println!(
            "note: only {} of {READ_SET} read candidates exist",
            found.len()
        );
    }
    found
}

/// Downloads every record, page by page (the list is paged); returns the bytes of JSON received
/// and the number of records.
async fn list_all(addr: SocketAddr, auth: &str) -> (usize, u64) {
    let mut bytes = 0;
    let mut count = 0;
    let mut cursor: Option<String> = None;
    loop {
        let uri = match &cursor {
            Some(c) => format!("/api/v1/records?limit=1000&cursor={c}"),
            None => "/api/v1/records?limit=1000".to_owned(),
        };
        let (status, body) = one_shot(addr, get_request(&uri, Some(auth))).await;
        assert_eq!(
            status,
            200,
            "full list: {}",
            String::from_utf8_lossy(&body[..body.len().min(500)])
        );
        bytes += body.len();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        count += json["records"].as_array().map_or(0, |a| a.len() as u64);
        match json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (bytes, count),
        }
    }
}

/// Writes fresh records with 32 writers until the vault holds `TARGET_RECORDS` (or the time
/// limit passes), printing progress every 10,000 acknowledged writes.
async fn fill_vault(addr: SocketAddr, auth: &str, body: &str, already: u64) -> LoadResult {
    let needed = TARGET_RECORDS.saturating_sub(already);
    // Indices are handed out from one counter so the writers together issue exactly `needed`.
    let next = Arc::new(AtomicU64::new(0));
    let progress = tokio::spawn({
        let next = next.clone();
        let start = Instant::now();
        async move {
            let mut reported = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let issued = next.load(Ordering::Relaxed).min(needed);
                while reported + 10_000 <= issued {
                    reported += 10_000;
                    println!(
                        "  … {} records ({:.0} s)",
                        already + reported,
                        start.elapsed().as_secs_f64()
                    );
                }
            }
        }
    });
    let (auth, body) = (auth.to_owned(), body.to_owned());
    let result = run_load(
        addr,
        CONNECTIONS,
        Some(Instant::now() + FILL_TIME_LIMIT),
        move |_, _| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            (n < needed).then(|| put_record(&auth, &format!("fill.r{n}"), &body))
        },
    )
    .await;
    progress.abort();
    result
}

// ---------------------------------------------------------------------------------------------
// Load generator
// ---------------------------------------------------------------------------------------------

/// What one run of the load generator saw, merged over its connections.
#[derive(Default)]
struct LoadResult {
    ok: u64,
    errors: u64,
    elapsed: Duration,
    /// Every request's latency (successful or not), in microseconds.
    latencies_us: Vec<u32>,
    /// 2xx statuses and how often each occurred.
    ok_statuses: BTreeMap<u16, u64>,
    /// Non-2xx statuses (0 = transport failure or timeout) and how often each occurred.
    error_statuses: BTreeMap<u16, u64>,
    /// The first few error bodies, verbatim, for the report.
    error_samples: Vec<String>,
    /// The server's CPU time per successful request, in microseconds, where measured.
    server_cpu_us: Option<f64>,
}

impl LoadResult {
    fn per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// p50 and p99 in milliseconds.
    fn percentiles(&self) -> (f64, f64) {
        percentiles(&self.latencies_us)
    }

    fn merge(&mut self, other: LoadResult) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.latencies_us.extend(other.latencies_us);
        for (status, n) in other.ok_statuses {
            *self.ok_statuses.entry(status).or_default() += n;
        }
        for (status, n) in other.error_statuses {
            *self.error_statuses.entry(status).or_default() += n;
        }
        for sample in other.error_samples {
            if self.error_samples.len() < SAMPLE_ERRORS {
                self.error_samples.push(sample);
            }
        }
    }

    fn print(&self, name: &str) {
        let (p50, p99) = self.percentiles();
        println!(
            "{name:<42} {:>9} ok {:>6} errors in {:>5.1} s = {:>8.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
            self.ok,
            self.errors,
            self.elapsed.as_secs_f64(),
            self.per_sec(),
            p50,
            p99
        );
        if self.errors > 0 {
            println!(
                "  error statuses (0 = transport error/timeout): {:?}",
                self.error_statuses
            );
            for sample in &self.error_samples {
                println!("  error body: {sample}");
            }
        }
    }

    /// Stops the bench, showing what came back, unless every answer had status `status`.
    fn expect_only(&self, status: u16, name: &str) {
        let others: BTreeMap<_, _> = self
            .ok_statuses
            .iter()
            .chain(&self.error_statuses)
            .filter(|(s, _)| **s != status)
            .collect();
        assert!(
            others.is_empty(),
            "{name}: answers other than {status}: {others:?}; first error bodies: {:?}",
            self.error_samples
        );
    }

    fn error(&mut self, status: u16, sample: String) {
        self.errors += 1;
        *self.error_statuses.entry(status).or_default() += 1;
        if self.error_samples.len() < SAMPLE_ERRORS {
            self.error_samples.push(sample);
        }
    }
}

/// Runs `connections` keep-alive connections, each sending requests back to back (the next one
/// only after the previous response body is fully read) until `deadline`, or until `make` returns
/// `None` for it. `make(connection, sequence)` builds each request.
async fn run_load<F>(
    addr: SocketAddr,
    connections: usize,
    deadline: Option<Instant>,
    make: F,
) -> LoadResult
where
    F: Fn(usize, u64) -> Option<Request<Full<Bytes>>> + Clone + Send + Sync + 'static,
{
    // Connect everyone first, so connection setup is not part of the measured time.
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        senders.push(connect(addr).await.unwrap());
    }
    let start = Instant::now();
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(conn, sender)| {
            let make = make.clone();
            tokio::spawn(connection_loop(addr, conn, sender, deadline, make))
        })
        .collect();
    let mut total = LoadResult::default();
    for task in tasks {
        total.merge(task.await.unwrap());
    }
    total.elapsed = start.elapsed();
    total
}

async fn connection_loop<F>(
    addr: SocketAddr,
    conn: usize,
    mut sender: SendRequest<Full<Bytes>>,
    deadline: Option<Instant>,
    make: F,
) -> LoadResult
where
    F: Fn(usize, u64) -> Option<Request<Full<Bytes>>>,
{
    let mut result = LoadResult {
        latencies_us: Vec::with_capacity(16 * 1024),
        ..LoadResult::default()
    };
    let mut seq = 0u64;
    while deadline.is_none_or(|d| Instant::now() < d) {
        let Some(req) = make(conn, seq) else { break };
        seq += 1;
        let sent = Instant::now();
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, async {
            sender.ready().await?;
            let response = sender.send_request(req).await?;
            let status = response.status();
            // The whole body is read: a response counts only once the client has all of it.
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        })
        .await;
        result
            .latencies_us
            .push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        match outcome {
            Ok(Ok((status, _))) if status.is_success() => {
                result.ok += 1;
                *result.ok_statuses.entry(status.as_u16()).or_default() += 1;
            }
            Ok(Ok((status, body))) => {
                result.error(status.as_u16(), String::from_utf8_lossy(&body).into_owned())
            }
            Ok(Err(e)) => {
                result.error(0, format!("transport error: {e}"));
                sender = reconnect(addr).await;
            }
            Err(_) => {
                result.error(0, format!("no response within {REQUEST_TIMEOUT:?}"));
                sender = reconnect(addr).await;
            }
        }
    }
    result
}

/// A broken connection is replaced so one failure does not silence a writer for the whole test.
async fn reconnect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    loop {
        match connect(addr).await {
            Ok(sender) => return sender,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn wrk_installed() -> bool {
    Command::new("wrk").arg("--version").output().is_ok()
}

/// Runs wrk (1 thread, 32 connections, the same duration) against the vault's record reads,
/// cycling through `paths`, and against a fresh constant server; `None` without wrk.
fn wrk_comparison(vault: SocketAddr, auth: &str, paths: &[String]) -> Option<(f64, f64)> {
    if !wrk_installed() {
        return None;
    }
    let dir = TempDir::new().ok()?;
    let script = dir.path().join("reads.lua");
    let list = paths
        .iter()
        .map(|p| format!("\"/api/v1/records/{p}\""))
        .collect::<Vec<_>>()
        .join(",");
    std::fs::write(
        &script,
        format!(
            "local paths = {{{list}}}\nlocal i = 0\nrequest = function()\n  i = i % #paths + 1\n  \
             return wrk.format(\"GET\", paths[i], {{[\"Authorization\"] = \"{auth}\"}})\nend\n"
        ),
    )
    .ok()?;
    let reads = run_wrk(&format!("http://{vault}"), CONNECTIONS, None, Some(&script))?;
    let constant = {
        let server = Server::start_constant();
        run_wrk(&format!("http://{}/", server.addr), CONNECTIONS, None, None)?
    };
    for result in [&reads, &constant] {
        if result.non_2xx > 0 || result.socket_errors.is_some() {
            println!("wrk reported errors:\n{}", result.text);
        }
    }
    println!(
        "wrk: record reads {:.0} req/s, constant endpoint {:.0} req/s",
        reads.per_sec, constant.per_sec
    );
    Some((reads.per_sec, constant.per_sec))
}

/// What one wrk run reported.
struct WrkResult {
    per_sec: f64,
    /// Responses received.
    requests: u64,
    elapsed: Duration,
    /// Responses with a status of 400 or more.
    non_2xx: u64,
    /// wrk's `Socket errors:` line, if any.
    socket_errors: Option<String>,
    /// p50 and p99 latency in milliseconds.
    p50: f64,
    p99: f64,
    /// wrk's whole output.
    text: String,
}

impl WrkResult {
    fn print(&self, name: &str) {
        println!(
            "{name:<42} {:>9} ok {:>6} errors in {:>5.1} s = {:>8.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
            self.requests - self.non_2xx,
            self.non_2xx,
            self.elapsed.as_secs_f64(),
            self.per_sec,
            self.p50,
            self.p99
        );
        if let Some(errors) = &self.socket_errors {
            println!("  wrk: {errors}");
        }
    }
}

/// Runs wrk with one thread, `connections` connections, for `HTTP_DURATION`, with an optional
/// header and Lua script; `None` if it cannot run or its output has no rate.
fn run_wrk(
    url: &str,
    connections: usize,
    header: Option<&str>,
    script: Option<&std::path::Path>,
) -> Option<WrkResult> {
    let seconds = format!("{}s", HTTP_DURATION.as_secs());
    let mut cmd = Command::new("wrk");
    cmd.args(["-t1", "--latency", "-d", &seconds])
        .arg(format!("-c{connections}"));
    if let Some(header) = header {
        cmd.arg("-H").arg(header);
    }
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    let out = cmd.arg(url).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // "1.23ms", "456.00us", "1.02s", "2.00m" in milliseconds.
    let millis = |v: &str| -> Option<f64> {
        let v = v.trim();
        let split = v.find(|c: char| c.is_ascii_alphabetic())?;
        let (n, unit) = v.split_at(split);
        let n: f64 = n.parse().ok()?;
        Some(match unit {
            "us" => n / 1000.0,
            "ms" => n,
            "s" => n * 1000.0,
            "m" => n * 60_000.0,
            _ => return None,
        })
    };
    let percentile = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p))
            .and_then(millis)
            .unwrap_or(f64::NAN)
    };
    let (requests, elapsed) = text
        .lines()
        .find_map(|l| {
            let (n, rest) = l.trim().split_once(" requests in ")?;
            let time = rest.split(',').next()?;
            Some((n.parse().ok()?, millis(time)?))
        })
        .unwrap_or((0, 0.0));
    Some(WrkResult {
        per_sec: text
            .lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())?,
        requests,
        elapsed: Duration::from_secs_f64(elapsed / 1000.0),
        non_2xx: text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
        socket_errors: text
            .lines()
            .find(|l| l.contains("Socket errors"))
            .map(|l| l.trim().to_owned()),
        p50: percentile("50%"),
        p99: percentile("99%"),
        text,
    })
}
