//! Typed tables: which type lives in which tree, declared once, with its encoding in one place.
//!
//! A [`Table`] names a tree and the type of its values. Values are JSON (`serde_json`) inside
//! the sealed envelope, exactly as the services wrote them by hand before, so the stored bytes
//! do not change: the table only decides the encoding, and sealing stays with [`Store`] and
//! [`Tx`] (associated data `tree name || 0x00 || key`, the key as the caller gives it). A tree may
//! be read through more than one table when a reader needs only part of a value (a view whose
//! type ignores the other fields); such a view is never written, or it would drop them.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Entry, Store, StoreError, Tree, Tx};

/// A tree and the type of the values stored in it.
pub struct Table<T> {
    tree: Tree,
    /// What one value is, for error messages ("brand", "agreement").
    what: &'static str,
    value: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({}: {})", self.tree.name(), self.what)
    }
}

/// Why a typed read or write failed: the store's own failure, or a value that does not fit the
/// table's type.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A value opened (so it is the vault's own) but is not the table's type: a bug or a format
    /// the code no longer reads, never tampering.
    #[error("a stored value ({what}) in tree {tree} does not decode")]
    Decode {
        tree: &'static str,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode a value ({what}) for tree {tree}")]
    Encode {
        tree: &'static str,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl From<TableError> for StoreError {
    /// For callers whose errors are the store's (the audit chain's appends): a value that does
    /// not decode is a damaged value of its tree, and one that does not encode an I/O failure.
    fn from(e: TableError) -> StoreError {
        match e {
            TableError::Store(e) => e,
            TableError::Decode { tree, .. } => StoreError::Tampered { tree },
            TableError::Encode { source, .. } => StoreError::Io(format!("encoding: {source}")),
        }
    }
}

impl<T> Table<T> {
    /// Declares that `tree` holds values of type `T`, each one a `what`.
    pub const fn new(tree: Tree, what: &'static str) -> Table<T> {
        Table {
            tree,
            what,
            value: PhantomData,
        }
    }

    /// The tree the table lives in (for removals, counts and raw walks, which need no type).
    pub const fn tree(&self) -> Tree {
        self.tree
    }
}

impl<T: Serialize> Table<T> {
    /// The bytes a value is stored as, before sealing: its JSON.
    pub fn encode(&self, value: &T) -> Result<Vec<u8>, TableError> {
        serde_json::to_vec(value).map_err(|source| TableError::Encode {
            tree: self.tree.name(),
            what: self.what,
            source,
        })
    }
}

impl<T: DeserializeOwned> Table<T> {
    /// A value from its opened bytes.
    pub fn decode(&self, bytes: &[u8]) -> Result<T, TableError> {
        serde_json::from_slice(bytes).map_err(|source| TableError::Decode {
            tree: self.tree.name(),
            what: self.what,
            source,
        })
    }

    fn entry(&self, item: Result<Entry, StoreError>) -> Result<(Vec<u8>, T), TableError> {
        let (key, bytes) = item?;
        Ok((key, self.decode(&bytes)?))
    }
}

impl Store {
    /// Reads, opens and decodes one value of `table`.
    pub fn read<T: DeserializeOwned>(
        &self,
        table: &Table<T>,
        key: &[u8],
    ) -> Result<Option<T>, TableError> {
        self.get(table.tree, key)?
            .map(|bytes| table.decode(&bytes))
            .transpose()
    }

    /// Every value of `table` after `after` (or from the start), in key order, with its key.
    pub fn read_after<'s, T: DeserializeOwned>(
        &'s self,
        table: &'s Table<T>,
        after: Option<&[u8]>,
    ) -> impl Iterator<Item = Result<(Vec<u8>, T), TableError>> + 's {
        self.iter_after(table.tree, after)
            .map(|item| table.entry(item))
    }

    /// Every value of `table`, in key order, with its key.
    pub fn read_all<'s, T: DeserializeOwned>(
        &'s self,
        table: &'s Table<T>,
    ) -> impl Iterator<Item = Result<(Vec<u8>, T), TableError>> + 's {
        self.read_after(table, None)
    }

    /// The values of `table` backwards from just before `before` (or from the end).
    pub fn read_rev_before<'s, T: DeserializeOwned>(
        &'s self,
        table: &'s Table<T>,
        before: Option<&[u8]>,
    ) -> impl Iterator<Item = Result<(Vec<u8>, T), TableError>> + 's {
        self.iter_rev_before(table.tree, before)
            .map(|item| table.entry(item))
    }
}

impl Tx<'_> {
    /// Reads and decodes one value of `table`, seeing the writes staged so far.
    pub fn read<T: DeserializeOwned>(
        &mut self,
        table: &Table<T>,
        key: &[u8],
    ) -> Result<Option<T>, TableError> {
        self.get(table.tree, key)?
            .map(|bytes| table.decode(&bytes))
            .transpose()
    }

    /// Encodes, seals and stages one value of `table`.
    pub fn write<T: Serialize>(
        &mut self,
        table: &Table<T>,
        key: &[u8],
        value: &T,
    ) -> Result<(), TableError> {
        let bytes = table.encode(value)?;
        self.insert(table.tree, key, &bytes)?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::store_for_tests as store;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Thing {
        name: String,
        n: u32,
    }

    const THINGS: Table<Thing> = Table::new(Tree::Records, "thing");

    #[test]
    fn a_table_stores_exactly_the_json_the_services_wrote_by_hand() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let thing = Thing {
            name: "a".into(),
            n: 2,
        };
        store
            .transact_offline(|tx| tx.write(&THINGS, b"k", &thing))
            .map_err(|_| ())
            .unwrap();
        // The opened bytes are the plain JSON, sealed under the same tree and key as before.
        let opened = store.get(Tree::Records, b"k").unwrap().unwrap();
        assert_eq!(opened, serde_json::to_vec(&thing).unwrap());
        let raw = store.raw_get(Tree::Records, b"k").unwrap().unwrap();
        assert!(store.check_raw(&Tree::Records.key(b"k"), &raw).is_ok());
        assert_eq!(store.read(&THINGS, b"k").unwrap(), Some(thing));
        let all: Vec<_> = store.read_all(&THINGS).map(|e| e.unwrap().0).collect();
        assert_eq!(all, vec![b"k".to_vec()]);
    }

    #[test]
    fn a_value_of_another_type_is_a_decode_error_naming_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store
            .transact_offline(|tx| tx.insert(Tree::Records, b"k", b"[1,2]"))
            .map_err(|_| ())
            .unwrap();
        let err = store.read(&THINGS, b"k").unwrap_err();
        assert!(matches!(
            err,
            TableError::Decode {
                tree: "records",
                what: "thing",
                ..
            }
        ));
    }
}
