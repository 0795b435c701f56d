//! Intents at the relay: brands subscribe (the same body and matching rule as a vault's
//! subscriptions, `domain::intents`), vaults publish intents under a per-intent public key, and
//! each matching brand finds a CloudEvent in its feed, read by polling, and by signed webhook
//! when it gave a URL (`super::deliveries`).
//!
//! Subscriptions live in the `relay_subscriptions` bucket. Each instance keeps the domain's
//! [`SubscriptionIndex`](crate::domain::intents::SubscriptionIndex) in memory, filled and kept current by watching that bucket, so matching
//! never scans every brand; an instance also applies its own writes at once. Across instances
//! the index follows the bucket within the watch's delay (milliseconds on a healthy cluster): a
//! subscription changed on one instance may miss an intent published on another in that window.
//!
//! An accepted intent's record is stored in `RELAY_INTENTS` (`super::record`: it disappears a
//! week after the intent expires), then one `vrm.intent.created.v1` event per matching brand
//! goes to its feed (and, for a brand with a webhook, a job in `RELAY_DELIVERIES`), each with a
//! stable id (`super::events`); last, the record notes which brands it reached. The 201 comes
//! after every one of those writes was acknowledged by JetStream.
//!
//! Publishing is idempotent by the intent's key: the id is derived from the key's RFC 7638
//! thumbprint. If a write fails the answer is 503; the vault retries with the same body and
//! gets the same id (200 once the intent existed before), and the relay finishes the
//! deliveries the record does not yet note. A brand reached by both attempts gets the event
//! once within JetStream's two-minute duplicate window, and the same event id after it. The
//! same key with another body is refused (409 `intent_exists`).

use std::time::Duration;

use async_nats::jetstream::consumer::{self, DeliverPolicy};
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;

use super::Relay;
use super::brands::Authenticated;
use super::error::RelayError;
use super::nats::FEEDS;
use super::record::{IntentRecord, IntentStatus, intent_id_for};
use crate::crypto::{self, relay_jwks};
use crate::domain::intents::{
    IntentError, NewIntent, NewSubscription, SubscriptionError, ValidIntent, ValidSubscription,
};

/// The finest location a relayed intent may carry: geohash precision 5 (about 5 km).
pub const MAX_GEOHASH_PRECISION: usize = 5;
/// The most events one poll returns.
pub const MAX_EVENTS_PAGE: usize = 100;

/// A brand's subscription as the `relay_subscriptions` bucket holds it, and as the brand is
/// answered: the validated subscription and, with a webhook, its signing secret. The secret is
/// kept in NATS as it is (the relay must sign with it); `Debug` leaves it out.
#[derive(Clone, serde::Serialize, Deserialize)]
pub struct StoredSubscription {
    #[serde(flatten)]
    pub subscription: ValidSubscription,
    /// `whsec_...`, when the brand takes webhooks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

impl std::fmt::Debug for StoredSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSubscription")
            .field("subscription", &self.subscription)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "whsec_…"),
            )
            .finish()
    }
}

/// A page of a brand's feed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EventPage {
    /// CloudEvents 1.0, oldest first.
    pub events: Vec<Value>,
    /// Pass back as `cursor`; unchanged when there was nothing new.
    pub next_cursor: u64,
}

fn invalid_intent(e: IntentError) -> RelayError {
    RelayError::invalid("invalid_intent", e.to_string(), e.field())
}

fn invalid_subscription(e: SubscriptionError) -> RelayError {
    RelayError::invalid("invalid_subscription", e.to_string(), e.field())
}

fn intent_error(message: impl Into<String>, at: &'static str) -> RelayError {
    RelayError::invalid("invalid_intent", message, at)
}

/// `sha256:<hex>` of the RFC 8785 form of `terms`: how a vault names its terms.
fn terms_hash(terms: &Value) -> Result<String, RelayError> {
    let canonical = serde_json_canonicalizer::to_vec(terms)
        .map_err(|e| RelayError::internal("canonicalising terms", e))?;
    Ok(format!(
        "sha256:{}",
        data_encoding::HEXLOWER.encode(&crypto::sha256(&canonical))
    ))
}

/// What a vault publishes, split into the domain's intent and what only the relay adds.
struct Published {
    intent: ValidIntent,
    terms: Value,
    terms_hash: String,
    jwk: Value,
}

