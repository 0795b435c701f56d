//! End-to-end throughput and memory benchmark for the `vrm-vault` server.
//!
//! Run it with:
//!
//! ```text
//! cargo bench --bench http
//! ```
//!
//! It takes about two to three minutes and prints a plain-text table and a summary. What it
//! measures, in this order, all on 127.0.0.1:
//!
//! 1. **Raw sled ceiling**: sled 0.34 opened the way the vault opens it (its default cache,
//!    high-throughput mode), inserting batches of 32 values of ~300 bytes under fresh 32-byte keys,
//!    each batch followed by `flush()`. This is the best a durable, group-committed store can do on
//!    this disk, and the yardstick for the HTTP write numbers.
//! 2. **Durable writes over HTTP**: the real `vrm-vault serve` binary runs as a child process; 32
//!    concurrent writers, each on its own keep-alive HTTP/1.1 connection, `PUT` fresh records. The
//!    server acknowledges a write only after its group-commit fsync, so every 2xx is durable.
//! 3. **Reads over HTTP**: 32 connections cycle `GET` through ~1000 existing records. The baseline
//!    is a constant-JSON axum endpoint served by this very binary re-executed with
//!    `--constant-server`, so both servers are separate processes measured by the same load
//!    generator with the same connections and duration.
//! 4. **Resident memory**: the vault is filled up to 100,000 records, then the server's `VmRSS`
//!    and `VmHWM` are read from `/proc/<pid>/status`, before and after listing every record
//!    (`GET /api/v1/records`, 1,000 per page).
//!
//! The load generator is a small hyper 1 client (one task per connection, looping until a
//! deadline) running on its own tokio runtime in this process. It counts 2xx responses, everything
//! else separately, and keeps every request's latency for p50/p99.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
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

    let cpu = cpu_model();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("vrm-vault HTTP bench on {cores} cores, {cpu}");
    println!();

    // 1. Raw sled ceiling (no server running yet, so it has the machine to itself).
    let raw = raw_sled_ceiling();
    println!(
        "raw sled: {} inserts in {:.1} s = {:.0} inserts/s",
        raw.inserts,
        raw.elapsed.as_secs_f64(),
        raw.per_sec()
    );

    // The load generator's own runtime; the servers are separate processes.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

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
    let constant = {
        let server = Server::start_constant();
        let get = |_: usize, _: u64| Some(get_request("/", None));
        rt.block_on(run_load(
            server.addr,
            CONNECTIONS,
            Some(Instant::now() + WARMUP),
            get,
        ));
        let result = rt.block_on(run_load(
            server.addr,
            CONNECTIONS,
            Some(Instant::now() + HTTP_DURATION),
            get,
        ));
        result.print("constant axum endpoint (GET /)");
        result
        // The constant server is killed here, before the fill, so it does not compete for CPU.
    };

    // 3c. The same comparison driven by wrk, when it is installed: a C load generator takes less
    // of the two cores away from the servers than the in-process one above, which costs the busier
    // server more. Both are reported; neither is tuned.
    let with_wrk = wrk_comparison(vault.addr, &auth, &read_set);

    // 4. A fresh vault filled to exactly 100,000 records, then its memory is measured. (The write
    // test's vault already holds more than that.) Every write goes to a fresh path, so each
    // acknowledged one created a record; counting by listing would inflate the server's peak
    // memory before we measure it.
    drop(vault);
    let vault = Server::start_vault();
    let token = rt.block_on(setup_vault(vault.addr));
    let auth = format!("Bearer {token}");
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

    drop(vault);

    // 5. Summary.
    let (p50, p99) = reads.percentiles();
    println!();
    println!("==================== summary ====================");
    println!("machine: {cores} cores, {cpu}");
    println!(
        "raw sled batched insert+flush (batch 32):  {:.0} inserts/s",
        raw.per_sec()
    );
    println!(
        "HTTP durable writes, 32 writers:           {:.0} writes/s  (ratio {:.2} of raw, \
         target >= 0.30)",
        writes.per_sec(),
        writes.per_sec() / raw.per_sec()
    );
    println!(
        "HTTP record reads, 32 conns:               {:.0} reads/s   (p50 {:.2} ms, p99 {:.2} ms)",
        reads.per_sec(),
        p50,
        p99
    );
    println!(
        "constant axum endpoint, 32 conns:          {:.0} req/s     (ratio {:.2}, target >= \
         0.50)",
        constant.per_sec(),
        reads.per_sec() / constant.per_sec()
    );
    match &with_wrk {
        Some((reads, constant)) => println!(
            "same reads / constant, driven by wrk:      {reads:.0} / {constant:.0} req/s (ratio {:.2}, \
             target >= 0.50)",
            reads / constant
        ),
        None => println!("same reads / constant, driven by wrk:      wrk not installed"),
    }
    println!(
        "server RSS with {records} records:{:pad$}{:.0} MiB (peak {:.0} MiB); after full \
         list: {:.0} MiB",
        "",
        before.rss,
        before.hwm,
        after.rss,
        pad = 43usize.saturating_sub(format!("server RSS with {records} records:").len())
    );
    let errors = writes.errors + reads.errors + constant.errors + fill.errors;
    println!("errors (non-2xx or failed requests):       {errors}");
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

