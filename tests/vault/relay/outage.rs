//! A NATS outage: with two of three nodes gone there is no JetStream quorum, and the relay says
//! so at once (writes and `/readyz` answer 503 with `Retry-After` within the publish timeout,
//! never hanging), then recovers by itself when the nodes come back.

use std::time::{Duration, Instant};

use crate::kit::cluster::NatsCluster;
use crate::kit::relay::RelayApp;
use crate::kit::relay_traffic::{Answer, VaultIntent, client, publish_intent};

/// The longest a write may take while JetStream cannot answer: the relay's 3 s JetStream
/// timeout for one publish, plus a reconnection to a surviving node, with room for a slow CI.
const BOUND: Duration = Duration::from_secs(12);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quorum_writes_say_503_and_the_relay_recovers_by_itself() {
    let mut cluster = NatsCluster::start(3);
    let relay = RelayApp::start(&cluster.nats_arg(), |c| {
        c.args(["--replicas", "3"]);
    });
    assert!(
        relay.wait_ready(200, Duration::from_secs(60)).await,
        "not ready; log:\n{}",
        relay.log()
    );
    let http = client();
    let base = relay.url("");
    let before = publish_intent(&http, &base, &VaultIntent::new("food.lunch", "u09tv", 3)).await;
    assert_eq!(before.status(), Some(201), "{before:?}");

    // Two of three nodes crash: one node is left, no quorum.
    cluster.kill(1);
    cluster.kill(2);
    let started = Instant::now();
    let answer = publish_intent(&http, &base, &VaultIntent::new("food.lunch", "u09tv", 3)).await;
    let took = started.elapsed();
    println!("a write without quorum was answered in {took:?}: {answer:?}");
    assert!(took < BOUND, "the write took {took:?}");
    match &answer {
        Answer::Status {
            status: 503,
            retry_after: Some(seconds),
            body,
        } => {
            assert_eq!(seconds, "5");
            assert_eq!(body["error"], "relay_unavailable", "{body}");
        }
        other => panic!("expected 503 with Retry-After, got {other:?}"),
    }
    // Readiness asks JetStream's meta leader, which steps down only after 10 s without hearing
    // from a quorum (its lost-quorum interval): /readyz follows within that, plus a timeout.
    let started = Instant::now();
    assert!(
        relay.wait_ready(503, Duration::from_secs(30)).await,
        "still ready without quorum; log:\n{}",
        relay.log()
    );
    let readyz = relay.readyz().await;
    assert_eq!(readyz.status(), 503);
    assert!(readyz.headers().contains_key("retry-after"));
    println!("/readyz said 503 after {:?}", started.elapsed());

    // The nodes come back: the relay recovers without being restarted.
    cluster.restart(1);
    cluster.restart(2);
    let started = Instant::now();
    assert!(
        relay.wait_ready(200, Duration::from_secs(90)).await,
        "did not recover; log:\n{}",
        relay.log()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer =
            publish_intent(&http, &base, &VaultIntent::new("food.lunch", "u09tv", 3)).await;
        match answer.status() {
            Some(201) => break,
            _ if answer.retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => panic!("no recovery: {answer:?}; log:\n{}", relay.log()),
        }
    }
    println!(
        "writes succeeded again {:?} after the nodes restarted",
        started.elapsed()
    );
}