/// Checks a vault's intent body: the domain's intent rules, then the relay's own (no disclosed
/// field, a location no finer than precision 5, the terms and their hash, the intent's key).
fn check_published(body: Value, now: time::OffsetDateTime) -> Result<Published, RelayError> {
    let Value::Object(mut body) = body else {
        return Err(intent_error("the body must be a JSON object", "body"));
    };
    if body.contains_key("disclose") {
        return Err(intent_error(
            "disclose is not allowed: a relayed intent never carries record values",
            "disclose",
        ));
    }
    let terms = body
        .remove("terms")
        .filter(Value::is_object)
        .ok_or_else(|| intent_error("terms must be the person's terms document", "terms"))?;
    let claimed_hash = body.remove("terms_hash");
    let jwk = body
        .remove("jwk")
        .ok_or_else(|| intent_error("jwk (the intent's P-256 public key) is required", "jwk"))?;
    let new: NewIntent = serde_json::from_value(Value::Object(body)).map_err(|e| {
        intent_error(
            format!("the intent does not have the expected shape: {e}"),
            "body",
        )
    })?;
    let intent = new.validate(now).map_err(invalid_intent)?;
    if let Some(location) = &intent.location
        && location.geohash.precision() > MAX_GEOHASH_PRECISION
    {
        return Err(intent_error(
            format!(
                "location.geohash may have at most {MAX_GEOHASH_PRECISION} characters at a relay \
                 (about 5 km); coarsen it"
            ),
            "location.geohash",
        ));
    }
    let terms_hash = terms_hash(&terms)?;
    if claimed_hash.as_ref().and_then(Value::as_str) != Some(terms_hash.as_str()) {
        return Err(intent_error(
            "terms_hash must be sha256:<hex> of the RFC 8785 form of terms",
            "terms_hash",
        ));
    }
    let jwk =
        relay_jwks::check_intent_jwk(&jwk).map_err(|e| intent_error(format!("jwk: {e}"), "jwk"))?;
    Ok(Published {
        intent,
        terms,
        terms_hash,
        jwk,
    })
}

/// The event's `data.intent`: the shape a vault sends directly, plus the relay's members.
fn intent_view(id: &str, published: &Published) -> Value {
    let intent = &published.intent;
    json!({
        "id": id,
        "category": intent.category,
        "text": intent.text,
        "expires_at": intent.expires_at.format(&Rfc3339).unwrap_or_default(),
        "location": intent.location,
        "window": intent.window,
        "price_max": intent.price_max,
        "party_size": intent.party_size,
        "tags": intent.tags,
        "max_offers": intent.max_offers,
        "disclosed": Map::new(),
        "terms": published.terms,
        "terms_hash": published.terms_hash,
        "jwk": published.jwk,
    })
}

impl Relay {
    /// Replaces a brand's subscription. One with a webhook gets a fresh `whsec_` secret, shown
    /// in the answer only (a new one with every change, so a leaked secret is replaced by
    /// subscribing again).
    pub async fn subscribe(
        &self,
        auth: &Authenticated,
        body: NewSubscription,
    ) -> Result<StoredSubscription, RelayError> {
        let subscription = body
            .validate(self.settings().allow_loopback_webhooks)
            .map_err(invalid_subscription)?;
        let webhook_secret = if subscription.webhook_url.is_some() {
            Some(
                crypto::webhook::new_secret()
                    .map_err(|e| RelayError::internal("making a webhook secret", e))?,
            )
        } else {
            None
        };
        let stored = StoredSubscription {
            subscription,
            webhook_secret,
        };
        let bytes = serde_json::to_vec(&stored)
            .map_err(|e| RelayError::internal("encoding a subscription", e))?;
        self.buckets()?
            .subscriptions
            .put(&auth.brand.client_id, bytes.into())
            .await
            .map_err(|e| RelayError::unavailable("storing a subscription", e))?;
        self.index_put(&auth.brand.client_id, Some(&stored.subscription));
        Ok(stored)
    }

    /// A brand's subscription as stored, with its webhook secret.
    pub(super) async fn stored_subscription(
        &self,
        client_id: &str,
    ) -> Result<Option<StoredSubscription>, RelayError> {
        let entry = self
            .buckets()?
            .subscriptions
            .get(client_id)
            .await
            .map_err(|e| RelayError::unavailable("reading a subscription", e))?;
        entry
            .map(|bytes| {
                serde_json::from_slice(&bytes)
                    .map_err(|e| RelayError::internal("decoding a subscription", e))
            })
            .transpose()
    }

