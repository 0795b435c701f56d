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
//! a store (the properties are at the end of this file).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::domain::brands::{AgreementStatus, BrandStatus};
use crate::domain::records::{Category, RecordPath};
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
            return Category::find(text)
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
}

impl GrantStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Active => "active",
            GrantStatus::Revoked => "revoked",
            GrantStatus::Expired => "expired",
            GrantStatus::Exhausted => "exhausted",
        }
    }
}

/// The terms' verdict on a grant when it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantDecision {
    pub rule: String,
    pub reason: String,
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
    match facts.brand {
        None => return Err(UseRefusal::BrandRemoved),
        Some(BrandStatus::Suspended) => return Err(UseRefusal::BrandSuspended),
        Some(BrandStatus::Active) => {}
    }
    let grant = grant.ok_or(UseRefusal::GrantGone)?;
    if grant.client_id != request.client_id {
        return Err(UseRefusal::OtherBrand);
    }
    let status = grant.status(request.now);
    if status != GrantStatus::Active {
        return Err(UseRefusal::Inactive(status));
    }
    // Only an accepted agreement on the version in force counts; one on older terms is no
    // agreement to these.
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const RESOURCE: &str = "http://v/brand/v1";

    #[test]
    fn authorization_details_ask_and_name() {
        let asked = parse_authorization_details(
            &json!([{"type": DATA_ACCESS_TYPE, "fields": ["contact.email", "pd:TelephoneNumber", "contact.email"],
                     "actions": ["read"], "purpose": "dpv:ServiceProvision", "locations": [RESOURCE], "expires_in": 3600}])
                .to_string(),
            RESOURCE,
        );
        let Ok(AccessRequestDetail::Ask(asked)) = asked else {
            unreachable!("{asked:?}")
        };
        assert_eq!(asked.fields.len(), 2);
        assert_eq!(asked.lifetime, Duration::hours(1));
        let named = parse_authorization_details(
            &json!([{"type": DATA_ACCESS_TYPE, "grant_id": "g1"}]).to_string(),
            RESOURCE,
        );
        assert_eq!(
            named,
            Ok(AccessRequestDetail::Existing {
                grant_id: "g1".into()
            })
        );
    }

    #[test]
    fn bad_authorization_details_say_why() {
        let cases = [
            ("{}", "array"),
            ("[]", "exactly one"),
            (r#"[{"type": "other"}]"#, "type"),
            (
                r#"[{"type": "urn:vrm-vault:data-access:v1", "purpose": "dpv:ServiceProvision"}]"#,
                "fields",
            ),
            (
                r#"[{"type": "urn:vrm-vault:data-access:v1", "fields": ["a.b"]}]"#,
                "purpose",
            ),
            (
                r#"[{"type": "urn:vrm-vault:data-access:v1", "fields": ["a.b"], "purpose": "dpv:Nope"}]"#,
                "purpose",
            ),
            (
                r#"[{"type": "urn:vrm-vault:data-access:v1", "fields": ["a.b"], "purpose": "dpv:ServiceProvision", "actions": ["delete"]}]"#,
                "delete",
            ),
            (
                r#"[{"type": "urn:vrm-vault:data-access:v1", "fields": ["a.b"], "purpose": "dpv:ServiceProvision", "locations": ["https://elsewhere"]}]"#,
                "locations",
            ),
            (
                r#"[{"type": "urn:vrm-vault:data-access:v1", "fields": ["A"], "purpose": "dpv:ServiceProvision"}]"#,
                "\"A\"",
            ),
            (
                r#"[{"type": "urn:vrm-vault:data-access:v1", "fields": ["pd:Nope"], "purpose": "dpv:ServiceProvision"}]"#,
                "pd:Nope",
            ),
        ];
        for (text, needle) in cases {
            let error = parse_authorization_details(text, RESOURCE)
                .err()
                .unwrap_or_default();
            assert!(error.contains(needle), "{text} → {error}");
        }
    }

    #[test]
    fn status_follows_revocation_time_and_count() {
        let t = OffsetDateTime::UNIX_EPOCH;
        let mut grant = Grant {
            id: "g".into(),
            client_id: "c".into(),
            brand_name: "B".into(),
            fields: vec!["contact.email".into(), "pd:TelephoneNumber".into()],
            actions: vec![GrantAction::Read],
            purpose: "dpv:ServiceProvision".into(),
            created_at: t,
            expires_at: t + Duration::hours(1),
            max_uses: Some(2),
            uses: 1,
            origin: GrantOrigin::Owner,
            agreement_id: "a".into(),
            decision: GrantDecision {
                rule: "permission[0]".into(),
                reason: String::new(),
            },
            revoked_at: None,
            last_used_at: None,
            refresh_generation: 0,
        };
        assert_eq!(grant.status(t), GrantStatus::Active);
        assert_eq!(grant.uses_left(), Some(1));
        assert_eq!(grant.status(t + Duration::hours(1)), GrantStatus::Expired);
        grant.uses = 2;
        assert_eq!(grant.status(t), GrantStatus::Exhausted);
        grant.revoked_at = Some(t);
        assert_eq!(grant.status(t), GrantStatus::Revoked);
        assert!(grant.covers("contact.email", "pd:EmailAddress"));
        assert!(grant.covers("contact.mobile", "pd:TelephoneNumber"));
        assert!(!grant.covers("contact.name", "pd:Name"));
        assert!(!grant.allows(GrantAction::Write));
    }

    #[test]
    fn masks_keep_a_hint_only() {
        assert_eq!(mask(&json!("ana@example.org")), "a•••@e•••");
        assert_eq!(mask(&json!("+33 6 12 34 56 78")), "•••• 78");
        assert_eq!(mask(&json!("Ana Lima")), "A••• L•••");
        assert_eq!(mask(&json!(42)), "•••");
        assert!(!mask(&json!("secretvalue")).contains("ecret"));
    }

    // --- deciding a use -------------------------------------------------------------------------

    const NOW: OffsetDateTime = time::macros::datetime!(2026-06-01 12:00 UTC);
    const AGREED: OffsetDateTime = time::macros::datetime!(2026-05-01 12:00 UTC);
    const TERMS_VERSION: u64 = 2;

    /// The SD-BASE template: it permits reading contact data for service provision and forbids
    /// marketing.
    fn sd_base() -> Terms {
        let document = crate::domain::terms::Template::find("sd-base")
            .unwrap()
            .document()
            .unwrap();
        Terms::parse(&document).unwrap()
    }

    /// A grant to brand "c" under agreement "a", good for an hour and three uses.
    fn grant() -> Grant {
        Grant {
            id: "g".into(),
            client_id: "c".into(),
            brand_name: "B".into(),
            fields: vec!["contact.email".into(), "pd:TelephoneNumber".into()],
            actions: vec![GrantAction::Read],
            purpose: "dpv:ServiceProvision".into(),
            created_at: NOW - Duration::hours(1),
            expires_at: NOW + Duration::hours(1),
            max_uses: Some(3),
            uses: 0,
            origin: GrantOrigin::Owner,
            agreement_id: "a".into(),
            decision: GrantDecision {
                rule: "permission[0]".into(),
                reason: String::new(),
            },
            revoked_at: None,
            last_used_at: None,
            refresh_generation: 0,
        }
    }

    /// An active brand with an accepted agreement "a" on the terms in force.
    fn facts(terms: &Terms) -> UseFacts<'_> {
        UseFacts {
            brand: Some(BrandStatus::Active),
            agreement: Some(AgreementFacts {
                id: "a",
                status: AgreementStatus::Accepted,
                terms_version: TERMS_VERSION,
                accepted_at: Some(AGREED),
            }),
            terms_version: TERMS_VERSION,
            terms,
        }
    }

    fn email() -> Vec<(String, String)> {
        vec![("contact.email".into(), "pd:EmailAddress".into())]
    }

    fn read(fields: &[(String, String)], now: OffsetDateTime) -> UseRequest<'_> {
        UseRequest {
            client_id: "c",
            action: GrantAction::Read,
            fields,
            now,
        }
    }

    #[test]
    fn a_good_use_is_allowed_and_counted() {
        let terms = sd_base();
        let mut g = grant();
        let fields = email();
        let allowed = decide_use(Some(&g), &facts(&terms), &read(&fields, NOW));
        assert_eq!(allowed, Ok(AllowedUse { uses: 1, at: NOW }));
        allowed.unwrap().apply(&mut g);
        assert_eq!(g.uses, 1);
        assert_eq!(g.last_used_at, Some(NOW));
        // A phone number is covered through its category, not its path.
        let phone = vec![("contact.mobile".to_owned(), "pd:TelephoneNumber".to_owned())];
        assert!(decide_use(Some(&g), &facts(&terms), &read(&phone, NOW)).is_ok());
    }

    /// Every refusal, with the message brands received before the decision moved here, and
    /// whether it ends the brand's access (401 invalid_token) or refuses this request (403).
    #[test]
    fn each_refusal_keeps_its_message_and_kind() {
        let terms = sd_base();
        let fields = email();
        let request = read(&fields, NOW);
        let decide = |g: Option<&Grant>, f: &UseFacts<'_>, r: &UseRequest<'_>| {
            decide_use(g, f, r).unwrap_err()
        };
        let mut cases: Vec<(UseRefusal, &str, bool)> = Vec::new();

        let mut f = facts(&terms);
        f.brand = None;
        cases.push((
            decide(Some(&grant()), &f, &request),
            "the brand was removed",
            true,
        ));
        f.brand = Some(BrandStatus::Suspended);
        cases.push((
            decide(Some(&grant()), &f, &request),
            "the brand is suspended",
            true,
        ));
        cases.push((
            decide(None, &facts(&terms), &request),
            "the grant no longer exists",
            true,
        ));
        let mut g = grant();
        g.client_id = "other".into();
        cases.push((
            decide(Some(&g), &facts(&terms), &request),
            "the grant belongs to another brand",
            true,
        ));
        let mut g = grant();
        g.revoked_at = Some(NOW);
        cases.push((
            decide(Some(&g), &facts(&terms), &request),
            "the grant is revoked",
            true,
        ));
        let mut g = grant();
        g.expires_at = NOW;
        cases.push((
            decide(Some(&g), &facts(&terms), &request),
            "the grant is expired",
            true,
        ));
        let mut g = grant();
        g.uses = 3;
        cases.push((
            decide(Some(&g), &facts(&terms), &request),
            "the grant is exhausted",
            true,
        ));
        let no_agreement = "no agreement on the terms in force";
        let mut f = facts(&terms);
        f.agreement = None;
        cases.push((decide(Some(&grant()), &f, &request), no_agreement, true));
        for change in [
            |a: &mut AgreementFacts<'_>| a.status = AgreementStatus::Withdrawn,
            |a: &mut AgreementFacts<'_>| a.status = AgreementStatus::Terminated,
            |a: &mut AgreementFacts<'_>| a.terms_version = TERMS_VERSION - 1,
            |a: &mut AgreementFacts<'_>| a.accepted_at = None,
        ] {
            let mut f = facts(&terms);
            if let Some(a) = f.agreement.as_mut() {
                change(a);
            }
            cases.push((decide(Some(&grant()), &f, &request), no_agreement, true));
        }
        let mut g = grant();
        g.agreement_id = "older".into();
        cases.push((
            decide(Some(&g), &facts(&terms), &request),
            "the grant was made under an agreement that no longer covers the terms in force",
            true,
        ));
        let write = UseRequest {
            action: GrantAction::Write,
            ..request
        };
        cases.push((
            decide(Some(&grant()), &facts(&terms), &write),
            "this grant does not allow write",
            false,
        ));
        let name = vec![("contact.name".to_owned(), "pd:Name".to_owned())];
        cases.push((
            decide(Some(&grant()), &facts(&terms), &read(&name, NOW)),
            "this grant does not cover that field",
            false,
        ));
        let mut g = grant();
        g.purpose = "dpv:Marketing".into();
        cases.push((
            decide(Some(&g), &facts(&terms), &request),
            "the person's terms no longer permit this (basis SD-BASE)",
            false,
        ));

        for (refusal, message, ends_access) in cases {
            assert_eq!(refusal.to_string(), message, "{refusal:?}");
            assert_eq!(refusal.ends_access(), ends_access, "{refusal:?}");
        }
    }

    #[test]
    fn the_widest_refusal_wins() {
        let terms = sd_base();
        let name = vec![("contact.name".to_owned(), "pd:Name".to_owned())];
        let mut g = grant();
        g.expires_at = NOW;
        g.agreement_id = "older".into();
        let mut f = facts(&terms);
        f.brand = Some(BrandStatus::Suspended);
        let request = read(&name, NOW);
        assert_eq!(
            decide_use(Some(&g), &f, &request),
            Err(UseRefusal::BrandSuspended)
        );
        f.brand = Some(BrandStatus::Active);
        assert_eq!(
            decide_use(Some(&g), &f, &request),
            Err(UseRefusal::Inactive(GrantStatus::Expired))
        );
        g.expires_at = NOW + Duration::hours(1);
        assert_eq!(
            decide_use(Some(&g), &f, &request),
            Err(UseRefusal::AgreementChanged)
        );
        g.agreement_id = "a".into();
        assert_eq!(
            decide_use(Some(&g), &f, &request),
            Err(UseRefusal::FieldNotCovered)
        );
    }

    #[test]
    fn a_use_touching_no_field_is_counted_without_asking_the_terms() {
        let terms = sd_base();
        let mut g = grant();
        // The terms would refuse this purpose for any field; with none, nothing is revealed.
        g.purpose = "dpv:Marketing".into();
        g.uses = 2;
        assert_eq!(
            decide_use(Some(&g), &facts(&terms), &read(&[], NOW)),
            Ok(AllowedUse { uses: 3, at: NOW })
        );
    }

    #[test]
    fn the_terms_verdict_needs_every_action_permitted() {
        let terms = sd_base();
        let email = vec!["pd:EmailAddress".to_owned()];
        let verdict = |actions: &[GrantAction], purpose: &str| {
            terms_verdict(&terms, actions, &email, purpose, NOW, AGREED, 0)
        };
        let read = verdict(&[GrantAction::Read], "dpv:ServiceProvision").unwrap();
        assert_eq!(read.rule, "permission[0]");
        // SD-BASE lets brands update identifiers only, so reading and writing an email fails on
        // the write, whatever the read would say.
        assert!(matches!(
            verdict(
                &[GrantAction::Read, GrantAction::Write],
                "dpv:ServiceProvision"
            ),
            Err(VerdictRefusal::NotPermitted { .. })
        ));
        assert!(matches!(
            verdict(&[GrantAction::Read], "dpv:Marketing"),
            Err(VerdictRefusal::NotPermitted { rule, .. }) if rule == "basis SD-BASE"
        ));
        assert_eq!(
            verdict(&[], "dpv:ServiceProvision"),
            Err(VerdictRefusal::NoAction)
        );
    }

    // --- properties of deciding a use -----------------------------------------------------------

    /// Fields a request may touch: path and category. The grant names some of these paths and
    /// categories, so a request may fall inside or outside it either way.
    const FIELDS: &[(&str, &str)] = &[
        ("contact.email", "pd:EmailAddress"),
        ("contact.mobile", "pd:TelephoneNumber"),
        ("contact.name", "pd:Name"),
        ("home.address", "pd:PhysicalAddress"),
    ];

    fn any_grant() -> impl Strategy<Value = Grant> {
        (
            proptest::sample::subsequence(FIELDS.to_vec(), 0..=FIELDS.len()),
            proptest::collection::vec(any::<bool>(), FIELDS.len()),
            proptest::sample::subsequence(vec![GrantAction::Read, GrantAction::Write], 0..=2),
            -7_200i64..7_200,
            proptest::option::of(0u64..6),
            0u64..8,
            proptest::option::of(-7_200i64..7_200),
        )
            .prop_map(
                |(fields, by_category, actions, expires_in, max_uses, uses, revoked)| {
                    let mut g = grant();
                    g.fields = fields
                        .iter()
                        .zip(by_category)
                        .map(|((path, category), by_category)| {
                            (if by_category { *category } else { *path }).to_owned()
                        })
                        .collect();
                    g.fields.sort();
                    g.actions = actions;
                    g.expires_at = NOW + Duration::seconds(expires_in);
                    g.max_uses = max_uses;
                    g.uses = uses;
                    g.revoked_at = revoked.map(|s| NOW + Duration::seconds(s));
                    g
                },
            )
    }

    fn any_fields() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::sample::subsequence(FIELDS.to_vec(), 0..=FIELDS.len()).prop_map(|fields| {
            fields
                .into_iter()
                .map(|(p, c)| (p.to_owned(), c.to_owned()))
                .collect()
        })
    }

    fn any_action() -> impl Strategy<Value = GrantAction> {
        prop_oneof![Just(GrantAction::Read), Just(GrantAction::Write)]
    }

    fn any_brand() -> impl Strategy<Value = Option<BrandStatus>> {
        prop_oneof![
            4 => Just(Some(BrandStatus::Active)),
            1 => Just(Some(BrandStatus::Suspended)),
            1 => Just(None),
        ]
    }

    proptest! {
        #[test]
        fn never_allowed_once_revoked_expired_or_used_up(
            g in any_grant(),
            fields in any_fields(),
            action in any_action(),
            at in -7_200i64..7_200,
        ) {
            let terms = sd_base();
            let now = NOW + Duration::seconds(at);
            let request = UseRequest { client_id: "c", action, fields: &fields, now };
            let decision = decide_use(Some(&g), &facts(&terms), &request);
            let spent = g.max_uses.is_some_and(|max| g.uses >= max);
            if g.revoked_at.is_some() || now >= g.expires_at || spent {
                prop_assert!(decision.is_err(), "{decision:?}");
            }
            if let Ok(allowed) = decision {
                prop_assert_eq!(g.status(now), GrantStatus::Active);
                prop_assert!(g.max_uses.is_none_or(|max| allowed.uses <= max));
            }
        }

        #[test]
        fn never_allowed_outside_the_granted_fields_and_actions(
            g in any_grant(),
            fields in any_fields(),
            action in any_action(),
        ) {
            let terms = sd_base();
            let request = UseRequest { client_id: "c", action, fields: &fields, now: NOW };
            let decision = decide_use(Some(&g), &facts(&terms), &request);
            let outside = fields.iter().any(|(path, category)| {
                !g.fields.iter().any(|f| f == path || f == category)
            });
            if outside || !g.actions.contains(&action) {
                prop_assert!(decision.is_err(), "{decision:?}");
            }
        }

        #[test]
        fn never_allowed_without_the_brand_and_its_agreement(
            g in any_grant(),
            brand in any_brand(),
            agreement_id in prop_oneof![Just("a"), Just("b")],
            accepted in any::<bool>(),
            version in (TERMS_VERSION - 1)..=TERMS_VERSION,
            fields in any_fields(),
            client_id in prop_oneof![Just("c"), Just("d")],
        ) {
            let terms = sd_base();
            let mut f = facts(&terms);
            f.brand = brand;
            f.agreement = Some(AgreementFacts {
                id: agreement_id,
                status: if accepted { AgreementStatus::Accepted } else { AgreementStatus::Withdrawn },
                terms_version: version,
                accepted_at: Some(AGREED),
            });
            let request = UseRequest { client_id, action: GrantAction::Read, fields: &fields, now: NOW };
            if decide_use(Some(&g), &f, &request).is_ok() {
                prop_assert_eq!(brand, Some(BrandStatus::Active));
                prop_assert_eq!(client_id, g.client_id.as_str());
                prop_assert!(accepted && version == TERMS_VERSION);
                prop_assert_eq!(agreement_id, g.agreement_id.as_str());
            }
        }

        #[test]
        fn allowed_uses_never_exceed_the_limit(
            max_uses in 1u64..8,
            attempts in 0usize..16,
            fields in any_fields(),
        ) {
            let terms = sd_base();
            let mut g = grant();
            g.fields = FIELDS.iter().map(|(path, _)| (*path).to_owned()).collect();
            g.max_uses = Some(max_uses);
            let mut allowed = 0u64;
            for i in 0..attempts {
                let now = NOW + Duration::seconds(i64::try_from(i).unwrap_or(0));
                let request = read(&fields, now);
                if let Ok(using) = decide_use(Some(&g), &facts(&terms), &request) {
                    using.apply(&mut g);
                    allowed += 1;
                }
                prop_assert!(g.uses <= max_uses);
            }
            // Every use up to the limit goes through: the limit is the only thing in the way.
            let expected = u64::try_from(attempts).unwrap_or(u64::MAX).min(max_uses);
            prop_assert_eq!(allowed, expected);
            prop_assert_eq!(g.uses, expected);
        }

        #[test]
        fn time_moving_forward_never_undoes_an_expiry(
            g in any_grant(),
            fields in any_fields(),
            action in any_action(),
            earlier in -7_200i64..7_200,
            later_by in 0i64..7_200,
        ) {
            let terms = sd_base();
            let then = NOW + Duration::seconds(earlier);
            let later = then + Duration::seconds(later_by);
            let at = |now| UseRequest { client_id: "c", action, fields: &fields, now };
            let first = decide_use(Some(&g), &facts(&terms), &at(then));
            if first == Err(UseRefusal::Inactive(GrantStatus::Expired)) {
                let second = decide_use(Some(&g), &facts(&terms), &at(later));
                prop_assert!(second.is_err(), "{second:?}");
            }
        }
    }
}
