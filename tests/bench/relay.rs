//! The intent relay benchmark (issues 19 and 20): raw NATS JetStream against `vrm-vault relay`
//! over the same server, measured in one run.
//!
//! Run it with:
//!
//! ```text
//! export NATS_SERVER_BIN=$(bash tests/nats/install.sh)
//! cargo bench --bench relay
//! ```
//!
//! It takes three to five minutes on two cores. Everything runs on 127.0.0.1: one real
//! `nats-server -js` (file storage, one node; `NATS_SERVER_BIN`), the real `vrm-vault relay`
//! binary (release build, `--allow-loopback-webhooks`) as a child process, and in this process
//! the load generators and ONE webhook receiver (hyper 1, HTTP/1.1 keep-alive) that answers
//! every `POST /b/<n>` with 204 and records when each delivery arrived (after its whole body).
//! The sections, in order (names in brackets):
//!
//! 1. **Raw JetStream** [`raw`]: a stream with the relay's settings (file storage, one replica)
//!    and a durable pull consumer with explicit acks, as the relay's webhook consumer. Latency:
//!    one message at a time, from just before the publish until the consumer has it, with a
//!    payload the size of a relayed intent event. Throughput: [`CLIENTS`] tasks each publish
//!    and wait for JetStream's ack, as each relay request does.
//! 2. **Intents** [`intents`], for each subscription count (`VRM_BENCH_SUBS`, default 1,000
//!    then 10,000): brands are admitted with `relay admit --batch`, each gets a relay token
//!    (`private_key_jwt`) and subscribes to one of 10 leaf categories in one of `n / 100`
//!    precision-3 geohash areas, with a webhook, so every intent matches exactly
//!    [`DEFAULT_MATCHES`] brands whatever the count (the work per intent stays the same; what grows is
//!    the index and the buckets). Then:
//!    - latency: one intent at a time, from just before `POST /relay/v1/intents` until the
//!      receiver has each of the intent's webhooks (and until the first and the last of them);
//!    - throughput: [`CLIENTS`] concurrent clients POST intents for [`DURATION`]; only 201s
//!      count (each one acknowledged by JetStream), then the webhook backlog is timed until it
//!      is delivered.
//! 3. **Two instances** [`scale`]: a second relay over the same NATS (its subscription index is
//!    loaded from the bucket: timed), then intents/s with every client on one instance, and
//!    with the clients split over both.
//! 4. **Offers** [`offers`]: brands with fresh tokens post offers (each with its acceptance
//!    JWS, signed in this process) to open intents for [`DURATION`], then the intents' vaults
//!    read their offers with a JWT signed by the intent's key for [`DURATION`].
//!
//! 5. **From the vault** [`vault`]: a real vault (`serve --relay <the relay>`, the person's
//!    `pdc-intent` terms) takes intents with `"relay": true` one at a time; timed from just
//!    before its `POST /api/v1/intents` until the matching brands' webhooks from the relay
//!    arrive (the vault publishes from its outbox in the background).
//! 6. **Three NATS nodes** [`cluster`]: a 3-node JetStream cluster on loopback
//!    (`kit::cluster`), raw JetStream with 3 replicas and a relay with `--replicas 3` over it,
//!    measured as in sections 1 and 2 with the first subscription count.
//!
//! Resident memory (`VmRSS`, `VmHWM`) of each relay instance and of nats-server, and the CPU
//! time of both per request, are printed with the sections.
//!
//! Knobs: `VRM_BENCH_ONLY=raw,intents,scale,offers,vault,cluster` (or after `--`) chooses
//! sections;
//! `VRM_BENCH_SUBS=1000,10000` the subscription counts; `VRM_BENCH_SECONDS` the length of each
//! timed run (default 10); `VRM_BENCH_CLIENTS` (default 16); `VRM_BENCH_LATENCY_INTENTS`
//! (default 200); `VRM_BENCH_MATCHES` the brands each intent matches (default 10; each
//! subscription count must be a multiple of 10 × it). Every wait is bounded; the bench fails
//! rather than hangs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../kit/mod.rs"]
mod kit;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::kit::brand::{ClientKey, jcs_hash, now};
use crate::kit::cluster::NatsCluster;
use crate::kit::grant::rfc3339;
use crate::kit::machine::{cpu_model, load_average, memory_mib, percentiles};
use crate::kit::owner::{Owner, PASSPHRASE};
use crate::kit::proc_stats::CpuSample;
use crate::kit::relay::{AdmittedBrand, Nats, RelayApp, nats_server_bin};
use crate::kit::server::Server;

/// Brands each intent matches, at every subscription count, unless `VRM_BENCH_MATCHES` says.
const DEFAULT_MATCHES: usize = 10;
/// Leaf categories the brands subscribe to (one each).
const CATEGORIES: [&str; 10] = [
    "food.lunch",
    "food.dinner",
    "food.breakfast",
    "travel.hotel",
    "travel.flight",
    "travel.train",
    "home.cleaning",
    "health.dentist",
    "shopping.books",
    "leisure.cinema",
];
const GEOHASH: &[u8] = b"0123456789bcdefghjkmnpqrstuvwxyz";
/// Concurrent clients for every throughput run (`VRM_BENCH_CLIENTS`).
const CLIENTS: usize = 16;
/// Length of each timed run (`VRM_BENCH_SECONDS`).
const DURATION: Duration = Duration::from_secs(10);
/// Intents sent one at a time for the latency figures (`VRM_BENCH_LATENCY_INTENTS`).
const LATENCY_INTENTS: usize = 200;
/// Raw JetStream messages sent one at a time for the latency baseline.
const RAW_LATENCY_MESSAGES: usize = 1000;
/// Brands set up at once (tokens and subscriptions).
const SETUP_CONCURRENCY: usize = 32;
/// Intents that take offers, and the brands that post them.
const OFFER_INTENTS: usize = 1000;
const OFFER_BRANDS: usize = 64;
/// The domain's `MAX_OFFERS_LIMIT`: offers one intent may take.
const MAX_OFFERS: usize = 50;
/// The longest any single wait may take before the bench gives up.
const WAIT_LIMIT: Duration = Duration::from_secs(180);

