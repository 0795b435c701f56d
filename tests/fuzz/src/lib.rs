//! What the fuzz targets share: fixed keys and a fixed clock, so that an input that fails once
//! fails the same way when it is replayed, a way to cut one input into several, and the JSON
//! round trip the store's values must survive.
//!
//! Keys here are test keys, public by being in this file: they open nothing but what the targets
//! and the committed seeds sealed with them.

use std::sync::OnceLock;

use base64::Engine;
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use vrm_vault::crypto::buckets::{BUCKETS, BucketKeys, StoreCipher};
use vrm_vault::crypto::jwt::SigningKey;
use vrm_vault::crypto::keyfile::RecoveryKey;
use vrm_vault::crypto::{CryptoError, MasterKey, Sealer, SecretKey, VaultKeys};

/// The time every target runs at: 2026-01-01T00:00:00Z.
pub const NOW: i64 = 1_767_225_600;

/// The vault URL tokens name as their issuer in the targets.
pub const ISSUER: &str = "https://vault.example";
/// The brand API, the audience of access tokens and the one `locations` value allowed.
pub const RESOURCE: &str = "https://vault.example/brand/v1";

/// The byte that separates the parts of an input that carries several documents. It never
/// occurs in UTF-8, so it cannot be part of a JSON document.
pub const SEPARATOR: u8 = 0xff;

/// [`NOW`] as a date-time.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(NOW).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The key of 32 copies of `byte`.
pub fn key(byte: u8) -> SecretKey {
    SecretKey::from_slice(&[byte; 32]).unwrap_or_else(|_| unreachable!("32 bytes make a key"))
}

/// The master key of the targets' own vault.
pub fn master() -> MasterKey {
    key(0x4d)
}

/// Recovery keys of the vaults whose backups are committed as seeds, so that the fuzzer starts
/// from backups whose key file opens and whose MAC verifies: the `tests/vault/fixtures` backup
/// (format version 1) and one made by `vrm-vault init` and `vrm-vault backup` (version 2).
pub const SEED_RECOVERY_KEYS: &[&str] = &[
    "vrmrk-EK3G-ZOGN-VZK2-SOOS-DXO3-QKHD-VXL6-5UUT-SEAM-3AWD-TNNY-GYXP-CDKQ",
    "vrmrk-D5JJ-6K37-6OXD-FJP2-FSRO-QEPJ-4QB5-X77A-LQTU-7QIT-I7UA-6SCQ-MK7Q",
];

/// [`SEED_RECOVERY_KEYS`], parsed.
pub fn seed_recovery_keys() -> &'static [RecoveryKey] {
    static KEYS: OnceLock<Vec<RecoveryKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        SEED_RECOVERY_KEYS
            .iter()
            .filter_map(|text| RecoveryKey::parse(text).ok())
            .collect()
    })
}

/// The plaintext of a bucket-key file: every bucket's key, then the retiring ones (a `u16`
/// count, then bucket and key). Bucket `b`'s key is 32 copies of `b`; buckets 7 and 200 are
/// being rotated, so that opening under a retiring key is reached too.
pub fn bucket_file_plaintext() -> Vec<u8> {
    let mut plain = Vec::with_capacity(BUCKETS * 32 + 2 + 2 * 33);
    for bucket in 0..BUCKETS {
        plain.extend_from_slice(&[bucket as u8; 32]);
    }
    plain.extend_from_slice(&2u16.to_be_bytes());
    for bucket in [7u8, 200] {
        plain.push(bucket);
        plain.extend_from_slice(&[bucket ^ 0xa5; 32]);
    }
    plain
}

/// A bucket-key file of the vault `fuzz` holding `plaintext`: the file's header, then the
/// plaintext sealed with `wrap` as the vault seals it.
pub fn bucket_file(wrap: &Sealer, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut file = b"vrm-vault bucket keys\n\x01".to_vec();
    file.extend_from_slice(&wrap.seal(b"bucket-keys\0fuzz", plaintext)?);
    Ok(file)
}

/// The bucket keys of [`bucket_file_plaintext`], through the real file reader.
pub fn bucket_keys() -> BucketKeys {
    let wrap = VaultKeys::derive(&master()).bucket_wrap;
    let file = bucket_file(&wrap, &bucket_file_plaintext())
        .unwrap_or_else(|e| unreachable!("sealing a fixed plaintext: {e}"));
    BucketKeys::decode(&file, &wrap, "fuzz")
        .unwrap_or_else(|e| unreachable!("the fixed bucket file opens: {e}"))
}

/// The store cipher of the targets' vault: the version 1 key derived from [`master`] and the
/// bucket keys of [`bucket_keys`].
pub fn store_cipher() -> &'static StoreCipher {
    static CIPHER: OnceLock<StoreCipher> = OnceLock::new();
    CIPHER.get_or_init(|| StoreCipher::new(VaultKeys::derive(&master()).sealer, &bucket_keys()))
}

/// The version 1 store key on its own (vaults made before bucket keys).
pub fn legacy_sealer() -> Sealer {
    VaultKeys::derive(&master()).sealer
}

/// A fixed ES256 test key (PKCS#8, base64), made once for these targets.
const ES256_PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQggRzB7qlEypgrVTztjiFJ0cCh\
                           nWy74vdN1TM2LET87UChRANCAASbvQG0GsnTvxqIeqPNG6TDEl4iV8LUeBL2ouw90EC3Qsp8\
                           SZmeFd1ONHQ+uetcKqLhnEI/fVhABES5XwvFByGF";

/// The vault's token-signing key in the targets.
pub fn signing_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let pkcs8 = base64::engine::general_purpose::STANDARD
            .decode(ES256_PKCS8)
            .unwrap_or_else(|e| unreachable!("the test key is base64: {e}"));
        // The key enters the vault the way a stored one does: as the JSON string of its PKCS#8.
        let stored: vrm_vault::crypto::jwt::StoredSigningKey =
            serde_json::from_value(serde_json::Value::String(
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pkcs8),
            ))
            .unwrap_or_else(|e| unreachable!("the test key is stored JSON: {e}"));
        stored
            .open()
            .unwrap_or_else(|e| unreachable!("the test key loads: {e}"))
    })
}

/// Asserts that a value written as JSON text, as the store keeps it, reads back as the same
/// value.
pub fn assert_round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let text = serde_json::to_vec(value).unwrap_or_else(|e| panic!("{value:?}: {e}"));
    let again: T = serde_json::from_slice(&text).unwrap_or_else(|e| {
        panic!(
            "{value:?} does not read back from {}: {e}",
            String::from_utf8_lossy(&text)
        )
    });
    assert_eq!(&again, value);
}

/// The first byte of an input, to choose what the rest is fed to, and the rest.
pub fn selector(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(first, rest)| (*first, rest))
}

/// The parts of an input cut at every [`SEPARATOR`].
pub fn parts(data: &[u8]) -> Vec<&[u8]> {
    data.split(|b| *b == SEPARATOR).collect()
}
