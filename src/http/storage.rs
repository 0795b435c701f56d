//! The owner's view of what uses the disk (`GET /api/v1/storage`) and the audit log's retention
//! (`/api/v1/audit/retention`).

use axum::extract::State;
use tracing::instrument;

use super::AppState;
use super::auth::{OwnerRefusals, OwnerSession};
use super::error::{ErrorBody, Json, JsonBodyRefusals};
use super::extract::Unsealed;
use crate::domain::retention::Retention;
use crate::error::AppError;
use crate::service::storage::StorageReport;

/// What uses the vault's disk: each part's live size (records, the audit log, tokens, the
/// webhook outbox…), the store's files, the whole data directory, the free space and the reserve.
#[utoipa::path(get, path = "/api/v1/storage", tag = "vault",
    responses(OwnerRefusals, (status = 200, body = StorageReport)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn storage(
    State(state): State<AppState>,
    _session: OwnerSession,
    Unsealed(open): Unsealed,
) -> Result<Json<StorageReport>, AppError> {
    let data_dir = state.vault.settings().data_dir.clone();
    Ok(Json(open.storage_report(&data_dir).await?))
}

/// How long the audit log keeps its entries.
#[utoipa::path(get, path = "/api/v1/audit/retention", tag = "audit",
    responses(OwnerRefusals, (status = 200, body = Retention)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn get_retention(
    _session: OwnerSession,
    Unsealed(open): Unsealed,
) -> Result<Json<Retention>, AppError> {
    Ok(Json(open.audit_retention()?))
}

/// Sets how long the audit log keeps its entries: older ones, and the oldest beyond the count,
/// are pruned in the background, leaving a signed checkpoint that `audit verify` starts from.
#[utoipa::path(put, path = "/api/v1/audit/retention", tag = "audit",
    request_body = Retention,
    responses(OwnerRefusals, JsonBodyRefusals, (status = 200, body = Retention),
              (status = 422, body = ErrorBody, description = "`invalid_retention`, naming `days` or `max_entries` in `at`")),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn put_retention(
    _session: OwnerSession,
    Unsealed(open): Unsealed,
    Json(policy): Json<Retention>,
) -> Result<Json<Retention>, AppError> {
    Ok(Json(open.set_audit_retention(policy).await?))
}
