//! The person's answers to their assistant's proposals (`/api/v1/proposals`): what the app's
//! "Your assistant asks" panel lists, confirms and refuses. Confirming accepts the offer with
//! exactly the proposed fields shared, as `POST /api/v1/offers/{id}/accept` would.

use serde::Serialize;
use time::OffsetDateTime;
use tracing::instrument;
use utoipa::ToSchema;

use super::auth::{OwnerRefusals, OwnerSession};
use super::error::{BadParameter, ErrorBody, Json, Path};
use super::extract::Unsealed;
use crate::domain::activity::field_words;
use crate::domain::proposals::Proposal;
use crate::error::AppError;

/// One of the fields a proposal would share, with the words the person reads.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProposedField {
    /// The record path, e.g. `contact.email`.
    pub path: String,
    /// In words: "your email address".
    pub label: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProposalView {
    pub id: String,
    /// `pending`, `confirmed` or `refused`.
    pub status: &'static str,
    pub offer_id: String,
    pub intent_id: String,
    /// The brand that made the offer.
    pub brand_name: String,
    /// The assistant that asked.
    pub agent_name: String,
    /// Exactly what confirming shares with the brand (empty: nothing is shared).
    pub fields: Vec<ProposedField>,
    /// The assistant's own words, not the vault's.
    pub agent_reason: String,
    /// The offer as the brand wrote it: its name, description and price.
    pub offer_name: Option<String>,
    pub offer_description: Option<String>,
    pub offer_price: Option<String>,
    /// Where the offer stands now: `pending`, `accepted` or `declined`.
    pub offer_status: Option<&'static str>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
}

fn view(open: &crate::service::OpenVault, proposal: Proposal) -> ProposalView {
    let offer = open.offer(&proposal.offer_id).ok();
    ProposalView {
        status: proposal.status.as_str(),
        fields: proposal
            .fields
            .iter()
            .map(|f| ProposedField {
                path: f.clone(),
                label: field_words(f),
            })
            .collect(),
        offer_name: offer.as_ref().map(|o| o.terms.name.clone()),
        offer_description: offer.as_ref().and_then(|o| o.terms.description.clone()),
        offer_price: offer
            .as_ref()
            .and_then(|o| o.terms.price.as_ref())
            .map(|p| format!("{} {}", p.amount, p.currency)),
        offer_status: offer.as_ref().map(|o| o.status.as_str()),
        id: proposal.id,
        offer_id: proposal.offer_id,
        intent_id: proposal.intent_id,
        brand_name: proposal.brand_name,
        agent_name: proposal.agent_name,
        agent_reason: proposal.reason,
        created_at: proposal.created_at,
        decided_at: proposal.decided_at,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProposalList {
    /// Newest first.
    pub proposals: Vec<ProposalView>,
}

/// What your assistants asked you to accept, newest first.
#[utoipa::path(get, path = "/api/v1/proposals", tag = "intents",
    responses(OwnerRefusals, (status = 200, body = ProposalList)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn list_proposals(
    _session: OwnerSession,
    Unsealed(open): Unsealed,
) -> Result<Json<ProposalList>, AppError> {
    let proposals = open
        .list_proposals()?
        .into_iter()
        .map(|p| view(&open, p))
        .collect();
    Ok(Json(ProposalList { proposals }))
}

/// Says yes: the offer is accepted, sharing exactly the proposed fields for 24 hours.
#[utoipa::path(post, path = "/api/v1/proposals/{id}/confirm", tag = "intents", params(("id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 200, body = ProposalView),
              (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "`conflict`: already answered, or the offer was already decided; `intent_closed`: the wish has ended"),
              (status = 422, body = ErrorBody, description = "`grant_not_permitted`: your terms do not allow sharing a proposed field")),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn confirm_proposal(
    _session: OwnerSession,
    Path(id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<Json<ProposalView>, AppError> {
    let (proposal, _offer) = open.confirm_proposal(&id).await?;
    Ok(Json(view(&open, proposal)))
}

/// Says no; the offer stays as it was.
#[utoipa::path(post, path = "/api/v1/proposals/{id}/refuse", tag = "intents", params(("id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 200, body = ProposalView),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn refuse_proposal(
    _session: OwnerSession,
    Path(id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<Json<ProposalView>, AppError> {
    let proposal = open.refuse_proposal(&id).await?;
    Ok(Json(view(&open, proposal)))
}
