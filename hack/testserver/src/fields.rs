//! Minimal server-side-apply field ownership (`metadata.managedFields`).
//!
//! Field sets are leaf paths through maps; lists are atomic. Apply requests
//! conflict (409) when another manager owns a field they would change,
//! `force` takes ownership, fields a manager stops applying are removed when
//! nobody else owns them, and ordinary writes move the fields they change to
//! the writer's `Update` entry. This is what leader-election libraries that
//! lock with non-forced applies (e.g. kube-lease-manager) rely on.

use serde_json::{json, Map, Value};

use crate::registry::ResourceInfo;
use crate::status::ApiError;

/// A field path (map keys from the object root).
pub type FieldPath = Vec<String>;

const META_TRACKED: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

fn walk(v: &Value, path: &mut FieldPath, out: &mut Vec<FieldPath>) {
    match v {
        // Empty maps own nothing (they would otherwise overlap every child).
        Value::Object(m) => {
            for (k, sub) in m {
                path.push(k.clone());
                walk(sub, path, out);
                path.pop();
            }
        }
        _ => out.push(path.clone()),
    }
}

/// Leaf paths of an object relevant for ownership. `status_only` selects the
/// status subresource's fields, otherwise status is excluded.
pub fn leaves(v: &Value, status_only: bool) -> Vec<FieldPath> {
    let mut out = Vec::new();
    let Some(m) = v.as_object() else { return out };
    for (k, sub) in m {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "status" if !status_only => {}
            _ if status_only && k != "status" => {}
            "metadata" => {
                if let Some(mm) = sub.as_object() {
                    for t in META_TRACKED {
                        if let Some(x) = mm.get(*t) {
                            walk(x, &mut vec!["metadata".into(), t.to_string()], &mut out);
                        }
                    }
                }
            }
            _ => walk(sub, &mut vec![k.clone()], &mut out),
        }
    }
    out
}

fn to_fields_v1(paths: &[FieldPath]) -> Value {
    let mut root = Map::new();
    for p in paths {
        let mut cur = &mut root;
        for seg in p {
            cur = cur
                .entry(format!("f:{seg}"))
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("object");
        }
    }
    Value::Object(root)
}

fn from_fields_v1(v: &Value, path: &mut FieldPath, out: &mut Vec<FieldPath>) {
    let Some(m) = v.as_object() else { return };
    let mut any = false;
    for (k, sub) in m {
        if let Some(seg) = k.strip_prefix("f:") {
            any = true;
            path.push(seg.to_string());
            from_fields_v1(sub, path, out);
            path.pop();
        }
    }
    if !any && !path.is_empty() {
        out.push(path.clone());
    }
}

fn value_at<'a>(v: &'a Value, p: &FieldPath) -> Option<&'a Value> {
    p.iter().try_fold(v, |cur, seg| cur.get(seg))
}

