//! The OAuth 2.0 authorization server: metadata (RFC 8414), keys (JWKS), dynamic client
//! registration (RFC 7591), the token endpoint (client credentials, RFC 6749 §4.4) with
//! `client_secret_basic` and `private_key_jwt` (RFC 7523), revocation (RFC 7009) and
//! introspection (RFC 7662). Errors here have the RFC 6749 §5.2 shape that OAuth libraries read.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::instrument;
use utoipa::ToSchema;

use super::AppState;
use super::auth::{ClientIp, bearer};
use super::error::{ErrorBody, OAuthErrorBody};
use crate::crypto::jwt::{ASSERTION_ALGORITHMS, PublicJwk};
use crate::domain::brands::Brand;
use crate::domain::brands::{BRAND_SCOPES, ClientMetadata, GRANT_TYPES};
use crate::domain::grants::DATA_ACCESS_TYPE;
use crate::error::OAuthError;
use crate::secret::Secret;
use crate::service::OpenVault;
use crate::service::authorize::{AuthorizeError, AuthorizeParams};
use crate::service::brands::ClientCredentials;
use std::sync::Arc;

/// The `client_assertion_type` of RFC 7523 §2.2.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Authorization server metadata (RFC 8414 §2), plus where brands find and accept the terms.
#[derive(Debug, Serialize, ToSchema)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub registration_endpoint: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    /// RFC 9126: where brands push authorization requests.
    pub pushed_authorization_request_endpoint: String,
    /// RFC 9126 §5: false; a client can require PAR for itself at registration.
    pub require_pushed_authorization_requests: bool,
    /// RFC 9449 §5.1: the algorithms accepted for DPoP proofs.
    pub dpop_signing_alg_values_supported: Vec<&'static str>,
    pub scopes_supported: Vec<&'static str>,
    pub response_types_supported: Vec<&'static str>,
    pub grant_types_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    pub token_endpoint_auth_signing_alg_values_supported: Vec<&'static str>,
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    pub introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    pub code_challenge_methods_supported: Vec<&'static str>,
    pub authorization_details_types_supported: Vec<&'static str>,
    /// RFC 9207: every authorization response (code or error) carries `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    pub service_documentation: String,
    /// The public terms brands must accept before any token (vrm-vault extension).
    pub vrm_terms_endpoint: String,
    /// Where a brand accepts the terms by hash (vrm-vault extension).
    pub vrm_agreements_endpoint: String,
    /// The `aud` of access tokens: the brand API (vrm-vault extension).
    pub vrm_resource: String,
}

const AUTH_METHODS: [&str; 2] = ["client_secret_basic", "private_key_jwt"];
/// [`AUTH_METHODS`] and `none`: the person's assistants are public clients (RFC 7591 §2), which
/// name themselves by `client_id` at the token and revocation endpoints.
const CLIENT_AUTH_METHODS: [&str; 3] = ["client_secret_basic", "private_key_jwt", "none"];

/// RFC 8414 metadata. Served whatever the vault's phase: it holds nothing secret.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth",
    responses((status = 200, body = Metadata)))]
pub async fn metadata(State(state): State<AppState>) -> Json<Metadata> {
    let issuer = state
        .vault
        .settings()
        .issuer
        .trim_end_matches('/')
        .to_owned();
    Json(Metadata {
        authorization_endpoint: format!("{issuer}/oauth/authorize"),
        token_endpoint: format!("{issuer}/oauth/token"),
        jwks_uri: format!("{issuer}/oauth/jwks"),
        registration_endpoint: format!("{issuer}/oauth/register"),
        revocation_endpoint: format!("{issuer}/oauth/revoke"),
        introspection_endpoint: format!("{issuer}/oauth/introspect"),
        pushed_authorization_request_endpoint: format!("{issuer}/oauth/par"),
        require_pushed_authorization_requests: false,
        dpop_signing_alg_values_supported: crate::crypto::dpop::DPOP_ALGORITHMS.to_vec(),
        // Brands' scopes, then the scopes of the person's own assistants (`agent.*`).
        scopes_supported: BRAND_SCOPES
            .iter()
            .map(|(s, _)| *s)
            .chain(crate::domain::agents::scope_names())
            .collect(),
        response_types_supported: vec!["code"],
        grant_types_supported: GRANT_TYPES.to_vec(),
        token_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS.to_vec(),
        token_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGORITHMS.to_vec(),
        revocation_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS.to_vec(),
        introspection_endpoint_auth_methods_supported: AUTH_METHODS.to_vec(),
        code_challenge_methods_supported: vec!["S256"],
        authorization_details_types_supported: vec![DATA_ACCESS_TYPE],
        authorization_response_iss_parameter_supported: true,
        service_documentation: format!("{issuer}/openapi.json"),
        vrm_terms_endpoint: format!("{issuer}/brand/v1/terms"),
        vrm_agreements_endpoint: format!("{issuer}/brand/v1/agreements"),
        vrm_resource: format!("{issuer}/brand/v1"),
        issuer,
    })
}

