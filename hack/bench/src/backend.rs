//! The in-memory provisioner: the storage backend stand-in for benches and
//! the chaos suite.
//!
//! Volumes live in a map keyed by PV name, shared by every controller replica
//! (it stands for the one storage system they all talk to). `provision` is
//! idempotent per PV name and `delete` of a missing volume succeeds, as the
//! library's contract asks. With an [`Auditor`] attached, every `delete` is
//! checked against the API server's state at the moment it happens, so data
//! deleted for a `Retain` or still-bound volume is caught when it happens,
//! not inferred afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use external_storage::{
    async_trait, DeleteError, PersistentVolume, ProvisionError, ProvisionOptions, Provisioned,
    Provisioner,
};
use k8s_openapi::api::core::v1::{HostPathVolumeSource, PersistentVolumeSpec};
use kube_testserver::registry::id;
use kube_testserver::Store;

/// Judges a backend `delete` against the live API state (read straight from
/// the test server's store: no HTTP, no injected faults).
pub struct Auditor {
    store: Arc<Store>,
}

impl Auditor {
    /// An auditor reading `store`.
    pub fn new(store: Arc<Store>) -> Self {
        Self { store }
    }

    /// Why deleting the backend volume of PV `name` now destroys data that
    /// must be kept, if it does: the PV still exists and is `Retain`, or its
    /// claim still exists (same UID) and is not being deleted.
    fn forbidden_delete(&self, name: &str) -> Option<String> {
        let pv = self.store.get(id("", "persistentvolumes"), "", name)?;
        let policy = pv
            .pointer("/spec/persistentVolumeReclaimPolicy")
            .and_then(|v| v.as_str())
            .unwrap_or("Delete");
        if policy == "Retain" {
            return Some(format!("PV {name} has reclaim policy Retain"));
        }
        let s = |p: &str| pv.pointer(p).and_then(|v| v.as_str()).unwrap_or_default();
        let (ns, claim, uid) = (
            s("/spec/claimRef/namespace"),
            s("/spec/claimRef/name"),
            s("/spec/claimRef/uid"),
        );
        let live = self
            .store
            .get(id("", "persistentvolumeclaims"), ns, claim)?;
        let same = live.pointer("/metadata/uid").and_then(|v| v.as_str()) == Some(uid);
        let terminating = live.pointer("/metadata/deletionTimestamp").is_some();
        (same && !terminating)
            .then(|| format!("PV {name} is still bound to live claim {ns}/{claim}"))
    }
}

#[derive(Default)]
struct State {
    volumes: BTreeSet<String>,
    /// How many times each volume was created (a re-create after a delete
    /// counts again).
    created: BTreeMap<String, u32>,
    deletes: u64,
    violations: Vec<String>,
}

/// The in-memory backend; clone the `Arc` to share it between replicas.
#[derive(Default)]
pub struct MemBackend {
    state: Mutex<State>,
    auditor: Option<Auditor>,
    /// Time `provision` takes after the volume exists (a slow backend's
    /// window between making a volume and the PV being saved).
    delay: Duration,
    /// Provisions whose future was dropped before returning (cut by a kill).
    cut: AtomicU64,
    /// Provisions running now.
    in_flight: AtomicU64,
}

/// One running provision: counted in `in_flight` while alive, and as cut
/// when dropped before [`InFlight::finish`].
struct InFlight<'a> {
    backend: &'a MemBackend,
    finished: bool,
}

impl<'a> InFlight<'a> {
    fn new(backend: &'a MemBackend) -> Self {
        backend.in_flight.fetch_add(1, Ordering::SeqCst);
        Self {
            backend,
            finished: false,
        }
    }

    fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.backend.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !self.finished {
            self.backend.cut.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What the backend holds at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Volumes that exist now.
    pub volumes: BTreeSet<String>,
    /// Volumes created more than once (name, times).
    pub recreated: Vec<(String, u32)>,
    /// Backend deletes performed.
    pub deletes: u64,
    /// Forbidden deletes seen by the auditor.
    pub violations: Vec<String>,
}

impl MemBackend {
    /// A backend without auditing (benchmarks).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A backend that audits every delete against `store`, and whose
    /// `provision` takes `delay` after making the volume (chaos).
    pub fn audited(store: Arc<Store>, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            auditor: Some(Auditor::new(store)),
            delay,
            ..Self::default()
        })
    }

    /// Provisions running now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Provisions cut short (their future dropped by a kill) so far.
    pub fn cut(&self) -> u64 {
        self.cut.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of volumes that exist now.
    pub fn len(&self) -> usize {
        self.lock().volumes.len()
    }

    /// Whether no volume exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> Snapshot {
        let st = self.lock();
        Snapshot {
            volumes: st.volumes.clone(),
            recreated: st
                .created
                .iter()
                .filter(|(_, n)| **n > 1)
                .map(|(k, n)| (k.clone(), *n))
                .collect(),
            deletes: st.deletes,
            violations: st.violations.clone(),
        }
    }
}

#[async_trait]
impl Provisioner for MemBackend {
    async fn provision(&self, o: ProvisionOptions) -> Result<Provisioned, ProvisionError> {
        let flight = InFlight::new(self);
        {
            let mut st = self.lock();
            if st.volumes.insert(o.pv_name.clone()) {
                *st.created.entry(o.pv_name.clone()).or_default() += 1;
            }
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        flight.finish();
        Ok(Provisioned::new(PersistentVolumeSpec {
            host_path: Some(HostPathVolumeSource {
                path: format!("/mem/{}", o.pv_name),
                type_: None,
            }),
            ..Default::default()
        }))
    }

    async fn delete(&self, pv: &PersistentVolume) -> Result<(), DeleteError> {
        let name = pv.metadata.name.clone().unwrap_or_default();
        let verdict = self
            .auditor
            .as_ref()
            .and_then(|a| a.forbidden_delete(&name));
        let mut st = self.lock();
        if let Some(why) = verdict {
            st.violations.push(why);
        }
        if st.volumes.remove(&name) {
            st.deletes += 1;
        }
        Ok(())
    }
}
