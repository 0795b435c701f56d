//! The brand API under `/brand/v1`: agreements and their receipts. Brands authenticate with an
//! access token (RFC 6750 bearer), or, where no token can exist yet (accepting the terms), with
//! their client authentication.

use axum::extract::{FromRequestParts, State};
use axum::http::{HeaderMap, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tracing::instrument;
use utoipa::{IntoResponses, ToSchema};

use super::AppState;
use super::auth::{ClientIp, bearer};
use super::error::{BadParameter, ErrorBody, Json, JsonBodyRefusals, Path};
use super::extract::Unsealed;
use super::oauth::{ClientAuthParams, audiences, client_credentials};
use crate::domain::brands::{Agreement, Brand};
use crate::error::{AppError, TokenRefusal};
use crate::service::tokens::BrandAccess;

/// A brand call with a valid access token: every check of [`crate::service::OpenVault::verify_access_token`] passed.
#[derive(Debug)]
pub struct BrandToken(pub BrandAccess);

impl FromRequestParts<AppState> for BrandToken {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            AppError::InvalidToken(if parts.headers.contains_key(header::AUTHORIZATION) {
                TokenRefusal::NotBearer
            } else {
                TokenRefusal::Missing
            })
        })?;
        let open = state.vault.open()?;
        open.verify_access_token(token).map(BrandToken)
    }
}

impl BrandToken {
    fn require(&self, scope: &'static str) -> Result<(), AppError> {
        if self.0.has_scope(scope) {
            Ok(())
        } else {
            Err(AppError::InsufficientScope(scope))
        }
    }
}

/// What a brand route refuses before its handler runs, for the OpenAPI document
/// (`responses(BrandRefusals, ...)` on every route that takes a [`BrandToken`]): the token
/// checks and the gate in front of every API route.
#[derive(Debug, IntoResponses)]
pub enum BrandRefusals {
    /// `invalid_token` (or `invalid_client` for client authentication): no access token, or one
    /// that is expired, revoked, or no longer backed by the brand's registration, agreement or
    /// grant. `WWW-Authenticate` names the error.
    #[response(status = 401)]
    InvalidToken(ErrorBody),
    /// `insufficient_scope`: the token lacks the scope this call needs (`WWW-Authenticate` names
    /// it).
    #[response(status = 403)]
    InsufficientScope(ErrorBody),
    /// `vault_sealed`, `vault_erasing` or `storage_unavailable`.
    #[response(status = 503, headers(("Retry-After" = u64, description = "Seconds to wait")))]
    Unavailable(ErrorBody),
}

/// The brand behind a request: by bearer token (with `scope`), or by HTTP Basic client
/// authentication (for a brand whose agreement ended, and so has no token).
pub(crate) async fn caller(
    state: &AppState,
    from: std::net::IpAddr,
    headers: &HeaderMap,
    scope: Option<&'static str>,
    endpoint: &str,
) -> Result<Brand, AppError> {
    let open = state.vault.open()?;
    if let Some(token) = bearer(headers) {
        let access = BrandToken(open.verify_access_token(token)?);
        if let Some(scope) = scope {
            access.require(scope)?;
        }
        return Ok(access.0.brand);
    }
    let credentials = client_credentials(headers, ClientAuthParams::default())?;
    let (_, brand) = state
        .vault
        .authenticate_client_from::<AppError, _>(from, credentials, |issuer| {
            audiences(issuer, endpoint)
        })
        .await?;
    Ok(brand)
}

/// A receipt, served as the exact bytes the vault signed and stored.
fn receipt(status: StatusCode, agreement: &Agreement) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        agreement.receipt.clone(),
    )
        .into_response()
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AcceptRequest {
    /// The `hash` of the terms in force, from `GET /brand/v1/terms`.
    #[schema(example = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    pub terms_hash: String,
    /// For `private_key_jwt` brands: the RFC 7523 assertion (aud: this endpoint's URL or the issuer).
    #[serde(flatten)]
    pub auth: ClientAuthParams,
}

/// The agreement receipt: RFC 8785 canonical JSON `{"receipt": {...}, "signature": "<JWS>"}`,
/// the JWS being ES256 over the canonical bytes of `receipt`, payload detached (`header..sig`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Receipt {
    #[schema(value_type = Object)]
    pub receipt: serde_json::Value,
    pub signature: String,
}

