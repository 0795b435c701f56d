//! The backup file, as a restore reads it (`POST /api/v1/restore` takes one before any vault
//! exists): header, key file, bucket-key file, entries, count and MAC.
//!
//! The input is the whole file. Where restore asks the owner's passphrase (Argon2id, far too
//! slow to fuzz), the target opens the key file with the recovery keys of the committed seed
//! backups, so those seeds get through to the MAC; any other key file gets the targets' fixed
//! master key. Each entry is then opened at its place, as restore checks it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vrm_vault::crypto::VaultKeys;
use vrm_vault::crypto::buckets::{BucketKeys, StoreCipher};
use vrm_vault::service::backup::BackupReader;
use vrm_vault::store::{Tree, aad};

fuzz_target!(|data: &[u8]| {
    let Ok((mut reader, keyfile)) = BackupReader::start(data) else {
        return;
    };
    let master = vault_fuzz::seed_recovery_keys()
        .iter()
        .find_map(|key| keyfile.unlock_with_recovery_key(key).ok())
        .unwrap_or_else(vault_fuzz::master);
    reader.unlocked(&master);
    let keys = VaultKeys::derive(&master);
    let buckets = match reader.bucket_file() {
        Ok(Some(bytes)) => {
            match BucketKeys::decode(&bytes, &keys.bucket_wrap, keyfile.vault_id()) {
                Ok(buckets) => buckets,
                Err(_) => return,
            }
        }
        Ok(None) => vault_fuzz::bucket_keys(),
        Err(_) => return,
    };
    let cipher = StoreCipher::new(keys.sealer, &buckets);
    let mut opened = 0u64;
    loop {
        match reader.next_entry() {
            Ok(Some((full_key, sealed))) => {
                let Some((tree, key)) = Tree::split(&full_key) else {
                    return;
                };
                if cipher.open(&aad(tree, key), &sealed).is_err() {
                    return;
                }
                opened += 1;
            }
            Ok(None) => break,
            Err(_) => return,
        }
    }
    if let Ok(summary) = reader.finish() {
        // Only a whole, authentic backup gets here: every entry it declared was read.
        assert_eq!(summary.entries, opened);
    }
});
