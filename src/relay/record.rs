//! An intent's record at the relay, and the vault's proof that it holds the intent's key.
//!
//! The record is the one message on `relay.intents.<intent_id>` in `RELAY_INTENTS` (the stream
//! keeps one per subject): the intent as brands see it, the hash of the body the vault sent,
//! whether it is open, and which brands it was delivered to. Every change is a compare-and-set
//! on the subject's last sequence (`Nats-Expected-Last-Subject-Sequence`), so two instances
//! changing one record cannot lose either change. The record lives until a week after the
//! intent expires ([`INTENT_GRACE`]): the vault may still send its decisions, the expiry notice
//! and an erasure request; offers are refused from the intent's expiry on.
//!
//! An intent's id is derived from its key's RFC 7638 thumbprint, so a vault that retries a
//! publication (after a 503, say) with the same body gets the same id back, never a second
//! intent.
//!
//! A vault has no account: it signs a JWT with the intent's key (ES256), `sub` the intent id,
//! `aud` the exact URL it calls (without the query), `exp` at most five minutes ahead; on the
//! messages route the token also carries a `jti` used once.

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Relay;
use super::error::RelayError;
use super::nats::{INTENT_GRACE, INTENTS};
use crate::crypto::{self, relay_jwks};

/// How far ahead a vault's token may expire.
pub const MAX_VAULT_TOKEN_SECONDS: i64 = 300;
/// Times a record change is re-tried when another instance changed it first.
const UPDATE_TRIES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentStatus {
    /// Takes offers until it expires.
    Open,
    /// The vault withdrew it.
    Withdrawn,
    /// The vault said it expired.
    Expired,
}

/// What `RELAY_INTENTS` holds for one intent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntentRecord {
    /// The intent as brands receive it (`data.intent` of `vrm.intent.created.v1`).
    pub intent: Value,
    /// `sha256:<hex>` of the RFC 8785 form of the body the vault published.
    pub body_sha256: String,
    pub status: IntentStatus,
    /// The brands the intent was delivered to; `None` until every delivery was queued.
    #[serde(default)]
    pub delivered_to: Option<Vec<String>>,
    /// When the record disappears by itself: a week after the intent expires.
    #[serde(with = "time::serde::rfc3339")]
    pub keep_until: OffsetDateTime,
}

impl IntentRecord {
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.intent["expires_at"]
            .as_str()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
    }

    /// How long the record is kept after `expires_at`.
    pub fn keep_until_for(expires_at: OffsetDateTime) -> OffsetDateTime {
        expires_at + INTENT_GRACE
    }
}

/// The claims of a vault's token.
#[derive(Debug, Deserialize)]
pub struct VaultClaims {
    pub sub: Option<String>,
    pub aud: Option<String>,
    pub exp: Option<i64>,
    pub jti: Option<String>,
}

/// The intent id a key gets: `ri_` and 32 hex digits of a hash of its RFC 7638 thumbprint.
pub fn intent_id_for(jwk: &Value) -> Result<String, RelayError> {
    let (Some(x), Some(y)) = (jwk["x"].as_str(), jwk["y"].as_str()) else {
        return Err(RelayError::invalid(
            "invalid_intent",
            "jwk must be a P-256 public key",
            "jwk",
        ));
    };
    let thumbprint = crypto::jwt::thumbprint(x, y);
    let digest = crypto::sha256(format!("vrm-relay-intent\0{thumbprint}").as_bytes());
    Ok(format!(
        "ri_{}",
        data_encoding::HEXLOWER.encode(&digest[..16])
    ))
}

