//! The whole vault at once: export, backup, restore, and deleting everything.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tracing::instrument;
use utoipa::ToSchema;

use super::AppState;
use super::auth::{LoginClient, OwnerRefusals, OwnerSession};
use super::error::{ErrorBody, Json, JsonBodyRefusals};
use super::extract::Unsealed;
use super::owner::with_cookie;
use crate::error::AppError;
use crate::secret::Secret;
use crate::service::backup::{self, BackupSummary, RestoreCredential};
use crate::service::erase::ErasureReceipt;
use crate::service::export;

/// Size of the pieces a streamed download is sent in.
const CHUNK_BYTES: usize = 64 * 1024;
/// Pieces queued between the thread reading the store and the connection.
const CHUNKS_IN_FLIGHT: usize = 4;
/// The largest backup a restore accepts over HTTP (larger ones: `vrm-vault restore`).
pub const MAX_RESTORE_BYTES: u64 = 4 << 30;

/// A `std::io::Write` that hands what is written to an HTTP body in [`CHUNK_BYTES`] pieces,
/// waiting while the client is slower than the store (so memory stays at a few pieces).
struct ChunkSender {
    buffer: Vec<u8>,
    chunks: mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl ChunkSender {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        self.chunks
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::other("the client went away"))
    }
}

impl std::io::Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Runs `produce` on a blocking thread and streams what it writes as the response body. A failure
/// midway ends the body with an error, so the client sees a broken transfer, never a short file
/// that looks whole.
fn streamed(
    produce: impl FnOnce(&mut ChunkSender) -> Result<(), AppError> + Send + 'static,
) -> Body {
    let (chunks, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut sender = ChunkSender {
            buffer: Vec::with_capacity(CHUNK_BYTES),
            chunks: chunks.clone(),
        };
        if let Err(e) = produce(&mut sender)
            .and_then(|()| sender.send().map_err(|e| AppError::internal("sending", e)))
        {
            tracing::error!(error = %e, "a streamed download failed midway");
            let _ = chunks.blocking_send(Err(std::io::Error::other("the download failed")));
        }
    });
    Body::from_stream(futures_util::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|chunk| (chunk, receiver)) },
    ))
}

fn attachment(name: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

fn dated(now: OffsetDateTime, stem: &str, extension: &str) -> String {
    format!(
        "{stem}-{:04}-{:02}-{:02}.{extension}",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}

/// Everything, as one JSON document readable without the vault (GDPR Art. 20): records, terms
/// and their history, brands, agreements with their receipts, grants, intents, offers,
/// subscriptions and the audit log with its chain. Streamed; its shape is the schema at
/// `/api/v1/export/schema`.
#[utoipa::path(get, path = "/api/v1/export", tag = "vault",
    responses(OwnerRefusals, (status = 200, description = "The export (application/json), streamed",
               content_type = "application/json")),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn export(
    _session: OwnerSession,
    Unsealed(open): Unsealed,
) -> Result<Response, AppError> {
    let store = open.begin_export().await?;
    let now = open.clock_now();
    let body = streamed(move |out| export::write_export(&store, now, out).map(|_| ()));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::CONTENT_DISPOSITION,
                attachment(&dated(now, "vrm-vault-export", "json")),
            ),
        ],
        body,
    )
        .into_response())
}

/// The JSON Schema (2020-12) of the export.
#[utoipa::path(get, path = "/api/v1/export/schema", tag = "vault",
    responses((status = 200, description = "JSON Schema", content_type = "application/schema+json")))]
pub async fn export_schema() -> Response {
    (
        [(header::CONTENT_TYPE, "application/schema+json")],
        export::SCHEMA,
    )
        .into_response()
}

