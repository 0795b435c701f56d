//! Soak run: a home server's busy hour, squeezed into a few minutes, watching for leaks.
//!
//! ```text
//! cargo bench --bench soak
//! VRM_SOAK_SECONDS=3600 cargo bench --bench soak     # an hour instead of five minutes
//! ```
//!
//! The real `vrm-vault serve` binary (release build) runs as a child process on 127.0.0.1 with a
//! fresh data directory and `--allow-loopback-webhooks`. The bench sets the vault up (owner, the
//! PDC-INTENT terms, 500 records, four brands that accept the terms, each with an owner-made read
//! grant of `contact.email` and a webhook subscription to `food` pointing at a receiver in this
//! process), fills it with 100,000 more records of ~300 bytes (`VRM_SOAK_FILL` changes that; 0
//! skips it) so that the store is larger than sled's page cache before anything is measured,
//! then drives a mixed load at fixed rates, not at maximum throughput:
//!
//! | kind | what | rate |
//! |---|---|---|
//! | record write | owner `PUT /api/v1/records/soak.rN` over 500 paths | 40/s |
//! | record read | owner `GET /api/v1/records/soak.rN` | 120/s |
//! | granted read | brand `GET /brand/v1/data/contact.email` with its grant's token | 80/s |
//! | intent | owner `POST /api/v1/intents` (`food.lunch`), broadcast to the four brands | 1 per 4 s |
//! | webhook | each brand's signed delivery reaching the receiver (POST start to arrival) | 1/s |
//! | offer | the brand answers each delivery: `POST /brand/v1/intents/{id}/offers` | 1/s |
//! | decision | the owner accepts one offer per intent and declines the others | 1/s |
//! | token | each brand renews both its tokens every 60 s (`POST /oauth/token`) | 8/min |
//!
//! about 242 requests/s in all. The load runs for `VRM_SOAK_SECONDS` (default 300) and stops by
//! itself; the first tenth of it (at most 30 s, in whole sampling intervals) is warm-up. Every `VRM_SOAK_SAMPLE_SECONDS`
//! (default 10) it samples, per kind, the requests done, the errors and p50/p99 latency over the
//! interval, and the server's `VmRSS` (`/proc/<pid>/status`), open file descriptors (entries of
//! `/proc/<pid>/fd`), CPU use and data directory size. The load is open-loop: requests are
//! started on a timer whatever the answers, so a slow server shows as latency and in-flight
//! requests rather than as a lower rate (more than 256 in flight counts as an error).
//!
//! After the load the bench waits (at most 30 s) for every expected webhook, offer and decision,
//! then prints the per-interval table and a summary, and exits non-zero when:
//!
//! - any request answered a status other than the expected one, failed in transport or timed
//!   out; a webhook was missing, duplicated or wrongly signed; or the server logged an error;
//! - the floor of the server's descriptors (lowest of three samples) at the end exceeds that at
//!   the end of the warm-up by more than `FD_MARGIN`;
//! - the least-squares slope of RSS over the samples of the second half of the run exceeds
//!   `RSS_SLOPE_LIMIT` MiB per minute (see there for why that figure).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../kit/mod.rs"]
mod kit;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use crate::kit::brand::{Remote, basic_metadata, register_with, status_json};
use crate::kit::grant::{grant_details, id_of};
use crate::kit::intent::Subscriber;
use crate::kit::machine::{cpu_model, load_average, memory_mib, percentiles};
use crate::kit::owner::Owner;
use crate::kit::server::Server;

/// How long the load runs unless `VRM_SOAK_SECONDS` says otherwise.
const DEFAULT_SECONDS: u64 = 300;
/// Sampling interval unless `VRM_SOAK_SAMPLE_SECONDS` says otherwise.
const DEFAULT_SAMPLE_SECONDS: u64 = 10;
/// The longest warm-up; shorter runs warm up for a tenth of their length.
const MAX_WARMUP: Duration = Duration::from_secs(30);

/// Fixed request rates, per second.
const RECORD_WRITES: f64 = 40.0;
const RECORD_READS: f64 = 120.0;
const GRANTED_READS: f64 = 80.0;
/// One intent every this long. Each brand offers on each intent, and the vault allows a brand
/// 30 offers a minute (`OFFERS_PER_MINUTE`), so this stays at 15 a minute, half of that.
const INTENT_EVERY: Duration = Duration::from_secs(4);
/// Each brand renews its two tokens this often (they live 900 s by default).
const TOKEN_EVERY: Duration = Duration::from_secs(60);

/// Records written before the load unless `VRM_SOAK_FILL` says otherwise: a vault with history,
/// and a store larger than sled's page cache (24 MiB by default), so that the cache is full
/// before the trend is measured rather than filling during it.
const DEFAULT_FILL: u64 = 100_000;
/// Concurrent writers of the fill.
const FILL_WRITERS: u64 = 16;

/// Brands, each subscribed with a webhook and holding a grant.
const BRANDS: usize = 4;
/// Records the owner's reads and writes cycle through (all written during setup).
const RECORD_PATHS: u64 = 500;
/// The granted field and its value.
const GRANT_FIELD: &str = "contact.email";
const GRANT_VALUE: &str = "soak.reader@example.org";
/// Owner-made grants are checked against the PDC-INTENT terms, which permit this purpose.
const GRANT_PURPOSE: &str = "dpv:RequestedServiceProvision";
const PASSPHRASE: &str = "soak passphrase, long enough";

/// More requests than this in flight means the server is not keeping up: an error.
const MAX_IN_FLIGHT: usize = 256;
/// A request that takes longer than this is an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the bench waits after the load for the deliveries, offers and decisions still due.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// Error answers kept per kind for the report.
const ERROR_SAMPLES: usize = 5;

