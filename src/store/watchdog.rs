//! The flush watchdog: answers a group whose flush never ends and fails the store, because
//! sled 0.34 can stop making its log durable without reporting an error.

use std::collections::BTreeSet;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use super::queue::{Queue, Reply, lock_queue};
use super::{Store, StoreError};

/// Answers a group whose flush never ends. After a failed log write (seen with ENOSPC), sled 0.34
/// can stop making its log durable without reporting any error: the writer's flush, and every
/// flush after it, then waits forever, and so would everyone whose write is queued. When a flush
/// outlasts [`FLUSH_DEADLINE`], the watchdog's thread answers the group with an error (the disk
/// is full, if it is), marks the store failed so that later writes are refused before they are
/// queued, and from then on answers whatever reaches the queue with the same error, without
/// running it. The writer thread stays blocked in sled until the process ends; a restart
/// recovers everything acknowledged before.
pub(super) struct Watchdog {
    state: Mutex<Watch>,
    changed: Condvar,
    deadline: Duration,
}

#[derive(Default)]
struct Watch {
    /// The group being flushed: its number, its callers' replies until they are answered, and
    /// the keys it wrote.
    flushing: Option<(u64, Vec<Reply>, BTreeSet<Vec<u8>>)>,
    started: u64,
    stopped: bool,
}

impl Watchdog {
    pub(super) fn new(deadline: Duration) -> Watchdog {
        Watchdog {
            state: Mutex::default(),
            changed: Condvar::new(),
            deadline,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Watch> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `flush` for a group under watch; returns the outcome with the replies still to send
    /// and the group's keys (none of either if the watchdog answered the group meanwhile).
    pub(super) fn flush(
        &self,
        replies: Vec<Reply>,
        keys: BTreeSet<Vec<u8>>,
        flush: impl FnOnce() -> Result<(), StoreError>,
    ) -> (Vec<Reply>, BTreeSet<Vec<u8>>, Result<(), StoreError>) {
        {
            let mut state = self.lock();
            state.started += 1;
            state.flushing = Some((state.started, replies, keys));
        }
        self.changed.notify_all();
        let outcome = flush();
        let group = self.lock().flushing.take();
        self.changed.notify_all();
        let (replies, keys) = group.map(|(_, r, k)| (r, k)).unwrap_or_default();
        (replies, keys, outcome)
    }

    pub(super) fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }

    /// The watchdog's thread: idle until a flush starts, then waits for it up to its deadline.
    /// Ends (dropping its handle on the store) when the writer stops.
    pub(super) fn run(&self, store: &Store, queue: &Queue) {
        let mut state = self.lock();
        while !state.stopped {
            let Some(number) = state.flushing.as_ref().map(|(n, _, _)| *n) else {
                state = self
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            let (waited, timeout) = self
                .changed
                .wait_timeout_while(state, self.deadline, |w| {
                    !w.stopped && w.flushing.as_ref().is_some_and(|(n, _, _)| *n == number)
                })
                .unwrap_or_else(PoisonError::into_inner);
            state = waited;
            if !timeout.timed_out() {
                continue;
            }
            let Some((_, replies, keys)) = state.flushing.take() else {
                continue;
            };
            drop(state);
            let error = store.stalled(self.deadline);
            if store.fail(&error, keys) {
                tracing::error!(
                    error = %error,
                    "store flush stalled; its writes are not acknowledged, and no write is \
                     accepted until the vault restarts: free space if the disk is full, then \
                     restart"
                );
            }
            let outcome = Err(error);
            for reply in replies {
                reply(&outcome);
            }
            // The writer is blocked in sled for good: take its place at the queue, until the
            // last handle to the writer is dropped.
            let queue = lock_queue(queue);
            while let Ok(job) = queue.recv() {
                job(None)(&outcome);
            }
            return;
        }
    }
}

/// Stops the watchdog when the writer thread ends, however it ends.
pub(super) struct StopOnDrop<'a>(pub(super) &'a Watchdog);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::Tx;
    use crate::store::queue::Job;
    use crate::store::store_for_tests as store;
    use std::sync::{Arc, mpsc};

    #[test]
    fn a_flush_that_never_ends_is_answered_and_later_writes_too() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let watchdog = Arc::new(Watchdog::new(Duration::from_millis(50)));
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue: Queue = Arc::new(Mutex::new(queue));
        let watcher = {
            let (watchdog, store, queue) = (watchdog.clone(), store.clone(), queue.clone());
            std::thread::spawn(move || watchdog.run(&store, &queue))
        };
        // A group whose flush hangs, as sled's did once its disk was full.
        let (answer, answered) = mpsc::channel();
        let reply: Reply = Box::new(move |outcome| {
            let _ = answer.send(outcome.is_err());
        });
        let (release, hang) = mpsc::channel::<()>();
        let flusher = {
            let watchdog = watchdog.clone();
            std::thread::spawn(move || {
                watchdog.flush(vec![reply], BTreeSet::new(), || {
                    let _ = hang.recv();
                    Ok(())
                })
            })
        };
        let waited = Duration::from_secs(10);
        assert_eq!(answered.recv_timeout(waited), Ok(true));
        assert!(store.failed.get().is_some());
        // What reaches the queue afterwards is answered with the error, without running.
        let (tell, told) = mpsc::channel();
        let job: Job = Box::new(move |tx: Option<&mut Tx<'_>>| -> Reply {
            let ran = tx.is_some();
            Box::new(move |outcome: &Result<(), StoreError>| {
                let _ = tell.send((ran, outcome.is_err()));
            })
        });
        jobs.send(job).unwrap();
        assert_eq!(told.recv_timeout(waited), Ok((false, true)));
        // The flush ending late answers no one twice; the watchdog ends with the queue.
        release.send(()).unwrap();
        let (left, _, _) = flusher.join().unwrap();
        assert!(left.is_empty());
        drop(jobs);
        watcher.join().unwrap();
    }
}
