//! The embedded store: the only module that imports `sled`.
//!
//! Every value goes through [`crate::crypto::Sealer`] on its way in and out, with associated data
//! `tree name || 0x00 || key`, so nothing reaches sled's files in plaintext and a value copied to
//! another key or tree fails to open. Keys are chosen by callers to be opaque (random ids, counters
//! or keyed hashes), never personal data.
//!
//! The logical tables ([`Tree`]) share one sled tree under a one-byte prefix, so that a change and
//! its audit entry commit together with one atomic `apply_batch` — much cheaper than sled's
//! multi-tree transactions.
//!
//! All writes of a running server go through one [`Writer`] thread: callers send it a closure, it
//! runs the closures waiting in line one after the other (each sees the writes of those before
//! it, so read-check-write sequences like `If-Match` are race-free), applies the whole group as one
//! batch, flushes once, and only then answers every caller. sled measured 2.5× faster this way than
//! with concurrent writers sharing flushes (21,000 vs 8,400 three-value writes/s on the 2-core
//! development machine), because it sees one writer, as in its own benchmarks. Readers never wait.
//!
//! sled 0.34 cannot go on after a failed log write (a full disk): its error is sticky, and its
//! flushes can hang. So the first failure, or a flush that outlasts a deadline, is answered with
//! an error and fails the store for the rest of the process: writes are refused at once, and the
//! keys of the failed group read as the error (sled may hold half of it in memory). What was
//! acknowledged before is durable; a restart reads it back and writes again.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, mpsc};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::crypto::CryptoError;
use crate::crypto::buckets::{StoreCipher, bucket_of};

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
        }
    }

    fn prefix(self) -> u8 {
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
        }
    }

    /// Every tree, for walks over the whole store.
    pub const ALL: [Tree; 16] = [
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

    fn key(self, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(1 + key.len());
        full.push(self.prefix());
        full.extend_from_slice(key);
        full
    }
}

