//! The owner's API under `/api/v1`: setup, sessions, records, audit. Handlers translate HTTP to
//! service calls and back; nothing here decides anything.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::instrument;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::{
    COOKIE, DEVICE_COOKIE, LoginClient, OwnerRefusals, OwnerSession, SECURE_COOKIE,
    SECURE_DEVICE_COOKIE,
};
use super::error::{BadParameter, ErrorBody, Json, JsonBodyRefusals, Query};
use super::extract::{RecordPathParam, Unsealed};
use crate::domain::activity::ActivityKind;
use crate::domain::audit::AuditEntry;
use crate::domain::records::{CATEGORIES, DataCategory, Precondition, Record};
use crate::error::AppError;
use crate::secret::Secret;
use crate::service::activity::{ActivityFilter, ActivityItem};
use crate::service::{Credential, NewSession};

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: answers as long as the process runs, sealed or not.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: 200 only when the vault is unsealed and can serve brands.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
pub async fn readyz(_unsealed: Unsealed) -> Result<Json<Health>, AppError> {
    Ok(Json(Health { status: "ready" }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `setup` (no vault yet), `sealed` (locked) or `unsealed`.
    #[schema(example = "sealed")]
    pub state: &'static str,
    pub version: &'static str,
}

/// What the web app needs to know to pick its first screen.
#[utoipa::path(get, path = "/api/v1/status", tag = "session",
    responses((status = 200, body = Status)))]
pub async fn status(State(state): State<AppState>) -> Json<Status> {
    Json(Status {
        state: state.vault.phase_name(),
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    /// At least 12 characters.
    pub passphrase: Secret,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SetupResponse {
    /// Shown once: opens the vault if the passphrase is forgotten.
    #[schema(example = "vrmrk-ABCD-EFGH-...")]
    pub recovery_key: String,
    pub token: String,
    pub csrf_token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

pub(crate) fn session_cookie(state: &AppState, token: &str, max_age: i64) -> HeaderValue {
    let (name, secure) = if state.secure_cookies {
        (SECURE_COOKIE, "; Secure")
    } else {
        (COOKIE, "")
    };
    HeaderValue::from_str(&format!(
        "{name}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub(crate) fn with_cookie(
    state: &AppState,
    session: &NewSession,
    body: impl IntoResponse,
) -> Response {
    let max_age = state.vault.settings().session_max.whole_seconds();
    let cookie = session_cookie(state, session.token.expose(), max_age);
    let mut response = (StatusCode::CREATED, body).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    add_device_cookie(state, &mut response);
    response
}

/// Adds a new device cookie to the answer that logged the owner in, so this browser or script
/// keeps a login back-off of its own (`domain::login`). Long-lived, HttpOnly, SameSite=Strict,
/// and Secure with the `__Host-` prefix over https. Failing to make one (the key file cannot be
/// written) costs only that: the login stands, and the failure is logged.
fn add_device_cookie(state: &AppState, response: &mut Response) {
    let cookie = match state.vault.issue_device_cookie() {
        Ok(cookie) => cookie,
        Err(e) => {
            tracing::warn!(error = %e, "no device cookie was issued");
            return;
        }
    };
    let (name, secure) = if state.secure_cookies {
        (SECURE_DEVICE_COOKIE, "; Secure")
    } else {
        (DEVICE_COOKIE, "")
    };
    let max_age = crate::service::DEVICE_COOKIE_LIFETIME.whole_seconds();
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{name}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}",
        cookie.expose()
    )) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Creates the vault (setup mode only). The owner is logged in by the answer.
#[utoipa::path(post, path = "/api/v1/setup", tag = "session", request_body = SetupRequest,
    responses(JsonBodyRefusals, (status = 201, body = SetupResponse),
              (status = 409, body = ErrorBody, description = "`conflict`: the vault exists"),
              (status = 422, body = ErrorBody, description = "`weak_passphrase`")))]
#[instrument(skip_all)]
pub async fn setup(
    State(state): State<AppState>,
    Json(request): Json<SetupRequest>,
) -> Result<Response, AppError> {
    let (recovery_key, session) = state.vault.setup(request.passphrase).await?;
    let body = Json(SetupResponse {
        recovery_key: recovery_key.expose().to_owned(),
        token: session.token.expose().to_owned(),
        csrf_token: session.info.csrf_token.clone(),
        expires_at: session.info.expires_at,
    });
    Ok(with_cookie(&state, &session, body))
}

/// Log in with the passphrase, or with the recovery key and a new passphrase.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub passphrase: Option<Secret>,
    pub recovery_key: Option<Secret>,
    /// Required with `recovery_key`: the passphrase from now on.
    pub new_passphrase: Option<Secret>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    /// Send as `Authorization: Bearer <token>` from scripts; the browser uses the cookie.
    pub token: String,
    /// Send as `X-CSRF-Token` with every state-changing request made with the cookie.
    pub csrf_token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Logs the owner in; unseals a sealed vault. Slow on purpose (Argon2id).
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = LoginRequest,
    responses(JsonBodyRefusals, (status = 201, body = SessionResponse),
              (status = 401, body = ErrorBody, description = "`invalid_credentials`"),
              (status = 422, body = ErrorBody, description = "`weak_passphrase`: the new passphrase that goes with a recovery key"),
              (status = 429, body = ErrorBody, description = "`too_many_requests`", headers(("Retry-After" = u64, description = "Seconds to wait")))))]
