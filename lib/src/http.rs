//! The one small HTTP server of a provisioner: `/metrics` (Prometheus text),
//! `/healthz` (the process is alive) and `/readyz` (the controller runs, as
//! leader or as a standby campaigning for the Lease, and whatever else the
//! provisioner waits for: [`serve_all_ready`]). A provisioner that knows
//! why it is not ready says so in `/readyz`'s body ([`serve_explained`]):
//! the kubelet puts that body in the pod's `Readiness probe failed` event,
//! where an operator looks first.
//!
//! A provisioner's own metrics go into the same registry
//! ([`Metrics::with_registry`]), so one server and one exposition serve both.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Why a provisioner is not ready, asked when `/readyz` answers 503
/// (`None`: no reason known).
pub type NotReadyReason = Arc<dyn Fn() -> Option<String> + Send + Sync>;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    ready: Vec<Arc<AtomicBool>>,
    reason: Option<NotReadyReason>,
}

/// The router serving the three endpoints; ready when every flag is set.
pub fn router(metrics: Arc<Metrics>, ready: Vec<Arc<AtomicBool>>) -> Router {
    router_explained(metrics, ready, None)
}

fn router_explained(
    metrics: Arc<Metrics>,
    ready: Vec<Arc<AtomicBool>>,
    reason: Option<NotReadyReason>,
) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(AppState {
            metrics,
            ready,
            reason,
        })
}

async fn metrics_handler(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if s.ready.iter().all(|r| r.load(Ordering::Acquire)) {
        (StatusCode::OK, "ok".to_string())
    } else {
        let why = s.reason.as_ref().and_then(|r| r());
        let body = match why {
            Some(why) => format!("not ready: {why}"),
            None => "not ready".to_string(),
        };
        (StatusCode::SERVICE_UNAVAILABLE, body)
    }
}

/// Bind `addr` and serve until `shutdown`; returns the bound address.
/// Ready when `ready` is set (the controller's [`ready_flag`]).
///
/// [`ready_flag`]: crate::ProvisionController::ready_flag
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    serve_all_ready(addr, metrics, vec![ready], shutdown).await
}

/// As [`serve`], ready only when every flag in `ready` is set: the
/// controller's and the provisioner's own (a first discovery pass, a data
/// server that answers).
pub async fn serve_all_ready(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: Vec<Arc<AtomicBool>>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    serve_explained(addr, metrics, ready, None, shutdown).await
}

/// As [`serve_all_ready`], and while not ready `/readyz` answers
/// `not ready: <reason>` with what `reason` returns.
pub async fn serve_explained(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: Vec<Arc<AtomicBool>>,
    reason: Option<NotReadyReason>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = router_explained(metrics, ready, reason);
    let handle = tokio::spawn(async move {
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "metrics server failed");
        }
    });
    Ok((local, handle))
}
