//! The vault's messages to brands (DESIGN §11, steps 5 and 6): `POST
//! /relay/v1/intents/{id}/messages` with a token signed by the intent's key (`super::record`)
//! that also carries a `jti`, used once: the relay remembers it in the `relay_intent_jtis`
//! bucket for longer than such a token lives, so a replay is refused on every instance
//! (409 `replayed`).
//!
//! | `type` | goes to | CloudEvent | then |
//! | --- | --- | --- | --- |
//! | `accepted` | the offering brand | `vrm.offer.accepted.v1` | the offer is decided |
//! | `declined` | the offering brand | `vrm.offer.declined.v1` | the offer is decided |
//! | `withdrawn` | every brand the intent reached | `vrm.intent.withdrawn.v1` | no more offers |
//! | `expired` | every brand the intent reached | `vrm.intent.expired.v1` | no more offers |
//! | `erasure` | those and every brand that offered | `vrm.erasure.requested.v1` | the relay forgets the intent |
//!
//! An acceptance carries the agreement receipt, a compact JWS by the intent's key whose
//! payload holds the brand's own `acceptance` JWS and `accepted_at`, and optionally the
//! disclosed fields as a compact JWE to the brand's encryption key, which the relay cannot
//! read: it checks only its form and size.
//!
//! A decision is stored on `relay.messages.<intent_id>.<offer_id>` and a closing on
//! `relay.messages.<intent_id>.close`, each written only if the subject is empty, so one offer
//! gets one decision and an intent one closing, whichever instance is asked. The same message
//! again (a vault retrying after a 503) gets the same id and its events are queued again under
//! the same ids; a different one is refused with 409. An erasure queues its events, then purges
//! every subject of the intent from every stream.

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;

use super::Relay;
use super::error::RelayError;
use super::events::ERASURE_TOPIC;
use super::nats::{DELIVERIES, FEEDS, INTENTS, MESSAGES, OFFERS};
use super::record::{IntentRecord, IntentStatus, valid_intent_id};
use crate::crypto::{self, relay_jwks};

/// The largest disclosed-fields JWE the relay passes on.
pub const MAX_JWE_BYTES: usize = 64 * 1024;
/// The longest `jti` of a vault's message token.
const MAX_JTI_CHARS: usize = 256;
/// How long a brand's webhook for a message is retried.
const MESSAGE_DELIVERY_WINDOW: time::Duration = time::Duration::days(7);
/// How long a brand's webhook for an erasure request is retried.
const ERASURE_DELIVERY_WINDOW: time::Duration = time::Duration::days(30);
/// What an erasure request asks, in plain words, for the brand's staff.
pub const ERASURE_REQUEST: &str = "The person who published this intent asks you to erase all \
    personal data about them that you received through it or through your offer and its \
    answer, and to tell anyone you passed that data to (GDPR Articles 17 and 19).";

/// One message from a vault, as its body names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultMessage {
    Accepted {
        offer_id: String,
        receipt: String,
        jwe: Option<String>,
    },
    Declined {
        offer_id: String,
    },
    Withdrawn,
    Expired,
    Erasure,
}

impl VaultMessage {
    pub fn kind(&self) -> &'static str {
        match self {
            VaultMessage::Accepted { .. } => "accepted",
            VaultMessage::Declined { .. } => "declined",
            VaultMessage::Withdrawn => "withdrawn",
            VaultMessage::Expired => "expired",
            VaultMessage::Erasure => "erasure",
        }
    }
}

fn invalid(message: impl Into<String>, at: &'static str) -> RelayError {
    RelayError::invalid("invalid_message", message, at)
}

fn string_member(body: &Map<String, Value>, name: &'static str) -> Result<String, RelayError> {
    body.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| invalid(format!("{name} is required and must be a string"), name))
}

