//! Terms: the person's own terms of service, and the rule that decides what a brand may do under
//! them.
//!
//! Terms are JSON that is also JSON-LD (design §5): an ODRL 2.2 `Offer` whose permissions,
//! prohibitions and obligations name W3C DPV data categories as targets and are constrained by
//! `purpose`, `dateTime`, `count` and `elapsedTime`, on a `basis` that names an IEEE 7012 (MyTerms)
//! roster agreement. The basis is a ceiling the person can only narrow:
//!
//! - [`Terms::parse`] rejects a document that would widen its basis — a permission for a purpose or
//!   an action the basis does not allow, or a missing prohibition or duty the basis requires (the
//!   document must say them itself, because brands read the document, not this code);
//! - [`evaluate`] checks the basis before the person's own rules, so even terms that had slipped
//!   past validation could not permit what their basis forbids; then any matching prohibition
//!   denies, whatever the permissions say.
//!
//! The vocabulary is closed on purpose. An operand, purpose or category this module did not
//! understand could only be ignored, and ignoring part of a person's terms is how terms get
//! widened by accident. `policies/README.md` lists every name and where it comes from; the
//! templates and the JSON Schema live next to it and are compiled in here.
//!
//! Pure: no I/O, no clock (the time of a request is a field of it), no hashing (the canonical
//! bytes of [`Terms::document`] are hashed elsewhere).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::domain::records::{CATEGORIES, DataCategory};

/// The ODRL 2.2 JSON-LD context: the first entry of every terms document's `@context`.
pub const ODRL_CONTEXT: &str = "http://www.w3.org/ns/odrl.jsonld";

/// The JSON Schema (2020-12) that every terms document validates against.
pub const SCHEMA: &str = include_str!("../../policies/terms.schema.json");

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
    purpose("dpv:SellProductsToDataSubject", "Selling products to the person", &["dpv:SellProducts"]),
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
const RULE_ACTIONS: &[RuleAction] = &[
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
const DUTY_ACTIONS: &[RuleAction] = &[RuleAction::Delete, RuleAction::Portability];

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

    fn parse(text: &str, allowed: &[RuleAction]) -> Option<RuleAction> {
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
    fn includes(self, other: RuleAction) -> bool {
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

fn list_actions(actions: &[RuleAction]) -> String {
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
    fn hint(&self) -> String {
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
const NO_STALKING: &[BasisProhibition] = &[
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
                "Data contributed for intentcasting: brands may use it to answer the person's \
                 intents with offers, and for nothing else."
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
    fn forbidding(self, purpose: &str, action: RuleAction) -> Option<&'static BasisProhibition> {
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
        json: include_str!("../../policies/sd-base.json"),
    },
    Template {
        id: "sd-base-dp",
        title: "Service delivery with data portability (#NoStalking)",
        basis: Basis::SdBaseDp,
        json: include_str!("../../policies/sd-base-dp.json"),
    },
    Template {
        id: "pdc-intent",
        title: "Intentcasting: answer my intents with offers",
        basis: Basis::PdcIntent,
        json: include_str!("../../policies/pdc-intent.json"),
    },
];

impl Template {
    pub fn find(id: &str) -> Option<Template> {
        TEMPLATES.iter().copied().find(|t| t.id == id)
    }

    /// The template as a JSON value, ready to edit or to pass to [`Terms::parse`].
    pub fn document(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.json)
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Terms
// ---------------------------------------------------------------------------------------------

/// A validated terms document.
#[derive(Debug, Clone, PartialEq)]
pub struct Terms {
    document: Value,
    basis: Basis,
    title: Option<String>,
    permissions: Vec<Rule>,
    prohibitions: Vec<Rule>,
    obligations: Vec<Rule>,
}

/// A permission, prohibition or obligation.
#[derive(Debug, Clone, PartialEq)]
struct Rule {
    action: RuleAction,
    targets: Vec<&'static str>,
    constraints: Vec<Constraint>,
}

#[derive(Debug, Clone, PartialEq)]
enum Constraint {
    Purpose {
        op: PurposeOp,
        purposes: Vec<&'static str>,
    },
    DateTime {
        op: Cmp,
        at: OffsetDateTime,
        text: String,
    },
    Count {
        op: Cmp,
        n: u64,
    },
    ElapsedTime {
        op: Cmp,
        period: Duration,
        text: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PurposeOp {
    Eq,
    Neq,
    IsA,
    IsAnyOf,
    IsNoneOf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Lteq,
    Gt,
    Gteq,
}

/// How errors name the document as a whole.
const TOP: &str = "the terms";

const TOP_LEVEL: &[&str] = &[
    "@context",
    "@type",
    "uid",
    "assigner",
    "basis",
    "title",
    "description",
    "permission",
    "prohibition",
    "obligation",
];
const RULE_PROPERTIES: &[&str] = &["action", "target", "constraint"];
const CONSTRAINT_PROPERTIES: &[&str] = &["leftOperand", "operator", "rightOperand"];

impl Terms {
    /// Validates a terms document: closed vocabulary, well-formed values, and nothing wider than
    /// its basis.
    pub fn parse(document: &Value) -> Result<Terms, TermsError> {
        let top = object(document, TOP)?;
        check_properties(top, TOP, TOP_LEVEL)?;
        if top.get("@context") != Some(&context()) {
            return Err(TermsError::WrongContext);
        }
        match top.get("@type") {
            Some(Value::String(t)) if t == "Offer" => {}
            Some(other) => {
                return Err(TermsError::WrongPolicyType {
                    found: other.to_string(),
                });
            }
            None => return Err(missing(TOP, "@type")),
        }
        non_empty_string(top, "uid", TOP)?;
        non_empty_string(top, "assigner", TOP)?;
        let basis = parse_basis(top)?;
        let title = optional_string(top, "title", TOP)?;
        optional_string(top, "description", TOP)?;

        let permissions = parse_rules(top, "permission", RULE_ACTIONS)?;
        let prohibitions = parse_rules(top, "prohibition", RULE_ACTIONS)?;
        let obligations = parse_rules(top, "obligation", DUTY_ACTIONS)?;
        for (i, permission) in permissions.iter().enumerate() {
            check_within_basis(basis, i, permission)?;
        }
        check_basis_prohibitions(basis, &prohibitions)?;
        check_basis_duties(basis, &obligations)?;

        Ok(Terms {
            document: document.clone(),
            basis,
            title,
            permissions,
            prohibitions,
            obligations,
        })
    }

    /// The templates the person can start from.
    pub fn templates() -> &'static [Template] {
        TEMPLATES
    }

    /// The document exactly as validated; its canonical form is what gets hashed and signed.
    pub fn document(&self) -> &Value {
        &self.document
    }

    pub fn basis(&self) -> Basis {
        self.basis
    }

    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    /// Every purpose some permission allows, in [`PURPOSES`] order.
    pub fn purposes(&self) -> Vec<&'static str> {
        PURPOSES
            .iter()
            .map(|p| p.id)
            .filter(|id| {
                self.permissions
                    .iter()
                    .any(|r| r.has_purpose_constraint() && r.purpose_applies(id))
            })
            .collect()
    }

    /// Every data category some permission targets, in [`CATEGORIES`] order.
    pub fn data_categories(&self) -> Vec<&'static str> {
        CATEGORIES
            .iter()
            .map(|c| c.id)
            .filter(|id| self.permissions.iter().any(|r| r.targets.contains(id)))
            .collect()
    }

    /// How long a brand may keep what it received: the shortest `elapsedTime` bound on a `delete`
    /// obligation. Counted from when the brand received the data.
    pub fn retention(&self) -> Option<Duration> {
        self.obligations
            .iter()
            .filter(|r| r.action == RuleAction::Delete)
            .flat_map(|r| &r.constraints)
            .filter_map(|c| match c {
                Constraint::ElapsedTime { period, .. } => Some(*period),
                _ => None,
            })
            .min()
    }

    /// Whether the basis puts the duty of data portability on the brand.
    pub fn requires_portability(&self) -> bool {
        self.basis.duties().contains(&RuleAction::Portability)
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing: shape and vocabulary
// ---------------------------------------------------------------------------------------------

fn object<'a>(value: &'a Value, at: &str) -> Result<&'a Map<String, Value>, TermsError> {
    value.as_object().ok_or_else(|| TermsError::WrongType {
        at: at.to_owned(),
        expected: "must be a JSON object",
    })
}

fn missing(at: &str, property: &'static str) -> TermsError {
    TermsError::Missing {
        at: at.to_owned(),
        property,
    }
}

fn check_properties(
    object: &Map<String, Value>,
    at: &str,
    allowed: &[&str],
) -> Result<(), TermsError> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(TermsError::UnknownProperty {
            at: at.to_owned(),
            property: unknown.clone(),
            allowed: allowed.join(", "),
        }),
        None => Ok(()),
    }
}

/// The location of `name` inside `at`; top-level properties are named alone.
fn child(at: &str, name: &str) -> String {
    if at == TOP {
        name.to_owned()
    } else {
        format!("{at}.{name}")
    }
}

fn field<'a>(
    object: &'a Map<String, Value>,
    name: &'static str,
    at: &str,
) -> Result<&'a Value, TermsError> {
    object.get(name).ok_or_else(|| missing(at, name))
}

fn string_field<'a>(
    object: &'a Map<String, Value>,
    name: &'static str,
    at: &str,
) -> Result<&'a str, TermsError> {
    field(object, name, at)?
        .as_str()
        .ok_or_else(|| TermsError::WrongType {
            at: child(at, name),
            expected: "must be a string",
        })
}

fn non_empty_string<'a>(
    object: &'a Map<String, Value>,
    name: &'static str,
    at: &str,
) -> Result<&'a str, TermsError> {
    let text = string_field(object, name, at)?;
    if text.trim().is_empty() {
        return Err(TermsError::WrongType {
            at: child(at, name),
            expected: "must not be empty",
        });
    }
    Ok(text)
}

fn optional_string(
    object: &Map<String, Value>,
    name: &'static str,
    at: &str,
) -> Result<Option<String>, TermsError> {
    match object.get(name) {
        None => Ok(None),
        Some(_) => string_field(object, name, at).map(|s| Some(s.to_owned())),
    }
}

fn parse_basis(top: &Map<String, Value>) -> Result<Basis, TermsError> {
    let text = string_field(top, "basis", TOP)?;
    Basis::parse(text).ok_or_else(|| TermsError::UnknownBasis {
        found: text.to_owned(),
    })
}

/// Parses the list `kind` (`permission`, `prohibition` or `obligation`); absent means empty.
fn parse_rules(
    top: &Map<String, Value>,
    kind: &'static str,
    actions: &[RuleAction],
) -> Result<Vec<Rule>, TermsError> {
    let Some(list) = top.get(kind) else {
        return Ok(Vec::new());
    };
    let items = list.as_array().ok_or_else(|| TermsError::WrongType {
        at: kind.to_owned(),
        expected: "must be a list of rules",
    })?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_rule(item, &format!("{kind}[{i}]"), actions))
        .collect()
}

fn parse_rule(value: &Value, at: &str, actions: &[RuleAction]) -> Result<Rule, TermsError> {
    let rule = object(value, at)?;
    check_properties(rule, at, RULE_PROPERTIES)?;
    let action_text = string_field(rule, "action", at)?;
    let action =
        RuleAction::parse(action_text, actions).ok_or_else(|| TermsError::UnknownAction {
            at: format!("{at}.action"),
            found: action_text.to_owned(),
            allowed: list_actions(actions),
        })?;
    let targets = parse_targets(field(rule, "target", at)?, &format!("{at}.target"))?;
    let constraints = match rule.get("constraint") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(j, c)| parse_constraint(c, &format!("{at}.constraint[{j}]")))
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(TermsError::WrongType {
                at: format!("{at}.constraint"),
                expected: "must be a list of constraints",
            });
        }
    };
    Ok(Rule {
        action,
        targets,
        constraints,
    })
}

/// A target is one data category or a non-empty list of them (ODRL reads a rule with several
/// targets as one rule per target).
fn parse_targets(value: &Value, at: &str) -> Result<Vec<&'static str>, TermsError> {
    let category = |v: &Value, at: String| -> Result<&'static str, TermsError> {
        let text = v.as_str().ok_or_else(|| TermsError::WrongType {
            at: at.clone(),
            expected: "must be a data category such as \"pd:EmailAddress\"",
        })?;
        DataCategory::find(text)
            .map(|c| c.id)
            .ok_or_else(|| TermsError::UnknownCategory {
                at,
                found: text.to_owned(),
            })
    };
    match value {
        Value::Array(items) if items.is_empty() => Err(TermsError::WrongType {
            at: at.to_owned(),
            expected: "must name at least one data category",
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| category(v, format!("{at}[{i}]")))
            .collect(),
        single => category(single, at.to_owned()).map(|c| vec![c]),
    }
}

