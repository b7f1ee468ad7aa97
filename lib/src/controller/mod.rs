//! The `ProvisionController`: the claim loop, the volume loop, and how they
//! are started (alone, or behind leader election).
//!
//! Each loop is a kube-runtime [`Controller`]: it deduplicates work per
//! object, never reconciles one object twice at once and runs up to
//! `workers` reconciles in parallel. A reconcile reads the object and the
//! reflector stores (StorageClasses, PVs), calls a *pure* decision function
//! ([`claim::decide`], [`volume::decide`]) and then one `match` performs the
//! API calls. Retry timing comes from [`crate::backoff`]. A loop reconciles
//! each single change, and after every (re)list its whole cache (module
//! `relist`: a reconcile must not read the cache while a relist is half in).
//!
//! # Leak-proof provisioning
//!
//! The Go library keeps "provisioning in progress" in memory, so a volume
//! leaks when the controller restarts between making the backend volume and
//! saving its PV, or when the claim is deleted meanwhile. Here the intent is
//! durable: on the backend's own disk when the provisioner keeps records
//! ([`crate::IntentRecords`]; then no claim is patched and module
//! [`intent_sweep`] removes what a crash left), else on the claim itself,
//! as follows.
//!
//! ## Expected flow
//! 1. A claim is ours and needs a volume: PATCH the finalizer
//!    [`PROVISIONING_FINALIZER`](crate::annotations::PROVISIONING_FINALIZER)
//!    onto it (*record intent*). Only then is `provision` called.
//! 2. `provision` returns; the PV (named deterministically, `pvc-<uid>`) is
//!    created. A 409 whose existing PV has our claim's UID counts as saved.
//! 3. Once the PV exists, the finalizer is removed (*release intent*), by a
//!    task beside the workers (module `release`): the worker goes on to the next
//!    claim without waiting for that patch.
//!
//! ## Failure paths
//! - The PV cannot be saved: retried `pv_save_retries` times with backoff,
//!   then `delete` is called on the backend volume (event
//!   `ProvisioningFailed`, or `ProvisioningCleanupFailed` if that fails too);
//!   the finalizer stays, so the claim is tried again later.
//! - The PV must not be saved, and a retry would repeat that: the API
//!   server refused it as invalid (422; the event quotes its field errors),
//!   or the volume does not fit the claim ([`pv::misfit`]: the PV
//!   controller would never bind it). `delete` is called once, the intent
//!   is released, and the claim is not tried again until it changes.
//! - The node the scheduler selected is deleted before provisioning
//!   starts: every instance watches Node metadata (list/watch nodes), and
//!   the first to confirm the node is gone removes
//!   `volume.kubernetes.io/selected-node` (guarded, with an event) so the
//!   scheduler picks again; in node-local mode no instance serves a deleted
//!   node, so the others must. A deleted Node reconciles every claim once.
//! - The claim is deleted between the read and the intent patch: the API
//!   server refuses a new finalizer on an object being deleted (422); that
//!   is "the claim is going", not an error: nothing was started.
//! - The claim is deleted before its PV is saved: the finalizer keeps it
//!   alive (`deletionTimestamp` set). The controller first re-reads the PV
//!   from the API (not the cache): if it was saved, the intent is simply
//!   released (the PV turns `Released` and the volume loop deletes it).
//!   Otherwise `provision` is called once more with the same options — it
//!   is idempotent, so it returns the volume made before (or makes one) —
//!   and `delete` is called on the result; then the finalizer is released.
//! - The controller dies at any step: all state is on the claim (finalizer)
//!   and PV objects, so the next leader (or the restarted instance) resumes
//!   from step 1, 2 or the deletion path.
//!
//! ## Guarantees
//! - No backend volume made through a claim outlives both the claim and its
//!   PV, as long as `provision` is idempotent per `pv_name` and `delete` of a
//!   missing volume succeeds.
//! - Returning `Failed`, `Reschedule`, `Ignored` or `Infeasible` from
//!   `provision` promises no backend volume exists; the controller then
//!   releases a deleted claim without calling `delete`.
//!
//! ## Caveats
//! - Cleaning up after a deleted claim needs its StorageClass (to call
//!   `provision` again). If the class was deleted too, the claim stays
//!   `Terminating` with a `ProvisioningCleanupFailed` event until the class
//!   is re-created or an operator removes the finalizer by hand (and the
//!   backend volume with it).
//! - Cleanup of a claim that was deleted before `provision` was ever called
//!   makes the volume and deletes it again: correct, but not free.
//! - Removing the finalizer by hand opts the claim out of these guarantees.
//!
//! # The deleted-node sweep
//!
//! Opt-in ([`ControllerOptions::orphans`]): beside the loops, one instance
//! (the holder of a Lease of its own, in either mode) deletes the PV
//! objects pinned to nodes deleted for longer than a grace period; see
//! [`orphans`] for the rules and why.
//!
//! # Reading its own writes
//!
//! The caches trail the API server; `own_writes` remembers the claim
//! versions this controller's writes replaced and the PVs it created, so a
//! reconcile neither acts on a claim older than its own patches nor
//! provisions again because the PV it just saved is not cached yet.
//! Every write of the claim loop goes through `own_writes::ClaimWriter`,
//! which records it as it writes; no other code records (or forgets to).

