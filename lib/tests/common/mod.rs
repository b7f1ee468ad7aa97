//! Shared support for the controller integration tests and the benchmark:
//! an in-memory provisioner with failure knobs, object helpers, and polling
//! with deadlines (no fixed sleeps as assertions).
#![allow(dead_code, missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use external_storage::{
    async_trait, ControllerOptions, DeleteError, IntentRecords, PendingVolume, PersistentVolume,
    PersistentVolumeClaim, ProvisionController, ProvisionError, ProvisionOptions, Provisioned,
    Provisioner, StorageClass,
};
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    PersistentVolumeSpec, VolumeNodeAffinity,
};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The API helpers every test crate shares (e2e-support): one set, one
/// signature each (each test crate uses some of them).
#[allow(unused_imports)]
pub use e2e_support::{claims, create_node, delete_claim, pvs, wait_bound, wait_for, wait_pv_gone};

pub const PROVISIONER: &str = "example.com/mem";

/// Where `provision` waits for [`Mem::open_gate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Before the backend volume exists.
    BeforeCreate,
    /// After the backend volume exists, before returning it.
    AfterCreate,
}

#[derive(Default, Debug)]
pub struct Knobs {
    pub fail: Option<String>,
    pub infeasible: Option<String>,
    pub in_progress: u32,
    pub reschedule_node: Option<String>,
    pub delete_fail: Option<String>,
    pub gate: Option<Gate>,
    pub block: bool,
    /// Whether claims with a data source are served.
    pub data_source: bool,
    /// Per claim name: what `provision` answers instead of its usual
    /// hostPath volume (after making the backend volume as usual).
    pub answers: HashMap<String, Provisioned>,
    /// One-shot: the next `should_provision` sends on the first channel and
    /// blocks until the second one receives (a test acts in between).
    pub hold_qualifier: Option<(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>)>,
    /// The backend records intent itself ([`IntentRecords`]): the claim
    /// loop sends no intent finalizer patches.
    pub records: bool,
    /// Marking a pending record saved fails (a crash between PV and mark).
    pub mark_saved_fails: bool,
}

/// The in-memory provisioner: a map of backend volumes, shared across
/// controller restarts (it stands for the storage backend).
pub struct Mem {
    pub volumes: Mutex<BTreeMap<String, Option<String>>>,
    pub created: Mutex<HashMap<String, usize>>,
    pub deleted: Mutex<Vec<String>>,
    pub provision_calls: AtomicUsize,
    pub waiting: AtomicUsize,
    pub knobs: Mutex<Knobs>,
    /// Pending intent records (with `Knobs::records`), by PV name.
    pub pending: Mutex<BTreeMap<String, PendingVolume>>,
    /// How often the intent sweep listed the pending records (its rounds).
    pub pending_listed: AtomicUsize,
    gate: Semaphore,
}

impl Default for Mem {
    fn default() -> Self {
        Self {
            volumes: Mutex::default(),
            created: Mutex::default(),
            deleted: Mutex::default(),
            provision_calls: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            pending_listed: AtomicUsize::new(0),
            knobs: Mutex::default(),
            pending: Mutex::default(),
            gate: Semaphore::new(0),
        }
    }
}

