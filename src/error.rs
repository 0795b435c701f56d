//! The one error type of the service and HTTP layers.
//!
//! Every failure a client can see is an [`AppError`] with a stable machine-readable `code` and a
//! sentence a person can act on. The HTTP layer turns it into `{"error": code, "message": ...}` with
//! the status from [`AppError::status`]. Internal causes are logged, never sent.

use crate::crypto::keyfile::KeyFileError;
use crate::domain::audit::ChainError;
use crate::domain::records::RecordError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed: bad JSON, unknown fields, wrong types, bad headers.
    #[error("{0}")]
    BadRequest(String),
    /// The request is well-formed but its content is not acceptable.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("this request needs an owner session: log in first")]
    Unauthenticated,
    #[error("the passphrase or recovery key is not correct")]
    InvalidCredentials,
    #[error("missing or wrong CSRF token: send the X-CSRF-Token header given at login")]
    Csrf,
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(&'static str),
    #[error("the resource changed since you read it (ETag mismatch); read it again and retry")]
    PreconditionFailed,
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    #[error("the request body is larger than this endpoint accepts")]
    PayloadTooLarge,
    #[error("requests must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("too many attempts; try again in {retry_after} seconds")]
    TooManyRequests { retry_after: u64 },
    #[error("the vault is sealed: the owner must unlock it with the passphrase")]
    Sealed,
    #[error("this vault has not been set up yet: open the web app to set it up")]
    SetupRequired,
    #[error("storage is unavailable; nothing was changed, try again later")]
    Storage(#[source] StoreError),
    #[error("the audit log does not verify: {0}")]
    Chain(#[from] ChainError),
    /// Shown in logs and on the command line; clients only ever see `public_message`.
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            AppError::BadRequest(_) => 400,
            AppError::Invalid { .. } => 422,
            AppError::Unauthenticated | AppError::InvalidCredentials => 401,
            AppError::Csrf => 403,
            AppError::NotFound(_) => 404,
            AppError::Conflict(_) => 409,
            AppError::MethodNotAllowed => 405,
            AppError::PreconditionFailed => 412,
            AppError::PayloadTooLarge => 413,
            AppError::UnsupportedMediaType => 415,
            AppError::TooManyRequests { .. } => 429,
            AppError::Sealed | AppError::SetupRequired | AppError::Storage(_) => 503,
            AppError::Chain(_) | AppError::Internal(_) => 500,
        }
    }

    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "invalid_request",
            AppError::Invalid { code, .. } => code,
            AppError::Unauthenticated => "unauthenticated",
            AppError::InvalidCredentials => "invalid_credentials",
            AppError::Csrf => "csrf_failed",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::MethodNotAllowed => "method_not_allowed",
            AppError::PreconditionFailed => "precondition_failed",
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::UnsupportedMediaType => "unsupported_media_type",
            AppError::TooManyRequests { .. } => "too_many_requests",
            AppError::Sealed => "vault_sealed",
            AppError::SetupRequired => "setup_required",
            AppError::Storage(_) => "storage_unavailable",
            AppError::Chain(_) => "audit_chain_broken",
            AppError::Internal(_) => "internal",
        }
    }

    /// Seconds a client should wait before retrying, where that is meaningful.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::TooManyRequests { retry_after } => Some(*retry_after),
            AppError::Sealed | AppError::SetupRequired => Some(30),
            AppError::Storage(_) => Some(5),
            _ => None,
        }
    }

    /// The message sent to the client: never internal detail.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal(_) => "internal error; the details are in the server log".into(),
            other => other.to_string(),
        }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> AppError {
        AppError::Invalid {
            code,
            message: message.into(),
        }
    }
}

impl From<RecordError> for AppError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::InvalidPath => AppError::invalid("invalid_path", e.to_string()),
            RecordError::UnknownCategory(_) => AppError::invalid("invalid_category", e.to_string()),
            RecordError::ValueTooLarge | RecordError::ValueTooDeep | RecordError::NullValue => {
                AppError::invalid("invalid_value", e.to_string())
            }
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Tampered { .. } | StoreError::Crypto(_) => {
                AppError::Internal(format!("store integrity: {e}"))
            }
            StoreError::Io(_) => AppError::Storage(e),
        }
    }
}

impl From<KeyFileError> for AppError {
    fn from(e: KeyFileError) -> Self {
        match e {
            KeyFileError::WrongSecret | KeyFileError::MalformedRecoveryKey => {
                AppError::InvalidCredentials
            }
            other => AppError::Internal(format!("key file: {other}")),
        }
    }
}
