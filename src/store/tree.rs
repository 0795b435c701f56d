//! The logical tables of the store and the reads of them: every value opened under the
//! associated data that names its tree and key.

use std::ops::Bound;

use super::{Store, StoreError};

/// The logical tables of the vault. The name is part of every value's associated data and the
/// prefix part of every sled key: both frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tree {
    /// The owner's records, keyed by a keyed hash of the record path.
    Records,
    /// The audit log, keyed by big-endian sequence number.
    Audit,
    /// Small singletons (the audit chain head, the current terms version).
    Meta,
    /// Published terms versions, keyed by big-endian version number.
    Terms,
    /// The vault's token-signing keys, keyed by key id (a public thumbprint).
    SigningKeys,
    /// Registration invitations, keyed by a keyed hash of their id.
    Invitations,
    /// Registered brands, keyed by a keyed hash of their client id.
    Brands,
    /// Agreements and their receipts, keyed by a keyed hash of their id.
    Agreements,
    /// Live access tokens and spent client assertions until they expire, keyed by a keyed
    /// hash of their `jti`.
    Jtis,
    /// Data grants, keyed by a keyed hash of their id.
    Grants,
    /// Refresh tokens, keyed by a keyed hash of the token.
    RefreshTokens,
    /// The person's intents, keyed by a keyed hash of their id.
    Intents,
    /// Brands' offers, keyed by a keyed hash of their id.
    Offers,
    /// Brands' subscriptions, keyed by a keyed hash of the client id.
    Subscriptions,
    /// Every event for a brand: 16 bytes of a keyed hash of the client id, then the big-endian
    /// event number, so one brand's events are contiguous and in order.
    Events,
    /// Webhook deliveries still to make, keyed by big-endian event number.
    Outbox,
    /// The person's AI assistants (MCP clients): registrations, approvals and their refresh
    /// tokens, keyed by a keyed hash of the client id.
    Agents,
    /// The person's assistants' proposals to accept offers, keyed by a keyed hash of their id.
    Proposals,
}

impl Tree {
    pub fn name(self) -> &'static str {
        match self {
            Tree::Records => "records",
            Tree::Audit => "audit",
            Tree::Meta => "meta",
            Tree::Terms => "terms",
            Tree::SigningKeys => "signing_keys",
            Tree::Invitations => "invitations",
            Tree::Brands => "brands",
            Tree::Agreements => "agreements",
            Tree::Jtis => "jtis",
            Tree::Grants => "grants",
            Tree::RefreshTokens => "refresh_tokens",
            Tree::Intents => "intents",
            Tree::Offers => "offers",
            Tree::Subscriptions => "subscriptions",
            Tree::Events => "events",
            Tree::Outbox => "outbox",
            Tree::Agents => "agents",
            Tree::Proposals => "proposals",
        }
    }

    pub(super) fn prefix(self) -> u8 {
        match self {
            Tree::Records => 1,
            Tree::Audit => 2,
            Tree::Meta => 3,
            Tree::Terms => 4,
            Tree::SigningKeys => 5,
            Tree::Invitations => 6,
            Tree::Brands => 7,
            Tree::Agreements => 8,
            Tree::Jtis => 9,
            Tree::Grants => 10,
            Tree::RefreshTokens => 11,
            Tree::Intents => 12,
            Tree::Offers => 13,
            Tree::Subscriptions => 14,
            Tree::Events => 15,
            Tree::Outbox => 16,
            // 21, not 17: another feature added at the same time may take the next number.
            Tree::Agents => 21,
            // 22: the numbers after 16 may be taken by other features added at the same time.
            Tree::Proposals => 22,
        }
    }

    /// Every tree, for walks over the whole store.
    pub const ALL: [Tree; 18] = [
        Tree::Records,
        Tree::Audit,
        Tree::Meta,
        Tree::Terms,
        Tree::SigningKeys,
        Tree::Invitations,
        Tree::Brands,
        Tree::Agreements,
        Tree::Jtis,
        Tree::Grants,
        Tree::RefreshTokens,
        Tree::Intents,
        Tree::Offers,
        Tree::Subscriptions,
        Tree::Events,
        Tree::Outbox,
        Tree::Agents,
        Tree::Proposals,
    ];

    /// The tree and key of a full sled key (as [`Store::raw_entries`] yields it and backups
    /// carry it). Public so that readers of raw entries outside a store, such as the backup
    /// fuzz target, find a value's place as the store does.
    pub fn split(full_key: &[u8]) -> Option<(Tree, &[u8])> {
        let (&prefix, key) = full_key.split_first()?;
        Tree::ALL
            .into_iter()
            .find(|t| t.prefix() == prefix)
            .map(|t| (t, key))
    }

    pub(super) fn key(self, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(1 + key.len());
        full.push(self.prefix());
        full.extend_from_slice(key);
        full
    }
}