/// A server child process, killed on drop (also when the bench panics).
struct Server {
    child: Child,
    addr: SocketAddr,
    /// Where its stderr (logs) goes: shown if it fails to start.
    log: std::path::PathBuf,
    // Dropped after `child` is killed: the data directory and the log file.
    _dirs: Vec<TempDir>,
}

impl Server {
    fn start_vault() -> Server {
        let data = TempDir::new().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vrm-vault"));
        // The server's own defaults (cache size included): what a self-hoster runs.
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data.path())
            .args(["--listen", "127.0.0.1:0"]);
        Server::spawn(cmd, data)
    }

    /// Re-executes this bench binary as the constant-endpoint server.
    fn start_constant() -> Server {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.arg("--constant-server");
        Server::spawn(cmd, TempDir::new().unwrap())
    }

    fn spawn(mut cmd: Command, dir: TempDir) -> Server {
        let logs = TempDir::new().unwrap();
        let log = logs.path().join("stderr.log");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            _dirs: vec![dir, logs],
        };
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
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => server.addr = addr.parse().unwrap(),
            Err(_) => panic!(
                "server did not print its address; stderr:\n{}",
                std::fs::read_to_string(&server.log).unwrap_or_default()
            ),
        }
        server
    }

    fn memory(&self) -> Memory {
        read_memory(self.child.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// Resident and peak-resident memory in MiB.
struct Memory {
    rss: f64,
    hwm: f64,
}

fn read_memory(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = |name: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    Memory {
        rss: kib("VmRSS:") / 1024.0,
        hwm: kib("VmHWM:") / 1024.0,
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
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
    /// Non-2xx statuses (0 = transport failure or timeout) and how often each occurred.
    error_statuses: BTreeMap<u16, u64>,
    /// The first few error bodies, verbatim, for the report.
    error_samples: Vec<String>,
}

impl LoadResult {
    fn per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// p50 and p99 in milliseconds.
    fn percentiles(&self) -> (f64, f64) {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let at = |q: f64| {
            if sorted.is_empty() {
                return f64::NAN;
            }
            let i = ((sorted.len() - 1) as f64 * q).round() as usize;
            f64::from(sorted[i]) / 1000.0
        };
        (at(0.50), at(0.99))
    }

    fn merge(&mut self, other: LoadResult) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.latencies_us.extend(other.latencies_us);
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
            Ok(Ok((status, _))) if status.is_success() => result.ok += 1,
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

/// Runs wrk (1 thread, 32 connections, the same duration) against the vault's record reads,
/// cycling through `paths`, and against a fresh constant server; `None` without wrk.
fn wrk_comparison(vault: SocketAddr, auth: &str, paths: &[String]) -> Option<(f64, f64)> {
    let available = Command::new("wrk").arg("--version").output().is_ok();
    if !available {
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
    let seconds = format!("{}s", HTTP_DURATION.as_secs());
    let run = |url: String, script: Option<&std::path::Path>| -> Option<f64> {
        let mut cmd = Command::new("wrk");
        cmd.args(["-t1", "-c32", "-d", &seconds]);
        if let Some(script) = script {
            cmd.arg("-s").arg(script);
        }
        let out = cmd.arg(url).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let errors = text
            .lines()
            .any(|l| l.contains("Non-2xx") || l.contains("Socket errors"));
        if errors {
            println!("wrk reported errors:\n{text}");
        }
        text.lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
    };
    let reads = run(format!("http://{vault}"), Some(&script))?;
    let constant = {
        let server = Server::start_constant();
        run(format!("http://{}/", server.addr), None)?
    };
    println!("wrk: record reads {reads:.0} req/s, constant endpoint {constant:.0} req/s");
    Some((reads, constant))
}
