//! The person's side of their assistants: the consent page's questions and answer
//! (`/api/v1/agents/consent/{request_id}`), and Settings' list of connected assistants with
//! "Disconnect" (`/api/v1/agents`).

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::instrument;
use utoipa::ToSchema;

use super::auth::{OwnerRefusals, OwnerSession};
use super::error::{BadParameter, ErrorBody, Json, JsonBodyRefusals, Path};
use super::extract::Unsealed;
use crate::domain::agents::AgentScope;
use crate::error::AppError;
use crate::service::agents::authorize::AgentConsentField;

/// One thing an assistant may do, with the words the person reads.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeView {
    /// The wire name, e.g. `agent.offers.read`.
    pub scope: AgentScope,
    /// What it lets the assistant do, in plain words.
    pub words: &'static str,
}

fn scope_views<'a>(scopes: impl IntoIterator<Item = &'a AgentScope>) -> Vec<ScopeView> {
    scopes
        .into_iter()
        .map(|&scope| ScopeView {
            scope,
            words: scope.words(),
        })
        .collect()
}

/// What an assistant asks for, for the consent page.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentConsentView {
    pub request_id: String,
    pub client_id: String,
    /// The name the assistant gave itself (unverified: anyone can register any name).
    pub client_name: String,
    pub client_uri: Option<String>,
    /// Where the browser goes after the decision; its host tells where the assistant runs.
    pub redirect_uri: String,
    /// What it asks to do.
    pub scopes: Vec<ScopeView>,
    /// The person's records it could be allowed to read (values masked).
    pub fields: Vec<AgentConsentField>,
    /// What the person approved for this assistant before, if they did: approving again
    /// replaces it.
    pub approved_fields: Option<Vec<String>>,
    /// Seconds left to decide.
    pub expires_in: i64,
}

/// What an assistant asks for: the consent page's question.
#[utoipa::path(get, path = "/api/v1/agents/consent/{request_id}", tag = "agents", params(("request_id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 200, body = AgentConsentView), (status = 404, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn get_agent_consent(
    _session: OwnerSession,
    Path(request_id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<Json<AgentConsentView>, AppError> {
    let view = open.agent_consent_view(&request_id)?;
    Ok(Json(AgentConsentView {
        request_id: view.consent.id.clone(),
        client_id: view.consent.client_id.clone(),
        client_name: view.client_name,
        client_uri: view.client_uri,
        redirect_uri: view.consent.redirect_uri.clone(),
        scopes: scope_views(&view.consent.scopes),
        fields: view.fields,
        approved_fields: view.approved_before.map(|a| a.fields),
        expires_in: view.expires_in,
    }))
}

/// The person's answer about an assistant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentConsentAnswer {
    #[schema(value_type = super::grants::ConsentDecisionName)]
    pub decision: String,
    /// To allow fewer things than asked (wire names); default: all it asked.
    pub scopes: Option<Vec<String>>,
    /// The record paths it may read (with `agent.records.read`); default: none.
    #[serde(default)]
    pub fields: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentConsentRedirect {
    /// Where the browser goes next: back to the assistant with a code, or with
    /// `error=access_denied`.
    pub redirect_to: String,
}

/// Approves (choosing what it may do and read) or refuses an assistant. Only an approved
/// assistant can get a token.
#[utoipa::path(post, path = "/api/v1/agents/consent/{request_id}", tag = "agents", params(("request_id" = String, Path)),
    request_body = AgentConsentAnswer,
    responses(OwnerRefusals, BadParameter, JsonBodyRefusals, (status = 200, body = AgentConsentRedirect), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "`invalid_scope` (more than asked, or nothing), `invalid_path` (a field that is not a record path)")),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn answer_agent_consent(
    _session: OwnerSession,
    Path(request_id): Path<String>,
    Unsealed(open): Unsealed,
    Json(answer): Json<AgentConsentAnswer>,
) -> Result<Json<AgentConsentRedirect>, AppError> {
    let approve = match answer.decision.as_str() {
        "approve" => true,
        "deny" => false,
        other => {
            return Err(AppError::BadRequest(format!(
                "decision must be approve or deny, not {other}"
            )));
        }
    };
    let redirect_to = open
        .decide_agent_consent(&request_id, approve, answer.scopes, answer.fields)
        .await?;
    Ok(Json(AgentConsentRedirect { redirect_to }))
}

/// A connected assistant, as Settings shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    pub client_id: String,
    pub name: String,
    pub client_uri: Option<String>,
    /// What it may do.
    pub scopes: Vec<ScopeView>,
    /// The record paths it may read.
    pub fields: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub approved_at: OffsetDateTime,
    /// Its last call to the vault (noted at most once a minute); `null` if none yet.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    pub agents: Vec<AgentView>,
}

/// The assistants the person connected (approved), most recent first.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents",
    responses(OwnerRefusals, (status = 200, body = AgentList)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn list_agents(
    _session: OwnerSession,
    Unsealed(open): Unsealed,
) -> Result<Json<AgentList>, AppError> {
    let agents = open
        .list_agents()?
        .into_iter()
        .map(|a| AgentView {
            scopes: scope_views(&a.scopes),
            client_id: a.client_id,
            name: a.name,
            client_uri: a.client_uri,
            fields: a.fields,
            approved_at: a.approved_at,
            last_used_at: a.last_used_at,
        })
        .collect();
    Ok(Json(AgentList { agents }))
}

/// Disconnects an assistant: its registration goes, and with it every token it holds (its next
/// call is refused). To come back it must register and be approved again.
#[utoipa::path(delete, path = "/api/v1/agents/{client_id}", tag = "agents", params(("client_id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 204), (status = 404, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn disconnect_agent(
    _session: OwnerSession,
    Path(client_id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<StatusCode, AppError> {
    open.disconnect_agent(&client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
