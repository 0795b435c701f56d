//! What can go wrong in the relay, named; the HTTP layer (`http::relay`) maps each to a status
//! and the vault's JSON error shape (`{"error", "message", "at"}`), so a client handles a
//! relay's errors and a vault's alike.

/// A failure's cause, kept for the log and never sent to a client.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The request is well-formed but its content is not acceptable; `at` names the member of
    /// the request body at fault.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        at: Option<&'static str>,
    },
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The request conflicts with the state of what it names (an intent that expired, or has
    /// all its offers); `code` is the vault's for the same case.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A brand's relay token is missing, unknown, expired or its brand suspended. The reason is
    /// for the log only.
    #[error("the access token is missing, expired, revoked or not valid here")]
    InvalidToken(String),
    /// The token lacks the scope the call needs (RFC 6750 `insufficient_scope`).
    #[error("this call needs the scope {0}")]
    InsufficientScope(&'static str),
    /// A rate limit is spent (429 with `Retry-After`).
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u64 },
    /// NATS JetStream did not answer (in time): nothing was changed, the client may retry.
    #[error("the relay's message store is unavailable; nothing was changed, try again shortly")]
    Unavailable {
        context: &'static str,
        #[source]
        source: Option<Cause>,
    },
    /// The relay's configuration does not fit the NATS cluster (more replicas than a lone
    /// server can hold): retrying cannot help, the operator must change one of them.
    #[error("the relay's configuration does not fit its NATS cluster: {0}")]
    Misconfigured(String),
    /// Something inside the relay failed; `context` says what it was doing.
    #[error("{context}")]
    Internal {
        context: &'static str,
        #[source]
        source: Option<Cause>,
    },
}

impl RelayError {
    pub fn invalid(code: &'static str, message: impl Into<String>, at: &'static str) -> Self {
        RelayError::Invalid {
            code,
            message: message.into(),
            at: Some(at),
        }
    }

    /// NATS failed while doing `context`.
    pub fn unavailable(context: &'static str, source: impl Into<Cause>) -> Self {
        RelayError::Unavailable {
            context,
            source: Some(source.into()),
        }
    }

    pub fn internal(context: &'static str, source: impl Into<Cause>) -> Self {
        RelayError::Internal {
            context,
            source: Some(source.into()),
        }
    }

    /// The stable code clients match on (the same codes as the vault's where the failure is).
    pub fn code(&self) -> &'static str {
        match self {
            RelayError::Invalid { code, .. } => code,
            RelayError::NotFound(_) => "not_found",
            RelayError::Conflict { code, .. } => code,
            RelayError::InvalidToken(_) => "invalid_token",
            RelayError::InsufficientScope(_) => "insufficient_scope",
            RelayError::TooManyRequests { .. } => "too_many_requests",
            RelayError::Unavailable { .. } | RelayError::Misconfigured(_) => "relay_unavailable",
            RelayError::Internal { .. } => "internal",
        }
    }

    /// Seconds a client should wait before retrying, where that is meaningful.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            RelayError::Unavailable { .. } => Some(5),
            RelayError::TooManyRequests { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// What the client is told: never an internal cause.
    pub fn public_message(&self) -> String {
        match self {
            RelayError::Internal { .. } => {
                "internal error; the details are in the relay's log".into()
            }
            // The operator reads the sentence in the log and on the way out; clients only need
            // to know the relay cannot serve.
            RelayError::Misconfigured(_) => RelayError::Unavailable {
                context: "",
                source: None,
            }
            .to_string(),
            other => other.to_string(),
        }
    }

    /// The whole chain of causes, for the log.
    pub fn report(&self) -> String {
        let mut text = match self {
            RelayError::Unavailable { context, .. } => format!("unavailable: {context}"),
            other => other.to_string(),
        };
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}
