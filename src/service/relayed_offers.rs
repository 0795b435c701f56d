//! Offers back from the intent relays (DESIGN §11, steps 4 to 6), the vault's side.
//!
//! For each open intent published at a relay, one task reads its offers over an outbound
//! connection (a long poll, so it works behind NAT): `GET .../offers?after=N&wait=S` with a
//! token signed by the intent's key, never more often than every [`MIN_POLL_GAP`], backing off
//! while the relay is down, and stopping when the intent ends.
//!
//! Each offer is taken in only if its brand's acceptance of the person's terms holds: a JWS
//! (ES256) by the brand's signing key as the relay publishes it at
//! `/relay/v1/brands/{client_id}` (kept in memory, fetched again once for an unknown `kid`),
//! naming this intent, the hash of the terms the intent carried, and the digest of this very
//! offer. An offer that fails is not shown; it is on the audit log with the reason. One that
//! holds is stored beside the direct offers, on the record, and announced to the app's live
//! stream.
//!
//! The person's decisions go back as messages through the same relay: `accepted` with a
//! receipt (the brand's acceptance countersigned by the intent's key) and, when fields are
//! disclosed, a JWE to the brand's encryption key; `declined`.

use std::sync::{Arc, Weak};

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::OpenVault;
use super::intents::{INTENTS, Share};
use super::tables::OFFERS;
use crate::crypto::jwt::JwtError;
use crate::crypto::relay_jose;
use crate::domain::audit::Event;
use crate::domain::intents::IntentStatus;
use crate::domain::offers::{NewOffer, Offer, OfferStatus};
use crate::domain::records::RecordPath;
use crate::domain::relayed::{RelayedOffer, TargetStatus, backoff};
use crate::domain::terms::{AccessRequest, Action, INTENTCASTING_PURPOSE, evaluate};
use crate::error::AppError;
use crate::relay_link::{LONG_POLL_SECONDS, LinkError, RelayClient, RelayUrl};

/// The least time between two reads of one intent's offers at one relay.
pub const MIN_POLL_GAP: std::time::Duration = std::time::Duration::from_secs(2);

/// Why an offer from a relay is not shown.
#[derive(Debug)]
enum Unverified {
    /// Try again at the next read (the relay could not say who the brand is just now).
    Later,
    /// Never: the reason, in words.
    Refused(String),
}

/// An intent as one relay knows it.
struct AtRelay<'a> {
    /// The vault's id.
    id: &'a str,
    /// The relay's id.
    remote_id: &'a str,
    /// The hash of the terms it was published with.
    terms_hash: &'a str,
}

/// Removes the poller's entry when it stops, however it stops.
struct PollerGuard {
    vault: Weak<OpenVault>,
    key: (String, String),
}

impl Drop for PollerGuard {
    fn drop(&mut self) {
        if let Some(vault) = self.vault.upgrade()
            && let Ok(mut pollers) = vault.relayed.pollers.lock()
        {
            pollers.remove(&self.key);
        }
    }
}