    fn index_put(&self, client_id: &str, subscription: Option<&ValidSubscription>) {
        let mut index = match self.inner.index.write() {
            Ok(index) => index,
            Err(poisoned) => poisoned.into_inner(),
        };
        index.remove(client_id);
        if let Some(subscription) = subscription {
            index.insert(client_id, subscription);
        }
    }

    /// Keeps this instance's index equal to the subscriptions bucket, for as long as it runs.
    pub(super) async fn follow_subscriptions(&self) {
        loop {
            if let Err(e) = self.follow_once().await {
                tracing::warn!(error = %e.report(), "watching subscriptions; resuming");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Rebuilds the index from the bucket's current values, then follows its changes. The
    /// index counts as current once the replay is done (each entry says how many remain).
    async fn follow_once(&self) -> Result<(), RelayError> {
        self.set_index_current(false);
        {
            let mut index = match self.inner.index.write() {
                Ok(index) => index,
                Err(poisoned) => poisoned.into_inner(),
            };
            *index = crate::domain::intents::SubscriptionIndex::new();
        }
        let bucket = &self.buckets()?.subscriptions;
        let mut watch = bucket
            .watch_with_history(">")
            .await
            .map_err(|e| RelayError::unavailable("watching subscriptions", e))?;
        // An empty bucket replays nothing: it is current at once. (A value written after this
        // check arrives through the watch with nothing pending after it.)
        let stored = bucket
            .status()
            .await
            .map_err(|e| RelayError::unavailable("reading the subscriptions bucket", e))?
            .values();
        if stored == 0 {
            self.set_index_current(true);
        }
        while let Some(entry) = watch.next().await {
            let entry = entry.map_err(|e| RelayError::unavailable("watching subscriptions", e))?;
            let caught_up = entry.delta == 0;
            match entry.operation {
                async_nats::jetstream::kv::Operation::Put => {
                    match serde_json::from_slice::<StoredSubscription>(&entry.value) {
                        Ok(s) => self.index_put(&entry.key, Some(&s.subscription)),
                        Err(e) => {
                            tracing::error!(error = %e, "a stored subscription does not decode")
                        }
                    }
                }
                _ => self.index_put(&entry.key, None),
            }
            if caught_up {
                self.set_index_current(true);
            }
        }
        Ok(())
    }

    /// Accepts a vault's intent: validates it, stores its record until a week after it
    /// expires, and puts one event in the feed of each matching active brand. Returns its id
    /// and whether this call created it (`false`: the same body was published before under
    /// the same key, and the same id comes back).
    pub async fn publish_intent(
        &self,
        body: Value,
        source: std::net::IpAddr,
    ) -> Result<(String, bool), RelayError> {
        let limits = self.settings().limits;
        self.spend(
            "intents",
            &source.to_string(),
            limits.intents(),
            "intents from this address",
        )
        .await?;
        let now = self.clock().now();
        let body_sha256 = terms_hash(&body)?;
        let published = check_published(body, now)?;
        self.index_ready()?;
        let id = intent_id_for(&published.jwk)?;
        let view = intent_view(&id, &published);
        let mut created = true;
        let record = loop {
            match self.intent_record(&id).await? {
                Some((record, _)) => {
                    if record.body_sha256 != body_sha256 {
                        return Err(RelayError::Conflict {
                            code: "intent_exists",
                            message: "an intent with this key exists with another body: every \
                                      intent needs a fresh key"
                                .into(),
                        });
                    }
                    created = false;
                    break record;
                }
                None => {
                    let record = IntentRecord {
                        intent: view.clone(),
                        body_sha256: body_sha256.clone(),
                        status: IntentStatus::Open,
                        delivered_to: None,
                        keep_until: IntentRecord::keep_until_for(published.intent.expires_at),
                    };
                    // Another instance writing the same intent at once: read what it wrote.
                    if self.write_intent_record(&id, &record, 0).await?.is_some() {
                        break record;
                    }
                }
            }
        };
        // A retry of a publication whose deliveries were all queued has nothing left to do.
        if record.delivered_to.is_some() {
            return Ok((id, created));
        }
        let candidates: Vec<String> = {
            let index = match self.inner.index.read() {
                Ok(index) => index,
                Err(poisoned) => poisoned.into_inner(),
            };
            index
                .matches(&published.intent)
                .into_iter()
                .map(str::to_owned)
                .collect()
        };
        let mut delivered = Vec::new();
        for client_id in candidates {
            // A brand suspended since it subscribed gets nothing.
            if !self
                .brand(&client_id)
                .await?
                .is_some_and(|b| b.status == super::brands::BrandStatus::Active)
            {
                continue;
            }
            let event = self.cloud_event(
                &format!("evt_{id}_{client_id}"),
                "vrm.intent.created.v1",
                &id,
                json!({ "intent": view }),
            );
            self.send_event(&client_id, &id, &event, published.intent.expires_at)
                .await?;
            delivered.push(client_id);
        }
        self.update_intent_record(&id, |record| {
            if record.delivered_to.is_some() {
                return Ok(false);
            }
            record.delivered_to = Some(delivered.clone());
            Ok(true)
        })
        .await?;
        self.counters().intent_accepted();
        Ok((id, created))
    }

    /// The brand's events after `cursor` (a sequence number of its feed), oldest first.
    pub async fn poll(&self, auth: &Authenticated, cursor: u64) -> Result<EventPage, RelayError> {
        let unavailable = |e: &dyn std::fmt::Display| RelayError::Unavailable {
            context: "reading a brand's feed",
            source: Some(e.to_string().into()),
        };
        let stream = self
            .js()
            .get_stream_no_info(FEEDS)
            .await
            .map_err(|e| unavailable(&e))?;
        let consumer = stream
            .create_consumer(consumer::pull::Config {
                filter_subject: format!("relay.feed.{}.*", auth.brand.client_id),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: cursor.saturating_add(1),
                },
                ack_policy: consumer::AckPolicy::None,
                inactive_threshold: Duration::from_secs(10),
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(&e))?;
        let mut batch = consumer
            .fetch()
            .max_messages(MAX_EVENTS_PAGE)
            .messages()
            .await
            .map_err(|e| unavailable(&e))?;
        let mut page = EventPage {
            events: Vec::new(),
            next_cursor: cursor,
        };
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| unavailable(&e))?;
            let sequence = message.info().map_err(|e| unavailable(&e))?.stream_sequence;
            let event: Value = serde_json::from_slice(&message.payload)
                .map_err(|e| RelayError::internal("decoding an event", e))?;
            page.events.push(event);
            page.next_cursor = sequence;
        }
        let _ = self
            .js()
            .delete_consumer_from_stream(consumer.cached_info().name.clone(), FEEDS)
            .await;
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::jwt::SigningKey;
    use time::macros::datetime;

    const NOW: time::OffsetDateTime = datetime!(2030-01-01 12:00 UTC);

    fn body() -> Value {
        let key = SigningKey::generate().unwrap_or_else(|_| unreachable!());
        let terms = json!({"uid": "t", "permission": []});
        json!({
            "category": "food.lunch",
            "text": "Lunch for two",
            "expires_at": "2030-01-01T14:00:00Z",
            "location": {"geohash": "u09tv", "radius_m": 1500},
            "terms_hash": terms_hash(&terms).unwrap_or_default(),
            "terms": terms,
            "jwk": serde_json::to_value(key.public_jwk()).unwrap_or_default(),
        })
    }

    fn refused_at(body: Value) -> Option<&'static str> {
        match check_published(body, NOW) {
            Err(RelayError::Invalid { at, .. }) => at,
            _ => None,
        }
    }

    #[test]
    fn a_coarse_intent_with_its_terms_and_key_is_accepted() {
        assert!(check_published(body(), NOW).is_ok());
        let mut without_place = body();
        if let Some(map) = without_place.as_object_mut() {
            map.remove("location");
        }
        assert!(check_published(without_place, NOW).is_ok());
    }

    #[test]
    fn each_relay_rule_names_its_field() {
        let mut fine = body();
        fine["location"]["geohash"] = json!("u09tvw");
        assert_eq!(refused_at(fine), Some("location.geohash"));
        let mut disclosing = body();
        disclosing["disclose"] = json!(["contact.email"]);
        assert_eq!(refused_at(disclosing), Some("disclose"));
        let mut other_terms = body();
        other_terms["terms"]["uid"] = json!("changed");
        assert_eq!(refused_at(other_terms), Some("terms_hash"));
        let mut no_key = body();
        no_key["jwk"] = json!({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"});
        assert_eq!(refused_at(no_key), Some("jwk"));
        let mut private = body();
        private["jwk"]["d"] = json!("AAAA");
        assert_eq!(refused_at(private), Some("jwk"));
        // The domain's own rules still apply.
        let mut past = body();
        past["expires_at"] = json!("2029-01-01T00:00:00Z");
        assert_eq!(refused_at(past), Some("expires_at"));
        let mut unknown = body();
        unknown["person"] = json!("x");
        assert_eq!(refused_at(unknown), Some("body"));
    }
}