/// A plain JSON response (OAuth endpoints answer in their own error shape, not `AppError`'s).
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JwkSet {
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<PublicJwk>,
}

/// The public keys access tokens and agreement receipts are signed with. After a rotation the
/// previous key stays here until every token it signed has expired.
#[utoipa::path(get, path = "/oauth/jwks", tag = "oauth",
    responses((status = 200, body = JwkSet),
              (status = 503, body = ErrorBody, description = "`vault_sealed`: there are no keys to publish until the owner unlocks the vault")))]
pub async fn jwks(State(state): State<AppState>) -> Result<Json<JwkSet>, OAuthError> {
    let open = state.vault.open()?;
    Ok(Json(JwkSet { keys: open.jwks() }))
}

/// The client metadata a brand registers with (RFC 7591 §2); unknown members are ignored.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegistrationRequest {
    #[schema(example = "Bistro Lumière")]
    pub client_name: String,
    pub client_uri: Option<String>,
    pub contacts: Option<Vec<String>>,
    /// `client_secret_basic` (default) or `private_key_jwt`.
    pub token_endpoint_auth_method: Option<String>,
    /// Only `client_credentials`.
    pub grant_types: Option<Vec<String>>,
    /// Space-separated; default: every brand scope.
    #[schema(example = "intents:read offers:write agreements:read")]
    pub scope: Option<String>,
    /// Required with `private_key_jwt`: the public keys of the brand's assertions.
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<Value>,
    /// Required with `authorization_code`: https, or http on loopback; matched exactly.
    pub redirect_uris: Option<Vec<String>>,
    /// `["code"]` with `authorization_code`.
    pub response_types: Option<Vec<String>>,
    /// RFC 9126 §6: when true, the authorization endpoint takes this client's requests only
    /// through the pushed authorization request endpoint.
    pub require_pushed_authorization_requests: Option<bool>,
    /// RFC 9449 §5.2: when true, this client's access tokens are always DPoP-bound, and the
    /// token endpoint refuses it a request without a DPoP proof.
    pub dpop_bound_access_tokens: Option<bool>,
}

/// For the OpenAPI document only: `POST /oauth/register` takes a brand's metadata (with its
/// invitation) or an assistant's (a public client, no invitation). One media type holds one
/// schema, so the two are one `oneOf`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum RegistrationBody {
    Brand(RegistrationRequest),
    Assistant(crate::domain::agents::AgentRegistration),
}

/// For the OpenAPI document only: what `POST /oauth/register` answers, a brand's registration
/// or an assistant's.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum RegistrationAnswer {
    Brand(RegistrationResponse),
    Assistant(super::agent_oauth::AgentRegistrationResponse),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationResponse {
    pub client_id: String,
    /// Only for `client_secret_basic`; shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub client_id_issued_at: i64,
    /// `0`: the secret does not expire. Only with a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
    pub client_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    pub contacts: Vec<String>,
    pub token_endpoint_auth_method: &'static str,
    pub grant_types: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    pub response_types: Vec<&'static str>,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<Value>,
    pub require_pushed_authorization_requests: bool,
    pub dpop_bound_access_tokens: bool,
}