#[instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    LoginClient(from): LoginClient,
    Json(request): Json<LoginRequest>,
) -> Result<Response, AppError> {
    let credential = match request {
        LoginRequest {
            passphrase: Some(passphrase),
            recovery_key: None,
            new_passphrase: None,
        } => Credential::Passphrase(passphrase),
        LoginRequest {
            passphrase: None,
            recovery_key: Some(recovery_key),
            new_passphrase: Some(new_passphrase),
        } => Credential::RecoveryKey {
            recovery_key,
            new_passphrase,
        },
        _ => {
            return Err(AppError::BadRequest(
                "send either {\"passphrase\"} or {\"recovery_key\", \"new_passphrase\"}".into(),
            ));
        }
    };
    let session = state.vault.login(credential, from).await?;
    let body = Json(SessionResponse {
        token: session.token.expose().to_owned(),
        csrf_token: session.info.csrf_token.clone(),
        expires_at: session.info.expires_at,
    });
    Ok(with_cookie(&state, &session, body))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionState {
    pub csrf_token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub idle_expires_at: OffsetDateTime,
}

/// The current session (refreshes its idle timer).
#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses(OwnerRefusals, (status = 200, body = SessionState)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn session(session: OwnerSession) -> Json<SessionState> {
    Json(SessionState {
        csrf_token: session.info.csrf_token,
        expires_at: session.info.expires_at,
        idle_expires_at: session.info.idle_expires_at,
    })
}

