//! Brands' and vaults' intent routes at the relay: a brand's subscription and its feed (with a
//! relay token), and a vault's intent (no account: the intent's own key is its identity).

use axum::extract::{FromRequestParts, State};
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;

use axum::http::{HeaderMap, StatusCode, header, request::Parts};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::intents::NewSubscription;
use crate::http::auth::client_ip;
use crate::http::error::{ErrorBody, Json, Path, Query};
use crate::relay::brands::{Authenticated, Scope};
use crate::relay::intents::{EventPage, StoredSubscription};
use crate::relay::offers::OfferPage;
use crate::relay::{Relay, RelayError};

/// A brand authenticated by its relay access token (`Authorization: Bearer vrm_rt_...`).
#[derive(Debug)]
pub struct RelayBrandToken(pub Authenticated);

impl FromRequestParts<Relay> for RelayBrandToken {
    type Rejection = RelayError;

    async fn from_request_parts(parts: &mut Parts, relay: &Relay) -> Result<Self, RelayError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| RelayError::InvalidToken("no bearer token".into()))?;
        Ok(RelayBrandToken(relay.authenticate(token.trim()).await?))
    }
}

impl RelayBrandToken {
    pub(super) fn require(&self, scope: Scope) -> Result<&Authenticated, RelayError> {
        if self.0.scopes.contains(&scope) {
            Ok(&self.0)
        } else {
            Err(RelayError::InsufficientScope(scope.as_str()))
        }
    }
}

/// `PUT /relay/v1/subscription`: the vault's subscription body; the answer holds
/// `webhook_secret` when it names a webhook.
#[utoipa::path(put, path = "/relay/v1/subscription", tag = "brands",
    request_body = NewSubscription,
    responses((status = 200, body = super::openapi::RelaySubscription),
              (status = 401, body = ErrorBody, description = "`invalid_token`"),
              (status = 403, body = ErrorBody, description = "`insufficient_scope`"),
              (status = 413, body = ErrorBody, description = "`payload_too_large`: over 16 KiB"),
              (status = 422, body = ErrorBody, description = "`invalid_subscription`")),
    security(("relay_token" = ["intents:read"])))]
pub async fn put_subscription(
    State(relay): State<Relay>,
    token: RelayBrandToken,
    Json(body): Json<NewSubscription>,
) -> Result<Json<StoredSubscription>, RelayError> {
    let auth = token.require(Scope::IntentsRead)?;
    Ok(Json(relay.subscribe(auth, body).await?))
}

#[derive(Debug, Serialize)]
pub struct Created {
    pub id: String,
}

/// `POST /relay/v1/intents`: a vault publishes an intent → `201 {"id"}`; the same body under
/// the same key again → `200` with the same id.
#[utoipa::path(post, path = "/relay/v1/intents", tag = "vaults",
    request_body = super::openapi::PublishedIntent,
    responses((status = 201, body = super::openapi::CreatedId, description = "Published"),
              (status = 200, body = super::openapi::CreatedId, description = "Published before under this key with this body: the same intent"),
              (status = 409, body = ErrorBody, description = "`intent_exists`: this key published another body"),
              (status = 413, body = ErrorBody, description = "`payload_too_large`: over 128 KiB"),
              (status = 422, body = ErrorBody, description = "`invalid_intent`, `at` names the member"),
              (status = 429, body = ErrorBody, description = "`too_many_requests`: too many intents from this address", headers(("Retry-After" = u64, description = "Seconds to wait"))),
              (status = 503, body = ErrorBody, description = "`relay_unavailable`: retry the same body", headers(("Retry-After" = u64, description = "Seconds to wait")))))]
pub async fn publish_intent(
    State(relay): State<Relay>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Created>), RelayError> {
    // The source address is the peer's, or, behind a trusted proxy, the one it names.
    let source = client_ip(peer.ip(), &headers, &relay.settings().trusted_proxies);
    let (id, created) = relay.publish_intent(body, source).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(Created { id })))
}

#[derive(Debug, Deserialize)]
pub struct CursorQuery {
    /// The `next_cursor` of the previous page; 0 or absent: from the start.
    pub cursor: Option<u64>,
}

/// `GET /relay/v1/intents?cursor=N`: the brand's events after the cursor (polling).
#[utoipa::path(get, path = "/relay/v1/intents", tag = "brands",
    params(("cursor" = Option<u64>, Query, description = "The previous page's next_cursor")),
    responses((status = 200, body = super::openapi::RelayEventPage),
              (status = 401, body = ErrorBody, description = "`invalid_token`"),
              (status = 403, body = ErrorBody, description = "`insufficient_scope`")),
    security(("relay_token" = ["intents:read"])))]
pub async fn poll(
    State(relay): State<Relay>,
    token: RelayBrandToken,
    Query(query): Query<CursorQuery>,
) -> Result<Json<EventPage>, RelayError> {
    let auth = token.require(Scope::IntentsRead)?;
    Ok(Json(relay.poll(auth, query.cursor.unwrap_or(0)).await?))
}

