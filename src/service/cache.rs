//! In-memory caches of opened and decoded store values, kept coherent with the store.
//!
//! Reading a record, a brand or an agreement from sled means a B-tree lookup, opening the sealed
//! value and decoding its JSON; the same few values are read on every request. A cache skips all
//! three, and stays correct without the writers having to remember it:
//!
//! - Each cached tree has an **epoch**. Every write of a running vault goes through
//!   [`super::OpenVault::write`], which notes the cached trees the write touched and moves their
//!   epochs on once the write is *applied*: the note travels with the write's result, which the
//!   store's writer hands back only after its group's commit, and moves the epochs when dropped
//!   (so also when the caller stopped waiting).
//! - An entry remembers the epoch read *before* its value was read from the store, and is used
//!   only while its tree's epoch has not moved since. A value read just before a write was
//!   applied therefore never outlives the write, and after a write's caller gets its answer
//!   every reader sees the new value.
//!
//! So a write costs every cached entry of its tree (writes are rare next to reads), and each
//! cache is bounded by the bytes of the opened values it holds. The caches belong to the
//! [`super::OpenVault`] and are dropped with it when the vault seals.
//!
//! Checks that must see writes queued but not yet applied (a revocation in the same group as a
//! brand's data read) run in the writer and do not use these caches. They use [`InWriter`]
//! caches, which only the writer thread touches: a job that writes a tree empties that tree's
//! cache, and a value is cached only while no write of it is staged in the writer's group, so
//! what the cache holds is always what the job would have read through the transaction.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::store::{Table, Tree, Tx};

/// The trees whose values are cached; an epoch each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cached {
    Records,
    Brands,
    Agreements,
}

const CACHED: [Cached; 3] = [Cached::Records, Cached::Brands, Cached::Agreements];

impl Cached {
    fn tree(self) -> Tree {
        match self {
            Cached::Records => Tree::Records,
            Cached::Brands => Tree::Brands,
            Cached::Agreements => Tree::Agreements,
        }
    }
}

/// The epochs of the cached trees.
#[derive(Debug, Default)]
pub(crate) struct Epochs([AtomicU64; CACHED.len()]);

impl Epochs {
    fn current(&self, tree: Cached) -> u64 {
        self.0[tree as usize].load(Ordering::Acquire)
    }
}

/// Which cached trees a write touched; moves their epochs on when dropped. Created in the writer
/// after the write is staged and returned with its result, so it is dropped only once the write
/// is applied.
#[derive(Debug)]
pub(crate) struct Applied {
    epochs: Arc<Epochs>,
    written: [bool; CACHED.len()],
}

impl Applied {
    /// What the current job of `tx` wrote to cached trees.
    pub(crate) fn of(tx: &Tx<'_>, epochs: Arc<Epochs>) -> Applied {
        Applied {
            written: CACHED.map(|cached| tx.wrote(cached.tree())),
            epochs,
        }
    }
}

impl Drop for Applied {
    fn drop(&mut self) {
        for (epoch, written) in self.epochs.0.iter().zip(self.written) {
            if written {
                epoch.fetch_add(1, Ordering::Release);
            }
        }
    }
}

#[derive(Debug)]
struct Entry<T> {
    epoch: u64,
    value: Arc<T>,
    /// The size of the opened value, what the cache's bound counts.
    bytes: u32,
}

// Not derived: a derive would ask `T: Clone`, and only the `Arc` is cloned.
impl<T> Clone for Entry<T> {
    fn clone(&self) -> Self {
        Entry {
            epoch: self.epoch,
            value: self.value.clone(),
            bytes: self.bytes,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct ByBytes;

impl<T> quick_cache::Weighter<[u8; 32], Entry<T>> for ByBytes {
    fn weight(&self, _: &[u8; 32], entry: &Entry<T>) -> u64 {
        // A little for the entry itself, so that tiny values are not free.
        u64::from(entry.bytes) + 64
    }
}

/// Decoded values of one tree by store key, bounded by the bytes of their opened form.
pub(crate) struct Opened<T> {
    tree: Cached,
    epochs: Arc<Epochs>,
    entries: quick_cache::sync::Cache<[u8; 32], Entry<T>, ByBytes>,
}

impl<T> std::fmt::Debug for Opened<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened").field("tree", &self.tree).finish()
    }
}

impl<T> Opened<T> {
    /// A cache of `tree` holding about `max_bytes` of opened values.
    pub(crate) fn new(tree: Cached, epochs: Arc<Epochs>, max_bytes: u64) -> Opened<T> {
        Opened {
            tree,
            epochs,
            entries: quick_cache::sync::Cache::with_weighter(
                (max_bytes / 512) as usize,
                max_bytes,
                ByBytes,
            ),
        }
    }

