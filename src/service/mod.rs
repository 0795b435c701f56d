//! The use cases of the vault: setup, unlock, sessions, records and the audit log.
//!
//! Handlers only translate HTTP; everything that changes state happens here. The vault moves through
//! four phases — [`Phase::Setup`] (no vault yet), [`Phase::Sealed`] (a key file exists, the master
//! key is not in memory), [`Phase::Unsealed`] (an [`OpenVault`] holds the keys and the store) and
//! [`Phase::Erasing`] (everything is being deleted; setup follows).
//! Every state change of an open vault goes through [`OpenVault::change`], which commits the change
//! and its audit entry in one transaction and returns only once both are durable.

pub mod activity;
pub mod agent_tools;
pub mod agents;
pub mod agreements;
mod aliases;
mod attempts;
pub mod audit;
pub mod authorize;
pub mod backup;
pub mod brands;
mod cache;
mod deadlines;
pub mod delivery;
pub mod disclosure;
pub mod dpop;
pub mod erase;
pub mod events;
pub mod export;
pub mod grant_events;
pub mod grants;
pub mod intents;
mod jti_expiry;
pub mod keys;
mod lifecycle;
mod lock;
mod offline;
mod open;
pub mod par;
pub mod proposals;
pub mod records;
pub mod relayed;
mod relayed_offers;
mod restored;
pub mod retention;
pub mod session;
pub mod shred;
pub mod storage;
pub mod subscriptions;
mod tables;
pub mod terms;
pub mod terms_change;
pub mod token_budget;
pub mod tokens;

use std::path::Path;

use crate::crypto::KeyedHash;
use crate::error::AppError;

pub(crate) use attempts::DEVICE_KEY_FILE;
pub use attempts::{AttemptFrom, DEVICE_COOKIE_LIFETIME};
use lifecycle::create_vault;
pub(crate) use lifecycle::initial_phase;
pub use lifecycle::{
    CLIENT_AUTH_FREE_FAILURES, Credential, Phase, Settings, Vault, validate_new_passphrase,
};
pub use offline::{init_offline, offline_unlock_key, open_offline};
pub use open::OpenVault;
pub use session::{NewSession, SessionInfo};

/// Shortest passphrase accepted at setup or change.
pub const MIN_PASSPHRASE_CHARS: usize = 12;
/// Longest passphrase accepted (Argon2id input is unbounded; requests are not).
pub const MAX_PASSPHRASE_CHARS: usize = 1024;
/// Bytes of opened records kept in memory at most (the hot part of a vault is small).
const RECORDS_CACHE_BYTES: u64 = 8 * 1024 * 1024;
/// Bytes of opened brands and of opened agreements kept in memory at most, each.
const BRANDS_CACHE_BYTES: u64 = 1024 * 1024;
/// Key derivations (64 MiB each) allowed at once, so a flood of logins cannot exhaust memory.
const CONCURRENT_KDF: usize = 2;

pub(crate) const KEY_FILE: &str = "keys.json";
pub(crate) const STORE_DIR: &str = "store";
pub(crate) const STORE_SETUP_DIR: &str = "store.setup";
/// Where a migration sets the previous store aside until the new one is in place.
pub(crate) const STORE_OLD_DIR: &str = "store.old";

fn blocking_error(e: tokio::task::JoinError) -> AppError {
    AppError::internal("background task failed", e)
}

pub(crate) fn io_error(what: &'static str, e: std::io::Error) -> AppError {
    AppError::internal(what, e)
}

/// An I/O failure on `path` while `what` (e.g. "reading"): the log names the path.
pub(crate) fn file_error(what: &'static str, path: &Path, e: std::io::Error) -> AppError {
    AppError::internal(
        what,
        crate::error::FileError {
            path: path.to_path_buf(),
            source: e,
        },
    )
}

/// Makes a directory's entries (a rename, a removal) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), AppError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| file_error("syncing", dir, e))
}

/// Removes a directory and everything in it; one that is already gone is fine.
pub(crate) fn remove_dir_if_present(dir: &Path) -> Result<(), AppError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(file_error("removing", dir, e)),
    }
}

/// Creates a directory (and its missing parents) readable by its owner only.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), AppError> {
    crate::files::create_dir(dir).map_err(|e| file_error("creating", dir, e))
}

/// Creates (or truncates) a file readable by its owner only, whatever the umask: every file
/// that holds personal data or keys is made with it (see [`crate::files`]).
pub(crate) fn create_private_file(path: &Path) -> Result<std::fs::File, AppError> {
    crate::files::create(path).map_err(|e| file_error("creating", path, e))
}

/// The opaque store key of `name` in `namespace`: a keyed hash, so store keys reveal nothing.
/// Public for tools and tests that look for a named item on disk (a record is `"record"` and its
/// path).
pub fn index_key(index: &KeyedHash, namespace: &str, name: &str) -> [u8; 32] {
    let mut data = Vec::with_capacity(namespace.len() + 1 + name.len());
    data.extend_from_slice(namespace.as_bytes());
    data.push(0);
    data.extend_from_slice(name.as_bytes());
    index.hash(&data)
}

/// The RFC 8785 canonical form of a JSON value: what hashes and signatures are computed over, so
/// anyone can recompute them from the JSON alone.
pub(crate) fn canonical(value: &serde_json::Value) -> Result<Vec<u8>, AppError> {
    serde_json_canonicalizer::to_vec(value)
        .map_err(|e| AppError::internal("canonicalising JSON", e))
}

/// `sha256:` and the hex SHA-256 of a value's canonical form.
pub(crate) fn canonical_hash(value: &serde_json::Value) -> Result<String, AppError> {
    Ok(format!(
        "sha256:{}",
        data_encoding::HEXLOWER.encode(&crate::crypto::sha256(&canonical(value)?))
    ))
}

/// A store key in the `Meta` tree.
pub(crate) const META_AUDIT_HEAD: &[u8] = b"audit_head";
/// The latest time the running vault has seen, saved at most once a minute (see
/// [`OpenVault::now`]).
pub(crate) const META_CLOCK_FLOOR: &[u8] = b"clock_floor";
