//! Prometheus metrics, served on a separate listener (`--metrics-listen`) so they never reach the
//! public side of the reverse proxy.
//!
//! Labels carry route templates (`/api/v1/records/{path}`), methods and status codes only: never a
//! path as requested, a client id or a value, so the metrics say how the vault is doing without
//! saying whom it deals with.
//!
//! The listener runs through the same connection loop as the API ([`super::serve_metrics`]), so a
//! client that reaches it cannot hold sockets open, trickle headers or stall writes there either.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::service::Vault;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

/// Everything the vault counts.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    connections_open: Gauge,
    connections_accepted: Counter,
    connection_limit_reached: Counter,
    phase: Family<PhaseLabels, Gauge>,
    records: Gauge,
    store_bytes: Gauge,
    resident_bytes: Gauge,
    open_fds: Gauge,
}

const PHASES: [&str; 4] = ["setup", "sealed", "unsealed", "erasing"];

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("vrm");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.000_25, 2.0, 15))) as fn() -> Histogram,
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer a request (to the first byte of a streamed answer), by route template",
            Unit::Seconds,
            durations.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "connections_open",
            "Client connections open now",
            connections_open.clone(),
        );
        let connections_accepted = Counter::default();
        registry.register(
            "connections_accepted",
            "Client connections accepted",
            connections_accepted.clone(),
        );
        let connection_limit_reached = Counter::default();
        registry.register(
            "connection_limit_reached",
            "Times the connection limit was reached and new connections had to wait",
            connection_limit_reached.clone(),
        );
        let phase = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "vault_phase",
            "1 for the phase the vault is in (setup, sealed, unsealed, erasing), 0 for the others",
            phase.clone(),
        );
        let records = Gauge::default();
        registry.register(
            "records",
            "Records in the vault (while unsealed)",
            records.clone(),
        );
        let store_bytes = Gauge::default();
        registry.register_with_unit(
            "store_size",
            "Size of the store's files on disk (while unsealed)",
            Unit::Bytes,
            store_bytes.clone(),
        );
        let resident_bytes = Gauge::default();
        registry.register_with_unit(
            "process_resident_memory",
            "Resident memory of the vault process",
            Unit::Bytes,
            resident_bytes.clone(),
        );
        let open_fds = Gauge::default();
        registry.register(
            "process_open_fds",
            "File descriptors the vault process has open",
            open_fds.clone(),
        );
        Metrics {
            registry,
            requests,
            durations,
            connections_open,
            connections_accepted,
            connection_limit_reached,
            phase,
            records,
            store_bytes,
            resident_bytes,
            open_fds,
        }
    }

    /// Counts one answered request.
    pub fn request(&self, method: &axum::http::Method, route: &str, status: u16, took: Duration) {
        let method = match *method {
            axum::http::Method::GET => "GET",
            axum::http::Method::POST => "POST",
            axum::http::Method::PUT => "PUT",
            axum::http::Method::DELETE => "DELETE",
            axum::http::Method::HEAD => "HEAD",
            axum::http::Method::OPTIONS => "OPTIONS",
            axum::http::Method::PATCH => "PATCH",
            _ => "other",
        };
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route: route.to_owned(),
                status,
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// A connection was accepted; the returned guard counts it as open until dropped.
    pub fn connection(self: &Arc<Self>) -> OpenConnection {
        self.connections_accepted.inc();
        self.connections_open.inc();
        OpenConnection(self.clone())
    }

    pub fn connection_limit_reached(&self) {
        self.connection_limit_reached.inc();
    }

    /// The text exposition, with the gauges read now.
    pub fn render(&self, vault: &Vault) -> String {
        let now = vault.phase_name();
        for phase in PHASES {
            self.phase
                .get_or_create(&PhaseLabels { phase })
                .set(i64::from(phase == now));
        }
        if let Ok(open) = vault.open() {
            self.records.set(saturating(open.record_count()));
            self.store_bytes.set(saturating(open.store_size()));
        }
        let (resident, fds) = process_figures();
        self.resident_bytes.set(saturating(resident));
        self.open_fds.set(saturating(fds));
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Counts a connection as open for as long as it lives.
#[derive(Debug)]
pub struct OpenConnection(Arc<Metrics>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.dec();
    }
}

fn saturating(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Resident memory in bytes and open file descriptors, from `/proc` (zero where there is none).
fn process_figures() -> (u64, u64) {
    let resident = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024);
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64);
    (resident, fds)
}

/// The metrics listener's router: `GET /metrics` only.
pub fn router(metrics: Arc<Metrics>, vault: Vault) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state((metrics, vault))
}

/// Connections the metrics listener holds open at most. A scraper needs one or two; the cap is
/// the listener's own, so scrapes never take the API's connection slots.
pub const MAX_SCRAPE_CONNECTIONS: usize = 16;

async fn scrape(State((metrics, vault)): State<(Arc<Metrics>, Vault)>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(&vault),
    )
}
