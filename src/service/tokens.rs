//! Brand access tokens: RFC 9068 JWTs issued by the client-credentials grant, checked on every
//! brand call, revocable (RFC 7009) and introspectable (RFC 7662).
//!
//! A token is only as good as what backs it now: every check re-reads the brand (not removed, not
//! suspended), its agreement (still accepted, on the terms in force) and the revocation list, so
//! any of those changing stops the very next call.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::Duration;

use super::OpenVault;
use crate::crypto::{jwt, random_array};
use crate::domain::audit::Event;
use crate::domain::brands::{Brand, BrandStatus, parse_scope};
use crate::domain::grants::Grant;
use crate::error::{AppError, OAuthError, TokenRefusal};
use crate::store::Store;

use super::tables::JTIS;

/// The `typ` header of access tokens (RFC 9068 §2.1); validators accept the long form too (§4).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
const ACCESS_TOKEN_TYPES: &[&str] = &["at+jwt", "application/at+jwt"];
/// The longest lifetime an access token may have.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::minutes(15);
/// Verified tokens kept in memory; beyond this the least recently used are forgotten (and
/// simply verified again when presented).
pub const TOKEN_CACHE_ENTRIES: usize = 10_000;
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
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// RFC 9396: the data grant the token carries, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<Vec<Value>>,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub exp: i64,
    /// The agreement the token was issued under: when it stops being the brand's current one
    /// (new terms, withdrawal, termination), the token stops working even after re-acceptance.
    pub vrm_agreement: String,
    /// RFC 9449 §6: the DPoP key the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// A token's confirmation claim (RFC 7800): the thumbprint of its DPoP key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: String,
}

/// A token just issued.
#[derive(Debug)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: i64,
    pub scope: String,
    /// For a token carrying a grant: its RFC 9396 authorization details.
    pub authorization_details: Option<Vec<Value>>,
    /// For the authorization-code and refresh grants: the next refresh token.
    pub refresh_token: Option<String>,
}

/// A brand call that presented a valid token.
#[derive(Debug, Clone)]
pub struct BrandAccess {
    pub brand: Brand,
    pub claims: Arc<AccessClaims>,
}

impl AccessClaims {
    /// The id of the grant the token carries.
    pub fn grant_id(&self) -> Option<&str> {
        self.authorization_details
            .as_ref()?
            .first()?
            .get("grant_id")?
            .as_str()
    }
}

impl BrandAccess {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.claims.scope.split(' ').any(|s| s == scope)
    }
}

/// Checks the claims of an access token whose signature verified: issuer, audience, and times
/// against `now` (Unix seconds). Public so that it can be fuzzed with claims a test key signed
/// (`tests/fuzz`); the service calls it on every token it has not seen before.
pub fn check_access_claims(
    claims: &AccessClaims,
    issuer: &str,
    resource: &str,
    now: i64,
) -> Result<(), AppError> {
    if claims.iss != issuer {
        return Err(AppError::InvalidToken(TokenRefusal::NotForHere(format!(
            "issuer {}",
            claims.iss
        ))));
    }
    if claims.aud != resource {
        return Err(AppError::InvalidToken(TokenRefusal::NotForHere(format!(
            "audience {}",
            claims.aud
        ))));
    }
    if claims.exp <= now {
        return Err(AppError::InvalidToken(TokenRefusal::Expired));
    }
    // Checked subtraction: the claims are only as sane as whoever signed them, and a lifetime
    // that overflows must count as too long, not wrap around to a short one.
    let lifetime = claims.exp.checked_sub(claims.iat);
    if claims.iat > now.saturating_add(SKEW_SECONDS)
        || claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(SKEW_SECONDS))
        || lifetime.is_none_or(|l| l > MAX_TOKEN_LIFETIME.whole_seconds())
    {
        return Err(AppError::InvalidToken(TokenRefusal::NotForHere(
            "issued in the future or for too long".into(),
        )));
    }
    Ok(())
}