const PDC_INTENT: &str = include_str!("../../policies/pdc-intent.json");

/// Brands each intent matches (`VRM_BENCH_MATCHES`, default [`DEFAULT_MATCHES`]).
fn matches() -> usize {
    env_usize("VRM_BENCH_MATCHES", DEFAULT_MATCHES).max(1)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn selected_sections() -> Vec<&'static str> {
    const ALL: [&str; 6] = ["raw", "intents", "scale", "offers", "vault", "cluster"];
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let named = std::env::var("VRM_BENCH_ONLY")
        .ok()
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .unwrap_or(args);
    if named.is_empty() {
        return ALL.to_vec();
    }
    for name in &named {
        assert!(
            ALL.contains(&name.as_str()),
            "unknown section {name}; the sections are {ALL:?}"
        );
    }
    ALL.into_iter()
        .filter(|s| named.iter().any(|n| n == s))
        .collect()
}

struct Knobs {
    sizes: Vec<usize>,
    duration: Duration,
    clients: usize,
    latency_intents: usize,
}

fn main() {
    let matches = matches();
    let sections = selected_sections();
    let knobs = Knobs {
        sizes: std::env::var("VRM_BENCH_SUBS")
            .ok()
            .map(|v| v.split(',').map(|s| s.trim().parse().unwrap()).collect())
            .unwrap_or_else(|| vec![1000, 10_000]),
        duration: Duration::from_secs(
            env_usize("VRM_BENCH_SECONDS", DURATION.as_secs() as usize) as u64
        ),
        clients: env_usize("VRM_BENCH_CLIENTS", CLIENTS),
        latency_intents: env_usize("VRM_BENCH_LATENCY_INTENTS", LATENCY_INTENTS),
    };
    for &size in &knobs.sizes {
        assert!(
            size >= matches * CATEGORIES.len() && size % (matches * CATEGORIES.len()) == 0,
            "each subscription count must be a multiple of {}",
            matches * CATEGORIES.len()
        );
        assert!(
            size / (matches * CATEGORIES.len()) <= 1024,
            "at most 1,024 areas"
        );
    }
    let version = std::process::Command::new(nats_server_bin())
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("vrm-vault relay bench on {cores} cores, {}", cpu_model());
    println!("{version}, one node, file storage, 1 replica");
    println!(
        "sections: {}; subscriptions: {:?}; {} clients; {} s per timed run; {matches} brands \
         match each intent",
        sections.join(", "),
        knobs.sizes,
        knobs.clients,
        knobs.duration.as_secs()
    );
    println!("load average at start: {}", load_average());
    println!();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let report = rt.block_on(run(&sections, &knobs));
    println!();
    report.print();
    println!(
        "\nload average at end: {}; the bench took {:.0} s",
        load_average(),
        started.elapsed().as_secs_f64()
    );
}

/// Every figure, for the summary.
#[derive(Default)]
struct Report {
    raw: Option<RawFigures>,
    sizes: Vec<SizeFigures>,
    scale: Option<ScaleFigures>,
    offers: Option<OfferFigures>,
    vault: Option<VaultFigures>,
    cluster: Option<(RawFigures, SizeFigures)>,
}

struct VaultFigures {
    post: (f64, f64),
    first: (f64, f64),
    every: (f64, f64),
    last: (f64, f64),
    missing: usize,
}

struct RawFigures {
    payload: usize,
    latency: (f64, f64),
    publish_ack: (f64, f64),
    publish_per_sec: f64,
}

struct SizeFigures {
    subscriptions: usize,
    setup: Duration,
    post: (f64, f64),
    first: (f64, f64),
    every: (f64, f64),
    last: (f64, f64),
    missing: usize,
    intents_per_sec: f64,
    other_statuses: BTreeMap<u16, u64>,
    webhooks_per_sec: f64,
    relay_rss: (f64, f64),
    nats_rss: (f64, f64),
}

struct ScaleFigures {
    index_load: Duration,
    one: f64,
    two: f64,
    rss_second: (f64, f64),
}

struct OfferFigures {
    offers_per_sec: f64,
    post: (f64, f64),
    other_statuses: BTreeMap<u16, u64>,
    reads_per_sec: f64,
    read: (f64, f64),
    offers_read: u64,
}

