//! The one error type of the service and HTTP layers.
//!
//! Every failure a client can see is an [`AppError`] with a stable machine-readable `code` and a
//! sentence a person can act on; a validation failure also names the field at fault. The HTTP
//! layer (`http::error`) chooses the status and turns it into `{"error": code, "message": ...,
//! "at": field}`. Internal failures keep their cause as a typed source beside a fixed context, so
//! the log shows the whole chain while clients only ever see [`AppError::public_message`].

use crate::crypto::keyfile::KeyFileError;
use crate::domain::audit::ChainError;
use crate::domain::records::RecordError;
use crate::store::{StoreError, TxError};

/// The failure an internal error came from, kept with its own source chain for the log.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An I/O failure on a named file or directory: the source of an internal error, so that the log
/// and the command line name the path.
#[derive(Debug, thiserror::Error)]
#[error("{}", path.display())]
pub struct FileError {
    pub path: std::path::PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// A data directory the vault cannot use as it is: told to the operator on the command line and
/// in the log, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("no vault in {}", .0.display())]
    NoVault(std::path::PathBuf),
    #[error("{} exists but the store {} is missing: restore it from a backup", .key_file.display(), .store.display())]
    StoreMissing {
        key_file: std::path::PathBuf,
        store: std::path::PathBuf,
    },
    #[error(
        "{} holds a store but no key file ({key_file}); without it the store cannot be read. \
         Restore the key file from a backup, or remove {} to start a new vault",
        .data_dir.display(), .store.display()
    )]
    KeyFileMissing {
        data_dir: std::path::PathBuf,
        key_file: &'static str,
        store: std::path::PathBuf,
    },
    #[error("the unlock key in {} does not open this vault (removed or replaced?)", .0.display())]
    ForeignUnlockKey(std::path::PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed: bad JSON, unknown fields, wrong types, bad headers.
    #[error("{0}")]
    BadRequest(String),
    /// The request is well-formed but its content is not acceptable; `at` names the member of the
    /// request body at fault (e.g. `location.geohash`) where one is.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        at: Option<&'static str>,
    },
    #[error("this request needs an owner session: log in first")]
    Unauthenticated,
    #[error("the passphrase or recovery key is not correct")]
    InvalidCredentials,
    #[error("missing or wrong CSRF token: send the X-CSRF-Token header given at login")]
    Csrf,
    /// A state-changing request sent by another site's page (its `Origin` is not the vault's).
    #[error("this request comes from another site's page; use the vault's own app")]
    CrossOrigin,
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(&'static str),
    /// A terms document that does not validate; `at` names the rule.
    #[error("{message}")]
    InvalidTerms { at: String, message: String },
    /// The brand tried to accept terms that are no longer (or never were) the ones in force.
    #[error("{0}")]
    TermsChanged(String),
    /// A brand's access token is missing, malformed, expired, revoked or no longer backed by a
    /// current agreement or grant (RFC 6750 `invalid_token`). The refusal says which, as far as
    /// the brand may know it (its `error_description`); its detail is for the log only.
    #[error("{0}")]
    InvalidToken(TokenRefusal),
    /// A brand's token or grant waits for the brand to accept the person's new terms: refused as
    /// `invalid_token` like any dead token, but the message says which version to accept (it
    /// names no data, and the brand is the party that must act).
    #[error("{0}")]
    TermsNotAccepted(String),
    /// The person's terms do not permit a grant; `rule` is the one that decided. `reason` is
    /// the whole sentence the person reads.
    #[error("{reason}")]
    GrantNotPermitted { rule: String, reason: String },
    /// A grant needs the brand's agreement on the terms in force.
    #[error("{0}")]
    NoAgreement(String),
    /// A brand asked for data its grant does not cover (the message names no data).
    #[error("{0}")]
    NotGranted(String),
    /// The brand's relationship is held after the vault was restored from a backup, until the
    /// person resumes it: its token is genuine, so the answer says why instead of "invalid".
    #[error(
        "the person restored their vault from a backup; your access is paused until they review and resume it"
    )]
    AccessPaused,
    /// An offer on an intent that no longer takes offers.
    #[error("{0}")]
    IntentClosed(String),
    /// An offer beyond the number the person asked for.
    #[error("this intent has all the offers the person asked for")]
    OfferLimit,
    /// A brand called the data API with a token that carries no grant.
    #[error("this token carries no data grant: get one with authorization_details")]
    NoGrant,
    /// A brand's client authentication failed (RFC 6749 `invalid_client`) on a brand route.
    #[error("{0}")]
    InvalidClient(String),
    /// A brand's token lacks the scope the call needs (RFC 6750 `insufficient_scope`).
    #[error("this call needs the scope {0}")]
    InsufficientScope(&'static str),
    #[error("the resource changed since you read it (ETag mismatch); read it again and retry")]
    PreconditionFailed,
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    /// The `Host` header names another site (DNS rebinding): HTTP 421.
    #[error(
        "the vault does not answer to this host name: use its public URL, or start it with \
         --public-url set to the address you reach it at"
    )]
    MisdirectedRequest,
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
    #[error("the vault is being deleted")]
    Erasing,
    #[error("storage is unavailable; nothing was changed, try again later")]
    Storage(#[source] StoreError),
    /// The disk is full (HTTP 507): nothing was changed; writes work again once there is room.
    #[error("the vault's disk is full; nothing was changed. Free some space and try again")]
    InsufficientStorage(#[source] StoreError),
    /// The store's files are damaged: sled reports corruption or panics, the store's key file
    /// is missing or does not open, or the store lost writes (see `service::audit`). Shown whole
    /// in logs and on the command line; clients get `public_message`.
    #[error("the vault's store is damaged: {0}")]
    StoreDamaged(String),
    #[error("the audit log does not verify: {0}")]
    Chain(#[from] ChainError),
    /// Something inside the vault failed: `context` says what it was doing, `source` (where there
    /// is one) is the failure itself. Shown with its chain in logs and on the command line
    /// ([`AppError::report`]); clients only ever see `public_message`.
    #[error("{context}")]
    Internal {
        context: &'static str,
        #[source]
        source: Option<Cause>,
    },
}

/// Why a bearer token was refused, in words the brand may read (RFC 6750 `error_description`):
/// it says which check failed, never anything about another brand or the person's data. Every
/// sentence is plain ASCII without quotes or backslashes, so it can stand in a
/// `WWW-Authenticate` header as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// No token was sent at all: RFC 6750 §3.1 says the challenge then carries no error code.
    #[error(
        "this call needs an access token: send Authorization: Bearer with one from the token endpoint"
    )]
    Missing,
    /// An `Authorization` header that holds no bearer token (another scheme, or none after it).
    #[error(
        "the Authorization header holds no bearer token: send Authorization: Bearer with the access token"
    )]
    NotBearer,
    /// The token does not parse or its signature does not verify; the detail is for the log.
    #[error("the access token is malformed or its signature does not verify")]
    Unverifiable(String),
    /// Signed by this vault's key but issued for another issuer, audience or subject, or with
    /// impossible times; the detail is for the log.
    #[error("the access token was not issued for this resource")]
    NotForHere(String),
    #[error("the access token has expired: get a new one from the token endpoint")]
    Expired,
    /// Revoked, or its record is gone (a token this vault never issued looks the same).
    #[error("the access token was revoked")]
    Revoked,
    #[error("the client is no longer registered with this vault")]
    ClientRemoved,
    #[error("the client is suspended by the person")]
    ClientSuspended,
    /// The brand's agreement changed since the token was issued: new terms, a withdrawal, a
    /// termination (re-accepting makes a new agreement, so an old token stays dead).
    #[error(
        "the terms changed since this token was issued: accept the terms in force, then get a new token"
    )]
    TermsChanged,
    /// The data grant the token carries no longer lets the brand in: its words name why
    /// (revoked, expired, used up, gone).
    #[error("the data grant of this token has ended: {0}")]
    GrantEnded(String),
    /// The vault holds no clients and no tokens: its owner deleted everything, or it was never
    /// set up.
    #[error(
        "this vault has no record of the access token: it holds no clients (its owner deleted everything, or it was never set up)"
    )]
    NoClients,
    /// A DPoP-bound token sent as a bearer token (RFC 9449 §7.1).
    #[error(
        "this access token is bound to a DPoP key: send it as Authorization: DPoP with a DPoP proof"
    )]
    DpopBound,
    /// A DPoP proof that does not verify or does not fit the request or the token.
    #[error("the DPoP proof is not valid: {0}")]
    DpopProof(String),
    /// A DPoP proof without a fresh nonce: retry with this one (RFC 9449 §9).
    #[error("send the DPoP proof again with the nonce in the DPoP-Nonce header")]
    UseDpopNonce(String),
    /// An initial access token (RFC 7591) that does not register a client.
    #[error("{0}")]
    Invitation(&'static str),
}

