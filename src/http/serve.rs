//! The connection loop: accepts TCP connections under a cap, serves HTTP/1.1 on each with limits
//! on what a slow or hostile client can hold, and shuts down gracefully.
//!
//! `axum::serve` sets no header-read timeout and no connection cap, so one client opening sockets
//! and trickling bytes could hold the home server's file descriptors forever. This loop is the
//! same few steps with those limits in place.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt as _;

use super::metrics::Metrics;

/// What one client may hold, and how long shutting down may take.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections at most; further ones wait in the kernel's accept queue until one closes.
    pub max_connections: usize,
    /// How long a client may take to send a request's head, and how long an idle keep-alive
    /// connection stays open.
    pub header_read_timeout: Duration,
    /// Request headers at most.
    pub max_headers: usize,
    /// The largest request head (request line and headers) and read buffer, in bytes.
    pub max_head_bytes: usize,
    /// How long a write may stay blocked on a client that does not read (a stalled download or
    /// event stream) before the connection is closed.
    pub write_timeout: Duration,
    /// How long in-flight requests may run on after a shutdown signal.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            max_headers: 64,
            max_head_bytes: 16 * 1024,
            write_timeout: Duration::from_secs(60),
            drain: Duration::from_secs(10),
        }
    }
}

/// Tells long-lived responses (the event streams) that the server is shutting down, so they end
/// and their connections can close instead of holding the shutdown until its deadline.
#[derive(Debug, Clone)]
pub struct ShutdownSignal(Arc<watch::Sender<bool>>);

impl Default for ShutdownSignal {
    fn default() -> ShutdownSignal {
        ShutdownSignal(Arc::new(watch::Sender::new(false)))
    }
}

impl ShutdownSignal {
    /// Starts the shutdown: every [`ShutdownSignal::requested`] future resolves.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once the shutdown has started (at once if it already has).
    pub fn requested(&self) -> impl Future<Output = ()> + Send + use<> {
        let mut receiver = self.0.subscribe();
        async move {
            // An error means the sender is gone, which only happens when the server is.
            let _ = receiver.wait_for(|started| *started).await;
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting, ends the event
/// streams through `signal`, and gives in-flight requests up to `limits.drain` to finish.
pub async fn serve_with_limits(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    signal: ShutdownSignal,
    metrics: Option<Arc<Metrics>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_head_bytes.max(8192));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut at_limit = false;
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // wait a little rather than spin, and carry on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let counted = metrics.as_ref().map(Metrics::connection);
        // Said once each time the limit is reached, not for every connection while it holds.
        let full = permits.available_permits() == 0;
        if full && !at_limit {
            if let Some(metrics) = &metrics {
                metrics.connection_limit_reached();
            }
            tracing::warn!(
                max = limits.max_connections,
                "connection limit reached: new connections wait until one closes"
            );
        }
        at_limit = full;
        let _ = stream.set_nodelay(true);
        // No read timeout beyond the header one: an event stream's client rightly sends nothing.
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.write_timeout));
        let service = app
            .clone()
            .map_request(move |mut request: axum::http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            })
            .map_err(|never: Infallible| match never {});
        let connection = http.serve_connection(
            TokioIo::new(Box::pin(stream)),
            TowerToHyperService::new(service),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away mid-request is its own business, not the server's.
            let _ = connection.await;
            drop((permit, counted));
        });
    }
    drop(listener);
    signal.trigger();
    let open = graceful.count();
    if open > 0 {
        tracing::info!(connections = open, "waiting for in-flight requests");
    }
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            seconds = limits.drain.as_secs(),
            "requests still running after the drain deadline: closing them"
        );
    }
    Ok(())
}