impl Report {
    fn print(&self) {
        println!("== summary ==");
        let raw_latency = self.raw.as_ref().map(|r| r.latency.0);
        let raw_rate = self.raw.as_ref().map(|r| r.publish_per_sec);
        if let Some(r) = &self.raw {
            println!(
                "raw JetStream ({} B payload): publish→consume p50 {:.2} ms, p99 {:.2} ms; \
                 publish+ack p50 {:.2} ms; {:.0} acked publishes/s",
                r.payload, r.latency.0, r.latency.1, r.publish_ack.0, r.publish_per_sec
            );
        }
        for s in &self.sizes {
            println!(
                "{} subscriptions: set up in {:.0} s; one intent at a time: POST p50 {:.1} ms \
                 p99 {:.1} ms, →first webhook p50 {:.1} ms p99 {:.1} ms, →last p50 {:.1} ms p99 \
                 {:.1} ms, missing {}; other answers under load {:?}; nats-server RSS {:.0} MiB",
                s.subscriptions,
                s.setup.as_secs_f64(),
                s.post.0,
                s.post.1,
                s.first.0,
                s.first.1,
                s.last.0,
                s.last.1,
                s.missing,
                s.other_statuses,
                s.nats_rss.0
            );
            println!(
                "{} subscriptions: {:.0} intents/s accepted (201){}; POST→webhook p50 {:.1} ms, \
                 p99 {:.1} ms{}; webhooks {:.0}/s; relay RSS {:.0} MiB (peak {:.0})",
                s.subscriptions,
                s.intents_per_sec,
                raw_rate
                    .map(|r| format!(" = {:.3} of raw publishes/s", s.intents_per_sec / r))
                    .unwrap_or_default(),
                s.every.0,
                s.every.1,
                raw_latency
                    .map(|r| format!(" = {:.0}× raw p50", s.every.0 / r))
                    .unwrap_or_default(),
                s.webhooks_per_sec,
                s.relay_rss.0,
                s.relay_rss.1
            );
        }
        if let Some(s) = &self.scale {
            println!(
                "one instance {:.0} intents/s, two instances {:.0} intents/s ({:.2}×); the second \
                 loaded its index in {:.2} s, RSS {:.0} MiB",
                s.one,
                s.two,
                s.two / s.one,
                s.index_load.as_secs_f64(),
                s.rss_second.0
            );
        }
        if let Some(v) = &self.vault {
            println!(
                "from the vault's POST /api/v1/intents (\"relay\": true): 201 p50 {:.1} ms p99 \
                 {:.1} ms; →each webhook p50 {:.1} ms p99 {:.1} ms{}; →first p50 {:.1} ms; →last \
                 p50 {:.1} ms p99 {:.1} ms; missing {}",
                v.post.0,
                v.post.1,
                v.every.0,
                v.every.1,
                raw_latency
                    .map(|r| format!(" = {:.0}× raw p50", v.every.0 / r))
                    .unwrap_or_default(),
                v.first.0,
                v.last.0,
                v.last.1,
                v.missing
            );
        }
        if let Some((raw, s)) = &self.cluster {
            println!(
                "3-node cluster, replicas 3: raw publish→consume p50 {:.2} ms p99 {:.2} ms, {:.0} \
                 acked publishes/s; relay with {} subscriptions {:.0} intents/s = {:.3} of raw; \
                 POST→webhook p50 {:.1} ms p99 {:.1} ms = {:.0}× raw p50",
                raw.latency.0,
                raw.latency.1,
                raw.publish_per_sec,
                s.subscriptions,
                s.intents_per_sec,
                s.intents_per_sec / raw.publish_per_sec,
                s.every.0,
                s.every.1,
                s.every.0 / raw.latency.0
            );
        }
        if let Some(o) = &self.offers {
            println!(
                "offers: {:.0}/s accepted (201), other answers {:?}, POST p50 {:.1} ms p99 {:.1} \
                 ms; vault reads {:.0}/s ({} offers returned), p50 {:.1} ms p99 {:.1} ms",
                o.offers_per_sec,
                o.other_statuses,
                o.post.0,
                o.post.1,
                o.reads_per_sec,
                o.offers_read,
                o.read.0,
                o.read.1
            );
        }
    }
}

async fn run(sections: &[&str], knobs: &Knobs) -> Report {
    let mut report = Report::default();
    let nats = Nats::start();
    let nats_pid = nats.pid().unwrap();
    let bench = Bench::new();

    if sections.contains(&"raw") {
        println!("== raw JetStream ==");
        report.raw = Some(raw_section(&nats.url(), 1, bench.event_size(), knobs).await);
        println!();
    }
    if !sections
        .iter()
        .any(|s| ["intents", "scale", "offers", "vault", "cluster"].contains(s))
    {
        return report;
    }

    let receiver = Receiver::start().await;
    let relay = start_relay(&nats.url(), 1).await;
    let mut brands: Vec<AdmittedBrand> = Vec::new();
    for &size in &knobs.sizes {
        println!("== {size} subscriptions ==");
        let setup = grow(&nats.url(), &relay, &receiver, &mut brands, size).await;
        if sections.contains(&"intents") {
            let figures = intents_section(
                &bench,
                &relay,
                &receiver,
                size,
                setup,
                knobs,
                Some(nats_pid),
            )
            .await;
            report.sizes.push(figures);
        }
        println!();
    }
    let size = *knobs.sizes.last().unwrap();
    if sections.contains(&"scale") {
        println!("== one relay instance against two, {size} subscriptions ==");
        report.scale = Some(scale_section(&bench, &nats, &relay, &receiver, size, knobs).await);
        println!();
    }
    if sections.contains(&"offers") {
        println!("== offers ==");
        report.offers = Some(offers_section(&bench, &relay, &brands, knobs).await);
        println!();
    }
    if sections.contains(&"vault") {
        println!("== from the vault's POST, {size} subscriptions ==");
        report.vault = Some(vault_section(&relay, &receiver, size, knobs).await);
        println!();
    }
    if sections.contains(&"cluster") {
        let size = knobs.sizes[0];
        println!("== a 3-node NATS cluster, replicas 3, {size} subscriptions ==");
        let cluster = NatsCluster::start(3);
        let raw = raw_section(&cluster.url(0), 3, bench.event_size(), knobs).await;
        let relay = start_relay(&cluster.nats_arg(), 3).await;
        let mut brands = Vec::new();
        let setup = grow(&cluster.nats_arg(), &relay, &receiver, &mut brands, size).await;
        let figures = intents_section(&bench, &relay, &receiver, size, setup, knobs, None).await;
        report.cluster = Some((raw, figures));
        println!();
    }
    report
}

