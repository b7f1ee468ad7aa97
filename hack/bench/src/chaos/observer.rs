//! What the API server saw happen during a run, recorded from its store's
//! change feed (no HTTP, unaffected by injected faults): every PV created per
//! claim, every volume each claim was ever bound to.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

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
    /// Changes missed because the feed lagged (the record is then partial).
    pub lagged: u64,
}

/// Records the store's changes until dropped.
pub struct Observer {
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

impl Observer {
    /// Starts recording.
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
                let o = &ev.object;
                let mut seen = rec.lock().unwrap();
                if ev.res == pv && ev.etype == EventType::Added {
                    let uid = s(o, "/spec/claimRef/uid").to_string();
                    seen.pvs_created
                        .entry(uid)
                        .or_default()
                        .push(s(o, "/metadata/name").to_string());
                } else if ev.res == pvc {
                    let uid = s(o, "/metadata/uid").to_string();
                    let name =
                        format!("{}/{}", s(o, "/metadata/namespace"), s(o, "/metadata/name"));
                    seen.claim_names.insert(uid.clone(), name);
                    let vol = s(o, "/spec/volumeName");
                    if !vol.is_empty() {
                        seen.bound_to
                            .entry(uid)
                            .or_default()
                            .insert(vol.to_string());
                    }
                }
            }
        });
        Self { seen, task }
    }

    /// A copy of the record so far.
    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