/// Dynamic client registration (RFC 7591): a brand with the invitation's initial access token
/// as bearer; the person's own assistant (an MCP client) without one, as a public client
/// (`token_endpoint_auth_method: none`, redirect URIs https or loopback http, `authorization_code`
/// and `refresh_token`), answered with an [`AgentRegistrationResponse`](super::agent_oauth::AgentRegistrationResponse)
/// (no secret) that can do nothing until the person approves it; unapproved, it is purged after
/// an hour.
#[utoipa::path(post, path = "/oauth/register", tag = "oauth",
    request_body = RegistrationBody,
    responses((status = 201, body = RegistrationAnswer),
              (status = 400, body = OAuthErrorBody, description = "`invalid_client_metadata`, `invalid_redirect_uri`"),
              (status = 401, body = OAuthErrorBody, description = "`invalid_token`: no, spent or expired invitation (and not an assistant's registration)"),
              (status = 429, body = OAuthErrorBody, description = "`slow_down`: too many failed registrations from this address; for assistants, too many registrations from this address (5, then one per 10 minutes) or in all (30, then one a minute), or 100 waiting for approval. `Retry-After` says when to try again")),
    security((), ("initial_access_token" = [])))]
#[instrument(skip_all)]
pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, OAuthError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            OAuthError::new(
                413,
                "invalid_request",
                "the body is larger than this endpoint accepts",
            )
        } else {
            OAuthError::invalid_request(format!("the body could not be read: {}", e.body_text()))
        }
    })?;
    // Without an invitation: the person's own assistant registering itself, as MCP clients do
    // (`agent_oauth`), or a brand that forgot its invitation (refused there).
    let Some(token) = bearer(&headers) else {
        return super::agent_oauth::register(&state, ip, &headers, &body).await;
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(OAuthError::invalid_request(
            "the body must be JSON (Content-Type: application/json)",
        ));
    }
    let metadata: ClientMetadata = serde_json::from_slice(&body).map_err(|e| {
        OAuthError::new(
            400,
            "invalid_client_metadata",
            format!("the body is not client metadata: {e}"),
        )
    })?;
    let metadata = metadata
        .validate(crate::crypto::jwt::check_client_jwks)
        .map_err(|e| OAuthError::new(400, "invalid_client_metadata", e))?;
    let (brand, secret) = state.vault.register_brand(ip, token, metadata).await?;
    let response = RegistrationResponse {
        client_secret_expires_at: secret.as_ref().map(|_| 0),
        client_secret: secret.map(|s| s.expose().to_owned()),
        client_id_issued_at: brand.registered_at.unix_timestamp(),
        client_name: brand.client_name,
        client_uri: brand.client_uri,
        contacts: brand.contacts,
        token_endpoint_auth_method: brand.auth_method.as_str(),
        response_types: if brand.grant_types.iter().any(|g| g == "authorization_code") {
            vec!["code"]
        } else {
            vec![]
        },
        grant_types: brand.grant_types,
        redirect_uris: brand.redirect_uris,
        scope: brand.scope.join(" "),
        jwks: brand.jwks,
        require_pushed_authorization_requests: brand.require_pushed_authorization_requests,
        dpop_bound_access_tokens: brand.dpop_bound_access_tokens,
        client_id: brand.client_id,
    };
    Ok((StatusCode::CREATED, no_store(), axum::Json(response)).into_response())
}

fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ]
}

/// The client-authentication parameters of a form or JSON body.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ClientAuthParams {
    pub client_id: Option<String>,
    /// Refused: this vault takes secrets only by HTTP Basic.
    #[schema(ignore)]
    pub client_secret: Option<String>,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
    pub client_assertion_type: Option<String>,
    pub client_assertion: Option<String>,
}

