//! The closed vocabulary of terms: the purposes, the actions rules may name, the IEEE 7012 bases
//! with the ceiling each one sets, the shipped templates, the JSON-LD context and the schema.
//!
//! Everything a document may say is listed here, and nothing else is understood: an unknown word
//! could only be ignored, and ignoring part of a person's terms would widen them.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The ODRL 2.2 JSON-LD context: the first entry of every terms document's `@context`.
pub const ODRL_CONTEXT: &str = "http://www.w3.org/ns/odrl.jsonld";

/// The JSON Schema (2020-12) that every terms document validates against.
pub const SCHEMA: &str = include_str!("../../../policies/terms.schema.json");

/// As a rule's target, all personal data: it covers every data category.
pub const ALL_PERSONAL_DATA: &str = "dpv:PersonalData";

/// The purpose under which a brand receives an intent: the person asked to be served (DPV's
/// "delivering services as requested by user or consumer"). DPV has no purpose named after
/// intentcasting; this is the closest one that exists.
pub const INTENTCASTING_PURPOSE: &str = "dpv:RequestedServiceProvision";

/// The exact `@context` of a terms document.
///
/// It is fixed rather than merely checked for its prefixes because a context can redefine any
/// word: one that mapped `prohibition` elsewhere would make a prohibition mean nothing to a
/// JSON-LD processor while it still read as one here.
pub fn context() -> Value {
    json!([
        ODRL_CONTEXT,
        {
            "dpv": "https://w3id.org/dpv#",
            "pd": "https://w3id.org/dpv/pd#",
            "p7012": "https://w3id.org/dpv/standards/p7012#",
            "xsd": "http://www.w3.org/2001/XMLSchema#",
            "dct": "http://purl.org/dc/terms/",
            "title": "dct:title",
            "description": "dct:description",
            "basis": { "@id": "p7012:hasAgreement", "@type": "@vocab" },
            "SD-BASE": "p7012:SD-BASE",
            "SD-BASE-DP": "p7012:SD-BASE-DP",
            "PDC-INTENT": "p7012:PDC-INTENT"
        }
    ])
}

// ---------------------------------------------------------------------------------------------
// Purposes
// ---------------------------------------------------------------------------------------------

/// A purpose terms may name: a concept of W3C DPV 2.2 (`dpv:`) or of its IEEE P7012 extension
/// (`p7012:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Purpose {
    pub id: &'static str,
    pub label: &'static str,
    /// The purposes this one is a narrower kind of (DPV's `skos:broader`), among those listed in
    /// [`PURPOSES`]; ODRL's `isA` follows these links.
    pub broader: &'static [&'static str],
}

const fn purpose(
    id: &'static str,
    label: &'static str,
    broader: &'static [&'static str],
) -> Purpose {
    Purpose { id, label, broader }
}

