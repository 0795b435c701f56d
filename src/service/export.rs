//! Export (GDPR Art. 20): everything the vault holds for the person, as one JSON document that
//! reads without the vault. Its shape is frozen by `policies/export.schema.json`.
//!
//! The document is written object by object straight from the store, so an export of any size
//! needs memory for one object at a time. Objects are the stored JSON, with the few fields that
//! are secrets of the vault's own plumbing (hashes of brands' client secrets, webhook signing
//! secrets, invitation token hashes) left out; the vault's private signing keys, live token ids,
//! refresh tokens and delivery queues are not the person's data and are not exported.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::Value;
use time::OffsetDateTime;

use super::OpenVault;
use crate::domain::audit::Event;
use crate::error::AppError;
use crate::store::{Store, Tree};

use super::tables::json_view;

/// The `format` member of every export.
pub const FORMAT: &str = "vrm-vault-export";
/// The `format_version` member: bump it (and the schema) when the shape changes.
pub const FORMAT_VERSION: u64 = 1;
/// The JSON Schema of the export, as shipped in `policies/`.
pub const SCHEMA: &str = include_str!("../../policies/export.schema.json");

/// One array of the export: its member name, the tree it comes from, and the fields left out.
struct Section {
    name: &'static str,
    tree: Tree,
    hidden: &'static [&'static str],
}

/// The arrays of an export, in document order.
const SECTIONS: [Section; 12] = [
    Section {
        name: "records",
        tree: Tree::Records,
        hidden: &[],
    },
    Section {
        name: "terms",
        tree: Tree::Terms,
        hidden: &[],
    },
    Section {
        name: "invitations",
        tree: Tree::Invitations,
        hidden: &["token_hash"],
    },
    Section {
        name: "brands",
        tree: Tree::Brands,
        hidden: &["secret_hash"],
    },
    Section {
        name: "agreements",
        tree: Tree::Agreements,
        hidden: &[],
    },
    Section {
        name: "grants",
        tree: Tree::Grants,
        hidden: &[],
    },
    Section {
        name: "intents",
        tree: Tree::Intents,
        hidden: &["relay_key"],
    },
    Section {
        name: "offers",
        tree: Tree::Offers,
        hidden: &[],
    },
    Section {
        name: "proposals",
        tree: Tree::Proposals,
        hidden: &[],
    },
    Section {
        name: "subscriptions",
        tree: Tree::Subscriptions,
        hidden: &["webhook_secret", "previous_secret"],
    },
    // The person's assistants: who they connected and what they allowed; never the hashes of
    // their refresh tokens.
    Section {
        name: "assistants",
        tree: Tree::Agents,
        hidden: &["refresh"],
    },
    Section {
        name: "audit",
        tree: Tree::Audit,
        hidden: &[],
    },
];

/// How many objects of each kind an export held.
pub type ExportCounts = BTreeMap<&'static str, u64>;

fn io_error(e: std::io::Error) -> AppError {
    AppError::internal("writing the export", e)
}

fn json_error(e: serde_json::Error) -> AppError {
    AppError::internal("encoding the export", e)
}

/// Writes the export of `store` to `out`, one object at a time.
pub fn write_export(
    store: &Store,
    exported_at: OffsetDateTime,
    out: &mut dyn Write,
) -> Result<ExportCounts, AppError> {
    let header = serde_json::json!({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "exported_at": exported_at
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| AppError::internal("formatting the export time", e))?,
        "software": concat!("vrm-vault ", env!("CARGO_PKG_VERSION")),
    });
    let header = serde_json::to_vec(&header).map_err(json_error)?;
    // The header object without its closing brace; the sections follow as further members.
    out.write_all(header.get(..header.len() - 1).unwrap_or_default())
        .map_err(io_error)?;
    // The chain head is read first and the audit section stops at it, so the log and its head
    // agree even if entries are appended while the export streams. (The other sections are read
    // as they are when reached: an export is not a point-in-time copy; a backup is.)
    let head = super::audit::load_head(store)?;
    let last_entry = head.seq.to_be_bytes();
    // Entries pruned under the retention are vouched for by the checkpoint the section follows.
    let checkpoint = super::retention::load_checkpoint(store)?;
    let mut counts = ExportCounts::new();
    for section in &SECTIONS {
        write!(out, ",\"{}\":[", section.name).map_err(io_error)?;
        let mut count = 0u64;
        // Every section is exported as the JSON it is stored as, less its hidden fields.
        let view = json_view(section.tree);
        for item in store.iter(section.tree) {
            let (key, bytes) = item?;
            if section.tree == Tree::Audit && key.as_slice() > last_entry.as_slice() {
                break;
            }
            let mut value = view.decode(&bytes)?;
            if let Value::Object(fields) = &mut value {
                for hidden in section.hidden {
                    fields.remove(*hidden);
                }
            }
            if count > 0 {
                out.write_all(b",").map_err(io_error)?;
            }
            serde_json::to_writer(&mut *out, &value).map_err(json_error)?;
            count += 1;
        }
        out.write_all(b"]").map_err(io_error)?;
        counts.insert(section.name, count);
    }
    out.write_all(b",\"audit_head\":").map_err(io_error)?;
    serde_json::to_writer(&mut *out, &head).map_err(json_error)?;
    out.write_all(b",\"audit_checkpoint\":").map_err(io_error)?;
    serde_json::to_writer(&mut *out, &checkpoint).map_err(json_error)?;
    out.write_all(b"}\n").map_err(io_error)?;
    out.flush().map_err(io_error)?;
    Ok(counts)
}

impl OpenVault {
    /// Records that an export starts (the audit log says when the person took their data), and
    /// returns the store to write it from.
    pub async fn begin_export(&self) -> Result<Store, AppError> {
        self.change(|_| Ok(((), Event::owner("vault.exported", None))))
            .await?;
        Ok(self.store.clone())
    }
}
