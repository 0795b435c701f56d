//! Brands at the relay: the operator admits them (`vrm-vault relay admit`), the relay publishes
//! each one's name and public keys, and a brand proves itself with an RFC 7523 client
//! assertion signed by its signing key to get a short-lived relay access token.
//!
//! Brands live in the `relay_brands` bucket under their client id. A token is an opaque
//! `vrm_rt_...` secret; only its SHA-256 is kept, in the `relay_tokens` bucket, whose entries
//! expire by themselves, so every instance can check any token and a brand's suspension (a
//! change of its record) stops its tokens at the next request.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::Relay;
use super::assertion::{self, AssertionClaims};
use super::error::RelayError;
use super::nats::TOKEN_LIFETIME;
use crate::crypto::{self, jwt, relay_jwks};
use crate::error::OAuthError;

/// The prefix of a relay access token.
pub const TOKEN_PREFIX: &str = "vrm_rt_";
/// The prefix of a relay brand's client id.
pub const CLIENT_ID_PREFIX: &str = "rb_";
pub const MAX_NAME_CHARS: usize = 100;
/// RFC 7523's client assertion type.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What a brand may do with a relay token. A closed set: a scope not listed is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// Subscribe and receive intents.
    #[serde(rename = "intents:read")]
    IntentsRead,
    /// Answer intents with offers.
    #[serde(rename = "offers:write")]
    OffersWrite,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::IntentsRead, Scope::OffersWrite];

    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::IntentsRead => "intents:read",
            Scope::OffersWrite => "offers:write",
        }
    }

    fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrandStatus {
    Active,
    Suspended,
}

/// An admitted brand as the `relay_brands` bucket holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayBrand {
    pub client_id: String,
    pub name: String,
    /// Checked by [`relay_jwks::check_relay_jwks`]: public members only.
    pub jwks: Value,
    pub status: BrandStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub admitted_at: OffsetDateTime,
}

/// What the relay publishes about a brand.
#[derive(Debug, Clone, Serialize)]
pub struct PublicBrand {
    pub client_id: String,
    pub name: String,
    pub jwks: Value,
}

impl From<RelayBrand> for PublicBrand {
    fn from(b: RelayBrand) -> PublicBrand {
        PublicBrand {
            client_id: b.client_id,
            name: b.name,
            jwks: b.jwks,
        }
    }
}

/// A live token as the `relay_tokens` bucket holds it (under the token's SHA-256).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    client_id: String,
    scopes: Vec<Scope>,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

/// A token issued at `/oauth/token`.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedToken {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
}

/// The brand a valid token belongs to, and what the token lets it do.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub brand: RelayBrand,
    pub scopes: Vec<Scope>,
    /// When the token expires (an event stream ends then).
    pub expires_at: OffsetDateTime,
}

/// What the token endpoint receives (RFC 6749 §4.4 with RFC 7523 client authentication).
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub client_assertion_type: Option<String>,
    pub client_assertion: Option<String>,
}

pub(super) fn check_name(name: &str) -> Result<String, RelayError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(RelayError::invalid(
            "invalid_brand",
            format!("name must have 1 to {MAX_NAME_CHARS} characters"),
            "name",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(RelayError::invalid(
            "invalid_brand",
            "name must not contain control characters",
            "name",
        ));
    }
    Ok(name.to_owned())
}

fn token_key(token: &str) -> String {
    data_encoding::HEXLOWER.encode(&crypto::sha256(token.as_bytes()))
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &'static str) -> Result<T, RelayError> {
    serde_json::from_slice(bytes).map_err(|e| RelayError::internal(what, e))
}

/// The `sub` of an assertion, unverified: only to know whose keys to verify it with.
fn unverified_subject(assertion: &str) -> Option<String> {
    use base64::Engine;
    let payload = assertion.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: AssertionClaims = serde_json::from_slice(&bytes).ok()?;
    claims.sub
}

impl Relay {
    /// Admits a brand: checks its name and key set, gives it a client id and stores it.
    pub async fn admit(&self, name: &str, jwks: &Value) -> Result<RelayBrand, RelayError> {
        let name = check_name(name)?;
        let jwks = relay_jwks::check_relay_jwks(jwks)
            .map_err(|e| RelayError::invalid("invalid_jwks", e.0, "jwks"))?;
        let random = crypto::random_array::<16>()
            .map_err(|e| RelayError::internal("making a client id", e))?;
        let brand = RelayBrand {
            client_id: format!(
                "{CLIENT_ID_PREFIX}{}",
                data_encoding::HEXLOWER.encode(&random)
            ),
            name,
            jwks,
            status: BrandStatus::Active,
            admitted_at: self.clock().now(),
        };
        let bytes =
            serde_json::to_vec(&brand).map_err(|e| RelayError::internal("encoding a brand", e))?;
        self.buckets()?
            .brands
            .create(&brand.client_id, bytes.into())
            .await
            .map_err(|e| RelayError::unavailable("storing an admitted brand", e))?;
        tracing::info!(client_id = %brand.client_id, "brand admitted");
        Ok(brand)
    }

