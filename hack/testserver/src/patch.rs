//! The four PATCH flavours: JSON merge (RFC 7386), JSON patch (RFC 6902),
//! strategic merge (Kubernetes' list-aware merge) and server-side apply
//! (approximated as a strategic merge of the applied configuration).

use serde_json::{Map, Value};

/// Supported patch content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`
    Merge,
    /// `application/json-patch+json`
    Json,
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/apply-patch+yaml`
    Apply,
}

impl PatchType {
    /// Parses a Content-Type header value.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Applies a JSON merge patch.
pub fn merge(doc: &mut Value, patch: &Value) {
    json_patch::merge(doc, patch);
}

/// Applies a JSON patch (list of operations).
pub fn json(doc: &mut Value, patch: &Value) -> Result<(), String> {
    let p: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(|e| e.to_string())?;
    json_patch::patch(doc, &p).map_err(|e| e.to_string())
}

/// Merge key for a list field, by field name and parent path.
fn merge_key(field: &str, path: &[String]) -> Option<&'static str> {
    let in_container = path
        .iter()
        .any(|p| p == "containers" || p == "initContainers" || p == "ephemeralContainers");
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "secrets"
        | "subsets" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "ports" if in_container => "containerPort",
        "ports" => "port",
        "conditions" => "type",
        "addresses" if path.last().map(String::as_str) == Some("status") => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "resourceClaims" => "name",
        _ => return None,
    })
}

/// Lists merged as sets of primitives.
fn primitive_set(field: &str) -> bool {
    field == "finalizers"
}

/// Applies a strategic merge patch in place.
pub fn strategic(doc: &mut Value, patch: &Value) {
    smp(doc, patch, &mut Vec::new());
}

fn smp(doc: &mut Value, patch: &Value, path: &mut Vec<String>) {
    let Some(pm) = patch.as_object() else {
        *doc = patch.clone();
        return;
    };
    if pm.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut m = pm.clone();
        m.remove("$patch");
        *doc = Value::Object(m);
        return;
    }
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let dm = doc.as_object_mut().expect("object");
    for (k, v) in pm {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(cur)), Some(del)) = (dm.get_mut(field), v.as_array()) {
                cur.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                dm.remove(k);
            }
            Value::Object(o) => {
                if o.get("$patch").and_then(Value::as_str) == Some("delete") {
                    dm.remove(k);
                    continue;
                }
                path.push(k.clone());
                smp(dm.entry(k.clone()).or_insert(Value::Null), v, path);
                path.pop();
            }
            Value::Array(items) => {
                let key = merge_key(k, path);
                let replace = items
                    .iter()
                    .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
                if replace {
                    let kept: Vec<Value> = items
                        .iter()
                        .filter(|i| i.get("$patch").is_none())
                        .cloned()
                        .collect();
                    dm.insert(k.clone(), Value::Array(kept));
                } else if primitive_set(k) {
                    let cur = dm.entry(k.clone()).or_insert_with(|| Value::Array(vec![]));
                    if !cur.is_array() {
                        *cur = Value::Array(vec![]);
                    }
                    let arr = cur.as_array_mut().expect("array");
                    for i in items {
                        if !arr.contains(i) {
                            arr.push(i.clone());
                        }
                    }
                } else if let Some(key) = key {
                    let cur = dm.entry(k.clone()).or_insert_with(|| Value::Array(vec![]));
                    if !cur.is_array() {
                        *cur = Value::Array(vec![]);
                    }
                    let arr = cur.as_array_mut().expect("array");
                    path.push(k.clone());
                    for item in items {
                        let kv = item.get(key);
                        let pos = kv.and_then(|kv| arr.iter().position(|a| a.get(key) == Some(kv)));
                        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
                            if let Some(kv) = kv {
                                arr.retain(|a| a.get(key) != Some(kv));
                            }
                            continue;
                        }
                        match pos {
                            Some(p) => smp(&mut arr[p], item, path),
                            None => {
                                let mut fresh = Value::Null;
                                smp(&mut fresh, item, path);
                                arr.push(fresh);
                            }
                        }
                    }
                    path.pop();
                } else {
                    dm.insert(k.clone(), v.clone());
                }
            }
            _ => {
                dm.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(Value::Array(keep)) = pm.get("$retainKeys") {
        dm.retain(|k, _| keep.iter().any(|x| x.as_str() == Some(k)));
    }
}

/// Builds a minimal `managedFields` FieldsV1 set (`f:` keys) from an applied object.
pub fn fields_v1(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, sub) in m {
                if k == "apiVersion" || k == "kind" {
                    continue;
                }
                if matches!(k.as_str(), "name" | "namespace") && m.contains_key("uid") {
                    continue;
                }
                out.insert(format!("f:{k}"), fields_v1(sub));
            }
            Value::Object(out)
        }
        _ => Value::Object(Map::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386() {
        let mut d = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]});
        merge(&mut d, &json!({"a": null, "b": {"c": 5}, "l": [3]}));
        assert_eq!(d, json!({"b": {"c": 5, "d": 3}, "l": [3]}));
    }

    #[test]
    fn json_patch_ops() {
        let mut d = json!({"metadata": {"labels": {"a": "1"}}});
        json(&mut d, &json!([{"op": "add", "path": "/metadata/labels/b", "value": "2"}, {"op": "remove", "path": "/metadata/labels/a"}])).unwrap();
        assert_eq!(d, json!({"metadata": {"labels": {"b": "2"}}}));
        assert!(json(
            &mut d,
            &json!([{"op": "test", "path": "/metadata/labels/b", "value": "x"}])
        )
        .is_err());
    }

    #[test]
    fn smp_lists_by_key() {
        let mut d = json!({"spec": {"containers": [{"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}]}, {"name": "b", "image": "y"}]}});
        strategic(
            &mut d,
            &json!({"spec": {"containers": [{"name": "a", "image": "z", "env": [{"name": "F", "value": "2"}]}, {"name": "c", "image": "w"}, {"name": "b", "$patch": "delete"}]}}),
        );
        assert_eq!(
            d,
            json!({"spec": {"containers": [
            {"name": "a", "image": "z", "env": [{"name": "E", "value": "1"}, {"name": "F", "value": "2"}]},
            {"name": "c", "image": "w"}]}})
        );
    }

    #[test]
    fn smp_finalizers_and_directives() {
        let mut d = json!({"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}}, "spec": {"strategy": {"type": "A", "rollingUpdate": {"m": 1}}}});
        strategic(
            &mut d,
            &json!({"metadata": {"finalizers": ["c", "a"], "$deleteFromPrimitiveList/finalizers": ["b"], "labels": {"x": null}},
            "spec": {"strategy": {"$retainKeys": ["type"], "type": "B"}}}),
        );
        assert_eq!(
            d,
            json!({"metadata": {"finalizers": ["a", "c"], "labels": {"y": "2"}}, "spec": {"strategy": {"type": "B"}}})
        );
        strategic(&mut d, &json!({"spec": {"$patch": "replace", "z": 1}}));
        assert_eq!(d["spec"], json!({"z": 1}));
        strategic(&mut d, &json!({"spec": {"$patch": "delete"}}));
        assert!(d.get("spec").is_none());
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type("text/plain"), None);
    }
}
