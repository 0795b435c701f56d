//! The embedded store: the only module that imports `sled`.
//!
//! Every value goes through [`crate::crypto::Sealer`] on its way in and out, with associated data
//! `tree name || 0x00 || key`, so nothing reaches sled's files in plaintext and a value copied to
//! another key or tree fails to open. Keys are chosen by callers to be opaque (random ids, counters
//! or keyed hashes), never personal data.
//!
//! Writes that belong together (a change and its audit entry) commit in one multi-tree transaction.
//! Durability is separate from commit: [`GroupCommit::sync`] returns once everything committed before
//! the call is on disk, and concurrent callers share one `fsync` instead of paying one each.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::crypto::{CryptoError, Sealer};

/// The logical tables of the vault. The name is part of every value's associated data: frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tree {
    /// The owner's records, keyed by a keyed hash of the record path.
    Records,
    /// The audit log, keyed by big-endian sequence number.
    Audit,
    /// Small singletons (the audit chain head, format markers).
    Meta,
}

impl Tree {
    pub const ALL: [Tree; 3] = [Tree::Records, Tree::Audit, Tree::Meta];

    pub fn name(self) -> &'static str {
        match self {
            Tree::Records => "records",
            Tree::Audit => "audit",
            Tree::Meta => "meta",
        }
    }

    fn index(self) -> usize {
        match self {
            Tree::Records => 0,
            Tree::Audit => 1,
            Tree::Meta => 2,
        }
    }
}

/// Store failures. `Crypto` means a value did not open: damaged or tampered with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("a stored value is damaged or was tampered with in tree {tree}")]
    Tampered { tree: &'static str },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

/// Cache size handed to sled. Its default (1 GiB) is far more than one person's vault needs.
pub const DEFAULT_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// An open, sealed store.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    trees: Arc<[sled::Tree; 3]>,
    sealer: Arc<Sealer>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn aad(tree: Tree, key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(tree.name().len() + 1 + key.len());
    aad.extend_from_slice(tree.name().as_bytes());
    aad.push(0);
    aad.extend_from_slice(key);
    aad
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path, sealer: Sealer, cache_bytes: u64) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let open = |t: Tree| db.open_tree(t.name());
        let trees = [open(Tree::Records)?, open(Tree::Audit)?, open(Tree::Meta)?];
        Ok(Store {
            db,
            trees: Arc::new(trees),
            sealer: Arc::new(sealer),
        })
    }

    fn tree(&self, tree: Tree) -> &sled::Tree {
        &self.trees[tree.index()]
    }

    /// Reads and opens one value.
    pub fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.tree(tree).get(key)? {
            Some(sealed) => Ok(Some(self.open_value(tree, key, &sealed)?)),
            None => Ok(None),
        }
    }

    fn open_value(&self, tree: Tree, key: &[u8], sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.sealer
            .open(&aad(tree, key), sealed)
            .map_err(|_| StoreError::Tampered { tree: tree.name() })
    }

    /// Iterates over a tree in key order, opening every value; a value that fails to open is
    /// reported as an error item rather than skipped.
    pub fn iter(
        &self,
        tree: Tree,
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + '_ {
        self.tree(tree).iter().map(move |item| {
            let (key, sealed) = item?;
            let value = self.open_value(tree, &key, &sealed)?;
            Ok((key.to_vec(), value))
        })
    }

    /// Iterates backwards from just before `before` (or from the end).
    pub fn iter_rev_before(
        &self,
        tree: Tree,
        before: Option<&[u8]>,
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + '_ {
        let range = match before {
            Some(b) => self.tree(tree).range(..b.to_vec()),
            None => self.tree(tree).iter(),
        };
        range.rev().map(move |item| {
            let (key, sealed) = item?;
            let value = self.open_value(tree, &key, &sealed)?;
            Ok((key.to_vec(), value))
        })
    }

    pub fn len(&self, tree: Tree) -> usize {
        self.tree(tree).len()
    }

    pub fn is_empty(&self, tree: Tree) -> bool {
        self.tree(tree).is_empty()
    }

    /// Runs `f` as one atomic transaction over every tree. `f` may run more than once when sled
    /// retries after a conflict, so it must not have side effects outside the transaction.
    pub fn transact<T, E>(&self, f: impl Fn(&mut Tx<'_>) -> Result<T, E>) -> Result<T, TxError<E>> {
        use sled::Transactional;
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let trees: Vec<&sled::Tree> = self.trees.iter().collect();
        let result = trees.as_slice().transaction(|views| {
            let mut tx = Tx {
                views,
                sealer: &self.sealer,
                failure: None,
            };
            match f(&mut tx) {
                Ok(value) => match tx.failure.take() {
                    None => Ok(value),
                    Some(e) => Err(ConflictableTransactionError::Abort(TxError::Store(e))),
                },
                Err(e) => Err(ConflictableTransactionError::Abort(TxError::Abort(e))),
            }
        });
        match result {
            Ok(value) => Ok(value),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(TxError::Store(e.into())),
        }
    }

    /// Flushes everything to disk now (blocking). Prefer [`GroupCommit::sync`] on request paths.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// The raw, still sealed bytes under a key: for tests and tools that check what is on disk.
    pub fn raw_get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree(tree).get(key)?.map(|v| v.to_vec()))
    }

    /// Writes raw bytes under a key without sealing: only for tests that simulate tampering.
    #[doc(hidden)]
    pub fn raw_insert_for_tests(
        &self,
        tree: Tree,
        key: &[u8],
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        self.tree(tree).insert(key, bytes)?;
        self.db.flush()?;
        Ok(())
    }

    /// Removes a key without any bookkeeping: only for tests that simulate tampering.
    #[doc(hidden)]
    pub fn raw_remove_for_tests(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.tree(tree).remove(key)?;
        self.db.flush()?;
        Ok(())
    }

    /// Raw keys of a tree, in order: for tests and tools.
    pub fn raw_keys(&self, tree: Tree) -> Result<Vec<Vec<u8>>, StoreError> {
        self.tree(tree)
            .iter()
            .keys()
            .map(|k| Ok(k?.to_vec()))
            .collect()
    }
}

