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

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post, put};
use serde::Serialize;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use super::error::Json;
use super::serve::{Limits, ShutdownSignal, serve_with_limits};
use crate::relay::{Relay, RelayError};

pub use error::status_of;

/// The largest request body the relay reads: an intent with the person's terms document.
pub const MAX_BODY_BYTES: usize = 128 * 1024;

/// Every route of the relay; `shutdown` ends the event streams when the relay stops.
pub fn router(relay: Relay, shutdown: ShutdownSignal) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::metadata),
        )
        .route("/oauth/token", post(oauth::token))
        .route("/relay/v1/subscription", put(intents::put_subscription))
        .route("/relay/v1/events", get(events::brand_events))
        .route(
            "/relay/v1/intents",
            get(intents::poll).post(intents::publish_intent),
        )
        .route(
            "/relay/v1/intents/{id}/offers",
            get(intents::vault_offers).post(intents::post_offer),
        )
        .route(
            "/relay/v1/intents/{id}/messages",
            post(intents::post_message),
        )
        .route("/relay/v1/brands", get(brands::list))
        .route("/relay/v1/brands/{client_id}", get(brands::show))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::Extension(shutdown))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::new())
        .with_state(relay)
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
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// 200 only while NATS JetStream answers and the relay's streams exist; otherwise 503 with
/// `Retry-After`, so a load balancer sends requests to another instance.
async fn readyz(State(relay): State<Relay>) -> Result<Json<Health>, RelayError> {
    relay.ready().await?;
    Ok(Json(Health { status: "ready" }))
}