/// Store failures. `Tampered` means a value did not open: damaged or tampered with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O failed: {0}")]
    Io(String),
    /// The disk (or the filesystem's quota) is full: nothing was written.
    #[error("the disk is full: {0}")]
    Full(String),
    #[error("a stored value is damaged or was tampered with in tree {tree}")]
    Tampered { tree: &'static str },
    /// sled found its own files corrupt: restarting will not help, restoring will.
    #[error("sled found its files corrupt: {0}")]
    Damaged(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

impl StoreError {
    /// The same failure again, for the next caller it concerns (the error holds no `Clone`
    /// source, so this rebuilds it; a crypto failure is never a write failure).
    fn again(&self) -> StoreError {
        match self {
            StoreError::Io(m) => StoreError::Io(m.clone()),
            StoreError::Full(m) => StoreError::Full(m.clone()),
            StoreError::Damaged(m) => StoreError::Damaged(m.clone()),
            other => StoreError::Io(other.to_string()),
        }
    }
}

/// The first failed write of a process (see [`Store::fail`]).
#[derive(Debug)]
struct Failure {
    error: StoreError,
    /// The full keys the failed group wrote. sled applies a group in memory before making it
    /// durable, and after a failure it may hold some of the group's writes (never acknowledged)
    /// in memory: these keys read as the failure until a restart reads sled's files again.
    unsure: BTreeSet<Vec<u8>>,
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match &e {
            sled::Error::Io(io) if is_disk_full(io) => StoreError::Full(e.to_string()),
            sled::Error::Corruption { .. } => StoreError::Damaged(e.to_string()),
            _ => StoreError::Io(e.to_string()),
        }
    }
}

/// Whether an I/O error means "no space left" (ENOSPC) or "quota exceeded" (EDQUOT).
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// Cache size handed to sled. Its default (1 GiB) is far more than one person's vault needs.
pub const DEFAULT_CACHE_BYTES: u64 = 24 * 1024 * 1024;
/// The one sled tree every logical table lives in.
const SLED_TREE: &str = "vault";

/// An open, sealed store.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
    cipher: Arc<StoreCipher>,
    /// The first failed write of this process, after which nothing more is written (see
    /// [`Store::fail`]).
    failed: Arc<OnceLock<Failure>>,
    /// Where sled's files are (for the space probe of a stalled flush).
    dir: Arc<Path>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
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
    /// Opens (or creates) the store in `dir`.
    ///
    /// sled holds an exclusive lock on its files, and a just-dropped handle (setup closes the new
    /// store and reopens it after moving it into place) may still hold it for a moment while
    /// sled's threads wind down: a busy lock is retried for up to two seconds.
    pub fn open(
        dir: &Path,
        cipher: Arc<StoreCipher>,
        cache_bytes: u64,
    ) -> Result<Store, StoreError> {
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            // Every write is flushed by the writer thread; sled's own timer adds nothing.
            .flush_every_ms(None);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                // sled reports a busy lock as an `Other` error with this wording.
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(e.into()),
            }
        };
        let tree = db.open_tree(SLED_TREE)?;
        Ok(Store {
            db,
            tree,
            cipher,
            failed: Arc::default(),
            dir: Arc::from(dir),
        })
    }

    /// The size of sled's files on disk (0 if it cannot tell).
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// Reads and opens one value.
    pub fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let full = tree.key(key);
        self.readable(&full)?;
        match self.tree.get(full)? {
            Some(sealed) => Ok(Some(self.open_value(tree, key, &sealed)?)),
            None => Ok(None),
        }
    }

    fn open_value(&self, tree: Tree, key: &[u8], sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
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

    /// Runs `f` and commits everything it wrote atomically and durably, or nothing if it fails.
    ///
    /// For single-threaded use only (setup, offline commands): a running server writes through
    /// its [`Writer`], and two writers at once would race on read-check-write sequences.
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

    /// Flushes everything to disk now (blocking). A running server flushes through its [`Writer`].
    pub fn flush(&self) -> Result<(), StoreError> {
        self.writable()?;
        self.db.flush()?;
        Ok(())
    }

    /// Refuses to write once a write has failed in this process.
    fn writable(&self) -> Result<(), StoreError> {
        match self.failed.get() {
            Some(failure) => Err(failure.error.again()),
            None => Ok(()),
        }
    }

    /// Whether the disk has room for a group: [`DISK_RESERVE`] plus four times what it stages
    /// (sled rewrites whole nodes, so a write costs the disk several times its size). A disk
    /// whose free space cannot be read is assumed to have room.
    fn room_for(&self, tx: &Tx<'_>) -> Result<(), StoreError> {
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

    /// Refuses to read a key that a failed write may have left half-done (see [`Failure`]).
    fn readable(&self, full_key: &[u8]) -> Result<(), StoreError> {
        match self.failed.get() {
            Some(failure) if failure.unsure.contains(full_key) => Err(failure.error.again()),
            _ => Ok(()),
        }
    }

    /// Records a failed write; returns whether it is the first. sled 0.34 does not recover from
    /// a failed log write within the process: the error is sticky, every later write fails, and
    /// flushing or even closing the database can then wait forever (seen with ENOSPC). So from
    /// the first failure on, writes get that error at once without touching sled. Everything
    /// acknowledged before it is durable, and a restart recovers it and writes again.
    fn fail(&self, e: &StoreError, unsure: BTreeSet<Vec<u8>>) -> bool {
        let failure = Failure {
            error: e.again(),
            unsure,
        };
        self.failed.set(failure).is_ok()
    }

    /// The error for a flush that did not finish within `waited`: the disk is full if a probe
    /// file cannot be written beside the store (sled may not have said so), an I/O failure
    /// otherwise.
    fn stalled(&self, waited: Duration) -> StoreError {
        let probe = self.dir.with_extension("space-probe");
        let written = std::fs::write(&probe, vec![0u8; 64 * 1024]);
        let _ = std::fs::remove_file(&probe);
        let waited = waited.as_secs_f32();
        match written {
            Err(e) if is_disk_full(&e) => StoreError::Full(format!(
                "a flush did not finish within {waited} s and the disk has no space left: {e}"
            )),
            _ => StoreError::Io(format!(
                "a flush did not finish within {waited} s: the store stopped making writes durable"
            )),
        }
    }

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
    fn resealed(
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
    store: &'a Store,
    /// Full sled key → sealed value, or `None` for a removal.
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// What the current job overwrote in `pending`, to undo it if the job fails.
    undo: Vec<Undo>,
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

    fn new(store: &'a Store) -> Self {
        Tx {
            store,
            pending: BTreeMap::new(),
            undo: Vec::new(),
        }
    }

    /// Starts a job: its writes can be undone until the next `begin`.
    fn begin(&mut self) {
        self.undo.clear();
    }

    /// Undoes the current job's writes.
    fn rollback(&mut self) {
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
    fn commit(self) -> Result<(), StoreError> {
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

/// Values resealed per batch by [`Store::reseal_offline`].
const RESEAL_BATCH: usize = 4096;

/// Groups that one writer pass takes at most, so that a flood of writes still gets answered.
const MAX_GROUP: usize = 1024;

/// One queued write: runs inside the writer thread and returns how to answer once the group's
/// flush is done (with the flush's outcome). Given no transaction, it does not run and its
/// answer is the (failed) outcome alone.
type Job = Box<dyn FnOnce(Option<&mut Tx<'_>>) -> Reply + Send>;
type Reply = Box<dyn FnOnce(&Result<(), StoreError>) + Send>;
/// The writer's queue, shared with its watchdog (see [`Watchdog`]).
type Queue = Arc<Mutex<mpsc::Receiver<Job>>>;

fn lock_queue(queue: &Queue) -> std::sync::MutexGuard<'_, mpsc::Receiver<Job>> {
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The handle to the store's single writer thread. Cheap to clone; the thread stops when the last
/// handle is dropped, after answering everything already queued.
#[derive(Debug, Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
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

/// Answers a group whose flush never ends. After a failed log write (seen with ENOSPC), sled 0.34
/// can stop making its log durable without reporting any error: the writer's flush, and every
/// flush after it, then waits forever, and so would everyone whose write is queued. When a flush
/// outlasts [`FLUSH_DEADLINE`], the watchdog's thread answers the group with an error (the disk
/// is full, if it is), marks the store failed so that later writes are refused before they are
/// queued, and from then on answers whatever reaches the queue with the same error, without
/// running it. The writer thread stays blocked in sled until the process ends; a restart
/// recovers everything acknowledged before.
struct Watchdog {
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
    fn new(deadline: Duration) -> Watchdog {
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
    fn flush(
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

    fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }

    /// The watchdog's thread: idle until a flush starts, then waits for it up to its deadline.
    /// Ends (dropping its handle on the store) when the writer stops.
    fn run(&self, store: &Store, queue: &Queue) {
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
struct StopOnDrop<'a>(&'a Watchdog);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    fn store(dir: &Path) -> Store {
        Store::open(dir, Arc::new(StoreCipher::generate().unwrap()), 4 << 20).unwrap()
    }

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
