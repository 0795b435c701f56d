//! The single writer thread: it runs the queued jobs of a group one after the other on one
//! [`Tx`], applies the group as one batch, flushes once and answers every caller.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use tokio::sync::oneshot;

use super::queue::{Job, Queue, Reply, lock_queue};
use super::watchdog::{StopOnDrop, Watchdog};
use super::{Failure, Store, StoreError, Tx, TxError};

/// Groups that one writer pass takes at most, so that a flood of writes still gets answered.
const MAX_GROUP: usize = 1024;

/// The handle to the store's single writer thread. Cheap to clone; the thread stops when the last
/// handle is dropped, after answering everything already queued.
#[derive(Debug, Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    /// How many flushes have run: only tests read it, to see that writes share flushes.
    #[cfg(test)]
    flushes: Arc<AtomicU64>,
    /// The store's failure, if it has failed: then a write is refused before it is queued.
    failed: Arc<OnceLock<Failure>>,
}

impl Writer {
    /// Starts the writer thread for `store`.
    pub fn spawn(store: Store) -> Result<Writer, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue: Queue = Arc::new(Mutex::new(queue));
        let flushes = Arc::new(AtomicU64::new(0));
        let counted = flushes.clone();
        let failed = store.failed.clone();
        let watchdog = Arc::new(Watchdog::new(FLUSH_DEADLINE));
        let (watched, watching, watched_queue) = (store.clone(), watchdog.clone(), queue.clone());
        std::thread::Builder::new()
            .name("vrm-store-watch".into())
            .spawn(move || watching.run(&watched, &watched_queue))
            .map_err(|e| StoreError::Io(format!("cannot start the flush watchdog: {e}")))?;
        let spawned = std::thread::Builder::new()
            .name("vrm-store-writer".into())
            .spawn({
                let watchdog = watchdog.clone();
                move || {
                    let _stop = StopOnDrop(&watchdog);
                    run_writer(&store, &queue, &counted, &watchdog);
                }
            });
        if let Err(e) = spawned {
            watchdog.stop();
            return Err(StoreError::Io(format!(
                "cannot start the writer thread: {e}"
            )));
        }
        Ok(Writer {
            jobs,
            #[cfg(test)]
            flushes,
            failed,
        })
    }

    /// Runs `f` in the writer thread and returns its result once everything it wrote is durable
    /// on disk. If `f` fails, none of its writes happen.
    pub async fn write<T, E>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, TxError<E>>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |tx: Option<&mut Tx<'_>>| -> Reply {
            let Some(tx) = tx else {
                return Box::new(move |refused: &Result<(), StoreError>| {
                    let why = match refused {
                        Err(e) => e.again(),
                        Ok(()) => StoreError::Io("the store writer has stopped".into()),
                    };
                    let _ = answer.send(Err(TxError::Store(why)));
                });
            };
            tx.begin();
            match f(tx) {
                Ok(value) => Box::new(move |durable: &Result<(), StoreError>| {
                    let _ = answer.send(match durable {
                        Ok(()) => Ok(value),
                        Err(e) => Err(TxError::Store(e.again())),
                    });
                }),
                Err(e) => {
                    tx.rollback();
                    Box::new(move |_| {
                        let _ = answer.send(Err(TxError::Abort(e)));
                    })
                }
            }
        });
        if let Some(failure) = self.failed.get() {
            return Err(TxError::Store(failure.error.again()));
        }
        let stopped = || TxError::Store(StoreError::Io("the store writer has stopped".into()));
        self.jobs.send(job).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// Queues `f` without waiting for it: for bookkeeping whose loss costs nothing (a write
    /// that fails or is lost in a crash is simply redone later).
    pub fn write_detached(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<(), StoreError> + Send + 'static,
    ) {
        let job: Job = Box::new(move |tx: Option<&mut Tx<'_>>| -> Reply {
            if let Some(tx) = tx {
                tx.begin();
                if f(tx).is_err() {
                    tx.rollback();
                }
            }
            Box::new(|_| {})
        });
        if self.failed.get().is_none() {
            let _ = self.jobs.send(job);
        }
    }

    /// How many flushes have run so far (each covers a whole group of writes).
    #[cfg(test)]
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }
}

/// The writer thread: take every job waiting, run them in order on one overlay, apply the group as
/// one batch, flush once, answer everyone.
fn run_writer(store: &Store, queue: &Queue, flushes: &AtomicU64, watchdog: &Watchdog) {
    loop {
        let mut replies: Vec<Reply> = Vec::new();
        let mut tx = Tx::new(store);
        {
            let queue = lock_queue(queue);
            let Ok(first) = queue.recv() else {
                return;
            };
            // Once the store has failed, jobs are answered without running.
            let failed = store.failed.get().is_some();
            let mut run = |job: Job| job((!failed).then_some(&mut tx));
            replies.push(run(first));
            while replies.len() < MAX_GROUP {
                match queue.try_recv() {
                    Ok(job) => replies.push(run(job)),
                    Err(_) => break,
                }
            }
        }
        // A group that would eat into the disk's last reserve is refused before sled sees it:
        // sled does not recover from a failed write within the process, so never letting it
        // meet a full disk is what lets writes resume as soon as space returns.
        if let Err(e) = store.room_for(&tx) {
            for reply in replies {
                reply(&Err(e.again()));
            }
            continue;
        }
        let started = std::time::Instant::now();
        // What the group writes, in case it fails (a handful of short keys per write).
        let keys: BTreeSet<Vec<u8>> = tx.pending.keys().cloned().collect();
        let (replies, keys, outcome) = match store.writable().and_then(|()| tx.commit()) {
            Ok(()) => watchdog.flush(replies, keys, || store.flush()),
            Err(e) => (replies, keys, Err(e)),
        };
        flushes.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(
            writes = replies.len(),
            micros = started.elapsed().as_micros() as u64,
            "group committed"
        );
        if let Err(e) = &outcome
            && store.fail(e, keys)
        {
            tracing::error!(
                error = %e,
                "store write failed; the group's writes are not acknowledged, and no write is \
                 accepted until the vault restarts: free space if the disk is full, then restart"
            );
        }
        for reply in replies {
            reply(&outcome);
        }
    }
}

