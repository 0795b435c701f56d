//! The OAuth endpoints' side for the person's assistants (MCP clients), which are public clients
//! (`token_endpoint_auth_method` `none`): registration without an invitation, the token
//! endpoint's authorization-code and refresh grants, and revocation, each by `client_id` and
//! without client authentication. The shared endpoints in [`super::oauth`] hand a request here
//! when it names no brand credentials: a registration without an initial access token, a token
//! or revocation request that authenticates no client but names an assistant's `client_id`.
//!
//! How a registration is told to be an assistant's: it has no initial access token and says
//! `token_endpoint_auth_method: none`. A registration without an invitation that asks for
//! anything else is refused as before (`401 invalid_token`: brands need an invitation).

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::oauth::{ClientAuthParams, TokenParam, TokenRequest, TokenResponse};
use crate::domain::agents::{AgentRegistration, scope_text};
use crate::error::OAuthError;
use crate::service::OpenVault;
use crate::service::authorize::{AuthorizeError, AuthorizeParams};

/// What an assistant's registration answers (RFC 7591 §3.2.1): no secret, since it is a public
/// client. The client id works at once for the authorization request, and for nothing else
/// until the person approves it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentRegistrationResponse {
    #[schema(example = "agent-3q2-7xXnYg4kS0b3vGQ2Wg")]
    pub client_id: String,
    pub client_id_issued_at: i64,
    pub client_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    pub redirect_uris: Vec<String>,
    /// `none`.
    pub token_endpoint_auth_method: &'static str,
    pub grant_types: Vec<String>,
    pub response_types: Vec<&'static str>,
    pub scope: String,
}

/// The answer to a registration without an invitation that is not an assistant's.
fn needs_invitation() -> OAuthError {
    OAuthError::new(
        401,
        "invalid_token",
        "registration needs an invitation: send its initial access token as Authorization: \
         Bearer (the person's own assistant registers without one, as a public client with \
         token_endpoint_auth_method none)",
    )
}

/// Registers an assistant: a request to the registration endpoint without an initial access
/// token.
pub(super) async fn register(
    state: &AppState,
    from: IpAddr,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let Some(request) = is_json
        .then(|| serde_json::from_slice::<AgentRegistration>(body).ok())
        .flatten()
        .filter(AgentRegistration::is_public_client)
    else {
        return Err(needs_invitation());
    };
    let valid = request
        .validate()
        .map_err(|(code, message)| OAuthError::new(400, code, message))?;
    let open = state.vault.open()?;
    let record = open.register_agent(from, valid).await?;
    let response = AgentRegistrationResponse {
        client_id_issued_at: record.registered_at.unix_timestamp(),
        client_name: record.client_name,
        client_uri: record.client_uri,
        redirect_uris: record.redirect_uris,
        token_endpoint_auth_method: "none",
        grant_types: record.grant_types,
        response_types: vec!["code"],
        scope: scope_text(&record.scopes),
        client_id: record.client_id,
    };
    Ok((
        StatusCode::CREATED,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        axum::Json(response),
    )
        .into_response())
}

/// The assistant a token or revocation request comes from, if it is one: the request carries
/// no client authentication (no `Authorization` header, no assertion, no secret) and its
/// `client_id` names an assistant's registration. Anything else is a brand's request.
fn public_agent(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    auth: &ClientAuthParams,
) -> Option<(Arc<OpenVault>, String)> {
    if headers.contains_key(header::AUTHORIZATION)
        || auth.client_assertion.is_some()
        || auth.client_assertion_type.is_some()
        || auth.client_secret.is_some()
    {
        return None;
    }
    let client_id = auth.client_id.as_ref()?;
    let open = state.vault.open().ok()?;
    open.find_agent_record(client_id).ok()??;
    Some((open, client_id.clone()))
}

/// The token endpoint for an assistant (authorization code with PKCE, refresh), or `None` when
/// the request is not an assistant's.
pub(super) async fn token(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    request: &TokenRequest,
) -> Option<Result<Response, OAuthError>> {
    let (open, client_id) = public_agent(state, headers, &request.auth)?;
    Some(agent_token(&open, &client_id, request).await)
}

async fn agent_token(
    open: &OpenVault,
    client_id: &str,
    request: &TokenRequest,
) -> Result<Response, OAuthError> {
    let tokens = match request.grant_type.as_deref() {
        None => return Err(OAuthError::invalid_request("grant_type is required")),
        Some("authorization_code") => {
            let code = request
                .code
                .as_deref()
                .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
            open.exchange_agent_code(
                client_id,
                code,
                request.redirect_uri.as_deref(),
                request.code_verifier.as_deref(),
                request.resource.as_deref(),
            )
            .await?
        }
        Some("refresh_token") => {
            let refresh = request
                .refresh_token
                .as_deref()
                .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
            open.refresh_agent(
                client_id,
                refresh,
                request.scope.as_deref(),
                request.resource.as_deref(),
            )
            .await?
        }
        Some(other) => {
            return Err(OAuthError::new(
                400,
                "unsupported_grant_type",
                format!(
                    "grant_type {other} is not for assistants: use authorization_code or refresh_token"
                ),
            ));
        }
    };
    let body = TokenResponse {
        access_token: tokens.access_token,
        token_type: "Bearer",
        expires_in: tokens.expires_in,
        scope: tokens.scope,
        refresh_token: tokens.refresh_token,
        authorization_details: None,
    };
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        axum::Json(body),
    )
        .into_response())
}

/// Revocation (RFC 7009) for an assistant, or `None` when the request is not an assistant's.
pub(super) async fn revoke(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    request: &TokenParam,
) -> Option<Result<(), OAuthError>> {
    let (open, client_id) = public_agent(state, headers, &request.auth)?;
    let Some(token) = request.token.as_deref() else {
        return Some(Err(OAuthError::invalid_request("token is required")));
    };
    Some(
        open.revoke_agent_token(&client_id, token)
            .await
            .map_err(OAuthError::from),
    )
}

/// The authorization endpoint for an assistant: a consent request, and the browser goes to the
/// consent page (`/consent?agent=...`); or `None` when `client_id` is not an assistant's.
pub(super) fn authorize(
    open: &OpenVault,
    params: &AuthorizeParams,
    from: IpAddr,
) -> Option<Response> {
    if params.request_uri.is_some() {
        return None;
    }
    let client_id = params.client_id.as_deref()?;
    open.find_agent_record(client_id).ok()??;
    Some(match open.authorize_agent(params.clone(), from) {
        Ok(id) => super::oauth::see_other(&format!("/consent?agent={id}")),
        Err(e) => match e.redirect(open.issuer()) {
            Some(to) => super::oauth::see_other(&to),
            None => {
                let AuthorizeError::NoRedirect(reason) = e else {
                    return Some(OAuthError::invalid_request("bad request").into_response());
                };
                OAuthError::invalid_request(reason).into_response()
            }
        },
    })
}
