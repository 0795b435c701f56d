//! Brand access tokens: RFC 9068 JWTs issued by the client-credentials grant, checked on every
//! brand call, revocable (RFC 7009) and introspectable (RFC 7662).
//!
//! A token is only as good as what backs it now: every check re-reads the brand (not removed, not
//! suspended), its agreement (still accepted, on the terms in force) and the revocation list, so
//! any of those changing stops the very next call.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::Duration;

use super::OpenVault;
use crate::crypto::{jwt, random_array};
use crate::domain::audit::Event;
use crate::domain::brands::{Brand, BrandStatus, parse_scope};
use crate::error::{AppError, OAuthError};
use crate::store::{Store, Tree};

/// The `typ` header of access tokens (RFC 9068 §2.1); validators accept the long form too (§4).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
const ACCESS_TOKEN_TYPES: &[&str] = &["at+jwt", "application/at+jwt"];
/// The longest lifetime an access token may have.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::minutes(15);
/// Clock skew tolerated on `iat`.
const SKEW_SECONDS: i64 = 60;

/// The claims of an access token (RFC 9068 §2.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The brand's pairwise pseudonym for the person.
    pub sub: String,
    pub client_id: String,
    pub jti: String,
    pub scope: String,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub exp: i64,
    /// The agreement the token was issued under: when it stops being the brand's current one
    /// (new terms, withdrawal, termination), the token stops working even after re-acceptance.
    pub vrm_agreement: String,
}

/// A token just issued.
#[derive(Debug)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: i64,
    pub scope: String,
}

/// A brand call that presented a valid token.
#[derive(Debug, Clone)]
pub struct BrandAccess {
    pub brand: Brand,
    pub claims: AccessClaims,
}

impl BrandAccess {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.claims.scope.split(' ').any(|s| s == scope)
    }
}

/// Drops remembered `jti`s (live tokens, spent client assertions) that have expired. Runs before the writer starts.
pub(crate) fn prune_jtis(store: &Store, now: i64) -> Result<usize, AppError> {
    let mut expired = Vec::new();
    for item in store.iter(Tree::Jtis) {
        let (key, value) = item?;
        let exp: i64 = std::str::from_utf8(&value)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if exp <= now {
            expired.push(key);
        }
    }
    let count = expired.len();
    if count > 0 {
        let result = store.transact_offline(|tx| {
            for key in &expired {
                tx.remove(Tree::Jtis, key)?;
            }
            Ok::<_, AppError>(())
        });
        match result {
            Ok(()) => {}
            Err(crate::store::TxError::Abort(e)) => return Err(e),
            Err(crate::store::TxError::Store(e)) => return Err(e.into()),
        }
    }
    Ok(count)
}

