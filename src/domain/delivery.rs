//! Webhook delivery health: how a brand's webhook is doing, when a run of failures pauses it, and
//! how long to wait before the next attempt.
//!
//! These are the rules the delivery worker applies after each attempt. They are pure: the time
//! of the attempt and the random jitter are parameters, so the pause rule and the backoff can be
//! tested without a server, a clock or a failing endpoint.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// A brand's deliveries pause after this many consecutive failures spread over at least
/// [`PAUSE_AFTER_FAILING_FOR`] (a burst of events during a short outage does not pause it). A
/// paused brand gets one delivery at a time, as a probe, until one succeeds; updating its
/// subscription resumes it at once. The owner sees the state on the brands page.
pub const PAUSE_AFTER_FAILURES: u32 = 8;
pub const PAUSE_AFTER_FAILING_FOR: Duration = Duration::minutes(1);
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::minutes(30);

/// How a brand's webhook is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Ok,
    Failing,
    Paused,
}

/// The delay after `attempts` failed attempts before the next one: 1 s after the first failure,
/// then 2 s, 4 s ... capped, each with up to 50 % random jitter so that many failing deliveries
/// do not retry in lockstep.
pub fn backoff(attempts: u32, jitter: u8) -> Duration {
    let base = Duration::seconds(1i64 << attempts.saturating_sub(1).min(20)).min(MAX_BACKOFF);
    let jitter_ms = base.whole_milliseconds() as i64 * i64::from(jitter) / 510;
    base + Duration::milliseconds(jitter_ms)
}

/// The health of one brand's webhook: its status and the current run of failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryHealth {
    pub status: DeliveryStatus,
    pub consecutive_failures: u32,
    /// When the current run of failures began.
    pub failing_since: Option<OffsetDateTime>,
    pub last_error: Option<String>,
}

impl DeliveryHealth {
    /// A webhook with no failures: new, updated by its brand, or just delivered to.
    pub fn healthy() -> DeliveryHealth {
        DeliveryHealth {
            status: DeliveryStatus::Ok,
            consecutive_failures: 0,
            failing_since: None,
            last_error: None,
        }
    }

    /// A delivery succeeded: the run of failures ends, and a paused webhook resumes.
    pub fn succeeded(&mut self) {
        *self = DeliveryHealth::healthy();
    }

    /// A delivery failed at `now` with `error`: the run of failures grows, and pauses the webhook
    /// once it is both long enough and old enough.
    pub fn failed(&mut self, error: String, now: OffsetDateTime) {
        if self.consecutive_failures == 0 {
            self.failing_since = Some(now);
        }
        self.consecutive_failures += 1;
        self.last_error = Some(error);
        let failing_for = self.failing_since.map_or(Duration::ZERO, |t| now - t);
        self.status = if self.consecutive_failures >= PAUSE_AFTER_FAILURES
            && failing_for >= PAUSE_AFTER_FAILING_FOR
        {
            DeliveryStatus::Paused
        } else {
            DeliveryStatus::Failing
        };
    }

    pub fn is_paused(&self) -> bool {
        self.status == DeliveryStatus::Paused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(1_700_000_000 + seconds)
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter_and_a_cap() {
        assert_eq!(backoff(1, 0), Duration::seconds(1));
        assert_eq!(backoff(2, 0), Duration::seconds(2));
        assert_eq!(backoff(4, 0), Duration::seconds(8));
        assert!(backoff(4, 255) <= Duration::seconds(12));
        assert!(backoff(4, 255) > Duration::seconds(8));
        assert_eq!(backoff(40, 0), MAX_BACKOFF);
    }

    #[test]
    fn a_first_failure_starts_the_run_and_fails_without_pausing() {
        let mut health = DeliveryHealth::healthy();
        health.failed("refused".into(), at(0));
        assert_eq!(health.status, DeliveryStatus::Failing);
        assert_eq!(health.consecutive_failures, 1);
        assert_eq!(health.failing_since, Some(at(0)));
        assert_eq!(health.last_error.as_deref(), Some("refused"));
        health.failed("timeout".into(), at(5));
        assert_eq!(health.failing_since, Some(at(0)), "the run keeps its start");
        assert_eq!(health.last_error.as_deref(), Some("timeout"));
    }

    #[test]
    fn a_burst_of_failures_within_a_minute_does_not_pause() {
        let mut health = DeliveryHealth::healthy();
        for i in 0..(PAUSE_AFTER_FAILURES as i64 * 3) {
            health.failed("refused".into(), at(i));
        }
        assert_eq!(health.status, DeliveryStatus::Failing);
        assert!(!health.is_paused());
    }

    #[test]
    fn enough_failures_over_a_minute_pause_and_a_success_resumes() {
        let mut health = DeliveryHealth::healthy();
        for i in 0..PAUSE_AFTER_FAILURES as i64 - 1 {
            health.failed("refused".into(), at(i * 30));
        }
        assert_eq!(
            health.status,
            DeliveryStatus::Failing,
            "old enough, one failure short"
        );
        health.failed("refused".into(), at(300));
        assert!(health.is_paused());
        health.succeeded();
        assert_eq!(health, DeliveryHealth::healthy());
    }

    #[test]
    fn long_failing_but_too_few_failures_does_not_pause() {
        let mut health = DeliveryHealth::healthy();
        health.failed("refused".into(), at(0));
        health.failed("refused".into(), at(3600));
        assert_eq!(health.status, DeliveryStatus::Failing);
    }
}