/// Drops remembered `jti`s (live tokens, spent client assertions) that have expired. Runs before the writer starts.
pub(crate) fn prune_jtis(store: &Store, now: i64) -> Result<usize, AppError> {
    let mut expired = Vec::new();
    // Walked undecoded so that a value which does not decode is still pruned (as expired), not
    // kept forever.
    for item in store.iter(JTIS.tree()) {
        let (key, value) = item?;
        let exp = JTIS.decode(&value).unwrap_or(0);
        if exp <= now {
            expired.push(key);
        }
    }
    let count = expired.len();
    if count > 0 {
        let result = store.transact_offline(|tx| {
            for key in &expired {
                tx.remove(JTIS.tree(), key)?;
            }
            Ok::<_, AppError>(())
        });
        result?;
    }
    Ok(count)
}

/// What the tokens feature keeps in memory: access tokens whose signature and claims were
/// verified, until they expire (bounded by [`TOKEN_CACHE_ENTRIES`]).
#[derive(Debug)]
pub(crate) struct TokenState {
    cache: quick_cache::sync::Cache<String, Arc<AccessClaims>>,
}

impl TokenState {
    pub(super) fn new() -> TokenState {
        TokenState {
            cache: quick_cache::sync::Cache::new(TOKEN_CACHE_ENTRIES),
        }
    }

    /// Forgets every verified token, so each is checked again in full on its next use.
    pub(super) fn forget_verified(&self) {
        self.cache.clear();
    }
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

    /// The client-credentials grant (RFC 6749 §4.4) for an authenticated brand, optionally for
    /// one of its grants (`authorization_details` naming it).
    pub async fn issue_token(
        &self,
        brand: &Brand,
        scope: Option<&str>,
        grant: Option<&Grant>,
    ) -> Result<IssuedToken, OAuthError> {
        let scopes = match scope {
            None => brand.scope.clone(),
            Some(text) => parse_scope(text, &brand.scope)
                .map_err(|e| OAuthError::new(400, "invalid_scope", e))?,
        };
        if scopes.is_empty() && grant.is_none() {
            return Err(OAuthError::new(
                400,
                "invalid_scope",
                "ask for at least one scope",
            ));
        }
        let agreement = self.require_agreement(brand)?;
        self.mint(brand, scopes.join(" "), agreement, grant).await
    }

