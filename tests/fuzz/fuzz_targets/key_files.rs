//! The files and texts that hold keys: the key file (`keys.json`, also the first part of every
//! backup), a recovery key as the owner types it, the unlock-key file, and the bucket-key file.
//!
//! Input: a selector byte, then the bytes for that reader. For the bucket-key file the bytes are
//! its plaintext, sealed here with the targets' wrapping key, so that the layout behind the
//! AEAD is reached (a fuzzer cannot forge a tag).

#![no_main]

use libfuzzer_sys::fuzz_target;
use vrm_vault::crypto::VaultKeys;
use vrm_vault::crypto::buckets::BucketKeys;
use vrm_vault::crypto::keyfile::{KdfParams, KeyFile, RecoveryKey, UnlockKey};

fuzz_target!(|data: &[u8]| {
    let Some((selector, rest)) = vault_fuzz::selector(data) else {
        return;
    };
    match selector % 4 {
        0 => key_file(rest),
        1 => recovery_key(rest),
        2 => unlock_key(rest),
        _ => bucket_file(rest),
    }
});

fn key_file(bytes: &[u8]) {
    let Ok(file) = KeyFile::parse(bytes) else {
        return;
    };
    // Unlocking runs Argon2id with the file's own parameters before anything in the file is
    // authenticated: a file that parses must not be able to ask for unbounded work.
    let (params, max) = (file.kdf_params(), KdfParams::MAXIMUM);
    assert!(
        params.m_kib <= max.m_kib && params.t_cost <= max.t_cost && params.p_cost <= max.p_cost
    );
    // Opening with the wrong key is refused without panicking, whatever the slots hold.
    for key in vault_fuzz::seed_recovery_keys() {
        let _ = file.unlock_with_recovery_key(key);
    }
    if let Ok(unlock) = UnlockKey::parse("vrmuk-TU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU1NTU0") {
        let _ = file.unlock_with_unlock_key(&unlock);
    }
    // What the vault writes back reads the same.
    let encoded = file.encode().unwrap_or_default();
    let again = KeyFile::parse(&encoded).unwrap_or_else(|e| panic!("re-encoded key file: {e}"));
    assert_eq!(again.vault_id(), file.vault_id());
    assert_eq!(again.kdf_params(), file.kdf_params());
    assert_eq!(again.has_unlock_key(), file.has_unlock_key());
}

fn recovery_key(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(key) = RecoveryKey::parse(text) else {
        return;
    };
    let shown = key.display();
    let again = RecoveryKey::parse(&shown).unwrap_or_else(|e| panic!("{}: {e}", &*shown));
    assert_eq!(*again.display(), *shown);
}

fn unlock_key(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(key) = UnlockKey::parse(text) else {
        return;
    };
    let encoded = key.encode();
    let again = UnlockKey::parse(&encoded).unwrap_or_else(|e| panic!("re-encoded: {e}"));
    assert_eq!(*again.encode(), *encoded);
}

fn bucket_file(plaintext: &[u8]) {
    let wrap = VaultKeys::derive(&vault_fuzz::master()).bucket_wrap;
    // The bytes as they are: the header and the AEAD refuse them.
    let _ = BucketKeys::decode(plaintext, &wrap, "fuzz");
    let Ok(file) = vault_fuzz::bucket_file(&wrap, plaintext) else {
        return;
    };
    let Ok(keys) = BucketKeys::decode(&file, &wrap, "fuzz") else {
        return;
    };
    let encoded = keys.encode(&wrap, "fuzz").unwrap_or_default();
    assert_eq!(BucketKeys::decode(&encoded, &wrap, "fuzz").ok(), Some(keys));
    assert!(BucketKeys::decode(&encoded, &wrap, "another vault").is_err());
}
