//! Intents: what the person broadcasts ("lunch nearby for two"), as the owner API receives it,
//! validated, and as stored with its status.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use super::geo::{Geohash, InvalidGeohash};
use super::taxonomy::{CategoryError, IntentCategory};
use crate::domain::records::{RecordError, RecordPath};

pub const MAX_TEXT_CHARS: usize = 500;
/// The furthest ahead an intent may expire.
pub const MAX_INTENT_LIFETIME: Duration = Duration::days(30);
pub const MAX_RADIUS_M: u32 = 50_000;
pub const MAX_PARTY_SIZE: u32 = 100;
pub const MAX_TAGS: usize = 10;
pub const MAX_TAG_CHARS: usize = 32;
/// The most offers an intent may ask for, and how many it gets when it names no limit.
pub const MAX_OFFERS_LIMIT: u32 = 50;
pub const DEFAULT_MAX_OFFERS: u32 = 10;
pub const MAX_DISCLOSED: usize = 10;
/// Digits before the decimal point of an amount: enough for any price, small enough for `i64`.
const MAX_AMOUNT_INTEGER_DIGITS: usize = 12;

// Numbers are read wide so that an out-of-range value gets a message naming its field rather
// than a bare type error. The doc comments are the OpenAPI document's.
/// The body of `POST /api/v1/intents`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIntent {
    /// A category of `GET /api/v1/intent-categories`, e.g. `food.lunch`.
    #[schema(example = "food.lunch")]
    pub category: String,
    /// What the person wants, at most 500 characters.
    #[schema(example = "Lunch for two near the office")]
    pub text: String,
    /// RFC 3339, within 30 days.
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub location: Option<NewLocation>,
    pub window: Option<NewWindow>,
    pub price_max: Option<NewMoney>,
    pub party_size: Option<i64>,
    pub tags: Option<Vec<String>>,
    pub max_offers: Option<i64>,
    pub disclose: Option<Vec<String>>,
    /// Also publish the intent to the vault's intent relays (`GET /api/v1/relays`), to reach
    /// brands the person has never met. Such an intent discloses nothing (`disclose` must be
    /// absent) and its location goes out no finer than geohash precision 5.
    #[serde(default)]
    pub relay: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLocation {
    /// The cell, at the precision the person picks.
    #[schema(example = "u09tv")]
    pub geohash: String,
    /// Up to 50 000.
    pub radius_m: i64,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWindow {
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub from: String,
    /// RFC 3339, after `from`.
    #[schema(format = DateTime)]
    pub to: String,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMoney {
    /// A decimal number as text.
    #[schema(example = "15.00")]
    pub amount: String,
    /// ISO 4217.
    #[schema(example = "EUR")]
    pub currency: String,
}

/// Where the person wants the intent answered: every point within `radius_m` of the cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentLocation {
    pub geohash: Geohash,
    pub radius_m: u32,
}

/// When the person wants the thing (a table from 12:00 to 14:00, a hotel from Friday to Sunday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
}

/// A price: a decimal string with at most two fractional digits and an ISO 4217 code, kept as
/// written so it is shown back exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount: String,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error(
        "amount {0:?} must be a decimal number with at most 2 fractional digits, such as \"15.00\""
    )]
    Amount(String),
    #[error("currency {0:?} must be an ISO 4217 code of 3 capital letters, such as EUR")]
    Currency(String),
}

impl Money {
    /// Checks an amount (`"15"`, `"15.5"`, `"15.00"`; no sign, no exponent, no leading zeros)
    /// and a currency (`EUR`). Offers' prices go through here too.
    pub fn parse(amount: &str, currency: &str) -> Result<Money, MoneyError> {
        let (whole, fraction) = match amount.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (amount, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let whole_ok = digits(whole)
            && whole.len() <= MAX_AMOUNT_INTEGER_DIGITS
            && (whole == "0" || !whole.starts_with('0'));
        let fraction_ok = fraction.is_none_or(|f| digits(f) && f.len() <= 2);
        if !whole_ok || !fraction_ok {
            return Err(MoneyError::Amount(amount.to_owned()));
        }
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(MoneyError::Currency(currency.to_owned()));
        }
        Ok(Money {
            amount: amount.to_owned(),
            currency: currency.to_owned(),
        })
    }

