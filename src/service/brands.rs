//! Brands: invitations, registration (RFC 7591), client authentication (RFC 6749 §2.3.1 and
//! RFC 7523), and the owner's management of them.
//!
//! Store keys are keyed hashes of invitation ids and client ids. A brand's client secret is kept
//! only as a SHA-256 hash; a private_key_jwt brand's public keys are kept as it registered them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;
use serde_json::Value;
use time::Duration;

use super::OpenVault;
use crate::crypto::{constant_time_eq, jwt, random_array, random_token, sha256};
use crate::domain::audit::Event;
use crate::domain::brands::{
    AgreementEventKind, AuthMethod, Brand, BrandStatus, Invitation, ValidMetadata,
};
use crate::error::{AppError, OAuthError, TokenRefusal};
use crate::secret::Secret;
use crate::store::{Store, Tree};

use super::tables::{BRANDS, INVITATIONS, JTIS};

/// Prefix of initial access tokens (invitations).
const INVITATION_PREFIX: &str = "vrmia_";
/// Prefix of client secrets.
const SECRET_PREFIX: &str = "vrmcs_";
/// Longest a client assertion may live (authlib and most libraries sign them for an hour).
const MAX_ASSERTION_LIFETIME: Duration = Duration::minutes(65);
/// Clock skew tolerated on `iat`/`nbf` of client assertions.
const SKEW: Duration = Duration::seconds(60);

pub const MAX_INVITATION_USES: u32 = 100;
pub const MAX_INVITATION_HOURS: i64 = 720;

fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// An invitation's id: derived from its token, so the token finds its invitation without an index.
fn invitation_id(token: &str) -> String {
    B64.encode(&sha256(token.as_bytes())[..12])
}

/// How a brand authenticates on one request.
#[derive(Debug)]
pub enum ClientCredentials {
    /// `client_secret_basic`: the id and secret from the Authorization header.
    Basic { client_id: String, secret: Secret },
    /// `private_key_jwt`: an RFC 7523 assertion (and the client id, if the request named it).
    Assertion {
        client_id: Option<String>,
        assertion: String,
    },
}

/// The claims of a client assertion the vault looks at.
#[derive(Debug, Deserialize)]
struct AssertionClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Value>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
}

impl OpenVault {
    pub(super) fn brand_key(&self, client_id: &str) -> [u8; 32] {
        self.index_key("brand", client_id)
    }

    /// Remembers a `jti` (of a client assertion or a revoked token) until `exp`; false if it was
    /// already remembered. Not audited: the request it belongs to is.
    pub(crate) async fn remember_jti(&self, key: [u8; 32], exp: i64) -> Result<bool, AppError> {
        let fresh = self
            .write(move |tx| {
                if tx.get(JTIS.tree(), &key)?.is_some() {
                    return Ok(false);
                }
                tx.write(&JTIS, &key, &exp)?;
                Ok(true)
            })
            .await?;
        if fresh {
            self.jti_expires(&key, exp);
        }
        Ok(fresh)
    }

    fn invitation_key(&self, id: &str) -> [u8; 32] {
        self.index_key("invitation", id)
    }

    /// The brand's pairwise pseudonym for the person: stable for this brand, unlinkable across
    /// brands without the vault's key.
    pub fn pseudonym(&self, client_id: &str) -> String {
        B64.encode(&self.pseudonyms.hash(client_id.as_bytes())[..16])
    }

    // --- Invitations -------------------------------------------------------------------------

