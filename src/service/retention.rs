//! The audit log's retention: the person chooses how long entries are kept (days) and how many
//! at most; the background worker prunes the oldest beyond either, leaving a signed checkpoint
//! so that verification still proves the chain that is left (see [`crate::domain::retention`]).
//!
//! Pruning is deadline-driven like the rest of the background work: after each pass the worker
//! sleeps until the oldest entry left comes of age, and a write that takes the log over its
//! count cap rings the alarm ([`OpenVault::audit_appended`]) — a comparison of two numbers in
//! memory, so the hot path pays nothing for it. One pass removes at most [`BATCH`] entries in
//! one write (with the new checkpoint and an `audit.pruned` entry, atomically), so the writer is
//! never held long; a larger backlog is worked off pass after pass.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use super::tables::{AUDIT, AUDIT_HEAD};
use super::{META_AUDIT_HEAD, OpenVault};
use crate::crypto::{KeyedHash, constant_time_eq};
use crate::domain::audit::{ChainError, Event};
use crate::domain::retention::{Checkpoint, Retention};
use crate::error::AppError;
use crate::store::{Store, Table, Tree};

/// The person's retention, in `Meta` under [`META_RETENTION`] (the default while none is set).
pub(crate) const RETENTION: Table<Retention> = Table::new(Tree::Meta, "audit retention");
const META_RETENTION: &[u8] = b"audit_retention";
/// The checkpoint of pruned entries, in `Meta` under [`META_CHECKPOINT`] (none until the first
/// pruning).
pub(crate) const CHECKPOINT: Table<Checkpoint> = Table::new(Tree::Meta, "audit checkpoint");
const META_CHECKPOINT: &[u8] = b"audit_checkpoint";

/// Entries removed in one write.
const BATCH: u64 = 2_000;
/// How soon a pass that could not read or write is tried again.
const RETRY: Duration = Duration::minutes(1);

/// What the retention keeps in memory: the signing key, and the two numbers a write compares
/// to know whether the log went over its cap.
#[derive(Debug)]
pub(crate) struct RetentionState {
    key: KeyedHash,
    pruned: AtomicU64,
    max_entries: AtomicU64,
}

impl RetentionState {
    /// The key that signs and checks the checkpoint.
    pub(super) fn key(&self) -> &KeyedHash {
        &self.key
    }

    pub(super) fn load(store: &Store, key: KeyedHash) -> Result<RetentionState, AppError> {
        let pruned = load_checkpoint(store)?.map_or(0, |c| c.pruned);
        let policy = load_retention(store)?;
        Ok(RetentionState {
            key,
            pruned: AtomicU64::new(pruned),
            max_entries: AtomicU64::new(policy.max_entries),
        })
    }
}

fn load_retention(store: &Store) -> Result<Retention, AppError> {
    Ok(store.read(&RETENTION, META_RETENTION)?.unwrap_or_default())
}

/// The stored checkpoint, if entries were ever pruned.
pub(crate) fn load_checkpoint(store: &Store) -> Result<Option<Checkpoint>, AppError> {
    Ok(store.read(&CHECKPOINT, META_CHECKPOINT)?)
}

fn signature(key: &KeyedHash, checkpoint: &Checkpoint) -> String {
    data_encoding::HEXLOWER.encode(&key.hash(&checkpoint.signed_bytes()))
}

/// The checkpoint of `store`, its signature checked with `key`: where verification starts.
pub(crate) fn checked_checkpoint(
    store: &Store,
    key: &KeyedHash,
) -> Result<Option<Checkpoint>, AppError> {
    match load_checkpoint(store)? {
        Some(checkpoint)
            if !constant_time_eq(
                signature(key, &checkpoint).as_bytes(),
                checkpoint.signature.as_bytes(),
            ) =>
        {
            Err(ChainError::CheckpointForged.into())
        }
        other => Ok(other),
    }
}

/// How the audit log uses its retention, for the owner's storage view.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditLogUse {
    /// Entries in the log now.
    pub entries: u64,
    /// Entries pruned so far under the retention.
    pub pruned: u64,
    /// The time of the last pruned entry: the log holds nothing older.
    #[serde(with = "time::serde::rfc3339::option")]
    pub pruned_through: Option<OffsetDateTime>,
    /// The time of the oldest entry left.
    #[serde(with = "time::serde::rfc3339::option")]
    pub oldest: Option<OffsetDateTime>,
    pub retention: Retention,
}

impl OpenVault {
    /// The retention in force.
    pub fn audit_retention(&self) -> Result<Retention, AppError> {
        load_retention(self.store())
    }

