//! The owner's side of brands under `/api/v1`: invitations, registered brands, agreements and
//! the token-signing key.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::instrument;
use utoipa::ToSchema;

use super::AppState;
use super::auth::{OwnerRefusals, OwnerSession};
use super::error::{BadParameter, ErrorBody, Json, JsonBodyRefusals, Path};
use super::extract::Unsealed;
use crate::domain::brands::{
    Agreement, AgreementStatus, Brand, BrandStatus, Invitation, InvitationStatus,
};
use crate::error::AppError;
use crate::service::OpenVault;

pub(crate) fn status_name(status: AgreementStatus) -> String {
    match status {
        AgreementStatus::Accepted => "accepted",
        AgreementStatus::Withdrawn => "withdrawn",
        AgreementStatus::Terminated => "terminated",
    }
    .to_owned()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationRequest {
    /// How many brands may register with it (1–100, default 1).
    pub max_uses: Option<u32>,
    /// Hours until it expires (1–720, default 72).
    pub expires_in_hours: Option<i64>,
    /// A label for the owner, e.g. the brand it is meant for.
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub max_uses: u32,
    pub uses: u32,
    pub note: Option<String>,
    /// `active`, `spent` or `expired`.
    pub status: &'static str,
}

impl InvitationView {
    fn new(invitation: Invitation, now: OffsetDateTime) -> InvitationView {
        InvitationView {
            status: match invitation.status(now) {
                InvitationStatus::Active => "active",
                InvitationStatus::Spent => "spent",
                InvitationStatus::Expired => "expired",
            },
            id: invitation.id,
            created_at: invitation.created_at,
            expires_at: invitation.expires_at,
            max_uses: invitation.max_uses,
            uses: invitation.uses,
            note: invitation.note,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewInvitation {
    /// The initial access token for RFC 7591 registration; shown once, stored only hashed.
    #[schema(example = "vrmia_...")]
    pub initial_access_token: String,
    /// Where the brand registers with it.
    pub registration_endpoint: String,
    #[serde(flatten)]
    pub invitation: InvitationView,
}

/// Creates an invitation for a brand to register (RFC 7591 initial access token).
#[utoipa::path(post, path = "/api/v1/invitations", tag = "brands", request_body = InvitationRequest,
    responses(OwnerRefusals, JsonBodyRefusals, (status = 201, body = NewInvitation), (status = 422, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn create_invitation(
    State(state): State<AppState>,
    _session: OwnerSession,
    Unsealed(open): Unsealed,
    Json(request): Json<InvitationRequest>,
) -> Result<(StatusCode, Json<NewInvitation>), AppError> {
    let (invitation, token) = open
        .create_invitation(
            request.max_uses.unwrap_or(1),
            request.expires_in_hours.unwrap_or(72),
            request.note,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewInvitation {
            initial_access_token: token.expose().to_owned(),
            registration_endpoint: format!("{}/oauth/register", open.issuer()),
            invitation: InvitationView::new(invitation, state.vault.now()),
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationList {
    /// Newest first.
    pub invitations: Vec<InvitationView>,
}

/// Every invitation, newest first.
#[utoipa::path(get, path = "/api/v1/invitations", tag = "brands",
    responses(OwnerRefusals, (status = 200, body = InvitationList)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn list_invitations(
    State(state): State<AppState>,
    _session: OwnerSession,
    Unsealed(open): Unsealed,
) -> Result<Json<InvitationList>, AppError> {
    let now = state.vault.now();
    let invitations = open
        .list_invitations()?
        .into_iter()
        .map(|i| InvitationView::new(i, now))
        .collect();
    Ok(Json(InvitationList { invitations }))
}

/// Deletes an invitation: its token stops working at once.
#[utoipa::path(delete, path = "/api/v1/invitations/{id}", tag = "brands", params(("id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 204), (status = 404, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn delete_invitation(
    _session: OwnerSession,
    Path(id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<StatusCode, AppError> {
    open.delete_invitation(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgreementView {
    pub id: String,
    pub client_id: String,
    pub client_name: String,
    pub terms_version: u64,
    pub terms_hash: String,
    /// `accepted`, `withdrawn` or `terminated`.
    pub status: String,
    /// Whether it covers new deliveries: accepted, and on the terms in force.
    pub current: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub accepted_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
}

impl AgreementView {
    fn new(agreement: &Agreement, current_hash: &str) -> AgreementView {
        AgreementView {
            id: agreement.id.clone(),
            client_id: agreement.client_id.clone(),
            client_name: agreement.brand_name.clone(),
            terms_version: agreement.terms_version,
            terms_hash: agreement.terms_hash.clone(),
            status: status_name(agreement.status),
            current: agreement.is_current(current_hash),
            accepted_at: agreement.events.get(1).map(|e| e.at),
            ended_at: agreement.ended_at(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BrandView {
    pub client_id: String,
    pub client_name: String,
    pub client_uri: Option<String>,
    pub contacts: Vec<String>,
    /// `active` or `suspended`.
    pub status: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
    pub token_endpoint_auth_method: &'static str,
    pub scope: String,
    /// The brand's pairwise pseudonym for you: what it sees instead of any identifier of yours.
    pub pseudonym: String,
    /// Its latest agreement.
    pub agreement: Option<AgreementView>,
    /// How webhook deliveries to it are going, when it takes webhooks.
    pub delivery: Option<DeliveryView>,
    /// When it accepted older terms and has not accepted the ones in force yet.
    pub terms_update: Option<TermsUpdateView>,
    /// Suspended by the vault when it was restored from a backup, until you review and resume
    /// it.
    pub held_after_restore: bool,
}

/// A brand that has yet to accept the terms in force: it was told when they were published;
/// until it accepts, it gets nothing new and its grants are suspended.
#[derive(Debug, Serialize, ToSchema)]
pub struct TermsUpdateView {
    /// The version it accepted.
    pub accepted_version: u64,
    /// The version in force, which it has not accepted.
    pub current_version: u64,
    /// When the version in force was published (and the brand told).
    #[serde(with = "time::serde::rfc3339")]
    pub published_at: OffsetDateTime,
    /// Its grants waiting for its acceptance.
    pub suspended_grants: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// `ok`, `failing`, or `paused` (after repeated failures, until the brand updates its
    /// subscription; nothing is lost meanwhile).
    pub status: &'static str,
    /// Deliveries waiting.
    pub pending: usize,
    pub last_error: Option<String>,
}

fn brand_view(
    open: &OpenVault,
    brand: Brand,
    pending: &std::collections::HashMap<String, usize>,
) -> Result<BrandView, AppError> {
    let current = open.current_terms()?.version.hash.clone();
    let agreement = match &brand.agreement_id {
        Some(id) => open
            .agreement(id)
            .ok()
            .map(|a| AgreementView::new(&a, &current)),
        None => None,
    };
    let terms_update = match open.accepted_older_version(&brand)? {
        Some(accepted_version) => {
            let terms = open.current_terms()?;
            let suspended_grants = open
                .brand_grants(&brand.client_id)?
                .iter()
                .filter(|g| g.state == "suspended")
                .count();
            Some(TermsUpdateView {
                accepted_version,
                current_version: terms.version.version,
                published_at: terms.version.published_at,
                suspended_grants,
            })
        }
        None => None,
    };
    let delivery = match open.subscription(&brand.client_id)? {
        Some(sub) if sub.subscription.webhook_url.is_some() => Some(DeliveryView {
            status: match sub.delivery_status {
                crate::service::delivery::DeliveryStatus::Ok => "ok",
                crate::service::delivery::DeliveryStatus::Failing => "failing",
                crate::service::delivery::DeliveryStatus::Paused => "paused",
            },
            pending: pending.get(&brand.client_id).copied().unwrap_or(0),
            last_error: sub.last_error,
        }),
        _ => None,
    };
    Ok(BrandView {
        delivery,
        terms_update,
        held_after_restore: brand.held_after_restore,
        status: match brand.status {
            BrandStatus::Active => "active",
            BrandStatus::Suspended => "suspended",
        },
        token_endpoint_auth_method: brand.auth_method.as_str(),
        scope: brand.scope.join(" "),
        client_id: brand.client_id,
        client_name: brand.client_name,
        client_uri: brand.client_uri,
        contacts: brand.contacts,
        registered_at: brand.registered_at,
        pseudonym: brand.pseudonym,
        agreement,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BrandList {
    /// Newest first.
    pub brands: Vec<BrandView>,
}

/// Every registered brand, with its agreement.
#[utoipa::path(get, path = "/api/v1/brands", tag = "brands",
    responses(OwnerRefusals, (status = 200, body = BrandList)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn list_brands(
    _session: OwnerSession,
    Unsealed(open): Unsealed,
) -> Result<Json<BrandList>, AppError> {
    let pending = open.pending_deliveries()?;
    let brands = open
        .list_brands()?
        .into_iter()
        .map(|b| brand_view(&open, b, &pending))
        .collect::<Result<_, _>>()?;
    Ok(Json(BrandList { brands }))
}

/// One brand.
#[utoipa::path(get, path = "/api/v1/brands/{client_id}", tag = "brands", params(("client_id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 200, body = BrandView), (status = 404, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn get_brand(
    _session: OwnerSession,
    Path(client_id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<Json<BrandView>, AppError> {
    let brand = open.brand(&client_id)?;
    let pending = open.pending_deliveries()?;
    brand_view(&open, brand, &pending).map(Json)
}

/// Removes a brand: its agreement is terminated, its tokens stop working, its registration is
/// deleted. The person keeps the ended agreement and its receipt; `POST .../erase` deletes the
/// whole relationship instead. The brand needs a new invitation to come back.
#[utoipa::path(delete, path = "/api/v1/brands/{client_id}", tag = "brands", params(("client_id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 204), (status = 404, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn remove_brand(
    _session: OwnerSession,
    Path(client_id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<StatusCode, AppError> {
    open.remove_brand(&client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a brand's whole relationship with the person, for real: its registration,
/// agreements and their receipts, grants, refresh tokens, subscription, offers and event stream
/// are removed and made unreadable on disk (a key rotation); its tokens stop working. The audit
/// log keeps that the brand existed and was erased.
#[utoipa::path(post, path = "/api/v1/brands/{client_id}/erase", tag = "brands", params(("client_id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 204), (status = 404, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn erase_brand(
    _session: OwnerSession,
    Path(client_id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<StatusCode, AppError> {
    open.erase_brand(&client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Suspends a brand: its tokens and client authentication are refused until resumed.
#[utoipa::path(post, path = "/api/v1/brands/{client_id}/suspend", tag = "brands", params(("client_id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 200, body = BrandView), (status = 404, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn suspend_brand(
    _session: OwnerSession,
    Path(client_id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<Json<BrandView>, AppError> {
    set_status(&open, &client_id, BrandStatus::Suspended).await
}

async fn set_status(
    open: &OpenVault,
    client_id: &str,
    status: BrandStatus,
) -> Result<Json<BrandView>, AppError> {
    let brand = open.set_brand_status(client_id, status).await?;
    brand_view(open, brand, &open.pending_deliveries()?).map(Json)
}

/// Lets a suspended brand act again.
#[utoipa::path(post, path = "/api/v1/brands/{client_id}/resume", tag = "brands", params(("client_id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 200, body = BrandView), (status = 404, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn resume_brand(
    _session: OwnerSession,
    Path(client_id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<Json<BrandView>, AppError> {
    set_status(&open, &client_id, BrandStatus::Active).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgreementList {
    pub agreements: Vec<AgreementView>,
}

/// Every agreement, newest first, including ended ones.
#[utoipa::path(get, path = "/api/v1/agreements", tag = "brands",
    responses(OwnerRefusals, (status = 200, body = AgreementList)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn list_agreements(
    _session: OwnerSession,
    Unsealed(open): Unsealed,
) -> Result<Json<AgreementList>, AppError> {
    let current = open.current_terms()?.version.hash.clone();
    let agreements = open
        .list_agreements()?
        .iter()
        .map(|a| AgreementView::new(a, &current))
        .collect();
    Ok(Json(AgreementList { agreements }))
}

/// An agreement's signed receipt, byte for byte as the brand gets it from
/// `GET /brand/v1/agreements/{id}`: the RFC 8785 JSON of the receipt and a detached ES256 JWS.
#[utoipa::path(get, path = "/api/v1/agreements/{id}/receipt", tag = "brands", params(("id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 200, description = "The receipt (application/json)", content_type = "application/json"),
              (status = 404, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn agreement_receipt(
    _session: OwnerSession,
    Path(id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<axum::response::Response, AppError> {
    let agreement = open.agreement(&id)?;
    let name = format!(
        "attachment; filename=\"agreement-{}.json\"",
        agreement.id.replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
            ""
        )
    );
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/json".to_owned(),
            ),
            (axum::http::header::CONTENT_DISPOSITION, name),
        ],
        agreement.receipt,
    )
        .into_response())
}

/// Ends an agreement: the brand's tokens stop working and its receipt records the termination.
#[utoipa::path(delete, path = "/api/v1/agreements/{id}", tag = "brands", params(("id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 200, body = AgreementView), (status = 404, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn terminate_agreement(
    _session: OwnerSession,
    Path(id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<Json<AgreementView>, AppError> {
    let agreement = open.terminate_agreement(&id).await?;
    let current = open.current_terms()?.version.hash.clone();
    Ok(Json(AgreementView::new(&agreement, &current)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rotated {
    pub kid: String,
    pub previous_kid: String,
}

/// Makes a new token-signing key. The previous one stays in the JWKS until its tokens expire.
#[utoipa::path(post, path = "/api/v1/signing-keys/rotate", tag = "brands",
    responses(OwnerRefusals, (status = 200, body = Rotated)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn rotate_signing_key(
    _session: OwnerSession,
    Unsealed(open): Unsealed,
) -> Result<Json<Rotated>, AppError> {
    let (kid, previous_kid) = open.rotate_signing_key().await?;
    Ok(Json(Rotated { kid, previous_kid }))
}
