//! The key file: the vault master key, wrapped, in a small JSON file beside the store.
//!
//! The master key is wrapped (AES-256-GCM) in independent slots: by a key derived from the owner's
//! passphrase with Argon2id, by the recovery key shown once at setup, and optionally by an unlock key
//! kept in a file for unattended restarts. Changing the passphrase rewrites one slot and nothing else:
//! no stored data is re-encrypted. Destroying this file is what crypto-shreds the store.
//!
//! The file is replaced atomically (temporary file, fsync, rename, fsync of the directory), so a crash
//! leaves either the old or the new file, never a torn one.

use std::fs;
use std::path::Path;

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{CryptoError, MasterKey, Sealer, SecretKey, random_array};

/// The format tag and version written in every key file; readers refuse anything else.
const FORMAT: &str = "vrm-vault-keyfile";
const FORMAT_VERSION: u32 = 1;
const RECOVERY_PREFIX: &str = "vrmrk";

/// Argon2id cost parameters, stored with each passphrase slot so they can be raised later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes over memory.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// The floor this vault accepts, at OWASP's recommended Argon2id setting or above: 64 MiB, 3 passes.
    pub const MINIMUM: KdfParams = KdfParams {
        m_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };

    /// The ceiling: 1 GiB, 16 passes, 16 lanes. A key file is read before anything in it can be
    /// authenticated (and a backup's key file comes with an upload, before any vault exists), so
    /// unbounded parameters would let its bytes make an unlock allocate or compute without limit.
    pub const MAXIMUM: KdfParams = KdfParams {
        m_kib: 1024 * 1024,
        t_cost: 16,
        p_cost: 16,
    };
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::MINIMUM
    }
}

/// What can go wrong with the key file. Messages are meant for the self-hoster reading a log.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("the passphrase or key does not open this vault")]
    WrongSecret,
    #[error("the recovery key is not well formed (expected vrmrk-XXXX-XXXX-...)")]
    MalformedRecoveryKey,
    #[error("the key file is damaged or not a vrm-vault key file: {0}")]
    Corrupt(String),
    #[error("the key file's Argon2id parameters are below the minimum (64 MiB, 3 passes)")]
    WeakParams,
    #[error(
        "the key file's Argon2id parameters are above the maximum (1 GiB, 16 passes, 16 lanes)"
    )]
    ExcessiveParams,
    #[error("key file I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PassphraseSlot {
    kdf: String,
    #[serde(flatten)]
    params: KdfParams,
    salt: String,
    wrapped_master_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySlot {
    wrapped_master_key: String,
}

/// The key file's contents. Every secret in it is wrapped; the file alone opens nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    format: String,
    version: u32,
    /// A random identifier of this vault, bound into every slot's associated data.
    vault_id: String,
    passphrase: PassphraseSlot,
    recovery: KeySlot,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unlock_key: Option<KeySlot>,
}

/// A recovery key as the owner writes it down: `vrmrk-` then 52 base32 characters in groups of four.
#[derive(Clone)]
pub struct RecoveryKey(SecretKey);

impl std::fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryKey(..)")
    }
}

impl RecoveryKey {
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(SecretKey::generate()?))
    }

    /// The text shown to the owner once.
    pub fn display(&self) -> Zeroizing<String> {
        let encoded = Zeroizing::new(data_encoding::BASE32_NOPAD.encode(self.0.as_bytes()));
        let groups: Vec<&str> = encoded
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        Zeroizing::new(format!("{RECOVERY_PREFIX}-{}", groups.join("-")))
    }

    /// Parses what the owner typed. Forgiven: case, spaces and dashes, a missing `vrmrk-` prefix,
    /// and the digits people write for look-alike letters (base32 has no 0, 1 or 8: they can only
    /// be O, I and B).
    pub fn parse(text: &str) -> Result<Self, KeyFileError> {
        let cleaned: Zeroizing<String> = Zeroizing::new(
            text.trim()
                .to_ascii_uppercase()
                .chars()
                .filter(|c| !matches!(c, '-' | ' ' | '\t' | '\n' | '\r'))
                .collect(),
        );
        let prefix = RECOVERY_PREFIX.to_ascii_uppercase();
        let unprefixed = cleaned.strip_prefix(&prefix).unwrap_or(&cleaned);
        let body: Zeroizing<String> = Zeroizing::new(
            unprefixed
                .chars()
                .map(|c| match c {
                    '0' => 'O',
                    '1' => 'I',
                    '8' => 'B',
                    other => other,
                })
                .collect(),
        );
        let bytes = Zeroizing::new(
            data_encoding::BASE32_NOPAD
                .decode(body.as_bytes())
                .map_err(|_| KeyFileError::MalformedRecoveryKey)?,
        );
        Ok(Self(
            SecretKey::from_slice(&bytes).map_err(|_| KeyFileError::MalformedRecoveryKey)?,
        ))
    }
}

