//! A relay brand's public key set (DESIGN §11): one P-256 key that signs (`"use": "sig"`, for
//! its client assertions and its acceptances of a person's terms) and one P-256 key that vaults
//! encrypt disclosed fields to (`"use": "enc"`, ECDH-ES). The relay publishes the set, so it
//! is checked strictly when the operator admits the brand: each point must lie on the curve
//! (checked by a real ECDH agreement with a throw-away key, which ring refuses for a point off
//! the curve), and no private member may be present.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::agreement::{ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey, agree_ephemeral};
use ring::rand::SystemRandom;
use serde_json::Value;

/// At most this many keys (room for one rotation of each).
pub const MAX_KEYS: usize = 4;
const MAX_KID_CHARS: usize = 128;
/// Key-management algorithms a brand may name on its encryption key.
pub const ENCRYPTION_ALGORITHMS: &[&str] = &[
    "ECDH-ES",
    "ECDH-ES+A128KW",
    "ECDH-ES+A192KW",
    "ECDH-ES+A256KW",
];

/// Why a key set was refused; the sentence names the member at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JwksError(pub String);

fn fail<T>(message: String) -> Result<T, JwksError> {
    Err(JwksError(message))
}

/// Whether `(x, y)` is a point of P-256 that ECDH accepts.
fn on_curve(x: &[u8], y: &[u8]) -> bool {
    let mut point = Vec::with_capacity(65);
    point.push(4);
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    let Ok(private) = EphemeralPrivateKey::generate(&ECDH_P256, &SystemRandom::new()) else {
        return false;
    };
    agree_ephemeral(private, &UnparsedPublicKey::new(&ECDH_P256, &point), |_| ()).is_ok()
}

fn coordinate(key: &Value, i: usize, name: &str) -> Result<Vec<u8>, JwksError> {
    let text = key.get(name).and_then(Value::as_str).unwrap_or_default();
    match B64.decode(text) {
        Ok(bytes) if bytes.len() == 32 => Ok(bytes),
        _ => fail(format!(
            "jwks.keys[{i}].{name} must be 32 bytes in base64url without padding"
        )),
    }
}

/// Checks a brand's key set and returns it reduced to the public members JOSE defines
/// (`kty`, `crv`, `x`, `y`, `kid`, `use`, `alg`), so nothing else is ever published.
pub fn check_relay_jwks(jwks: &Value) -> Result<Value, JwksError> {
    let kept = check_keys(jwks)?;
    for (usage, what) in [("sig", "signing"), ("enc", "encryption")] {
        if !kept.iter().any(|k| k["use"] == usage) {
            return fail(format!(
                "jwks must hold a P-256 {what} key (\"use\": \"{usage}\")"
            ));
        }
    }
    Ok(serde_json::json!({ "keys": kept }))
}

/// Checks each key of a set; returns them reduced to their public members.
fn check_keys(jwks: &Value) -> Result<Vec<Value>, JwksError> {
    let Some(keys) = jwks.get("keys").and_then(Value::as_array) else {
        return fail("jwks must be an object with a \"keys\" array".into());
    };
    if keys.len() > MAX_KEYS {
        return fail(format!("jwks may hold at most {MAX_KEYS} keys"));
    }
    let mut kept = Vec::with_capacity(keys.len());
    let mut kids: Vec<&str> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        if ["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .any(|m| key.get(m).is_some())
        {
            return fail(format!(
                "jwks.keys[{i}] holds private key material: publish only the public key"
            ));
        }
        if key.get("kty").and_then(Value::as_str) != Some("EC")
            || key.get("crv").and_then(Value::as_str) != Some("P-256")
        {
            return fail(format!(
                "jwks.keys[{i}] must be a P-256 key (\"kty\": \"EC\", \"crv\": \"P-256\")"
            ));
        }
        let kid = key.get("kid").and_then(Value::as_str).unwrap_or_default();
        if kid.is_empty() || kid.chars().count() > MAX_KID_CHARS {
            return fail(format!(
                "jwks.keys[{i}].kid is required (1 to {MAX_KID_CHARS} characters)"
            ));
        }
        if kids.contains(&kid) {
            return fail(format!("jwks.keys[{i}].kid {kid:?} is used twice"));
        }
        kids.push(kid);
        let usage = key.get("use").and_then(Value::as_str).unwrap_or_default();
        let alg = key.get("alg").and_then(Value::as_str);
        match (usage, alg) {
            ("sig", None | Some("ES256")) => {}
            ("sig", Some(other)) => {
                return fail(format!("jwks.keys[{i}].alg {other} must be ES256"));
            }
            ("enc", None) => {}
            ("enc", Some(other)) if ENCRYPTION_ALGORITHMS.contains(&other) => {}
            ("enc", Some(other)) => {
                return fail(format!(
                    "jwks.keys[{i}].alg {other} must be one of {}",
                    ENCRYPTION_ALGORITHMS.join(", ")
                ));
            }
            _ => {
                return fail(format!(
                    "jwks.keys[{i}].use must be \"sig\" (signing) or \"enc\" (encryption)"
                ));
            }
        }
        let (x, y) = (coordinate(key, i, "x")?, coordinate(key, i, "y")?);
        if !on_curve(&x, &y) {
            return fail(format!("jwks.keys[{i}] is not a point on P-256"));
        }
        let mut public = serde_json::Map::new();
        for member in ["kty", "crv", "x", "y", "kid", "use", "alg"] {
            if let Some(value) = key.get(member) {
                public.insert(member.to_owned(), value.clone());
            }
        }
        kept.push(Value::Object(public));
    }
    Ok(kept)
}

