//! A token bucket for rates that a caller may burst above for a while but not sustain: the
//! token endpoint's budget per brand.
//!
//! It is kept as the generic cell rate algorithm (GCRA), which is a token bucket written as one
//! timestamp: the *theoretical arrival time* of the next request if the caller spent exactly at
//! the sustained rate. A request at `now` is allowed while that time is no more than
//! `(burst - 1) × every` ahead of `now`; each allowed request moves it `every` further. So a
//! full bucket allows `burst` requests at once, then one per `every`; an idle caller's bucket
//! refills by one per `every` up to `burst`. One timestamp per caller, no floating point, and
//! the time is a parameter.

use time::{Duration, OffsetDateTime};

/// How much a caller may spend: `burst` at once, then one every `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub burst: u32,
    pub every: Duration,
}

impl Budget {
    /// How far ahead of `now` the theoretical arrival time may be and still allow a request.
    fn tolerance(self) -> Duration {
        self.every * i32::try_from(self.burst.saturating_sub(1)).unwrap_or(i32::MAX)
    }
}

/// One caller's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// When the caller's spending, at the sustained rate, would have caught up.
    tat: OffsetDateTime,
}

impl TokenBucket {
    /// A full bucket.
    pub fn full(now: OffsetDateTime) -> TokenBucket {
        TokenBucket { tat: now }
    }

    /// Spends one request at `now`: `Ok` if the budget allows it, or how long to wait until it
    /// would (never zero). A refused request spends nothing.
    pub fn take(&mut self, budget: Budget, now: OffsetDateTime) -> Result<(), Duration> {
        let tat = self.tat.max(now);
        let ahead = tat - now;
        if ahead > budget.tolerance() {
            return Err(ahead - budget.tolerance());
        }
        self.tat = tat + budget.every;
        Ok(())
    }

    /// The bucket as the one timestamp it is, to keep it outside memory (the relay keeps its
    /// buckets in NATS, shared by every instance).
    pub fn theoretical_arrival(&self) -> OffsetDateTime {
        self.tat
    }

    /// A bucket kept as [`TokenBucket::theoretical_arrival`] gave it.
    pub fn from_theoretical_arrival(tat: OffsetDateTime) -> TokenBucket {
        TokenBucket { tat }
    }

    /// Whether the bucket has refilled completely by `now`: such a bucket is the same as none,
    /// and may be forgotten.
    pub fn is_full(&self, now: OffsetDateTime) -> bool {
        self.tat <= now
    }
}

/// Whole seconds to put in `Retry-After` for a wait: rounded up, at least one.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    let seconds = wait.whole_seconds() + i64::from(wait.subsec_nanoseconds() > 0);
    u64::try_from(seconds.max(1)).unwrap_or(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BUDGET: Budget = Budget {
        burst: 5,
        every: Duration::seconds(10),
    };

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(1_700_000_000 + seconds)
    }

    #[test]
    fn a_full_bucket_allows_a_burst_then_one_per_interval() {
        let mut bucket = TokenBucket::full(at(0));
        for _ in 0..5 {
            assert_eq!(bucket.take(BUDGET, at(0)), Ok(()));
        }
        assert_eq!(bucket.take(BUDGET, at(0)), Err(Duration::seconds(10)));
        assert_eq!(bucket.take(BUDGET, at(4)), Err(Duration::seconds(6)));
        assert_eq!(bucket.take(BUDGET, at(10)), Ok(()));
        assert_eq!(bucket.take(BUDGET, at(10)), Err(Duration::seconds(10)));
        // Six spent by 10 s: the bucket is full again once all six have refilled.
        assert!(!bucket.is_full(at(59)));
        assert!(bucket.is_full(at(60)));
        for _ in 0..5 {
            assert_eq!(bucket.take(BUDGET, at(60)), Ok(()));
        }
        assert!(bucket.take(BUDGET, at(60)).is_err());
    }

    #[test]
    fn a_refused_request_spends_nothing() {
        let mut bucket = TokenBucket::full(at(0));
        for _ in 0..5 {
            bucket.take(BUDGET, at(0)).unwrap();
        }
        for _ in 0..100 {
            assert!(bucket.take(BUDGET, at(1)).is_err());
        }
        assert_eq!(bucket.take(BUDGET, at(10)), Ok(()));
    }

    #[test]
    fn a_burst_of_one_is_a_plain_rate() {
        let one = Budget {
            burst: 1,
            every: Duration::seconds(3),
        };
        let mut bucket = TokenBucket::full(at(0));
        assert_eq!(bucket.take(one, at(0)), Ok(()));
        assert_eq!(bucket.take(one, at(1)), Err(Duration::seconds(2)));
        assert_eq!(bucket.take(one, at(3)), Ok(()));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_seconds(Duration::seconds(10)), 10);
        assert_eq!(retry_after_seconds(Duration::milliseconds(10_001)), 11);
        assert_eq!(retry_after_seconds(Duration::milliseconds(1)), 1);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
    }

    proptest! {
        /// Over any window, allowed requests never exceed the burst plus what the window
        /// refills, and waiting the answered time always lets the next request through.
        #[test]
        fn never_more_than_burst_plus_refill(steps in proptest::collection::vec(0i64..30_000, 1..200)) {
            let mut bucket = TokenBucket::full(at(0));
            let mut now = at(0);
            let mut allowed = 0i64;
            for step in steps {
                now += Duration::milliseconds(step);
                match bucket.take(BUDGET, now) {
                    Ok(()) => allowed += 1,
                    Err(wait) => {
                        prop_assert!(wait > Duration::ZERO);
                        let mut probe = bucket;
                        prop_assert!(probe.take(BUDGET, now + wait).is_ok());
                    }
                }
                let elapsed = (now - at(0)).whole_milliseconds() as i64;
                prop_assert!(allowed <= 5 + elapsed / 10_000);
            }
        }
    }
}