/// Every purpose terms may name. The broader links are DPV 2.2's own; a purpose whose broader
/// concept is not listed (for example `dpv:LegalCompliance`, under `dpv:FulfilmentOfObligation`)
/// simply has none here.
// One line per purpose: a table reads better as a table.
#[rustfmt::skip]
pub const PURPOSES: &[Purpose] = &[
    purpose("p7012:ServiceDelivery", "Service delivery", &[]),
    purpose("dpv:ServiceProvision", "Service provision", &[]),
    purpose("dpv:RequestedServiceProvision", "Requested service provision", &["dpv:ServiceProvision"]),
    purpose("dpv:DeliveryOfGoods", "Delivery of goods", &["dpv:RequestedServiceProvision"]),
    purpose("dpv:TechnicalServiceProvision", "Technical service provision", &["dpv:ServiceProvision"]),
    purpose("dpv:PaymentManagement", "Payment management", &["dpv:ServiceProvision"]),
    purpose("dpv:ServiceRegistration", "Service registration", &["dpv:ServiceProvision"]),
    purpose("dpv:CustomerManagement", "Customer management", &[]),
    purpose("dpv:CustomerOrderManagement", "Customer order management", &["dpv:CustomerManagement"]),
    purpose("dpv:CustomerCare", "Customer care", &["dpv:CustomerManagement"]),
    purpose("dpv:CommunicationManagement", "Communication management", &[]),
    purpose("dpv:CommunicationForCustomerCare", "Communication for customer care", &["dpv:CommunicationManagement", "dpv:CustomerCare"]),
    purpose("dpv:CustomerRelationshipManagement", "Customer relationship management", &["dpv:CustomerManagement"]),
    purpose("dpv:AccountManagement", "Account management", &[]),
    purpose("dpv:LegalCompliance", "Legal compliance", &[]),
    purpose("dpv:SellProducts", "Selling products", &["dpv:ServiceProvision"]),
    purpose("dpv:SellProductsToDataSubject", "Selling products to you", &["dpv:SellProducts"]),
    purpose("dpv:SellDataToThirdParties", "Selling data to third parties", &["dpv:SellProducts"]),
    purpose("dpv:SellInsightsFromData", "Selling insights from data", &["dpv:SellProducts"]),
    purpose("dpv:ServiceOptimisation", "Service optimisation", &["dpv:ServiceProvision"]),
    purpose("dpv:ServiceUsageAnalytics", "Service usage analytics", &["dpv:ServiceProvision"]),
    purpose("p7012:ServiceAnalytics", "Service analytics", &[]),
    purpose("p7012:ServiceImprovement", "Service improvement", &[]),
    purpose("dpv:Personalisation", "Personalisation", &[]),
    purpose("dpv:ServicePersonalisation", "Service personalisation", &["dpv:Personalisation", "dpv:ServiceProvision"]),
    purpose("dpv:ProvidePersonalisedRecommendations", "Personalised recommendations", &["dpv:ServicePersonalisation"]),
    purpose("dpv:ProvideProductRecommendations", "Product recommendations", &["dpv:ProvidePersonalisedRecommendations"]),
    purpose("dpv:Marketing", "Marketing", &[]),
    purpose("dpv:Advertising", "Advertising", &["dpv:Marketing"]),
    purpose("dpv:PersonalisedAdvertising", "Personalised advertising", &["dpv:Advertising", "dpv:Personalisation"]),
    purpose("dpv:TargetedAdvertising", "Targeted advertising", &["dpv:PersonalisedAdvertising"]),
    purpose("dpv:DirectMarketing", "Direct marketing", &["dpv:Marketing"]),
    purpose("dpv:SocialMediaMarketing", "Social media marketing", &["dpv:Marketing"]),
    purpose("dpv:PublicRelations", "Public relations", &["dpv:Marketing"]),
    purpose("dpv:PoliticalCampaign", "Political campaign", &["dpv:Advertising", "dpv:Personalisation"]),
];

impl Purpose {
    pub fn find(id: &str) -> Option<Purpose> {
        PURPOSES.iter().copied().find(|p| p.id == id)
    }

    /// Whether `id` is `ancestor` or a narrower kind of it (ODRL's `isA` over DPV's hierarchy).
    pub fn is_a(id: &str, ancestor: &str) -> bool {
        id == ancestor
            || Purpose::find(id)
                .is_some_and(|p| p.broader.iter().any(|b| Purpose::is_a(b, ancestor)))
    }
}

// ---------------------------------------------------------------------------------------------
// Actions of rules
// ---------------------------------------------------------------------------------------------

/// What a brand asks to do through the vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Read granted fields.
    Read,
    /// Write to granted fields.
    Write,
    /// Receive an intent, with the fields the person disclosed with it.
    ReceiveIntent,
}

impl Action {
    pub(super) fn verb(self) -> &'static str {
        match self {
            Action::Read => "reading",
            Action::Write => "writing",
            Action::ReceiveIntent => "receiving an intent with",
        }
    }
}

