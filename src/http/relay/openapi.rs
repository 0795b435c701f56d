//! The relay's OpenAPI 3.1 document, served at `GET /relay/v1/openapi.json`: every route (the
//! router in `super` makes both, as the vault's does), the schemas of its bodies, the error
//! shape, and a `webhooks` section with every CloudEvent the relay sends brands (utoipa 5 has
//! no `webhooks`, so [`complete`] adds it, as `http::catalogue` does for the vault's events).
//! Where a shape is the vault's, the vault's type is reused: the request bodies of
//! subscriptions, intents and offers, the error body, the CloudEvents envelope and `IntentRef`.

use serde::Serialize;
use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{OpenApi, ToSchema};

use crate::domain::intents::NewIntent;
use crate::domain::offers::NewOffer;
use crate::http::catalogue::{CloudEvent, IntentRef, event_schema_name};

/// A relay access token (`POST /oauth/token`).
#[derive(Debug, Serialize, ToSchema)]
pub struct RelayToken {
    /// `vrm_rt_...`, living five minutes.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    pub expires_in: u64,
    /// Space-separated: `intents:read offers:write`.
    pub scope: String,
}

/// A brand's subscription as the relay answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RelaySubscription {
    pub categories: Vec<String>,
    #[schema(value_type = Vec<Object>)]
    pub areas: Vec<Value>,
    pub webhook_url: Option<String>,
    /// `webhook`, `sse`, `poll`.
    pub delivery: Vec<String>,
    /// `whsec_...`, a fresh one with every subscription that names a webhook.
    pub webhook_secret: Option<String>,
}

/// What a vault publishes: the vault's intent body plus the relay's members. Never
/// `disclose`; a location no finer than geohash precision 5.
#[derive(Debug, serde::Deserialize, ToSchema)]
pub struct PublishedIntent {
    #[serde(flatten)]
    #[schema(inline)]
    pub intent: NewIntent,
    /// The person's terms document.
    #[schema(value_type = Object)]
    pub terms: Value,
    /// `sha256:<hex>` of the RFC 8785 form of `terms`.
    pub terms_hash: String,
    /// The intent's P-256 public key (JWK): its only identity. The intent's id derives from
    /// its RFC 7638 thumbprint, so publishing the same body again gives the same id.
    #[schema(value_type = Object)]
    pub jwk: Value,
}

/// A brand's offer: the vault's offer body plus its acceptance of the person's terms.
#[derive(Debug, serde::Deserialize, ToSchema)]
pub struct RelayOffer {
    #[serde(flatten)]
    #[schema(inline)]
    pub offer: NewOffer,
    /// Compact JWS (ES256, the brand's signing key) over `{intent_id, terms_hash,
    /// offer_sha256, iat}`; `offer_sha256` is the base64url SHA-256 of the RFC 8785 form of
    /// this body without `acceptance`.
    pub acceptance: String,
}

/// The brand who made an offer.
#[derive(Debug, Serialize, ToSchema)]
pub struct OfferBrand {
    pub client_id: String,
    pub name: String,
}

/// An offer as the intent's vault reads it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceivedOffer {
    /// The offer's number within the intent, from 1.
    pub n: u64,
    #[schema(example = "ro_0123456789abcdef0123456789abcdef")]
    pub id: String,
    pub intent_id: String,
    pub brand: OfferBrand,
    /// The offer body as the brand sent it, without `acceptance`.
    #[schema(value_type = Object)]
    pub offer: Value,
    /// The brand's acceptance JWS, to verify with its published keys.
    pub acceptance: String,
    #[schema(format = DateTime)]
    pub received_at: String,
}

/// `GET /relay/v1/intents/{id}/offers`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OfferPageSchema {
    /// The offers numbered above `after`, oldest first.
    pub offers: Vec<ReceivedOffer>,
    /// The highest number returned, or `after` when none: pass it back as `after`.
    pub next_after: u64,
}

/// `GET /relay/v1/intents?cursor=N`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RelayEventPage {
    /// CloudEvents 1.0, oldest first (typed by [`complete`]).
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
    /// The feed sequence of the last event: pass it back as `cursor` (or as `Last-Event-ID`).
    pub next_cursor: u64,
}

/// The `type` of a vault's message.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    Accepted,
    Declined,
    Withdrawn,
    Expired,
    Erasure,
}

