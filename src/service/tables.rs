//! Which type lives in which tree: the typed tables of the vault.
//!
//! The services read and write their values through [`Table`]s instead of encoding JSON by hand,
//! so a tree's type is written down once and decoding happens in one place
//! (`crate::store::Table`). The tables of the domain's types (records, terms pointers, brands,
//! agreements, grants, offers, events, the audit log) are declared here, so that a tree read by
//! several features has one declaration they share. A table whose value type is a feature's own
//! stored form is declared beside that type, in the feature's file (`agreements::AGREEMENT_HEADS`,
//! `authorize::REFRESH_TOKENS`, `keys::SIGNING_KEYS`, `intents::INTENTS`,
//! `subscriptions::SUBSCRIPTIONS`, `events::OUTBOX`, `terms::TERMS`): this file importing the
//! features that import it would make a cycle. Encoding is unchanged: each table's type is the one
//! the service serialised before, so the stored bytes are identical.
//!
//! `Meta` holds singletons of different types: each has its own table on `Meta`, with its key.
//!
//! Not every stored value has a table. The `Meta/sealing` marker is a fixed byte string compared
//! as bytes (`service::shred`), and `Meta/clock_floor` is decimal text read leniently, a value
//! that does not parse being ignored (`service::open`); both stay raw. Walks over many trees at
//! once (the export, a brand's erasure) read them through [`json_view`].

use serde_json::Value;

use crate::domain::audit::{AuditEntry, ChainHead};
use crate::domain::brands::{Agreement, Brand, Invitation};
use crate::domain::grants::Grant;
use crate::domain::offers::Offer;
use crate::domain::records::Record;
use crate::error::AppError;
use crate::store::{Table, TableError, Tree};

/// The owner's records, under a keyed hash of their path.
pub(crate) const RECORDS: Table<Record> = Table::new(Tree::Records, "record");

/// How many records there are, in `Meta` under [`META_RECORD_COUNT`], so that knowing it (for
/// the erasure receipt) costs the same however large the vault is. Its JSON is the number's
/// decimal digits, as it was always written.
pub(crate) const RECORD_COUNT: Table<u64> = Table::new(Tree::Meta, "record count");
pub(crate) const META_RECORD_COUNT: &[u8] = b"record_count";

/// The number of the terms version in force, in `Meta` under [`META_TERMS_CURRENT`].
pub(crate) const TERMS_CURRENT: Table<u64> = Table::new(Tree::Meta, "terms pointer");
pub(crate) const META_TERMS_CURRENT: &[u8] = b"terms_current";

/// Registration invitations, under a keyed hash of their id.
pub(crate) const INVITATIONS: Table<Invitation> = Table::new(Tree::Invitations, "invitation");
/// Registered brands, under a keyed hash of their client id.
pub(crate) const BRANDS: Table<Brand> = Table::new(Tree::Brands, "brand");

/// Agreements with their receipts, under a keyed hash of their id.
pub(crate) const AGREEMENTS: Table<Agreement> = Table::new(Tree::Agreements, "agreement");

/// Data grants, under a keyed hash of their id.
pub(crate) const GRANTS: Table<Grant> = Table::new(Tree::Grants, "grant");
/// Remembered `jti`s (live access tokens, spent client assertions), under a keyed hash of the
/// `jti`, each with its expiry in Unix seconds. Its JSON is the number's decimal digits, as it
/// was always written.
pub(crate) const JTIS: Table<i64> = Table::new(Tree::Jtis, "jti expiry");

/// Brands' offers, under a keyed hash of their id.
pub(crate) const OFFERS: Table<Offer> = Table::new(Tree::Offers, "offer");

/// Brands' event streams: CloudEvents, kept as the JSON they were sent as, under the brand's
/// 16-byte stream prefix and the event's big-endian number.
pub(crate) const EVENTS: Table<Value> = Table::new(Tree::Events, "event");
/// The last event number given out, in `Meta` under [`META_EVENT_SEQ`]. Its JSON is the
/// number's decimal digits, as it was always written.
pub(crate) const EVENT_SEQ: Table<u64> = Table::new(Tree::Meta, "event counter");
pub(crate) const META_EVENT_SEQ: &[u8] = b"event_seq";

/// Any tree read as untyped JSON: for walks that look at one or two fields of values of several
/// types (what belongs to a brand being erased). Never written: a value goes back through its
/// typed table.
pub(crate) const fn json_view(tree: Tree) -> Table<Value> {
    Table::new(tree, "value")
}

/// The audit log, under its big-endian sequence number.
pub(crate) const AUDIT: Table<AuditEntry> = Table::new(Tree::Audit, "audit entry");
/// The audit chain's head, in `Meta` under `super::META_AUDIT_HEAD`.
pub(crate) const AUDIT_HEAD: Table<ChainHead> = Table::new(Tree::Meta, "audit chain head");

impl From<TableError> for AppError {
    /// A store failure keeps its own mapping; a value that does not decode is an internal error
    /// naming the table, with serde's reason (logged, never sent).
    fn from(e: TableError) -> Self {
        match e {
            TableError::Store(e) => e.into(),
            TableError::Decode { .. } | TableError::Encode { .. } => {
                AppError::internal("the store's data", e)
            }
        }
    }
}
