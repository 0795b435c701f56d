//! Encrypted backups and restore.
//!
//! A backup is the vault as it is on disk, not decrypted: the key file (whose master key is
//! wrapped by the passphrase and the recovery key; the unlock-key slot is left out) and every
//! store entry still sealed. So it is as safe to copy off-site as the data directory itself, and
//! restoring it needs the passphrase or the recovery key.
//!
//! Layout (all integers big-endian):
//!
//! ```text
//! "vrm-vault backup\n"  u32 version
//! u32 length, key file JSON
//! u32 length, bucket-key file             (version 2 on; version 1 vaults had no bucket keys)
//! repeated: u32 key length (> 0), full store key, u32 value length, sealed value
//! u32 0                                    (end of entries)
//! u64 entry count, 32-byte HMAC-SHA256 over every byte before it
//! ```
//!
//! The HMAC key is derived from the master key, so a restore proves the backup whole (not cut
//! short, nothing spliced in or left out) once the passphrase has opened it; each value also
//! opens only at its own key, as in the store.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::shred::{BUCKET_FILE, BucketFile};
use super::{
    MAX_PASSPHRASE_CHARS, OpenVault, STORE_DIR, STORE_SETUP_DIR, Settings, create_private_dir,
    file_error, initial_phase, io_error, remove_dir_if_present, sync_dir,
};
use crate::crypto::buckets::{BucketKeys, StoreCipher};
use crate::crypto::keyfile::{KdfParams, KeyFile, RecoveryKey, write_atomically};
use crate::crypto::{KeyedHashing, MasterKey, VaultKeys, backup_mac_key};
use crate::domain::audit::Event;
use crate::error::AppError;
use crate::secret::Secret;
use crate::store::{Entry, Store, StoreError};

const MAGIC: &[u8] = b"vrm-vault backup\n";
/// The format this version writes. Version 1 (no bucket keys: every value under the single
/// derived store key) is still restored; the restored store is migrated when it is first opened.
pub const FORMAT_VERSION: u32 = 2;
/// Longest key file or store key a backup may declare (a damaged length must not allocate GiBs).
const MAX_SMALL_LEN: u32 = 1 << 20;
/// Longest store value a backup may declare.
const MAX_VALUE_LEN: u32 = 64 << 20;
/// Entries written to the new store per batch during a restore.
const RESTORE_BATCH: usize = 4096;

fn backup_error(message: impl Into<String>) -> AppError {
    AppError::invalid("invalid_backup", message)
}

/// What a backup held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct BackupSummary {
    pub format_version: u32,
    pub entries: u64,
}

/// Writes bytes through the backup's MAC.
struct MacWriter<'a> {
    out: &'a mut dyn Write,
    mac: KeyedHashing,
}

impl MacWriter<'_> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.mac.update(bytes);
        self.out.write_all(bytes)
    }

    fn put_chunk(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(bytes.len())
            .map_err(|_| std::io::Error::other("a backup item over 4 GiB"))?;
        self.put(&len.to_be_bytes())?;
        self.put(bytes)
    }
}

/// Writes a backup of `store` (which must not change meanwhile: run it in a writer job or
/// offline) with `keyfile` to `out`.
pub fn write_backup(
    store: &Store,
    keyfile: &KeyFile,
    bucket_file: &[u8],
    master: &MasterKey,
    out: &mut dyn Write,
) -> Result<BackupSummary, AppError> {
    let io = |e: std::io::Error| AppError::internal("writing the backup", e);
    let mut keyfile = keyfile.clone();
    keyfile.remove_unlock_key();
    let mut w = MacWriter {
        out,
        mac: backup_mac_key(master).start(),
    };
    w.put(MAGIC).map_err(io)?;
    w.put(&FORMAT_VERSION.to_be_bytes()).map_err(io)?;
    w.put_chunk(&keyfile.encode()?).map_err(io)?;
    w.put_chunk(bucket_file).map_err(io)?;
    let mut entries = 0u64;
    for entry in store.raw_entries() {
        let (key, value) = entry?;
        w.put_chunk(&key).map_err(io)?;
        w.put_chunk(&value).map_err(io)?;
        entries += 1;
    }
    w.put(&0u32.to_be_bytes()).map_err(io)?;
    w.put(&entries.to_be_bytes()).map_err(io)?;
    let mac = w.mac.finish();
    w.out.write_all(&mac).map_err(io)?;
    w.out.flush().map_err(io)?;
    Ok(BackupSummary {
        format_version: FORMAT_VERSION,
        entries,
    })
}

