//! A brand's subscription: which categories and areas it wants intents for, and how they reach
//! it. Also the matching rule itself, which the index must agree with.

use serde::{Deserialize, Serialize};

use super::geo::{self, Geohash, InvalidGeohash};
use super::intent::{IntentLocation, MAX_RADIUS_M};
use super::taxonomy::{CategoryError, IntentCategory};

pub const MAX_CATEGORIES: usize = 50;
pub const MAX_AREAS: usize = 50;
pub const MAX_WEBHOOK_URL_CHARS: usize = 2000;

// The doc comments are the OpenAPI document's.
/// The body of `PUT /brand/v1/subscription`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    /// Category prefixes, e.g. `food` for every `food.*` intent.
    #[schema(example = json!(["food"]))]
    pub categories: Vec<String>,
    /// Where from; everywhere when absent.
    pub areas: Option<Vec<NewArea>>,
    /// https (or loopback http where the vault allows it for testing).
    pub webhook_url: Option<String>,
    /// `webhook`, `sse` and/or `poll`.
    #[schema(example = json!(["poll"]))]
    pub delivery: Option<Vec<String>>,
}

// One flat struct rather than an untagged enum, so that a wrong shape gets a message naming the
// area instead of serde's "did not match any variant".
/// An area: `{"geohash": "u33"}` or `{"lat": 48.85, "lon": 2.35, "radius_m": 5000}`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewArea {
    pub geohash: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub radius_m: Option<i64>,
}

/// Where a brand wants intents from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Area {
    Cell { geohash: Geohash },
    Circle { lat: f64, lon: f64, radius_m: u32 },
}

impl Area {
    /// Whether the area meets the intent's place (every point within its radius of its cell).
    pub fn meets(&self, location: &IntentLocation) -> bool {
        let place = geo::Place::new(location.geohash.bbox(), f64::from(location.radius_m));
        match self {
            Area::Cell { geohash } => place.meets_cell(&geo::Disc::new(geohash.bbox())),
            Area::Circle { lat, lon, radius_m } => {
                place.meets_circle(*lat, *lon, f64::from(*radius_m))
            }
        }
    }
}

/// How events reach the brand. Server-sent events and polling read the same per-brand feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    Webhook,
    Sse,
    Poll,
}

impl Delivery {
    pub const ALL: [Delivery; 3] = [Delivery::Webhook, Delivery::Sse, Delivery::Poll];

    pub const fn as_str(self) -> &'static str {
        match self {
            Delivery::Webhook => "webhook",
            Delivery::Sse => "sse",
            Delivery::Poll => "poll",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error("categories must list at least one category")]
    NoCategories,
    #[error("categories may list at most {MAX_CATEGORIES} categories")]
    TooManyCategories,
    #[error("categories: {0}")]
    Category(CategoryError),
    #[error("areas may list at most {MAX_AREAS} areas (none means everywhere)")]
    TooManyAreas,
    #[error("areas[{0}] must be either {{\"geohash\"}} or {{\"lat\", \"lon\", \"radius_m\"}}")]
    AreaShape(usize),
    #[error("areas[{0}].geohash: {1}")]
    Geohash(usize, InvalidGeohash),
    #[error("areas[{0}].lat must be between -90 and 90")]
    Lat(usize),
    #[error("areas[{0}].lon must be between -180 and 180")]
    Lon(usize),
    #[error("areas[{0}].radius_m must be between 1 and {MAX_RADIUS_M} metres")]
    Radius(usize),
    #[error("webhook_url {0:?} {1}")]
    WebhookUrl(String, &'static str),
    #[error("delivery {0:?} is not one of webhook, sse, poll")]
    Delivery(String),
    #[error("delivery must name at least one of webhook, sse, poll")]
    NoDelivery,
    #[error("delivery names webhook but there is no webhook_url")]
    WebhookWithoutUrl,
}

impl SubscriptionError {
    /// The member of the request body at fault, as a JSON path without indexes.
    pub fn field(&self) -> &'static str {
        match self {
            SubscriptionError::NoCategories
            | SubscriptionError::TooManyCategories
            | SubscriptionError::Category(_) => "categories",
            SubscriptionError::TooManyAreas | SubscriptionError::AreaShape(_) => "areas",
            SubscriptionError::Geohash(..) => "areas.geohash",
            SubscriptionError::Lat(_) => "areas.lat",
            SubscriptionError::Lon(_) => "areas.lon",
            SubscriptionError::Radius(_) => "areas.radius_m",
            SubscriptionError::WebhookUrl(..) => "webhook_url",
            SubscriptionError::Delivery(_)
            | SubscriptionError::NoDelivery
            | SubscriptionError::WebhookWithoutUrl => "delivery",
        }
    }
}

