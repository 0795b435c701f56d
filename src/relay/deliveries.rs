//! Webhook deliveries from the relay: every matching brand that takes webhooks gets a job in the
//! `RELAY_DELIVERIES` work-queue stream, and every instance pulls from one durable consumer
//! (`webhooks`), so each job is handled by one instance at a time and, if that instance dies
//! before acknowledging, redelivered to another after the ack wait.
//!
//! A job is acknowledged (and so removed) once the brand's endpoint answered 2xx, or when it
//! can no longer be delivered usefully: the intent expired, the brand was suspended or no longer
//! takes webhooks. A failure is negatively acknowledged with a delay that doubles from 1 s to 5
//! minutes; after [`MAX_ATTEMPTS`] JetStream stops redelivering and the job ages out with the
//! stream. Each attempt is signed afresh (Standard Webhooks: a new timestamp) with the brand's
//! current secret, under the event's stable id, so brands de-duplicate by `webhook-id`.

use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{self, pull};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::Relay;
use super::brands::BrandStatus;
use super::error::RelayError;
use super::nats::DELIVERIES;
use crate::webhooks::{Delivery, Sender};

/// Attempts at most per job.
pub const MAX_ATTEMPTS: i64 = 20;
/// How long an instance may hold a job before JetStream gives it to another: also how long
/// webhooks wait after the instance holding them died. An attempt takes at most two bucket
/// reads (3 s each, `nats::REQUEST_TIMEOUT`), the request ([`REQUEST_TIMEOUT`]) and the
/// acknowledgement (3 s): 19 s; a live instance that is merely slow should not see its job
/// handed to another (the brand would get it twice, de-duplicated by `webhook-id`).
pub const ACK_WAIT: Duration = Duration::from_secs(20);
/// How long one webhook request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Jobs one instance works on at once, and the batch it fetches: a fetched job waits for at
/// most one batch before its attempt starts, so little of its ack wait is spent queued.
const CONCURRENCY: usize = 16;
const CONSUMER: &str = "webhooks";

/// One webhook delivery still to make.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub client_id: String,
    /// The CloudEvent's id: the `webhook-id` of every attempt.
    pub event_id: String,
    /// The event, as the brand receives it.
    pub event: Value,
    /// After this, the job is dropped (the intent is over, or a message is too old to matter).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// The delay before attempt `n + 1` after `n` failures: 1 s, 2 s, 4 s, ... at most 5 minutes.
pub fn backoff(failures: i64) -> Duration {
    let exponent = u32::try_from(failures.clamp(1, 20) - 1).unwrap_or(0);
    Duration::from_secs(2u64.saturating_pow(exponent).min(300))
}

