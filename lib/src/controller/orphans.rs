//! The volumes of deleted nodes: an opt-in sweep that deletes the PV
//! objects pinned to a node that no longer exists
//! (`--delete-volumes-of-deleted-nodes-after`).
//!
//! # Why
//!
//! A node-local provisioner (hostpath, local-volume) runs one instance per
//! node, and only that instance deletes the PVs pinned to its node. When a
//! node is deleted for good, its instance goes with it, and its PVs stay
//! forever: `Released` ones nobody cleans, `Bound` ones whose claim can
//! never be used again (a StatefulSet pod stays Pending, because its claim
//! is bound to a volume on a node that is gone; upstream
//! local-static-provisioner #181, local-path-provisioner #533). The data on
//! such a node is unreachable, so only the PV object is in the way.
//!
//! # What
//!
//! When the policy is on ([`OrphanPolicy`], off by default), a PV is deleted
//! once all of these hold ([`decide`]):
//! - its `provisioned-by` (or `migrated-to`) names this provisioner;
//! - its node affinity pins it to exactly one host: a single required term
//!   holding a single `kubernetes.io/hostname In [x]` expression
//!   ([`pinned_hostname`]); any other shape is left alone;
//! - its reclaim policy is not `Retain` (whoever chose Retain deletes PVs by
//!   hand);
//! - no Node carries that hostname (as its `kubernetes.io/hostname` label
//!   or, for PVs of earlier versions, as its name), and none did for the
//!   whole grace period without interruption ([`Missing`]: the time a
//!   hostname is first seen missing is recorded, and any Node carrying it
//!   again, even briefly, resets it).
//!
//! No data is touched: only the PV object is deleted (with a UID and
//! resourceVersion precondition). A `Bound` PV then stays `Terminating`
//! (the `kubernetes.io/pv-protection` finalizer) until its claim is
//! deleted; deleting and re-creating the claim (what a StatefulSet does
//! after `kubectl delete pvc,pod`) provisions a new volume on a node that
//! exists. A Normal `DeletedNodeVolumeRemoved` event goes on the PV and,
//! for a bound one, a Warning `VolumeOfDeletedNode` on its claim, naming
//! the node and since when it was missing. Our own PV finalizer
//! (`--add-finalizer`) on such a PV, being deleted, is released too: it
//! waits for a backend deletion only the vanished node's instance could do.
//!
//! # Conservative by construction
//!
//! - Nothing happens until the Node cache has synced, and a round does
//!   nothing at all while the cache holds no Node (a cluster without Nodes
//!   is far likelier a broken list or a wrong cluster than a real state).
//! - "Missing since" lives in memory, so a restart or a change of sweeper
//!   starts the grace period again: deletion can come later, never sooner.
//! - Right before deleting, the hostname is looked up once more on the API
//!   server itself (a Node with that label, or that name); a failed lookup
//!   skips the round.
//!
//! # Who sweeps
//!
//! In node-local mode there is no leader election and every instance sees
//! the same deleted node. The sweep holds a Lease of its own
//! ([`orphan_lease_name`], in the leader-election namespace) through the
//! same code as leader election ([`crate::leader`]): exactly one live
//! instance sweeps, the others stand by and take over when it dies. Only
//! the holder watches all PVs and all Nodes for the sweep (a local-volume
//! instance otherwise caches only its own node's PVs); these caches are its
//! own, beside the loops' (on a hostpath holder the PVs are cached twice:
//! the price of keeping the sweep independent of the loops' watches and
//! selectors). `controller_deleted_node_sweeper` is 1 on the holder,
//! `controller_deleted_node_volumes_total` counts its deletions,
//! `controller_deleted_node_sweeps_total` its rounds and
//! `controller_deleted_node_missing_hostnames` what it is waiting on. During a handover
//! two holders may overlap for a moment: every delete carries a UID and
//! resourceVersion precondition, so the second delete of the same PV fails
//! harmlessly (409 or 404) and publishes nothing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, ObjectReference, PersistentVolume};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::compact::{self, Compact, Slim};
use super::finalizers::{delete_if_unchanged, is_status, remove_finalizer};
use super::volume::is_ours;
use super::Scope;
use crate::annotations as a;
use crate::events::{Events, Reason};
use crate::leader::{self, LeaderElection};
use crate::metrics::Metrics;

