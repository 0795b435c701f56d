//! JWTs: brand access tokens as every brand call presents them (signature with the pinned
//! algorithm and type, then the claim checks of `service::tokens`), brands' client assertions
//! checked against their registered key set, and scope strings.
//!
//! Input: a selector byte, then
//! - 0: a token, checked as an access token against the targets' signing key;
//! - 1: claims (JSON), signed here with that key and then checked as an access token, so the
//!   claim checks see every value a signature can carry;
//! - 2: a token, then the separator and a JWK set (JSON), checked as a client assertion (without
//!   the separator, against the targets' key as the only registered key);
//! - 3: a scope string, parsed against every brand scope.

#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use vrm_vault::crypto::jwt;
use vrm_vault::domain::brands::{all_brand_scopes, parse_scope};
use vrm_vault::service::tokens::{ACCESS_TOKEN_TYP, AccessClaims, check_access_claims};

fuzz_target!(|data: &[u8]| {
    let Some((selector, rest)) = vault_fuzz::selector(data) else {
        return;
    };
    match selector % 4 {
        0 => {
            if let Ok(token) = std::str::from_utf8(rest) {
                let _ = access_token(token);
            }
        }
        1 => signed_claims(rest),
        2 => client_assertion(rest),
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                scope(text);
            }
        }
    }
});

/// What a brand call does with its bearer token before the store is asked about it.
fn access_token(token: &str) -> Result<AccessClaims, String> {
    let keys = [vault_fuzz::signing_key().public_jwk().clone()];
    let claims: AccessClaims = jwt::verify_es256(token, &keys, &["at+jwt", "application/at+jwt"])
        .map_err(|e| e.to_string())?;
    check_access_claims(
        &claims,
        vault_fuzz::ISSUER,
        vault_fuzz::RESOURCE,
        vault_fuzz::NOW,
    )
    .map_err(|e| e.to_string())?;
    Ok(claims)
}

fn signed_claims(bytes: &[u8]) {
    let Ok(claims) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    let Ok(token) = vault_fuzz::signing_key().sign_jwt(ACCESS_TOKEN_TYP, &claims) else {
        return;
    };
    if let Ok(accepted) = access_token(&token) {
        // An accepted token is live now and lives no longer than tokens may.
        assert!(accepted.exp > vault_fuzz::NOW);
        assert!(accepted.iat <= vault_fuzz::NOW + 60);
        assert!(accepted.exp.saturating_sub(accepted.iat) <= 15 * 60);
    }
    // The same claims under a type access tokens do not have are refused.
    if let Ok(other) = vault_fuzz::signing_key().sign_jwt("JWT", &claims) {
        assert!(access_token(&other).is_err());
    }
}

fn client_assertion(bytes: &[u8]) {
    let parts = vault_fuzz::parts(bytes);
    let Ok(token) = std::str::from_utf8(parts[0]) else {
        return;
    };
    let jwks = match parts.get(1) {
        Some(text) => match serde_json::from_slice::<Value>(text) {
            Ok(jwks) => jwks,
            Err(_) => return,
        },
        None => json!({ "keys": [vault_fuzz::signing_key().public_jwk()] }),
    };
    let _ = jwt::check_client_jwks(&jwks);
    if jwt::verify_with_jwks::<Value>(token, &jwks).is_ok() {
        // Only an asymmetric algorithm ever verifies: a brand proves itself with a private key,
        // and `none` or an HMAC keyed with public key bytes must never get through.
        let alg = token
            .split('.')
            .next()
            .and_then(|header| B64.decode(header).ok())
            .and_then(|header| serde_json::from_slice::<Value>(&header).ok())
            .and_then(|header| header.get("alg").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        assert!(
            jwt::ASSERTION_ALGORITHMS.contains(&alg.as_str()),
            "verified with {alg:?}"
        );
    }
}

fn scope(text: &str) {
    let allowed = all_brand_scopes();
    if let Ok(scopes) = parse_scope(text, &allowed) {
        assert!(scopes.iter().all(|s| allowed.contains(s)));
        let again = parse_scope(&scopes.join(" "), &allowed);
        assert_eq!(again.as_ref(), Ok(&scopes));
    }
}
