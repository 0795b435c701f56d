//! Transactions: the writes of a group staged over the committed store, sealed as they are
//! staged, and applied as one atomic batch. Writer jobs and offline commands write through them.

use std::collections::{BTreeMap, BTreeSet};

use super::{Store, StoreError, Tree, aad};

/// Why a transaction did not commit: the closure's own error, or a store failure.
#[derive(Debug)]
pub enum TxError<E> {
    Abort(E),
    Store(StoreError),
}

/// A staged key and what `pending` held for it before (`None`: nothing was staged).
type Undo = (Vec<u8>, Option<Option<Vec<u8>>>);

/// Writes in progress: reads see the committed state plus the writes staged so far; values are
/// sealed as they are staged.
pub struct Tx<'a> {
    pub(super) store: &'a Store,
    /// Full sled key → sealed value, or `None` for a removal.
    pub(super) pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// What the current job overwrote in `pending`, to undo it if the job fails.
    pub(super) undo: Vec<Undo>,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx(..)")
    }
}

impl<'a> Tx<'a> {
    /// The committed store underneath (reads through it do not see staged writes).
    pub fn store(&self) -> &'a Store {
        self.store
    }

    pub(super) fn new(store: &'a Store) -> Self {
        Tx {
            store,
            pending: BTreeMap::new(),
            undo: Vec::new(),
        }
    }

    /// Starts a job: its writes can be undone until the next `begin`.
    pub(super) fn begin(&mut self) {
        self.undo.clear();
    }

    /// Undoes the current job's writes.
    pub(super) fn rollback(&mut self) {
        while let Some((key, previous)) = self.undo.pop() {
            match previous {
                Some(value) => self.pending.insert(key, value),
                None => self.pending.remove(&key),
            };
        }
    }

    fn stage(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let previous = self.pending.insert(key.clone(), value);
        self.undo.push((key, previous));
    }

    /// Applies everything staged as one atomic batch (not yet flushed).
    pub(super) fn commit(self) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (key, value) in self.pending {
            match value {
                Some(sealed) => batch.insert(key, sealed),
                None => batch.remove(key),
            }
        }
        self.store.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Reads and opens a value, seeing the writes staged so far.
    pub fn get(&mut self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.pending.get(&tree.key(key)) {
            Some(Some(sealed)) => Ok(Some(self.store.open_value(tree, key, sealed)?)),
            Some(None) => Ok(None),
            None => self.store.get(tree, key),
        }
    }

    /// Seals and stages a value.
    pub fn insert(&mut self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let sealed = self.store.cipher.seal(&aad(tree, key), value)?;
        self.stage(tree.key(key), Some(sealed));
        Ok(())
    }

    /// Seals again, under their bucket's current key, every value of `buckets` (and every version
    /// 1 value): the committed ones and those staged earlier in this group. Run inside a writer
    /// job after the cipher switched to the new keys, so that once it is durable the retiring
    /// keys can be forgotten.
    pub fn reseal_buckets(&mut self, buckets: &BTreeSet<u8>) -> Result<u64, StoreError> {
        let store = self.store;
        let staged: Vec<(Vec<u8>, Vec<u8>)> = self
            .pending
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
            .collect();
        let mut resealed = 0;
        for item in store.tree.iter() {
            let (full, sealed) = item?;
            if self.pending.contains_key(full.as_ref()) {
                continue;
            }
            if let Some(value) = store.resealed(&full, &sealed, buckets)? {
                self.stage(full.to_vec(), Some(value));
                resealed += 1;
            }
        }
        for (full, sealed) in staged {
            if let Some(value) = store.resealed(&full, &sealed, buckets)? {
                self.stage(full, Some(value));
                resealed += 1;
            }
        }
        Ok(resealed)
    }

    /// Whether the current job has staged a write (or removal) in `tree` so far.
    pub fn wrote(&self, tree: Tree) -> bool {
        self.undo
            .iter()
            .any(|(key, _)| key.first() == Some(&tree.prefix()))
    }

    /// Whether a write (or removal) of `key` in `tree` is staged in this group so far.
    pub fn staged(&self, tree: Tree, key: &[u8]) -> bool {
        self.pending.contains_key(&tree.key(key))
    }

    /// Stages a removal; returns whether there was a value.
    pub fn remove(&mut self, tree: Tree, key: &[u8]) -> Result<bool, StoreError> {
        let existed = self.get(tree, key)?.is_some();
        self.stage(tree.key(key), None);
        Ok(existed)
    }
}

impl Store {
    /// Runs `f` and commits everything it wrote atomically and durably, or nothing if it fails.
    ///
    /// For single-threaded use only (setup, offline commands): a running server writes through
    /// its [`Writer`](super::Writer), and two writers at once would race on read-check-write sequences.
    pub fn transact_offline<T, E>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, TxError<E>> {
        let mut tx = Tx::new(self);
        let value = f(&mut tx).map_err(TxError::Abort)?;
        tx.commit().map_err(TxError::Store)?;
        self.flush().map_err(TxError::Store)?;
        Ok(value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::store_for_tests as store;

    #[test]
    fn an_aborted_transaction_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let result: Result<(), TxError<&str>> = store.transact_offline(|tx| {
            tx.insert(Tree::Records, b"a", b"1").unwrap();
            tx.insert(Tree::Audit, b"b", b"2").unwrap();
            Err("changed my mind")
        });
        assert!(matches!(result, Err(TxError::Abort("changed my mind"))));
        assert!(store.get(Tree::Records, b"a").unwrap().is_none());
        assert!(store.get(Tree::Audit, b"b").unwrap().is_none());
    }
}
