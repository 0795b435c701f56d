//! Offers back (DESIGN §11, step 3 and the relay's half of step 4): a brand answers a relayed
//! intent with the vault's offer body plus `acceptance`, its compact JWS (ES256, its signing
//! key) over `{intent_id, terms_hash, offer_sha256, iat}`; the relay checks the brand, the
//! signature, that the JWS names this intent, the intent's terms and this very offer, and the
//! intent's `max_offers`, then keeps the offer in `RELAY_OFFERS` for the intent's vault.
//!
//! The vault, which has no account, reads its intent's offers by proving it holds the intent's
//! key: `Authorization: Bearer <JWT>` signed by that key (ES256), `sub` the intent id, `aud`
//! the offers URL, `exp` at most five minutes ahead (`super::record`). It reads the offers
//! numbered above `after` and may ask to `wait` (at most 25 s) for one to arrive: a long poll
//! that listens on the offers' subject, so an offer taken by any instance wakes it.
//!
//! Offers of one intent are numbered; each is appended with JetStream's expected last sequence
//! for the intent's subject, so two instances racing for the last free place cannot both take
//! it (the loser re-reads and finds the intent full).

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use super::Relay;
use super::brands::Authenticated;
use super::error::RelayError;
use super::nats::OFFERS;
use super::record::IntentStatus;
use crate::crypto::{self, jwt, relay_jose, relay_jwks};
use crate::domain::offers::NewOffer;

/// The longest a vault's read of offers is held waiting for one.
pub const MAX_OFFERS_WAIT: Duration = Duration::from_secs(25);
/// Times an offer is re-tried when another instance appended first.
const APPEND_TRIES: usize = 5;

#[derive(Debug, Deserialize)]
struct AcceptanceClaims {
    intent_id: Option<String>,
    terms_hash: Option<String>,
    offer_sha256: Option<String>,
    iat: Option<i64>,
}

/// What the vault reads: `offers` (each as [`RELAY_OFFERS`](super::nats) holds it: `n`, `id`,
/// `intent_id`, `brand {client_id, name}`, `offer`, `acceptance`, `received_at`) and the number
/// to pass back as `after`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OfferPage {
    pub offers: Vec<Value>,
    pub next_after: u64,
}

fn offer_error(code: &'static str, message: impl Into<String>, at: &'static str) -> RelayError {
    RelayError::invalid(code, message, at)
}

/// The base64url SHA-256 of the RFC 8785 form of the offer body without `acceptance`: the same
/// digest a vault recomputes ([`relay_jose::offer_digest`]).
pub fn offer_digest(offer: &Value) -> Result<String, RelayError> {
    relay_jose::offer_digest(offer).map_err(|e| RelayError::internal("canonicalising an offer", e))
}

impl Relay {
    /// The intent as published (its event `data.intent`), while it is open and for a brand it
    /// was sent to: 404 when the relay does not hold it or did not send it to `client_id` (the
    /// same answer, so a brand learns nothing of intents it was not sent), 503 while its
    /// deliveries are still being queued, 409 `intent_closed` once it expired or its vault
    /// closed it.
    async fn open_intent(&self, intent_id: &str, client_id: &str) -> Result<Value, RelayError> {
        let (record, _) = self
            .intent_record(intent_id)
            .await?
            .ok_or(RelayError::NotFound("intent"))?;
        let Some(recipients) = &record.delivered_to else {
            return Err(RelayError::Unavailable {
                context: "the intent's deliveries are still being queued",
                source: None,
            });
        };
        if !recipients.iter().any(|r| r == client_id) {
            return Err(RelayError::NotFound("intent"));
        }
        if record.status != IntentStatus::Open {
            return Err(RelayError::Conflict {
                code: "intent_closed",
                message: "this intent was withdrawn or has expired and takes no more offers".into(),
            });
        }
        if record
            .expires_at()
            .is_none_or(|at| at <= self.clock().now())
        {
            return Err(RelayError::Conflict {
                code: "intent_closed",
                message: "this intent has expired and takes no more offers".into(),
            });
        }
        Ok(record.intent)
    }

