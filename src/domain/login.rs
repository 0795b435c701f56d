//! Login throttling: back-off after failed passphrase attempts.
//!
//! The vault has a single account, so an attacker can spread guesses over many addresses: the
//! throttle keeps a back-off per client and a global one. The first few failures are free (people
//! mistype); after that each failure doubles the wait, up to a ceiling. A success clears the
//! client's count. Argon2id already makes every guess cost about a second of CPU; this makes an
//! online guessing campaign cost days per thousand guesses.
//!
//! **Reserve, then settle.** A passphrase check takes about a second, so a throttle that only
//! looked at past failures before the check and counted the failure after it would let any
//! number of parallel requests through before the first failure was counted. Instead
//! [`LoginThrottle::begin`] counts the attempt as a failure *before* the passphrase is checked,
//! and allows at most one attempt in flight per client; [`LoginThrottle::finish`] then settles
//! it: a success refunds it (and clears the client's count), a wrong passphrase keeps it and
//! restarts the wait from the moment the answer was known, and an attempt that never reached the
//! check is refunded.
//!
//! **Clients.** A client is an address, or a device that has logged in before and shows a valid
//! device cookie ([`Client::Device`], OWASP's "device cookies"). Addresses share the global
//! back-off, so guesses spread over many addresses still slow down; a known device is throttled on
//! its own failures only and never by the global back-off, so strangers cannot lock the owner's
//! browser out, and a device's own failures lock only that device.

use std::collections::HashMap;
use std::net::IpAddr;

use time::{Duration, OffsetDateTime};

/// Failures allowed before any waiting starts.
pub const FREE_FAILURES: u32 = 3;
/// The longest wait imposed after repeated failures.
pub const MAX_BACKOFF: Duration = Duration::minutes(15);
/// Failures across all addresses before the global back-off starts.
pub const GLOBAL_FREE_FAILURES: u32 = 20;
/// How long a client whose previous attempt is still being checked is told to wait: about one
/// Argon2id check.
pub const IN_FLIGHT_WAIT: Duration = Duration::seconds(1);
/// Clients remembered at most; the oldest are forgotten first.
const MAX_TRACKED: usize = 10_000;

/// The opaque id a device cookie names (its integrity is the caller's to check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceId(pub [u8; 16]);

/// Who is attempting a passphrase check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    /// A client the vault does not know: throttled by its address and by the global back-off.
    Address(IpAddr),
    /// A device that logged in before: throttled by its own failures only.
    Device(DeviceId),
}

/// How a reserved attempt ended (see [`LoginThrottle::finish`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The passphrase was right: the attempt is refunded and the client's count cleared.
    Succeeded,
    /// The passphrase was wrong: the attempt stays counted.
    Failed,
    /// The attempt ended before the passphrase was checked (bad input, a vault in the wrong
    /// state, an internal error): it is refunded.
    NotChecked,
}

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