pub mod claim;
mod claim_loop;
pub mod compact;
mod finalizers;
pub mod intent_sweep;
pub mod orphans;
mod outcome;
mod own_writes;
pub mod pv;
mod release;
mod relist;
mod step;
pub mod volume;

pub use finalizers::{add_finalizer_patch, delete_if_unchanged, remove_finalizer_ops};

use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::backoff::{BackoffPolicy, Backoffs};
use crate::events::Events;
use crate::leader::{self, LeaderElection};
use crate::metrics::Metrics;
use crate::provisioner::Provisioner;
use compact::Compact;
use pv::PvNameFn;

/// Who this controller is: the names it answers to and, in node-local mode,
/// its node. Input to every decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// The provisioner name followed by the additional names.
    pub names: Vec<String>,
    /// `Some(node)` in node-local mode.
    pub node_name: Option<String>,
    /// In node-local mode, the node's `kubernetes.io/hostname` label: what
    /// PV node affinity and a class's `allowedTopologies` name (the
    /// scheduler and kubelet match labels, never the node name). `None`:
    /// the same as the name.
    pub node_hostname: Option<String>,
}

impl Scope {
    /// Whether `name` is one of ours.
    pub fn is_ours(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// In node-local mode, the `kubernetes.io/hostname` label value of our
    /// node (the name when the label is unknown).
    pub fn hostname(&self) -> Option<&str> {
        self.node_hostname.as_deref().or(self.node_name.as_deref())
    }
}

/// Everything that tunes a [`ProvisionController`].
#[derive(Clone)]
pub struct ControllerOptions {
    /// The provisioner name claims and classes refer to
    /// (e.g. `example.com/hostpath`).
    pub provisioner_name: String,
    /// Further names this controller answers to (renamed provisioners).
    pub additional_provisioner_names: Vec<String>,
    /// Node-local mode: only claims whose selected node is this node, only
    /// PVs whose node affinity names it. `None` = cluster-wide.
    pub node_name: Option<String>,
    /// Node-local mode: the node's `kubernetes.io/hostname` label. `None`
    /// makes [`ProvisionController::run`] read it from the Node object
    /// (falling back to the name when the Node has no such label).
    pub node_hostname: Option<String>,
    /// Leader election; `None` runs the workers right away (node-local mode,
    /// or a single replica).
    pub leader_election: Option<LeaderElection>,
    /// Concurrent reconciles per loop (claims and volumes each).
    pub workers: u16,
    /// Put [`PV_FINALIZER`](crate::annotations::PV_FINALIZER) on our PVs.
    pub add_finalizer: bool,
    /// First retry delay after a failure.
    pub retry_interval_start: Duration,
    /// Longest retry delay.
    pub retry_interval_max: Duration,
    /// Retry delay for infeasible requests.
    pub infeasible_retry_interval: Duration,
    /// Consecutive provisioning failures before giving up on a claim until it
    /// changes; 0 = never give up.
    pub failed_provision_threshold: u32,
    /// Consecutive delete failures before giving up on a PV until it
    /// changes; 0 = never give up.
    pub failed_delete_threshold: u32,
    /// Attempts to save a PV after the backend volume was made, before the
    /// backend volume is deleted again.
    pub pv_save_retries: u32,
    /// First delay between PV save attempts (doubles each time).
    pub pv_save_retry_interval: Duration,
    /// Names the PV of a claim; default `pvc-<claim uid>`.
    pub pv_name: PvNameFn,
    /// This replica's identity (events' reporting instance, lease holder).
    pub identity: String,
    /// Run the claim loop (dynamic provisioning). A static provisioner,
    /// which only deletes or recycles PVs it made itself, turns it off and
    /// then watches no claims at all.
    pub watch_claims: bool,
    /// Publish the Normal `Provisioning` event before calling `provision`
    /// (the Go library always does). Off by default: the same reconcile
    /// publishes `ProvisioningSucceeded` or `ProvisioningFailed` right
    /// after it, and at the shipped client rate limit the extra event was
    /// one request in five per volume. Turn it on for a provisioner whose
    /// `provision` takes long (`InProgress`), where it tells a user the
    /// claim is being worked on.
    pub provisioning_event: bool,
    /// Watch only the PVs with these labels (`key=value,...`), e.g. a
    /// node-local static provisioner's node label: each instance then caches
    /// its own node's PVs instead of the whole cluster's. PVs outside the
    /// selector are never touched by the volume loop (the deleted-node
    /// sweep, [`orphans`], watches all PVs of its own).
    pub pv_label_selector: Option<String>,
    /// Delete the PV objects of nodes deleted for longer than a grace
    /// period (`--delete-volumes-of-deleted-nodes-after`); `None` = off.
    /// See [`orphans`].
    pub orphans: Option<orphans::OrphanPolicy>,
    /// For a provisioner with [`IntentRecords`](crate::IntentRecords): how
    /// old a pending record must be before the intent sweep looks at it
    /// (module [`intent_sweep`]).
    pub pending_volume_grace: Duration,
}

impl fmt::Debug for ControllerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControllerOptions")
            .field("provisioner_name", &self.provisioner_name)
            .field(
                "additional_provisioner_names",
                &self.additional_provisioner_names,
            )
            .field("node_name", &self.node_name)
            .field("node_hostname", &self.node_hostname)
            .field("leader_election", &self.leader_election)
            .field("workers", &self.workers)
            .field("add_finalizer", &self.add_finalizer)
            .field("retry_interval_start", &self.retry_interval_start)
            .field("retry_interval_max", &self.retry_interval_max)
            .field("infeasible_retry_interval", &self.infeasible_retry_interval)
            .field(
                "failed_provision_threshold",
                &self.failed_provision_threshold,
            )
            .field("failed_delete_threshold", &self.failed_delete_threshold)
            .field("pv_save_retries", &self.pv_save_retries)
            .field("pv_save_retry_interval", &self.pv_save_retry_interval)
            .field("identity", &self.identity)
            .field("watch_claims", &self.watch_claims)
            .field("provisioning_event", &self.provisioning_event)
            .field("pv_label_selector", &self.pv_label_selector)
            .field("orphans", &self.orphans)
            .field("pending_volume_grace", &self.pending_volume_grace)
            .finish_non_exhaustive()
    }
}