/// The action of a rule in a terms document: ODRL 2.2 actions, two DPV processing operations
/// (for the prohibitions of tracking and profiling, which DPV defines as processing, not as
/// purposes) and the P7012 portability obligation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum RuleAction {
    /// `use`: ODRL's most general action.
    #[serde(rename = "use")]
    Use,
    #[serde(rename = "read")]
    Read,
    #[serde(rename = "modify")]
    Modify,
    #[serde(rename = "delete")]
    Delete,
    /// `distribute`: supply the data to third parties.
    #[serde(rename = "distribute")]
    Distribute,
    /// `sell`: transfer the data to a third party for compensation.
    #[serde(rename = "sell")]
    Sell,
    #[serde(rename = "dpv:Profiling")]
    Profiling,
    #[serde(rename = "dpv:Tracking")]
    Tracking,
    /// `p7012:PortabilityRequired`: the brand hands the person's data over in a portable form.
    #[serde(rename = "p7012:PortabilityRequired")]
    Portability,
}

/// Actions a permission or a prohibition may name.
pub(super) const RULE_ACTIONS: &[RuleAction] = &[
    RuleAction::Use,
    RuleAction::Read,
    RuleAction::Modify,
    RuleAction::Delete,
    RuleAction::Distribute,
    RuleAction::Sell,
    RuleAction::Profiling,
    RuleAction::Tracking,
];

/// Actions an obligation may name.
pub(super) const DUTY_ACTIONS: &[RuleAction] = &[RuleAction::Delete, RuleAction::Portability];

impl RuleAction {
    pub const fn as_str(self) -> &'static str {
        match self {
            RuleAction::Use => "use",
            RuleAction::Read => "read",
            RuleAction::Modify => "modify",
            RuleAction::Delete => "delete",
            RuleAction::Distribute => "distribute",
            RuleAction::Sell => "sell",
            RuleAction::Profiling => "dpv:Profiling",
            RuleAction::Tracking => "dpv:Tracking",
            RuleAction::Portability => "p7012:PortabilityRequired",
        }
    }

    pub(super) fn parse(text: &str, allowed: &[RuleAction]) -> Option<RuleAction> {
        allowed.iter().copied().find(|a| a.as_str() == text)
    }

    /// Whether a rule with this action is about what a brand asks of the vault. Tracking,
    /// profiling, distributing and selling happen at the brand, never through the vault: rules
    /// about them bind the brand but match no request.
    pub const fn covers(self, action: Action) -> bool {
        matches!(
            (self, action),
            (RuleAction::Use, _)
                | (RuleAction::Read, Action::Read | Action::ReceiveIntent)
                | (RuleAction::Modify, Action::Write)
        )
    }

    /// Whether this action includes `other`: in ODRL, `read`, `modify`, `delete` and
    /// `distribute` are included in `use`; `sell` is included in `transfer`, not in `use`.
    pub(super) fn includes(self, other: RuleAction) -> bool {
        self == other
            || (self == RuleAction::Use
                && matches!(
                    other,
                    RuleAction::Read
                        | RuleAction::Modify
                        | RuleAction::Delete
                        | RuleAction::Distribute
                ))
    }
}

impl fmt::Display for RuleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(super) fn list_actions(actions: &[RuleAction]) -> String {
    actions
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Basis
// ---------------------------------------------------------------------------------------------

/// The IEEE 7012 (MyTerms) roster agreement a person's terms are built on, as named in the W3C
/// DPV P7012 extension (`https://w3id.org/dpv/standards/p7012#`). Each one is a fixed ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Basis {
    /// Service delivery only; no analytics, tracking or profiling by second or third parties;
    /// no sharing with third parties.
    #[serde(rename = "SD-BASE")]
    SdBase,
    /// `SD-BASE` plus an obligation of data portability.
    #[serde(rename = "SD-BASE-DP")]
    SdBaseDp,
    /// Personal data contributed for intentcasting.
    #[serde(rename = "PDC-INTENT")]
    PdcIntent,
}

