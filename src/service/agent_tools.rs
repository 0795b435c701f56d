//! What the person's own assistant may do through the MCP tools (`http::mcp`), as use cases.
//!
//! The tools reuse the owner's use cases (making and withdrawing wishes, declining offers)
//! with narrower inputs; what is the assistant's own lives here: putting every tool call on the
//! record under the assistant's name ([`OpenVault::record_agent_call`]), and the view of the
//! offers it is shown, with the brand's words kept apart from the vault's.

use serde_json::Value;

use super::OpenVault;
use crate::domain::audit::Event;
use crate::domain::offers::Offer;
use crate::error::AppError;

/// Who called a tool, as the audit log names it.
#[derive(Debug, Clone, Copy)]
pub struct AgentRef<'a> {
    pub client_id: &'a str,
    pub name: &'a str,
}

/// An offer as the assistant sees it: the brand's name, whether the vault knows the brand, and
/// the offer itself.
#[derive(Debug, Clone)]
pub struct OfferForAgent {
    pub offer: Offer,
    /// The brand is registered with this vault (the person invited it, and the vault
    /// authenticated it when it sent the offer; a brand the person removed since is not), or
    /// the offer came through a relay and its acceptance checked against the brand's keys
    /// there (the only kind of relayed offer the vault keeps).
    pub brand_verified: bool,
}

impl OpenVault {
    /// Appends one audit entry for a tool call of the assistant: `action` is `agent.*` (see
    /// `domain::activity` for the sentences), `detail` what the sentence needs, never a record's
    /// value. The assistant's name is kept in the entry, as it was at the time.
    pub async fn record_agent_call(
        &self,
        agent: AgentRef<'_>,
        action: &'static str,
        mut detail: Value,
    ) -> Result<(), AppError> {
        if let Value::Object(map) = &mut detail {
            map.insert("agent".into(), Value::String(agent.name.to_owned()));
        }
        let event = Event::agent(action, agent.client_id).with_detail(detail);
        self.change(move |_tx| Ok(((), event))).await
    }

    /// Every offer on every wish, newest first, with whether its brand is verified: one the vault
    /// knows, or a relayed one whose acceptance checked against the relay's published keys.
    pub fn offers_for_agent(&self) -> Result<Vec<OfferForAgent>, AppError> {
        let mut all = Vec::new();
        for intent in self.list_intents()? {
            for offer in self.intent_offers(&intent.intent.id)? {
                let brand_verified =
                    offer.relayed.is_some() || self.find_brand(&offer.client_id)?.is_some();
                all.push(OfferForAgent {
                    offer,
                    brand_verified,
                });
            }
        }
        all.sort_by_key(|o| std::cmp::Reverse(o.offer.created_at));
        Ok(all)
    }
}
