//! Data grants: which brand may do what with which of the person's fields, for which purpose,
//! until when and how many times.
//!
//! Pure: the authorization-details object of RFC 9396 is parsed here, a grant's status is computed
//! from the time and count the caller passes, and whether a grant covers a field is decided here.
//!
//! The riskiest decision of the vault — may this brand use this grant now — is [`decide_use`]: a
//! function of the grant, the facts the writer re-read (the brand's status, its agreement, the
//! terms in force) and the request, with the time as a parameter. The writer only loads those
//! facts, calls it, and stores the use it allows, so the rule can be property-tested here without
//! a store (the properties are in `grants/tests.rs`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::domain::brands::{AgreementStatus, BrandStatus};
use crate::domain::records::{DataCategory, RecordPath};
use crate::domain::terms::{AccessRequest, Purpose, Terms, evaluate};

/// The RFC 9396 `type` of a data-access authorization detail.
pub const DATA_ACCESS_TYPE: &str = "urn:vrm-vault:data-access:v1";
/// The longest a grant may last.
pub const MAX_GRANT_LIFETIME: Duration = Duration::days(366);
/// How long a brand-asked grant lasts when the brand names no `expires_in`.
pub const DEFAULT_ASKED_LIFETIME: Duration = Duration::days(7);
/// Most fields one grant may name.
pub const MAX_FIELDS: usize = 50;
pub const MAX_USES: u64 = 1_000_000;

/// What a grant lets a brand do with its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantAction {
    Read,
    /// Add to or change a granted field (a loyalty number, say).
    Write,
}

impl GrantAction {
    pub const fn as_str(self) -> &'static str {
        match self {
            GrantAction::Read => "read",
            GrantAction::Write => "write",
        }
    }

    /// The action the terms evaluate for this one.
    pub const fn terms_action(self) -> crate::domain::terms::Action {
        match self {
            GrantAction::Read => crate::domain::terms::Action::Read,
            GrantAction::Write => crate::domain::terms::Action::Write,
        }
    }

    fn parse(text: &str) -> Option<GrantAction> {
        match text {
            "read" => Some(GrantAction::Read),
            "write" => Some(GrantAction::Write),
            _ => None,
        }
    }
}

/// One item of a grant's `fields`: a record path, or a data category covering every record of it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum FieldSpec {
    Path(RecordPath),
    Category(&'static str),
}

impl FieldSpec {
    pub fn parse(text: &str) -> Result<FieldSpec, String> {
        if text.contains(':') {
            return DataCategory::find(text)
                .map(|c| FieldSpec::Category(c.id))
                .ok_or_else(|| format!("\"{text}\" is not a data category the vault knows"));
        }
        RecordPath::parse(text)
            .map(FieldSpec::Path)
            .map_err(|e| format!("\"{text}\": {e}"))
    }

    pub fn as_str(&self) -> &str {
        match self {
            FieldSpec::Path(p) => p.as_str(),
            FieldSpec::Category(c) => c,
        }
    }
}

/// Parses, deduplicates and sorts a list of fields.
pub fn parse_fields(fields: &[String]) -> Result<Vec<FieldSpec>, String> {
    if fields.is_empty() {
        return Err("name at least one field".into());
    }
    if fields.len() > MAX_FIELDS {
        return Err(format!("a grant may name at most {MAX_FIELDS} fields"));
    }
    let mut parsed = fields
        .iter()
        .map(|f| FieldSpec::parse(f))
        .collect::<Result<Vec<_>, _>>()?;
    parsed.sort();
    parsed.dedup();
    Ok(parsed)
}

