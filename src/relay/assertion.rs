//! The rules a brand's RFC 7523 client assertion must meet at the relay's token endpoint, as a
//! pure function of its claims and the time: the signature is checked before (with the brand's
//! published signing keys), the one-time use of its `jti` after (in a NATS KV bucket).
//!
//! The same rules as the vault's token endpoint (`service::brands`): `iss` and `sub` are the
//! client id, `aud` names the token endpoint or the issuer, `exp` is in the future and at most
//! 65 minutes ahead, `nbf`/`iat` are not in the future beyond a minute of skew, and a `jti` of
//! at most 256 characters is present.

use serde::Deserialize;
use serde_json::Value;

/// The longest an assertion may live; its `jti` is remembered at least this long.
pub const MAX_LIFETIME_SECONDS: i64 = 65 * 60;
/// Clock skew allowed on `nbf` and `iat`.
pub const SKEW_SECONDS: i64 = 60;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AssertionClaims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub aud: Option<Value>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
    pub jti: Option<String>,
}

/// An assertion that met every rule: what the replay check needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub jti: String,
    pub exp: i64,
}

/// Checks the claims of an assertion whose signature by `client_id`'s key already verified.
/// The error is a sentence for the brand's developer.
pub fn check_claims(
    claims: &AssertionClaims,
    client_id: &str,
    audiences: &[String],
    now: i64,
) -> Result<Accepted, String> {
    if claims.iss.as_deref() != Some(client_id) || claims.sub.as_deref() != Some(client_id) {
        return Err("the client assertion's iss and sub must both be the client id".into());
    }
    let aud_ok = match &claims.aud {
        Some(Value::String(a)) => audiences.contains(a),
        Some(Value::Array(list)) => list
            .iter()
            .any(|a| a.as_str().is_some_and(|a| audiences.iter().any(|x| x == a))),
        _ => false,
    };
    if !aud_ok {
        return Err(format!(
            "the client assertion's aud must be the token endpoint or the issuer ({})",
            audiences.join(", ")
        ));
    }
    let exp = claims.exp.ok_or("the client assertion has no exp")?;
    if exp <= now {
        return Err("the client assertion has expired".into());
    }
    if exp > now + MAX_LIFETIME_SECONDS {
        return Err("the client assertion lives too long: at most 65 minutes".into());
    }
    if claims.nbf.is_some_and(|nbf| nbf > now + SKEW_SECONDS)
        || claims.iat.is_some_and(|iat| iat > now + SKEW_SECONDS)
    {
        return Err("the client assertion is not valid yet".into());
    }
    let jti = claims
        .jti
        .clone()
        .filter(|j| !j.is_empty() && j.chars().count() <= 256)
        .ok_or("the client assertion needs a jti (at most 256 characters)")?;
    Ok(Accepted { jti, exp })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn good() -> AssertionClaims {
        AssertionClaims {
            iss: Some("rb_1".into()),
            sub: Some("rb_1".into()),
            aud: Some(json!("https://relay.example/oauth/token")),
            exp: Some(NOW + 60),
            nbf: None,
            iat: Some(NOW),
            jti: Some("j1".into()),
        }
    }

    fn check(claims: &AssertionClaims) -> Result<Accepted, String> {
        let audiences = [
            "https://relay.example".to_owned(),
            "https://relay.example/oauth/token".to_owned(),
        ];
        check_claims(claims, "rb_1", &audiences, NOW)
    }

    #[test]
    fn a_good_assertion_passes_with_its_jti() {
        assert_eq!(
            check(&good()),
            Ok(Accepted {
                jti: "j1".into(),
                exp: NOW + 60
            })
        );
        let list = AssertionClaims {
            aud: Some(json!(["other", "https://relay.example"])),
            ..good()
        };
        assert!(check(&list).is_ok());
    }

    #[test]
    fn each_rule_refuses_on_its_own() {
        let cases = [
            (
                AssertionClaims {
                    sub: Some("rb_2".into()),
                    ..good()
                },
                "iss and sub",
            ),
            (
                AssertionClaims {
                    iss: None,
                    ..good()
                },
                "iss and sub",
            ),
            (
                AssertionClaims {
                    aud: Some(json!("https://vault.example")),
                    ..good()
                },
                "aud",
            ),
            (
                AssertionClaims {
                    aud: None,
                    ..good()
                },
                "aud",
            ),
            (
                AssertionClaims {
                    exp: None,
                    ..good()
                },
                "no exp",
            ),
            (
                AssertionClaims {
                    exp: Some(NOW),
                    ..good()
                },
                "expired",
            ),
            (
                AssertionClaims {
                    exp: Some(NOW + 66 * 60),
                    ..good()
                },
                "too long",
            ),
            (
                AssertionClaims {
                    nbf: Some(NOW + 120),
                    ..good()
                },
                "not valid yet",
            ),
            (
                AssertionClaims {
                    iat: Some(NOW + 120),
                    ..good()
                },
                "not valid yet",
            ),
            (
                AssertionClaims {
                    jti: None,
                    ..good()
                },
                "jti",
            ),
            (
                AssertionClaims {
                    jti: Some("x".repeat(257)),
                    ..good()
                },
                "jti",
            ),
        ];
        for (claims, expected) in cases {
            let error = check(&claims).err().unwrap_or_default();
            assert!(
                error.contains(expected),
                "{error:?} should mention {expected}"
            );
        }
    }
}