/// The associated data a value at `key` in `tree` is sealed with: the tree's name, a zero byte,
/// the key. Frozen. Public for readers of raw entries outside a store (the backup fuzz target).
pub fn aad(tree: Tree, key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(tree.name().len() + 1 + key.len());
    aad.extend_from_slice(tree.name().as_bytes());
    aad.push(0);
    aad.extend_from_slice(key);
    aad
}

/// A key and its opened value.
pub type Entry = (Vec<u8>, Vec<u8>);

impl Store {
    /// Reads and opens one value.
    pub fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let full = tree.key(key);
        self.readable(&full)?;
        match self.tree.get(full)? {
            Some(sealed) => Ok(Some(self.open_value(tree, key, &sealed)?)),
            None => Ok(None),
        }
    }

    pub(super) fn open_value(
        &self,
        tree: Tree,
        key: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        self.cipher
            .open(&aad(tree, key), sealed)
            .map_err(|_| StoreError::Tampered { tree: tree.name() })
    }

    fn opened(
        &self,
        tree: Tree,
        item: sled::Result<(sled::IVec, sled::IVec)>,
    ) -> Result<Entry, StoreError> {
        let (full, sealed) = item?;
        self.readable(&full)?;
        let key = full.get(1..).unwrap_or_default();
        let value = self.open_value(tree, key, &sealed)?;
        Ok((key.to_vec(), value))
    }

    fn bounds(tree: Tree) -> (Vec<u8>, Vec<u8>) {
        (vec![tree.prefix()], vec![tree.prefix() + 1])
    }

    /// Iterates over a tree in key order, opening every value, starting after `after` (or at the
    /// start). A value that fails to open is an error item, never skipped.
    pub fn iter_after(
        &self,
        tree: Tree,
        after: Option<&[u8]>,
    ) -> impl Iterator<Item = Result<Entry, StoreError>> + '_ {
        let (start, end) = Self::bounds(tree);
        let lower = match after {
            Some(key) => Bound::Excluded(tree.key(key)),
            None => Bound::Included(start),
        };
        self.tree
            .range((lower, Bound::Excluded(end)))
            .map(move |item| self.opened(tree, item))
    }

    /// Iterates over a whole tree in key order.
    pub fn iter(&self, tree: Tree) -> impl Iterator<Item = Result<Entry, StoreError>> + '_ {
        self.iter_after(tree, None)
    }

    /// Iterates backwards from just before `before` (or from the end).
    pub fn iter_rev_before(
        &self,
        tree: Tree,
        before: Option<&[u8]>,
    ) -> impl Iterator<Item = Result<Entry, StoreError>> + '_ {
        let (start, end) = Self::bounds(tree);
        let upper = match before {
            Some(key) => tree.key(key),
            None => end,
        };
        self.tree
            .range(start..upper)
            .rev()
            .map(move |item| self.opened(tree, item))
    }

    /// How many values a tree holds (walks its keys, opens nothing).
    pub fn count(&self, tree: Tree) -> Result<u64, StoreError> {
        let (start, end) = Self::bounds(tree);
        let mut count = 0;
        for key in self.tree.range(start..end).keys() {
            key?;
            count += 1;
        }
        Ok(count)
    }

    /// Raw keys of a tree, in order: for verification walks that must see unopenable values.
    pub fn raw_keys(&self, tree: Tree) -> Result<Vec<Vec<u8>>, StoreError> {
        let (start, end) = Self::bounds(tree);
        self.tree
            .range(start..end)
            .keys()
            .map(|k| Ok(k?.get(1..).unwrap_or_default().to_vec()))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::store_for_tests as store;

    #[test]
    fn values_are_sealed_on_disk_and_bound_to_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store
            .transact_offline(|tx| tx.insert(Tree::Records, b"k1", b"plain value"))
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
    fn trees_are_separate_and_iterate_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store
            .transact_offline(|tx| {
                for i in 0u8..5 {
                    tx.insert(Tree::Audit, &[i], &[i])?;
                    tx.insert(Tree::Records, &[i], &[i + 10])?;
                }
                tx.insert(Tree::Meta, b"head", b"h")
            })
            .map_err(|_| ())
            .unwrap();
        let audit: Vec<_> = store.iter(Tree::Audit).map(|e| e.unwrap().1[0]).collect();
        assert_eq!(audit, vec![0, 1, 2, 3, 4]);
        let after: Vec<_> = store
            .iter_after(Tree::Records, Some(&[2]))
            .map(|e| e.unwrap().0[0])
            .collect();
        assert_eq!(after, vec![3, 4]);
        let rev: Vec<_> = store
            .iter_rev_before(Tree::Audit, Some(&[3]))
            .map(|e| e.unwrap().0[0])
            .collect();
        assert_eq!(rev, vec![2, 1, 0]);
        let newest: Vec<_> = store
            .iter_rev_before(Tree::Audit, None)
            .take(1)
            .map(|e| e.unwrap().0[0])
            .collect();
        assert_eq!(newest, vec![4]);
        assert_eq!(store.raw_keys(Tree::Meta).unwrap(), vec![b"head".to_vec()]);
    }
}
