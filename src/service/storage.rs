//! What uses the vault's disk, for the owner's settings screen, and the upkeep that keeps it
//! bounded (run by the background worker, [`super::deadlines`]).
//!
//! The report groups the store's tables into the parts a person can name — records, the
//! activity (audit) log, tokens, webhook deliveries waiting (the outbox), brands' event streams —
//! with each part's live count and bytes, beside the store files' size on disk, the whole data
//! directory, the free space and the reserve the store never writes into.

use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::retention::AuditLogUse;
use super::{OpenVault, blocking_error, file_error};
use crate::error::AppError;
use crate::store::{DISK_RESERVE, Tree, TreeUsage};

/// One part of the store, as the owner sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoragePart {
    /// `records`, `audit`, `tokens`, `outbox`, `events`, `brands`, `intents` or `other`.
    #[schema(example = "audit")]
    pub part: &'static str,
    /// Values it holds (entries, records, token ids…).
    pub count: u64,
    /// Bytes of its live keys and sealed values.
    pub bytes: u64,
}

/// What uses the disk.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StorageReport {
    /// When the report was made, by the vault's clock.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Each part's live contents, largest first.
    pub parts: Vec<StoragePart>,
    /// The live contents of all parts together.
    pub live_bytes: u64,
    /// The store's files on disk: the live contents plus space the store has not reclaimed yet.
    pub store_bytes: u64,
    /// Every file in the data directory (the store, the key files, temporary files).
    pub data_dir_bytes: u64,
    /// Free space on the data directory's disk (absent if it cannot be read).
    pub disk_free_bytes: Option<u64>,
    /// Free space the vault keeps in reserve: below it, writes are refused (507).
    pub disk_reserve_bytes: u64,
    /// The audit log: its size, what its retention pruned, and the retention.
    pub audit: AuditLogUse,
}

/// Which part each table belongs to.
fn part_of(tree: Tree) -> &'static str {
    match tree {
        Tree::Records => "records",
        Tree::Audit => "audit",
        Tree::Jtis | Tree::RefreshTokens => "tokens",
        Tree::Outbox => "outbox",
        Tree::Events => "events",
        Tree::Brands
        | Tree::Agreements
        | Tree::Invitations
        | Tree::Grants
        | Tree::Subscriptions => "brands",
        Tree::Intents | Tree::Offers | Tree::Proposals => "intents",
        Tree::Meta | Tree::Terms | Tree::SigningKeys | Tree::Agents => "other",
    }
}

/// The parts, in a fixed order before sorting, so parts of equal size keep a stable order.
const PARTS: [&str; 8] = [
    "records", "audit", "tokens", "outbox", "events", "brands", "intents", "other",
];

fn group(usage: &[TreeUsage]) -> Vec<StoragePart> {
    let mut parts: Vec<StoragePart> = PARTS
        .iter()
        .map(|&part| StoragePart {
            part,
            count: 0,
            bytes: 0,
        })
        .collect();
    for tree in usage {
        if let Some(part) = parts.iter_mut().find(|p| p.part == part_of(tree.tree)) {
            part.count += tree.count;
            part.bytes += tree.bytes;
        }
    }
    parts.sort_by_key(|p| std::cmp::Reverse(p.bytes));
    parts
}

/// The size of every file below `dir` (symbolic links not followed).
fn dir_bytes(dir: &Path) -> Result<u64, AppError> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // A temporary directory removed while it was walked holds nothing any more.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(file_error("reading", &dir, e)),
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => stack.push(entry.path()),
                Ok(meta) => total += meta.len(),
                Err(_) => {}
            }
        }
    }
    Ok(total)
}

impl OpenVault {
    /// What uses the disk under `data_dir`. Walks the store's keys (nothing is opened), off the
    /// async runtime.
    pub async fn storage_report(
        self: &std::sync::Arc<Self>,
        data_dir: &Path,
    ) -> Result<StorageReport, AppError> {
        // Reading the vault's clock also lets the background worker see deadlines it passed.
        let at = self.now();
        let vault = self.clone();
        let data_dir = data_dir.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let store = vault.store();
            let parts = group(&store.usage()?);
            Ok(StorageReport {
                at,
                live_bytes: parts.iter().map(|p| p.bytes).sum(),
                parts,
                store_bytes: store.size_on_disk(),
                data_dir_bytes: dir_bytes(&data_dir)?,
                disk_free_bytes: store.disk_free(),
                disk_reserve_bytes: DISK_RESERVE,
                audit: vault.audit_log_use()?,
            })
        })
        .await
        .map_err(blocking_error)?
    }

    /// The upkeep that keeps the store bounded, run by the background worker: forgets the token
    /// ids that expired by `now`, prunes the audit log under its retention, and purges the
    /// assistants' registrations nobody approved. Returns when it
    /// is next due.
    pub(crate) async fn upkeep_due(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let next_jti = self.prune_expired_jtis(now).await;
        let next_audit = self.prune_audit(now).await;
        let next_agent = self.purge_unapproved_agents(now).await;
        next_jti
            .into_iter()
            .chain(next_audit)
            .chain(next_agent)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_in_a_named_part_and_parts_come_largest_first() {
        let usage: Vec<TreeUsage> = Tree::ALL
            .iter()
            .enumerate()
            .map(|(i, &tree)| TreeUsage {
                tree,
                count: 1,
                bytes: i as u64,
            })
            .collect();
        for tree in Tree::ALL {
            assert!(PARTS.contains(&part_of(tree)), "{tree:?}");
        }
        let parts = group(&usage);
        assert_eq!(parts.len(), PARTS.len());
        assert_eq!(
            parts.iter().map(|p| p.count).sum::<u64>(),
            Tree::ALL.len() as u64
        );
        assert!(parts.windows(2).all(|w| w[0].bytes >= w[1].bytes));
        let tokens = parts.iter().find(|p| p.part == "tokens").map(|p| p.count);
        assert_eq!(tokens, Some(2));
    }
}