    /// The value under `key`: from the cache while no write to its tree has been applied since
    /// it was read, otherwise from `read` (which opens and decodes it, and says how many bytes
    /// it opened). Absent values are not cached.
    pub(crate) fn get(
        &self,
        key: &[u8; 32],
        read: impl FnOnce() -> Result<Option<(T, usize)>, AppError>,
    ) -> Result<Option<Arc<T>>, AppError> {
        let epoch = self.epochs.current(self.tree);
        if let Some(entry) = self.entries.get(key)
            && entry.epoch == epoch
        {
            return Ok(Some(entry.value));
        }
        let Some((value, bytes)) = read()? else {
            return Ok(None);
        };
        let value = Arc::new(value);
        self.entries.insert(
            *key,
            Entry {
                epoch,
                value: value.clone(),
                bytes: u32::try_from(bytes).unwrap_or(u32::MAX),
            },
        );
        Ok(Some(value))
    }
}

/// Values kept in an [`InWriter`] cache at most; beyond this it starts again empty.
const IN_WRITER_ENTRIES: usize = 1024;

/// Decoded values of one tree by name, for checks that run in the store's writer thread (see
/// the module docs). The mutex is never contended: only the writer thread takes it.
pub(crate) struct InWriter<T: 'static> {
    table: &'static Table<T>,
    entries: Mutex<HashMap<String, Arc<T>>>,
}

impl<T> std::fmt::Debug for InWriter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InWriter")
            .field("table", self.table)
            .finish()
    }
}

impl<T: DeserializeOwned> InWriter<T> {
    /// A cache of the values of `table`, decoded by it.
    pub(crate) fn new(table: &'static Table<T>) -> InWriter<T> {
        InWriter {
            table,
            entries: Mutex::default(),
        }
    }

