//! Records: the person's data as collections of fields, addressed by dotted paths such as
//! `contact.email`, each tagged with a W3C DPV personal-data category.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The most bytes a record's value may take once serialised as JSON.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// The deepest nesting a record's value may have.
pub const MAX_VALUE_DEPTH: usize = 16;
/// Segments in a path: a collection and a field, optionally nested two levels further.
pub const MIN_SEGMENTS: usize = 2;
pub const MAX_SEGMENTS: usize = 4;
pub const MAX_SEGMENT_LEN: usize = 64;

/// A validated record path: 2 to 4 dot-separated segments of `[a-z0-9_-]`, each starting with a
/// letter or digit.
///
/// It is the plain string in JSON, on the wire and on disk; reading one back validates it again,
/// so a `Record` that decodes always has a path [`RecordPath::parse`] accepts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct RecordPath(String);

impl TryFrom<String> for RecordPath {
    type Error = RecordError;

    fn try_from(text: String) -> Result<Self, RecordError> {
        RecordPath::parse(&text)
    }
}

impl From<RecordPath> for String {
    fn from(path: RecordPath) -> String {
        path.0
    }
}

impl std::fmt::Display for RecordPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error(
        "a record path is 2 to 4 dot-separated parts of lowercase letters, digits, '_' or '-' \
         (at most 64 characters each), for example contact.email"
    )]
    InvalidPath,
    #[error("unknown data category {0:?}; GET /api/v1/categories lists the known ones")]
    UnknownCategory(String),
    #[error("the value is larger than {MAX_VALUE_BYTES} bytes")]
    ValueTooLarge,
    #[error("the value is nested deeper than {MAX_VALUE_DEPTH} levels")]
    ValueTooDeep,
    #[error("a record value cannot be null; delete the record instead")]
    NullValue,
    #[error(
        "this does not look like an email address: it needs a name, an @ and a domain, for example ana@example.org"
    )]
    InvalidEmail,
    #[error(
        "this does not look like a phone number: use digits, spaces, + - ( ) and at least 5 digits"
    )]
    InvalidPhone,
}

impl RecordPath {
    pub fn parse(text: &str) -> Result<Self, RecordError> {
        let segments: Vec<&str> = text.split('.').collect();
        if !(MIN_SEGMENTS..=MAX_SEGMENTS).contains(&segments.len()) {
            return Err(RecordError::InvalidPath);
        }
        let valid_segment = |s: &str| {
            !s.is_empty()
                && s.len() <= MAX_SEGMENT_LEN
                && s.bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        };
        if segments.iter().all(|s| valid_segment(s)) {
            Ok(RecordPath(text.to_owned()))
        } else {
            Err(RecordError::InvalidPath)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The collection the field belongs to (`contact` in `contact.email`).
    pub fn collection(&self) -> &str {
        self.0.split('.').next().unwrap_or_default()
    }

    /// The field within its collection (`email` in `contact.email`, `home.street` in
    /// `addresses.home.street`).
    pub fn field(&self) -> &str {
        self.0.split_once('.').map(|(_, f)| f).unwrap_or_default()
    }
}

/// A data category: a DPV personal-data concept with a label the person can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DataCategory {
    pub id: &'static str,
    pub label: &'static str,
}

/// The categories a record may carry: concepts from W3C DPV and its personal-data extension (`pd:`).
pub const CATEGORIES: &[DataCategory] = &[
    DataCategory {
        id: "pd:Name",
        label: "Name",
    },
    DataCategory {
        id: "pd:EmailAddress",
        label: "Email address",
    },
    DataCategory {
        id: "pd:TelephoneNumber",
        label: "Telephone number",
    },
    DataCategory {
        id: "pd:PhysicalAddress",
        label: "Postal address",
    },
    DataCategory {
        id: "pd:Location",
        label: "Location",
    },
    DataCategory {
        id: "pd:BirthDate",
        label: "Date of birth",
    },
    DataCategory {
        id: "pd:Age",
        label: "Age",
    },
    DataCategory {
        id: "pd:Gender",
        label: "Gender",
    },
    DataCategory {
        id: "pd:Language",
        label: "Language",
    },
    DataCategory {
        id: "pd:Nationality",
        label: "Nationality",
    },
    DataCategory {
        id: "pd:Preference",
        label: "Preference",
    },
    DataCategory {
        id: "pd:Interest",
        label: "Interest",
    },
    DataCategory {
        id: "pd:PaymentCardNumber",
        label: "Payment card",
    },
    DataCategory {
        id: "pd:BankAccount",
        label: "Bank account",
    },
    DataCategory {
        id: "pd:Identifier",
        label: "Identifier (account or membership number)",
    },
    DataCategory {
        id: "pd:Username",
        label: "Username",
    },
    DataCategory {
        id: "pd:Health",
        label: "Health (special category)",
    },
    DataCategory {
        id: "dpv:PersonalData",
        label: "Other personal data",
    },
];

impl DataCategory {
    pub fn find(id: &str) -> Option<DataCategory> {
        CATEGORIES.iter().copied().find(|c| c.id == id)
    }

