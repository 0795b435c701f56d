//! The relay under faults (DESIGN §11, "Guarantees"): three NATS nodes with three replicas, two
//! relay instances behind one public URL, simulated vaults publishing intents to alternating
//! instances and brands answering every webhook with an offer, under steady load; one NATS node
//! is killed (SIGKILL) mid-load, then one relay instance, and both are restarted.
//!
//! Asserted: every intent acknowledged 201 reached every matching brand (and no other) at least
//! once, exactly once after de-duplicating by event id; every acknowledged offer is readable by
//! its intent's vault; every webhook signature verifies; the load saw only retryable failures
//! (503 with `Retry-After`, or a refused connection to the killed instance); the webhook
//! consumer has the intended ack wait and attempts. How long each failover took is printed.
//!
//! Bounded: at most [`MAX_INTENTS`] per vault, a fixed schedule of faults, and a time limit on
//! the whole test; loopback only.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::kit::brand::{ASSERTION_TYPE, random_id};
use crate::kit::cluster::NatsCluster;
use crate::kit::intent::{Receiver, signature_verifies};
use crate::kit::relay::{AdmittedBrand, free_port};
use crate::kit::relay_traffic::{
    Answer, VaultIntent, accepted_offer, client, offer_body, post_offer, publish_intent,
    read_offers, send,
};
use crate::kit::server::Server;

/// The public URL both instances share (as behind one load balancer); nothing resolves it.
const PUBLIC_URL: &str = "http://relay.test";
const VAULTS: usize = 3;
const MAX_INTENTS: usize = 150;
/// The pause between one vault's intents.
const PACE: Duration = Duration::from_millis(150);
/// The whole test, faults and checks included.
const LIMIT: Duration = Duration::from_secs(300);

