//! Proposals (`domain::proposals`): an assistant asks, the person answers.
//!
//! Making a proposal changes nothing for the brand or the offer; it is stored with the
//! assistant's audit entry. Confirming runs the ordinary acceptance ([`OpenVault::decide_offer`])
//! with exactly the proposed fields, then marks the proposal confirmed; refusing only marks it.

use serde_json::json;
use time::Duration;

use super::OpenVault;
use super::agent_tools::AgentRef;
use super::intents::Share;
use crate::crypto::random_array;
use crate::domain::audit::Event;
use crate::domain::offers::{Offer, OfferStatus};
use crate::domain::proposals::{Proposal, ProposalStatus, check};
use crate::error::AppError;
use crate::store::{Table, Tree};

pub(crate) const PROPOSALS: Table<Proposal> = Table::new(Tree::Proposals, "proposal");

/// How long a confirmed proposal's grant lets the brand read the shared fields: the app's
/// default for accepting an offer.
const SHARE_HOURS: i64 = 24;

fn new_id() -> Result<String, AppError> {
    let bytes = random_array::<10>().map_err(|e| AppError::internal("drawing random bytes", e))?;
    Ok(format!(
        "p_{}",
        data_encoding::BASE32_NOPAD.encode(&bytes).to_lowercase()
    ))
}

impl OpenVault {
    fn proposal_key(&self, id: &str) -> [u8; 32] {
        self.index_key("proposal", id)
    }

    /// The assistant asks the person to accept an offer, sharing `fields` (among those the offer
    /// asked for). The offer must still be open to acceptance, and have no other proposal
    /// waiting.
    pub async fn propose_acceptance(
        &self,
        agent: AgentRef<'_>,
        offer_id: &str,
        fields: &[String],
        reason: &str,
    ) -> Result<Proposal, AppError> {
        let offer = self.offer(offer_id)?;
        let now = self.now();
        if offer.status != OfferStatus::Pending {
            return Err(AppError::Conflict("this offer was already decided"));
        }
        if offer.terms.valid_until <= now || !self.intent(&offer.intent_id)?.intent.is_open(now) {
            return Err(AppError::IntentClosed(
                "this offer can no longer be accepted: it or its wish has ended".into(),
            ));
        }
        let (fields, reason) = check(fields, &offer.terms.data_requested, reason)
            .map_err(|e| AppError::invalid_at("invalid_proposal", e.field(), e.to_string()))?;
        if self
            .list_proposals()?
            .iter()
            .any(|p| p.offer_id == offer.id && p.status == ProposalStatus::Pending)
        {
            return Err(AppError::Conflict(
                "a proposal for this offer already waits for the person's answer",
            ));
        }
        let proposal = Proposal {
            id: new_id()?,
            offer_id: offer.id.clone(),
            intent_id: offer.intent_id.clone(),
            brand_client_id: offer.client_id.clone(),
            brand_name: offer.brand_name.clone(),
            agent_client_id: agent.client_id.to_owned(),
            agent_name: agent.name.to_owned(),
            fields,
            reason,
            status: ProposalStatus::Pending,
            created_at: now,
            decided_at: None,
        };
        let key = self.proposal_key(&proposal.id);
        let stored = proposal.clone();
        let event = Event::agent("agent.offer_proposed", agent.client_id).with_detail(json!({
            "agent": agent.name,
            "tool": "propose_accept_offer",
            "proposal": proposal.id,
            "offer": proposal.offer_id,
            "brand": proposal.brand_name,
            "fields": proposal.fields,
        }));
        self.change(move |tx| {
            tx.write(&PROPOSALS, &key, &stored)?;
            Ok(((), event))
        })
        .await?;
        Ok(proposal)
    }

    /// Every proposal, newest first.
    pub fn list_proposals(&self) -> Result<Vec<Proposal>, AppError> {
        let mut all: Vec<Proposal> = self
            .store()
            .read_all(&PROPOSALS)
            .map(|item| item.map(|(_, p)| p))
            .collect::<Result<_, _>>()?;
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(all)
    }

    pub fn proposal(&self, id: &str) -> Result<Proposal, AppError> {
        self.store()
            .read(&PROPOSALS, &self.proposal_key(id))?
            .ok_or(AppError::NotFound("proposal"))
    }

    /// The person says yes: the offer is accepted with exactly the proposed fields shared (or
    /// none), as `POST /api/v1/offers/{id}/accept` would, and the proposal is marked confirmed.
    pub async fn confirm_proposal(&self, id: &str) -> Result<(Proposal, Offer), AppError> {
        let proposal = self.proposal(id)?;
        if proposal.status != ProposalStatus::Pending {
            return Err(AppError::Conflict("this proposal was already answered"));
        }
        let share = (!proposal.fields.is_empty()).then(|| Share {
            duration: Duration::hours(SHARE_HOURS),
            fields: Some(proposal.fields.clone()),
        });
        let offer = self.decide_offer(&proposal.offer_id, true, share).await?;
        let proposal = self
            .answer_proposal(proposal, ProposalStatus::Confirmed)
            .await?;
        Ok((proposal, offer))
    }

    /// The person says no; nothing else changes (the offer stays as it was).
    pub async fn refuse_proposal(&self, id: &str) -> Result<Proposal, AppError> {
        let proposal = self.proposal(id)?;
        if proposal.status != ProposalStatus::Pending {
            return Err(AppError::Conflict("this proposal was already answered"));
        }
        self.answer_proposal(proposal, ProposalStatus::Refused)
            .await
    }

    async fn answer_proposal(
        &self,
        proposal: Proposal,
        status: ProposalStatus,
    ) -> Result<Proposal, AppError> {
        let now = self.now();
        let key = self.proposal_key(&proposal.id);
        let action = match status {
            ProposalStatus::Confirmed => "proposal.confirmed",
            _ => "proposal.refused",
        };
        let event =
            Event::owner(action, Some(proposal.agent_client_id.clone())).with_detail(json!({
                "proposal": proposal.id,
                "offer": proposal.offer_id,
                "agent": proposal.agent_name,
                "brand": proposal.brand_name,
                "fields": proposal.fields,
            }));
        self.change(move |tx| {
            let mut stored = tx
                .read(&PROPOSALS, &key)?
                .ok_or(AppError::NotFound("proposal"))?;
            stored.status = status;
            stored.decided_at = Some(now);
            tx.write(&PROPOSALS, &key, &stored)?;
            Ok((stored, event))
        })
        .await
    }
}
