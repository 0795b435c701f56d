//! The sealed layout of every stored value, `[version][nonce][ciphertext + tag]`, as the store
//! opens it: under the version 1 key, or under the current or retiring key of the value's bucket.
//!
//! Input: one byte `n`, then `n` bytes of a full store key (tree prefix and key, as in sled and
//! in backups), then the sealed bytes. Besides not panicking, the target holds the properties
//! the store relies on: what is sealed opens at its own place only, and a changed byte makes it
//! not open.

#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use vrm_vault::crypto::buckets::bucket_of;
use vrm_vault::store::{Tree, aad};

fuzz_target!(|data: &[u8]| {
    let Some((n, rest)) = vault_fuzz::selector(data) else {
        return;
    };
    let (full_key, sealed) = rest.split_at(usize::from(n).min(rest.len()));
    let place = match Tree::split(full_key) {
        Some((tree, key)) => aad(tree, key),
        None => full_key.to_vec(),
    };
    let cipher = vault_fuzz::store_cipher();

    // Whatever the bytes, opening answers (and a fuzzer cannot forge a tag).
    let _ = vault_fuzz::legacy_sealer().open(&place, sealed);
    let _ = cipher.open(&place, sealed);
    let rotating: BTreeSet<u8> = [bucket_of(&place), 7, 200].into();
    let _ = cipher.needs_reseal(&place, sealed, &rotating);

    // The input's bytes as a plaintext: sealed here, they open here and nowhere else.
    let Ok(fresh) = cipher.seal(&place, sealed) else {
        return;
    };
    assert_eq!(fresh.len(), sealed.len() + vrm_vault::crypto::SEAL_OVERHEAD);
    assert_eq!(cipher.open(&place, &fresh).as_deref(), Ok(sealed));
    let mut elsewhere = place.clone();
    elsewhere.push(0);
    assert!(cipher.open(&elsewhere, &fresh).is_err());
    let mut changed = fresh.clone();
    let at = usize::from(n) % changed.len();
    changed[at] ^= 0x80;
    assert!(cipher.open(&place, &changed).is_err());
    assert!(cipher.open(&place, &fresh[..fresh.len() - 1]).is_err());
});