impl ControllerOptions {
    /// Defaults of the Go library for `provisioner_name`: 4 workers, backoff
    /// 15 s → 1000 s, thresholds 15, no leader election (the `Args` turn it
    /// on), no finalizer.
    pub fn new(provisioner_name: impl Into<String>) -> Self {
        Self {
            provisioner_name: provisioner_name.into(),
            additional_provisioner_names: Vec::new(),
            node_name: None,
            node_hostname: None,
            leader_election: None,
            workers: 4,
            add_finalizer: false,
            retry_interval_start: Duration::from_secs(15),
            retry_interval_max: Duration::from_secs(1000),
            infeasible_retry_interval: Duration::from_secs(600),
            failed_provision_threshold: 15,
            failed_delete_threshold: 15,
            pv_save_retries: 5,
            pv_save_retry_interval: Duration::from_secs(1),
            pv_name: Arc::new(pv::default_pv_name),
            identity: default_identity(),
            watch_claims: true,
            provisioning_event: false,
            pv_label_selector: None,
            orphans: None,
            pending_volume_grace: Duration::from_secs(600),
        }
    }

    /// The decision scope these options describe.
    pub fn scope(&self) -> Scope {
        let mut names = vec![self.provisioner_name.clone()];
        names.extend(self.additional_provisioner_names.iter().cloned());
        Scope {
            names,
            node_name: self.node_name.clone(),
            node_hostname: self.node_hostname.clone(),
        }
    }
}

