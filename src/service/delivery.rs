//! The webhook delivery worker: reads the durable outbox, signs each event per Standard Webhooks,
//! sends it, and records the outcome — retrying with exponential backoff and jitter, at most a
//! few deliveries per brand at once, pausing a brand that keeps failing.
//!
//! An outbox entry leaves the store only after its delivery succeeded (or the brand stopped
//! taking webhooks), so a crash or restart at any point re-sends, with the same `webhook-id`.
//!
//! The worker is deadline-driven (see `service::deadlines`): it knows when each entry is next
//! due from a set built at unseal, learns of new entries by reading the outbox after the newest
//! it knows when events are announced, and otherwise sleeps until the next deadline. It also
//! announces expired intents when their expiry comes. The health rules it applies after each
//! attempt (pause, backoff) are [`crate::domain::delivery`]'s.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use time::Duration;

use super::OpenVault;
use super::deadlines::{Alarm, Deadlines};
use super::events::OUTBOX;
use super::events::OutboxEntry;
use super::subscriptions::SUBSCRIPTIONS;
use crate::domain::audit::Event;
use crate::domain::brands::BrandStatus;
pub use crate::domain::delivery::{
    DeliveryStatus, PAUSE_AFTER_FAILING_FOR, PAUSE_AFTER_FAILURES, backoff,
};
use crate::error::AppError;
use crate::store::{Store, TableError};
use crate::webhooks::{Delivery, Sender};

/// Deliveries in flight to one brand at once.
pub const PER_BRAND_CONCURRENCY: usize = 4;
/// Deliveries in flight in total.
const TOTAL_CONCURRENCY: usize = 256;
/// How soon an attempt that left its entry as it was (its event could not be read) looks again.
const RECHECK_UNCHANGED: Duration = Duration::milliseconds(500);

/// What the worker keeps in memory: deliveries in flight.
#[derive(Debug, Default)]
pub struct InFlight {
    seqs: HashSet<u64>,
    per_brand: HashMap<String, usize>,
}

/// What the delivery feature keeps in memory: when each outbox entry is next due, and the
/// newest entry it knows of (entries are numbered in the order they are written, so new ones
/// are found by reading after it, never by rescanning the outbox).
#[derive(Debug)]
pub(crate) struct DeliveryState {
    due: Deadlines<u64>,
    newest: AtomicU64,
    /// Entries whose brand was suspended when they came due, by brand: they wait here, with no
    /// deadline, until the brand is resumed or removed ([`OpenVault::release_held_deliveries`]).
    suspended: Mutex<HashMap<String, Vec<u64>>>,
}

/// What one attempt did with its entry.
enum Attempt {
    /// Sent (or dropped, or found handled by another attempt): the entry is rescheduled from
    /// what the store now holds.
    Made,
    /// The brand is suspended: the entry waits, unscheduled, until the brand is resumed.
    Held,
}

impl DeliveryState {
    /// Reads the outbox once (at unseal); entries that cannot be read are logged and counted.
    pub(super) fn load(store: &Store, alarm: &Alarm) -> DeliveryState {
        let state = DeliveryState {
            due: Deadlines::new([]),
            newest: AtomicU64::new(0),
            suspended: Mutex::new(HashMap::new()),
        };
        state.add_after(store, alarm, None);
        state
    }

    /// Adds the outbox entries written after `after` (all of them for `None`).
    fn add_after(&self, store: &Store, alarm: &Alarm, after: Option<u64>) {
        let start = after.map(u64::to_be_bytes);
        for item in store.iter_after(OUTBOX.tree(), start.as_ref().map(|s| &s[..])) {
            let entry = item.map_err(AppError::from).and_then(|(key, bytes)| {
                // The key is the entry's number: a damaged entry is still passed, so it is
                // reported once, not at every wake. So the walk is undecoded, and the entry
                // decoded after its number is noted.
                if let Ok(seq) = <[u8; 8]>::try_from(&key[..]) {
                    self.newest
                        .fetch_max(u64::from_be_bytes(seq), Ordering::AcqRel);
                }
                Ok(OUTBOX.decode(&bytes)?)
            });
            match entry {
                Ok(entry) => {
                    self.newest.fetch_max(entry.seq, Ordering::AcqRel);
                    // No need to ring the alarm: this runs at unseal, before the task starts,
                    // or in the task itself, which looks at the deadlines next.
                    self.due.insert(entry.next_attempt_at, entry.seq);
                }
                Err(e) => alarm.read_error("outbox entry", &e),
            }
        }
    }
}

