//! The HTTP interface: the only module that imports axum.
//!
//! [`app`] builds the one router that lists every route (it doubles as the API's table of contents
//! and, through utoipa, as the OpenAPI document); [`serve()`] runs it on a listener until a shutdown
//! signal, then drains in-flight requests.

pub mod agent_oauth;
pub mod agent_owner;
pub mod agents;
pub mod assets;
pub mod auth;
pub mod brand_api;
pub mod brands;
pub mod catalogue;
pub mod error;
pub mod extract;
pub mod grants;
pub mod intents;
pub mod lock;
pub mod mcp;
pub mod metrics;
pub mod no_vault;
pub mod oauth;
pub mod owner;
pub mod par;
pub mod proposals;
pub mod relay;
pub mod relayed;
pub mod serve;
pub mod sharing;
pub mod storage;
pub mod terms;
pub mod vault;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::error::AppError;
use crate::service::Vault;
use error::ErrorDetail;

/// The largest request body any extractor reads (a record value is at most 64 KiB of JSON).
/// Enforced by the body extractors, so an oversize body gets the usual JSON error.
pub const MAX_BODY_BYTES: usize = 128 * 1024;
/// How long one request may take before the server gives up on it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub vault: Vault,
    /// Cookies are marked Secure (and HSTS is sent) when the public URL is https.
    pub secure_cookies: bool,
    /// Reverse proxies whose `X-Forwarded-For` names the client (none unless configured).
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// Ends the event streams when the server shuts down.
    pub shutdown: serve::ShutdownSignal,
    /// Counts requests and connections when metrics are on.
    pub metrics: Option<Arc<metrics::Metrics>>,
    /// The public URL's origin (`https://vault.example.org`): what the vault's own pages send
    /// as `Origin`, and whose host is the one name besides `localhost` that requests may address
    /// (see `host_allowed` and `origin_allowed`).
    pub public_origin: Option<Arc<url::Origin>>,
}

impl AppState {
    pub fn new(vault: Vault, secure_cookies: bool) -> AppState {
        AppState {
            vault,
            secure_cookies,
            trusted_proxies: Arc::new([]),
            shutdown: serve::ShutdownSignal::default(),
            metrics: None,
            public_origin: None,
        }
    }

    /// Accepts requests addressed to the host of `public_url` (besides IP literals and
    /// `localhost`).
    pub fn with_public_url(mut self, public_url: &str) -> AppState {
        self.public_origin = url::Url::parse(public_url)
            .ok()
            .map(|url| Arc::new(url.origin()));
        self
    }

    /// Counts requests and connections into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<metrics::Metrics>) -> AppState {
        self.metrics = Some(metrics);
        self
    }

    /// Trusts these proxies to name the client in `X-Forwarded-For`.
    pub fn with_trusted_proxies(mut self, proxies: Vec<ipnet::IpNet>) -> AppState {
        self.trusted_proxies = proxies.into();
        self
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vrm-vault",
        description = "A personal data vault for Vendor Relationship Management. Errors are \
                       `{\"error\": code, \"message\": sentence}` (under `/oauth/`, RFC \
                       6749's `{\"error\", \"error_description\"}`).\n\n\
                       Any route can also answer, before its own checks: \
                       `421 misdirected_request` when the `Host` is not the vault's public \
                       URL, an IP address or `localhost` (health routes excepted); \
                       `403 csrf_failed` for a state-changing request whose `Origin` is \
                       another site or `null`; `413 payload_too_large` beyond 128 KiB; \
                       `431` for a request head over 16 KiB or 64 headers; `408` after 30 s. \
                       A route that writes can answer `507 insufficient_storage` when the disk \
                       is full, and `503 storage_unavailable` after a failed store write. \
                       Unsealing, or any request that meets damage in the store's files, can \
                       answer `500 store_damaged` (restore a backup).",
        license(name = "AGPL-3.0-or-later")
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "session", description = "Setup, unlock, login and logout of the owner"),
        (name = "records", description = "The owner's personal data"),
        (name = "audit", description = "The hash-chained audit log"),
        (name = "terms", description = "The person's own terms of service"),
        (name = "brands", description = "Brands: invitations, registrations, agreements and their receipts"),
        (name = "oauth", description = "The OAuth 2.0 authorization server brands use"),
        (name = "agents", description = "The person's own AI assistants, which call the MCP server at /mcp: their metadata, consent and Settings"),
        (name = "intents", description = "Intentcasting: your intents and the offers brands make"),
        (name = "grants", description = "Data grants: what a brand may read or write, why and until when"),
        (name = "vault", description = "The whole vault: export, encrypted backup and restore, delete everything"),
        (name = "operations", description = "Health and readiness")
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "owner_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The owner's session token from POST /api/v1/session"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "owner_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                auth::COOKIE,
                "The browser's session cookie; state-changing requests also need X-CSRF-Token",
            ))),
        );
        components.add_security_scheme(
            "brand_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A brand's RFC 9068 access token from POST /oauth/token",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "initial_access_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An invitation's initial access token (RFC 7591 §3)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "client_secret_basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("The brand's client id and secret (RFC 6749 §2.3.1)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "private_key_jwt",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "client_assertion",
                "RFC 7523: client_assertion_type and client_assertion parameters in the body",
            ))),
        );
    }
}