/// Why a transaction did not commit: the closure's own error, or a store failure.
#[derive(Debug)]
pub enum TxError<E> {
    Abort(E),
    Store(StoreError),
}

/// A transaction in progress over every tree; values are sealed and opened transparently.
pub struct Tx<'a> {
    views: &'a Vec<sled::transaction::TransactionalTree>,
    sealer: &'a Sealer,
    failure: Option<StoreError>,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx(..)")
    }
}

impl Tx<'_> {
    fn view(&self, tree: Tree) -> &sled::transaction::TransactionalTree {
        &self.views[tree.index()]
    }

    /// Reads and opens a value inside the transaction.
    pub fn get(&mut self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let sealed = self
            .view(tree)
            .get(key)
            .map_err(|e| StoreError::Io(format!("{e:?}")))?;
        match sealed {
            None => Ok(None),
            Some(sealed) => self
                .sealer
                .open(&aad(tree, key), &sealed)
                .map(Some)
                .map_err(|_| StoreError::Tampered { tree: tree.name() }),
        }
    }

    /// Seals and writes a value. A failure is remembered and aborts the transaction at its end.
    pub fn insert(&mut self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let sealed = self.sealer.seal(&aad(tree, key), value)?;
        self.view(tree)
            .insert(key, sealed)
            .map_err(|e| StoreError::Io(format!("{e:?}")))?;
        Ok(())
    }

    pub fn remove(&mut self, tree: Tree, key: &[u8]) -> Result<bool, StoreError> {
        let old = self
            .view(tree)
            .remove(key)
            .map_err(|e| StoreError::Io(format!("{e:?}")))?;
        Ok(old.is_some())
    }

    /// Records a failure so the transaction aborts even if the closure returns `Ok`.
    pub fn fail(&mut self, e: StoreError) {
        self.failure.get_or_insert(e);
    }
}

/// Groups concurrent durability requests into shared flushes.
///
/// A caller commits its transaction, then awaits [`GroupCommit::sync`]. A background task flushes
/// whenever requests are pending; one flush covers every request made before it started, so 32
/// concurrent writers cost a handful of `fsync`s, not 32.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    requests: mpsc::UnboundedSender<()>,
    next_ticket: Arc<std::sync::atomic::AtomicU64>,
    flushed: watch::Receiver<FlushState>,
    flushes: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Debug, Clone, Copy, Default)]
