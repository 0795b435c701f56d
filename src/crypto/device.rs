//! Device cookies (OWASP's defence against login lockout): after a successful login the vault
//! hands the browser or script a cookie naming an opaque device id, MACed with a key of its own,
//! so that later attempts from that device are throttled on the device's own failures and not by
//! strangers' (see `domain::login`).
//!
//! The MAC key is not derived from the master key: logging in happens while the vault is still
//! sealed, before any key derived from it exists. It lives in its own file beside the key file
//! (32 random bytes, mode 0600), is replaced when a new vault is set up or restored, and is
//! shredded with the rest when everything is deleted. Reading it gives nothing of the vault's
//! data: it only lets its holder mint device cookies, that is, escape the strangers' back-off
//! (not the per-device one) for its own guesses.
//!
//! A cookie is `vrm_d_` then base64url of `id (16 bytes) || issued (8 bytes, Unix seconds, big
//! endian) || HMAC-SHA256(key, label || id || issued)`.

use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

use super::{CryptoError, random_array};

const PREFIX: &str = "vrm_d_";
const LABEL: &[u8] = b"vrm-vault/v1/device-cookie\0";
const ID_LEN: usize = 16;
const BODY_LEN: usize = ID_LEN + 8;
const TAG_LEN: usize = 32;

/// The key that MACs device cookies.
pub struct DeviceCookieKey {
    key: hmac::Key,
}

impl fmt::Debug for DeviceCookieKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceCookieKey(..)")
    }
}

/// What a valid device cookie says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceCookie {
    pub id: [u8; ID_LEN],
    /// When the cookie was issued, in Unix seconds.
    pub issued: i64,
}

impl DeviceCookieKey {
    /// Makes a new random key and writes it to `path` (atomically, mode 0600).
    pub fn create(path: &Path) -> Result<DeviceCookieKey, std::io::Error> {
        let mut bytes = random_array::<32>().map_err(std::io::Error::other)?;
        let written = super::keyfile::write_atomically(path, &bytes);
        let key = DeviceCookieKey::from_bytes(&bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        written.map(|()| key)
    }

    /// Reads the key at `path`: `None` if there is none, an error if it is not a key.
    pub fn load(path: &Path) -> Result<Option<DeviceCookieKey>, std::io::Error> {
        let mut bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let key = (bytes.len() == 32).then(|| DeviceCookieKey::from_bytes(&bytes));
        zeroize::Zeroize::zeroize(&mut bytes);
        key.map(Some).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the device-cookie key file does not hold 32 bytes",
            )
        })
    }

    fn from_bytes(bytes: &[u8]) -> DeviceCookieKey {
        DeviceCookieKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    fn message(body: &[u8]) -> Vec<u8> {
        [LABEL, body].concat()
    }

    /// A cookie for a new random device id, issued at `issued` (Unix seconds).
    pub fn issue(&self, issued: i64) -> Result<String, CryptoError> {
        let id = random_array::<ID_LEN>()?;
        let mut bytes = Vec::with_capacity(BODY_LEN + TAG_LEN);
        bytes.extend_from_slice(&id);
        bytes.extend_from_slice(&issued.to_be_bytes());
        let tag = hmac::sign(&self.key, &Self::message(&bytes));
        bytes.extend_from_slice(tag.as_ref());
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// What `cookie` says, if this key made it (checked in constant time).
    pub fn verify(&self, cookie: &str) -> Option<DeviceCookie> {
        let bytes = URL_SAFE_NO_PAD.decode(cookie.strip_prefix(PREFIX)?).ok()?;
        if bytes.len() != BODY_LEN + TAG_LEN {
            return None;
        }
        let (body, tag) = bytes.split_at(BODY_LEN);
        hmac::verify(&self.key, &Self::message(body), tag).ok()?;
        let (id, issued) = body.split_at(ID_LEN);
        Some(DeviceCookie {
            id: id.try_into().ok()?,
            issued: i64::from_be_bytes(issued.try_into().ok()?),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_device_cookie_verifies_only_under_its_key_and_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        assert!(DeviceCookieKey::load(&path).unwrap().is_none());
        let key = DeviceCookieKey::create(&path).unwrap();
        let cookie = key.issue(1_700_000_000).unwrap();
        let said = key.verify(&cookie).unwrap();
        assert_eq!(said.issued, 1_700_000_000);
        // The key survives a restart: the file holds it.
        let reloaded = DeviceCookieKey::load(&path).unwrap().unwrap();
        assert_eq!(reloaded.verify(&cookie), Some(said));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Another key, a changed byte, another id or a truncated cookie do not verify.
        let other = DeviceCookieKey::create(&dir.path().join("other.key")).unwrap();
        assert_eq!(other.verify(&cookie), None);
        let mut raw = URL_SAFE_NO_PAD.decode(&cookie[PREFIX.len()..]).unwrap();
        raw[3] ^= 1;
        let changed = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&raw));
        assert_eq!(key.verify(&changed), None);
        assert_eq!(key.verify(&cookie[..cookie.len() - 4]), None);
        assert_eq!(key.verify("vrm_d_"), None);
        assert_ne!(key.verify(&key.issue(0).unwrap()).unwrap().id, said.id);
        std::fs::write(&path, b"short").unwrap();
        assert!(DeviceCookieKey::load(&path).is_err());
    }
}
