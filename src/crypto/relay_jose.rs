//! The JOSE a vault speaks with brands through an intent relay (DESIGN §11): the digest of an
//! offer that a brand's acceptance signs, the check of that acceptance, and the compact JWE
//! that carries the fields the person discloses to the brand's encryption key.
//!
//! **Why the JWE is composed here.** RFC 7516 compact JWE with `ECDH-ES` and `A256GCM` needs
//! three primitives: an ephemeral P-256 agreement, the Concat KDF of RFC 7518 §4.6.2 over
//! SHA-256, and AES-256-GCM. ring has all three. The Rust JOSE crates that do ECDH-ES either
//! bind OpenSSL (josekit) or bring a second implementation of P-256 and AES (the RustCrypto
//! crates behind jwt-simple and compact_jwt), while the vault keeps ring as its only
//! cryptographic implementation (SECURITY.md). So the few lines of JOSE framing are written
//! here, on ring, and checked by RFC 7518 Appendix C's vector for the KDF, by a round trip in
//! this module's tests, and by Python's jwcrypto decrypting the vault's output in the relay's
//! interop test.
//!
//! Only direct key agreement is produced (`"alg": "ECDH-ES"`, the content key is the KDF's
//! output); `ECDH-ES+A256KW` is what a brand's key may name, and any JOSE library decrypting
//! `ECDH-ES` reads the algorithm from the JWE's header, not from the key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::agreement::{ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey, agree_ephemeral};
use ring::digest;
use ring::rand::SystemRandom;
use serde_json::{Value, json};

use super::jwt::{self, JwtError};
use super::{CryptoError, random_array, relay_jwks, sha256};

/// The base64url SHA-256 of the RFC 8785 form of an offer body without its `acceptance`
/// member: the acceptance's `offer_sha256`. The relay computes the same.
pub fn offer_digest(offer: &Value) -> Result<String, CryptoError> {
    let canonical = serde_json_canonicalizer::to_vec(offer)
        .map_err(|e| CryptoError::Sign(format!("canonicalising an offer: {e}")))?;
    Ok(B64.encode(sha256(&canonical)))
}

/// Checks a brand's acceptance (a compact JWS, ES256 only) against the signing keys of the key
/// set a relay publishes for it; returns its claims, unchecked.
pub fn verify_acceptance(jws: &str, brand_jwks: &Value) -> Result<Value, JwtError> {
    let header = jsonwebtoken::decode_header(jws).map_err(|_| JwtError::Malformed)?;
    if header.alg != jsonwebtoken::Algorithm::ES256 {
        return Err(JwtError::Algorithm(format!("{:?}", header.alg)));
    }
    jwt::verify_with_jwks(jws, &relay_jwks::signing_keys(brand_jwks))
}

/// The first encryption key (`"use": "enc"`, P-256) of a brand's published key set.
pub fn encryption_key(brand_jwks: &Value) -> Option<Value> {
    brand_jwks
        .get("keys")
        .and_then(Value::as_array)?
        .iter()
        .find(|k| k["use"] == "enc" && k["kty"] == "EC" && k["crv"] == "P-256")
        .cloned()
}

/// The Concat KDF of NIST SP 800-56A as RFC 7518 §4.6.2 uses it, with SHA-256: `keydatalen`
/// bits (at most 256 here) from the shared secret `z` and the algorithm and party infos.
pub fn concat_kdf(
    z: &[u8],
    algorithm: &str,
    party_u: &[u8],
    party_v: &[u8],
    keydatalen_bits: u32,
) -> Vec<u8> {
    let mut other = Vec::new();
    for part in [algorithm.as_bytes(), party_u, party_v] {
        other.extend_from_slice(&(part.len() as u32).to_be_bytes());
        other.extend_from_slice(part);
    }
    other.extend_from_slice(&keydatalen_bits.to_be_bytes());
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(&1u32.to_be_bytes());
    context.update(z);
    context.update(&other);
    let round = context.finish();
    let bytes = (keydatalen_bits as usize).div_ceil(8).min(32);
    round.as_ref()[..bytes].to_vec()
}