/// A prohibition every terms document on a basis must state, and that [`evaluate`] enforces
/// before looking at the document.
///
/// [`evaluate`]: super::evaluate()
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BasisProhibition {
    /// What it forbids, in words.
    pub what: &'static str,
    pub action: RuleAction,
    /// The purposes it forbids, each with all its narrower kinds (`isA`); empty: whatever the
    /// purpose.
    pub purposes: &'static [&'static str],
}

impl BasisProhibition {
    /// Whether it forbids `purpose` (for its action, on all personal data).
    pub fn forbids_purpose(&self, purpose: &str) -> bool {
        self.purposes.is_empty() || self.purposes.iter().any(|p| Purpose::is_a(purpose, p))
    }

    /// How the person can say it again, for the error that says it is missing.
    pub(super) fn hint(&self) -> String {
        let rule = format!(
            "keep a prohibition with action \"{}\" and target \"{ALL_PERSONAL_DATA}\"",
            self.action
        );
        match self.purposes {
            [] => format!("{rule} and no constraint"),
            [one] => format!("{rule} and only the constraint purpose isA {one}"),
            many => format!(
                "{rule} and only a purpose constraint covering {}",
                many.join(" and ")
            ),
        }
    }
}

/// #NoStalking: what all three supported agreements prohibit. SD-BASE's definition in P7012
/// prohibits analytics, tracking and profiling by second and third parties and any sharing with
/// third parties; PDC-INTENT allows data to be used for intentcasting and nothing else, so the
/// same list holds for it. Advertising, marketing and personalisation are the purposes tracking
/// and profiling serve, so they are named as purposes too.
pub(super) const NO_STALKING: &[BasisProhibition] = &[
    BasisProhibition {
        what: "tracking",
        action: RuleAction::Tracking,
        purposes: &[],
    },
    BasisProhibition {
        what: "profiling",
        action: RuleAction::Profiling,
        purposes: &[],
    },
    BasisProhibition {
        what: "sharing with third parties",
        action: RuleAction::Distribute,
        purposes: &[],
    },
    BasisProhibition {
        what: "selling to third parties",
        action: RuleAction::Sell,
        purposes: &[],
    },
    BasisProhibition {
        what: "advertising and marketing",
        action: RuleAction::Use,
        purposes: &["dpv:Marketing"],
    },
    BasisProhibition {
        what: "personalisation",
        action: RuleAction::Use,
        purposes: &["dpv:Personalisation"],
    },
    BasisProhibition {
        what: "analytics",
        action: RuleAction::Use,
        purposes: &["dpv:ServiceUsageAnalytics", "p7012:ServiceAnalytics"],
    },
    BasisProhibition {
        what: "selling data or insights",
        action: RuleAction::Use,
        purposes: &["dpv:SellDataToThirdParties", "dpv:SellInsightsFromData"],
    },
];

/// What delivering a service needs, and nothing more.
const SERVICE_DELIVERY_PURPOSES: &[&str] = &[
    "p7012:ServiceDelivery",
    "dpv:ServiceProvision",
    "dpv:RequestedServiceProvision",
    "dpv:DeliveryOfGoods",
    "dpv:TechnicalServiceProvision",
    "dpv:PaymentManagement",
    "dpv:ServiceRegistration",
    "dpv:CustomerOrderManagement",
    "dpv:CustomerCare",
    "dpv:CommunicationForCustomerCare",
    "dpv:AccountManagement",
    "dpv:LegalCompliance",
];

/// Answering an intent with an offer, and delivering what the person then asks for.
const INTENTCASTING_PURPOSES: &[&str] = &[INTENTCASTING_PURPOSE, "dpv:SellProductsToDataSubject"];

impl Basis {
    pub const ALL: [Basis; 3] = [Basis::SdBase, Basis::SdBaseDp, Basis::PdcIntent];

