//! The intent relay's HTTP front (`vrm-vault relay`, DESIGN §11). The relay's logic and its
//! NATS JetStream layout are in `crate::relay`; this module only translates HTTP, and lives
//! under `http` because only `http` imports axum. It reuses the vault's connection loop
//! ([`super::serve::serve_with_limits`]), its JSON extractor and its error shape.
//!
//! One router lists every route ([`router`]).

mod brands;
mod error;
mod events;
mod intents;
pub mod metrics;
mod oauth;
pub mod openapi;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::get;
use serde::Serialize;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi as _;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::Json;
use super::serve::{Limits, ShutdownSignal, serve_with_limits};
use crate::relay::{Relay, RelayError};

pub use error::status_of;

/// The largest request body the relay reads: an intent with the person's terms document.
pub const MAX_BODY_BYTES: usize = 128 * 1024;
/// The largest offer (an offer body and its acceptance JWS) or subscription.
pub const MAX_OFFER_BYTES: usize = 16 * 1024;
/// The largest message from a vault: a receipt and a disclosed-fields JWE of at most 64 KiB.
pub const MAX_MESSAGE_BYTES: usize = 80 * 1024;
/// The largest token request (a form with a client assertion).
pub const MAX_FORM_BYTES: usize = 8 * 1024;

/// Every route of the relay; `shutdown` ends the event streams when the relay stops. The same
/// list makes the OpenAPI document served at `/relay/v1/openapi.json`.
pub fn router(relay: Relay, shutdown: ShutdownSignal) -> Router {
    let (routes, spec) = api_router().split_for_parts();
    let mut document = serde_json::to_value(&spec).unwrap_or_default();
    openapi::complete(&mut document);
    let document = Arc::new(document);
    routes
        .route(
            "/relay/v1/openapi.json",
            get(move || {
                let document = Arc::clone(&document);
                async move { Json((*document).clone()) }
            }),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::Extension(shutdown))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::new())
        .with_state(relay)
}

/// The documented routes, each with the body cap its kind of request needs.
fn api_router() -> OpenApiRouter<Relay> {
    let capped =
        |routes: OpenApiRouter<Relay>, bytes: usize| routes.layer(DefaultBodyLimit::max(bytes));
    OpenApiRouter::with_openapi(openapi::RelayDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(oauth::metadata))
        .merge(capped(
            OpenApiRouter::new().routes(routes!(oauth::token)),
            MAX_FORM_BYTES,
        ))
        .merge(capped(
            OpenApiRouter::new().routes(routes!(intents::put_subscription)),
            MAX_OFFER_BYTES,
        ))
        .routes(routes!(events::brand_events))
        .routes(routes!(intents::poll, intents::publish_intent))
        .merge(capped(
            OpenApiRouter::new().routes(routes!(intents::vault_offers, intents::post_offer)),
            MAX_OFFER_BYTES,
        ))
        .merge(capped(
            OpenApiRouter::new().routes(routes!(intents::post_message)),
            MAX_MESSAGE_BYTES,
        ))
        .routes(routes!(brands::list))
        .routes(routes!(brands::show))
}

/// Serves the relay on `listener` until `shutdown` resolves, then lets requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    relay: Relay,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = Limits {
        drain: Duration::from_secs(10),
        ..Limits::default()
    };
    let signal = ShutdownSignal::default();
    serve_with_limits(
        listener,
        router(relay, signal.clone()),
        limits,
        signal,
        None,
        shutdown,
    )
    .await
}

#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
}

/// Answers while the process runs, whatever NATS does.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = openapi::RelayHealth)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// 200 only while NATS JetStream answers and the relay's streams exist; otherwise 503 with
/// `Retry-After`, so a load balancer sends requests to another instance.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = openapi::RelayHealth),
              (status = 503, body = crate::http::error::ErrorBody, description = "`relay_unavailable`", headers(("Retry-After" = u64, description = "Seconds to wait")))))]
async fn readyz(State(relay): State<Relay>) -> Result<Json<Health>, RelayError> {
    relay.ready().await?;
    Ok(Json(Health { status: "ready" }))
}
