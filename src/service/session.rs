//! Owner sessions: opaque bearer tokens kept only as their SHA-256, in memory.
//!
//! Sessions live in the process: a restart seals the vault anyway, so nothing is lost by forgetting
//! them, and no session token ever reaches the disk. Each session has an idle and an absolute expiry
//! and its own CSRF token for cookie-authenticated requests.

use std::collections::HashMap;
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

use crate::crypto::sha256;
use crate::error::AppError;
use crate::secret::Secret;

/// The prefix of every session token, so a leaked one is recognisable (e.g. by secret scanners).
pub const TOKEN_PREFIX: &str = "vrm_s_";
/// Sessions kept at most; creating one more drops expired ones, then the oldest.
const MAX_SESSIONS: usize = 256;

/// What a new session hands to the owner, once.
#[derive(Debug)]
pub struct NewSession {
    pub token: Secret,
    pub info: SessionInfo,
}

/// What is known about a live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub csrf_token: String,
    pub expires_at: OffsetDateTime,
    pub idle_expires_at: OffsetDateTime,
}

#[derive(Debug)]
struct Session {
    csrf_token: String,
    created: OffsetDateTime,
    last_seen: OffsetDateTime,
}

fn random_token(prefix: &str) -> Result<String, AppError> {
    crate::crypto::random_token(prefix).map_err(|e| AppError::internal("drawing random bytes", e))
}

#[derive(Debug)]
pub struct Sessions {
    live: Mutex<HashMap<[u8; 32], Session>>,
    idle: Duration,
    max: Duration,
}

impl Sessions {
    pub fn new(idle: Duration, max: Duration) -> Self {
        Sessions {
            live: Mutex::new(HashMap::new()),
            idle,
            max,
        }
    }

    fn info(&self, s: &Session) -> SessionInfo {
        SessionInfo {
            csrf_token: s.csrf_token.clone(),
            expires_at: s.created + self.max,
            idle_expires_at: (s.last_seen + self.idle).min(s.created + self.max),
        }
    }

    fn alive(&self, s: &Session, now: OffsetDateTime) -> bool {
        now < s.created + self.max && now < s.last_seen + self.idle
    }

    pub fn create(&self, now: OffsetDateTime) -> Result<NewSession, AppError> {
        let token = Secret::new(random_token(TOKEN_PREFIX)?);
        let session = Session {
            csrf_token: random_token("")?,
            created: now,
            last_seen: now,
        };
        let info = self.info(&session);
        let mut live = self.lock()?;
        live.retain(|_, s| self.alive(s, now));
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k)
        {
            live.remove(&oldest);
        }
        live.insert(sha256(token.expose().as_bytes()), session);
        Ok(NewSession { token, info })
    }

    /// Checks a token and refreshes the session's idle timer.
    pub fn authenticate(&self, token: &str, now: OffsetDateTime) -> Result<SessionInfo, AppError> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Err(AppError::Unauthenticated);
        }
        let key = sha256(token.as_bytes());
        let mut live = self.lock()?;
        let Some(session) = live.get_mut(&key) else {
            return Err(AppError::Unauthenticated);
        };
        if !self.alive(session, now) {
            live.remove(&key);
            return Err(AppError::Unauthenticated);
        }
        session.last_seen = now;
        Ok(self.info(session))
    }

    pub fn revoke(&self, token: &str) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(&sha256(token.as_bytes()));
        }
    }

    /// Ends every session (on seal or deletion).
    pub fn clear(&self) {
        if let Ok(mut live) = self.live.lock() {
            live.clear();
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>>, AppError> {
        self.live
            .lock()
            .map_err(|_| AppError::broken("session table poisoned"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn idle_and_absolute_expiry() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let sessions = Sessions::new(Duration::minutes(30), Duration::hours(12));
        let s = sessions.create(t0).unwrap();
        let token = s.token.expose().to_owned();
        assert!(token.starts_with(TOKEN_PREFIX));
        // Activity every 20 minutes keeps it alive until the absolute limit.
        let mut now = t0;
        while now + Duration::minutes(20) < t0 + Duration::hours(12) {
            now += Duration::minutes(20);
            assert!(sessions.authenticate(&token, now).is_ok(), "{now}");
        }
        assert!(
            sessions
                .authenticate(&token, t0 + Duration::hours(12))
                .is_err()
        );

        let idle = sessions.create(t0).unwrap();
        let idle_token = idle.token.expose().to_owned();
        assert!(
            sessions
                .authenticate(&idle_token, t0 + Duration::minutes(31))
                .is_err()
        );
        // Once expired it is gone, even if the clock went back.
        assert!(sessions.authenticate(&idle_token, t0).is_err());
    }

    #[test]
    fn revoke_and_unknown_tokens() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let sessions = Sessions::new(Duration::minutes(30), Duration::hours(12));
        let s = sessions.create(t0).unwrap();
        sessions.revoke(s.token.expose());
        assert!(sessions.authenticate(s.token.expose(), t0).is_err());
        assert!(sessions.authenticate("vrm_s_nope", t0).is_err());
        assert!(sessions.authenticate("", t0).is_err());
    }
}
