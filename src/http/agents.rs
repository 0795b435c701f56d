//! The person's AI assistants on the HTTP side: [`AgentCaller`], the extractor that lets an
//! assistant's bearer token into the MCP server at `/mcp`, and [`require_agent`], the same check
//! as a middleware for a service (such as an MCP transport) that takes no extractors.
//!
//! A refusal for want of a token says where to learn how to get one (RFC 9728 §5.1): its
//! `WWW-Authenticate` challenge names the protected resource metadata, which names this vault as
//! the authorization server. That is how an MCP client discovers the OAuth flow.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::bearer;
use super::error::bearer_challenge;
use crate::error::{AppError, TokenRefusal};
use crate::service::agents::{Agent, AgentScope};

/// Where the protected resource metadata of `/mcp` is (RFC 9728 §3), for the challenge.
pub const RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// Protected resource metadata (RFC 9728 §2) of the MCP server: what an MCP client reads to
/// find the authorization server and the scopes to ask for.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProtectedResourceMetadata {
    /// `<public url>/mcp`: the `resource` to name in authorization and token requests (RFC 8707).
    pub resource: String,
    /// This vault (its RFC 8414 metadata is at `/.well-known/oauth-authorization-server`).
    pub authorization_servers: Vec<String>,
    /// The agent scopes.
    pub scopes_supported: Vec<&'static str>,
    /// `["header"]`: `Authorization: Bearer`, nothing else.
    pub bearer_methods_supported: Vec<&'static str>,
    pub resource_name: &'static str,
    pub resource_documentation: String,
}

/// The public URL without a trailing slash (the issuer).
fn public_url(state: &AppState) -> String {
    state
        .vault
        .settings()
        .issuer
        .trim_end_matches('/')
        .to_owned()
}

fn resource_metadata(state: &AppState) -> axum::Json<ProtectedResourceMetadata> {
    let issuer = public_url(state);
    axum::Json(ProtectedResourceMetadata {
        resource: format!("{issuer}{}", crate::service::agents::MCP_PATH),
        authorization_servers: vec![issuer.clone()],
        scopes_supported: crate::domain::agents::scope_names(),
        bearer_methods_supported: vec!["header"],
        resource_name: "Your vault, for your own assistant",
        resource_documentation: format!("{issuer}/openapi.json"),
    })
}

/// RFC 9728 protected resource metadata of the MCP server at `/mcp`. Served whatever the
/// vault's phase: it holds nothing secret.
#[utoipa::path(get, path = "/.well-known/oauth-protected-resource", tag = "agents",
    responses((status = 200, body = ProtectedResourceMetadata)))]
pub async fn protected_resource(
    State(state): State<AppState>,
) -> axum::Json<ProtectedResourceMetadata> {
    resource_metadata(&state)
}

/// The same metadata at the path RFC 9728 §3.1 derives from the resource `<public url>/mcp`
/// (where MCP clients look first).
#[utoipa::path(get, path = "/.well-known/oauth-protected-resource/mcp", tag = "agents",
    responses((status = 200, body = ProtectedResourceMetadata)))]
pub async fn protected_resource_mcp(
    State(state): State<AppState>,
) -> axum::Json<ProtectedResourceMetadata> {
    resource_metadata(&state)
}

/// An assistant's call with a valid access token for `/mcp`: every check of
/// [`crate::service::OpenVault::verify_agent_token`] passed. A handler that also needs the open
/// vault takes [`super::extract::Unsealed`] after it.
///
/// Refusals: no or a bad token → `401 invalid_token` with the RFC 9728 challenge; a token for
/// another resource (a brand's token for the brand API) → the same; the vault sealed, not set
/// up or being erased → `503` in the vault's JSON shape.
#[derive(Debug, Clone)]
pub struct AgentCaller(pub Agent);

impl AgentCaller {
    /// `403 insufficient_scope` unless the person let the assistant do this.
    pub fn require(&self, scope: AgentScope) -> Result<(), AppError> {
        if self.0.has(scope) {
            Ok(())
        } else {
            Err(AppError::InsufficientScope(scope.as_str()))
        }
    }
}

/// Why an assistant's call was refused: the error, answered in the vault's JSON shape, and for a
/// token problem the RFC 9728 challenge naming the resource metadata.
#[derive(Debug)]
pub struct AgentRefusal {
    pub error: AppError,
    resource_metadata: String,
}

impl IntoResponse for AgentRefusal {
    fn into_response(self) -> Response {
        let challenge = match &self.error {
            AppError::InvalidToken(refusal) => {
                let description = refusal.to_string();
                let error = match refusal {
                    // RFC 6750 §3.1: a request with no token gets no error code.
                    TokenRefusal::Missing => None,
                    _ => Some(("invalid_token", description.as_str())),
                };
                Some(bearer_challenge(
                    "Bearer",
                    error,
                    &format!(r#", resource_metadata="{}""#, self.resource_metadata),
                ))
            }
            _ => None,
        };
        let mut response = self.error.into_response();
        if let Some(challenge) = challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

/// The URL of the protected resource metadata, from the vault's public URL.
pub fn resource_metadata_url(state: &AppState) -> String {
    format!("{}{RESOURCE_METADATA_PATH}", public_url(state))
}

impl FromRequestParts<AppState> for AgentCaller {
    type Rejection = AgentRefusal;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AgentRefusal> {
        let refuse = |error| AgentRefusal {
            error,
            resource_metadata: resource_metadata_url(state),
        };
        let Some(token) = bearer(&parts.headers) else {
            return Err(refuse(AppError::InvalidToken(
                if parts.headers.contains_key(header::AUTHORIZATION) {
                    TokenRefusal::NotBearer
                } else {
                    TokenRefusal::Missing
                },
            )));
        };
        let open = state.vault.open().map_err(refuse)?;
        let agent = open.verify_agent_token(token).map_err(refuse)?;
        open.touch_agent(&agent.client_id);
        Ok(AgentCaller(agent))
    }
}

/// [`AgentCaller`] as a middleware: refuses the request as the extractor does, or passes it on
/// with the [`Agent`] in its extensions (an MCP transport hands a request's parts, extensions
/// included, to its tools).
pub async fn require_agent(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    match AgentCaller::from_request_parts(&mut parts, &state).await {
        Ok(AgentCaller(agent)) => {
            parts.extensions.insert(agent);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(refusal) => refusal.into_response(),
    }
}