/// Parses, deduplicates and sorts a list of actions.
pub fn parse_actions(actions: &[String]) -> Result<Vec<GrantAction>, String> {
    if actions.is_empty() {
        return Err("name at least one action: read or write".into());
    }
    let mut parsed = actions
        .iter()
        .map(|a| {
            GrantAction::parse(a)
                .ok_or_else(|| format!("action \"{a}\" is not one of: read, write"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    parsed.sort();
    parsed.dedup();
    Ok(parsed)
}

pub fn check_purpose(purpose: &str) -> Result<(), String> {
    Purpose::find(purpose)
        .map(|_| ())
        .ok_or_else(|| format!("\"{purpose}\" is not a purpose the vault knows (a DPV purpose such as dpv:ServiceProvision)"))
}

/// Where a grant came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantOrigin {
    /// The person offered it.
    Owner,
    /// The brand asked and the person approved on the consent page.
    Consent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    Active,
    Revoked,
    Expired,
    Exhausted,
    /// Still live, but the person published new terms the brand has not accepted yet: no use
    /// until it does. [`Grant::status`] never says this (it needs the brand's agreement); the
    /// service does.
    Suspended,
}

impl GrantStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Active => "active",
            GrantStatus::Revoked => "revoked",
            GrantStatus::Expired => "expired",
            GrantStatus::Exhausted => "exhausted",
            GrantStatus::Suspended => "suspended",
        }
    }
}

/// The terms' verdict on a grant when it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantDecision {
    pub rule: String,
    pub reason: String,
}

/// Something the brand was told about a grant: the CloudEvents type put in its stream, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrandNotice {
    /// `vrm.grant.created.v1`, `vrm.grant.suspended.v1`, ...
    pub event: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A grant, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    pub client_id: String,
    pub brand_name: String,
    /// Record paths and data categories, sorted.
    pub fields: Vec<String>,
    pub actions: Vec<GrantAction>,
    pub purpose: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub max_uses: Option<u64>,
    pub uses: u64,
    pub origin: GrantOrigin,
    /// The agreement it depends on: the grant lives only while this is the brand's current one.
    pub agreement_id: String,
    pub decision: GrantDecision,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// Refresh tokens carry the generation they were issued in; replaying a used one moves the
    /// generation on, which kills every refresh token of the grant.
    #[serde(default)]
    pub refresh_generation: u64,
    /// When the vault itself revoked the grant because new terms no longer permit it: the rule
    /// that decided and why. Absent for grants revoked by the person or the brand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<GrantDecision>,
    /// What the brand was told about this grant, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub told: Vec<BrandNotice>,
}

impl Grant {
    pub fn status(&self, now: OffsetDateTime) -> GrantStatus {
        if self.revoked_at.is_some() {
            GrantStatus::Revoked
        } else if now >= self.expires_at {
            GrantStatus::Expired
        } else if self.max_uses.is_some_and(|max| self.uses >= max) {
            GrantStatus::Exhausted
        } else {
            GrantStatus::Active
        }
    }

    pub fn allows(&self, action: GrantAction) -> bool {
        self.actions.contains(&action)
    }

    /// Whether the grant covers a record at `path` of `category`.
    pub fn covers(&self, path: &str, category: &str) -> bool {
        self.fields.iter().any(|f| f == path || f == category)
    }

    pub fn uses_left(&self) -> Option<u64> {
        self.max_uses.map(|max| max.saturating_sub(self.uses))
    }

    /// The RFC 9396 authorization detail that tokens for this grant carry.
    pub fn authorization_detail(&self, resource: &str) -> Value {
        serde_json::json!({
            "type": DATA_ACCESS_TYPE,
            "grant_id": self.id,
            "fields": self.fields,
            "actions": self.actions,
            "purpose": self.purpose,
            "locations": [resource],
        })
    }
}

/// Why the terms in force refuse a grant as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerdictRefusal {
    /// The grant names no action, so there is nothing to ask the terms.
    NoAction,
    /// The terms deny one of its actions: the rule that decided, and why.
    NotPermitted { rule: String, reason: String },
}

