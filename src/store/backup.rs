//! Raw access to the sealed entries, for what copies the store as it is on disk: backups and
//! restores, moving a vault to new keys, and key rotations that seal values again.

use std::collections::BTreeSet;
use std::ops::Bound;

use crate::crypto::buckets::{StoreCipher, bucket_of};

use super::{Entry, Store, StoreError, Tree, aad};

/// Values resealed per batch by [`Store::reseal_offline`].
const RESEAL_BATCH: usize = 4096;

impl Store {
    /// The raw, still sealed bytes under a key: for tests and tools that check what is on disk.
    pub fn raw_get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let full = tree.key(key);
        self.readable(&full)?;
        Ok(self.tree.get(full)?.map(|v| v.to_vec()))
    }

    /// Writes raw bytes under a key without sealing: only for tests that simulate tampering.
    #[doc(hidden)]
    pub fn raw_insert_for_tests(
        &self,
        tree: Tree,
        key: &[u8],
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        self.tree.insert(tree.key(key), bytes)?;
        self.db.flush()?;
        Ok(())
    }

    /// Removes a key without any bookkeeping: only for tests that simulate tampering.
    #[doc(hidden)]
    pub fn raw_remove_for_tests(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.tree.remove(tree.key(key))?;
        self.db.flush()?;
        Ok(())
    }

    /// Every raw entry of the store (all trees, full keys with their tree prefix, values still
    /// sealed), in key order: what a backup copies. Only consistent when no write runs meanwhile,
    /// that is inside a writer job or offline.
    pub fn raw_entries(&self) -> impl Iterator<Item = Result<Entry, StoreError>> + '_ {
        self.tree.iter().map(|item| {
            let (k, v) = item?;
            self.readable(&k)?;
            Ok((k.to_vec(), v.to_vec()))
        })
    }

    /// Checks that a raw entry (as [`Store::raw_entries`] yields it) opens under this store's keys.
    pub fn check_raw(&self, full_key: &[u8], sealed: &[u8]) -> Result<(), StoreError> {
        let (tree, key) = Tree::split(full_key).ok_or(StoreError::Tampered { tree: "unknown" })?;
        self.open_value(tree, key, sealed).map(|_| ())
    }

    /// Opens a raw entry: its full key and plaintext (for copying into another store).
    pub fn opened_raw(&self, full_key: &[u8], sealed: &[u8]) -> Result<Entry, StoreError> {
        let (tree, key) = Tree::split(full_key).ok_or(StoreError::Tampered { tree: "unknown" })?;
        Ok((full_key.to_vec(), self.open_value(tree, key, sealed)?))
    }

    /// Seals and writes entries opened by [`Store::opened_raw`] in one batch (not flushed): for
    /// copying into a new, empty store.
    pub fn import_plain(&self, entries: Vec<Entry>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (full_key, plain) in entries {
            let (tree, key) =
                Tree::split(&full_key).ok_or(StoreError::Tampered { tree: "unknown" })?;
            let sealed = self.cipher.seal(&aad(tree, key), &plain)?;
            batch.insert(full_key, sealed);
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Writes raw entries as they are (already sealed) in one batch (not flushed): for restore
    /// into a new, empty store.
    pub fn import_raw(&self, entries: Vec<Entry>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (key, value) in entries {
            batch.insert(key, value);
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// The bucket whose key seals the value at `key` in `tree` (see [`crate::crypto::buckets`]).
    pub fn bucket(tree: Tree, key: &[u8]) -> u8 {
        bucket_of(&aad(tree, key))
    }

    /// The cipher the store seals with (to switch bucket keys during a rotation).
    pub fn cipher(&self) -> &StoreCipher {
        &self.cipher
    }

    /// Seals again every value that needs it (version 1 values, and those of `buckets`) in
    /// batches, flushing each: for offline use only (start-up, restore), when no writer runs.
    pub fn reseal_offline(&self, buckets: &BTreeSet<u8>) -> Result<u64, StoreError> {
        let mut resealed = 0;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let range = match &after {
                Some(key) => self
                    .tree
                    .range::<&[u8], _>((Bound::Excluded(key.as_slice()), Bound::Unbounded)),
                None => self.tree.range::<&[u8], _>(..),
            };
            let mut batch = sled::Batch::default();
            let mut count = 0;
            for item in range.take(RESEAL_BATCH) {
                let (full, sealed) = item?;
                after = Some(full.to_vec());
                if let Some(value) = self.resealed(&full, &sealed, buckets)? {
                    batch.insert(full.to_vec(), value);
                    resealed += 1;
                }
                count += 1;
            }
            self.tree.apply_batch(batch)?;
            self.db.flush()?;
            if count < RESEAL_BATCH {
                return Ok(resealed);
            }
        }
    }

    /// The value at a full key sealed again under its bucket's current key, if it needs it.
    pub(super) fn resealed(
        &self,
        full_key: &[u8],
        sealed: &[u8],
        buckets: &BTreeSet<u8>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let (tree, key) = Tree::split(full_key).ok_or(StoreError::Tampered { tree: "unknown" })?;
        let aad = aad(tree, key);
        if !self.cipher.needs_reseal(&aad, sealed, buckets) {
            return Ok(None);
        }
        let Ok(plain) = self.cipher.open(&aad, sealed) else {
            // Damaged already: it opened under no key before the rotation and will not after
            // it. Left as it is, so that one bad value cannot stop every deletion (or a start).
            tracing::warn!(
                tree = tree.name(),
                "a value that does not open was left out of a key rotation"
            );
            return Ok(None);
        };
        let plain = zeroize::Zeroizing::new(plain);
        Ok(Some(self.cipher.seal(&aad, &plain)?))
    }
}