async fn start_relay(nats: &str, replicas: u8) -> RelayApp {
    let relay = RelayApp::start(nats, |cmd| {
        cmd.arg("--allow-loopback-webhooks")
            .args(["--replicas", &replicas.to_string()])
            // Every load generator is one loopback address: lift the abuse limits (their
            // maxima) so the bench measures the relay, not its budgets.
            .args([
                "--intents-per-hour",
                "100000",
                "--offers-per-minute",
                "100000",
            ])
            .args(["--offers-per-brand-per-intent", "5"])
            .env("VRM_LOG", "warn");
    });
    assert!(
        relay.wait_ready(200, Duration::from_secs(60)).await,
        "the relay is not ready; log:\n{}",
        relay.log()
    );
    relay
}

/// What every intent body shares: the person's terms.
struct Bench {
    terms: Value,
    terms_hash: String,
}

impl Bench {
    fn new() -> Bench {
        let terms: Value = serde_json::from_str(PDC_INTENT).unwrap();
        Bench {
            terms_hash: jcs_hash(&terms),
            terms,
        }
    }

    /// An intent for cell `cell` of a relay with `size` subscriptions, matching its brands.
    fn intent(&self, size: usize, cell: usize, jwk: Option<Value>) -> Value {
        let (category, area) = cell_of(size, cell);
        // A fresh key, as a vault makes one per intent (the relay derives the id from it).
        let jwk = jwk.unwrap_or_else(|| {
            let mut jwk = ClientKey::generate("intent").public_jwk();
            jwk.as_object_mut().unwrap().remove("kid");
            jwk
        });
        json!({
            "category": category,
            "text": "Lunch for two near the office, quiet table",
            "expires_at": rfc3339(OffsetDateTime::now_utc() + time::Duration::hours(2)),
            // "kk": a cell well inside the area, so a 1.5 km radius stays in it.
            "location": {"geohash": format!("{area}kk"), "radius_m": 1500},
            "max_offers": MAX_OFFERS,
            "party_size": 2,
            "terms_hash": self.terms_hash,
            "terms": self.terms,
            "jwk": jwk,
        })
    }

    /// About the size of the event a matching brand receives (the body, its id and envelope).
    fn event_size(&self) -> usize {
        serde_json::to_vec(&json!({"specversion": "1.0", "id": "x".repeat(80), "data": {"intent": self.intent(1000, 0, None)}}))
            .unwrap()
            .len()
    }
}

/// Cells (category × area) at a subscription count: each holds [`matches`] brands.
fn cells(size: usize) -> usize {
    size / matches()
}

/// Cell `cell`'s category and precision-3 geohash area.
fn cell_of(size: usize, cell: usize) -> (&'static str, String) {
    let cell = cell % cells(size);
    let category = CATEGORIES[cell % CATEGORIES.len()];
    let area = cell / CATEGORIES.len();
    let area = format!(
        "u{}{}",
        GEOHASH[area / 32] as char,
        GEOHASH[area % 32] as char
    );
    (category, area)
}

// ---------------------------------------------------------------------------------------------
// Raw JetStream.