fn percent_decoded(text: &str) -> Option<String> {
    let text = text.replace('+', " ");
    percent_encoding::percent_decode_str(&text)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// `client_secret_basic` (RFC 6749 §2.3.1): id and secret, each form-urlencoded, in HTTP Basic.
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, Secret), OAuthError>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let malformed = || OAuthError::invalid_client("the Basic credentials are malformed");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let Some(decoded) = decoded else {
        return Some(Err(malformed()));
    };
    let Some((id, secret)) = decoded.split_once(':') else {
        return Some(Err(malformed()));
    };
    match (percent_decoded(id), percent_decoded(secret)) {
        (Some(id), Some(secret)) => Some(Ok((id, Secret::new(secret)))),
        _ => Some(Err(malformed())),
    }
}

/// Whether an `invalid_client` answer should challenge for HTTP Basic (RFC 6749 §5.2): unless
/// the client authenticated another way (an assertion, or a `client_secret` in the body), Basic
/// is what it used or what it is asked for.
pub fn basic_challenge(params: &ClientAuthParams) -> bool {
    params.client_assertion.is_none()
        && params.client_assertion_type.is_none()
        && params.client_secret.is_none()
}

/// Finds exactly one client authentication in a request (RFC 6749 §2.3: never more than one).
pub fn client_credentials(
    headers: &HeaderMap,
    params: ClientAuthParams,
) -> Result<ClientCredentials, OAuthError> {
    if params.client_secret.is_some() {
        return Err(OAuthError::invalid_client(
            "client_secret_post is not supported: send the secret with HTTP Basic (client_secret_basic)",
        ));
    }
    let basic = basic_credentials(headers).transpose()?;
    match (basic, params.client_assertion_type, params.client_assertion) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(OAuthError::invalid_request(
            "use one client authentication method per request, not both Basic and an assertion",
        )),
        (Some((client_id, secret)), None, None) => {
            if params.client_id.as_ref().is_some_and(|id| *id != client_id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the Basic credentials",
                ));
            }
            Ok(ClientCredentials::Basic { client_id, secret })
        }
        (None, Some(kind), Some(assertion)) => {
            if kind != JWT_BEARER_ASSERTION {
                return Err(OAuthError::invalid_client(format!(
                    "client_assertion_type must be {JWT_BEARER_ASSERTION}"
                )));
            }
            Ok(ClientCredentials::Assertion {
                client_id: params.client_id,
                assertion,
            })
        }
        (None, _, _) => Err(OAuthError::invalid_client(
            "authenticate the client: HTTP Basic with client id and secret, or a client_assertion (private_key_jwt)",
        )),
    }
}

/// The URLs a client assertion may name as audience (RFC 7523 §3): anything that identifies the
/// authorization server — the issuer, the token endpoint, or the endpoint called.
pub fn audiences(issuer: &str, endpoint: &str) -> Vec<String> {
    let issuer = issuer.trim_end_matches('/');
    vec![
        format!("{issuer}{endpoint}"),
        format!("{issuer}/oauth/token"),
        issuer.to_owned(),
    ]
}

fn form<T>(form: Result<Form<T>, FormRejection>) -> Result<T, OAuthError> {
    form.map(|Form(f)| f).map_err(|e| {
        OAuthError::invalid_request(format!(
            "the body must be application/x-www-form-urlencoded parameters: {}",
            e.body_text()
        ))
    })
}

// For the OpenAPI document only: the form reads a plain string, so that another value is
// answered with `unsupported_grant_type`.
/// The grant types of the token endpoint.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum GrantTypeName {
    ClientCredentials,
    AuthorizationCode,
    RefreshToken,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    // Read as optional so that its absence gets `invalid_request`.
    #[schema(value_type = GrantTypeName, required = true)]
    pub grant_type: Option<String>,
    /// Space-separated; default: every scope the brand registered.
    pub scope: Option<String>,
    /// RFC 9396, with client credentials: `[{"type": "urn:vrm-vault:data-access:v1", "grant_id": "..."}]`.
    pub authorization_details: Option<String>,
    /// The authorization code (authorization_code).
    pub code: Option<String>,
    /// The redirect URI of the authorization request (authorization_code).
    pub redirect_uri: Option<String>,
    /// The PKCE verifier (authorization_code).
    pub code_verifier: Option<String>,
    /// The refresh token (refresh_token).
    pub refresh_token: Option<String>,
    /// RFC 8707, for the person's assistants: if given, `<public url>/mcp`.
    pub resource: Option<String>,
    #[serde(flatten)]
    pub auth: ClientAuthParams,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// An RFC 9068 JWT (`typ: at+jwt`, ES256).
    pub access_token: String,
    /// `Bearer`, or `DPoP` for a token bound to the key of the request's DPoP proof.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// For the authorization-code and refresh grants; rotates on every use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The grant the token carries (RFC 9396).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub authorization_details: Option<Vec<Value>>,
}

