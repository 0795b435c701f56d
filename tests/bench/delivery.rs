//! End-to-end webhook delivery benchmark: one intent to 1,000 brands' webhook receivers on
//! loopback, next to a baseline measured in the same run.
//!
//! Run it with:
//!
//! ```text
//! cargo bench --bench delivery
//! ```
//!
//! What it does, all on 127.0.0.1:
//!
//! 1. Starts the real `vrm-vault serve` binary (release build, `--listen 127.0.0.1:0`,
//!    `--allow-loopback-webhooks`) as a child process, with the store writer's per-group trace
//!    lines in its log (`VRM_BENCH_GROUP_LOG=0` turns that off).
//! 2. Starts ONE webhook receiver in this process (hyper 1, HTTP/1.1 keep-alive) that answers
//!    every `POST /b/<n>` with 204 and records brand `n`, the Standard Webhooks headers, the body
//!    and the arrival time (once the whole body was read).
//! 3. Sets the vault up: owner, the PDC-INTENT terms template published, then 1,000 brands
//!    (10 invitations of 100 uses), each registered with `client_secret_basic`, accepting the
//!    terms, getting a client-credentials token and subscribing to `food` with the webhook
//!    `http://127.0.0.1:<receiver>/b/<n>`; with bounded concurrency, timed.
//! 4. Three times: `POST /api/v1/intents` (category `food.lunch`), timed from just before the
//!    POST until the receiver has all 1,000 deliveries (the `POST` itself is timed too). After the
//!    timing: every delivery's signature is checked with its brand's `whsec_` secret, the body is
//!    checked (CloudEvent id = `webhook-id`, type, subject), the arrivals are grouped into waves,
//!    the audit log is read until every delivery outcome is recorded (and the new entries are
//!    counted by action), and the vault's CPU time and store-writer groups are reported.
//! 5. The baseline: the same 1,000 POSTs (URL, headers and body exactly as the vault sent them
//!    for the first intent) sent straight to the same receiver by a reqwest client built like the
//!    vault's webhook client, with the vault's concurrency caps (256 in total, 4 per brand),
//!    on a separate tokio runtime: once on a fresh client (new connections) and twice more on
//!    the same client (pooled connections, like the vault's client after its first intent).
//!
//! `VRM_BENCH_BRANDS=<n>` runs it with another number of brands (the target is for 1,000).
//!
//! Every wait is bounded: the bench fails if setup takes more than 300 s or one delivery or
//! baseline run more than 120 s.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../kit/mod.rs"]
mod kit;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ring::hmac;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use crate::kit::brand::{Remote, register_with, status_json};
use crate::kit::intent::Subscriber;
use crate::kit::machine::{cpu_model, load_average};
use crate::kit::owner::{Owner, call};
use crate::kit::proc_stats::{CpuSample, GroupStats};

/// Brands, each with its own webhook URL on the one receiver (`VRM_BENCH_BRANDS` overrides it).
const BRANDS: usize = 1000;
/// Intents measured, one after the other.
const INTENTS: usize = 3;
/// Baseline runs: the first on a fresh client, the others on the same (warm) client.
const BASELINE_RUNS: usize = 3;
/// The issue's target for one intent to 1,000 receivers.
const TARGET: Duration = Duration::from_secs(2);
/// Uses of one invitation (the vault's `MAX_INVITATION_USES`).
const INVITATION_USES: usize = 100;
/// Brands set up at once.
const SETUP_CONCURRENCY: usize = 32;
/// The vault's cap on deliveries in flight in total (`TOTAL_CONCURRENCY` in
/// `src/service/delivery.rs`, private there).
const TOTAL_CONCURRENCY: usize = 256;
/// The vault's cap on deliveries in flight to one brand.
const PER_BRAND_CONCURRENCY: usize = vrm_vault::service::delivery::PER_BRAND_CONCURRENCY;
/// Time limits: the bench fails rather than hang.
const SETUP_LIMIT: Duration = Duration::from_secs(300);
const DELIVERY_LIMIT: Duration = Duration::from_secs(120);
/// Arrivals further apart than this start a new wave in the report.
const WAVE_GAP: Duration = Duration::from_millis(50);