    /// Creates an invitation valid for `valid_for_hours`; returns it and its token (shown once,
    /// stored only hashed). The hours are checked before they become a `Duration`, whose
    /// constructor panics on a number too large for it.
    pub async fn create_invitation(
        &self,
        max_uses: u32,
        valid_for_hours: i64,
        note: Option<String>,
    ) -> Result<(Invitation, Secret), AppError> {
        if !(1..=MAX_INVITATION_USES).contains(&max_uses) {
            return Err(AppError::invalid(
                "invalid_invitation",
                format!("max_uses must be between 1 and {MAX_INVITATION_USES}"),
            ));
        }
        if !(1..=MAX_INVITATION_HOURS).contains(&valid_for_hours) {
            return Err(AppError::invalid(
                "invalid_invitation",
                format!("expires_in_hours must be between 1 and {MAX_INVITATION_HOURS}"),
            ));
        }
        if let Some(note) = &note
            && (note.chars().count() > 200 || note.chars().any(char::is_control))
        {
            return Err(AppError::invalid(
                "invalid_invitation",
                "note may have at most 200 characters, and no control characters",
            ));
        }
        let token = random_token(INVITATION_PREFIX)
            .map_err(|e| AppError::internal("drawing random bytes", e))?;
        let now = self.now();
        let invitation = Invitation {
            id: invitation_id(&token),
            token_hash: hex(&sha256(token.as_bytes())),
            created_at: now,
            expires_at: now + Duration::hours(valid_for_hours),
            max_uses,
            uses: 0,
            note,
        };
        let key = self.invitation_key(&invitation.id);
        let stored = invitation.clone();
        self.change(move |tx| {
            tx.write(&INVITATIONS, &key, &stored)?;
            let event = Event::owner("invitation.created", Some(stored.id.clone())).with_detail(
                serde_json::json!({ "max_uses": stored.max_uses, "expires_at": stored.expires_at.unix_timestamp() }),
            );
            Ok(((), event))
        })
        .await?;
        Ok((invitation, Secret::new(token)))
    }

    pub fn list_invitations(&self) -> Result<Vec<Invitation>, AppError> {
        let mut all: Vec<Invitation> = self
            .store()
            .read_all(&INVITATIONS)
            .map(|item| Ok(item?.1))
            .collect::<Result<_, AppError>>()?;
        all.sort_by_key(|i| std::cmp::Reverse(i.created_at));
        Ok(all)
    }

    pub async fn delete_invitation(&self, id: &str) -> Result<(), AppError> {
        let key = self.invitation_key(id);
        let id = id.to_owned();
        self.change(move |tx| {
            if !tx.remove(Tree::Invitations, &key)? {
                return Err(AppError::NotFound("invitation"));
            }
            Ok(((), Event::owner("invitation.deleted", Some(id))))
        })
        .await
    }

    // --- Registration ------------------------------------------------------------------------

    /// Registers a brand with an invitation's token (RFC 7591 §3). Returns the brand and, for
    /// `client_secret_basic`, its secret (shown once).
    pub async fn register_brand(
        &self,
        initial_access_token: &str,
        metadata: ValidMetadata,
    ) -> Result<(Brand, Option<Secret>), AppError> {
        let invitation_key = self.invitation_key(&invitation_id(initial_access_token));
        let token_hash = sha256(initial_access_token.as_bytes());
        let client_id = B64.encode(
            random_array::<16>().map_err(|e| AppError::internal("drawing random bytes", e))?,
        );
        let secret = match metadata.auth_method {
            AuthMethod::ClientSecretBasic => Some(
                random_token(SECRET_PREFIX)
                    .map_err(|e| AppError::internal("drawing random bytes", e))?,
            ),
            AuthMethod::PrivateKeyJwt => None,
        };
        let now = self.now();
        let brand = Brand {
            pseudonym: self.pseudonym(&client_id),
            client_id,
            client_name: metadata.client_name,
            client_uri: metadata.client_uri,
            contacts: metadata.contacts,
            auth_method: metadata.auth_method,
            secret_hash: secret.as_ref().map(|s| hex(&sha256(s.as_bytes()))),
            jwks: metadata.jwks,
            redirect_uris: metadata.redirect_uris,
            grant_types: metadata.grant_types,
            scope: metadata.scope,
            software_id: metadata.software_id,
            software_version: metadata.software_version,
            require_pushed_authorization_requests: metadata.require_pushed_authorization_requests,
            dpop_bound_access_tokens: metadata.dpop_bound_access_tokens,
            status: BrandStatus::Active,
            registered_at: now,
            invitation_id: String::new(),
            agreement_id: None,
            held_after_restore: false,
        };
        let brand_key = self.brand_key(&brand.client_id);
        let brand = self
            .change(move |tx| {
                let Some(mut invitation) = tx.read(&INVITATIONS, &invitation_key)? else {
                    return Err(AppError::InvalidToken(TokenRefusal::Invitation(
                        "unknown initial access token",
                    )));
                };
                let stored_hash = data_encoding::HEXLOWER
                    .decode(invitation.token_hash.as_bytes())
                    .unwrap_or_default();
                if !constant_time_eq(&stored_hash, &token_hash) {
                    return Err(AppError::InvalidToken(TokenRefusal::Invitation(
                        "unknown initial access token",
                    )));
                }
                if invitation.uses >= invitation.max_uses {
                    return Err(AppError::InvalidToken(TokenRefusal::Invitation(
                        "the invitation is used up",
                    )));
                }
                if now >= invitation.expires_at {
                    return Err(AppError::InvalidToken(TokenRefusal::Invitation(
                        "the invitation has expired",
                    )));
                }
                invitation.uses += 1;
                tx.write(&INVITATIONS, &invitation_key, &invitation)?;
                let brand = Brand {
                    invitation_id: invitation.id.clone(),
                    ..brand
                };
                tx.write(&BRANDS, &brand_key, &brand)?;
                let event = Event::brand("brand.registered", &brand.client_id).with_detail(
                    serde_json::json!({
                        "client_name": brand.client_name,
                        "invitation": invitation.id,
                        "auth_method": brand.auth_method,
                    }),
                );
                Ok((brand, event))
            })
            .await?;
        Ok((brand, secret.map(Secret::new)))
    }

