//! The vault's token-signing keys: one active ES256 key, plus retired ones that stay published
//! until every token they signed has expired.
//!
//! Keys live in the `SigningKeys` tree, sealed like every value, under their key id. Rotation
//! makes a new active key and marks the old one retired; a retired key leaves the store (and the
//! JWKS) once tokens it signed can no longer be valid.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use super::OpenVault;
use crate::crypto::jwt::{PublicJwk, SigningKey, StoredSigningKey};
use crate::domain::audit::Event;
use crate::error::AppError;
use crate::store::{Store, Table, Tree};

/// The token-signing keys, under their key id. Their JSON holds a private key: the signing-key
/// code encodes with [`Table::encode`] into a buffer it wipes, rather than with `Tx::write`.
pub(crate) const SIGNING_KEYS: Table<StoredKey> = Table::new(Tree::SigningKeys, "signing key");

/// How long after retirement a key stays published beyond the longest token lifetime, for clock
/// skew between the vault and brands.
const RETIRED_GRACE: Duration = Duration::minutes(5);

/// A key as stored.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredKey {
    kid: String,
    /// PKCS#8, base64url; only `crypto` sees its bytes.
    pkcs8: StoredSigningKey,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    retired_at: Option<OffsetDateTime>,
}

/// The keys in memory.
#[derive(Debug)]
pub struct KeyRing {
    pub active: Arc<SigningKey>,
    /// Keys that still verify tokens: the active one first, then retired ones with when they retired.
    pub published: Vec<(PublicJwk, Option<OffsetDateTime>)>,
}

impl KeyRing {
    /// Public keys a valid token may be signed with at `now`: the active key, and keys retired
    /// less than `lifetime` (plus a grace period for clock skew) ago.
    pub fn verifying_keys(&self, now: OffsetDateTime, lifetime: Duration) -> Vec<PublicJwk> {
        let cutoff = now - lifetime - RETIRED_GRACE;
        self.published
            .iter()
            .filter(|(_, retired)| retired.is_none_or(|at| at >= cutoff))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// The key's stored JSON. It holds the private key in base64url, so the buffer is wiped when the
/// caller drops it.
fn stored(key: &SigningKey, now: OffsetDateTime) -> Result<Zeroizing<Vec<u8>>, AppError> {
    encode(&StoredKey {
        kid: key.kid().to_owned(),
        pkcs8: key.stored(),
        created_at: now,
        retired_at: None,
    })
}

fn encode(key: &StoredKey) -> Result<Zeroizing<Vec<u8>>, AppError> {
    Ok(Zeroizing::new(SIGNING_KEYS.encode(key)?))
}

fn generate() -> Result<SigningKey, AppError> {
    SigningKey::generate().map_err(|e| AppError::internal("generating a signing key", e))
}

/// Loads the keys, creating the first one if the vault has none (at setup, or for a vault created
/// before tokens existed). Runs before the writer thread starts.
pub(crate) fn load_or_create(store: &Store, now: OffsetDateTime) -> Result<KeyRing, AppError> {
    let mut active = None;
    let mut published = Vec::new();
    for item in store.read_all(&SIGNING_KEYS) {
        let (_, key) = item?;
        match key.retired_at {
            None => {
                let signing = key
                    .pkcs8
                    .open()
                    .map_err(|e| AppError::internal("signing key is damaged", e))?;
                active = Some(Arc::new(signing));
            }
            Some(retired) => {
                if let Ok(signing) = key.pkcs8.open() {
                    published.push((signing.public_jwk().clone(), Some(retired)));
                }
            }
        }
    }
    let active = match active {
        Some(active) => active,
        None => {
            let key = generate()?;
            let bytes = stored(&key, now)?;
            let kid = key.kid().to_owned();
            let result = store.transact_offline(|tx| {
                tx.insert(SIGNING_KEYS.tree(), kid.as_bytes(), &bytes)?;
                super::audit::append_in(
                    tx,
                    Event::system("signing_key.created")
                        .with_detail(serde_json::json!({ "kid": kid })),
                    now,
                )?;
                Ok::<_, AppError>(())
            });
            result?;
            Arc::new(key)
        }
    };
    published.insert(0, (active.public_jwk().clone(), None));
    Ok(KeyRing { active, published })
}

/// What the keys feature keeps in memory: the ring brands' tokens are signed and checked with,
/// and the lock that lets one rotation run at a time.
#[derive(Debug)]
pub(crate) struct KeyState {
    ring: arc_swap::ArcSwap<KeyRing>,
    rotation: tokio::sync::Mutex<()>,
}

impl KeyState {
    pub(super) fn new(ring: KeyRing) -> KeyState {
        KeyState {
            ring: arc_swap::ArcSwap::from_pointee(ring),
            rotation: tokio::sync::Mutex::new(()),
        }
    }
}

impl OpenVault {
    pub fn key_ring(&self) -> Arc<KeyRing> {
        self.keys.ring.load_full()
    }

    /// The public keys brands verify tokens and receipts with (the JWKS).
    pub fn jwks(&self) -> Vec<PublicJwk> {
        self.keys
            .ring
            .load()
            .verifying_keys(self.now(), self.token_lifetime)
    }

    /// Makes a new active key; the old one keeps verifying until its tokens have expired.
    /// Returns the new and the previous key ids.
    pub async fn rotate_signing_key(&self) -> Result<(String, String), AppError> {
        let _rotating = self.keys.rotation.lock().await;
        let key = Arc::new(generate()?);
        let now = self.now();
        let bytes = stored(&key, now)?;
        let new_kid = key.kid().to_owned();
        let keep_after = now - self.token_lifetime - RETIRED_GRACE;
        let ring = self
            .change(move |tx| {
                let mut previous = None;
                let mut published = Vec::new();
                let entries: Vec<_> = tx
                    .store()
                    .iter(SIGNING_KEYS.tree())
                    .collect::<Result<_, _>>()?;
                for (kid, _) in entries {
                    let Some(mut old) = tx.read(&SIGNING_KEYS, &kid)? else {
                        continue;
                    };
                    match old.retired_at {
                        Some(at) if at < keep_after => {
                            tx.remove(SIGNING_KEYS.tree(), &kid)?;
                            continue;
                        }
                        Some(_) => {}
                        None => {
                            old.retired_at = Some(now);
                            previous = Some(old.kid.clone());
                            let bytes = encode(&old)?;
                            tx.insert(SIGNING_KEYS.tree(), &kid, &bytes)?;
                        }
                    }
                    if let Ok(signing) = old.pkcs8.open() {
                        published.push((signing.public_jwk().clone(), old.retired_at));
                    }
                }
                tx.insert(SIGNING_KEYS.tree(), key.kid().as_bytes(), &bytes)?;
                let previous = previous.unwrap_or_default();
                published.insert(0, (key.public_jwk().clone(), None));
                let event = Event::owner("signing_key.rotated", None)
                    .with_detail(serde_json::json!({ "kid": key.kid(), "previous_kid": previous }));
                Ok((
                    (
                        KeyRing {
                            active: key,
                            published,
                        },
                        previous,
                    ),
                    event,
                ))
            })
            .await?;
        let (ring, previous) = ring;
        self.keys.ring.store(Arc::new(ring));
        Ok((new_kid, previous))
    }
}