impl TokenRefusal {
    /// The refusal with its detail, for the log.
    pub fn detail(&self) -> String {
        match self {
            TokenRefusal::Unverifiable(detail) | TokenRefusal::NotForHere(detail) => {
                format!("{self} ({detail})")
            }
            other => other.to_string(),
        }
    }
}

impl AppError {
    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "invalid_request",
            AppError::Invalid { code, .. } => code,
            AppError::Unauthenticated => "unauthenticated",
            AppError::InvalidCredentials => "invalid_credentials",
            AppError::Csrf | AppError::CrossOrigin => "csrf_failed",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::InvalidTerms { .. } => "invalid_terms",
            AppError::GrantNotPermitted { .. } => "grant_not_permitted",
            AppError::NoAgreement(_) => "no_agreement",
            AppError::IntentClosed(_) => "intent_closed",
            AppError::OfferLimit => "offer_limit",
            AppError::NotGranted(_) => "not_granted",
            AppError::AccessPaused => "access_paused",
            AppError::NoGrant => "no_grant",
            AppError::TermsChanged(_) => "terms_changed",
            AppError::InvalidToken(_) | AppError::TermsNotAccepted(_) => "invalid_token",
            AppError::InvalidClient(_) => "invalid_client",
            AppError::InsufficientScope(_) => "insufficient_scope",
            AppError::MethodNotAllowed => "method_not_allowed",
            AppError::MisdirectedRequest => "misdirected_request",
            AppError::PreconditionFailed => "precondition_failed",
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::UnsupportedMediaType => "unsupported_media_type",
            AppError::TooManyRequests { .. } => "too_many_requests",
            AppError::Sealed => "vault_sealed",
            AppError::SetupRequired => "setup_required",
            AppError::Erasing => "vault_erasing",
            AppError::Storage(_) => "storage_unavailable",
            AppError::InsufficientStorage(_) => "insufficient_storage",
            AppError::Chain(_) => "audit_chain_broken",
            AppError::StoreDamaged(_) => "store_damaged",
            AppError::Internal { .. } => "internal",
        }
    }

    /// Seconds a client should wait before retrying, where that is meaningful.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::TooManyRequests { retry_after } => Some(*retry_after),
            AppError::Sealed | AppError::SetupRequired => Some(30),
            AppError::Storage(_) | AppError::Erasing => Some(5),
            AppError::InsufficientStorage(_) => Some(60),
            _ => None,
        }
    }

    /// The message sent to the client: never internal detail.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal { .. } => "internal error; the details are in the server log".into(),
            AppError::StoreDamaged(_) => "the vault's store is damaged; restore it from a backup \
                                          (the server log has the details)"
                .into(),
            other => other.to_string(),
        }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> AppError {
        AppError::Invalid {
            code,
            message: message.into(),
            at: None,
        }
    }

    /// A validation failure of one member of the request body, named by `at` (a JSON path such
    /// as `location.geohash`), so that a client can point at the field instead of parsing the
    /// sentence.
    pub fn invalid_at(
        code: &'static str,
        at: &'static str,
        message: impl Into<String>,
    ) -> AppError {
        AppError::Invalid {
            code,
            message: message.into(),
            at: Some(at),
        }
    }

    /// An internal failure: `context` says what the vault was doing, `source` is what failed.
    pub fn internal(context: &'static str, source: impl Into<Cause>) -> AppError {
        AppError::Internal {
            context,
            source: Some(source.into()),
        }
    }

    /// An internal failure with no underlying error: an invariant of the vault's own that did not
    /// hold (a poisoned lock, a write that was not staged).
    pub fn broken(context: &'static str) -> AppError {
        AppError::Internal {
            context,
            source: None,
        }
    }

    /// The error with every cause in its source chain, `context: cause: cause...`: for the log
    /// and the command line, never for a client.
    pub fn report(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

impl From<RecordError> for AppError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::InvalidPath => AppError::invalid("invalid_path", e.to_string()),
            RecordError::UnknownCategory(_) => AppError::invalid("invalid_category", e.to_string()),
            RecordError::ValueTooLarge
            | RecordError::ValueTooDeep
            | RecordError::NullValue
            | RecordError::InvalidEmail
            | RecordError::InvalidPhone => AppError::invalid("invalid_value", e.to_string()),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Tampered { .. } | StoreError::Crypto(_) => {
                AppError::internal("store integrity", e)
            }
            StoreError::Io(_) => AppError::Storage(e),
            StoreError::Damaged(_) => AppError::StoreDamaged(e.to_string()),
            StoreError::Full(_) => AppError::InsufficientStorage(e),
        }
    }
}

