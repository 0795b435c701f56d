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
//!
//! The module is split along those lines: `tree` names the logical tables and reads them, `tx`
//! stages a group of writes, `writer` runs the single writer thread and its group commit,
//! `watchdog` answers a flush that never ends, `backup` reaches the raw sealed entries that
//! backups, restores and key rotations copy, and `table` gives a tree's values their type.
//! Everything callers use is re-exported here, so every `crate::store::X` path stays as it was.

mod backup;
mod queue;
mod table;
mod tree;
mod tx;
mod usage;
mod watchdog;
mod writer;

pub use table::{Table, TableError};
pub use tree::{Entry, Tree, aad};
pub use tx::{Tx, TxError};
pub use usage::TreeUsage;
pub use writer::{DISK_RESERVE, Writer};

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::crypto::CryptoError;
use crate::crypto::buckets::StoreCipher;

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
        // sled would create the directory readable by all (less the umask).
        crate::files::create_dir(dir).map_err(|e| StoreError::Io(e.to_string()))?;
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
}

/// A store on a fresh cipher, for the unit tests of every part of this module.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
fn store_for_tests(dir: &Path) -> Store {
    Store::open(dir, Arc::new(StoreCipher::generate().unwrap()), 4 << 20).unwrap()
}