impl Mem {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    pub fn knobs(&self) -> std::sync::MutexGuard<'_, Knobs> {
        self.knobs.lock().unwrap()
    }
    pub fn has(&self, name: &str) -> bool {
        self.volumes.lock().unwrap().contains_key(name)
    }
    pub fn volume_count(&self) -> usize {
        self.volumes.lock().unwrap().len()
    }
    /// How many times a backend volume named `name` was created.
    pub fn times_created(&self, name: &str) -> usize {
        self.created.lock().unwrap().get(name).copied().unwrap_or(0)
    }
    pub fn max_times_created(&self) -> usize {
        self.created
            .lock()
            .unwrap()
            .values()
            .copied()
            .max()
            .unwrap_or(0)
    }
    pub fn open_gate(&self) {
        self.knobs().gate = None;
        self.gate.add_permits(1_000_000);
    }
    async fn maybe_wait(&self, at: Gate) {
        let gated = self.knobs().gate == Some(at);
        if gated {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let _ = self.gate.acquire().await.map(|p| p.forget());
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[async_trait]
impl Provisioner for Mem {
    async fn provision(&self, o: ProvisionOptions) -> Result<Provisioned, ProvisionError> {
        self.provision_calls.fetch_add(1, Ordering::SeqCst);
        {
            let k = self.knobs();
            if k.reschedule_node.is_some() && k.reschedule_node == o.selected_node {
                return Err(ProvisionError::Reschedule("node full".into()));
            }
            if let Some(m) = &k.fail {
                return Err(ProvisionError::Failed(m.clone()));
            }
            if let Some(m) = &k.infeasible {
                return Err(ProvisionError::Infeasible(m.clone()));
            }
        }
        if self.knobs().records {
            let m = &o.claim.metadata;
            self.pending.lock().unwrap().insert(
                o.pv_name.clone(),
                PendingVolume {
                    pv_name: o.pv_name.clone(),
                    claim_namespace: m.namespace.clone().unwrap_or_default(),
                    claim_name: m.name.clone().unwrap_or_default(),
                    claim_uid: m.uid.clone().unwrap_or_default(),
                    recorded_at: std::time::SystemTime::now(),
                },
            );
        }
        self.maybe_wait(Gate::BeforeCreate).await;
        {
            let mut v = self.volumes.lock().unwrap();
            if !v.contains_key(&o.pv_name) {
                v.insert(o.pv_name.clone(), o.selected_node.clone());
                *self
                    .created
                    .lock()
                    .unwrap()
                    .entry(o.pv_name.clone())
                    .or_default() += 1;
            }
        }
        self.maybe_wait(Gate::AfterCreate).await;
        {
            let mut k = self.knobs();
            if k.in_progress > 0 {
                k.in_progress -= 1;
                return Err(ProvisionError::InProgress("still creating".into()));
            }
        }
        let claim_name = o.claim.metadata.name.clone().unwrap_or_default();
        if let Some(answer) = self.knobs().answers.get(&claim_name) {
            return Ok(answer.clone());
        }
        let mut spec = PersistentVolumeSpec {
            host_path: Some(HostPathVolumeSource {
                path: format!("/mem/{}", o.pv_name),
                type_: None,
            }),
            ..Default::default()
        };
        if let Some(node) = &o.selected_node {
            spec.node_affinity = Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "kubernetes.io/hostname".into(),
                            operator: "In".into(),
                            values: Some(vec![node.clone()]),
                        }]),
                        match_fields: None,
                    }],
                }),
            });
        }
        Ok(Provisioned::new(spec))
    }

    async fn delete(&self, pv: &PersistentVolume) -> Result<(), DeleteError> {
        if let Some(m) = &self.knobs().delete_fail {
            return Err(DeleteError::Failed(m.clone()));
        }
        let name = pv.metadata.name.clone().unwrap_or_default();
        self.volumes.lock().unwrap().remove(&name);
        self.pending.lock().unwrap().remove(&name);
        self.deleted.lock().unwrap().push(name);
        Ok(())
    }

    fn intent_records(&self) -> Option<&dyn IntentRecords> {
        self.knobs().records.then_some(self as &dyn IntentRecords)
    }

    fn supports_block(&self) -> bool {
        self.knobs().block
    }

    fn supports_data_source(&self, _: &k8s_openapi::api::core::v1::TypedObjectReference) -> bool {
        self.knobs().data_source
    }

    fn should_provision(&self, _: &PersistentVolumeClaim, _: &StorageClass) -> bool {
        let hold = self.knobs().hold_qualifier.take();
        if let Some((entered, release)) = hold {
            let _ = entered.send(());
            let _ = release.recv();
        }
        true
    }
}

#[async_trait]
impl IntentRecords for Mem {
    async fn pending(&self) -> Result<Vec<PendingVolume>, String> {
        self.pending_listed.fetch_add(1, Ordering::SeqCst);
        Ok(self.pending.lock().unwrap().values().cloned().collect())
    }
    async fn mark_saved(&self, pv_name: &str) -> Result<(), String> {
        if self.knobs().mark_saved_fails {
            return Err("mark_saved_fails".into());
        }
        self.pending.lock().unwrap().remove(pv_name);
        Ok(())
    }
    async fn discard(&self, volume: &PendingVolume) -> Result<(), DeleteError> {
        let mut pending = self.pending.lock().unwrap();
        if pending.get(&volume.pv_name).map(|p| &p.claim_uid) != Some(&volume.claim_uid) {
            return Ok(());
        }
        pending.remove(&volume.pv_name);
        self.volumes.lock().unwrap().remove(&volume.pv_name);
        self.deleted.lock().unwrap().push(volume.pv_name.clone());
        Ok(())
    }
}

/// Options with short retry intervals for tests.
pub fn fast_options() -> ControllerOptions {
    let mut o = ControllerOptions::new(PROVISIONER);
    o.retry_interval_start = Duration::from_millis(100);
    o.retry_interval_max = Duration::from_secs(1);
    o.infeasible_retry_interval = Duration::from_secs(1);
    o.pv_save_retries = 3;
    o.pv_save_retry_interval = Duration::from_millis(50);
    o.failed_provision_threshold = 0;
    o.failed_delete_threshold = 0;
    o
}

/// A running controller task.
pub struct Running {
    pub token: CancellationToken,
    pub handle: tokio::task::JoinHandle<()>,
    pub metrics: Arc<external_storage::Metrics>,
}

impl Running {
    /// Graceful stop (SIGTERM equivalent).
    pub async fn stop(self) {
        self.token.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.handle).await;
    }
    /// Crash: abort the task mid-flight.
    pub async fn kill(self) {
        self.handle.abort();
        let _ = self.handle.await;
    }
}

