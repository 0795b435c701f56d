//! The catalogue of events brands receive: every CloudEvents type the vault sends, with the
//! schema of its `data`, in the OpenAPI 3.1 document's `webhooks` section.
//!
//! utoipa 5 has no `webhooks` support, so the document is completed here after it is built:
//! [`CatalogueDoc`] adds each event's schema to `components.schemas` (from the same Rust types
//! the vault serialises where it has them), and [`complete`] adds one `webhooks` entry per type
//! (a `POST` to the brand's webhook URL, signed per Standard Webhooks) and types
//! `EventPage.events` as one of them. The same events reach brands by polling and Server-Sent
//! Events. The integration tests validate every event they receive against these schemas.

use serde::Serialize;
use serde_json::{Value, json};
use utoipa::{OpenApi, ToSchema};

use crate::service::grant_events::{
    BrandGrant, GRANT_CREATED, GRANT_RESTORED, GRANT_REVOKED, GRANT_SUSPENDED, GrantEventData,
    RuleView, TermsRef,
};
use crate::service::terms_change::{HowToAccept, PublishedTerms, TERMS_UPDATED, TermsUpdatedData};

/// An intent as a brand receives it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrandIntent {
    #[schema(example = "i_abcdefghijklmnop")]
    pub id: String,
    /// A dotted category of the vault's taxonomy, e.g. `food.lunch`.
    pub category: String,
    pub text: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// `{"geohash": "u09tv", "radius_m": 1500}`: the area at the precision the person chose.
    #[schema(value_type = Option<Object>)]
    pub location: Option<Value>,
    /// `{"from": RFC 3339, "to": RFC 3339}`.
    #[schema(value_type = Option<Object>)]
    pub window: Option<Value>,
    /// `{"amount": "15.00", "currency": "EUR"}`.
    #[schema(value_type = Option<Object>)]
    pub price_max: Option<Value>,
    pub party_size: Option<u32>,
    pub tags: Vec<String>,
    /// How many offers the person wants at most.
    pub max_offers: u32,
    /// The record values the person disclosed with it, by path.
    #[schema(value_type = Object)]
    pub disclosed: Value,
}

/// The `data` of `vrm.intent.created.v1`.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntentCreatedData {
    pub intent: BrandIntent,
    /// The brand's pseudonym for the person.
    pub person: String,
}

/// An intent named by its id.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntentRef {
    pub id: String,
}

/// The `data` of `vrm.intent.withdrawn.v1` and `vrm.intent.expired.v1`.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntentClosedData {
    pub intent: IntentRef,
    pub person: String,
}

/// The brand's offer and what the person decided.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecidedOffer {
    pub id: String,
    pub intent_id: String,
    /// `accepted` or `declined`.
    pub status: String,
    /// The grant made with the acceptance, when the offer asked for data.
    pub grant_id: Option<String>,
}

/// The `data` of `vrm.offer.accepted.v1` and `vrm.offer.declined.v1`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OfferDecidedData {
    pub offer: DecidedOffer,
    pub person: String,
}

/// The `data` of `vrm.erasure.requested.v1`, sent by webhook only, once, when the person deletes
/// the whole vault.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureRequestedData {
    /// The brand's pseudonym for the person.
    pub pseudonym: String,
    pub agreement_id: Option<String>,
    #[schema(format = DateTime)]
    pub requested_at: String,
    /// `GDPR Art. 17 and 19`.
    pub basis: String,
    /// What the brand is asked to do, in plain words.
    pub request: String,
}

/// The CloudEvents 1.0 structured-mode envelope every event has (the `data` differs by type).
#[derive(Debug, Serialize, ToSchema)]
pub struct CloudEvent {
    /// `1.0`.
    pub specversion: String,
    /// Unique per event; the `webhook-id` of its deliveries.
    pub id: String,
    /// The vault's public URL.
    pub source: String,
    /// One of the types of the `webhooks` section.
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub kind: String,
    /// The id of what the event is about (an intent, a grant, `terms/{version}`, or the
    /// person's pseudonym for the erasure request).
    pub subject: String,
    #[schema(format = DateTime)]
    pub time: String,
    /// `application/json`.
    pub datacontenttype: String,
    #[schema(value_type = Object)]
    pub data: Value,
}