impl OpenVault {
    /// The `aud` of access tokens: the brand API.
    pub fn resource(&self) -> String {
        format!("{}/brand/v1", self.issuer)
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn token_lifetime(&self) -> Duration {
        self.token_lifetime
    }

    /// The client-credentials grant (RFC 6749 §4.4) for an authenticated brand.
    pub async fn issue_token(
        &self,
        brand: &Brand,
        scope: Option<&str>,
    ) -> Result<IssuedToken, OAuthError> {
        let scopes = match scope {
            None => brand.scope.clone(),
            Some(text) => parse_scope(text, &brand.scope)
                .map_err(|e| OAuthError::new(400, "invalid_scope", e))?,
        };
        if scopes.is_empty() {
            return Err(OAuthError::new(
                400,
                "invalid_scope",
                "ask for at least one scope",
            ));
        }
        let agreement = self.current_agreement(brand)?;
        let Some(agreement) = agreement else {
            let current = self.current_terms()?;
            let terms_uri = format!("{}/brand/v1/terms", self.issuer);
            return Err(OAuthError::new(
                400,
                "unauthorized_client",
                format!(
                    "no agreement on the terms in force: read {terms_uri} and accept version {} by \
                     POST {}/brand/v1/agreements {{\"terms_hash\": \"{}\"}}",
                    current.version.version, self.issuer, current.version.hash
                ),
            )
            .with_extra(serde_json::json!({
                "terms_uri": terms_uri,
                "terms_version": current.version.version,
                "terms_hash": current.version.hash,
            })));
        };
        let now = self.now().unix_timestamp();
        let jti = data_encoding::BASE32_NOPAD
            .encode(&random_array::<15>().map_err(|e| AppError::Internal(e.to_string()))?)
            .to_lowercase();
        let lifetime = self.token_lifetime.whole_seconds();
        let claims = AccessClaims {
            iss: self.issuer.to_string(),
            aud: self.resource(),
            sub: brand.pseudonym.clone(),
            client_id: brand.client_id.clone(),
            jti,
            scope: scopes.join(" "),
            iat: now,
            nbf: None,
            exp: now + lifetime,
            vrm_agreement: agreement,
        };
        let access_token = self
            .key_ring()
            .active
            .sign_jwt(ACCESS_TOKEN_TYP, &claims)
            .map_err(|e| AppError::Internal(format!("signing a token: {e}")))?;
        let event = Event::brand("token.issued", &brand.client_id).with_detail(serde_json::json!({
            "jti": claims.jti,
            "scope": claims.scope,
            "exp": claims.exp,
        }));
        // The vault keeps every live token's jti: a token it has no record of is refused even if
        // its signature verifies, and revocation is removing the record.
        let key = self.jti_key(&claims.jti);
        let exp = claims.exp;
        self.change(move |tx| {
            tx.insert(Tree::Jtis, &key, exp.to_string().as_bytes())?;
            Ok(((), event))
        })
        .await?;
        Ok(IssuedToken {
            access_token,
            expires_in: lifetime,
            scope: claims.scope,
        })
    }

    /// Checks a token's signature, type, issuer, audience and times; returns its claims.
    fn token_claims(&self, token: &str) -> Result<AccessClaims, AppError> {
        let keys = self.jwks();
        let claims: AccessClaims = jwt::verify_es256(token, &keys, ACCESS_TOKEN_TYPES)
            .map_err(|e| AppError::InvalidToken(e.to_string()))?;
        let now = self.now().unix_timestamp();
        if claims.iss != *self.issuer {
            return Err(AppError::InvalidToken(format!("issuer {}", claims.iss)));
        }
        if claims.aud != self.resource() {
            return Err(AppError::InvalidToken(format!("audience {}", claims.aud)));
        }
        if claims.exp <= now {
            return Err(AppError::InvalidToken("expired".into()));
        }
        if claims.iat > now + SKEW_SECONDS
            || claims.nbf.is_some_and(|nbf| nbf > now + SKEW_SECONDS)
            || claims.exp - claims.iat > MAX_TOKEN_LIFETIME.whole_seconds()
        {
            return Err(AppError::InvalidToken(
                "issued in the future or for too long".into(),
            ));
        }
        Ok(claims)
    }

    fn jti_key(&self, jti: &str) -> [u8; 32] {
        self.index_key("token", jti)
    }

    /// Every check a brand call makes on its bearer token.
    pub fn verify_access_token(&self, token: &str) -> Result<BrandAccess, AppError> {
        let claims = self.token_claims(token)?;
        if self
            .store()
            .get(Tree::Jtis, &self.jti_key(&claims.jti))?
            .is_none()
        {
            return Err(AppError::InvalidToken("revoked, or never issued".into()));
        }
        let brand = self
            .find_brand(&claims.client_id)?
            .ok_or_else(|| AppError::InvalidToken("the brand was removed".into()))?;
        if brand.status == BrandStatus::Suspended {
            return Err(AppError::InvalidToken("the brand is suspended".into()));
        }
        if brand.pseudonym != claims.sub {
            return Err(AppError::InvalidToken(
                "subject does not match the brand".into(),
            ));
        }
        if self.current_agreement(&brand)?.as_deref() != Some(claims.vrm_agreement.as_str()) {
            return Err(AppError::InvalidToken(
                "issued under an agreement that no longer covers the terms in force".into(),
            ));
        }
        Ok(BrandAccess { brand, claims })
    }

    /// RFC 7009: revokes `token` if it is one of `brand`'s. Unknown, invalid or foreign tokens
    /// are ignored (§2.2: the answer is the same, so it reveals nothing).
    pub async fn revoke_token(&self, brand: &Brand, token: &str) -> Result<(), AppError> {
        let Ok(claims) = self.token_claims(token) else {
            return Ok(());
        };
        if claims.client_id != brand.client_id {
            return Ok(());
        }
        let key = self.jti_key(&claims.jti);
        let event = Event::brand("token.revoked", &brand.client_id)
            .with_detail(serde_json::json!({ "jti": claims.jti }));
        let revoked = self
            .change(move |tx| {
                if !tx.remove(Tree::Jtis, &key)? {
                    // Already revoked: nothing to write, nothing to record.
                    return Err(AppError::NotFound("token"));
                }
                Ok(((), event))
            })
            .await;
        match revoked {
            Err(AppError::NotFound(_)) => Ok(()),
            other => other,
        }
    }

    /// RFC 7662: what `brand` may know about `token`. A token of another brand is inactive to it.
    pub fn introspect_token(&self, brand: &Brand, token: &str) -> Value {
        match self.verify_access_token(token) {
            Ok(access) if access.claims.client_id == brand.client_id => {
                let c = access.claims;
                serde_json::json!({
                    "active": true,
                    "scope": c.scope,
                    "client_id": c.client_id,
                    "sub": c.sub,
                    "iss": c.iss,
                    "aud": c.aud,
                    "exp": c.exp,
                    "iat": c.iat,
                    "jti": c.jti,
                    "token_type": "Bearer",
                })
            }
            _ => serde_json::json!({ "active": false }),
        }
    }
}