/// `vrm-vault relay` on a fixed loopback port (a restarted instance comes back on it).
fn instance(nats_arg: &str, port: u16) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vrm-vault"));
    cmd.args(["relay", "--nats", nats_arg, "--replicas", "3"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--public-url", PUBLIC_URL, "--allow-loopback-webhooks"])
        // The load comes from one loopback address: the per-address intent budget (30 an
        // hour by default) would refuse it after the first seconds.
        .args([
            "--intents-per-hour",
            "100000",
            "--offers-per-minute",
            "100000",
        ])
        .env("VRM_LOG", "info");
    Server::spawn(cmd, TempDir::new().unwrap())
}

async fn wait_ready(http: &reqwest::Client, base: &str, within: Duration, log: &std::path::Path) {
    let deadline = Instant::now() + within;
    loop {
        if send(http.get(format!("{base}/readyz"))).await.status() == Some(200) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{base} did not become ready; its last /readyz: {:?}; its log:\n{}",
            send(http.get(format!("{base}/readyz"))).await,
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One write the load made: when it started and ended, and whether it was acknowledged.
#[derive(Debug, Clone, Copy)]
struct Write {
    start: Instant,
    end: Instant,
    ok: bool,
}

/// What the load saw.
#[derive(Default)]
struct Seen {
    writes: Vec<Write>,
    /// Acknowledged intents: id → (category, the vault's intent, when acknowledged).
    intents: BTreeMap<String, (String, Arc<VaultIntent>, Instant)>,
    /// Acknowledged offers: (intent id, offer id).
    offers: Vec<(String, String)>,
    retryable: Vec<String>,
    /// Anything else: the test fails on any.
    bad: Vec<String>,
}

/// A brand in the test: its admitted identity, token, webhook receiver and secret, and the
/// category it subscribed to.
struct TestBrand {
    brand: AdmittedBrand,
    token: String,
    receiver: Receiver,
    secret: String,
    category: &'static str,
}

/// Sends the write `attempt(instance)` to alternating instances until it is acknowledged or
/// fails for good; records each attempt. Returns the acknowledged answer's body.
async fn write_until_acknowledged<F, Fut>(
    seen: &Mutex<Seen>,
    bases: &[String; 2],
    first: usize,
    what: &str,
    mut attempt: F,
) -> Option<Value>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Answer>,
{
    let deadline = Instant::now() + Duration::from_secs(90);
    for k in 0.. {
        let start = Instant::now();
        let answer = attempt(bases[(first + k) % 2].clone()).await;
        let end = Instant::now();
        // 200: a retry of a write the relay had already stored (a publication is idempotent
        // by the intent's key and answers the same id), so it is acknowledged too.
        let ok = answer.status() == Some(201) || (k > 0 && answer.status() == Some(200));
        {
            let mut seen = seen.lock().unwrap();
            seen.writes.push(Write { start, end, ok });
            if ok {
                return Some(answer.body().clone());
            }
            if !answer.retryable() {
                seen.bad.push(format!("{what}: {answer:?}"));
                return None;
            }
            seen.retryable.push(format!("{what}: {answer:?}"));
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// When writes came back after a fault at `at`: the end of the first acknowledged write that
/// started after it, and the longest stretch around it with no write acknowledged.
fn failover(writes: &[Write], at: Instant) -> (Duration, Duration) {
    let back = writes
        .iter()
        .filter(|w| w.ok && w.start >= at)
        .map(|w| w.end)
        .min()
        .map_or(Duration::MAX, |end| end - at);
    let mut ends: Vec<Instant> = writes
        .iter()
        .filter(|w| {
            w.ok && w.end + Duration::from_secs(2) >= at
                && w.end <= at + back + Duration::from_secs(5)
        })
        .map(|w| w.end)
        .collect();
    ends.sort();
    let gap = ends
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    (back, gap)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_a_nats_node_and_a_relay_instance_loses_nothing_acknowledged() {
    tokio::time::timeout(LIMIT, run())
        .await
        .expect("the fault test ran over its time limit");
}

async fn run() {
    let mut cluster = NatsCluster::start(3);
    let ports = [free_port(), free_port()];
    let bases = [0, 1].map(|i| format!("http://127.0.0.1:{}", ports[i]));
    let http = client();
    let mut instances = [None, None];
    for i in 0..2 {
        let started = instance(&cluster.nats_arg(), ports[i]);
        let log = started.log.clone();
        instances[i] = Some(started);
        wait_ready(&http, &bases[i], Duration::from_secs(60), &log).await;
    }

    // Brands: two for food, one for travel, each with a webhook.
    let mut brands = Vec::new();
    for (name, category) in [
        ("Chez Lulu", "food"),
        ("Pizzeria Nord", "food"),
        ("Hotel Paris", "travel"),
    ] {
        let brand = AdmittedBrand::admit_via(&cluster.nats_arg(), name);
        let assertion = brand.keys.signing.assertion(
            &brand.client_id,
            &format!("{PUBLIC_URL}/oauth/token"),
            &random_id(),
        );
        let token = send(http.post(format!("{}/oauth/token", bases[1])).form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ]))
        .await;
        assert_eq!(token.status(), Some(200), "{token:?}");
        let token = token.body()["access_token"].as_str().unwrap().to_owned();
        let receiver = Receiver::start(&[]).await;
        let subscribed = send(
            http.put(format!("{}/relay/v1/subscription", bases[0]))
                .bearer_auth(&token)
                .json(
                    &json!({"categories": [category], "areas": [{"geohash": "u09"}],
                              "webhook_url": receiver.url}),
                ),
        )
        .await;
        assert_eq!(subscribed.status(), Some(200), "{subscribed:?}");
        let secret = subscribed.body()["webhook_secret"]
            .as_str()
            .unwrap()
            .to_owned();
        brands.push(TestBrand {
            brand,
            token,
            receiver,
            secret,
            category,
        });
    }
    let brands = Arc::new(brands);
    // Every instance's index must hold every subscription before the load starts.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop_vaults = Arc::new(AtomicBool::new(false));
    let stop_brands = Arc::new(AtomicBool::new(false));

    // The vaults: each publishes intents (food and travel in turn) to alternating instances.
    let mut vaults = Vec::new();
    for v in 0..VAULTS {
        let (seen, stop, http, bases) = (
            seen.clone(),
            stop_vaults.clone(),
            http.clone(),
            bases.clone(),
        );
        vaults.push(tokio::spawn(async move {
            for n in 0..MAX_INTENTS {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let category = if n % 2 == 0 {
                    "food.lunch"
                } else {
                    "travel.hotel"
                };
                let intent = Arc::new(VaultIntent::new(category, "u09tv", 10));
                let created = write_until_acknowledged(&seen, &bases, v + n, "intent", |base| {
                    let (http, intent) = (http.clone(), intent.clone());
                    async move { publish_intent(&http, &base, &intent).await }
                })
                .await;
                if let Some(created) = created {
                    let id = created["id"].as_str().unwrap().to_owned();
                    seen.lock()
                        .unwrap()
                        .intents
                        .insert(id, (category.to_owned(), intent, Instant::now()));
                }
                tokio::time::sleep(PACE).await;
            }
        }));
    }

    // The brands: each verifies every webhook and answers each new intent with one offer.
    let mut answering = Vec::new();
    for b in 0..brands.len() {
        let (seen, stop, http, bases, brands) = (
            seen.clone(),
            stop_brands.clone(),
            http.clone(),
            bases.clone(),
            brands.clone(),
        );
        answering.push(tokio::spawn(async move {
            let me = &brands[b];
            let mut handled = 0;
            let mut offered = BTreeSet::new();
            loop {
                let received = me.receiver.received();
                for request in &received[handled..] {
                    let event = request.json();
                    let intent = &event["data"]["intent"];
                    let Some(intent_id) = intent["id"].as_str() else {
                        continue;
                    };
                    if event["type"] != "vrm.intent.created.v1"
                        || !offered.insert(intent_id.to_owned())
                    {
                        continue;
                    }
                    let terms_hash = intent["terms_hash"].as_str().unwrap().to_owned();
                    let body = accepted_offer(
                        &me.brand.keys.signing,
                        intent_id,
                        &terms_hash,
                        &offer_body(&me.brand.name),
                    );
                    let created = write_until_acknowledged(&seen, &bases, b, "offer", |base| {
                        let (http, body, token) = (http.clone(), body.clone(), me.token.clone());
                        let intent_id = intent_id.to_owned();
                        async move { post_offer(&http, &base, &token, &intent_id, &body).await }
                    })
                    .await;
                    if let Some(created) = created {
                        let offer_id = created["id"].as_str().unwrap().to_owned();
                        seen.lock()
                            .unwrap()
                            .offers
                            .push((intent_id.to_owned(), offer_id));
                    }
                }
                handled = received.len();
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }

    // The faults, on a fixed schedule.
    let began = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let nats_killed = Instant::now();
    tokio::task::block_in_place(|| cluster.kill(0));
    println!("killed NATS node n0 at {:?}", nats_killed - began);
    tokio::time::sleep(Duration::from_secs(5)).await;
    tokio::task::block_in_place(|| {
        cluster.restart(0);
        cluster.wait_healthy(0, Duration::from_secs(60));
    });
    println!("n0 back and healthy at {:?}", began.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let relay_killed = Instant::now();
    if let Some(mut killed) = instances[0].take() {
        tokio::task::block_in_place(|| {
            killed.child.kill().unwrap();
            killed.child.wait().unwrap();
        });
    }
    println!("killed relay instance 0 at {:?}", relay_killed - began);
    tokio::time::sleep(Duration::from_secs(5)).await;
    instances[0] = Some(tokio::task::block_in_place(|| {
        instance(&cluster.nats_arg(), ports[0])
    }));
    let log = instances[0].as_ref().unwrap().log.clone();
    wait_ready(&http, &bases[0], Duration::from_secs(60), &log).await;
    let relay_back = Instant::now();
    println!(
        "relay instance 0 back and ready at {:?}",
        relay_back - began
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_vaults.store(true, Ordering::SeqCst);
    for vault in vaults {
        vault.await.unwrap();
    }
    let load_ended = Instant::now();

    // Every acknowledged intent reaches every matching brand; webhooks held by the killed
    // instance come after the ack wait.
    let expected = |b: &TestBrand, seen: &Seen| -> BTreeSet<String> {
        seen.intents
            .iter()
            .filter(|(_, (category, _, _))| category.starts_with(b.category))
            .map(|(id, _)| id.clone())
            .collect()
    };
    let delivered = |b: &TestBrand| -> BTreeSet<String> {
        b.receiver
            .received()
            .iter()
            .filter_map(|r| r.json()["data"]["intent"]["id"].as_str().map(str::to_owned))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let missing: usize = {
            let seen = seen.lock().unwrap();
            brands
                .iter()
                .map(|b| expected(b, &seen).difference(&delivered(b)).count())
                .sum()
        };
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} acknowledged intents never reached a matching brand"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let all_delivered = Instant::now();
    // The brands answer what they received, then stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_brands.store(true, Ordering::SeqCst);
    for task in answering {
        task.await.unwrap();
    }

    // Every task has ended: what they saw is final.
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        seen.bad.is_empty(),
        "non-retryable failures: {:#?}",
        seen.bad
    );
    assert!(
        seen.intents.len() >= 30,
        "too little load: {} intents",
        seen.intents.len()
    );
    let mut duplicates = 0;
    let mut latest = Duration::ZERO;
    for b in brands.iter() {
        let received = b.receiver.received();
        let mut by_event: BTreeMap<String, usize> = BTreeMap::new();
        for request in &received {
            assert!(
                signature_verifies(&b.secret, request),
                "{}: a webhook signature does not verify",
                b.brand.name
            );
            let event = request.json();
            assert_eq!(request.header("webhook-id"), event["id"].as_str().unwrap());
            assert_eq!(event["source"], PUBLIC_URL);
            *by_event
                .entry(event["id"].as_str().unwrap().to_owned())
                .or_default() += 1;
            // How long after its acknowledgement the intent reached the brand the first time.
            if let Some((_, _, acked)) = seen
                .intents
                .get(event["data"]["intent"]["id"].as_str().unwrap())
            {
                latest = latest.max(request.at.saturating_duration_since(*acked));
            }
        }
        duplicates += by_event.values().map(|n| n - 1).sum::<usize>();
        // De-duplicated by event id: exactly the acknowledged matching intents (plus any the
        // relay stored before answering 503, which the vault then published again).
        let got = delivered(b);
        let want = expected(b, &seen);
        assert!(want.is_subset(&got), "{}", b.brand.name);
        for id in &got {
            if let Some((category, _, _)) = seen.intents.get(id) {
                assert!(
                    category.starts_with(b.category),
                    "{} got {category}",
                    b.brand.name
                );
            }
        }
        let events_per_intent = received
            .iter()
            .map(|r| r.json()["id"].as_str().unwrap().to_owned())
            .collect::<BTreeSet<_>>()
            .len();
        assert_eq!(events_per_intent, got.len(), "one event id per intent");
    }

    // Every acknowledged offer is readable by its intent's vault, through either instance.
    let mut by_intent: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (intent_id, offer_id) in &seen.offers {
        by_intent.entry(intent_id).or_default().push(offer_id);
    }
    for (n, (intent_id, offer_ids)) in by_intent.iter().enumerate() {
        let Some((_, intent, _)) = seen.intents.get(*intent_id) else {
            continue;
        };
        let answer = read_offers(&http, &bases[n % 2], PUBLIC_URL, intent, intent_id).await;
        assert_eq!(answer.status(), Some(200), "{answer:?}");
        let listed: BTreeSet<&str> = answer.body()["offers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o["id"].as_str())
            .collect();
        for offer_id in offer_ids {
            assert!(
                listed.contains(offer_id),
                "offer {offer_id} of {intent_id} is lost"
            );
        }
    }
    let offers_checked = seen
        .offers
        .iter()
        .filter(|(i, _)| seen.intents.contains_key(i))
        .count();
    assert!(offers_checked >= 30, "too few offers: {offers_checked}");

    // The webhook consumer: held jobs go to another instance after 20 s, 20 attempts at most.
    let js = async_nats::jetstream::new(async_nats::connect(cluster.url(1)).await.unwrap());
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = js
        .get_stream("RELAY_DELIVERIES")
        .await
        .unwrap()
        .get_consumer("webhooks")
        .await
        .unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!(info.config.ack_wait, Duration::from_secs(20));
    assert_eq!(info.config.max_deliver, 20);

    let (nats_back, nats_gap) = failover(&seen.writes, nats_killed);
    let (relay_back, relay_gap) = failover(&seen.writes, relay_killed);
    println!(
        "fault test: {} intents and {} offers acknowledged in {:?} of load; {} writes, {} retryable failures",
        seen.intents.len(),
        offers_checked,
        load_ended - began,
        seen.writes.len(),
        seen.retryable.len()
    );
    println!(
        "NATS node killed: first acknowledged write started after it ended {nats_back:?} later; \
         longest stretch without one {nats_gap:?}"
    );
    println!(
        "relay instance killed: first acknowledged write started after it ended {relay_back:?} later; \
         longest stretch without one {relay_gap:?}"
    );
    println!(
        "webhooks: slowest first delivery {latest:?} after the intent's 201; {duplicates} duplicate \
         deliveries (same event id); all delivered {:?} after the load ended",
        all_delivered.saturating_duration_since(load_ended)
    );
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for failure in &seen.retryable {
        let kind = if failure.contains("503") {
            "503 with Retry-After"
        } else {
            "connection refused, reset or closed by the killed instance"
        };
        *kinds.entry(kind.to_owned()).or_default() += 1;
    }
    println!("retryable failures by kind: {kinds:?}");
    drop(instances);
}
