//! Non-resource endpoints: /version, API discovery (/api, /apis, resource
//! lists), health checks, and `meta.k8s.io/v1` Table rendering for kubectl.

use axum::http::{header, request::Parts, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::registry::{group_versions, ResourceInfo, RESOURCES};
use crate::request::json_response;
use crate::state::AppState;
use crate::status::ApiError;
use crate::store::meta_str;

/// The version reported by `/version`.
pub fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0",
        "gitCommit": "60a317eadfcb839692a5551a0e6ed1ec3ac1a4a3", "gitTreeState": "clean",
        "buildDate": "2025-04-23T13:07:55Z", "goVersion": "go1.24.2", "compiler": "gc",
        "platform": "linux/amd64"
    })
}

fn ok(v: &Value) -> Response {
    json_response(StatusCode::OK, serde_json::to_vec(v).unwrap_or_default())
}

/// `APIResourceList` for one group/version.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut e = json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "storageVersionHash": format!("{:x}", r.plural.len() * 7919 + r.kind.len()),
        });
        if !r.short_names.is_empty() {
            e["shortNames"] = json!(r.short_names);
        }
        if r.group == "apps" {
            e["categories"] = json!(["all"]);
        }
        if r.kind == "Pod" || r.kind == "Service" {
            e["categories"] = json!(["all"]);
        }
        resources.push(e);
        if r.status {
            resources.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                "kind": r.kind, "verbs": ["get", "patch", "update"]}));
        }
    }
    if resources.is_empty() {
        return None;
    }
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn api_group(group: &str) -> Value {
    let versions: Vec<Value> = group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": versions, "preferredVersion": versions[0]})
}

/// Handles every non-resource path.
pub async fn handle(st: &AppState, parts: &Parts) -> Response {
    let path = parts.uri.path().trim_end_matches('/');
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if parts.method != axum::http::Method::GET {
        return ApiError::method_not_allowed().into_response();
    }
    match segs.as_slice() {
        ["version"] => ok(&version()),
        ["healthz"] | ["livez"] | ["readyz"] => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "ok").into_response()
        }
        ["api"] => ok(&json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": st.addr().to_string()}]})),
        ["apis"] => {
            let mut groups: Vec<&str> = group_versions()
                .into_iter()
                .map(|(g, _)| g)
                .filter(|g| !g.is_empty())
                .collect();
            groups.dedup();
            let groups: Vec<Value> = groups.into_iter().map(api_group).collect();
            ok(&json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        ["api", v] => resource_list("", v)
            .map(|l| ok(&l))
            .unwrap_or_else(|| ApiError::path_not_found().into_response()),
        ["apis", g] if group_versions().iter().any(|(x, _)| x == g) => ok(&api_group(g)),
        ["apis", g, v] => resource_list(g, v)
            .map(|l| ok(&l))
            .unwrap_or_else(|| ApiError::path_not_found().into_response()),
        ["openapi", "v2"] => crate::openapi::v2(),
        ["openapi", "v3"] => crate::openapi::v3_root(),
        ["openapi", "v3", rest @ ..] => crate::openapi::v3_doc(&rest.join("/")),
        _ => ApiError::path_not_found().into_response(),
    }
}

/// Whether the client asked for a `meta.k8s.io` Table.
pub fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

fn age(ts: Option<&str>) -> String {
    let Some(t) = ts.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) else {
        return "<unknown>".into();
    };
    let s = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

fn extra_columns(info: &ResourceInfo) -> Vec<(&'static str, &'static [&'static str])> {
    match info.kind {
        "PersistentVolumeClaim" => vec![
            ("Status", &["/status/phase"]),
            ("Volume", &["/spec/volumeName"]),
            ("StorageClass", &["/spec/storageClassName"]),
        ],
        "PersistentVolume" => vec![
            ("Capacity", &["/spec/capacity/storage"]),
            ("Status", &["/status/phase"]),
            ("Claim", &["/spec/claimRef/name"]),
            ("StorageClass", &["/spec/storageClassName"]),
        ],
        "Pod" => vec![
            ("Status", &["/status/phase"]),
            ("Node", &["/spec/nodeName"]),
        ],
        "Namespace" => vec![("Status", &["/status/phase"])],
        "StorageClass" => vec![
            ("Provisioner", &["/provisioner"]),
            ("ReclaimPolicy", &["/reclaimPolicy"]),
            ("VolumeBindingMode", &["/volumeBindingMode"]),
        ],
        // Stored (core) and events.k8s.io field names.
        "Event" => vec![
            ("Type", &["/type"]),
            ("Reason", &["/reason"]),
            ("Object", &["/involvedObject/name", "/regarding/name"]),
            ("Message", &["/message", "/note"]),
        ],
        _ => vec![],
    }
}

/// Column definitions for a kind's Table.
pub fn columns(info: &ResourceInfo) -> Value {
    let mut cols = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    for (n, _) in extra_columns(info) {
        cols.push(
            json!({"name": n, "type": "string", "format": "", "description": n, "priority": 0}),
        );
    }
    cols.push(json!({"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0}));
    Value::Array(cols)
}

/// One Table row for an object.
pub fn row(info: &ResourceInfo, obj: &Value) -> Value {
    let mut cells = vec![json!(meta_str(obj, "name").unwrap_or(""))];
    for (_, ps) in extra_columns(info) {
        let v = ps
            .iter()
            .find_map(|p| obj.pointer(p).and_then(Value::as_str))
            .unwrap_or("");
        cells.push(json!(v));
    }
    cells.push(json!(age(meta_str(obj, "creationTimestamp"))));
    json!({"cells": cells, "object": obj})
}

/// A Table response for a list.
pub fn table(info: &ResourceInfo, items: &[std::sync::Arc<Value>], rv: u64) -> Response {
    let rows: Vec<Value> = items.iter().map(|o| row(info, o)).collect();
    ok(
        &json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": columns(info), "rows": rows}),
    )
}
