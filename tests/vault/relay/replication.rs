//! Replication: on a three-node NATS cluster every stream and bucket the relay uses has the
//! replica count `--replicas` (or `VRM_RELAY_REPLICAS`) names; an instance reaching any one node
//! works; a count changed between start-ups is applied to what exists; the operator's `admit`
//! never changes it; and a count the cluster can never hold stops the relay with a sentence.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;

use crate::kit::cluster::NatsCluster;
use crate::kit::relay::{AdmittedBrand, Nats, RelayApp, relay_command};

const STREAMS: [&str; 9] = [
    "RELAY_INTENTS",
    "RELAY_FEEDS",
    "RELAY_DELIVERIES",
    "RELAY_OFFERS",
    "RELAY_MESSAGES",
    "KV_relay_brands",
    "KV_relay_subscriptions",
    "KV_relay_tokens",
    "KV_relay_assertions",
];

/// Each stream's configured replicas and the peers JetStream placed it on.
async fn replicas(nats_url: &str) -> Vec<(String, usize, usize)> {
    let js = jetstream::new(async_nats::connect(nats_url).await.unwrap());
    let mut out = Vec::new();
    for name in STREAMS {
        let mut stream = js.get_stream(name).await.unwrap();
        let info = stream.info().await.unwrap();
        let placed = info.cluster.as_ref().map_or(1, |c| 1 + c.replicas.len());
        out.push((name.to_owned(), info.config.num_replicas, placed));
    }
    out
}

/// Waits (at most 30 s) until every stream has `want` replicas configured and placed: JetStream
/// adds the peers of a scaled-up stream in the background.
async fn wait_replicas(nats_url: &str, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = replicas(nats_url).await;
        if now.iter().all(|(_, c, p)| (*c, *p) == (want, want)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not all at {want} replicas: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_follow_the_replica_count_on_a_three_node_cluster() {
    let cluster = NatsCluster::start(3);
    // A first instance with the default count: one replica each.
    let single = RelayApp::start(&cluster.nats_arg(), |_| {});
    assert!(
        single.wait_ready(200, Duration::from_secs(30)).await,
        "not ready; log:\n{}",
        single.log()
    );
    wait_replicas(&cluster.url(0), 1).await;

    // A second instance told (by the environment) to keep three, reaching only node n2: it
    // brings every existing stream and bucket to three replicas and says so in its log.
    let triple = RelayApp::start(&cluster.url(2), |c| {
        c.env("VRM_RELAY_REPLICAS", "3");
    });
    assert!(
        triple.wait_ready(200, Duration::from_secs(60)).await,
        "not ready; log:\n{}",
        triple.log()
    );
    assert!(
        triple
            .log()
            .contains("changing the stream's replicas to --replicas"),
        "the change is not logged:\n{}",
        triple.log()
    );
    wait_replicas(&cluster.url(1), 3).await;
    // Bucket reads go to the leader: a follower behind the latest write must not answer that a
    // token just issued by another instance is unknown.
    let js = jetstream::new(async_nats::connect(cluster.url(0)).await.unwrap());
    for name in STREAMS.iter().filter(|n| n.starts_with("KV_")) {
        let mut stream = js.get_stream(*name).await.unwrap();
        let info = stream.info().await.unwrap();
        assert!(
            !info.config.allow_direct,
            "{name} lets followers answer reads"
        );
    }

    // The operator's `admit` (no --replicas: the default 1) binds what exists and changes
    // nothing; the brand it wrote is readable through either instance.
    let brand = AdmittedBrand::admit_via(&cluster.nats_arg(), "Replicated Bistro");
    for (name, configured, _) in replicas(&cluster.url(0)).await {
        assert_eq!(configured, 3, "admit changed {name}'s replicas");
    }
    for relay in [&single, &triple] {
        let (status, body) = relay
            .get_json(&format!("/relay/v1/brands/{}", brand.client_id), None)
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["name"], "Replicated Bistro");
    }

    // More replicas than the cluster has nodes: JetStream cannot place them; the instance
    // stays not ready, says why, and changes nothing.
    let too_many = RelayApp::start(&cluster.nats_arg(), |c| {
        c.args(["--replicas", "5"]);
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !too_many
        .log()
        .contains("fewer JetStream servers up than --replicas")
    {
        assert!(
            Instant::now() < deadline,
            "no clear sentence in the log:\n{}",
            too_many.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(too_many.readyz().await.status(), 503);
    for (name, configured, _) in replicas(&cluster.url(2)).await {
        assert_eq!(configured, 3, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_server_cannot_hold_three_replicas_and_the_relay_says_so() {
    let nats = Nats::start();
    let mut cmd = relay_command(&nats.url(), |c| {
        c.args(["--replicas", "3"]);
    });
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the relay kept running with --replicas 3 on a lone server");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("--replicas 3 needs a NATS cluster of at least 3 JetStream servers"),
        "{stderr}"
    );
    // The operator's command says the same and creates nothing.
    let out = Command::new(env!("CARGO_BIN_EXE_vrm-vault"))
        .args(["relay", "suspend", "--nats", &nats.url(), "--replicas", "3"])
        .args(["--client-id", "nobody"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not in a cluster"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