/// A key kept in a file on the server so that the vault unseals itself at boot.
#[derive(Clone)]
pub struct UnlockKey(SecretKey);

impl std::fmt::Debug for UnlockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnlockKey(..)")
    }
}

impl UnlockKey {
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(SecretKey::generate()?))
    }

    pub fn encode(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("vrmuk-{}\n", B64.encode(self.0.as_bytes())))
    }

    pub fn parse(text: &str) -> Result<Self, KeyFileError> {
        let body = text.trim().strip_prefix("vrmuk-").ok_or_else(|| {
            KeyFileError::Corrupt("unlock key file must start with vrmuk-".into())
        })?;
        let bytes = Zeroizing::new(
            B64.decode(body)
                .map_err(|_| KeyFileError::Corrupt("unlock key is not base64url".into()))?,
        );
        Ok(Self(SecretKey::from_slice(&bytes).map_err(|_| {
            KeyFileError::Corrupt("unlock key has the wrong length".into())
        })?))
    }
}

/// Derives the passphrase-wrapping key with Argon2id. CPU- and memory-heavy: call it off the async
/// runtime (`spawn_blocking`) and behind a limit on concurrent derivations.
fn passphrase_key(
    passphrase: &str,
    salt: &[u8],
    params: KdfParams,
) -> Result<SecretKey, CryptoError> {
    let argon_params = Params::new(params.m_kib, params.t_cost, params.p_cost, Some(32))
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(passphrase.as_bytes(), salt, &mut out)
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(SecretKey(out))
}

fn slot_aad(vault_id: &str, slot: &str) -> Vec<u8> {
    format!("{FORMAT}/v{FORMAT_VERSION}/{slot}/{vault_id}").into_bytes()
}

fn wrap(wrapping: &SecretKey, aad: &[u8], master: &MasterKey) -> Result<String, CryptoError> {
    Ok(B64.encode(Sealer::new(wrapping).seal(aad, master.as_bytes())?))
}

fn unwrap_slot(wrapping: &SecretKey, aad: &[u8], wrapped: &str) -> Result<MasterKey, KeyFileError> {
    let sealed = B64
        .decode(wrapped)
        .map_err(|_| KeyFileError::Corrupt("a wrapped key is not base64url".into()))?;
    let opened = Zeroizing::new(
        Sealer::new(wrapping)
            .open(aad, &sealed)
            .map_err(|_| KeyFileError::WrongSecret)?,
    );
    SecretKey::from_slice(&opened).map_err(|_| KeyFileError::Corrupt("master key length".into()))
}

fn passphrase_slot(
    vault_id: &str,
    passphrase: &str,
    params: KdfParams,
    master: &MasterKey,
) -> Result<PassphraseSlot, CryptoError> {
    let salt: [u8; 16] = random_array()?;
    let wrapping = passphrase_key(passphrase, &salt, params)?;
    Ok(PassphraseSlot {
        kdf: "argon2id".into(),
        params,
        salt: B64.encode(salt),
        wrapped_master_key: wrap(&wrapping, &slot_aad(vault_id, "passphrase"), master)?,
    })
}

impl KeyFile {
    /// Creates a new vault's keys: a fresh master key wrapped by the passphrase and by a new
    /// recovery key. Slow (Argon2id).
    pub fn create(
        passphrase: &str,
        params: KdfParams,
    ) -> Result<(KeyFile, MasterKey, RecoveryKey), KeyFileError> {
        check_params(params)?;
        let master = SecretKey::generate()?;
        let recovery = RecoveryKey::generate()?;
        let vault_id = B64.encode(random_array::<16>()?);
        let file = KeyFile {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            passphrase: passphrase_slot(&vault_id, passphrase, params, &master)?,
            recovery: KeySlot {
                wrapped_master_key: wrap(&recovery.0, &slot_aad(&vault_id, "recovery"), &master)?,
            },
            unlock_key: None,
            vault_id,
        };
        Ok((file, master, recovery))
    }

