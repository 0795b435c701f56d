//! `POST /api/v1/vault/lock`: the owner locks the running vault from the app.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::instrument;

use super::AppState;
use super::auth::{OwnerRefusals, OwnerSession};
use super::error::ErrorBody;
use super::owner::session_cookie;
use crate::error::AppError;

/// Locks the vault now, as a restart would: its keys leave memory, every session ends (this one
/// too: the cookie is cleared), brands get `503 sealed` and webhooks wait, until the passphrase
/// unlocks it again (`POST /api/v1/session`), without restarting the server.
#[utoipa::path(post, path = "/api/v1/vault/lock", tag = "vault",
    responses(OwnerRefusals, (status = 204, description = "Locked; log in with the passphrase to unlock"),
              (status = 503, body = ErrorBody, description = "`setup_required` or `erasing`: there is no open vault to lock")),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn lock_vault(
    State(state): State<AppState>,
    _session: OwnerSession,
) -> Result<Response, AppError> {
    state.vault.lock().await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    Ok(response)
}
