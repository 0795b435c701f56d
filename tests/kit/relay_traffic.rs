//! Traffic for the relay, addressed to any instance: what a vault sends (an intent under a fresh
//! per-intent key, the signed read of its offers) and what a brand sends (an offer with its
//! signed acceptance of the person's terms). Every call takes the instance's base URL and the
//! relay's public URL separately, since instances behind one name share the public URL that
//! audiences are checked against. Used by the fault tests and the relay benches.

use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::kit::brand::{ClientKey, b64, jcs_hash, now};
use crate::kit::grant::rfc3339;

const PDC_INTENT: &str = include_str!("../../policies/pdc-intent.json");

/// What a vault keeps of one relayed intent: its key, and once published its id.
pub struct VaultIntent {
    pub key: ClientKey,
    pub body: Value,
    pub id: Option<String>,
}

impl VaultIntent {
    /// A new intent for `category` at `geohash` (precision 5 at most), expiring in two hours,
    /// with the person's terms, their hash and a fresh P-256 key.
    pub fn new(category: &str, geohash: &str, max_offers: u32) -> VaultIntent {
        let terms: Value = serde_json::from_str(PDC_INTENT).unwrap();
        let key = ClientKey::generate("intent");
        let mut jwk = key.public_jwk();
        jwk.as_object_mut().unwrap().remove("kid");
        let body = json!({
            "category": category,
            "text": "Lunch for two near the office",
            "expires_at": rfc3339(OffsetDateTime::now_utc() + time::Duration::hours(2)),
            "location": {"geohash": geohash, "radius_m": 1500},
            "party_size": 2,
            "max_offers": max_offers,
            "terms_hash": jcs_hash(&terms),
            "terms": terms,
            "jwk": jwk,
        });
        VaultIntent {
            key,
            body,
            id: None,
        }
    }

    pub fn terms_hash(&self) -> &str {
        self.body["terms_hash"].as_str().unwrap()
    }

    /// A read token for this intent's offers: `sub` the id, `aud` the offers URL under
    /// `public_url`, signed with the intent's key.
    pub fn read_token(&self, public_url: &str, intent_id: &str) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(
            &header,
            &json!({"sub": intent_id,
                    "aud": format!("{public_url}/relay/v1/intents/{intent_id}/offers"),
                    "exp": now() + 60}),
            &self.key.encoding_key(),
        )
        .unwrap()
    }
}

/// What one HTTP call got: a status with its `Retry-After` and JSON body, or a transport error
/// (connection refused, reset, timed out) as text.
#[derive(Debug, Clone)]
pub enum Answer {
    Status {
        status: u16,
        retry_after: Option<String>,
        body: Value,
    },
    Transport(String),
}

impl Answer {
    pub fn status(&self) -> Option<u16> {
        match self {
            Answer::Status { status, .. } => Some(*status),
            Answer::Transport(_) => None,
        }
    }

    pub fn body(&self) -> &Value {
        match self {
            Answer::Status { body, .. } => body,
            Answer::Transport(_) => &Value::Null,
        }
    }

    /// Whether a client may retry it: 503 with `Retry-After`, or a connection the instance
    /// refused or dropped (it is down, or was killed with the request in flight: then the
    /// write may or may not have been stored, as with a 503 after a timed-out publish).
    pub fn retryable(&self) -> bool {
        match self {
            Answer::Status {
                status: 503,
                retry_after: Some(_),
                ..
            } => true,
            Answer::Status { .. } => false,
            Answer::Transport(error) => {
                error.contains("onnection refused")
                    || error.contains("onnection reset")
                    || error.contains("connection closed before message completed")
            }
        }
    }
}

/// An HTTP client whose every call is bounded (30 s), so a relay that hangs fails the caller.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Sends `req` and reads its answer.
pub async fn send(req: reqwest::RequestBuilder) -> Answer {
    match req.send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            let retry_after = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = res.json().await.unwrap_or(Value::Null);
            Answer::Status {
                status,
                retry_after,
                body,
            }
        }
        // The whole chain: reqwest puts "connection refused" in a source.
        Err(e) => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            Answer::Transport(text)
        }
    }
}

/// `POST {base}/relay/v1/intents`.
pub async fn publish_intent(client: &reqwest::Client, base: &str, intent: &VaultIntent) -> Answer {
    send(
        client
            .post(format!("{base}/relay/v1/intents"))
            .json(&intent.body),
    )
    .await
}

/// `GET {base}/relay/v1/intents/{id}/offers`, read with the intent's key.
pub async fn read_offers(
    client: &reqwest::Client,
    base: &str,
    public_url: &str,
    intent: &VaultIntent,
    intent_id: &str,
) -> Answer {
    send(
        client
            .get(format!("{base}/relay/v1/intents/{intent_id}/offers"))
            .bearer_auth(intent.read_token(public_url, intent_id)),
    )
    .await
}

/// An offer body (without its acceptance).
pub fn offer_body(name: &str) -> Value {
    json!({
        "name": name,
        "price": {"amount": "14.50", "currency": "EUR"},
        "valid_until": rfc3339(OffsetDateTime::now_utc() + time::Duration::hours(1)),
        "data_requested": ["contact.phone"],
    })
}

/// base64url SHA-256 of the RFC 8785 form: the acceptance's `offer_sha256`.
pub fn offer_digest(offer: &Value) -> String {
    let bytes = serde_json_canonicalizer::to_vec(offer).unwrap();
    b64(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref())
}

/// `offer` with its `acceptance`: a compact JWS by the brand's signing key over the intent id,
/// the terms hash, the offer's digest and the time.
pub fn accepted_offer(
    signing: &ClientKey,
    intent_id: &str,
    terms_hash: &str,
    offer: &Value,
) -> Value {
    let jws = signing.sign(
        None,
        &signing.kid,
        &json!({"intent_id": intent_id, "terms_hash": terms_hash,
                "offer_sha256": offer_digest(offer), "iat": now()}),
    );
    let mut body = offer.clone();
    body["acceptance"] = json!(jws);
    body
}

/// `POST {base}/relay/v1/intents/{id}/offers` with a brand's token.
pub async fn post_offer(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    intent_id: &str,
    body: &Value,
) -> Answer {
    send(
        client
            .post(format!("{base}/relay/v1/intents/{intent_id}/offers"))
            .bearer_auth(token)
            .json(body),
    )
    .await
}