/// `POD_NAME`, else the host name, else a random suffix.
pub fn default_identity() -> String {
    if let Ok(p) = std::env::var("POD_NAME") {
        if !p.is_empty() {
            return p;
        }
    }
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            return format!("{h}-{:08x}", rand::random::<u32>());
        }
    }
    format!("provisioner-{:08x}", rand::random::<u32>())
}

/// Errors that stop [`ProvisionController::run`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControllerError {
    /// Options are inconsistent (e.g. zero workers); fix the flags.
    #[error("invalid controller options: {0}")]
    InvalidOptions(String),
    /// Node-local mode was stopped before it could read its Node (for the
    /// hostname label); the last error says why it could not.
    #[error("stopped before Node {node} could be read for its kubernetes.io/hostname label (the ClusterRole must allow get on nodes): {source}")]
    NodeLookup {
        /// The node named by `--node-name`.
        node: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// State shared by all reconciles of one running controller.
pub(crate) struct Ctx<P> {
    pub(crate) client: Client,
    pub(crate) provisioner: Arc<P>,
    pub(crate) opts: Arc<ControllerOptions>,
    pub(crate) scope: Scope,
    pub(crate) classes: Store<StorageClass>,
    /// The PVs, compact ([`compact`]).
    pub(crate) pvs: Store<Compact<PersistentVolume>>,
    /// The Nodes (metadata only): is a claim's selected node still there?
    pub(crate) nodes: Store<PartialObjectMeta<Node>>,
    pub(crate) events: Events,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) claim_backoff: Backoffs,
    pub(crate) volume_backoff: Backoffs,
    /// Claim versions our own writes replaced (their reconciles are skipped).
    pub(crate) claim_versions: own_writes::ClaimVersions,
    /// PVs we created that the PV cache may not have yet.
    pub(crate) saved_pvs: own_writes::SavedVolumes,
    /// Intent releases under way beside the workers ([`release`]).
    pub(crate) releases: release::Releases,
    /// Volumes being provisioned or swept right now ([`intent_sweep`]).
    pub(crate) in_flight: intent_sweep::InFlight,
}

/// The provisioning controller. Build it with [`ProvisionController::new`]
/// and drive it with [`ProvisionController::run`].
pub struct ProvisionController<P> {
    client: Client,
    provisioner: Arc<P>,
    opts: Arc<ControllerOptions>,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

impl<P: Provisioner> ProvisionController<P> {
    /// A controller for `provisioner` talking to the API through `client`.
    pub fn new(client: Client, provisioner: P, opts: ControllerOptions) -> Self {
        Self::with_shared(client, Arc::new(provisioner), opts)
    }

