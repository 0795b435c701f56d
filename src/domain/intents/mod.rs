//! Intentcasting: the person broadcasts an intent ("lunch nearby for two") and the brands that
//! subscribed to its category and area receive it.
//!
//! Pure, like the rest of the domain: requests are validated here with the current time passed
//! in, the matching rule lives here, and so does the index that applies it without scanning
//! every brand. Storage, delivery and the clock belong to the service.
//!
//! - [`taxonomy`] — the shipped category tree and the segment-wise prefix rule.
//! - [`geo`] — geohash cells, distances on the sphere, and the cell coverings the index uses.
//! - [`intent`] — the owner's `POST /api/v1/intents` body, its rules, and an intent's status.
//! - [`subscription`] — a brand's `PUT /brand/v1/subscription` body, its rules, and the matching
//!   rule ([`ValidSubscription::matches`]).
//! - [`index`] — [`SubscriptionIndex`], a category trie × geohash cells, which finds the same
//!   brands as [`linear_scan`] does.

pub mod geo;
pub mod index;
pub mod intent;
pub mod subscription;
pub mod taxonomy;

pub use geo::{Geohash, InvalidGeohash};
pub use index::{SubscriptionIndex, linear_scan};
pub use intent::{
    Intent, IntentError, IntentLocation, IntentStatus, Money, MoneyError, NewIntent, ValidIntent,
    Window,
};
pub use subscription::{
    Area, Delivery, NewArea, NewSubscription, SubscriptionError, ValidSubscription,
};
pub use taxonomy::{CategoryError, IntentCategory, TAXONOMY, TaxonomyEntry, is_prefix};
