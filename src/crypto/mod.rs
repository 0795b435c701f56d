//! All cryptography of the vault, and the only module that touches key bytes or imports `ring`.
//!
//! The key hierarchy (see SECURITY.md):
//! - a random 256-bit vault master key ([`MasterKey`]) that is never stored in plaintext, only wrapped
//!   in the key file ([`keyfile`]) by a passphrase-derived key (Argon2id) and by the recovery key;
//! - purpose keys derived from it with HKDF-SHA256 ([`VaultKeys`]): one seals every value written to
//!   the store, one makes opaque store keys out of names that would reveal personal data.
//!
//! Sealed values have the frozen layout `[version = 1][96-bit nonce][AES-256-GCM ciphertext + tag]`,
//! and their associated data names where the value lives, so that a value copied to another place
//! fails to open.

pub mod alias;
pub mod buckets;
pub mod device;
pub mod dpop;
pub mod jwt;
pub mod keyfile;
pub mod relay_jose;
pub mod relay_jwks;
pub mod webhook;

use std::fmt;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The first byte of every sealed value; bump it (and keep opening the old one) when the layout changes.
pub const SEALED_VERSION: u8 = 1;
pub(crate) const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Bytes that sealing adds to a plaintext.
pub const SEAL_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// Why a cryptographic operation failed. Deliberately vague: callers learn that a value did not
/// open, never why, so that no oracle leaks through error messages.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the value could not be opened: wrong key, wrong place or modified")]
    Open,
    #[error("unsupported sealed format version {0}")]
    Version(u8),
    #[error("the system random number generator failed")]
    Random,
    #[error("key derivation failed: {0}")]
    Kdf(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// A 256-bit secret. Zeroed on drop; its `Debug` prints nothing of it.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SecretKey([u8; 32]);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(random_array()?))
    }

    /// The key made of exactly 32 bytes. Public for tests and fuzz targets that need a fixed
    /// key; the vault's own keys come from [`SecretKey::generate`] or from unwrapping.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let array: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::Open)?;
        Ok(Self(array))
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The vault master key: the root of every other key.
pub type MasterKey = SecretKey;

/// Fills an array from the operating system's random number generator.
pub fn random_array<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| CryptoError::Random)?;
    Ok(out)
}