pub fn spawn(client: Client, mem: Arc<Mem>, opts: ControllerOptions) -> Running {
    let token = CancellationToken::new();
    let ctrl = ProvisionController::with_shared(client, mem, opts);
    let metrics = ctrl.metrics();
    let t = token.clone();
    let handle = tokio::spawn(async move {
        ctrl.run(t).await.expect("controller runs");
    });
    Running {
        token,
        handle,
        metrics,
    }
}

/// Creates a class of this provisioner (the shared object of e2e-support).
pub async fn create_class(client: &Client, name: &str, wffc: bool, policy: &str) -> StorageClass {
    let sc = e2e_support::storage_class(name, PROVISIONER, policy, wffc);
    let api: Api<StorageClass> = Api::all(client.clone());
    api.create(&PostParams::default(), &sc).await.unwrap()
}

/// A claim of `class` for this provisioner, scheduled to `node` if given.
pub fn claim_json(name: &str, class: &str, node: Option<&str>) -> PersistentVolumeClaim {
    e2e_support::scheduled_claim(name, class, PROVISIONER, node)
}

/// Creates [`claim_json`]: a claim as the PV controller (and, with `node`,
/// the scheduler) leaves it for this provisioner.
pub async fn create_scheduled_claim(
    client: &Client,
    name: &str,
    class: &str,
    node: Option<&str>,
) -> PersistentVolumeClaim {
    claims(client)
        .create(&PostParams::default(), &claim_json(name, class, node))
        .await
        .unwrap()
}

pub fn pv_name(claim: &PersistentVolumeClaim) -> String {
    format!("pvc-{}", claim.metadata.uid.as_deref().unwrap())
}

/// Creates the scheduled claim `name` in `class` and waits until `mem`
/// (gated, e.g. `Gate::AfterCreate`) holds its provisioning at the gate;
/// returns the claim's PV name.
pub async fn claim_held_at_gate(client: &Client, mem: &Mem, name: &str, class: &str) -> String {
    let c = create_scheduled_claim(client, name, class, None).await;
    wait_for("provisioner blocked", || async {
        (mem.waiting.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    pv_name(&c)
}

/// From now every claim patch fails (the intent cannot be released); opens
/// `mem`'s gate and waits until the PV `pv` is saved.
pub async fn save_pv_with_claim_patches_failing(
    ts: &kube_testserver::TestServer,
    client: &Client,
    mem: &Mem,
    pv: &str,
) {
    ts.faults().set_error_rate(
        Some("patch"),
        Some("persistentvolumeclaims"),
        kube_testserver::FaultKind::InternalError,
        1.0,
    );
    mem.open_gate();
    wait_for("PV saved", || async {
        pvs(client).get_opt(pv).await.ok()?.map(|_| ())
    })
    .await;
}

/// Waits until claim `name` no longer exists.
pub async fn wait_claim_gone(client: &Client, name: &str) {
    let api = claims(client);
    wait_for(&format!("claim {name} gone"), || {
        let api = api.clone();
        async move { api.get_opt(name).await.ok()?.is_none().then_some(()) }
    })
    .await
}

/// Event reasons recorded about the object named `name`.
pub async fn event_reasons(client: &Client, name: &str) -> Vec<String> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::all(client.clone());
    let list = api.list(&Default::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reason)
        .collect()
}

/// Waits for an event with `reason` about the object named `name`.
pub async fn wait_event(client: &Client, name: &str, reason: &str) {
    wait_for(&format!("event {reason} on {name}"), || async {
        event_reasons(client, name)
            .await
            .iter()
            .any(|r| r == reason)
            .then_some(())
    })
    .await
}

pub async fn set_annotation(client: &Client, claim: &str, key: &str, value: &str) {
    claims(client)
        .patch(
            claim,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {key: value}}})),
        )
        .await
        .unwrap();
}

pub fn has_finalizer<K: kube::Resource>(obj: &K, f: &str) -> bool {
    obj.meta().finalizers.iter().flatten().any(|x| x == f)
}

/// Fast options with leader election as `identity` (lease of 3 s).
pub fn elected(identity: &str) -> ControllerOptions {
    let mut o = fast_options();
    let mut le = external_storage::LeaderElection::new(PROVISIONER, "default", identity);
    le.lease_duration = Duration::from_secs(3);
    le.renew_deadline = Duration::from_secs(2);
    le.retry_period = Duration::from_millis(200);
    o.leader_election = Some(le);
    o.identity = identity.into();
    o
}

/// Waits until `r`'s `controller_is_leader` is `want`.
pub async fn wait_leader(r: &Running, want: i64) {
    wait_for(&format!("is_leader == {want}"), || async {
        (r.metrics.is_leader.get() == want).then_some(())
    })
    .await;
}
