//! Extractors for parameters many handlers share, so each is read, checked and documented once
//! (crates.io's `CratePath`): [`RecordPathParam`], the `{path}` of the record routes, and
//! [`Unsealed`], the open vault most handlers work on.
//!
//! A handler that checked something else before the path (a JSON body, the token's grant) takes
//! `Result<RecordPathParam, AppError>` and applies `?` where the path used to be parsed, so a
//! request with two faults keeps getting the answer it got before.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use utoipa::IntoParams;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};

use super::AppState;
use super::error::Path;
use crate::domain::records::RecordPath;
use crate::error::AppError;
use crate::service::OpenVault;

/// The `{path}` parameter of a record route, parsed: a bad one answers `422 invalid_path` (and
/// one that cannot be read at all, `400 invalid_request`), as `RecordPath::parse` and the
/// [`Path`] extractor do.
#[derive(Debug)]
pub struct RecordPathParam(pub RecordPath);

impl<S: Send + Sync> FromRequestParts<S> for RecordPathParam {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let Path(text) = Path::<String>::from_request_parts(parts, state).await?;
        Ok(RecordPathParam(RecordPath::parse(&text)?))
    }
}

/// What the OpenAPI document says about `{path}`. The pattern mirrors `RecordPath::parse`: 2 to
/// 4 dot-separated segments of at most 64 characters each.
impl IntoParams for RecordPathParam {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name("path")
                .parameter_in(ParameterIn::Path)
                .description(Some(
                    "Dotted record path, e.g. `contact.email`: 2 to 4 parts of lowercase \
                     letters, digits, `_` and `-`",
                ))
                .required(Required::True)
                .schema(Some(
                    ObjectBuilder::new().schema_type(Type::String).pattern(Some(
                        r"^[a-z0-9][a-z0-9_-]{0,63}(\.[a-z0-9][a-z0-9_-]{0,63}){1,3}$",
                    )),
                ))
                .build(),
        ]
    }
}

/// An unsealed vault, for handlers that need one: a vault that is sealed, not set up yet or
/// being erased answers `503` with `vault_sealed`, `setup_required` or `vault_erasing`, exactly
/// as `Vault::open` does. The gate in front of the API already refuses most routes in those
/// phases; this is what hands the handler the open vault, and it answers the same way should the
/// phase change between the gate and the handler. It goes after the authorization extractors
/// (`OwnerSession`, `BrandToken`), because extractors run in argument order and a missing session
/// has always been answered before a sealed vault there.
#[derive(Debug, Clone)]
pub struct Unsealed(pub Arc<OpenVault>);

impl FromRequestParts<AppState> for Unsealed {
    type Rejection = AppError;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        state.vault.open().map(Unsealed)
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn answer(path: &str) -> (StatusCode, serde_json::Value) {
        let app = Router::new().route(
            "/records/{path}",
            get(|RecordPathParam(path): RecordPathParam| async move { path.as_str().to_owned() }),
        );
        let request = Request::get(path).body(Body::empty());
        let Ok(request) = request else {
            return (StatusCode::IM_A_TEAPOT, serde_json::Value::Null);
        };
        let Ok(response) = app.oneshot(request).await;
        let status = response.status();
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, body)
    }

    #[tokio::test]
    async fn a_good_record_path_reaches_the_handler_parsed() {
        let (status, body) = answer("/records/contact.email").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "contact.email");
    }

    #[tokio::test]
    async fn a_bad_record_path_answers_invalid_path_as_the_parse_does() {
        let (status, body) = answer("/records/Contact").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"], "invalid_path");
        let (status, body) = answer("/records/%FF.x").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_request");
    }
}
