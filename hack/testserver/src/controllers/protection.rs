//! The claim half of kube-controller-manager's storage-object-in-use
//! protection: every claim gets `kubernetes.io/pvc-protection` when it is
//! created (the apiserver's StorageObjectInUseProtection admission), and a
//! deleting claim keeps it until no running pod of its namespace uses the
//! claim (the pvc-protection controller). Runs with the binder: without
//! one, as on a real cluster without kube-controller-manager, nothing would
//! ever lift the finalizer.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::registry::id;
use crate::store::{meta_str, Store};

/// The finalizer that keeps a claim in use by a pod from going away.
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";

/// Adds [`PVC_PROTECTION`] to a claim about to be created.
pub fn protect_on_create(claim: &mut Value) {
    if !claim.get("metadata").is_some_and(Value::is_object) {
        claim["metadata"] = json!({});
    }
    let meta = &mut claim["metadata"];
    if !meta.get("finalizers").is_some_and(Value::is_array) {
        meta["finalizers"] = json!([]);
    }
    let list = meta["finalizers"].as_array_mut().expect("an array");
    if !list.iter().any(|f| f == PVC_PROTECTION) {
        list.push(json!(PVC_PROTECTION));
    }
}

/// Runs the protection loop until the task is aborted.
pub async fn run(store: Arc<Store>) {
    let res = vec![id("", "persistentvolumeclaims"), id("", "pods")];
    super::run_loop(store, res, pass).await
}

/// `(namespace, claim)` of every claim a pod that is not finished uses.
fn claims_in_use(store: &Store) -> HashSet<(String, String)> {
    let pods = store
        .list(id("", "pods"), None, &|_| true, None, None)
        .items;
    let mut used = HashSet::new();
    for pod in pods {
        let phase = pod.pointer("/status/phase").and_then(Value::as_str);
        if matches!(phase, Some("Succeeded" | "Failed")) {
            continue;
        }
        let ns = meta_str(&pod, "namespace").unwrap_or("").to_string();
        for v in pod
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(c) = v
                .pointer("/persistentVolumeClaim/claimName")
                .and_then(Value::as_str)
            {
                used.insert((ns.clone(), c.to_string()));
            }
        }
    }
    used
}

/// One pass: lifts the finalizer of every deleting claim no pod uses.
pub fn pass(store: &Store) {
    let pvc = id("", "persistentvolumeclaims");
    let deleting: Vec<Arc<Value>> = store
        .list(pvc, None, &|_| true, None, None)
        .items
        .into_iter()
        .filter(|c| {
            c.pointer("/metadata/deletionTimestamp").is_some()
                && c.pointer("/metadata/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|fs| fs.iter().any(|f| f == PVC_PROTECTION))
        })
        .collect();
    if deleting.is_empty() {
        return;
    }
    let used = claims_in_use(store);
    for claim in deleting {
        let ns = meta_str(&claim, "namespace").unwrap_or("").to_string();
        let name = meta_str(&claim, "name").unwrap_or("").to_string();
        if used.contains(&(ns.clone(), name.clone())) {
            continue;
        }
        let _ = store.mutate(pvc, &ns, &name, |cur| {
            let mut next = cur.clone();
            if let Some(fs) = next
                .pointer_mut("/metadata/finalizers")
                .and_then(Value::as_array_mut)
            {
                fs.retain(|f| f != PVC_PROTECTION);
            }
            Ok(next)
        });
    }
}