    /// The category a well-known field gets when the person does not choose one.
    pub fn default_for(path: &RecordPath) -> Option<DataCategory> {
        let field = path.field().rsplit('.').next().unwrap_or_default();
        let id = match (path.collection(), field) {
            (_, "email") => "pd:EmailAddress",
            (_, "phone" | "mobile" | "telephone") => "pd:TelephoneNumber",
            // A person's name is kept under `profile` or `contact` (the README's examples and
            // the shipped templates' wording use both); elsewhere `name` may name anything.
            (
                "profile" | "contact",
                "name" | "full_name" | "given_name" | "family_name" | "nickname",
            ) => "pd:Name",
            ("contact", "address") => "pd:PhysicalAddress",
            ("profile", "birthdate" | "birth_date" | "birthday") => "pd:BirthDate",
            ("profile", "gender") => "pd:Gender",
            ("profile", "language" | "languages") => "pd:Language",
            ("profile", "nationality") => "pd:Nationality",
            ("addresses", _) => "pd:PhysicalAddress",
            ("preferences", _) => "pd:Preference",
            ("interests", _) => "pd:Interest",
            ("payment", _) => "pd:PaymentCardNumber",
            ("memberships" | "loyalty", _) => "pd:Identifier",
            _ => return None,
        };
        DataCategory::find(id)
    }

    /// The catch-all category, for fields the person did not classify and we cannot guess.
    pub const OTHER: DataCategory = DataCategory {
        id: "dpv:PersonalData",
        label: "Other personal data",
    };

    /// Resolves the category of a write: the one asked for if known, else the field's default,
    /// else [`DataCategory::OTHER`]. Terms and grants can always name the field by its path.
    pub fn resolve(path: &RecordPath, asked: Option<&str>) -> Result<DataCategory, RecordError> {
        match asked {
            Some(id) => {
                DataCategory::find(id).ok_or_else(|| RecordError::UnknownCategory(id.into()))
            }
            None => Ok(DataCategory::default_for(path).unwrap_or(DataCategory::OTHER)),
        }
    }
}

/// Checks a record value: not null, not too large, not too deep.
pub fn validate_value(value: &serde_json::Value) -> Result<(), RecordError> {
    fn depth(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
            serde_json::Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }
    if value.is_null() {
        return Err(RecordError::NullValue);
    }
    if depth(value) > MAX_VALUE_DEPTH {
        return Err(RecordError::ValueTooDeep);
    }
    let size = serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_VALUE_BYTES {
        return Err(RecordError::ValueTooLarge);
    }
    Ok(())
}

/// Checks the value of a well-known field against what that field is: an email address must look
/// like one, a phone number must be made of digits. Only text values are checked (a field holding
/// a list or an object is the person's own shape), and only for the field names
/// [`DataCategory::default_for`] knows as email or telephone, so free-form fields stay free.
pub fn validate_well_known(
    path: &RecordPath,
    value: &serde_json::Value,
) -> Result<(), RecordError> {
    let Some(text) = value.as_str() else {
        return Ok(());
    };
    match path.field().rsplit('.').next().unwrap_or_default() {
        "email" if !looks_like_email(text) => Err(RecordError::InvalidEmail),
        "phone" | "mobile" | "telephone" if !looks_like_phone(text) => {
            Err(RecordError::InvalidPhone)
        }
        _ => Ok(()),
    }
}

/// `name@domain.tld` with no spaces: what every mail form checks, not RFC 5322 in full.
fn looks_like_email(text: &str) -> bool {
    let Some((local, domain)) = text.rsplit_once('@') else {
        return false;
    };
    let labels: Vec<&str> = domain.split('.').collect();
    !local.is_empty()
        && !text.chars().any(char::is_whitespace)
        && labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && !l.contains('@'))
}