/// The token endpoint: the client-credentials grant, for brands with an agreement on the terms
/// in force.
#[utoipa::path(post, path = "/oauth/token", tag = "oauth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    params(("DPoP" = Option<String>, Header, description = "RFC 9449 proof (typ dpop+jwt, ES256, htm POST, htu the token endpoint): binds the token to its key (`token_type: DPoP`); required for clients registered with `dpop_bound_access_tokens`")),
    responses((status = 200, body = TokenResponse),
              (status = 400, body = OAuthErrorBody, description = "`unauthorized_client` until the terms in force are accepted; `invalid_scope`, `unsupported_grant_type`; `invalid_client` for a client that authenticated with an assertion; `invalid_dpop_proof`; `use_dpop_nonce` with the nonce to use in `DPoP-Nonce`"),
              (status = 401, body = OAuthErrorBody, description = "`invalid_client` for a client that used HTTP Basic (or sent no authentication), with `WWW-Authenticate: Basic`; a client that authenticated with an assertion gets `invalid_client` as a 400"),
              (status = 429, body = OAuthErrorBody, description = "`temporarily_unavailable`: too many failed client authentications from this address, or too many tokens for this brand (60 at once, then one per 10 s); `Retry-After` says when to try again")),
    security(("client_secret_basic" = []), ("private_key_jwt" = [])))]