    pub fn parse(text: &str) -> Option<Basis> {
        Basis::ALL.into_iter().find(|b| b.as_str() == text)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Basis::SdBase => "SD-BASE",
            Basis::SdBaseDp => "SD-BASE-DP",
            Basis::PdcIntent => "PDC-INTENT",
        }
    }

    /// The agreement's IRI in the DPV P7012 extension.
    pub const fn iri(self) -> &'static str {
        match self {
            Basis::SdBase => "https://w3id.org/dpv/standards/p7012#SD-BASE",
            Basis::SdBaseDp => "https://w3id.org/dpv/standards/p7012#SD-BASE-DP",
            Basis::PdcIntent => "https://w3id.org/dpv/standards/p7012#PDC-INTENT",
        }
    }

    /// What the agreement allows, in a sentence.
    pub const fn description(self) -> &'static str {
        match self {
            Basis::SdBase => {
                "Service delivery only: no tracking, no profiling, no analytics, no sharing with \
                 third parties."
            }
            Basis::SdBaseDp => {
                "Service delivery only, with data portability: no tracking, no profiling, no \
                 analytics, no sharing with third parties."
            }
            Basis::PdcIntent => {
                "Data contributed for intentcasting: brands may use it to answer your wishes with \
                 offers, and for nothing else."
            }
        }
    }

    /// Whether brands may receive the person's intents under it.
    pub const fn permits_intentcasting(self) -> bool {
        matches!(self, Basis::PdcIntent)
    }

    /// The purposes a permission may allow under it.
    pub const fn permitted_purposes(self) -> &'static [&'static str] {
        match self {
            Basis::SdBase | Basis::SdBaseDp => SERVICE_DELIVERY_PURPOSES,
            Basis::PdcIntent => INTENTCASTING_PURPOSES,
        }
    }

    /// The actions a permission may allow under it. `use` is never among them: it includes
    /// `distribute`, which every supported basis prohibits.
    pub const fn permitted_actions(self) -> &'static [RuleAction] {
        match self {
            Basis::SdBase | Basis::SdBaseDp => &[RuleAction::Read, RuleAction::Modify],
            Basis::PdcIntent => &[RuleAction::Read],
        }
    }

    /// What it always prohibits; the document must say each of these itself.
    pub const fn prohibitions(self) -> &'static [BasisProhibition] {
        NO_STALKING
    }

    /// The obligations it puts on the brand; the document must state each of them.
    pub const fn duties(self) -> &'static [RuleAction] {
        match self {
            Basis::SdBaseDp => &[RuleAction::Portability],
            Basis::SdBase | Basis::PdcIntent => &[],
        }
    }

    pub fn permits_purpose(self, purpose: &str) -> bool {
        self.permitted_purposes().contains(&purpose)
    }

    /// Whether one of its prohibitions forbids using data for `purpose`.
    pub fn forbids_purpose(self, purpose: &str) -> bool {
        self.forbidding(purpose, RuleAction::Use).is_some()
    }

    /// Whether brands may do this at all under it.
    pub fn permits_action(self, action: Action) -> bool {
        match action {
            Action::ReceiveIntent => self.permits_intentcasting(),
            Action::Read | Action::Write => {
                self.permitted_actions().iter().any(|a| a.covers(action))
            }
        }
    }

    /// The first of its prohibitions of exactly `action` that forbids `purpose`. (Not of the
    /// actions `action` includes: the prohibition of `distribute` holds for every purpose, and
    /// would make every purpose look forbidden for `use`.)
    pub(super) fn forbidding(
        self,
        purpose: &str,
        action: RuleAction,
    ) -> Option<&'static BasisProhibition> {
        self.prohibitions()
            .iter()
            .find(|p| p.action == action && p.forbids_purpose(purpose))
    }
}

impl fmt::Display for Basis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------------------------

/// A terms document shipped in `policies/` for the person to start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Template {
    pub id: &'static str,
    pub title: &'static str,
    pub basis: Basis,
    /// The document, as JSON text.
    #[serde(skip)]
    pub json: &'static str,
}

