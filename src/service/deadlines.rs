//! Deadline-driven background work, in the manner of mini-redis's `db.rs`: what must happen at
//! a time (an intent's expiry, a webhook retry) is kept in an in-memory ordered set of
//! `(deadline, key)`, built once at unseal and kept up to date by the writes that add, move or
//! remove deadlines. One task sleeps until the first deadline, or until an [`Alarm`] says an
//! earlier one arrived; a guard held by the open vault stops it when the vault goes away.
//!
//! So an idle vault does no periodic work, and a large one never rescans the store to find what
//! is due. Time stays a parameter: deadlines are compared with the vault's [`Clock`], and since
//! a test clock moves without any sleep ending, every time the vault reads its clock it rings
//! the alarm if a deadline has passed ([`Alarm::check`]).
//!
//! [`Clock`]: crate::clock::Clock

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use time::{Duration, OffsetDateTime};
use tokio::sync::Notify;

/// The longest the task sleeps without looking at the clock again, so a wall clock that jumps
/// forward is noticed within this long.
const MAX_SLEEP: Duration = Duration::minutes(10);

/// An ordered set of `(deadline, key)`; the earliest comes first.
#[derive(Debug)]
pub(crate) struct Deadlines<K: Ord> {
    set: Mutex<BTreeSet<(OffsetDateTime, K)>>,
}

impl<K: Ord + Clone> Deadlines<K> {
    pub(crate) fn new(items: impl IntoIterator<Item = (OffsetDateTime, K)>) -> Deadlines<K> {
        Deadlines {
            set: Mutex::new(items.into_iter().collect()),
        }
    }

    fn set(&self) -> MutexGuard<'_, BTreeSet<(OffsetDateTime, K)>> {
        // The set is only ever inserted into and removed from, so a panic elsewhere while it
        // was locked cannot have left it half-changed.
        self.set.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn insert(&self, at: OffsetDateTime, key: K) {
        self.set().insert((at, key));
    }

    pub(crate) fn remove(&self, at: OffsetDateTime, key: &K) {
        self.set().remove(&(at, key.clone()));
    }

    /// Takes out every entry due at `now`, earliest first.
    pub(crate) fn take_due(&self, now: OffsetDateTime) -> Vec<(OffsetDateTime, K)> {
        let mut set = self.set();
        let mut due = Vec::new();
        while set.first().is_some_and(|(at, _)| *at <= now) {
            if let Some(entry) = set.pop_first() {
                due.push(entry);
            }
        }
        due
    }

    /// The first deadline after `now` (entries due but held back do not count: whatever holds
    /// them back wakes the task when they may go).
    pub(crate) fn first_after(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.set().iter().map(|(at, _)| *at).find(|at| *at > now)
    }
}

fn nanos(time: OffsetDateTime) -> i64 {
    i64::try_from(time.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

/// Wakes the background task: when an earlier deadline arrives, when the vault's clock passes
/// the deadline it sleeps towards, and when the vault goes away.
#[derive(Debug)]
pub(crate) struct Alarm {
    wake: Notify,
    /// The deadline the task sleeps towards (Unix nanoseconds; `i64::MAX` while none, or while
    /// the task is awake).
    earliest: AtomicI64,
    stopped: AtomicBool,
    /// Store reads the background work could not do (each is logged).
    read_errors: AtomicU64,
}

impl Alarm {
    pub(crate) fn new() -> Arc<Alarm> {
        Arc::new(Alarm {
            wake: Notify::new(),
            earliest: AtomicI64::new(i64::MAX),
            stopped: AtomicBool::new(false),
            read_errors: AtomicU64::new(0),
        })
    }

    /// A deadline at `at` was added: wakes the task if it sleeps towards a later one.
    pub(crate) fn arm(&self, at: OffsetDateTime) {
        let at = nanos(at);
        if self.earliest.fetch_min(at, Ordering::AcqRel) > at {
            self.wake.notify_one();
        }
    }

    /// The vault read its clock: wakes the task if the deadline it sleeps towards has passed
    /// (a test clock moved forward ends no sleep by itself).
    pub(crate) fn check(&self, now: OffsetDateTime) {
        if nanos(now) >= self.earliest.load(Ordering::Acquire) {
            self.earliest.store(i64::MAX, Ordering::Release);
            self.wake.notify_one();
        }
    }

    /// The task is awake and will look at every deadline: nothing needs to ring it until it
    /// sleeps again.
    pub(crate) fn disarm(&self) {
        self.earliest.store(i64::MAX, Ordering::Release);
    }

    pub(crate) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Sleeps until `next` by the vault's clock (read as `now`), or until rung.
    pub(crate) async fn sleep(&self, next: Option<OffsetDateTime>, now: OffsetDateTime) {
        let Some(next) = next else {
            self.wake.notified().await;
            return;
        };
        // A deadline armed since the task looked keeps the earlier of the two, and has left
        // a wake-up behind in any case.
        self.earliest.fetch_min(nanos(next), Ordering::AcqRel);
        let wait = (next - now).clamp(Duration::ZERO, MAX_SLEEP);
        let wait = std::time::Duration::try_from(wait).unwrap_or_default();
        tokio::select! {
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }

    /// Logs and counts a store read the background work could not do; the work goes on with
    /// the rest.
    pub(crate) fn read_error(&self, what: &'static str, error: &dyn std::fmt::Display) {
        self.read_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %error, what, "background work could not read the store");
    }

    pub(crate) fn read_errors(&self) -> u64 {
        self.read_errors.load(Ordering::Relaxed)
    }
}

/// Held by the open vault: when the vault goes away, the background task stops.
#[derive(Debug)]
pub(crate) struct StopOnDrop(pub(crate) Arc<Alarm>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stopped.store(true, Ordering::Release);
        self.0.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(1_700_000_000 + seconds)
    }

    #[test]
    fn due_entries_come_out_in_order_and_later_ones_stay() {
        let deadlines = Deadlines::new([(at(30), "c"), (at(10), "a"), (at(20), "b")]);
        assert_eq!(
            deadlines.take_due(at(20)),
            vec![(at(10), "a"), (at(20), "b")]
        );
        assert_eq!(deadlines.take_due(at(20)), vec![]);
        assert_eq!(deadlines.first_after(at(20)), Some(at(30)));
        deadlines.remove(at(30), &"c");
        assert_eq!(deadlines.first_after(at(0)), None);
    }

    #[tokio::test]
    async fn an_earlier_deadline_or_a_passed_one_rings_and_a_later_one_does_not() {
        let alarm = Alarm::new();
        alarm.earliest.store(nanos(at(60)), Ordering::Release);
        alarm.arm(at(90));
        alarm.check(at(59));
        assert!(
            tokio::time::timeout(std::time::Duration::ZERO, alarm.wake.notified())
                .await
                .is_err(),
            "nothing earlier arrived and nothing passed"
        );
        alarm.arm(at(30));
        alarm.wake.notified().await;
        alarm.disarm();
        alarm.earliest.store(nanos(at(60)), Ordering::Release);
        alarm.check(at(60));
        alarm.wake.notified().await;
    }

    #[tokio::test]
    async fn dropping_the_guard_stops_and_wakes_the_task() {
        let alarm = Alarm::new();
        drop(StopOnDrop(alarm.clone()));
        assert!(alarm.stopped());
        alarm.sleep(None, at(0)).await;
    }
}
