//! Brands' and vaults' intent routes at the relay: a brand's subscription and its feed (with a
//! relay token), and a vault's intent (no account: the intent's own key is its identity).

use axum::extract::{FromRequestParts, State};
use axum::http::{StatusCode, header, request::Parts};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::intents::NewSubscription;
use crate::http::error::{Json, Path, Query};
use crate::relay::brands::{Authenticated, Scope};
use crate::relay::intents::{EventPage, StoredSubscription};
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
    fn require(&self, scope: Scope) -> Result<&Authenticated, RelayError> {
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

/// `POST /relay/v1/intents`: a vault publishes an intent → `201 {"id"}`.
pub async fn publish_intent(
    State(relay): State<Relay>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Created>), RelayError> {
    let id = relay.publish_intent(body).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
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

#[derive(Debug, Serialize)]
pub struct OfferList {
    pub offers: Vec<Value>,
}

/// `GET /relay/v1/intents/{id}/offers`: for the intent's vault, with a JWT signed by the
/// intent's key.
pub async fn vault_offers(
    State(relay): State<Relay>,
    Path(intent_id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Json<OfferList>, RelayError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| RelayError::InvalidToken("no bearer token".into()))?;
    let offers = relay.offers_for_vault(&intent_id, bearer.trim()).await?;
    Ok(Json(OfferList { offers }))
}