/// Free disk space the store never writes into: enough for sled to finish what it has begun
/// (node rewrites, its log's segment headers) so that a full disk is refused cleanly instead of
/// failing inside sled.
pub const DISK_RESERVE: u64 = 8 * 1024 * 1024;

/// How long a group's flush may take before the group is answered with an error and the store
/// stops writing (see [`Watchdog`]). Flushes take milliseconds; a disk that needs longer is
/// failing anyway.
const FLUSH_DEADLINE: Duration = Duration::from_secs(10);

impl Store {
    /// Whether the disk has room for a group: [`DISK_RESERVE`] plus four times what it stages
    /// (sled rewrites whole nodes, so a write costs the disk several times its size). A disk
    /// whose free space cannot be read is assumed to have room.
    pub(super) fn room_for(&self, tx: &Tx<'_>) -> Result<(), StoreError> {
        let staged: u64 = tx
            .pending
            .iter()
            .map(|(k, v)| (k.len() + v.as_ref().map_or(0, Vec::len) + 64) as u64)
            .sum();
        let needed = DISK_RESERVE + 4 * staged;
        match fs2::available_space(&*self.dir) {
            Ok(free) if free < needed => Err(StoreError::Full(format!(
                "{free} bytes free, below the {needed} a write keeps in reserve"
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::Tree;
    use crate::store::store_for_tests as store;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_flushes_and_a_failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let writer = Writer::spawn(store.clone()).unwrap();
        let mut tasks = vec![];
        for i in 0u32..64 {
            let writer = writer.clone();
            tasks.push(tokio::spawn(async move {
                writer
                    .write(move |tx| {
                        tx.insert(Tree::Records, &i.to_be_bytes(), b"v")?;
                        // Odd writers fail after writing: their write must vanish.
                        if i % 2 == 1 {
                            return Err(StoreError::Io("refused".into()));
                        }
                        Ok(i)
                    })
                    .await
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            let result = t.await.unwrap();
            assert_eq!(result.is_ok(), i % 2 == 0, "writer {i}");
        }
        let flushes = writer.flush_count();
        assert!(flushes >= 1);
        assert!(
            flushes < 64,
            "64 writers caused {flushes} flushes: not grouped"
        );
        let kept: Vec<u32> = store
            .iter(Tree::Records)
            .map(|e| u32::from_be_bytes(e.unwrap().0.try_into().unwrap()))
            .collect();
        assert_eq!(kept, (0..64).step_by(2).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn after_a_failed_write_the_store_refuses_writes_without_touching_sled() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let writer = Writer::spawn(store.clone()).unwrap();
        writer
            .write(|tx| tx.insert(Tree::Records, b"before", b"v"))
            .await
            .map_err(|_| ())
            .unwrap();
        // What the writer records when sled reports ENOSPC, for a group that wrote `unsure`.
        store
            .transact_offline(|tx| tx.insert(Tree::Records, b"unsure", b"maybe"))
            .map_err(|_| ())
            .unwrap();
        let full = StoreError::Full("No space left on device".into());
        assert!(store.fail(&full, [Tree::Records.key(b"unsure")].into()));
        let refused = writer
            .write(|tx| tx.insert(Tree::Records, b"after", b"v"))
            .await;
        assert!(
            matches!(refused, Err(TxError::Store(StoreError::Full(_)))),
            "{refused:?}"
        );
        assert!(matches!(store.flush(), Err(StoreError::Full(_))));
        assert!(store.get(Tree::Records, b"after").unwrap().is_none());
        assert_eq!(store.get(Tree::Records, b"before").unwrap().unwrap(), b"v");
        // What the failed group wrote reads as the failure, alone or in a walk.
        assert!(matches!(
            store.get(Tree::Records, b"unsure"),
            Err(StoreError::Full(_))
        ));
        let walked: Vec<_> = store.iter(Tree::Records).map(|e| e.is_ok()).collect();
        assert_eq!(walked, vec![true, false]);
    }

    #[tokio::test]
    async fn each_write_sees_the_ones_before_it_in_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let writer = Writer::spawn(store.clone()).unwrap();
        // A counter incremented by 50 concurrent read-modify-write jobs ends at exactly 50.
        let mut tasks = vec![];
        for _ in 0..50 {
            let writer = writer.clone();
            tasks.push(tokio::spawn(async move {
                writer
                    .write(|tx| {
                        let n = tx
                            .get(Tree::Meta, b"n")?
                            .map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap_or_default()));
                        tx.insert(Tree::Meta, b"n", &(n + 1).to_be_bytes())
                    })
                    .await
                    .map_err(|_| ())
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let n = store.get(Tree::Meta, b"n").unwrap().unwrap();
        assert_eq!(u64::from_be_bytes(n.try_into().unwrap()), 50);
    }
}