/// How far the floor of the server's descriptors (the lowest count of three samples) may rise
/// from the start of the measured run to its end. Under load the count moves with connections:
/// the load generator's pool, the vault's webhook connections, the dozens a stall of a fraction
/// of a second opens and the server closes again once idle; the floor stays within a few. A
/// descriptor leaked per intent, offer or decision would raise it by 60 or more over five
/// minutes, one per request by thousands.
const FD_MARGIN: i64 = 16;
/// The largest RSS growth, in MiB per minute, tolerated over the second half of the run. By then
/// the vault's bounded memory is full: the fill made the store larger than sled's page cache
/// (24 MiB by default), and the warm-up and first half filled the caches of opened records
/// (8 MiB) and brands (1 MiB) and the verified tokens (10,000 at most). What grows after that is
/// a leak or a structure that grows with the store. 1 MiB/min is 1.4 GiB a day, enough to take
/// down a small home server (a Raspberry Pi has 1-8 GiB) within days; at ~242 requests/s it is
/// what 70 bytes lost per request would cost, so a per-request leak of any real size shows well
/// above it, while the allocator's steps (a MiB or two now and then) stay below it over the
/// two and a half minutes of the second half.
const RSS_SLOPE_LIMIT: f64 = 1.0;

const MIB: f64 = 1024.0 * 1024.0;

// ---------------------------------------------------------------------------------------------
// Kinds of work and what was measured
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    RecordWrite,
    RecordRead,
    GrantedRead,
    Intent,
    Webhook,
    Offer,
    Decision,
    Token,
}

const KINDS: [Kind; 8] = [
    Kind::RecordWrite,
    Kind::RecordRead,
    Kind::GrantedRead,
    Kind::Intent,
    Kind::Webhook,
    Kind::Offer,
    Kind::Decision,
    Kind::Token,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::RecordWrite => "record write",
            Kind::RecordRead => "record read",
            Kind::GrantedRead => "granted read",
            Kind::Intent => "intent",
            Kind::Webhook => "webhook",
            Kind::Offer => "offer",
            Kind::Decision => "decision",
            Kind::Token => "token",
        }
    }

    /// The rate this kind is driven at, per second (deliveries, offers and decisions follow from
    /// the intents).
    fn target_rate(self) -> f64 {
        let intents = 1.0 / INTENT_EVERY.as_secs_f64();
        match self {
            Kind::RecordWrite => RECORD_WRITES,
            Kind::RecordRead => RECORD_READS,
            Kind::GrantedRead => GRANTED_READS,
            Kind::Intent => intents,
            Kind::Webhook | Kind::Offer | Kind::Decision => intents * BRANDS as f64,
            Kind::Token => 2.0 * BRANDS as f64 / TOKEN_EVERY.as_secs_f64(),
        }
    }

    /// Whether this kind is a request the load generator sends (deliveries are received).
    fn is_request(self) -> bool {
        self != Kind::Webhook
    }

    fn index(self) -> usize {
        KINDS.iter().position(|k| *k == self).unwrap()
    }
}

/// What one kind did during one sampling interval.
#[derive(Default)]
struct Window {
    done: u64,
    errors: u64,
    latencies_us: Vec<u32>,
}

/// Per-kind counters: the current interval, and the run after the warm-up.
#[derive(Default)]
struct KindStats {
    window: Mutex<Window>,
    measured: Mutex<Vec<u32>>,
    errors: AtomicU64,
    samples: Mutex<Vec<String>>,
}