    /// The brand's agreement on the terms in force, or the OAuth error that says what to accept.
    pub(crate) fn require_agreement(&self, brand: &Brand) -> Result<String, OAuthError> {
        if let Some(agreement) = self.current_agreement(brand)? {
            return Ok(agreement);
        }
        let current = self.current_terms()?;
        let terms_uri = format!("{}/brand/v1/terms", self.issuer);
        Err(OAuthError::new(
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
        })))
    }

    /// Signs an access token and records its jti. A token carrying a grant lives no longer
    /// than the grant.
    pub(crate) async fn mint(
        &self,
        brand: &Brand,
        scope: String,
        agreement: String,
        grant: Option<&Grant>,
    ) -> Result<IssuedToken, OAuthError> {
        let now = self.now().unix_timestamp();
        let jti = data_encoding::BASE32_NOPAD
            .encode(
                &random_array::<15>().map_err(|e| AppError::internal("drawing random bytes", e))?,
            )
            .to_lowercase();
        let mut lifetime = self.token_lifetime.whole_seconds();
        if let Some(grant) = grant {
            lifetime = lifetime.min(grant.expires_at.unix_timestamp() - now).max(1);
        }
        let authorization_details = grant.map(|g| vec![g.authorization_detail(&self.resource())]);
        let claims = AccessClaims {
            iss: self.issuer.to_string(),
            aud: self.resource(),
            sub: brand.pseudonym.clone(),
            client_id: brand.client_id.clone(),
            jti,
            scope,
            authorization_details,
            iat: now,
            nbf: None,
            exp: now + lifetime,
            vrm_agreement: agreement,
            cnf: None,
        };
        let access_token = self
            .key_ring()
            .active
            .sign_jwt(ACCESS_TOKEN_TYP, &claims)
            .map_err(|e| AppError::internal("signing a token", e))?;
        let event = Event::brand("token.issued", &brand.client_id).with_detail(serde_json::json!({
            "jti": claims.jti,
            "scope": claims.scope,
            "grant": claims.grant_id(),
            "exp": claims.exp,
        }));
        // The vault keeps every live token's jti: a token it has no record of is refused even if
        // its signature verifies, and revocation is removing the record.
        let key = self.jti_key(&claims.jti);
        let exp = claims.exp;
        self.change(move |tx| {
            tx.write(&JTIS, &key, &exp)?;
            Ok(((), event))
        })
        .await?;
        self.jti_expires(&key, exp);
        Ok(IssuedToken {
            access_token,
            expires_in: lifetime,
            scope: claims.scope,
            authorization_details: claims.authorization_details,
            refresh_token: None,
        })
    }

    /// Checks a token's signature, type, issuer, audience and times; returns its claims.
    fn token_claims(&self, token: &str) -> Result<Arc<AccessClaims>, AppError> {
        let now = self.now().unix_timestamp();
        // A token whose signature and claims were checked before is not checked again: the
        // cache holds it until it expires, and everything that can change (revocation, brand,
        // agreement, grant) is checked on every request by the caller.
        if let Some(claims) = self.tokens.cache.get(token) {
            if claims.exp > now {
                return Ok(claims);
            }
            self.tokens.cache.remove(token);
            return Err(AppError::InvalidToken(TokenRefusal::Expired));
        }
        let claims = Arc::new(self.verify_token_claims(token, now)?);
        self.tokens.cache.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    fn verify_token_claims(&self, token: &str, now: i64) -> Result<AccessClaims, AppError> {
        let keys = self.jwks();
        let claims: AccessClaims = jwt::verify_es256(token, &keys, ACCESS_TOKEN_TYPES)
            .map_err(|e| AppError::InvalidToken(TokenRefusal::Unverifiable(e.to_string())))?;
        check_access_claims(&claims, &self.issuer, &self.resource(), now)?;
        Ok(claims)
    }

    /// The claims of a token this vault just signed (to bind it to a DPoP key).
    pub(super) fn claims_of_new_token(&self, token: &str) -> Result<AccessClaims, AppError> {
        self.verify_token_claims(token, self.now().unix_timestamp())
            .map_err(|_| AppError::broken("a token just signed does not verify"))
    }

    fn jti_key(&self, jti: &str) -> [u8; 32] {
        self.index_key("token", jti)
    }

    /// Every check a brand call makes on its bearer token.
    pub fn verify_access_token(&self, token: &str) -> Result<BrandAccess, AppError> {
        self.verify_token_for(token, false)
    }

    /// The checks for reading the brand's own event stream (polling and Server-Sent Events): the
    /// same as [`OpenVault::verify_access_token`], except that a token issued under the brand's
    /// agreement on older terms still reads the stream, so the brand learns that the terms
    /// changed (`vrm.terms.updated.v1`) and what happened to its grants. The stream holds only
    /// what the vault chose to send; nothing new is sent to such a brand until it accepts.
    pub fn verify_stream_token(&self, token: &str) -> Result<BrandAccess, AppError> {
        self.verify_token_for(token, true)
    }

    fn verify_token_for(&self, token: &str, stream: bool) -> Result<BrandAccess, AppError> {
        let claims = self.token_claims(token)?;
        if self
            .store()
            .get(JTIS.tree(), &self.jti_key(&claims.jti))?
            .is_none()
        {
            return Err(AppError::InvalidToken(TokenRefusal::Revoked));
        }
        let brand = self
            .find_brand(&claims.client_id)?
            .ok_or(AppError::InvalidToken(TokenRefusal::ClientRemoved))?;
        if brand.held_after_restore {
            return Err(AppError::AccessPaused);
        }
        if brand.status == BrandStatus::Suspended {
            return Err(AppError::InvalidToken(TokenRefusal::ClientSuspended));
        }
        if brand.pseudonym != claims.sub {
            return Err(AppError::InvalidToken(TokenRefusal::NotForHere(
                "subject does not match the brand".into(),
            )));
        }
        if self.current_agreement(&brand)?.as_deref() != Some(claims.vrm_agreement.as_str()) {
            if self.awaits_acceptance(&brand, &claims.vrm_agreement)? {
                if !stream {
                    return Err(AppError::TermsNotAccepted(self.terms_changed_message()?));
                }
            } else {
                return Err(AppError::InvalidToken(TokenRefusal::TermsChanged));
            }
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
                if !tx.remove(JTIS.tree(), &key)? {
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
        let inactive = serde_json::json!({ "active": false });
        let Ok(access) = self.verify_access_token(token) else {
            return inactive;
        };
        if access.claims.client_id != brand.client_id {
            return inactive;
        }
        // A token carrying a grant is only as active as its grant.
        if let Some(grant_id) = access.claims.grant_id() {
            let live = self
                .grant_for(brand, grant_id)
                .and_then(|g| self.grant_status(&g))
                .is_ok_and(|s| s == crate::domain::grants::GrantStatus::Active);
            if !live {
                return inactive;
            }
        }
        let c = &access.claims;
        let mut answer = serde_json::json!({
            "active": true,
            "scope": c.scope,
            "client_id": c.client_id,
            "sub": c.sub,
            "iss": c.iss,
            "aud": c.aud,
            "exp": c.exp,
            "iat": c.iat,
            "jti": c.jti,
            "token_type": if c.cnf.is_some() { "DPoP" } else { "Bearer" },
        });
        if let (Some(cnf), Value::Object(map)) = (&c.cnf, &mut answer) {
            map.insert("cnf".into(), serde_json::json!({ "jkt": cnf.jkt }));
        }
        if let (Some(details), Value::Object(map)) = (&c.authorization_details, &mut answer) {
            map.insert("authorization_details".into(), Value::from(details.clone()));
        }
        answer
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600;
    const ISSUER: &str = "https://vault.example";
    const RESOURCE: &str = "https://vault.example/brand/v1";

    fn claims(iat: i64, nbf: Option<i64>, exp: i64) -> AccessClaims {
        AccessClaims {
            iss: ISSUER.into(),
            aud: RESOURCE.into(),
            sub: "pseudonym".into(),
            client_id: "brand".into(),
            jti: "jti".into(),
            scope: String::new(),
            authorization_details: None,
            iat,
            nbf,
            exp,
            vrm_agreement: "agreement".into(),
            cnf: None,
        }
    }

    fn check(claims: &AccessClaims) -> bool {
        check_access_claims(claims, ISSUER, RESOURCE, NOW).is_ok()
    }

    #[test]
    fn times_are_checked_against_now_and_the_longest_lifetime() {
        assert!(check(&claims(NOW, None, NOW + 900)));
        assert!(check(&claims(NOW + 60, Some(NOW + 60), NOW + 960)));
        assert!(!check(&claims(NOW, None, NOW + 901)));
        assert!(!check(&claims(NOW - 900, None, NOW)));
        assert!(!check(&claims(NOW + 61, None, NOW + 900)));
        assert!(!check(&claims(NOW, Some(NOW + 61), NOW + 900)));
        let mut foreign = claims(NOW, None, NOW + 900);
        foreign.aud = ISSUER.into();
        assert!(!check(&foreign));
    }

    #[test]
    fn a_lifetime_too_long_to_compute_is_too_long() {
        // Regression: `exp - iat` overflowed for an `iat` near i64::MIN (the fuzz target `jwt`
        // reaches it from tests/fuzz/seeds/jwt/claims-extreme-times.bin). With overflow checks
        // that panicked; without them (release builds) it wrapped to a negative lifetime and the
        // token passed as short-lived.
        assert!(!check(&claims(i64::MIN, None, i64::MAX)));
        assert!(!check(&claims(i64::MIN, None, NOW + 60)));
        assert!(!check(&claims(i64::MIN + 1, Some(i64::MIN), NOW + 1)));
        assert!(!check(&claims(NOW, Some(i64::MAX), i64::MAX)));
    }
}