/// Every API route, in one place: this is the table of contents of the API.
fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(owner::healthz))
        .routes(routes!(owner::readyz))
        .routes(routes!(owner::status))
        .routes(routes!(owner::setup))
        .routes(routes!(owner::login, owner::session, owner::logout))
        .routes(routes!(owner::change_passphrase))
        .routes(routes!(owner::regenerate_recovery_key))
        .routes(routes!(owner::settings))
        .routes(routes!(owner::list_records))
        .routes(routes!(
            owner::get_record,
            owner::put_record,
            owner::delete_record
        ))
        .routes(routes!(owner::categories))
        .routes(routes!(owner::audit))
        .routes(routes!(owner::audit_verify))
        .routes(routes!(storage::storage))
        .routes(routes!(storage::get_retention, storage::put_retention))
        .routes(routes!(terms::get_terms, terms::put_terms))
        .routes(routes!(terms::preview_terms))
        .routes(routes!(terms::terms_versions))
        .routes(routes!(terms::terms_version))
        .routes(routes!(terms::terms_templates))
        .routes(routes!(terms::template_choices))
        .routes(routes!(terms::build_terms))
        .routes(routes!(brands::create_invitation, brands::list_invitations))
        .routes(routes!(brands::delete_invitation))
        .routes(routes!(brands::list_brands))
        .routes(routes!(brands::get_brand, brands::remove_brand))
        .routes(routes!(brands::suspend_brand))
        .routes(routes!(brands::erase_brand))
        .routes(routes!(brands::resume_brand))
        .routes(routes!(brands::list_agreements))
        .routes(routes!(brands::terminate_agreement))
        .routes(routes!(brands::agreement_receipt))
        .routes(routes!(brands::rotate_signing_key))
        .routes(routes!(oauth::metadata))
        .routes(routes!(agents::protected_resource))
        .routes(routes!(agents::protected_resource_mcp))
        .routes(routes!(agent_owner::list_agents))
        .routes(routes!(agent_owner::disconnect_agent))
        .routes(routes!(
            agent_owner::get_agent_consent,
            agent_owner::answer_agent_consent
        ))
        .routes(routes!(oauth::jwks))
        .routes(routes!(oauth::register))
        .routes(routes!(oauth::token))
        .routes(routes!(oauth::revoke))
        .routes(routes!(oauth::introspect))
        .routes(routes!(oauth::authorize))
        .routes(routes!(par::par))
        .routes(routes!(grants::create_grant, grants::list_grants))
        .routes(routes!(grants::get_grant, grants::revoke_grant))
        .routes(routes!(grants::grant_accesses))
        .routes(routes!(sharing::check_sharing))
        .routes(routes!(grants::revoke_brand_grants))
        .routes(routes!(grants::get_consent, grants::answer_consent))
        .routes(routes!(grants::read_all))
        .routes(routes!(grants::read_field, grants::write_field))
        .routes(routes!(grants::grant_status))
        .routes(routes!(grants::brand_grants))
        .routes(routes!(intents::create_intent, intents::list_intents))
        .routes(routes!(intents::get_intent, intents::withdraw_intent))
        .routes(routes!(intents::erase_intent))
        .routes(routes!(intents::intent_offers))
        .routes(routes!(relayed::relay_preview))
        .routes(routes!(relayed::list_relays))
        .routes(routes!(intents::accept_offer))
        .routes(routes!(intents::decline_offer))
        .routes(routes!(proposals::list_proposals))
        .routes(routes!(proposals::confirm_proposal))
        .routes(routes!(proposals::refuse_proposal))
        .routes(routes!(intents::intent_categories))
        .routes(routes!(intents::owner_events))
        .routes(routes!(
            intents::put_subscription,
            intents::get_subscription
        ))
        .routes(routes!(intents::rotate_secret))
        .routes(routes!(intents::poll_events))
        .routes(routes!(intents::brand_events))
        .routes(routes!(intents::create_offer))
        .routes(routes!(intents::get_offer))
        .routes(routes!(terms::brand_terms))
        .routes(routes!(brand_api::accept, brand_api::list_agreements))
        .routes(routes!(brand_api::get_agreement, brand_api::withdraw))
        .routes(routes!(vault::export))
        .routes(routes!(vault::export_schema))
        .routes(routes!(vault::backup))
        .routes(routes!(vault::restore))
        .routes(routes!(vault::delete_vault))
        .routes(routes!(lock::lock_vault))
}