impl OpenVault {
    /// Starts the background worker (webhook deliveries, intent expiry, and the upkeep that
    /// bounds the store: expired token ids, the audit log's retention); it stops when the vault
    /// is closed.
    pub(crate) fn start_delivery(self: &Arc<Self>) -> Result<(), AppError> {
        let sender = Sender::new(crate::webhooks::DELIVERY_TIMEOUT, &self.egress)
            .map_err(|e| AppError::internal("starting the webhook sender", e))?;
        let weak = Arc::downgrade(self);
        let alarm = self.alarm.0.clone();
        let mut signal = self.subscribe_events();
        tokio::spawn(async move {
            let in_flight = Arc::new(Mutex::new(InFlight::default()));
            // A finished delivery frees a slot: it wakes the worker to fill it at once, so a
            // burst larger than the concurrency cap flows instead of waiting.
            let slot_freed = Arc::new(tokio::sync::Notify::new());
            loop {
                let Some(vault) = Weak::upgrade(&weak) else {
                    return;
                };
                if alarm.stopped() {
                    return;
                }
                alarm.disarm();
                let now = vault.clock.now();
                // New events may have added outbox entries: only those after the newest known
                // are read.
                let newest = vault.deliveries.newest.load(Ordering::Acquire);
                vault
                    .deliveries
                    .add_after(vault.store(), &alarm, (newest > 0).then_some(newest));
                let next_delivery = vault.dispatch_due(&sender, &in_flight, &slot_freed, now);
                let next_expiry = vault.expire_due(now).await;
                let next_upkeep = vault.upkeep_due(now).await;
                let next = next_delivery
                    .into_iter()
                    .chain(next_expiry)
                    .chain(next_upkeep)
                    .min();
                drop(vault);
                // Woken by new events, a freed slot, an earlier deadline, the clock passing
                // the next one, or the vault going away.
                tokio::select! {
                    _ = signal.changed() => {}
                    _ = slot_freed.notified() => {}
                    _ = alarm.sleep(next, now) => {}
                }
            }
        });
        Ok(())
    }

    /// Outbox entries made due at `now` by a write (a brand updated its subscription).
    pub(crate) fn deliveries_due(&self, seqs: &[u64], now: time::OffsetDateTime) {
        for seq in seqs {
            self.deliveries.due.insert(now, *seq);
        }
        self.alarm.0.arm(now);
    }