/// The deleted-node policy: how long a node must be gone before its PVs are
/// deleted, how often to look, and who looks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrphanPolicy {
    /// How long a node must be missing, without interruption, before the PVs
    /// pinned to it are deleted. Never zero (zero means the policy is off).
    pub grace: Duration,
    /// Time between two sweep rounds ([`OrphanPolicy::new`]: a quarter of
    /// the grace period, between 500 ms and 30 s).
    pub interval: Duration,
    /// The Lease that makes one instance the sweeper; `None` sweeps without
    /// one (a single instance, tests).
    pub lease: Option<LeaderElection>,
}

impl OrphanPolicy {
    /// The policy for `grace` (`None` if zero: off), sweeping under `lease`.
    pub fn new(grace: Duration, lease: Option<LeaderElection>) -> Option<Self> {
        if grace.is_zero() {
            return None;
        }
        let interval = (grace / 4).clamp(Duration::from_millis(500), Duration::from_secs(30));
        Some(Self {
            grace,
            interval,
            lease,
        })
    }
}

/// The name of the sweep's Lease: the provisioner's leader-election Lease
/// name ([`leader::lease_name`]) with `-orphans`, within 63 characters.
pub fn orphan_lease_name(provisioner_name: &str) -> String {
    const SUFFIX: &str = "-orphans";
    let mut base = leader::lease_name(provisioner_name);
    base.truncate(63 - SUFFIX.len());
    format!("{}{SUFFIX}", base.trim_end_matches('-'))
}

/// The one hostname a PV's node affinity pins it to: exactly one required
/// term, holding exactly one expression `kubernetes.io/hostname In [x]` and
/// no field selector. Any other shape (several terms or values, other keys,
/// other operators) is `None`: not a PV this sweep reasons about.
pub fn pinned_hostname(pv: &PersistentVolume) -> Option<&str> {
    let terms = &pv
        .spec
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required
        .as_ref()?
        .node_selector_terms;
    let [term] = terms.as_slice() else {
        return None;
    };
    if term.match_fields.as_ref().is_some_and(|f| !f.is_empty()) {
        return None;
    }
    let [expr] = term.match_expressions.as_deref()? else {
        return None;
    };
    if expr.key != a::HOSTNAME_LABEL || expr.operator != "In" {
        return None;
    }
    match expr.values.as_deref()? {
        [value] if !value.is_empty() => Some(value),
        _ => None,
    }
}

/// The Nodes that exist, as far as a PV's hostname is concerned: their
/// `kubernetes.io/hostname` labels and their names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodesSeen {
    hostnames: HashSet<String>,
    names: HashSet<String>,
}

impl NodesSeen {
    /// From the cached Nodes (name and hostname label).
    pub fn from_nodes<'a>(nodes: impl IntoIterator<Item = &'a PartialObjectMeta<Node>>) -> Self {
        let mut seen = Self::default();
        for n in nodes {
            seen.add(n.metadata.name.as_deref(), node_hostname(n));
        }
        seen
    }

    /// Add a Node by its name and `kubernetes.io/hostname` label.
    pub fn add(&mut self, name: Option<&str>, hostname: Option<&str>) {
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            self.names.insert(n.to_string());
        }
        if let Some(h) = hostname.filter(|h| !h.is_empty()) {
            self.hostnames.insert(h.to_string());
        }
    }

    /// Whether some Node carries `hostname` as its label, or as its name
    /// (PVs of earlier versions named the node).
    pub fn has(&self, hostname: &str) -> bool {
        self.hostnames.contains(hostname) || self.names.contains(hostname)
    }

    /// Whether no Node is known at all.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.hostnames.is_empty()
    }
}

fn node_hostname(n: &PartialObjectMeta<Node>) -> Option<&str> {
    n.metadata
        .labels
        .as_ref()?
        .get(a::HOSTNAME_LABEL)
        .map(String::as_str)
}

