//! DPoP proofs (RFC 9449 §4): a JWT the client signs with a key of its own, carried in the
//! `DPoP` header, which binds a token to that key. This module verifies a proof's signature
//! with the public key its header carries and returns what the proof says, with the key's RFC
//! 7638 thumbprint (`jkt`); whether the proof fits the request (method, URL, time, replay,
//! token hash, nonce) is the caller's to check.
//!
//! Only ES256 is accepted: the algorithm the vault signs with, and the one every DPoP client
//! library implements.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::jwt::thumbprint;
use super::sha256;

/// The `typ` of a DPoP proof (RFC 9449 §4.2).
pub const DPOP_TYP: &str = "dpop+jwt";
/// The signing algorithms accepted for proofs (advertised as `dpop_signing_alg_values_supported`).
pub const DPOP_ALGORITHMS: &[&str] = &["ES256"];
/// The longest proof accepted, in bytes: a P-256 proof is well under 1 KiB.
const MAX_PROOF_BYTES: usize = 4096;

/// Why a proof is refused (`invalid_dpop_proof`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    #[error("the DPoP proof is not a well-formed JWT")]
    Malformed,
    #[error("the DPoP proof's typ must be dpop+jwt")]
    Type,
    #[error("the DPoP proof must be signed with ES256")]
    Algorithm,
    #[error("the DPoP proof's jwk must be a P-256 public key (and nothing private)")]
    Key,
    #[error("the DPoP proof's signature does not verify with its jwk")]
    Signature,
}

/// What a verified proof says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopProof {
    /// The RFC 7638 thumbprint of the proof's public key: what a bound token's `cnf.jkt` holds.
    pub jkt: String,
    pub jti: String,
    pub htm: String,
    pub htu: String,
    pub iat: i64,
    /// base64url(SHA-256(access token)), on proofs sent with a token.
    pub ath: Option<String>,
    pub nonce: Option<String>,
}

#[derive(Deserialize)]
struct ProofHeader {
    typ: Option<String>,
    alg: Option<String>,
    jwk: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    ath: Option<String>,
    nonce: Option<String>,
}

/// Verifies a proof's header and signature and returns its claims and key thumbprint.
pub fn verify_proof(proof: &str) -> Result<DpopProof, DpopError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(DpopError::Malformed);
    }
    let encoded = proof.split('.').next().ok_or(DpopError::Malformed)?;
    let bytes = B64.decode(encoded).map_err(|_| DpopError::Malformed)?;
    let header: ProofHeader = serde_json::from_slice(&bytes).map_err(|_| DpopError::Malformed)?;
    if header.typ.as_deref() != Some(DPOP_TYP) {
        return Err(DpopError::Type);
    }
    if header.alg.as_deref() != Some("ES256") {
        return Err(DpopError::Algorithm);
    }
    let jwk = header.jwk.ok_or(DpopError::Key)?;
    let member = |name: &str| jwk.get(name).and_then(|v| v.as_str());
    if member("kty") != Some("EC") || member("crv") != Some("P-256") || jwk.contains_key("d") {
        return Err(DpopError::Key);
    }
    let (Some(x), Some(y)) = (member("x"), member("y")) else {
        return Err(DpopError::Key);
    };
    let key = DecodingKey::from_ec_components(x, y).map_err(|_| DpopError::Key)?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<ProofClaims>(proof, &key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => DpopError::Signature,
            _ => DpopError::Malformed,
        })?
        .claims;
    Ok(DpopProof {
        jkt: thumbprint(x, y),
        jti: claims.jti,
        htm: claims.htm,
        htu: claims.htu,
        iat: claims.iat,
        ath: claims.ath,
        nonce: claims.nonce,
    })
}

/// The `ath` a proof sent with `access_token` must carry (RFC 9449 §4.2).
pub fn access_token_hash(access_token: &str) -> String {
    B64.encode(sha256(access_token.as_bytes()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use serde_json::json;

    struct ClientKey {
        pkcs8: Vec<u8>,
        x: String,
        y: String,
    }

    fn client_key() -> ClientKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap()
            .as_ref()
            .to_vec();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng).unwrap();
        let point = pair.public_key().as_ref();
        ClientKey {
            x: B64.encode(&point[1..33]),
            y: B64.encode(&point[33..65]),
            pkcs8,
        }
    }

    fn sign(
        key: &ClientKey,
        typ: &str,
        jwk: serde_json::Value,
        claims: serde_json::Value,
    ) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(typ.to_owned());
        header.jwk = Some(serde_json::from_value(jwk).unwrap());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&key.pkcs8)).unwrap()
    }

    fn claims() -> serde_json::Value {
        json!({"jti": "j1", "htm": "POST", "htu": "https://v.example/oauth/token", "iat": 1_700_000_000, "ath": "abc"})
    }

    #[test]
    fn a_proof_verifies_with_its_own_key_and_names_its_thumbprint() {
        let key = client_key();
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": key.x, "y": key.y});
        let proof = verify_proof(&sign(&key, DPOP_TYP, jwk, claims())).unwrap();
        assert_eq!(proof.jkt, thumbprint(&key.x, &key.y));
        assert_eq!(proof.htm, "POST");
        assert_eq!(proof.htu, "https://v.example/oauth/token");
        assert_eq!(proof.iat, 1_700_000_000);
        assert_eq!(proof.ath.as_deref(), Some("abc"));
    }

    #[test]
    fn wrong_type_foreign_key_or_tampering_is_refused() {
        let key = client_key();
        let other = client_key();
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": key.x, "y": key.y});
        assert_eq!(
            verify_proof(&sign(&key, "JWT", jwk.clone(), claims())),
            Err(DpopError::Type)
        );
        let foreign = json!({"kty": "EC", "crv": "P-256", "x": other.x, "y": other.y});
        assert_eq!(
            verify_proof(&sign(&key, DPOP_TYP, foreign, claims())),
            Err(DpopError::Signature)
        );
        let proof = sign(&key, DPOP_TYP, jwk, claims());
        let mut parts: Vec<&str> = proof.split('.').collect();
        let forged =
            B64.encode(json!({"jti": "j1", "htm": "GET", "htu": "x", "iat": 1}).to_string());
        parts[1] = &forged;
        assert_eq!(verify_proof(&parts.join(".")), Err(DpopError::Signature));
        assert_eq!(verify_proof("not a jwt"), Err(DpopError::Malformed));
    }

    #[test]
    fn the_token_hash_is_base64url_sha256() {
        assert_eq!(
            access_token_hash("abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }
}