/// Every type, when it is sent, and its data schema's name.
pub const EVENTS: &[(&str, &str, &str)] = &[
    (
        "vrm.intent.created.v1",
        "The person broadcast an intent that matches the brand's subscription and that the \
         person's terms let it receive (or, after the brand accepted new terms, one still open \
         that it missed meanwhile).",
        "IntentCreatedData",
    ),
    (
        "vrm.intent.withdrawn.v1",
        "The person withdrew an intent the brand received.",
        "IntentClosedData",
    ),
    (
        "vrm.intent.expired.v1",
        "An intent the brand received expired.",
        "IntentClosedData",
    ),
    (
        "vrm.offer.accepted.v1",
        "The person accepted the brand's offer (with the grant made for it, if it asked for data).",
        "OfferDecidedData",
    ),
    (
        "vrm.offer.declined.v1",
        "The person declined the brand's offer.",
        "OfferDecidedData",
    ),
    (
        GRANT_CREATED,
        "The person made a grant for the brand (offered it, or approved the brand's request).",
        "GrantEventData",
    ),
    (
        GRANT_SUSPENDED,
        "The person published new terms: the grant does nothing until the brand accepts them.",
        "GrantEventData",
    ),
    (
        GRANT_RESTORED,
        "The brand accepted the new terms, which still permit the grant: it works again (with a \
         new token).",
        "GrantEventData",
    ),
    (
        GRANT_REVOKED,
        "The grant ended: the person or the brand revoked it, or new terms the brand accepted no \
         longer permit it (then `rule` names the deciding rule).",
        "GrantEventData",
    ),
    (
        TERMS_UPDATED,
        "The person published a new version of their terms: the brand's agreement covers nothing \
         new until it accepts it; `accept` says how.",
        "TermsUpdatedData",
    ),
    (
        "vrm.erasure.requested.v1",
        "The person deleted the whole vault: erase what you received (webhook only).",
        "ErasureRequestedData",
    ),
];

/// The schemas of the catalogue, merged into the API document.
#[derive(OpenApi)]
#[openapi(components(schemas(
    CloudEvent,
    BrandIntent,
    IntentCreatedData,
    IntentRef,
    IntentClosedData,
    DecidedOffer,
    OfferDecidedData,
    ErasureRequestedData,
    BrandGrant,
    RuleView,
    TermsRef,
    GrantEventData,
    PublishedTerms,
    HowToAccept,
    TermsUpdatedData,
)))]
#[derive(Debug)]
pub struct CatalogueDoc;

/// The component name of the whole event of `kind`: `vrm.grant.created.v1` →
/// `Event.vrm.grant.created.v1`.
pub fn event_schema_name(kind: &str) -> String {
    format!("Event.{kind}")
}

/// Adds the `webhooks` section and the per-type event schemas to the serialised document, and
/// types `EventPage.events`.
pub fn complete(spec: &mut Value) {
    let mut webhooks = serde_json::Map::new();
    let mut one_of = Vec::new();
    for (kind, when, data) in EVENTS {
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
                    "operationId": format!("webhook_{}", kind.replace('.', "_")),
                    "summary": when,
                    "description": "Sent to the brand's `webhook_url` as a CloudEvents 1.0 \
                        structured JSON event, signed per Standard Webhooks (`webhook-id`, \
                        `webhook-timestamp`, `webhook-signature: v1,...`, HMAC-SHA256 with the \
                        `whsec_` secret). The same event is in the brand's stream: `GET \
                        /brand/v1/intents` (polling) and `GET /brand/v1/events` (SSE).",
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
    if let Some(events) = spec.pointer_mut("/components/schemas/EventPage/properties/events") {
        *events = json!({
            "type": "array",
            "description": "CloudEvents 1.0, oldest first: one of the types of the `webhooks` section.",
            "items": { "oneOf": one_of },
        });
    }
}