/// Since when each hostname PVs are pinned to has been missing: the first
/// round that did not find it, as a monotonic instant (for the grace
/// period) and as wall-clock time (for the events).
#[derive(Clone, Debug, Default)]
pub struct Missing {
    since: HashMap<String, (Instant, Timestamp)>,
}

impl Missing {
    /// One round's view: every hostname in `pinned` that no Node in `nodes`
    /// carries is missing since `now` unless it already was; every other
    /// hostname is forgotten (present again, or no PV names it any more).
    /// With no Node known at all nothing is learned (see the module docs).
    pub fn observe<'a>(
        &mut self,
        pinned: impl IntoIterator<Item = &'a str>,
        nodes: &NodesSeen,
        now: Instant,
        wall: Timestamp,
    ) {
        if nodes.is_empty() {
            return;
        }
        let gone: HashSet<&str> = pinned.into_iter().filter(|h| !nodes.has(h)).collect();
        self.since.retain(|h, _| gone.contains(h.as_str()));
        for h in gone {
            self.since.entry(h.to_string()).or_insert((now, wall));
        }
    }

    /// A Node carrying `hostname` (as label or name) was seen: it is not
    /// missing, and a later absence starts a new grace period.
    pub fn seen(&mut self, hostname: &str) {
        self.since.remove(hostname);
    }

    /// Since when `hostname` has been missing, if it is.
    pub fn since(&self, hostname: &str) -> Option<(Instant, Timestamp)> {
        self.since.get(hostname).copied()
    }

    /// How many hostnames are missing.
    pub fn len(&self) -> usize {
        self.since.len()
    }

    /// Whether no hostname is missing.
    pub fn is_empty(&self) -> bool {
        self.since.is_empty()
    }
}

/// Why a PV is not the sweep's business.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrphanSkip {
    /// Not provisioned by (nor migrated to) one of our names.
    NotOurs,
    /// Not pinned to exactly one hostname ([`pinned_hostname`]).
    NotPinned,
    /// Reclaim policy `Retain`: left to whoever chose it.
    Retain,
    /// A Node carries its hostname.
    NodePresent,
    /// No Node is known at all: the sweep does nothing.
    NoNodes,
    /// Being deleted already, without our finalizer: nothing left to do.
    Deleting,
}

/// What the sweep does with one PV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrphanDecision {
    /// Leave the PV alone, for the reason given.
    Skip(OrphanSkip),
    /// Its node is missing, for less than the grace period so far.
    Wait {
        /// The missing hostname.
        hostname: String,
        /// Until the grace period is over.
        remaining: Duration,
    },
    /// Its node has been missing for the whole grace period: delete the PV.
    Delete {
        /// The missing hostname.
        hostname: String,
    },
    /// Being deleted already and holding our PV finalizer, which only the
    /// vanished node's instance would remove: remove it.
    ReleaseFinalizer {
        /// The missing hostname.
        hostname: String,
    },
}

/// Decide what the sweep does with `pv`, given the Nodes that exist, since
/// when hostnames have been missing, the time `now` and the `grace` period.
pub fn decide(
    scope: &Scope,
    pv: &PersistentVolume,
    nodes: &NodesSeen,
    missing: &Missing,
    now: Instant,
    grace: Duration,
) -> OrphanDecision {
    use OrphanDecision as D;
    if !is_ours(scope, pv) {
        return D::Skip(OrphanSkip::NotOurs);
    }
    let Some(hostname) = pinned_hostname(pv) else {
        return D::Skip(OrphanSkip::NotPinned);
    };
    let policy = pv
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref());
    if policy == Some("Retain") {
        return D::Skip(OrphanSkip::Retain);
    }
    if nodes.is_empty() {
        return D::Skip(OrphanSkip::NoNodes);
    }
    if nodes.has(hostname) {
        return D::Skip(OrphanSkip::NodePresent);
    }
    let hostname = hostname.to_string();
    // Not recorded as missing yet: the grace period starts with this round.
    let gone_for = missing
        .since(&hostname)
        .map_or(Duration::ZERO, |(at, _)| now.saturating_duration_since(at));
    if gone_for < grace {
        return D::Wait {
            hostname,
            remaining: grace - gone_for,
        };
    }
    let ours_to_release = pv.finalizers().iter().any(|f| f == a::PV_FINALIZER);
    match (pv.metadata.deletion_timestamp.is_some(), ours_to_release) {
        (false, _) => D::Delete { hostname },
        (true, true) => D::ReleaseFinalizer { hostname },
        (true, false) => D::Skip(OrphanSkip::Deleting),
    }
}

