//! Admission-like behaviour applied on create and namespace deletion:
//! default StorageClass assignment for claims, the protection finalizers of
//! claims and volumes, and namespace content cleanup.

use serde_json::{json, Value};

use crate::registry::{id, ResId, RESOURCES};
use crate::store::{meta_str, Store};

/// Annotation marking the default StorageClass.
pub const DEFAULT_CLASS_ANN: &str = "storageclass.kubernetes.io/is-default-class";

/// Mutates an object about to be created (DefaultStorageClass admission,
/// and a ClusterIP for Services as the real apiserver's allocator gives).
pub fn on_create(store: &Store, res: ResId, obj: &mut Value) {
    if res == id("", "services") {
        allocate_cluster_ip(store, obj);
    }
    // A class named by the beta annotation counts as a class (the real
    // plugin reads GetPersistentVolumeClaimClass).
    if res == id("", "persistentvolumeclaims")
        && obj
            .pointer("/spec/storageClassName")
            .is_none_or(Value::is_null)
        && crate::wellknown::claim_class(obj).is_empty()
    {
        let classes = store.list(id("storage.k8s.io", "storageclasses"), None, &|_| true);
        let default = classes
            .items
            .iter()
            .filter(|c| {
                c.pointer(&format!(
                    "/metadata/annotations/{}",
                    DEFAULT_CLASS_ANN.replace('/', "~1")
                ))
                .and_then(Value::as_str)
                    == Some("true")
            })
            .max_by_key(|c| meta_str(c, "creationTimestamp").map(String::from));
        if let Some(c) = default {
            if !obj.get("spec").is_some_and(Value::is_object) {
                obj["spec"] = json!({});
            }
            obj["spec"]["storageClassName"] = json!(meta_str(c, "name").unwrap_or_default());
        }
    }
}

/// Gives a Service of type ClusterIP (the default) without one a free
/// address of 10.96.0.0/16, like the real apiserver (whose range is a
/// flag); headless (`None`) and explicit addresses are kept.
fn allocate_cluster_ip(store: &Store, obj: &mut Value) {
    let spec_type = obj.pointer("/spec/type").and_then(Value::as_str);
    if !matches!(spec_type, None | Some("ClusterIP"))
        || obj
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .is_some_and(|ip| !ip.is_empty())
    {
        return;
    }
    let used: std::collections::HashSet<String> = store
        .list(id("", "services"), None, &|_| true)
        .items
        .iter()
        .filter_map(|s| s.pointer("/spec/clusterIP")?.as_str().map(String::from))
        .collect();
    let Some(ip) = (10..u16::MAX)
        .map(|n| format!("10.96.{}.{}", n >> 8, n & 0xff))
        .find(|ip| !used.contains(ip))
    else {
        return;
    };
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    obj["spec"]["clusterIP"] = json!(ip);
    obj["spec"]["clusterIPs"] = json!([ip]);
}

pub use crate::wellknown::{PVC_PROTECTION, PV_PROTECTION};

/// StorageObjectInUseProtection admission: adds [`PVC_PROTECTION`] or
/// [`PV_PROTECTION`] to a claim or volume being created. Only with the
/// binder on, which also runs the controllers that remove them
/// ([`crate::controllers::binder`]).
pub fn protect(res: ResId, obj: &mut Value) {
    let finalizer = if res == id("", "persistentvolumeclaims") {
        PVC_PROTECTION
    } else if res == id("", "persistentvolumes") {
        PV_PROTECTION
    } else {
        return;
    };
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    let meta = &mut obj["metadata"];
    if !meta.get("finalizers").is_some_and(Value::is_array) {
        meta["finalizers"] = json!([]);
    }
    let list = meta["finalizers"].as_array_mut().expect("made an array");
    if !list.iter().any(|f| f == finalizer) {
        list.push(json!(finalizer));
    }
}

/// Removes all namespaced objects of a deleted namespace (simplified namespace controller).
pub fn on_namespace_deleted(store: &Store, ns: &str) {
    for (res, info) in RESOURCES.iter().enumerate() {
        if !info.namespaced {
            continue;
        }
        let page = store.list(res, Some(ns), &|_| true);
        for o in page.items {
            if let Some(name) = meta_str(&o, "name") {
                let _ = store.delete(res, ns, name, None, None);
            }
        }
    }
}

fn default_str(obj: &mut Value, path: &[&str], val: &str) {
    let mut cur = obj;
    for (i, seg) in path.iter().enumerate() {
        if !cur.is_object() {
            return;
        }
        if i + 1 == path.len() {
            if cur.get(*seg).is_none_or(Value::is_null) {
                cur[*seg] = json!(val);
            }
            return;
        }
        if cur.get(*seg).is_none_or(Value::is_null) {
            cur[*seg] = json!({});
        }
        cur = &mut cur[*seg];
    }
}

/// Applies the API defaults that code commonly reads back (a small subset of
/// kube-apiserver's defaulting functions) on every write.
pub fn apply_defaults(res: ResId, obj: &mut Value) {
    match (RESOURCES[res].group, RESOURCES[res].kind) {
        ("storage.k8s.io", "StorageClass") => {
            default_str(obj, &["reclaimPolicy"], "Delete");
            default_str(obj, &["volumeBindingMode"], "Immediate");
        }
        ("", "PersistentVolume") => {
            default_str(obj, &["spec", "persistentVolumeReclaimPolicy"], "Retain");
            default_str(obj, &["spec", "volumeMode"], "Filesystem");
        }
        ("", "PersistentVolumeClaim") => default_str(obj, &["spec", "volumeMode"], "Filesystem"),
        ("", "Pod") => {
            default_str(obj, &["spec", "restartPolicy"], "Always");
            default_str(obj, &["spec", "dnsPolicy"], "ClusterFirst");
            default_str(obj, &["spec", "schedulerName"], "default-scheduler");
            if obj.pointer("/spec/terminationGracePeriodSeconds").is_none() {
                if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.insert("terminationGracePeriodSeconds".into(), json!(30));
                }
            }
            for list in ["containers", "initContainers"] {
                if let Some(cs) = obj
                    .pointer_mut(&format!("/spec/{list}"))
                    .and_then(Value::as_array_mut)
                {
                    for c in cs {
                        default_str(c, &["terminationMessagePath"], "/dev/termination-log");
                        default_str(c, &["terminationMessagePolicy"], "File");
                        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
                        let last = image.rsplit('/').next().unwrap_or("");
                        let policy = if !last.contains(':') || last.ends_with(":latest") {
                            "Always"
                        } else {
                            "IfNotPresent"
                        };
                        let policy = if image.contains('@') {
                            "IfNotPresent"
                        } else {
                            policy
                        };
                        default_str(c, &["imagePullPolicy"], policy);
                    }
                }
            }
        }
        _ => {}
    }
}