struct FlushState {
    /// Every ticket up to this one is durable.
    through: u64,
    /// Every ticket up to this one was covered by a flush that failed (and by no later success).
    failed_through: u64,
}

impl GroupCommit {
    /// Starts the flusher task on the current tokio runtime. It ends when every handle is dropped.
    pub fn spawn(store: Store) -> GroupCommit {
        let (requests, mut pending) = mpsc::unbounded_channel::<()>();
        let (done, flushed) = watch::channel(FlushState::default());
        let next_ticket = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let issued = next_ticket.clone();
        let flushes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = flushes.clone();
        tokio::spawn(async move {
            while pending.recv().await.is_some() {
                while pending.try_recv().is_ok() {}
                // Every ticket issued so far belongs to a transaction that has already committed,
                // so this flush makes all of them durable.
                let target = issued.load(std::sync::atomic::Ordering::SeqCst);
                let db = store.db.clone();
                let result = tokio::task::spawn_blocking(move || db.flush()).await;
                let ok = matches!(result, Ok(Ok(_)));
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if !ok {
                    tracing::error!("store flush failed; writes are not acknowledged");
                }
                done.send_modify(|state| {
                    if ok {
                        state.through = state.through.max(target);
                    } else {
                        state.failed_through = state.failed_through.max(target);
                    }
                });
            }
        });
        GroupCommit {
            requests,
            next_ticket,
            flushed,
            flushes,
        }
    }

    /// How many flushes have run so far (each may have covered many writes).
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Returns once everything committed before this call is durable on disk.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let ticket = self
            .next_ticket
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        self.requests
            .send(())
            .map_err(|_| StoreError::Io("the flusher has stopped".into()))?;
        let mut rx = self.flushed.clone();
        let state = rx
            .wait_for(|s| s.through >= ticket || s.failed_through >= ticket)
            .await
            .map_err(|_| StoreError::Io("the flusher has stopped".into()))?;
        if state.through >= ticket {
            Ok(())
        } else {
            Err(StoreError::Io("flush to disk failed".into()))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;

    fn store(dir: &Path) -> Store {
        Store::open(dir, Sealer::new(&SecretKey::generate().unwrap()), 4 << 20).unwrap()
    }

    #[test]
    fn values_are_sealed_on_disk_and_bound_to_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store
            .transact(|tx| tx.insert(Tree::Records, b"k1", b"plain value"))
            .map_err(|_| ())
            .unwrap();
        assert_eq!(
            store.get(Tree::Records, b"k1").unwrap().unwrap(),
            b"plain value"
        );
        let raw = store.raw_get(Tree::Records, b"k1").unwrap().unwrap();
        assert!(!raw.windows(5).any(|w| w == b"plain"));
        // The same sealed bytes under another key, or in another tree, do not open.
        store
            .raw_insert_for_tests(Tree::Records, b"k2", &raw)
            .unwrap();
        assert!(matches!(
            store.get(Tree::Records, b"k2"),
            Err(StoreError::Tampered { .. })
        ));
        store.raw_insert_for_tests(Tree::Meta, b"k1", &raw).unwrap();
        assert!(matches!(
            store.get(Tree::Meta, b"k1"),
            Err(StoreError::Tampered { .. })
        ));
    }

    #[test]
    fn an_aborted_transaction_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let result: Result<(), TxError<&str>> = store.transact(|tx| {
            tx.insert(Tree::Records, b"a", b"1").unwrap();
            tx.insert(Tree::Audit, b"b", b"2").unwrap();
            Err("changed my mind")
        });
        assert!(matches!(result, Err(TxError::Abort("changed my mind"))));
        assert!(store.get(Tree::Records, b"a").unwrap().is_none());
        assert!(store.get(Tree::Audit, b"b").unwrap().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_syncs_share_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let group = GroupCommit::spawn(store.clone());
        let mut tasks = vec![];
        for i in 0u32..64 {
            let store = store.clone();
            let group = group.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .transact(|tx| tx.insert(Tree::Records, &i.to_be_bytes(), b"v"))
                    .map_err(|_| ())
                    .unwrap();
                group.sync().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let flushes = group.flush_count();
        assert!(flushes >= 1);
        assert!(
            flushes < 64,
            "64 writers caused {flushes} flushes: not grouped"
        );
    }
}
