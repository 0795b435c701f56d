//! A brand's feed as a live stream, for Server-Sent Events (`GET /relay/v1/events`): the same
//! CloudEvents as polling, each numbered by its sequence in `RELAY_FEEDS` (the polling cursor),
//! so a client that reconnects with `Last-Event-ID: <sequence>` gets exactly what came after.
//!
//! The stream reads the brand's feed subjects through an ordered JetStream consumer, so it
//! works on whichever instance serves it: an event another instance wrote arrives as soon as
//! JetStream has it. It ends when the brand's relay token expires (the brand reconnects with a
//! new one), at once when the operator suspends the brand (it watches the brand's record in
//! the `relay_brands` bucket, so a suspension on any instance reaches every stream), and when
//! the connection to JetStream fails (the brand reconnects and resumes).

use std::pin::Pin;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures_util::{Stream, StreamExt as _};
use serde_json::Value;

use super::Relay;
use super::brands::{Authenticated, BrandStatus, RelayBrand};
use super::error::RelayError;
use super::nats::FEEDS;

/// A boxed stream that borrows nothing.
pub type Boxed<T> = Pin<Box<dyn Stream<Item = T> + Send>>;

struct Live {
    relay: Relay,
    messages: Boxed<Result<async_nats::jetstream::Message, String>>,
    brand_changes: Boxed<Result<async_nats::jetstream::kv::Entry, String>>,
    /// When the token expires, on the relay's clock.
    until: time::OffsetDateTime,
}

impl Relay {
    /// The brand's events after sequence `after`, then each new one as it is written, as
    /// `(sequence, CloudEvent)`, until the token expires or the brand is suspended.
    pub async fn live_feed(
        &self,
        auth: &Authenticated,
        after: u64,
    ) -> Result<Boxed<(u64, Value)>, RelayError> {
        let client_id = auth.brand.client_id.clone();
        // Watch first, so a suspension from now on is seen.
        let brand_changes = self
            .buckets()?
            .brands
            .watch(&client_id)
            .await
            .map_err(|e| RelayError::unavailable("watching a brand", e))?
            .map(|entry| entry.map_err(|e| e.to_string()));
        let consumer = self
            .js()
            .get_stream_no_info(FEEDS)
            .await
            .map_err(|e| RelayError::unavailable("binding the feeds stream", e))?
            .create_consumer(pull::OrderedConfig {
                filter_subject: format!("relay.feed.{client_id}.*"),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: after.saturating_add(1),
                },
                ..Default::default()
            })
            .await
            .map_err(|e| RelayError::unavailable("reading a brand's feed", e))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| RelayError::unavailable("reading a brand's feed", e))?
            .map(|message| message.map_err(|e| e.to_string()));
        let live = Live {
            relay: self.clone(),
            messages: Box::pin(messages),
            brand_changes: Box::pin(brand_changes),
            until: auth.expires_at,
        };
        Ok(Box::pin(futures_util::stream::unfold(
            live,
            |mut live| async move {
                loop {
                    let left = std::time::Duration::try_from(live.until - live.relay.clock().now())
                        .unwrap_or_default();
                    if left.is_zero() {
                        return None;
                    }
                    tokio::select! {
                        message = live.messages.next() => {
                            let message = match message {
                                Some(Ok(message)) => message,
                                Some(Err(e)) => {
                                    tracing::info!(error = %e, "a brand's live feed ended");
                                    return None;
                                }
                                None => return None,
                            };
                            let sequence = message.info().ok()?.stream_sequence;
                            match serde_json::from_slice::<Value>(&message.payload) {
                                Ok(event) => return Some(((sequence, event), live)),
                                Err(e) => {
                                    tracing::error!(error = %e, "an event in a feed does not decode");
                                }
                            }
                        }
                        change = live.brand_changes.next() => {
                            let still_active = match change {
                                Some(Ok(entry)) => serde_json::from_slice::<RelayBrand>(&entry.value)
                                    .is_ok_and(|b| b.status == BrandStatus::Active),
                                _ => false,
                            };
                            if !still_active {
                                return None;
                            }
                        }
                        () = tokio::time::sleep(left) => return None,
                    }
                }
            },
        )))
    }
}