enum Outcome {
    Delivered,
    Dropped(&'static str),
    Retry(String),
}

impl Relay {
    /// Queues a job under `topic` (the intent's id, or `erasure`); returns once JetStream
    /// holds it.
    pub(super) async fn queue_delivery(&self, job: &Job, topic: &str) -> Result<(), RelayError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("d.{}", job.event_id).as_str());
        let bytes = serde_json::to_vec(job).map_err(|e| RelayError::internal("encoding", e))?;
        self.js()
            .publish_with_headers(
                format!("relay.deliveries.{}.{topic}", job.client_id),
                headers,
                bytes.into(),
            )
            .await
            .map_err(|e| RelayError::unavailable("queueing a webhook", e))?
            .await
            .map_err(|e| RelayError::unavailable("queueing a webhook", e))?;
        Ok(())
    }

    /// Delivers jobs from the shared consumer for as long as the instance runs.
    pub(super) async fn deliver_webhooks(&self) {
        // Never through an ambient proxy, and every target checked (webhooks::Egress).
        let egress = crate::webhooks::Egress {
            allow_loopback: self.settings().allow_loopback_webhooks,
            proxy: None,
        };
        let sender = match Sender::new(REQUEST_TIMEOUT, &egress) {
            Ok(sender) => sender,
            Err(e) => {
                tracing::error!(error = %e, "no webhook client: the relay delivers no webhooks");
                return;
            }
        };
        loop {
            if let Err(e) = self.deliver_until_error(&sender).await {
                tracing::warn!(error = %e.report(), "webhook deliveries interrupted; resuming");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn deliver_until_error(&self, sender: &Sender) -> Result<(), RelayError> {
        let stream = self
            .js()
            .get_stream_no_info(DELIVERIES)
            .await
            .map_err(|e| RelayError::unavailable("binding the deliveries stream", e))?;
        // Created, or updated to this configuration (a consumer made by an older relay with
        // another ack wait is brought up to date).
        let consumer: consumer::Consumer<pull::Config> = stream
            .create_consumer(pull::Config {
                durable_name: Some(CONSUMER.to_owned()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_deliver: MAX_ATTEMPTS,
                ..Default::default()
            })
            .await
            .map_err(|e| RelayError::unavailable("binding the webhook consumer", e))?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(CONCURRENCY)
            .messages()
            .await
            .map_err(|e| RelayError::unavailable("pulling webhook jobs", e))?;
        messages
            .for_each_concurrent(CONCURRENCY, |message| async move {
                let message = match message {
                    Ok(message) => message,
                    Err(e) => {
                        tracing::warn!(error = %e, "pulling a webhook job failed");
                        return;
                    }
                };
                let attempt = message.info().map(|i| i.delivered).unwrap_or(1);
                let outcome = match serde_json::from_slice::<Job>(&message.payload) {
                    Ok(job) => self.attempt(sender, &job).await,
                    Err(_) => Outcome::Dropped("undecodable job"),
                };
                let counters = self.counters();
                let ack = match outcome {
                    Outcome::Delivered => {
                        counters.event_delivered();
                        AckKind::Ack
                    }
                    Outcome::Dropped(why) => {
                        tracing::info!(why, "webhook job dropped");
                        counters.delivery_dropped();
                        AckKind::Term
                    }
                    Outcome::Retry(error) if attempt >= MAX_ATTEMPTS => {
                        // JetStream would not deliver it again: say so, and end it now.
                        tracing::warn!(attempt, %error, "webhook failed on its last attempt");
                        counters.delivery_failed();
                        AckKind::Term
                    }
                    Outcome::Retry(error) => {
                        tracing::info!(attempt, %error, "webhook failed; will retry");
                        counters.delivery_retried();
                        AckKind::Nak(Some(backoff(attempt)))
                    }
                };
                if let Err(e) = message.ack_with(ack).await {
                    tracing::warn!(error = %e, "acknowledging a webhook job failed");
                }
            })
            .await;
        Ok(())
    }

    async fn attempt(&self, sender: &Sender, job: &Job) -> Outcome {
        let now = self.clock().now();
        if job.expires_at <= now {
            return Outcome::Dropped("the intent expired");
        }
        match self.brand(&job.client_id).await {
            Ok(Some(brand)) if brand.status == BrandStatus::Active => {}
            Ok(_) => return Outcome::Dropped("the brand is suspended or gone"),
            Err(e) => return Outcome::Retry(e.report()),
        }
        let subscription = match self.stored_subscription(&job.client_id).await {
            Ok(Some(s)) => s,
            Ok(None) => return Outcome::Dropped("the brand unsubscribed"),
            Err(e) => return Outcome::Retry(e.report()),
        };
        let (Some(url), Some(secret)) = (
            subscription.subscription.webhook_url,
            subscription.webhook_secret,
        ) else {
            return Outcome::Dropped("the brand no longer takes webhooks");
        };
        let body = match serde_json::to_vec(&job.event) {
            Ok(body) => body,
            Err(_) => return Outcome::Dropped("unencodable event"),
        };
        let delivery = match Delivery::signed(
            url,
            &secret,
            job.event_id.clone(),
            now.unix_timestamp(),
            body,
        ) {
            Ok(delivery) => delivery,
            Err(_) => return Outcome::Retry("signing failed".into()),
        };
        match sender.send(&delivery).await {
            Ok(_) => Outcome::Delivered,
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let delays: Vec<u64> = (1..=12).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff(0).as_secs(), 1);
    }
}