/// Accepts the terms in force, by hash. Authenticated with the brand's client authentication
/// (HTTP Basic, or `client_assertion_type` and `client_assertion` in the body), since no token
/// exists before an agreement. Accepting again while the agreement is current returns it (200).
#[utoipa::path(post, path = "/brand/v1/agreements", tag = "brands", request_body = AcceptRequest,
    responses(JsonBodyRefusals, (status = 201, body = Receipt), (status = 200, body = Receipt),
              (status = 401, body = ErrorBody, description = "`invalid_client`"),
              (status = 409, body = ErrorBody, description = "`terms_changed`: not the terms in force"),
              (status = 429, body = ErrorBody, description = "`too_many_requests`: too many failed client authentications from this address", headers(("Retry-After" = u64, description = "Seconds to wait")))),
    security(("client_secret_basic" = []), ("private_key_jwt" = [])))]
#[instrument(skip_all)]
pub async fn accept(
    State(state): State<AppState>,
    ClientIp(from): ClientIp,
    headers: HeaderMap,
    Json(request): Json<AcceptRequest>,
) -> Result<Response, AppError> {
    let credentials = client_credentials(&headers, request.auth)?;
    let (open, brand) = state
        .vault
        .authenticate_client_from::<AppError, _>(from, credentials, |issuer| {
            audiences(issuer, "/brand/v1/agreements")
        })
        .await?;
    let (agreement, created) = open.accept_terms(&brand, &request.terms_hash).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(receipt(status, &agreement))
}

/// One of the brand's agreements: the receipt, byte for byte as stored.
#[utoipa::path(get, path = "/brand/v1/agreements/{id}", tag = "brands",
    params(("id" = String, Path)),
    responses(BrandRefusals, BadParameter, (status = 200, body = Receipt), (status = 404, body = ErrorBody),
              (status = 429, body = ErrorBody, description = "`too_many_requests`: too many failed client authentications from this address", headers(("Retry-After" = u64, description = "Seconds to wait")))),
    security(("brand_token" = ["agreements:read"]), ("client_secret_basic" = [])))]
pub async fn get_agreement(
    State(state): State<AppState>,
    ClientIp(from): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<Response, AppError> {
    let brand = caller(
        &state,
        from,
        &headers,
        Some("agreements:read"),
        "/brand/v1/agreements",
    )
    .await?;
    let agreement = open.brand_agreement(&brand, &id)?;
    Ok(receipt(StatusCode::OK, &agreement))
}

/// The brand withdraws from an agreement; answers with the new receipt.
#[utoipa::path(delete, path = "/brand/v1/agreements/{id}", tag = "brands",
    params(("id" = String, Path)),
    responses(BrandRefusals, BadParameter, (status = 200, body = Receipt), (status = 404, body = ErrorBody),
              (status = 429, body = ErrorBody, description = "`too_many_requests`: too many failed client authentications from this address", headers(("Retry-After" = u64, description = "Seconds to wait")))),
    security(("brand_token" = []), ("client_secret_basic" = [])))]
#[instrument(skip_all)]
pub async fn withdraw(
    State(state): State<AppState>,
    ClientIp(from): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<Response, AppError> {
    // Withdrawing needs no particular scope: any valid token of the brand, or its credentials.
    let brand = caller(&state, from, &headers, None, "/brand/v1/agreements").await?;
    let agreement = open.withdraw_agreement(&brand, &id).await?;
    Ok(receipt(StatusCode::OK, &agreement))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BrandAgreementSummary {
    pub id: String,
    pub terms_version: u64,
    pub terms_hash: String,
    #[schema(example = "accepted")]
    pub status: String,
    /// Whether it covers new deliveries: accepted, on the terms in force.
    pub current: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BrandAgreementList {
    pub agreements: Vec<BrandAgreementSummary>,
}

/// The calling brand's agreements, newest first.
#[utoipa::path(get, path = "/brand/v1/agreements", tag = "brands",
    responses(BrandRefusals, (status = 200, body = BrandAgreementList),
              (status = 403, body = ErrorBody, description = "`insufficient_scope`")),
    security(("brand_token" = ["agreements:read"])))]
pub async fn list_agreements(
    token: BrandToken,
    Unsealed(open): Unsealed,
) -> Result<Json<BrandAgreementList>, AppError> {
    token.require("agreements:read")?;
    let current = open.current_terms()?.version.hash.clone();
    let agreements = open
        .list_agreements()?
        .into_iter()
        .filter(|a| a.client_id == token.0.brand.client_id)
        .map(|a| BrandAgreementSummary {
            current: a.is_current(&current),
            status: super::brands::status_name(a.status),
            id: a.id,
            terms_version: a.terms_version,
            terms_hash: a.terms_hash,
        })
        .collect();
    Ok(Json(BrandAgreementList { agreements }))
}
