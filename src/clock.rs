//! Time as a parameter: the service reads the time only through a [`Clock`], so tests can fix it
//! or move it forward instead of sleeping.
//!
//! The service wraps whatever clock it is given in [`NeverBackwards`]: a wall clock set back (by
//! hand, a bad NTP source, a dead RTC battery at boot) must not make an expired grant or token
//! valid again, so time as the vault sees it only moves forward.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use time::{Duration, OffsetDateTime};

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> OffsetDateTime;

    /// Tells the clock that the vault has already seen `time` (its latest audit entry, at
    /// unseal), so it never answers earlier than that. Plain clocks ignore it.
    fn not_before(&self, _time: OffsetDateTime) {}
}

/// The real wall clock, truncated to whole seconds (all timestamps the vault shows are seconds).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        now.replace_nanosecond(0).unwrap_or(now)
    }
}

/// A clock that only moves when told to, for tests.
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        Self(Mutex::new(start))
    }

    pub fn advance(&self, by: Duration) {
        if let Ok(mut now) = self.0.lock() {
            *now += by;
        }
    }

    /// Sets the time, backwards too (as a wall clock set back by hand would).
    pub fn set(&self, to: OffsetDateTime) {
        if let Ok(mut now) = self.0.lock() {
            *now = to;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        self.0
            .lock()
            .map(|t| *t)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// A clock that never goes backwards: it answers the later of its inner clock and the latest time
/// it has answered (or been told of with [`Clock::not_before`]).
///
/// Across restarts the floor comes from the audit log: every grant use, token and change appends
/// an entry with its time, and unsealing raises the floor to the newest one.
#[derive(Debug)]
pub struct NeverBackwards {
    inner: Arc<dyn Clock>,
    /// Nanoseconds since the Unix epoch (an `i64` lasts until 2262).
    floor: AtomicI64,
    /// Whether the current backwards step was already logged, so it is logged once, not per call.
    warned: AtomicBool,
}

impl NeverBackwards {
    pub fn new(inner: Arc<dyn Clock>) -> NeverBackwards {
        NeverBackwards {
            inner,
            floor: AtomicI64::new(i64::MIN),
            warned: AtomicBool::new(false),
        }
    }
}

fn nanos(time: OffsetDateTime) -> i64 {
    i64::try_from(time.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

impl Clock for NeverBackwards {
    fn now(&self) -> OffsetDateTime {
        let now = self.inner.now();
        let floor = self.floor.fetch_max(nanos(now), Ordering::AcqRel);
        if floor <= nanos(now) {
            self.warned.store(false, Ordering::Relaxed);
            return now;
        }
        let floor = OffsetDateTime::from_unix_timestamp_nanos(i128::from(floor)).unwrap_or(now);
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                clock = %now,
                using = %floor,
                "the system clock is behind a time the vault has already seen; \
                 holding time still until it catches up"
            );
        }
        floor
    }

    fn not_before(&self, time: OffsetDateTime) {
        self.floor.fetch_max(nanos(time), Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn time_held_still_while_the_clock_is_behind() {
        let manual = Arc::new(ManualClock::new(datetime!(2026-01-01 12:00 UTC)));
        let clock = NeverBackwards::new(manual.clone());
        assert_eq!(clock.now(), datetime!(2026-01-01 12:00 UTC));
        manual.set(datetime!(2025-06-01 00:00 UTC));
        assert_eq!(clock.now(), datetime!(2026-01-01 12:00 UTC));
        manual.set(datetime!(2026-01-01 12:00:05 UTC));
        assert_eq!(clock.now(), datetime!(2026-01-01 12:00:05 UTC));
    }

    #[test]
    fn a_floor_from_the_audit_log_holds_before_the_first_reading() {
        let manual = Arc::new(ManualClock::new(datetime!(2020-01-01 00:00 UTC)));
        let clock = NeverBackwards::new(manual);
        clock.not_before(datetime!(2026-01-01 00:00 UTC));
        assert_eq!(clock.now(), datetime!(2026-01-01 00:00 UTC));
    }
}
