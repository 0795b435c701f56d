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
use crate::service::dpop::ProofRefusal;
use crate::service::tokens::BrandAccess;

/// A brand call with a valid access token: every check of [`crate::service::OpenVault::verify_access_token`] passed.
#[derive(Debug)]
pub struct BrandToken(pub BrandAccess);

impl FromRequestParts<AppState> for BrandToken {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if access_token(&parts.headers).is_none() {
            return Err(AppError::InvalidToken(
                if parts.headers.contains_key(header::AUTHORIZATION) {
                    TokenRefusal::NotBearer
                } else {
                    TokenRefusal::Missing
                },
            ));
        }
        let open = state.vault.open()?;
        brand_access(
            &open,
            &parts.headers,
            parts.method.as_str(),
            parts.uri.path(),
        )
        .map(BrandToken)
    }
}

/// The access token of a request: `Authorization: Bearer <token>`, or `Authorization: DPoP
/// <token>` (RFC 9449 §7.1), with whether it came as DPoP.
pub fn access_token(headers: &HeaderMap) -> Option<(&str, bool)> {
    if let Some(token) = bearer(headers) {
        return Some((token, false));
    }
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("dpop")
        .then_some((token.trim(), true))
}

/// Every check of a brand call's token: the token's own ([`OpenVault::verify_access_token`]),
/// and for a DPoP-bound token the proof (RFC 9449 §7): sent with the DPoP scheme, signed by the
/// key the token is bound to, for this method and URL, with the token's hash. A bound token
/// sent as a bearer token is refused.
pub(crate) fn brand_access(
    open: &crate::service::OpenVault,
    headers: &HeaderMap,
    method: &str,
    path: &str,
) -> Result<BrandAccess, AppError> {
    checked_access(open, headers, (method, path), false)
}

/// [`brand_access`], or, with `stream`, the checks of a call that reads the brand's own event
/// stream ([`crate::service::OpenVault::verify_stream_token`]: a token issued under older terms
/// still reads the news that the terms changed).
fn checked_access(
    open: &crate::service::OpenVault,
    headers: &HeaderMap,
    (method, path): (&str, &str),
    stream: bool,
) -> Result<BrandAccess, AppError> {
    let (token, as_dpop) =
        access_token(headers).ok_or(AppError::InvalidToken(TokenRefusal::Missing))?;
    let access = if stream {
        open.verify_stream_token(token)?
    } else {
        open.verify_access_token(token)?
    };
    let Some(cnf) = &access.claims.cnf else {
        if as_dpop {
            return Err(AppError::InvalidToken(TokenRefusal::DpopProof(
                "this token is not DPoP-bound: send it as Authorization: Bearer".into(),
            )));
        }
        return Ok(access);
    };
    if !as_dpop {
        return Err(AppError::InvalidToken(TokenRefusal::DpopBound));
    }
    let proofs: Vec<_> = headers.get_all("dpop").iter().collect();
    let [proof] = proofs.as_slice() else {
        return Err(AppError::InvalidToken(TokenRefusal::DpopProof(
            "send exactly one DPoP header".into(),
        )));
    };
    let proof = proof.to_str().map_err(|_| {
        AppError::InvalidToken(TokenRefusal::DpopProof(
            "the DPoP header is not text".into(),
        ))
    })?;
    let url = format!("{}{path}", open.issuer());
    let jkt = open
        .check_dpop(proof, method, &url, Some(token))
        .map_err(|refusal| {
            AppError::InvalidToken(match refusal {
                ProofRefusal::Invalid(reason) => TokenRefusal::DpopProof(reason),
                ProofRefusal::UseNonce(nonce) => TokenRefusal::UseDpopNonce(nonce),
            })
        })?;
    if jkt != cnf.jkt {
        return Err(AppError::InvalidToken(TokenRefusal::DpopProof(
            "the proof is signed by another key than the token is bound to".into(),
        )));
    }
    Ok(access)
}

/// A call that reads the brand's own event stream (polling, Server-Sent Events): a valid access
/// token, also one issued under the brand's agreement on older terms, so that the brand can read
/// that the terms changed ([`crate::service::OpenVault::verify_stream_token`]).
#[derive(Debug)]
pub struct StreamToken(pub BrandToken);

impl FromRequestParts<AppState> for StreamToken {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let open = state.vault.open()?;
        checked_access(
            &open,
            &parts.headers,
            (parts.method.as_str(), parts.uri.path()),
            true,
        )
        .map(|access| StreamToken(BrandToken(access)))
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
    (method, path): (&str, &str),
) -> Result<Brand, AppError> {
    let open = state.vault.open()?;
    if access_token(headers).is_some() {
        let access = BrandToken(brand_access(&open, headers, method, path)?);
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
        ("GET", &format!("/brand/v1/agreements/{id}")),
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
    let brand = caller(
        &state,
        from,
        &headers,
        None,
        "/brand/v1/agreements",
        ("DELETE", &format!("/brand/v1/agreements/{id}")),
    )
    .await?;
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