    // --- The owner's view ---------------------------------------------------------------------

    /// A brand, from the cache of opened brands when it holds the current version.
    pub fn find_brand(&self, client_id: &str) -> Result<Option<Brand>, AppError> {
        let key = self.brand_key(client_id);
        let brand = self.brands_cache.get(&key, || {
            self.store()
                .get(BRANDS.tree(), &key)?
                .map(|bytes| Ok((BRANDS.decode(&bytes)?, bytes.len())))
                .transpose()
        })?;
        Ok(brand.map(|b| Brand::clone(&b)))
    }

    pub fn brand(&self, client_id: &str) -> Result<Brand, AppError> {
        self.find_brand(client_id)?
            .ok_or(AppError::NotFound("brand"))
    }

    pub fn list_brands(&self) -> Result<Vec<Brand>, AppError> {
        let mut all: Vec<Brand> = self
            .store()
            .read_all(&BRANDS)
            .map(|item| Ok(item?.1))
            .collect::<Result<_, AppError>>()?;
        all.sort_by_key(|b| std::cmp::Reverse(b.registered_at));
        Ok(all)
    }

    /// Suspends or resumes a brand. A suspended brand's tokens, and its client authentication,
    /// are refused from the next request on.
    pub async fn set_brand_status(
        &self,
        client_id: &str,
        status: BrandStatus,
    ) -> Result<Brand, AppError> {
        let key = self.brand_key(client_id);
        let brand = self
            .change(move |tx| {
                let mut brand = tx.read(&BRANDS, &key)?.ok_or(AppError::NotFound("brand"))?;
                brand.status = status;
                if status == BrandStatus::Active {
                    brand.held_after_restore = false;
                }
                tx.write(&BRANDS, &key, &brand)?;
                let action = match status {
                    BrandStatus::Active => "brand.resumed",
                    BrandStatus::Suspended => "brand.suspended",
                };
                let event = Event::owner(action, Some(brand.client_id.clone()));
                Ok((brand, event))
            })
            .await?;
        if status == BrandStatus::Active {
            // Deliveries parked while the brand was suspended go out now.
            self.release_held_deliveries(client_id);
        }
        Ok(brand)
    }

    /// Removes a brand: its agreement is terminated (the receipt says so and stays with the
    /// person as their record), its registration is deleted, and its tokens stop working
    /// because no brand backs them any more. [`OpenVault::erase_brand`] deletes the whole
    /// relationship instead.
    pub async fn remove_brand(&self, client_id: &str) -> Result<(), AppError> {
        let key = self.brand_key(client_id);
        let subscription_key = self.subscription_key(client_id);
        let signer = self.receipt_signer();
        let places = self
            .change(move |tx| {
                let brand = tx.read(&BRANDS, &key)?.ok_or(AppError::NotFound("brand"))?;
                if let Some(agreement_id) = &brand.agreement_id {
                    signer.end_in(tx, agreement_id, AgreementEventKind::Terminated)?;
                }
                tx.remove(Tree::Brands, &key)?;
                tx.remove(Tree::Subscriptions, &subscription_key)?;
                let event = Event::owner("brand.removed", Some(brand.client_id.clone()))
                    .with_detail(serde_json::json!({ "client_name": brand.client_name }));
                Ok((
                    [(Tree::Brands, key), (Tree::Subscriptions, subscription_key)],
                    event,
                ))
            })
            .await?;
        self.forget_subscription(client_id);
        // Deliveries parked while it was suspended are dropped by their next attempt.
        self.release_held_deliveries(client_id);
        // The registration (with its secret's hash) and the webhook secret are gone for real.
        self.shred_buckets(places.iter().map(|(t, k)| Store::bucket(*t, k)).collect())
            .await
    }

