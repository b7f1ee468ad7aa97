//! Object validation beyond names: the part of kube-apiserver's validation
//! (`pkg/apis/core/validation`, v1.34) that provisioners run into, answered
//! with the same 422 `Invalid` Status and field paths.
//!
//! Covered: label keys and values on every kind; the PersistentVolume spec
//! (access modes, capacity, exactly one volume source, `hostPath`/`local`
//! paths without `..`, node affinity required for `local` and well formed
//! when present); and, on updates, the rule that no new finalizer may be
//! added to an object that is being deleted. Everything else is accepted
//! (README "Knowingly simplified").

use serde_json::Value;

use crate::registry::{ResId, RESOURCES};
use crate::status::ApiError;

/// One field error, rendered like apimachinery's `field.Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueForbidden`, ...
    pub reason: &'static str,
    /// The field path, e.g. `spec.hostPath.path`.
    pub field: String,
    /// `Invalid value: "x": detail`, `Required value`, `Forbidden: detail`.
    pub message: String,
}

impl FieldError {
    fn invalid(field: impl Into<String>, value: &str, detail: &str) -> Self {
        FieldError {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {value:?}: {detail}"),
        }
    }

    fn required(field: impl Into<String>, detail: &str) -> Self {
        FieldError {
            reason: "FieldValueRequired",
            field: field.into(),
            message: if detail.is_empty() {
                "Required value".into()
            } else {
                format!("Required value: {detail}")
            },
        }
    }

    fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        FieldError {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {detail}"),
        }
    }
}

/// The 422 for `errors` about object `name` of `res` (none: `Ok`), worded
/// like kube-apiserver: one error inline, several in brackets.
pub fn to_result(res: ResId, name: &str, errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        return Ok(());
    }
    let info = &RESOURCES[res];
    let list: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    let summary = match list.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    let mut details = serde_json::json!({"name": name, "kind": info.kind});
    if !info.group.is_empty() {
        details["group"] = serde_json::json!(info.group);
    }
    details["causes"] = errors
        .iter()
        .map(|e| serde_json::json!({"reason": e.reason, "message": e.message, "field": e.field}))
        .collect();
    Err(ApiError {
        details: Some(details),
        ..ApiError::new(
            422,
            "Invalid",
            format!(
                "{} \"{}\" is invalid: {}",
                info.qualified_kind(),
                name,
                summary
            ),
        )
    })
}

fn str_at<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p).and_then(Value::as_str)
}

/// apimachinery's `IsValidLabelValue`: at most 63 characters, alphanumeric
/// at both ends, `-`, `_`, `.` inside.
pub fn label_value_errors(v: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if v.len() > 63 {
        out.push("must be no more than 63 characters");
    }
    let b = v.as_bytes();
    let ok = b.is_empty()
        || (b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')));
    if !ok {
        out.push("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')");
    }
    out
}

/// apimachinery's `IsQualifiedName` for label keys: `[prefix/]name`, the
/// name at most 63 characters, the prefix a DNS subdomain.
pub fn label_key_errors(k: &str) -> Vec<&'static str> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let mut out = Vec::new();
    if let Some(p) = prefix {
        if p.is_empty()
            || crate::registry::validate_name(crate::registry::NameRule::Subdomain, p).is_err()
        {
            out.push("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')");
        }
    }
    if name.is_empty() {
        out.push("name part must be non-empty");
    } else {
        if name.len() > 63 {
            out.push("name part must be no more than 63 characters");
        }
        let b = name.as_bytes();
        if !(b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')))
        {
            out.push("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')");
        }
    }
    out
}

fn labels(obj: &Value, out: &mut Vec<FieldError>) {
    let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) else {
        return;
    };
    for (k, v) in labels {
        for msg in label_key_errors(k) {
            out.push(FieldError::invalid("metadata.labels", k, msg));
        }
        for msg in label_value_errors(v.as_str().unwrap_or_default()) {
            out.push(FieldError::invalid(
                "metadata.labels",
                v.as_str().unwrap_or_default(),
                msg,
            ));
        }
    }
}

/// The volume sources of a PV spec (`PersistentVolumeSource`'s fields).
const PV_SOURCES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "glusterfs",
    "flocker",
    "nfs",
    "rbd",
    "quobyte",
    "cephfs",
    "iscsi",
    "cinder",
    "fc",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "local",
    "storageos",
    "csi",
];

fn no_backsteps(path: &str, field: &str, out: &mut Vec<FieldError>) {
    if path.split('/').any(|p| p == "..") {
        out.push(FieldError::invalid(field, path, "must not contain '..'"));
    }
}

