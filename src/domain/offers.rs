//! Offers: a brand's answer to an intent, shaped like schema.org `Offer`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::domain::intents::intent::Money;
use crate::domain::records::RecordPath;

const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 2_000;
const MAX_PLACE: usize = 200;
const MAX_URL: usize = 500;
const MAX_REQUESTED: usize = 10;

// The doc comments are the OpenAPI document's.
/// The body of `POST /brand/v1/intents/{id}/offers`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOffer {
    #[schema(example = "Two-course lunch")]
    pub name: String,
    pub description: Option<String>,
    pub price: Option<NewPrice>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub valid_until: String,
    pub fulfilment: Option<NewFulfilment>,
    /// https.
    pub url: Option<String>,
    /// Record paths the brand would like shared if the person accepts.
    #[schema(example = json!(["contact.phone"]))]
    pub data_requested: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPrice {
    /// A decimal number as text.
    #[schema(example = "24.00")]
    pub amount: String,
    /// ISO 4217.
    #[schema(example = "EUR")]
    pub currency: String,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFulfilment {
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub to: Option<String>,
    pub place: Option<String>,
}

/// Where and when the brand would deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fulfilment {
    #[serde(with = "time::serde::rfc3339::option")]
    pub from: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub to: Option<OffsetDateTime>,
    pub place: Option<String>,
}

/// An offer that passed [`NewOffer::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferTerms {
    pub name: String,
    pub description: Option<String>,
    pub price: Option<Money>,
    #[serde(with = "time::serde::rfc3339")]
    pub valid_until: OffsetDateTime,
    pub fulfilment: Option<Fulfilment>,
    pub url: Option<String>,
    /// Record paths the brand would like to receive if the person accepts.
    pub data_requested: Vec<String>,
}

/// Why an offer was refused: the member of the body at fault, and a sentence that names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OfferError {
    /// The member of the request body at fault, as a JSON path (e.g. `fulfilment.from`).
    pub field: &'static str,
    pub message: String,
}

fn fault(field: &'static str, message: impl Into<String>) -> OfferError {
    OfferError {
        field,
        message: message.into(),
    }
}

fn text(name: &'static str, value: &str, max: usize) -> Result<(), OfferError> {
    if value.trim().is_empty() {
        return Err(fault(name, format!("{name} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(fault(
            name,
            format!("{name} may have at most {max} characters"),
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(fault(
            name,
            format!("{name} must not contain control characters"),
        ));
    }
    Ok(())
}

fn time_of(name: &'static str, value: &str) -> Result<OffsetDateTime, OfferError> {
    OffsetDateTime::parse(value, &Rfc3339)
        .map_err(|_| fault(name, format!("{name} must be an RFC 3339 date and time")))
}

impl NewOffer {
    /// Checks every field; the message names the first one at fault.
    pub fn validate(self, now: OffsetDateTime) -> Result<OfferTerms, OfferError> {
        text("name", &self.name, MAX_NAME)?;
        if let Some(d) = &self.description {
            text("description", d, MAX_DESCRIPTION)?;
        }
        let price = match self.price {
            Some(p) => Some(
                Money::parse(&p.amount, &p.currency)
                    .map_err(|e| fault("price", format!("price: {e}")))?,
            ),
            None => None,
        };
        let valid_until = time_of("valid_until", &self.valid_until)?;
        if valid_until <= now {
            return Err(fault("valid_until", "valid_until must be in the future"));
        }
        let fulfilment = match self.fulfilment {
            None => None,
            Some(f) => {
                let from = f
                    .from
                    .as_deref()
                    .map(|t| time_of("fulfilment.from", t))
                    .transpose()?;
                let to =
                    f.to.as_deref()
                        .map(|t| time_of("fulfilment.to", t))
                        .transpose()?;
                if let (Some(from), Some(to)) = (from, to)
                    && from >= to
                {
                    return Err(fault(
                        "fulfilment.from",
                        "fulfilment.from must be before fulfilment.to",
                    ));
                }
                if let Some(place) = &f.place {
                    text("fulfilment.place", place, MAX_PLACE)?;
                }
                Some(Fulfilment {
                    from,
                    to,
                    place: f.place,
                })
            }
        };
        if let Some(url) = &self.url {
            text("url", url, MAX_URL)?;
            let parsed = url::Url::parse(url).map_err(|_| fault("url", "url must be a URL"))?;
            if parsed.scheme() != "https" {
                return Err(fault("url", "url must be https"));
            }
        }
        let data_requested = self.data_requested.unwrap_or_default();
        if data_requested.len() > MAX_REQUESTED {
            return Err(fault(
                "data_requested",
                format!("data_requested may list at most {MAX_REQUESTED} fields"),
            ));
        }
        let mut requested: Vec<String> = Vec::new();
        for path in data_requested {
            RecordPath::parse(&path)
                .map_err(|e| fault("data_requested", format!("data_requested: \"{path}\": {e}")))?;
            if !requested.contains(&path) {
                requested.push(path);
            }
        }
        Ok(OfferTerms {
            name: self.name,
            description: self.description,
            price,
            valid_until,
            fulfilment,
            url: self.url,
            data_requested: requested,
        })
    }
}

/// Where an offer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferStatus {
    Pending,
    Accepted,
    Declined,
}

impl OfferStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            OfferStatus::Pending => "pending",
            OfferStatus::Accepted => "accepted",
            OfferStatus::Declined => "declined",
        }
    }
}