    /// Sets a brand's status (the operator's suspend and resume); the change takes effect on
    /// every instance at the brand's next request, since each one reads the record.
    pub async fn set_status(
        &self,
        client_id: &str,
        status: BrandStatus,
    ) -> Result<RelayBrand, RelayError> {
        let bucket = &self.buckets()?.brands;
        let entry = bucket
            .entry(client_id)
            .await
            .map_err(|e| RelayError::unavailable("reading a brand", e))?
            .filter(|e| e.operation == async_nats::jetstream::kv::Operation::Put)
            .filter(|_| self.valid_client_id(client_id))
            .ok_or(RelayError::NotFound("brand"))?;
        let mut brand: RelayBrand = decode(&entry.value, "decoding a brand")?;
        brand.status = status;
        let bytes =
            serde_json::to_vec(&brand).map_err(|e| RelayError::internal("encoding a brand", e))?;
        // Only over the revision read, so a concurrent change is not overwritten.
        bucket
            .update(client_id, bytes.into(), entry.revision)
            .await
            .map_err(|e| RelayError::unavailable("updating a brand", e))?;
        tracing::info!(client_id, ?status, "brand status changed");
        Ok(brand)
    }

    fn valid_client_id(&self, client_id: &str) -> bool {
        client_id.starts_with(CLIENT_ID_PREFIX)
            && client_id.len() <= 64
            && client_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }

