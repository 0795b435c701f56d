//! Making deletions true on a store that never erases: the bucket-key file, rotation of the
//! buckets of deleted items, and the one-time migration of vaults made before bucket keys.
//!
//! See [`crate::crypto::buckets`] for the scheme. Here: where the file lives, the order of the
//! steps so that a crash at any point leaves a vault that opens (and never brings a deleted
//! item back), and the migration that moves version-1 values into a fresh store directory so
//! that no copy under the old single key stays in sled's files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{OpenVault, STORE_OLD_DIR, STORE_SETUP_DIR, Settings, file_error, io_error};
use crate::crypto::buckets::{BUCKET_SEALED_VERSION, BucketKeys, StoreCipher};
use crate::crypto::keyfile::{KeyFile, write_atomically};
use crate::crypto::{MasterKey, Sealer, VaultKeys};
use crate::error::AppError;
use crate::store::{Store, StoreError, Tree};

/// The bucket-key file, beside the key file.
pub(crate) const BUCKET_FILE: &str = "store.keys";
/// A `Meta` entry present in every store whose values are all sealed under bucket keys.
const META_SEALING: &[u8] = b"sealing";
const SEALING_BUCKETS: &[u8] = b"buckets-v2";

fn crypto_error(e: crate::crypto::CryptoError) -> AppError {
    AppError::from(StoreError::from(e))
}

/// The bucket keys of a vault and where they are kept.
pub(crate) struct BucketFile {
    path: PathBuf,
    wrap: Sealer,
    vault_id: String,
}

impl std::fmt::Debug for BucketFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl BucketFile {
    pub(crate) fn new(data_dir: &Path, wrap: Sealer, keyfile: &KeyFile) -> BucketFile {
        BucketFile {
            path: data_dir.join(BUCKET_FILE),
            wrap,
            vault_id: keyfile.vault_id().to_owned(),
        }
    }

    pub(crate) fn load(&self) -> Result<Option<BucketKeys>, AppError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => BucketKeys::decode(&bytes, &self.wrap, &self.vault_id)
                .map(Some)
                .map_err(|_| {
                    AppError::StoreDamaged(format!(
                        "{} does not open with this vault's keys: damaged or from another vault",
                        self.path.display()
                    ))
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(file_error("reading", &self.path, e)),
        }
    }

    pub(crate) fn save(&self, keys: &BucketKeys) -> Result<(), AppError> {
        let bytes = keys
            .encode(&self.wrap, &self.vault_id)
            .map_err(crypto_error)?;
        write_atomically(&self.path, &bytes).map_err(|e| file_error("writing", &self.path, e))
    }

    /// The file's bytes as they are on disk (for backups).
    pub(crate) fn encode(&self, keys: &BucketKeys) -> Result<Vec<u8>, AppError> {
        keys.encode(&self.wrap, &self.vault_id)
            .map_err(crypto_error)
    }

    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<BucketKeys, AppError> {
        BucketKeys::decode(bytes, &self.wrap, &self.vault_id).map_err(|_| {
            AppError::invalid("invalid_backup", "the backup's bucket keys do not open")
        })
    }
}

/// Starts the bucket keys of a new store: the file first, then the marker in the store.
pub(crate) fn create_for_new_store(
    dir: &Path,
    settings: &Settings,
    master: &MasterKey,
    keyfile: &KeyFile,
) -> Result<(Store, BucketKeys), AppError> {
    let keys = VaultKeys::derive(master);
    let file = BucketFile::new(&settings.data_dir, keys.bucket_wrap, keyfile);
    let buckets = BucketKeys::generate().map_err(crypto_error)?;
    file.save(&buckets)?;
    let store = Store::open(
        dir,
        Arc::new(StoreCipher::new(keys.sealer, &buckets)),
        settings.cache_bytes,
    )?;
    mark_migrated(&store)?;
    Ok((store, buckets))
}

fn mark_migrated(store: &Store) -> Result<(), AppError> {
    store.transact_offline(|tx| tx.insert(Tree::Meta, META_SEALING, SEALING_BUCKETS))?;
    Ok(())
}