/// A subscription that passed [`NewSubscription::validate`], as stored and shown back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidSubscription {
    /// Sorted, without duplicates.
    pub categories: Vec<IntentCategory>,
    /// In the order given; none means everywhere.
    pub areas: Vec<Area>,
    /// As the `url` crate serialises it (so `https://Brand.example` reads `https://brand.example/`).
    pub webhook_url: Option<String>,
    /// Sorted, without duplicates.
    pub delivery: Vec<Delivery>,
}

impl ValidSubscription {
    /// The matching rule: some subscribed category is a segment-prefix of the intent's, and the
    /// intent has no place, or the subscription no areas, or one of its areas meets the place.
    pub fn matches(&self, category: &IntentCategory, location: Option<&IntentLocation>) -> bool {
        self.categories.iter().any(|c| c.covers(category))
            && match location {
                None => true,
                Some(location) => {
                    self.areas.is_empty() || self.areas.iter().any(|a| a.meets(location))
                }
            }
    }
}

/// A webhook URL a brand may register: https, or plain http on the loopback interface only when
/// `allow_loopback` (for brands developing locally); no fragment, no user name or password.
fn check_webhook_url(text: &str, allow_loopback: bool) -> Result<String, SubscriptionError> {
    let fail = |why| Err(SubscriptionError::WebhookUrl(text.to_owned(), why));
    if text.chars().count() > MAX_WEBHOOK_URL_CHARS {
        return fail("is too long (at most 2000 characters)");
    }
    let Ok(url) = url::Url::parse(text) else {
        return fail("is not an absolute URL");
    };
    if url.fragment().is_some() {
        return fail("must not have a fragment");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return fail("must not carry a user name or password");
    }
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    match url.scheme() {
        "https" if url.host_str().is_some() => Ok(url.into()),
        "http" if loopback && allow_loopback => Ok(url.into()),
        "http" if loopback => fail("must be https (this vault does not allow loopback webhooks)"),
        _ => fail(
            "must be https (plain http only on 127.0.0.1, [::1] or localhost, when the vault allows it)",
        ),
    }
}

impl NewArea {
    fn validate(self, i: usize) -> Result<Area, SubscriptionError> {
        match self {
            NewArea {
                geohash: Some(hash),
                lat: None,
                lon: None,
                radius_m: None,
            } => Ok(Area::Cell {
                geohash: Geohash::parse(&hash).map_err(|e| SubscriptionError::Geohash(i, e))?,
            }),
            NewArea {
                geohash: None,
                lat: Some(lat),
                lon: Some(lon),
                radius_m: Some(radius),
            } => {
                if !(-90.0..=90.0).contains(&lat) {
                    return Err(SubscriptionError::Lat(i));
                }
                if !(-180.0..=180.0).contains(&lon) {
                    return Err(SubscriptionError::Lon(i));
                }
                let radius_m = u32::try_from(radius)
                    .ok()
                    .filter(|r| (1..=MAX_RADIUS_M).contains(r))
                    .ok_or(SubscriptionError::Radius(i))?;
                Ok(Area::Circle { lat, lon, radius_m })
            }
            _ => Err(SubscriptionError::AreaShape(i)),
        }
    }
}

