//! Data grants: which brand may do what with which of the person's fields, for which purpose,
//! until when and how many times.
//!
//! Pure: the authorization-details object of RFC 9396 is parsed here, a grant's status is computed
//! from the time and count the caller passes, and whether a grant covers a field is decided here.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::domain::records::{DataCategory, RecordPath};
use crate::domain::terms::Purpose;

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
mod tests {
    use super::*;
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
}
