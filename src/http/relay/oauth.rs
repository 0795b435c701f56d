//! The relay as an OAuth 2.0 authorization server for brands: RFC 8414 metadata and the token
//! endpoint (client credentials, authenticated only by an RFC 7523 `private_key_jwt` assertion
//! signed with the brand's admitted signing key). Errors are in RFC 6749's shape.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::OAuthError;
use crate::http::error::Json;
use crate::relay::Relay;
use crate::relay::brands::{Scope, TokenRequest};

/// `GET /.well-known/oauth-authorization-server`.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "public",
    responses((status = 200, description = "RFC 8414 metadata", body = Object)))]
pub async fn metadata(State(relay): State<Relay>) -> Json<Value> {
    let issuer = &relay.settings().public_url;
    Json(json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth/token"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
        "scopes_supported": Scope::ALL.map(Scope::as_str),
    }))
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// `POST /oauth/token`: `grant_type=client_credentials` with `client_assertion_type` and
/// `client_assertion`; answers an opaque bearer token living five minutes.
#[utoipa::path(post, path = "/oauth/token", tag = "brands",
    request_body(content_type = "application/x-www-form-urlencoded", description = "grant_type=client_credentials, client_assertion_type, client_assertion, optional scope", content = Object),
    responses((status = 200, body = super::openapi::RelayToken),
              (status = 400, description = "RFC 6749 error: `invalid_request`, `unsupported_grant_type`, `invalid_scope`", body = Object),
              (status = 401, description = "RFC 6749 error: `invalid_client` (unknown, suspended, bad or replayed assertion)", body = Object),
              (status = 503, description = "RFC 6749 error: `temporarily_unavailable`", body = Object)),
    security(("private_key_jwt" = [])))]
pub async fn token(
    State(relay): State<Relay>,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Result<Response, OAuthError> {
    let Form(form) = form.map_err(|e| {
        OAuthError::invalid_request(format!(
            "the body must be application/x-www-form-urlencoded parameters: {}",
            e.body_text()
        ))
    })?;
    let issued = relay
        .issue_token(TokenRequest {
            grant_type: form.grant_type,
            scope: form.scope,
            client_id: form.client_id,
            client_assertion_type: form.client_assertion_type,
            client_assertion: form.client_assertion,
        })
        .await?;
    let mut response = Json(issued).into_response();
    // RFC 6749 §5.1: token responses are not cached.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