fn point_of(jwk: &Value) -> Result<Vec<u8>, CryptoError> {
    let coordinate = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .and_then(|t| B64.decode(t).ok())
            .filter(|b| b.len() == 32)
            .ok_or(CryptoError::Open)
    };
    if jwk["kty"] != "EC" || jwk["crv"] != "P-256" {
        return Err(CryptoError::Open);
    }
    let mut point = Vec::with_capacity(65);
    point.push(4);
    point.extend_from_slice(&coordinate("x")?);
    point.extend_from_slice(&coordinate("y")?);
    Ok(point)
}

/// Encrypts `plaintext` to the P-256 public key `recipient` (a JWK) as a compact JWE:
/// `{"alg": "ECDH-ES", "enc": "A256GCM", "kid": <the key's kid>, "epk": <a fresh key>}`.
pub fn encrypt_to(recipient: &Value, plaintext: &[u8]) -> Result<String, CryptoError> {
    let ephemeral = EphemeralPrivateKey::generate(&ECDH_P256, &SystemRandom::new())
        .map_err(|_| CryptoError::Random)?;
    encrypt_with(ephemeral, recipient, plaintext)
}

fn encrypt_with(
    ephemeral: EphemeralPrivateKey,
    recipient: &Value,
    plaintext: &[u8],
) -> Result<String, CryptoError> {
    let peer = point_of(recipient)?;
    let public = ephemeral
        .compute_public_key()
        .map_err(|_| CryptoError::Random)?;
    let public = public.as_ref();
    if public.len() != 65 {
        return Err(CryptoError::Open);
    }
    let mut header = json!({
        "alg": "ECDH-ES",
        "enc": "A256GCM",
        "epk": {
            "kty": "EC",
            "crv": "P-256",
            "x": B64.encode(&public[1..33]),
            "y": B64.encode(&public[33..65]),
        },
    });
    if let Some(kid) = recipient.get("kid").and_then(Value::as_str) {
        header["kid"] = json!(kid);
    }
    let cek = agree_ephemeral(ephemeral, &UnparsedPublicKey::new(&ECDH_P256, &peer), |z| {
        concat_kdf(z, "A256GCM", b"", b"", 256)
    })
    .map_err(|_| CryptoError::Open)?;
    let header = B64.encode(serde_json::to_vec(&header).map_err(|_| CryptoError::Open)?);
    let iv = random_array::<12>()?;
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &cek).map_err(|_| CryptoError::Open)?);
    let mut sealed = plaintext.to_vec();
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(iv),
            Aad::from(header.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| CryptoError::Open)?;
    Ok(format!(
        "{header}..{}.{}.{}",
        B64.encode(iv),
        B64.encode(&sealed),
        B64.encode(tag.as_ref())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::jwt::SigningKey;

    #[test]
    fn the_kdf_gives_rfc_7518_appendix_c() {
        let z: [u8; 32] = [
            158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49,
            110, 163, 218, 128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196,
        ];
        let key = concat_kdf(&z, "A128GCM", b"Alice", b"Bob", 128);
        assert_eq!(B64.encode(key), "VqqN6vgjbSBcIijNcacQGg");
    }

    /// Decrypts as a recipient would, with the recipient's (here single-use) private key.
    fn decrypt(recipient: EphemeralPrivateKey, jwe: &str) -> Vec<u8> {
        let parts: Vec<&str> = jwe.split('.').collect();
        assert_eq!(parts.len(), 5);
        assert_eq!(parts[1], "", "direct agreement has no encrypted key");
        let header: Value =
            serde_json::from_slice(&B64.decode(parts[0]).unwrap_or_default()).unwrap_or_default();
        assert_eq!(header["alg"], "ECDH-ES");
        assert_eq!(header["enc"], "A256GCM");
        let epk = point_of(&header["epk"]).unwrap_or_default();
        let cek = agree_ephemeral(recipient, &UnparsedPublicKey::new(&ECDH_P256, &epk), |z| {
            concat_kdf(z, "A256GCM", b"", b"", 256)
        })
        .unwrap_or_default();
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &cek).unwrap_or_else(|_| unreachable!()),
        );
        let iv: [u8; 12] = B64
            .decode(parts[2])
            .unwrap_or_default()
            .try_into()
            .unwrap_or([0; 12]);
        let mut data = B64.decode(parts[3]).unwrap_or_default();
        data.extend(B64.decode(parts[4]).unwrap_or_default());
        key.open_in_place(
            Nonce::assume_unique_for_key(iv),
            Aad::from(parts[0].as_bytes()),
            &mut data,
        )
        .map(|plain| plain.to_vec())
        .unwrap_or_default()
    }

    fn jwk_of(key: &EphemeralPrivateKey) -> Value {
        let public = key.compute_public_key().unwrap_or_else(|_| unreachable!());
        let public = public.as_ref();
        json!({"kty": "EC", "crv": "P-256", "kid": "enc-1", "use": "enc",
               "x": B64.encode(&public[1..33]), "y": B64.encode(&public[33..65])})
    }

    #[test]
    fn the_recipient_reads_exactly_what_was_encrypted_and_nothing_after_tampering() {
        let rng = SystemRandom::new();
        let recipient =
            EphemeralPrivateKey::generate(&ECDH_P256, &rng).unwrap_or_else(|_| unreachable!());
        let jwk = jwk_of(&recipient);
        let plaintext = br#"{"fields":{"contact.email":"ana@example.org"}}"#;
        let jwe = encrypt_to(&jwk, plaintext).unwrap_or_default();
        let header: Value = serde_json::from_slice(
            &B64.decode(jwe.split('.').next().unwrap_or_default())
                .unwrap_or_default(),
        )
        .unwrap_or_default();
        assert_eq!(header["kid"], "enc-1");
        assert!(header["epk"].get("d").is_none());
        assert!(!jwe.contains("ana@example.org"));
        assert_eq!(decrypt(recipient, &jwe), plaintext.to_vec());

        let other =
            EphemeralPrivateKey::generate(&ECDH_P256, &rng).unwrap_or_else(|_| unreachable!());
        let jwk = jwk_of(&other);
        let jwe = encrypt_to(&jwk, plaintext).unwrap_or_default();
        let mut parts: Vec<String> = jwe.split('.').map(str::to_owned).collect();
        parts[3] = B64.encode(b"something else, same length as the plaintext!!");
        assert!(decrypt(other, &parts.join(".")).is_empty());
    }

    #[test]
    fn a_key_off_the_curve_or_of_another_kind_is_refused() {
        let mut bad = json!({"kty": "EC", "crv": "P-256", "x": B64.encode([1u8; 32]), "y": B64.encode([2u8; 32])});
        assert!(encrypt_to(&bad, b"x").is_err());
        bad["kty"] = json!("RSA");
        assert!(encrypt_to(&bad, b"x").is_err());
    }

    #[test]
    fn an_acceptance_verifies_only_with_the_brand_signing_key_and_es256() {
        let brand = SigningKey::generate().unwrap_or_else(|_| unreachable!());
        let other = SigningKey::generate().unwrap_or_else(|_| unreachable!());
        let jwks = json!({"keys": [serde_json::to_value(brand.public_jwk()).unwrap_or_default()]});
        let claims =
            json!({"intent_id": "ri_1", "terms_hash": "sha256:00", "offer_sha256": "x", "iat": 1});
        let good = brand.sign_jwt("JWT", &claims).unwrap_or_default();
        assert_eq!(verify_acceptance(&good, &jwks).ok(), Some(claims.clone()));
        let forged = other.sign_jwt("JWT", &claims).unwrap_or_default();
        assert!(verify_acceptance(&forged, &jwks).is_err());
        let offer = json!({"name": "Menu", "valid_until": "2030-01-01T00:00:00Z"});
        let reordered = json!({"valid_until": "2030-01-01T00:00:00Z", "name": "Menu"});
        assert_eq!(offer_digest(&offer).ok(), offer_digest(&reordered).ok());
    }
}
