//! Intentcasting over HTTP: the owner's intents and offers (`/api/v1/intents`, `/api/v1/offers`,
//! live offers at `/api/v1/events`), and the brand's subscription, event stream (SSE and
//! polling) and offers (`/brand/v1/...`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use tracing::instrument;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::{OwnerRefusals, OwnerSession};
use super::brand_api::{BrandRefusals, BrandToken, StreamToken};
use super::error::{BadParameter, ErrorBody, Json, JsonBodyRefusals, Path, Query};
use super::extract::Unsealed;
use crate::domain::intents::{IntentError, NewIntent, NewSubscription, TAXONOMY};
use crate::domain::offers::{NewOffer, Offer};
use crate::error::AppError;
use crate::service::OpenVault;
use crate::service::events::MAX_EVENTS_PAGE;
use crate::service::intents::{IntentRecord, Share, SubscriptionRecord};
use crate::service::subscriptions::{MAX_WEBHOOK_SECRET_OVERLAP, WEBHOOK_SECRET_OVERLAP};

fn invalid_intent(e: IntentError) -> AppError {
    AppError::invalid_at("invalid_intent", e.field(), e.to_string())
}

// --- The owner's side ---------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct IntentView {
    pub id: String,
    /// `open`, `withdrawn`, `expired` or `fulfilled`.
    pub status: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// How many brands received it.
    pub recipients_count: usize,
    /// The id each brand that received it knows it by (client id → intent id): every brand has
    /// its own, so brands cannot match their intents with each other's.
    pub ids_by_brand: std::collections::BTreeMap<String, String>,
    pub offers_count: usize,
    /// For an intent sent to the intent relays: where it stands at each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<super::relayed::IntentRelayView>,
    /// The intent as validated: category, text, expires_at, location, window, price_max,
    /// party_size, tags, max_offers, disclose.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub intent: Value,
}

fn intent_view(open: &OpenVault, record: IntentRecord) -> IntentView {
    IntentView {
        status: record.intent.status(open_now(open)).as_str(),
        id: record.intent.id.clone(),
        created_at: record.intent.created_at,
        recipients_count: record.recipients.len(),
        ids_by_brand: record
            .recipients
            .iter()
            .map(|c| (c.clone(), open.intent_id_for_brand(c, &record.intent.id)))
            .collect(),
        offers_count: record.offers.len(),
        relay: super::relayed::intent_relay_view(&record),
        intent: serde_json::to_value(&record.intent.intent).unwrap_or(Value::Null),
    }
}

fn open_now(open: &OpenVault) -> OffsetDateTime {
    open.clock_now()
}