    /// Checks and keeps a brand's offer; returns its id.
    pub async fn post_offer(
        &self,
        auth: &Authenticated,
        intent_id: &str,
        body: Value,
    ) -> Result<String, RelayError> {
        let limits = self.settings().limits;
        self.spend(
            "offers",
            &auth.brand.client_id,
            limits.offers(),
            "offers from this brand",
        )
        .await?;
        let intent = self.open_intent(intent_id, &auth.brand.client_id).await?;
        let Value::Object(mut offer) = body else {
            return Err(offer_error(
                "invalid_offer",
                "the body must be a JSON object",
                "body",
            ));
        };
        let acceptance = offer
            .remove("acceptance")
            .and_then(|a| a.as_str().map(str::to_owned))
            .ok_or_else(|| {
                offer_error(
                    "invalid_offer",
                    "acceptance (the brand's JWS accepting the person's terms) is required",
                    "acceptance",
                )
            })?;
        let offer = Value::Object(offer);
        let now = self.clock().now();
        let new: NewOffer = serde_json::from_value(offer.clone()).map_err(|e| {
            offer_error(
                "invalid_offer",
                format!("the offer does not have the expected shape: {e}"),
                "body",
            )
        })?;
        new.validate(now)
            .map_err(|e| offer_error("invalid_offer", e.message, e.field))?;

        let refuse = |why: &str| {
            offer_error(
                "invalid_acceptance",
                format!("acceptance: {why}"),
                "acceptance",
            )
        };
        let keys = relay_jwks::signing_keys(&auth.brand.jwks);
        let claims: AcceptanceClaims = jwt::verify_with_jwks(&acceptance, &keys)
            .map_err(|e| refuse(&format!("not signed by this brand's signing key ({e})")))?;
        if claims.intent_id.as_deref() != Some(intent_id) {
            return Err(refuse("intent_id must be this intent's id"));
        }
        if claims.terms_hash.as_ref().map(|h| json!(h)) != Some(intent["terms_hash"].clone()) {
            return Err(refuse("terms_hash must be the hash of the intent's terms"));
        }
        if claims.offer_sha256.as_deref() != Some(offer_digest(&offer)?.as_str()) {
            return Err(refuse(
                "offer_sha256 must be the base64url SHA-256 of the RFC 8785 form of this offer \
                 without acceptance",
            ));
        }
        if claims.iat.is_none_or(|iat| iat > now.unix_timestamp() + 60) {
            return Err(refuse("iat is required and must not be in the future"));
        }
        let max_offers = intent["max_offers"].as_u64().unwrap_or(0);
        let random = crypto::random_array::<16>()
            .map_err(|e| RelayError::internal("making an offer id", e))?;
        let id = format!("ro_{}", data_encoding::HEXLOWER.encode(&random));
        let subject = format!("relay.offers.{intent_id}");
        for _ in 0..APPEND_TRIES {
            let (offers, last_sequence) = self.read_offers_at(intent_id, 0).await?;
            let count = offers.last().and_then(|o| o["n"].as_u64()).unwrap_or(0);
            let by_brand = offers
                .iter()
                .filter(|o| o["brand"]["client_id"] == auth.brand.client_id.as_str())
                .count();
            if by_brand >= usize::from(limits.offers_per_brand_per_intent) {
                return Err(RelayError::Conflict {
                    code: "offer_limit",
                    message: format!(
                        "this brand already made the {} offer(s) one brand may make on an intent",
                        limits.offers_per_brand_per_intent
                    ),
                });
            }
            if count >= max_offers {
                return Err(RelayError::Conflict {
                    code: "offer_limit",
                    message: "this intent has all the offers the person asked for".into(),
                });
            }
            let record = json!({
                "n": count + 1,
                "id": id,
                "intent_id": intent_id,
                "brand": {"client_id": auth.brand.client_id, "name": auth.brand.name},
                "offer": offer,
                "acceptance": acceptance,
                "received_at": now.format(&Rfc3339).unwrap_or_default(),
            });
            let mut headers = HeaderMap::new();
            headers.insert(
                "Nats-Expected-Last-Subject-Sequence",
                last_sequence.to_string().as_str(),
            );
            let bytes =
                serde_json::to_vec(&record).map_err(|e| RelayError::internal("encoding", e))?;
            let ack = self
                .js()
                .publish_with_headers(subject.clone(), headers, bytes.into())
                .await
                .map_err(|e| RelayError::unavailable("storing an offer", e))?
                .await;
            match ack {
                Ok(_) => {
                    self.counters().offer_accepted();
                    return Ok(id);
                }
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => continue,
                Err(e) => return Err(RelayError::unavailable("storing an offer", e)),
            }
        }
        Err(RelayError::Unavailable {
            context: "too many offers at once for this intent",
            source: None,
        })
    }

