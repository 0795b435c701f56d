//! Why a terms document was rejected.
//!
//! One error type for every check in `parse`, so that every message starts with where in the
//! document the problem is and the editor can point at it.

use super::Basis;

/// Why a terms document was rejected. Every message starts with where (`permission[1]
/// .constraint[0]`, `basis`, ...) and says why in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TermsError {
    #[error("{at}: {expected}")]
    WrongType { at: String, expected: &'static str },
    #[error("{at}: \"{property}\" is missing")]
    Missing { at: String, property: &'static str },
    #[error("{at}: \"{property}\" is not something terms can say here (allowed: {allowed})")]
    UnknownProperty {
        at: String,
        property: String,
        allowed: String,
    },
    #[error(
        "@context: must be exactly the vault's terms context (the ODRL context plus the dpv, pd \
         and p7012 prefixes, as in the templates), because another context could give the same \
         words another meaning"
    )]
    WrongContext,
    #[error("@type: must be \"Offer\", an ODRL offer that brands accept, not {found}")]
    WrongPolicyType { found: String },
    #[error(
        "basis: \"{found}\" is not an IEEE 7012 agreement these terms can be built on; use \
         SD-BASE, SD-BASE-DP or PDC-INTENT"
    )]
    UnknownBasis { found: String },
    #[error("{at}: \"{found}\" is not an action allowed here (allowed: {allowed})")]
    UnknownAction {
        at: String,
        found: String,
        allowed: String,
    },
    #[error(
        "{at}: \"{found}\" is not a left operand terms support; use purpose, dateTime, count or \
         elapsedTime"
    )]
    UnknownLeftOperand { at: String, found: String },
    #[error("{at}: \"{found}\" is not an operator for {operand}; use {allowed}")]
    UnknownOperator {
        at: String,
        operand: &'static str,
        found: String,
        allowed: &'static str,
    },
    #[error("{at}: \"{found}\" is not a purpose the vault knows (policies/README.md lists them)")]
    UnknownPurpose { at: String, found: String },
    #[error(
        "{at}: \"{found}\" is not a data category the vault knows (use a record category such as \
         pd:EmailAddress, or dpv:PersonalData for all of them)"
    )]
    UnknownCategory { at: String, found: String },
    #[error("{at}: {reason}")]
    InvalidValue { at: String, reason: String },
    #[error("{at} would widen {basis}: {reason}")]
    Widens {
        at: String,
        basis: Basis,
        reason: String,
    },
    #[error("prohibition: {basis} prohibits {what}, but no prohibition here says so; {hint}")]
    BasisProhibitionMissing {
        basis: Basis,
        what: &'static str,
        hint: String,
    },
    #[error("obligation: {basis} requires {what}, but no obligation here says so; {hint}")]
    BasisDutyMissing {
        basis: Basis,
        what: &'static str,
        hint: String,
    },
}

impl TermsError {
    /// Where in the document the problem is.
    pub fn at(&self) -> &str {
        match self {
            TermsError::WrongType { at, .. }
            | TermsError::Missing { at, .. }
            | TermsError::UnknownProperty { at, .. }
            | TermsError::UnknownAction { at, .. }
            | TermsError::UnknownLeftOperand { at, .. }
            | TermsError::UnknownOperator { at, .. }
            | TermsError::UnknownPurpose { at, .. }
            | TermsError::UnknownCategory { at, .. }
            | TermsError::InvalidValue { at, .. }
            | TermsError::Widens { at, .. } => at,
            TermsError::WrongContext => "@context",
            TermsError::WrongPolicyType { .. } => "@type",
            TermsError::UnknownBasis { .. } => "basis",
            TermsError::BasisProhibitionMissing { .. } => "prohibition",
            TermsError::BasisDutyMissing { .. } => "obligation",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use crate::domain::terms::testing::*;

    #[test]
    fn error_messages_name_the_rule_and_say_why() {
        let e = reject(&sd_base_with(date_time("lt", "next week")));
        assert_eq!(
            e.to_string(),
            "permission[0].constraint[1]: dateTime must be an RFC 3339 date and time with its \
             offset, such as 2026-12-31T23:59:59Z, not \"next week\""
        );
        let mut doc = template("sd-base");
        doc["permission"][1]["constraint"] = json!([purpose("eq", "dpv:TargetedAdvertising")]);
        assert_eq!(
            reject(&doc).to_string(),
            "permission[1].constraint[0] would widen SD-BASE: it would allow the purpose \
             dpv:TargetedAdvertising (Targeted advertising), which SD-BASE does not permit, and \
             it prohibits advertising and marketing"
        );
        let mut doc = template("pdc-intent");
        doc["prohibition"].as_array_mut().unwrap().remove(0);
        assert_eq!(
            reject(&doc).to_string(),
            "prohibition: PDC-INTENT prohibits tracking, but no prohibition here says so; keep a \
             prohibition with action \"dpv:Tracking\" and target \"dpv:PersonalData\" and no \
             constraint"
        );
        let e = reject(&sd_base_with(elapsed("gt", "P1D")));
        assert_eq!(
            e.to_string(),
            "permission[0].constraint[1]: \"gt\" is not an operator for elapsedTime; use eq, lt \
             or lteq"
        );
    }
}