    /// The amount in hundredths (`"15.5"` is 1550), for comparing prices of one currency.
    pub fn hundredths(&self) -> i64 {
        let (whole, fraction) = self.amount.split_once('.').unwrap_or((&self.amount, ""));
        let whole: i64 = whole.parse().unwrap_or(0);
        let fraction: i64 = format!("{fraction:0<2}").parse().unwrap_or(0);
        whole * 100 + fraction
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntentError {
    #[error("category: {0}")]
    Category(CategoryError),
    #[error("text must not be empty")]
    TextEmpty,
    #[error("text may have at most {MAX_TEXT_CHARS} characters")]
    TextTooLong,
    #[error("text must not contain control characters (line breaks and tabs included)")]
    TextControl,
    #[error("expires_at {0:?} is not an RFC 3339 date-time such as 2030-01-31T12:00:00Z")]
    ExpiresAtFormat(String),
    #[error("expires_at must be in the future")]
    ExpiresAtPast,
    #[error("expires_at may be at most 30 days ahead")]
    ExpiresAtTooFar,
    #[error("location.geohash: {0}")]
    Geohash(InvalidGeohash),
    #[error("location.radius_m must be between 1 and {MAX_RADIUS_M} metres")]
    Radius,
    #[error("window.{0} {1:?} is not an RFC 3339 date-time such as 2030-01-31T12:00:00Z")]
    WindowFormat(&'static str, String),
    #[error("window.from must be before window.to")]
    WindowOrder,
    #[error("price_max.{0}")]
    PriceMax(MoneyError),
    #[error("party_size must be between 1 and {MAX_PARTY_SIZE}")]
    PartySize,
    #[error("tags may list at most {MAX_TAGS} tags")]
    TooManyTags,
    #[error("tags: {0:?} is not a tag: 1 to {MAX_TAG_CHARS} characters of a-z, 0-9 and -")]
    Tag(String),
    #[error("max_offers must be between 1 and {MAX_OFFERS_LIMIT}")]
    MaxOffers,
    #[error("disclose may list at most {MAX_DISCLOSED} record paths")]
    TooManyDisclosed,
    #[error("disclose: {0:?}: {1}")]
    Disclose(String, RecordError),
}

impl IntentError {
    /// The member of the request body at fault, as a JSON path.
    pub fn field(&self) -> &'static str {
        match self {
            IntentError::Category(_) => "category",
            IntentError::TextEmpty | IntentError::TextTooLong | IntentError::TextControl => "text",
            IntentError::ExpiresAtFormat(_)
            | IntentError::ExpiresAtPast
            | IntentError::ExpiresAtTooFar => "expires_at",
            IntentError::Geohash(_) => "location.geohash",
            IntentError::Radius => "location.radius_m",
            IntentError::WindowFormat("to", _) => "window.to",
            IntentError::WindowFormat(..) | IntentError::WindowOrder => "window.from",
            IntentError::PriceMax(MoneyError::Amount(_)) => "price_max.amount",
            IntentError::PriceMax(MoneyError::Currency(_)) => "price_max.currency",
            IntentError::PartySize => "party_size",
            IntentError::TooManyTags | IntentError::Tag(_) => "tags",
            IntentError::MaxOffers => "max_offers",
            IntentError::TooManyDisclosed | IntentError::Disclose(..) => "disclose",
        }
    }
}

/// An intent that passed [`NewIntent::validate`]: what the vault stores and brands are sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidIntent {
    pub category: IntentCategory,
    pub text: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub location: Option<IntentLocation>,
    pub window: Option<Window>,
    pub price_max: Option<Money>,
    pub party_size: Option<u32>,
    /// Without duplicates, in the order given.
    pub tags: Vec<String>,
    pub max_offers: u32,
    /// Record paths whose values go out with the intent; checked with [`RecordPath::parse`],
    /// without duplicates, in the order given.
    pub disclose: Vec<String>,
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

fn range(value: i64, max: u32) -> Option<u32> {
    u32::try_from(value).ok().filter(|v| (1..=max).contains(v))
}

/// Keeps the first of equal items.
fn dedup_in_order(items: Vec<String>) -> Vec<String> {
    let mut kept: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        if !kept.contains(&item) {
            kept.push(item);
        }
    }
    kept
}

impl NewIntent {
    /// Checks every rule; the error names the first field at fault, in the body's order.
    pub fn validate(self, now: OffsetDateTime) -> Result<ValidIntent, IntentError> {
        let category = IntentCategory::parse(&self.category).map_err(IntentError::Category)?;
        if self.text.trim().is_empty() {
            return Err(IntentError::TextEmpty);
        }
        if self.text.chars().count() > MAX_TEXT_CHARS {
            return Err(IntentError::TextTooLong);
        }
        if self.text.chars().any(char::is_control) {
            return Err(IntentError::TextControl);
        }
        let expires_at = parse_time(&self.expires_at)
            .ok_or_else(|| IntentError::ExpiresAtFormat(self.expires_at.clone()))?;
        if expires_at <= now {
            return Err(IntentError::ExpiresAtPast);
        }
        if expires_at > now + MAX_INTENT_LIFETIME {
            return Err(IntentError::ExpiresAtTooFar);
        }
        let location = match self.location {
            None => None,
            Some(l) => Some(IntentLocation {
                geohash: Geohash::parse(&l.geohash).map_err(IntentError::Geohash)?,
                radius_m: range(l.radius_m, MAX_RADIUS_M).ok_or(IntentError::Radius)?,
            }),
        };
        let window = match self.window {
            None => None,
            Some(w) => {
                let from = parse_time(&w.from)
                    .ok_or_else(|| IntentError::WindowFormat("from", w.from.clone()))?;
                let to = parse_time(&w.to)
                    .ok_or_else(|| IntentError::WindowFormat("to", w.to.clone()))?;
                if from >= to {
                    return Err(IntentError::WindowOrder);
                }
                Some(Window { from, to })
            }
        };
        let price_max = self
            .price_max
            .map(|p| Money::parse(&p.amount, &p.currency))
            .transpose()
            .map_err(IntentError::PriceMax)?;
        let party_size = self
            .party_size
            .map(|n| range(n, MAX_PARTY_SIZE).ok_or(IntentError::PartySize))
            .transpose()?;
        let tags = self.tags.unwrap_or_default();
        if tags.len() > MAX_TAGS {
            return Err(IntentError::TooManyTags);
        }
        if let Some(bad) = tags.iter().find(|t| {
            t.is_empty()
                || t.chars().count() > MAX_TAG_CHARS
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        }) {
            return Err(IntentError::Tag(bad.clone()));
        }
        let max_offers = match self.max_offers {
            None => DEFAULT_MAX_OFFERS,
            Some(n) => range(n, MAX_OFFERS_LIMIT).ok_or(IntentError::MaxOffers)?,
        };
        let disclose = self.disclose.unwrap_or_default();
        if disclose.len() > MAX_DISCLOSED {
            return Err(IntentError::TooManyDisclosed);
        }
        for path in &disclose {
            RecordPath::parse(path).map_err(|e| IntentError::Disclose(path.clone(), e))?;
        }
        Ok(ValidIntent {
            category,
            text: self.text,
            expires_at,
            location,
            window,
            price_max,
            party_size,
            tags: dedup_in_order(tags),
            max_offers,
            disclose: dedup_in_order(disclose),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentStatus {
    /// Brands may answer it.
    Open,
    /// The person took it back.
    Withdrawn,
    /// Its `expires_at` has passed.
    Expired,
    /// The person accepted an offer.
    Fulfilled,
}

impl IntentStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            IntentStatus::Open => "open",
            IntentStatus::Withdrawn => "withdrawn",
            IntentStatus::Expired => "expired",
            IntentStatus::Fulfilled => "fulfilled",
        }
    }
}

/// An intent, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub id: String,
    pub intent: ValidIntent,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub withdrawn_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub fulfilled_at: Option<OffsetDateTime>,
}

impl Intent {
    /// What the person did with it comes first (withdrawn, then fulfilled, whatever the time);
    /// otherwise it is open until `expires_at`, exclusive.
    pub fn status(&self, now: OffsetDateTime) -> IntentStatus {
        if self.withdrawn_at.is_some() {
            IntentStatus::Withdrawn
        } else if self.fulfilled_at.is_some() {
            IntentStatus::Fulfilled
        } else if now >= self.intent.expires_at {
            IntentStatus::Expired
        } else {
            IntentStatus::Open
        }
    }