impl NewSubscription {
    /// Checks every rule; the error names the first field at fault. Without `delivery`, a
    /// subscription gets every channel it can use: the webhook when it has a URL, SSE and polling.
    pub fn validate(self, allow_loopback: bool) -> Result<ValidSubscription, SubscriptionError> {
        if self.categories.is_empty() {
            return Err(SubscriptionError::NoCategories);
        }
        if self.categories.len() > MAX_CATEGORIES {
            return Err(SubscriptionError::TooManyCategories);
        }
        let mut categories = self
            .categories
            .iter()
            .map(|c| IntentCategory::parse_node(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(SubscriptionError::Category)?;
        categories.sort();
        categories.dedup();
        let areas = self.areas.unwrap_or_default();
        if areas.len() > MAX_AREAS {
            return Err(SubscriptionError::TooManyAreas);
        }
        let areas = areas
            .into_iter()
            .enumerate()
            .map(|(i, a)| a.validate(i))
            .collect::<Result<Vec<_>, _>>()?;
        let webhook_url = self
            .webhook_url
            .map(|u| check_webhook_url(&u, allow_loopback))
            .transpose()?;
        let mut delivery = match self.delivery {
            None => Delivery::ALL
                .into_iter()
                .filter(|d| *d != Delivery::Webhook || webhook_url.is_some())
                .collect(),
            Some(names) => names
                .iter()
                .map(|n| {
                    Delivery::ALL
                        .into_iter()
                        .find(|d| d.as_str() == n)
                        .ok_or_else(|| SubscriptionError::Delivery(n.clone()))
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        delivery.sort();
        delivery.dedup();
        if delivery.is_empty() {
            return Err(SubscriptionError::NoDelivery);
        }
        if delivery.contains(&Delivery::Webhook) && webhook_url.is_none() {
            return Err(SubscriptionError::WebhookWithoutUrl);
        }
        Ok(ValidSubscription {
            categories,
            areas,
            webhook_url,
            delivery,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn validate(body: Value, allow_loopback: bool) -> Result<ValidSubscription, SubscriptionError> {
        serde_json::from_value::<NewSubscription>(body)
            .unwrap()
            .validate(allow_loopback)
    }

    fn location(hash: &str, radius_m: u32) -> IntentLocation {
        IntentLocation {
            geohash: Geohash::parse(hash).unwrap(),
            radius_m,
        }
    }

    fn category(text: &str) -> IntentCategory {
        IntentCategory::parse(text).unwrap()
    }

    #[test]
    fn a_full_subscription_validates() {
        let sub = validate(
            json!({
                "categories": ["food", "travel.hotel", "food"],
                "areas": [{"geohash": "u09"}, {"lat": 48.85, "lon": 2.35, "radius_m": 5000}],
                "webhook_url": "https://Brand.example/hooks?x=1",
            }),
            false,
        )
        .unwrap();
        let ids: Vec<&str> = sub.categories.iter().map(IntentCategory::as_str).collect();
        assert_eq!(ids, ["food", "travel.hotel"]);
        assert_eq!(
            sub.webhook_url.as_deref(),
            Some("https://brand.example/hooks?x=1")
        );
        assert_eq!(
            sub.delivery,
            [Delivery::Webhook, Delivery::Sse, Delivery::Poll]
        );
        let shown = serde_json::to_value(&sub).unwrap();
        assert_eq!(
            shown["areas"],
            json!([{"geohash": "u09"}, {"lat": 48.85, "lon": 2.35, "radius_m": 5000}])
        );
        assert_eq!(shown["delivery"], json!(["webhook", "sse", "poll"]));
        assert_eq!(
            serde_json::from_value::<ValidSubscription>(shown).unwrap(),
            sub
        );
    }

    #[test]
    fn defaults_and_delivery() {
        let sub = validate(json!({"categories": ["food"]}), false).unwrap();
        assert!(sub.areas.is_empty());
        assert_eq!(sub.delivery, [Delivery::Sse, Delivery::Poll]);
        let sub = validate(
            json!({"categories": ["food"], "delivery": ["poll", "poll"]}),
            false,
        )
        .unwrap();
        assert_eq!(sub.delivery, [Delivery::Poll]);
        assert!(
            serde_json::from_value::<NewSubscription>(json!({"categories": ["food"], "extra": 1}))
                .is_err()
        );
        assert!(serde_json::from_value::<NewSubscription>(json!({"areas": []})).is_err());
        assert!(
            serde_json::from_value::<NewSubscription>(
                json!({"categories": ["food"], "areas": [{"geohash": "u", "zoom": 3}]})
            )
            .is_err()
        );
    }

    #[test]
    fn every_rule_names_its_field() {
        use SubscriptionError as E;
        let fifty_one: Vec<String> = (0..51).map(|_| "food".to_owned()).collect();
        let many_areas: Vec<Value> = (0..51).map(|_| json!({"geohash": "u"})).collect();
        let sub = |extra: Value| {
            let mut b = json!({"categories": ["food"]});
            for (k, v) in extra.as_object().unwrap() {
                b[k] = v.clone();
            }
            b
        };
        let cases: Vec<(Value, bool, SubscriptionError, &str)> = vec![
            (
                json!({"categories": []}),
                false,
                E::NoCategories,
                "categories",
            ),
            (
                json!({"categories": fifty_one}),
                false,
                E::TooManyCategories,
                "categories",
            ),
            (
                json!({"categories": ["food", "cars"]}),
                false,
                E::Category(CategoryError::Unknown("cars".into())),
                "categories",
            ),
            (
                json!({"categories": ["Food"]}),
                false,
                E::Category(CategoryError::Syntax("Food".into())),
                "categories",
            ),
            (
                sub(json!({"areas": many_areas})),
                false,
                E::TooManyAreas,
                "areas",
            ),
            (sub(json!({"areas": [{}]})), false, E::AreaShape(0), "areas"),
            (
                sub(
                    json!({"areas": [{"geohash": "u"}, {"geohash": "u", "lat": 1.0, "lon": 1.0, "radius_m": 5}]}),
                ),
                false,
                E::AreaShape(1),
                "areas",
            ),
            (
                sub(json!({"areas": [{"lat": 1.0, "lon": 1.0}]})),
                false,
                E::AreaShape(0),
                "areas",
            ),
            (
                sub(json!({"areas": [{"geohash": "u09tvw0f"}]})),
                false,
                E::Geohash(0, InvalidGeohash::TooFine(8)),
                "areas.geohash",
            ),
            (
                sub(json!({"areas": [{"lat": 90.5, "lon": 1.0, "radius_m": 5}]})),
                false,
                E::Lat(0),
                "areas.lat",
            ),
            (
                sub(json!({"areas": [{"lat": 1.0, "lon": -180.5, "radius_m": 5}]})),
                false,
                E::Lon(0),
                "areas.lon",
            ),
            (
                sub(json!({"areas": [{"lat": 1.0, "lon": 1.0, "radius_m": 0}]})),
                false,
                E::Radius(0),
                "areas.radius_m",
            ),
            (
                sub(json!({"areas": [{"lat": 1.0, "lon": 1.0, "radius_m": 50_001}]})),
                false,
                E::Radius(0),
                "areas.radius_m",
            ),
            (
                sub(json!({"webhook_url": "http://brand.example/hook"})),
                true,
                E::WebhookUrl(
                    "http://brand.example/hook".into(),
                    "must be https (plain http only on 127.0.0.1, [::1] or localhost, when the vault allows it)",
                ),
                "webhook_url",
            ),
            (
                sub(json!({"webhook_url": "http://127.0.0.1:9000/hook"})),
                false,
                E::WebhookUrl(
                    "http://127.0.0.1:9000/hook".into(),
                    "must be https (this vault does not allow loopback webhooks)",
                ),
                "webhook_url",
            ),
            (
                sub(json!({"webhook_url": "https://brand.example/hook#x"})),
                false,
                E::WebhookUrl(
                    "https://brand.example/hook#x".into(),
                    "must not have a fragment",
                ),
                "webhook_url",
            ),
            (
                sub(json!({"webhook_url": "https://user:pw@brand.example/hook"})),
                false,
                E::WebhookUrl(
                    "https://user:pw@brand.example/hook".into(),
                    "must not carry a user name or password",
                ),
                "webhook_url",
            ),
            (
                sub(json!({"webhook_url": "https://user@brand.example/hook"})),
                false,
                E::WebhookUrl(
                    "https://user@brand.example/hook".into(),
                    "must not carry a user name or password",
                ),
                "webhook_url",
            ),
            (
                sub(json!({"webhook_url": "/hook"})),
                false,
                E::WebhookUrl("/hook".into(), "is not an absolute URL"),
                "webhook_url",
            ),
            (
                sub(json!({"webhook_url": "ftp://brand.example/hook"})),
                false,
                E::WebhookUrl(
                    "ftp://brand.example/hook".into(),
                    "must be https (plain http only on 127.0.0.1, [::1] or localhost, when the vault allows it)",
                ),
                "webhook_url",
            ),
            (
                sub(json!({"webhook_url": format!("https://brand.example/{}", "x".repeat(2000))})),
                false,
                E::WebhookUrl(
                    format!("https://brand.example/{}", "x".repeat(2000)),
                    "is too long (at most 2000 characters)",
                ),
                "webhook_url",
            ),
            (
                sub(json!({"delivery": ["email"]})),
                false,
                E::Delivery("email".into()),
                "delivery",
            ),
            (
                sub(json!({"delivery": []})),
                false,
                E::NoDelivery,
                "delivery",
            ),
            (
                sub(json!({"delivery": ["webhook"]})),
                false,
                E::WebhookWithoutUrl,
                "delivery",
            ),
        ];
        for (body, allow_loopback, expected, field) in cases {
            let error = validate(body.clone(), allow_loopback).err();
            assert_eq!(error.as_ref(), Some(&expected), "{body}");
            assert_eq!(expected.field(), field);
            let message = expected.to_string();
            assert!(
                message.starts_with(field.split('.').next().unwrap()),
                "{message}"
            );
        }
    }

    #[test]
    fn loopback_webhooks_only_when_allowed() {
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://[::1]:9000/hook",
            "http://localhost:9000/hook",
        ] {
            let body = json!({"categories": ["food"], "webhook_url": url});
            assert!(validate(body.clone(), true).is_ok(), "{url}");
            assert!(validate(body, false).is_err(), "{url}");
        }
        // Look-alikes of the loopback names are not loopback.
        for url in [
            "http://127.0.0.2/hook",
            "http://localhost.brand.example/hook",
        ] {
            let body = json!({"categories": ["food"], "webhook_url": url});
            assert!(validate(body, true).is_err(), "{url}");
        }
        let body = json!({"categories": ["food"], "webhook_url": "https://localhost/hook"});
        assert!(validate(body, false).is_ok());
    }

    #[test]
    fn matching_by_category_prefix() {
        let sub = validate(json!({"categories": ["food", "home.repair"]}), false).unwrap();
        assert!(sub.matches(&category("food.lunch"), None));
        assert!(sub.matches(&category("home.repair.plumbing"), None));
        assert!(sub.matches(&category("home.repair"), None));
        assert!(!sub.matches(&category("home.cleaning"), None));
        assert!(!sub.matches(&category("travel.hotel"), None));
    }

    #[test]
    fn matching_by_place() {
        let paris = location("u09tv", 1_000);
        let anywhere = validate(json!({"categories": ["food"]}), false).unwrap();
        assert!(anywhere.matches(&category("food.lunch"), Some(&paris)));
        let lyon = validate(
            json!({"categories": ["food"], "areas": [{"lat": 45.76, "lon": 4.84, "radius_m": 50_000}]}),
            false,
        )
        .unwrap();
        assert!(!lyon.matches(&category("food.lunch"), Some(&paris)));
        // An intent without a place matches every area.
        assert!(lyon.matches(&category("food.lunch"), None));
        let cell = validate(
            json!({"categories": ["food"], "areas": [{"geohash": "u09"}]}),
            false,
        )
        .unwrap();
        assert!(cell.matches(&category("food.lunch"), Some(&paris)));
    }

    #[test]
    fn circles_and_cells_crossing_borders() {
        // u09tv's bounds: 48.8232..48.8672 N, 2.3291..2.3730 E (a 4.9 km × 3.2 km cell at
        // precision 5). Its eastern neighbour is u09ty.
        let place = location("u09tv", 1);
        let b = place.geohash.bbox();
        let east_of_cell_m = |lon: f64| geo::haversine_m(48.845, b.lon_max, 48.845, lon);
        // A circle centred 2 km east of the cell's east edge, 1999 m wide: misses by a metre.
        let lon_2km = b.lon_max + 2_000.0 / (111_194.9 * 48.845f64.to_radians().cos());
        let gap = east_of_cell_m(lon_2km);
        assert!((gap - 2_000.0).abs() < 5.0, "{gap}");
        let circle = |r: f64| Area::Circle {
            lat: 48.845,
            lon: lon_2km,
            radius_m: r as u32,
        };
        assert!(!circle(gap - 2.0).meets(&place));
        assert!(circle(gap + 1.0).meets(&place));
        // The same gap closed by the intent's radius instead.
        assert!(!circle(1.0).meets(&location("u09tv", (gap - 3.0) as u32)));
        assert!(circle(1.0).meets(&location("u09tv", gap as u32)));
        // Neighbouring cells touch: a radius of 1 m reaches across the border.
        let east = Area::Cell {
            geohash: Geohash::parse("u09ty").unwrap(),
        };
        assert!(east.meets(&place));
        // u0d, the precision-3 cell east of u09, begins at 2.8125 E: 32,144 m from u09tv's
        // north-east corner, the closest pair.
        let east_cell = Area::Cell {
            geohash: Geohash::parse("u0d").unwrap(),
        };
        assert!(!east_cell.meets(&location("u09tv", 32_100)));
        assert!(east_cell.meets(&location("u09tv", 32_200)));
        // An area cell containing the intent's cell, and a cell inside the intent's.
        assert!(
            Area::Cell {
                geohash: Geohash::parse("u").unwrap()
            }
            .meets(&place)
        );
        assert!(
            Area::Cell {
                geohash: Geohash::parse("u09tvw0").unwrap()
            }
            .meets(&location("u09", 1))
        );
    }
}
