//! Intents through a relay (DESIGN §11), the pure part: what a relay may see of an intent and
//! what the vault keeps about each relay it publishes to.
//!
//! [`relay_view`] is the one place that decides what leaves the vault with a relayed intent:
//! the intent's own fields, never a disclosed record value, and a location no finer than
//! geohash precision 5 (about 5 km). It also says, in words, what it changed or left out, so
//! the person sees it before sending (`POST /api/v1/intents/relay-preview`).
//!
//! [`RelayedIntent`] is the vault's durable record of one intent's relays: for each, whether it
//! is published, the relay's id for it, the offers read so far, and the messages still to send.
//! It lives inside the intent's stored record, so the intent's erasure takes it along, and it is
//! the outbox: whatever is pending in it is retried with [`backoff`] until it goes or the
//! intent ends.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::domain::intents::ValidIntent;

/// The finest location a relayed intent carries: geohash precision 5, about 5 km × 5 km.
pub const MAX_RELAY_PRECISION: usize = 5;
/// The first retry of a failed publication or message comes this long after it.
pub const FIRST_RETRY: Duration = Duration::seconds(2);
/// Retries are never further apart than this.
pub const MAX_RETRY: Duration = Duration::minutes(5);

/// What a relay receives of an intent (without the terms and the key, which the service adds),
/// and what was changed or left out on the way, in words.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayView {
    /// The intent's fields in the shape of `POST /api/v1/intents` (`category`, `text`,
    /// `expires_at`, and those of `location`, `window`, `price_max`, `party_size`, `tags`,
    /// `max_offers` it has).
    pub fields: Value,
    /// Sentences for the person, e.g. "Your location is sent as a wider area …".
    pub changes: Vec<String>,
}

fn time_text(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// What a relay may see of `intent`.
pub fn relay_view(intent: &ValidIntent) -> RelayView {
    let mut fields = Map::new();
    let mut changes = Vec::new();
    fields.insert("category".into(), json!(intent.category));
    fields.insert("text".into(), json!(intent.text));
    fields.insert("expires_at".into(), json!(time_text(intent.expires_at)));
    if let Some(location) = &intent.location {
        let cell = location.geohash.as_str();
        let kept: String = cell.chars().take(MAX_RELAY_PRECISION).collect();
        if kept.len() < cell.len() {
            changes.push(format!(
                "Your location is sent as a wider area of about 5 km ({kept} instead of \
                 {cell}): a relay never receives a place finer than that."
            ));
        }
        fields.insert(
            "location".into(),
            json!({"geohash": kept, "radius_m": location.radius_m}),
        );
    }
    if let Some(window) = &intent.window {
        fields.insert(
            "window".into(),
            json!({"from": time_text(window.from), "to": time_text(window.to)}),
        );
    }
    if let Some(price) = &intent.price_max {
        fields.insert("price_max".into(), json!(price));
    }
    if let Some(party) = intent.party_size {
        fields.insert("party_size".into(), json!(party));
    }
    if !intent.tags.is_empty() {
        fields.insert("tags".into(), json!(intent.tags));
    }
    fields.insert("max_offers".into(), json!(intent.max_offers));
    if !intent.disclose.is_empty() {
        changes.push(
            "None of your data is sent with it: an intent for a relay never carries your \
             records."
                .into(),
        );
    }
    changes.push(
        "Your current terms go with it, so that brands answer on them; nothing else about \
         you does, not even your vault's address: the intent has a key of its own, made for \
         it alone."
            .into(),
    );
    RelayView {
        fields: Value::Object(fields),
        changes,
    }
}

/// How long to wait before the next try, after `failures` failed tries in a row (at least
/// one): doubling from [`FIRST_RETRY`] up to [`MAX_RETRY`], and never sooner than the relay's
/// `Retry-After`.
pub fn backoff(failures: u32, retry_after: Option<u64>) -> Duration {
    let doubled = FIRST_RETRY * 2_i32.saturating_pow(failures.saturating_sub(1).min(16));
    let wait = doubled.min(MAX_RETRY);
    match retry_after {
        Some(seconds) => wait.max(Duration::seconds(seconds.min(3600) as i64)),
        None => wait,
    }
}

/// Where an intent stands at one relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    /// Not published yet: the vault keeps trying.
    Pending,
    /// The relay accepted it.
    Published,
    /// It will not be published there: the relay refused it, or the intent ended first.
    Failed,
}