    /// Sets the retention (validated; an audited change), and has the worker apply it now.
    pub async fn set_audit_retention(&self, policy: Retention) -> Result<Retention, AppError> {
        policy
            .validate()
            .map_err(|e| AppError::invalid_at("invalid_retention", e.field(), e.to_string()))?;
        let event = Event::owner("audit.retention_set", None).with_detail(serde_json::json!({
            "days": policy.days,
            "max_entries": policy.max_entries,
        }));
        self.change(move |tx| {
            tx.write(&RETENTION, META_RETENTION, &policy)?;
            Ok(((), event))
        })
        .await?;
        self.retention
            .max_entries
            .store(policy.max_entries, Ordering::Release);
        self.alarm.0.arm(self.clock.now());
        Ok(policy)
    }

    /// An entry numbered `seq` was appended: rings the worker if the log is over its cap.
    pub(crate) fn audit_appended(&self, seq: u64) {
        let kept = seq.saturating_sub(self.retention.pruned.load(Ordering::Acquire));
        if kept > self.retention.max_entries.load(Ordering::Acquire) {
            self.alarm.0.arm(self.clock.now());
        }
    }

    /// The log's size, what was pruned and the retention, for the storage view.
    pub fn audit_log_use(&self) -> Result<AuditLogUse, AppError> {
        let store = self.store();
        let checkpoint = load_checkpoint(store)?;
        let pruned = checkpoint.as_ref().map_or(0, |c| c.pruned);
        let head = store
            .read(&AUDIT_HEAD, META_AUDIT_HEAD)?
            .unwrap_or_default();
        let oldest = store
            .read_after(&AUDIT, Some(&pruned.to_be_bytes()))
            .next()
            .transpose()?
            .map(|(_, entry)| entry.at);
        Ok(AuditLogUse {
            entries: head.seq.saturating_sub(pruned),
            pruned,
            pruned_through: checkpoint.map(|c| c.last_at),
            oldest,
            retention: load_retention(store)?,
        })
    }

    /// Prunes what the retention lets go at `now` (run by the background worker), one batch;
    /// returns when to look again: now if a backlog is left, else when the oldest entry left
    /// comes of age.
    pub(crate) async fn prune_audit(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        match self.prune_audit_batch(now).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, "pruning the audit log under its retention");
                Some(now + RETRY)
            }
        }
    }

    async fn prune_audit_batch(
        &self,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, AppError> {
        let store = self.store();
        let policy = load_retention(store)?;
        let pruned = load_checkpoint(store)?.map_or(0, |c| c.pruned);
        let head = store
            .read(&AUDIT_HEAD, META_AUDIT_HEAD)?
            .unwrap_or_default();
        // Entries are immutable once written: reading them outside the writer is safe, and
        // only this worker prunes. They are read oldest first and only as far as the first one
        // kept, so a pass with nothing to do opens one entry.
        let by_count = policy.count_cut(pruned, head.seq);
        let limit = (pruned + BATCH).min(head.seq);
        let mut last = None;
        let mut oldest_kept = None;
        for item in store.read_after(&AUDIT, Some(&pruned.to_be_bytes())) {
            let (_, entry) = item?;
            if entry.seq > limit {
                break;
            }
            if !policy.prunes(entry.seq, entry.at, by_count, now) {
                oldest_kept = Some(entry.at);
                break;
            }
            last = Some(entry);
        }
        let Some(last) = last else {
            return Ok(oldest_kept.map(|at| policy.expires(at)));
        };
        let cut = last.seq;
        let mut checkpoint = Checkpoint {
            pruned: cut,
            last_hash: last.hash.clone(),
            last_at: last.at,
            signature: String::new(),
        };
        checkpoint.signature = signature(&self.retention.key, &checkpoint);
        let event = Event::system("audit.pruned").with_detail(serde_json::json!({
            "entries": cut - pruned,
            "through_seq": cut,
            "through": last.at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "retention_days": policy.days,
            "max_entries": policy.max_entries,
        }));
        self.change(move |tx| {
            let stored = tx
                .read(&CHECKPOINT, META_CHECKPOINT)?
                .map_or(0, |c| c.pruned);
            if stored != pruned {
                return Err(AppError::Conflict("the audit log was pruned meanwhile"));
            }
            for seq in pruned + 1..=cut {
                tx.remove(AUDIT.tree(), &seq.to_be_bytes())?;
            }
            tx.write(&CHECKPOINT, META_CHECKPOINT, &checkpoint)?;
            Ok(((), event))
        })
        .await?;
        self.retention.pruned.store(cut, Ordering::Release);
        tracing::info!(
            entries = cut - pruned,
            through = cut,
            "audit log pruned under its retention"
        );
        // Whatever is left may be due as well: look again at once.
        Ok(Some(now))
    }
}