/// Why the API call on one PV failed; the sweep logs it and tries again
/// next round.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrphanError {
    /// Looking the hostname up on the API server failed.
    #[error("looking up Nodes with {} {hostname}: {source}", a::HOSTNAME_LABEL)]
    NodeLookup {
        /// The hostname.
        hostname: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Deleting the PV (or removing our finalizer from it) failed.
    #[error("deleting PersistentVolume {pv}: {source}")]
    Delete {
        /// The PV.
        pv: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// Whether a Node with `hostname` as its label, or as its name, exists on
/// the API server right now (not in a cache).
async fn node_exists_live(client: &Client, hostname: &str) -> Result<bool, OrphanError> {
    let api: Api<PartialObjectMeta<Node>> = Api::all(client.clone());
    let err = |source| OrphanError::NodeLookup {
        hostname: hostname.to_string(),
        source,
    };
    let by_label = api
        .list_metadata(
            &ListParams::default()
                .labels(&format!("{}={hostname}", a::HOSTNAME_LABEL))
                .limit(1),
        )
        .await
        .map_err(err)?;
    if !by_label.items.is_empty() {
        return Ok(true);
    }
    let nodes: Api<Node> = Api::all(client.clone());
    Ok(nodes
        .get_metadata_opt(hostname)
        .await
        .map_err(err)?
        .is_some())
}

/// Everything one sweeper needs.
struct Sweeper {
    client: Client,
    scope: Scope,
    policy: OrphanPolicy,
    events: Events,
    metrics: Arc<Metrics>,
    missing: Arc<Mutex<Missing>>,
}

/// Run the sweep until `shutdown`: behind its Lease when the policy has
/// one, else at once.
pub(crate) async fn run(
    client: Client,
    scope: Scope,
    policy: OrphanPolicy,
    events: Events,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let sweeper = Sweeper {
        client: client.clone(),
        scope,
        policy: policy.clone(),
        events,
        metrics: metrics.clone(),
        missing: Default::default(),
    };
    tracing::info!(grace = ?policy.grace, lease = ?policy.lease.as_ref().map(|l| &l.lease_name), "deleting the PVs of deleted nodes after the grace period");
    match policy.lease {
        None => {
            metrics.deleted_node_sweeper.set(1);
            sweeper
                .sweep_until(CancellationToken::new(), shutdown)
                .await;
            metrics.deleted_node_sweeper.set(0);
        }
        Some(le) => {
            let holding = &metrics.deleted_node_sweeper;
            leader::run_elected(client, le, holding, shutdown, |stop, graceful| {
                sweeper.missing_reset();
                sweeper.sweep_until(stop, graceful)
            })
            .await
        }
    }
}

impl Sweeper {
    /// A new term starts without memory: the grace period starts over.
    fn missing_reset(&self) {
        *self.missing.lock().unwrap_or_else(|e| e.into_inner()) = Missing::default();
    }

    /// Watch Nodes and PVs and sweep every interval until `stop` or
    /// `graceful` is cancelled.
    async fn sweep_until(&self, stop: CancellationToken, graceful: CancellationToken) {
        let (nodes, node_writer) = reflector::store::<PartialObjectMeta<Node>>();
        let missing = self.missing.clone();
        let node_driver = watcher(
            Api::<PartialObjectMeta<Node>>::all(self.client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(Slim::slim)
        .reflect(node_writer)
        .for_each(move |ev| {
            // A Node carrying a hostname, even for a moment between two
            // rounds, resets its grace period.
            if let Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n)) = &ev {
                let mut m = missing.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(h) = node_hostname(n) {
                    m.seen(h);
                }
                if let Some(name) = n.metadata.name.as_deref() {
                    m.seen(name);
                }
            }
            futures::future::ready(())
        });
        let (pvs, pv_writer) = reflector::store::<Compact<PersistentVolume>>();
        let pv_driver = watcher(
            Api::<PersistentVolume>::all(self.client.clone()),
            compact::watch_config(),
        )
        .default_backoff()
        .map_ok(compact::event)
        .reflect(pv_writer)
        .for_each(|_| futures::future::ready(()));
        let rounds = async {
            let synced =
                futures::future::join(nodes.wait_until_ready(), pvs.wait_until_ready()).await;
            if synced.0.is_err() || synced.1.is_err() {
                return; // a cache's writer is gone: its watch ended
            }
            tracing::info!("deleted-node sweep: Node and PV caches synced");
            let mut tick = tokio::time::interval(self.policy.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                self.round(&nodes, &pvs).await;
            }
        };
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = graceful.cancelled() => {}
            _ = node_driver => {}
            _ = pv_driver => {}
            _ = rounds => {}
        }
    }

    /// One round: learn which hostnames are missing, then act on the PVs
    /// whose grace period is over.
    async fn round(
        &self,
        nodes: &Store<PartialObjectMeta<Node>>,
        pvs: &Store<Compact<PersistentVolume>>,
    ) {
        self.metrics.deleted_node_sweeps_total.inc();
        let seen = NodesSeen::from_nodes(nodes.state().iter().map(|n| n.as_ref()));
        if seen.is_empty() {
            tracing::debug!("deleted-node sweep: no Node known; doing nothing");
            return;
        }
        let (now, wall) = (Instant::now(), Timestamp::now());
        let volumes: Vec<PersistentVolume> = pvs.state().iter().map(|c| c.get()).collect();
        let ours: Vec<&PersistentVolume> = volumes
            .iter()
            .filter(|pv| is_ours(&self.scope, pv))
            .collect();
        let due: Vec<(&PersistentVolume, OrphanDecision)> = {
            let mut missing = self.missing.lock().unwrap_or_else(|e| e.into_inner());
            missing.observe(
                ours.iter().filter_map(|pv| pinned_hostname(pv)),
                &seen,
                now,
                wall,
            );
            self.metrics
                .deleted_node_missing_hostnames
                .set(i64::try_from(missing.len()).unwrap_or(i64::MAX));
            ours.iter()
                .map(|pv| {
                    let d = decide(&self.scope, pv, &seen, &missing, now, self.policy.grace);
                    (*pv, d)
                })
                .filter(|(_, d)| {
                    matches!(
                        d,
                        OrphanDecision::Delete { .. } | OrphanDecision::ReleaseFinalizer { .. }
                    )
                })
                .collect()
        };
        let mut confirmed: HashMap<String, bool> = HashMap::new();
        for (pv, decision) in due {
            let hostname = match &decision {
                OrphanDecision::Delete { hostname }
                | OrphanDecision::ReleaseFinalizer { hostname } => hostname.clone(),
                _ => continue,
            };
            let gone = match confirmed.get(&hostname) {
                Some(g) => *g,
                None => {
                    let g = match node_exists_live(&self.client, &hostname).await {
                        Ok(exists) => !exists,
                        Err(e) => {
                            tracing::warn!(error = %e, "deleted-node sweep: cannot confirm the node is gone; next round");
                            false
                        }
                    };
                    if !g {
                        self.missing
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .seen(&hostname);
                    }
                    confirmed.insert(hostname.clone(), g);
                    g
                }
            };
            if !gone {
                continue;
            }
            let since = self
                .missing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .since(&hostname)
                .map_or(wall, |(_, w)| w);
            if let Err(e) = self.act(pv, &decision, &hostname, since).await {
                tracing::warn!(error = %e, "deleted-node sweep: failed; next round");
            }
        }
    }

    /// Delete `pv` (or release our finalizer from it) and publish the events.
    async fn act(
        &self,
        pv: &PersistentVolume,
        decision: &OrphanDecision,
        hostname: &str,
        since: Timestamp,
    ) -> Result<(), OrphanError> {
        let name = pv.name_any();
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        let err = |source| OrphanError::Delete {
            pv: name.clone(),
            source,
        };
        if let OrphanDecision::ReleaseFinalizer { .. } = decision {
            remove_finalizer(&api, pv, a::PV_FINALIZER)
                .await
                .map_err(err)?;
            tracing::info!(pv = %name, %hostname, "released our finalizer from a PV of a deleted node");
            return Ok(());
        }
        match api.delete(&name, &delete_if_unchanged(pv)).await {
            Ok(_) => {}
            // Gone, or changed since the cache saw it (another sweeper
            // during a handover, a new binding): nothing to report; a
            // changed PV is decided again next round.
            Err(e) if is_status(&e, 404) || is_status(&e, 409) => {
                tracing::debug!(pv = %name, error = %e, "PV gone or changed; not deleted");
                return Ok(());
            }
            Err(e) => return Err(err(e)),
        }
        let grace = self.policy.grace;
        self.metrics.deleted_node_volumes_total.inc();
        tracing::info!(pv = %name, %hostname, %since, "deleted the PV of a deleted node");
        let claim = pv
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .filter(|_| pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"));
        let claim_note = claim
            .and_then(|r| {
                Some(format!(
                    " (bound to claim {}/{})",
                    r.namespace.as_deref()?,
                    r.name.as_deref()?
                ))
            })
            .unwrap_or_default();
        self.events
            .publish(
                &pv.object_ref(&()),
                Reason::DeletedNodeVolumeRemoved,
                format!(
                    "deleted PersistentVolume {name}{claim_note}: no Node with {} {hostname} has been seen since {since}, when this sweep first found it missing (--delete-volumes-of-deleted-nodes-after {grace:?}); only the PV object was deleted, the data on that node was not touched",
                    a::HOSTNAME_LABEL
                ),
            )
            .await;
        if let Some(r) = claim {
            let claim_ref = ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                uid: r.uid.clone(),
                ..Default::default()
            };
            self.events
                .publish(
                    &claim_ref,
                    Reason::VolumeOfDeletedNode,
                    format!(
                        "the volume {name} of this claim was on node {hostname}, which has been missing since {since}; its PV was deleted and stays Terminating while this claim holds it; delete this claim (and its pod) and create it again to get a new volume on a node that exists (a StatefulSet re-creates both)"
                    ),
                )
                .await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;
    use k8s_openapi::api::core::v1::{
        NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, VolumeNodeAffinity,
    };

    const P: &str = "example.com/p";
    const GRACE: Duration = Duration::from_secs(60);

    fn scope() -> Scope {
        Scope {
            names: vec![P.into()],
            node_name: Some("n2".into()),
            node_hostname: None,
        }
    }

    fn nodes(list: &[(&str, &str)]) -> NodesSeen {
        let mut s = NodesSeen::default();
        for (name, hostname) in list {
            s.add(Some(name), Some(hostname));
        }
        s
    }

    fn on(host: &str) -> PvBuilder {
        pv("v")
            .provisioned_by(P)
            .node_affinity(a::HOSTNAME_LABEL, host)
    }

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn with_terms(terms: Vec<NodeSelectorTerm>) -> PersistentVolume {
        let mut v = pv("v").provisioned_by(P).build();
        v.spec.get_or_insert_with(Default::default).node_affinity = Some(VolumeNodeAffinity {
            required: Some(NodeSelector {
                node_selector_terms: terms,
            }),
        });
        v
    }

    fn term(exprs: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: Some(exprs),
            match_fields: None,
        }
    }

    #[test]
    fn only_one_hostname_in_one_term_pins_a_pv() {
        let h = a::HOSTNAME_LABEL;
        let cases: Vec<(&str, PersistentVolume, Option<&str>)> = vec![
            ("one hostname", on("n1").build(), Some("n1")),
            ("no affinity", pv("v").build(), None),
            (
                "two values",
                with_terms(vec![term(vec![req(h, "In", &["n1", "n3"])])]),
                None,
            ),
            (
                "no value",
                with_terms(vec![term(vec![req(h, "In", &[])])]),
                None,
            ),
            (
                "empty value",
                with_terms(vec![term(vec![req(h, "In", &[""])])]),
                None,
            ),
            (
                "NotIn",
                with_terms(vec![term(vec![req(h, "NotIn", &["n1"])])]),
                None,
            ),
            (
                "other key",
                with_terms(vec![term(vec![req("zone", "In", &["n1"])])]),
                None,
            ),
            (
                "two expressions",
                with_terms(vec![term(vec![
                    req(h, "In", &["n1"]),
                    req("zone", "In", &["z"]),
                ])]),
                None,
            ),
            (
                "two terms",
                with_terms(vec![
                    term(vec![req(h, "In", &["n1"])]),
                    term(vec![req(h, "In", &["n3"])]),
                ]),
                None,
            ),
            (
                "a field selector too",
                with_terms(vec![NodeSelectorTerm {
                    match_expressions: Some(vec![req(h, "In", &["n1"])]),
                    match_fields: Some(vec![req("metadata.name", "In", &["n1"])]),
                }]),
                None,
            ),
        ];
        for (what, v, want) in cases {
            assert_eq!(pinned_hostname(&v), want, "{what}");
        }
    }

    #[test]
    fn decisions() {
        let t0 = Instant::now();
        let wall = Timestamp::now();
        let live = nodes(&[("n2", "n2"), ("n3.example.com", "n3")]);
        let none = NodesSeen::default();
        let mut missing = Missing::default();
        missing.observe(["n1", "n9"], &live, t0, wall);
        let late = t0 + GRACE;
        let early = t0 + GRACE / 2;
        let del = |h: &str| OrphanDecision::Delete { hostname: h.into() };
        let skip = OrphanDecision::Skip;
        let cases: Vec<(&str, PersistentVolume, &NodesSeen, Instant, OrphanDecision)> = vec![
            (
                "bound, node gone for the grace period",
                on("n1").phase("Bound").claim_ref("ns", "c").build(),
                &live,
                late,
                del("n1"),
            ),
            (
                "released, node gone",
                on("n1").phase("Released").build(),
                &live,
                late,
                del("n1"),
            ),
            (
                "available, node gone",
                on("n1").phase("Available").build(),
                &live,
                late,
                del("n1"),
            ),
            (
                "gone for half the grace period",
                on("n1").phase("Bound").build(),
                &live,
                early,
                OrphanDecision::Wait {
                    hostname: "n1".into(),
                    remaining: GRACE / 2,
                },
            ),
            (
                "never seen missing before: the grace period starts now",
                on("n7").phase("Bound").build(),
                &live,
                late,
                OrphanDecision::Wait {
                    hostname: "n7".into(),
                    remaining: GRACE,
                },
            ),
            (
                "node present by label",
                on("n3").phase("Bound").build(),
                &live,
                late,
                skip(OrphanSkip::NodePresent),
            ),
            (
                "node present by name",
                on("n3.example.com").build(),
                &live,
                late,
                skip(OrphanSkip::NodePresent),
            ),
            (
                "our own node",
                on("n2").phase("Released").build(),
                &live,
                late,
                skip(OrphanSkip::NodePresent),
            ),
            (
                "not ours",
                pv("v")
                    .provisioned_by("other")
                    .node_affinity(a::HOSTNAME_LABEL, "n1")
                    .build(),
                &live,
                late,
                skip(OrphanSkip::NotOurs),
            ),
            (
                "unannotated",
                pv("v").node_affinity(a::HOSTNAME_LABEL, "n1").build(),
                &live,
                late,
                skip(OrphanSkip::NotOurs),
            ),
            (
                "retain",
                on("n1").policy("Retain").build(),
                &live,
                late,
                skip(OrphanSkip::Retain),
            ),
            (
                "not pinned",
                pv("v").provisioned_by(P).build(),
                &live,
                late,
                skip(OrphanSkip::NotPinned),
            ),
            (
                "no Node known at all",
                on("n1").build(),
                &none,
                late,
                skip(OrphanSkip::NoNodes),
            ),
            (
                "being deleted, held by pv-protection",
                on("n1")
                    .phase("Bound")
                    .deleting()
                    .finalizer(a::PV_PROTECTION_FINALIZER)
                    .build(),
                &live,
                late,
                skip(OrphanSkip::Deleting),
            ),
            (
                "being deleted with our finalizer",
                on("n1")
                    .phase("Released")
                    .deleting()
                    .finalizer(a::PV_FINALIZER)
                    .build(),
                &live,
                late,
                OrphanDecision::ReleaseFinalizer {
                    hostname: "n1".into(),
                },
            ),
        ];
        for (what, v, seen, now, want) in cases {
            assert_eq!(
                decide(&scope(), &v, seen, &missing, now, GRACE),
                want,
                "{what}"
            );
        }
    }

    #[test]
    fn a_node_that_comes_back_resets_its_grace_period() {
        let t0 = Instant::now();
        let wall = Timestamp::now();
        let without = nodes(&[("n2", "n2")]);
        let with = nodes(&[("n2", "n2"), ("n1", "n1")]);
        let v = on("n1").phase("Bound").build();
        let mut m = Missing::default();
        m.observe(["n1"], &without, t0, wall);
        // Back in a round: forgotten.
        m.observe(["n1"], &with, t0 + GRACE / 2, wall);
        assert_eq!(m.since("n1"), None);
        // Missing again: a new grace period from then.
        let t1 = t0 + GRACE * 3 / 4;
        m.observe(["n1"], &without, t1, wall);
        assert!(matches!(
            decide(&scope(), &v, &without, &m, t0 + GRACE, GRACE),
            OrphanDecision::Wait { .. }
        ));
        assert_eq!(
            decide(&scope(), &v, &without, &m, t1 + GRACE, GRACE),
            OrphanDecision::Delete {
                hostname: "n1".into()
            }
        );
        // Seen by the watch between two rounds: forgotten too.
        m.seen("n1");
        assert_eq!(m.since("n1"), None);
        // A later round keeps the first time, not the latest.
        m.observe(["n1"], &without, t1, wall);
        m.observe(["n1"], &without, t1 + GRACE, wall);
        assert_eq!(m.since("n1").map(|(t, _)| t), Some(t1));
    }

    #[test]
    fn an_empty_node_list_teaches_nothing() {
        let t0 = Instant::now();
        let mut m = Missing::default();
        m.observe(["n1"], &NodesSeen::default(), t0, Timestamp::now());
        assert_eq!(m.since("n1"), None);
        // Hostnames no PV names any more are forgotten.
        m.observe(["n1"], &nodes(&[("n2", "n2")]), t0, Timestamp::now());
        assert!(m.since("n1").is_some());
        m.observe(
            std::iter::empty(),
            &nodes(&[("n2", "n2")]),
            t0,
            Timestamp::now(),
        );
        assert_eq!(m.since("n1"), None);
    }

    #[test]
    fn policy_zero_is_off_and_the_interval_is_bounded() {
        assert_eq!(OrphanPolicy::new(Duration::ZERO, None), None);
        let p = OrphanPolicy::new(Duration::from_secs(2), None).unwrap();
        assert_eq!(p.interval, Duration::from_millis(500));
        let p = OrphanPolicy::new(Duration::from_secs(3600), None).unwrap();
        assert_eq!(p.interval, Duration::from_secs(30));
        let p = OrphanPolicy::new(Duration::from_secs(60), None).unwrap();
        assert_eq!(p.interval, Duration::from_secs(15));
    }

    #[test]
    fn the_lease_name_is_derived_and_bounded() {
        assert_eq!(
            orphan_lease_name("example.com/hostpath"),
            "example-com-hostpath-orphans"
        );
        let long = orphan_lease_name(&"a".repeat(100));
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("-orphans"));
    }
}
