//! What brands are told by a vault that has no owner: one never set up, or one whose owner
//! deleted everything (it is back in setup mode).
//!
//! The owner's routes answer `503 setup_required` ("open the web app to set it up"), which is
//! right for the person and wrong for a brand: it says "try again later" (with `Retry-After`),
//! and a brand would retry forever for clients, tokens and invitations that are gone for good.
//! So the gate hands brand-facing routes to [`answer`], which tells them what is true: no
//! client is registered here (`invalid_client`), no token or invitation is known
//! (`invalid_token`), there are no terms and no keys.

use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::{AppError, OAuthError, TokenRefusal};

/// The `error_description` of a client authentication to a vault that has none.
pub const NO_CLIENTS: &str = "this client is not registered here: the vault holds no clients \
     (its owner deleted everything, or it was never set up)";

/// The answer to a brand-facing request while the vault is in setup mode, or `None` for a
/// route that is the owner's (the gate's `setup_required` stands).
pub fn answer(method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"));
    let response = match path {
        // Client authentication cannot succeed: there is no client. Basic clients get the
        // Basic challenge, as for any failed client authentication (RFC 6749 §5.2).
        "/oauth/token" | "/oauth/revoke" | "/oauth/introspect" | "/oauth/par" => {
            OAuthError::invalid_client(NO_CLIENTS)
                .for_client_auth(basic)
                .into_response()
        }
        "/oauth/register" => OAuthError::new(
            401,
            "invalid_token",
            "no invitation is known here: the vault holds none (its owner deleted everything, \
             or it was never set up); ask the person for a new invitation",
        )
        .into_response(),
        // No redirect: no redirect URI is registered to send the error to.
        "/oauth/authorize" => {
            OAuthError::invalid_request(format!("unknown client_id: {NO_CLIENTS}")).into_response()
        }
        // There are no keys: an empty set is the truth, and a cache refresh does not retry.
        "/oauth/jwks" => (
            StatusCode::OK,
            axum::Json(serde_json::json!({ "keys": [] })),
        )
            .into_response(),
        "/brand/v1/terms" => AppError::NotFound("terms").into_response(),
        // Accepting terms is client-authenticated, and there is no client.
        "/brand/v1/agreements" if method == Method::POST => {
            AppError::InvalidClient(NO_CLIENTS.to_owned()).into_response()
        }
        brand if brand.starts_with("/brand/") => {
            let refusal = if super::brand_api::access_token(headers).is_some() {
                AppError::InvalidToken(TokenRefusal::NoClients)
            } else if basic {
                AppError::InvalidClient(NO_CLIENTS.to_owned())
            } else if headers.contains_key(header::AUTHORIZATION) {
                AppError::InvalidToken(TokenRefusal::NotBearer)
            } else {
                AppError::InvalidToken(TokenRefusal::Missing)
            };
            refusal.into_response()
        }
        _ => return None,
    };
    Some(response)
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_authorization(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn owner_routes_keep_their_answer() {
        for path in ["/api/v1/records", "/api/v1/session", "/", "/consent"] {
            assert!(
                answer(&Method::GET, path, &HeaderMap::new()).is_none(),
                "{path}"
            );
        }
    }

    #[test]
    fn brand_routes_are_never_told_to_retry() {
        let cases = [
            ("/oauth/token", with_authorization("Basic YTpi"), 401),
            ("/oauth/token", HeaderMap::new(), 400),
            ("/oauth/register", with_authorization("Bearer x"), 401),
            ("/oauth/authorize", HeaderMap::new(), 400),
            ("/oauth/jwks", HeaderMap::new(), 200),
            ("/brand/v1/terms", HeaderMap::new(), 404),
            ("/brand/v1/data", with_authorization("Bearer x"), 401),
            (
                "/brand/v1/agreements",
                with_authorization("Basic YTpi"),
                401,
            ),
        ];
        for (path, headers, status) in cases {
            let response = answer(&Method::GET, path, &headers);
            let response = response.unwrap_or_else(|| panic!("{path}: no answer"));
            assert_eq!(response.status().as_u16(), status, "{path}");
            assert!(
                !response.headers().contains_key(header::RETRY_AFTER),
                "{path}"
            );
        }
    }
}