/// Logs out: the session token stops working and the cookie is cleared.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses(OwnerRefusals, (status = 204)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn logout(
    State(state): State<AppState>,
    session: OwnerSession,
) -> Result<Response, AppError> {
    state.vault.logout(&session.token).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    Ok(response)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PassphraseChange {
    pub current_passphrase: Secret,
    pub new_passphrase: Secret,
}

/// Changes the passphrase. Stored data is not re-encrypted; only the key file's passphrase slot is.
#[utoipa::path(put, path = "/api/v1/passphrase", tag = "session", request_body = PassphraseChange,
    responses(OwnerRefusals, JsonBodyRefusals, (status = 204),
              (status = 401, body = ErrorBody, description = "`invalid_credentials`: not the current passphrase (or no session)"),
              (status = 422, body = ErrorBody, description = "`weak_passphrase`"),
              (status = 429, body = ErrorBody, description = "`too_many_requests`", headers(("Retry-After" = u64, description = "Seconds to wait")))),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn change_passphrase(
    State(state): State<AppState>,
    LoginClient(from): LoginClient,
    _session: OwnerSession,
    Json(request): Json<PassphraseChange>,
) -> Result<StatusCode, AppError> {
    state
        .vault
        .change_passphrase(request.current_passphrase, request.new_passphrase, from)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryKeyRequest {
    /// The current passphrase.
    pub passphrase: Secret,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryKeyResponse {
    /// Shown once: the old recovery key no longer opens the vault.
    pub recovery_key: String,
}

/// Makes a new recovery key (the old one stops working) after checking the passphrase.
#[utoipa::path(post, path = "/api/v1/recovery-key", tag = "session", request_body = RecoveryKeyRequest,
    responses(OwnerRefusals, JsonBodyRefusals, (status = 201, body = RecoveryKeyResponse),
              (status = 401, body = ErrorBody, description = "`invalid_credentials`: not the current passphrase (or no session)"),
              (status = 429, body = ErrorBody, description = "`too_many_requests`", headers(("Retry-After" = u64, description = "Seconds to wait")))),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn regenerate_recovery_key(
    State(state): State<AppState>,
    LoginClient(from): LoginClient,
    _session: OwnerSession,
    Json(request): Json<RecoveryKeyRequest>,
) -> Result<(StatusCode, Json<RecoveryKeyResponse>), AppError> {
    let key = state
        .vault
        .regenerate_recovery_key(request.passphrase, from)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(RecoveryKeyResponse {
            recovery_key: key.expose().to_owned(),
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VaultSettings {
    /// Whether an unlock key file can unseal this vault at start-up.
    pub unlock_key: bool,
    /// Minutes of inactivity that end a session.
    pub session_idle_minutes: i64,
    /// Hours after which a session ends regardless.
    pub session_max_hours: i64,
    /// Lifetime of brands' access tokens.
    pub access_token_seconds: i64,
    /// The URL brands reach the vault at.
    pub issuer: String,
}

/// The vault's settings as the settings screen shows them.
#[utoipa::path(get, path = "/api/v1/settings", tag = "session",
    responses(OwnerRefusals, (status = 200, body = VaultSettings)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn settings(
    State(state): State<AppState>,
    _session: OwnerSession,
    Unsealed(open): Unsealed,
) -> Result<Json<VaultSettings>, AppError> {
    let settings = state.vault.settings();
    Ok(Json(VaultSettings {
        unlock_key: open.has_unlock_key(),
        session_idle_minutes: settings.session_idle.whole_minutes(),
        session_max_hours: settings.session_max.whole_hours(),
        access_token_seconds: settings.token_lifetime.whole_seconds(),
        issuer: settings.issuer.clone(),
    }))
}

/// A record as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordView {
    #[schema(example = "contact.email")]
    pub path: String,
    #[schema(example = "contact")]
    pub collection: String,
    #[schema(example = "email")]
    pub field: String,
    /// Any JSON value but null.
    pub value: serde_json::Value,
    #[schema(example = "pd:EmailAddress")]
    pub category: String,
    #[schema(example = "Email address")]
    pub category_label: String,
    pub version: u64,
    /// The same as the `ETag` header.
    #[schema(example = "\"3\"")]
    pub etag: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<Record> for RecordView {
    fn from(r: Record) -> Self {
        let etag = r.etag();
        let (collection, field) = (r.path.collection().to_owned(), r.path.field().to_owned());
        let label = DataCategory::find(&r.category).map_or("", |c| c.label);
        RecordView {
            collection,
            field,
            category_label: label.to_owned(),
            path: r.path.into(),
            value: r.value,
            category: r.category,
            version: r.version,
            etag,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordList {
    /// In no particular order (stable across pages): sort on the client.
    pub records: Vec<RecordView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RecordListQuery {
    /// Where to continue, from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Records per page, 1 to 1000 (default 500). A page also ends after about 1 MiB of values.
    pub limit: Option<usize>,
}

/// The records, a page at a time.
#[utoipa::path(get, path = "/api/v1/records", tag = "records", params(RecordListQuery),
    responses(OwnerRefusals, BadParameter, (status = 200, body = RecordList)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn list_records(
    _session: OwnerSession,
    Query(query): Query<RecordListQuery>,
    Unsealed(open): Unsealed,
) -> Result<Json<RecordList>, AppError> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let cursor = query
        .cursor
        .map(|c| B64.decode(c.as_bytes()))
        .transpose()
        .map_err(|_| AppError::BadRequest("cursor is not one this server gave out".into()))?;
    let page = open.list_records(cursor.as_deref(), query.limit.unwrap_or(500))?;
    Ok(Json(RecordList {
        records: page.records.into_iter().map(RecordView::from).collect(),
        next_cursor: page.next_cursor.map(|c| B64.encode(c)),
    }))
}

fn with_etag(status: StatusCode, record: Record) -> Response {
    let etag = HeaderValue::from_str(&record.etag()).ok();
    let mut response = (status, Json(RecordView::from(record))).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// Reads one record; its `ETag` goes with it.
#[utoipa::path(get, path = "/api/v1/records/{path}", tag = "records",
    params(RecordPathParam),
    responses(OwnerRefusals, BadParameter, (status = 200, body = RecordView, headers(("ETag" = String, description = "The record's version, for `If-Match`"))),
              (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "`invalid_path`")),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn get_record(
    _session: OwnerSession,
    RecordPathParam(path): RecordPathParam,
    Unsealed(open): Unsealed,
) -> Result<Response, AppError> {
    let record = open.get_record(&path)?;
    Ok(with_etag(StatusCode::OK, record))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRecord {
    /// Any JSON value but null, at most 64 KiB.
    pub value: serde_json::Value,
    /// A DPV personal-data category (`GET /api/v1/categories`); well-known fields have a default.
    #[schema(example = "pd:EmailAddress")]
    pub category: Option<String>,
}

/// Reads `If-Match` / `If-None-Match: *` into a precondition.
fn precondition(headers: &HeaderMap) -> Result<Precondition, AppError> {
    let text = |name: header::HeaderName| {
        headers
            .get(&name)
            .map(|v| {
                v.to_str()
                    .map_err(|_| AppError::BadRequest(format!("{name} is not valid text")))
            })
            .transpose()
    };
    if let Some(value) = text(header::IF_MATCH)? {
        let tags: Vec<String> = value
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/").to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        if tags.is_empty() {
            return Err(AppError::BadRequest("If-Match is empty".into()));
        }
        return Ok(Precondition::IfMatch(tags));
    }
    match text(header::IF_NONE_MATCH)? {
        Some(v) if v.trim() == "*" => Ok(Precondition::IfNoneMatchAny),
        Some(_) => Err(AppError::BadRequest(
            "only If-None-Match: * is supported on writes".into(),
        )),
        None => Ok(Precondition::None),
    }
}

/// Creates or replaces a record. `If-Match` makes it conditional (412 on conflict);
/// `If-None-Match: *` makes it create-only. Acknowledged once durable on disk.
#[utoipa::path(put, path = "/api/v1/records/{path}", tag = "records", request_body = PutRecord,
    params(RecordPathParam,
           ("If-Match" = Option<String>, Header, description = "ETag the record must still have"),
           ("If-None-Match" = Option<String>, Header, description = "`*`: only create")),
    responses(OwnerRefusals, JsonBodyRefusals,
              (status = 200, body = RecordView, description = "Replaced", headers(("ETag" = String, description = "The record's version, for `If-Match`"))),
              (status = 201, body = RecordView, description = "Created", headers(("ETag" = String, description = "The record's version, for `If-Match`"))),
              (status = 400, body = ErrorBody, description = "`invalid_request`: a bad body, path or precondition header"),
              (status = 412, body = ErrorBody, description = "`precondition_failed`"),
              (status = 422, body = ErrorBody, description = "`invalid_path`, `invalid_category` or `invalid_value`")),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn put_record(
    _session: OwnerSession,
    path: Result<RecordPathParam, AppError>,
    headers: HeaderMap,
    Unsealed(open): Unsealed,
    Json(body): Json<PutRecord>,
) -> Result<Response, AppError> {
    // A bad body answers before a bad path, as it always has.
    let RecordPathParam(path) = path?;
    let precondition = precondition(&headers)?;
    let written = open
        .put_record(&path, body.value, body.category.as_deref(), precondition)
        .await?;
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(with_etag(status, written.record))
}

/// Deletes a record (`If-Match` honoured).
#[utoipa::path(delete, path = "/api/v1/records/{path}", tag = "records",
    params(RecordPathParam,
           ("If-Match" = Option<String>, Header, description = "ETag the record must still have")),
    responses(OwnerRefusals, BadParameter, (status = 204), (status = 404, body = ErrorBody),
              (status = 412, body = ErrorBody, description = "`precondition_failed`"),
              (status = 422, body = ErrorBody, description = "`invalid_path`")),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn delete_record(
    _session: OwnerSession,
    RecordPathParam(path): RecordPathParam,
    headers: HeaderMap,
    Unsealed(open): Unsealed,
) -> Result<StatusCode, AppError> {
    open.delete_record(&path, precondition(&headers)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryView {
    #[schema(example = "pd:EmailAddress")]
    pub id: &'static str,
    #[schema(example = "Email address")]
    pub label: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryList {
    pub categories: Vec<CategoryView>,
}

/// The personal-data categories a record may carry (W3C DPV).
#[utoipa::path(get, path = "/api/v1/categories", tag = "records",
    responses(OwnerRefusals, (status = 200, body = CategoryList)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn categories(_session: OwnerSession) -> Json<CategoryList> {
    Json(CategoryList {
        categories: CATEGORIES
            .iter()
            .map(|c| CategoryView {
                id: c.id,
                label: c.label,
            })
            .collect(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries with a sequence number below this one (for the next page).
    pub before: Option<u64>,
    /// Entries per page, 1 to 200 (default 50).
    pub limit: Option<usize>,
    /// Only entries of this kind: `reads`, `sharing`, `wishes`, `brands`, `data`, `terms`,
    /// `security` or `vault`.
    pub kind: Option<String>,
    /// Only entries about this brand (its client id).
    pub brand: Option<String>,
    /// Only entries whose sentence, brand name or action holds every one of these words. A
    /// filtered page reads at most 5,000 entries; `next_before` then says where to go on.
    pub q: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[schema(example = "owner")]
    pub actor: String,
    #[schema(example = "record.put")]
    pub action: String,
    pub target: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
    pub prev_hash: String,
    pub hash: String,
    /// What the entry is about, for filtering: `reads`, `sharing`, `wishes`, `brands`, `data`,
    /// `terms`, `security` or `vault`.
    #[schema(example = "reads")]
    pub kind: &'static str,
    /// The name of the brand the entry is about, when it is about one the vault knows.
    pub brand_name: Option<String>,
    /// The entry as one plain sentence ("Bistro Lilas read your email address, to provide a
    /// service you asked for."), for entries about brands and data.
    pub summary: Option<String>,
}

impl From<ActivityItem> for AuditEntryView {
    fn from(item: ActivityItem) -> Self {
        let mut view = AuditEntryView::from(item.entry);
        view.kind = item.kind.as_str();
        view.brand_name = item.brand_name;
        view.summary = item.summary;
        view
    }
}

impl From<AuditEntry> for AuditEntryView {
    fn from(e: AuditEntry) -> Self {
        let kind = ActivityKind::of(&e.action).as_str();
        let actor = serde_json::to_value(&e.actor)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        AuditEntryView {
            seq: e.seq,
            at: e.at,
            actor,
            action: e.action,
            target: e.target,
            detail: e.detail,
            kind,
            prev_hash: e.prev_hash,
            hash: e.hash,
            brand_name: None,
            summary: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPageView {
    /// Newest first.
    pub entries: Vec<AuditEntryView>,
    /// Pass as `before` for the next, older page; null on the last page.
    pub next_before: Option<u64>,
}

/// The audit log, newest first, paged.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses(OwnerRefusals, BadParameter, (status = 200, body = AuditPageView)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn audit(
    _session: OwnerSession,
    Query(query): Query<AuditQuery>,
    Unsealed(open): Unsealed,
) -> Result<Json<AuditPageView>, AppError> {
    let kind = match query.kind.as_deref() {
        None | Some("") | Some("all") => None,
        Some(kind) => Some(ActivityKind::parse(kind).ok_or_else(|| {
            AppError::BadRequest(format!(
                "kind must be one of {}",
                ActivityKind::ALL.map(ActivityKind::as_str).join(", ")
            ))
        })?),
    };
    let filter = ActivityFilter {
        kind,
        brand: query.brand.filter(|b| !b.is_empty()),
        words: query
            .q
            .unwrap_or_default()
            .to_lowercase()
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    };
    let page = open.activity_page(query.before, query.limit.unwrap_or(50), &filter)?;
    Ok(Json(AuditPageView {
        entries: page.items.into_iter().map(AuditEntryView::from).collect(),
        next_before: page.next_before,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditVerification {
    pub ok: bool,
    pub entries: Option<u64>,
    pub head: Option<String>,
    /// Why the chain does not hold, naming the first entry at fault.
    pub error: Option<String>,
    /// Entries pruned under the retention, vouched for by the signed checkpoint.
    pub pruned: Option<u64>,
    /// The time of the last pruned entry.
    #[serde(with = "time::serde::rfc3339::option")]
    pub pruned_through: Option<OffsetDateTime>,
}

/// Verifies the audit log's hash chain.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses(OwnerRefusals, (status = 200, body = AuditVerification)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn audit_verify(
    _session: OwnerSession,
    Unsealed(open): Unsealed,
) -> Result<Json<AuditVerification>, AppError> {
    let result = tokio::task::spawn_blocking(move || open.audit_verify())
        .await
        .map_err(|e| AppError::internal("the audit check did not finish", e))?;
    Ok(Json(match result {
        Ok(v) => AuditVerification {
            ok: true,
            entries: Some(v.entries),
            head: Some(v.head),
            error: None,
            pruned: Some(v.pruned),
            pruned_through: v.pruned_through,
        },
        Err(e) => AuditVerification {
            ok: false,
            entries: None,
            head: None,
            pruned: None,
            pruned_through: None,
            error: Some(match e {
                AppError::Chain(chain) => chain.to_string(),
                other => other.public_message(),
            }),
        },
    }))
}