/// Broadcasts an intent to the brands that subscribed to its category and area and whose
/// agreement allows intentcasting. Only `category`, `text` and `expires_at` are required.
/// With `"relay": true` it also goes to the vault's intent relays, in the background (see
/// `POST /api/v1/intents/relay-preview` for what they receive).
#[utoipa::path(post, path = "/api/v1/intents", tag = "intents",
    request_body = NewIntent,
    responses(OwnerRefusals, JsonBodyRefusals, (status = 201, body = IntentView), (status = 422, body = ErrorBody, description = "`invalid_intent`, naming the field (a relayed intent discloses nothing); `relay_not_configured`")),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn create_intent(
    State(state): State<AppState>,
    _session: OwnerSession,
    Unsealed(open): Unsealed,
    Json(body): Json<NewIntent>,
) -> Result<(StatusCode, Json<IntentView>), AppError> {
    let relay = body.relay == Some(true);
    let intent = body.validate(state.vault.now()).map_err(invalid_intent)?;
    let record = if relay {
        open.create_relayed_intent(intent).await?
    } else {
        open.create_intent(intent).await?
    };
    Ok((StatusCode::CREATED, Json(intent_view(&open, record))))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntentList {
    /// Newest first.
    pub intents: Vec<IntentView>,
}

/// Your intents, newest first.
#[utoipa::path(get, path = "/api/v1/intents", tag = "intents",
    responses(OwnerRefusals, (status = 200, body = IntentList)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn list_intents(
    _session: OwnerSession,
    Unsealed(open): Unsealed,
) -> Result<Json<IntentList>, AppError> {
    let intents = open
        .list_intents()?
        .into_iter()
        .map(|r| intent_view(&open, r))
        .collect();
    Ok(Json(IntentList { intents }))
}

/// One intent.
#[utoipa::path(get, path = "/api/v1/intents/{id}", tag = "intents", params(("id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 200, body = IntentView), (status = 404, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn get_intent(
    _session: OwnerSession,
    Path(id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<Json<IntentView>, AppError> {
    let record = open.intent(&id)?;
    Ok(Json(intent_view(&open, record)))
}

/// Deletes an intent for real: the intent, its offers and its events in the brands' streams
/// are removed and made unreadable on disk (a key rotation). Withdraw it first if brands should
/// be told it is over.
#[utoipa::path(post, path = "/api/v1/intents/{id}/erase", tag = "intents", params(("id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 204), (status = 404, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn erase_intent(
    _session: OwnerSession,
    Path(id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<axum::http::StatusCode, AppError> {
    open.erase_intent(&id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Withdraws an intent: its brands are told, later offers are refused.
#[utoipa::path(delete, path = "/api/v1/intents/{id}", tag = "intents", params(("id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 200, body = IntentView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn withdraw_intent(
    _session: OwnerSession,
    Path(id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<Json<IntentView>, AppError> {
    let record = open.withdraw_intent(&id).await?;
    Ok(Json(intent_view(&open, record)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OfferView {
    pub id: String,
    pub intent_id: String,
    pub client_id: String,
    pub brand_name: String,
    /// `pending`, `accepted` or `declined`.
    pub status: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    pub grant_id: Option<String>,
    /// For an offer that came through an intent relay: the relay's URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// For an offer that came through an intent relay: the brand as the relay publishes it,
    /// its acceptance of your terms verified against its published key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand: Option<super::relayed::RelayedBrand>,
    /// Only in the answer to accepting a relayed offer: what was sent to the brand.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent: Option<super::relayed::SentView>,
    /// name, description, price, valid_until, fulfilment, url, data_requested.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub offer: Value,
}

fn offer_view(offer: Offer) -> OfferView {
    let (via, brand) = super::relayed::offer_relay_parts(&offer);
    OfferView {
        via,
        brand,
        sent: None,
        status: offer.status.as_str(),
        offer: serde_json::to_value(&offer.terms).unwrap_or(Value::Null),
        id: offer.id,
        intent_id: offer.intent_id,
        client_id: offer.client_id,
        brand_name: offer.brand_name,
        created_at: offer.created_at,
        decided_at: offer.decided_at,
        grant_id: offer.grant_id,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OfferList {
    pub offers: Vec<OfferView>,
}

/// The offers brands made on one of your intents.
#[utoipa::path(get, path = "/api/v1/intents/{id}/offers", tag = "intents", params(("id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 200, body = OfferList), (status = 404, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn intent_offers(
    _session: OwnerSession,
    Path(id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<Json<OfferList>, AppError> {
    let offers = open
        .intent_offers(&id)?
        .into_iter()
        .map(offer_view)
        .collect();
    Ok(Json(OfferList { offers }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptOffer {
    /// Grant the brand the fields its offer asked for (read, for intentcasting), for a while.
    #[serde(default)]
    pub share: bool,
    /// How long that grant lasts (1–720 hours, default 24).
    pub expires_in_hours: Option<i64>,
    /// With `share`: which of the fields the offer asked for to share (a non-empty subset of its
    /// `data_requested`); all of them when absent.
    pub fields: Option<Vec<String>>,
    /// For an offer that came through an intent relay: your fields to send the brand (e.g.
    /// `contact.email`), each allowed by your terms, encrypted so that only the brand reads
    /// them. Absent or empty: only the acceptance and its receipt are sent.
    pub disclose: Option<Vec<String>>,
}

/// Accepts an offer: the intent is fulfilled, the brand is told, and with `share` it gets a grant
/// for the fields it asked for.
#[utoipa::path(post, path = "/api/v1/offers/{id}/accept", tag = "intents", params(("id" = String, Path)),
    request_body(content = Option<AcceptOffer>, description = "Optional: an empty body or `null` accepts without sharing"),
    responses(OwnerRefusals, (status = 200, body = OfferView),
              (status = 400, body = ErrorBody, description = "`invalid_request`: a body or path that cannot be read"),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 413, body = ErrorBody, description = "`payload_too_large`"),
              (status = 422, body = ErrorBody, description = "`invalid_grant`: `expires_in_hours` out of range or `fields` not among those asked for; `grant_not_permitted`: a field your terms do not allow, named in words; `invalid_request`: `disclose` on a direct offer, or naming a field you do not have")),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn accept_offer(
    _session: OwnerSession,
    Path(id): Path<String>,
    Unsealed(open): Unsealed,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<OfferView>, AppError> {
    // Read as bytes, not with the JSON extractor, because the body is optional; its refusals are
    // turned into the common error shape here (axum's own are plain text).
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge
        } else {
            AppError::BadRequest(format!("the body could not be read: {}", e.body_text()))
        }
    })?;
    // The body is optional: an empty one (or JSON `null`) accepts without sharing.
    let body: AcceptOffer = if body.is_empty() {
        AcceptOffer::default()
    } else {
        serde_json::from_slice::<Option<AcceptOffer>>(&body)
            .map_err(|e| {
                AppError::BadRequest(format!("the JSON does not have the expected shape: {e}"))
            })?
            .unwrap_or_default()
    };
    if body.disclose.is_some() || open.offer(&id)?.relayed.is_some() {
        let (offer, sent) = open
            .accept_relayed(&id, body.disclose.as_deref().unwrap_or_default())
            .await?;
        let mut view = offer_view(offer);
        view.sent = super::relayed::sent_view(&sent);
        return Ok(Json(view));
    }
    let hours = body.expires_in_hours.unwrap_or(24);
    if !(1..=720).contains(&hours) {
        return Err(AppError::invalid(
            "invalid_grant",
            "expires_in_hours must be between 1 and 720",
        ));
    }
    let share = body.share.then(|| Share {
        duration: time::Duration::hours(hours),
        fields: body.fields,
    });
    let offer = open.decide_offer(&id, true, share).await?;
    Ok(Json(offer_view(offer)))
}

/// Declines an offer; the brand is told.
#[utoipa::path(post, path = "/api/v1/offers/{id}/decline", tag = "intents", params(("id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 200, body = OfferView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn decline_offer(
    _session: OwnerSession,
    Path(id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<Json<OfferView>, AppError> {
    // A relayed offer's brand is told through its relay (`decide_offer` sends it there).
    let offer = open.decide_offer(&id, false, None).await?;
    Ok(Json(offer_view(offer)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntentCategory {
    pub id: &'static str,
    pub label: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntentCategories {
    pub categories: Vec<IntentCategory>,
    pub limits: IntentLimits,
}

/// The limits a new intent must keep (`POST /api/v1/intents`), served so that the web app checks
/// them before sending without keeping a copy that could drift from the domain's.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntentLimits {
    /// Characters of the intent's text.
    pub max_text_chars: usize,
    /// Tags (keywords) of one intent.
    pub max_tags: usize,
    /// Characters of one tag.
    pub max_tag_chars: usize,
    /// The largest party size.
    pub max_party_size: u32,
    /// The most offers an intent may ask for.
    pub max_offers: u32,
    /// How many offers an intent gets when it names no limit.
    pub default_max_offers: u32,
    /// Record fields an intent may offer to disclose.
    pub max_disclosed: usize,
    /// Characters of the geohash of the area (the finest cell sent).
    pub max_geohash_chars: usize,
    /// The largest radius around the area, in metres.
    pub max_radius_m: u32,
}

/// The shipped category taxonomy of intents, and the limits a new intent must keep.
#[utoipa::path(get, path = "/api/v1/intent-categories", tag = "intents",
    responses((status = 200, body = IntentCategories)))]
pub async fn intent_categories() -> Json<IntentCategories> {
    use crate::domain::intents::{geo, intent};
    Json(IntentCategories {
        categories: TAXONOMY
            .iter()
            .map(|t| IntentCategory {
                id: t.id,
                label: t.label,
            })
            .collect(),
        limits: IntentLimits {
            max_text_chars: intent::MAX_TEXT_CHARS,
            max_tags: intent::MAX_TAGS,
            max_tag_chars: intent::MAX_TAG_CHARS,
            max_party_size: intent::MAX_PARTY_SIZE,
            max_offers: intent::MAX_OFFERS_LIMIT,
            default_max_offers: intent::DEFAULT_MAX_OFFERS,
            max_disclosed: intent::MAX_DISCLOSED,
            max_geohash_chars: geo::MAX_PRECISION,
            max_radius_m: intent::MAX_RADIUS_M,
        },
    })
}

/// New offers as they arrive (Server-Sent Events, `event: offer`, data: the offer).
#[utoipa::path(get, path = "/api/v1/events", tag = "intents",
    responses(OwnerRefusals, (status = 200, content_type = "text/event-stream", description = "`event: offer` per new offer")),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn owner_events(
    State(state): State<AppState>,
    session: OwnerSession,
    Unsealed(open): Unsealed,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, AppError> {
    let receiver = open.subscribe_offers();
    let start = (receiver, state.vault.clone(), session.token);
    let stream = futures_util::stream::unfold(start, |(mut receiver, vault, token)| async move {
        loop {
            match receiver.recv().await {
                Ok(offer) => {
                    // The stream lives only as long as the session that opened it.
                    vault.authenticate(&token).ok()?;
                    let data = serde_json::to_string(&offer_view(offer)).unwrap_or_default();
                    let event = SseEvent::default().event("offer").data(data);
                    return Some((Ok(event), (receiver, vault, token)));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let stream = stream.take_until(state.shutdown.requested());
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

// --- The brand's side ---------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    pub categories: Vec<String>,
    #[schema(value_type = Vec<Object>)]
    pub areas: Vec<Value>,
    pub webhook_url: Option<String>,
    /// `webhook`, `sse`, `poll`.
    pub delivery: Vec<&'static str>,
    /// Only when a webhook secret was just issued (first webhook, or rotation): keep it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// `ok`, `failing` or `paused`.
    pub delivery_status: &'static str,
    pub last_error: Option<String>,
}

fn subscription_view(record: SubscriptionRecord, secret: Option<String>) -> SubscriptionView {
    SubscriptionView {
        categories: record
            .subscription
            .categories
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
        areas: record
            .subscription
            .areas
            .iter()
            .map(|a| serde_json::to_value(a).unwrap_or(Value::Null))
            .collect(),
        webhook_url: record.subscription.webhook_url.clone(),
        delivery: record
            .subscription
            .delivery
            .iter()
            .map(|d| d.as_str())
            .collect(),
        webhook_secret: secret,
        delivery_status: match record.delivery_status {
            crate::service::delivery::DeliveryStatus::Ok => "ok",
            crate::service::delivery::DeliveryStatus::Failing => "failing",
            crate::service::delivery::DeliveryStatus::Paused => "paused",
        },
        last_error: record.last_error,
    }
}

fn require(token: &BrandToken, scope: &'static str) -> Result<(), AppError> {
    if token.0.has_scope(scope) {
        Ok(())
    } else {
        Err(AppError::InsufficientScope(scope))
    }
}

/// Says which intents the brand wants (categories by prefix, areas) and how (webhook, SSE,
/// polling). A first webhook URL gets a `whsec_` secret, returned once; updating resumes paused
/// deliveries.
#[utoipa::path(put, path = "/brand/v1/subscription", tag = "brands",
    request_body = NewSubscription,
    responses(BrandRefusals, JsonBodyRefusals, (status = 200, body = SubscriptionView), (status = 422, body = ErrorBody, description = "`invalid_subscription`")),
    security(("brand_token" = ["intents:read"])))]
#[instrument(skip_all)]
pub async fn put_subscription(
    State(state): State<AppState>,
    token: BrandToken,
    Unsealed(open): Unsealed,
    Json(body): Json<NewSubscription>,
) -> Result<Json<SubscriptionView>, AppError> {
    require(&token, "intents:read")?;
    let subscription = body
        .validate(state.vault.settings().allow_loopback_webhooks)
        .map_err(|e| AppError::invalid_at("invalid_subscription", e.field(), e.to_string()))?;
    let (record, secret) = open.put_subscription(&token.0.brand, subscription).await?;
    Ok(Json(subscription_view(record, secret)))
}

/// The brand's subscription.
#[utoipa::path(get, path = "/brand/v1/subscription", tag = "brands",
    responses(BrandRefusals, (status = 200, body = SubscriptionView), (status = 404, body = ErrorBody)),
    security(("brand_token" = ["intents:read"])))]
pub async fn get_subscription(
    token: BrandToken,
    Unsealed(open): Unsealed,
) -> Result<Json<SubscriptionView>, AppError> {
    require(&token, "intents:read")?;
    let record = open
        .subscription(&token.0.brand.client_id)?
        .ok_or(AppError::NotFound("subscription"))?;
    Ok(Json(subscription_view(record, None)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewSecret {
    pub webhook_secret: String,
    /// Until when deliveries also carry a signature with the previous secret (Standard
    /// Webhooks: several space-separated `v1,` signatures); absent when it stopped at once.
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub previous_secret_signs_until: Option<time::OffsetDateTime>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct RotateParams {
    /// How long the previous secret keeps signing beside the new one, in seconds: default
    /// 86400 (24 hours), at most 604800 (7 days); 0 stops it at once (after a leak).
    pub overlap_seconds: Option<u32>,
}

/// A new webhook secret; deliveries are signed with it from now on, and for the overlap
/// window also with the previous one, so the brand's receiver can switch without losing a
/// delivery.
#[utoipa::path(post, path = "/brand/v1/subscription/rotate-secret", tag = "brands",
    params(RotateParams),
    responses(BrandRefusals, BadParameter, (status = 200, body = NewSecret), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "`invalid_overlap`: more than 7 days")),
    security(("brand_token" = ["intents:read"])))]
#[instrument(skip_all)]
pub async fn rotate_secret(
    token: BrandToken,
    Query(params): Query<RotateParams>,
    Unsealed(open): Unsealed,
) -> Result<Json<NewSecret>, AppError> {
    require(&token, "intents:read")?;
    let overlap = match params.overlap_seconds {
        None => WEBHOOK_SECRET_OVERLAP,
        Some(seconds) => time::Duration::seconds(i64::from(seconds)),
    };
    if overlap > MAX_WEBHOOK_SECRET_OVERLAP {
        return Err(AppError::invalid_at(
            "invalid_overlap",
            "overlap_seconds",
            "the previous secret can keep signing for at most 7 days (604800 seconds)",
        ));
    }
    let (webhook_secret, previous_secret_signs_until) =
        open.rotate_webhook_secret(&token.0.brand, overlap).await?;
    Ok(Json(NewSecret {
        webhook_secret,
        previous_secret_signs_until,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// The `next_cursor` of the previous page; 0 or absent: from the start.
    pub cursor: Option<u64>,
    /// At most 500 (default 100).
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// CloudEvents 1.0, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
    /// Pass back as `cursor`; unchanged when there was nothing new.
    pub next_cursor: u64,
}

/// The brand's events after a cursor (polling).
#[utoipa::path(get, path = "/brand/v1/intents", tag = "brands", params(EventQuery),
    responses(BrandRefusals, BadParameter, (status = 200, body = EventPage)),
    security(("brand_token" = ["intents:read"])))]
pub async fn poll_events(
    StreamToken(token): StreamToken,
    Query(query): Query<EventQuery>,
    Unsealed(open): Unsealed,
) -> Result<Json<EventPage>, AppError> {
    require(&token, "intents:read")?;
    let cursor = query.cursor.unwrap_or(0);
    let events = open.events_after(
        &token.0.brand.client_id,
        cursor,
        query.limit.unwrap_or(100).clamp(1, MAX_EVENTS_PAGE),
    )?;
    let next_cursor = events.last().map_or(cursor, |(seq, _)| *seq);
    Ok(Json(EventPage {
        events: events.into_iter().map(|(_, e)| e).collect(),
        next_cursor,
    }))
}

struct StreamState {
    /// Weak, so an open stream does not keep a locked (or erased) vault's keys in memory: when
    /// the open vault goes away, its event signal closes and the stream ends.
    open: std::sync::Weak<OpenVault>,
    vault: crate::service::Vault,
    token: String,
    client_id: String,
    cursor: u64,
    signal: tokio::sync::watch::Receiver<u64>,
    buffer: VecDeque<(u64, Value)>,
}

/// How long after its token's expiry a quiet stream may stay open (a timer's slack).
const STREAM_EXPIRY_SLACK: std::time::Duration = std::time::Duration::from_millis(20);

/// The brand's events as Server-Sent Events: each `id:` is a cursor, so a client that reconnects
/// with `Last-Event-ID` continues exactly after the last event it got. The stream ends when the
/// token stops being valid: at its expiry (or its grant's), and as soon as it, its grant, the
/// brand or its agreement is revoked, new terms are in force, everything is deleted or the vault
/// is locked — also while no event comes.
#[utoipa::path(get, path = "/brand/v1/events", tag = "brands",
    params(("Last-Event-ID" = Option<u64>, Header, description = "resume after this event")),
    responses(BrandRefusals, BadParameter, (status = 200, content_type = "text/event-stream", description = "one CloudEvent per SSE event")),
    security(("brand_token" = ["intents:read"])))]
pub async fn brand_events(
    State(state): State<AppState>,
    StreamToken(token): StreamToken,
    headers: HeaderMap,
    Unsealed(open): Unsealed,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, AppError> {
    require(&token, "intents:read")?;
    let cursor = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                AppError::BadRequest("Last-Event-ID must be an event id from this stream".into())
            })?,
        None => 0,
    };
    let start = StreamState {
        vault: state.vault.clone(),
        signal: open.subscribe_events(),
        open: Arc::downgrade(&open),
        token: super::brand_api::access_token(&headers)
            .map(|(token, _)| token)
            .unwrap_or_default()
            .to_owned(),
        client_id: token.0.brand.client_id.clone(),
        cursor,
        buffer: VecDeque::new(),
    };
    drop(open);
    let stream = futures_util::stream::unfold(start, |mut s| async move {
        loop {
            if let Some((seq, event)) = s.buffer.pop_front() {
                s.cursor = seq;
                let data = serde_json::to_string(&event).unwrap_or_default();
                return Some((Ok(SseEvent::default().id(seq.to_string()).data(data)), s));
            }
            let open = s.open.upgrade()?;
            // A locked vault ends its streams: the brand reconnects and gets 503 until unlocked.
            if !s.vault.is_current(&open) {
                return None;
            }
            let until = open.stream_access(&s.token).ok()?;
            // Mark what has been seen before reading, so an event written meanwhile wakes us.
            s.signal.borrow_and_update();
            match open.events_after(&s.client_id, s.cursor, MAX_EVENTS_PAGE) {
                Ok(events) if !events.is_empty() => {
                    s.buffer.extend(events);
                    continue;
                }
                Ok(_) => {}
                Err(_) => return None,
            }
            // Asleep until an event (or a withdrawal of access) is announced, or the token
            // expires on the vault's clock; either way the loop checks the token again.
            let left = std::time::Duration::try_from(until - open.clock_now()).unwrap_or_default()
                + STREAM_EXPIRY_SLACK;
            drop(open);
            tokio::select! {
                changed = s.signal.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                () = tokio::time::sleep(left) => {}
            }
        }
    });
    let stream = stream.take_until(state.shutdown.requested());
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Answers an intent the brand received.
#[utoipa::path(post, path = "/brand/v1/intents/{id}/offers", tag = "brands", params(("id" = String, Path)),
    request_body = NewOffer,
    responses(BrandRefusals, BadParameter, JsonBodyRefusals, (status = 201, body = BrandOfferView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "`intent_closed` or `offer_limit`"),
              (status = 422, body = ErrorBody, description = "`invalid_offer`"),
              (status = 429, body = ErrorBody, description = "`too_many_requests`: too many offers from this brand", headers(("Retry-After" = u64, description = "Seconds to wait")))),
    security(("brand_token" = ["offers:write"])))]
#[instrument(skip_all)]
pub async fn create_offer(
    State(state): State<AppState>,
    token: BrandToken,
    Path(id): Path<String>,
    Unsealed(open): Unsealed,
    Json(body): Json<NewOffer>,
) -> Result<(StatusCode, Json<BrandOfferView>), AppError> {
    require(&token, "offers:write")?;
    let terms = body
        .validate(state.vault.now())
        .map_err(|e| AppError::invalid_at("invalid_offer", e.field, e.message))?;
    let client_id = &token.0.brand.client_id;
    // The brand names the intent by its own alias of it; an id it never received is unknown.
    let id = open
        .intent_id_from_brand(client_id, &id)
        .ok_or(AppError::NotFound("intent"))?;
    let offer = open.create_offer(&token.0.brand, &id, terms).await?;
    Ok((
        StatusCode::CREATED,
        Json(brand_offer_view(&open, client_id, offer)),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BrandOfferView {
    pub id: String,
    pub intent_id: String,
    /// `pending`, `accepted` or `declined`.
    pub status: &'static str,
    pub grant_id: Option<String>,
}

/// The brand's view of its offer, naming the intent by the brand's own alias of it.
fn brand_offer_view(open: &OpenVault, client_id: &str, offer: Offer) -> BrandOfferView {
    BrandOfferView {
        status: offer.status.as_str(),
        id: offer.id,
        intent_id: open.intent_id_for_brand(client_id, &offer.intent_id),
        grant_id: offer.grant_id,
    }
}

/// The brand's own offer and its outcome.
#[utoipa::path(get, path = "/brand/v1/offers/{id}", tag = "brands", params(("id" = String, Path)),
    responses(BrandRefusals, BadParameter, (status = 200, body = BrandOfferView), (status = 404, body = ErrorBody)),
    security(("brand_token" = [])))]
pub async fn get_offer(
    token: BrandToken,
    Path(id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<Json<BrandOfferView>, AppError> {
    let offer = open.brand_offer(&token.0.brand, &id)?;
    Ok(Json(brand_offer_view(
        &open,
        &token.0.brand.client_id,
        offer,
    )))
}
