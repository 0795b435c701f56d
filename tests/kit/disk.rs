//! What a vault leaves on disk, read the way someone holding the disk could: every file of a data
//! directory, the encodings that would betray a secret in one, a stopped vault's store opened
//! raw (to tamper with it), and its signing key read with the passphrase.
//!
//! They were in `tests/vault/support.rs`; none of them needs the spawned binary, so they belong
//! with the rest of the kit. The portability and log tests search for secrets with the one
//! scanner here ([`residue`], [`encodings_of`]) so that a secret is looked for the same way in
//! each of them.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::kit::owner::PASSPHRASE;

/// Writes a passphrase file for the CLI commands.
pub fn passphrase_file(dir: &Path, passphrase: &str) -> PathBuf {
    let path = dir.join("passphrase.txt");
    std::fs::write(&path, format!("{passphrase}\n")).unwrap();
    path
}

/// Every regular file below `dir`.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Opens a stopped vault's store with a throwaway key: raw reads and writes need no key, so tests
/// can tamper with what is on disk the way an attacker with the disk could.
pub fn raw_store(data_dir: &Path) -> vrm_vault::store::Store {
    use vrm_vault::crypto::buckets::{BucketKeys, StoreCipher};
    use vrm_vault::crypto::{Sealer, SecretKey};
    let cipher = StoreCipher::new(
        Sealer::new(&SecretKey::generate().unwrap()),
        &BucketKeys::generate().unwrap(),
    );
    vrm_vault::store::Store::open(
        &data_dir.join("store"),
        std::sync::Arc::new(cipher),
        4 << 20,
    )
    .unwrap()
}

/// The byte strings that would betray `secret` in a file: raw, hex (both cases), and base64
/// (standard and URL-safe) at each of the three alignments it can have inside a longer encoded
/// string. The same scheme as `at_rest`'s scanner, over bytes so that key material can be
/// searched for too.
pub fn encodings_of(secret: &[u8]) -> Vec<Vec<u8>> {
    use base64::Engine;
    let hex = |upper: bool| -> Vec<u8> {
        secret
            .iter()
            .map(|b| {
                if upper {
                    format!("{b:02X}")
                } else {
                    format!("{b:02x}")
                }
            })
            .collect::<String>()
            .into_bytes()
    };
    let mut out = vec![secret.to_vec(), hex(false), hex(true)];
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for shift in 0..3 {
            let mut shifted = vec![b'_'; shift];
            shifted.extend_from_slice(secret);
            let encoded = engine.encode(&shifted);
            // Drop the characters that depend on the bytes around the secret.
            let start = (shift * 4).div_ceil(3) + 1;
            let end = encoded.len().saturating_sub(2);
            if start < end {
                out.push(encoded.as_bytes()[start..end].to_vec());
            }
        }
    }
    out
}

/// Whether `needle` occurs in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every place one of `secrets` (named by their label) turns up in `files`, in any of its
/// [`encodings_of`]: `"label in path"` lines.
pub fn residue(files: &[PathBuf], secrets: &[(String, Vec<u8>)]) -> Vec<String> {
    let needles: Vec<(&str, Vec<Vec<u8>>)> = secrets
        .iter()
        .map(|(label, bytes)| (label.as_str(), encodings_of(bytes)))
        .collect();
    let mut found = vec![];
    for file in files {
        let bytes = std::fs::read(file).unwrap();
        for (label, encodings) in &needles {
            if encodings.iter().any(|n| contains_bytes(&bytes, n)) {
                found.push(format!("{label} in {}", file.display()));
            }
        }
    }
    found
}

/// The vault's active signing key (kid, PKCS#8), read from a stopped vault with the passphrase,
/// as someone holding both the disk and the passphrase could. Tests use it to sign tokens that
/// differ from a real one in a single claim or header, so that each check (`aud`, `iss`, `typ`,
/// `exp`) is seen refusing on its own rather than hidden behind a bad signature.
pub fn signing_key_of_stopped_vault(data_dir: &std::path::Path) -> (String, Vec<u8>) {
    let (store, _, _) =
        vrm_vault::service::open_offline(data_dir, &vrm_vault::secret::Secret::new(PASSPHRASE))
            .unwrap();
    for item in store.iter(vrm_vault::store::Tree::SigningKeys) {
        let (_, value) = item.unwrap();
        let key: Value = serde_json::from_slice(&value).unwrap();
        if key["retired_at"].is_null() {
            return (
                key["kid"].as_str().unwrap().to_owned(),
                super::brand::unb64(key["pkcs8"].as_str().unwrap()),
            );
        }
    }
    panic!("the vault has no active signing key");
}
