//! Passphrase attempts under the login back-off, and the device cookies that give a known
//! browser or script a back-off of its own.
//!
//! Every passphrase check (login, changing it, a new recovery key, delete everything) runs
//! inside an [`Attempt`]: reserved in the [`LoginThrottle`] before the Argon2id check, settled by
//! what the check found. A request that is cancelled mid-check (the client went away) settles as
//! a failure when its attempt is dropped, since the check may well have run.
//!
//! [`Devices`] holds the key that MACs device cookies (`crypto::device`). The key sits in
//! [`DEVICE_KEY_FILE`] beside the key file, because logins happen while the vault is sealed and
//! the throttle must know a device before any vault key is in memory.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use time::{Duration, OffsetDateTime};

use super::lifecycle::Inner;
use super::{Vault, file_error};
use crate::crypto::device::DeviceCookieKey;
use crate::domain::login::{Client, DeviceId, Outcome};
use crate::error::AppError;
use crate::secret::Secret;

/// The file beside the key file that holds the device-cookie key.
pub(crate) const DEVICE_KEY_FILE: &str = "device-cookie.key";
/// How long a device cookie is honoured after it was issued (each login issues a new one).
pub const DEVICE_COOKIE_LIFETIME: Duration = Duration::days(365);

/// Who makes a passphrase attempt: the client's address and, if it sent one, its device cookie
/// (checked by the vault; an invalid or expired one is ignored).
#[derive(Debug, Clone)]
pub struct AttemptFrom {
    pub ip: IpAddr,
    pub device_cookie: Option<Secret>,
}

impl From<IpAddr> for AttemptFrom {
    fn from(ip: IpAddr) -> AttemptFrom {
        AttemptFrom {
            ip,
            device_cookie: None,
        }
    }
}

/// The device-cookie key, loaded lazily and made at the first cookie issued.
#[derive(Debug)]
pub(super) struct Devices {
    path: PathBuf,
    key: Mutex<Option<Arc<DeviceCookieKey>>>,
}

impl Devices {
    /// The device-cookie key of the vault in `data_dir`; `load` is false in setup mode, where a
    /// key file left behind belongs to no vault and is replaced at the first cookie.
    pub(super) fn open(data_dir: &std::path::Path, load: bool) -> Devices {
        let path = data_dir.join(DEVICE_KEY_FILE);
        let key = if load {
            DeviceCookieKey::load(&path).unwrap_or_else(|e| {
                // Without it, known devices are strangers again until their next login: worse
                // for the owner under attack, never weaker against the attacker.
                tracing::warn!(error = %e, "the device-cookie key could not be read; making a new one at the next login");
                None
            })
        } else {
            None
        };
        Devices {
            path,
            key: Mutex::new(key.map(Arc::new)),
        }
    }

    fn key(&self) -> Option<Arc<DeviceCookieKey>> {
        self.key.lock().ok().and_then(|key| key.clone())
    }

    /// The device a cookie names, if the vault issued it and it has not expired.
    fn identify(&self, cookie: &str, now: OffsetDateTime) -> Option<DeviceId> {
        let said = self.key()?.verify(cookie)?;
        let issued = OffsetDateTime::from_unix_timestamp(said.issued).ok()?;
        (now - issued < DEVICE_COOKIE_LIFETIME).then_some(DeviceId(said.id))
    }

    /// A new device cookie, making (and saving) the key first if there is none.
    pub(super) fn issue(&self, now: OffsetDateTime) -> Result<Secret, AppError> {
        let mut slot = self
            .key
            .lock()
            .map_err(|_| AppError::broken("device key poisoned"))?;
        let key = match &*slot {
            Some(key) => key.clone(),
            None => {
                let key = Arc::new(
                    DeviceCookieKey::create(&self.path)
                        .map_err(|e| file_error("writing", &self.path, e))?,
                );
                *slot = Some(key.clone());
                key
            }
        };
        let cookie = key
            .issue(now.unix_timestamp())
            .map_err(|e| AppError::internal("issuing a device cookie", e))?;
        Ok(Secret::new(cookie))
    }

    /// Forgets the key (the vault it belonged to is gone; its file is shredded with the rest).
    pub(super) fn forget(&self) {
        if let Ok(mut key) = self.key.lock() {
            *key = None;
        }
    }
}

/// A passphrase attempt reserved in the login back-off; settle it with [`Attempt::settle`].
#[derive(Debug)]
pub(super) struct Attempt {
    inner: Arc<Inner>,
    client: Client,
    ip: IpAddr,
    settled: bool,
}

impl Attempt {
    /// Settles the attempt by the answer it led to: a wrong credential keeps it counted, a right
    /// one clears the count, anything else (refused before the check) is refunded.
    pub(super) fn settle<T>(mut self, result: &Result<T, AppError>) {
        let outcome = match result {
            Ok(_) => Outcome::Succeeded,
            Err(AppError::InvalidCredentials) => Outcome::Failed,
            Err(_) => Outcome::NotChecked,
        };
        self.finish(outcome);
    }

    fn finish(&mut self, outcome: Outcome) {
        self.settled = true;
        let now = self.inner.clock.now();
        if let Ok(mut throttle) = self.inner.throttle.lock() {
            throttle.finish(self.client, outcome, now);
        }
        if outcome == Outcome::Failed {
            let known_device = matches!(self.client, Client::Device(_));
            tracing::warn!(from = %self.ip, known_device, "failed owner login");
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.settled {
            self.finish(Outcome::Failed);
        }
    }
}

impl Vault {
    /// Reserves a passphrase attempt for `from`, or answers `429` with how long to wait.
    pub(super) fn begin_attempt(&self, from: &AttemptFrom) -> Result<Attempt, AppError> {
        let now = self.now();
        let client = from
            .device_cookie
            .as_ref()
            .and_then(|cookie| self.inner.devices.identify(cookie.expose(), now))
            .map_or(Client::Address(from.ip), Client::Device);
        self.inner
            .throttle
            .lock()
            .map_err(|_| AppError::broken("throttle poisoned"))?
            .begin(client, now)
            .map_err(|wait| AppError::TooManyRequests {
                retry_after: wait.whole_seconds().max(1) as u64,
            })?;
        Ok(Attempt {
            inner: self.inner.clone(),
            client,
            ip: from.ip,
            settled: false,
        })
    }

    /// A new device cookie for a client that has just proved it is the owner.
    pub fn issue_device_cookie(&self) -> Result<Secret, AppError> {
        self.inner.devices.issue(self.now())
    }
}
