//! The audit log: an append-only chain of entries, each holding the hash of the one before.
//!
//! The hash of an entry is `H(canonical bytes of the entry without its hash)`, where the entry
//! includes `prev_hash`; `H` is passed in (SHA-256 in the vault) so this module stays free of
//! cryptography. A modified entry changes its hash; a removed or reordered entry breaks the link of
//! the next one; a removed tail is caught by comparing with the separately stored chain head.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    Owner,
    System,
    /// A registered brand; the entry's target is its client id.
    Brand,
    /// The person's own AI assistant, connected over MCP; the entry's target is its client id
    /// and its detail names it (`agent`), since assistants are not brands.
    Agent,
}

/// One entry as stored and as shown to the owner. Field order is the canonical order: frozen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: Actor,
    /// A dotted verb such as `record.put` or `vault.unlocked`.
    pub action: String,
    /// What the action was about (a record path, a session), never a record's value.
    pub target: Option<String>,
    pub detail: Option<serde_json::Value>,
    pub prev_hash: String,
    pub hash: String,
}

/// An entry as it is hashed: the same fields in the same order, with `hash` empty. Borrowed, so
/// hashing an entry copies nothing.
#[derive(Serialize)]
struct Unhashed<'a> {
    seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    actor: &'a Actor,
    action: &'a str,
    target: &'a Option<String>,
    detail: &'a Option<serde_json::Value>,
    prev_hash: &'a str,
    hash: &'static str,
}

impl<'a> Unhashed<'a> {
    fn of(entry: &'a AuditEntry) -> Unhashed<'a> {
        Unhashed {
            seq: entry.seq,
            at: entry.at,
            actor: &entry.actor,
            action: &entry.action,
            target: &entry.target,
            detail: &entry.detail,
            prev_hash: &entry.prev_hash,
            hash: "",
        }
    }
}

/// The last entry's position and hash, stored apart from the entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: String,
}

impl Default for ChainHead {
    fn default() -> Self {
        ChainHead {
            seq: 0,
            hash: GENESIS_HASH.into(),
        }
    }
}

/// Something that happened, before it is placed in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub actor: Actor,
    pub action: &'static str,
    pub target: Option<String>,
    pub detail: Option<serde_json::Value>,
}

impl Event {
    pub fn owner(action: &'static str, target: Option<String>) -> Event {
        Event {
            actor: Actor::Owner,
            action,
            target,
            detail: None,
        }
    }

    pub fn system(action: &'static str) -> Event {
        Event {
            actor: Actor::System,
            action,
            target: None,
            detail: None,
        }
    }

    pub fn brand(action: &'static str, client_id: &str) -> Event {
        Event {
            actor: Actor::Brand,
            action,
            target: Some(client_id.to_owned()),
            detail: None,
        }
    }

