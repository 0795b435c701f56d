//! Opening a vault without the server, for the offline CLI commands (`vrm-vault init`, the
//! unlock-key commands, tools): sled allows one process at a time, so these run only while the
//! server is stopped.

use std::path::Path;

use time::OffsetDateTime;

use super::{
    KEY_FILE, Phase, Settings, audit, create_vault, initial_phase, shred, validate_new_passphrase,
};
use crate::crypto::MasterKey;
use crate::crypto::keyfile::{KeyFile, UnlockKey};
use crate::domain::audit::Event;
use crate::error::{AppError, DataDirError};
use crate::secret::Secret;
use crate::store::Store;

/// Opens a vault directly from its data directory, for the offline CLI commands (the server must
/// not be running: sled allows one process at a time).
pub fn open_offline(
    data_dir: &Path,
    passphrase: &Secret,
) -> Result<(Store, KeyFile, MasterKey), AppError> {
    let settings = Settings::new(data_dir.to_path_buf());
    let keyfile = match initial_phase(&settings)? {
        Phase::Sealed(keyfile) => keyfile,
        _ => {
            return Err(AppError::internal(
                "opening the vault",
                DataDirError::NoVault(data_dir.to_path_buf()),
            ));
        }
    };
    let master = keyfile.unlock_with_passphrase(passphrase.expose())?;
    let (store, _, _) = shred::open_store(&settings, &keyfile, &master).map_err(|e| {
        AppError::internal(
            "cannot open the store (is the server running? stop it first)",
            e,
        )
    })?;
    audit::check_head_marker(data_dir, keyfile.vault_id(), &store)?;
    Ok((store, keyfile, master))
}

/// Adds (`create`) or removes the unlock-key slot while the server is stopped, with an audit
/// entry; returns the new key when one was created.
pub fn offline_unlock_key(
    data_dir: &Path,
    passphrase: &Secret,
    now: OffsetDateTime,
    create: bool,
) -> Result<Option<UnlockKey>, AppError> {
    let (store, mut keyfile, master) = open_offline(data_dir, passphrase)?;
    let (key, action) = if create {
        (Some(keyfile.add_unlock_key(&master)?), "unlock_key.created")
    } else {
        keyfile.remove_unlock_key();
        (None, "unlock_key.removed")
    };
    keyfile.save(&data_dir.join(KEY_FILE))?;
    audit::append_offline(&store, Event::owner(action, None), now)?;
    Ok(key)
}

/// Creates a vault without a server (for `vrm-vault init`); returns the recovery key text.
pub fn init_offline(
    data_dir: &Path,
    passphrase: &Secret,
    now: OffsetDateTime,
) -> Result<Secret, AppError> {
    validate_new_passphrase(passphrase)?;
    let settings = Settings::new(data_dir.to_path_buf());
    if !matches!(initial_phase(&settings)?, Phase::Setup) {
        return Err(AppError::Conflict(
            "a vault already exists in this data directory",
        ));
    }
    let (_, _, recovery) = create_vault(&settings, passphrase, now)?;
    Ok(Secret::new(recovery.display().as_str()))
}
