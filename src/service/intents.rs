//! Intentcasting: the person's intents, brands' subscriptions, matching, the events brands
//! receive, and the offers they answer with.
//!
//! Creating an intent finds its recipients in the in-memory [`SubscriptionIndex`], keeps those
//! the person's terms allow (a current agreement whose basis permits intentcasting, and the
//! disclosed fields permitted for it), and appends one CloudEvent per recipient to its stream
//! (and outbox) in the same atomic write as the intent: acknowledged means delivered eventually.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use super::OpenVault;
use super::deadlines::{Alarm, Deadlines};
use super::events::OUTBOX;
use super::events::append_in;
pub use super::subscriptions::SubscriptionRecord;
use super::subscriptions::{PreviousSecret, SUBSCRIPTIONS};
use super::tables::OFFERS;
use crate::crypto::random_array;
use crate::domain::audit::Event;
use crate::domain::brands::{Brand, BrandStatus};
use crate::domain::grants::{FieldSpec, GrantAction, GrantOrigin};
use crate::domain::intents::{
    Intent, IntentStatus, SubscriptionIndex, ValidIntent, ValidSubscription,
};
use crate::domain::offers::{Offer, OfferStatus, OfferTerms};
use crate::domain::records::RecordPath;
use crate::domain::terms::{AccessRequest, Action, Basis, INTENTCASTING_PURPOSE, evaluate};
use crate::error::AppError;
use crate::store::{Store, Table, Tree};

/// The person's intents, under a keyed hash of their id.
pub(crate) const INTENTS: Table<IntentRecord> = Table::new(Tree::Intents, "intent");

/// Offers one brand may make per minute.
pub const OFFERS_PER_MINUTE: u32 = 30;

/// What the intents feature keeps in memory.
#[derive(Debug)]
pub(crate) struct IntentState {
    /// Brands' subscriptions, indexed for matching intents.
    subscriptions: std::sync::RwLock<SubscriptionIndex>,
    /// Offers per brand in the current minute.
    offer_rates: Mutex<HashMap<String, (OffsetDateTime, u32)>>,
    /// New offers, for the owner's live view.
    pub(super) offer_signal: tokio::sync::broadcast::Sender<Offer>,
    /// Intents whose expiry the brands have not been told of yet, by when they expire.
    expiries: Deadlines<String>,
}

impl IntentState {
    /// Reads the intents once (at unseal) for those whose expiry is still to announce; an
    /// intent that cannot be read is logged and counted.
    pub(super) fn load(
        subscriptions: SubscriptionIndex,
        store: &Store,
        alarm: &Alarm,
    ) -> IntentState {
        let mut expiries = Vec::new();
        for item in store.read_all(&INTENTS) {
            match item {
                Ok((_, record)) if !record.expiry_announced => {
                    expiries.push((record.intent.intent.expires_at, record.intent.id));
                }
                Ok(_) => {}
                Err(e) => alarm.read_error("intent", &e),
            }
        }
        IntentState {
            subscriptions: std::sync::RwLock::new(subscriptions),
            offer_rates: Mutex::default(),
            offer_signal: tokio::sync::broadcast::Sender::new(64),
            expiries: Deadlines::new(expiries),
        }
    }
}

/// How soon an intent whose expiry could not be announced is tried again.
const RETRY_EXPIRY: Duration = Duration::seconds(1);

/// An intent as stored: the domain's intent, who received it, and its offers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntentRecord {
    #[serde(flatten)]
    pub intent: Intent,
    /// Client ids of the brands it went to (never shown to brands).
    pub recipients: Vec<String>,
    pub offers: Vec<String>,
    /// Whether the brands were told it expired.
    #[serde(default)]
    pub expiry_announced: bool,
    /// The terms version in force when it was broadcast (absent for intents stored before it
    /// was kept): brands that accept later terms receive it late only if those terms permitted
    /// intentcasting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_version: Option<u64>,
    /// Its intent relays and what goes to them, for an intent marked `"relay": true`
    /// (`service::relayed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<crate::domain::relayed::RelayedIntent>,
    /// The intent's own private key (its only identity at the relays), sealed with the record
    /// and erased with it; never exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_key: Option<crate::crypto::jwt::StoredSigningKey>,
}

