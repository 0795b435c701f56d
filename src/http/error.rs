//! How errors become HTTP responses, and the extractors that make bad requests answer in the same
//! JSON shape as every other error.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::{IntoResponses, ToSchema};

use crate::error::{AppError, OAuthError, TokenRefusal};

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable code such as `invalid_path` or `vault_sealed`.
    #[schema(example = "precondition_failed")]
    pub error: String,
    /// A sentence for the person reading it.
    pub message: String,
    /// Where in the submitted document the problem is: the member of the request body at fault
    /// for a validation error (e.g. `location.geohash`, `price_max.amount`), or the rule of a terms
    /// document (e.g. `permission[0]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The rule of the person's terms that refused a grant, e.g. `basis SD-BASE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// RFC 6750 §3: on `invalid_token` and `insufficient_scope`, the same sentence as the
    /// `error_description` of the `WWW-Authenticate` challenge (which check refused the token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// The protection space of the brand API in `WWW-Authenticate` challenges (RFC 6750 §3).
pub const BEARER_REALM: &str = "vrm-vault";

/// An RFC 6750 §3 challenge: `Bearer realm="..."`, then the error code and description if any.
/// Characters a quoted `error_description` may not hold (RFC 6750 §3: `"`, `\`, anything
/// outside printable ASCII) become `?`, so no message can break the header.
pub fn bearer_challenge(scheme: &str, error: Option<(&str, &str)>, extra: &str) -> HeaderValue {
    let mut text = format!(r#"{scheme} realm="{BEARER_REALM}""#);
    if let Some((code, description)) = error {
        let description: String = description
            .chars()
            .map(|c| {
                if (' '..='~').contains(&c) && c != '"' && c != '\\' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        text.push_str(&format!(
            r#", error="{code}", error_description="{description}""#
        ));
    }
    text.push_str(extra);
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("Bearer"))
}

/// What the JSON body extractor ([`Json`]) refuses, for the OpenAPI document of
/// every route that reads a JSON body.
#[derive(Debug, IntoResponses)]
pub enum JsonBodyRefusals {
    /// `invalid_request`: the body is not JSON, or not of the documented shape (unknown fields
    /// are refused too).
    #[response(status = 400)]
    Malformed(ErrorBody),
    /// `payload_too_large`: the body is over 128 KiB.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// `unsupported_media_type`: the body is not sent as `application/json`.
    #[response(status = 415)]
    NotJson(ErrorBody),
}

// For the OpenAPI document of the routes that take a path or query parameter or read a header.
/// `invalid_request`: a path or query parameter, or a header, that cannot be read.
#[derive(Debug, IntoResponses)]
#[response(status = 400)]
pub struct BadParameter(pub ErrorBody);

/// The HTTP status of each error: the service names failures, this layer maps them to HTTP.
pub fn status_of(error: &AppError) -> StatusCode {
    match error {
        AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
        AppError::Invalid { .. }
        | AppError::InvalidTerms { .. }
        | AppError::GrantNotPermitted { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        AppError::Unauthenticated
        | AppError::InvalidCredentials
        | AppError::InvalidToken(_)
        | AppError::TermsNotAccepted(_)
        | AppError::InvalidClient(_) => StatusCode::UNAUTHORIZED,
        AppError::Csrf
        | AppError::CrossOrigin
        | AppError::NotGranted(_)
        | AppError::AccessPaused
        | AppError::NoGrant
        | AppError::InsufficientScope(_) => StatusCode::FORBIDDEN,
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
        AppError::Conflict(_)
        | AppError::TermsChanged(_)
        | AppError::NoAgreement(_)
        | AppError::IntentClosed(_)
        | AppError::OfferLimit => StatusCode::CONFLICT,
        AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        AppError::MisdirectedRequest => StatusCode::MISDIRECTED_REQUEST,
        AppError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        AppError::Sealed | AppError::SetupRequired | AppError::Erasing | AppError::Storage(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        AppError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
        AppError::Chain(_) | AppError::Internal { .. } | AppError::StoreDamaged(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = status_of(&self);
        // The cause goes to the log (by the layer that knows the request id), never to the client.
        let detail = match &self {
            AppError::Internal { .. }
            | AppError::Chain(_)
            | AppError::Storage(_)
            | AppError::InsufficientStorage(_)
            | AppError::StoreDamaged(_) => Some(ErrorDetail(self.report())),
            _ => None,
        };
        let body = ErrorBody {
            error: self.code().to_owned(),
            message: self.public_message(),
            at: match &self {
                AppError::InvalidTerms { at, .. } => Some(at.clone()),
                AppError::Invalid { at, .. } => at.map(str::to_owned),
                _ => None,
            },
            rule: match &self {
                AppError::GrantNotPermitted { rule, .. } => Some(rule.clone()),
                _ => None,
            },
            error_description: match &self {
                AppError::InvalidToken(TokenRefusal::Missing) => None,
                AppError::InvalidToken(_)
                | AppError::TermsNotAccepted(_)
                | AppError::InsufficientScope(_) => Some(self.public_message()),
                _ => None,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(detail) = detail {
            response.extensions_mut().insert(detail);
        }
        match &self {
            // RFC 6750 §3: a protected resource names the problem in WWW-Authenticate.
            // A request with no token at all gets the bare challenge (§3.1: no error code).
            AppError::InvalidToken(refusal) => {
                response
                    .extensions_mut()
                    .insert(ErrorDetail(format!("token refused: {}", refusal.detail())));
                let (scheme, error, extra) = match refusal {
                    TokenRefusal::Missing => ("Bearer", None, ""),
                    // RFC 9449 §7.1: a proof problem is answered with the DPoP scheme.
                    TokenRefusal::DpopProof(_) => (
                        "DPoP",
                        Some(("invalid_dpop_proof", refusal.to_string())),
                        r#", algs="ES256""#,
                    ),
                    TokenRefusal::UseDpopNonce(nonce) => {
                        if let Ok(value) = HeaderValue::from_str(nonce) {
                            response.headers_mut().insert("dpop-nonce", value);
                        }
                        (
                            "DPoP",
                            Some(("use_dpop_nonce", refusal.to_string())),
                            r#", algs="ES256""#,
                        )
                    }
                    TokenRefusal::DpopBound => (
                        "DPoP",
                        Some(("invalid_token", refusal.to_string())),
                        r#", algs="ES256""#,
                    ),
                    _ => ("Bearer", Some(("invalid_token", refusal.to_string())), ""),
                };
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    bearer_challenge(scheme, error.as_ref().map(|(c, d)| (*c, d.as_str())), extra),
                );
            }
            // The brand's agreement predates the terms in force: the description says which
            // version to accept.
            AppError::TermsNotAccepted(message) => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    bearer_challenge("Bearer", Some(("invalid_token", message)), ""),
                );
            }
            AppError::InsufficientScope(scope) => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    bearer_challenge(
                        "Bearer",
                        Some(("insufficient_scope", &self.public_message())),
                        &format!(r#", scope="{scope}""#),
                    ),
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

/// The body of an OAuth endpoint's error (RFC 6749 §5.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthErrorBody {
    #[schema(example = "invalid_client")]
    pub error: String,
    pub error_description: String,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = serde_json::json!({
            "error": self.error,
            "error_description": if self.status >= 500 && self.error == "server_error" {
                "internal error; the details are in the server log".to_owned()
            } else {
                self.description.clone()
            },
        });
        if let (Some(serde_json::Value::Object(extra)), serde_json::Value::Object(map)) =
            (&self.extra, &mut body)
        {
            map.extend(extra.clone());
        }
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(nonce) = self.dpop_nonce.as_deref()
            && let Ok(value) = HeaderValue::from_str(nonce)
        {
            headers.insert("dpop-nonce", value);
        }
        if self.error == "invalid_token" {
            // RFC 7591 §3 refers to RFC 6750 for a bad initial access token.
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            );
        } else if self.status == 401 && self.basic_challenge {
            // RFC 6749 §5.2: a 401 names the authentication scheme the client should use.
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="vrm-vault""#),
            );
        }
        if self.status >= 500 || self.status == 401 || self.error == "invalid_client" {
            response
                .extensions_mut()
                .insert(ErrorDetail(self.to_string()));
        }
        response
    }
}

/// The internal cause of a server-side failure, carried on the response to the layer that logs it
/// with the request's id; it never reaches the client.
#[derive(Debug, Clone)]
pub struct ErrorDetail(pub String);

/// `axum::Json` whose rejections are [`AppError`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_rejection(rejection: JsonRejection) -> AppError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType,
        JsonRejection::JsonSyntaxError(e) => {
            AppError::BadRequest(format!("the body is not valid JSON: {}", e.body_text()))
        }
        JsonRejection::JsonDataError(e) => AppError::BadRequest(format!(
            "the JSON does not have the expected shape: {}",
            e.body_text()
        )),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge,
        other => AppError::BadRequest(format!("the body could not be read: {}", other.body_text())),
    }
}

/// `axum::extract::Path` whose rejections are [`AppError`]s.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e: PathRejection| AppError::BadRequest(e.body_text()))
    }
}

/// `axum::extract::Query` whose rejections are [`AppError`]s.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e: QueryRejection| {
                AppError::BadRequest(format!("bad query string: {}", e.body_text()))
            })
    }
}