#[instrument(skip_all)]
pub async fn token(
    State(state): State<AppState>,
    ClientIp(from): ClientIp,
    headers: HeaderMap,
    request: Result<Form<TokenRequest>, FormRejection>,
) -> Result<Response, OAuthError> {
    let request = form(request)?;
    // The person's own assistant: a public client, by client_id alone.
    if let Some(answer) = super::agent_oauth::token(&state, &headers, &request).await {
        return answer;
    }
    let basic = basic_challenge(&request.auth);
    let credentials =
        client_credentials(&headers, request.auth).map_err(|e| e.for_client_auth(basic))?;
    let grant_type = request
        .grant_type
        .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    if !GRANT_TYPES.contains(&grant_type.as_str()) {
        return Err(OAuthError::new(
            400,
            "unsupported_grant_type",
            format!(
                "grant_type {grant_type} is not supported; use one of {}",
                GRANT_TYPES.join(", ")
            ),
        ));
    }
    let (open, brand) = state
        .vault
        .authenticate_client_from::<OAuthError, _>(from, credentials, |issuer| {
            audiences(issuer, "/oauth/token")
        })
        .await
        .map_err(|e| e.for_client_auth(basic))?;
    open.spend_token_budget(&brand)?;
    if !brand.grant_types.contains(&grant_type) {
        return Err(OAuthError::new(
            400,
            "unauthorized_client",
            format!("this client did not register the {grant_type} grant"),
        ));
    }
    // RFC 9449: a proof binds the token to the client's key; checked before a code is spent.
    let proof = match headers
        .get_all("dpop")
        .iter()
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => None,
        [one] => Some(one.to_str().map_err(|_| {
            OAuthError::new(400, "invalid_dpop_proof", "the DPoP header is not text")
        })?),
        _ => {
            return Err(OAuthError::new(
                400,
                "invalid_dpop_proof",
                "send exactly one DPoP header",
            ));
        }
    };
    let jkt = open.token_request_key(&brand, proof)?;
    let issued = match grant_type.as_str() {
        "authorization_code" => {
            let code = request
                .code
                .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
            open.exchange_code(
                &brand,
                &code,
                request.redirect_uri.as_deref(),
                request.code_verifier.as_deref(),
            )
            .await?
        }
        "refresh_token" => {
            let refresh = request
                .refresh_token
                .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
            open.refresh(&brand, &refresh).await?
        }
        _ => match request.authorization_details.as_deref() {
            Some(details) => {
                open.token_for_named_grant(&brand, request.scope.as_deref(), details)
                    .await?
            }
            None => {
                open.issue_token(&brand, request.scope.as_deref(), None)
                    .await?
            }
        },
    };
    let (issued, token_type) = match jkt {
        Some(jkt) => (open.bind_token(issued, jkt)?, "DPoP"),
        None => (issued, "Bearer"),
    };
    let body = TokenResponse {
        access_token: issued.access_token,
        token_type,
        expires_in: issued.expires_in,
        scope: issued.scope,
        refresh_token: issued.refresh_token,
        authorization_details: issued.authorization_details,
    };
    Ok((no_store(), axum::Json(body)).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenParam {
    pub token: Option<String>,
    pub token_type_hint: Option<String>,
    #[serde(flatten)]
    pub auth: ClientAuthParams,
}

/// What revocation and introspection share: the form, the brand's authentication, the token.
async fn token_request(
    state: &AppState,
    from: std::net::IpAddr,
    headers: &HeaderMap,
    request: Result<Form<TokenParam>, FormRejection>,
    endpoint: &str,
) -> Result<(Arc<OpenVault>, Brand, String), OAuthError> {
    let request = form(request)?;
    let basic = basic_challenge(&request.auth);
    let credentials =
        client_credentials(headers, request.auth).map_err(|e| e.for_client_auth(basic))?;
    let token = request
        .token
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let (open, brand) = state
        .vault
        .authenticate_client_from::<OAuthError, _>(from, credentials, |issuer| {
            audiences(issuer, endpoint)
        })
        .await
        .map_err(|e| e.for_client_auth(basic))?;
    Ok((open, brand, token))
}

/// Token revocation (RFC 7009). Answers 200 whether or not the token was known.
#[utoipa::path(post, path = "/oauth/revoke", tag = "oauth",
    request_body(content = TokenParam, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200), (status = 400, body = OAuthErrorBody), (status = 401, body = OAuthErrorBody, description = "`invalid_client` for a client that used HTTP Basic (or sent no authentication), with `WWW-Authenticate: Basic`; a client that authenticated with an assertion gets `invalid_client` as a 400"),
              (status = 429, body = OAuthErrorBody, description = "`temporarily_unavailable`: too many failed client authentications from this address")),
    security(("client_secret_basic" = []), ("private_key_jwt" = [])))]
#[instrument(skip_all)]
pub async fn revoke(
    State(state): State<AppState>,
    ClientIp(from): ClientIp,
    headers: HeaderMap,
    request: Result<Form<TokenParam>, FormRejection>,
) -> Result<StatusCode, OAuthError> {
    let request = form(request)?;
    // The person's own assistant: a public client, by client_id alone.
    if let Some(done) = super::agent_oauth::revoke(&state, &headers, &request).await {
        return done.map(|()| StatusCode::OK);
    }
    let (open, brand, token) =
        token_request(&state, from, &headers, Ok(Form(request)), "/oauth/revoke").await?;
    if token.starts_with(crate::service::authorize::REFRESH_TOKEN_PREFIX) {
        open.revoke_refresh_token(&brand, &token).await?;
    } else {
        open.revoke_token(&brand, &token).await?;
    }
    Ok(StatusCode::OK)
}

/// Token introspection (RFC 7662), for the brand's own tokens; any other token is inactive.
#[utoipa::path(post, path = "/oauth/introspect", tag = "oauth",
    request_body(content = TokenParam, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = Object, description = "`{\"active\": false}` or the token's claims with `active: true`"),
              (status = 400, body = OAuthErrorBody, description = "`invalid_request`: no `token`, or a malformed form or client authentication; `invalid_client` for a client that authenticated with an assertion"),
              (status = 401, body = OAuthErrorBody, description = "`invalid_client` for a client that used HTTP Basic (or sent no authentication), with `WWW-Authenticate: Basic`; a client that authenticated with an assertion gets `invalid_client` as a 400"),
              (status = 429, body = OAuthErrorBody, description = "`temporarily_unavailable`: too many failed client authentications from this address")),
    security(("client_secret_basic" = []), ("private_key_jwt" = [])))]