impl OpenVault {
    /// Starts reading an intent's offers at one relay, unless that runs already.
    pub(super) fn start_polling(self: &Arc<Self>, intent_id: &str, url: &str) {
        let Some(client) = self.relayed.client.clone() else {
            return;
        };
        let key = (intent_id.to_owned(), url.to_owned());
        match self.relayed.pollers.lock() {
            Ok(mut pollers) => {
                if !pollers.insert(key.clone()) {
                    return;
                }
            }
            Err(_) => return,
        }
        let guard = PollerGuard {
            vault: Arc::downgrade(self),
            key,
        };
        let weak = Arc::downgrade(self);
        let intent_id = intent_id.to_owned();
        let Ok(relay) = RelayUrl::parse(url) else {
            return;
        };
        tokio::spawn(async move {
            let _guard = guard;
            let mut failures = 0u32;
            loop {
                let started = tokio::time::Instant::now();
                // The vault is held only between reads, never across one.
                let Some((remote_id, after, token)) = ({
                    let Some(vault) = weak.upgrade() else { return };
                    vault.poll_ticket(&intent_id, &relay)
                }) else {
                    return;
                };
                let page = client
                    .offers(&relay, &remote_id, &token, after, LONG_POLL_SECONDS)
                    .await;
                let Some(vault) = weak.upgrade() else { return };
                let pause = match page {
                    Ok(page) => {
                        failures = 0;
                        vault
                            .take_in_offers(
                                &client,
                                &intent_id,
                                &relay,
                                page.offers,
                                page.next_after,
                            )
                            .await;
                        std::time::Duration::ZERO
                    }
                    // The relay no longer knows the intent: it expired there.
                    Err(e) if e.is_not_found() => return,
                    Err(e) => {
                        failures += 1;
                        if failures == 1 {
                            tracing::info!(error = %e, "reading offers at a relay; retrying");
                        }
                        std::time::Duration::try_from(backoff(failures, e.retry_after()))
                            .unwrap_or(MIN_POLL_GAP)
                    }
                };
                drop(vault);
                let gap = MIN_POLL_GAP.saturating_sub(started.elapsed());
                tokio::time::sleep(pause.max(gap)).await;
            }
        });
    }

    /// What the next read needs (the relay's id of the intent, where to go on from, a
    /// token), while the intent is open and published there.
    fn poll_ticket(&self, intent_id: &str, relay: &RelayUrl) -> Option<(String, u64, String)> {
        let record = self.intent(intent_id).ok()?;
        if !record.intent.is_open(self.now()) {
            return None;
        }
        let relayed = record.relay.as_ref()?;
        if relayed.ended {
            return None;
        }
        let target = relayed
            .targets
            .iter()
            .find(|t| t.url == relay.as_str() && t.status == TargetStatus::Published)?;
        let remote_id = target.remote_id.clone()?;
        let token = self
            .relay_token(&record, &remote_id, &relay.offers_url(&remote_id))
            .ok()?;
        Some((remote_id, target.offers_after, token))
    }

    /// A brand's published record at a relay, from memory unless `fresh`.
    async fn relay_brand(
        &self,
        client: &RelayClient,
        relay: &RelayUrl,
        client_id: &str,
        fresh: bool,
    ) -> Result<Value, Unverified> {
        let key = (relay.to_string(), client_id.to_owned());
        if !fresh
            && let Ok(brands) = self.relayed.brands.lock()
            && let Some(brand) = brands.get(&key)
        {
            return Ok(brand.clone());
        }
        match client.brand(relay, client_id).await {
            Ok(brand) => {
                if let Ok(mut brands) = self.relayed.brands.lock() {
                    brands.insert(key, brand.clone());
                }
                Ok(brand)
            }
            Err(LinkError::Refused { status: 404, .. }) => Err(Unverified::Refused(
                "the relay does not publish this brand (unknown or suspended)".into(),
            )),
            Err(e) if e.is_retryable() => Err(Unverified::Later),
            Err(e) => Err(Unverified::Refused(format!(
                "the brand's keys could not be read: {e}"
            ))),
        }
    }

