//! A tiny volume-aware scheduler: selects a node for pods, annotates their
//! WaitForFirstConsumer claims with the selected node, and binds the pod
//! (sets spec.nodeName) once all its claims are bound. Pods created with a
//! `nodeName` are left alone, as the real scheduler leaves them.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::binder::SELECTED_NODE;
use crate::registry::id;
use crate::selectors::LabelSelector;
use crate::store::{meta_str, Store};

/// Runs the scheduler until the task is aborted.
pub async fn run(store: Arc<Store>) {
    let res = vec![
        id("", "pods"),
        id("", "persistentvolumeclaims"),
        id("", "nodes"),
        id("storage.k8s.io", "storageclasses"),
    ];
    super::run_loop(store, res, pass).await
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn ready(node: &Value) -> bool {
    node.pointer("/spec/unschedulable").and_then(Value::as_bool) != Some(true)
        && node
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True")
            })
}

/// One scheduling pass over all pods.
pub fn pass(store: &Store) {
    let all = |g: &str, p: &str| store.list(id(g, p), None, &|_| true).items;
    let nodes = all("", "nodes");
    let classes: HashMap<String, Arc<Value>> = all("storage.k8s.io", "storageclasses")
        .into_iter()
        .map(|c| (meta_str(&c, "name").unwrap_or("").to_string(), c))
        .collect();
    let pvc_r = id("", "persistentvolumeclaims");
    for pod in all("", "pods") {
        if pod.pointer("/metadata/deletionTimestamp").is_some()
            || matches!(s(&pod, "/status/phase"), "Succeeded" | "Failed")
        {
            continue;
        }
        let ns = meta_str(&pod, "namespace").unwrap_or("").to_string();
        let pod_name = meta_str(&pod, "name").unwrap_or("").to_string();
        // A pod that names its node bypasses the scheduler, as on a real
        // cluster: nobody selects a node for its WaitForFirstConsumer claims.
        if !s(&pod, "/spec/nodeName").is_empty() {
            continue;
        }
        let target = {
            let sel = pod
                .pointer("/spec/nodeSelector")
                .cloned()
                .unwrap_or(Value::Null);
            let sel = LabelSelector::from_json(&json!({"matchLabels": sel}));
            match nodes.iter().find(|n| ready(n) && sel.matches(n)) {
                Some(n) => meta_str(n, "name").unwrap_or("").to_string(),
                None => continue,
            }
        };
        let claim_names: Vec<String> = pod
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .map(|vs| {
                vs.iter()
                    .filter_map(|v| {
                        v.pointer("/persistentVolumeClaim/claimName")
                            .and_then(Value::as_str)
                            .map(String::from)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut all_bound = true;
        for cn in &claim_names {
            let Some(claim) = store.get(pvc_r, &ns, cn) else {
                all_bound = false;
                continue;
            };
            if !s(&claim, "/spec/volumeName").is_empty() {
                continue;
            }
            all_bound = false;
            let wffc = classes
                .get(super::binder::claim_class(&claim))
                .is_some_and(|c| s(c, "/volumeBindingMode") == "WaitForFirstConsumer");
            let has_sel = claim
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(SELECTED_NODE))
                .is_some();
            if wffc && !has_sel {
                let _ = store.mutate(pvc_r, &ns, cn, |cur| {
                    let mut n = cur.clone();
                    if !n["metadata"]
                        .get("annotations")
                        .is_some_and(Value::is_object)
                    {
                        n["metadata"]["annotations"] = json!({});
                    }
                    n["metadata"]["annotations"][SELECTED_NODE] = json!(target);
                    Ok(n)
                });
            }
        }
        if all_bound {
            let _ = store.mutate(id("", "pods"), &ns, &pod_name, |cur| {
                let mut n = cur.clone();
                n["spec"]["nodeName"] = json!(target);
                Ok(n)
            });
        }
    }
}