    /// An admitted brand (active or suspended), if `client_id` names one.
    pub async fn brand(&self, client_id: &str) -> Result<Option<RelayBrand>, RelayError> {
        // Keys are made by `admit`; anything else cannot name a brand (and must not reach
        // NATS, whose keys have their own syntax).
        if !client_id.starts_with(CLIENT_ID_PREFIX)
            || client_id.len() > 64
            || !client_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Ok(None);
        }
        let entry = self
            .buckets()?
            .brands
            .get(client_id)
            .await
            .map_err(|e| RelayError::unavailable("reading a brand", e))?;
        entry
            .map(|bytes| decode(&bytes, "decoding a brand"))
            .transpose()
    }

    /// Every active brand, by client id.
    pub async fn active_brands(&self) -> Result<Vec<RelayBrand>, RelayError> {
        use futures_util::TryStreamExt as _;
        let bucket = &self.buckets()?.brands;
        let mut keys: Vec<String> = match bucket.keys().await {
            Ok(keys) => keys
                .try_collect()
                .await
                .map_err(|e| RelayError::unavailable("listing brands", e))?,
            Err(e) => return Err(RelayError::unavailable("listing brands", e)),
        };
        keys.sort();
        let mut brands = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(brand) = self.brand(&key).await?
                && brand.status == BrandStatus::Active
            {
                brands.push(brand);
            }
        }
        Ok(brands)
    }

    /// The token endpoint: client credentials, authenticated by a `private_key_jwt` assertion.
    pub async fn issue_token(&self, request: TokenRequest) -> Result<IssuedToken, OAuthError> {
        match request.grant_type.as_deref() {
            Some("client_credentials") => {}
            Some(other) => {
                return Err(OAuthError::new(
                    400,
                    "unsupported_grant_type",
                    format!("grant_type {other} is not supported; use client_credentials"),
                ));
            }
            None => return Err(OAuthError::invalid_request("grant_type is required")),
        }
        if request.client_assertion_type.as_deref() != Some(ASSERTION_TYPE) {
            return Err(OAuthError::invalid_client(format!(
                "the relay authenticates brands with private_key_jwt only: send \
                 client_assertion_type={ASSERTION_TYPE} and a client_assertion"
            )));
        }
        let assertion = request
            .client_assertion
            .ok_or_else(|| OAuthError::invalid_client("client_assertion is required"))?;
        let scopes = match request.scope.as_deref().map(str::trim) {
            None | Some("") => Scope::ALL.to_vec(),
            Some(text) => {
                let mut scopes = Vec::new();
                for name in text.split_ascii_whitespace() {
                    let scope = Scope::parse(name).ok_or_else(|| {
                        OAuthError::new(
                            400,
                            "invalid_scope",
                            format!("scope {name} is not one of intents:read, offers:write"),
                        )
                    })?;
                    if !scopes.contains(&scope) {
                        scopes.push(scope);
                    }
                }
                scopes
            }
        };
        let client_id = match request.client_id {
            Some(id) => id,
            None => unverified_subject(&assertion).ok_or_else(|| {
                OAuthError::invalid_client("the client assertion names no client (sub)")
            })?,
        };
        let brand = self
            .brand(&client_id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                OAuthError::invalid_client("no brand with this client id is admitted")
            })?;
        if brand.status != BrandStatus::Active {
            return Err(OAuthError::invalid_client(
                "this brand is suspended by the relay's operator",
            ));
        }
        let keys = relay_jwks::signing_keys(&brand.jwks);
        let claims: AssertionClaims = jwt::verify_with_jwks(&assertion, &keys).map_err(|e| {
            OAuthError::invalid_client(format!("the client assertion is not valid: {e}"))
        })?;
        let issuer = self.settings().public_url.clone();
        let audiences = [issuer.clone(), format!("{issuer}/oauth/token")];
        let now = self.clock().now();
        let accepted =
            assertion::check_claims(&claims, &brand.client_id, &audiences, now.unix_timestamp())
                .map_err(OAuthError::invalid_client)?;
        // RFC 7523 §3: an assertion is used once. `create` fails when the key exists, on
        // every instance alike; the bucket forgets it after the longest assertion lifetime.
        let used = format!("{}\0{}", brand.client_id, accepted.jti);
        let buckets = self.buckets().map_err(unavailable)?;
        match buckets
            .assertions
            .create(token_key(&used), b"1".to_vec().into())
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {
                return Err(OAuthError::invalid_client(
                    "this client assertion was already used; sign a new one with a new jti",
                ));
            }
            Err(e) => return Err(unavailable(RelayError::unavailable("remembering a jti", e))),
        }
        let token = crypto::random_token(TOKEN_PREFIX)
            .map_err(|e| unavailable(RelayError::internal("making a token", e)))?;
        let record = TokenRecord {
            client_id: brand.client_id.clone(),
            scopes: scopes.clone(),
            expires_at: now + TOKEN_LIFETIME,
        };
        let bytes = serde_json::to_vec(&record)
            .map_err(|e| unavailable(RelayError::internal("encoding a token", e)))?;
        buckets
            .tokens
            .put(token_key(&token), bytes.into())
            .await
            .map_err(|e| unavailable(RelayError::unavailable("storing a token", e)))?;
        Ok(IssuedToken {
            access_token: token,
            token_type: "Bearer",
            expires_in: TOKEN_LIFETIME.as_secs(),
            scope: scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        })
    }

    /// The brand behind a bearer token, if the token is live and its brand active.
    pub async fn authenticate(&self, token: &str) -> Result<Authenticated, RelayError> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Err(RelayError::InvalidToken("not a relay token".into()));
        }
        let entry = self
            .buckets()?
            .tokens
            .get(token_key(token))
            .await
            .map_err(|e| RelayError::unavailable("reading a token", e))?
            .ok_or_else(|| RelayError::InvalidToken("unknown or expired token".into()))?;
        let record: TokenRecord = decode(&entry, "decoding a token")?;
        if record.expires_at <= self.clock().now() {
            return Err(RelayError::InvalidToken("expired".into()));
        }
        let brand = self
            .brand(&record.client_id)
            .await?
            .filter(|b| b.status == BrandStatus::Active)
            .ok_or_else(|| RelayError::InvalidToken("brand suspended or gone".into()))?;
        Ok(Authenticated {
            brand,
            scopes: record.scopes,
            expires_at: record.expires_at,
        })
    }
}

/// A relay failure as the token endpoint reports it (RFC 6749's shape).
fn unavailable(e: RelayError) -> OAuthError {
    let mut error = match &e {
        RelayError::Unavailable { .. } => {
            tracing::warn!(error = %e.report(), "token endpoint: NATS unavailable");
            OAuthError::new(503, "temporarily_unavailable", e.public_message())
        }
        _ => {
            tracing::error!(error = %e.report(), "token endpoint failed");
            OAuthError::new(500, "server_error", e.public_message())
        }
    };
    error.retry_after = e.retry_after();
    error
}