/// An offer, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub id: String,
    pub intent_id: String,
    pub client_id: String,
    pub brand_name: String,
    pub terms: OfferTerms,
    pub status: OfferStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    /// The grant made when the person accepted and shared the requested data.
    pub grant_id: Option<String>,
    /// For an offer that came through an intent relay: which, and the brand's signed
    /// acceptance of the person's terms (DESIGN §11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relayed: Option<crate::domain::relayed::RelayedOffer>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(valid_until: &str) -> NewOffer {
        NewOffer {
            name: "Menu du jour".into(),
            description: None,
            price: Some(NewPrice {
                amount: "14.50".into(),
                currency: "EUR".into(),
            }),
            valid_until: valid_until.into(),
            fulfilment: None,
            url: None,
            data_requested: Some(vec!["contact.phone".into(), "contact.phone".into()]),
        }
    }

    #[test]
    fn a_good_offer_validates_and_dedups_requests() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let valid = offer("1970-01-02T00:00:00Z").validate(now);
        assert_eq!(
            valid.map(|o| o.data_requested),
            Ok(vec!["contact.phone".to_owned()])
        );
    }

    #[test]
    fn bad_offers_name_the_field() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let past = offer("1969-12-31T00:00:00Z")
            .validate(now)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(past.contains("valid_until"), "{past}");
        let at = |o: NewOffer| o.validate(now).err().map(|e| e.field);
        assert_eq!(at(offer("1969-12-31T00:00:00Z")), Some("valid_until"));
        let mut bad_price = offer("1970-01-02T00:00:00Z");
        bad_price.price = Some(NewPrice {
            amount: "1.234".into(),
            currency: "EUR".into(),
        });
        assert!(
            bad_price
                .validate(now)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("price")
        );
        let mut http = offer("1970-01-02T00:00:00Z");
        http.url = Some("http://shop.example".into());
        assert!(
            http.validate(now)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("https")
        );
        let mut path = offer("1970-01-02T00:00:00Z");
        path.data_requested = Some(vec!["Bad Path".into()]);
        assert!(
            path.validate(now)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("data_requested")
        );
        let mut url = offer("1970-01-02T00:00:00Z");
        url.url = Some("http://shop.example".into());
        assert_eq!(at(url), Some("url"));
        let mut path = offer("1970-01-02T00:00:00Z");
        path.data_requested = Some(vec!["Bad Path".into()]);
        assert_eq!(at(path), Some("data_requested"));
    }
}