/// The shipped templates, in the order the app offers them.
pub const TEMPLATES: &[Template] = &[
    Template {
        id: "sd-base",
        title: "Service delivery only (#NoStalking)",
        basis: Basis::SdBase,
        json: include_str!("../../../policies/sd-base.json"),
    },
    Template {
        id: "sd-base-dp",
        title: "Service delivery with data portability (#NoStalking)",
        basis: Basis::SdBaseDp,
        json: include_str!("../../../policies/sd-base-dp.json"),
    },
    Template {
        id: "pdc-intent",
        title: "Intentcasting: answer my wishes with offers",
        basis: Basis::PdcIntent,
        json: include_str!("../../../policies/pdc-intent.json"),
    },
];

impl Template {
    pub fn find(id: &str) -> Option<Template> {
        TEMPLATES.iter().copied().find(|t| t.id == id)
    }

    /// The template as a JSON value, ready to edit or to pass to [`Terms::parse`].
    ///
    /// [`Terms::parse`]: super::Terms::parse
    pub fn document(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.json)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn bases_carry_their_ceilings() {
        for basis in Basis::ALL {
            assert_eq!(Basis::parse(basis.as_str()), Some(basis));
            assert!(basis.iri().ends_with(&format!("#{basis}")));
            assert_eq!(serde_json::to_value(basis).unwrap(), basis.as_str());
            assert!(!basis.description().is_empty());
            // #NoStalking holds on every supported basis.
            for forbidden in [
                "dpv:TargetedAdvertising",
                "dpv:DirectMarketing",
                "dpv:ServicePersonalisation",
                "dpv:ServiceUsageAnalytics",
                "dpv:SellDataToThirdParties",
            ] {
                assert!(basis.forbids_purpose(forbidden), "{basis} {forbidden}");
                assert!(!basis.permits_purpose(forbidden), "{basis} {forbidden}");
            }
            for permitted in basis.permitted_purposes() {
                assert!(Purpose::find(permitted).is_some(), "{permitted}");
                assert!(!basis.forbids_purpose(permitted), "{basis} {permitted}");
            }
            assert!(!basis.permitted_actions().contains(&RuleAction::Use));
        }
        assert!(Basis::parse("SD-BASE-ATP").is_none());
        assert!(Basis::PdcIntent.permits_intentcasting());
        assert!(!Basis::SdBase.permits_intentcasting());
        assert!(!Basis::SdBaseDp.permits_intentcasting());
        assert!(Basis::PdcIntent.permits_purpose(INTENTCASTING_PURPOSE));
        assert!(Basis::SdBase.permits_purpose("dpv:ServiceProvision"));
        assert!(!Basis::PdcIntent.permits_purpose("dpv:ServiceProvision"));
        assert!(Basis::SdBase.permits_action(Action::Write));
        assert!(!Basis::PdcIntent.permits_action(Action::Write));
        assert_eq!(Basis::SdBaseDp.duties(), &[RuleAction::Portability]);
        assert!(Basis::SdBase.duties().is_empty());
    }

    #[test]
    fn purposes_follow_dpv_hierarchy() {
        let mut ids: Vec<_> = PURPOSES.iter().map(|p| p.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), PURPOSES.len(), "duplicate purpose");
        for p in PURPOSES {
            for b in p.broader {
                assert!(Purpose::find(b).is_some(), "{} -> {b}", p.id);
            }
        }
        assert!(Purpose::is_a("dpv:TargetedAdvertising", "dpv:Marketing"));
        assert!(Purpose::is_a(
            "dpv:TargetedAdvertising",
            "dpv:Personalisation"
        ));
        assert!(Purpose::is_a(
            "dpv:ServicePersonalisation",
            "dpv:ServiceProvision"
        ));
        assert!(Purpose::is_a("dpv:DeliveryOfGoods", "dpv:ServiceProvision"));
        assert!(Purpose::is_a("dpv:Marketing", "dpv:Marketing"));
        assert!(!Purpose::is_a("dpv:Marketing", "dpv:Advertising"));
        assert!(!Purpose::is_a("dpv:CustomerCare", "dpv:ServiceProvision"));
    }
}
