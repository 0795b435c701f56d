//! What a relay instance counts, for Prometheus (`http::relay::metrics` renders it): the
//! intents and offers it accepted, the webhooks it delivered, retried and gave up on, since it
//! started; and, read from JetStream at each scrape, how far each durable consumer of the
//! relay's streams is behind.
//!
//! The counters are this instance's own (each instance is scraped as its own target); the
//! consumer figures are the cluster's, the same whichever instance is asked. No label names a
//! brand, an intent or a vault: the metrics say how the relay is doing, not whom it serves.

use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt as _;

use super::Relay;
use super::error::RelayError;
use super::nats::{DELIVERIES, FEEDS, INTENTS, MESSAGES, OFFERS};

/// This instance's counters since it started.
#[derive(Debug, Default)]
pub struct Counters {
    intents_accepted: AtomicU64,
    offers_accepted: AtomicU64,
    events_delivered: AtomicU64,
    deliveries_retried: AtomicU64,
    deliveries_failed: AtomicU64,
    deliveries_dropped: AtomicU64,
}

/// The counters as read at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CounterValues {
    /// Intents answered 201.
    pub intents_accepted: u64,
    /// Offers answered 201.
    pub offers_accepted: u64,
    /// Webhooks a brand's endpoint answered 2xx.
    pub events_delivered: u64,
    /// Webhook attempts that failed and were put back for another attempt.
    pub deliveries_retried: u64,
    /// Webhooks that failed on their last attempt: JetStream does not deliver them again.
    pub deliveries_failed: u64,
    /// Webhook jobs dropped unsent because they could no longer be useful (the intent expired,
    /// the brand was suspended or stopped taking webhooks).
    pub deliveries_dropped: u64,
}

/// One durable consumer's position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerLag {
    pub stream: String,
    pub consumer: String,
    /// Messages not yet delivered to it (JetStream's `num_pending`).
    pub pending: u64,
    /// Messages delivered and not yet acknowledged.
    pub ack_pending: u64,
    /// Messages redelivered at least once and still unacknowledged.
    pub redelivered: u64,
}

impl Counters {
    pub(super) fn intent_accepted(&self) {
        self.intents_accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn offer_accepted(&self) {
        self.offers_accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn event_delivered(&self) {
        self.events_delivered.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn delivery_retried(&self) {
        self.deliveries_retried.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn delivery_failed(&self) {
        self.deliveries_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn delivery_dropped(&self) {
        self.deliveries_dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn values(&self) -> CounterValues {
        CounterValues {
            intents_accepted: self.intents_accepted.load(Ordering::Relaxed),
            offers_accepted: self.offers_accepted.load(Ordering::Relaxed),
            events_delivered: self.events_delivered.load(Ordering::Relaxed),
            deliveries_retried: self.deliveries_retried.load(Ordering::Relaxed),
            deliveries_failed: self.deliveries_failed.load(Ordering::Relaxed),
            deliveries_dropped: self.deliveries_dropped.load(Ordering::Relaxed),
        }
    }
}

impl Relay {
    /// Every durable consumer of the relay's streams and how far behind it is, read from
    /// JetStream now (each request bounded by the JetStream timeout).
    pub async fn consumer_lag(&self) -> Result<Vec<ConsumerLag>, RelayError> {
        let mut lag = Vec::new();
        for name in [INTENTS, FEEDS, DELIVERIES, OFFERS, MESSAGES] {
            let stream = self
                .js()
                .get_stream_no_info(name)
                .await
                .map_err(|e| RelayError::unavailable("reading the relay's streams", e))?;
            let mut consumers = stream.consumers();
            while let Some(info) = consumers.next().await {
                let info = info.map_err(|e| RelayError::unavailable("listing consumers", e))?;
                // Ephemeral consumers (a brand's poll) come and go; only durable ones lag.
                if info.config.durable_name.is_none() {
                    continue;
                }
                lag.push(ConsumerLag {
                    stream: name.to_owned(),
                    consumer: info.name.clone(),
                    pending: info.num_pending,
                    ack_pending: u64::try_from(info.num_ack_pending).unwrap_or(0),
                    redelivered: u64::try_from(info.num_redelivered).unwrap_or(0),
                });
            }
        }
        Ok(lag)
    }
}