fn new_id(prefix: &str) -> Result<String, AppError> {
    let bytes = random_array::<10>().map_err(|e| AppError::internal("drawing random bytes", e))?;
    Ok(format!(
        "{prefix}{}",
        data_encoding::BASE32_NOPAD.encode(&bytes).to_lowercase()
    ))
}

/// What a brand sees of an intent: everything but the list of disclosed paths, plus their values.
pub(super) fn brand_view(record: &IntentRecord, disclosed: &BTreeMap<RecordPath, Value>) -> Value {
    let intent = &record.intent.intent;
    serde_json::json!({
        "id": record.intent.id,
        "category": intent.category,
        "text": intent.text,
        "expires_at": intent.expires_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "location": intent.location,
        "window": intent.window,
        "price_max": intent.price_max,
        "party_size": intent.party_size,
        "tags": intent.tags,
        "max_offers": intent.max_offers,
        "disclosed": disclosed,
    })
}

impl OpenVault {
    pub(super) fn intent_key(&self, id: &str) -> [u8; 32] {
        self.index_key("intent", id)
    }

    fn offer_key(&self, id: &str) -> [u8; 32] {
        self.index_key("offer", id)
    }

    /// A CloudEvents 1.0 structured event for one brand.
    pub(crate) fn cloud_event(
        &self,
        kind: &str,
        subject: &str,
        data: Value,
        now: OffsetDateTime,
    ) -> Result<Value, AppError> {
        Ok(serde_json::json!({
            "specversion": "1.0",
            "id": new_id("evt_")?,
            "source": self.issuer(),
            "type": kind,
            "subject": subject,
            "time": now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "datacontenttype": "application/json",
            "data": data,
        }))
    }

    // --- Subscriptions ----------------------------------------------------------------------

    /// Replaces a brand's subscription. A webhook gets a secret the first time (returned once);
    /// updating the subscription resumes paused deliveries.
    pub async fn put_subscription(
        &self,
        brand: &Brand,
        subscription: ValidSubscription,
    ) -> Result<(SubscriptionRecord, Option<String>), AppError> {
        let key = self.subscription_key(&brand.client_id);
        let now = self.now();
        let fresh_secret = crate::crypto::webhook::new_secret()
            .map_err(|e| AppError::internal("drawing random bytes", e))?;
        let client_id = brand.client_id.clone();
        let (record, new_secret, now_due) = self
            .change(move |tx| {
                let previous = tx.read(&SUBSCRIPTIONS, &key)?;
                let wants_webhook = subscription.webhook_url.is_some();
                let (secret, new_secret) =
                    match previous.as_ref().and_then(|p| p.webhook_secret.clone()) {
                        Some(secret) if wants_webhook => (Some(secret), None),
                        _ if wants_webhook => (Some(fresh_secret.clone()), Some(fresh_secret)),
                        _ => (None, None),
                    };
                let mut record =
                    SubscriptionRecord::new(client_id.clone(), subscription, secret, now);
                // A rotation's overlap outlives an update of the subscription that keeps its
                // secret.
                if new_secret.is_none() {
                    record.previous_secret = previous.and_then(|p| p.previous_secret);
                }
                tx.write(&SUBSCRIPTIONS, &key, &record)?;
                // Whatever waited for this brand is tried again now, not at its old backoff.
                let waiting: Vec<_> = tx.store().read_all(&OUTBOX).collect::<Result<_, _>>()?;
                let mut now_due = Vec::new();
                for (seq, mut entry) in waiting {
                    if entry.client_id == client_id && entry.next_attempt_at > now {
                        entry.next_attempt_at = now;
                        tx.write(&OUTBOX, &seq, &entry)?;
                        now_due.push(entry.seq);
                    }
                }
                let event = Event::brand("subscription.updated", &client_id).with_detail(
                    serde_json::json!({
                        "categories": record.subscription.categories,
                        "areas": record.subscription.areas.len(),
                        "webhook": wants_webhook,
                    }),
                );
                Ok(((record, new_secret, now_due), event))
            })
            .await?;
        self.deliveries_due(&now_due, now);
        if let Ok(mut index) = self.intents.subscriptions.write() {
            index.insert(&record.client_id, &record.subscription);
        }
        self.announce_events();
        Ok((record, new_secret))
    }

