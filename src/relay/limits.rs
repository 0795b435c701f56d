//! The relay's abuse limits, shared by every instance: each is a token bucket (the domain's
//! GCRA, [`crate::domain::rate`]) kept as one timestamp in the `relay_limits` bucket and
//! changed by compare-and-set on its revision, so two instances cannot both spend the last
//! token. A refusal is 429 `too_many_requests` with `Retry-After`.
//!
//! | what | key | default |
//! | --- | --- | --- |
//! | intents published per source address | the client address (after trusted proxies) | 30 at once, then one every 2 minutes |
//! | offers per brand | the brand | 60 at once, then one a second |
//! | messages per intent | the intent | 20 at once, then one every 30 seconds |
//!
//! Offers per brand per intent (1 by default, at most [`MAX_OFFERS_PER_BRAND_PER_INTENT`]) are
//! a count, not a rate: `super::offers` enforces it with the intent's offers.
//!
//! Keys are SHA-256 hashes of what they limit, and an entry disappears a day after its last
//! change; a source address's hash is still recoverable by trying every address, so the
//! relay keeps, for at most a day, who published lately (documented in SECURITY.md).

use std::time::Duration;

use async_nats::jetstream::kv;

use super::Relay;
use super::error::RelayError;
use crate::crypto;
use crate::domain::rate::{Budget, TokenBucket, retry_after_seconds};

/// The most offers an operator may let one brand make on one intent.
pub const MAX_OFFERS_PER_BRAND_PER_INTENT: u8 = 5;
/// Times a bucket change is re-tried when another instance changed it first.
const TRIES: usize = 8;
/// How long an untouched bucket is kept (longer than any budget takes to refill).
pub const LIMIT_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// What the operator set (`vrm-vault relay --intents-per-hour ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Intents per source address per hour (also the burst).
    pub intents_per_hour: u32,
    /// Offers per brand per minute (also the burst).
    pub offers_per_minute: u32,
    /// Offers one brand may make on one intent.
    pub offers_per_brand_per_intent: u8,
    /// Messages per intent: the burst; then one every 30 seconds.
    pub messages_per_intent: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            intents_per_hour: 30,
            offers_per_minute: 60,
            offers_per_brand_per_intent: 1,
            messages_per_intent: 20,
        }
    }
}

/// `count` at once, then `count` per `period`.
fn per(count: u32, period: time::Duration) -> Budget {
    let count = count.max(1);
    Budget {
        burst: count,
        every: period / count,
    }
}

impl Limits {
    pub fn intents(&self) -> Budget {
        per(self.intents_per_hour, time::Duration::HOUR)
    }

    pub fn offers(&self) -> Budget {
        per(self.offers_per_minute, time::Duration::MINUTE)
    }

    pub fn messages(&self) -> Budget {
        Budget {
            burst: self.messages_per_intent.max(1),
            every: time::Duration::seconds(30),
        }
    }
}

fn key(scope: &str, who: &str) -> String {
    data_encoding::HEXLOWER.encode(&crypto::sha256(format!("{scope}\0{who}").as_bytes()))
}

impl Relay {
    /// Spends one request of `who`'s `budget` under `scope`; 429 with the wait when it is
    /// spent. `what` says in the refusal what was limited.
    pub(super) async fn spend(
        &self,
        scope: &str,
        who: &str,
        budget: Budget,
        what: &'static str,
    ) -> Result<(), RelayError> {
        let bucket = &self.buckets()?.limits;
        let key = key(scope, who);
        let unavailable = |e: &dyn std::fmt::Display| RelayError::Unavailable {
            context: "keeping a rate limit",
            source: Some(e.to_string().into()),
        };
        for _ in 0..TRIES {
            let now = self.clock().now();
            let entry = bucket
                .entry(key.clone())
                .await
                .map_err(|e| unavailable(&e))?;
            let (mut state, revision) = match entry {
                Some(entry) if entry.operation == kv::Operation::Put => {
                    let tat = std::str::from_utf8(&entry.value)
                        .ok()
                        .and_then(|t| t.parse::<i128>().ok())
                        .and_then(|n| time::OffsetDateTime::from_unix_timestamp_nanos(n).ok())
                        .unwrap_or(now);
                    (
                        TokenBucket::from_theoretical_arrival(tat),
                        Some(entry.revision),
                    )
                }
                Some(entry) => (TokenBucket::full(now), Some(entry.revision)),
                None => (TokenBucket::full(now), None),
            };
            if let Err(wait) = state.take(budget, now) {
                return Err(RelayError::TooManyRequests {
                    message: format!("too many {what}; try again later"),
                    retry_after: retry_after_seconds(wait),
                });
            }
            let value = state
                .theoretical_arrival()
                .unix_timestamp_nanos()
                .to_string()
                .into_bytes();
            let written = match revision {
                Some(revision) => match bucket.update(&key, value.into(), revision).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => false,
                    Err(e) => return Err(unavailable(&e)),
                },
                None => match bucket.create(&key, value.into()).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => false,
                    Err(e) => return Err(unavailable(&e)),
                },
            };
            if written {
                return Ok(());
            }
        }
        Err(RelayError::Unavailable {
            context: "too many requests at once for one rate limit",
            source: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_spread_their_count_over_their_period() {
        let limits = Limits::default();
        assert_eq!(
            limits.intents(),
            Budget {
                burst: 30,
                every: time::Duration::minutes(2)
            }
        );
        assert_eq!(limits.offers().every, time::Duration::SECOND);
        assert_eq!(per(0, time::Duration::MINUTE).burst, 1);
    }
}