/// A vault's message to the brands of its intent. `offer_id` with `accepted` and `declined`
/// only; `receipt` and `jwe` with `accepted` only; no other member.
#[derive(Debug, Serialize, ToSchema)]
pub struct VaultMessageBody {
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub kind: MessageType,
    pub offer_id: Option<String>,
    /// Compact JWS (ES256) by the intent's key, payload `{acceptance, accepted_at}`, where
    /// `acceptance` is the brand's acceptance JWS of this offer, byte for byte.
    pub receipt: Option<String>,
    /// The disclosed fields: a compact JWE (five parts, at most 64 KiB) to the brand's `enc`
    /// key, plaintext `{"fields": {"<path>": value}}`. The relay cannot read it.
    pub jwe: Option<String>,
}

/// An id the relay gave.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedId {
    pub id: String,
}

/// A brand as the relay publishes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RelayBrandView {
    pub client_id: String,
    pub name: String,
    /// Its public keys: one `use: sig` (acceptances, client assertions), one `use: enc`.
    #[schema(value_type = Object)]
    pub jwks: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RelayBrandList {
    pub brands: Vec<RelayBrandView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RelayHealth {
    /// `ok` or `ready`.
    pub status: String,
}

/// An intent as a brand receives it from a relay.
#[derive(Debug, Serialize, ToSchema)]
pub struct RelayIntent {
    #[schema(example = "ri_0123456789abcdef0123456789abcdef")]
    pub id: String,
    pub category: String,
    pub text: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// `{"geohash", "radius_m"}`, geohash at most 5 characters.
    #[schema(value_type = Option<Object>)]
    pub location: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub window: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub price_max: Option<Value>,
    pub party_size: Option<u32>,
    pub tags: Vec<String>,
    pub max_offers: u32,
    /// Always `{}`: nothing is disclosed through a relay before an acceptance.
    #[schema(value_type = Object)]
    pub disclosed: Value,
    /// The person's terms document.
    #[schema(value_type = Object)]
    pub terms: Value,
    pub terms_hash: String,
    /// The intent's public key: receipts are signed with it.
    #[schema(value_type = Object)]
    pub jwk: Value,
}

/// The `data` of a relayed `vrm.intent.created.v1`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RelayIntentCreatedData {
    pub intent: RelayIntent,
}

/// The offer a decision is about.
#[derive(Debug, Serialize, ToSchema)]
pub struct RelayDecidedOffer {
    pub id: String,
    pub intent_id: String,
    /// `accepted` or `declined`.
    pub status: String,
}

/// The `data` of a relayed `vrm.offer.accepted.v1`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RelayOfferAcceptedData {
    pub offer: RelayDecidedOffer,
    pub offer_id: String,
    pub intent_id: String,
    /// The agreement receipt: a compact JWS by the intent's key over `{acceptance,
    /// accepted_at}`; keep it beside your acceptance.
    pub receipt: String,
    /// The disclosed fields, a compact JWE to your `enc` key, when the person disclosed any.
    pub jwe: Option<String>,
}

/// The `data` of a relayed `vrm.offer.declined.v1`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RelayOfferDeclinedData {
    pub offer: RelayDecidedOffer,
    pub offer_id: String,
    pub intent_id: String,
}

/// The `data` of a relayed `vrm.intent.withdrawn.v1` and `vrm.intent.expired.v1`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RelayIntentClosedData {
    pub intent: IntentRef,
}

/// The `data` of a relayed `vrm.erasure.requested.v1`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RelayErasureData {
    pub intent: IntentRef,
    #[schema(format = DateTime)]
    pub requested_at: String,
    /// `GDPR Art. 17 and 19`.
    pub basis: String,
    /// What the brand is asked to do, in plain words.
    pub request: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vrm-vault relay",
        description = "The intent relay (`vrm-vault relay`): vaults publish intents under a \
                       per-intent key, admitted brands subscribe, answer with offers that accept \
                       the person's terms, and receive the vault's messages. Errors are the \
                       vault's `{\"error\": code, \"message\": sentence, \"at\"?: member}` \
                       (under `/oauth/`, RFC 6749's shape). Any route can answer `413 \
                       payload_too_large` beyond its body cap, `429 too_many_requests` with \
                       `Retry-After` when an abuse limit is spent, and `503 relay_unavailable` \
                       with `Retry-After` when NATS JetStream does not answer (nothing was \
                       changed).",
        license(name = "AGPL-3.0-or-later")
    ),
    modifiers(&RelaySecurity),
    tags(
        (name = "brands", description = "Admitted brands: tokens, subscriptions, events, offers"),
        (name = "vaults", description = "Vaults, authenticated by each intent's key"),
        (name = "public", description = "What anyone may read"),
        (name = "operations", description = "Health and readiness")
    ),
    components(schemas(
        CloudEvent,
        IntentRef,
        RelayIntent,
        RelayIntentCreatedData,
        RelayDecidedOffer,
        RelayOfferAcceptedData,
        RelayOfferDeclinedData,
        RelayIntentClosedData,
        RelayErasureData,
    ))
)]
#[derive(Debug)]
pub struct RelayDoc;