    /// A new webhook secret. The old one keeps signing beside it for `overlap` (none: it stops
    /// at once, as after a leak); a secret an earlier rotation replaced stops now. Returns the
    /// new secret and when the old one stops signing.
    pub async fn rotate_webhook_secret(
        &self,
        brand: &Brand,
        overlap: time::Duration,
    ) -> Result<(String, Option<OffsetDateTime>), AppError> {
        let key = self.subscription_key(&brand.client_id);
        let now = self.now();
        let until = (overlap > time::Duration::ZERO).then(|| now + overlap);
        let secret = crate::crypto::webhook::new_secret()
            .map_err(|e| AppError::internal("drawing random bytes", e))?;
        let client_id = brand.client_id.clone();
        let returned = secret.clone();
        self.change(move |tx| {
            let mut record = tx
                .read(&SUBSCRIPTIONS, &key)?
                .filter(|r| r.subscription.webhook_url.is_some())
                .ok_or(AppError::NotFound("webhook subscription"))?;
            record.previous_secret = match (record.webhook_secret.take(), until) {
                (Some(secret), Some(until)) => Some(PreviousSecret { secret, until }),
                _ => None,
            };
            record.webhook_secret = Some(secret);
            tx.write(&SUBSCRIPTIONS, &key, &record)?;
            let detail = serde_json::json!({
                "previous_signs_until": until.map(|u| u.unix_timestamp()),
            });
            Ok((
                (),
                Event::brand("webhook_secret.rotated", &client_id).with_detail(detail),
            ))
        })
        .await?;
        Ok((returned, until))
    }

    /// Whether `client_id`'s subscription matches `intent`.
    pub(super) fn subscription_matches(
        &self,
        client_id: &str,
        intent: &crate::domain::intents::ValidIntent,
    ) -> Result<bool, AppError> {
        match self.intents.subscriptions.read() {
            Ok(index) => Ok(index.matches(intent).contains(&client_id)),
            Err(_) => Err(AppError::broken("subscription index poisoned")),
        }
    }

    /// Forgets a brand's subscription (when the brand is removed).
    pub(crate) fn forget_subscription(&self, client_id: &str) {
        if let Ok(mut index) = self.intents.subscriptions.write() {
            index.remove(client_id);
        }
    }

    // --- Intents ----------------------------------------------------------------------------

    /// Whether `brand` may receive an intent disclosing `categories`: active, with an agreement
    /// on the terms in force whose basis permits intentcasting, and the terms permitting the
    /// disclosed data for it.
    pub(super) fn may_receive(
        &self,
        brand: &Brand,
        categories: &[String],
        now: OffsetDateTime,
    ) -> Result<bool, AppError> {
        if brand.status != BrandStatus::Active {
            return Ok(false);
        }
        let Some(agreement_id) = self.current_agreement(brand)? else {
            return Ok(false);
        };
        let terms = self.current_terms()?;
        if !Basis::parse(&terms.version.basis).is_some_and(Basis::permits_intentcasting) {
            return Ok(false);
        }
        if categories.is_empty() {
            return Ok(true);
        }
        let agreement = self.agreement(&agreement_id)?;
        let agreed_at = agreement.events.get(1).map_or(now, |e| e.at);
        Ok(evaluate(
            &terms.terms,
            &AccessRequest {
                action: Action::ReceiveIntent,
                categories: categories.to_vec(),
                purpose: INTENTCASTING_PURPOSE.to_owned(),
                at: now,
                count_so_far: 0,
                agreed_at,
            },
        )
        .permitted)
    }

    /// Broadcasts an intent to every matching brand the terms allow; returns it.
    pub async fn create_intent(&self, intent: ValidIntent) -> Result<IntentRecord, AppError> {
        self.create_intent_with(intent, None).await
    }