    // --- Client authentication ----------------------------------------------------------------

    /// Authenticates a brand by the method it registered. `audiences` are the URLs a client
    /// assertion may name as its `aud` (the issuer and the endpoint called).
    pub async fn authenticate_client(
        &self,
        credentials: ClientCredentials,
        audiences: &[String],
    ) -> Result<Brand, OAuthError> {
        let brand = match credentials {
            ClientCredentials::Basic { client_id, secret } => {
                let brand = self.find_brand(&client_id)?;
                let presented = sha256(secret.expose().as_bytes());
                let stored = brand
                    .as_ref()
                    .and_then(|b| b.secret_hash.as_deref())
                    .and_then(|h| data_encoding::HEXLOWER.decode(h.as_bytes()).ok())
                    .unwrap_or_default();
                match brand {
                    Some(brand)
                        if brand.auth_method == AuthMethod::ClientSecretBasic
                            && constant_time_eq(&stored, &presented) =>
                    {
                        brand
                    }
                    _ => {
                        return Err(OAuthError::invalid_client(
                            "unknown client or wrong client secret",
                        ));
                    }
                }
            }
            ClientCredentials::Assertion {
                client_id,
                assertion,
            } => {
                self.check_assertion(client_id, &assertion, audiences)
                    .await?
            }
        };
        if brand.status == BrandStatus::Suspended {
            return Err(OAuthError::invalid_client(
                "this brand is suspended by the person; it can do nothing until resumed",
            ));
        }
        Ok(brand)
    }

    async fn check_assertion(
        &self,
        client_id: Option<String>,
        assertion: &str,
        audiences: &[String],
    ) -> Result<Brand, OAuthError> {
        // Which brand is it? The request may name it; otherwise the assertion's `sub` does (RFC
        // 7523 §3). The signature is checked with that brand's keys right after.
        let claimed = match client_id {
            Some(id) => id,
            None => unverified_subject(assertion).ok_or_else(|| {
                OAuthError::invalid_client("the client assertion names no client (sub)")
            })?,
        };
        let brand = self
            .find_brand(&claimed)?
            .filter(|b| b.auth_method == AuthMethod::PrivateKeyJwt)
            .ok_or_else(|| {
                OAuthError::invalid_client(
                    "unknown client, or it does not authenticate with private_key_jwt",
                )
            })?;
        let jwks = brand.jwks.clone().unwrap_or(Value::Null);
        let claims: AssertionClaims = jwt::verify_with_jwks(assertion, &jwks).map_err(|e| {
            OAuthError::invalid_client(format!("the client assertion is not valid: {e}"))
        })?;
        let now = self.now().unix_timestamp();
        if claims.iss.as_deref() != Some(&brand.client_id)
            || claims.sub.as_deref() != Some(&brand.client_id)
        {
            return Err(OAuthError::invalid_client(
                "the client assertion's iss and sub must both be the client id",
            ));
        }
        let aud_ok = match &claims.aud {
            Some(Value::String(a)) => audiences.contains(a),
            Some(Value::Array(list)) => list
                .iter()
                .any(|a| a.as_str().is_some_and(|a| audiences.iter().any(|x| x == a))),
            _ => false,
        };
        if !aud_ok {
            return Err(OAuthError::invalid_client(format!(
                "the client assertion's aud must be the token endpoint or the issuer ({})",
                audiences.join(", ")
            )));
        }
        let exp = claims
            .exp
            .ok_or_else(|| OAuthError::invalid_client("the client assertion has no exp"))?;
        if exp <= now {
            return Err(OAuthError::invalid_client(
                "the client assertion has expired",
            ));
        }
        if exp > now + MAX_ASSERTION_LIFETIME.whole_seconds() {
            return Err(OAuthError::invalid_client(
                "the client assertion lives too long: at most 65 minutes",
            ));
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now + SKEW.whole_seconds())
            || claims
                .iat
                .is_some_and(|iat| iat > now + SKEW.whole_seconds())
        {
            return Err(OAuthError::invalid_client(
                "the client assertion is not valid yet",
            ));
        }
        let jti = claims
            .jti
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or_else(|| {
                OAuthError::invalid_client(
                    "the client assertion needs a jti (at most 256 characters)",
                )
            })?;
        // RFC 7523 §3: an assertion is used once. Remember its jti until it expires.
        let key = self.index_key("assertion", &format!("{}\0{jti}", brand.client_id));
        let fresh = self.remember_jti(key, exp).await?;
        if !fresh {
            return Err(OAuthError::invalid_client(
                "this client assertion was already used; sign a new one with a new jti",
            ));
        }
        Ok(brand)
    }
}

