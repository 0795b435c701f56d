//! How long the audit log keeps its entries, and the checkpoint that vouches for what it let go.
//!
//! The log is a hash chain (see [`super::audit`]): removing its oldest entries would make the
//! first one left look like a gap. So pruning leaves a *checkpoint* — how many entries were
//! pruned, the hash and time of the last of them — signed with a key only the vault holds (the
//! signature is computed outside this module, which does no cryptography, over
//! [`Checkpoint::signed_bytes`]). Verification starts from the checkpoint as if it were an
//! entry: the first entry left must follow it. Whoever lacks the vault's key can neither remove
//! further entries (the next one would not follow the checkpoint) nor move the checkpoint.
//!
//! The policy keeps entries younger than `days` and at most `max_entries` of them. The count
//! cap is applied with a margin (down to 99 % of it), so a full log is pruned in batches, not on
//! every write.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::audit::ChainHead;

/// The person's choice of how long the audit log keeps entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Retention {
    /// Entries older than this many days are pruned.
    pub days: u32,
    /// At most this many entries are kept (the oldest go first).
    pub max_entries: u64,
}

impl Default for Retention {
    /// A year, and half a million entries (about 200 MB of entries, 600 MB of disk).
    fn default() -> Self {
        Retention {
            days: 365,
            max_entries: 500_000,
        }
    }
}

/// The bounds a retention must keep to.
pub const MIN_DAYS: u32 = 1;
/// A hundred years: as good as forever.
pub const MAX_DAYS: u32 = 36_500;
pub const MIN_ENTRIES: u64 = 100;
pub const MAX_ENTRIES: u64 = 100_000_000;

/// A retention outside its bounds, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    #[error("days must be between {MIN_DAYS} and {MAX_DAYS}")]
    Days,
    #[error("max_entries must be between {MIN_ENTRIES} and {MAX_ENTRIES}")]
    MaxEntries,
}

impl RetentionError {
    pub fn field(&self) -> &'static str {
        match self {
            RetentionError::Days => "days",
            RetentionError::MaxEntries => "max_entries",
        }
    }
}

impl Retention {
    pub fn validate(&self) -> Result<(), RetentionError> {
        if !(MIN_DAYS..=MAX_DAYS).contains(&self.days) {
            return Err(RetentionError::Days);
        }
        if !(MIN_ENTRIES..=MAX_ENTRIES).contains(&self.max_entries) {
            return Err(RetentionError::MaxEntries);
        }
        Ok(())
    }

    /// The oldest time an entry may have at `now` and be kept.
    pub fn cutoff(&self, now: OffsetDateTime) -> OffsetDateTime {
        now - Duration::days(i64::from(self.days))
    }

    /// Entries (by sequence number) up to which the count cap prunes, for a log of entries
    /// `pruned + 1 ..= head`; `None` while within the cap.
    pub fn count_cut(&self, pruned: u64, head: u64) -> Option<u64> {
        let kept = head.saturating_sub(pruned);
        if kept <= self.max_entries {
            return None;
        }
        let keep = self.max_entries - self.max_entries / 100;
        Some(head - keep)
    }

    /// Whether the entry numbered `seq`, made at `at`, is pruned at `now`: it is older than the
    /// retention's days, or within the count cut ([`Retention::count_cut`]). Entry times never
    /// go backwards, so the entries to prune are always the oldest, up to the first one kept.
    pub fn prunes(
        &self,
        seq: u64,
        at: OffsetDateTime,
        count_cut: Option<u64>,
        now: OffsetDateTime,
    ) -> bool {
        count_cut.is_some_and(|cut| seq <= cut) || at < self.cutoff(now)
    }

    /// When an entry made at `at` becomes due for pruning by age.
    pub fn expires(&self, at: OffsetDateTime) -> OffsetDateTime {
        at + Duration::days(i64::from(self.days))
    }
}

/// What pruning left in place of the entries it removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Entries `1 ..= pruned` were pruned: the first entry left is `pruned + 1`.
    pub pruned: u64,
    /// The hash of entry `pruned`: the first entry left holds it as its `prev_hash`.
    pub last_hash: String,
    /// The time of entry `pruned`.
    #[serde(with = "time::serde::rfc3339")]
    pub last_at: OffsetDateTime,
    /// The vault's signature over [`Checkpoint::signed_bytes`], hex.
    pub signature: String,
}

/// The signed part of a checkpoint, in its frozen order.
#[derive(Serialize)]
struct Signed<'a> {
    purpose: &'static str,
    pruned: u64,
    last_hash: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    last_at: OffsetDateTime,
}

impl Checkpoint {
    /// The bytes the vault signs: every field but the signature, with a purpose label so that
    /// nothing else the same key could sign passes for a checkpoint.
    pub fn signed_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&Signed {
            purpose: "vrm-vault audit checkpoint v1",
            pruned: self.pruned,
            last_hash: &self.last_hash,
            last_at: self.last_at,
        })
        .unwrap_or_default()
    }

    /// Where verification of the entries left starts.
    pub fn start(&self) -> ChainHead {
        ChainHead {
            seq: self.pruned,
            hash: self.last_hash.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(days: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000 + days)
    }

    #[test]
    fn the_count_cap_prunes_to_a_margin_below_it() {
        let policy = Retention {
            days: 365,
            max_entries: 1000,
        };
        assert_eq!(policy.count_cut(0, 1000), None);
        // One over the cap: prune down to 990 kept.
        assert_eq!(policy.count_cut(0, 1001), Some(11));
        assert_eq!(policy.count_cut(11, 1001), None);
        assert_eq!(policy.count_cut(500, 2600), Some(1610));
    }

    #[test]
    fn age_prunes_the_entries_made_before_the_cutoff() {
        let policy = Retention::default();
        let now = at(400);
        let cutoff = policy.cutoff(now);
        assert_eq!(cutoff, at(35));
        assert!(policy.prunes(6, at(34), None, now));
        assert!(!policy.prunes(7, at(35), None, now));
        // The count cut prunes young entries too.
        assert!(policy.prunes(7, at(399), Some(7), now));
        assert!(!policy.prunes(8, at(399), Some(7), now));
        assert_eq!(policy.expires(at(35)), at(400));
    }

    #[test]
    fn bounds_are_checked_and_named() {
        assert!(Retention::default().validate().is_ok());
        let none = Retention {
            days: 0,
            ..Retention::default()
        };
        assert_eq!(none.validate().unwrap_err().field(), "days");
        let few = Retention {
            days: MAX_DAYS,
            max_entries: MIN_ENTRIES - 1,
        };
        assert_eq!(few.validate().unwrap_err().field(), "max_entries");
    }

    #[test]
    fn the_signature_covers_every_field_but_itself() {
        let checkpoint = Checkpoint {
            pruned: 41,
            last_hash: "ab".repeat(32),
            last_at: at(1),
            signature: String::new(),
        };
        let bytes = checkpoint.signed_bytes();
        let mut other = checkpoint.clone();
        other.signature = "00".into();
        assert_eq!(other.signed_bytes(), bytes);
        for changed in [
            Checkpoint {
                pruned: 42,
                ..checkpoint.clone()
            },
            Checkpoint {
                last_hash: "cd".repeat(32),
                ..checkpoint.clone()
            },
            Checkpoint {
                last_at: at(2),
                ..checkpoint.clone()
            },
        ] {
            assert_ne!(changed.signed_bytes(), bytes);
        }
        assert_eq!(checkpoint.start().seq, 41);
    }
}