const PASSPHRASE: &str = "bench passphrase 123";

/// The number of brands: `VRM_BENCH_BRANDS` if set (to see how the time grows), else 1,000.
fn brand_count() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNT.get_or_init(|| {
        std::env::var("VRM_BENCH_BRANDS").map_or(BRANDS, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("VRM_BENCH_BRANDS: not a number: {v:?}"))
        })
    })
}

fn main() {
    let n_brands = brand_count();
    let cpu = cpu_model();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("vrm-vault delivery bench on {cores} cores, {cpu}");
    println!("load average at start: {}", load_average());
    println!();

    let log_groups = std::env::var("VRM_BENCH_GROUP_LOG").map_or(true, |v| v != "0");
    let vault = if log_groups {
        Server::start(&[
            ("VRM_LOG", "info,vrm_vault::store=trace"),
            ("NO_COLOR", "1"),
        ])
    } else {
        Server::start(&[])
    };
    println!("vault pid {} on {}", vault.child.id(), vault.addr);

    // The receiver and the setup/measuring client share this runtime; the baseline sender gets
    // its own (as the vault's sender is another process).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let receiver = rt.block_on(Receiver::start());
    println!("receiver on {}", receiver.addr);

    // Setup.
    let started = Instant::now();
    let setup = rt
        .block_on(async {
            tokio::time::timeout(SETUP_LIMIT, setup(vault.addr, receiver.addr)).await
        })
        .unwrap_or_else(|_| panic!("setup took more than {SETUP_LIMIT:?}"));
    let setup_time = started.elapsed();
    println!(
        "setup: owner, terms, {} invitations and {n_brands} brands (register, accept terms, token, \
         subscribe; {SETUP_CONCURRENCY} at once) in {:.1} s",
        brand_count().div_ceil(INVITATION_USES),
        setup_time.as_secs_f64()
    );
    println!();

    // The intents.
    let mut intents = Vec::new();
    for i in 1..=INTENTS {
        let run = rt.block_on(measure_intent(&vault, &receiver, &setup, i));
        run.print(i);
        intents.push(run);
        println!();
    }

    // The baseline: the first intent's deliveries, replayed.
    let requests: Vec<Arrival> = intents[0].arrivals.clone();
    let sender_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = webhook_client();
    let mut baselines = Vec::new();
    for run in 1..=BASELINE_RUNS {
        let label = if run == 1 {
            "fresh client"
        } else {
            "warm client"
        };
        let result = baseline(&rt, &sender_rt, &receiver, &client, &requests);
        println!(
            "baseline {run} ({label}): {n_brands} POSTs, at most {TOTAL_CONCURRENCY} at once: all \
             received in {:.3} s (first {:.3} s), all answered in {:.3} s",
            result.all_received.as_secs_f64(),
            result.first.as_secs_f64(),
            result.all_answered.as_secs_f64()
        );
        baselines.push(result);
    }
    drop(sender_rt);

    // Summary.
    let best_baseline = baselines
        .iter()
        .map(|b| b.all_received)
        .min()
        .unwrap_or_default();
    println!();
    println!("==================== summary ====================");
    println!(
        "machine: {cores} cores, {cpu}; load average now {}",
        load_average()
    );
    println!(
        "setup of {n_brands} brands:                     {:.1} s",
        setup_time.as_secs_f64()
    );
    for (i, run) in intents.iter().enumerate() {
        let total = run.all_received.as_secs_f64();
        println!(
            "intent {} to {n_brands} webhooks:                {total:.3} s (POST {:.3} s; target <= {} s: {}; \
             {:.1}x the best baseline)",
            i + 1,
            run.post.as_secs_f64(),
            TARGET.as_secs(),
            if run.all_received <= TARGET {
                "met"
            } else {
                "MISSED"
            },
            total / best_baseline.as_secs_f64()
        );
    }
    for (i, b) in baselines.iter().enumerate() {
        println!(
            "baseline {} (reqwest, {TOTAL_CONCURRENCY} at once, {}): {:.3} s",
            i + 1,
            if i == 0 { "fresh" } else { "warm " },
            b.all_received.as_secs_f64()
        );
    }
    let mut vault_times: Vec<Duration> = intents.iter().map(|r| r.all_received).collect();
    vault_times.sort_unstable();
    let median = vault_times[vault_times.len() / 2];
    println!(
        "ratio vault / baseline (median intent / best baseline): {:.3} s / {:.3} s = {:.1}",
        median.as_secs_f64(),
        best_baseline.as_secs_f64(),
        median.as_secs_f64() / best_baseline.as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// The receiver
// ---------------------------------------------------------------------------------------------

/// One webhook request as the receiver got it.
#[derive(Clone)]
struct Arrival {
    brand: usize,
    webhook_id: String,
    timestamp: String,
    signature: String,
    content_type: String,
    user_agent: String,
    body: Bytes,
    at: Instant,
}

struct Receiver {
    addr: SocketAddr,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    count: Arc<watch::Sender<usize>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let arrivals = Arc::new(Mutex::new(Vec::with_capacity(brand_count() * 8)));
        let count = Arc::new(watch::Sender::new(0usize));
        let (a, c) = (arrivals.clone(), count.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (a, c) = (a.clone(), c.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (a, c) = (a.clone(), c.clone());
                        async move { Ok::<_, Infallible>(receive(req, &a, &c).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            addr,
            arrivals,
            count,
        }
    }

    fn len(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    /// Waits until the receiver has seen `total` requests in all, at most `DELIVERY_LIMIT`.
    async fn wait_for(&self, total: usize, what: &str) {
        let mut rx = self.count.subscribe();
        let waited = tokio::time::timeout(DELIVERY_LIMIT, rx.wait_for(|n| *n >= total)).await;
        if waited.is_err() {
            panic!(
                "{what}: only {} of {total} requests arrived within {DELIVERY_LIMIT:?}",
                self.len()
            );
        }
    }

    /// The arrivals from index `from` on.
    fn since(&self, from: usize) -> Vec<Arrival> {
        self.arrivals.lock().unwrap()[from..].to_vec()
    }
}

async fn receive(
    req: Request<Incoming>,
    arrivals: &Mutex<Vec<Arrival>>,
    count: &watch::Sender<usize>,
) -> Response<Empty<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let brand = req
        .uri()
        .path()
        .strip_prefix("/b/")
        .and_then(|n| n.parse::<usize>().ok());
    let (webhook_id, timestamp, signature, content_type, user_agent) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        header("content-type"),
        header("user-agent"),
    );
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return status(StatusCode::BAD_REQUEST),
    };
    let at = Instant::now();
    let Some(brand) = brand else {
        return status(StatusCode::NOT_FOUND);
    };
    arrivals.lock().unwrap().push(Arrival {
        brand,
        webhook_id,
        timestamp,
        signature,
        content_type,
        user_agent,
        body,
        at,
    });
    count.send_modify(|n| *n += 1);
    status(StatusCode::NO_CONTENT)
}

fn status(code: StatusCode) -> Response<Empty<Bytes>> {
    let mut response = Response::new(Empty::new());
    *response.status_mut() = code;
    response
}

// ---------------------------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------------------------

struct Setup {
    base: String,
    client: reqwest::Client,
    owner_auth: String,
    /// Brand n's `whsec_` secret, decoded.
    secrets: Vec<Vec<u8>>,
}

async fn setup(vault: SocketAddr, receiver: SocketAddr) -> Setup {
    let base = format!("http://{vault}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let owner = Owner::setup(&client, &base, PASSPHRASE).await;
    // The PDC-INTENT terms, from the shipped template.
    let terms_hash = owner.publish_template(&client, "pdc-intent").await;

    // Invitations of 100 uses each.
    let mut invitations = Vec::new();
    for _ in 0..brand_count().div_ceil(INVITATION_USES) {
        invitations.push(
            owner
                .invitation(&client, INVITATION_USES, "delivery bench")
                .await,
        );
    }
    let owner_auth = owner.auth;

    // The brands, SETUP_CONCURRENCY at a time.
    let permits = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for n in 0..brand_count() {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let (client, base, hash) = (client.clone(), base.clone(), terms_hash.clone());
        let initial = invitations[n / INVITATION_USES].clone();
        tasks.spawn(async move {
            let secret = setup_brand(&client, &base, &initial, &hash, receiver, n).await;
            drop(permit);
            (n, secret)
        });
        if (n + 1) % 250 == 0 {
            println!(
                "  … {} brands started ({:.1} s)",
                n + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let mut secrets = vec![Vec::new(); brand_count()];
    while let Some(done) = tasks.join_next().await {
        let (n, secret) = done.unwrap();
        secrets[n] = secret;
    }
    Setup {
        base,
        client,
        owner_auth,
        secrets,
    }
}

/// Registers brand `n`, accepts the terms, gets a token and subscribes with its webhook; returns
/// the decoded webhook secret.
async fn setup_brand(
    client: &reqwest::Client,
    base: &str,
    initial_access_token: &str,
    terms_hash: &str,
    receiver: SocketAddr,
    n: usize,
) -> Vec<u8> {
    let vault = Remote {
        client: client.clone(),
        base: base.to_owned(),
    };
    let brand = register_with(
        &vault,
        initial_access_token,
        &json!({
            "client_name": format!("Bench Brand {n}"),
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["client_credentials"],
            "scope": "intents:read",
        }),
    )
    .await;
    let (status, receipt) = status_json(brand.accept(&vault, terms_hash).await).await;
    assert_eq!(status, 201, "agreement of brand {n}: {receipt}");
    let (status, token) = brand
        .token_response(&vault, &[("scope", "intents:read")])
        .await;
    assert_eq!(status, 200, "token of brand {n}: {token}");
    // The webhook subscription, the kit's way (it expects 200).
    let subscriber = Subscriber {
        token: token["access_token"].as_str().unwrap().to_owned(),
        brand,
        owner: None,
    };
    let subscription = subscriber
        .subscribe_ok(
            &vault,
            &json!({
                "categories": ["food"],
                "webhook_url": format!("http://{receiver}/b/{n}"),
            }),
        )
        .await;
    let secret = subscription["webhook_secret"]
        .as_str()
        .and_then(|s| s.strip_prefix("whsec_"))
        .unwrap_or_else(|| panic!("brand {n} got no whsec_ secret: {subscription}"));
    B64.decode(secret).unwrap()
}

// ---------------------------------------------------------------------------------------------
// One intent
// ---------------------------------------------------------------------------------------------

struct IntentRun {
    intent_id: String,
    /// How long the `POST /api/v1/intents` took (its answer comes after the intent, its 1,000
    /// events and outbox entries are durable).
    post: Duration,
    /// From just before the POST to the first and the last delivery received.
    first: Duration,
    all_received: Duration,
    /// Arrival times since the POST, sorted.
    offsets: Vec<Duration>,
    /// From just before the POST until the audit log had every delivery's outcome (polled every
    /// 10 ms once everything was received).
    all_recorded: Duration,
    /// New audit entries, by action.
    audit: BTreeMap<String, u64>,
    /// The vault's CPU time during the run (until all outcomes were recorded).
    cpu: (CpuSample, CpuSample),
    wall: Duration,
    groups: Option<GroupStats>,
    arrivals: Vec<Arrival>,
}

async fn measure_intent(
    vault: &Server,
    receiver: &Receiver,
    setup: &Setup,
    number: usize,
) -> IntentRun {
    let owner = Some(setup.owner_auth.as_str());
    let expires_at = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let body = json!({
        "category": "food.lunch",
        "text": format!("lunch nearby for two (bench intent {number})"),
        "expires_at": expires_at,
        "party_size": 2,
    });
    let audit_before = audit_seq(setup).await;
    let from = receiver.len();
    let log_before = vault.log_len();
    let cpu_before = CpuSample::of(vault.child.id());

    let start = Instant::now();
    let (status, intent) = call(
        &setup.client,
        reqwest::Method::POST,
        &format!("{}/api/v1/intents", setup.base),
        owner,
        Some(body),
    )
    .await;
    let post = start.elapsed();
    assert_eq!(status, 201, "intent {number}: {intent}");
    assert_eq!(
        intent["recipients_count"],
        brand_count(),
        "intent {number} did not go to every brand: {intent}"
    );
    receiver
        .wait_for(from + brand_count(), &format!("intent {number}"))
        .await;
    let arrivals = receiver.since(from);

    // Every outcome recorded: one audit entry per delivery, plus the intent's own.
    let expected = audit_before + 1 + brand_count() as u64;
    let recorded = tokio::time::timeout(DELIVERY_LIMIT, async {
        loop {
            if audit_seq(setup).await >= expected {
                return start.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("intent {number}: the outcomes were not all recorded"));
    let wall = start.elapsed();
    let cpu_after = CpuSample::of(vault.child.id());
    // The writer logs a group after applying it, so the last group's line can follow the audit
    // entries it made visible by a moment: wait (at most 2 s) for the line of every write.
    let mut log_after = vault.log_len();
    if vault.logs_groups {
        let deadline = Instant::now() + Duration::from_secs(2);
        while GroupStats::from_log(&vault.log, log_before, log_after).writes()
            < expected - audit_before
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
            log_after = vault.log_len();
        }
    }
    let audit = audit_actions(setup, audit_before).await;

    // Checks, after the timing.
    let intent_id = intent["id"].as_str().unwrap().to_owned();
    assert_eq!(
        arrivals.len(),
        brand_count(),
        "intent {number}: more requests than brands"
    );
    verify(&arrivals, &setup.secrets, &intent_id);

    let mut offsets: Vec<Duration> = arrivals.iter().map(|a| a.at - start).collect();
    offsets.sort_unstable();
    IntentRun {
        intent_id,
        post,
        first: offsets[0],
        all_received: offsets[offsets.len() - 1],
        offsets,
        all_recorded: recorded,
        audit,
        cpu: (cpu_before, cpu_after),
        wall,
        groups: vault
            .logs_groups
            .then(|| GroupStats::from_log(&vault.log, log_before, log_after)),
        arrivals,
    }
}

/// Every arrival: a known brand, each brand once, a valid Standard Webhooks signature with that
/// brand's secret, and the CloudEvent of this intent with `id` = `webhook-id`.
fn verify(arrivals: &[Arrival], secrets: &[Vec<u8>], intent_id: &str) {
    let mut brands = HashSet::new();
    let mut ids = HashSet::new();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for a in arrivals {
        assert!(a.brand < brand_count(), "unknown brand {}", a.brand);
        assert!(brands.insert(a.brand), "brand {} received twice", a.brand);
        assert!(ids.insert(a.webhook_id.clone()), "webhook-id reused");
        assert_eq!(a.content_type, "application/cloudevents+json");
        let ts: i64 = a.timestamp.parse().unwrap();
        assert!((now - ts).abs() < 300, "webhook-timestamp {ts} is off");
        let key = hmac::Key::new(hmac::HMAC_SHA256, &secrets[a.brand]);
        let mut signed = format!("{}.{}.", a.webhook_id, a.timestamp).into_bytes();
        signed.extend_from_slice(&a.body);
        let valid = a
            .signature
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|s| B64.decode(s).ok())
            .any(|sig| hmac::verify(&key, &signed, &sig).is_ok());
        assert!(
            valid,
            "brand {}: bad signature {:?} for webhook {}",
            a.brand, a.signature, a.webhook_id
        );
        let event: Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(event["id"], a.webhook_id.as_str(), "event id != webhook-id");
        assert_eq!(event["type"], "vrm.intent.created.v1");
        // Each brand knows the intent by its own id, never the vault's.
        assert_eq!(event["subject"], event["data"]["intent"]["id"]);
        assert_ne!(event["subject"], intent_id);
    }
    assert_eq!(brands.len(), brand_count());
}

impl IntentRun {
    fn print(&self, number: usize) {
        let n_brands = brand_count();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let at = |q: f64| self.offsets[((self.offsets.len() - 1) as f64 * q).round() as usize];
        println!(
            "intent {number} ({}): all {n_brands} webhooks received {:.3} s after the POST started \
             (target <= {} s: {})",
            self.intent_id,
            self.all_received.as_secs_f64(),
            TARGET.as_secs(),
            if self.all_received <= TARGET {
                "met"
            } else {
                "MISSED"
            }
        );
        println!(
            "  POST /api/v1/intents answered 201 in {:.1} ms; first delivery at {:.1} ms; \
             p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, last {:.1} ms",
            ms(self.post),
            ms(self.first),
            ms(at(0.5)),
            ms(at(0.9)),
            ms(at(0.99)),
            ms(self.all_received)
        );
        // Waves: runs of arrivals with no gap above WAVE_GAP.
        let mut waves: Vec<(Duration, Duration, usize)> = Vec::new();
        for &t in &self.offsets {
            match waves.last_mut() {
                Some(w) if t - w.1 <= WAVE_GAP => {
                    w.1 = t;
                    w.2 += 1;
                }
                _ => waves.push((t, t, 1)),
            }
        }
        let waves_text = waves
            .iter()
            .map(|(from, to, n)| format!("{n} in {:.0}–{:.0} ms", ms(*from), ms(*to)))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "  arrival waves (gaps > {} ms split them): {waves_text}",
            WAVE_GAP.as_millis()
        );
        let audit = self
            .audit
            .iter()
            .map(|(action, n)| format!("{action} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "  every outcome in the audit log {:.1} ms after the POST started; new audit entries: {audit}",
            ms(self.all_recorded)
        );
        self.cpu.1.print_busy_since(&self.cpu.0, self.wall, "vault");
        if let Some(groups) = &self.groups {
            groups.print_summary();
        }
        let agents: HashSet<&str> = self
            .arrivals
            .iter()
            .map(|a| a.user_agent.as_str())
            .collect();
        println!(
            "  checked: {n_brands} distinct brands, each signature valid with its brand's whsec_ secret, \
             body = CloudEvent of this intent with id = webhook-id (user-agent {agents:?})"
        );
    }
}

/// The newest audit sequence number.
async fn audit_seq(setup: &Setup) -> u64 {
    let (status, page) = call(
        &setup.client,
        reqwest::Method::GET,
        &format!("{}/api/v1/audit?limit=1", setup.base),
        Some(&setup.owner_auth),
        None,
    )
    .await;
    assert_eq!(status, 200, "audit: {page}");
    page["entries"][0]["seq"].as_u64().unwrap()
}

/// The audit entries after `after`, counted by action.
async fn audit_actions(setup: &Setup, after: u64) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    let mut before: Option<u64> = None;
    loop {
        let url = match before {
            Some(b) => format!("{}/api/v1/audit?limit=200&before={b}", setup.base),
            None => format!("{}/api/v1/audit?limit=200", setup.base),
        };
        let (status, page) = call(
            &setup.client,
            reqwest::Method::GET,
            &url,
            Some(&setup.owner_auth),
            None,
        )
        .await;
        assert_eq!(status, 200, "audit: {page}");
        for entry in page["entries"].as_array().unwrap() {
            if entry["seq"].as_u64().unwrap() <= after {
                return counts;
            }
            *counts
                .entry(entry["action"].as_str().unwrap_or("?").to_owned())
                .or_default() += 1;
        }
        match page["next_before"].as_u64() {
            Some(b) => before = Some(b),
            None => return counts,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The baseline
// ---------------------------------------------------------------------------------------------

struct BaselineRun {
    first: Duration,
    all_received: Duration,
    all_answered: Duration,
}

/// A client built like the vault's webhook sender (`src/webhooks.rs`).
fn webhook_client() -> reqwest::Client {
    let timeout = vrm_vault::webhooks::DELIVERY_TIMEOUT;
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("vrm-vault-bench-baseline")
        .build()
        .unwrap()
}

/// The given deliveries sent again, exactly as received (URL, headers, body), from `sender_rt`,
/// with the vault's caps; timed until the receiver has them all.
fn baseline(
    rt: &tokio::runtime::Runtime,
    sender_rt: &tokio::runtime::Runtime,
    receiver: &Receiver,
    client: &reqwest::Client,
    requests: &[Arrival],
) -> BaselineRun {
    let from = receiver.len();
    let base = format!("http://{}", receiver.addr);
    let requests: Vec<Arrival> = requests.to_vec();
    let client = client.clone();
    let start = Instant::now();
    let sending = sender_rt.spawn(async move {
        let total = Arc::new(Semaphore::new(TOTAL_CONCURRENCY));
        let mut per_brand: HashMap<usize, Arc<Semaphore>> = HashMap::new();
        let mut tasks = tokio::task::JoinSet::new();
        for r in requests {
            let brand = per_brand
                .entry(r.brand)
                .or_insert_with(|| Arc::new(Semaphore::new(PER_BRAND_CONCURRENCY)))
                .clone()
                .acquire_owned()
                .await
                .unwrap();
            let permit = total.clone().acquire_owned().await.unwrap();
            let client = client.clone();
            let url = format!("{base}/b/{}", r.brand);
            tasks.spawn(async move {
                let response = client
                    .post(url)
                    .header("content-type", r.content_type)
                    .header("webhook-id", r.webhook_id)
                    .header("webhook-timestamp", r.timestamp)
                    .header("webhook-signature", r.signature)
                    .body(r.body)
                    .send()
                    .await;
                drop((permit, brand));
                response.map(|r| r.status().as_u16())
            });
        }
        while let Some(done) = tasks.join_next().await {
            match done.unwrap() {
                Ok(status) => assert!((200..300).contains(&status), "baseline got {status}"),
                Err(e) => panic!("baseline request failed: {e}"),
            }
        }
        start.elapsed()
    });
    rt.block_on(receiver.wait_for(from + brand_count(), "baseline"));
    let all_answered = sender_rt
        .block_on(async { tokio::time::timeout(DELIVERY_LIMIT, sending).await })
        .unwrap_or_else(|_| panic!("baseline: not all answered within {DELIVERY_LIMIT:?}"))
        .unwrap();
    let arrivals = receiver.since(from);
    assert_eq!(
        arrivals.len(),
        brand_count(),
        "baseline: more requests than sent"
    );
    let first = arrivals.iter().map(|a| a.at).min().unwrap() - start;
    let last = arrivals.iter().map(|a| a.at).max().unwrap() - start;
    BaselineRun {
        first,
        all_received: last,
        all_answered,
    }
}

// ---------------------------------------------------------------------------------------------
// The server process, its log and its CPU time
// ---------------------------------------------------------------------------------------------

/// The vault under test (the kit's server, killed on drop) and whether its log filter includes
/// the store writer's group lines.
struct Server {
    server: kit::server::Server,
    logs_groups: bool,
}

impl Server {
    fn start(envs: &[(&str, &str)]) -> Server {
        Server {
            server: kit::server::Server::vault(|cmd| {
                cmd.arg("--allow-loopback-webhooks")
                    .envs(envs.iter().copied());
            }),
            logs_groups: envs.iter().any(|(k, _)| *k == "VRM_LOG"),
        }
    }
}

impl std::ops::Deref for Server {
    type Target = kit::server::Server;

    fn deref(&self) -> &kit::server::Server {
        &self.server
    }
}