    /// Checks one offer record from a relay; returns the offer to keep.
    async fn verify_relayed(
        &self,
        client: &RelayClient,
        relay: &RelayUrl,
        intent: &AtRelay<'_>,
        item: &Value,
        now: OffsetDateTime,
    ) -> Result<Offer, Unverified> {
        let refuse = |why: &str| Unverified::Refused(why.to_owned());
        let remote_id = item["id"].as_str().ok_or_else(|| refuse("it has no id"))?;
        let client_id = item["brand"]["client_id"]
            .as_str()
            .ok_or_else(|| refuse("it names no brand"))?;
        let acceptance = item["acceptance"]
            .as_str()
            .ok_or_else(|| refuse("it carries no acceptance of your terms"))?;
        let body = item
            .get("offer")
            .filter(|o| o.is_object())
            .ok_or_else(|| refuse("it holds no offer"))?;
        let mut brand = self.relay_brand(client, relay, client_id, false).await?;
        let claims = match relay_jose::verify_acceptance(acceptance, &brand["jwks"]) {
            Err(JwtError::UnknownKey) => {
                // The brand may have rotated its key since it was read: once more, fresh.
                brand = self.relay_brand(client, relay, client_id, true).await?;
                relay_jose::verify_acceptance(acceptance, &brand["jwks"])
            }
            other => other,
        }
        .map_err(|e| {
            Unverified::Refused(format!(
                "its acceptance of your terms is not signed by the brand's published key ({e})"
            ))
        })?;
        let (intent_id, remote_intent_id, terms_hash) =
            (intent.id, intent.remote_id, intent.terms_hash);
        if claims["intent_id"].as_str() != Some(remote_intent_id) {
            return Err(refuse("its acceptance names another intent"));
        }
        if claims["terms_hash"].as_str() != Some(terms_hash) {
            return Err(refuse("its acceptance is for other terms than yours"));
        }
        let digest = relay_jose::offer_digest(body).map_err(|_| refuse("it cannot be read"))?;
        if claims["offer_sha256"].as_str() != Some(digest.as_str()) {
            return Err(refuse("its acceptance was signed for a different offer"));
        }
        let new: NewOffer = serde_json::from_value(body.clone())
            .map_err(|e| Unverified::Refused(format!("the offer is malformed ({e})")))?;
        let terms = new
            .validate(now)
            .map_err(|e| Unverified::Refused(format!("the offer is not valid: {}", e.message)))?;
        let enc_jwk = relay_jose::encryption_key(&brand["jwks"])
            .ok_or_else(|| refuse("the brand publishes no encryption key"))?;
        let name = brand["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| refuse("the relay publishes no name for the brand"))?;
        let random = crate::crypto::random_array::<10>().map_err(|_| Unverified::Later)?;
        Ok(Offer {
            id: format!(
                "o_{}",
                data_encoding::BASE32_NOPAD.encode(&random).to_lowercase()
            ),
            intent_id: intent_id.to_owned(),
            client_id: client_id.to_owned(),
            brand_name: name.to_owned(),
            terms,
            status: OfferStatus::Pending,
            created_at: now,
            decided_at: None,
            grant_id: None,
            relayed: Some(RelayedOffer {
                via: relay.to_string(),
                remote_id: remote_id.to_owned(),
                remote_intent_id: remote_intent_id.to_owned(),
                acceptance: acceptance.to_owned(),
                enc_jwk,
            }),
        })
    }

    /// Takes in the offers of one read: verified ones are kept and announced, the others
    /// recorded as refused; each is handled once.
    async fn take_in_offers(
        &self,
        client: &RelayClient,
        intent_id: &str,
        relay: &RelayUrl,
        items: Vec<Value>,
        next_after: Option<u64>,
    ) {
        let Ok(record) = self.intent(intent_id) else {
            return;
        };
        let Some(target) = record
            .relay
            .as_ref()
            .and_then(|r| r.targets.iter().find(|t| t.url == relay.as_str()))
        else {
            return;
        };
        let (Some(remote_intent_id), Some(terms_hash)) = (
            target.remote_id.clone(),
            record
                .relay
                .as_ref()
                .and_then(|r| r.body["terms_hash"].as_str().map(str::to_owned)),
        ) else {
            return;
        };
        let highest = items.iter().filter_map(|o| o["n"].as_u64()).max();
        let after = next_after.or(highest).unwrap_or(target.offers_after);
        let mut seen = target.seen_offers.clone();
        for item in items {
            let Some(remote_id) = item["id"].as_str().map(str::to_owned) else {
                continue;
            };
            if seen.contains(&remote_id) {
                continue;
            }
            let now = self.now();
            let at_relay = AtRelay {
                id: intent_id,
                remote_id: &remote_intent_id,
                terms_hash: &terms_hash,
            };
            let verdict = self
                .verify_relayed(client, relay, &at_relay, &item, now)
                .await;
            let result = match verdict {
                Ok(offer) => self.keep_relayed_offer(relay, offer, &remote_id).await,
                Err(Unverified::Later) => continue,
                Err(Unverified::Refused(why)) => {
                    let brand = item["brand"]["name"].as_str().unwrap_or_default();
                    let event = Event::system("relay.offer_refused").with_detail(json!({
                        "intent": intent_id, "relay": relay.as_str(), "offer": remote_id,
                        "brand": brand, "reason": why,
                    }));
                    let remote = remote_id.clone();
                    self.update_target(
                        intent_id,
                        relay.as_str(),
                        move |t, _| t.seen_offers.push(remote),
                        Some(event),
                    )
                    .await
                    .map(|_| ())
                }
            };
            match result {
                Ok(()) => seen.push(remote_id),
                Err(e) => tracing::warn!(error = %e, "recording an offer from a relay"),
            }
        }
        if after > target.offers_after
            && let Err(e) = self
                .update_target(
                    intent_id,
                    relay.as_str(),
                    move |t, _| t.offers_after = t.offers_after.max(after),
                    None,
                )
                .await
        {
            tracing::warn!(error = %e, "recording where offers were read to");
        }
    }

    /// Stores a verified offer from a relay with its audit entry, and announces it.
    async fn keep_relayed_offer(
        &self,
        relay: &RelayUrl,
        offer: Offer,
        remote_id: &str,
    ) -> Result<(), AppError> {
        let intent_key = self.intent_key(&offer.intent_id);
        let offer_key = self.index_key("offer", &offer.id);
        let stored = offer.clone();
        let url = relay.to_string();
        let remote = remote_id.to_owned();
        let kept = self
            .change(move |tx| {
                let event = Event::system("relay.offer_received").with_detail(json!({
                    "intent": stored.intent_id, "relay": url, "offer": stored.id,
                    "brand": stored.brand_name, "brand_client_id": stored.client_id,
                }));
                let Some(mut record) = tx.read(&INTENTS, &intent_key)? else {
                    return Err(AppError::NotFound("intent"));
                };
                let Some(relayed) = record.relay.as_mut() else {
                    return Err(AppError::NotFound("intent"));
                };
                let Some(target) = relayed.targets.iter_mut().find(|t| t.url == url) else {
                    return Err(AppError::NotFound("intent"));
                };
                if target.seen_offers.contains(&remote) {
                    return Ok((false, event));
                }
                target.seen_offers.push(remote);
                // The relay holds the limit too; the vault keeps its own word.
                let room = record.offers.len() < record.intent.intent.max_offers as usize;
                if room {
                    record.offers.push(stored.id.clone());
                    tx.write(&OFFERS, &offer_key, &stored)?;
                }
                tx.write(&INTENTS, &intent_key, &record)?;
                let event = if room {
                    event
                } else {
                    Event::system("relay.offer_refused").with_detail(json!({
                        "intent": stored.intent_id, "relay": url, "offer": stored.id,
                        "brand": stored.brand_name, "reason": "the intent has all the offers it asked for",
                    }))
                };
                Ok((room, event))
            })
            .await?;
        if kept {
            self.announce_offer(&offer);
        }
        Ok(())
    }

    /// Tells the owner's live view of a new offer (one that came through a relay).
    pub(super) fn announce_offer(&self, offer: &Offer) {
        let _ = self.intents.offer_signal.send(offer.clone());
    }

    /// The person's decision on a relayed offer, for every caller that decides an offer
    /// ([`OpenVault::decide_offer`]: the app, a confirmed proposal of the assistant, its decline
    /// tool): accepting discloses the fields the share names (all those the offer asked for
    /// when it names none) through the relay; declining tells the brand there.
    pub(super) async fn decide_relayed_offer(
        &self,
        offer: Offer,
        accept: bool,
        share: Option<Share>,
    ) -> Result<Offer, AppError> {
        if !accept {
            return self.decline_relayed(&offer).await;
        }
        let disclose = share.map_or_else(Vec::new, |s| {
            s.fields
                .unwrap_or_else(|| offer.terms.data_requested.clone())
        });
        Ok(self.accept_relayed(&offer.id, &disclose).await?.0)
    }

    /// Declines a relayed offer: the brand is told through its relay.
    pub(super) async fn decline_relayed(&self, offer: &Offer) -> Result<Offer, AppError> {
        let relayed = offer.relayed.as_ref().ok_or(AppError::NotFound("offer"))?;
        let message = json!({"type": "declined", "offer_id": relayed.remote_id});
        self.decide_relayed(offer, false, message, json!({})).await
    }

    /// Accepts a relayed offer, disclosing `disclose` (record paths, each allowed by the
    /// person's terms): the brand gets a receipt and, with fields, a JWE only it can open.
    /// Returns the offer and what was sent, in words.
    pub async fn accept_relayed(
        &self,
        id: &str,
        disclose: &[String],
    ) -> Result<(Offer, Value), AppError> {
        let offer = self.offer(id)?;
        let relayed = offer.relayed.clone().ok_or_else(|| {
            AppError::invalid_at(
                "invalid_request",
                "disclose",
                "disclose is for offers that came through a relay; share with this brand \
                     with share and fields",
            )
        })?;
        if offer.status != OfferStatus::Pending {
            return Err(AppError::Conflict("this offer was already decided"));
        }
        let now = self.now();
        let record = self.intent(&offer.intent_id)?;
        if !record.intent.is_open(now) {
            return Err(AppError::IntentClosed(format!(
                "this intent is {}: its offers can only be declined",
                record.intent.status(now).as_str()
            )));
        }
        if offer.terms.valid_until <= now {
            return Err(AppError::Conflict("this offer is no longer valid"));
        }
        let mut fields = serde_json::Map::new();
        let mut categories = Vec::new();
        let terms = self.current_terms()?;
        for path in disclose {
            let parsed = RecordPath::parse(path).map_err(|_| {
                AppError::invalid_at(
                    "invalid_request",
                    "disclose",
                    format!("{path:?} is not the name of one of your fields"),
                )
            })?;
            let value = match self.get_record(&parsed) {
                Ok(value) => value,
                Err(AppError::NotFound(_)) => {
                    return Err(AppError::invalid_at(
                        "invalid_request",
                        "disclose",
                        format!(
                            "you have nothing saved as {}",
                            crate::domain::activity::field_words(path)
                        ),
                    ));
                }
                Err(e) => return Err(e),
            };
            let verdict = evaluate(
                &terms.terms,
                &AccessRequest {
                    action: Action::Read,
                    categories: vec![value.category.clone()],
                    purpose: INTENTCASTING_PURPOSE.to_owned(),
                    at: now,
                    count_so_far: 0,
                    agreed_at: now,
                },
            );
            if !verdict.permitted {
                return Err(AppError::invalid_at(
                    "grant_not_permitted",
                    "disclose",
                    format!(
                        "your terms do not allow sharing {} with a brand that answered an intent",
                        crate::domain::activity::field_words(path)
                    ),
                ));
            }
            categories.push(value.category.clone());
            fields.insert(parsed.as_str().to_owned(), value.value);
        }
        let receipt_claims = json!({
            "acceptance": relayed.acceptance,
            "accepted_at": now.unix_timestamp(),
            "intent_id": relayed.remote_intent_id,
            "offer_id": relayed.remote_id,
        });
        let key = record
            .relay_key
            .as_ref()
            .ok_or(AppError::NotFound("intent key"))?
            .open()
            .map_err(|e| AppError::internal("opening the intent's key", e))?;
        let receipt = key
            .sign_jwt("JWT", &receipt_claims)
            .map_err(|e| AppError::internal("signing a receipt", e))?;
        let mut message = json!({
            "type": "accepted",
            "offer_id": relayed.remote_id,
            "receipt": receipt,
        });
        let disclosed: Vec<String> = fields.keys().cloned().collect();
        if !fields.is_empty() {
            let plaintext = serde_json::to_vec(&json!({"fields": fields}))
                .map_err(|e| AppError::internal("encoding disclosed fields", e))?;
            let jwe = relay_jose::encrypt_to(&relayed.enc_jwk, &plaintext)
                .map_err(|e| AppError::internal("encrypting disclosed fields", e))?;
            message["jwe"] = json!(jwe);
        }
        let sent = json!({
            "via": relayed.via,
            "receipt": true,
            "disclosed": disclosed,
            "summary": if disclosed.is_empty() {
                format!("{} was told you accept, with a receipt of its acceptance of your terms; none of your data was sent.", offer.brand_name)
            } else {
                format!(
                    "{} was told you accept, with a receipt of its acceptance of your terms, and was sent {} encrypted so that only it can read it (the relay cannot).",
                    offer.brand_name,
                    disclosed.iter().map(|p| crate::domain::activity::field_words(p)).collect::<Vec<_>>().join(", ")
                )
            },
        });
        let detail = json!({"fields": disclosed, "via": relayed.via, "categories": categories});
        let decided = self.decide_relayed(&offer, true, message, detail).await?;
        Ok((decided, sent))
    }

    /// Records the person's decision on a relayed offer and queues its message, in one write.
    async fn decide_relayed(
        &self,
        offer: &Offer,
        accept: bool,
        message: Value,
        detail: Value,
    ) -> Result<Offer, AppError> {
        let relayed = offer.relayed.clone().ok_or(AppError::NotFound("offer"))?;
        let now = self.now();
        let offer_key = self.index_key("offer", &offer.id);
        let intent_key = self.intent_key(&offer.intent_id);
        let intent_id = offer.intent_id.clone();
        let decided = self
            .change(move |tx| {
                let mut offer = tx
                    .read(&OFFERS, &offer_key)?
                    .ok_or(AppError::NotFound("offer"))?;
                if offer.status != OfferStatus::Pending {
                    return Err(AppError::Conflict("this offer was already decided"));
                }
                let mut record = tx
                    .read(&INTENTS, &intent_key)?
                    .ok_or(AppError::NotFound("intent"))?;
                if accept && !record.intent.is_open(now) {
                    return Err(AppError::IntentClosed(
                        "this intent is no longer open: its offers can only be declined".into(),
                    ));
                }
                offer.status = if accept {
                    OfferStatus::Accepted
                } else {
                    OfferStatus::Declined
                };
                offer.decided_at = Some(now);
                tx.write(&OFFERS, &offer_key, &offer)?;
                if accept && record.intent.status(now) == IntentStatus::Open {
                    record.intent.fulfilled_at = Some(now);
                }
                if let Some(r) = record.relay.as_mut() {
                    r.queue_to(&relayed.via, &message, now);
                }
                tx.write(&INTENTS, &intent_key, &record)?;
                let action = if accept {
                    "offer.accepted"
                } else {
                    "offer.declined"
                };
                let mut detail = detail;
                detail["offer"] = json!(offer.id);
                detail["intent"] = json!(offer.intent_id);
                detail["brand"] = json!(offer.brand_name);
                detail["relayed"] = json!(true);
                let event = Event::owner(action, Some(offer.client_id.clone())).with_detail(detail);
                Ok((offer, event))
            })
            .await?;
        self.relay_due(&intent_id, now);
        Ok(decided)
    }
}