    /// Something the person's assistant did (or tried) through a tool.
    pub fn agent(action: &'static str, client_id: &str) -> Event {
        Event {
            actor: Actor::Agent,
            action,
            target: Some(client_id.to_owned()),
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> Event {
        self.detail = Some(detail);
        self
    }

    /// Whether this change may have taken away a brand's access: what was allowed a moment ago
    /// (an open event stream, a token) must be checked again now.
    pub fn withdraws_access(&self) -> bool {
        WITHDRAWING_ACCESS.contains(&self.action)
    }
}

/// The actions after which a token that was valid may no longer be: its own revocation, its
/// grant's, its brand's suspension or removal, its agreement's end, new terms in force (tokens
/// are bound to the agreement on the terms in force), a refresh-token replay (which revokes the
/// family), and the start of deleting everything.
const WITHDRAWING_ACCESS: &[&str] = &[
    "token.revoked",
    "grant.revoked",
    "grant.revoked_all",
    "brand.suspended",
    "brand.removed",
    "brand.erased",
    "agreement.withdrawn",
    "agreement.terminated",
    "terms.published",
    "refresh_token.replayed",
    "vault.erasing",
];

fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

impl AuditEntry {
    /// Places `event` after `head`, computing its hash with `hash`.
    pub fn chain(
        event: Event,
        head: &ChainHead,
        at: OffsetDateTime,
        hash: impl Fn(&[u8]) -> [u8; 32],
    ) -> AuditEntry {
        let mut entry = AuditEntry {
            seq: head.seq + 1,
            at,
            actor: event.actor,
            action: event.action.into(),
            target: event.target,
            detail: event.detail,
            prev_hash: head.hash.clone(),
            hash: String::new(),
        };
        entry.hash = entry.compute_hash(&hash);
        entry
    }

    /// The hash this entry should have: over its canonical JSON with `hash` left empty.
    pub fn compute_hash(&self, hash: impl Fn(&[u8]) -> [u8; 32]) -> String {
        // Serialising a struct with no maps of our own keeps field order fixed; `detail` maps are
        // serde_json's BTreeMap-backed objects, whose keys come out sorted.
        let bytes = serde_json::to_vec(&Unhashed::of(self)).unwrap_or_default();
        hex(&hash(&bytes))
    }

    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }
}

/// Why a chain does not verify, naming the first entry at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("entry {0} cannot be opened: it was modified, moved or damaged")]
    Unreadable(u64),
    #[error("entry {seq} is missing (the log jumps from {prev} to {seq})")]
    Gap { prev: u64, seq: u64 },
    #[error("entry {0} does not match its own hash: it was modified")]
    Modified(u64),
    #[error("entry {0} does not follow the entry before it: entries were removed or reordered")]
    BrokenLink(u64),
    #[error("the log ends at entry {found} but its head says {expected}: entries were removed")]
    Truncated { found: u64, expected: u64 },
    #[error("the log's head does not match its last entry")]
    HeadMismatch,
    #[error(
        "the checkpoint of pruned entries does not carry the vault's signature: it was modified"
    )]
    CheckpointForged,
}

/// The outcome of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// The chain's length: the last entry's sequence number, pruned entries included.
    pub entries: u64,
    pub head: String,
    /// Entries before the first one kept, removed under the retention policy and vouched for by
    /// the signed checkpoint (0 if none were).
    pub pruned: u64,
    /// The time of the last pruned entry: nothing from before it is left.
    #[serde(with = "time::serde::rfc3339::option")]
    pub pruned_through: Option<OffsetDateTime>,
}

/// Verifies a chain given its entries in key order (`Err(seq)` for one that did not open) and the
/// stored head.
pub fn verify_chain(
    entries: impl IntoIterator<Item = Result<AuditEntry, u64>>,
    head: &ChainHead,
    hash: impl Fn(&[u8]) -> [u8; 32],
) -> Result<Verified, ChainError> {
    verify_chain_from(ChainHead::default(), entries, head, hash)
}