/// Checks an intent's public key (DESIGN §11: the intent's only identity): a P-256 public JWK
/// whose point lies on the curve, with no private member. Returns it reduced to `kty`, `crv`,
/// `x`, `y` (and `kid`, `use`, `alg` when given), so nothing else about the vault passes on.
pub fn check_intent_jwk(jwk: &Value) -> Result<Value, JwksError> {
    let mut key = jwk.clone();
    if key.get("kid").is_none() {
        key["kid"] = Value::String("intent".into());
    }
    key["use"] = Value::String("sig".into());
    let mut checked = check_single(&key)?;
    if jwk.get("kid").is_none()
        && let Some(map) = checked.as_object_mut()
    {
        map.remove("kid");
    }
    if jwk.get("use").is_none()
        && let Some(map) = checked.as_object_mut()
    {
        map.remove("use");
    }
    Ok(checked)
}

fn check_single(key: &Value) -> Result<Value, JwksError> {
    if !key.is_object() {
        return fail("must be a JWK object".into());
    }
    let set = serde_json::json!({"keys": [key]});
    let mut kept = check_keys(&set)?;
    Ok(kept.pop().unwrap_or(Value::Null))
}

/// The signing keys of a checked set, as a JWKS: client assertions and acceptances are
/// verified with these only, never with the encryption key.
pub fn signing_keys(jwks: &Value) -> Value {
    let keys: Vec<Value> = jwks
        .get("keys")
        .and_then(Value::as_array)
        .map(|keys| keys.iter().filter(|k| k["use"] == "sig").cloned().collect())
        .unwrap_or_default();
    serde_json::json!({ "keys": keys })
}

/// Verifies a compact JWS made with an intent's key (the vault's tokens and receipts at the
/// relay): `alg` must be ES256 and the signature must verify with `jwk`, the intent's only key,
/// whatever `kid` the header names. Returns the payload, unchecked.
pub fn verify_with_intent_key<C: serde::de::DeserializeOwned>(
    token: &str,
    jwk: &Value,
) -> Result<C, super::jwt::JwtError> {
    use super::jwt::JwtError;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
    if header.alg != Algorithm::ES256 {
        return Err(JwtError::Algorithm(format!("{:?}", header.alg)));
    }
    let (Some(x), Some(y)) = (jwk["x"].as_str(), jwk["y"].as_str()) else {
        return Err(JwtError::UnknownKey);
    };
    let key = DecodingKey::from_ec_components(x, y).map_err(|_| JwtError::UnknownKey)?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<C>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|_| JwtError::Signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::jwt::SigningKey;
    use serde_json::json;

    fn p256(kid: &str, usage: &str) -> Value {
        let key = SigningKey::generate().unwrap_or_else(|_| unreachable!());
        let mut jwk = serde_json::to_value(key.public_jwk()).unwrap_or_default();
        jwk["kid"] = json!(kid);
        jwk["use"] = json!(usage);
        if let Some(map) = jwk.as_object_mut() {
            map.remove("alg");
        }
        jwk
    }

    fn pair() -> Value {
        json!({"keys": [p256("s1", "sig"), p256("e1", "enc")]})
    }

    #[test]
    fn accepts_a_signing_and_an_encryption_key_and_keeps_only_public_members() {
        let mut set = pair();
        set["keys"][0]["x5u"] = json!("https://example.com/x");
        let checked = check_relay_jwks(&set).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(checked["keys"][0].get("x5u").is_none());
        assert_eq!(checked["keys"][1]["use"], "enc");
        assert_eq!(
            signing_keys(&checked)["keys"].as_array().map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn refuses_what_a_relay_must_not_publish() {
        let cases: Vec<(Value, &str)> = vec![
            (json!({"keys": [p256("s1", "sig")]}), "encryption key"),
            (json!({"keys": [p256("e1", "enc")]}), "signing key"),
            (
                json!({"keys": [p256("k", "sig"), p256("k", "enc")]}),
                "used twice",
            ),
            (
                json!({"keys": [p256("s1", "sig"), p256("e1", "wrap")]}),
                "use must be",
            ),
            (json!([]), "\"keys\" array"),
        ];
        for (set, expected) in cases {
            let error = check_relay_jwks(&set)
                .err()
                .map(|e| e.0)
                .unwrap_or_default();
            assert!(error.contains(expected), "{error} should say {expected}");
        }
        let mut private = pair();
        private["keys"][0]["d"] = json!("AAAA");
        assert!(check_relay_jwks(&private).is_err());
        let mut rsa = pair();
        rsa["keys"][0]["kty"] = json!("RSA");
        assert!(check_relay_jwks(&rsa).is_err());
        let mut bad_alg = pair();
        bad_alg["keys"][0]["alg"] = json!("RS256");
        assert!(check_relay_jwks(&bad_alg).is_err());
    }

    #[test]
    fn refuses_a_point_off_the_curve() {
        let mut set = pair();
        // y + 1 (mod 2^256) is not on the curve for the same x.
        let y = B64
            .decode(set["keys"][1]["y"].as_str().unwrap_or_default())
            .unwrap_or_default();
        let mut moved = y.clone();
        if let Some(last) = moved.last_mut() {
            *last ^= 1;
        }
        set["keys"][1]["y"] = json!(B64.encode(&moved));
        let error = check_relay_jwks(&set)
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(error.contains("not a point on P-256"), "{error}");
    }
}