/// `POST /relay/v1/intents/{id}/offers`: the vault's offer body plus `acceptance` → `201 {"id"}`.
#[utoipa::path(post, path = "/relay/v1/intents/{id}/offers", tag = "brands",
    params(("id" = String, Path)),
    request_body = super::openapi::RelayOffer,
    responses((status = 201, body = super::openapi::CreatedId),
              (status = 401, body = ErrorBody, description = "`invalid_token`"),
              (status = 403, body = ErrorBody, description = "`insufficient_scope`"),
              (status = 404, body = ErrorBody, description = "`not_found`: no such intent"),
              (status = 409, body = ErrorBody, description = "`intent_closed`, or `offer_limit` (the intent's max_offers, or this brand's offers on it)"),
              (status = 413, body = ErrorBody, description = "`payload_too_large`: over 16 KiB"),
              (status = 422, body = ErrorBody, description = "`invalid_offer` or `invalid_acceptance`"),
              (status = 429, body = ErrorBody, description = "`too_many_requests`: too many offers from this brand", headers(("Retry-After" = u64, description = "Seconds to wait")))),
    security(("relay_token" = ["offers:write"])))]
pub async fn post_offer(
    State(relay): State<Relay>,
    token: RelayBrandToken,
    Path(intent_id): Path<String>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Created>), RelayError> {
    let auth = token.require(Scope::OffersWrite)?;
    let id = relay.post_offer(auth, &intent_id, body).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

#[derive(Debug, Deserialize)]
pub struct OffersQuery {
    /// The `next_after` of the previous answer; 0 or absent: every offer.
    pub after: Option<u64>,
    /// Seconds to hold an empty answer waiting for an offer (at most 25).
    pub wait: Option<u64>,
}

/// The vault's bearer token (a JWT signed by the intent's key).
fn vault_bearer(headers: &HeaderMap) -> Result<&str, RelayError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| RelayError::InvalidToken("no bearer token".into()))
}

/// `GET /relay/v1/intents/{id}/offers?after=N&wait=S`: for the intent's vault, with a JWT
/// signed by the intent's key → `{"offers", "next_after"}`.
#[utoipa::path(get, path = "/relay/v1/intents/{id}/offers", tag = "vaults",
    params(("id" = String, Path),
           ("after" = Option<u64>, Query, description = "The previous answer's next_after; absent: every offer"),
           ("wait" = Option<u64>, Query, description = "Seconds to hold an empty answer for an offer (at most 25)")),
    responses((status = 200, body = super::openapi::OfferPageSchema),
              (status = 401, body = ErrorBody, description = "`invalid_token`: not the intent's key, or wrong sub, aud or exp"),
              (status = 404, body = ErrorBody, description = "`not_found`: no such intent (or it was erased)")),
    security(("intent_key" = [])))]
pub async fn vault_offers(
    State(relay): State<Relay>,
    Path(intent_id): Path<String>,
    Query(query): Query<OffersQuery>,
    headers: HeaderMap,
) -> Result<Json<OfferPage>, RelayError> {
    let wait = Duration::from_secs(query.wait.unwrap_or(0));
    let page = relay
        .offers_for_vault(
            &intent_id,
            vault_bearer(&headers)?,
            query.after.unwrap_or(0),
            wait,
        )
        .await?;
    Ok(Json(page))
}

/// `POST /relay/v1/intents/{id}/messages`: the intent's vault tells brands of a decision, a
/// withdrawal, the expiry or an erasure request → `201 {"id"}`.
#[utoipa::path(post, path = "/relay/v1/intents/{id}/messages", tag = "vaults",
    params(("id" = String, Path)),
    request_body = super::openapi::VaultMessageBody,
    responses((status = 201, body = super::openapi::CreatedId, description = "Stored and queued for every brand it concerns (the same message again: the same id)"),
              (status = 401, body = ErrorBody, description = "`invalid_token`: not the intent's key, wrong sub, aud or exp, or no jti"),
              (status = 404, body = ErrorBody, description = "`not_found`: no such intent (or it was erased)"),
              (status = 409, body = ErrorBody, description = "`replayed` (the jti was used), `offer_decided`, or `intent_closed`"),
              (status = 413, body = ErrorBody, description = "`payload_too_large`: over 80 KiB"),
              (status = 422, body = ErrorBody, description = "`invalid_message`, `at` names the member (`receipt` for a forged receipt)"),
              (status = 429, body = ErrorBody, description = "`too_many_requests`: too many messages for this intent", headers(("Retry-After" = u64, description = "Seconds to wait"))),
              (status = 503, body = ErrorBody, description = "`relay_unavailable`: retry (the same token may be used again)", headers(("Retry-After" = u64, description = "Seconds to wait")))),
    security(("intent_key" = [])))]
pub async fn post_message(
    State(relay): State<Relay>,
    Path(intent_id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Created>), RelayError> {
    let id = relay
        .post_message(&intent_id, vault_bearer(&headers)?, body)
        .await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}