/// Everything the load tasks report to.
struct Recorder {
    kinds: Vec<KindStats>,
    /// Set at the end of the warm-up: latencies from then on count for the summary.
    measuring: AtomicBool,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            kinds: KINDS.iter().map(|_| KindStats::default()).collect(),
            measuring: AtomicBool::new(false),
        }
    }

    fn stats(&self, kind: Kind) -> &KindStats {
        &self.kinds[kind.index()]
    }

    fn ok(&self, kind: Kind, latency: Duration) {
        let us = latency.as_micros().min(u128::from(u32::MAX)) as u32;
        let stats = self.stats(kind);
        {
            let mut window = stats.window.lock().unwrap();
            window.done += 1;
            window.latencies_us.push(us);
        }
        if self.measuring.load(Ordering::Relaxed) {
            stats.measured.lock().unwrap().push(us);
        }
    }

    fn error(&self, kind: Kind, what: String) {
        let stats = self.stats(kind);
        stats.window.lock().unwrap().errors += 1;
        stats.errors.fetch_add(1, Ordering::Relaxed);
        let mut samples = stats.samples.lock().unwrap();
        if samples.len() < ERROR_SAMPLES {
            samples.push(what);
        }
    }

    fn total_errors(&self) -> u64 {
        self.kinds
            .iter()
            .map(|k| k.errors.load(Ordering::Relaxed))
            .sum()
    }

    /// Takes the current interval of every kind, leaving empty ones.
    fn take_windows(&self) -> Vec<Window> {
        self.kinds
            .iter()
            .map(|k| std::mem::take(&mut *k.window.lock().unwrap()))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The vault and the load's shared state
// ---------------------------------------------------------------------------------------------

/// A brand as the load generator drives it.
struct SoakBrand {
    client_id: String,
    /// `Basic base64(client_id:client_secret)`.
    basic: String,
    grant_id: String,
    /// Bearer token with `intents:read offers:write`, renewed every `TOKEN_EVERY`.
    api_token: RwLock<String>,
    /// Bearer token naming the brand's grant, renewed likewise.
    data_token: RwLock<String>,
}

/// What every load task shares.
struct Soak {
    base: String,
    client: reqwest::Client,
    owner_auth: String,
    brands: Vec<SoakBrand>,
    recorder: Recorder,
    deliveries: Mutex<Deliveries>,
    in_flight: Arc<Semaphore>,
    /// Offers and decisions started by deliveries and not finished yet.
    pipeline: AtomicU64,
    /// Offers made on each intent, until every brand has made one: (brand, offer id).
    offered: Mutex<HashMap<String, Vec<(usize, String)>>>,
}

/// The intents' deliveries, to time them and check that every one arrived exactly once.
#[derive(Default)]
struct Deliveries {
    /// Intent id → when its POST was sent (known once the POST answered).
    started: HashMap<String, Instant>,
    /// Deliveries that arrived before their intent's POST answered: intent id → arrival times.
    early: HashMap<String, Vec<Instant>>,
    /// Every `webhook-id` seen, to catch duplicates.
    seen: HashSet<String>,
    /// Intents the vault accepted.
    intents: u64,
    /// `vrm.intent.created.v1` deliveries received.
    intent_deliveries: u64,
    /// Offers decided (200), and the `vrm.offer.accepted/declined.v1` deliveries that tell it.
    decided: u64,
    decision_deliveries: u64,
    /// Deliveries of other types, by type.
    other: BTreeMap<String, u64>,
}

impl Soak {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn request(&self, method: Method, path: &str, auth: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("authorization", auth)
    }

    /// Sends `req` as one request of `kind`, timing it until the whole body is in; counts it as
    /// done when its status is `expect`, else as an error. Returns the JSON body when done.
    async fn send(&self, kind: Kind, req: RequestBuilder, expect: u16) -> Option<Value> {
        let Ok(_permit) = self.in_flight.clone().try_acquire_owned() else {
            self.recorder.error(
                kind,
                format!("not sent: {MAX_IN_FLIGHT} requests already in flight"),
            );
            return None;
        };
        let sent = Instant::now();
        let outcome = async {
            let response = req.send().await?;
            let status = response.status().as_u16();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        }
        .await;
        let latency = sent.elapsed();
        match outcome {
            Ok((status, body)) if status == expect => {
                self.recorder.ok(kind, latency);
                Some(serde_json::from_slice(&body).unwrap_or(Value::Null))
            }
            Ok((status, body)) => {
                let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
                self.recorder
                    .error(kind, format!("{status} (expected {expect}): {text}"));
                None
            }
            Err(e) => {
                self.recorder.error(kind, format!("transport: {e}"));
                None
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

fn env_seconds(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => panic!("{name}: expected a positive number of seconds, got {v:?}"),
        },
        Err(_) => default,
    }
}

fn main() -> ExitCode {
    let total = Duration::from_secs(env_seconds("VRM_SOAK_SECONDS", DEFAULT_SECONDS));
    let every = Duration::from_secs(env_seconds(
        "VRM_SOAK_SAMPLE_SECONDS",
        DEFAULT_SAMPLE_SECONDS,
    ));
    // A tenth of the run, at most `MAX_WARMUP`, in whole sampling intervals (at least one).
    let intervals = ((total / 10).min(MAX_WARMUP).as_secs_f64() / every.as_secs_f64()).ceil();
    let warmup = every * (intervals as u32).max(1);
    let fill_count = match std::env::var("VRM_SOAK_FILL") {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("VRM_SOAK_FILL: expected a number of records, got {v:?}")),
        Err(_) => DEFAULT_FILL,
    };
    let machine = Machine::read();
    println!(
        "vrm-vault soak: {} s of mixed load (warm-up {} s), a sample every {} s",
        total.as_secs(),
        warmup.as_secs(),
        every.as_secs()
    );
    println!("machine: {machine}");
    let target: f64 = KINDS
        .iter()
        .filter(|k| k.is_request())
        .map(|k| k.target_rate())
        .sum();
    println!("target: about {target:.0} requests/s in all");

    let server = Server::start();
    println!("vault pid {} on {}", server.child.id(), server.addr);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(run(&server, total, warmup, every, fill_count));
    let log = server.log_problems();
    let load_end = load_average();
    drop(rt);
    drop(server);
    let passed = report.print(&machine, &load_end, &log);
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Sets up, runs the load with the sampler, drains, and gathers what the report needs.
async fn run(
    server: &Server,
    total: Duration,
    warmup: Duration,
    every: Duration,
    fill_count: u64,
) -> Report {
    let (offer_tx, offer_rx) = mpsc::unbounded_channel();
    let receiver = Receiver::start(offer_tx).await;
    println!("webhook receiver on {}", receiver.addr);
    let started = Instant::now();
    let soak = Arc::new(setup(server.addr, &receiver).await);
    println!(
        "setup: owner, PDC-INTENT terms, {RECORD_PATHS} records, {BRANDS} brands with grants \
         and webhooks in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    *receiver.soak.write().unwrap() = Some(soak.clone());
    fill(&soak, fill_count).await;
    let rest_before = Probe::of(server);
    println!(
        "at rest before the load: RSS {:.1} MiB, {} fds",
        rest_before.rss_mib, rest_before.fds
    );
    println!();

    let start = Instant::now();
    let deadline = start + total;
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(steady(
        soak.clone(),
        Kind::RecordWrite,
        RECORD_WRITES,
        deadline,
    ));
    tasks.spawn(steady(
        soak.clone(),
        Kind::RecordRead,
        RECORD_READS,
        deadline,
    ));
    tasks.spawn(steady(
        soak.clone(),
        Kind::GrantedRead,
        GRANTED_READS,
        deadline,
    ));
    tasks.spawn(intents(soak.clone(), deadline));
    tasks.spawn(tokens(soak.clone(), deadline));
    tasks.spawn(offers(soak.clone(), offer_rx));

    let samples = sample(server, &soak, start, total, warmup, every).await;

    // The dispatchers stop at the deadline; the offer pipeline ends when the channel closes,
    // which is when the receiver goes, so wait for the work still due instead.
    let drained_in = drain(&soak).await;
    let rest_after = Probe::of(server);
    let deliveries = std::mem::take(&mut *soak.deliveries.lock().unwrap());
    drop(receiver);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    Report {
        total,
        warmup,
        samples,
        rest_before,
        rest_after,
        drained_in,
        deliveries,
        soak,
    }
}

/// Waits (at most `DRAIN_LIMIT`) until every request has answered, every intent was delivered to
/// every brand, and every decision was delivered; returns how long that took, or `None`.
async fn drain(soak: &Soak) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < DRAIN_LIMIT {
        let done = {
            let d = soak.deliveries.lock().unwrap();
            d.intent_deliveries >= d.intents * BRANDS as u64
                && d.decision_deliveries >= d.decided
                && d.early.is_empty()
        };
        let idle = soak.in_flight.available_permits() == MAX_IN_FLIGHT
            && soak.pipeline.load(Ordering::SeqCst) == 0
            && soak.offered.lock().unwrap().is_empty();
        if done && idle {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Writes `count` fresh records (`fill.rN`, ~300 bytes each) with `FILL_WRITERS` writers.
async fn fill(soak: &Arc<Soak>, count: u64) {
    if count == 0 {
        return;
    }
    let started = Instant::now();
    let value = fill_body();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..FILL_WRITERS {
        let (soak, value) = (soak.clone(), value.clone());
        writers.spawn(async move {
            for n in (w..count).step_by(FILL_WRITERS as usize) {
                let response = soak
                    .request(
                        Method::PUT,
                        &format!("/api/v1/records/fill.r{n}"),
                        &soak.owner_auth,
                    )
                    .header("content-type", "application/json")
                    .body(value.clone())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("fill record {n}: {e}"));
                let status = response.status().as_u16();
                assert_eq!(status, 201, "fill record {n}: {status}");
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "fill: {count} records of ~300 bytes in {seconds:.1} s ({:.0} writes/s)",
        count as f64 / seconds
    );
}

// ---------------------------------------------------------------------------------------------
// Load tasks
// ---------------------------------------------------------------------------------------------

/// A ticker that fires `rate` times a second and, when it falls behind, catches up at once
/// rather than dropping ticks: the rate is what the server gets.
fn ticker(rate: f64) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    ticker
}

/// Record writes, record reads or granted reads at `rate` until `deadline`, each request in its
/// own task so a slow answer does not hold the next one back.
async fn steady(soak: Arc<Soak>, kind: Kind, rate: f64, deadline: Instant) {
    let mut ticker = ticker(rate);
    let value = record_body();
    let mut seq = 0u64;
    loop {
        ticker.tick().await;
        if Instant::now() >= deadline {
            return;
        }
        seq += 1;
        // Scattered over the paths, so reads do not only hit what was just written.
        let path = format!("soak.r{}", seq.wrapping_mul(7919) % RECORD_PATHS);
        let soak2 = soak.clone();
        let value = value.clone();
        tokio::spawn(async move {
            let soak = soak2;
            let (req, expect) = match kind {
                Kind::RecordWrite => (
                    soak.request(
                        Method::PUT,
                        &format!("/api/v1/records/{path}"),
                        &soak.owner_auth,
                    )
                    .header("content-type", "application/json")
                    .body(value),
                    200,
                ),
                Kind::RecordRead => (
                    soak.request(
                        Method::GET,
                        &format!("/api/v1/records/{path}"),
                        &soak.owner_auth,
                    ),
                    200,
                ),
                _ => {
                    let brand = &soak.brands[seq as usize % BRANDS];
                    let auth = format!("Bearer {}", brand.data_token.read().unwrap());
                    (
                        soak.request(Method::GET, &format!("/brand/v1/data/{GRANT_FIELD}"), &auth),
                        200,
                    )
                }
            };
            soak.send(kind, req, expect).await;
        });
    }
}

/// One intent every `INTENT_EVERY`, to every brand.
async fn intents(soak: Arc<Soak>, deadline: Instant) {
    let mut ticker = ticker(1.0 / INTENT_EVERY.as_secs_f64());
    let mut n = 0u64;
    loop {
        ticker.tick().await;
        if Instant::now() >= deadline {
            return;
        }
        n += 1;
        let soak = soak.clone();
        tokio::spawn(async move {
            let body = json!({
                "category": "food.lunch",
                "text": format!("lunch nearby for two (soak intent {n})"),
                "expires_at": rfc3339_in(Duration::from_secs(3600)),
                "party_size": 2,
            });
            let sent = Instant::now();
            let req = soak
                .request(Method::POST, "/api/v1/intents", &soak.owner_auth)
                .json(&body);
            let Some(intent) = soak.send(Kind::Intent, req, 201).await else {
                return;
            };
            let recipients = intent["recipients_count"].as_u64().unwrap_or(0);
            if recipients != BRANDS as u64 {
                soak.recorder.error(
                    Kind::Intent,
                    format!("went to {recipients} brands, not {BRANDS}: {intent}"),
                );
            }
            let id = intent["id"].as_str().unwrap_or_default().to_owned();
            let mut d = soak.deliveries.lock().unwrap();
            d.intents += 1;
            // Deliveries can beat the POST's answer: time those now.
            for arrived in d.early.remove(&id).unwrap_or_default() {
                soak.recorder
                    .ok(Kind::Webhook, arrived.saturating_duration_since(sent));
            }
            d.started.insert(id, sent);
        });
    }
}

/// Every brand renews its API token and its grant token every `TOKEN_EVERY`.
async fn tokens(soak: Arc<Soak>, deadline: Instant) {
    let mut ticker = tokio::time::interval(TOKEN_EVERY);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if Instant::now() >= deadline {
            return;
        }
        for brand in &soak.brands {
            if let Some(token) = api_token(&soak, brand).await {
                *brand.api_token.write().unwrap() = token;
            }
            if let Some(token) = data_token(&soak, brand).await {
                *brand.data_token.write().unwrap() = token;
            }
        }
    }
}

async fn api_token(soak: &Soak, brand: &SoakBrand) -> Option<String> {
    let req = soak
        .request(Method::POST, "/oauth/token", &brand.basic)
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "intents:read offers:write"),
        ]);
    soak.send(Kind::Token, req, 200).await?["access_token"]
        .as_str()
        .map(str::to_owned)
}

async fn data_token(soak: &Soak, brand: &SoakBrand) -> Option<String> {
    let details = grant_details(&brand.grant_id);
    let req = soak
        .request(Method::POST, "/oauth/token", &brand.basic)
        .form(&[
            ("grant_type", "client_credentials"),
            ("authorization_details", details.as_str()),
        ]);
    soak.send(Kind::Token, req, 200).await?["access_token"]
        .as_str()
        .map(str::to_owned)
}

/// Each delivered intent: the brand makes an offer; once every brand has, the owner accepts the
/// offer of one brand (chosen by the intent id) and declines the others.
async fn offers(soak: Arc<Soak>, mut rx: mpsc::UnboundedReceiver<(usize, String)>) {
    while let Some((n, intent_id)) = rx.recv().await {
        soak.pipeline.fetch_add(1, Ordering::SeqCst);
        let soak = soak.clone();
        tokio::spawn(async move {
            offer_and_decide(&soak, n, &intent_id).await;
            soak.pipeline.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn offer_and_decide(soak: &Soak, n: usize, intent_id: &str) {
    let brand = &soak.brands[n];
    let auth = format!("Bearer {}", brand.api_token.read().unwrap());
    let body = json!({
        "name": "Two-course lunch",
        "description": "Soup and a main, 12:30 at the corner table",
        "price": { "amount": "24.00", "currency": "EUR" },
        "valid_until": rfc3339_in(Duration::from_secs(86_400)),
    });
    let req = soak
        .request(
            Method::POST,
            &format!("/brand/v1/intents/{intent_id}/offers"),
            &auth,
        )
        .json(&body);
    let Some(offer) = soak.send(Kind::Offer, req, 201).await else {
        return;
    };
    let Some(offer_id) = offer["id"].as_str() else {
        soak.recorder
            .error(Kind::Offer, format!("no offer id in {offer}"));
        return;
    };
    // The person decides once every brand has answered: an accepted offer fulfils the intent,
    // and a fulfilled intent takes no more offers.
    let complete = {
        let mut offered = soak.offered.lock().unwrap();
        let offers = offered.entry(intent_id.to_owned()).or_default();
        offers.push((n, offer_id.to_owned()));
        if offers.len() == BRANDS {
            offered.remove(intent_id)
        } else {
            None
        }
    };
    let chosen = intent_id.bytes().map(usize::from).sum::<usize>() % BRANDS;
    for (n, offer_id) in complete.unwrap_or_default() {
        let verb = if n == chosen { "accept" } else { "decline" };
        let req = soak.request(
            Method::POST,
            &format!("/api/v1/offers/{offer_id}/{verb}"),
            &soak.owner_auth,
        );
        if soak.send(Kind::Decision, req, 200).await.is_some() {
            soak.deliveries.lock().unwrap().decided += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sampling
// ---------------------------------------------------------------------------------------------

/// What the bench reads of the server process at one moment.
#[derive(Clone, Copy)]
struct Probe {
    rss_mib: f64,
    hwm_mib: f64,
    fds: usize,
    /// User + system CPU seconds so far.
    cpu_s: f64,
    store_mib: f64,
}

impl Probe {
    fn of(server: &Server) -> Probe {
        let pid = server.child.id();
        let (rss_mib, hwm_mib) = memory_mib(pid);
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
        Probe {
            rss_mib,
            hwm_mib,
            fds,
            cpu_s: cpu_seconds(pid),
            store_mib: dir_bytes(server.data.path()) as f64 / MIB,
        }
    }
}

/// User + system CPU seconds of a process (`/proc/<pid>/stat`, clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(close) = stat.rfind(')') else {
        return 0.0;
    };
    // After the command name: state is field 3; utime and stime are fields 14 and 15.
    let mut fields = stat[close + 1..].split_whitespace().skip(11);
    let mut next = || {
        fields
            .next()
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (next() + next()) / 100.0
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// One sampling interval.
struct Sample {
    /// Seconds since the load started, at the end of the interval.
    at: f64,
    warmup: bool,
    probe: Probe,
    /// Share of one core the server used over the interval.
    cpu: f64,
    /// Per kind: done, errors, p50 ms, p99 ms.
    kinds: Vec<(u64, u64, f64, f64)>,
}

/// Samples every `every` until `total` has passed since `start`, printing a line per sample.
async fn sample(
    server: &Server,
    soak: &Soak,
    start: Instant,
    total: Duration,
    warmup: Duration,
    every: Duration,
) -> Vec<Sample> {
    println!(
        "{:>6}  {:>8}  {:>5}  {:>5}  {:>8}  {:>6}  {:>9}  {:>10}",
        "t s", "RSS MiB", "fds", "CPU", "store MB", "req/s", "webhook/s", "errors"
    );
    // The warm-up is a whole number of intervals: its last sample gives the figures the end is
    // compared with, and latencies count for the summary from then on.
    let warmup_samples = (warmup.as_secs() / every.as_secs()) as usize;
    let mut samples = Vec::new();
    let mut last_cpu = Probe::of(server).cpu_s;
    let mut last_at = start;
    let mut tick = start;
    loop {
        tick += every;
        let end = tick.min(start + total);
        tokio::time::sleep_until(end.into()).await;
        let now = Instant::now();
        let at = now - start;
        let in_warmup = samples.len() < warmup_samples;
        let windows = soak.recorder.take_windows();
        if !in_warmup || samples.len() + 1 == warmup_samples {
            soak.recorder.measuring.store(true, Ordering::Relaxed);
        }
        let probe = Probe::of(server);
        let seconds = (now - last_at).as_secs_f64();
        let cpu = (probe.cpu_s - last_cpu) / seconds;
        last_cpu = probe.cpu_s;
        last_at = now;
        let kinds: Vec<(u64, u64, f64, f64)> = windows
            .iter()
            .map(|w| {
                let (p50, p99) = percentiles(&w.latencies_us);
                (w.done, w.errors, p50, p99)
            })
            .collect();
        let requests: u64 = KINDS
            .iter()
            .zip(&kinds)
            .filter(|(k, _)| k.is_request())
            .map(|(_, s)| s.0)
            .sum();
        let errors: u64 = kinds.iter().map(|s| s.1).sum();
        let sample = Sample {
            at: at.as_secs_f64(),
            warmup: in_warmup,
            probe,
            cpu,
            kinds,
        };
        println!(
            "{:>6.0}  {:>8.1}  {:>5}  {:>4.0}%  {:>8.1}  {:>6.0}  {:>9.1}  {:>10}{}",
            sample.at,
            probe.rss_mib,
            probe.fds,
            cpu * 100.0,
            probe.store_mib,
            requests as f64 / seconds,
            sample.kinds[Kind::Webhook.index()].0 as f64 / seconds,
            errors,
            if sample.warmup { "  (warm-up)" } else { "" }
        );
        samples.push(sample);
        if end >= start + total {
            return samples;
        }
    }
}

/// Least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points
        .iter()
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    let sxx: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

struct Report {
    total: Duration,
    warmup: Duration,
    samples: Vec<Sample>,
    rest_before: Probe,
    rest_after: Probe,
    drained_in: Option<Duration>,
    deliveries: Deliveries,
    soak: Arc<Soak>,
}

impl Report {
    /// Prints the table and the summary; returns whether the run passed.
    fn print(&self, machine: &Machine, load_end: &str, log: &LogProblems) -> bool {
        println!();
        println!("per interval: requests done, and p50/p99 latency in ms");
        let mut header = format!("{:>6}", "t s");
        for kind in KINDS {
            header.push_str(&format!("  {:>19}", kind.name()));
        }
        println!("{header}");
        for s in &self.samples {
            let mut line = format!("{:>6.0}", s.at);
            for (done, errors, p50, p99) in &s.kinds {
                let cell = if *done == 0 {
                    "-".to_owned()
                } else {
                    format!("{done} {p50:.1}/{p99:.1}")
                };
                let cell = if *errors > 0 {
                    format!("{cell} E{errors}")
                } else {
                    cell
                };
                line.push_str(&format!("  {cell:>19}"));
            }
            println!("{line}");
        }

        let measured: Vec<&Sample> = self.samples.iter().filter(|s| !s.warmup).collect();
        // The start figures are those of the warm-up's last sample.
        let first = self.samples.iter().rev().find(|s| s.warmup);
        let (Some(first), Some(last)) = (first, measured.last()) else {
            println!("no samples after the warm-up: the run was too short");
            return false;
        };
        let window = last.at - first.at;
        let half = self.total.as_secs_f64() / 2.0;
        let second_half: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter(|s| s.at > half)
            .map(|s| (s.at / 60.0, s.probe.rss_mib))
            .collect();
        let rss_slope = if second_half.len() >= 3 {
            Some(slope(&second_half))
        } else {
            None
        };
        let store_slope = slope(
            &self
                .samples
                .iter()
                .filter(|s| s.at > half)
                .map(|s| (s.at / 60.0, s.probe.store_mib))
                .collect::<Vec<_>>(),
        );
        let cpu: f64 = measured.iter().map(|s| s.cpu).sum::<f64>() / measured.len().max(1) as f64;

        println!();
        println!("==================== soak summary ====================");
        println!("machine: {machine}; load average at the end {load_end}");
        println!(
            "run: {} s of load, warm-up {} s, {} samples; measured window {:.0} s",
            self.total.as_secs(),
            self.warmup.as_secs(),
            self.samples.len(),
            window
        );
        println!(
            "{:<14} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9}",
            "kind", "done", "per s", "target/s", "errors", "p50 ms", "p99 ms"
        );
        let mut requests = 0u64;
        for kind in KINDS {
            let latencies = self.soak.recorder.stats(kind).measured.lock().unwrap();
            let (p50, p99) = percentiles(&latencies);
            let done = latencies.len() as u64;
            if kind.is_request() {
                requests += done;
            }
            println!(
                "{:<14} {:>9} {:>9.2} {:>9.2} {:>7} {:>9.2} {:>9.2}",
                kind.name(),
                done,
                done as f64 / window,
                kind.target_rate(),
                self.soak
                    .recorder
                    .stats(kind)
                    .errors
                    .load(Ordering::Relaxed),
                p50,
                p99
            );
        }
        println!(
            "throughput: {requests} requests in the measured window = {:.1} requests/s (server \
             CPU {:.0}% of one core on average)",
            requests as f64 / window,
            cpu * 100.0
        );
        let d = &self.deliveries;
        println!(
            "intents: {} created, {} of {} deliveries received; {} offers decided, {} decision \
             deliveries{}",
            d.intents,
            d.intent_deliveries,
            d.intents * BRANDS as u64,
            d.decided,
            d.decision_deliveries,
            if d.other.is_empty() {
                String::new()
            } else {
                format!("; other deliveries {:?}", d.other)
            }
        );
        match self.drained_in {
            Some(t) => println!(
                "drain: every answer and delivery in {:.2} s after the load stopped",
                t.as_secs_f64()
            ),
            None => println!(
                "drain: NOT everything arrived within {} s",
                DRAIN_LIMIT.as_secs()
            ),
        }
        println!(
            "RSS: {:.1} MiB at rest before the load; {:.1} MiB at the end of the warm-up \
             (t = {:.0} s), {:.1} MiB at the end (t = {:.0} s), {:.1} MiB at rest after; peak \
             {:.1} MiB ({:.1} MiB before the load: the Argon2id derivation of setup)",
            self.rest_before.rss_mib,
            first.probe.rss_mib,
            first.at,
            last.probe.rss_mib,
            last.at,
            self.rest_after.rss_mib,
            self.rest_after.hwm_mib,
            self.rest_before.hwm_mib
        );
        match rss_slope {
            Some(s) => println!(
                "RSS slope over the second half ({} samples): {s:+.3} MiB/min (limit \
                 {RSS_SLOPE_LIMIT} MiB/min); store on disk {:.1} -> {:.1} MB, {store_slope:+.2} \
                 MB/min over the second half",
                second_half.len(),
                first.probe.store_mib,
                last.probe.store_mib
            ),
            None => println!(
                "RSS slope: fewer than 3 samples in the second half, not computed (run longer)"
            ),
        }
        // Connections come and go with the load (a stall of a fraction of a second opens a few
        // dozen), so what is compared is the floor: the lowest count of the first three samples
        // from the end of the warm-up on, against that of the last three. A leak raises it.
        let floor = |samples: &[&Sample]| samples.iter().map(|s| s.probe.fds).min().unwrap_or(0);
        let from_warmup: Vec<&Sample> = std::iter::once(first)
            .chain(measured.iter().copied())
            .collect();
        let fd_start = floor(&from_warmup[..from_warmup.len().min(3)]);
        let fd_end = floor(&measured[measured.len().saturating_sub(3)..]);
        let fd_growth = fd_end as i64 - fd_start as i64;
        let fd_max = measured.iter().map(|s| s.probe.fds).max().unwrap_or(0);
        println!(
            "fds: {} at rest before, {} at the end of the warm-up, {} at the end, at most \
             {fd_max} while measuring, {} at rest after; floor of three samples {fd_start} at \
             the start, {fd_end} at the end ({fd_growth:+}, margin {FD_MARGIN})",
            self.rest_before.fds, first.probe.fds, last.probe.fds, self.rest_after.fds
        );
        println!(
            "server log: {} warnings, {} errors{}",
            log.warnings,
            log.errors,
            if log.lines.is_empty() { "" } else { ":" }
        );
        for line in &log.lines {
            println!("  {line}");
        }

        // The verdict.
        let mut failures = Vec::new();
        let errors = self.soak.recorder.total_errors();
        if errors > 0 {
            failures.push(format!("{errors} errors"));
            for kind in KINDS {
                for sample in self
                    .soak
                    .recorder
                    .stats(kind)
                    .samples
                    .lock()
                    .unwrap()
                    .iter()
                {
                    println!("  {} error: {sample}", kind.name());
                }
            }
        }
        let missing = (d.intents * BRANDS as u64).saturating_sub(d.intent_deliveries)
            + d.decided.saturating_sub(d.decision_deliveries);
        if missing > 0 || self.drained_in.is_none() {
            failures.push(format!(
                "{missing} deliveries missing after {} s",
                DRAIN_LIMIT.as_secs()
            ));
        }
        if log.errors > 0 {
            failures.push(format!("{} error lines in the server log", log.errors));
        }
        if fd_growth > FD_MARGIN {
            failures.push(format!("fds grew by {fd_growth} (more than {FD_MARGIN})"));
        }
        match rss_slope {
            Some(s) if s > RSS_SLOPE_LIMIT => failures.push(format!(
                "RSS grows {s:.2} MiB/min over the second half (limit {RSS_SLOPE_LIMIT})"
            )),
            Some(_) => {}
            None => failures.push("too few samples for the RSS trend".into()),
        }
        if failures.is_empty() {
            println!("verdict: PASS");
            true
        } else {
            println!("verdict: FAIL: {}", failures.join("; "));
            false
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The webhook receiver
// ---------------------------------------------------------------------------------------------

/// An HTTP/1.1 server in this process standing in for the four brands' webhook endpoints:
/// `POST /b/<n>` is brand `n`'s. It checks each delivery's Standard Webhooks signature, times
/// the intents' deliveries, and hands each intent to the offer pipeline.
struct Receiver {
    addr: SocketAddr,
    /// The load's state, once set up: the brands' secrets are known only then.
    soak: Arc<RwLock<Option<Arc<Soak>>>>,
    /// Brand n's `whsec_` secret, decoded.
    secrets: Arc<RwLock<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct ReceiverState {
    soak: Arc<RwLock<Option<Arc<Soak>>>>,
    secrets: Arc<RwLock<Vec<Vec<u8>>>>,
    offers: mpsc::UnboundedSender<(usize, String)>,
}

impl Receiver {
    async fn start(offers: mpsc::UnboundedSender<(usize, String)>) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = ReceiverState {
            soak: Arc::default(),
            secrets: Arc::default(),
            offers,
        };
        let (soak, secrets) = (state.soak.clone(), state.secrets.clone());
        let app = axum::Router::new()
            .route("/b/{n}", axum::routing::post(receive))
            .with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            addr,
            soak,
            secrets,
            task,
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
        // The receiver's state holds the load's; break the cycle so both go.
        self.soak.write().unwrap().take();
    }
}

async fn receive(
    axum::extract::State(state): axum::extract::State<ReceiverState>,
    axum::extract::Path(n): axum::extract::Path<usize>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> axum::http::StatusCode {
    let arrived = Instant::now();
    let Some(soak) = state.soak.read().unwrap().clone() else {
        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let verified = state.secrets.read().unwrap().get(n).is_some_and(|secret| {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        let mut signed = format!("{id}.{timestamp}.").into_bytes();
        signed.extend_from_slice(&body);
        signature
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|s| B64.decode(s).ok())
            .any(|tag| ring::hmac::verify(&key, &signed, &tag).is_ok())
    });
    if !verified {
        soak.recorder.error(
            Kind::Webhook,
            format!("brand {n}: delivery {id} not signed with its secret"),
        );
        return axum::http::StatusCode::NO_CONTENT;
    }
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let kind = event["type"].as_str().unwrap_or("?").to_owned();
    let mut d = soak.deliveries.lock().unwrap();
    if !d.seen.insert(id.clone()) {
        soak.recorder
            .error(Kind::Webhook, format!("brand {n}: delivery {id} twice"));
        return axum::http::StatusCode::NO_CONTENT;
    }
    match kind.as_str() {
        "vrm.intent.created.v1" => {
            d.intent_deliveries += 1;
            let intent_id = event["data"]["intent"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            match d.started.get(&intent_id) {
                Some(sent) => soak
                    .recorder
                    .ok(Kind::Webhook, arrived.saturating_duration_since(*sent)),
                None => d.early.entry(intent_id.clone()).or_default().push(arrived),
            }
            let _ = state.offers.send((n, intent_id));
        }
        "vrm.offer.accepted.v1" | "vrm.offer.declined.v1" => d.decision_deliveries += 1,
        other => *d.other.entry(other.to_owned()).or_default() += 1,
    }
    axum::http::StatusCode::NO_CONTENT
}

// ---------------------------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------------------------

async fn setup(vault: SocketAddr, receiver: &Receiver) -> Soak {
    let base = format!("http://{vault}");
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap();
    let call = |method: Method, path: &str, auth: Option<&str>, body: Option<Value>| {
        let mut req = client.request(method, format!("{base}{path}"));
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        async move {
            let response = req.send().await.unwrap();
            let status = response.status().as_u16();
            let bytes = response.bytes().await.unwrap_or_default();
            (
                status,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        }
    };

    let owner_account = Owner::setup(&client, &base, PASSPHRASE).await;
    let owner_auth = owner_account.auth.clone();
    let owner = Some(owner_auth.as_str());

    // The PDC-INTENT terms, so that intents can be broadcast.
    let terms_hash = owner_account.publish_template(&client, "pdc-intent").await;

    // The records: the granted one, and the paths the owner reads and writes.
    let (status, body) = call(
        Method::PUT,
        &format!("/api/v1/records/{GRANT_FIELD}"),
        owner,
        Some(json!({ "value": GRANT_VALUE })),
    )
    .await;
    assert_eq!(status, 201, "record: {body}");
    let value: Value = serde_json::from_str(&record_body()).unwrap();
    for i in 0..RECORD_PATHS {
        let (status, body) = call(
            Method::PUT,
            &format!("/api/v1/records/soak.r{i}"),
            owner,
            Some(value.clone()),
        )
        .await;
        assert_eq!(status, 201, "record soak.r{i}: {body}");
    }

    // The brands, set up the kit's way: one invitation, then registration and the terms.
    let initial = owner_account.invitation(&client, BRANDS, "soak").await;
    let vault = Remote {
        client: client.clone(),
        base: base.clone(),
    };
    let mut brands = Vec::new();
    let mut kit_brands = Vec::new();
    let mut secrets = Vec::new();
    for n in 0..BRANDS {
        let brand = register_with(
            &vault,
            &initial,
            &basic_metadata(&format!("Soak Brand {n}")),
        )
        .await;
        let (status, receipt) = status_json(brand.accept(&vault, &terms_hash).await).await;
        assert_eq!(status, 201, "agreement {n}: {receipt}");
        let (client_id, basic) = (brand.client_id.clone(), brand.basic());
        // The owner's grant, the kit's way (it expects 201).
        let grant = crate::kit::grant::grant(
            &vault,
            &owner_account.token,
            json!({
                "client_id": client_id,
                "fields": [GRANT_FIELD],
                "actions": ["read"],
                "purpose": GRANT_PURPOSE,
                "expires_at": rfc3339_in(Duration::from_secs(2 * 86_400)),
            }),
        )
        .await;
        brands.push(SoakBrand {
            client_id,
            basic,
            grant_id: id_of(&grant),
            api_token: RwLock::default(),
            data_token: RwLock::default(),
        });
        kit_brands.push(brand);
    }

    let soak = Soak {
        base: base.clone(),
        client: client.clone(),
        owner_auth: owner_auth.clone(),
        brands,
        recorder: Recorder::new(),
        deliveries: Mutex::default(),
        in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        pipeline: AtomicU64::new(0),
        offered: Mutex::default(),
    };
    for (n, (brand, kit_brand)) in soak.brands.iter().zip(kit_brands).enumerate() {
        let api = api_token(&soak, brand)
            .await
            .unwrap_or_else(|| panic!("brand {n}: no API token"));
        let data = data_token(&soak, brand)
            .await
            .unwrap_or_else(|| panic!("brand {n}: no grant token"));
        // The webhook subscription, the kit's way (it expects 200), with the API token.
        let subscriber = Subscriber {
            brand: kit_brand,
            token: api.clone(),
            owner: None,
        };
        let subscription = subscriber
            .subscribe_ok(
                &vault,
                &json!({
                    "categories": ["food"],
                    "webhook_url": format!("http://{}/b/{n}", receiver.addr),
                }),
            )
            .await;
        let secret = subscription["webhook_secret"]
            .as_str()
            .and_then(|s| s.strip_prefix("whsec_"))
            .unwrap_or_else(|| panic!("brand {n}: no whsec_ secret in {subscription}"));
        secrets.push(B64.decode(secret).unwrap());
        // The granted read works and returns the value before the load relies on it.
        let (status, field) = call(
            Method::GET,
            &format!("/brand/v1/data/{GRANT_FIELD}"),
            Some(&format!("Bearer {data}")),
            None,
        )
        .await;
        assert_eq!(status, 200, "granted read {n}: {field}");
        assert_eq!(field["value"], GRANT_VALUE, "granted read {n}: {field}");
        *brand.api_token.write().unwrap() = api;
        *brand.data_token.write().unwrap() = data;
        println!("  brand {n}: {}", brand.client_id);
    }
    *receiver.secrets.write().unwrap() = secrets;
    // The setup's requests are not part of the load.
    for stats in &soak.recorder.kinds {
        *stats.window.lock().unwrap() = Window::default();
    }
    soak
}

/// A ~100-character value, the size of a typical preference or address line.
fn record_body() -> String {
    json!({
        "value": "prefers email over phone, no marketing, weekly digest on mondays; language \
                  en-GB; timezone Europe/London",
        "category": "pd:Preference",
    })
    .to_string()
}

/// A ~300-byte value (noise-like text, as sealed values do not compress), for the fill.
fn fill_body() -> String {
    let text: String = (0..300u32)
        .map(|i| char::from(b'a' + (i.wrapping_mul(7919) % 26) as u8))
        .collect();
    json!({ "value": text, "category": "pd:Preference" }).to_string()
}

/// RFC 3339 time `from_now` from now.
fn rfc3339_in(from_now: Duration) -> String {
    (time::OffsetDateTime::now_utc() + from_now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The server process, its log, the machine
// ---------------------------------------------------------------------------------------------

/// The soak's vault: the kit's server with loopback webhooks and a JSON log at info level, whose
/// warnings and errors the report counts.
impl Server {
    fn start() -> Server {
        Server::vault(|cmd| {
            cmd.args(["--allow-loopback-webhooks", "--log-format", "json"])
                .env("VRM_LOG", "info");
        })
    }

    /// The warning and error lines of the server's log.
    fn log_problems(&self) -> LogProblems {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut problems = LogProblems::default();
        for line in text.lines() {
            let level = serde_json::from_str::<Value>(line)
                .ok()
                .and_then(|v| v["level"].as_str().map(str::to_owned));
            match level.as_deref() {
                Some("WARN") => problems.warnings += 1,
                Some("ERROR") => problems.errors += 1,
                _ => continue,
            }
            if problems.lines.len() < 10 {
                problems.lines.push(line.to_owned());
            }
        }
        problems
    }
}

#[derive(Default)]
struct LogProblems {
    warnings: u64,
    errors: u64,
    /// The first few of them.
    lines: Vec<String>,
}

/// The machine the run is on.
struct Machine {
    cores: usize,
    cpu: String,
    load: String,
}

impl Machine {
    fn read() -> Machine {
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu: cpu_model(),
            load: load_average(),
        }
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "nproc {}, {}; load average at the start {}",
            self.cores, self.cpu, self.load
        )
    }
}