fn node_affinity(spec: &Value, out: &mut Vec<FieldError>) -> bool {
    let Some(aff) = spec.get("nodeAffinity").filter(|a| !a.is_null()) else {
        return false;
    };
    let Some(required) = aff.get("required").filter(|r| !r.is_null()) else {
        return false;
    };
    let terms = required
        .get("nodeSelectorTerms")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if terms.is_empty() {
        out.push(FieldError::required(
            "spec.nodeAffinity.required.nodeSelectorTerms",
            "must have at least one node selector term",
        ));
    }
    for (i, t) in terms.iter().enumerate() {
        for (j, r) in t
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let path =
                format!("spec.nodeAffinity.required.nodeSelectorTerms[{i}].matchExpressions[{j}]");
            let key = r.get("key").and_then(Value::as_str).unwrap_or_default();
            for msg in label_key_errors(key) {
                out.push(FieldError::invalid(format!("{path}.key"), key, msg));
            }
            let op = r
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let values = r
                .get("values")
                .and_then(Value::as_array)
                .map(Vec::len)
                .unwrap_or(0);
            if matches!(op, "In" | "NotIn") && values == 0 {
                out.push(FieldError::required(
                    format!("{path}.values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
        }
    }
    true
}

fn persistent_volume(obj: &Value, out: &mut Vec<FieldError>) {
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    if spec
        .get("accessModes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        out.push(FieldError::required("spec.accessModes", ""));
    }
    let capacity = spec.get("capacity").and_then(Value::as_object);
    if capacity.is_none_or(serde_json::Map::is_empty) {
        out.push(FieldError::required("spec.capacity", ""));
    }
    if capacity.is_none_or(|c| !c.contains_key("storage") || c.len() > 1) {
        out.push(FieldError {
            reason: "FieldValueNotSupported",
            field: "spec.capacity".into(),
            message: format!(
                "Unsupported value: {}: supported values: \"storage\"",
                spec.get("capacity").unwrap_or(&Value::Null)
            ),
        });
    }
    let affinity = node_affinity(&spec, out);
    let sources: Vec<&str> = PV_SOURCES
        .iter()
        .copied()
        .filter(|s| spec.get(*s).is_some_and(|v| !v.is_null()))
        .collect();
    match sources.as_slice() {
        [] => out.push(FieldError::required("spec", "must specify a volume type")),
        [_, more @ ..] => {
            for s in more {
                out.push(FieldError::forbidden(
                    format!("spec.{s}"),
                    "may not specify more than 1 volume type",
                ));
            }
        }
    }
    for source in ["hostPath", "local"] {
        if spec.get(source).is_some_and(|v| !v.is_null()) {
            let field = format!("spec.{source}.path");
            match str_at(&spec, &format!("/{source}/path")).filter(|p| !p.is_empty()) {
                None => out.push(FieldError::required(field, "")),
                Some(p) => no_backsteps(p, &field, out),
            }
        }
    }
    if spec.get("local").is_some_and(|v| !v.is_null()) && !affinity {
        out.push(FieldError::required(
            "spec.nodeAffinity",
            "Local volume requires node affinity",
        ));
    }
}

/// What kube-apiserver's create validation refuses in `obj` (beyond the
/// name, checked by the store).
pub fn on_create(res: ResId, obj: &Value) -> Vec<FieldError> {
    let mut out = Vec::new();
    labels(obj, &mut out);
    if (RESOURCES[res].group, RESOURCES[res].kind) == ("", "PersistentVolume") {
        persistent_volume(obj, &mut out);
    }
    out
}

/// What the update validation refuses in `new` replacing `old`: the create
/// rules, and no new finalizers on an object being deleted.
pub fn on_update(res: ResId, old: &Value, new: &Value) -> Vec<FieldError> {
    let mut out = on_create(res, new);
    if old.pointer("/metadata/deletionTimestamp").is_some() {
        let list = |v: &Value| -> Vec<String> {
            v.pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        };
        let before = list(old);
        let added: Vec<String> = list(new)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            let quoted: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
            out.push(FieldError::forbidden(
                "metadata.finalizers",
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    quoted.join(", ")
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::id;
    use serde_json::json;

    fn pv(spec: Value) -> Value {
        json!({"metadata": {"name": "v"}, "spec": spec})
    }

    #[test]
    fn a_valid_pv_passes_and_each_rule_names_its_field() {
        let pvs = id("", "persistentvolumes");
        let ok = json!({"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
            "hostPath": {"path": "/srv/v"}});
        assert_eq!(on_create(pvs, &pv(ok.clone())), vec![]);
        let mut bad = ok.clone();
        bad["hostPath"]["path"] = json!("/srv/../etc");
        let errs = on_create(pvs, &pv(bad));
        assert_eq!(errs[0].field, "spec.hostPath.path");
        assert_eq!(
            errs[0].message,
            "Invalid value: \"/srv/../etc\": must not contain '..'"
        );
        let mut local = ok.clone();
        local.as_object_mut().unwrap().remove("hostPath");
        local["local"] = json!({"path": "/mnt/disk"});
        let errs = on_create(pvs, &pv(local));
        assert_eq!(errs[0].field, "spec.nodeAffinity");
        let none = json!({"capacity": {"storage": "1Gi"}});
        let fields: Vec<String> = on_create(pvs, &pv(none))
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["spec.accessModes", "spec"]);
    }

    #[test]
    fn label_values_longer_than_63_are_refused() {
        let cm = id("", "configmaps");
        let long = "a".repeat(64);
        let errs = on_create(cm, &json!({"metadata": {"labels": {"k": long}}}));
        assert_eq!(errs.len(), 1);
        assert!(errs[0]
            .message
            .ends_with("must be no more than 63 characters"));
        assert!(on_create(cm, &json!({"metadata": {"labels": {"example.com/k": "v"}}})).is_empty());
        let r = to_result(cm, "c", errs).unwrap_err();
        assert_eq!(r.code, 422);
        assert!(r
            .message
            .starts_with("ConfigMap \"c\" is invalid: metadata.labels: Invalid value"));
    }

    #[test]
    fn no_new_finalizer_on_an_object_being_deleted() {
        let pvc = id("", "persistentvolumeclaims");
        let old =
            json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["a"]}});
        let removed = json!({"metadata": {"finalizers": []}});
        assert!(on_update(pvc, &old, &removed).is_empty());
        let added = json!({"metadata": {"finalizers": ["a", "b"]}});
        let errs = on_update(pvc, &old, &added);
        assert_eq!(
            errs[0].message,
            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"b\"}"
        );
        let live = json!({"metadata": {"finalizers": ["a"]}});
        assert!(on_update(pvc, &live, &added).is_empty());
    }
}
