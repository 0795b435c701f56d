//! The shipped intent taxonomy: dotted lowercase category ids such as `food.lunch`, each with a
//! label the person can read.
//!
//! Brands subscribe to any node of the tree and receive every intent filed under it, so the
//! relation that matters is the segment-wise prefix ([`is_prefix`]): `food` covers `food.lunch`
//! and `food.lunch.vegan`, never `foodtruck`.

use serde::{Deserialize, Serialize};

/// Most segments in a category id.
pub const MAX_SEGMENTS: usize = 4;
/// Longest segment of a category id.
pub const MAX_SEGMENT_LEN: usize = 32;

/// One node of the taxonomy, as `GET /api/v1/intent-categories` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TaxonomyEntry {
    pub id: &'static str,
    pub label: &'static str,
}

const fn entry(id: &'static str, label: &'static str) -> TaxonomyEntry {
    TaxonomyEntry { id, label }
}

/// Every category the vault knows, parents before their children. Adding nodes is safe; removing
/// one leaves stored intents and subscriptions readable (see [`IntentCategory`]'s `Deserialize`).
pub const TAXONOMY: &[TaxonomyEntry] = &[
    entry("food", "Food and drink"),
    entry("food.breakfast", "Breakfast"),
    entry("food.lunch", "Lunch"),
    entry("food.dinner", "Dinner"),
    entry("food.groceries", "Groceries"),
    entry("food.delivery", "Food delivery"),
    entry("travel", "Travel"),
    entry("travel.hotel", "Hotel"),
    entry("travel.flight", "Flight"),
    entry("travel.train", "Train"),
    entry("travel.car_rental", "Car rental"),
    entry("home", "Home"),
    entry("home.repair", "Repairs"),
    entry("home.repair.plumbing", "Plumbing"),
    entry("home.repair.electrical", "Electrical work"),
    entry("home.repair.locksmith", "Locksmith"),
    entry("home.cleaning", "Cleaning"),
    entry("home.furniture", "Furniture"),
    entry("health", "Health"),
    entry("health.dentist", "Dentist"),
    entry("health.pharmacy", "Pharmacy"),
    entry("shopping", "Shopping"),
    entry("shopping.clothes", "Clothes"),
    entry("shopping.electronics", "Electronics"),
    entry("shopping.books", "Books"),
    entry("services", "Services"),
    entry("services.legal", "Legal advice"),
    entry("services.finance", "Financial advice"),
    entry("services.insurance", "Insurance"),
    entry("leisure", "Leisure"),
    entry("leisure.cinema", "Cinema"),
    entry("leisure.concert", "Concert"),
    entry("leisure.sport", "Sport"),
];

/// The taxonomy node with this id.
pub fn find(id: &str) -> Option<&'static TaxonomyEntry> {
    TAXONOMY.iter().find(|e| e.id == id)
}

