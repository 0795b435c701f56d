//! The relay's Prometheus metrics at `GET /metrics`, on a listener of their own
//! (`vrm-vault relay --metrics-listen`) as the vault's are (`super::super::metrics`), so they
//! never reach the public side of the load balancer. What is counted is `crate::relay::metrics`'s.
//!
//! Every scrape builds the exposition afresh from the instance's counters and the consumers'
//! lag read from JetStream then; when JetStream does not answer, the counters are still served
//! and `vrm_relay_jetstream_up` says 0.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::http::metrics::MAX_SCRAPE_CONNECTIONS;
use crate::http::serve::{Limits, ShutdownSignal, serve_with_limits};
use crate::relay::Relay;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ConsumerLabels {
    stream: String,
    consumer: String,
}

/// The metrics listener's router: `GET /metrics` only.
pub fn router(relay: Relay) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(relay)
}

/// Serves [`router`] on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    relay: Relay,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = Limits {
        max_connections: MAX_SCRAPE_CONNECTIONS,
        drain: Duration::from_secs(1),
        ..Limits::default()
    };
    serve_with_limits(
        listener,
        router(relay),
        limits,
        ShutdownSignal::default(),
        None,
        shutdown,
    )
    .await
}

async fn scrape(State(relay): State<Relay>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        render(&relay).await,
    )
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let counter = Counter::<u64>::default();
    counter.inc_by(value);
    registry.register(name, help, counter);
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The text exposition now.
pub async fn render(relay: &Relay) -> String {
    let mut registry = Registry::with_prefix("vrm_relay");
    let counts = relay.counters().values();
    counter(
        &mut registry,
        "intents_accepted",
        "Intents this instance accepted (answered 201)",
        counts.intents_accepted,
    );
    counter(
        &mut registry,
        "offers_accepted",
        "Offers this instance accepted (answered 201)",
        counts.offers_accepted,
    );
    counter(
        &mut registry,
        "events_delivered",
        "Webhooks this instance delivered (the brand answered 2xx)",
        counts.events_delivered,
    );
    counter(
        &mut registry,
        "deliveries_retried",
        "Webhook attempts by this instance that failed and will be retried",
        counts.deliveries_retried,
    );
    counter(
        &mut registry,
        "deliveries_failed",
        "Webhooks that failed on their last attempt at this instance and are not retried",
        counts.deliveries_failed,
    );
    counter(
        &mut registry,
        "deliveries_dropped",
        "Webhook jobs this instance dropped unsent (intent expired, brand suspended or without webhook)",
        counts.deliveries_dropped,
    );
    let up = Gauge::<i64>::default();
    let pending = Family::<ConsumerLabels, Gauge>::default();
    let ack_pending = Family::<ConsumerLabels, Gauge>::default();
    let redelivered = Family::<ConsumerLabels, Gauge>::default();
    match relay.consumer_lag().await {
        Ok(lag) => {
            up.set(1);
            for consumer in lag {
                let labels = ConsumerLabels {
                    stream: consumer.stream,
                    consumer: consumer.consumer,
                };
                pending.get_or_create(&labels).set(gauge(consumer.pending));
                ack_pending
                    .get_or_create(&labels)
                    .set(gauge(consumer.ack_pending));
                redelivered
                    .get_or_create(&labels)
                    .set(gauge(consumer.redelivered));
            }
        }
        Err(e) => tracing::warn!(error = %e.report(), "reading consumer lag for /metrics"),
    }
    registry.register(
        "jetstream_up",
        "1 if JetStream answered this scrape's questions about consumers, else 0",
        up,
    );
    registry.register(
        "consumer_pending",
        "Messages not yet delivered to each durable consumer of the relay's streams (cluster-wide)",
        pending,
    );
    registry.register(
        "consumer_ack_pending",
        "Messages delivered to each durable consumer and not yet acknowledged (cluster-wide)",
        ack_pending,
    );
    registry.register(
        "consumer_redelivered",
        "Unacknowledged messages each durable consumer was given more than once (cluster-wide)",
        redelivered,
    );
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}