    /// Like [`new`](Self::new), keeping a handle on the provisioner.
    pub fn with_shared(client: Client, provisioner: Arc<P>, opts: ControllerOptions) -> Self {
        Self {
            client,
            provisioner,
            opts: Arc::new(opts),
            metrics: Arc::new(Metrics::new()),
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Use this metrics registry (e.g. one already served over HTTP).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The controller's metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// A flag that turns true once the controller is running (as leader, or
    /// as a standby campaigning for the lease); for `/readyz`.
    pub fn ready_flag(&self) -> Arc<AtomicBool> {
        self.ready.clone()
    }

    /// Run until `shutdown` is cancelled. With leader election, the workers
    /// run only while this replica holds the lease; losing it stops them and
    /// campaigns again. On shutdown, running reconciles finish and the lease
    /// is released.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), ControllerError> {
        if self.opts.workers == 0 {
            return Err(ControllerError::InvalidOptions(
                "workers must be at least 1 (--worker-threads)".into(),
            ));
        }
        if self.opts.provisioner_name.is_empty() {
            return Err(ControllerError::InvalidOptions(
                "the provisioner name is empty (--provisioner-name)".into(),
            ));
        }
        if let (Some(node), None) = (self.opts.node_name.clone(), &self.opts.node_hostname) {
            // Retried until it succeeds or we are told to stop: an instance
            // (re)started while the API server is away, or before its new
            // RBAC binding is in force, must not exit and leave its node
            // without a provisioner.
            let mut delay = Duration::from_millis(200);
            let hostname = loop {
                match crate::node::hostname_label(&self.client, &node).await {
                    Ok(h) => break h,
                    Err(source) => {
                        tracing::warn!(%node, error = %source, retry_in = ?delay, "cannot read this instance's Node yet");
                        tokio::select! {
                            _ = shutdown.cancelled() => {
                                return Err(ControllerError::NodeLookup { node, source });
                            }
                            _ = tokio::time::sleep(delay) => {}
                        }
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                }
            };
            tracing::info!(%node, %hostname, "node-local mode");
            Arc::make_mut(&mut self.opts).node_hostname = Some(hostname);
        }
        self.ready.store(true, Ordering::Release);
        // The deleted-node sweep runs beside the loops, behind a Lease of
        // its own (module `orphans`), in either mode.
        let sweep = async {
            if let Some(policy) = self.opts.orphans.clone() {
                let events = Events::new(
                    self.client.clone(),
                    &self.opts.provisioner_name,
                    &self.opts.identity,
                );
                orphans::run(
                    self.client.clone(),
                    self.opts.scope(),
                    policy,
                    events.clone(),
                    self.metrics.clone(),
                    shutdown.clone(),
                )
                .await;
                events.flush(Duration::from_secs(5)).await;
            }
        };
        let loops = async {
            match self.opts.leader_election.clone() {
                None => {
                    self.metrics.is_leader.set(1);
                    self.run_workers(CancellationToken::new(), shutdown.clone())
                        .await;
                    self.metrics.is_leader.set(0);
                }
                Some(le) => {
                    let client = self.client.clone();
                    leader::run_elected(
                        client,
                        le,
                        &self.metrics.is_leader,
                        shutdown.clone(),
                        |stop, graceful| self.run_workers(stop, graceful),
                    )
                    .await;
                }
            }
        };
        futures::future::join(loops, sweep).await;
        self.ready.store(false, Ordering::Release);
        Ok(())
    }

    /// Run both loops until `stop` is cancelled; `graceful` cancelled first
    /// lets running reconciles finish.
    async fn run_workers(&self, stop: CancellationToken, graceful: CancellationToken) {
        let client = self.client.clone();
        let client_for_sweep = client.clone();
        let scope = self.opts.scope();
        let (classes, class_writer) = reflector::store::<StorageClass>();
        let class_driver = watcher(
            Api::<StorageClass>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(class_writer)
        .for_each(|_| futures::future::ready(()));

        let cfg = ControllerConfig::default().concurrency(self.opts.workers);
        let mut pv_watch = compact::watch_config();
        if let Some(selector) = &self.opts.pv_label_selector {
            pv_watch = pv_watch.labels(selector);
        }
        // Both loops' caches hold their objects compact (module `compact`).
        let (pvs, pv_writer) = reflector::store::<Compact<PersistentVolume>>();
        let pv_stream = watcher(Api::<PersistentVolume>::all(client.clone()), pv_watch)
            .default_backoff()
            .map_ok(compact::event)
            .reflect(pv_writer);
        // Changes one by one; after each (re)list, the whole store (module
        // `relist`: never a reconcile of a list still being read).
        let (pv_changes, pv_relists) = relist::split(pv_stream);
        let pv_ctrl = Controller::for_stream(pv_changes, pvs.clone())
            .with_config(cfg.clone())
            .reconcile_all_on(pv_relists);
        // Nodes, metadata only (a claim loop must notice a selected node that
        // was deleted, also one no instance serves in node-local mode). A
        // deleted Node reconciles every claim once: rare, and decisions on
        // claims of other nodes are made from the caches.
        let (nodes, node_writer) = reflector::store::<PartialObjectMeta<Node>>();
        let (node_gone, node_gone_rx) = futures::channel::mpsc::unbounded::<()>();
        let node_driver = self.opts.watch_claims.then(|| {
            watcher(
                Api::<PartialObjectMeta<Node>>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff()
            .modify(compact::Slim::slim)
            .reflect(node_writer)
            .for_each(move |ev| {
                if let Ok(watcher::Event::Delete(_)) = ev {
                    let _ = node_gone.unbounded_send(());
                }
                futures::future::ready(())
            })
        });
        let node_driver = async move {
            match node_driver {
                Some(driver) => driver.await,
                None => futures::future::pending().await,
            }
        };
        let claim_ctrl = self.opts.watch_claims.then(|| {
            let (claims, claim_writer) = reflector::store::<Compact<PersistentVolumeClaim>>();
            let claim_stream = watcher(
                Api::<PersistentVolumeClaim>::all(client.clone()),
                compact::watch_config(),
            )
            .default_backoff()
            .map_ok(compact::event)
            .reflect(claim_writer);
            let (claim_changes, claim_relists) = relist::split(claim_stream);
            Controller::for_stream(claim_changes, claims)
                .with_config(cfg)
                .reconcile_all_on(claim_relists)
                .reconcile_all_on(node_gone_rx)
        });

        let base = self.opts.retry_interval_start;
        let max = self.opts.retry_interval_max;
        let in_flight = intent_sweep::InFlight::default();
        let ctx = Arc::new(Ctx {
            client: client.clone(),
            provisioner: self.provisioner.clone(),
            opts: self.opts.clone(),
            scope,
            classes: classes.clone(),
            pvs,
            nodes: nodes.clone(),
            events: Events::new(client, &self.opts.provisioner_name, &self.opts.identity)
                .counted(self.metrics.clone()),
            metrics: self.metrics.clone(),
            claim_backoff: Backoffs::new(BackoffPolicy {
                base,
                max,
                threshold: self.opts.failed_provision_threshold,
                infeasible: self.opts.infeasible_retry_interval,
            }),
            volume_backoff: Backoffs::new(BackoffPolicy {
                base,
                max,
                threshold: self.opts.failed_delete_threshold,
                infeasible: self.opts.infeasible_retry_interval,
            }),
            claim_versions: Default::default(),
            saved_pvs: Default::default(),
            releases: release::Releases::new(self.opts.workers.into()),
            in_flight: in_flight.clone(),
        });
        // Dropped with this future (a crash, a lost lease): the releases
        // under way stop too; a graceful stop drains them below first.
        let _stop_releases = ctx.releases.stop_on_drop();

        let g1 = graceful.clone();
        let volumes = pv_ctrl
            .graceful_shutdown_on(async move { g1.cancelled().await })
            .run(volume::reconcile::<P>, never, ctx.clone())
            .for_each(|_| futures::future::ready(()));
        let g2 = graceful.clone();
        let ctx2 = ctx.clone();
        let claims = async move {
            let Some(claim_ctrl) = claim_ctrl else {
                return; // static provisioner: no claim loop
            };
            // Decisions need the classes: do not start before the cache is in.
            tokio::select! {
                _ = futures::future::join(classes.wait_until_ready(), nodes.wait_until_ready()) => {}
                _ = g2.cancelled() => return,
            }
            let g3 = g2.clone();
            claim_ctrl
                .graceful_shutdown_on(async move { g3.cancelled().await })
                .run(claim_loop::reconcile::<P>, never, ctx2)
                .for_each(|_| futures::future::ready(()))
                .await
        };
        // With the workers (so by the leader, or by each node-local
        // instance for its own disks): the backend's pending volumes.
        let sweep = intent_sweep::run(
            client_for_sweep,
            self.provisioner.clone(),
            self.opts.pending_volume_grace,
            self.metrics.clone(),
            in_flight,
        );
        tracing::info!(provisioner = %self.opts.provisioner_name, node = ?self.opts.node_name, "workers started");
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = sweep => {}
            _ = futures::future::join(volumes, claims) => {}
            _ = class_driver => {}
            _ = node_driver => {}
        }
        // Releases under way finish their one patch; then the events still
        // on their way, which describe work that was done, are sent before a
        // new leader's workers start (or the process exits).
        if !ctx.releases.drain(Duration::from_secs(5)).await {
            tracing::warn!("some provisioning intents were still being released 5 s after the workers stopped; the next reconcile of their claims releases them");
        }
        if !ctx.events.flush(Duration::from_secs(5)).await {
            tracing::warn!("some events were still being sent 5 s after the workers stopped");
        }
        tracing::info!("workers stopped");
    }
}

fn never<K>(_: Arc<K>, e: &Infallible, _: Arc<impl Send + Sync>) -> Action {
    match *e {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_include_additional() {
        let mut o = ControllerOptions::new("a");
        o.additional_provisioner_names = vec!["b".into()];
        let s = o.scope();
        assert!(s.is_ours("a") && s.is_ours("b") && !s.is_ours("c"));
    }
}