/// The OpenAPI document as served: the routes' document plus the catalogue of events brands
/// receive (its `webhooks` section, which utoipa cannot express).
pub fn document(mut spec: utoipa::openapi::OpenApi) -> serde_json::Value {
    spec.merge(catalogue::CatalogueDoc::openapi());
    let mut value = serde_json::to_value(&spec).unwrap_or_default();
    catalogue::complete(&mut value);
    value
}

/// The whole application: API, OpenAPI document, static app, and the layers around them.
pub fn app(state: AppState) -> Router {
    // The router and the OpenAPI document come from the same list, so they cannot drift apart;
    // the document is serialised once, here.
    let (api, spec) = api_router().split_for_parts();
    let spec =
        axum::body::Bytes::from(serde_json::to_vec_pretty(&document(spec)).unwrap_or_default());
    api.merge(mcp::router(state.clone()))
        .route(
            "/openapi.json",
            axum::routing::get(move || async move {
                ([(header::CONTENT_TYPE, "application/json")], spec.clone())
            }),
        )
        .fallback(assets::serve_asset)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            gate_and_headers,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a handler panicked");
            AppError::broken("a handler panicked").into_response()
        }))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            // A span per request at debug level (VRM_LOG=debug): at info its cost (a quarter of a
            // record read, measured) is not worth it, and failures are logged with their request
            // id by `gate_and_headers` anyway. Spans carry the route template, never the raw
            // path: a path may hold a field name.
            TraceLayer::new_for_http()
                .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG))
                .make_span_with(|req: &Request<Body>| {
                    let route = req
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or("static", |p| p.as_str());
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    tracing::debug_span!("request", method = %req.method(), route, request_id = id)
                }),
        )
        .layer(SetRequestIdLayer::x_request_id(RequestIds::new()))
        .with_state(state)
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

/// Routes that work whatever the vault's phase: health, the app itself, setup and unlock.
fn open_while_sealed(method: &Method, path: &str) -> bool {
    matches!(
        path,
        "/healthz"
            | "/readyz"
            | "/api/v1/status"
            | "/api/v1/setup"
            | "/api/v1/restore"
            | "/openapi.json"
    ) || (path == "/api/v1/session" && method == Method::POST)
        || !(path.starts_with("/api/")
            || path.starts_with("/brand/")
            || path.starts_with("/oauth/"))
}

/// Whether the request's `Host` names this vault: an IP address, `localhost`, or the public URL's
/// host. A web page that rebinds its own DNS name to the vault's address (DNS rebinding) gets
/// past the browser's same-origin policy but still sends its own name as `Host`, so it is
/// refused here: that is what keeps a vault on loopback (in setup mode, say) out of reach of
/// the pages its owner visits.
fn host_allowed(headers: &axum::http::HeaderMap, public_origin: Option<&url::Origin>) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        // HTTP/1.0 without Host, or the authority only in the request line: no name to check.
        return !headers.contains_key(header::HOST);
    };
    let name = match host.strip_prefix('[') {
        // An IPv6 literal, `[::1]:8080`.
        Some(rest) => {
            return rest
                .split(']')
                .next()
                .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
        }
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || matches!(public_origin, Some(url::Origin::Tuple(_, url::Host::Domain(public), _))
            if name.eq_ignore_ascii_case(public))
}

/// Whether a state-changing request may come from the page that sent it. Browsers name the page's
/// origin in `Origin` on every cross-origin POST, PUT and DELETE; requests that do not come from
/// a browser (scripts, brands' servers) send none and are let through, to be authenticated as
/// usual. A request whose `Origin` is neither the origin its `Host` names nor the public URL's is
/// another site's page acting through the owner's browser: refused, whatever else it carries.
/// This is what keeps a page the owner visits from posting to setup, restore or login, which
/// have no session to carry a CSRF token.
fn origin_allowed(
    method: &Method,
    headers: &axum::http::HeaderMap,
    public_origin: Option<&url::Origin>,
) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(origin) = origin
        .to_str()
        .ok()
        .and_then(|o| url::Url::parse(o).ok())
        .filter(|o| matches!(o.scheme(), "http" | "https"))
    else {
        // `null` (a sandboxed frame, a file) or garbage.
        return false;
    };
    if public_origin == Some(&origin.origin()) {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let Ok(addressed) = url::Url::parse(&format!("{}://{host}", origin.scheme())) else {
        return false;
    };
    addressed.host_str() == origin.host_str()
        && addressed.port_or_known_default() == origin.port_or_known_default()
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// The security headers every response carries (HSTS is added separately, behind TLS only).
const SECURITY_HEADERS: [(HeaderName, &str); 6] = [
    (header::CONTENT_SECURITY_POLICY, CSP),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
    (
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), payment=(), usb=()",
    ),
];

