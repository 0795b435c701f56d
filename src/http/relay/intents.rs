//! Brands' and vaults' intent routes at the relay: a brand's subscription and its feed (with a
//! relay token), and a vault's intent (no account: the intent's own key is its identity).

use axum::extract::{FromRequestParts, State};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header, request::Parts};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::intents::NewSubscription;
use crate::http::error::{Json, Path, Query};
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
pub async fn publish_intent(
    State(relay): State<Relay>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Created>), RelayError> {
    let (id, created) = relay.publish_intent(body).await?;
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
pub async fn poll(
    State(relay): State<Relay>,
    token: RelayBrandToken,
    Query(query): Query<CursorQuery>,
) -> Result<Json<EventPage>, RelayError> {
    let auth = token.require(Scope::IntentsRead)?;
    Ok(Json(relay.poll(auth, query.cursor.unwrap_or(0)).await?))
}

/// `POST /relay/v1/intents/{id}/offers`: the vault's offer body plus `acceptance` → `201 {"id"}`.
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
