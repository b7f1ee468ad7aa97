//! Admission-like behaviour applied on create and namespace deletion:
//! default StorageClass assignment for claims and namespace content cleanup.

use serde_json::{json, Value};

use crate::registry::{id, ResId, RESOURCES};
use crate::store::{meta_str, Store};

/// Annotation marking the default StorageClass.
pub const DEFAULT_CLASS_ANN: &str = "storageclass.kubernetes.io/is-default-class";

/// Mutates an object about to be created (DefaultStorageClass admission).
pub fn on_create(store: &Store, res: ResId, obj: &mut Value) {
    if res == id("", "persistentvolumeclaims")
        && obj
            .pointer("/spec/storageClassName")
            .is_none_or(Value::is_null)
    {
        let classes = store.list(
            id("storage.k8s.io", "storageclasses"),
            None,
            &|_| true,
            None,
            None,
        );
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

/// Removes all namespaced objects of a deleted namespace (simplified namespace controller).
pub fn on_namespace_deleted(store: &Store, ns: &str) {
    for (res, info) in RESOURCES.iter().enumerate() {
        if !info.namespaced {
            continue;
        }
        let page = store.list(res, Some(ns), &|_| true, None, None);
        for o in page.items {
            if let Some(name) = meta_str(&o, "name") {
                let _ = store.delete(res, ns, name, None, None);
            }
        }
    }
}