/// Reads a message body: its `type` and exactly the members that type has.
pub fn parse_message(body: &Value) -> Result<VaultMessage, RelayError> {
    let Value::Object(body) = body else {
        return Err(invalid("the body must be a JSON object", "body"));
    };
    let kind = body.get("type").and_then(Value::as_str).unwrap_or_default();
    let (message, allowed): (VaultMessage, &[&str]) = match kind {
        "accepted" => (
            VaultMessage::Accepted {
                offer_id: string_member(body, "offer_id")?,
                receipt: string_member(body, "receipt")?,
                jwe: match body.get("jwe") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(string_member(body, "jwe")?),
                },
            },
            &["type", "offer_id", "receipt", "jwe"],
        ),
        "declined" => (
            VaultMessage::Declined {
                offer_id: string_member(body, "offer_id")?,
            },
            &["type", "offer_id"],
        ),
        "withdrawn" => (VaultMessage::Withdrawn, &["type"]),
        "expired" => (VaultMessage::Expired, &["type"]),
        "erasure" => (VaultMessage::Erasure, &["type"]),
        _ => {
            return Err(invalid(
                "type must be one of accepted, declined, withdrawn, expired, erasure",
                "type",
            ));
        }
    };
    if let Some(extra) = body.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(invalid(
            format!("{extra} is not a member of a {kind} message"),
            "body",
        ));
    }
    if let VaultMessage::Accepted { jwe: Some(jwe), .. } = &message {
        check_jwe(jwe).map_err(|why| invalid(format!("jwe: {why}"), "jwe"))?;
    }
    Ok(message)
}