/// Tracks failures per client and globally.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    by_client: HashMap<Client, Failures>,
    global: Option<Failures>,
    /// Clients with an attempt reserved and not yet finished, with what their count was before
    /// (at most one attempt per client is in flight, so a refund restores it exactly).
    in_flight: HashMap<Client, Option<Failures>>,
    /// No global back-off: for brands' client authentication, where one party's failures must
    /// not lock every other brand out.
    per_address_only: bool,
    /// Failures allowed per client before waiting starts ([`FREE_FAILURES`] unless set).
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

    fn counts_globally(&self, client: Client) -> bool {
        !self.per_address_only && matches!(client, Client::Address(_))
    }

    /// How long `client` must wait before its next attempt, if at all (ignoring attempts in
    /// flight).
    pub fn wait_for(&self, client: Client, now: OffsetDateTime) -> Option<Duration> {
        let local = self
            .by_client
            .get(&client)
            .and_then(|f| f.locked_until(self.free_failures.unwrap_or(FREE_FAILURES)));
        let global = self
            .global
            .filter(|_| self.counts_globally(client))
            .and_then(|f| f.locked_until(GLOBAL_FREE_FAILURES));
        let until = local.into_iter().chain(global).max()?;
        (until > now).then(|| until - now)
    }

    /// How long `addr` must wait before its next attempt, if at all.
    pub fn wait(&self, addr: IpAddr, now: OffsetDateTime) -> Option<Duration> {
        self.wait_for(Client::Address(addr), now)
    }

    /// Reserves an attempt for `client` before its passphrase is checked: refused with the wait
    /// if the client is backing off or already has an attempt in flight; otherwise counted as a
    /// failure now, to be settled by [`LoginThrottle::finish`].
    pub fn begin(&mut self, client: Client, now: OffsetDateTime) -> Result<(), Duration> {
        if self.in_flight.contains_key(&client) {
            return Err(IN_FLIGHT_WAIT);
        }
        if let Some(wait) = self.wait_for(client, now) {
            return Err(wait);
        }
        let before = self.by_client.get(&client).copied();
        self.count_failure(client, now);
        self.in_flight.insert(client, before);
        Ok(())
    }

    /// Settles an attempt reserved by [`LoginThrottle::begin`].
    pub fn finish(&mut self, client: Client, outcome: Outcome, now: OffsetDateTime) {
        let Some(before) = self.in_flight.remove(&client) else {
            return;
        };
        match outcome {
            Outcome::Succeeded => self.record_success_of(client),
            Outcome::Failed => {
                // The back-off runs from the answer the client saw, not from when it asked.
                if let Some(entry) = self.by_client.get_mut(&client) {
                    entry.last = now;
                }
                if self.counts_globally(client)
                    && let Some(global) = self.global.as_mut()
                {
                    global.last = now;
                }
            }
            Outcome::NotChecked => {
                match before {
                    Some(before) => self.by_client.insert(client, before),
                    None => self.by_client.remove(&client),
                };
                if self.counts_globally(client)
                    && let Some(global) = self.global.as_mut()
                {
                    global.count = global.count.saturating_sub(1);
                }
            }
        }
    }

    fn count_failure(&mut self, client: Client, now: OffsetDateTime) {
        if self.by_client.len() >= MAX_TRACKED
            && !self.by_client.contains_key(&client)
            && let Some(oldest) = self
                .by_client
                .iter()
                .filter(|(c, _)| !self.in_flight.contains_key(c))
                .min_by_key(|(_, f)| f.last)
                .map(|(c, _)| *c)
        {
            self.by_client.remove(&oldest);
        }
        let entry = self.by_client.entry(client).or_insert(Failures {
            count: 0,
            last: now,
        });
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        if !self.counts_globally(client) {
            return;
        }
        let global = self.global.get_or_insert(Failures {
            count: 0,
            last: now,
        });
        global.count = global.count.saturating_add(1);
        global.last = now;
    }

    /// Counts a failure of `addr` after the fact (for checks that are cheap, where a race
    /// costs nothing).
    pub fn record_failure(&mut self, addr: IpAddr, now: OffsetDateTime) {
        self.count_failure(Client::Address(addr), now);
    }

    pub fn record_success(&mut self, addr: IpAddr) {
        self.record_success_of(Client::Address(addr));
    }

    /// A right passphrase clears the client's count. From an address it also clears the global
    /// count (the owner is present, on a browser the vault does not know); from a known device
    /// it does not, so strangers do not win fresh guesses each time the owner logs in.
    fn record_success_of(&mut self, client: Client) {
        self.by_client.remove(&client);
        if self.counts_globally(client) {
            self.global = None;
        }
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

    #[test]
    fn parallel_attempts_are_reserved_before_the_check() {
        let addr = Client::Address("192.0.2.1".parse().unwrap());
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let mut throttle = LoginThrottle::default();
        // Twelve attempts arrive together: one is let through, the rest wait for it.
        assert_eq!(throttle.begin(addr, t0), Ok(()));
        for _ in 0..11 {
            assert_eq!(throttle.begin(addr, t0), Err(IN_FLIGHT_WAIT));
        }
        throttle.finish(addr, Outcome::Failed, t0 + Duration::seconds(1));
        // Attempts one after the other: the free budget, then the back-off, measured from the
        // moment each wrong answer was known.
        let mut now = t0 + Duration::seconds(1);
        for _ in 1..FREE_FAILURES {
            assert_eq!(throttle.begin(addr, now), Ok(()));
            now += Duration::seconds(1);
            throttle.finish(addr, Outcome::Failed, now);
        }
        assert_eq!(throttle.begin(addr, now), Err(Duration::seconds(1)));
        // An attempt that never reached the check is refunded; a success clears the count.
        now += Duration::seconds(1);
        assert_eq!(throttle.begin(addr, now), Ok(()));
        throttle.finish(addr, Outcome::NotChecked, now);
        assert_eq!(throttle.begin(addr, now), Ok(()));
        throttle.finish(addr, Outcome::Succeeded, now);
        for _ in 0..FREE_FAILURES {
            assert_eq!(throttle.begin(addr, now), Ok(()));
            throttle.finish(addr, Outcome::Failed, now);
        }
        assert!(throttle.begin(addr, now).is_err());
    }

    #[test]
    fn the_global_budget_is_reserved_too_and_never_binds_a_known_device() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let mut throttle = LoginThrottle::default();
        // Strangers on rotating addresses, all at once: only the global budget is let through.
        let mut let_through = Vec::new();
        for n in 0..40u8 {
            let client = Client::Address(IpAddr::from([198, 51, 100, n]));
            if throttle.begin(client, t0).is_ok() {
                let_through.push(client);
            }
        }
        assert_eq!(let_through.len(), GLOBAL_FREE_FAILURES as usize);
        for client in let_through {
            throttle.finish(client, Outcome::Failed, t0);
        }
        let stranger = Client::Address("203.0.113.5".parse().unwrap());
        assert!(throttle.begin(stranger, t0).is_err());
        // The owner's known device is not held by the strangers' failures ...
        let device = Client::Device(DeviceId([7; 16]));
        let other_device = Client::Device(DeviceId([8; 16]));
        assert_eq!(throttle.begin(device, t0), Ok(()));
        throttle.finish(device, Outcome::Failed, t0);
        // ... and its own failures hold only itself.
        for _ in 1..FREE_FAILURES {
            assert_eq!(throttle.begin(device, t0), Ok(()));
            throttle.finish(device, Outcome::Failed, t0);
        }
        assert!(throttle.begin(device, t0).is_err());
        assert_eq!(throttle.begin(other_device, t0), Ok(()));
        throttle.finish(other_device, Outcome::Succeeded, t0);
        // A known device's success does not give the strangers fresh guesses ...
        assert!(throttle.begin(stranger, t0).is_err());
        // ... the owner's success on an unknown browser (once the wait is over) does.
        let later = t0 + MAX_BACKOFF;
        let owner = Client::Address("192.0.2.200".parse().unwrap());
        assert_eq!(throttle.begin(owner, later), Ok(()));
        throttle.finish(owner, Outcome::Succeeded, later);
        assert_eq!(throttle.begin(stranger, later), Ok(()));
        throttle.finish(stranger, Outcome::Failed, later);
    }

    #[test]
    fn finishing_an_attempt_never_begun_changes_nothing() {
        let addr = Client::Address("192.0.2.9".parse().unwrap());
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let mut throttle = LoginThrottle::default();
        for _ in 0..FREE_FAILURES {
            throttle.finish(addr, Outcome::Failed, t0);
            throttle.finish(addr, Outcome::NotChecked, t0);
        }
        assert_eq!(throttle.wait_for(addr, t0), None);
    }
}
