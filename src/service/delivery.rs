//! The webhook delivery worker: reads the durable outbox, signs each event per Standard Webhooks,
//! sends it, and records the outcome — retrying with exponential backoff and jitter, at most a
//! few deliveries per brand at once, pausing a brand that keeps failing.
//!
//! An outbox entry leaves the store only after its delivery succeeded (or the brand stopped
//! taking webhooks), so a crash or restart at any point re-sends, with the same `webhook-id`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};

use super::OpenVault;
use super::events::OutboxEntry;
use super::subscriptions::{SubscriptionRecord, load_subscription, store_subscription};
use crate::domain::audit::Event;
use crate::domain::brands::BrandStatus;
pub use crate::domain::delivery::{
    DeliveryStatus, PAUSE_AFTER_FAILING_FOR, PAUSE_AFTER_FAILURES, backoff,
};
use crate::error::AppError;
use crate::store::Tree;
use crate::webhooks::{Delivery, Sender};

/// Deliveries in flight to one brand at once.
pub const PER_BRAND_CONCURRENCY: usize = 4;
/// Deliveries in flight in total.
const TOTAL_CONCURRENCY: usize = 256;
/// How often the worker looks at the outbox when nothing wakes it.
const IDLE_TICK: std::time::Duration = std::time::Duration::from_millis(500);

/// What the worker keeps in memory: deliveries in flight.
#[derive(Debug, Default)]
pub struct InFlight {
    seqs: HashSet<u64>,
    per_brand: HashMap<String, usize>,
}

impl OpenVault {
    /// Starts the delivery worker; it stops by itself when the vault is closed.
    pub(crate) fn start_delivery(self: &Arc<Self>) -> Result<(), AppError> {
        let sender = Sender::new(
            crate::webhooks::DELIVERY_TIMEOUT,
            self.allow_loopback_webhooks,
        )
        .map_err(AppError::Internal)?;
        let weak = Arc::downgrade(self);
        let mut signal = self.subscribe_events();
        tokio::spawn(async move {
            let in_flight = Arc::new(Mutex::new(InFlight::default()));
            // A finished delivery frees a slot: it wakes the worker to fill it at once, so a
            // burst larger than the concurrency cap flows instead of waiting for the tick.
            let slot_freed = Arc::new(tokio::sync::Notify::new());
            let mut last_expiry_check = tokio::time::Instant::now();
            loop {
                let Some(vault) = Weak::upgrade(&weak) else {
                    return;
                };
                if let Err(e) = vault.dispatch_due(&sender, &in_flight, &slot_freed) {
                    tracing::warn!(error = %e, "webhook delivery worker");
                }
                if last_expiry_check.elapsed() >= IDLE_TICK {
                    vault.expire_due().await;
                    last_expiry_check = tokio::time::Instant::now();
                }
                drop(vault);
                // Woken by new events or a freed slot, or looks again shortly (for retries
                // that came due and intents that expired).
                tokio::select! {
                    _ = signal.changed() => {}
                    _ = slot_freed.notified() => {}
                    _ = tokio::time::sleep(IDLE_TICK) => {}
                }
            }
        });
        Ok(())
    }

    /// Starts a send for every outbox entry that is due, within the concurrency caps.
    fn dispatch_due(
        self: &Arc<Self>,
        sender: &Sender,
        in_flight: &Arc<Mutex<InFlight>>,
        slot_freed: &Arc<tokio::sync::Notify>,
    ) -> Result<(), AppError> {
        let now = self.now();
        let paused: HashSet<String> = self
            .store()
            .iter(Tree::Subscriptions)
            .filter_map(|item| item.ok())
            .filter_map(|(_, bytes)| serde_json::from_slice::<SubscriptionRecord>(&bytes).ok())
            .filter(|s| s.health().is_paused())
            .map(|s| s.client_id)
            .collect();
        for item in self.store().iter(Tree::Outbox) {
            let (_, bytes) = item?;
            let entry: OutboxEntry = serde_json::from_slice(&bytes)
                .map_err(|e| AppError::Internal(format!("outbox entry is damaged: {e}")))?;
            if entry.next_attempt_at > now {
                continue;
            }
            {
                let mut flight = in_flight
                    .lock()
                    .map_err(|_| AppError::Internal("delivery lock poisoned".into()))?;
                if flight.seqs.len() >= TOTAL_CONCURRENCY {
                    break;
                }
                let brand_count = flight.per_brand.get(&entry.client_id).copied().unwrap_or(0);
                let cap = if paused.contains(&entry.client_id) {
                    1
                } else {
                    PER_BRAND_CONCURRENCY
                };
                if flight.seqs.contains(&entry.seq) || brand_count >= cap {
                    continue;
                }
                flight.seqs.insert(entry.seq);
                *flight.per_brand.entry(entry.client_id.clone()).or_default() += 1;
            }
            let vault = self.clone();
            let sender = sender.clone();
            let in_flight = in_flight.clone();
            let slot_freed = slot_freed.clone();
            tokio::spawn(async move {
                let seq = entry.seq;
                let client_id = entry.client_id.clone();
                if let Err(e) = vault.deliver(&sender, entry).await {
                    tracing::warn!(error = %e, seq, "webhook delivery could not be recorded");
                }
                if let Ok(mut flight) = in_flight.lock() {
                    flight.seqs.remove(&seq);
                    if let Some(count) = flight.per_brand.get_mut(&client_id) {
                        *count = count.saturating_sub(1);
                    }
                }
                slot_freed.notify_one();
            });
        }
        Ok(())
    }