fn remove_at(v: &mut Value, p: &FieldPath) {
    let Some((last, parents)) = p.split_last() else {
        return;
    };
    let mut cur = v;
    for seg in parents {
        match cur.get_mut(seg) {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

fn overlaps(a: &FieldPath, b: &FieldPath) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    sub: Option<String>,
    paths: Vec<FieldPath>,
}

fn entries(obj: &Value) -> Vec<Entry> {
    let s = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| {
                    let mut paths = Vec::new();
                    if let Some(f) = e.get("fieldsV1") {
                        from_fields_v1(f, &mut Vec::new(), &mut paths);
                    }
                    Entry {
                        manager: s(e, "manager"),
                        operation: s(e, "operation"),
                        api_version: s(e, "apiVersion"),
                        time: s(e, "time"),
                        sub: e
                            .get("subresource")
                            .and_then(Value::as_str)
                            .map(String::from),
                        paths,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn set_entries(obj: &mut Value, es: Vec<Entry>) {
    let list: Vec<Value> = es
        .into_iter()
        .filter(|e| !e.paths.is_empty())
        .map(|e| {
            let mut v = json!({"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&e.paths)});
            if let Some(s) = e.sub {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    let meta = obj["metadata"].as_object_mut().expect("metadata");
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

fn dotted(p: &FieldPath) -> String {
    p.iter().map(|s| format!(".{s}")).collect()
}

/// Records an ordinary write (create/update/patch) by `manager`: fields it
/// changed move to its `Update` entry. `cur` is None on create.
pub fn track_update(
    cur: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    sub: Option<&str>,
) {
    let status_only = sub == Some("status");
    let new_leaves = leaves(new, status_only);
    let changed: Vec<FieldPath> = new_leaves
        .iter()
        .filter(|p| cur.is_none_or(|c| value_at(c, p) != value_at(new, p)))
        .cloned()
        .collect();
    let removed: Vec<FieldPath> = cur
        .map(|c| {
            leaves(c, status_only)
                .into_iter()
                .filter(|p| value_at(new, p).is_none())
                .collect()
        })
        .unwrap_or_default();
    let mut es = cur.map(entries).unwrap_or_default();
    if changed.is_empty() && removed.is_empty() {
        set_entries(new, es);
        return;
    }
    for e in es.iter_mut() {
        e.paths.retain(|q| {
            !changed.iter().any(|p| overlaps(p, q)) && !removed.iter().any(|p| overlaps(p, q))
        });
    }
    let sub_s = sub.map(String::from);
    let idx = es
        .iter()
        .position(|e| e.manager == manager && e.operation == "Update" && e.sub == sub_s);
    let idx = idx.unwrap_or_else(|| {
        es.push(Entry {
            manager: manager.to_string(),
            operation: "Update".into(),
            api_version: api_version.to_string(),
            time: String::new(),
            sub: sub_s.clone(),
            paths: Vec::new(),
        });
        es.len() - 1
    });
    let e = &mut es[idx];
    e.time = crate::store::now_ts();
    for p in changed {
        if !e.paths.contains(&p) {
            e.paths.push(p);
        }
    }
    set_entries(new, es);
}

/// Server-side apply bookkeeping. `merged` is the live object with the
/// applied configuration merged in; on success its managedFields are updated
/// and fields the manager no longer applies (and nobody else owns) removed.
#[allow(clippy::too_many_arguments)]
pub fn track_apply(
    info: &ResourceInfo,
    name: &str,
    cur: Option<&Value>,
    merged: &mut Value,
    applied: &Value,
    manager: &str,
    force: bool,
    sub: Option<&str>,
) -> Result<(), ApiError> {
    let status_only = sub == Some("status");
    let api_version = info.api_version();
    let applied_paths = leaves(applied, status_only);
    let mut es = cur.map(entries).unwrap_or_default();
    let mut conflicts: Vec<(String, String, FieldPath)> = Vec::new();
    for e in es.iter().filter(|e| e.manager != manager) {
        for p in &applied_paths {
            let differs = cur.is_some_and(|c| value_at(c, p) != value_at(applied, p));
            if differs
                && e.paths.iter().any(|q| overlaps(p, q))
                && !conflicts.iter().any(|c| c.0 == e.manager && &c.2 == p)
            {
                conflicts.push((e.manager.clone(), e.api_version.clone(), p.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        let n = conflicts.len();
        let parts: Vec<String> = conflicts
            .iter()
            .map(|(m, av, p)| format!("conflict with \"{m}\" using {av}: {}", dotted(p)))
            .collect();
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(m, av, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\" using {av}"), "field": dotted(p)}))
            .collect();
        let mut err = ApiError::new(
            409,
            "Conflict",
            format!(
                "Apply failed with {n} conflict{}: {}",
                if n == 1 { "" } else { "s" },
                parts.join("; ")
            ),
        );
        let mut d = json!({"name": name});
        if !info.group.is_empty() {
            d["group"] = json!(info.group);
        }
        d["kind"] = json!(info.plural);
        d["causes"] = Value::Array(causes);
        err.details = Some(d);
        return Err(err);
    }
    if force {
        for e in es.iter_mut().filter(|e| e.manager != manager) {
            e.paths
                .retain(|q| !conflicts.iter().any(|c| overlaps(&c.2, q)));
        }
    }
    let sub_s = sub.map(String::from);
    let old: Vec<FieldPath> = es
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply" && e.sub == sub_s)
        .map(|e| e.paths.clone())
        .unwrap_or_default();
    for q in old
        .iter()
        .filter(|q| !applied_paths.iter().any(|p| overlaps(p, q)))
    {
        let owned_elsewhere = es
            .iter()
            .filter(|e| !(e.manager == manager && e.operation == "Apply" && e.sub == sub_s))
            .any(|e| e.paths.iter().any(|x| overlaps(x, q)));
        if !owned_elsewhere {
            remove_at(merged, q);
        }
    }
    es.retain(|e| !(e.manager == manager && e.operation == "Apply" && e.sub == sub_s));
    es.push(Entry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version,
        time: crate::store::now_ts(),
        sub: sub_s,
        paths: applied_paths,
    });
    set_entries(merged, es);
    Ok(())
}

/// The field manager for a non-apply request: `?fieldManager=` or the
/// User-Agent up to its first '/', like kube-apiserver.
pub fn manager_for(query: Option<&String>, user_agent: Option<&str>) -> String {
    if let Some(m) = query.filter(|m| !m.is_empty()) {
        return m.clone();
    }
    user_agent
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{id, RESOURCES};

    #[test]
    fn apply_conflicts_and_force() {
        let info = &RESOURCES[id("coordination.k8s.io", "leases")];
        let mut cur = json!({"metadata": {"name": "l"}, "spec": {}});
        let a = json!({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 10}});
        let mut m = cur.clone();
        crate::patch::strategic(&mut m, &a);
        track_apply(info, "l", Some(&cur), &mut m, &a, "mgr-a", false, None).unwrap();
        cur = m;
        let b = json!({"spec": {"holderIdentity": "b", "leaseDurationSeconds": 10}});
        let mut m = cur.clone();
        crate::patch::strategic(&mut m, &b);
        let e = track_apply(info, "l", Some(&cur), &mut m, &b, "mgr-b", false, None).unwrap_err();
        assert_eq!(e.code, 409);
        assert_eq!(e.message, "Apply failed with 1 conflict: conflict with \"mgr-a\" using coordination.k8s.io/v1: .spec.holderIdentity");
        track_apply(info, "l", Some(&cur), &mut m, &b, "mgr-b", true, None).unwrap();
        // a stops applying leaseDurationSeconds? still owned by b -> kept
        let a2 = json!({"spec": {}});
        let cur2 = m.clone();
        let mut m2 = cur2.clone();
        track_apply(info, "l", Some(&cur2), &mut m2, &a2, "mgr-a", false, None).unwrap();
        assert_eq!(m2["spec"]["leaseDurationSeconds"], 10);
    }

    #[test]
    fn updates_take_ownership() {
        let info = &RESOURCES[id("coordination.k8s.io", "leases")];
        let cur = json!({"metadata": {"name": "l"}, "spec": {}});
        let a = json!({"spec": {"holderIdentity": "a"}});
        let mut m = cur.clone();
        crate::patch::strategic(&mut m, &a);
        track_apply(info, "l", Some(&cur), &mut m, &a, "mgr-a", false, None).unwrap();
        let mut upd = m.clone();
        upd["spec"]["holderIdentity"] = json!(null);
        upd["spec"]
            .as_object_mut()
            .unwrap()
            .remove("holderIdentity");
        track_update(Some(&m), &mut upd, "mgr-a", "coordination.k8s.io/v1", None);
        assert!(upd.pointer("/metadata/managedFields").is_none());
        // now b can apply without conflict
        let b = json!({"spec": {"holderIdentity": "b"}});
        let mut m3 = upd.clone();
        crate::patch::strategic(&mut m3, &b);
        track_apply(info, "l", Some(&upd), &mut m3, &b, "mgr-b", false, None).unwrap();
    }
}
