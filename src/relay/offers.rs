//! Offers back (DESIGN §11, step 3 and the relay's half of step 4): a brand answers a relayed
//! intent with the vault's offer body plus `acceptance`, its compact JWS (ES256, its signing
//! key) over `{intent_id, terms_hash, offer_sha256, iat}`; the relay checks the brand, the
//! signature, that the JWS names this intent, the intent's terms and this very offer, and the
//! intent's `max_offers`, then keeps the offer in `RELAY_OFFERS` for the intent's vault.
//!
//! The vault, which has no account, reads its intent's offers by proving it holds the intent's
//! key: `Authorization: Bearer <JWT>` signed by that key (ES256, no `kid` or the jwk's),
//! `sub` the intent id, `aud` the offers URL, `exp` at most five minutes ahead.
//!
//! Offers of one intent are numbered; each is appended with JetStream's expected last sequence
//! for the intent's subject, so two instances racing for the last free place cannot both take
//! it (the loser re-reads and finds the intent full).

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Relay;
use super::brands::Authenticated;
use super::error::RelayError;
use super::nats::{INTENTS, OFFERS};
use crate::crypto::{self, jwt, relay_jwks};
use crate::domain::offers::NewOffer;

/// How far ahead a vault's read token may expire.
const MAX_READ_TOKEN_SECONDS: i64 = 300;
/// Times an offer is re-tried when another instance appended first.
const APPEND_TRIES: usize = 5;

#[derive(Debug, Deserialize)]
struct AcceptanceClaims {
    intent_id: Option<String>,
    terms_hash: Option<String>,
    offer_sha256: Option<String>,
    iat: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct ReadClaims {
    sub: Option<String>,
    aud: Option<String>,
    exp: Option<i64>,
}

fn offer_error(code: &'static str, message: impl Into<String>, at: &'static str) -> RelayError {
    RelayError::invalid(code, message, at)
}

/// The base64url SHA-256 of the RFC 8785 form of the offer body without `acceptance`.
pub fn offer_digest(offer: &Value) -> Result<String, RelayError> {
    let canonical = serde_json_canonicalizer::to_vec(offer)
        .map_err(|e| RelayError::internal("canonicalising an offer", e))?;
    Ok(B64.encode(crypto::sha256(&canonical)))
}

impl Relay {
    /// The intent as published (its event `data.intent`), while it is open.
    async fn open_intent(&self, intent_id: &str) -> Result<Value, RelayError> {
        if !intent_id.starts_with("ri_")
            || intent_id.len() > 64
            || !intent_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(RelayError::NotFound("intent"));
        }
        let stream = self
            .js()
            .get_stream_no_info(INTENTS)
            .await
            .map_err(|e| RelayError::unavailable("binding the intents stream", e))?;
        let message = match stream
            .get_last_raw_message_by_subject(&format!("relay.intents.{intent_id}"))
            .await
        {
            Ok(message) => message,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                return Err(RelayError::NotFound("intent"));
            }
            Err(e) => return Err(RelayError::unavailable("reading an intent", e)),
        };
        let intent: Value = serde_json::from_slice(&message.payload)
            .map_err(|e| RelayError::internal("decoding an intent", e))?;
        let expires_at = intent["expires_at"]
            .as_str()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
        if expires_at.is_none_or(|at| at <= self.clock().now()) {
            return Err(RelayError::Conflict {
                code: "intent_closed",
                message: "this intent has expired and takes no more offers".into(),
            });
        }
        Ok(intent)
    }

    /// Checks and keeps a brand's offer; returns its id.
    pub async fn post_offer(
        &self,
        auth: &Authenticated,
        intent_id: &str,
        body: Value,
    ) -> Result<String, RelayError> {
        let intent = self.open_intent(intent_id).await?;
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
        let stream = self
            .js()
            .get_stream_no_info(OFFERS)
            .await
            .map_err(|e| RelayError::unavailable("binding the offers stream", e))?;
        for _ in 0..APPEND_TRIES {
            let (count, last_sequence) =
                match stream.get_last_raw_message_by_subject(&subject).await {
                    Ok(message) => {
                        let last: Value = serde_json::from_slice(&message.payload)
                            .map_err(|e| RelayError::internal("decoding an offer", e))?;
                        (last["n"].as_u64().unwrap_or(0), message.sequence)
                    }
                    Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => (0, 0),
                    Err(e) => return Err(RelayError::unavailable("reading offers", e)),
                };
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

    /// The offers of an intent, for the vault that proves it holds the intent's key.
    pub async fn offers_for_vault(
        &self,
        intent_id: &str,
        bearer: &str,
    ) -> Result<Vec<Value>, RelayError> {
        let intent = match self.open_intent(intent_id).await {
            Ok(intent) => intent,
            Err(RelayError::Conflict { .. }) => return Err(RelayError::NotFound("intent")),
            Err(e) => return Err(e),
        };
        let keys = json!({"keys": [intent["jwk"].clone()]});
        let claims: ReadClaims = jwt::verify_with_jwks(bearer, &keys).map_err(|e| {
            RelayError::InvalidToken(format!("not signed by the intent's key: {e}"))
        })?;
        let audience = format!(
            "{}/relay/v1/intents/{intent_id}/offers",
            self.settings().public_url
        );
        let now = self.clock().now().unix_timestamp();
        if claims.sub.as_deref() != Some(intent_id)
            || claims.aud.as_deref() != Some(audience.as_str())
            || claims
                .exp
                .is_none_or(|exp| exp <= now || exp > now + MAX_READ_TOKEN_SECONDS)
        {
            return Err(RelayError::InvalidToken(format!(
                "sub must be the intent id, aud {audience}, exp within five minutes"
            )));
        }
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
                    offers.push(record);
                }
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => break,
                Err(e) => return Err(RelayError::unavailable("reading offers", e)),
            }
        }
        Ok(offers)
    }
}
