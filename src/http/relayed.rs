//! The owner's view of the intent relays (DESIGN §11): which relays the vault publishes to
//! (`GET /api/v1/relays`), what a relay would receive of an intent before it is sent
//! (`POST /api/v1/intents/relay-preview`), and the relay parts of the intent and offer views.

use serde::Serialize;
use serde_json::Value;
use tracing::instrument;
use utoipa::ToSchema;

use super::AppState;
use super::auth::{OwnerRefusals, OwnerSession};
use super::error::{ErrorBody, Json, JsonBodyRefusals};
use super::extract::Unsealed;
use crate::domain::intents::NewIntent;
use crate::domain::offers::Offer;
use crate::domain::relayed::TargetStatus;
use crate::error::AppError;
use crate::service::intents::IntentRecord;
use axum::extract::State;

#[derive(Debug, Serialize, ToSchema)]
pub struct RelayInfo {
    /// The relay's base URL, as configured with `serve --relay`.
    pub url: String,
    /// Its host (and port), to name it in the app.
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RelayList {
    /// Empty when the vault was started without `--relay`: intents cannot be marked for a relay.
    pub relays: Vec<RelayInfo>,
}

/// The intent relays this vault publishes intents marked `"relay": true` to.
#[utoipa::path(get, path = "/api/v1/relays", tag = "intents",
    responses(OwnerRefusals, (status = 200, body = RelayList)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn list_relays(
    _session: OwnerSession,
    Unsealed(open): Unsealed,
) -> Result<Json<RelayList>, AppError> {
    Ok(Json(RelayList {
        relays: open
            .relays()
            .iter()
            .map(|url| RelayInfo {
                url: url.to_string(),
                name: url.name(),
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RelayPreviewView {
    /// Exactly what each relay would receive, except `jwk` (the intent's public key, made
    /// fresh when it is sent): the intent's fields, `terms` and `terms_hash`.
    #[schema(value_type = Object)]
    pub intent: Value,
    /// What was coarsened or left out on the way, in plain sentences.
    pub changes: Vec<String>,
}

/// What a relay would receive of this intent, and what was coarsened or left out, before it is
/// sent. Takes the body of `POST /api/v1/intents`; nothing is stored or sent.
#[utoipa::path(post, path = "/api/v1/intents/relay-preview", tag = "intents",
    request_body = NewIntent,
    responses(OwnerRefusals, JsonBodyRefusals, (status = 200, body = RelayPreviewView),
              (status = 422, body = ErrorBody, description = "`invalid_intent`, naming the field (a relayed intent discloses nothing); `relay_not_configured`")),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn relay_preview(
    State(state): State<AppState>,
    _session: OwnerSession,
    Unsealed(open): Unsealed,
    Json(body): Json<NewIntent>,
) -> Result<Json<RelayPreviewView>, AppError> {
    let intent = body
        .validate(state.vault.now())
        .map_err(|e| AppError::invalid_at("invalid_intent", e.field(), e.to_string()))?;
    let preview = open.relay_preview(&intent)?;
    Ok(Json(RelayPreviewView {
        intent: preview.intent,
        changes: preview.changes,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RelayTargetView {
    pub url: String,
    /// `pending` (the vault keeps trying), `published` or `failed`.
    pub status: &'static str,
    /// Why the last try failed, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Failed tries so far, while pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntentRelayView {
    /// `published` when a relay has it, `failed` when none will, `pending` otherwise.
    pub status: &'static str,
    pub relays: Vec<RelayTargetView>,
}

/// The relay part of an intent's view; none for an intent not sent to relays.
pub fn intent_relay_view(record: &IntentRecord) -> Option<IntentRelayView> {
    let relayed = record.relay.as_ref()?;
    Some(IntentRelayView {
        status: relayed.status().as_str(),
        relays: relayed
            .targets
            .iter()
            .map(|t| RelayTargetView {
                url: t.url.clone(),
                status: t.status.as_str(),
                error: t.error.clone(),
                attempts: (t.status == TargetStatus::Pending && t.failures > 0)
                    .then_some(t.failures),
            })
            .collect(),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RelayedBrand {
    /// The brand's id at the relay.
    pub client_id: String,
    /// Its name as the relay publishes it.
    pub name: String,
    /// Always true: an offer whose acceptance of your terms does not verify against the
    /// brand's published key is not shown.
    pub verified: bool,
}

/// The relay and the verified brand of a relayed offer.
pub fn offer_relay_parts(offer: &Offer) -> (Option<String>, Option<RelayedBrand>) {
    match &offer.relayed {
        Some(relayed) => (
            Some(relayed.via.clone()),
            Some(RelayedBrand {
                client_id: offer.client_id.clone(),
                name: offer.brand_name.clone(),
                verified: true,
            }),
        ),
        None => (None, None),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SentView {
    /// The relay the message went through.
    pub via: String,
    /// Whether the agreement receipt (the brand's acceptance countersigned by the intent's
    /// key) was sent.
    pub receipt: bool,
    /// The fields sent, encrypted to the brand's key.
    pub disclosed: Vec<String>,
    /// The same in one sentence.
    pub summary: String,
}

/// What accepting a relayed offer sent, as the service put it.
pub fn sent_view(sent: &Value) -> Option<SentView> {
    Some(SentView {
        via: sent.get("via")?.as_str()?.to_owned(),
        receipt: sent.get("receipt")?.as_bool()?,
        disclosed: sent
            .get("disclosed")?
            .as_array()?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        summary: sent.get("summary")?.as_str()?.to_owned(),
    })
}