/// How the owner opens the backup being restored.
#[derive(Debug)]
pub enum RestoreCredential {
    Passphrase(Secret),
    /// The recovery key, with the passphrase the restored vault will have.
    RecoveryKey {
        recovery_key: Secret,
        new_passphrase: Secret,
    },
}

/// Reads a backup, checking its framing as it goes: the header, the key file, the bucket-key
/// file, each entry, and at the end the entry count and the MAC over everything before it.
///
/// It parses bytes only: opening the key file, checking that each value opens and writing the
/// entries somewhere is the caller's ([`restore`]). Public so that the backup format can be
/// fuzzed without a data directory or a key derivation (`tests/fuzz`).
pub struct BackupReader<R: Read> {
    input: R,
    version: u32,
    /// Bytes read, kept until the MAC key is known (only the short header), then fed directly.
    pending: Vec<u8>,
    mac: Option<KeyedHashing>,
    entries: u64,
}

impl<R: Read> std::fmt::Debug for BackupReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupReader")
            .field("version", &self.version)
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

impl<R: Read> BackupReader<R> {
    /// Reads the header and the key file. The key file is checked ([`KeyFile::parse`]) but not
    /// opened: the caller opens it and passes the master key to [`BackupReader::unlocked`].
    pub fn start(input: R) -> Result<(BackupReader<R>, KeyFile), AppError> {
        let mut reader = BackupReader {
            input,
            version: 0,
            pending: Vec::new(),
            mac: None,
            entries: 0,
        };
        if reader.exact(MAGIC.len())? != MAGIC {
            return Err(backup_error("this is not a vrm-vault backup"));
        }
        let version = reader.u32()?;
        if !(1..=FORMAT_VERSION).contains(&version) {
            return Err(backup_error(format!(
                "backup format version {version} is newer than this vrm-vault understands"
            )));
        }
        reader.version = version;
        let keyfile = KeyFile::parse(&reader.chunk(MAX_SMALL_LEN, "key file")?)
            .map_err(|e| backup_error(format!("the backup's key file is damaged: {e}")))?;
        Ok((reader, keyfile))
    }

    /// The backup's format version (1 or 2).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Starts authenticating what was read and what follows with the key of the vault whose
    /// master key is `master`.
    pub fn unlocked(&mut self, master: &MasterKey) {
        let mut mac = backup_mac_key(master).start();
        mac.update(&self.pending);
        self.pending = Vec::new();
        self.mac = Some(mac);
    }

    /// The bytes of the bucket-key file, or `None` for a version 1 backup, which has none.
    pub fn bucket_file(&mut self) -> Result<Option<Vec<u8>>, AppError> {
        if self.version >= 2 {
            self.chunk(MAX_SMALL_LEN, "bucket-key file").map(Some)
        } else {
            Ok(None)
        }
    }

    /// The next entry (full store key, sealed value), or `None` after the last one.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, AppError> {
        let key_len = self.u32()?;
        if key_len == 0 {
            return Ok(None);
        }
        if key_len > MAX_SMALL_LEN {
            return Err(backup_error(
                "the backup declares an oversized key: damaged",
            ));
        }
        let key = self.exact(key_len as usize)?;
        let value = self.chunk(MAX_VALUE_LEN, "value")?;
        self.entries += 1;
        Ok(Some((key, value)))
    }

    /// Checks the end of the backup, after [`BackupReader::next_entry`] returned `None`: the
    /// declared entry count, the MAC (so nothing was cut, spliced in or modified), and that
    /// nothing follows.
    pub fn finish(mut self) -> Result<BackupSummary, AppError> {
        let count_bytes = self.exact(8)?;
        let declared = u64::from_be_bytes(count_bytes.try_into().unwrap_or_default());
        let computed = self.mac.take().map(KeyedHashing::finish);
        let mut stored_mac = [0u8; 32];
        self.input
            .read_exact(&mut stored_mac)
            .map_err(|_| backup_error("the backup is cut short"))?;
        let mut rest = [0u8; 1];
        let trailing = self.input.read(&mut rest).unwrap_or(0) != 0;
        if declared != self.entries
            || trailing
            || !computed.is_some_and(|m| crate::crypto::constant_time_eq(&m, &stored_mac))
        {
            return Err(backup_error(
                "the backup does not check out (cut short, spliced or modified)",
            ));
        }
        Ok(BackupSummary {
            format_version: self.version,
            entries: self.entries,
        })
    }

    fn exact(&mut self, n: usize) -> Result<Vec<u8>, AppError> {
        let mut buf = vec![0u8; n];
        self.input
            .read_exact(&mut buf)
            .map_err(|_| backup_error("the backup is cut short"))?;
        match &mut self.mac {
            Some(mac) => mac.update(&buf),
            None => self.pending.extend_from_slice(&buf),
        }
        Ok(buf)
    }

    fn u32(&mut self) -> Result<u32, AppError> {
        let bytes = self.exact(4)?;
        Ok(u32::from_be_bytes(bytes.try_into().unwrap_or_default()))
    }

    fn chunk(&mut self, max: u32, what: &str) -> Result<Vec<u8>, AppError> {
        let len = self.u32()?;
        if len > max {
            return Err(backup_error(format!(
                "the backup declares a {what} of {len} bytes: damaged"
            )));
        }
        self.exact(len as usize)
    }
}