impl From<TxError<AppError>> for AppError {
    /// A write that did not commit: the change's own error, or the store's.
    fn from(e: TxError<AppError>) -> Self {
        match e {
            TxError::Abort(e) => e,
            TxError::Store(e) => e.into(),
        }
    }
}

impl From<TxError<StoreError>> for AppError {
    /// An offline transaction whose only failures are the store's.
    fn from(e: TxError<StoreError>) -> Self {
        match e {
            TxError::Abort(e) | TxError::Store(e) => e.into(),
        }
    }
}

impl From<KeyFileError> for AppError {
    fn from(e: KeyFileError) -> Self {
        match e {
            KeyFileError::WrongSecret | KeyFileError::MalformedRecoveryKey => {
                AppError::InvalidCredentials
            }
            other => AppError::internal("key file", other),
        }
    }
}

/// An error of the OAuth endpoints, in the shape RFC 6749 §5.2 (and RFC 7591 §3.2.2) prescribe:
/// `{"error": code, "error_description": sentence}`, so that OAuth libraries can read it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {description}")]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
    /// Extra members, e.g. where to accept the terms.
    pub extra: Option<serde_json::Value>,
    /// Seconds to wait before retrying (`Retry-After`), for 429 and 503.
    pub retry_after: Option<u64>,
    /// Whether a 401 carries `WWW-Authenticate: Basic`: only for a client that authenticated (or
    /// may authenticate) with HTTP Basic ([`OAuthError::for_client_auth`]).
    pub basic_challenge: bool,
    /// RFC 9449 §8: a fresh `DPoP-Nonce` for the client's next proof.
    pub dpop_nonce: Option<String>,
}