async fn raw_section(url: &str, replicas: usize, payload_size: usize, knobs: &Knobs) -> RawFigures {
    let client = async_nats::connect(url).await.unwrap();
    let js = jetstream::new(client);
    let stream = js
        .create_stream(stream::Config {
            name: "BENCH_RAW".into(),
            subjects: vec!["bench.raw.>".into()],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .unwrap();
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("bench".into()),
            filter_subject: "bench.raw.latency".into(),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let reader = tokio::spawn(async move {
        let mut messages = consumer.messages().await.unwrap();
        while let Some(Ok(message)) = messages.next().await {
            let _ = tx.send(Instant::now());
            message.ack().await.unwrap();
        }
    });
    let payload = Bytes::from(vec![b'x'; payload_size]);
    let mut latencies = Vec::with_capacity(RAW_LATENCY_MESSAGES);
    let mut acks = Vec::with_capacity(RAW_LATENCY_MESSAGES);
    for i in 0..RAW_LATENCY_MESSAGES + 50 {
        let start = Instant::now();
        js.publish("bench.raw.latency", payload.clone())
            .await
            .unwrap()
            .await
            .unwrap();
        let acked = start.elapsed();
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the consumer did not get a message within 10 s")
            .unwrap();
        // The first 50 warm the connection and the consumer up.
        if i >= 50 {
            latencies.push(micros(got - start));
            acks.push(micros(acked));
        }
    }
    reader.abort();
    let latency = percentiles(&latencies);
    let publish_ack = percentiles(&acks);
    println!(
        "{replicas} replica(s): publish→consume, one at a time, {RAW_LATENCY_MESSAGES} messages of {payload_size} B: \
         p50 {:.2} ms, p99 {:.2} ms (publish until ack: p50 {:.2} ms, p99 {:.2} ms)",
        latency.0, latency.1, publish_ack.0, publish_ack.1
    );

    let deadline = Instant::now() + knobs.duration;
    let start = Instant::now();
    let tasks: Vec<_> = (0..knobs.clients)
        .map(|n| {
            let js = js.clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                let mut count = 0u64;
                while Instant::now() < deadline {
                    js.publish(format!("bench.raw.load.{n}"), payload.clone())
                        .await
                        .unwrap()
                        .await
                        .unwrap();
                    count += 1;
                }
                count
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    let elapsed = start.elapsed();
    let publish_per_sec = total as f64 / elapsed.as_secs_f64();
    println!(
        "publish and wait for the ack, {} concurrent publishers, {:.1} s: {total} = {:.0} \
         acked publishes/s",
        knobs.clients,
        elapsed.as_secs_f64(),
        publish_per_sec
    );
    js.delete_stream("BENCH_RAW").await.unwrap();
    RawFigures {
        payload: payload_size,
        latency,
        publish_ack,
        publish_per_sec,
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

// ---------------------------------------------------------------------------------------------
// The webhook receiver.

/// Records every delivery's intent (from its `webhook-id`, `evt_<intent>_<brand>`) and arrival.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    arrivals: Arc<Mutex<HashMap<String, Vec<Instant>>>>,
    /// Every arrival in order (for deliveries whose relay intent id the bench does not know).
    all: Arc<Mutex<Vec<Instant>>>,
    total: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            addr: listener.local_addr().unwrap(),
            arrivals: Arc::default(),
            all: Arc::default(),
            total: Arc::default(),
        };
        let accepting = receiver.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let receiver = accepting.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let receiver = receiver.clone();
                        async move { receiver.receive(req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        receiver
    }

    async fn receive(&self, req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, Infallible> {
        let id = req
            .headers()
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        // Arrival is when the whole body is here.
        let _ = req.into_body().collect().await;
        let at = Instant::now();
        let intent = id
            .strip_prefix("evt_")
            .and_then(|rest| rest.split_once("_rb_"))
            .map(|(intent, _)| intent.to_owned())
            .unwrap_or_default();
        self.arrivals
            .lock()
            .unwrap()
            .entry(intent)
            .or_default()
            .push(at);
        self.all.lock().unwrap().push(at);
        self.total.fetch_add(1, Ordering::SeqCst);
        let mut res = Response::new(Empty::new());
        *res.status_mut() = StatusCode::NO_CONTENT;
        Ok(res)
    }

    fn total(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// Arrivals after the first `from`, in order.
    fn since(&self, from: usize) -> Vec<Instant> {
        self.all
            .lock()
            .unwrap()
            .get(from..)
            .unwrap_or_default()
            .to_vec()
    }

    fn of(&self, intent: &str) -> Vec<Instant> {
        self.arrivals
            .lock()
            .unwrap()
            .get(intent)
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `total` deliveries arrived in all; returns whether they did within `limit`.
    async fn wait_total(&self, total: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.total() < total {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

// ---------------------------------------------------------------------------------------------
// Brands.

/// Admits brands up to `size` (with `relay admit --batch`), then gives each of the `size` a
/// fresh token and its subscription for this size. Returns the time it took.
async fn grow(
    nats: &str,
    relay: &RelayApp,
    receiver: &Receiver,
    brands: &mut Vec<AdmittedBrand>,
    size: usize,
) -> Duration {
    let start = Instant::now();
    if brands.len() < size {
        let names: Vec<String> = (brands.len()..size).map(|i| format!("Brand {i}")).collect();
        let url = nats.to_owned();
        let admitted =
            tokio::task::spawn_blocking(move || AdmittedBrand::admit_many_at(&url, &names))
                .await
                .unwrap();
        println!(
            "relay admit --batch: {} brands in {:.2} s",
            admitted.len(),
            start.elapsed().as_secs_f64()
        );
        brands.extend(admitted);
    }
    let subscribing = Instant::now();
    let next = AtomicUsize::new(0);
    let workers = (0..SETUP_CONCURRENCY).map(|_| async {
        loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            if i >= size {
                return;
            }
            let brand = &brands[i];
            let token = relay.token(brand).await;
            let (category, area) = cell_of(size, i);
            let res = relay
                .client
                .put(relay.url("/relay/v1/subscription"))
                .bearer_auth(&token)
                .json(&json!({
                    "categories": [category],
                    "areas": [{"geohash": area}],
                    "webhook_url": format!("http://{}/b/{i}", receiver.addr),
                    "delivery": ["webhook"],
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        }
    });
    futures_util::future::join_all(workers).await;
    println!(
        "{size} brands each got a token and subscribed in {:.2} s ({:.0} brands/s)",
        subscribing.elapsed().as_secs_f64(),
        size as f64 / subscribing.elapsed().as_secs_f64()
    );
    start.elapsed()
}

// ---------------------------------------------------------------------------------------------
// Intents.

async fn post_intent(
    client: &reqwest::Client,
    relay: &RelayApp,
    body: &Value,
) -> (u16, Option<String>) {
    let res = client
        .post(relay.url("/relay/v1/intents"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (status, body["id"].as_str().map(str::to_owned))
}

async fn intents_section(
    bench: &Bench,
    relay: &RelayApp,
    receiver: &Receiver,
    size: usize,
    setup: Duration,
    knobs: &Knobs,
    nats_pid: Option<u32>,
) -> SizeFigures {
    let matches = matches();
    // Latency: one intent at a time, each until all its webhooks are in.
    let client = reqwest::Client::new();
    let mut posts = Vec::new();
    let (mut first, mut every, mut last) = (Vec::new(), Vec::new(), Vec::new());
    let mut missing = 0;
    let latency_start = Instant::now();
    for n in 0..knobs.latency_intents + 10 {
        let body = bench.intent(size, n * 7919, None);
        let start = Instant::now();
        let (status, id) = post_intent(&client, relay, &body).await;
        let posted = start.elapsed();
        assert_eq!(status, 201, "{}", relay.log());
        let id = id.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let arrivals = loop {
            let arrivals = receiver.of(&id);
            if arrivals.len() >= matches || Instant::now() >= deadline {
                break arrivals;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        // The first 10 warm connections and caches up.
        if n < 10 {
            continue;
        }
        missing += matches.saturating_sub(arrivals.len());
        assert!(
            arrivals.len() <= matches,
            "intent {id} reached {} brands, not {matches}: the cells overlap",
            arrivals.len()
        );
        posts.push(micros(posted));
        for at in &arrivals {
            every.push(micros(*at - start));
        }
        if let (Some(a), Some(b)) = (arrivals.iter().min(), arrivals.iter().max()) {
            first.push(micros(*a - start));
            last.push(micros(*b - start));
        }
    }
    let post = percentiles(&posts);
    let (first, every, last) = (percentiles(&first), percentiles(&every), percentiles(&last));
    println!(
        "latency, {} intents one at a time ({:.1} s), each to {matches} webhooks: POST→201 p50 \
         {:.1} ms p99 {:.1} ms; POST→each webhook p50 {:.1} ms p99 {:.1} ms; →first p50 {:.1} \
         ms; →last p50 {:.1} ms p99 {:.1} ms; missing after 10 s: {missing}",
        knobs.latency_intents,
        latency_start.elapsed().as_secs_f64(),
        post.0,
        post.1,
        every.0,
        every.1,
        first.0,
        last.0,
        last.1
    );

    // Throughput.
    let before_total = receiver.total();
    let relay_cpu = CpuSample::of(relay.server.pid());
    let nats_cpu = nats_pid.map(CpuSample::of);
    let run = load_intents(bench, &[relay], size, knobs).await;
    let relay_after = CpuSample::of(relay.server.pid());
    let nats_after = nats_pid.map(CpuSample::of);
    println!(
        "throughput, {} clients, {:.1} s: {} accepted (201) = {:.0} intents/s; other answers \
         {:?}; POST p50 {:.1} ms p99 {:.1} ms; load average {}",
        knobs.clients,
        run.elapsed.as_secs_f64(),
        run.created,
        run.per_sec(),
        run.other,
        run.latency.0,
        run.latency.1,
        load_average()
    );
    relay_after.print_since(&relay_cpu, run.created, run.elapsed, "relay");
    if let (Some(after), Some(before)) = (&nats_after, &nats_cpu) {
        after.print_since(before, run.created, run.elapsed, "nats-server");
    }
    let expected = before_total + run.created as usize * matches;
    let delivered = receiver.wait_total(expected, WAIT_LIMIT).await;
    let drain = run.started.elapsed();
    let webhooks = receiver.total() - before_total;
    let webhooks_per_sec = webhooks as f64 / drain.as_secs_f64();
    println!(
        "webhooks: all {} of the run's deliveries in {:.1} s from its start = {:.0} webhooks/s{}",
        webhooks,
        drain.as_secs_f64(),
        webhooks_per_sec,
        if delivered {
            ""
        } else {
            " (NOT all delivered within the limit)"
        }
    );
    let relay_rss = memory_mib(relay.server.pid());
    let nats_rss = nats_pid.map_or((f64::NAN, f64::NAN), memory_mib);
    println!(
        "memory: relay RSS {:.1} MiB (peak {:.1}); nats-server RSS {:.1} MiB (peak {:.1})",
        relay_rss.0, relay_rss.1, nats_rss.0, nats_rss.1
    );
    SizeFigures {
        subscriptions: size,
        setup,
        post,
        first,
        every,
        last,
        missing,
        intents_per_sec: run.per_sec(),
        other_statuses: run.other,
        webhooks_per_sec,
        relay_rss,
        nats_rss,
    }
}

struct LoadRun {
    created: u64,
    other: BTreeMap<u16, u64>,
    latency: (f64, f64),
    started: Instant,
    elapsed: Duration,
}

impl LoadRun {
    fn per_sec(&self) -> f64 {
        self.created as f64 / self.elapsed.as_secs_f64()
    }
}

/// `knobs.clients` clients POST intents for `knobs.duration`, spread over `relays` in turn.
async fn load_intents(bench: &Bench, relays: &[&RelayApp], size: usize, knobs: &Knobs) -> LoadRun {
    let started = Instant::now();
    let deadline = started + knobs.duration;
    let runs = (0..knobs.clients).map(|c| async move {
        let relay = relays[c % relays.len()];
        let client = reqwest::Client::new();
        let mut created = 0u64;
        let mut other: BTreeMap<u16, u64> = BTreeMap::new();
        let mut latencies = Vec::new();
        let mut n = c;
        while Instant::now() < deadline {
            let body = bench.intent(size, n * 7919, None);
            n += knobs.clients;
            let start = Instant::now();
            let (status, _) = post_intent(&client, relay, &body).await;
            latencies.push(micros(start.elapsed()));
            if status == 201 {
                created += 1;
            } else {
                *other.entry(status).or_default() += 1;
            }
        }
        (created, other, latencies)
    });
    let results = futures_util::future::join_all(runs).await;
    let elapsed = started.elapsed();
    let mut run = LoadRun {
        created: 0,
        other: BTreeMap::new(),
        latency: (0.0, 0.0),
        started,
        elapsed,
    };
    let mut latencies = Vec::new();
    for (created, other, l) in results {
        run.created += created;
        for (status, count) in other {
            *run.other.entry(status).or_default() += count;
        }
        latencies.extend(l);
    }
    run.latency = percentiles(&latencies);
    run
}

// ---------------------------------------------------------------------------------------------
// Two instances.

async fn scale_section(
    bench: &Bench,
    nats: &Nats,
    relay: &RelayApp,
    receiver: &Receiver,
    size: usize,
    knobs: &Knobs,
) -> ScaleFigures {
    let start = Instant::now();
    let second = start_relay(&nats.url(), 1).await;
    let index_load = start.elapsed();
    println!(
        "a second instance started and loaded {size} subscriptions into its index in {:.2} s",
        index_load.as_secs_f64()
    );
    let before = receiver.total();
    let one = load_intents(bench, &[relay], size, knobs).await;
    println!(
        "one instance, {} clients: {:.0} intents/s (other answers {:?}; POST p50 {:.1} ms p99 \
         {:.1} ms)",
        knobs.clients,
        one.per_sec(),
        one.other,
        one.latency.0,
        one.latency.1
    );
    let mut expected = before + one.created as usize * matches();
    receiver.wait_total(expected, WAIT_LIMIT).await;
    let two = load_intents(bench, &[relay, &second], size, knobs).await;
    println!(
        "two instances, {} clients split over both: {:.0} intents/s = {:.2}× one (other answers \
         {:?}; POST p50 {:.1} ms p99 {:.1} ms); load average {}",
        knobs.clients,
        two.per_sec(),
        two.per_sec() / one.per_sec(),
        two.other,
        two.latency.0,
        two.latency.1,
        load_average()
    );
    expected += two.created as usize * matches();
    let drained = receiver.wait_total(expected, WAIT_LIMIT).await;
    println!(
        "webhooks of both runs delivered by both instances: {}",
        if drained {
            "all"
        } else {
            "NOT all within the limit"
        }
    );
    let rss_second = memory_mib(second.server.pid());
    println!(
        "memory: first instance RSS {:.1} MiB, second {:.1} MiB (peak {:.1})",
        memory_mib(relay.server.pid()).0,
        rss_second.0,
        rss_second.1
    );
    ScaleFigures {
        index_load,
        one: one.per_sec(),
        two: two.per_sec(),
        rss_second,
    }
}

// ---------------------------------------------------------------------------------------------
// Offers.

/// An intent a vault published, with its key to read the offers.
struct OpenIntent {
    id: String,
    key: ClientKey,
}

fn acceptance(
    brand: &AdmittedBrand,
    intent: &OpenIntent,
    terms_hash: &str,
    offer: &Value,
) -> String {
    use base64::Engine as _;
    let canonical = serde_json_canonicalizer::to_vec(offer).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &canonical);
    let offer_sha256 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
    brand.keys.signing.sign(
        None,
        &brand.keys.signing.kid,
        &json!({"intent_id": intent.id, "terms_hash": terms_hash,
                "offer_sha256": offer_sha256, "iat": now()}),
    )
}

async fn offers_section(
    bench: &Bench,
    relay: &RelayApp,
    brands: &[AdmittedBrand],
    knobs: &Knobs,
) -> OfferFigures {
    // Open intents of their own category, so the webhooks of the intent runs do not matter here.
    let client = reqwest::Client::new();
    let mut intents = Vec::with_capacity(OFFER_INTENTS);
    for n in 0..OFFER_INTENTS {
        let key = ClientKey::generate("intent");
        let mut jwk = key.public_jwk();
        jwk.as_object_mut().unwrap().remove("kid");
        let mut body = bench.intent(knobs.sizes[0], n, Some(jwk));
        // An area no brand subscribes to: no webhooks from these intents.
        body["location"]["geohash"] = json!("zzzkk");
        let (status, id) = post_intent(&client, relay, &body).await;
        assert_eq!(status, 201);
        intents.push(OpenIntent {
            id: id.unwrap(),
            key,
        });
    }
    let offering = &brands[..OFFER_BRANDS.min(brands.len())];
    let mut tokens = Vec::new();
    for brand in offering {
        tokens.push(relay.token(brand).await);
    }
    let intents = &intents;
    let tokens = &tokens;
    let terms_hash = bench.terms_hash.as_str();

    // Offers: client c takes intents c, c + clients, ...; each offer from the next brand.
    let started = Instant::now();
    let deadline = started + knobs.duration;
    let runs = (0..knobs.clients).map(|c| async move {
        let client = reqwest::Client::new();
        let mut created = 0u64;
        let mut other: BTreeMap<u16, u64> = BTreeMap::new();
        let mut latencies = Vec::new();
        let mut slot = c;
        let mut posted_here = 0;
        while Instant::now() < deadline && slot < intents.len() {
            let intent = &intents[slot];
            let b = (created as usize + c) % offering.len();
            let offer = json!({
                "name": format!("Menu du jour {created}"),
                "price": {"amount": "14.50", "currency": "EUR"},
                "valid_until": rfc3339(OffsetDateTime::now_utc() + time::Duration::hours(1)),
                "data_requested": ["contact.phone"],
            });
            let mut body = offer.clone();
            body["acceptance"] = json!(acceptance(&offering[b], intent, terms_hash, &offer));
            let start = Instant::now();
            let res = client
                .post(relay.url(&format!("/relay/v1/intents/{}/offers", intent.id)))
                .bearer_auth(&tokens[b])
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let _ = res.bytes().await;
            latencies.push(micros(start.elapsed()));
            if status == 201 {
                created += 1;
                posted_here += 1;
            } else {
                *other.entry(status).or_default() += 1;
            }
            if posted_here >= MAX_OFFERS || status == 409 {
                slot += knobs.clients;
                posted_here = 0;
            }
        }
        (created, other, latencies)
    });
    let results = futures_util::future::join_all(runs).await;
    let elapsed = started.elapsed();
    let mut created = 0;
    let mut other_statuses = BTreeMap::new();
    let mut latencies = Vec::new();
    for (c, o, l) in results {
        created += c;
        for (s, n) in o {
            *other_statuses.entry(s).or_default() += n;
        }
        latencies.extend(l);
    }
    let offers_per_sec = created as f64 / elapsed.as_secs_f64();
    let post = percentiles(&latencies);
    println!(
        "offers with acceptance JWS, {} clients, {OFFER_BRANDS} brands, {:.1} s: {created} \
         accepted (201) = {offers_per_sec:.0} offers/s; other answers {other_statuses:?}; POST \
         p50 {:.1} ms p99 {:.1} ms",
        knobs.clients,
        elapsed.as_secs_f64(),
        post.0,
        post.1
    );

    // Vault reads: each with a JWT signed by the intent's key.
    let started = Instant::now();
    let deadline = started + knobs.duration;
    let runs = (0..knobs.clients).map(|c| async move {
        let client = reqwest::Client::new();
        let mut reads = 0u64;
        let mut offers = 0u64;
        let mut latencies = Vec::new();
        let mut n = c;
        while Instant::now() < deadline {
            let intent = &intents[n % intents.len()];
            n += knobs.clients;
            let path = format!("/relay/v1/intents/{}/offers", intent.id);
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
            header.typ = Some("JWT".into());
            let jwt = jsonwebtoken::encode(
                &header,
                &json!({"sub": intent.id, "aud": relay.url(&path), "exp": now() + 60}),
                &intent.key.encoding_key(),
            )
            .unwrap();
            let start = Instant::now();
            let res = client
                .get(relay.url(&path))
                .bearer_auth(jwt)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let body: Value = res.json().await.unwrap();
            latencies.push(micros(start.elapsed()));
            reads += 1;
            offers += body["offers"].as_array().map_or(0, Vec::len) as u64;
        }
        (reads, offers, latencies)
    });
    let results = futures_util::future::join_all(runs).await;
    let elapsed = started.elapsed();
    let (mut reads, mut offers_read, mut latencies) = (0, 0, Vec::new());
    for (r, o, l) in results {
        reads += r;
        offers_read += o;
        latencies.extend(l);
    }
    let reads_per_sec = reads as f64 / elapsed.as_secs_f64();
    let read = percentiles(&latencies);
    println!(
        "vault reads, {} clients, {:.1} s: {reads} reads = {reads_per_sec:.0}/s, {offers_read} \
         offers returned ({:.1} per read); p50 {:.1} ms p99 {:.1} ms",
        knobs.clients,
        elapsed.as_secs_f64(),
        offers_read as f64 / reads.max(1) as f64,
        read.0,
        read.1
    );
    OfferFigures {
        offers_per_sec,
        post,
        other_statuses,
        reads_per_sec,
        read,
        offers_read,
    }
}

// ---------------------------------------------------------------------------------------------
// From the vault.

/// One intent at a time from a real vault (`serve --relay`, the person's `pdc-intent` terms):
/// from just before `POST /api/v1/intents` with `"relay": true` until the brands' webhooks
/// from the relay arrive. The vault publishes from its outbox in the background, so this is
/// the whole path a person's intent takes.
async fn vault_section(
    relay: &RelayApp,
    receiver: &Receiver,
    size: usize,
    knobs: &Knobs,
) -> VaultFigures {
    let matches = matches();
    let relay_url = relay.url("");
    let vault = Server::vault(|cmd| {
        cmd.args(["--relay", &relay_url]).env("VRM_LOG", "warn");
    });
    let client = reqwest::Client::new();
    let owner = Owner::setup(&client, &vault.url(""), PASSPHRASE).await;
    owner.publish_template(&client, "pdc-intent").await;
    let intents = (knobs.latency_intents / 4).max(10);
    let mut posts = Vec::new();
    let (mut first, mut every, mut last) = (Vec::new(), Vec::new(), Vec::new());
    let mut missing = 0;
    let started = Instant::now();
    for n in 0..intents + 3 {
        let (category, area) = cell_of(size, n * 7919);
        let body = json!({
            "category": category,
            "text": "Lunch for two near the office, quiet table",
            "expires_at": rfc3339(OffsetDateTime::now_utc() + time::Duration::hours(2)),
            "location": {"geohash": format!("{area}kk"), "radius_m": 1500},
            "party_size": 2,
            "max_offers": 3,
            "relay": true,
        });
        let from = receiver.total();
        let start = Instant::now();
        let (status, answer) = owner
            .call(
                &client,
                reqwest::Method::POST,
                "/api/v1/intents",
                Some(body),
            )
            .await;
        let posted = start.elapsed();
        assert_eq!(status, 201, "{answer}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let arrivals = loop {
            let arrivals = receiver.since(from);
            if arrivals.len() >= matches || Instant::now() >= deadline {
                break arrivals;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        // The first 3 warm the vault's connections to the relay up.
        if n < 3 {
            continue;
        }
        missing += matches.saturating_sub(arrivals.len());
        posts.push(micros(posted));
        for at in &arrivals {
            every.push(micros(*at - start));
        }
        if let (Some(a), Some(b)) = (arrivals.first(), arrivals.last()) {
            first.push(micros(*a - start));
            last.push(micros(*b - start));
        }
    }
    let figures = VaultFigures {
        post: percentiles(&posts),
        first: percentiles(&first),
        every: percentiles(&every),
        last: percentiles(&last),
        missing,
    };
    println!(
        "{intents} intents one at a time from the vault ({:.1} s), each to {matches} webhooks: \
         vault POST→201 p50 {:.1} ms p99 {:.1} ms; →each webhook p50 {:.1} ms p99 {:.1} ms; \
         →first p50 {:.1} ms; →last p50 {:.1} ms p99 {:.1} ms; missing after 20 s: {missing}",
        started.elapsed().as_secs_f64(),
        figures.post.0,
        figures.post.1,
        figures.every.0,
        figures.every.1,
        figures.first.0,
        figures.last.0,
        figures.last.1
    );
    figures
}
