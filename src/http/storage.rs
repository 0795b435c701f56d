//! The owner's view of what uses the disk: `GET /api/v1/storage`.

use axum::extract::State;
use tracing::instrument;

use super::AppState;
use super::auth::{OwnerRefusals, OwnerSession};
use super::error::Json;
use super::extract::Unsealed;
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