/// A random bearer secret: `prefix` then 256 random bits in base64url. The prefix tells people
/// and secret scanners what the string is.
pub fn random_token(prefix: &str) -> Result<String, CryptoError> {
    use base64::Engine;
    let bytes = random_array::<32>()?;
    Ok(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Compares two secrets in constant time (for equal lengths).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// An AES-256-GCM key that seals and opens values in the frozen sealed layout.
pub struct Sealer {
    key: LessSafeKey,
    /// The layout version this key's values carry (see [`buckets`] for version 2).
    version: u8,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    pub fn new(key: &SecretKey) -> Self {
        Self::with_version(key, SEALED_VERSION)
    }

    /// A sealer whose values carry another layout version (same layout, another key family).
    pub(crate) fn with_version(key: &SecretKey, version: u8) -> Self {
        // AES-256-GCM accepts any 32-byte key, so this cannot fail for a SecretKey.
        let unbound = UnboundKey::new(&aead::AES_256_GCM, key.as_bytes())
            .unwrap_or_else(|_| unreachable!("AES-256-GCM takes 32-byte keys"));
        Self {
            key: LessSafeKey::new(unbound),
            version,
        }
    }

    /// Seals `plaintext` bound to `aad` with a fresh random nonce.
    ///
    /// Random 96-bit nonces are safe for up to about 2^32 values under one key (NIST SP 800-38D);
    /// one person's vault stays many orders of magnitude below that.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce_bytes: [u8; NONCE_LEN] = random_array()?;
        self.seal_with_nonce(nonce_bytes, aad, plaintext)
    }

    fn seal_with_nonce(
        &self,
        nonce_bytes: [u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        out.push(self.version);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(plaintext);
        let (header, body) = out.split_at_mut(1 + NONCE_LEN);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                body,
            )
            .map_err(|_| CryptoError::Open)?;
        debug_assert_eq!(header[0], self.version);
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens a sealed value; fails unless it was sealed by this key with exactly this `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (&version, rest) = sealed.split_first().ok_or(CryptoError::Open)?;
        if version != self.version {
            return Err(CryptoError::Version(version));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Open);
        }
        let (nonce_bytes, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce_bytes).map_err(|_| CryptoError::Open)?;
        let mut buffer = ciphertext.to_vec();
        let plaintext_len = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buffer)
            .map_err(|_| CryptoError::Open)?
            .len();
        // The plaintext is the front of the buffer: drop the tag instead of copying.
        buffer.truncate(plaintext_len);
        Ok(buffer)
    }
}

/// A keyed hash (HMAC-SHA256) that turns names into opaque, stable identifiers.
pub struct KeyedHash {
    key: hmac::Key,
}

impl fmt::Debug for KeyedHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyedHash(..)")
    }
}

impl KeyedHash {
    pub fn new(key: &SecretKey) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes()),
        }
    }

    pub fn hash(&self, data: &[u8]) -> [u8; 32] {
        let tag = hmac::sign(&self.key, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Starts a keyed hash over data that arrives in pieces.
    pub fn start(&self) -> KeyedHashing {
        KeyedHashing(hmac::Context::with_key(&self.key))
    }
}

/// A keyed hash in progress (see [`KeyedHash::start`]).
pub struct KeyedHashing(hmac::Context);

impl fmt::Debug for KeyedHashing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyedHashing(..)")
    }
}

impl KeyedHashing {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.sign().as_ref());
        out
    }
}

/// The key that authenticates backups of the vault whose master key is `master`.
pub fn backup_mac_key(master: &MasterKey) -> KeyedHash {
    KeyedHash::new(&derive(master, Purpose::BackupMac))
}

/// The key that signs the audit log's checkpoint (what retention pruned) for the vault whose
/// master key is `master`.
pub fn audit_checkpoint_key(master: &MasterKey) -> KeyedHash {
    KeyedHash::new(&derive(master, Purpose::AuditCheckpoint))
}

/// What a key derived from the master key is for; the label is the HKDF `info` and is frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Seals every value written to the store.
    StoreSeal,
    /// Makes opaque store keys (record paths become keyed hashes).
    StoreIndex,
    /// Makes each brand's pairwise pseudonym for the person.
    Pseudonym,
    /// Wraps the bucket keys in their file.
    BucketWrap,
    /// Authenticates a whole backup file, so a cut or spliced backup is refused at restore.
    BackupMac,
    /// Signs the audit log's checkpoint of pruned entries.
    AuditCheckpoint,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::StoreSeal => b"vrm-vault/v1/store-seal",
            Purpose::StoreIndex => b"vrm-vault/v1/store-index",
            Purpose::Pseudonym => b"vrm-vault/v1/pseudonym",
            Purpose::BackupMac => b"vrm-vault/v1/backup-mac",
            Purpose::BucketWrap => b"vrm-vault/v1/bucket-wrap",
            Purpose::AuditCheckpoint => b"vrm-vault/v1/audit-checkpoint",
        }
    }
}

/// Derives a purpose key from the master key with HKDF-SHA256.
pub fn derive(master: &MasterKey, purpose: Purpose) -> SecretKey {
    struct Len32;
    impl hkdf::KeyType for Len32 {
        fn len(&self) -> usize {
            32
        }
    }
    let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"vrm-vault master key derivation");
    let prk = salt.extract(master.as_bytes());
    let mut out = [0u8; 32];
    // HKDF-SHA256 can expand up to 8160 bytes; 32 always succeeds.
    let info = [purpose.label()];
    if let Ok(okm) = prk.expand(&info, Len32) {
        let _ = okm.fill(&mut out);
    }
    SecretKey(out)
}

/// The keys an unsealed vault works with, derived once at unlock.
#[derive(Debug)]
pub struct VaultKeys {
    /// The single store key of vaults made before bucket keys (sealed layout version 1).
    pub sealer: Sealer,
    /// Wraps the bucket keys ([`buckets`]) in their file.
    pub bucket_wrap: Sealer,
    pub index: KeyedHash,
    pub pseudonym: KeyedHash,
}

impl VaultKeys {
    pub fn derive(master: &MasterKey) -> Self {
        Self {
            sealer: Sealer::new(&derive(master, Purpose::StoreSeal)),
            bucket_wrap: Sealer::new(&derive(master, Purpose::BucketWrap)),
            index: KeyedHash::new(&derive(master, Purpose::StoreIndex)),
            pseudonym: KeyedHash::new(&derive(master, Purpose::Pseudonym)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_layout_is_frozen() {
        // Golden vector: changing the layout or the algorithm breaks every existing vault, so this
        // test must never be edited to pass; add a new version instead. The expected bytes were
        // cross-checked with an independent AES-GCM implementation (Python `cryptography`).
        let key = SecretKey([7u8; 32]);
        let sealer = Sealer::new(&key);
        let sealed = sealer
            .seal_with_nonce([1u8; 12], b"records\0key", b"hello")
            .unwrap_or_default();
        let hex = data_encoding::HEXLOWER.encode(&sealed);
        assert_eq!(
            hex,
            "010101010101010101010101011e84e5dbffc3403ac0fd97eb0fc159308379e45442"
        );
        assert_eq!(sealed.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(
            sealer.open(b"records\0key", &sealed).as_deref(),
            Ok(&b"hello"[..])
        );
    }

    #[test]
    fn bucket_sealed_layout_is_frozen() {
        // Version 2 is version 1's layout under a bucket key: same bytes after the version byte.
        let sealer = Sealer::with_version(&SecretKey([7u8; 32]), buckets::BUCKET_SEALED_VERSION);
        let sealed = sealer
            .seal_with_nonce([1u8; 12], b"records\0key", b"hello")
            .unwrap_or_default();
        assert_eq!(
            data_encoding::HEXLOWER.encode(&sealed),
            "020101010101010101010101011e84e5dbffc3403ac0fd97eb0fc159308379e45442"
        );
        assert_eq!(
            Sealer::new(&SecretKey([7u8; 32])).open(b"records\0key", &sealed),
            Err(CryptoError::Version(2))
        );
    }

    #[test]
    fn value_moved_to_another_place_does_not_open() {
        let sealer = Sealer::new(&SecretKey([9u8; 32]));
        let sealed = sealer.seal(b"records\0a", b"secret").unwrap_or_default();
        assert_eq!(sealer.open(b"records\0b", &sealed), Err(CryptoError::Open));
        assert_eq!(sealer.open(b"audit\0a", &sealed), Err(CryptoError::Open));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(sealer.open(b"records\0a", &flipped), Err(CryptoError::Open));
        assert_eq!(
            sealer.open(b"records\0a", &sealed[..10]),
            Err(CryptoError::Open)
        );
        let mut other_version = sealed;
        other_version[0] = 2;
        assert_eq!(
            sealer.open(b"records\0a", &other_version),
            Err(CryptoError::Version(2))
        );
    }

    #[test]
    fn purpose_keys_differ_and_are_stable() {
        let master = SecretKey([3u8; 32]);
        let a = derive(&master, Purpose::StoreSeal);
        let b = derive(&master, Purpose::StoreIndex);
        assert_ne!(a, b);
        assert_eq!(a, derive(&master, Purpose::StoreSeal));
        assert_ne!(a, master);
    }
}