/// Whether a subscription to `sub` covers an intent filed under `cat`: equal, or `sub` followed by
/// a dot starts `cat`. Segment-wise, so `food` covers `food.lunch` but not `foodtruck`.
pub fn is_prefix(sub: &str, cat: &str) -> bool {
    match cat.strip_prefix(sub) {
        Some(rest) => !sub.is_empty() && (rest.is_empty() || rest.starts_with('.')),
        None => false,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CategoryError {
    #[error(
        "{0:?} is not a category id: 1 to {MAX_SEGMENTS} dot-separated parts of a-z, 0-9 and _ \
         (at most {MAX_SEGMENT_LEN} characters each), such as food.lunch"
    )]
    Syntax(String),
    #[error("{0:?} is not in the taxonomy; GET /api/v1/intent-categories lists the categories")]
    Unknown(String),
    #[error("{0:?} is too broad for an intent; choose one of its sub-categories, such as {1}")]
    TooBroad(String, &'static str),
}

/// A category id. Built by [`IntentCategory::parse`] (for intents) or
/// [`IntentCategory::parse_node`] (for subscriptions), which check it against [`TAXONOMY`].
///
/// Deserialising checks the syntax only: it reads the vault's own stored values, which were
/// checked when they came in and must stay readable if a later taxonomy drops a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IntentCategory(String);

impl IntentCategory {
    /// A category an intent may be filed under: a taxonomy node below the top level. A top-level
    /// node such as `food` says too little for a brand to answer, so an intent must say which
    /// kind of food; brands may still subscribe to the whole of `food`.
    pub fn parse(text: &str) -> Result<IntentCategory, CategoryError> {
        let category = IntentCategory::parse_node(text)?;
        if !category.0.contains('.') {
            let example = TAXONOMY
                .iter()
                .find(|e| is_prefix(text, e.id) && e.id != text)
                .map_or("food.lunch", |e| e.id);
            return Err(CategoryError::TooBroad(text.to_owned(), example));
        }
        Ok(category)
    }

    /// A category a brand may subscribe to: any taxonomy node, top-level ones included.
    pub fn parse_node(text: &str) -> Result<IntentCategory, CategoryError> {
        if !valid_syntax(text) {
            return Err(CategoryError::Syntax(text.to_owned()));
        }
        find(text)
            .map(|e| IntentCategory(e.id.to_owned()))
            .ok_or_else(|| CategoryError::Unknown(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id's segments, from the top of the tree down.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }

    /// The taxonomy's label, if the node is (still) in it.
    pub fn label(&self) -> Option<&'static str> {
        find(&self.0).map(|e| e.label)
    }

    /// Whether a subscription to `self` covers an intent filed under `intent`.
    pub fn covers(&self, intent: &IntentCategory) -> bool {
        is_prefix(&self.0, &intent.0)
    }
}

fn valid_syntax(text: &str) -> bool {
    let segments = text.split('.');
    let mut count = 0;
    for segment in segments {
        count += 1;
        let ok = !segment.is_empty()
            && segment.len() <= MAX_SEGMENT_LEN
            && segment
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok || count > MAX_SEGMENTS {
            return false;
        }
    }
    true
}

impl TryFrom<String> for IntentCategory {
    type Error = CategoryError;

    fn try_from(text: String) -> Result<IntentCategory, CategoryError> {
        if valid_syntax(&text) {
            Ok(IntentCategory(text))
        } else {
            Err(CategoryError::Syntax(text))
        }
    }
}

impl From<IntentCategory> for String {
    fn from(category: IntentCategory) -> String {
        category.0
    }
}

impl std::fmt::Display for IntentCategory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taxonomy_is_well_formed() {
        let required = [
            "food.lunch",
            "food.dinner",
            "food.breakfast",
            "food.groceries",
            "food.delivery",
            "travel.hotel",
            "travel.flight",
            "travel.train",
            "travel.car_rental",
            "home.repair",
            "home.cleaning",
            "home.furniture",
            "health.dentist",
            "health.pharmacy",
            "shopping.clothes",
            "shopping.electronics",
            "shopping.books",
            "services.legal",
            "services.finance",
            "services.insurance",
            "leisure.cinema",
            "leisure.concert",
            "leisure.sport",
        ];
        for id in required {
            assert!(find(id).is_some(), "{id} is missing");
        }
        for (i, entry) in TAXONOMY.iter().enumerate() {
            assert!(valid_syntax(entry.id), "{}", entry.id);
            assert!(!entry.label.is_empty());
            assert!(
                TAXONOMY[..i].iter().all(|e| e.id != entry.id),
                "{} twice",
                entry.id
            );
            // Every parent is listed, and listed earlier, so the tree has no holes.
            if let Some((parent, _)) = entry.id.rsplit_once('.') {
                assert!(
                    TAXONOMY[..i].iter().any(|e| e.id == parent),
                    "{}'s parent",
                    entry.id
                );
            }
        }
    }

    #[test]
    fn prefix_is_segment_wise() {
        assert!(is_prefix("food", "food"));
        assert!(is_prefix("food", "food.lunch"));
        assert!(is_prefix("food", "food.lunch.vegan"));
        assert!(is_prefix("food.lunch", "food.lunch.vegan"));
        assert!(!is_prefix("food", "foodtruck"));
        assert!(!is_prefix("food", "foodtruck.lunch"));
        assert!(!is_prefix("food.lunch", "food"));
        assert!(!is_prefix("food.lunch", "food.lunchbox"));
        assert!(!is_prefix("food.lunch", "food.dinner"));
        assert!(!is_prefix("", "food"));
    }

    #[test]
    fn intent_categories_are_known_and_specific() {
        assert_eq!(
            IntentCategory::parse("food.lunch").map(|c| c.label()),
            Ok(Some("Lunch"))
        );
        assert!(IntentCategory::parse("home.repair.plumbing").is_ok());
        assert_eq!(
            IntentCategory::parse("food"),
            Err(CategoryError::TooBroad("food".into(), "food.breakfast"))
        );
        assert_eq!(
            IntentCategory::parse("food.brunch"),
            Err(CategoryError::Unknown("food.brunch".into()))
        );
        for bad in [
            "",
            "Food.lunch",
            "food..lunch",
            ".food",
            "food.",
            "food lunch",
            "food-lunch.x",
            "a.b.c.d.e",
            &"x".repeat(33),
        ] {
            assert_eq!(
                IntentCategory::parse(bad),
                Err(CategoryError::Syntax(bad.to_owned())),
                "{bad:?}"
            );
        }
        let message = IntentCategory::parse("food.brunch")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains("intent-categories"), "{message}");
    }

    #[test]
    fn subscriptions_may_take_any_node() {
        assert_eq!(
            IntentCategory::parse_node("food").map(|c| c.as_str().to_owned()),
            Ok("food".to_owned())
        );
        assert!(IntentCategory::parse_node("home.repair").is_ok());
        assert_eq!(
            IntentCategory::parse_node("cars"),
            Err(CategoryError::Unknown("cars".into()))
        );
    }

    #[test]
    fn stored_categories_read_back_by_syntax_only() {
        let gone: Result<IntentCategory, _> = serde_json::from_str("\"food.lunch.retired\"");
        assert_eq!(gone.ok().map(|c| c.label()), Some(None));
        let bad: Result<IntentCategory, _> = serde_json::from_str("\"Food\"");
        assert!(bad.is_err());
        assert_eq!(
            IntentCategory::parse("food.lunch")
                .ok()
                .and_then(|c| serde_json::to_string(&c).ok()),
            Some("\"food.lunch\"".to_owned())
        );
    }
}