/// The terms' verdict on a grant of `actions` over `categories` for `purpose`, as of `now` and
/// after `uses` uses, for a brand that agreed at `agreed_at`: every action must be permitted,
/// and the decision kept with the grant is the one for its last action.
pub fn terms_verdict(
    terms: &Terms,
    actions: &[GrantAction],
    categories: &[String],
    purpose: &str,
    now: OffsetDateTime,
    agreed_at: OffsetDateTime,
    uses: u64,
) -> Result<GrantDecision, VerdictRefusal> {
    let mut last = None;
    for action in actions {
        let decision = evaluate(
            terms,
            &AccessRequest {
                action: action.terms_action(),
                categories: categories.to_vec(),
                purpose: purpose.to_owned(),
                at: now,
                count_so_far: uses,
                agreed_at,
            },
        );
        if !decision.permitted {
            return Err(VerdictRefusal::NotPermitted {
                rule: decision.rule,
                reason: decision.reason,
            });
        }
        last = Some(GrantDecision {
            rule: decision.rule,
            reason: decision.reason,
        });
    }
    last.ok_or(VerdictRefusal::NoAction)
}

/// The brand's agreement as the writer read it: the one its record points at, whatever its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgreementFacts<'a> {
    pub id: &'a str,
    pub status: AgreementStatus,
    /// The terms version it accepted.
    pub terms_version: u64,
    /// When the brand accepted; `elapsedTime` constraints count from here.
    pub accepted_at: Option<OffsetDateTime>,
}

/// Everything besides the grant that decides a use, re-read in the writer so that a suspension,
/// new terms or a withdrawal queued before the request is seen by it.
#[derive(Debug, Clone, Copy)]
pub struct UseFacts<'a> {
    /// The brand's status; `None` when the brand was removed.
    pub brand: Option<BrandStatus>,
    /// The agreement the brand's record names, if any.
    pub agreement: Option<AgreementFacts<'a>>,
    /// The version of the terms in force.
    pub terms_version: u64,
    /// The terms in force.
    pub terms: &'a Terms,
}

/// One use a brand asks for.
#[derive(Debug, Clone, Copy)]
pub struct UseRequest<'a> {
    /// The brand asking, as its token says.
    pub client_id: &'a str,
    pub action: GrantAction,
    /// Every field the use touches: its record path and its data category.
    pub fields: &'a [(String, String)],
    pub now: OffsetDateTime,
}

/// A use [`decide_use`] allowed: what the grant looks like once it is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an allowed use must be counted"]
pub struct AllowedUse {
    /// The grant's use count including this use.
    pub uses: u64,
    /// When it was used.
    pub at: OffsetDateTime,
}

impl AllowedUse {
    /// Counts the use on the grant, to be stored in the same batch as the access's audit entry.
    pub fn apply(self, grant: &mut Grant) {
        grant.uses = self.uses;
        grant.last_used_at = Some(self.at);
    }
}

/// Why a use was refused. The first group ends the brand's access with this grant (its token is no
/// longer good for anything); the second refuses only what was asked. The messages are sent to
/// the brand as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UseRefusal {
    #[error("the brand was removed")]
    BrandRemoved,
    #[error("the brand is suspended")]
    BrandSuspended,
    #[error("the grant no longer exists")]
    GrantGone,
    #[error("the grant belongs to another brand")]
    OtherBrand,
    /// Revoked, expired or used up.
    #[error("the grant is {}", .0.as_str())]
    Inactive(GrantStatus),
    #[error("no agreement on the terms in force")]
    NoAgreement,
    /// The brand's agreement is on older terms: the grant is suspended until it accepts these.
    #[error(
        "the person's terms changed; accept version {version} (GET /brand/v1/terms, then POST \
         /brand/v1/agreements) and this grant works again if the new terms still permit it"
    )]
    TermsChanged { version: u64 },
    #[error("the grant was made under an agreement that no longer covers the terms in force")]
    AgreementChanged,
    #[error("this grant does not allow {}", .0.as_str())]
    ActionNotAllowed(GrantAction),
    #[error("this grant does not cover that field")]
    FieldNotCovered,
    /// The terms in force deny it; `rule` names the rule that decided.
    #[error("the person's terms no longer permit this ({rule})")]
    TermsForbid { rule: String },
}

impl UseRefusal {
    /// Whether the refusal means the grant no longer lets the brand in at all, rather than that
    /// it does not cover this request.
    pub const fn ends_access(&self) -> bool {
        !matches!(
            self,
            UseRefusal::ActionNotAllowed(_)
                | UseRefusal::FieldNotCovered
                | UseRefusal::TermsForbid { .. }
        )
    }
}