/// Opens the store of an existing vault: creates the bucket keys and migrates a vault made before
/// them, and finishes a rotation a crash interrupted.
pub(crate) fn open_store(
    settings: &Settings,
    keyfile: &KeyFile,
    master: &MasterKey,
) -> Result<(Store, BucketKeys, BucketFile), AppError> {
    let derived = VaultKeys::derive(master);
    let file = BucketFile::new(&settings.data_dir, derived.bucket_wrap, keyfile);
    let loaded = file.load()?;
    let created = loaded.is_none();
    let mut buckets = match loaded {
        Some(buckets) => buckets,
        None => BucketKeys::generate().map_err(crypto_error)?,
    };
    let store_dir = settings.store_dir();
    let cipher = || Arc::new(StoreCipher::new(VaultKeys::derive(master).sealer, &buckets));
    let store = Store::open(&store_dir, cipher(), settings.cache_bytes)?;
    if created {
        // Only a store made before bucket keys may lack their file; for any other, new keys
        // would open nothing, so say what is missing instead.
        let marker = store.raw_get(Tree::Meta, META_SEALING)?;
        if marker.is_some_and(|m| m.first() == Some(&BUCKET_SEALED_VERSION)) {
            return Err(AppError::StoreDamaged(format!(
                "{} is missing: without it the store cannot be read",
                settings.data_dir.join(BUCKET_FILE).display()
            )));
        }
        file.save(&buckets)?;
    }
    let store = if store.get(Tree::Meta, META_SEALING)?.as_deref() == Some(SEALING_BUCKETS) {
        store
    } else {
        drop(store);
        migrate(settings, cipher())?;
        Store::open(&store_dir, cipher(), settings.cache_bytes)?
    };
    let retiring = buckets.retiring_buckets();
    if !retiring.is_empty() {
        let resealed = store.reseal_offline(&retiring)?;
        buckets.finish_rotation();
        file.save(&buckets)?;
        store.cipher().set_keys(&buckets);
        tracing::info!(
            buckets = retiring.len(),
            resealed,
            "finished a deletion's key rotation"
        );
    }
    Ok((store, buckets, file))
}

/// Copies every value of a store made before bucket keys into a fresh store directory, sealed
/// under bucket keys, then swaps the directories by renames: the old store becomes
/// `store.old`, the new one `store`, and `store.old` is removed. A crash before the first rename
/// leaves the old store (migrated again at the next start); after it, the next start finishes
/// the swap or removes `store.old` (see [`super::initial_phase`]). The old store is never
/// removed before the new one is in place.
fn migrate(settings: &Settings, cipher: Arc<StoreCipher>) -> Result<(), AppError> {
    let store_dir = settings.store_dir();
    let next_dir = settings.data_dir.join(STORE_SETUP_DIR);
    super::remove_dir_if_present(&next_dir)?;
    let mut copied = 0u64;
    {
        let old = Store::open(&store_dir, cipher.clone(), settings.cache_bytes)?;
        let new = Store::open(&next_dir, cipher, settings.cache_bytes)?;
        let mut batch = Vec::new();
        for entry in old.raw_entries() {
            let (key, sealed) = entry?;
            batch.push(old.opened_raw(&key, &sealed)?);
            if batch.len() == 4096 {
                new.import_plain(std::mem::take(&mut batch))?;
            }
            copied += 1;
        }
        new.import_plain(batch)?;
        mark_migrated(&new)?;
        new.flush()?;
    }
    let old_dir = settings.data_dir.join(STORE_OLD_DIR);
    super::remove_dir_if_present(&old_dir)?;
    std::fs::rename(&store_dir, &old_dir)
        .map_err(|e| io_error("setting the old store aside", e))?;
    std::fs::rename(&next_dir, &store_dir).map_err(|e| io_error("moving the migrated store", e))?;
    super::sync_dir(&settings.data_dir)?;
    super::remove_dir_if_present(&old_dir)?;
    tracing::info!(values = copied, "store migrated to bucket keys");
    Ok(())
}

impl OpenVault {
    /// Rotates the keys of `buckets` so that nothing sealed under their old keys opens again:
    /// called after an item's removal is durable. The new keys reach the file (with the old ones
    /// as retiring) before anything is sealed under them; the bucket's live values are sealed
    /// again in one writer job; then the old keys leave the file.
    pub(crate) async fn shred_buckets(&self, buckets: BTreeSet<u8>) -> Result<(), AppError> {
        if buckets.is_empty() {
            return Ok(());
        }
        let mut keys = self.bucket_keys.lock().await;
        let mut rotated = keys.clone();
        rotated.begin_rotation(&buckets).map_err(crypto_error)?;
        self.bucket_file.save(&rotated)?;
        self.store.cipher().set_keys(&rotated);
        *keys = rotated.clone();
        let retiring = rotated.retiring_buckets();
        let resealed = self
            .writer
            .write(move |tx| tx.reseal_buckets(&retiring))
            .await?;
        rotated.finish_rotation();
        self.bucket_file.save(&rotated)?;
        self.store.cipher().set_keys(&rotated);
        *keys = rotated;
        tracing::debug!(buckets = buckets.len(), resealed, "buckets rotated");
        Ok(())
    }
}
