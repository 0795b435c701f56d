//! Login throttling: back-off after failed passphrase attempts.
//!
//! The vault has a single account, so an attacker can spread guesses over many addresses: the
//! throttle keeps a per-address back-off and a global one. The first few failures are free (people
//! mistype); after that each failure doubles the wait, up to a ceiling. A success clears the
//! address's count. Argon2id already makes every guess cost about a second of CPU; this makes an
//! online guessing campaign cost days per thousand guesses.

use std::collections::HashMap;
use std::net::IpAddr;

use time::{Duration, OffsetDateTime};

/// Failures allowed before any waiting starts.
pub const FREE_FAILURES: u32 = 3;
/// The longest wait imposed after repeated failures.
pub const MAX_BACKOFF: Duration = Duration::minutes(15);
/// Failures across all addresses before the global back-off starts.
pub const GLOBAL_FREE_FAILURES: u32 = 20;
/// Addresses remembered at most; the oldest are forgotten first.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: OffsetDateTime,
}

impl Failures {
    fn locked_until(&self, free: u32) -> Option<OffsetDateTime> {
        if self.count < free {
            return None;
        }
        let exponent = (self.count - free).min(16);
        let wait = Duration::seconds(1i64 << exponent).min(MAX_BACKOFF);
        Some(self.last + wait)
    }
}

/// Tracks failures per address and globally.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    by_address: HashMap<IpAddr, Failures>,
    global: Option<Failures>,
    /// No global back-off: for brands' client authentication, where one party's failures must
    /// not lock every other brand out.
    per_address_only: bool,
    /// Failures allowed per address before waiting starts ([`FREE_FAILURES`] unless set).
    free_failures: Option<u32>,
}

impl LoginThrottle {
    /// A throttle with per-address back-off only, after `free` failures.
    pub fn per_address(free: u32) -> LoginThrottle {
        LoginThrottle {
            per_address_only: true,
            free_failures: Some(free),
            ..LoginThrottle::default()
        }
    }

    /// How long `addr` must wait before its next attempt, if at all.
    pub fn wait(&self, addr: IpAddr, now: OffsetDateTime) -> Option<Duration> {
        let local = self
            .by_address
            .get(&addr)
            .and_then(|f| f.locked_until(self.free_failures.unwrap_or(FREE_FAILURES)));
        let global = self
            .global
            .and_then(|f| f.locked_until(GLOBAL_FREE_FAILURES));
        let until = local.into_iter().chain(global).max()?;
        (until > now).then(|| until - now)
    }

    pub fn record_failure(&mut self, addr: IpAddr, now: OffsetDateTime) {
        if self.by_address.len() >= MAX_TRACKED
            && !self.by_address.contains_key(&addr)
            && let Some(oldest) = self
                .by_address
                .iter()
                .min_by_key(|(_, f)| f.last)
                .map(|(a, _)| *a)
        {
            self.by_address.remove(&oldest);
        }
        let entry = self.by_address.entry(addr).or_insert(Failures {
            count: 0,
            last: now,
        });
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        if self.per_address_only {
            return;
        }
        let global = self.global.get_or_insert(Failures {
            count: 0,
            last: now,
        });
        global.count = global.count.saturating_add(1);
        global.last = now;
    }

    pub fn record_success(&mut self, addr: IpAddr) {
        self.by_address.remove(&addr);
        self.global = None;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_exponentially_after_free_failures() {
        let addr: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let mut throttle = LoginThrottle::default();
        for _ in 0..FREE_FAILURES {
            assert_eq!(throttle.wait(addr, t0), None);
            throttle.record_failure(addr, t0);
        }
        assert_eq!(throttle.wait(addr, t0), Some(Duration::seconds(1)));
        throttle.record_failure(addr, t0);
        assert_eq!(throttle.wait(addr, t0), Some(Duration::seconds(2)));
        assert_eq!(throttle.wait(addr, t0 + Duration::seconds(2)), None);
        let mut per_address = LoginThrottle::per_address(FREE_FAILURES);
        for n in 0..100u8 {
            per_address.record_failure(IpAddr::from([192, 0, 2, n]), t0);
        }
        assert_eq!(per_address.wait("198.51.100.1".parse().unwrap(), t0), None);
        for _ in 0..30 {
            throttle.record_failure(addr, t0);
        }
        assert_eq!(throttle.wait(addr, t0), Some(MAX_BACKOFF));
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        // The global back-off slows every address once the total is high.
        assert!(throttle.wait(other, t0).is_some());
        throttle.record_success(addr);
        assert_eq!(throttle.wait(addr, t0), None);
        assert_eq!(throttle.wait(other, t0), None);
    }
}
