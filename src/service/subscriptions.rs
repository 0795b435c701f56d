//! Brands' subscriptions as stored: what each brand wants to receive, where its webhook is, and
//! how deliveries to it are doing.
//!
//! Intents write subscriptions (a brand subscribes) and the delivery worker updates their health
//! (see [`crate::domain::delivery`]); both read and write them through this module, so the stored
//! form is decoded in one place.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::OpenVault;
use crate::domain::delivery::{DeliveryHealth, DeliveryStatus};
use crate::domain::intents::{Delivery, SubscriptionIndex, ValidSubscription};
use crate::error::AppError;
use crate::store::{Store, Table, Tree};

/// Brands' intent subscriptions, under a keyed hash of their client id.
pub(crate) const SUBSCRIPTIONS: Table<SubscriptionRecord> =
    Table::new(Tree::Subscriptions, "subscription");

/// A brand's subscription, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    pub client_id: String,
    pub subscription: ValidSubscription,
    /// `whsec_...`, when the brand takes webhooks.
    pub webhook_secret: Option<String>,
    pub delivery_status: DeliveryStatus,
    pub consecutive_failures: u32,
    /// When the current run of failures began.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub failing_since: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The secret a rotation replaced, still signing beside the new one until `until`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<PreviousSecret>,
}

/// A webhook secret replaced by a rotation, still signing for an overlap window, so a brand
/// can roll its receiver over to the new secret without dropping a delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreviousSecret {
    pub secret: String,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
}

/// How long a replaced webhook secret keeps signing, unless the brand asks for another window.
pub const WEBHOOK_SECRET_OVERLAP: time::Duration = time::Duration::hours(24);
/// The longest overlap a brand may ask for.
pub const MAX_WEBHOOK_SECRET_OVERLAP: time::Duration = time::Duration::days(7);

impl SubscriptionRecord {
    /// A subscription as its brand just set it: deliveries start healthy, so updating a
    /// subscription resumes paused deliveries.
    pub(super) fn new(
        client_id: String,
        subscription: ValidSubscription,
        webhook_secret: Option<String>,
        now: OffsetDateTime,
    ) -> SubscriptionRecord {
        let mut record = SubscriptionRecord {
            client_id,
            subscription,
            webhook_secret,
            delivery_status: DeliveryStatus::Ok,
            consecutive_failures: 0,
            failing_since: None,
            last_error: None,
            updated_at: now,
            previous_secret: None,
        };
        record.set_health(DeliveryHealth::healthy());
        record
    }

    /// The secrets deliveries are signed with at `now`: the current one, and the one a rotation
    /// replaced while its overlap lasts.
    pub(crate) fn signing_secrets(&self, now: OffsetDateTime) -> Vec<String> {
        let previous = self
            .previous_secret
            .as_ref()
            .filter(|p| p.until > now)
            .map(|p| p.secret.clone());
        self.webhook_secret
            .iter()
            .cloned()
            .chain(previous)
            .collect()
    }

    pub(super) fn takes_webhooks(&self) -> bool {
        self.subscription.webhook_url.is_some()
            && self.webhook_secret.is_some()
            && (self.subscription.delivery.is_empty()
                || self.subscription.delivery.contains(&Delivery::Webhook))
    }

    /// The webhook's health, for the delivery rules.
    pub(super) fn health(&self) -> DeliveryHealth {
        DeliveryHealth {
            status: self.delivery_status,
            consecutive_failures: self.consecutive_failures,
            failing_since: self.failing_since,
            last_error: self.last_error.clone(),
        }
    }

    /// Stores the health the delivery rules decided on.
    pub(super) fn set_health(&mut self, health: DeliveryHealth) {
        self.delivery_status = health.status;
        self.consecutive_failures = health.consecutive_failures;
        self.failing_since = health.failing_since;
        self.last_error = health.last_error;
    }
}

/// Builds the matching index from the stored subscriptions (at unseal).
pub(crate) fn load_index(store: &Store) -> Result<SubscriptionIndex, AppError> {
    let mut index = SubscriptionIndex::new();
    for item in store.read_all(&SUBSCRIPTIONS) {
        let (_, record) = item?;
        index.insert(&record.client_id, &record.subscription);
    }
    Ok(index)
}

impl OpenVault {
    pub(crate) fn subscription_key(&self, client_id: &str) -> [u8; 32] {
        self.index_key("subscription", client_id)
    }

    pub fn subscription(&self, client_id: &str) -> Result<Option<SubscriptionRecord>, AppError> {
        Ok(self
            .store()
            .read(&SUBSCRIPTIONS, &self.subscription_key(client_id))?)
    }
}
