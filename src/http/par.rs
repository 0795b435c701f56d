//! The pushed authorization request endpoint (RFC 9126): the brand sends the authorization
//! request in its back channel, authenticated as at the token endpoint, and gets a
//! `request_uri` for the browser. The use case is `service::par`.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tracing::instrument;
use utoipa::ToSchema;

use super::AppState;
use super::auth::ClientIp;
use super::error::OAuthErrorBody;
use super::oauth::{ClientAuthParams, audiences, basic_challenge, client_credentials};
use crate::error::OAuthError;
use crate::service::authorize::AuthorizeParams;

/// An authorization request, pushed: the parameters of `GET /oauth/authorize`, in a form body,
/// with the client's authentication.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ParRequest {
    /// `code`.
    pub response_type: Option<String>,
    /// Exactly one of the registered redirect URIs.
    pub redirect_uri: Option<String>,
    pub state: Option<String>,
    /// base64url(SHA-256(code_verifier)).
    pub code_challenge: Option<String>,
    /// `S256`.
    pub code_challenge_method: Option<String>,
    /// RFC 9396, as for the authorization endpoint.
    pub authorization_details: Option<String>,
    /// RFC 8707; if given, the brand API (`vrm_resource`).
    pub resource: Option<String>,
    pub scope: Option<String>,
    /// Refused (RFC 9126 §2.1).
    #[schema(ignore)]
    pub request_uri: Option<String>,
    #[serde(flatten)]
    pub auth: ClientAuthParams,
}

/// RFC 9126 §2.2.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParResponse {
    /// `urn:ietf:params:oauth:request_uri:...`: send the browser to the authorization endpoint
    /// with it and `client_id`; it works once.
    pub request_uri: String,
    /// Seconds it can be used.
    pub expires_in: i64,
}

/// Pushes an authorization request (RFC 9126). The request is checked as the authorization
/// endpoint checks it, and errors come back here (not by redirect).
#[utoipa::path(post, path = "/oauth/par", tag = "oauth",
    request_body(content = ParRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 201, body = ParResponse),
              (status = 400, body = OAuthErrorBody, description = "what the authorization endpoint would redirect with (`invalid_request`, `invalid_authorization_details`, `unauthorized_client`, ...); `invalid_client` for a client that authenticated with an assertion"),
              (status = 401, body = OAuthErrorBody, description = "`invalid_client` for a client that used HTTP Basic (or sent no authentication), with `WWW-Authenticate: Basic`"),
              (status = 429, body = OAuthErrorBody, description = "`temporarily_unavailable`: too many failed client authentications from this address"),
              (status = 503, body = OAuthErrorBody, description = "`temporarily_unavailable`: too many pushed requests waiting")),
    security(("client_secret_basic" = []), ("private_key_jwt" = [])))]
#[instrument(skip_all)]
pub async fn par(
    State(state): State<AppState>,
    ClientIp(from): ClientIp,
    headers: HeaderMap,
    request: Result<Form<ParRequest>, FormRejection>,
) -> Result<Response, OAuthError> {
    let Form(request) = request.map_err(|e| {
        OAuthError::invalid_request(format!(
            "the body must be application/x-www-form-urlencoded parameters: {}",
            e.body_text()
        ))
    })?;
    let basic = basic_challenge(&request.auth);
    let client_id = request.auth.client_id.clone();
    let credentials =
        client_credentials(&headers, request.auth).map_err(|e| e.for_client_auth(basic))?;
    let (open, brand) = state
        .vault
        .authenticate_client_from::<OAuthError, _>(from, credentials, |issuer| {
            audiences(issuer, "/oauth/par")
        })
        .await
        .map_err(|e| e.for_client_auth(basic))?;
    let params = AuthorizeParams {
        response_type: request.response_type,
        client_id,
        redirect_uri: request.redirect_uri,
        state: request.state,
        code_challenge: request.code_challenge,
        code_challenge_method: request.code_challenge_method,
        authorization_details: request.authorization_details,
        resource: request.resource,
        scope: request.scope,
        request_uri: request.request_uri,
    };
    let pushed = open.push_authorization(&brand, params)?;
    let body = ParResponse {
        request_uri: pushed.request_uri,
        expires_in: pushed.expires_in,
    };
    Ok((
        StatusCode::CREATED,
        [
            (axum::http::header::CACHE_CONTROL, "no-store"),
            (axum::http::header::PRAGMA, "no-cache"),
        ],
        axum::Json(body),
    )
        .into_response())
}