    pub fn is_open(&self, now: OffsetDateTime) -> bool {
        self.status(now) == IntentStatus::Open
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn now() -> OffsetDateTime {
        OffsetDateTime::parse("2030-01-01T12:00:00Z", &Rfc3339).unwrap()
    }

    fn body() -> Value {
        json!({
            "category": "food.lunch",
            "text": "lunch nearby for two",
            "expires_at": "2030-01-01T14:00:00Z",
            "location": {"geohash": "u09tv", "radius_m": 1500},
            "window": {"from": "2030-01-01T12:30:00Z", "to": "2030-01-01T14:00:00Z"},
            "price_max": {"amount": "15.00", "currency": "EUR"},
            "party_size": 2,
            "tags": ["vegan", "terrace", "vegan"],
            "max_offers": 5,
            "disclose": ["contact.email"]
        })
    }

    fn validate(body: Value) -> Result<ValidIntent, IntentError> {
        serde_json::from_value::<NewIntent>(body)
            .unwrap()
            .validate(now())
    }

    /// The body with `pointer` set to `value` (or removed when `value` is null).
    fn with(pointer: &str, value: Value) -> Value {
        let mut b = body();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = b.pointer_mut(parent).unwrap().as_object_mut().unwrap();
        if value.is_null() {
            target.remove(key);
        } else {
            target.insert(key.to_owned(), value);
        }
        b
    }

    #[test]
    fn a_full_intent_validates() {
        let intent = validate(body()).unwrap();
        assert_eq!(intent.category.as_str(), "food.lunch");
        assert_eq!(intent.location.as_ref().unwrap().radius_m, 1500);
        assert_eq!(intent.tags, vec!["vegan", "terrace"]);
        assert_eq!(intent.max_offers, 5);
        assert_eq!(intent.party_size, Some(2));
        assert_eq!(intent.price_max.as_ref().unwrap().hundredths(), 1500);
        assert_eq!(intent.disclose, vec!["contact.email"]);
        // Stored and read back unchanged, in the contract's shape.
        let stored = serde_json::to_value(&intent).unwrap();
        assert_eq!(
            stored["location"],
            json!({"geohash": "u09tv", "radius_m": 1500})
        );
        assert_eq!(stored["expires_at"], "2030-01-01T14:00:00Z");
        assert_eq!(
            serde_json::from_value::<ValidIntent>(stored).unwrap(),
            intent
        );
    }

    #[test]
    fn a_minimal_intent_gets_defaults() {
        let intent = validate(json!({
            "category": "health.dentist",
            "text": "a check-up",
            "expires_at": "2030-01-31T12:00:00Z"
        }))
        .unwrap();
        assert_eq!(intent.max_offers, DEFAULT_MAX_OFFERS);
        assert_eq!(intent.location, None);
        assert_eq!(intent.window, None);
        assert_eq!(intent.party_size, None);
        assert!(intent.tags.is_empty() && intent.disclose.is_empty());
        let nulls = validate(json!({
            "category": "health.dentist", "text": "x", "expires_at": "2030-01-02T00:00:00+01:00",
            "location": null, "tags": null, "max_offers": null, "disclose": null
        }))
        .unwrap();
        assert_eq!(nulls.max_offers, 10);
    }

    #[test]
    fn unknown_members_are_refused() {
        let mut b = body();
        b["colour"] = json!("red");
        assert!(serde_json::from_value::<NewIntent>(b).is_err());
        let b = with("/location/precision", json!(5));
        assert!(serde_json::from_value::<NewIntent>(b).is_err());
        let b = with("/price_max/max", json!(5));
        assert!(serde_json::from_value::<NewIntent>(b).is_err());
        let b = with("/category", Value::Null);
        let error = serde_json::from_value::<NewIntent>(b).err().unwrap();
        assert!(error.to_string().contains("category"), "{error}");
    }

    #[test]
    fn every_rule_names_its_field() {
        use IntentError as E;
        let cases: Vec<(Value, IntentError, &str)> = vec![
            (
                with("/category", json!("food")),
                E::Category(CategoryError::TooBroad("food".into(), "food.breakfast")),
                "category",
            ),
            (
                with("/category", json!("food.brunch")),
                E::Category(CategoryError::Unknown("food.brunch".into())),
                "category",
            ),
            (
                with("/category", json!("Food.Lunch")),
                E::Category(CategoryError::Syntax("Food.Lunch".into())),
                "category",
            ),
            (with("/text", json!("")), E::TextEmpty, "text"),
            (with("/text", json!("   ")), E::TextEmpty, "text"),
            (
                with("/text", json!("x".repeat(501))),
                E::TextTooLong,
                "text",
            ),
            (with("/text", json!("two\nlines")), E::TextControl, "text"),
            (with("/text", json!("a\u{7}bell")), E::TextControl, "text"),
            (
                with("/expires_at", json!("tomorrow")),
                E::ExpiresAtFormat("tomorrow".into()),
                "expires_at",
            ),
            (
                with("/expires_at", json!("2030-01-01T12:00:00Z")),
                E::ExpiresAtPast,
                "expires_at",
            ),
            (
                with("/expires_at", json!("2030-01-31T12:00:01Z")),
                E::ExpiresAtTooFar,
                "expires_at",
            ),
            (
                with("/location/geohash", json!("u09tvw0f")),
                E::Geohash(InvalidGeohash::TooFine(8)),
                "location.geohash",
            ),
            (
                with("/location/geohash", json!("u09a")),
                E::Geohash(InvalidGeohash::Character('a')),
                "location.geohash",
            ),
            (
                with("/location/geohash", json!("")),
                E::Geohash(InvalidGeohash::Empty),
                "location.geohash",
            ),
            (
                with("/location/radius_m", json!(0)),
                E::Radius,
                "location.radius_m",
            ),
            (
                with("/location/radius_m", json!(50_001)),
                E::Radius,
                "location.radius_m",
            ),
            (
                with("/location/radius_m", json!(-5)),
                E::Radius,
                "location.radius_m",
            ),
            (
                with("/window/from", json!("noon")),
                E::WindowFormat("from", "noon".into()),
                "window.from",
            ),
            (
                with("/window/to", json!("2pm")),
                E::WindowFormat("to", "2pm".into()),
                "window.to",
            ),
            (
                with("/window/to", json!("2030-01-01T12:30:00Z")),
                E::WindowOrder,
                "window.from",
            ),
            (
                with("/price_max/amount", json!("15.001")),
                E::PriceMax(MoneyError::Amount("15.001".into())),
                "price_max.amount",
            ),
            (
                with("/price_max/currency", json!("eur")),
                E::PriceMax(MoneyError::Currency("eur".into())),
                "price_max.currency",
            ),
            (with("/party_size", json!(0)), E::PartySize, "party_size"),
            (with("/party_size", json!(101)), E::PartySize, "party_size"),
            (
                with(
                    "/tags",
                    json!(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"]),
                ),
                E::TooManyTags,
                "tags",
            ),
            (
                with("/tags", json!(["Vegan"])),
                E::Tag("Vegan".into()),
                "tags",
            ),
            (with("/tags", json!([""])), E::Tag(String::new()), "tags"),
            (
                with("/tags", json!(["x".repeat(33)])),
                E::Tag("x".repeat(33)),
                "tags",
            ),
            (
                with("/tags", json!(["gluten free"])),
                E::Tag("gluten free".into()),
                "tags",
            ),
            (with("/max_offers", json!(0)), E::MaxOffers, "max_offers"),
            (with("/max_offers", json!(51)), E::MaxOffers, "max_offers"),
            (
                with(
                    "/disclose",
                    json!([
                        "a.a", "a.b", "a.c", "a.d", "a.e", "a.f", "a.g", "a.h", "a.i", "a.j", "a.k"
                    ]),
                ),
                E::TooManyDisclosed,
                "disclose",
            ),
            (
                with("/disclose", json!(["email"])),
                E::Disclose("email".into(), RecordError::InvalidPath),
                "disclose",
            ),
        ];
        for (body, expected, field) in cases {
            let error = validate(body.clone()).err();
            assert_eq!(error.as_ref(), Some(&expected), "{body}");
            assert_eq!(expected.field(), field);
            let message = expected.to_string();
            assert!(
                message.starts_with(field),
                "{message} should start with {field}"
            );
        }
    }

    #[test]
    fn limits_are_inclusive() {
        assert!(validate(with("/expires_at", json!("2030-01-31T12:00:00Z"))).is_ok());
        assert!(validate(with("/expires_at", json!("2030-01-01T12:00:01Z"))).is_ok());
        assert!(validate(with("/text", json!("é".repeat(500)))).is_ok());
        assert!(validate(with("/location/radius_m", json!(1))).is_ok());
        assert!(validate(with("/location/radius_m", json!(50_000))).is_ok());
        assert!(validate(with("/location/geohash", json!("u"))).is_ok());
        assert!(validate(with("/location/geohash", json!("u09tvw0"))).is_ok());
        assert!(validate(with("/party_size", json!(1))).is_ok());
        assert!(validate(with("/party_size", json!(100))).is_ok());
        assert!(validate(with("/max_offers", json!(1))).is_ok());
        assert!(validate(with("/max_offers", json!(50))).is_ok());
        assert!(validate(with("/tags", json!(["x".repeat(32), "a-1"]))).is_ok());
        assert!(
            validate(with(
                "/tags",
                json!(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"])
            ))
            .is_ok()
        );
        // A window may lie in the past or outlast the intent: only its order is checked.
        assert!(
            validate(with(
                "/window",
                json!({"from": "2029-01-01T00:00:00Z", "to": "2029-01-01T00:00:01Z"})
            ))
            .is_ok()
        );
    }

    #[test]
    fn amounts_and_currencies() {
        for ok in ["0", "0.5", "15", "15.0", "15.00", "999999999999.99"] {
            assert!(Money::parse(ok, "EUR").is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".5",
            "15.",
            "015",
            "-1",
            "+1",
            "1e3",
            "1,50",
            "15.001",
            " 15",
            "1000000000000",
        ] {
            assert_eq!(
                Money::parse(bad, "EUR"),
                Err(MoneyError::Amount(bad.to_owned())),
                "{bad:?}"
            );
        }
        for bad in ["EU", "EURO", "eur", "E1R", ""] {
            assert_eq!(
                Money::parse("1", bad),
                Err(MoneyError::Currency(bad.to_owned())),
                "{bad:?}"
            );
        }
        let price = |a: &str| Money::parse(a, "EUR").unwrap().hundredths();
        assert_eq!(price("15"), 1500);
        assert_eq!(price("15.5"), 1550);
        assert_eq!(price("0.05"), 5);
    }

    #[test]
    fn status_follows_the_person_then_the_clock() {
        let mut intent = Intent {
            id: "i_1".into(),
            intent: validate(body()).unwrap(),
            created_at: now(),
            withdrawn_at: None,
            fulfilled_at: None,
        };
        let expiry = intent.intent.expires_at;
        assert_eq!(intent.status(now()), IntentStatus::Open);
        assert!(intent.is_open(expiry - Duration::seconds(1)));
        assert_eq!(intent.status(expiry), IntentStatus::Expired);
        intent.fulfilled_at = Some(now());
        assert_eq!(intent.status(now()), IntentStatus::Fulfilled);
        assert_eq!(intent.status(expiry), IntentStatus::Fulfilled);
        intent.withdrawn_at = Some(now());
        assert_eq!(intent.status(expiry), IntentStatus::Withdrawn);
        assert_eq!(
            serde_json::to_value(IntentStatus::Fulfilled).unwrap(),
            json!(IntentStatus::Fulfilled.as_str())
        );
        let stored = serde_json::to_string(&intent).unwrap();
        assert_eq!(serde_json::from_str::<Intent>(&stored).unwrap(), intent);
    }
}