/// Whether `id` can name an intent; anything else must not reach NATS as a subject.
pub fn valid_intent_id(id: &str) -> bool {
    id.starts_with("ri_")
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn subject(intent_id: &str) -> String {
    format!("relay.intents.{intent_id}")
}

impl Relay {
    /// An intent's record and its sequence, if the relay holds it.
    pub(super) async fn intent_record(
        &self,
        intent_id: &str,
    ) -> Result<Option<(IntentRecord, u64)>, RelayError> {
        if !valid_intent_id(intent_id) {
            return Ok(None);
        }
        let stream = self
            .js()
            .get_stream_no_info(INTENTS)
            .await
            .map_err(|e| RelayError::unavailable("binding the intents stream", e))?;
        match stream
            .get_last_raw_message_by_subject(&subject(intent_id))
            .await
        {
            Ok(message) => {
                let record: IntentRecord = serde_json::from_slice(&message.payload)
                    .map_err(|e| RelayError::internal("decoding an intent", e))?;
                Ok(Some((record, message.sequence)))
            }
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(RelayError::unavailable("reading an intent", e)),
        }
    }

    /// Writes `record` if the subject's last sequence is still `after` (0: no record yet).
    /// Returns the new sequence, or `None` when another write came first.
    pub(super) async fn write_intent_record(
        &self,
        intent_id: &str,
        record: &IntentRecord,
        after: u64,
    ) -> Result<Option<u64>, RelayError> {
        let now = self.clock().now();
        let ttl = (record.keep_until - now).whole_seconds().max(1);
        let mut headers = HeaderMap::new();
        headers.insert("Nats-TTL", format!("{ttl}s").as_str());
        headers.insert(
            "Nats-Expected-Last-Subject-Sequence",
            after.to_string().as_str(),
        );
        let bytes = serde_json::to_vec(record).map_err(|e| RelayError::internal("encoding", e))?;
        let ack = self
            .js()
            .publish_with_headers(subject(intent_id), headers, bytes.into())
            .await
            .map_err(|e| RelayError::unavailable("storing an intent", e))?
            .await;
        match ack {
            Ok(ack) => Ok(Some(ack.sequence)),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(None),
            Err(e) => Err(RelayError::unavailable("storing an intent", e)),
        }
    }

    /// Applies `change` to the current record until it is written over the version it read.
    /// `change` returns whether there is anything to write. 404 when the record is gone.
    pub(super) async fn update_intent_record(
        &self,
        intent_id: &str,
        mut change: impl FnMut(&mut IntentRecord) -> Result<bool, RelayError>,
    ) -> Result<IntentRecord, RelayError> {
        for _ in 0..UPDATE_TRIES {
            let (mut record, sequence) = self
                .intent_record(intent_id)
                .await?
                .ok_or(RelayError::NotFound("intent"))?;
            if !change(&mut record)? {
                return Ok(record);
            }
            if self
                .write_intent_record(intent_id, &record, sequence)
                .await?
                .is_some()
            {
                return Ok(record);
            }
        }
        Err(RelayError::Unavailable {
            context: "too many changes at once to one intent",
            source: None,
        })
    }

    /// Checks a vault's bearer token for `route` (`offers` or `messages`) of the intent:
    /// signed by the intent's key, `sub` the intent id, `aud` the route's URL, `exp` within
    /// five minutes. Returns its claims (the caller checks `jti` where it must).
    pub(super) fn verify_vault_token(
        &self,
        record: &IntentRecord,
        intent_id: &str,
        bearer: &str,
        route: &str,
    ) -> Result<VaultClaims, RelayError> {
        let claims: VaultClaims = relay_jwks::verify_with_intent_key(bearer, &record.intent["jwk"])
            .map_err(|e| {
                RelayError::InvalidToken(format!("not signed by the intent's key: {e}"))
            })?;
        let audience = format!(
            "{}/relay/v1/intents/{intent_id}/{route}",
            self.settings().public_url
        );
        let now = self.clock().now().unix_timestamp();
        if claims.sub.as_deref() != Some(intent_id)
            || claims.aud.as_deref() != Some(audience.as_str())
            || claims
                .exp
                .is_none_or(|exp| exp <= now || exp > now + MAX_VAULT_TOKEN_SECONDS)
        {
            return Err(RelayError::InvalidToken(format!(
                "sub must be the intent id, aud {audience}, exp within five minutes"
            )));
        }
        Ok(claims)
    }
}