    /// Unwraps the master key with the passphrase. Slow (Argon2id).
    pub fn unlock_with_passphrase(&self, passphrase: &str) -> Result<MasterKey, KeyFileError> {
        let slot = &self.passphrase;
        let salt = B64
            .decode(&slot.salt)
            .map_err(|_| KeyFileError::Corrupt("salt is not base64url".into()))?;
        let wrapping = passphrase_key(passphrase, &salt, slot.params)?;
        unwrap_slot(
            &wrapping,
            &slot_aad(&self.vault_id, "passphrase"),
            &slot.wrapped_master_key,
        )
    }

    pub fn unlock_with_recovery_key(&self, key: &RecoveryKey) -> Result<MasterKey, KeyFileError> {
        unwrap_slot(
            &key.0,
            &slot_aad(&self.vault_id, "recovery"),
            &self.recovery.wrapped_master_key,
        )
    }

    pub fn unlock_with_unlock_key(&self, key: &UnlockKey) -> Result<MasterKey, KeyFileError> {
        let slot = self.unlock_key.as_ref().ok_or(KeyFileError::WrongSecret)?;
        unwrap_slot(
            &key.0,
            &slot_aad(&self.vault_id, "unlock-key"),
            &slot.wrapped_master_key,
        )
    }

    /// Rewraps the master key under a new passphrase (and possibly stronger parameters). Slow.
    pub fn set_passphrase(
        &mut self,
        master: &MasterKey,
        passphrase: &str,
        params: KdfParams,
    ) -> Result<(), KeyFileError> {
        check_params(params)?;
        self.passphrase = passphrase_slot(&self.vault_id, passphrase, params, master)?;
        Ok(())
    }

    /// Replaces the recovery key; the old one stops working once the file is saved.
    pub fn regenerate_recovery_key(
        &mut self,
        master: &MasterKey,
    ) -> Result<RecoveryKey, KeyFileError> {
        let recovery = RecoveryKey::generate()?;
        self.recovery = KeySlot {
            wrapped_master_key: wrap(&recovery.0, &slot_aad(&self.vault_id, "recovery"), master)?,
        };
        Ok(recovery)
    }

    /// Adds (or replaces) the unlock-key slot and returns the new key, to be written to its file.
    pub fn add_unlock_key(&mut self, master: &MasterKey) -> Result<UnlockKey, KeyFileError> {
        let key = UnlockKey::generate()?;
        self.unlock_key = Some(KeySlot {
            wrapped_master_key: wrap(&key.0, &slot_aad(&self.vault_id, "unlock-key"), master)?,
        });
        Ok(key)
    }

    pub fn remove_unlock_key(&mut self) {
        self.unlock_key = None;
    }

    pub fn has_unlock_key(&self) -> bool {
        self.unlock_key.is_some()
    }

    pub fn kdf_params(&self) -> KdfParams {
        self.passphrase.params
    }

    /// Reads and checks a key file.
    pub fn load(path: &Path) -> Result<KeyFile, KeyFileError> {
        KeyFile::parse(&fs::read(path)?)
    }

    /// Checks the bytes of a key file (as [`KeyFile::encode`] wrote them).
    pub fn parse(bytes: &[u8]) -> Result<KeyFile, KeyFileError> {
        let file: KeyFile =
            serde_json::from_slice(bytes).map_err(|e| KeyFileError::Corrupt(format!("{e}")))?;
        if file.format != FORMAT || file.version != FORMAT_VERSION {
            return Err(KeyFileError::Corrupt(format!(
                "unknown format {} version {}",
                file.format, file.version
            )));
        }
        if file.passphrase.kdf != "argon2id" {
            return Err(KeyFileError::Corrupt("unknown key derivation".into()));
        }
        check_params(file.passphrase.params)?;
        Ok(file)
    }

    /// The key file's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, KeyFileError> {
        serde_json::to_vec_pretty(self)
            .map_err(|e| KeyFileError::Corrupt(format!("cannot encode: {e}")))
    }

    /// Writes the key file atomically: a crash leaves the old file or the new one, never half of one.
    pub fn save(&self, path: &Path) -> Result<(), KeyFileError> {
        write_atomically(path, &self.encode()?)?;
        Ok(())
    }

    /// This vault's random identifier (public: it only tells two vaults apart).
    pub fn vault_id(&self) -> &str {
        &self.vault_id
    }
}

/// Parameters between [`KdfParams::MINIMUM`] and [`KdfParams::MAXIMUM`], each one.
fn check_params(p: KdfParams) -> Result<(), KeyFileError> {
    let (min, max) = (KdfParams::MINIMUM, KdfParams::MAXIMUM);
    if p.m_kib < min.m_kib || p.t_cost < min.t_cost || p.p_cost < min.p_cost {
        return Err(KeyFileError::WeakParams);
    }
    if p.m_kib > max.m_kib || p.t_cost > max.t_cost || p.p_cost > max.p_cost {
        return Err(KeyFileError::ExcessiveParams);
    }
    Ok(())
}