/// Three jobs in one layer (each layer costs every request a boxed future): while there is no
/// vault or it is sealed, every API route but the few above answers 503; a server-side failure is
/// logged with its request id and route; and every response gets the security headers, API
/// answers also `no-store` (they hold personal data).
async fn gate_and_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let is_api = path.starts_with("/api/")
        || path.starts_with("/oauth/")
        || path.starts_with("/brand/")
        || path == "/mcp";
    // Kept for the failure log below; cheap, and only formatted when something failed.
    let method = req.method().clone();
    // A refusal may come before the body is read (too large, no credentials); the connection
    // then cannot carry another request, and the client must be told so (see below).
    let sent_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|length| length != "0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let route = req.extensions().get::<MatchedPath>().cloned();
    let request_id = req.headers().get("x-request-id").cloned();
    let started = state.metrics.as_ref().map(|_| std::time::Instant::now());
    let refused = if !host_allowed(req.headers(), state.public_origin.as_deref())
        && !matches!(path, "/healthz" | "/readyz")
    {
        Some(AppError::MisdirectedRequest)
    } else if !origin_allowed(req.method(), req.headers(), state.public_origin.as_deref()) {
        Some(AppError::CrossOrigin)
    } else if open_while_sealed(req.method(), path) {
        None
    } else {
        state.vault.open().err()
    };
    let mut response = match refused {
        // Brands are told that a vault in setup mode knows none of them, not to retry.
        Some(AppError::SetupRequired)
            if let Some(answer) = no_vault::answer(&method, path, req.headers()) =>
        {
            answer
        }
        // The OAuth endpoints answer in RFC 6749's shape, which OAuth libraries read.
        Some(e) if path.starts_with("/oauth/") => crate::error::OAuthError::from(e).into_response(),
        Some(e) => e.into_response(),
        None => next.run(req).await,
    };
    if let Some(ErrorDetail(detail)) = response.extensions_mut().remove::<ErrorDetail>() {
        let route = route.as_ref().map_or("static", MatchedPath::as_str);
        let request_id = request_id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let status = response.status().as_u16();
        if status < 500 {
            tracing::info!(%method, route, request_id, status, detail, "request refused");
        } else if status == 503 {
            tracing::warn!(%method, route, request_id, status, detail, "request failed");
        } else {
            tracing::error!(%method, route, request_id, status, detail, "request failed");
        }
    }
    // hyper closes a connection whose request body was left unread, without saying so; a client
    // that pools connections could send its next request on it and see it cut. An error answer
    // to a request with a body says it, so the client opens a new connection instead.
    let refused_body = sent_body && response.status().as_u16() >= 400;
    let headers = response.headers_mut();
    if refused_body {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if is_api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if state.secure_cookies {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    if let (Some(metrics), Some(started)) = (&state.metrics, started) {
        let route = route.as_ref().map_or(
            if is_api { "unmatched" } else { "static" },
            MatchedPath::as_str,
        );
        metrics.request(
            &method,
            route,
            response.status().as_u16(),
            started.elapsed(),
        );
    }
    response
}

/// Request ids: a random per-process prefix and a counter, so every log line of a request can be
/// found without a random-number syscall per request.
#[derive(Debug, Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        let random: [u8; 4] = crate::crypto::random_array().unwrap_or_default();
        RequestIds {
            prefix: data_encoding::HEXLOWER.encode(&random).into(),
            next: Arc::default(),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// Serves the app on `listener` with the default [`serve::Limits`] until `shutdown` resolves,
/// then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, serve::Limits::default(), shutdown).await
}

/// [`serve()`] with the given limits.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    limits: serve::Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let signal = state.shutdown.clone();
    let metrics = state.metrics.clone();
    serve::serve_with_limits(listener, app(state), limits, signal, metrics, shutdown).await
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves, through the same connection loop
/// and limits as the API but with its own cap ([`metrics::MAX_SCRAPE_CONNECTIONS`]). Scrapes are
/// not counted in the metrics themselves, so a scraper does not measure itself.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: Arc<metrics::Metrics>,
    vault: crate::service::Vault,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = serve::Limits {
        max_connections: metrics::MAX_SCRAPE_CONNECTIONS,
        ..serve::Limits::default()
    };
    // The metrics listener has no event streams to end, so its shutdown signal is its own.
    let streams = serve::ShutdownSignal::default();
    serve::serve_with_limits(
        listener,
        metrics::router(metrics, vault),
        limits,
        streams,
        None,
        shutdown,
    )
    .await
}
