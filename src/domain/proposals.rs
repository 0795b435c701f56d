//! Proposals: the person's assistant asks the person to accept an offer.
//!
//! An assistant never accepts an offer itself (accepting fulfils the wish and may share data with
//! a brand). It stores a proposal instead: which offer, which of the fields the offer asked for
//! would be shared, and the assistant's reason in its own words. The person confirms it in the
//! app (which runs the ordinary acceptance) or refuses it; the assistant reads the outcome.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The longest reason an assistant may give, in characters.
pub const MAX_REASON_CHARS: usize = 1_000;

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    /// Waiting for the person.
    Pending,
    /// The person said yes: the offer was accepted with exactly these fields shared.
    Confirmed,
    /// The person said no.
    Refused,
}

impl ProposalStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            ProposalStatus::Pending => "pending",
            ProposalStatus::Confirmed => "confirmed",
            ProposalStatus::Refused => "refused",
        }
    }
}

/// A proposal, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: String,
    pub offer_id: String,
    pub intent_id: String,
    /// The brand that made the offer, and its name when the proposal was made.
    pub brand_client_id: String,
    pub brand_name: String,
    /// The assistant that asked, and its name when it asked.
    pub agent_client_id: String,
    pub agent_name: String,
    /// The fields accepting would share with the brand (a subset of what the offer asked for;
    /// empty: accept without sharing anything).
    pub fields: Vec<String>,
    /// The assistant's words: shown to the person as the assistant's, never as the vault's.
    pub reason: String,
    pub status: ProposalStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
}

/// Why a proposal cannot be made as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    #[error(
        "reason: say in a few words why the person should accept (at most {MAX_REASON_CHARS} characters)"
    )]
    Reason,
    #[error("fields: \"{0}\" is not among the fields the offer asks for")]
    NotRequested(String),
}

impl ProposalError {
    /// The member of the call at fault.
    pub fn field(&self) -> &'static str {
        match self {
            ProposalError::Reason => "reason",
            ProposalError::NotRequested(_) => "fields",
        }
    }
}

/// Checks an assistant's proposal against the offer's requested fields; returns the fields to
/// share, sorted and without repeats, and the trimmed reason.
pub fn check(
    fields: &[String],
    requested: &[String],
    reason: &str,
) -> Result<(Vec<String>, String), ProposalError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(ProposalError::Reason);
    }
    if let Some(other) = fields.iter().find(|f| !requested.contains(f)) {
        return Err(ProposalError::NotRequested(other.clone()));
    }
    let mut fields = fields.to_vec();
    fields.sort();
    fields.dedup();
    Ok((fields, reason.to_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn only_fields_the_offer_asked_for_can_be_proposed() {
        let requested = strings(&["contact.email", "contact.phone"]);
        let (fields, reason) = check(
            &strings(&["contact.phone", "contact.email", "contact.phone"]),
            &requested,
            "  cheapest lunch nearby ",
        )
        .unwrap();
        assert_eq!(fields, strings(&["contact.email", "contact.phone"]));
        assert_eq!(reason, "cheapest lunch nearby");
        assert_eq!(
            check(&strings(&["address.street"]), &requested, "ok"),
            Err(ProposalError::NotRequested("address.street".into()))
        );
        assert_eq!(
            check(&[], &requested, "ok").unwrap().0,
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_reason_is_needed_and_bounded() {
        assert_eq!(check(&[], &[], "   "), Err(ProposalError::Reason));
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        assert_eq!(check(&[], &[], &long), Err(ProposalError::Reason));
        assert!(check(&[], &[], &"x".repeat(MAX_REASON_CHARS)).is_ok());
    }
}