    /// [`Self::create_intent`], keeping `relay` (its relays and key) in the same write.
    pub(super) async fn create_intent_with(
        &self,
        intent: ValidIntent,
        relay: Option<super::relayed::RelaySetup>,
    ) -> Result<IntentRecord, AppError> {
        let now = self.now();
        let mut disclosed = BTreeMap::new();
        let mut categories = Vec::new();
        for path in &intent.disclose {
            let path = RecordPath::parse(path)?;
            match self.get_record(&path) {
                Ok(record) => {
                    categories.push(record.category.clone());
                    disclosed.insert(record.path, record.value);
                }
                Err(AppError::NotFound(_)) => {
                    return Err(AppError::invalid_at(
                        "invalid_intent",
                        "disclose",
                        format!("disclose: you have no data at {}", path.as_str()),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        categories.sort();
        categories.dedup();
        let candidates: Vec<String> = match self.intents.subscriptions.read() {
            Ok(index) => index
                .matches(&intent)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            Err(_) => return Err(AppError::broken("subscription index poisoned")),
        };
        let mut recipients = Vec::new();
        for client_id in candidates {
            if let Some(brand) = self.find_brand(&client_id)?
                && self.may_receive(&brand, &categories, now)?
            {
                let webhook = self
                    .subscription(&client_id)?
                    .is_some_and(|s| s.takes_webhooks());
                recipients.push((brand, webhook));
            }
        }
        let record = IntentRecord {
            intent: Intent {
                id: new_id("i_")?,
                intent,
                created_at: now,
                withdrawn_at: None,
                fulfilled_at: None,
            },
            recipients: recipients
                .iter()
                .map(|(b, _)| b.client_id.clone())
                .collect(),
            offers: Vec::new(),
            expiry_announced: false,
            terms_version: Some(self.current_terms()?.version.version),
            relay: relay.as_ref().map(|(r, _)| r.clone()),
            relay_key: relay.map(|(_, k)| k),
        };
        let view = brand_view(&record, &disclosed);
        let mut events = Vec::new();
        for (brand, webhook) in &recipients {
            let data = serde_json::json!({ "intent": view, "person": brand.pseudonym });
            events.push((
                brand.client_id.clone(),
                self.cloud_event("vrm.intent.created.v1", &record.intent.id, data, now)?,
                *webhook,
            ));
        }
        let key = self.intent_key(&record.intent.id);
        let index = self.index.clone();
        let stored = record.clone();
        self.change(move |tx| {
            tx.write(&INTENTS, &key, &stored)?;
            for (client_id, event, webhook) in &events {
                append_in(tx, &index, client_id, event, *webhook, now)?;
            }
            let event = Event::owner("intent.created", Some(stored.intent.id.clone())).with_detail(
                serde_json::json!({
                    "category": stored.intent.intent.category,
                    "recipients": stored.recipients.len(),
                    "disclosed": stored.intent.intent.disclose,
                    "relays": stored.relay.as_ref().map_or(0, |r| r.targets.len()),
                }),
            );
            Ok(((), event))
        })
        .await?;
        let expires_at = record.intent.intent.expires_at;
        self.intents
            .expiries
            .insert(expires_at, record.intent.id.clone());
        self.alarm.0.arm(expires_at);
        self.announce_events();
        Ok(record)
    }

    pub fn intent(&self, id: &str) -> Result<IntentRecord, AppError> {
        self.store()
            .read(&INTENTS, &self.intent_key(id))?
            .ok_or(AppError::NotFound("intent"))
    }

    /// Every intent, newest first.
    pub fn list_intents(&self) -> Result<Vec<IntentRecord>, AppError> {
        let mut all: Vec<IntentRecord> = self
            .store()
            .read_all(&INTENTS)
            .map(|item| item.map(|(_, record)| record))
            .collect::<Result<_, _>>()?;
        all.sort_by_key(|i| std::cmp::Reverse(i.intent.created_at));
        Ok(all)
    }

    /// Closes an intent and tells its recipients (`withdrawn` or `expired`).
    async fn close_intent(&self, id: &str, expired: bool) -> Result<IntentRecord, AppError> {
        let key = self.intent_key(id);
        let now = self.now();
        let record = self.intent(id)?;
        let kind = if expired {
            "vrm.intent.expired.v1"
        } else {
            "vrm.intent.withdrawn.v1"
        };
        let mut events = Vec::new();
        for client_id in &record.recipients {
            // A brand that may no longer receive anything is not told either.
            let Some(brand) = self.find_brand(client_id)? else {
                continue;
            };
            if brand.status != BrandStatus::Active || self.current_agreement(&brand)?.is_none() {
                continue;
            }
            let webhook = self
                .subscription(client_id)?
                .is_some_and(|s| s.takes_webhooks());
            let person = self.pseudonym(client_id);
            let data =
                serde_json::json!({ "intent": { "id": record.intent.id }, "person": person });
            events.push((
                client_id.clone(),
                self.cloud_event(kind, &record.intent.id, data, now)?,
                webhook,
            ));
        }
        let index = self.index.clone();
        let record = self
            .change(move |tx| {
                let mut record = tx
                    .read(&INTENTS, &key)?
                    .ok_or(AppError::NotFound("intent"))?;
                if expired {
                    if record.expiry_announced || record.intent.status(now) != IntentStatus::Expired
                    {
                        return Err(AppError::Conflict("the intent is not due to expire"));
                    }
                    record.expiry_announced = true;
                } else {
                    if !record.intent.is_open(now) {
                        return Err(AppError::Conflict("the intent is no longer open"));
                    }
                    record.intent.withdrawn_at = Some(now);
                }
                tx.write(&INTENTS, &key, &record)?;
                for (client_id, event, webhook) in &events {
                    append_in(tx, &index, client_id, event, *webhook, now)?;
                }
                let action = if expired {
                    "intent.expired"
                } else {
                    "intent.withdrawn"
                };
                let event = if expired {
                    Event::system(action)
                } else {
                    Event::owner(action, None)
                };
                let mut event =
                    event.with_detail(serde_json::json!({ "recipients": record.recipients.len() }));
                event.target = Some(record.intent.id.clone());
                Ok((record, event))
            })
            .await?;
        self.announce_events();
        Ok(record)
    }

    pub async fn withdraw_intent(&self, id: &str) -> Result<IntentRecord, AppError> {
        let record = self.close_intent(id, false).await?;
        self.relay_intent_ended(id, "withdrawn").await;
        self.intents
            .expiries
            .remove(record.intent.intent.expires_at, &record.intent.id);
        Ok(record)
    }

    /// Tells the brands about intents that expired by `now` (run by the background worker);
    /// returns when the next one expires.
    pub(crate) async fn expire_due(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        for (_, id) in self.intents.expiries.take_due(now) {
            // An intent closed otherwise meanwhile (withdrawn, fulfilled) answers `Conflict`:
            // there is nothing to announce.
            let closed = self.close_intent(&id, true).await;
            if closed.is_ok() {
                self.relay_intent_ended(&id, "expired").await
            }
            if let Err(e) = closed
                && !matches!(e, AppError::Conflict(_))
            {
                tracing::warn!(error = %e, intent = id, "announcing an expired intent");
                // The worker runs this and looks at the deadlines next: no alarm needed.
                self.intents.expiries.insert(now + RETRY_EXPIRY, id);
            }
        }
        self.intents.expiries.first_after(now)
    }

    // --- Offers -----------------------------------------------------------------------------

    /// A brand answers an intent it received.
    pub async fn create_offer(
        &self,
        brand: &Brand,
        intent_id: &str,
        terms: OfferTerms,
    ) -> Result<Offer, AppError> {
        let now = self.now();
        {
            let mut rates = self
                .intents
                .offer_rates
                .lock()
                .map_err(|_| AppError::broken("offer rate lock poisoned"))?;
            let entry = rates.entry(brand.client_id.clone()).or_insert((now, 0));
            if now - entry.0 >= Duration::minutes(1) {
                *entry = (now, 0);
            }
            if entry.1 >= OFFERS_PER_MINUTE {
                let wait = (entry.0 + Duration::minutes(1) - now)
                    .whole_seconds()
                    .max(1) as u64;
                return Err(AppError::TooManyRequests { retry_after: wait });
            }
            entry.1 += 1;
        }
        let offer = Offer {
            id: new_id("o_")?,
            intent_id: intent_id.to_owned(),
            client_id: brand.client_id.clone(),
            brand_name: brand.client_name.clone(),
            terms,
            status: OfferStatus::Pending,
            created_at: now,
            decided_at: None,
            grant_id: None,
            relayed: None,
        };
        let intent_key = self.intent_key(intent_id);
        let offer_key = self.offer_key(&offer.id);
        let stored = offer.clone();
        self.change(move |tx| {
            let Some(mut record) = tx.read(&INTENTS, &intent_key)? else {
                return Err(AppError::NotFound("intent"));
            };
            // An intent the brand did not receive does not exist for it.
            if !record.recipients.contains(&stored.client_id) {
                return Err(AppError::NotFound("intent"));
            }
            if !record.intent.is_open(now) {
                return Err(AppError::IntentClosed(format!(
                    "this intent is {}: it takes no more offers",
                    record.intent.status(now).as_str()
                )));
            }
            if record.offers.len() >= record.intent.intent.max_offers as usize {
                return Err(AppError::OfferLimit);
            }
            record.offers.push(stored.id.clone());
            tx.write(&INTENTS, &intent_key, &record)?;
            tx.write(&OFFERS, &offer_key, &stored)?;
            let event = Event::brand("offer.received", &stored.client_id)
                .with_detail(serde_json::json!({ "intent": stored.intent_id, "offer": stored.id }));
            Ok(((), event))
        })
        .await?;
        let _ = self.intents.offer_signal.send(offer.clone());
        Ok(offer)
    }

    pub fn offer(&self, id: &str) -> Result<Offer, AppError> {
        self.store()
            .read(&OFFERS, &self.offer_key(id))?
            .ok_or(AppError::NotFound("offer"))
    }

    /// The brand's own offer; another brand's does not exist for it.
    pub fn brand_offer(&self, brand: &Brand, id: &str) -> Result<Offer, AppError> {
        self.offer(id)
            .ok()
            .filter(|o| o.client_id == brand.client_id)
            .ok_or(AppError::NotFound("offer"))
    }

    /// The offers on one intent, oldest first.
    pub fn intent_offers(&self, intent_id: &str) -> Result<Vec<Offer>, AppError> {
        let record = self.intent(intent_id)?;
        record.offers.iter().map(|id| self.offer(id)).collect()
    }

    /// Live offers for the owner's browser.
    pub fn subscribe_offers(&self) -> tokio::sync::broadcast::Receiver<Offer> {
        self.intents.offer_signal.subscribe()
    }

    /// The person accepts or declines an offer; the brand is told (a relayed one through its
    /// relay, where accepting discloses the shared fields). Accepting fulfils the intent and,
    /// with `share`, grants the brand the fields it asked for (or those chosen among them).
    pub async fn decide_offer(
        &self,
        id: &str,
        accept: bool,
        share: Option<Share>,
    ) -> Result<Offer, AppError> {
        let offer = self.offer(id)?;
        if offer.relayed.is_some() {
            return self.decide_relayed_offer(offer, accept, share).await;
        }
        if offer.status != OfferStatus::Pending {
            return Err(AppError::Conflict("this offer was already decided"));
        }
        let now = self.now();
        if accept {
            let intent = self.intent(&offer.intent_id)?;
            if !intent.intent.is_open(now) {
                return Err(AppError::IntentClosed(format!(
                    "this intent is {}: its offers can only be declined",
                    intent.intent.status(now).as_str()
                )));
            }
            if offer.terms.valid_until <= now {
                return Err(AppError::Conflict("this offer is no longer valid"));
            }
        }
        let mut grant_id = None;
        if accept
            && let Some(share) = share
            && !offer.terms.data_requested.is_empty()
        {
            let duration = share.duration;
            let chosen = share.chosen(&offer.terms.data_requested)?;
            let fields = chosen
                .iter()
                .map(|f| FieldSpec::parse(f).map_err(|e| AppError::invalid("invalid_grant", e)))
                .collect::<Result<Vec<_>, _>>()?;
            let grant = self
                .create_grant(super::grants::GrantRequest {
                    client_id: offer.client_id.clone(),
                    fields,
                    actions: vec![GrantAction::Read],
                    purpose: INTENTCASTING_PURPOSE.to_owned(),
                    expires_at: now + duration,
                    max_uses: None,
                    origin: GrantOrigin::Owner,
                })
                .await?;
            grant_id = Some(grant.id);
        }
        let kind = if accept {
            "vrm.offer.accepted.v1"
        } else {
            "vrm.offer.declined.v1"
        };
        let data = serde_json::json!({
            "offer": { "id": offer.id, "intent_id": offer.intent_id, "status": if accept { "accepted" } else { "declined" }, "grant_id": grant_id },
            "person": self.pseudonym(&offer.client_id),
        });
        let event = self.cloud_event(kind, &offer.intent_id, data, now)?;
        let webhook = self
            .subscription(&offer.client_id)?
            .is_some_and(|s| s.takes_webhooks());
        let offer_key = self.offer_key(id);
        let intent_key = self.intent_key(&offer.intent_id);
        let index = self.index.clone();
        let made_grant = grant_id.clone();
        let decided = self
            .change(move |tx| {
                let mut offer = tx.read(&OFFERS, &offer_key)?.ok_or(AppError::NotFound("offer"))?;
                if offer.status != OfferStatus::Pending {
                    return Err(AppError::Conflict("this offer was already decided"));
                }
                if accept
                    && let Some(record) = tx.read(&INTENTS, &intent_key)?
                    && !record.intent.is_open(now)
                {
                    return Err(AppError::IntentClosed(
                        "this intent is no longer open: its offers can only be declined".into(),
                    ));
                }
                offer.status = if accept { OfferStatus::Accepted } else { OfferStatus::Declined };
                offer.decided_at = Some(now);
                offer.grant_id = grant_id;
                tx.write(&OFFERS, &offer_key, &offer)?;
                if accept
                    && let Some(mut record) = tx.read(&INTENTS, &intent_key)?
                    && record.intent.fulfilled_at.is_none()
                {
                    record.intent.fulfilled_at = Some(now);
                    tx.write(&INTENTS, &intent_key, &record)?;
                }
                append_in(tx, &index, &offer.client_id, &event, webhook, now)?;
                let action = if accept { "offer.accepted" } else { "offer.declined" };
                let audit = Event::owner(action, Some(offer.client_id.clone()))
                    .with_detail(serde_json::json!({ "offer": offer.id, "intent": offer.intent_id, "grant": offer.grant_id }));
                Ok((offer, audit))
            })
            .await;
        let decided = match decided {
            Ok(offer) => offer,
            Err(e) => {
                // Another decision won the race: the grant made for this one must not outlive it.
                if let Some(grant) = made_grant {
                    self.revoke_grant(&grant, crate::domain::audit::Actor::System)
                        .await?;
                }
                return Err(e);
            }
        };
        self.announce_events();
        Ok(decided)
    }
}

/// What to share with the brand when accepting its offer.
#[derive(Debug, Clone)]
pub struct Share {
    /// How long the brand may read it.
    pub duration: Duration,
    /// Which of the fields the offer asked for; all of them when `None`.
    pub fields: Option<Vec<String>>,
}

impl Share {
    /// The fields to grant: the chosen ones, each of which the offer must have asked for.
    fn chosen(&self, requested: &[String]) -> Result<Vec<String>, AppError> {
        let Some(fields) = &self.fields else {
            return Ok(requested.to_vec());
        };
        if fields.is_empty() {
            return Err(AppError::invalid(
                "invalid_grant",
                "choose at least one of the fields the offer asks for, or accept without sharing",
            ));
        }
        if let Some(other) = fields.iter().find(|f| !requested.contains(f)) {
            return Err(AppError::invalid(
                "invalid_grant",
                format!("\"{other}\" is not among the fields the offer asks for"),
            ));
        }
        let mut chosen = fields.clone();
        chosen.sort();
        chosen.dedup();
        Ok(chosen)
    }
}
