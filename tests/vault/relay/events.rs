//! A brand's feed as Server-Sent Events: any instance serves it (it reads JetStream), an event
//! written through one instance reaches a reader on another, `Last-Event-ID` resumes with
//! exactly the missed events, and the operator's suspension ends the stream at once.

use std::time::Duration;

use serde_json::json;

use super::brands::operator;
use super::offers::publish;
use crate::kit::brand::{now, random_id};
use crate::kit::relay::{AdmittedBrand, Nats, Read, RelayApp};

async fn ready_relay(nats: &Nats) -> RelayApp {
    let relay = RelayApp::start(&nats.url(), |_| {});
    assert!(
        relay.wait_ready(200, Duration::from_secs(20)).await,
        "{}",
        relay.log()
    );
    relay
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_one_instance_stream_from_another_and_resume_exactly() {
    let nats = Nats::start();
    let a = ready_relay(&nats).await;
    let b = ready_relay(&nats).await;
    let brand = AdmittedBrand::admit(&nats, "Chez Lulu");
    let token = a.token(&brand).await;
    let res = a
        .client
        .put(a.url("/relay/v1/subscription"))
        .bearer_auth(&token)
        .json(&json!({"categories": ["food"], "areas": [{"geohash": "u09"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let mut stream = b.events(&token, None).await;
    assert!(matches!(
        stream.next(Duration::from_millis(300)).await,
        Read::Quiet
    ));
    let first = publish(&a, 3).await;
    let (first_id, event) = stream.event(Duration::from_secs(10)).await;
    assert_eq!(event["type"], "vrm.intent.created.v1");
    assert_eq!(event["subject"], first.id.as_str());
    assert_eq!(event["source"], a.url(""));
    // The SSE id is the polling cursor, and the event is the one polling returns.
    let (_, page) = a.get_json("/relay/v1/intents?cursor=0", Some(&token)).await;
    assert_eq!(page["next_cursor"].to_string(), first_id);
    assert_eq!(page["events"][0], event);

    // Disconnected, the brand misses two intents and a message; it resumes with exactly those.
    drop(stream);
    let second = publish(&a, 3).await;
    let third = publish(&a, 3).await;
    let path = format!("/relay/v1/intents/{}/messages", second.id);
    let withdraw = second.key.sign(
        Some("JWT"),
        "intent",
        &json!({"sub": second.id, "aud": a.url(&path), "exp": now() + 60, "jti": random_id()}),
    );
    let res = a
        .client
        .post(a.url(&path))
        .bearer_auth(withdraw)
        .json(&json!({"type": "withdrawn"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let mut resumed = b.events(&token, Some(&first_id)).await;
    let mut missed = Vec::new();
    for _ in 0..3 {
        let (id, event) = resumed.event(Duration::from_secs(10)).await;
        assert!(id.parse::<u64>().unwrap() > first_id.parse::<u64>().unwrap());
        missed.push((
            event["type"].as_str().unwrap().to_owned(),
            event["subject"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(
        missed,
        [
            ("vrm.intent.created.v1".to_owned(), second.id.clone()),
            ("vrm.intent.created.v1".to_owned(), third.id.clone()),
            ("vrm.intent.withdrawn.v1".to_owned(), second.id.clone()),
        ]
    );
    assert!(matches!(
        resumed.next(Duration::from_millis(300)).await,
        Read::Quiet
    ));

    // A Last-Event-ID that is not one of ours is refused in the error shape.
    let res = b
        .client
        .get(b.url("/relay/v1/events"))
        .bearer_auth(&token)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let answer: serde_json::Value = res.json().await.unwrap();
    assert_eq!(answer["error"], "invalid_last_event_id");

    // The operator suspends the brand: the open stream on the other instance ends at once.
    let (ok, _, stderr) = operator(&nats, "suspend", &brand.client_id);
    assert!(ok, "{stderr}");
    assert!(
        matches!(resumed.next(Duration::from_secs(5)).await, Read::Ended),
        "the stream outlived the suspension"
    );
    let res = b
        .client
        .get(b.url("/relay/v1/events"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
