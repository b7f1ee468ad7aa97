//! This provisioner's own metrics (prefix `local_volume_provisioner_`), and
//! the HTTP server exposing them next to the library's controller metrics.
//!
//! The library's [`external_storage::Metrics`] keeps its registry private
//! (only `encode()` is public), so ours cannot be registered on it; `/metrics`
//! serves both texts, the library's first. `/healthz` and `/readyz` behave
//! as the library's server (ready: the controller runs and the first
//! discovery pass finished).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// Label set `{class, mode}`; `mode` is `Filesystem` or `Block` (what is
/// behind the entry: a mount point or a block device).
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct ClassMode {
    /// StorageClass.
    pub class: String,
    /// `Filesystem` or `Block`.
    pub mode: String,
}

impl ClassMode {
    /// The label set.
    pub fn new(class: &str, mode: &str) -> Self {
        ClassMode {
            class: class.to_string(),
            mode: mode.to_string(),
        }
    }
}

type Hist = Family<ClassMode, Histogram, fn() -> Histogram>;

fn clean_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 12))
}

/// All metrics of the discovery loop and the cleaner.
pub struct LocalMetrics {
    registry: Registry,
    /// Volumes found usable in the last discovery pass.
    pub volumes: Family<ClassMode, Gauge>,
    /// Sum of their capacities (rounded, as in the PVs).
    pub capacity_bytes: Family<ClassMode, Gauge>,
    /// PVs created for discovered volumes.
    pub created_total: Family<ClassMode, Counter>,
    /// Available PVs deleted because their volume disappeared.
    pub deleted_total: Family<ClassMode, Counter>,
    /// Cleanings that succeeded.
    pub clean_total: Family<ClassMode, Counter>,
    /// Cleanings that failed.
    pub clean_failed_total: Family<ClassMode, Counter>,
    /// Time spent cleaning.
    pub clean_duration: Hist,
    /// Duration of whole discovery passes.
    pub discovery_duration: Histogram,
}

impl Default for LocalMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalMetrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("local_volume_provisioner");
        let m = LocalMetrics {
            registry: Registry::default(),
            volumes: Family::default(),
            capacity_bytes: Family::default(),
            created_total: Family::default(),
            deleted_total: Family::default(),
            clean_total: Family::default(),
            clean_failed_total: Family::default(),
            clean_duration: Family::new_with_constructor(clean_histogram),
            discovery_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
        };
        registry.register(
            "volumes",
            "Usable volumes found by the last discovery pass",
            m.volumes.clone(),
        );
        registry.register(
            "capacity_bytes",
            "Capacity of the usable volumes",
            m.capacity_bytes.clone(),
        );
        registry.register(
            "persistentvolume_created",
            "PVs created for discovered volumes",
            m.created_total.clone(),
        );
        registry.register(
            "persistentvolume_deleted",
            "Available PVs deleted because their volume disappeared",
            m.deleted_total.clone(),
        );
        registry.register("clean", "Volumes cleaned", m.clean_total.clone());
        registry.register(
            "clean_failed",
            "Failed cleanings",
            m.clean_failed_total.clone(),
        );
        registry.register(
            "clean_duration_seconds",
            "Time to clean a volume",
            m.clean_duration.clone(),
        );
        registry.register(
            "discovery_duration_seconds",
            "Time of one discovery pass",
            m.discovery_duration.clone(),
        );
        LocalMetrics { registry, ..m }
    }

    /// Prometheus text of these metrics.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[derive(Clone)]
struct AppState {
    lib: Arc<external_storage::Metrics>,
    ours: Arc<LocalMetrics>,
    ready: Vec<Arc<AtomicBool>>,
}

/// Both metric texts as one exposition (a single `# EOF` at the end).
pub fn combined(lib: &external_storage::Metrics, ours: &LocalMetrics) -> String {
    let lib_text = lib.encode();
    let lib_text = lib_text.strip_suffix("# EOF\n").unwrap_or(&lib_text);
    format!("{lib_text}{}", ours.encode())
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        combined(&s.lib, &s.ours),
    )
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if s.ready.iter().all(|r| r.load(Ordering::Acquire)) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Serves `/metrics`, `/healthz`, `/readyz` on `addr` until `shutdown`;
/// ready when every flag in `ready` is set.
pub async fn serve(
    addr: SocketAddr,
    lib: Arc<external_storage::Metrics>,
    ours: Arc<LocalMetrics>,
    ready: Vec<Arc<AtomicBool>>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { lib, ours, ready });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "metrics server failed");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_exposition_with_both_sets() {
        let ours = LocalMetrics::new();
        ours.created_total
            .get_or_create(&ClassMode::new("fast", "Filesystem"))
            .inc();
        ours.clean_duration
            .get_or_create(&ClassMode::new("fast", "Block"))
            .observe(0.5);
        let lib = external_storage::Metrics::new();
        let text = combined(&lib, &ours);
        assert!(text.contains("controller_is_leader"), "{text}");
        assert!(text.contains("local_volume_provisioner_persistentvolume_created_total{class=\"fast\",mode=\"Filesystem\"} 1"), "{text}");
        assert!(text.contains("local_volume_provisioner_clean_duration_seconds_count{class=\"fast\",mode=\"Block\"} 1"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.ends_with("# EOF\n"));
    }
}
