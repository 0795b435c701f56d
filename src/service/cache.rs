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
//! brand's data read) do not use these caches: they run in the writer and read through its
//! transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::AppError;
use crate::store::{Tree, Tx};

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