/// Whether a grant still lets `client_id` in at all, whatever it asks: the checks of
/// [`decide_use`] that end access (brand, grant, status, agreement), in the same order, and
/// nothing about the fields or action asked. Every refusal it gives ends access. The brand API
/// asks it before it looks at a record, so that once a grant has ended every path gets the same
/// answer, whether or not the person has such a record. Returns the grant and when the agreement
/// was accepted.
pub fn admit<'g>(
    grant: Option<&'g Grant>,
    facts: &UseFacts<'_>,
    client_id: &str,
    now: OffsetDateTime,
) -> Result<(&'g Grant, OffsetDateTime), UseRefusal> {
    match facts.brand {
        None => return Err(UseRefusal::BrandRemoved),
        Some(BrandStatus::Suspended) => return Err(UseRefusal::BrandSuspended),
        Some(BrandStatus::Active) => {}
    }
    let grant = grant.ok_or(UseRefusal::GrantGone)?;
    if grant.client_id != client_id {
        return Err(UseRefusal::OtherBrand);
    }
    let status = grant.status(now);
    if status != GrantStatus::Active {
        return Err(UseRefusal::Inactive(status));
    }
    // Only an accepted agreement on the version in force counts; one on older terms is no
    // agreement to these. An accepted one on older terms suspends the grant rather than ending
    // it, and the brand is told which version to accept.
    if let Some(a) = facts.agreement
        && a.status == AgreementStatus::Accepted
        && a.terms_version < facts.terms_version
        && a.id == grant.agreement_id
    {
        return Err(UseRefusal::TermsChanged {
            version: facts.terms_version,
        });
    }
    let agreement = facts.agreement.filter(|a| {
        a.status == AgreementStatus::Accepted && a.terms_version == facts.terms_version
    });
    let Some((agreement_id, agreed_at)) =
        agreement.and_then(|a| a.accepted_at.map(|at| (a.id, at)))
    else {
        return Err(UseRefusal::NoAgreement);
    };
    if agreement_id != grant.agreement_id {
        return Err(UseRefusal::AgreementChanged);
    }
    Ok((grant, agreed_at))
}

/// Decides whether a brand may use a grant now, `grant` being `None` when it no longer exists.
///
/// The checks run from the widest to the narrowest, and the first that fails is the answer: the
/// brand, the grant's owner and status, the agreement (accepted, on the terms in force, and the
/// one the grant was made under), the action and fields the grant names, and last the terms in
/// force, evaluated with the grant's purpose and its count so far. A use that touches no field
/// (reading "all" when nothing is stored yet) reveals no data, so the terms are not asked, but
/// it still counts.
pub fn decide_use(
    grant: Option<&Grant>,
    facts: &UseFacts<'_>,
    request: &UseRequest<'_>,
) -> Result<AllowedUse, UseRefusal> {
    let (grant, agreed_at) = admit(grant, facts, request.client_id, request.now)?;
    if !grant.allows(request.action) {
        return Err(UseRefusal::ActionNotAllowed(request.action));
    }
    if request
        .fields
        .iter()
        .any(|(path, category)| !grant.covers(path, category))
    {
        return Err(UseRefusal::FieldNotCovered);
    }
    let mut categories: Vec<String> = request.fields.iter().map(|(_, c)| c.clone()).collect();
    categories.sort();
    categories.dedup();
    if !categories.is_empty() {
        let decision = evaluate(
            facts.terms,
            &AccessRequest {
                action: request.action.terms_action(),
                categories,
                purpose: grant.purpose.clone(),
                at: request.now,
                count_so_far: grant.uses,
                agreed_at,
            },
        );
        if !decision.permitted {
            return Err(UseRefusal::TermsForbid {
                rule: decision.rule,
            });
        }
    }
    Ok(AllowedUse {
        uses: grant.uses.saturating_add(1),
        at: request.now,
    })
}

/// A data-access authorization detail as a brand sends it (RFC 9396 §2), either naming an
/// existing grant (client credentials) or asking for one (authorization code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessRequestDetail {
    Existing { grant_id: String },
    Ask(AskedGrant),
}

