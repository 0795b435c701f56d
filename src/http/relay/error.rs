//! The relay's errors as HTTP answers, in the vault's JSON error shape ([`ErrorBody`]).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::error::{ErrorBody, ErrorDetail};
use crate::relay::RelayError;

/// The HTTP status of each relay error.
pub fn status_of(error: &RelayError) -> StatusCode {
    match error {
        RelayError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        RelayError::NotFound(_) => StatusCode::NOT_FOUND,
        RelayError::Conflict { .. } => StatusCode::CONFLICT,
        RelayError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
        RelayError::InsufficientScope(_) => StatusCode::FORBIDDEN,
        RelayError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        RelayError::Unavailable { .. } | RelayError::Misconfigured(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        RelayError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for RelayError {
    fn into_response(self) -> Response {
        let status = status_of(&self);
        let body = ErrorBody {
            error: self.code().to_owned(),
            message: self.public_message(),
            at: match &self {
                RelayError::Invalid { at, .. } => at.map(str::to_owned),
                _ => None,
            },
            rule: None,
            error_description: None,
        };
        let mut response = (status, axum::Json(body)).into_response();
        match &self {
            RelayError::Internal { .. }
            | RelayError::Unavailable { .. }
            | RelayError::Misconfigured(_) => {
                // The cause goes to the log, never to the client.
                tracing::warn!(error = %self.report(), "relay request failed");
                response.extensions_mut().insert(ErrorDetail(self.report()));
            }
            RelayError::InvalidToken(reason) => {
                tracing::debug!(%reason, "relay token refused");
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                );
            }
            _ => {}
        }
        if let Some(seconds) = self.retry_after()
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
