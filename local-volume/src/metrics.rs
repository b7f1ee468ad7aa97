//! This provisioner's own metrics (prefix `local_volume_provisioner_`),
//! registered in the library's registry ([`external_storage::Metrics::with_registry`])
//! so the library's server exposes them with its controller metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label set `{class, mode}`; `mode` is `Filesystem` or `Block` (what is
/// behind the entry: a mount point or a block device).
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct ClassMode {
    /// The StorageClass the entry's PVs are offered in.
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
#[derive(Clone)]
pub struct LocalMetrics {
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
    /// Every metric, not registered anywhere yet (see [`register`](Self::register)).
    pub fn new() -> Self {
        LocalMetrics {
            volumes: Family::default(),
            capacity_bytes: Family::default(),
            created_total: Family::default(),
            deleted_total: Family::default(),
            clean_total: Family::default(),
            clean_failed_total: Family::default(),
            clean_duration: Family::new_with_constructor(clean_histogram),
            discovery_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
        }
    }

    /// Registers every metric in `registry` under the prefix
    /// `local_volume_provisioner`.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("local_volume_provisioner");
        let m = self;
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
    }

    /// The library's metrics with these registered in the same registry:
    /// what the binary serves on `/metrics`.
    pub fn with_library() -> (external_storage::Metrics, Self) {
        let ours = Self::new();
        let lib = external_storage::Metrics::with_registry(|r| ours.register(r));
        (lib, ours)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_exposition_with_both_sets() {
        let (lib, ours) = LocalMetrics::with_library();
        ours.created_total
            .get_or_create(&ClassMode::new("fast", "Filesystem"))
            .inc();
        ours.clean_duration
            .get_or_create(&ClassMode::new("fast", "Block"))
            .observe(0.5);
        let text = lib.encode();
        assert!(text.contains("controller_is_leader"), "{text}");
        assert!(text.contains("local_volume_provisioner_persistentvolume_created_total{class=\"fast\",mode=\"Filesystem\"} 1"), "{text}");
        assert!(text.contains("local_volume_provisioner_clean_duration_seconds_count{class=\"fast\",mode=\"Block\"} 1"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.ends_with("# EOF\n"));
    }
}
