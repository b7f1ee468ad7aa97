//! OpenAPI documents for kubectl.
//!
//! kubectl (default `--validate=strict`) asks /openapi/v3 whether the server
//! supports the `fieldValidation` query parameter for a kind's PATCH
//! operation; when it does, client-side schema validation is skipped. The
//! per-group-version documents therefore list every resource path with its
//! operations, `x-kubernetes-group-version-kind`, and that parameter.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::registry::{group_versions, ResourceInfo, RESOURCES};
use crate::request::json_response;
use crate::status::ApiError;

const HASH: &str = "6A0C6C1E0F2A5A3F9F8B3A1D7E1B2C3D4E5F60718293A4B5C6D7E8F9011223344";

fn gv_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the index of group-version documents.
pub fn v3_root() -> Response {
    let mut paths = Map::new();
    for (g, v) in group_versions() {
        let key = gv_key(g, v);
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={HASH}")}),
        );
    }
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&json!({"paths": paths})).unwrap_or_default(),
    )
}

fn params(names: &[&str]) -> Value {
    Value::Array(
        names
            .iter()
            .map(|n| json!({"name": n, "in": "query", "description": n, "schema": {"type": "string", "uniqueItems": true}}))
            .collect(),
    )
}

fn op(info: &ResourceInfo, action: &str, id: &str, q: &[&str]) -> Value {
    json!({
        "tags": [info.group],
        "operationId": id,
        "parameters": params(q),
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": info.group, "version": info.version, "kind": info.kind},
    })
}

fn doc_for(group: &str, version: &str) -> Option<Value> {
    let mut paths = Map::new();
    let schemas = Map::new();
    let base = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let write_params = ["dryRun", "fieldManager", "fieldValidation", "pretty"];
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let coll = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{base}/{}", r.plural)
        };
        paths.insert(coll.clone(), json!({
            "get": op(r, "list", &format!("list{}", r.kind), &["labelSelector", "fieldSelector", "limit", "continue", "watch", "resourceVersion"]),
            "post": op(r, "post", &format!("create{}", r.kind), &write_params),
            "delete": op(r, "deletecollection", &format!("deletecollection{}", r.kind), &["labelSelector"]),
        }));
        let item = format!("{coll}/{{name}}");
        paths.insert(item.clone(), json!({
            "get": op(r, "get", &format!("read{}", r.kind), &["pretty"]),
            "put": op(r, "put", &format!("replace{}", r.kind), &write_params),
            "patch": op(r, "patch", &format!("patch{}", r.kind), &["dryRun", "fieldManager", "fieldValidation", "force", "pretty"]),
            "delete": op(r, "delete", &format!("delete{}", r.kind), &["dryRun", "gracePeriodSeconds", "propagationPolicy"]),
        }));
        if r.status {
            paths.insert(format!("{item}/status"), json!({
                "get": op(r, "get", &format!("read{}Status", r.kind), &["pretty"]),
                "put": op(r, "put", &format!("replace{}Status", r.kind), &write_params),
                "patch": op(r, "patch", &format!("patch{}Status", r.kind), &["dryRun", "fieldManager", "fieldValidation", "force", "pretty"]),
            }));
        }
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// `/openapi/v3/<api/v1 | apis/g/v>`
pub fn v3_doc(key: &str) -> Response {
    let segs: Vec<&str> = key.split('/').collect();
    let doc = match segs.as_slice() {
        ["api", v] => doc_for("", v),
        ["apis", g, v] => doc_for(g, v),
        _ => None,
    };
    match doc {
        Some(d) => json_response(StatusCode::OK, serde_json::to_vec(&d).unwrap_or_default()),
        None => ApiError::path_not_found().into_response(),
    }
}

/// `/openapi/v2`: not served (kubectl works from /openapi/v3).
pub fn v2() -> Response {
    ApiError::path_not_found().into_response()
}
