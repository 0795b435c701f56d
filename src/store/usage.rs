//! What the store holds per logical table, and the free space beside it: for the owner's view
//! of what uses the disk.
//!
//! sled keeps every table in one tree of one log, so it cannot say how much of its files each
//! table takes. The walk here counts each table's live keys and sealed value bytes (what a
//! compacted store would hold); the files' own size ([`Store::size_on_disk`]) is larger by
//! sled's space amplification, which the owner's view reports beside it.

use std::ops::Bound;

use super::{Store, StoreError, Tree};

/// One table's live contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeUsage {
    pub tree: Tree,
    /// Values it holds.
    pub count: u64,
    /// Bytes of keys and sealed values.
    pub bytes: u64,
}

impl Store {
    /// Every table's live contents, in [`Tree::ALL`] order. Walks the whole store without opening
    /// a value: linear in its size, so callers run it off the async runtime.
    pub fn usage(&self) -> Result<Vec<TreeUsage>, StoreError> {
        let mut usage: Vec<TreeUsage> = Tree::ALL
            .iter()
            .map(|&tree| TreeUsage {
                tree,
                count: 0,
                bytes: 0,
            })
            .collect();
        for tree in &mut usage {
            let (start, end) = (vec![tree.tree.prefix()], vec![tree.tree.prefix() + 1]);
            for item in self
                .tree
                .range((Bound::Included(start), Bound::Excluded(end)))
            {
                let (key, value) = item?;
                tree.count += 1;
                tree.bytes += (key.len() + value.len()) as u64;
            }
        }
        Ok(usage)
    }

    /// Free space on the store's file system, if it can be read.
    pub fn disk_free(&self) -> Option<u64> {
        fs2::available_space(&*self.dir).ok()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::store::Tree;
    use crate::store::store_for_tests as store;

    #[test]
    fn usage_counts_each_tables_live_values() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store
            .transact_offline(|tx| {
                tx.insert(Tree::Records, b"a", &[0u8; 100])?;
                tx.insert(Tree::Records, b"b", &[0u8; 100])?;
                tx.insert(Tree::Audit, &1u64.to_be_bytes(), b"x")?;
                Ok::<_, crate::store::StoreError>(())
            })
            .unwrap();
        store
            .transact_offline(|tx| {
                tx.remove(Tree::Records, b"b")?;
                Ok::<_, crate::store::StoreError>(())
            })
            .unwrap();
        let usage = store.usage().unwrap();
        let of = |tree| usage.iter().find(|u| u.tree == tree).copied().unwrap();
        assert_eq!(of(Tree::Records).count, 1);
        // The key with its prefix, and the value sealed (nonce and tag added).
        assert!(of(Tree::Records).bytes > 100 + 2);
        assert_eq!(of(Tree::Audit).count, 1);
        assert_eq!(of(Tree::Jtis).count, 0);
        assert!(store.disk_free().is_some());
    }
}