impl OAuthError {
    pub fn new(status: u16, error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            status,
            error,
            description: description.into(),
            extra: None,
            retry_after: None,
            basic_challenge: false,
            dpop_nonce: None,
        }
    }

    /// RFC 6749 §5.2: `invalid_client` is a 401 with a `WWW-Authenticate: Basic` challenge when
    /// the client used HTTP Basic (or sent no authentication at all, so Basic is what it is
    /// asked for); a client that authenticated another way (an assertion) gets a 400 without
    /// the challenge, which OAuth libraries read as an ordinary error with its description.
    pub fn for_client_auth(mut self, basic: bool) -> OAuthError {
        if self.error == "invalid_client" {
            self.status = if basic { 401 } else { 400 };
            self.basic_challenge = basic;
        }
        self
    }

    /// Client authentication failed (RFC 6749 §5.2): 401.
    pub fn invalid_client(description: impl Into<String>) -> OAuthError {
        OAuthError::new(401, "invalid_client", description)
    }

    pub fn invalid_request(description: impl Into<String>) -> OAuthError {
        OAuthError::new(400, "invalid_request", description)
    }

    pub fn with_extra(mut self, extra: serde_json::Value) -> OAuthError {
        self.extra = Some(extra);
        self
    }
}

impl From<AppError> for OAuthError {
    fn from(e: AppError) -> OAuthError {
        let retry_after = e.retry_after();
        let mut error = match &e {
            AppError::Sealed
            | AppError::SetupRequired
            | AppError::Erasing
            | AppError::Storage(_)
            | AppError::InsufficientStorage(_) => {
                OAuthError::new(503, "temporarily_unavailable", e.public_message())
            }
            AppError::TooManyRequests { .. } => {
                OAuthError::new(429, "temporarily_unavailable", e.public_message())
            }
            AppError::BadRequest(_)
            | AppError::UnsupportedMediaType
            | AppError::PayloadTooLarge => OAuthError::invalid_request(e.public_message()),
            AppError::MisdirectedRequest => OAuthError::new(421, "invalid_request", e.to_string()),
            AppError::CrossOrigin => OAuthError::new(403, "access_denied", e.to_string()),
            _ => OAuthError::new(500, "server_error", e.to_string()),
        };
        error.retry_after = retry_after;
        error
    }
}

impl From<OAuthError> for AppError {
    /// For brand routes that authenticate a client but answer in the common error shape.
    fn from(e: OAuthError) -> AppError {
        match e.status {
            401 => AppError::InvalidClient(e.description),
            503 => AppError::Sealed,
            s if s >= 500 => AppError::internal("an OAuth step failed", e),
            _ => AppError::BadRequest(e.description),
        }
    }
}
