//! The in-memory provisioner: the storage backend stand-in for benches and
//! the chaos suite.
//!
//! Volumes live in a map keyed by PV name, shared by every controller replica
//! (it stands for the one storage system they all talk to). `provision` is
//! idempotent per PV name and `delete` of a missing volume succeeds, as the
//! library's contract asks. With an [`Auditor`] attached, every `delete` is
//! checked against the API server's state at the moment it happens (the test
//! server's store, or a real cluster's API), so data deleted for a `Retain`
//! or still-bound volume is caught when it happens, not inferred afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use external_storage::{
    async_trait, DeleteError, PersistentVolume, ProvisionError, ProvisionOptions, Provisioned,
    Provisioner,
};
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, PersistentVolumeClaim, PersistentVolumeSpec,
};
use kube::{Api, Client};
use kube_testserver::registry::id;
use kube_testserver::Store;
use serde_json::Value;

/// Judges a backend `delete` against the live API state.
pub enum Auditor {
    /// Reads the test server's store directly: no HTTP, no injected faults,
    /// and no await between the check and the delete.
    Store(Arc<Store>),
    /// Reads a real cluster through the API (GET of the PV, then of its
    /// claim), retrying for up to 30 s while the apiserver is away.
    Api(Client),
}

/// Why deleting the backend volume of PV `name` (JSON `pv`, whose claim, by
/// its `claimRef` namespace/name, is `claim`) destroys data that must be
/// kept, if it does: the PV is `Retain`, or its claim still exists with the
/// same UID and is not being deleted.
fn forbidden(name: &str, pv: &Value, claim: Option<&Value>) -> Option<String> {
    let s = |v: &Value, p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let policy = pv
        .pointer("/spec/persistentVolumeReclaimPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Delete");
    if policy == "Retain" {
        return Some(format!("PV {name} has reclaim policy Retain"));
    }
    let (ns, claim_name, uid) = (
        s(pv, "/spec/claimRef/namespace"),
        s(pv, "/spec/claimRef/name"),
        s(pv, "/spec/claimRef/uid"),
    );
    let live = claim?;
    let same = s(live, "/metadata/uid") == uid;
    let terminating = live.pointer("/metadata/deletionTimestamp").is_some();
    (same && !terminating)
        .then(|| format!("PV {name} is still bound to live claim {ns}/{claim_name}"))
}

/// What an audit found: nothing wrong, a forbidden delete, or no verdict
/// (the API could not be read).
enum Verdict {
    Allowed,
    Forbidden(String),
    Unknown,
}

impl Auditor {
    /// An auditor reading `store`.
    pub fn new(store: Arc<Store>) -> Self {
        Auditor::Store(store)
    }

    /// The verdict on deleting the backend volume of PV `name` now.
    async fn judge(&self, name: &str) -> Verdict {
        let (pv, claim) = match self {
            Auditor::Store(store) => {
                let Some(pv) = store.get(id("", "persistentvolumes"), "", name) else {
                    return Verdict::Allowed;
                };
                let s = |p: &str| pv.pointer(p).and_then(Value::as_str).unwrap_or_default();
                let claim = store.get(
                    id("", "persistentvolumeclaims"),
                    s("/spec/claimRef/namespace"),
                    s("/spec/claimRef/name"),
                );
                ((*pv).clone(), claim.map(|c| (*c).clone()))
            }
            Auditor::Api(client) => match read_api(client, name).await {
                Some(Some(found)) => found,
                Some(None) => return Verdict::Allowed,
                None => return Verdict::Unknown,
            },
        };
        match forbidden(name, &pv, claim.as_ref()) {
            Some(why) => Verdict::Forbidden(why),
            None => Verdict::Allowed,
        }
    }
}

/// PV `name` and its claim through the API: `Some(None)` if the PV is gone,
/// `None` if the API did not answer within 30 s.
async fn read_api(client: &Client, name: &str) -> Option<Option<(Value, Option<Value>)>> {
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    loop {
        let attempt = async {
            let Some(pv) = pvs.get_opt(name).await? else {
                return Ok::<_, kube::Error>(None);
            };
            let claim = match &pv.spec.as_ref().and_then(|s| s.claim_ref.clone()) {
                Some(r) => {
                    let claims: Api<PersistentVolumeClaim> =
                        Api::namespaced(client.clone(), r.namespace.as_deref().unwrap_or_default());
                    claims
                        .get_opt(r.name.as_deref().unwrap_or_default())
                        .await?
                }
                None => None,
            };
            Ok(Some((
                serde_json::to_value(&pv).expect("PV serializes"),
                claim.map(|c| serde_json::to_value(&c).expect("claim serializes")),
            )))
        };
        match attempt.await {
            Ok(found) => return Some(found),
            Err(_) if tokio::time::Instant::now() < end => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(_) => return None,
        }
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
    unaudited: u64,
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
    /// Deletes the auditor could not judge (the API did not answer).
    pub unaudited: u64,
}

impl MemBackend {
    /// A backend without auditing (benchmarks).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A backend that audits every delete with `auditor`, and whose
    /// `provision` takes `delay` after making the volume (chaos).
    pub fn audited(auditor: Auditor, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            auditor: Some(auditor),
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
            unaudited: st.unaudited,
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
        let verdict = match &self.auditor {
            Some(a) => a.judge(&name).await,
            None => Verdict::Allowed,
        };
        let mut st = self.lock();
        match verdict {
            Verdict::Allowed => {}
            Verdict::Forbidden(why) => st.violations.push(why),
            Verdict::Unknown => st.unaudited += 1,
        }
        if st.volumes.remove(&name) {
            st.deletes += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn forbidden_deletes_are_retain_and_live_claims() {
        let pv = |policy: &str| {
            json!({"spec": {"persistentVolumeReclaimPolicy": policy,
                "claimRef": {"namespace": "default", "name": "c", "uid": "u1"}}})
        };
        let claim = |uid: &str, deleting: bool| {
            let mut c = json!({"metadata": {"uid": uid}});
            if deleting {
                c["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            c
        };
        assert!(forbidden("p", &pv("Retain"), None).is_some());
        assert!(forbidden("p", &pv("Delete"), Some(&claim("u1", false))).is_some());
        assert!(forbidden("p", &pv("Delete"), Some(&claim("u1", true))).is_none());
        assert!(forbidden("p", &pv("Delete"), Some(&claim("u2", false))).is_none());
        assert!(forbidden("p", &pv("Delete"), None).is_none());
    }
}
