//! Who is calling: authorization lives in extractors, not in handler bodies.
//!
//! [`OwnerSession`] accepts the owner's session token as `Authorization: Bearer` (scripts) or as the
//! session cookie (the browser). A cookie is sent by the browser on its own, so state-changing
//! requests that rely on it must also carry the session's CSRF token in `X-CSRF-Token`; a bearer
//! token is never attached implicitly and needs none.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::{HeaderMap, Method, header, request::Parts};

use super::AppState;
use crate::crypto::constant_time_eq;
use crate::error::AppError;
use crate::service::SessionInfo;

/// The session cookie's name over plain http (loopback) and over https, where the `__Host-`
/// prefix makes the browser refuse it unless it is Secure, host-only and for path `/`.
pub const COOKIE: &str = "vrm_session";
pub const SECURE_COOKIE: &str = "__Host-vrm_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An authenticated owner.
#[derive(Debug)]
pub struct OwnerSession {
    pub token: String,
    pub info: SessionInfo,
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Finds a cookie's value in the `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl FromRequestParts<AppState> for OwnerSession {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if let Some(token) = bearer(&parts.headers) {
            let info = state.vault.authenticate(token)?;
            return Ok(OwnerSession {
                token: token.to_owned(),
                info,
            });
        }
        let token = cookie(&parts.headers, SECURE_COOKIE)
            .or_else(|| cookie(&parts.headers, COOKIE))
            .ok_or(AppError::Unauthenticated)?;
        let info = state.vault.authenticate(token)?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !constant_time_eq(sent.as_bytes(), info.csrf_token.as_bytes()) {
                return Err(AppError::Csrf);
            }
        }
        Ok(OwnerSession {
            token: token.to_owned(),
            info,
        })
    }
}

/// The address of the client, for throttling. Proxies are not trusted (yet): behind a reverse
/// proxy every client shares the proxy's address, which makes throttling stricter, not looser.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(ClientIp(addr))
    }
}
