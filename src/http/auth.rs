//! Who is calling: authorization lives in extractors, not in handler bodies.
//!
//! [`OwnerSession`] accepts the owner's session token as `Authorization: Bearer` (scripts) or as the
//! session cookie (the browser). A cookie is sent by the browser on its own, so state-changing
//! requests that rely on it must also carry the session's CSRF token in `X-CSRF-Token`; a bearer
//! token is never attached implicitly and needs none.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::{HeaderMap, Method, header, request::Parts};

use utoipa::IntoResponses;

use super::AppState;
use super::error::ErrorBody;
use crate::crypto::constant_time_eq;
use crate::error::AppError;
use crate::secret::Secret;
use crate::service::{AttemptFrom, SessionInfo};

/// The session cookie's name over plain http (loopback) and over https, where the `__Host-`
/// prefix makes the browser refuse it unless it is Secure, host-only and for path `/`.
pub const COOKIE: &str = "vrm_session";
pub const SECURE_COOKIE: &str = "__Host-vrm_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The device cookie's name over plain http and over https (see [`AttemptFrom`]): it names a
/// browser or script that has logged in before, which the login back-off then judges by its own
/// failures only.
pub const DEVICE_COOKIE: &str = "vrm_device";
pub const SECURE_DEVICE_COOKIE: &str = "__Host-vrm_device";

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

/// What an owner route refuses before its handler runs, for the OpenAPI document
/// (`responses(OwnerRefusals, ...)` on every route that takes an [`OwnerSession`]): the
/// extractor's refusals and those of the gate in front of every API route.
#[derive(Debug, IntoResponses)]
pub enum OwnerRefusals {
    /// `unauthenticated`: no session token or cookie, or one that has ended.
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// `csrf_failed`: a state-changing request made with the session cookie but without the
    /// session's `X-CSRF-Token`.
    #[response(status = 403)]
    Csrf(ErrorBody),
    /// `vault_sealed`, `setup_required`, `vault_erasing` or `storage_unavailable`.
    #[response(status = 503, headers(("Retry-After" = u64, description = "Seconds to wait")))]
    Unavailable(ErrorBody),
}

/// The address of the client, for throttling: the TCP peer, or, when the peer is a configured
/// trusted proxy, the rightmost address in `X-Forwarded-For` that is not itself a trusted proxy.
/// Forwarding headers from anyone else are ignored, so a client cannot pick its own address.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(ClientIp(client_ip(
            peer,
            &parts.headers,
            &state.trusted_proxies,
        )))
    }
}

/// Who makes a passphrase attempt: the [`ClientIp`] and the device cookie, if one was sent (the
/// vault checks it).
#[derive(Debug, Clone)]
pub struct LoginClient(pub AttemptFrom);

impl FromRequestParts<AppState> for LoginClient {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        let device_cookie = cookie(&parts.headers, SECURE_DEVICE_COOKIE)
            .or_else(|| cookie(&parts.headers, DEVICE_COOKIE))
            .map(Secret::new);
        Ok(LoginClient(AttemptFrom { ip, device_cookie }))
    }
}

pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    // Hops are appended left to right, each proxy adding the address it received from; walking
    // from the right, the first address no trusted proxy vouches for is the client. Several
    // header lines are one list (RFC 9110 §5.3). An unreadable entry stops the walk at the last
    // address known good.
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => client = ip,
            Ok(ip) => return ip,
            Err(_) => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                "x-forwarded-for",
                value.parse().unwrap_or(HeaderValue::from_static("")),
            );
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    fn nets(list: &[&str]) -> Vec<ipnet::IpNet> {
        list.iter().filter_map(|n| n.parse().ok()).collect()
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        let h = headers(&["203.0.113.9"]);
        assert_eq!(client_ip(ip("198.51.100.7"), &h, &[]), ip("198.51.100.7"));
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("198.51.100.7"), &h, &trusted),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        // A client that sends its own X-Forwarded-For cannot choose its address: the proxy
        // appends the real one, and that is the one taken.
        let h = headers(&["1.2.3.4, 203.0.113.9, 10.0.0.2"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("203.0.113.9"));
        let h = headers(&["1.2.3.4", "203.0.113.9"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("203.0.113.9"));
    }

    #[test]
    fn garbage_or_only_trusted_hops_fall_back_to_the_last_trusted_address() {
        let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        let h = headers(&["not-an-ip, 10.0.0.2"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("10.0.0.2"));
        assert_eq!(
            client_ip(ip("127.0.0.1"), &headers(&[]), &trusted),
            ip("127.0.0.1")
        );
    }
}