/// Restores a backup into `settings.data_dir`, which must hold no vault, and returns the opened
/// key file and master key. A failure at any point leaves the directory without a vault.
///
/// Blocking (Argon2id, disk): run it off the async runtime.
pub fn restore(
    settings: &Settings,
    backup: &Path,
    credential: RestoreCredential,
    now: OffsetDateTime,
) -> Result<(KeyFile, MasterKey, BackupSummary), AppError> {
    if !matches!(initial_phase(settings)?, super::Phase::Setup) {
        return Err(AppError::Conflict(
            "a vault already exists here: restore into an empty data directory",
        ));
    }
    let file = std::fs::File::open(backup).map_err(|e| file_error("opening", backup, e))?;
    let (mut reader, mut keyfile) = BackupReader::start(BufReader::with_capacity(1 << 16, file))?;
    let version = reader.version();
    let master = open_backup_keyfile(&mut keyfile, credential, settings.kdf)?;
    reader.unlocked(&master);
    let derived = VaultKeys::derive(&master);
    let bucket_file = BucketFile::new(&settings.data_dir, derived.bucket_wrap, &keyfile);
    // A version 1 backup has no bucket keys: its values all open with the derived store key.
    // It gets new bucket keys here (what the restore itself writes is sealed under them), and its
    // old values are moved under them when the restored vault is first opened.
    let (bucket_keys, bucket_bytes) = match reader.bucket_file()? {
        Some(bytes) => (bucket_file.decode(&bytes)?, bytes),
        None => {
            let keys = BucketKeys::generate().map_err(StoreError::from)?;
            let bytes = bucket_file.encode(&keys)?;
            (keys, bytes)
        }
    };

    create_private_dir(&settings.data_dir)?;
    let staging = settings.data_dir.join(STORE_SETUP_DIR);
    remove_dir_if_present(&staging)?;
    let restored = (|| {
        let cipher = StoreCipher::new(derived.sealer, &bucket_keys);
        let store = Store::open(&staging, std::sync::Arc::new(cipher), settings.cache_bytes)?;
        let mut batch: Vec<Entry> = Vec::with_capacity(RESTORE_BATCH);
        while let Some((key, value)) = reader.next_entry()? {
            store.check_raw(&key, &value).map_err(|_| {
                backup_error("a value in the backup does not open: damaged or from another vault")
            })?;
            batch.push((key, value));
            if batch.len() == RESTORE_BATCH {
                store.import_raw(std::mem::take(&mut batch))?;
            }
        }
        store.import_raw(batch)?;
        let summary = reader.finish()?;
        // Every brand relationship waits for the person's review once the vault opens (see
        // restored.rs); the mark is flushed with the restore itself.
        super::restored::mark_restored(&store)?;
        super::audit::append_offline(
            &store,
            Event::owner("vault.restored", None).with_detail(serde_json::json!({
                "backup_format_version": version,
                "entries": summary.entries,
            })),
            now,
        )?;
        store.flush()?;
        Ok(summary)
    })();
    let summary = match restored {
        Ok(summary) => summary,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    // The old chain's marker goes before anything of the restored vault exists: a crash later
    // in the restore must not leave it to refuse the restored (shorter) chain.
    super::audit::remove_head_marker(&settings.data_dir)?;
    sync_dir(&settings.data_dir)?;
    // As at setup: the bucket keys and the key file first, then the store moves into place; a
    // crash in between is finished at the next start.
    write_atomically(&settings.data_dir.join(BUCKET_FILE), &bucket_bytes)
        .map_err(|e| io_error("writing the bucket keys", e))?;
    keyfile.save(&settings.key_file())?;
    std::fs::rename(&staging, settings.data_dir.join(STORE_DIR))
        .map_err(|e| io_error("moving the restored store", e))?;
    sync_dir(&settings.data_dir)?;
    Ok((keyfile, master, summary))
}

fn open_backup_keyfile(
    keyfile: &mut KeyFile,
    credential: RestoreCredential,
    kdf: KdfParams,
) -> Result<MasterKey, AppError> {
    match credential {
        RestoreCredential::Passphrase(passphrase) => {
            if passphrase.expose().chars().count() > MAX_PASSPHRASE_CHARS {
                return Err(AppError::InvalidCredentials);
            }
            Ok(keyfile.unlock_with_passphrase(passphrase.expose())?)
        }
        RestoreCredential::RecoveryKey {
            recovery_key,
            new_passphrase,
        } => {
            super::validate_new_passphrase(&new_passphrase)?;
            let key = RecoveryKey::parse(recovery_key.expose())?;
            let master = keyfile.unlock_with_recovery_key(&key)?;
            keyfile.set_passphrase(&master, new_passphrase.expose(), kdf)?;
            Ok(master)
        }
    }
}

/// Where a running server puts a backup while it is being downloaded: in the data directory
/// (the same disk, and only sealed bytes), removed once sent and at every start.
pub(crate) fn temporary_backup_path(data_dir: &Path) -> Result<PathBuf, AppError> {
    let id: [u8; 8] = crate::crypto::random_array().map_err(crate::store::StoreError::from)?;
    Ok(data_dir.join(format!(
        "{TEMP_PREFIX}{}.tmp",
        data_encoding::HEXLOWER.encode(&id)
    )))
}

/// The file-name prefix of temporary backups.
pub(crate) const TEMP_PREFIX: &str = ".backup-";

/// Removes temporary backups left by a server that stopped while sending one.
pub(crate) fn remove_temporary_backups(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl OpenVault {
    /// Writes a consistent backup to `path` while the server runs: the copy is made inside the
    /// store's writer, between two groups of writes, with an audit entry saying so.
    pub async fn backup_to(&self, path: PathBuf) -> Result<BackupSummary, AppError> {
        let keyfile = self.keyfile()?;
        let master = self.master.clone();
        // Held until the copy is done, so no deletion rotates keys in the middle of it.
        let buckets = self.bucket_keys.lock().await;
        let bucket_bytes = self.bucket_file.encode(&buckets)?;
        self.change(move |tx| {
            let file = super::create_private_file(&path)?;
            let mut out = BufWriter::with_capacity(1 << 16, file);
            let summary = write_backup(tx.store(), &keyfile, &bucket_bytes, &master, &mut out)?;
            Ok((
                summary,
                Event::owner("vault.backed_up", None)
                    .with_detail(serde_json::json!({ "entries": summary.entries })),
            ))
        })
        .await
    }
}

/// Writes a backup while the server is stopped (`vrm-vault backup`).
pub fn backup_offline(
    data_dir: &Path,
    passphrase: &Secret,
    out: &Path,
    now: OffsetDateTime,
) -> Result<BackupSummary, AppError> {
    let (store, keyfile, master) = super::open_offline(data_dir, passphrase)?;
    let bucket_bytes = std::fs::read(data_dir.join(BUCKET_FILE))
        .map_err(|e| io_error("reading the bucket keys", e))?;
    let file = super::create_private_file(out)?;
    let mut writer = BufWriter::with_capacity(1 << 16, file);
    let summary = write_backup(&store, &keyfile, &bucket_bytes, &master, &mut writer)?;
    writer
        .into_inner()
        .map_err(|e| io_error("writing the backup", e.into_error()))?
        .sync_all()
        .map_err(|e| io_error("syncing the backup", e))?;
    super::audit::append_offline(
        &store,
        Event::owner("vault.backed_up", None)
            .with_detail(serde_json::json!({ "entries": summary.entries })),
        now,
    )?;
    Ok(summary)
}
