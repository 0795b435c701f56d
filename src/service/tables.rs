//! Which type lives in which tree: every typed table of the vault, declared in one place.
//!
//! The services read and write their values through these [`Table`]s instead of encoding JSON by
//! hand, so a tree's type is written down once and decoding happens in one place
//! (`crate::store::Table`). They are listed here together, rather than beside each feature, so
//! that this file reads as the store's table of contents (as `Tree` does for the tree names), and
//! so that a tree read by several features (brands, agreements) has one declaration they share.
//! Encoding is unchanged: each table's type is the one the service serialised before, so the
//! stored bytes are identical.
//!
//! `Meta` holds singletons of different types: each has its own table on `Meta`, with its key.

use crate::domain::audit::{AuditEntry, ChainHead};
use crate::domain::brands::{Agreement, Brand, Invitation};
use crate::domain::records::Record;
use crate::error::AppError;
use crate::store::{Table, TableError, Tree};

use super::agreements::AgreementHead;
use super::terms::TermsVersion;

/// The owner's records, under a keyed hash of their path.
pub(crate) const RECORDS: Table<Record> = Table::new(Tree::Records, "record");

/// Published terms versions, under their big-endian number.
pub(crate) const TERMS: Table<TermsVersion> = Table::new(Tree::Terms, "terms version");
/// The number of the terms version in force, in `Meta` under [`META_TERMS_CURRENT`].
pub(crate) const TERMS_CURRENT: Table<u64> = Table::new(Tree::Meta, "terms pointer");
pub(crate) const META_TERMS_CURRENT: &[u8] = b"terms_current";

/// Registration invitations, under a keyed hash of their id.
pub(crate) const INVITATIONS: Table<Invitation> = Table::new(Tree::Invitations, "invitation");
/// Registered brands, under a keyed hash of their client id.
pub(crate) const BRANDS: Table<Brand> = Table::new(Tree::Brands, "brand");

/// Agreements with their receipts, under a keyed hash of their id.
pub(crate) const AGREEMENTS: Table<Agreement> = Table::new(Tree::Agreements, "agreement");
/// The same values read without their receipt: a read-only view for the checks on every brand
/// request, never written (it would drop the receipt).
pub(crate) const AGREEMENT_HEADS: Table<AgreementHead> = Table::new(Tree::Agreements, "agreement");

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
            TableError::Decode { ref source, .. } | TableError::Encode { ref source, .. } => {
                AppError::Internal(format!("{e}: {source}"))
            }
        }
    }
}