    fn entries(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Arc<T>>>, AppError> {
        self.entries
            .lock()
            .map_err(|_| AppError::broken("writer cache poisoned"))
    }

    /// The value named `name` (stored under `key`) as `tx` sees it.
    pub(crate) fn get(
        &self,
        tx: &mut Tx<'_>,
        name: &str,
        key: impl FnOnce() -> [u8; 32],
    ) -> Result<Option<Arc<T>>, AppError> {
        // A job that wrote the tree itself reads through the transaction (the cache is emptied
        // only when the job ends).
        if !tx.wrote(self.table.tree())
            && let Some(value) = self.entries()?.get(name)
        {
            return Ok(Some(value.clone()));
        }
        let key = key();
        let Some(value) = tx.read(self.table, &key)? else {
            return Ok(None);
        };
        let value = Arc::new(value);
        if !tx.staged(self.table.tree(), &key) {
            let mut entries = self.entries()?;
            if entries.len() >= IN_WRITER_ENTRIES {
                entries.clear();
            }
            entries.insert(name.to_owned(), value.clone());
        }
        Ok(Some(value))
    }

    /// Empties the cache if the current job of `tx` wrote to its tree. Runs in the writer, at
    /// the end of every successful job.
    pub(crate) fn forget_written(&self, tx: &Tx<'_>) -> Result<(), AppError> {
        if tx.wrote(self.table.tree()) {
            self.entries()?.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::crypto::buckets::StoreCipher;
    use crate::store::{Store, Writer};

    fn store(dir: &std::path::Path) -> Store {
        let cipher = StoreCipher::generate().unwrap();
        Store::open(dir, std::sync::Arc::new(cipher), 4 << 20).unwrap()
    }

    fn read(store: &Store, key: &[u8; 32]) -> Result<Option<(String, usize)>, AppError> {
        Ok(store.get(Tree::Records, key)?.map(|bytes| {
            let len = bytes.len();
            (String::from_utf8(bytes).unwrap(), len)
        }))
    }

    /// Writes `value` under `key` the way `OpenVault::write` does.
    async fn put(writer: &Writer, epochs: &Arc<Epochs>, key: [u8; 32], value: &'static str) {
        let epochs = epochs.clone();
        let (_, applied) = writer
            .write(move |tx| {
                tx.insert(Tree::Records, &key, value.as_bytes())?;
                Ok::<_, AppError>(((), Applied::of(tx, epochs)))
            })
            .await
            .map_err(|_| ())
            .unwrap();
        drop(applied);
    }

    #[tokio::test]
    async fn an_applied_write_retires_what_was_cached_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let writer = Writer::spawn(store.clone()).unwrap();
        let epochs = Arc::new(Epochs::default());
        let cache = Opened::<String>::new(Cached::Records, epochs.clone(), 1 << 20);
        let key = [7u8; 32];
        put(&writer, &epochs, key, "one").await;
        let first = cache.get(&key, || read(&store, &key)).unwrap().unwrap();
        assert_eq!(*first, "one");
        // While nothing is written, the cache answers without reading.
        let cached = cache.get(&key, || panic!("read again")).unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &cached));
        put(&writer, &epochs, key, "two").await;
        let after = cache.get(&key, || read(&store, &key)).unwrap().unwrap();
        assert_eq!(*after, "two");
    }

    #[tokio::test]
    async fn a_value_read_before_a_write_was_applied_is_not_used_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let writer = Writer::spawn(store.clone()).unwrap();
        let epochs = Arc::new(Epochs::default());
        let cache = Opened::<String>::new(Cached::Records, epochs.clone(), 1 << 20);
        let key = [7u8; 32];
        put(&writer, &epochs, key, "old").await;
        // A reader reads the old value, and a write is applied before it fills the cache.
        let filled = cache
            .get(&key, || {
                let old = read(&store, &key);
                std::thread::scope(|s| {
                    s.spawn(|| {
                        tokio::runtime::Builder::new_current_thread()
                            .build()
                            .unwrap()
                            .block_on(put(&writer, &epochs, key, "new"))
                    });
                });
                old
            })
            .unwrap()
            .unwrap();
        assert_eq!(*filled, "old", "the reader answers what it read");
        let next = cache.get(&key, || read(&store, &key)).unwrap().unwrap();
        assert_eq!(*next, "new", "but what it cached is not used any more");
    }

    #[tokio::test]
    async fn the_writer_cache_sees_staged_writes_and_forgets_written_trees() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let writer = Writer::spawn(store.clone()).unwrap();
        const TEXTS: Table<String> = Table::new(Tree::Records, "text");
        let cache = Arc::new(InWriter::new(&TEXTS));
        let key = [9u8; 32];
        let job = |value: Option<&'static str>| {
            let cache = cache.clone();
            writer.write(move |tx| {
                if let Some(value) = value {
                    tx.write(&TEXTS, &key, &value.to_owned())?;
                }
                let seen = cache.get(tx, "k", || key)?;
                cache.forget_written(tx)?;
                Ok::<_, AppError>(seen.map(|s| (*s).clone()))
            })
        };
        let unwrap = |r: Result<Option<String>, _>| r.map_err(|_| ()).unwrap();
        // A job that writes reads its own write; the next one reads it too.
        assert_eq!(unwrap(job(Some("a")).await).as_deref(), Some("a"));
        assert_eq!(unwrap(job(None).await).as_deref(), Some("a"));
        assert_eq!(unwrap(job(Some("b")).await).as_deref(), Some("b"));
        assert_eq!(unwrap(job(None).await).as_deref(), Some("b"));
    }
}