impl TargetStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            TargetStatus::Pending => "pending",
            TargetStatus::Published => "published",
            TargetStatus::Failed => "failed",
        }
    }
}

/// A message still to send to one relay (the body of `POST .../messages`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingMessage {
    pub body: Value,
    /// Failed tries so far.
    #[serde(default)]
    pub failures: u32,
}

/// One relay an intent goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayTarget {
    pub url: String,
    pub status: TargetStatus,
    /// The relay's id for the intent, once published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// Why the last try failed, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Failed tries in a row (publication, or the first pending message).
    #[serde(default)]
    pub failures: u32,
    /// When to try again; none while nothing waits.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// The relay's `next_after` for the offers read so far.
    #[serde(default)]
    pub offers_after: u64,
    /// Relay offer ids already taken in (as offers) or refused, so none is handled twice.
    #[serde(default)]
    pub seen_offers: Vec<String>,
    /// Messages still to send, in order.
    #[serde(default)]
    pub outbox: Vec<PendingMessage>,
}

impl RelayTarget {
    pub fn new(url: String, now: OffsetDateTime) -> RelayTarget {
        RelayTarget {
            url,
            status: TargetStatus::Pending,
            remote_id: None,
            error: None,
            failures: 0,
            next_attempt_at: Some(now),
            offers_after: 0,
            seen_offers: Vec::new(),
            outbox: Vec::new(),
        }
    }

    fn queue(&mut self, body: &Value, now: OffsetDateTime) {
        self.outbox.push(PendingMessage {
            body: body.clone(),
            failures: 0,
        });
        if self.next_attempt_at.is_none_or(|at| at > now) {
            self.next_attempt_at = Some(now);
            self.failures = 0;
        }
    }

    /// Whether something waits to be sent to this relay.
    pub fn has_work(&self) -> bool {
        self.status == TargetStatus::Pending
            || (self.status == TargetStatus::Published && !self.outbox.is_empty())
    }
}

/// An intent's relays and what it sends them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayedIntent {
    /// Exactly what each relay receives (the intent's key as `jwk` included).
    pub body: Value,
    pub targets: Vec<RelayTarget>,
    /// Whether the intent's end (withdrawn, expired, erasure) was queued for the relays.
    #[serde(default)]
    pub ended: bool,
    /// That end's message, for a relay whose publication was still on its way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_message: Option<Value>,
}

impl RelayedIntent {
    /// `published` when one relay has it, `failed` when none will, `pending` otherwise.
    pub fn status(&self) -> TargetStatus {
        if self
            .targets
            .iter()
            .any(|t| t.status == TargetStatus::Published)
        {
            TargetStatus::Published
        } else if self
            .targets
            .iter()
            .all(|t| t.status == TargetStatus::Failed)
        {
            TargetStatus::Failed
        } else {
            TargetStatus::Pending
        }
    }

    /// The earliest time something is due.
    pub fn next_due(&self) -> Option<OffsetDateTime> {
        self.targets
            .iter()
            .filter(|t| t.has_work())
            .filter_map(|t| t.next_attempt_at)
            .min()
    }

    /// Queues `body` for the relay at `url`, if it has the intent; says whether it did.
    pub fn queue_to(&mut self, url: &str, body: &Value, now: OffsetDateTime) -> bool {
        match self
            .targets
            .iter_mut()
            .find(|t| t.url == url && t.status == TargetStatus::Published)
        {
            Some(target) => {
                target.queue(body, now);
                true
            }
            None => false,
        }
    }

    /// Queues the intent's end `body` for every relay that has the intent, and gives up on
    /// those still waiting to be published: an intent that ended before a relay was reached is
    /// never published there.
    pub fn queue_end(&mut self, body: &Value, now: OffsetDateTime, why: &str) {
        self.ended = true;
        self.end_message = Some(body.clone());
        for target in &mut self.targets {
            match target.status {
                TargetStatus::Published => target.queue(body, now),
                TargetStatus::Pending => {
                    target.status = TargetStatus::Failed;
                    target.next_attempt_at = None;
                    target.error = Some(why.to_owned());
                }
                TargetStatus::Failed => {}
            }
        }
    }
}