fn parse_constraint(value: &Value, at: &str) -> Result<Constraint, TermsError> {
    let constraint = object(value, at)?;
    check_properties(constraint, at, CONSTRAINT_PROPERTIES)?;
    let left = string_field(constraint, "leftOperand", at)?;
    let operator = string_field(constraint, "operator", at)?;
    let right = field(constraint, "rightOperand", at)?;
    match left {
        "purpose" => parse_purpose_constraint(operator, right, at),
        "dateTime" => {
            // ODRL: "may be exercised before (lt/lteq) or after (gt/gteq)" the right operand.
            let op = comparison(operator, "dateTime", "lt, lteq, gt or gteq", at)?;
            if op == Cmp::Eq {
                return Err(unknown_operator(
                    at,
                    "dateTime",
                    operator,
                    "lt, lteq, gt or gteq",
                ));
            }
            let text = typed_literal(right, "xsd:dateTime", "2026-12-31T23:59:59Z", at)?;
            let when =
                OffsetDateTime::parse(text, &Rfc3339).map_err(|_| TermsError::InvalidValue {
                    at: at.to_owned(),
                    reason: format!(
                        "dateTime must be an RFC 3339 date and time with its offset, such as \
                         2026-12-31T23:59:59Z, not \"{text}\""
                    ),
                })?;
            Ok(Constraint::DateTime {
                op,
                at: when,
                text: text.to_owned(),
            })
        }
        "count" => {
            let op = comparison(operator, "count", "eq, lt, lteq, gt or gteq", at)?;
            let n = right.as_u64().ok_or_else(|| TermsError::InvalidValue {
                at: at.to_owned(),
                reason: format!(
                    "count must be a whole number of uses, 0 or more (such as 10), not {right}"
                ),
            })?;
            Ok(Constraint::Count { op, n })
        }
        "elapsedTime" => {
            // ODRL: "Only the eq, lt, lteq operators SHOULD be used" with elapsedTime.
            let op = comparison(operator, "elapsedTime", "eq, lt or lteq", at)?;
            if matches!(op, Cmp::Gt | Cmp::Gteq) {
                return Err(unknown_operator(
                    at,
                    "elapsedTime",
                    operator,
                    "eq, lt or lteq",
                ));
            }
            let text = typed_literal(right, "xsd:duration", "P30D", at)?;
            let period = parse_duration(text).map_err(|why| TermsError::InvalidValue {
                at: at.to_owned(),
                reason: format!("elapsedTime \"{text}\" {why}"),
            })?;
            Ok(Constraint::ElapsedTime {
                op,
                period,
                text: text.to_owned(),
            })
        }
        other => Err(TermsError::UnknownLeftOperand {
            at: at.to_owned(),
            found: other.to_owned(),
        }),
    }
}

fn unknown_operator(
    at: &str,
    operand: &'static str,
    found: &str,
    allowed: &'static str,
) -> TermsError {
    TermsError::UnknownOperator {
        at: at.to_owned(),
        operand,
        found: found.to_owned(),
        allowed,
    }
}

fn comparison(
    operator: &str,
    operand: &'static str,
    allowed: &'static str,
    at: &str,
) -> Result<Cmp, TermsError> {
    match operator {
        "eq" => Ok(Cmp::Eq),
        "lt" => Ok(Cmp::Lt),
        "lteq" => Ok(Cmp::Lteq),
        "gt" => Ok(Cmp::Gt),
        "gteq" => Ok(Cmp::Gteq),
        _ => Err(unknown_operator(at, operand, operator, allowed)),
    }
}

/// A JSON-LD typed literal: `{"@value": "...", "@type": datatype}`.
fn typed_literal<'a>(
    value: &'a Value,
    datatype: &'static str,
    example: &str,
    at: &str,
) -> Result<&'a str, TermsError> {
    let shape = || TermsError::InvalidValue {
        at: at.to_owned(),
        reason: format!(
            "rightOperand must be written {{\"@value\": \"{example}\", \"@type\": \"{datatype}\"}}"
        ),
    };
    let literal = value.as_object().ok_or_else(shape)?;
    if literal.len() != 2 || literal.get("@type").and_then(Value::as_str) != Some(datatype) {
        return Err(shape());
    }
    literal
        .get("@value")
        .and_then(Value::as_str)
        .ok_or_else(shape)
}

fn parse_purpose_constraint(
    operator: &str,
    right: &Value,
    at: &str,
) -> Result<Constraint, TermsError> {
    let op = match operator {
        "eq" => PurposeOp::Eq,
        "neq" => PurposeOp::Neq,
        "isA" => PurposeOp::IsA,
        "isAnyOf" => PurposeOp::IsAnyOf,
        "isNoneOf" => PurposeOp::IsNoneOf,
        _ => {
            return Err(unknown_operator(
                at,
                "purpose",
                operator,
                "eq, neq, isA, isAnyOf or isNoneOf",
            ));
        }
    };
    let purposes = match (op, right) {
        (PurposeOp::IsAnyOf | PurposeOp::IsNoneOf, Value::Array(items)) if !items.is_empty() => {
            items
                .iter()
                .map(|item| purpose_ref(item, at))
                .collect::<Result<_, _>>()?
        }
        (PurposeOp::IsAnyOf | PurposeOp::IsNoneOf, _) => {
            return Err(TermsError::InvalidValue {
                at: at.to_owned(),
                reason: format!(
                    "{operator} takes a non-empty list of purposes, such as \
                     [{{\"@id\": \"dpv:ServiceProvision\"}}]"
                ),
            });
        }
        (_, Value::Array(_)) => {
            return Err(TermsError::InvalidValue {
                at: at.to_owned(),
                reason: format!(
                    "{operator} compares with one purpose; use isAnyOf or isNoneOf for a list"
                ),
            });
        }
        (_, single) => vec![purpose_ref(single, at)?],
    };
    Ok(Constraint::Purpose { op, purposes })
}

/// A purpose is an IRI, written `{"@id": "dpv:ServiceProvision"}` so that JSON-LD reads it as
/// one and not as a plain string.
fn purpose_ref(value: &Value, at: &str) -> Result<&'static str, TermsError> {
    let id = value
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("@id"))
        .and_then(Value::as_str)
        .ok_or_else(|| TermsError::InvalidValue {
            at: at.to_owned(),
            reason: format!(
                "a purpose is written {{\"@id\": \"dpv:ServiceProvision\"}}, not {value}"
            ),
        })?;
    Purpose::find(id)
        .map(|p| p.id)
        .ok_or_else(|| TermsError::UnknownPurpose {
            at: at.to_owned(),
            found: id.to_owned(),
        })
}

/// Parses an `xsd:duration` of days, hours, minutes and seconds (`P30D`, `PT24H`, `P1DT12H`).
/// Years and months are refused: they have no fixed length, and a limit that means 28 days in
/// one month and 31 in another is not one a person can check.
fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    const NOT_A_DURATION: &str = "is not a duration such as P30D or PT24H";
    let rest = text.strip_prefix('P').ok_or(NOT_A_DURATION)?;
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (rest, None),
    };
    if date.contains(['Y', 'M', 'W']) {
        return Err(
            "uses years, months or weeks, which have no fixed length; count days instead, \
                    such as P365D",
        );
    }
    let mut seconds: i64 = 0;
    let mut parts = 0;
    if !date.is_empty() {
        let days = date.strip_suffix('D').ok_or(NOT_A_DURATION)?;
        seconds = add_part(seconds, days, 86_400).ok_or(NOT_A_DURATION)?;
        parts += 1;
    }
    if let Some(mut time) = time {
        for (unit, factor) in [('H', 3_600), ('M', 60), ('S', 1)] {
            if let Some((digits, after)) = time.split_once(unit) {
                seconds = add_part(seconds, digits, factor).ok_or(NOT_A_DURATION)?;
                time = after;
                parts += 1;
            }
        }
        if !time.is_empty() || parts == 0 || rest.ends_with('T') {
            return Err(NOT_A_DURATION);
        }
    }
    if parts == 0 {
        return Err(NOT_A_DURATION);
    }
    Ok(Duration::seconds(seconds))
}

/// `total + digits × factor`, or `None` if `digits` is not a plain number or the sum overflows.
fn add_part(total: i64, digits: &str, factor: i64) -> Option<i64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    total.checked_add(n.checked_mul(factor)?)
}

// ---------------------------------------------------------------------------------------------
// Parsing: the basis is a ceiling
// ---------------------------------------------------------------------------------------------

/// A permission may not allow an action or a purpose its basis does not.
fn check_within_basis(basis: Basis, i: usize, rule: &Rule) -> Result<(), TermsError> {
    let at = format!("permission[{i}]");
    if !basis.permitted_actions().contains(&rule.action) {
        let reason = if rule.action == RuleAction::Use {
            format!(
                "\"use\" includes every action, among them distribute, which {basis} prohibits; \
                 permit {} instead",
                list_actions(basis.permitted_actions())
            )
        } else {
            format!(
                "{basis} lets brands {} only, not {}",
                list_actions(basis.permitted_actions()),
                rule.action
            )
        };
        return Err(TermsError::Widens { at, basis, reason });
    }
    if !rule.has_purpose_constraint() {
        return Err(TermsError::Widens {
            at,
            basis,
            reason: format!(
                "it has no purpose constraint, so it would allow any purpose; {basis} permits \
                 only {}",
                basis.permitted_purposes().join(", ")
            ),
        });
    }
    let widening = PURPOSES
        .iter()
        .find(|p| rule.purpose_applies(p.id) && !basis.permits_purpose(p.id));
    if let Some(wide) = widening {
        // Point at the first purpose constraint that lets the purpose through.
        let blamed = rule
            .constraints
            .iter()
            .position(|c| matches!(c, Constraint::Purpose { .. }) && c.purpose_holds(wide.id))
            .map_or(at, |j| format!("permission[{i}].constraint[{j}]"));
        let forbidden = basis
            .forbidding(wide.id, RuleAction::Use)
            .map(|p| format!(", and it prohibits {}", p.what))
            .unwrap_or_default();
        return Err(TermsError::Widens {
            at: blamed,
            basis,
            reason: format!(
                "it would allow the purpose {} ({}), which {basis} does not permit{forbidden}",
                wide.id, wide.label
            ),
        });
    }
    Ok(())
}

/// Every prohibition of the basis must be stated, unconditionally and on all personal data, by
/// one prohibition or jointly by several (one per purpose, say). A prohibition with a time or
/// count condition does not state it: it would lapse.
fn check_basis_prohibitions(basis: Basis, prohibitions: &[Rule]) -> Result<(), TermsError> {
    for required in basis.prohibitions() {
        let stating: Vec<&Rule> = prohibitions
            .iter()
            .filter(|p| {
                p.action.includes(required.action)
                    && p.targets.contains(&ALL_PERSONAL_DATA)
                    && p.constraints
                        .iter()
                        .all(|c| matches!(c, Constraint::Purpose { .. }))
            })
            .collect();
        let stated = if required.purposes.is_empty() {
            stating.iter().any(|p| !p.has_purpose_constraint())
        } else {
            PURPOSES
                .iter()
                .filter(|purpose| required.forbids_purpose(purpose.id))
                .all(|purpose| stating.iter().any(|p| p.purpose_applies(purpose.id)))
        };
        if !stated {
            return Err(TermsError::BasisProhibitionMissing {
                basis,
                what: required.what,
                hint: required.hint(),
            });
        }
    }
    Ok(())
}