struct RelaySecurity;

impl utoipa::Modify for RelaySecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "relay_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A brand's relay access token (`vrm_rt_...`) from POST /oauth/token",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "intent_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT signed by the intent's key (ES256): `sub` the intent id, `aud` \
                         the URL called without its query, `exp` at most five minutes ahead; \
                         on the messages route also a `jti`, used once (a replay is 409 \
                         `replayed`)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "private_key_jwt",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "client_assertion",
                "RFC 7523: client_assertion_type and client_assertion parameters in the body",
            ))),
        );
    }
}

/// Every CloudEvent the relay sends: its type, when, and its `data` schema.
pub const RELAY_EVENTS: &[(&str, &str, &str)] = &[
    (
        "vrm.intent.created.v1",
        "A vault published an intent your subscription matches.",
        "RelayIntentCreatedData",
    ),
    (
        "vrm.offer.accepted.v1",
        "The person accepted your offer: the receipt, and the disclosed fields as a JWE.",
        "RelayOfferAcceptedData",
    ),
    (
        "vrm.offer.declined.v1",
        "The person declined your offer.",
        "RelayOfferDeclinedData",
    ),
    (
        "vrm.intent.withdrawn.v1",
        "The person withdrew an intent you received: it takes no more offers.",
        "RelayIntentClosedData",
    ),
    (
        "vrm.intent.expired.v1",
        "An intent you received expired: it takes no more offers.",
        "RelayIntentClosedData",
    ),
    (
        "vrm.erasure.requested.v1",
        "The person asks you to erase what you received through an intent you received or \
         offered on; the relay has forgotten it.",
        "RelayErasureData",
    ),
];

/// Adds the `webhooks` section and the per-type event schemas, and types the feed's events.
pub fn complete(spec: &mut Value) {
    let mut webhooks = serde_json::Map::new();
    let mut one_of = Vec::new();
    for (kind, when, data) in RELAY_EVENTS {
        let name = event_schema_name(kind);
        let schema = json!({
            "description": format!("`{kind}`: {when}"),
            "allOf": [{ "$ref": "#/components/schemas/CloudEvent" }],
            "type": "object",
            "required": ["type", "data"],
            "properties": {
                "type": { "const": kind },
                "data": { "$ref": format!("#/components/schemas/{data}") },
            },
        });
        if let Some(schemas) = spec
            .pointer_mut("/components/schemas")
            .and_then(Value::as_object_mut)
        {
            schemas.insert(name.clone(), schema);
        }
        let reference = json!({ "$ref": format!("#/components/schemas/{name}") });
        one_of.push(reference.clone());
        webhooks.insert(
            (*kind).to_owned(),
            json!({
                "post": {
                    "operationId": format!("relay_webhook_{}", kind.replace('.', "_")),
                    "summary": when,
                    "description": "Sent to the brand's `webhook_url` as a CloudEvents 1.0 \
                        structured JSON event, `source` the relay's public URL, signed per \
                        Standard Webhooks with the subscription's `whsec_` secret, retried \
                        with backoff under the same `webhook-id` (the event id). The same event \
                        is in the brand's feed: `GET /relay/v1/intents` (polling) and `GET \
                        /relay/v1/events` (SSE).",
                    "tags": ["brands"],
                    "requestBody": {
                        "required": true,
                        "content": { "application/cloudevents+json": { "schema": reference } },
                    },
                    "responses": {
                        "2XX": { "description": "Received; any other answer is retried with backoff" },
                    },
                },
            }),
        );
    }
    if let Some(object) = spec.as_object_mut() {
        object.insert("webhooks".into(), Value::Object(webhooks));
    }
    if let Some(events) = spec.pointer_mut("/components/schemas/RelayEventPage/properties/events") {
        *events = json!({
            "type": "array",
            "description": "CloudEvents 1.0, oldest first: one of the types of the `webhooks` section.",
            "items": { "oneOf": one_of },
        });
    }
}