/// Where a relayed offer came from, kept beside the offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayedOffer {
    /// The relay's URL.
    pub via: String,
    /// The relay's id for the offer.
    pub remote_id: String,
    /// The relay's id for the intent.
    pub remote_intent_id: String,
    /// The brand's compact JWS accepting the person's terms, verified on arrival.
    pub acceptance: String,
    /// The brand's encryption key (`use: enc`) as the relay published it when the offer came.
    pub enc_jwk: Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::intents::NewIntent;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2030-01-01 12:00 UTC);

    fn intent(extra: Value) -> ValidIntent {
        let mut body = json!({
            "category": "food.lunch",
            "text": "Lunch for two",
            "expires_at": "2030-01-01T14:00:00Z",
        });
        if let (Some(map), Value::Object(extra)) = (body.as_object_mut(), extra) {
            map.extend(extra);
        }
        let new: NewIntent = serde_json::from_value(body).unwrap_or_else(|e| unreachable!("{e}"));
        new.validate(NOW).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn a_fine_location_is_coarsened_and_disclosed_fields_are_left_out() {
        let view = relay_view(&intent(json!({
            "location": {"geohash": "u09tvw0", "radius_m": 800},
            "disclose": ["contact.email"],
            "party_size": 2,
        })));
        assert_eq!(view.fields["location"]["geohash"], "u09tv");
        assert_eq!(view.fields["location"]["radius_m"], 800);
        assert!(view.fields.get("disclose").is_none());
        assert_eq!(view.fields["party_size"], 2);
        assert!(
            view.changes
                .iter()
                .any(|c| c.contains("u09tv instead of u09tvw0"))
        );
        assert!(view.changes.iter().any(|c| c.contains("None of your data")));
        for change in &view.changes {
            assert!(!change.contains("contact."), "{change}");
        }
    }

    #[test]
    fn a_coarse_location_is_sent_as_it_is_and_the_view_reads_as_an_intent_again() {
        let view = relay_view(&intent(json!({
            "location": {"geohash": "u09", "radius_m": 5000},
            "window": {"from": "2030-01-01T12:00:00Z", "to": "2030-01-01T13:00:00Z"},
            "price_max": {"amount": "15.00", "currency": "EUR"},
            "tags": ["vegetarian"],
        })));
        assert_eq!(view.fields["location"]["geohash"], "u09");
        assert!(!view.changes.iter().any(|c| c.contains("wider area")));
        // The relay validates the same shape: it must parse as a new intent again.
        let again: NewIntent =
            serde_json::from_value(view.fields.clone()).unwrap_or_else(|e| unreachable!("{e}"));
        let again = again.validate(NOW).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(again.tags, vec!["vegetarian".to_owned()]);
        assert_eq!(
            again.price_max,
            intent(json!({"price_max": {"amount": "15.00", "currency": "EUR"}})).price_max
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_honours_retry_after() {
        assert_eq!(backoff(1, None), Duration::seconds(2));
        assert_eq!(backoff(2, None), Duration::seconds(4));
        assert_eq!(backoff(40, None), MAX_RETRY);
        assert_eq!(backoff(1, Some(30)), Duration::seconds(30));
    }

    #[test]
    fn ending_an_intent_queues_a_message_where_published_and_gives_up_elsewhere() {
        let mut relayed = RelayedIntent {
            body: json!({}),
            targets: vec![
                RelayTarget::new("https://a".into(), NOW),
                RelayTarget::new("https://b".into(), NOW),
            ],
            ended: false,
            end_message: None,
        };
        relayed.targets[0].status = TargetStatus::Published;
        relayed.targets[0].next_attempt_at = None;
        assert_eq!(relayed.status(), TargetStatus::Published);
        relayed.queue_end(&json!({"type": "withdrawn"}), NOW, "withdrawn first");
        assert!(relayed.ended);
        assert!(!relayed.queue_to("https://b", &json!({"type": "declined"}), NOW));
        assert_eq!(relayed.targets[0].outbox.len(), 1);
        assert_eq!(relayed.targets[0].next_attempt_at, Some(NOW));
        assert_eq!(relayed.targets[1].status, TargetStatus::Failed);
        assert_eq!(relayed.next_due(), Some(NOW));
    }
}
