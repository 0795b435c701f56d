//! Appending to, paging through and verifying the audit log.
//!
//! Entries live in the `Audit` tree under their big-endian sequence number (so key order is chain
//! order); the chain head lives in the `Meta` tree. Both are sealed like every other value, and the
//! sealing binds each entry to its sequence number, so moving an entry to another position makes it
//! fail to open.

use std::path::Path;

use time::OffsetDateTime;

use super::{META_AUDIT_HEAD, OpenVault, file_error, io_error};
use crate::crypto::KeyedHash;
use crate::crypto::sha256;
use crate::domain::audit::{AuditEntry, ChainHead, Event, Verified, verify_chain_from};
use crate::error::AppError;
use crate::store::{Store, StoreError, Tx};

use super::tables::{AUDIT, AUDIT_HEAD};

/// Appends `event` to the chain inside a write, after the head as this write sees it (so writes
/// queued together chain correctly), and moves the stored head.
pub(crate) fn append_in(
    tx: &mut Tx<'_>,
    event: Event,
    now: OffsetDateTime,
) -> Result<AuditEntry, StoreError> {
    let head = tx.read(&AUDIT_HEAD, META_AUDIT_HEAD)?.unwrap_or_default();
    let entry = AuditEntry::chain(event, &head, now, sha256);
    tx.write(&AUDIT, &entry.seq.to_be_bytes(), &entry)?;
    tx.write(&AUDIT_HEAD, META_AUDIT_HEAD, &entry.head())?;
    Ok(entry)
}

/// Appends outside the server (setup, offline CLI commands), durably.
pub(crate) fn append_offline(
    store: &Store,
    event: Event,
    now: OffsetDateTime,
) -> Result<ChainHead, AppError> {
    let entry = store.transact_offline(|tx| append_in(tx, event, now).map_err(AppError::from))?;
    Ok(entry.head())
}

/// Records an owner action taken while the server is stopped (the offline CLI commands).
pub fn record_offline(
    store: &Store,
    action: &'static str,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    append_offline(store, Event::owner(action, None), now).map(|_| ())
}

/// Reads the stored chain head (the genesis head for an empty log).
pub(crate) fn load_head(store: &Store) -> Result<ChainHead, AppError> {
    Ok(store
        .read(&AUDIT_HEAD, META_AUDIT_HEAD)?
        .unwrap_or_default())
}

/// The time of the newest audit entry: a time the vault has certainly already seen.
pub(crate) fn latest_time(store: &Store) -> Result<Option<OffsetDateTime>, AppError> {
    let head = load_head(store)?;
    let entry = store.read(&AUDIT, &head.seq.to_be_bytes())?;
    Ok(entry.map(|entry| entry.at))
}

/// The file beside the store that remembers how long the audit chain was at the last clean stop.
///
/// sled reads damage in its log as the log's end: a store file cut short can come back without
/// its last writes, records and their audit entries together, and the shorter chain verifies.
/// Every change appends to the chain, so a chain shorter than at the last clean stop means the
/// store lost acknowledged writes; unsealing then refuses. Setup, restore and deletion remove
/// the file, since they start a new chain.
pub(crate) const HEAD_MARKER: &str = "audit-head.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct HeadMarker {
    vault_id: String,
    seq: u64,
}

/// Remembers `seq`, a chain length the store has made durable, at a clean stop.
pub(crate) fn save_head_marker(data_dir: &Path, vault_id: &str, seq: u64) -> Result<(), AppError> {
    let marker = HeadMarker {
        vault_id: vault_id.to_owned(),
        seq,
    };
    let bytes = serde_json::to_vec(&marker)
        .map_err(|e| AppError::internal("encoding a value to store", e))?;
    crate::crypto::keyfile::write_atomically(&data_dir.join(HEAD_MARKER), &bytes)
        .map_err(|e| io_error("writing the audit head marker (audit-head.json)", e))
}

/// Refuses a store whose chain is shorter than at the last clean stop. A marker of another vault
/// (or one that does not parse) says nothing about this store and is ignored.
pub(crate) fn check_head_marker(
    data_dir: &Path,
    vault_id: &str,
    store: &Store,
) -> Result<(), AppError> {
    let path = data_dir.join(HEAD_MARKER);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(file_error("reading", &path, e)),
    };
    let Ok(marker) = serde_json::from_slice::<HeadMarker>(&bytes) else {
        tracing::warn!(path = %path.display(), "the audit head marker does not parse; ignored");
        return Ok(());
    };
    let head = load_head(store)?;
    if marker.vault_id == vault_id && head.seq < marker.seq {
        return Err(AppError::StoreDamaged(format!(
            "the audit log ends at entry {} but reached entry {} before the last clean stop: the \
             store lost acknowledged writes. Restore it from a backup, or remove {} to go on \
             with what is left",
            head.seq,
            marker.seq,
            path.display()
        )));
    }
    Ok(())
}

/// Forgets the marker: for setup, restore and deletion, which start a new chain.
pub(crate) fn remove_head_marker(data_dir: &Path) -> Result<(), AppError> {
    match std::fs::remove_file(data_dir.join(HEAD_MARKER)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(
            "removing the audit head marker (audit-head.json)",
            e,
        )),
        _ => Ok(()),
    }
}

fn seq_of(key: &[u8]) -> u64 {
    key.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// Verifies the whole chain of a store against its stored head. Entries appended after the head
/// was read (by a running server) are left for the next verification. Entries pruned under the
/// retention are vouched for by the checkpoint, whose signature `checkpoint_key` checks
/// ([`crate::crypto::audit_checkpoint_key`]); what is left must follow it.
pub fn verify_store(store: &Store, checkpoint_key: &KeyedHash) -> Result<Verified, AppError> {
    let checkpoint = super::retention::checked_checkpoint(store, checkpoint_key)?;
    let head = load_head(store)?;
    let keys = store.raw_keys(AUDIT.tree())?;
    let entries = keys
        .into_iter()
        .filter(|key| seq_of(key) <= head.seq)
        .map(|key| {
            let seq = seq_of(&key);
            match store.read(&AUDIT, &key) {
                Ok(Some(entry)) => Ok(entry),
                _ => Err(seq),
            }
        });
    let start = checkpoint.as_ref().map(|c| c.start()).unwrap_or_default();
    let mut verified = verify_chain_from(start, entries, &head, sha256)?;
    verified.pruned_through = checkpoint.map(|c| c.last_at);
    Ok(verified)
}

/// A page of the log, newest first.
#[derive(Debug)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` to get the next (older) page.
    pub next_before: Option<u64>,
}

/// Most entries in one page.
pub const MAX_PAGE: usize = 200;

impl OpenVault {
    /// Entries older than `before` (or the newest), at most `limit`, newest first.
    pub fn audit_page(&self, before: Option<u64>, limit: usize) -> Result<AuditPage, AppError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let before_key = before.map(u64::to_be_bytes);
        let mut entries = Vec::with_capacity(limit);
        for item in self
            .store()
            .read_rev_before(&AUDIT, before_key.as_ref().map(|k| &k[..]))
            .take(limit + 1)
        {
            let (_, entry) = item?;
            entries.push(entry);
        }
        let next_before = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|e| e.seq)
        } else {
            None
        };
        Ok(AuditPage {
            entries,
            next_before,
        })
    }

    /// Verifies the chain; a broken chain is a result, not a failure of the call.
    pub fn audit_verify(&self) -> Result<Verified, AppError> {
        verify_store(self.store(), self.retention.key())
    }
}
