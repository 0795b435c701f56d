//! Per-brand aliases of the vault's own identifiers: a keyed pseudorandom permutation of 80-bit
//! ids, different for every brand, so that two brands who received the same intent hold ids
//! that are unrelated to each other and to the vault's, and the vault turns a brand's alias
//! back into its id without storing anything.
//!
//! The permutation is an eight-round Feistel network on two 40-bit halves whose round function
//! is HMAC-SHA256 under a vault key, over a domain label, the brand and the round. With a
//! pseudorandom round function, four rounds already give a strong pseudorandom permutation
//! (Luby–Rackoff); eight leave a margin for the small block. Telling it from random needs on
//! the order of 2^20 aliases under one brand, far more intents than one person makes.

use super::KeyedHash;

/// Bytes of an aliased id.
pub const ID_BYTES: usize = 10;
const HALF: usize = ID_BYTES / 2;
const ROUNDS: u8 = 8;
const LABEL: &[u8] = b"vrm-vault/v1/id-alias\0";

fn round(key: &KeyedHash, brand: &str, round: u8, half: &[u8; HALF]) -> [u8; HALF] {
    let mut input = Vec::with_capacity(LABEL.len() + brand.len() + 2 + HALF);
    input.extend_from_slice(LABEL);
    input.extend_from_slice(brand.as_bytes());
    input.push(0);
    input.push(round);
    input.extend_from_slice(half);
    let mac = key.hash(&input);
    let mut out = [0u8; HALF];
    out.copy_from_slice(&mac[..HALF]);
    out
}

fn halves(id: &[u8; ID_BYTES]) -> ([u8; HALF], [u8; HALF]) {
    let (mut left, mut right) = ([0u8; HALF], [0u8; HALF]);
    left.copy_from_slice(&id[..HALF]);
    right.copy_from_slice(&id[HALF..]);
    (left, right)
}

fn join(left: [u8; HALF], right: [u8; HALF]) -> [u8; ID_BYTES] {
    let mut out = [0u8; ID_BYTES];
    out[..HALF].copy_from_slice(&left);
    out[HALF..].copy_from_slice(&right);
    out
}

fn xor(a: [u8; HALF], b: [u8; HALF]) -> [u8; HALF] {
    let mut out = a;
    for (o, b) in out.iter_mut().zip(b) {
        *o ^= b;
    }
    out
}

/// The alias `brand` knows `id` by.
pub fn alias(key: &KeyedHash, brand: &str, id: &[u8; ID_BYTES]) -> [u8; ID_BYTES] {
    let (mut left, mut right) = halves(id);
    for r in 0..ROUNDS {
        let next = xor(left, round(key, brand, r, &right));
        left = right;
        right = next;
    }
    join(left, right)
}

/// The id behind `brand`'s alias (the inverse of [`alias`]).
pub fn unalias(key: &KeyedHash, brand: &str, alias: &[u8; ID_BYTES]) -> [u8; ID_BYTES] {
    let (mut left, mut right) = halves(alias);
    for r in (0..ROUNDS).rev() {
        let previous = xor(right, round(key, brand, r, &left));
        right = left;
        left = previous;
    }
    join(left, right)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;

    #[test]
    fn aliases_are_per_brand_and_reversible() {
        let key = KeyedHash::new(&SecretKey::from_slice(&[7u8; 32]).unwrap());
        let other_key = KeyedHash::new(&SecretKey::from_slice(&[8u8; 32]).unwrap());
        for seed in 0u8..50 {
            let id = [seed; ID_BYTES];
            let a = alias(&key, "client-a", &id);
            let b = alias(&key, "client-b", &id);
            assert_ne!(a, id);
            assert_ne!(a, b);
            assert_ne!(alias(&other_key, "client-a", &id), a);
            assert_eq!(unalias(&key, "client-a", &a), id);
            assert_eq!(unalias(&key, "client-b", &b), id);
            // Another brand's alias is no alias of this brand's for the same id.
            assert_ne!(unalias(&key, "client-a", &b), id);
        }
    }

    #[test]
    fn aliases_of_related_ids_look_unrelated() {
        // One bit of difference in the id changes about half the alias's bits.
        let key = KeyedHash::new(&SecretKey::from_slice(&[1u8; 32]).unwrap());
        let mut total = 0u32;
        for bit in 0..(ID_BYTES * 8) {
            let id = [0u8; ID_BYTES];
            let mut flipped = id;
            flipped[bit / 8] ^= 1 << (bit % 8);
            let (a, b) = (alias(&key, "c", &id), alias(&key, "c", &flipped));
            total += a
                .iter()
                .zip(b)
                .map(|(x, y)| (x ^ y).count_ones())
                .sum::<u32>();
        }
        let mean = f64::from(total) / (ID_BYTES * 8) as f64;
        assert!((30.0..50.0).contains(&mean), "{mean}");
    }
}
