//! Prometheus metrics, named like the Go library's so dashboards carry over.
//!
//! Counters and histograms are labelled by StorageClass. The gauges describe
//! the controller itself: objects waiting for a retry, operations running
//! now, and whether this replica is the leader.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label set `{class}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    /// StorageClass name.
    pub class: String,
}

/// Label set `{queue}`: `claim` or `volume`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    /// Which loop.
    pub queue: String,
}

type HistogramFamily = Family<ClassLabel, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

/// All metrics of one controller, and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    /// `controller_persistentvolumeclaim_provision_total{class}`.
    pub provision_total: Family<ClassLabel, Counter>,
    /// `controller_persistentvolumeclaim_provision_failed_total{class}`.
    pub provision_failed_total: Family<ClassLabel, Counter>,
    /// `controller_persistentvolumeclaim_provision_duration_seconds{class}`.
    pub provision_duration: HistogramFamily,
    /// `controller_persistentvolume_delete_total{class}`.
    pub delete_total: Family<ClassLabel, Counter>,
    /// `controller_persistentvolume_delete_failed_total{class}`.
    pub delete_failed_total: Family<ClassLabel, Counter>,
    /// `controller_persistentvolume_delete_duration_seconds{class}`.
    pub delete_duration: HistogramFamily,
    /// `controller_queue_depth{queue}`: objects waiting for a retry.
    pub queue_depth: Family<QueueLabel, Gauge>,
    /// `controller_in_progress{queue}`: reconciles running now.
    pub in_progress: Family<QueueLabel, Gauge>,
    /// `controller_is_leader`: 1 while this replica runs the workers.
    pub is_leader: Gauge,
    /// `controller_deleted_node_volumes_total`: PV objects deleted because
    /// their node was deleted (`--delete-volumes-of-deleted-nodes-after`).
    pub deleted_node_volumes_total: Counter,
    /// `controller_deleted_node_sweeper`: 1 while this replica holds the
    /// Lease of the deleted-node sweep.
    pub deleted_node_sweeper: Gauge,
    /// `controller_deleted_node_sweeps_total`: rounds the sweep ran (also
    /// those that did nothing, e.g. while no Node is known).
    pub deleted_node_sweeps_total: Counter,
    /// `controller_deleted_node_missing_hostnames`: hostnames our PVs are
    /// pinned to that no Node carries, as of the last round.
    pub deleted_node_missing_hostnames: Gauge,
    /// `controller_pending_volumes`: backend volumes whose intent record was
    /// still pending at the last intent sweep (`controller/intent_sweep.rs`).
    pub pending_volumes: Gauge,
    /// `controller_pending_volumes_discarded_total`: pending volumes the
    /// intent sweep removed (their claim was gone and no PV was saved).
    pub pending_volumes_discarded_total: Counter,
    /// `controller_events_sent_total`: Normal events created by the outbox.
    pub events_sent_total: Counter,
    /// `controller_events_failed_total`: Normal events the API server
    /// refused or that could not be sent (logged; none is dropped unsent).
    pub events_failed_total: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        Self::with_registry(|_| {})
    }

    /// As [`new`](Self::new), then `register` adds the provisioner's own
    /// metrics to the same registry, so `/metrics` serves both in one
    /// exposition. Register under a prefix of your own, e.g.
    /// `registry.sub_registry_with_prefix("my_provisioner")`; the library's
    /// metrics use `controller`. Types come from the re-exported
    /// [`prometheus_client`], so versions match.
    pub fn with_registry(register: impl FnOnce(&mut Registry)) -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            provision_total: Family::default(),
            provision_failed_total: Family::default(),
            provision_duration: Family::new_with_constructor(duration_histogram),
            delete_total: Family::default(),
            delete_failed_total: Family::default(),
            delete_duration: Family::new_with_constructor(duration_histogram),
            queue_depth: Family::default(),
            in_progress: Family::default(),
            is_leader: Gauge::default(),
            deleted_node_volumes_total: Counter::default(),
            deleted_node_sweeper: Gauge::default(),
            deleted_node_sweeps_total: Counter::default(),
            deleted_node_missing_hostnames: Gauge::default(),
            pending_volumes: Gauge::default(),
            pending_volumes_discarded_total: Counter::default(),
            events_sent_total: Counter::default(),
            events_failed_total: Counter::default(),
            registry: Registry::default(),
        };
        let sub = registry.sub_registry_with_prefix("controller");
        sub.register(
            "persistentvolumeclaim_provision",
            "Volumes provisioned",
            m.provision_total.clone(),
        );
        sub.register(
            "persistentvolumeclaim_provision_failed",
            "Failed provisioning attempts",
            m.provision_failed_total.clone(),
        );
        sub.register(
            "persistentvolumeclaim_provision_duration_seconds",
            "Time to provision a volume and save its PV",
            m.provision_duration.clone(),
        );
        sub.register(
            "persistentvolume_delete",
            "Volumes deleted",
            m.delete_total.clone(),
        );
        sub.register(
            "persistentvolume_delete_failed",
            "Failed delete attempts",
            m.delete_failed_total.clone(),
        );
        sub.register(
            "persistentvolume_delete_duration_seconds",
            "Time to delete a backend volume and its PV",
            m.delete_duration.clone(),
        );
        sub.register(
            "queue_depth",
            "Objects waiting for a retry",
            m.queue_depth.clone(),
        );
        sub.register(
            "in_progress",
            "Reconciles running now",
            m.in_progress.clone(),
        );
        sub.register(
            "is_leader",
            "1 while this replica runs the workers",
            m.is_leader.clone(),
        );
        sub.register(
            "deleted_node_volumes",
            "PV objects deleted because their node was deleted",
            m.deleted_node_volumes_total.clone(),
        );
        sub.register(
            "deleted_node_sweeper",
            "1 while this replica holds the deleted-node sweep's Lease",
            m.deleted_node_sweeper.clone(),
        );
        sub.register(
            "deleted_node_sweeps",
            "Rounds the deleted-node sweep ran",
            m.deleted_node_sweeps_total.clone(),
        );
        sub.register(
            "deleted_node_missing_hostnames",
            "Hostnames our PVs are pinned to that no Node carries",
            m.deleted_node_missing_hostnames.clone(),
        );
        sub.register(
            "pending_volumes",
            "Backend volumes whose intent record was pending at the last intent sweep",
            m.pending_volumes.clone(),
        );
        sub.register(
            "pending_volumes_discarded",
            "Pending backend volumes the intent sweep removed (claim gone, no PV saved)",
            m.pending_volumes_discarded_total.clone(),
        );
        sub.register(
            "events_sent",
            "Normal events created",
            m.events_sent_total.clone(),
        );
        sub.register(
            "events_failed",
            "Normal events that could not be created",
            m.events_failed_total.clone(),
        );
        register(&mut registry);
        Metrics { registry, ..m }
    }

    /// The metrics in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The `{class}` label value.
    pub fn class(class: &str) -> ClassLabel {
        ClassLabel {
            class: class.to_string(),
        }
    }

    /// The `{queue}` label value.
    pub fn queue(queue: &str) -> QueueLabel {
        QueueLabel {
            queue: queue.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provisioners_metrics_share_the_exposition() {
        let ours = Counter::<u64>::default();
        let m = Metrics::with_registry(|r| {
            r.sub_registry_with_prefix("example")
                .register("widgets", "Widgets made", ours.clone());
        });
        ours.inc_by(7);
        m.is_leader.set(1);
        let text = m.encode();
        assert!(text.contains("example_widgets_total 7"), "{text}");
        assert!(text.contains("controller_is_leader 1"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    }

    #[test]
    fn names_match_the_go_library() {
        let m = Metrics::new();
        m.provision_total
            .get_or_create(&Metrics::class("fast"))
            .inc();
        m.provision_failed_total
            .get_or_create(&Metrics::class("fast"))
            .inc();
        m.provision_duration
            .get_or_create(&Metrics::class("fast"))
            .observe(0.1);
        m.delete_total.get_or_create(&Metrics::class("fast")).inc();
        m.delete_failed_total
            .get_or_create(&Metrics::class("fast"))
            .inc();
        m.delete_duration
            .get_or_create(&Metrics::class("fast"))
            .observe(0.1);
        m.queue_depth.get_or_create(&Metrics::queue("claim")).set(3);
        m.is_leader.set(1);
        let text = m.encode();
        for line in [
            "controller_persistentvolumeclaim_provision_total{class=\"fast\"} 1",
            "controller_persistentvolumeclaim_provision_failed_total{class=\"fast\"} 1",
            "controller_persistentvolumeclaim_provision_duration_seconds_count{class=\"fast\"} 1",
            "controller_persistentvolume_delete_total{class=\"fast\"} 1",
            "controller_persistentvolume_delete_failed_total{class=\"fast\"} 1",
            "controller_persistentvolume_delete_duration_seconds_count{class=\"fast\"} 1",
            "controller_queue_depth{queue=\"claim\"} 3",
            "controller_is_leader 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