/// Every duty of the basis must be stated, unconditionally and on all personal data.
fn check_basis_duties(basis: Basis, obligations: &[Rule]) -> Result<(), TermsError> {
    for duty in basis.duties() {
        let stated = obligations.iter().any(|o| {
            o.action == *duty && o.targets.contains(&ALL_PERSONAL_DATA) && o.constraints.is_empty()
        });
        if !stated {
            return Err(TermsError::BasisDutyMissing {
                basis,
                what: "data portability",
                hint: format!(
                    "keep an obligation with action \"{duty}\", target \"{ALL_PERSONAL_DATA}\" \
                     and no constraint"
                ),
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Evaluation
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
    fn verb(self) -> &'static str {
        match self {
            Action::Read => "reading",
            Action::Write => "writing",
            Action::ReceiveIntent => "receiving an intent with",
        }
    }
}

/// One request to check against the terms. Time and use count come from the caller: the
/// domain reads no clock and keeps no state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    pub action: Action,
    /// The data category of every field the brand would touch.
    pub categories: Vec<String>,
    /// The purpose the brand declared, a DPV id such as `dpv:ServiceProvision`.
    pub purpose: String,
    /// When the request is made.
    pub at: OffsetDateTime,
    /// How many times the grant was used before this request.
    pub count_so_far: u64,
    /// When the brand accepted these terms; `elapsedTime` counts from here.
    pub agreed_at: OffsetDateTime,
}

/// The answer, with the rule that decided it and why, for the audit log and the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub permitted: bool,
    /// `"permission[0]"`, `"prohibition[2]"`, `"basis SD-BASE"`, `"request"` or
    /// `"no permission matches"`.
    pub rule: String,
    pub reason: String,
}

impl Decision {
    fn deny(rule: impl Into<String>, reason: String) -> Decision {
        Decision {
            permitted: false,
            rule: rule.into(),
            reason,
        }
    }
}

/// Decides a request. The basis comes first, then the document's prohibitions, then its
/// permissions: a prohibition beats a permission, always, and nothing is permitted unless a
/// permission says so.
pub fn evaluate(terms: &Terms, request: &AccessRequest) -> Decision {
    if let Some(denied) = check_request(request) {
        return denied;
    }
    if let Some(denied) = check_basis(terms.basis, request) {
        return denied;
    }
    let what = describe(request);
    if let Some(i) = terms.prohibitions.iter().position(|p| p.forbids(request)) {
        return Decision::deny(
            format!("prohibition[{i}]"),
            format!("the terms prohibit {what}"),
        );
    }
    if let Some(i) = terms.permissions.iter().position(|p| p.allows(request)) {
        return Decision {
            permitted: true,
            rule: format!("permission[{i}]"),
            reason: format!("the terms permit {what}"),
        };
    }
    let reason = terms
        .permissions
        .iter()
        .enumerate()
        .find_map(|(i, p)| p.near_miss(request).map(|(j, c)| (i, j, c)))
        .map_or_else(
            || format!("no permission covers {what}"),
            |(i, j, c)| {
                format!(
                    "permission[{i}] would cover {what}, but its constraint[{j}] ({c}) does \
                     not hold"
                )
            },
        );
    Decision::deny("no permission matches", reason)
}

/// A request naming a purpose or category the vault does not know is refused before anything
/// else: it cannot be matched against rules written in the closed vocabulary.
fn check_request(request: &AccessRequest) -> Option<Decision> {
    if Purpose::find(&request.purpose).is_none() {
        return Some(Decision::deny(
            "request",
            format!("\"{}\" is not a purpose the vault knows", request.purpose),
        ));
    }
    request
        .categories
        .iter()
        .find(|c| DataCategory::find(c).is_none())
        .map(|c| {
            Decision::deny(
                "request",
                format!("\"{c}\" is not a data category the vault knows"),
            )
        })
}

fn check_basis(basis: Basis, request: &AccessRequest) -> Option<Decision> {
    let rule = format!("basis {basis}");
    let purpose = &request.purpose;
    if let Some(p) = basis
        .prohibitions()
        .iter()
        .find(|p| p.action.covers(request.action) && p.forbids_purpose(purpose))
    {
        return Some(Decision::deny(
            rule,
            format!(
                "{basis} prohibits {}, and {purpose} is a kind of it",
                p.what
            ),
        ));
    }
    if !basis.permits_action(request.action) {
        let reason = match request.action {
            Action::ReceiveIntent => {
                format!("{basis} does not cover intentcasting; that needs PDC-INTENT")
            }
            Action::Read | Action::Write => format!(
                "{basis} lets brands {} only",
                list_actions(basis.permitted_actions())
            ),
        };
        return Some(Decision::deny(rule, reason));
    }
    if !basis.permits_purpose(purpose) {
        return Some(Decision::deny(
            rule,
            format!("{purpose} is not a purpose {basis} permits"),
        ));
    }
    None
}

fn describe(request: &AccessRequest) -> String {
    let categories = if request.categories.is_empty() {
        "no personal data".to_owned()
    } else {
        request.categories.join(", ")
    };
    format!(
        "{} {categories} for {}",
        request.action.verb(),
        request.purpose
    )
}

impl Rule {
    fn covers_category(&self, category: &str) -> bool {
        self.targets
            .iter()
            .any(|t| *t == category || *t == ALL_PERSONAL_DATA)
    }

    fn has_purpose_constraint(&self) -> bool {
        self.constraints
            .iter()
            .any(|c| matches!(c, Constraint::Purpose { .. }))
    }

    /// Whether all of its purpose constraints let `purpose` through.
    fn purpose_applies(&self, purpose: &str) -> bool {
        self.constraints
            .iter()
            .filter(|c| matches!(c, Constraint::Purpose { .. }))
            .all(|c| c.purpose_holds(purpose))
    }

    /// A permission allows a request when its action covers it, its targets cover every
    /// category asked for, and every constraint holds.
    fn allows(&self, request: &AccessRequest) -> bool {
        self.action.covers(request.action)
            && request.categories.iter().all(|c| self.covers_category(c))
            && self.constraints.iter().all(|c| c.holds(request))
    }

    /// A prohibition forbids a request when its action covers it, it targets any of the
    /// categories asked for (all personal data covers even a request that names none), and every
    /// constraint holds.
    fn forbids(&self, request: &AccessRequest) -> bool {
        self.action.covers(request.action)
            && (self.targets.contains(&ALL_PERSONAL_DATA)
                || request.categories.iter().any(|c| self.covers_category(c)))
            && self.constraints.iter().all(|c| c.holds(request))
    }

    /// For a permission that would allow the request but for a time or count constraint, that
    /// constraint: the person is better served by "the 5 uses are spent" than by "no permission".
    fn near_miss(&self, request: &AccessRequest) -> Option<(usize, &Constraint)> {
        let otherwise_fits = self.action.covers(request.action)
            && request.categories.iter().all(|c| self.covers_category(c))
            && self.purpose_applies(&request.purpose);
        if !otherwise_fits {
            return None;
        }
        self.constraints
            .iter()
            .enumerate()
            .find(|(_, c)| !c.holds(request))
    }
}

impl Constraint {
    fn purpose_holds(&self, purpose: &str) -> bool {
        match self {
            Constraint::Purpose { op, purposes } => match op {
                PurposeOp::Eq => purposes.first().is_some_and(|p| *p == purpose),
                PurposeOp::Neq => purposes.first().is_some_and(|p| *p != purpose),
                PurposeOp::IsA => purposes.first().is_some_and(|p| Purpose::is_a(purpose, p)),
                PurposeOp::IsAnyOf => purposes.contains(&purpose),
                PurposeOp::IsNoneOf => !purposes.contains(&purpose),
            },
            _ => true,
        }
    }

    fn holds(&self, request: &AccessRequest) -> bool {
        match self {
            Constraint::Purpose { .. } => self.purpose_holds(&request.purpose),
            Constraint::DateTime { op, at, .. } => op.compare(request.at, *at),
            // The count of this use: with "lteq 5" the fifth use is the last one allowed.
            Constraint::Count { op, n } => op.compare(request.count_so_far.saturating_add(1), *n),
            Constraint::ElapsedTime { op, period, .. } => {
                op.compare(request.at - request.agreed_at, *period)
            }
        }
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Constraint::Purpose { op, purposes } => {
                write!(f, "purpose {} {}", op.as_str(), purposes.join(", "))
            }
            Constraint::DateTime { op, text, .. } => write!(f, "dateTime {} {text}", op.as_str()),
            Constraint::Count { op, n } => write!(f, "count {} {n}", op.as_str()),
            Constraint::ElapsedTime { op, text, .. } => {
                write!(f, "elapsedTime {} {text}", op.as_str())
            }
        }
    }
}

impl PurposeOp {
    fn as_str(self) -> &'static str {
        match self {
            PurposeOp::Eq => "eq",
            PurposeOp::Neq => "neq",
            PurposeOp::IsA => "isA",
            PurposeOp::IsAnyOf => "isAnyOf",
            PurposeOp::IsNoneOf => "isNoneOf",
        }
    }
}

impl Cmp {
    fn compare<T: Ord>(self, left: T, right: T) -> bool {
        match self {
            Cmp::Eq => left == right,
            Cmp::Lt => left < right,
            Cmp::Lteq => left <= right,
            Cmp::Gt => left > right,
            Cmp::Gteq => left >= right,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Cmp::Eq => "eq",
            Cmp::Lt => "lt",
            Cmp::Lteq => "lteq",
            Cmp::Gt => "gt",
            Cmp::Gteq => "gteq",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Summary in plain words
// ---------------------------------------------------------------------------------------------

/// Whether a sentence grants, forbids or requires: the same constraint reads differently in
/// each ("at most 10 times" is a limit on a permission, but a prohibition "for the first 10
/// uses" forbids exactly those).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Modal {
    May,
    MayNot,
    Must,
}

impl Modal {
    const fn as_str(self) -> &'static str {
        match self {
            Modal::May => "Brands may",
            Modal::MayNot => "Brands may not",
            Modal::Must => "Brands must",
        }
    }
}

impl Terms {
    /// The terms in plain words for the person and for brands: one sentence per line, the basis
    /// first, then every permission, prohibition and duty in document order, then how long
    /// brands may keep what they receive. Labels come from [`PURPOSES`] and [`CATEGORIES`], with
    /// the machine ids in parentheses so a brand can find each in the document.
    ///
    /// It describes the document; it decides nothing. A delete duty bounded only by
    /// `elapsedTime` is said once, by the last line, in the words of [`Terms::retention`].
    pub fn summary(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "Built on IEEE 7012 {} — {}",
            self.basis,
            lower_first(self.basis.description())
        )];
        lines.extend(self.permissions.iter().map(|r| r.sentence(Modal::May)));
        lines.extend(self.prohibitions.iter().map(|r| r.sentence(Modal::MayNot)));
        lines.extend(
            self.obligations
                .iter()
                .filter(|r| !r.is_retention())
                .map(|r| r.sentence(Modal::Must)),
        );
        if let Some(period) = self.retention() {
            lines.push(format!(
                "Brands must delete what they receive within {} of receiving it.",
                words_for_duration(period)
            ));
        }
        lines
    }
}

impl RuleAction {
    /// The action as a verb phrase around its object, with the machine id where the words alone
    /// would not tell a brand which action is meant.
    fn phrase(self, data: &str) -> String {
        match self {
            RuleAction::Use => format!("use {data}"),
            RuleAction::Read => format!("read {data}"),
            RuleAction::Modify => format!("update {data}"),
            RuleAction::Delete => format!("delete {data}"),
            RuleAction::Distribute => format!("share {data} with third parties ({self})"),
            RuleAction::Sell => format!("sell {data}"),
            RuleAction::Profiling => format!("profile you ({self}) with {data}"),
            RuleAction::Tracking => format!("track you ({self}) with {data}"),
            RuleAction::Portability => {
                format!("let you take {data} with you in a portable form ({self})")
            }
        }
    }
}

impl Rule {
    /// One sentence: "Brands may read your email address (pd:EmailAddress) for customer care
    /// (dpv:CustomerCare), at most 10 times."
    fn sentence(&self, modal: Modal) -> String {
        let mut sentence = format!(
            "{} {}",
            modal.as_str(),
            self.action.phrase(&data_words(&self.targets, modal))
        );
        let purposes: Vec<String> = self
            .constraints
            .iter()
            .filter_map(Constraint::purpose_words)
            .collect();
        if !purposes.is_empty() {
            sentence.push(' ');
            sentence.push_str(&purposes.join(" and "));
        }
        for limit in self.constraints.iter().filter_map(|c| c.limit_words(modal)) {
            sentence.push_str(", ");
            sentence.push_str(&limit);
        }
        sentence.push('.');
        sentence
    }

    /// A delete duty bounded only by time: what [`Terms::retention`] reports.
    fn is_retention(&self) -> bool {
        self.action == RuleAction::Delete
            && !self.constraints.is_empty()
            && self
                .constraints
                .iter()
                .all(|c| matches!(c, Constraint::ElapsedTime { .. }))
    }
}