#[instrument(skip_all)]
pub async fn introspect(
    State(state): State<AppState>,
    ClientIp(from): ClientIp,
    headers: HeaderMap,
    request: Result<Form<TokenParam>, FormRejection>,
) -> Result<Response, OAuthError> {
    let (open, brand, token) =
        token_request(&state, from, &headers, request, "/oauth/introspect").await?;
    Ok((
        no_store(),
        axum::Json(open.introspect_token(&brand, &token)),
    )
        .into_response())
}

/// The authorization endpoint (RFC 6749 §4.1.1) with PKCE (S256 only) and RFC 9396
/// `authorization_details`. A valid request becomes a consent request, and the browser goes to
/// the consent page, where the person (logged in) decides. An assistant (a client registered
/// without an invitation) asks with `scope` instead, and goes to `/consent?agent=...`.
#[utoipa::path(get, path = "/oauth/authorize", tag = "oauth",
    params(
        ("response_type" = String, Query, description = "`code`"),
        ("client_id" = String, Query),
        ("redirect_uri" = String, Query, description = "exactly one of the registered redirect URIs"),
        ("state" = Option<String>, Query),
        ("code_challenge" = String, Query, description = "base64url(SHA-256(code_verifier))"),
        ("code_challenge_method" = String, Query, description = "`S256`"),
        ("authorization_details" = String, Query, description = "Brands (an assistant sends none): JSON: `[{\"type\": \"urn:vrm-vault:data-access:v1\", \"fields\": [...], \"actions\": [\"read\"], \"purpose\": \"dpv:...\", \"expires_in\": seconds}]`"),
        ("resource" = Option<String>, Query, description = "RFC 8707; if given, the brand API (`vrm_resource`); for the person's assistant, `<public url>/mcp` (anything else: `invalid_target`)"),
        ("scope" = Option<String>, Query, description = "For the person's assistant: agent scopes (default: all it registered); the person may narrow them"),
        ("request_uri" = Option<String>, Query, description = "RFC 9126: the `request_uri` the PAR endpoint returned, with `client_id` and nothing else; used once"),
    ),
    responses((status = 303, description = "to the consent page, or back to the brand with an error"),
              (status = 400, body = OAuthErrorBody, description = "unknown client or redirect URI: no redirect")))]
#[instrument(skip_all)]
pub async fn authorize(
    State(state): State<AppState>,
    ClientIp(from): ClientIp,
    params: Result<axum::extract::Query<AuthorizeParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let params = match params {
        Ok(axum::extract::Query(p)) => p,
        Err(e) => {
            return OAuthError::invalid_request(format!(
                "the query is malformed: {}",
                e.body_text()
            ))
            .into_response();
        }
    };
    let open = match state.vault.open() {
        Ok(open) => open,
        Err(e) => return OAuthError::from(e).into_response(),
    };
    // The person's own assistant asks differently (scopes, not data grants): `agent_oauth`.
    if let Some(answer) = super::agent_oauth::authorize(&open, &params, from) {
        return answer;
    }
    match open.authorize(params, from) {
        Ok(request_id) => see_other(&format!("/consent?request={request_id}")),
        Err(e) => match e.redirect(open.issuer()) {
            Some(to) => see_other(&to),
            None => {
                let AuthorizeError::NoRedirect(reason) = e else {
                    return OAuthError::invalid_request("bad request").into_response();
                };
                OAuthError::invalid_request(reason).into_response()
            }
        },
    }
}

pub(super) fn see_other(to: &str) -> Response {
    match axum::http::HeaderValue::from_str(to) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(_) => OAuthError::invalid_request("the redirect URI cannot be used").into_response(),
    }
}