impl super::Vault {
    /// Authenticates a brand (see [`OpenVault::authenticate_client`]) with back-off per address
    /// after failures, so that a client secret or key cannot be tried at speed and a flood of bad
    /// assertions costs the vault little. Returns the open vault too, for the caller's next step.
    /// Errors come in the caller's shape `E`: the OAuth endpoints' or the brand API's, each
    /// converted once from where it arose (a back-off stays a 429, a full disk a 507).
    pub async fn authenticate_client_from<E, A>(
        &self,
        from: std::net::IpAddr,
        credentials: ClientCredentials,
        audiences: A,
    ) -> Result<(std::sync::Arc<OpenVault>, Brand), E>
    where
        E: From<AppError> + From<OAuthError>,
        A: FnOnce(&str) -> Vec<String>,
    {
        let wait = self
            .inner
            .client_auth_throttle
            .lock()
            .map_err(|_| AppError::broken("throttle poisoned"))?
            .wait(from, self.now());
        if let Some(wait) = wait {
            return Err(AppError::TooManyRequests {
                retry_after: wait.whole_seconds().max(1).unsigned_abs(),
            }
            .into());
        }
        let open = self.open()?;
        let audiences = audiences(open.issuer());
        let outcome = open.authenticate_client(credentials, &audiences).await;
        if let Ok(mut throttle) = self.inner.client_auth_throttle.lock() {
            match &outcome {
                Ok(_) => throttle.record_success(from),
                Err(e) if e.status == 401 => throttle.record_failure(from, self.now()),
                Err(_) => {}
            }
        }
        Ok((open, outcome?))
    }

    /// Registers a brand (see [`OpenVault::register_brand`]), with back-off per address after
    /// wrong invitation tokens so that they cannot be guessed at speed.
    pub async fn register_brand(
        &self,
        from: std::net::IpAddr,
        initial_access_token: &str,
        metadata: ValidMetadata,
    ) -> Result<(Brand, Option<Secret>), OAuthError> {
        let now = self.now();
        let wait = self
            .inner
            .registration_throttle
            .lock()
            .map_err(|_| AppError::broken("throttle poisoned"))?
            .wait(from, now);
        if let Some(wait) = wait {
            return Err(OAuthError::new(
                429,
                "slow_down",
                format!(
                    "too many failed registrations; try again in {} seconds",
                    wait.whole_seconds().max(1)
                ),
            ));
        }
        let open = self.open()?;
        match open.register_brand(initial_access_token, metadata).await {
            Ok(done) => Ok(done),
            Err(AppError::InvalidToken(reason)) => {
                if let Ok(mut throttle) = self.inner.registration_throttle.lock() {
                    throttle.record_failure(from, self.now());
                }
                tracing::warn!(%from, %reason, "registration refused");
                Err(OAuthError::new(
                    401,
                    "invalid_token",
                    format!("{reason}: ask the person for a new invitation"),
                ))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The `sub` of a JWT, read without verifying it: only to know whose keys verify it.
fn unverified_subject(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = B64.decode(payload).ok()?;
    let claims: AssertionClaims = serde_json::from_slice(&bytes).ok()?;
    claims.sub
}