/// The data a rule targets: "your name and email address (pd:Name, pd:EmailAddress)", or all of
/// it when the targets include [`ALL_PERSONAL_DATA`].
fn data_words(targets: &[&'static str], modal: Modal) -> String {
    if targets.contains(&ALL_PERSONAL_DATA) {
        return match modal {
            Modal::Must => "your data".to_owned(),
            Modal::May | Modal::MayNot => "any of your data".to_owned(),
        };
    }
    let labels: Vec<String> = targets
        .iter()
        .map(|id| DataCategory::find(id).map_or_else(|| (*id).to_owned(), |c| lower_first(c.label)))
        .collect();
    format!(
        "your {} ({})",
        join_words(&labels, "and"),
        targets.join(", ")
    )
}

impl Constraint {
    /// A purpose constraint as "for ...", or `None` for any other constraint.
    fn purpose_words(&self) -> Option<String> {
        let Constraint::Purpose { op, purposes } = self else {
            return None;
        };
        let labels: Vec<String> = purposes
            .iter()
            .map(|id| Purpose::find(id).map_or_else(|| (*id).to_owned(), |p| lower_first(p.label)))
            .collect();
        let ids = purposes.join(", ");
        Some(match op {
            PurposeOp::Eq | PurposeOp::IsAnyOf => {
                format!("for {} ({ids})", join_words(&labels, "or"))
            }
            PurposeOp::IsA => format!("for {} of any kind ({ids})", join_words(&labels, "or")),
            PurposeOp::Neq | PurposeOp::IsNoneOf => {
                format!(
                    "for any purpose other than {} ({ids})",
                    join_words(&labels, "and")
                )
            }
        })
    }

    /// A time or count constraint as words, or `None` for a purpose constraint.
    fn limit_words(&self, modal: Modal) -> Option<String> {
        Some(match self {
            Constraint::Purpose { .. } => return None,
            Constraint::DateTime { op, at, .. } => {
                // Midnight UTC reads as a date only where the date alone is exact: "before
                // 2027-01-01" is, "until 2027-01-01" would suggest the whole of that day.
                let date_only = at.time() == time::Time::MIDNIGHT
                    && at.offset().is_utc()
                    && matches!(op, Cmp::Lt | Cmp::Gteq);
                let when = if date_only {
                    at.date().to_string()
                } else {
                    words_for_instant(*at)
                };
                match op {
                    Cmp::Eq => format!("only at {when}"),
                    Cmp::Lt => format!("before {when}"),
                    Cmp::Lteq => format!("until {when}"),
                    Cmp::Gt => format!("after {when}"),
                    Cmp::Gteq => format!("from {when} on"),
                }
            }
            Constraint::Count { op, n } => {
                let n = *n;
                match (modal, op) {
                    (Modal::May, Cmp::Lteq) => format!("at most {}", times(n)),
                    (Modal::May, Cmp::Lt) => format!("fewer than {n} times"),
                    (Modal::May, Cmp::Eq) => format!("only on use number {n}"),
                    (Modal::May, Cmp::Gt) => format!("only after the first {}", uses(n)),
                    (Modal::May, Cmp::Gteq) => format!("only from use number {n} on"),
                    (_, Cmp::Lteq) => format!("for the first {}", uses(n)),
                    (_, Cmp::Lt) => format!("before use number {n}"),
                    (_, Cmp::Eq) => format!("on use number {n}"),
                    (_, Cmp::Gt) => format!("after the first {}", uses(n)),
                    (_, Cmp::Gteq) => format!("from use number {n} on"),
                }
            }
            Constraint::ElapsedTime { op, period, .. } => {
                // Permissions and prohibitions count from the brand's agreement (as `evaluate`
                // does); a duty counts from receipt (as `Terms::retention` says).
                let since = match modal {
                    Modal::Must => "receiving it",
                    Modal::May | Modal::MayNot => "accepting these terms",
                };
                let period = words_for_duration(*period);
                match op {
                    Cmp::Eq => format!("exactly {period} after {since}"),
                    Cmp::Lt => format!("less than {period} after {since}"),
                    Cmp::Lteq => format!("within {period} of {since}"),
                    Cmp::Gt => format!("more than {period} after {since}"),
                    Cmp::Gteq => format!("at least {period} after {since}"),
                }
            }
        })
    }
}

/// "2026-07-01 12:30 UTC", "2026-07-01 12:30:15 +02:00".
fn words_for_instant(at: OffsetDateTime) -> String {
    let clock = if at.second() == 0 {
        format!("{:02}:{:02}", at.hour(), at.minute())
    } else {
        format!("{:02}:{:02}:{:02}", at.hour(), at.minute(), at.second())
    };
    let offset = at.offset();
    let zone = if offset.is_utc() {
        "UTC".to_owned()
    } else {
        let sign = if offset.is_negative() { '-' } else { '+' };
        format!(
            "{sign}{:02}:{:02}",
            offset.whole_hours().unsigned_abs(),
            offset.minutes_past_hour().unsigned_abs()
        )
    };
    format!("{} {clock} {zone}", at.date())
}

/// "30 days", "1 day and 12 hours", "5 minutes and 30 seconds".
fn words_for_duration(period: Duration) -> String {
    let total = period.whole_seconds().unsigned_abs();
    let parts: Vec<String> = [
        (total / 86_400, "day"),
        (total % 86_400 / 3_600, "hour"),
        (total % 3_600 / 60, "minute"),
        (total % 60, "second"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, unit)| plural(n, unit))
    .collect();
    if parts.is_empty() {
        "0 seconds".to_owned()
    } else {
        join_words(&parts, "and")
    }
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

fn times(n: u64) -> String {
    if n == 1 {
        "once".to_owned()
    } else {
        format!("{n} times")
    }
}

/// "use", "3 uses": what follows "the first".
fn uses(n: u64) -> String {
    if n == 1 {
        "use".to_owned()
    } else {
        format!("{n} uses")
    }
}

/// "a", "a and b", "a, b and c".
fn join_words(items: &[String], conjunction: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {conjunction} {last}", init.join(", ")),
    }
}

/// A label as it reads inside a sentence: "Email address" becomes "email address".
fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::select;
    use time::macros::datetime;

    fn template(id: &str) -> Value {
        Template::find(id).unwrap().document().unwrap()
    }

    fn template_for(basis: Basis) -> Value {
        TEMPLATES
            .iter()
            .find(|t| t.basis == basis)
            .unwrap()
            .document()
            .unwrap()
    }

    fn terms(doc: &Value) -> Terms {
        Terms::parse(doc).unwrap_or_else(|e| panic!("{e}"))
    }

    fn reject(doc: &Value) -> TermsError {
        match Terms::parse(doc) {
            Ok(_) => panic!("accepted: {doc:#}"),
            Err(e) => e,
        }
    }

    fn purpose(op: &str, id: &str) -> Value {
        json!({"leftOperand": "purpose", "operator": op, "rightOperand": {"@id": id}})
    }

    fn purposes(op: &str, ids: &[&str]) -> Value {
        let ids: Vec<Value> = ids.iter().map(|id| json!({"@id": id})).collect();
        json!({"leftOperand": "purpose", "operator": op, "rightOperand": ids})
    }

    fn date_time(op: &str, at: &str) -> Value {
        json!({"leftOperand": "dateTime", "operator": op,
               "rightOperand": {"@value": at, "@type": "xsd:dateTime"}})
    }

    fn count(op: &str, n: u64) -> Value {
        json!({"leftOperand": "count", "operator": op, "rightOperand": n})
    }

    fn elapsed(op: &str, period: &str) -> Value {
        json!({"leftOperand": "elapsedTime", "operator": op,
               "rightOperand": {"@value": period, "@type": "xsd:duration"}})
    }

    fn push(list: &mut Value, item: Value) {
        list.as_array_mut().unwrap().push(item);
    }

    /// The SD-BASE template with `constraint` added to permission[0].
    fn sd_base_with(constraint: Value) -> Value {
        let mut doc = template("sd-base");
        push(&mut doc["permission"][0]["constraint"], constraint);
        doc
    }

    const AGREED: OffsetDateTime = datetime!(2026-05-01 12:00 UTC);
    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn request(action: Action, categories: &[&str], purpose: &str) -> AccessRequest {
        AccessRequest {
            action,
            categories: categories.iter().map(|c| (*c).to_owned()).collect(),
            purpose: purpose.to_owned(),
            at: NOW,
            count_so_far: 0,
            agreed_at: AGREED,
        }
    }

    fn read_email(purpose: &str) -> AccessRequest {
        request(Action::Read, &["pd:EmailAddress"], purpose)
    }

    // --- templates, vocabulary, accessors ---------------------------------------------------

    #[test]
    fn every_template_parses_on_its_basis() {
        for t in Terms::templates() {
            let doc = t.document().unwrap();
            let parsed = terms(&doc);
            assert_eq!(parsed.basis(), t.basis, "{}", t.id);
            assert_eq!(parsed.title(), Some(t.title), "{}", t.id);
            assert_eq!(doc["basis"], t.basis.as_str());
            assert_eq!(doc["@context"], context());
        }
        let mut ids: Vec<_> = TEMPLATES.iter().map(|t| t.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), TEMPLATES.len());
        assert_eq!(
            Template::find("pdc-intent").unwrap().basis,
            Basis::PdcIntent
        );
        assert!(Template::find("anything-goes").is_none());
        // One template per supported basis, so the app can offer each.
        for basis in Basis::ALL {
            assert!(TEMPLATES.iter().any(|t| t.basis == basis), "{basis}");
        }
    }

    #[test]
    fn accessors_expose_what_a_receipt_needs() {
        let doc = template("sd-base-dp");
        let parsed = terms(&doc);
        assert_eq!(parsed.document(), &doc);
        assert_eq!(parsed.basis(), Basis::SdBaseDp);
        assert!(parsed.requires_portability());
        assert_eq!(parsed.retention(), Some(Duration::days(90)));
        assert!(parsed.purposes().contains(&"dpv:ServiceProvision"));
        assert!(parsed.purposes().contains(&"dpv:AccountManagement"));
        assert!(!parsed.purposes().contains(&"dpv:TargetedAdvertising"));
        assert!(parsed.data_categories().contains(&"pd:EmailAddress"));
        assert!(!parsed.data_categories().contains(&"pd:Health"));

        let intent = terms(&template("pdc-intent"));
        assert!(!intent.requires_portability());
        assert_eq!(intent.retention(), Some(Duration::days(30)));
        assert_eq!(
            intent.purposes(),
            vec![
                "dpv:RequestedServiceProvision",
                "dpv:SellProductsToDataSubject"
            ]
        );
        assert!(intent.data_categories().contains(&"pd:Location"));
    }

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

    #[test]
    fn durations_are_days_hours_minutes_and_seconds() {
        for (text, seconds) in [
            ("P30D", 30 * 86_400),
            ("PT24H", 86_400),
            ("P1DT12H", 129_600),
            ("PT5M30S", 330),
            ("PT90S", 90),
            ("P0D", 0),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::seconds(seconds)),
                "{text}"
            );
        }
        for text in [
            "",
            "P",
            "PT",
            "P1DT",
            "30D",
            "P1M",
            "P1Y",
            "P2W",
            "-P1D",
            "P1.5D",
            "PT1H1H",
            "PT30S5M",
            "P D",
            "PT1X",
            "P99999999999999999999D",
        ] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
        assert!(parse_duration("P1M").unwrap_err().contains("months"));
    }

    // --- rejections ---------------------------------------------------------------------------

    #[test]
    fn rejects_what_is_not_an_object() {
        assert!(matches!(reject(&json!([])), TermsError::WrongType { .. }));
        let mut doc = template("sd-base");
        doc["permission"][0] = json!("read everything");
        let e = reject(&doc);
        assert!(matches!(e, TermsError::WrongType { .. }));
        assert_eq!(e.at(), "permission[0]");
        let mut doc = template("sd-base");
        doc["permission"] = json!({"action": "read"});
        assert_eq!(reject(&doc).at(), "permission");
        let mut doc = template("sd-base");
        doc["permission"][0]["constraint"] = purpose("eq", "dpv:ServiceProvision");
        assert_eq!(reject(&doc).at(), "permission[0].constraint");
    }

    #[test]
    fn rejects_unknown_properties_everywhere() {
        let mut doc = template("sd-base");
        doc["profile"] = json!("http://example.com/profile");
        let e = reject(&doc);
        assert!(
            matches!(&e, TermsError::UnknownProperty { property, .. } if property == "profile")
        );
        assert_eq!(e.at(), "the terms");

        let mut doc = template("sd-base");
        doc["permission"][0]["duty"] = json!([]);
        let e = reject(&doc);
        assert!(matches!(&e, TermsError::UnknownProperty { property, .. } if property == "duty"));
        assert_eq!(e.at(), "permission[0]");

        let mut doc = template("sd-base");
        doc["permission"][0]["constraint"][0]["unit"] = json!("days");
        assert_eq!(reject(&doc).at(), "permission[0].constraint[0]");

        // Logical constraints (and/or/xone) are not supported: they would be ignored otherwise.
        let mut doc = template("sd-base");
        push(&mut doc["permission"][0]["constraint"], json!({"or": []}));
        assert!(matches!(reject(&doc), TermsError::UnknownProperty { .. }));
    }

    #[test]
    fn rejects_another_context_or_policy_type() {
        let mut doc = template("sd-base");
        doc["@context"] = json!(ODRL_CONTEXT);
        assert_eq!(reject(&doc), TermsError::WrongContext);
        let mut doc = template("sd-base");
        doc["@context"][1]["prohibition"] = json!("http://example.com/nothing");
        assert_eq!(reject(&doc), TermsError::WrongContext);
        let mut doc = template("sd-base");
        doc.as_object_mut().unwrap().remove("@context");
        assert_eq!(reject(&doc), TermsError::WrongContext);

        let mut doc = template("sd-base");
        doc["@type"] = json!("Set");
        assert!(matches!(reject(&doc), TermsError::WrongPolicyType { .. }));
        doc.as_object_mut().unwrap().remove("@type");
        assert!(matches!(
            reject(&doc),
            TermsError::Missing {
                property: "@type",
                ..
            }
        ));
    }

    #[test]
    fn rejects_missing_or_empty_parties() {
        for property in ["uid", "assigner", "basis"] {
            let mut doc = template("sd-base");
            doc.as_object_mut().unwrap().remove(property);
            assert!(
                matches!(reject(&doc), TermsError::Missing { property: p, .. } if p == property),
                "{property}"
            );
        }
        let mut doc = template("sd-base");
        doc["assigner"] = json!(" ");
        assert_eq!(reject(&doc).at(), "assigner");
        let mut doc = template("sd-base");
        doc["uid"] = json!(7);
        assert_eq!(reject(&doc).at(), "uid");
        let mut doc = template("sd-base");
        doc["title"] = json!(["a", "b"]);
        assert_eq!(reject(&doc).at(), "title");
    }

    #[test]
    fn rejects_an_unknown_basis() {
        // SD-BASE-ATP is a real roster agreement (it permits profiling), but not one supported.
        for basis in ["SD-BASE-ATP", "sd-base", "NoStalking", ""] {
            let mut doc = template("sd-base");
            doc["basis"] = json!(basis);
            assert_eq!(
                reject(&doc),
                TermsError::UnknownBasis {
                    found: basis.into()
                }
            );
        }
        let mut doc = template("sd-base");
        doc["basis"] = json!(["SD-BASE"]);
        assert!(matches!(reject(&doc), TermsError::WrongType { .. }));
    }

    #[test]
    fn rejects_unknown_actions() {
        // `play` is an ODRL action, but not one terms about personal data use.
        let mut doc = template("sd-base");
        doc["permission"][0]["action"] = json!("play");
        let e = reject(&doc);
        assert!(matches!(&e, TermsError::UnknownAction { found, .. } if found == "play"));
        assert_eq!(e.at(), "permission[0].action");

        let mut doc = template("sd-base");
        doc["prohibition"][0]["action"] = json!("p7012:PortabilityRequired");
        assert_eq!(reject(&doc).at(), "prohibition[0].action");

        let mut doc = template("sd-base");
        doc["obligation"][0]["action"] = json!("read");
        assert_eq!(reject(&doc).at(), "obligation[0].action");

        let mut doc = template("sd-base");
        doc["permission"][0]["action"] = json!(["read"]);
        assert!(matches!(reject(&doc), TermsError::WrongType { .. }));
    }

    #[test]
    fn rejects_unknown_left_operands() {
        // `recipient` and `spatial` are ODRL left operands too; unsupported ones are refused
        // rather than ignored.
        for operand in ["recipient", "spatial", "Purpose", "odrl:purpose"] {
            let doc = sd_base_with(json!({"leftOperand": operand, "operator": "eq",
                                          "rightOperand": "x"}));
            let e = reject(&doc);
            assert_eq!(
                e,
                TermsError::UnknownLeftOperand {
                    at: "permission[0].constraint[1]".into(),
                    found: operand.into()
                }
            );
        }
    }

    #[test]
    fn rejects_operators_an_operand_does_not_take() {
        for (constraint, operand) in [
            (date_time("eq", "2027-01-01T00:00:00Z"), "dateTime"),
            (date_time("isAnyOf", "2027-01-01T00:00:00Z"), "dateTime"),
            (count("neq", 3), "count"),
            (count("isA", 3), "count"),
            (elapsed("gt", "P30D"), "elapsedTime"),
            (elapsed("gteq", "P30D"), "elapsedTime"),
            (purpose("lt", "dpv:ServiceProvision"), "purpose"),
            (purpose("hasPart", "dpv:ServiceProvision"), "purpose"),
        ] {
            let e = reject(&sd_base_with(constraint.clone()));
            assert!(
                matches!(&e, TermsError::UnknownOperator { operand: o, .. } if *o == operand),
                "{constraint}: {e}"
            );
            assert_eq!(e.at(), "permission[0].constraint[1]");
        }
    }

    #[test]
    fn rejects_unknown_purposes() {
        for id in [
            "dpv:Stalking",
            "dpv:Profiling",
            "ServiceProvision",
            "https://w3id.org/dpv#Marketing",
        ] {
            let e = reject(&sd_base_with(purpose("eq", id)));
            assert_eq!(
                e,
                TermsError::UnknownPurpose {
                    at: "permission[0].constraint[1]".into(),
                    found: id.into()
                }
            );
        }
        let e = reject(&sd_base_with(purposes(
            "isNoneOf",
            &["dpv:Marketing", "dpv:Nope"],
        )));
        assert!(matches!(e, TermsError::UnknownPurpose { .. }));
    }

    #[test]
    fn rejects_unknown_categories() {
        let mut doc = template("sd-base");
        push(&mut doc["permission"][0]["target"], json!("pd:ShoeSize"));
        let e = reject(&doc);
        assert_eq!(
            e,
            TermsError::UnknownCategory {
                at: "permission[0].target[10]".into(),
                found: "pd:ShoeSize".into()
            }
        );
        let mut doc = template("sd-base");
        doc["prohibition"][0]["target"] = json!("EmailAddress");
        assert_eq!(reject(&doc).at(), "prohibition[0].target");
        let mut doc = template("sd-base");
        doc["permission"][0]["target"] = json!([]);
        assert!(matches!(reject(&doc), TermsError::WrongType { .. }));
        let mut doc = template("sd-base");
        doc["permission"][0]
            .as_object_mut()
            .unwrap()
            .remove("target");
        assert!(matches!(
            reject(&doc),
            TermsError::Missing {
                property: "target",
                ..
            }
        ));
    }

    #[test]
    fn rejects_malformed_values() {
        let invalid = |constraint: Value| match reject(&sd_base_with(constraint.clone())) {
            TermsError::InvalidValue { at, reason } => {
                assert_eq!(at, "permission[0].constraint[1]");
                reason
            }
            other => panic!("{constraint}: {other}"),
        };
        // dateTime: RFC 3339 with an offset, as a typed literal.
        assert!(invalid(date_time("lt", "2026-12-31")).contains("RFC 3339"));
        assert!(invalid(date_time("lt", "tomorrow")).contains("RFC 3339"));
        assert!(invalid(date_time("lt", "2026-12-31T23:59:59")).contains("RFC 3339"));
        invalid(json!({"leftOperand": "dateTime", "operator": "lt",
                       "rightOperand": "2026-12-31T23:59:59Z"}));
        invalid(json!({"leftOperand": "dateTime", "operator": "lt",
                       "rightOperand": {"@value": "2026-12-31", "@type": "xsd:date"}}));
        // elapsedTime: an xsd:duration of days and time.
        assert!(invalid(elapsed("lteq", "P1M")).contains("months"));
        invalid(elapsed("lteq", "30 days"));
        invalid(elapsed("lteq", "PT"));
        invalid(json!({"leftOperand": "elapsedTime", "operator": "lteq", "rightOperand": 30}));
        // count: a non-negative whole number.
        for bad in [json!(-1), json!("5"), json!(2.5), json!(null)] {
            assert!(
                invalid(json!({"leftOperand": "count", "operator": "lteq", "rightOperand": bad}))
                    .contains("whole number")
            );
        }
        // purpose: IRIs, one or a list as the operator says.
        invalid(json!({"leftOperand": "purpose", "operator": "eq",
                       "rightOperand": "dpv:ServiceProvision"}));
        invalid(json!({"leftOperand": "purpose", "operator": "isAnyOf",
                       "rightOperand": {"@id": "dpv:ServiceProvision"}}));
        invalid(purposes("isAnyOf", &[]));
        invalid(json!({"leftOperand": "purpose", "operator": "eq",
                       "rightOperand": [{"@id": "dpv:ServiceProvision"}]}));
        invalid(json!({"leftOperand": "purpose", "operator": "eq",
                       "rightOperand": {"@id": "dpv:ServiceProvision", "x": 1}}));
    }

    #[test]
    fn rejects_permissions_wider_than_the_basis() {
        let widens = |doc: &Value| match reject(doc) {
            TermsError::Widens { at, reason, .. } => (at, reason),
            other => panic!("{other}"),
        };
        // A purpose the basis forbids.
        let mut doc = template("sd-base");
        push(
            &mut doc["permission"][0]["constraint"][0]["rightOperand"],
            json!({"@id": "dpv:TargetedAdvertising"}),
        );
        let (at, reason) = widens(&doc);
        assert_eq!(at, "permission[0].constraint[0]");
        assert!(reason.contains("dpv:TargetedAdvertising"), "{reason}");
        assert!(
            reason.contains("prohibits advertising and marketing"),
            "{reason}"
        );

        // A purpose the basis simply does not permit.
        let mut doc = template("sd-base");
        doc["permission"][1]["constraint"] = json!([purpose("eq", "dpv:SellProducts")]);
        let (at, reason) = widens(&doc);
        assert_eq!(at, "permission[1].constraint[0]");
        assert!(reason.contains("dpv:SellProducts"), "{reason}");

        // isA reaches narrower purposes: service provision includes selling data.
        let mut doc = template("sd-base");
        doc["permission"][0]["constraint"] = json!([purpose("isA", "dpv:ServiceProvision")]);
        assert!(widens(&doc).1.contains("dpv:SellProducts"));

        // Only excluding purposes still allows everything else.
        let mut doc = template("sd-base");
        doc["permission"][0]["constraint"] =
            json!([purposes("isNoneOf", &["dpv:TargetedAdvertising"])]);
        assert_eq!(widens(&doc).0, "permission[0].constraint[0]");

        // No purpose at all.
        let mut doc = template("sd-base");
        doc["permission"][0]["constraint"] = json!([count("lteq", 5)]);
        let (at, reason) = widens(&doc);
        assert_eq!(at, "permission[0]");
        assert!(reason.contains("no purpose constraint"), "{reason}");

        // Actions beyond the basis.
        for action in [
            "use",
            "distribute",
            "sell",
            "dpv:Profiling",
            "dpv:Tracking",
            "delete",
        ] {
            let mut doc = template("sd-base");
            doc["permission"][0]["action"] = json!(action);
            assert_eq!(widens(&doc).0, "permission[0]", "{action}");
        }
        let mut doc = template("pdc-intent");
        doc["permission"][0]["action"] = json!("modify");
        assert!(widens(&doc).1.contains("PDC-INTENT lets brands read only"));
        let mut doc = template("pdc-intent");
        doc["permission"][0]["constraint"] = json!([purpose("eq", "dpv:ServiceProvision")]);
        widens(&doc);
    }

    #[test]
    fn rejects_terms_that_drop_a_basis_prohibition() {
        for basis in Basis::ALL {
            for (i, required) in basis.prohibitions().iter().enumerate() {
                let mut doc = template_for(basis);
                doc["prohibition"].as_array_mut().unwrap().remove(i);
                assert_eq!(
                    reject(&doc),
                    TermsError::BasisProhibitionMissing {
                        basis,
                        what: required.what,
                        hint: required.hint()
                    },
                    "{basis} without prohibition[{i}]"
                );
            }
            let mut doc = template_for(basis);
            doc.as_object_mut().unwrap().remove("prohibition");
            assert!(matches!(
                reject(&doc),
                TermsError::BasisProhibitionMissing { .. }
            ));
        }
    }

    #[test]
    fn rejects_terms_that_weaken_a_basis_prohibition() {
        let missing = |doc: &Value| match reject(doc) {
            TermsError::BasisProhibitionMissing { what, .. } => what,
            other => panic!("{other}"),
        };
        // A prohibition that lapses is no prohibition.
        let mut doc = template("sd-base");
        doc["prohibition"][0]["constraint"] = json!([date_time("lt", "2027-01-01T00:00:00Z")]);
        assert_eq!(missing(&doc), "tracking");
        let mut doc = template("sd-base");
        push(&mut doc["prohibition"][4]["constraint"], count("lteq", 100));
        assert_eq!(missing(&doc), "advertising and marketing");
        // Some data only.
        let mut doc = template("sd-base");
        doc["prohibition"][2]["target"] = json!("pd:EmailAddress");
        assert_eq!(missing(&doc), "sharing with third parties");
        // Some kinds of marketing only.
        let mut doc = template("sd-base");
        doc["prohibition"][4]["constraint"] = json!([purpose("isA", "dpv:Advertising")]);
        assert_eq!(missing(&doc), "advertising and marketing");
        // A narrower action: reading for personalisation is not all use for it.
        let mut doc = template("sd-base");
        doc["prohibition"][5]["action"] = json!("read");
        assert_eq!(missing(&doc), "personalisation");
        // Everything but one purpose.
        let mut doc = template("sd-base");
        doc["prohibition"][6]["constraint"] = json!([
            purposes(
                "isAnyOf",
                &["dpv:ServiceUsageAnalytics", "p7012:ServiceAnalytics"]
            ),
            purposes("isNoneOf", &["p7012:ServiceAnalytics"])
        ]);
        assert_eq!(missing(&doc), "analytics");
    }

    #[test]
    fn rejects_terms_that_drop_the_portability_duty() {
        let mut doc = template("sd-base-dp");
        doc["obligation"].as_array_mut().unwrap().pop();
        let e = reject(&doc);
        assert!(
            matches!(&e, TermsError::BasisDutyMissing { basis: Basis::SdBaseDp, what, .. } if *what == "data portability")
        );
        assert_eq!(e.at(), "obligation");
        let mut doc = template("sd-base-dp");
        doc["obligation"][1]["constraint"] = json!([date_time("lt", "2027-01-01T00:00:00Z")]);
        assert!(matches!(reject(&doc), TermsError::BasisDutyMissing { .. }));
    }

    #[test]
    fn accepts_terms_that_narrow_the_basis() {
        // Fewer permissions, fewer categories, fewer purposes, time and count limits.
        let mut doc = template("sd-base");
        doc["permission"].as_array_mut().unwrap().pop();
        doc["permission"][0]["target"] = json!("pd:EmailAddress");
        doc["permission"][0]["constraint"] = json!([
            purpose("isA", "dpv:DeliveryOfGoods"),
            date_time("lt", "2027-01-01T00:00:00Z"),
            count("lteq", 10),
            elapsed("lteq", "PT24H")
        ]);
        terms(&doc);
        // More prohibitions, and the basis's ones said differently: split or broader.
        let mut doc = template("sd-base");
        doc["prohibition"][4] = json!({"action": "use", "target": ALL_PERSONAL_DATA,
                                       "constraint": [purpose("isA", "dpv:Advertising")]});
        push(
            &mut doc["prohibition"],
            json!({"action": "use", "target": ALL_PERSONAL_DATA,
            "constraint": [purposes("isAnyOf", &["dpv:Marketing", "dpv:DirectMarketing",
                "dpv:SocialMediaMarketing", "dpv:PublicRelations"])]}),
        );
        doc["prohibition"][2] = json!({"action": "use", "target": [ALL_PERSONAL_DATA]});
        push(
            &mut doc["prohibition"],
            json!({"action": "read", "target": "pd:Health"}),
        );
        terms(&doc);
        // No permission at all: nothing is allowed, which is narrower still.
        let mut doc = template("pdc-intent");
        doc.as_object_mut().unwrap().remove("permission");
        assert!(terms(&doc).purposes().is_empty());
    }

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

    // --- evaluation -------------------------------------------------------------------------

    #[test]
    fn permits_what_a_permission_covers() {
        let sd_base = terms(&template("sd-base"));
        let d = evaluate(&sd_base, &read_email("dpv:ServiceProvision"));
        assert!(d.permitted, "{d:?}");
        assert_eq!(d.rule, "permission[0]");
        assert_eq!(
            d.reason,
            "the terms permit reading pd:EmailAddress for dpv:ServiceProvision"
        );
        let write = request(Action::Write, &["pd:Identifier"], "dpv:AccountManagement");
        assert_eq!(evaluate(&sd_base, &write).rule, "permission[1]");
        assert!(evaluate(&sd_base, &write).permitted);
        let several = request(
            Action::Read,
            &["pd:Name", "pd:PhysicalAddress"],
            "dpv:DeliveryOfGoods",
        );
        assert!(evaluate(&sd_base, &several).permitted);
    }

    #[test]
    fn the_basis_decides_before_the_document() {
        let sd_base = terms(&template("sd-base"));
        let d = evaluate(&sd_base, &read_email("dpv:TargetedAdvertising"));
        assert!(!d.permitted);
        assert_eq!(d.rule, "basis SD-BASE");
        assert_eq!(
            d.reason,
            "SD-BASE prohibits advertising and marketing, and dpv:TargetedAdvertising is a kind of it"
        );
        // A purpose the basis does not permit, though it does not prohibit it by name.
        let d = evaluate(&sd_base, &read_email("dpv:SellProducts"));
        assert_eq!((d.permitted, d.rule.as_str()), (false, "basis SD-BASE"));
        assert!(d.reason.contains("not a purpose SD-BASE permits"));
        // Actions: no intents on service delivery, no writes on intentcasting.
        let d = evaluate(
            &sd_base,
            &request(
                Action::ReceiveIntent,
                &["pd:Location"],
                INTENTCASTING_PURPOSE,
            ),
        );
        assert_eq!((d.permitted, d.rule.as_str()), (false, "basis SD-BASE"));
        assert!(d.reason.contains("PDC-INTENT"));
        let intent = terms(&template("pdc-intent"));
        let d = evaluate(
            &intent,
            &request(Action::Write, &["pd:Preference"], INTENTCASTING_PURPOSE),
        );
        assert_eq!((d.permitted, d.rule.as_str()), (false, "basis PDC-INTENT"));
    }

    #[test]
    fn intents_flow_under_pdc_intent_only() {
        let intent = terms(&template("pdc-intent"));
        let receive = request(
            Action::ReceiveIntent,
            &["pd:Location", "pd:Preference"],
            INTENTCASTING_PURPOSE,
        );
        let d = evaluate(&intent, &receive);
        assert!(d.permitted, "{d:?}");
        assert_eq!(d.rule, "permission[0]");
        // Disclosed data outside the permission's categories is not covered.
        let d = evaluate(
            &intent,
            &request(
                Action::ReceiveIntent,
                &["pd:Location", "pd:BirthDate"],
                INTENTCASTING_PURPOSE,
            ),
        );
        assert_eq!(
            (d.permitted, d.rule.as_str()),
            (false, "no permission matches")
        );
        // Answering with an offer is reading for selling to the person.
        let offer = request(
            Action::Read,
            &["pd:EmailAddress"],
            "dpv:SellProductsToDataSubject",
        );
        assert!(evaluate(&intent, &offer).permitted);
        let d = evaluate(&intent, &read_email("dpv:DirectMarketing"));
        assert_eq!(d.rule, "basis PDC-INTENT");
    }

    #[test]
    fn unknown_purposes_and_categories_in_a_request_are_refused() {
        let sd_base = terms(&template("sd-base"));
        let d = evaluate(&sd_base, &read_email("dpv:Whatever"));
        assert_eq!((d.permitted, d.rule.as_str()), (false, "request"));
        let d = evaluate(
            &sd_base,
            &request(Action::Read, &["pd:ShoeSize"], "dpv:ServiceProvision"),
        );
        assert_eq!((d.permitted, d.rule.as_str()), (false, "request"));
        assert!(d.reason.contains("pd:ShoeSize"));
    }

    #[test]
    fn a_prohibition_beats_a_permission() {
        let mut doc = template("sd-base");
        push(
            &mut doc["prohibition"],
            json!({"action": "read", "target": "pd:EmailAddress",
            "constraint": [purpose("eq", "dpv:ServiceProvision")]}),
        );
        let t = terms(&doc);
        let d = evaluate(&t, &read_email("dpv:ServiceProvision"));
        assert_eq!((d.permitted, d.rule.as_str()), (false, "prohibition[8]"));
        assert_eq!(
            d.reason,
            "the terms prohibit reading pd:EmailAddress for dpv:ServiceProvision"
        );
        // Any prohibited category in the request taints the whole request.
        let both = request(
            Action::Read,
            &["pd:Name", "pd:EmailAddress"],
            "dpv:ServiceProvision",
        );
        assert_eq!(evaluate(&t, &both).rule, "prohibition[8]");
        // Other categories and purposes are still permitted.
        assert!(
            evaluate(
                &t,
                &request(Action::Read, &["pd:Name"], "dpv:ServiceProvision")
            )
            .permitted
        );
        assert!(evaluate(&t, &read_email("dpv:CustomerCare")).permitted);
    }

    #[test]
    fn nothing_is_permitted_without_a_permission() {
        let sd_base = terms(&template("sd-base"));
        let d = evaluate(
            &sd_base,
            &request(Action::Read, &["pd:Health"], "dpv:ServiceProvision"),
        );
        assert_eq!(
            (d.permitted, d.rule.as_str()),
            (false, "no permission matches")
        );
        assert_eq!(
            d.reason,
            "no permission covers reading pd:Health for dpv:ServiceProvision"
        );
        // Permitted by the basis but by no permission of this document.
        let d = evaluate(&sd_base, &read_email("dpv:LegalCompliance"));
        assert_eq!(d.rule, "no permission matches");
        let d = evaluate(
            &sd_base,
            &request(Action::Write, &["pd:EmailAddress"], "dpv:AccountManagement"),
        );
        assert_eq!(d.rule, "no permission matches");
    }

    #[test]
    fn count_allows_that_many_uses() {
        let t = terms(&sd_base_with(count("lteq", 2)));
        let mut r = read_email("dpv:ServiceProvision");
        for (used, permitted) in [(0, true), (1, true), (2, false), (u64::MAX, false)] {
            r.count_so_far = used;
            assert_eq!(evaluate(&t, &r).permitted, permitted, "after {used} uses");
        }
        r.count_so_far = 2;
        assert_eq!(
            evaluate(&t, &r).reason,
            "permission[0] would cover reading pd:EmailAddress for dpv:ServiceProvision, but its \
             constraint[1] (count lteq 2) does not hold"
        );
        let t = terms(&sd_base_with(count("lt", 2)));
        r.count_so_far = 1;
        assert!(!evaluate(&t, &r).permitted);
        let t = terms(&sd_base_with(count("eq", 1)));
        r.count_so_far = 0;
        assert!(evaluate(&t, &r).permitted);
        let t = terms(&sd_base_with(count("gteq", 3)));
        r.count_so_far = 1;
        assert!(!evaluate(&t, &r).permitted);
        r.count_so_far = 2;
        assert!(evaluate(&t, &r).permitted);
    }

    #[test]
    fn date_time_bounds_a_rule() {
        let t = terms(&sd_base_with(date_time("lt", "2027-01-01T00:00:00Z")));
        let mut r = read_email("dpv:ServiceProvision");
        assert!(evaluate(&t, &r).permitted);
        r.at = datetime!(2027-01-01 00:00 UTC);
        assert!(!evaluate(&t, &r).permitted);
        let t = terms(&sd_base_with(date_time(
            "gteq",
            "2027-01-01T01:00:00+01:00",
        )));
        assert!(evaluate(&t, &r).permitted, "offsets are honoured");
        // A prohibition from a date on.
        let mut doc = template("sd-base");
        push(
            &mut doc["prohibition"],
            json!({"action": "read", "target": "pd:EmailAddress",
            "constraint": [date_time("gt", "2026-07-01T00:00:00Z")]}),
        );
        let t = terms(&doc);
        r.at = NOW;
        assert!(evaluate(&t, &r).permitted);
        r.at = datetime!(2026-07-02 00:00 UTC);
        assert_eq!(evaluate(&t, &r).rule, "prohibition[8]");
    }

    #[test]
    fn elapsed_time_counts_from_the_agreement() {
        let t = terms(&sd_base_with(elapsed("lteq", "P30D")));
        let mut r = read_email("dpv:ServiceProvision");
        r.at = AGREED + Duration::days(30);
        assert!(evaluate(&t, &r).permitted);
        r.at = AGREED + Duration::days(30) + Duration::seconds(1);
        assert!(!evaluate(&t, &r).permitted);
        let t = terms(&sd_base_with(elapsed("lt", "PT1H")));
        r.at = AGREED + Duration::minutes(59);
        assert!(evaluate(&t, &r).permitted);
        r.at = AGREED + Duration::hours(1);
        assert!(!evaluate(&t, &r).permitted);
    }

    #[test]
    fn a_prohibition_on_all_personal_data_covers_a_request_naming_none() {
        let intent = terms(&template("pdc-intent"));
        let bare = request(Action::ReceiveIntent, &[], INTENTCASTING_PURPOSE);
        assert!(evaluate(&intent, &bare).permitted);
        let mut doc = template("pdc-intent");
        push(
            &mut doc["prohibition"],
            json!({"action": "use", "target": ALL_PERSONAL_DATA,
            "constraint": [date_time("gt", "2026-01-01T00:00:00Z")]}),
        );
        let d = evaluate(&terms(&doc), &bare);
        assert_eq!((d.permitted, d.rule.as_str()), (false, "prohibition[8]"));
        assert_eq!(
            d.reason,
            "the terms prohibit receiving an intent with no personal data for dpv:RequestedServiceProvision"
        );
    }

    // --- summary ------------------------------------------------------------------------------

    /// Every purpose id a rule of the document names, in order.
    fn purpose_ids_of(rule: &Value) -> Vec<String> {
        let mut ids = Vec::new();
        for c in rule["constraint"].as_array().into_iter().flatten() {
            if c["leftOperand"] == "purpose" {
                match &c["rightOperand"] {
                    Value::Array(items) => {
                        ids.extend(items.iter().map(|i| i["@id"].as_str().unwrap().to_owned()))
                    }
                    one => ids.push(one["@id"].as_str().unwrap().to_owned()),
                }
            }
        }
        ids
    }

    fn target_ids_of(rule: &Value) -> Vec<String> {
        match &rule["target"] {
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().unwrap().to_owned())
                .collect(),
            one => vec![one.as_str().unwrap().to_owned()],
        }
    }

    /// One sentence per line: something to read, capitalised, with a full stop.
    fn assert_sentences(lines: &[String]) {
        assert!(!lines.is_empty());
        for line in lines {
            assert!(!line.trim().is_empty(), "{lines:#?}");
            assert_eq!(line.trim(), line, "{lines:#?}");
            assert!(line.starts_with(char::is_uppercase), "{line}");
            assert!(line.ends_with('.'), "{line}");
            assert!(!line.contains(".."), "{line}");
        }
    }

    #[test]
    fn summary_of_every_template_states_its_basis_and_every_prohibition() {
        for t in TEMPLATES {
            let doc = t.document().unwrap();
            let lines = terms(&doc).summary();
            assert_sentences(&lines);

            // The basis first, in its own words.
            let basis_line = &lines[0];
            assert!(
                basis_line.starts_with(&format!("Built on IEEE 7012 {} — ", t.basis)),
                "{}: {basis_line}",
                t.id
            );
            assert!(
                basis_line.ends_with(&t.basis.description()[1..]),
                "{}: {basis_line}",
                t.id
            );

            // Every permission, with every category and purpose it names.
            let permissions = doc["permission"].as_array().unwrap();
            let granting: Vec<&String> = lines
                .iter()
                .filter(|l| l.starts_with("Brands may ") && !l.starts_with("Brands may not "))
                .collect();
            assert_eq!(granting.len(), permissions.len(), "{}: {lines:#?}", t.id);
            for (rule, line) in permissions.iter().zip(granting) {
                for id in target_ids_of(rule).iter().chain(&purpose_ids_of(rule)) {
                    assert!(
                        line.contains(id.as_str()),
                        "{}: {id} missing in {line}",
                        t.id
                    );
                }
            }

            // Every prohibition, each on its own line, saying what it forbids.
            let prohibitions = doc["prohibition"].as_array().unwrap();
            let forbidding: Vec<&String> = lines
                .iter()
                .filter(|l| l.starts_with("Brands may not "))
                .collect();
            assert_eq!(forbidding.len(), prohibitions.len(), "{}: {lines:#?}", t.id);
            for (rule, line) in prohibitions.iter().zip(forbidding) {
                let says = match rule["action"].as_str().unwrap() {
                    "dpv:Tracking" => {
                        "Brands may not track you (dpv:Tracking) with any of your data"
                    }
                    "dpv:Profiling" => {
                        "Brands may not profile you (dpv:Profiling) with any of your data"
                    }
                    "distribute" => {
                        "Brands may not share any of your data with third parties (distribute)"
                    }
                    "sell" => "Brands may not sell any of your data",
                    "use" => "Brands may not use any of your data for ",
                    other => panic!("{}: unexpected prohibition {other}", t.id),
                };
                assert!(line.starts_with(says), "{}: {line}", t.id);
                for id in purpose_ids_of(rule) {
                    assert!(
                        line.contains(id.as_str()),
                        "{}: {id} missing in {line}",
                        t.id
                    );
                }
            }

            // Duties, then how long brands may keep what they receive.
            let portability = lines.iter().any(|l| {
                l.starts_with("Brands must let you take your data with you")
                    && l.contains("(p7012:PortabilityRequired)")
            });
            assert_eq!(
                portability,
                t.basis == Basis::SdBaseDp,
                "{}: {lines:#?}",
                t.id
            );
            let days = terms(&doc).retention().unwrap().whole_days();
            assert_eq!(
                lines.last().unwrap(),
                &format!(
                    "Brands must delete what they receive within {days} days of receiving it."
                ),
                "{}",
                t.id
            );
            assert_eq!(
                lines.len(),
                1 + permissions.len() + prohibitions.len() + usize::from(portability) + 1,
                "{}: {lines:#?}",
                t.id
            );
        }
    }

    #[test]
    fn summary_of_sd_base_reads_as_plain_sentences() {
        let lines = terms(&template("sd-base")).summary();
        let expected = [
            "Built on IEEE 7012 SD-BASE — service delivery only: no tracking, no profiling, no \
             analytics, no sharing with third parties.",
            "Brands may update your identifier (account or membership number) and username \
             (pd:Identifier, pd:Username) for account management or service registration \
             (dpv:AccountManagement, dpv:ServiceRegistration).",
            "Brands may not track you (dpv:Tracking) with any of your data.",
            "Brands may not share any of your data with third parties (distribute).",
            "Brands may not use any of your data for marketing of any kind (dpv:Marketing).",
            "Brands may not use any of your data for service usage analytics or service \
             analytics (dpv:ServiceUsageAnalytics, p7012:ServiceAnalytics).",
            "Brands must delete what they receive within 90 days of receiving it.",
        ];
        for sentence in expected {
            assert!(
                lines.iter().any(|l| l == sentence),
                "{sentence}\n{lines:#?}"
            );
        }
        assert!(lines[1].starts_with(
            "Brands may read your name, email address, telephone number, postal address, \
             location, language, preference, payment card, identifier (account or membership \
             number) and username (pd:Name, pd:EmailAddress, "
        ));
    }

    #[test]
    fn summary_states_the_limits_of_narrowed_terms() {
        let mut doc = template("sd-base");
        for limit in [
            count("lteq", 10),
            date_time("lt", "2027-01-01T00:00:00Z"),
            elapsed("lteq", "P30D"),
        ] {
            push(&mut doc["permission"][0]["constraint"], limit);
        }
        for limit in [
            count("lteq", 1),
            date_time("lteq", "2026-12-31T18:30:00+01:00"),
            elapsed("lt", "PT36H"),
        ] {
            push(&mut doc["permission"][1]["constraint"], limit);
        }
        push(
            &mut doc["prohibition"],
            json!({"action": "read", "target": "pd:EmailAddress", "constraint": [
                purposes("isNoneOf", &["dpv:CustomerCare"]),
                date_time("gt", "2026-07-01T00:00:00Z"),
                count("gteq", 3),
            ]}),
        );
        push(
            &mut doc["obligation"],
            json!({"action": "delete", "target": "pd:PaymentCardNumber",
                   "constraint": [date_time("gteq", "2027-01-01T00:00:00Z")]}),
        );
        doc["obligation"][0]["constraint"][0] = elapsed("lteq", "P7D");
        let lines = terms(&doc).summary();
        assert_sentences(&lines);
        assert!(
            lines[1].ends_with(
                " dpv:CommunicationForCustomerCare), at most 10 times, before 2027-01-01, within \
                 30 days of accepting these terms."
            ),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].ends_with(
                "(dpv:AccountManagement, dpv:ServiceRegistration), at most once, until \
                 2026-12-31 18:30 +01:00, less than 1 day and 12 hours after accepting these \
                 terms."
            ),
            "{}",
            lines[2]
        );
        let expected = [
            "Brands may not read your email address (pd:EmailAddress) for any purpose other than \
             customer care (dpv:CustomerCare), after 2026-07-01 00:00 UTC, from use number 3 on.",
            "Brands must delete your payment card (pd:PaymentCardNumber), from 2027-01-01 on.",
            "Brands must delete what they receive within 7 days of receiving it.",
        ];
        for sentence in expected {
            assert!(
                lines.iter().any(|l| l == sentence),
                "{sentence}\n{lines:#?}"
            );
        }
        assert_eq!(lines.last().unwrap(), expected[2]);
    }

    #[test]
    fn limits_read_as_words() {
        assert_eq!(words_for_duration(Duration::days(1)), "1 day");
        assert_eq!(
            words_for_duration(Duration::seconds(330)),
            "5 minutes and 30 seconds"
        );
        assert_eq!(
            words_for_duration(Duration::seconds(90_061)),
            "1 day, 1 hour, 1 minute and 1 second"
        );
        assert_eq!(words_for_duration(Duration::ZERO), "0 seconds");
        assert_eq!(
            words_for_instant(datetime!(2026-03-01 09:05:07 -03:30)),
            "2026-03-01 09:05:07 -03:30"
        );
        // The same constraint is a limit on a permission but the scope of a prohibition.
        let first_five = Constraint::Count {
            op: Cmp::Lteq,
            n: 5,
        };
        assert_eq!(
            first_five.limit_words(Modal::May).unwrap(),
            "at most 5 times"
        );
        assert_eq!(
            first_five.limit_words(Modal::MayNot).unwrap(),
            "for the first 5 uses"
        );
        let midnight = |op| Constraint::DateTime {
            op,
            at: datetime!(2027-01-01 00:00 UTC),
            text: "2027-01-01T00:00:00Z".into(),
        };
        // A date alone is exact only where the day starts the range or ends it before it begins.
        assert_eq!(
            midnight(Cmp::Lt).limit_words(Modal::May).unwrap(),
            "before 2027-01-01"
        );
        assert_eq!(
            midnight(Cmp::Gteq).limit_words(Modal::May).unwrap(),
            "from 2027-01-01 on"
        );
        assert_eq!(
            midnight(Cmp::Lteq).limit_words(Modal::May).unwrap(),
            "until 2027-01-01 00:00 UTC"
        );
        assert_eq!(
            midnight(Cmp::Gt).limit_words(Modal::May).unwrap(),
            "after 2027-01-01 00:00 UTC"
        );
    }

    // --- the schema -------------------------------------------------------------------------

    fn schema() -> Value {
        serde_json::from_str(SCHEMA).unwrap()
    }

    fn validator() -> jsonschema::Validator {
        jsonschema::validator_for(&schema()).unwrap()
    }

    #[test]
    fn templates_validate_against_the_schema() {
        let v = validator();
        for t in TEMPLATES {
            let doc = t.document().unwrap();
            if let Err(e) = v.validate(&doc) {
                panic!("{}: {e}", t.id);
            }
        }
    }

    #[test]
    fn invalid_documents_fail_the_schema_too() {
        let v = validator();
        let mut cases = Vec::new();
        let mut doc = template("sd-base");
        doc["extra"] = json!(true);
        cases.push(("unknown property", doc));
        cases.push((
            "unknown left operand",
            sd_base_with(json!({"leftOperand": "recipient",
            "operator": "eq", "rightOperand": "x"})),
        ));
        cases.push(("wrong operator", sd_base_with(elapsed("gt", "P1D"))));
        cases.push(("months", sd_base_with(elapsed("lteq", "P1M"))));
        cases.push((
            "negative count",
            sd_base_with(count("lteq", 0)).tap(|d| {
                d["permission"][0]["constraint"][1]["rightOperand"] = json!(-1);
            }),
        ));
        cases.push(("date only", sd_base_with(date_time("lt", "2026-12-31"))));
        cases.push((
            "unknown purpose",
            sd_base_with(purpose("eq", "dpv:Stalking")),
        ));
        let mut doc = template("sd-base");
        doc["basis"] = json!("SD-BASE-ATP");
        cases.push(("unknown basis", doc));
        let mut doc = template("sd-base");
        doc["permission"][0]["target"] = json!("pd:ShoeSize");
        cases.push(("unknown category", doc));
        let mut doc = template("sd-base");
        doc["@context"] = json!(ODRL_CONTEXT);
        cases.push(("other context", doc));
        for (what, doc) in cases {
            assert!(!v.is_valid(&doc), "the schema accepted: {what}");
            assert!(Terms::parse(&doc).is_err(), "the vault accepted: {what}");
        }
    }

    trait Tap: Sized {
        fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
    }
    impl Tap for Value {
        fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
            f(&mut self);
            self
        }
    }

    fn strings(v: &Value) -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn the_schema_and_the_code_share_one_vocabulary() {
        let s = schema();
        let defs = &s["$defs"];
        assert_eq!(s["properties"]["@context"]["const"], context());
        let ids = |list: &mut dyn Iterator<Item = &'static str>| -> Vec<String> {
            list.map(str::to_owned).collect()
        };
        assert_eq!(
            strings(&defs["purpose"]["properties"]["@id"]["enum"]),
            ids(&mut PURPOSES.iter().map(|p| p.id))
        );
        assert_eq!(
            strings(&defs["category"]["enum"]),
            ids(&mut CATEGORIES.iter().map(|c| c.id))
        );
        assert_eq!(
            strings(&s["properties"]["basis"]["enum"]),
            ids(&mut Basis::ALL.iter().map(|b| b.as_str()))
        );
        assert_eq!(
            strings(&defs["rule"]["properties"]["action"]["enum"]),
            ids(&mut RULE_ACTIONS.iter().map(|a| a.as_str()))
        );
        assert_eq!(
            strings(&defs["duty"]["properties"]["action"]["enum"]),
            ids(&mut DUTY_ACTIONS.iter().map(|a| a.as_str()))
        );
    }

    // --- properties -------------------------------------------------------------------------

    fn purpose_ids() -> Vec<&'static str> {
        PURPOSES.iter().map(|p| p.id).collect()
    }

    fn category_ids() -> Vec<&'static str> {
        CATEGORIES.iter().map(|c| c.id).collect()
    }

    fn instant(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    const EARLIEST: i64 = 1_700_000_000;
    const LATEST: i64 = 1_900_000_000;

    fn purpose_constraint(pool: BoxedStrategy<&'static str>) -> BoxedStrategy<Value> {
        let single =
            (select(vec!["eq", "neq", "isA"]), pool.clone()).prop_map(|(op, p)| purpose(op, p));
        let set = (
            select(vec!["isAnyOf", "isNoneOf"]),
            proptest::collection::vec(pool, 1..4),
        )
            .prop_map(|(op, ps)| purposes(op, &ps));
        prop_oneof![single, set].boxed()
    }

    fn limit_constraint() -> BoxedStrategy<Value> {
        prop_oneof![
            (select(vec!["lt", "lteq", "gt", "gteq"]), EARLIEST..LATEST)
                .prop_map(|(op, s)| { date_time(op, &instant(s).format(&Rfc3339).unwrap()) }),
            (select(vec!["eq", "lt", "lteq", "gt", "gteq"]), 0u64..8)
                .prop_map(|(op, n)| count(op, n)),
            (select(vec!["eq", "lt", "lteq"]), 0u32..120)
                .prop_map(|(op, days)| elapsed(op, &format!("P{days}D"))),
        ]
        .boxed()
    }

    fn rule(
        action: BoxedStrategy<&'static str>,
        purpose_pool: BoxedStrategy<&'static str>,
        with_purpose: f64,
    ) -> BoxedStrategy<Value> {
        (
            action,
            proptest::collection::vec(select(category_ids()), 1..4),
            proptest::option::weighted(with_purpose, purpose_constraint(purpose_pool)),
            proptest::collection::vec(limit_constraint(), 0..3),
        )
            .prop_map(|(action, targets, purpose, limits)| {
                let constraints: Vec<Value> = purpose.into_iter().chain(limits).collect();
                json!({"action": action, "target": targets, "constraint": constraints})
            })
            .boxed()
    }

    fn assemble(
        basis: Basis,
        permissions: Vec<Value>,
        extra: Vec<Value>,
        drop: Option<usize>,
    ) -> Value {
        let mut doc = template_for(basis);
        doc["permission"] = Value::Array(permissions);
        let prohibitions = doc["prohibition"].as_array_mut().unwrap();
        if let Some(i) = drop {
            prohibitions.remove(i % NO_STALKING.len());
        }
        prohibitions.extend(extra);
        doc
    }

    /// Any document over any basis: permissions mostly within the basis but often not, extra
    /// prohibitions of every kind, and now and then a basis prohibition dropped.
    fn any_document() -> impl Strategy<Value = Value> {
        select(Basis::ALL.to_vec()).prop_flat_map(|basis| {
            let within: Vec<&'static str> = basis
                .permitted_actions()
                .iter()
                .map(|a| a.as_str())
                .collect();
            let all_actions: Vec<&'static str> = RULE_ACTIONS.iter().map(|a| a.as_str()).collect();
            let action = prop_oneof![3 => select(within), 1 => select(all_actions.clone())].boxed();
            let pool = prop_oneof![
                3 => select(basis.permitted_purposes().to_vec()),
                1 => select(purpose_ids())
            ]
            .boxed();
            (
                Just(basis),
                proptest::collection::vec(rule(action, pool, 0.9), 0..4),
                proptest::collection::vec(
                    rule(
                        select(all_actions).boxed(),
                        select(purpose_ids()).boxed(),
                        0.5,
                    ),
                    0..3,
                ),
                proptest::option::weighted(0.1, any::<usize>()),
            )
                .prop_map(|(basis, permissions, extra, drop)| {
                    assemble(basis, permissions, extra, drop)
                })
        })
    }

    /// A document that is always valid: permissions within the basis, purposes named positively.
    fn valid_document() -> impl Strategy<Value = Value> {
        select(Basis::ALL.to_vec()).prop_flat_map(|basis| {
            let within: Vec<&'static str> = basis
                .permitted_actions()
                .iter()
                .map(|a| a.as_str())
                .collect();
            let permitted = basis.permitted_purposes().to_vec();
            let positive = prop_oneof![
                select(permitted.clone()).prop_map(|p| purpose("eq", p)),
                proptest::collection::vec(select(permitted), 1..4)
                    .prop_map(|ps| purposes("isAnyOf", &ps)),
            ];
            let permission = (
                select(within),
                proptest::collection::vec(select(category_ids()), 1..4),
                positive,
                proptest::collection::vec(limit_constraint(), 0..3),
            )
                .prop_map(|(action, targets, purpose, limits)| {
                    let constraints: Vec<Value> = std::iter::once(purpose).chain(limits).collect();
                    json!({"action": action, "target": targets, "constraint": constraints})
                });
            (
                Just(basis),
                proptest::collection::vec(permission, 1..4),
                proptest::collection::vec(
                    rule(
                        select(RULE_ACTIONS.iter().map(|a| a.as_str()).collect::<Vec<_>>()).boxed(),
                        select(purpose_ids()).boxed(),
                        0.5,
                    ),
                    0..3,
                ),
            )
                .prop_map(|(basis, permissions, extra)| assemble(basis, permissions, extra, None))
        })
    }

    fn any_request() -> impl Strategy<Value = AccessRequest> {
        (
            select(vec![Action::Read, Action::Write, Action::ReceiveIntent]),
            proptest::collection::vec(select(category_ids()), 0..3),
            prop_oneof![9 => select(purpose_ids()), 1 => Just("dpv:NotAPurpose")],
            EARLIEST..LATEST,
            0u64..10,
            0i64..(200 * 86_400),
        )
            .prop_map(|(action, categories, purpose, at, count_so_far, since)| {
                AccessRequest {
                    action,
                    categories: categories.into_iter().map(str::to_owned).collect(),
                    purpose: purpose.to_owned(),
                    at: instant(at),
                    count_so_far,
                    agreed_at: instant(at - since),
                }
            })
    }

    /// A request `rule` allows, if a simple search over the times and counts its own constraints
    /// name finds one: the action and the purpose are picked among those the rule covers and
    /// `accept` admits.
    fn fit_request(
        rule: &Rule,
        accept: impl Fn(Action, &str) -> bool,
        pick: prop::sample::Index,
    ) -> Option<AccessRequest> {
        let fitting: Vec<(Action, &str)> = [Action::Read, Action::Write, Action::ReceiveIntent]
            .into_iter()
            .filter(|a| rule.action.covers(*a))
            .flat_map(|a| PURPOSES.iter().map(move |p| (a, p.id)))
            .filter(|(a, p)| rule.purpose_applies(p) && accept(*a, p))
            .collect();
        if fitting.is_empty() {
            return None;
        }
        let (action, purpose) = fitting[pick.index(fitting.len())];
        let mut instants = vec![instant(EARLIEST - 86_400), instant(LATEST + 86_400)];
        let mut periods = vec![Duration::ZERO];
        for c in &rule.constraints {
            match c {
                Constraint::DateTime { at, .. } => {
                    instants.extend([*at - Duration::SECOND, *at, *at + Duration::SECOND]);
                }
                Constraint::ElapsedTime { period, .. } => periods.push(*period),
                _ => {}
            }
        }
        let mut candidate = AccessRequest {
            action,
            categories: rule.targets.iter().map(|c| (*c).to_owned()).collect(),
            purpose: purpose.to_owned(),
            at: NOW,
            count_so_far: 0,
            agreed_at: NOW,
        };
        for at in &instants {
            for period in &periods {
                for used in 0..10 {
                    candidate.at = *at;
                    candidate.agreed_at = *at - *period;
                    candidate.count_so_far = used;
                    if rule.allows(&candidate) {
                        return Some(candidate);
                    }
                }
            }
        }
        None
    }

    /// A random request, or one fitted to permission `k` (any purpose it lets through, even one
    /// its basis forbids), so that both answers come up often.
    fn some_request(
        doc: &Value,
        random: AccessRequest,
        (fitted, k, pick): (bool, prop::sample::Index, prop::sample::Index),
    ) -> AccessRequest {
        let permissions = doc["permission"].as_array().unwrap();
        if !fitted || permissions.is_empty() {
            return random;
        }
        let rule = parse_rule(&permissions[k.index(permissions.len())], "p", RULE_ACTIONS).unwrap();
        fit_request(&rule, |_, _| true, pick).unwrap_or(random)
    }

    fn fitting() -> impl Strategy<Value = (bool, prop::sample::Index, prop::sample::Index)> {
        (
            proptest::bool::weighted(0.7),
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
        )
    }

    fn assert_within_basis(basis: Basis, request: &AccessRequest, decision: &Decision) {
        if decision.permitted {
            assert!(
                basis.permits_purpose(&request.purpose),
                "{basis}: {decision:?}"
            );
            assert!(
                !basis.forbids_purpose(&request.purpose),
                "{basis}: {decision:?}"
            );
            assert!(
                basis.permits_action(request.action),
                "{basis}: {decision:?}"
            );
        }
    }

    proptest! {
        // Failing seeds are kept beside this file (src/domain/terms.proptest-regressions), not in
        // a folder at the top of the repository.
        #![proptest_config(ProptestConfig {
            cases: 512,
            failure_persistence: Some(Box::new(
                proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
            )),
            ..ProptestConfig::default()
        })]

        /// (a) Whatever terms pass validation, no request is permitted for a purpose or an
        /// action the basis does not allow.
        #[test]
        fn valid_terms_never_permit_what_the_basis_forbids(
            doc in any_document(),
            random in any_request(),
            fit in fitting(),
        ) {
            let request = some_request(&doc, random, fit);
            if let Ok(t) = Terms::parse(&doc) {
                assert_within_basis(t.basis(), &request, &evaluate(&t, &request));
            }
        }

        /// (a) The same even for rules that never went through validation, with every
        /// prohibition of the document removed: the basis is checked by `evaluate` itself.
        #[test]
        fn even_unvalidated_rules_never_permit_what_the_basis_forbids(
            doc in any_document(),
            random in any_request(),
            fit in fitting(),
        ) {
            let request = some_request(&doc, random, fit);
            let basis = Basis::parse(doc["basis"].as_str().unwrap()).unwrap();
            let permissions = doc["permission"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| parse_rule(r, "permission", RULE_ACTIONS).unwrap())
                .collect();
            let t = Terms {
                document: doc.clone(),
                basis,
                title: None,
                permissions,
                prohibitions: Vec::new(),
                obligations: Vec::new(),
            };
            assert_within_basis(basis, &request, &evaluate(&t, &request));
        }

        /// (b) Whenever a prohibition of the terms matches a request, the request is denied.
        #[test]
        fn a_matching_prohibition_always_denies(
            doc in valid_document(),
            random in any_request(),
            fit in fitting(),
        ) {
            let request = some_request(&doc, random, fit);
            let t = terms(&doc);
            if t.prohibitions.iter().any(|p| p.forbids(&request)) {
                prop_assert!(!evaluate(&t, &request).permitted);
            }
        }

        /// (b) A prohibition that matches exactly what a permission allows denies it.
        #[test]
        fn a_prohibition_beats_a_permission_that_matches_too(
            doc in valid_document(),
            (_, which, pick) in fitting(),
        ) {
            let t = terms(&doc);
            let k = which.index(t.permissions.len());
            let basis = t.basis();
            let found = fit_request(
                &t.permissions[k],
                |action, purpose| basis.permits_action(action) && basis.permits_purpose(purpose),
                pick,
            );
            prop_assume!(found.is_some());
            let request = found.unwrap();
            prop_assert!(t.permissions[k].allows(&request));

            let mut mirrored = doc.clone();
            let permission = doc["permission"][k].clone();
            push(&mut mirrored["prohibition"], permission);
            let t = terms(&mirrored);
            let d = evaluate(&t, &request);
            prop_assert!(!d.permitted, "{d:?}");
            prop_assert!(d.rule.starts_with("prohibition["), "{d:?}");
        }

        /// (c) Whatever the vault accepts, the published schema accepts too.
        #[test]
        fn accepted_terms_validate_against_the_schema(doc in any_document()) {
            if Terms::parse(&doc).is_ok() {
                let v = validator();
                if let Err(e) = v.validate(&doc) {
                    prop_assert!(false, "{e}: {doc:#}");
                }
            }
        }

        #[test]
        fn valid_documents_validate_against_the_schema(doc in valid_document()) {
            prop_assert!(validator().is_valid(&doc));
        }

        /// The summary says every rule, leaves no category or purpose of a permission unsaid, and
        /// never has an empty line.
        #[test]
        fn the_summary_says_every_rule(doc in valid_document()) {
            let t = terms(&doc);
            let lines = t.summary();
            assert_sentences(&lines);
            let duties = t.obligations.iter().filter(|r| !r.is_retention()).count();
            prop_assert_eq!(
                lines.len(),
                1 + t.permissions.len() + t.prohibitions.len() + duties
                    + usize::from(t.retention().is_some())
            );
            for (i, rule) in doc["permission"].as_array().unwrap().iter().enumerate() {
                let line = &lines[1 + i];
                prop_assert!(line.starts_with("Brands may "), "{}", line);
                let mut ids = purpose_ids_of(rule);
                let targets = target_ids_of(rule);
                if targets.iter().any(|id| id == ALL_PERSONAL_DATA) {
                    prop_assert!(line.contains(" any of your data"), "{}", line);
                } else {
                    ids.extend(targets);
                }
                for id in &ids {
                    prop_assert!(line.contains(id.as_str()), "{} missing in {}", id, line);
                }
            }
        }
    }
}