/// An encrypted backup of the whole vault, made while it runs: the key file (the master key
/// wrapped by the passphrase and the recovery key) and every stored value still sealed. Restore
/// it into an empty data directory with `POST /api/v1/restore` or `vrm-vault restore`.
#[utoipa::path(get, path = "/api/v1/backup", tag = "vault",
    responses(OwnerRefusals, (status = 200, description = "The backup (application/octet-stream)",
               content_type = "application/octet-stream")),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn backup(
    State(state): State<AppState>,
    _session: OwnerSession,
    Unsealed(open): Unsealed,
) -> Result<Response, AppError> {
    let path = backup::temporary_backup_path(&state.vault.settings().data_dir)?;
    let summary = match open.backup_to(path.clone()).await {
        Ok(summary) => summary,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    let now = open.clock_now();
    let body = streamed(move |out| {
        let opened = std::fs::File::open(&path);
        // Unlinked at once: the open file is gone from the directory whatever happens next.
        let _ = std::fs::remove_file(&path);
        opened
            .and_then(|mut file| std::io::copy(&mut file, out))
            .map(|_| ())
            .map_err(|e| AppError::internal("sending the backup", e))
    });
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (
                header::CONTENT_DISPOSITION,
                attachment(&dated(now, "vrm-vault", "vrmbackup")),
            ),
            (
                axum::http::HeaderName::from_static("vrm-backup-entries"),
                HeaderValue::from(summary.entries),
            ),
        ],
        body,
    )
        .into_response())
}

