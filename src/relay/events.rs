//! The CloudEvents the relay sends brands, and the one way each reaches a brand: its feed
//! subject in `RELAY_FEEDS` (read by polling and Server-Sent Events) and, when the brand takes
//! webhooks, a job in `RELAY_DELIVERIES`.
//!
//! Every event has a stable `id` made of what it is about (the intent or message) and the
//! brand, and is written with a `Nats-Msg-Id` derived from it, so a request retried within
//! JetStream's duplicate window stores it once and a brand de-duplicates later repeats by id.
//! The `topic` of an event is the last token of its subjects: the intent's id, so that an
//! erasure purges every event about the intent, or `erasure` for the erasure requests
//! themselves, which must outlive it.

use async_nats::HeaderMap;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Relay;
use super::deliveries::Job;
use super::error::RelayError;
use crate::domain::intents::Delivery;

/// The topic of erasure requests (see the module doc).
pub const ERASURE_TOPIC: &str = "erasure";

impl Relay {
    /// A CloudEvent 1.0 from this relay.
    pub(super) fn cloud_event(&self, id: &str, kind: &str, subject: &str, data: Value) -> Value {
        json!({
            "specversion": "1.0",
            "id": id,
            "source": self.settings().public_url,
            "type": kind,
            "subject": subject,
            "time": self.clock().now().format(&Rfc3339).unwrap_or_default(),
            "datacontenttype": "application/json",
            "data": data,
        })
    }

    /// Puts `event` in the brand's feed and, if it takes webhooks, queues its delivery (kept
    /// until `deliver_until`). Returns once JetStream holds both.
    pub(super) async fn send_event(
        &self,
        client_id: &str,
        topic: &str,
        event: &Value,
        deliver_until: OffsetDateTime,
    ) -> Result<(), RelayError> {
        let event_id = event["id"].as_str().unwrap_or_default().to_owned();
        let takes_webhooks = self.stored_subscription(client_id).await?.is_some_and(|s| {
            s.webhook_secret.is_some() && s.subscription.delivery.contains(&Delivery::Webhook)
        });
        if takes_webhooks {
            self.queue_delivery(
                &Job {
                    client_id: client_id.to_owned(),
                    event_id: event_id.clone(),
                    event: event.clone(),
                    expires_at: deliver_until,
                },
                topic,
            )
            .await?;
        }
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("f.{event_id}").as_str());
        let bytes = serde_json::to_vec(event).map_err(|e| RelayError::internal("encoding", e))?;
        self.js()
            .publish_with_headers(
                format!("relay.feed.{client_id}.{topic}"),
                headers,
                bytes.into(),
            )
            .await
            .map_err(|e| RelayError::unavailable("delivering an event", e))?
            .await
            .map_err(|e| RelayError::unavailable("delivering an event", e))?;
        Ok(())
    }
}