/// Checks the form of a compact JWE (RFC 7516 §7.1) the relay cannot read: at most
/// [`MAX_JWE_BYTES`], five base64url parts, a protected header naming `alg` and `enc`, and an
/// IV, ciphertext and tag (the encrypted key is empty under direct ECDH-ES).
pub fn check_jwe(jwe: &str) -> Result<(), String> {
    if jwe.len() > MAX_JWE_BYTES {
        return Err(format!("at most {MAX_JWE_BYTES} bytes"));
    }
    let parts: Vec<&str> = jwe.split('.').collect();
    if parts.len() != 5 {
        return Err("a compact JWE has five parts separated by dots".into());
    }
    if parts.iter().any(|p| {
        !p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) {
        return Err("each part must be base64url without padding".into());
    }
    let header: Map<String, Value> = B64
        .decode(parts[0])
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or("the protected header must be a base64url JSON object")?;
    if !header.get("alg").is_some_and(Value::is_string)
        || !header.get("enc").is_some_and(Value::is_string)
    {
        return Err("the protected header must name alg and enc".into());
    }
    if parts[2].is_empty() || parts[3].is_empty() || parts[4].is_empty() {
        return Err("the IV, ciphertext and tag must not be empty".into());
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct ReceiptClaims {
    acceptance: Option<String>,
    accepted_at: Option<Value>,
}

/// Checks an agreement receipt: signed by the intent's key, holding the brand's stored
/// acceptance JWS byte for byte and an `accepted_at`.
pub fn check_receipt(receipt: &str, intent_jwk: &Value, acceptance: &str) -> Result<(), String> {
    let claims: ReceiptClaims = relay_jwks::verify_with_intent_key(receipt, intent_jwk)
        .map_err(|e| format!("not signed by the intent's key ({e})"))?;
    if claims.acceptance.as_deref() != Some(acceptance) {
        return Err("its acceptance must be the brand's acceptance of this offer".into());
    }
    if claims
        .accepted_at
        .is_none_or(|a| !(a.is_string() || a.is_number()))
    {
        return Err("accepted_at is required".into());
    }
    Ok(())
}

/// A message as `RELAY_MESSAGES` holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredMessage {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    /// `sha256:<hex>` of the RFC 8785 form of the body: a retry has the same.
    body_sha256: String,
    /// The event `data` each recipient gets.
    data: Value,
    to: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    received_at: time::OffsetDateTime,
}

fn body_hash(body: &Value) -> Result<String, RelayError> {
    let canonical = serde_json_canonicalizer::to_vec(body)
        .map_err(|e| RelayError::internal("canonicalising a message", e))?;
    Ok(format!(
        "sha256:{}",
        data_encoding::HEXLOWER.encode(&crypto::sha256(&canonical))
    ))
}

fn jti_key(intent_id: &str, jti: &str) -> String {
    data_encoding::HEXLOWER.encode(&crypto::sha256(format!("{intent_id}\0{jti}").as_bytes()))
}

impl Relay {
    /// Takes a vault's message for the brands of its intent; returns the message's id once it
    /// is stored and its events are queued.
    pub async fn post_message(
        &self,
        intent_id: &str,
        bearer: &str,
        body: Value,
    ) -> Result<String, RelayError> {
        let (record, _) = self
            .intent_record(intent_id)
            .await?
            .ok_or(RelayError::NotFound("intent"))?;
        let claims = self.verify_vault_token(&record, intent_id, bearer, "messages")?;
        let jti = claims
            .jti
            .filter(|j| !j.is_empty() && j.chars().count() <= MAX_JTI_CHARS)
            .ok_or_else(|| {
                RelayError::InvalidToken(
                    "a message token needs a jti (at most 256 characters)".into(),
                )
            })?;
        let message = parse_message(&body)?;
        let body_sha256 = body_hash(&body)?;
        let offer = match &message {
            VaultMessage::Accepted { offer_id, .. } | VaultMessage::Declined { offer_id } => {
                Some(self.offer_of(intent_id, offer_id).await?)
            }
            _ => None,
        };
        if let (VaultMessage::Accepted { receipt, .. }, Some(offer)) = (&message, &offer) {
            let acceptance = offer["acceptance"].as_str().unwrap_or_default();
            check_receipt(receipt, &record.intent["jwk"], acceptance)
                .map_err(|why| invalid(format!("receipt: {why}"), "receipt"))?;
        }
        self.use_jti(intent_id, &jti).await?;
        let outcome = self
            .act(intent_id, &record, message, offer, body_sha256)
            .await;
        if matches!(outcome, Err(RelayError::Unavailable { .. })) {
            // Nothing may have been done: let the vault retry with the same token.
            let _ = self
                .buckets()?
                .intent_jtis
                .purge(jti_key(intent_id, &jti))
                .await;
        }
        outcome
    }

    /// Remembers a message token's `jti`; 409 `replayed` if it was used before.
    async fn use_jti(&self, intent_id: &str, jti: &str) -> Result<(), RelayError> {
        match self
            .buckets()?
            .intent_jtis
            .create(jti_key(intent_id, jti), b"1".to_vec().into())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {
                Err(RelayError::Conflict {
                    code: "replayed",
                    message: "this token was already used; sign a new one with a new jti".into(),
                })
            }
            Err(e) => Err(RelayError::unavailable("remembering a jti", e)),
        }
    }

    /// The offer `offer_id` of the intent, as stored; 422 at `offer_id` if there is none.
    async fn offer_of(&self, intent_id: &str, offer_id: &str) -> Result<Value, RelayError> {
        self.read_offers(intent_id, 0)
            .await?
            .into_iter()
            .find(|o| o["id"] == offer_id)
            .ok_or_else(|| invalid("offer_id names no offer of this intent", "offer_id"))
    }

    async fn act(
        &self,
        intent_id: &str,
        record: &IntentRecord,
        message: VaultMessage,
        offer: Option<Value>,
        body_sha256: String,
    ) -> Result<String, RelayError> {
        let now = self.clock().now();
        let delivered = record.delivered_to.clone().unwrap_or_default();
        let (slot, kind, to, data) = match (&message, &offer) {
            (
                VaultMessage::Accepted {
                    offer_id,
                    receipt,
                    jwe,
                },
                Some(offer),
            ) => {
                let mut data = json!({
                    "offer": {"id": offer_id, "intent_id": intent_id, "status": "accepted"},
                    "offer_id": offer_id,
                    "intent_id": intent_id,
                    "receipt": receipt,
                });
                if let Some(jwe) = jwe {
                    data["jwe"] = json!(jwe);
                }
                let brand = offer["brand"]["client_id"].as_str().unwrap_or_default();
                (
                    offer_id.clone(),
                    "vrm.offer.accepted.v1",
                    vec![brand.to_owned()],
                    data,
                )
            }
            (VaultMessage::Declined { offer_id }, Some(offer)) => {
                let data = json!({
                    "offer": {"id": offer_id, "intent_id": intent_id, "status": "declined"},
                    "offer_id": offer_id,
                    "intent_id": intent_id,
                });
                let brand = offer["brand"]["client_id"].as_str().unwrap_or_default();
                (
                    offer_id.clone(),
                    "vrm.offer.declined.v1",
                    vec![brand.to_owned()],
                    data,
                )
            }
            (VaultMessage::Withdrawn, _) => (
                "close".to_owned(),
                "vrm.intent.withdrawn.v1",
                delivered,
                json!({"intent": {"id": intent_id}}),
            ),
            (VaultMessage::Expired, _) => (
                "close".to_owned(),
                "vrm.intent.expired.v1",
                delivered,
                json!({"intent": {"id": intent_id}}),
            ),
            (VaultMessage::Erasure, _) => return self.erase(intent_id, record).await,
            _ => {
                return Err(RelayError::internal(
                    "a decision without its offer",
                    "no offer",
                ));
            }
        };
        let random = crypto::random_array::<16>()
            .map_err(|e| RelayError::internal("making a message id", e))?;
        let fresh = StoredMessage {
            id: format!("rm_{}", data_encoding::HEXLOWER.encode(&random)),
            kind: message.kind().to_owned(),
            body_sha256,
            data,
            to,
            received_at: now,
        };
        let stored = self.store_once(intent_id, &slot, &fresh).await?;
        if matches!(message, VaultMessage::Withdrawn | VaultMessage::Expired) {
            let status = match message {
                VaultMessage::Withdrawn => IntentStatus::Withdrawn,
                _ => IntentStatus::Expired,
            };
            self.update_intent_record(intent_id, |record| {
                if record.status == status {
                    return Ok(false);
                }
                record.status = status;
                Ok(true)
            })
            .await?;
        }
        for client_id in &stored.to {
            let event = self.cloud_event(
                &format!("evt_{}_{client_id}", stored.id),
                kind,
                intent_id,
                stored.data.clone(),
            );
            self.send_event(client_id, intent_id, &event, now + MESSAGE_DELIVERY_WINDOW)
                .await?;
        }
        Ok(stored.id)
    }

    /// Stores `message` on its slot if the slot is empty; the same message again gets the one
    /// stored; another one is a conflict.
    async fn store_once(
        &self,
        intent_id: &str,
        slot: &str,
        message: &StoredMessage,
    ) -> Result<StoredMessage, RelayError> {
        let subject = format!("relay.messages.{intent_id}.{slot}");
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Expected-Last-Subject-Sequence", "0");
        let bytes = serde_json::to_vec(message).map_err(|e| RelayError::internal("encoding", e))?;
        let ack = self
            .js()
            .publish_with_headers(subject.clone(), headers, bytes.into())
            .await
            .map_err(|e| RelayError::unavailable("storing a message", e))?
            .await;
        match ack {
            Ok(_) => return Ok(message.clone()),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {}
            Err(e) => return Err(RelayError::unavailable("storing a message", e)),
        }
        let stream = self
            .js()
            .get_stream_no_info(MESSAGES)
            .await
            .map_err(|e| RelayError::unavailable("binding the messages stream", e))?;
        let earlier: StoredMessage = match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(raw) => serde_json::from_slice(&raw.payload)
                .map_err(|e| RelayError::internal("decoding a message", e))?,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                return Err(RelayError::Unavailable {
                    context: "a message vanished while it was read",
                    source: None,
                });
            }
            Err(e) => return Err(RelayError::unavailable("reading a message", e)),
        };
        if earlier.body_sha256 == message.body_sha256 {
            return Ok(earlier);
        }
        Err(if slot == "close" {
            RelayError::Conflict {
                code: "intent_closed",
                message: format!("this intent is already {}", earlier.kind),
            }
        } else {
            RelayError::Conflict {
                code: "offer_decided",
                message: format!("this offer was already {}", earlier.kind),
            }
        })
    }

    /// Queues the erasure request to every brand that received the intent or offered on it,
    /// then purges everything of the intent from every stream, its record last (so a retry
    /// after a failure finds it and finishes).
    async fn erase(&self, intent_id: &str, record: &IntentRecord) -> Result<String, RelayError> {
        if !valid_intent_id(intent_id) {
            return Err(RelayError::NotFound("intent"));
        }
        let now = self.clock().now();
        let mut recipients = record.delivered_to.clone().unwrap_or_default();
        for offer in self.read_offers(intent_id, 0).await? {
            if let Some(brand) = offer["brand"]["client_id"].as_str()
                && !recipients.iter().any(|r| r == brand)
            {
                recipients.push(brand.to_owned());
            }
        }
        let id = format!("rm_erasure_{}", intent_id.trim_start_matches("ri_"));
        let data = json!({
            "intent": {"id": intent_id},
            "requested_at": now.format(&Rfc3339).unwrap_or_default(),
            "basis": "GDPR Art. 17 and 19",
            "request": ERASURE_REQUEST,
        });
        for client_id in &recipients {
            let event = self.cloud_event(
                &format!("evt_{id}_{client_id}"),
                "vrm.erasure.requested.v1",
                intent_id,
                data.clone(),
            );
            self.send_event(
                client_id,
                ERASURE_TOPIC,
                &event,
                now + ERASURE_DELIVERY_WINDOW,
            )
            .await?;
        }
        for (stream, filter) in [
            (FEEDS, format!("relay.feed.*.{intent_id}")),
            (DELIVERIES, format!("relay.deliveries.*.{intent_id}")),
            (OFFERS, format!("relay.offers.{intent_id}")),
            (MESSAGES, format!("relay.messages.{intent_id}.*")),
            (INTENTS, format!("relay.intents.{intent_id}")),
        ] {
            self.js()
                .get_stream_no_info(stream)
                .await
                .map_err(|e| RelayError::unavailable("binding a stream to erase from", e))?
                .purge()
                .filter(filter)
                .await
                .map_err(|e| RelayError::unavailable("erasing an intent", e))?;
        }
        tracing::info!(recipients = recipients.len(), "an intent was erased");
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::jwt::SigningKey;

    fn b64(value: &Value) -> String {
        B64.encode(value.to_string())
    }

    fn jwe() -> String {
        format!(
            "{}..AAAAAAAAAAAAAAAA.Y2lwaGVy.dGFnMTIzNDU2Nzg5MDEy",
            b64(&json!({"alg": "ECDH-ES", "enc": "A256GCM", "epk": {}}))
        )
    }

    #[test]
    fn each_type_takes_exactly_its_members() {
        assert_eq!(
            parse_message(&json!({"type": "withdrawn"})).ok(),
            Some(VaultMessage::Withdrawn)
        );
        assert_eq!(
            parse_message(&json!({"type": "declined", "offer_id": "ro_1"})).ok(),
            Some(VaultMessage::Declined {
                offer_id: "ro_1".into()
            })
        );
        let accepted = parse_message(
            &json!({"type": "accepted", "offer_id": "ro_1", "receipt": "r", "jwe": jwe()}),
        );
        assert!(matches!(
            accepted,
            Ok(VaultMessage::Accepted { jwe: Some(_), .. })
        ));
        let at = |body: Value| match parse_message(&body) {
            Err(RelayError::Invalid { at, .. }) => at,
            _ => None,
        };
        assert_eq!(at(json!({"type": "shout"})), Some("type"));
        assert_eq!(at(json!({"type": "declined"})), Some("offer_id"));
        assert_eq!(
            at(json!({"type": "accepted", "offer_id": "ro_1"})),
            Some("receipt")
        );
        assert_eq!(
            at(json!({"type": "withdrawn", "offer_id": "ro_1"})),
            Some("body")
        );
        assert_eq!(
            at(json!({"type": "accepted", "offer_id": "ro_1", "receipt": "r", "jwe": "a.b"})),
            Some("jwe")
        );
        assert_eq!(at(json!(["withdrawn"])), Some("body"));
    }

    #[test]
    fn a_jwe_is_checked_for_form_and_size_only() {
        assert_eq!(check_jwe(&jwe()), Ok(()));
        for bad in [
            "a.b.c.d".to_owned(),
            format!("{}..iv.ct.tag=", b64(&json!({"alg": "x", "enc": "y"}))),
            format!("{}..iv.ct.tag", b64(&json!({"alg": "x"}))),
            "bm90anNvbg..iv.ct.tag".to_owned(),
            format!("{}..iv..tag", b64(&json!({"alg": "x", "enc": "y"}))),
            format!(
                "{}..iv.{}.tag",
                b64(&json!({"alg": "x", "enc": "y"})),
                "A".repeat(MAX_JWE_BYTES)
            ),
        ] {
            assert!(check_jwe(&bad).is_err(), "{bad:.60} passed");
        }
    }

    #[test]
    fn a_receipt_must_be_the_intents_signature_over_the_brands_acceptance() {
        let intent = SigningKey::generate().unwrap_or_else(|_| unreachable!());
        let jwk = serde_json::to_value(intent.public_jwk()).unwrap_or_default();
        let sign = |key: &SigningKey, acceptance: &str| {
            key.sign_jwt(
                "JWT",
                &json!({"acceptance": acceptance, "accepted_at": "2030-01-01T12:00:00Z"}),
            )
            .unwrap_or_default()
        };
        assert_eq!(check_receipt(&sign(&intent, "acc"), &jwk, "acc"), Ok(()));
        assert!(check_receipt(&sign(&intent, "other"), &jwk, "acc").is_err());
        let stranger = SigningKey::generate().unwrap_or_else(|_| unreachable!());
        assert!(check_receipt(&sign(&stranger, "acc"), &jwk, "acc").is_err());
        let undated = intent
            .sign_jwt("JWT", &json!({"acceptance": "acc"}))
            .unwrap_or_default();
        assert!(check_receipt(&undated, &jwk, "acc").is_err());
    }
}