/// The form of `POST /api/v1/restore` (multipart/form-data): for the OpenAPI document only, the
/// handler reads the parts as they stream in.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct RestoreForm {
    /// The backup file.
    #[schema(format = Binary, value_type = String)]
    backup: Vec<u8>,
    /// The passphrase the vault had when the backup was made.
    passphrase: Option<String>,
    /// Or the recovery key, with `new_passphrase`.
    recovery_key: Option<String>,
    new_passphrase: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RestoreResponse {
    pub backup: BackupSummary,
    pub token: String,
    pub csrf_token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Restores a backup (setup mode only, that is into an empty vault). Opened with the passphrase
/// the vault had when the backup was made, or with the recovery key and a new passphrase; the
/// owner is logged in by the answer.
#[utoipa::path(post, path = "/api/v1/restore", tag = "vault",
    request_body(content = RestoreForm, content_type = "multipart/form-data"),
    responses((status = 201, body = RestoreResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[instrument(skip_all)]
pub async fn restore(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    if state.vault.phase_name() != "setup" {
        // Refused before the upload is read: read (a bounded part of) it anyway, so the client,
        // still sending, sees the answer rather than a reset connection.
        // The gate then closes the connection: whatever is left of the upload is not read.
        drain(body, REFUSAL_DRAIN_BYTES).await;
        return AppError::Conflict(
            "a vault already exists: a backup is restored into an empty vault (delete everything first)",
        )
        .into_response();
    }
    match restore_upload(&state, &headers, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// How much of a refused upload is read before answering.
const REFUSAL_DRAIN_BYTES: usize = 8 << 20;

/// Reads and drops up to `limit` bytes of a body.
async fn drain(body: Body, limit: usize) {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut read = 0;
    while read < limit {
        match stream.next().await {
            Some(Ok(chunk)) => read += chunk.len(),
            _ => break,
        }
    }
}

async fn restore_upload(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok())
        .ok_or_else(|| AppError::BadRequest("send the backup as multipart/form-data".into()))?;
    let data_dir = state.vault.settings().data_dir.clone();
    crate::service::create_private_dir(&data_dir)?;
    let upload = backup::temporary_backup_path(&data_dir)?;
    let received = receive_restore_form(body, boundary, &upload).await;
    let outcome = match received {
        Ok(credential) => state.vault.restore(upload.clone(), credential).await,
        Err(e) => Err(e),
    };
    let _ = tokio::fs::remove_file(&upload).await;
    let (summary, session) = outcome?;
    let body = Json(RestoreResponse {
        backup: summary,
        token: session.token.expose().to_owned(),
        csrf_token: session.info.csrf_token.clone(),
        expires_at: session.info.expires_at,
    });
    Ok(with_cookie(state, &session, body))
}

/// Reads the restore form: the backup goes to `upload`, the credential is returned.
async fn receive_restore_form(
    body: Body,
    boundary: String,
    upload: &std::path::Path,
) -> Result<RestoreCredential, AppError> {
    use tokio::io::AsyncWriteExt;
    let constraints = multer::Constraints::new()
        .allowed_fields(vec![
            "backup",
            "passphrase",
            "recovery_key",
            "new_passphrase",
        ])
        .size_limit(
            multer::SizeLimit::new()
                .whole_stream(MAX_RESTORE_BYTES + 64 * 1024)
                .for_field("passphrase", 4096)
                .for_field("recovery_key", 4096)
                .for_field("new_passphrase", 4096),
        );
    let form_error = |e: multer::Error| match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            AppError::PayloadTooLarge
        }
        other => AppError::BadRequest(format!("the restore form is malformed: {other}")),
    };
    let mut form =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let (mut passphrase, mut recovery_key, mut new_passphrase) = (None, None, None);
    let mut got_backup = false;
    while let Some(mut field) = form.next_field().await.map_err(form_error)? {
        match field.name() {
            Some("backup") => {
                let mut file = tokio::fs::File::from_std(
                    crate::files::create(upload)
                        .map_err(|e| AppError::internal("storing the upload", e))?,
                );
                while let Some(chunk) = field.chunk().await.map_err(form_error)? {
                    file.write_all(&chunk)
                        .await
                        .map_err(|e| AppError::internal("storing the upload", e))?;
                }
                file.flush()
                    .await
                    .map_err(|e| AppError::internal("storing the upload", e))?;
                got_backup = true;
            }
            Some(name) => {
                let name = name.to_owned();
                let text = Secret::new(field.text().await.map_err(form_error)?.trim_end());
                match name.as_str() {
                    "passphrase" => passphrase = Some(text),
                    "recovery_key" => recovery_key = Some(text),
                    _ => new_passphrase = Some(text),
                }
            }
            None => {}
        }
    }
    if !got_backup {
        return Err(AppError::BadRequest("the form has no `backup` file".into()));
    }
    match (passphrase, recovery_key, new_passphrase) {
        (Some(passphrase), None, None) => Ok(RestoreCredential::Passphrase(passphrase)),
        (None, Some(recovery_key), Some(new_passphrase)) => Ok(RestoreCredential::RecoveryKey {
            recovery_key,
            new_passphrase,
        }),
        _ => Err(AppError::BadRequest(
            "send either `passphrase`, or `recovery_key` and `new_passphrase`".into(),
        )),
    }
}

/// The confirmation of `DELETE /api/v1/vault`.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteVault {
    /// The owner's passphrase.
    pub passphrase: Secret,
    /// Exactly `delete everything`.
    pub confirm: String,
}

/// Deletes everything, for real: every grant and token is revoked and every brand suspended;
/// brands with a webhook get a signed CloudEvents erasure request (`vrm.erasure.requested.v1`,
/// best effort within a few seconds); the keys are destroyed, which leaves nothing on disk
/// readable, and the store removed. Answers with the final signed receipt; the vault is then in
/// setup mode.
#[utoipa::path(delete, path = "/api/v1/vault", tag = "vault", request_body = DeleteVault,
    responses(OwnerRefusals, JsonBodyRefusals, (status = 200, body = ErasureReceipt),
              (status = 401, body = ErrorBody, description = "`invalid_credentials`: not the passphrase (or no session)"),
              (status = 422, body = ErrorBody, description = "`confirmation_required`"),
              (status = 429, body = ErrorBody, description = "`too_many_requests`: too many wrong passphrases", headers(("Retry-After" = u64, description = "Seconds to wait")))),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn delete_vault(
    State(state): State<AppState>,
    LoginClient(from): LoginClient,
    _session: OwnerSession,
    Json(request): Json<DeleteVault>,
) -> Result<Response, AppError> {
    let receipt = state
        .vault
        .delete_everything(request.passphrase, &request.confirm, from)
        .await?;
    let mut response = Json(receipt).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        super::owner::session_cookie(&state, "", 0),
    );
    Ok(response)
}