    /// The offers of an intent numbered above `after`, for the vault that proves it holds the
    /// intent's key. With `wait`, an empty answer is held until an offer arrives (on any
    /// instance: the wait listens on the offers' subject) or the wait ends.
    pub async fn offers_for_vault(
        &self,
        intent_id: &str,
        bearer: &str,
        after: u64,
        wait: Duration,
    ) -> Result<OfferPage, RelayError> {
        let (record, _) = self
            .intent_record(intent_id)
            .await?
            .ok_or(RelayError::NotFound("intent"))?;
        self.verify_vault_token(&record, intent_id, bearer, "offers")?;
        let wait = wait.min(MAX_OFFERS_WAIT);
        // Listening starts before the first read, so an offer stored in between is not missed.
        let mut arrivals = if wait.is_zero() {
            None
        } else {
            Some(
                self.inner
                    .client
                    .subscribe(format!("relay.offers.{intent_id}"))
                    .await
                    .map_err(|e| RelayError::unavailable("waiting for offers", e))?,
            )
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let offers = self.read_offers(intent_id, after).await?;
            let next_after = offers
                .iter()
                .filter_map(|o| o["n"].as_u64())
                .fold(after, u64::max);
            let Some(subscriber) = arrivals.as_mut() else {
                return Ok(OfferPage { offers, next_after });
            };
            if !offers.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(OfferPage { offers, next_after });
            }
            match tokio::time::timeout_at(deadline, subscriber.next()).await {
                // An offer arrived (or the listener ended): read again.
                Ok(Some(_)) => {}
                Ok(None) => arrivals = None,
                Err(_) => {}
            }
        }
    }

    /// The offers of an intent numbered above `after`, oldest first, as `RELAY_OFFERS` holds
    /// them.
    pub(super) async fn read_offers(
        &self,
        intent_id: &str,
        after: u64,
    ) -> Result<Vec<Value>, RelayError> {
        Ok(self.read_offers_at(intent_id, after).await?.0)
    }

    /// [`Relay::read_offers`], with the stream sequence of the intent's last offer (0: none),
    /// for appending the next one over it.
    async fn read_offers_at(
        &self,
        intent_id: &str,
        after: u64,
    ) -> Result<(Vec<Value>, u64), RelayError> {
        let stream = self
            .js()
            .get_stream_no_info(OFFERS)
            .await
            .map_err(|e| RelayError::unavailable("binding the offers stream", e))?;
        let mut offers = Vec::new();
        let subject = format!("relay.offers.{intent_id}");
        let mut sequence = 0u64;
        // Offers are few (at most max_offers): read them one after another by subject.
        loop {
            let next = stream
                .raw_message_builder()
                .sequence(sequence + 1)
                .next_by_subject(subject.clone())
                .send()
                .await;
            match next {
                Ok(message) => {
                    sequence = message.sequence;
                    let record: Value = serde_json::from_slice(&message.payload)
                        .map_err(|e| RelayError::internal("decoding an offer", e))?;
                    if record["n"].as_u64().is_some_and(|n| n > after) {
                        offers.push(record);
                    }
                }
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => break,
                Err(e) => return Err(RelayError::unavailable("reading offers", e)),
            }
        }
        Ok((offers, sequence))
    }
}