/// Verifies what is left of a chain whose entries up to `start.seq` were pruned: the first entry
/// must follow `start` (the pruned part's last position and hash, from a checkpoint whose
/// signature the caller checked) as if it were an entry.
pub fn verify_chain_from(
    start: ChainHead,
    entries: impl IntoIterator<Item = Result<AuditEntry, u64>>,
    head: &ChainHead,
    hash: impl Fn(&[u8]) -> [u8; 32],
) -> Result<Verified, ChainError> {
    let pruned = start.seq;
    let mut last = start;
    for item in entries {
        let entry = item.map_err(ChainError::Unreadable)?;
        if entry.seq != last.seq + 1 {
            return Err(ChainError::Gap {
                prev: last.seq,
                seq: entry.seq,
            });
        }
        if entry.compute_hash(&hash) != entry.hash {
            return Err(ChainError::Modified(entry.seq));
        }
        if entry.prev_hash != last.hash {
            return Err(ChainError::BrokenLink(entry.seq));
        }
        last = entry.head();
    }
    if last.seq < head.seq {
        return Err(ChainError::Truncated {
            found: last.seq,
            expected: head.seq,
        });
    }
    if last != *head {
        return Err(ChainError::HeadMismatch);
    }
    Ok(Verified {
        entries: last.seq,
        head: last.hash,
        pruned,
        pruned_through: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // A stand-in hash for the pure tests; the vault uses SHA-256.
    fn toy_hash(data: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in data.iter().enumerate() {
            out[i % 32] = out[i % 32].wrapping_mul(31).wrapping_add(*b);
        }
        out
    }

    fn chain(n: u64) -> (Vec<AuditEntry>, ChainHead) {
        let mut head = ChainHead::default();
        let mut entries = vec![];
        for i in 0..n {
            let e = AuditEntry::chain(
                Event::owner("record.put", Some(format!("a.b{i}"))),
                &head,
                OffsetDateTime::UNIX_EPOCH,
                toy_hash,
            );
            head = e.head();
            entries.push(e);
        }
        (entries, head)
    }

    fn check(entries: &[AuditEntry], head: &ChainHead) -> Result<Verified, ChainError> {
        verify_chain(entries.iter().cloned().map(Ok), head, toy_hash)
    }

    #[test]
    fn the_hash_covers_the_stored_form_with_an_empty_hash() {
        // The frozen definition: the hash is over the entry's own JSON with `hash` empty.
        let entry = AuditEntry::chain(
            Event::brand("data.read", "c_1").with_detail(serde_json::json!({
                "grant": "g_1", "fields": ["contact.email"], "purpose": "dpv:ServiceProvision",
            })),
            &ChainHead::default(),
            OffsetDateTime::UNIX_EPOCH,
            toy_hash,
        );
        let mut unhashed = entry.clone();
        unhashed.hash = String::new();
        let expected = hex(&toy_hash(&serde_json::to_vec(&unhashed).unwrap()));
        assert_eq!(entry.hash, expected);
    }

    #[test]
    fn intact_chain_verifies() {
        let (entries, head) = chain(5);
        assert_eq!(check(&entries, &head).unwrap().entries, 5);
        assert!(check(&[], &ChainHead::default()).is_ok());
    }

    #[test]
    fn a_pruned_chain_verifies_from_its_checkpoint_and_only_from_it() {
        let (entries, head) = chain(6);
        let start = entries[2].head();
        let rest = &entries[3..];
        let verified =
            verify_chain_from(start.clone(), rest.iter().cloned().map(Ok), &head, toy_hash)
                .unwrap();
        assert_eq!((verified.entries, verified.pruned), (6, 3));
        // Without the checkpoint the remaining entries do not start a chain.
        assert_eq!(check(rest, &head), Err(ChainError::Gap { prev: 0, seq: 4 }));
        // A checkpoint naming another hash, or more pruned entries than there were, fails.
        let wrong = ChainHead {
            seq: 3,
            hash: entries[1].hash.clone(),
        };
        let linked = verify_chain_from(wrong, rest.iter().cloned().map(Ok), &head, toy_hash);
        assert_eq!(linked, Err(ChainError::BrokenLink(4)));
        let further = verify_chain_from(
            entries[3].head(),
            rest.iter().cloned().map(Ok),
            &head,
            toy_hash,
        );
        assert_eq!(further, Err(ChainError::Gap { prev: 4, seq: 4 }));
    }

    #[test]
    fn tampering_is_detected() {
        let (entries, head) = chain(5);
        let mut modified = entries.clone();
        modified[2].target = Some("other".into());
        assert_eq!(check(&modified, &head), Err(ChainError::Modified(3)));

        let mut removed = entries.clone();
        removed.remove(2);
        assert_eq!(
            check(&removed, &head),
            Err(ChainError::Gap { prev: 2, seq: 4 })
        );

        let mut reordered = entries.clone();
        reordered.swap(1, 2);
        assert!(check(&reordered, &head).is_err());

        // Renumbering a reordered entry and fixing its own hash still breaks the link.
        let mut relinked = entries.clone();
        relinked.remove(2);
        relinked[2].seq = 3;
        relinked[2].hash = relinked[2].compute_hash(toy_hash);
        relinked[3].seq = 4;
        assert!(check(&relinked, &head).is_err());

        let truncated = &entries[..4];
        assert_eq!(
            check(truncated, &head),
            Err(ChainError::Truncated {
                found: 4,
                expected: 5
            })
        );
        assert_eq!(
            verify_chain(vec![Ok(entries[0].clone()), Err(2)], &head, toy_hash),
            Err(ChainError::Unreadable(2))
        );
    }
}