/// Digits with the usual separators, and enough digits to be a number someone can call.
fn looks_like_phone(text: &str) -> bool {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    (5..=20).contains(&digits)
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '.' | '/'))
}

/// A stored record. `version` starts at 1 and grows by one with every write; it is the ETag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub path: RecordPath,
    pub value: serde_json::Value,
    pub category: String,
    pub version: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Record {
    /// The strong entity tag of this version, as sent in `ETag`.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }
}

/// A conditional-request precondition (RFC 9110 §13.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    None,
    /// `If-Match`: one of these entity tags, or `*` (any current record).
    IfMatch(Vec<String>),
    /// `If-None-Match: *`: only if there is no current record.
    IfNoneMatchAny,
}

impl Precondition {
    /// Whether a write may go ahead given the current record (if any).
    pub fn holds(&self, current: Option<&Record>) -> bool {
        match (self, current) {
            (Precondition::None, _) => true,
            (Precondition::IfNoneMatchAny, current) => current.is_none(),
            (Precondition::IfMatch(_), None) => false,
            (Precondition::IfMatch(tags), Some(record)) => {
                let etag = record.etag();
                tags.iter().any(|t| t == "*" || t == &etag)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        for ok in [
            "contact.email",
            "addresses.home.street",
            "a.b",
            "x1.y_2.z-3.w",
        ] {
            assert!(RecordPath::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "contact",
            "contact.",
            ".email",
            "Contact.email",
            "a.b.c.d.e",
            "a..b",
            "a/b.c",
            "_a.b",
            "a.b c",
            "a.é",
            "../etc.passwd",
        ] {
            assert_eq!(
                RecordPath::parse(bad),
                Err(RecordError::InvalidPath),
                "{bad}"
            );
        }
        let long = format!("a.{}", "b".repeat(65));
        assert!(RecordPath::parse(&long).is_err());
        let p = RecordPath::parse("addresses.home.street").unwrap();
        assert_eq!((p.collection(), p.field()), ("addresses", "home.street"));
    }

    #[test]
    fn categories_default_then_fall_back_to_other() {
        let email = RecordPath::parse("contact.email").unwrap();
        assert_eq!(
            DataCategory::resolve(&email, None).unwrap().id,
            "pd:EmailAddress"
        );
        let odd = RecordPath::parse("misc.thing").unwrap();
        assert_eq!(
            DataCategory::resolve(&odd, None).unwrap(),
            DataCategory::OTHER
        );
        assert!(matches!(
            DataCategory::resolve(&odd, Some("pd:Nope")),
            Err(RecordError::UnknownCategory(_))
        ));
        assert_eq!(
            DataCategory::resolve(&odd, Some("pd:Interest")).unwrap().id,
            "pd:Interest"
        );
    }

    #[test]
    fn a_name_under_contact_or_profile_is_a_name() {
        for path in [
            "contact.name",
            "profile.name",
            "contact.given_name",
            "profile.nickname",
        ] {
            let path = RecordPath::parse(path).unwrap();
            assert_eq!(DataCategory::resolve(&path, None).unwrap().id, "pd:Name");
        }
        let address = RecordPath::parse("contact.address").unwrap();
        assert_eq!(
            DataCategory::resolve(&address, None).unwrap().id,
            "pd:PhysicalAddress"
        );
        // A `name` elsewhere is not assumed to be the person's.
        let pet = RecordPath::parse("pets.name").unwrap();
        assert_eq!(
            DataCategory::resolve(&pet, None).unwrap(),
            DataCategory::OTHER
        );
    }

    #[test]
    fn values_are_bounded() {
        assert!(validate_value(&serde_json::json!("x")).is_ok());
        assert_eq!(
            validate_value(&serde_json::Value::Null),
            Err(RecordError::NullValue)
        );
        let big = serde_json::Value::String("x".repeat(MAX_VALUE_BYTES));
        assert_eq!(validate_value(&big), Err(RecordError::ValueTooLarge));
        let mut deep = serde_json::json!(1);
        for _ in 0..20 {
            deep = serde_json::json!([deep]);
        }
        assert_eq!(validate_value(&deep), Err(RecordError::ValueTooDeep));
    }

    #[test]
    fn well_known_fields_are_checked_for_what_they_are() {
        let email = RecordPath::parse("contact.email").unwrap();
        let phone = RecordPath::parse("work.phone").unwrap();
        let free = RecordPath::parse("other.shoe_size").unwrap();
        for ok in ["ana.lima@example.org", "a+b@mail.example.co.uk"] {
            assert_eq!(
                validate_well_known(&email, &serde_json::json!(ok)),
                Ok(()),
                "{ok}"
            );
        }
        for bad in [
            "ana.lima@",
            "ana.lima",
            "@example.org",
            "ana @example.org",
            "ana@example",
            "ana@.org",
            "",
        ] {
            assert_eq!(
                validate_well_known(&email, &serde_json::json!(bad)),
                Err(RecordError::InvalidEmail),
                "{bad}"
            );
        }
        for ok in ["+351 912 345 678", "(021) 555-0100"] {
            assert_eq!(
                validate_well_known(&phone, &serde_json::json!(ok)),
                Ok(()),
                "{ok}"
            );
        }
        for bad in ["call me", "123", "+351 91x 345"] {
            assert_eq!(
                validate_well_known(&phone, &serde_json::json!(bad)),
                Err(RecordError::InvalidPhone),
                "{bad}"
            );
        }
        // Structured values and free-form fields are the person's own shape.
        assert_eq!(
            validate_well_known(&email, &serde_json::json!(["a", "b"])),
            Ok(())
        );
        assert_eq!(
            validate_well_known(&free, &serde_json::json!("42 EU")),
            Ok(())
        );
    }

    #[test]
    fn a_path_is_its_plain_string_in_json_and_is_validated_when_read() {
        let path = RecordPath::parse("contact.email").unwrap();
        assert_eq!(serde_json::to_string(&path).unwrap(), r#""contact.email""#);
        let back: RecordPath = serde_json::from_str(r#""contact.email""#).unwrap();
        assert_eq!(back, path);
        assert!(serde_json::from_str::<RecordPath>(r#""Not A Path""#).is_err());
        let map = std::collections::BTreeMap::from([(path, 1)]);
        assert_eq!(
            serde_json::to_string(&map).unwrap(),
            r#"{"contact.email":1}"#
        );
    }

    #[test]
    fn preconditions() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let r = Record {
            path: RecordPath::parse("a.b").unwrap(),
            value: serde_json::json!(1),
            category: "pd:Age".into(),
            version: 3,
            created_at: now,
            updated_at: now,
        };
        assert!(Precondition::IfMatch(vec!["\"3\"".into()]).holds(Some(&r)));
        assert!(!Precondition::IfMatch(vec!["\"2\"".into()]).holds(Some(&r)));
        assert!(Precondition::IfMatch(vec!["*".into()]).holds(Some(&r)));
        assert!(!Precondition::IfMatch(vec!["*".into()]).holds(None));
        assert!(Precondition::IfNoneMatchAny.holds(None));
        assert!(!Precondition::IfNoneMatchAny.holds(Some(&r)));
        assert!(Precondition::None.holds(Some(&r)));
    }
}
