//! What the API server saw happen during a run: every PV created per claim,
//! every volume each claim was ever bound to. Recorded from the test
//! server's store change feed (no HTTP, unaffected by injected faults), or,
//! on a real cluster, from watches through the API (kube-runtime watchers,
//! which re-list after the apiserver restart). Both feed the same record.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use kube_testserver::registry::id;
use kube_testserver::store::EventType;
use kube_testserver::Store;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

/// The record.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// claim UID → names of PVs created with that claim in `claimRef`
    /// (a name repeats if the same PV was created twice).
    pub pvs_created: BTreeMap<String, Vec<String>>,
    /// claim UID → every non-empty `spec.volumeName` it had.
    pub bound_to: BTreeMap<String, BTreeSet<String>>,
    /// claim UID → `namespace/name`.
    pub claim_names: BTreeMap<String, String>,
    /// Changes missed because the store's feed lagged (the record is then
    /// partial).
    pub lagged: u64,
    /// Watch (re-)lists after the first one (real cluster): an object that
    /// was created and deleted entirely between two of them is not seen.
    pub relists: u64,
    /// UIDs of the PVs recorded in `pvs_created`.
    pv_uids: BTreeSet<String>,
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

impl Seen {
    /// Records PV `o` the first time its UID is seen (a PV created twice
    /// has two UIDs, so it counts twice).
    fn pv(&mut self, o: &Value) {
        if !self.pv_uids.insert(s(o, "/metadata/uid").to_string()) {
            return;
        }
        self.pvs_created
            .entry(s(o, "/spec/claimRef/uid").to_string())
            .or_default()
            .push(s(o, "/metadata/name").to_string());
    }

    /// Records a state of claim `o`.
    fn claim(&mut self, o: &Value) {
        let uid = s(o, "/metadata/uid").to_string();
        let name = format!("{}/{}", s(o, "/metadata/namespace"), s(o, "/metadata/name"));
        self.claim_names.insert(uid.clone(), name);
        let vol = s(o, "/spec/volumeName");
        if !vol.is_empty() {
            self.bound_to
                .entry(uid)
                .or_default()
                .insert(vol.to_string());
        }
    }
}

/// Records the cluster's changes until dropped.
pub struct Observer {
    seen: Arc<Mutex<Seen>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Observer {
    /// Starts recording the test server's store feed.
    pub fn start(store: Arc<Store>) -> Self {
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let mut rx = store.subscribe();
        let (pv, pvc) = (
            id("", "persistentvolumes"),
            id("", "persistentvolumeclaims"),
        );
        let rec = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let ev = match rx.recv().await {
                    Ok(ev) => ev,
                    Err(RecvError::Lagged(n)) => {
                        rec.lock().unwrap().lagged += n;
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                };
                let mut seen = rec.lock().unwrap();
                if ev.res == pv && ev.etype == EventType::Added {
                    seen.pv(&ev.object);
                } else if ev.res == pvc {
                    seen.claim(&ev.object);
                }
            }
        });
        Self {
            seen,
            tasks: vec![task],
        }
    }

    /// Starts recording through watches of PVs and claims with `client`
    /// (a real cluster). Watch errors (the apiserver restarting) are
    /// retried with the watcher's default backoff.
    pub fn watch(client: &Client) -> Self {
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let tasks = vec![
            tokio::spawn(watch_kind::<PersistentVolume>(
                Api::all(client.clone()),
                seen.clone(),
                Seen::pv,
            )),
            tokio::spawn(watch_kind::<PersistentVolumeClaim>(
                Api::all(client.clone()),
                seen.clone(),
                Seen::claim,
            )),
        ];
        Self { seen, tasks }
    }

    /// A copy of the record so far.
    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }
}

/// Feeds every object state a watcher of `api` yields to `record`, and
/// counts the re-lists after the first.
async fn watch_kind<K>(api: Api<K>, seen: Arc<Mutex<Seen>>, record: fn(&mut Seen, &Value))
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug
        + Send
        + 'static,
{
    let mut lists = 0u64;
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(ev) = stream.next().await {
        let Ok(ev) = ev else { continue };
        let mut seen = seen.lock().unwrap();
        match ev {
            watcher::Event::Init => {
                if lists > 0 {
                    seen.relists += 1;
                }
                lists += 1;
            }
            watcher::Event::InitApply(o) | watcher::Event::Apply(o) => record(
                &mut seen,
                &serde_json::to_value(&o).expect("object serializes"),
            ),
            watcher::Event::Delete(_) | watcher::Event::InitDone => {}
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pv_counts_once_per_uid() {
        let mut seen = Seen::default();
        let pv = |uid: &str| json!({"metadata": {"name": "pvc-1", "uid": uid}, "spec": {"claimRef": {"uid": "c1"}}});
        seen.pv(&pv("a"));
        seen.pv(&pv("a")); // a later state of the same PV (a watch's Apply)
        assert_eq!(seen.pvs_created["c1"], vec!["pvc-1".to_string()]);
        seen.pv(&pv("b")); // deleted and created again
        assert_eq!(seen.pvs_created["c1"].len(), 2);
    }
}