/// The temporary file [`write_atomically`] writes `path` to first.
pub fn temporary_path(path: &Path) -> std::path::PathBuf {
    crate::files::temporary_path(path)
}

/// Replaces `path` with `bytes` atomically and durably, readable by its owner only (see
/// [`crate::files::write_atomically`]).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::files::write_atomically(path, bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_recovery_and_unlock_key_open_the_same_master_key() {
        let (mut file, master, recovery) =
            KeyFile::create("correct horse battery", KdfParams::MINIMUM).unwrap();
        assert_eq!(
            file.unlock_with_passphrase("correct horse battery")
                .unwrap(),
            master
        );
        assert!(matches!(
            file.unlock_with_passphrase("wrong horse battery"),
            Err(KeyFileError::WrongSecret)
        ));
        let typed = recovery.display().to_lowercase().replace('-', " ");
        let parsed = RecoveryKey::parse(&typed).unwrap();
        assert_eq!(file.unlock_with_recovery_key(&parsed).unwrap(), master);
        // Hand-copied: no prefix, O/I/B written as 0/1/8.
        let by_hand = recovery.display()[6..]
            .replace('O', "0")
            .replace('I', "1")
            .replace('B', "8");
        let parsed = RecoveryKey::parse(&by_hand).unwrap();
        assert_eq!(file.unlock_with_recovery_key(&parsed).unwrap(), master);
        assert!(RecoveryKey::parse("vrmrk-ABCD").is_err());

        let unlock = file.add_unlock_key(&master).unwrap();
        let reparsed = UnlockKey::parse(&unlock.encode()).unwrap();
        assert_eq!(file.unlock_with_unlock_key(&reparsed).unwrap(), master);

        file.set_passphrase(&master, "a new passphrase here", KdfParams::MINIMUM)
            .unwrap();
        assert!(
            file.unlock_with_passphrase("correct horse battery")
                .is_err()
        );
        assert_eq!(
            file.unlock_with_passphrase("a new passphrase here")
                .unwrap(),
            master
        );
    }

    #[test]
    fn weak_parameters_are_refused() {
        let weak = KdfParams {
            m_kib: 1024,
            t_cost: 1,
            p_cost: 1,
        };
        assert!(matches!(
            KeyFile::create("x", weak),
            Err(KeyFileError::WeakParams)
        ));
    }

    #[test]
    fn a_key_file_cannot_ask_for_unbounded_key_derivation() {
        // Regression: a key file (the first part of a backup, which `POST /api/v1/restore` takes
        // before any vault exists) named m_kib = 4294967295, and unlocking it asked Argon2id for
        // 4 TiB. A failed allocation aborts, it does not unwind: the whole vault stopped. A huge
        // t_cost instead held a key-derivation slot for ever. Both are now refused at parse.
        let (file, _, _) = KeyFile::create("passphrase one", KdfParams::MINIMUM).unwrap();
        let mut json: serde_json::Value = serde_json::from_slice(&file.encode().unwrap()).unwrap();
        for (member, huge) in [
            ("m_kib", 4_294_967_295u64),
            ("t_cost", 4_294_967_295),
            ("p_cost", 16_777_215),
        ] {
            let mut bad = json.clone();
            bad["passphrase"][member] = huge.into();
            let bytes = serde_json::to_vec(&bad).unwrap();
            assert!(
                matches!(KeyFile::parse(&bytes), Err(KeyFileError::ExcessiveParams)),
                "{member}"
            );
        }
        json["passphrase"]["m_kib"] = KdfParams::MAXIMUM.m_kib.into();
        assert!(KeyFile::parse(&serde_json::to_vec(&json).unwrap()).is_ok());
        let too_much = KdfParams {
            t_cost: 17,
            ..KdfParams::MINIMUM
        };
        assert!(matches!(
            KeyFile::create("passphrase one", too_much),
            Err(KeyFileError::ExcessiveParams)
        ));
    }

    #[test]
    fn slots_are_bound_to_their_vault() {
        let (a, _, _) = KeyFile::create("passphrase one", KdfParams::MINIMUM).unwrap();
        let (mut b, _, _) = KeyFile::create("passphrase one", KdfParams::MINIMUM).unwrap();
        // Copying a slot into another vault's file must not open: the vault id is in its AAD.
        b.passphrase = a.passphrase.clone();
        assert!(b.unlock_with_passphrase("passphrase one").is_err());
    }
}