    /// One attempt of one delivery, and its outcome recorded.
    async fn deliver(&self, sender: &Sender, entry: OutboxEntry) -> Result<(), AppError> {
        let key = entry.seq.to_be_bytes();
        // The entry may have been delivered by an attempt that finished since it was read.
        let Some(current) = self.store().get(Tree::Outbox, &key)? else {
            return Ok(());
        };
        let current: OutboxEntry = serde_json::from_slice(&current)
            .map_err(|e| AppError::Internal(format!("outbox entry is damaged: {e}")))?;
        if current.attempts != entry.attempts {
            return Ok(());
        }
        // Whoever may no longer receive anything gets nothing more, even what was queued: a
        // suspended brand's deliveries wait, a brand without a current agreement loses them
        // (its stream keeps them, readable again once it accepts the terms in force).
        let brand = self.find_brand(&entry.client_id)?;
        if brand
            .as_ref()
            .is_some_and(|b| b.status == BrandStatus::Suspended)
        {
            return Ok(());
        }
        let eligible = match &brand {
            Some(brand) => self.current_agreement(brand)?.is_some(),
            None => false,
        };
        let subscription = self.subscription(&entry.client_id)?;
        let target = subscription.as_ref().and_then(|s| {
            let url = s.subscription.webhook_url.clone()?;
            let secret = s.webhook_secret.clone()?;
            Some((url, secret))
        });
        let (Some((url, secret)), true) = (target, eligible) else {
            self.write(move |tx| {
                tx.remove(Tree::Outbox, &key)
                    .map(|_| ())
                    .map_err(AppError::from)
            })
            .await?;
            return Ok(());
        };
        let Some(event) = self.event(&entry.client_id, entry.seq)? else {
            return Ok(());
        };
        let body = serde_json::to_vec(&event).map_err(|e| AppError::Internal(e.to_string()))?;
        let delivery = Delivery::signed(
            url,
            &secret,
            entry.webhook_id.clone(),
            self.now().unix_timestamp(),
            body,
        )
        .map_err(|e| AppError::Internal(format!("signing a webhook: {e}")))?;
        let outcome = sender.send(&delivery).await;
        let now = self.now();
        let jitter: [u8; 1] = crate::crypto::random_array().unwrap_or([0]);
        let subscription_key = self.subscription_key(&entry.client_id);
        self.change(move |tx| {
            let mut subscription = load_subscription(tx, &subscription_key)?;
            let attempt = entry.attempts + 1;
            let event = match &outcome {
                Ok(status) => {
                    tx.remove(Tree::Outbox, &key)?;
                    if let Some(s) = subscription.as_mut() {
                        let mut health = s.health();
                        health.succeeded();
                        s.set_health(health);
                    }
                    Event::brand("delivery.succeeded", &entry.client_id).with_detail(
                        serde_json::json!({ "event": entry.webhook_id, "attempt": attempt, "status": status }),
                    )
                }
                Err(error) => {
                    let mut retry = entry.clone();
                    retry.attempts = attempt;
                    retry.next_attempt_at = now + backoff(attempt, jitter[0]);
                    // A retry must not be mistaken for the attempt that failed.
                    retry.last_error = Some(error.clone());
                    let bytes = serde_json::to_vec(&retry).map_err(|e| AppError::Internal(e.to_string()))?;
                    tx.insert(Tree::Outbox, &key, &bytes)?;
                    if let Some(s) = subscription.as_mut() {
                        let mut health = s.health();
                        health.failed(error.clone(), now);
                        s.set_health(health);
                    }
                    Event::brand("delivery.failed", &entry.client_id).with_detail(serde_json::json!({
                        "event": entry.webhook_id,
                        "attempt": attempt,
                        "error": error,
                        "next_attempt_at": retry.next_attempt_at.unix_timestamp(),
                    }))
                }
            };
            if let Some(s) = &subscription {
                store_subscription(tx, &subscription_key, s)?;
            }
            Ok(((), event))
        })
        .await
    }

    /// Deliveries waiting, per brand (one pass over the outbox).
    pub fn pending_deliveries(&self) -> Result<HashMap<String, usize>, AppError> {
        let mut counts = HashMap::new();
        for item in self.store().iter(Tree::Outbox) {
            let (_, bytes) = item?;
            let entry: OutboxEntry = serde_json::from_slice(&bytes)
                .map_err(|e| AppError::Internal(format!("outbox entry is damaged: {e}")))?;
            *counts.entry(entry.client_id).or_insert(0) += 1;
        }
        Ok(counts)
    }
}