    /// Starts a send for every outbox entry that is due, within the concurrency caps; returns
    /// the next deadline after `now`.
    fn dispatch_due(
        self: &Arc<Self>,
        sender: &Sender,
        in_flight: &Arc<Mutex<InFlight>>,
        slot_freed: &Arc<tokio::sync::Notify>,
        now: time::OffsetDateTime,
    ) -> Option<time::OffsetDateTime> {
        let alarm = &self.alarm.0;
        let mut held = Vec::new();
        for (at, seq) in self.deliveries.due.take_due(now) {
            // The entry may have been delivered, or moved, since it was scheduled.
            let entry = match self.store().read(&OUTBOX, &seq.to_be_bytes()) {
                Ok(Some(entry)) => entry,
                Ok(None) => continue,
                // A damaged entry will not mend: reported, and not tried again.
                Err(e @ TableError::Decode { .. }) => {
                    alarm.read_error("outbox entry", &e);
                    continue;
                }
                Err(e) => {
                    alarm.read_error("outbox entry", &e);
                    held.push((at, seq));
                    continue;
                }
            };
            if entry.next_attempt_at > now {
                self.deliveries.due.insert(entry.next_attempt_at, seq);
                continue;
            }
            // A paused brand gets one delivery at a time, as a probe.
            let paused = match self.subscription(&entry.client_id) {
                Ok(subscription) => subscription.is_some_and(|s| s.health().is_paused()),
                Err(e) => {
                    alarm.read_error("subscription", &e);
                    false
                }
            };
            {
                let Ok(mut flight) = in_flight.lock() else {
                    alarm.read_error("deliveries in flight", &"lock poisoned");
                    held.push((at, seq));
                    continue;
                };
                let brand_count = flight.per_brand.get(&entry.client_id).copied().unwrap_or(0);
                let cap = if paused { 1 } else { PER_BRAND_CONCURRENCY };
                if flight.seqs.len() >= TOTAL_CONCURRENCY
                    || flight.seqs.contains(&entry.seq)
                    || brand_count >= cap
                {
                    // It goes when a slot frees, which wakes the worker.
                    held.push((at, seq));
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
                match vault.deliver(&sender, entry).await {
                    Ok(Attempt::Held) => vault.hold_for_suspension(&client_id, seq),
                    Ok(Attempt::Made) => vault.reschedule(seq),
                    Err(e) => {
                        tracing::warn!(error = %e, seq, "webhook delivery could not be recorded");
                        vault.reschedule(seq);
                    }
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
        for (at, seq) in held {
            self.deliveries.due.insert(at, seq);
        }
        self.deliveries.due.first_after(now)
    }

    /// After an attempt, schedules what is left of the entry: a retry at its backoff, or (if
    /// the attempt left it as it was) a look again shortly.
    fn reschedule(&self, seq: u64) {
        match self.store().read(&OUTBOX, &seq.to_be_bytes()) {
            Ok(Some(entry)) => {
                let at = entry
                    .next_attempt_at
                    .max(self.clock.now() + RECHECK_UNCHANGED);
                self.deliveries.due.insert(at, seq);
                self.alarm.0.arm(at);
            }
            Ok(None) => {}
            Err(e) => self.alarm.0.read_error("outbox entry", &e),
        }
    }

    /// Parks an entry whose brand is suspended: nothing looks at it again until the brand is
    /// resumed or removed, so a suspended brand costs the worker no periodic work.
    fn hold_for_suspension(&self, client_id: &str, seq: u64) {
        if let Ok(mut held) = self.deliveries.suspended.lock() {
            held.entry(client_id.to_owned()).or_default().push(seq);
        }
        // The brand may have been resumed between the attempt's check and the line above, after
        // the resume released what was held: look at it once more, now that the entry is parked.
        match self.find_brand(client_id) {
            Ok(Some(brand)) if brand.status == BrandStatus::Suspended => {}
            Ok(_) => self.release_held_deliveries(client_id),
            Err(e) => {
                self.alarm.0.read_error("brand", &e);
                self.release_held_deliveries(client_id);
            }
        }
    }

    /// Makes a brand's parked deliveries due now: called once the brand was resumed (they go
    /// out) or removed (the attempt drops them).
    pub(crate) fn release_held_deliveries(&self, client_id: &str) {
        let seqs = match self.deliveries.suspended.lock() {
            Ok(mut held) => held.remove(client_id).unwrap_or_default(),
            Err(_) => return,
        };
        if !seqs.is_empty() {
            self.deliveries_due(&seqs, self.clock.now());
        }
    }

    /// Store reads the background work could not do since unseal (each was logged).
    pub fn background_read_errors(&self) -> u64 {
        self.alarm.0.read_errors()
    }

    /// One attempt of one delivery, and its outcome recorded.
    async fn deliver(&self, sender: &Sender, entry: OutboxEntry) -> Result<Attempt, AppError> {
        let key = entry.seq.to_be_bytes();
        // The entry may have been delivered by an attempt that finished since it was read.
        let Some(current) = self.store().read(&OUTBOX, &key)? else {
            return Ok(Attempt::Made);
        };
        if current.attempts != entry.attempts {
            return Ok(Attempt::Made);
        }
        // Whoever may no longer receive anything gets nothing more, even what was queued: a
        // suspended brand's deliveries wait, a brand without a current agreement loses them
        // (its stream keeps them, readable again once it accepts the terms in force), except
        // the news of new terms and of its grants, sent to a brand that has yet to accept them.
        let brand = self.find_brand(&entry.client_id)?;
        if brand
            .as_ref()
            .is_some_and(|b| b.status == BrandStatus::Suspended)
        {
            return Ok(Attempt::Held);
        }
        let eligible = match &brand {
            Some(brand) => {
                self.current_agreement(brand)?.is_some()
                    || self.awaits_notices(brand, &entry.client_id, entry.seq)?
            }
            None => false,
        };
        let subscription = self.subscription(&entry.client_id)?;
        let target = subscription.as_ref().and_then(|s| {
            let url = s.subscription.webhook_url.clone()?;
            s.webhook_secret.as_ref()?;
            Some((url, s.signing_secrets(self.now())))
        });
        let (Some((url, secrets)), true) = (target, eligible) else {
            self.write(move |tx| {
                tx.remove(OUTBOX.tree(), &key)
                    .map(|_| ())
                    .map_err(AppError::from)
            })
            .await?;
            return Ok(Attempt::Made);
        };
        let Some(event) = self.event(&entry.client_id, entry.seq)? else {
            return Ok(Attempt::Made);
        };
        let body = serde_json::to_vec(&event)
            .map_err(|e| AppError::internal("encoding a value to store", e))?;
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let delivery = Delivery::signed_by(
            url,
            &secrets,
            entry.webhook_id.clone(),
            self.now().unix_timestamp(),
            body,
        )
        .map_err(|e| AppError::internal("signing a webhook", e))?;
        let outcome = sender.send(&delivery).await.map_err(|f| f.to_string());
        let now = self.now();
        let jitter: [u8; 1] = crate::crypto::random_array().unwrap_or([0]);
        let subscription_key = self.subscription_key(&entry.client_id);
        self.change(move |tx| {
            let mut subscription = tx.read(&SUBSCRIPTIONS, &subscription_key)?;
            let attempt = entry.attempts + 1;
            let event = match &outcome {
                Ok(status) => {
                    tx.remove(OUTBOX.tree(), &key)?;
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
                    tx.write(&OUTBOX, &key, &retry)?;
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
                tx.write(&SUBSCRIPTIONS, &subscription_key, s)?;
            }
            Ok(((), event))
        })
        .await?;
        Ok(Attempt::Made)
    }

    /// Deliveries waiting, per brand (one pass over the outbox).
    pub fn pending_deliveries(&self) -> Result<HashMap<String, usize>, AppError> {
        let mut counts = HashMap::new();
        for item in self.store().read_all(&OUTBOX) {
            let (_, entry) = item?;
            *counts.entry(entry.client_id).or_insert(0) += 1;
        }
        Ok(counts)
    }
}
