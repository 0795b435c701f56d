//! Pushed authorization requests (RFC 9126): a brand sends its authorization request straight
//! to the vault, authenticated as at the token endpoint, and gets a `request_uri` to send the
//! person's browser with instead of the parameters. The request is checked when pushed (so a
//! bad one fails in the brand's back channel, with an OAuth error body, not in the person's
//! browser) and again when used, since the brand, its agreement or the terms may have changed.
//!
//! Pushed requests live in memory, like consents: they last [`PAR_LIFETIME`], are used once,
//! and a restart simply makes the brand push again. At most [`MAX_PUSHED`] wait at once.

use std::collections::HashMap;

use time::{Duration, OffsetDateTime};

use super::OpenVault;
use super::authorize::{AuthorizeError, AuthorizeParams};
use crate::crypto::random_token;
use crate::domain::brands::Brand;
use crate::error::{AppError, OAuthError};

/// The prefix of request URIs (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// How long a pushed request can be used: long enough to send the browser on, short enough
/// that a leaked `request_uri` is soon worthless (RFC 9126 §2.2 suggests 5 to 600 seconds).
pub const PAR_LIFETIME: Duration = Duration::seconds(90);
/// Most pushed requests waiting at once (a brand pushing in a loop cannot grow memory).
pub const MAX_PUSHED: usize = 1_000;

#[derive(Debug)]
struct Pushed {
    client_id: String,
    params: AuthorizeParams,
    created_at: OffsetDateTime,
}

/// The pushed requests not yet used, by their `request_uri`.
#[derive(Debug, Default)]
pub(crate) struct PushedRequests {
    requests: HashMap<String, Pushed>,
}

impl PushedRequests {
    fn prune(&mut self, now: OffsetDateTime) {
        self.requests
            .retain(|_, p| now < p.created_at + PAR_LIFETIME);
    }
}

/// A request the brand pushed: what it sends the browser with.
#[derive(Debug)]
pub struct PushedRequest {
    pub request_uri: String,
    pub expires_in: i64,
}

impl OpenVault {
    fn pushed(&self) -> Result<std::sync::MutexGuard<'_, PushedRequests>, AppError> {
        self.pushed_requests
            .lock()
            .map_err(|_| AppError::broken("pushed requests lock poisoned"))
    }

    /// RFC 9126 §2: checks `params` as the authorization endpoint would, for the authenticated
    /// `brand`, and keeps them under a new `request_uri`.
    pub fn push_authorization(
        &self,
        brand: &Brand,
        mut params: AuthorizeParams,
    ) -> Result<PushedRequest, OAuthError> {
        if params.request_uri.is_some() {
            return Err(OAuthError::invalid_request(
                "request_uri cannot be pushed: push the authorization parameters themselves",
            ));
        }
        match &params.client_id {
            Some(id) if *id != brand.client_id => {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the authenticated client",
                ));
            }
            Some(_) => {}
            None => params.client_id = Some(brand.client_id.clone()),
        }
        // The same checks as the authorization endpoint; their errors come back in the body
        // (RFC 9126 §2.3) rather than by redirect.
        if let Err(e) = self.check_authorization(params.clone(), true) {
            return Err(match e {
                AuthorizeError::NoRedirect(reason) => OAuthError::invalid_request(reason),
                AuthorizeError::Redirect {
                    error, description, ..
                } => OAuthError::new(400, error, description),
            });
        }
        let token = random_token("").map_err(|e| AppError::internal("drawing random bytes", e))?;
        let request_uri = format!("{REQUEST_URI_PREFIX}{token}");
        let now = self.now();
        let mut pushed = self.pushed()?;
        pushed.prune(now);
        if pushed.requests.len() >= MAX_PUSHED {
            return Err(OAuthError::new(
                503,
                "temporarily_unavailable",
                "too many pushed authorization requests are waiting; try again later",
            ));
        }
        pushed.requests.insert(
            request_uri.clone(),
            Pushed {
                client_id: brand.client_id.clone(),
                params,
                created_at: now,
            },
        );
        Ok(PushedRequest {
            request_uri,
            expires_in: PAR_LIFETIME.whole_seconds(),
        })
    }

    /// The parameters pushed under `request_uri` by `client_id`, taken: a request URI works
    /// once (RFC 9126 §4). An unknown, used or expired one, or another client's, cannot be
    /// answered by redirect (nothing says where to), so the browser is told.
    pub(crate) fn take_pushed(
        &self,
        request_uri: &str,
        client_id: Option<&str>,
    ) -> Result<AuthorizeParams, AuthorizeError> {
        let now = self.now();
        let mut pushed = self.pushed()?;
        pushed.prune(now);
        let unknown = || {
            AuthorizeError::NoRedirect(
                "request_uri is unknown, used or expired: the brand must push the request again"
                    .into(),
            )
        };
        let Some(found) = pushed.requests.get(request_uri) else {
            return Err(unknown());
        };
        if client_id != Some(found.client_id.as_str()) {
            return Err(AuthorizeError::NoRedirect(
                "client_id must be sent with request_uri, and be the client that pushed it".into(),
            ));
        }
        pushed
            .requests
            .remove(request_uri)
            .map(|p| p.params)
            .ok_or_else(unknown)
    }
}