/// What a brand asks for at the authorization endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskedGrant {
    pub fields: Vec<FieldSpec>,
    pub actions: Vec<GrantAction>,
    pub purpose: String,
    pub lifetime: Duration,
}

/// Parses an `authorization_details` parameter: a JSON array with exactly one item of
/// [`DATA_ACCESS_TYPE`]. `resource` is the brand API; `locations`, if given, must name it.
pub fn parse_authorization_details(
    text: &str,
    resource: &str,
) -> Result<AccessRequestDetail, String> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| format!("authorization_details is not JSON: {e}"))?;
    let items = value
        .as_array()
        .ok_or("authorization_details must be a JSON array")?;
    let [item] = items.as_slice() else {
        return Err("authorization_details must hold exactly one item".into());
    };
    let object = item
        .as_object()
        .ok_or("authorization_details[0] must be an object")?;
    if object.get("type").and_then(Value::as_str) != Some(DATA_ACCESS_TYPE) {
        return Err(format!(
            "authorization_details[0].type must be {DATA_ACCESS_TYPE}"
        ));
    }
    if let Some(locations) = object.get("locations") {
        let ok = locations
            .as_array()
            .is_some_and(|l| !l.is_empty() && l.iter().all(|x| x.as_str() == Some(resource)));
        if !ok {
            return Err(format!(
                "authorization_details[0].locations may only name {resource}"
            ));
        }
    }
    let strings = |name: &str| -> Result<Option<Vec<String>>, String> {
        match object.get(name) {
            None => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|_| format!("authorization_details[0].{name} must be a list of strings")),
        }
    };
    if let Some(grant_id) = object.get("grant_id") {
        let grant_id = grant_id
            .as_str()
            .ok_or("authorization_details[0].grant_id must be a string")?;
        return Ok(AccessRequestDetail::Existing {
            grant_id: grant_id.to_owned(),
        });
    }
    let fields =
        parse_fields(&strings("fields")?.ok_or("authorization_details[0].fields is required")?)?;
    let actions = parse_actions(&strings("actions")?.unwrap_or_else(|| vec!["read".into()]))?;
    let purpose = object
        .get("purpose")
        .and_then(Value::as_str)
        .ok_or("authorization_details[0].purpose is required (a DPV purpose)")?
        .to_owned();
    check_purpose(&purpose)?;
    let lifetime = match object.get("expires_in") {
        None => DEFAULT_ASKED_LIFETIME,
        Some(v) => {
            let secs = v
                .as_i64()
                .filter(|s| *s > 0 && *s <= MAX_GRANT_LIFETIME.whole_seconds())
                .ok_or("authorization_details[0].expires_in must be seconds, at most a year")?;
            Duration::seconds(secs)
        }
    };
    Ok(AccessRequestDetail::Ask(AskedGrant {
        fields,
        actions,
        purpose,
        lifetime,
    }))
}

/// A masked view of a value for the consent page: enough to recognise it, not to read it.
pub fn mask(value: &Value) -> String {
    match value {
        Value::String(s) => mask_text(s),
        Value::Number(_) | Value::Bool(_) => "•••".into(),
        Value::Array(a) => format!("{} items", a.len()),
        Value::Object(o) => format!("{} entries", o.len()),
        Value::Null => String::new(),
    }
}

fn mask_text(text: &str) -> String {
    if let Some((local, domain)) = text.split_once('@') {
        return format!("{}@{}", mask_word(local), mask_word(domain));
    }
    let digits = text.chars().filter(char::is_ascii_digit).count();
    if digits >= 6 && digits * 2 >= text.chars().count() {
        let last: String = text
            .chars()
            .filter(char::is_ascii_digit)
            .skip(digits - 2)
            .collect();
        return format!("•••• {last}");
    }
    text.split(' ').map(mask_word).collect::<Vec<_>>().join(" ")
}

fn mask_word(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) if word.chars().count() > 1 => format!("{first}•••"),
        Some(_) => "•".into(),
        None => String::new(),
    }
}

pub mod disclosure;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
