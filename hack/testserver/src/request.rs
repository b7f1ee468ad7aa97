//! One API request as the handlers, the watch and discovery read it: the
//! resource path parsed against the registry, query parameters, the list and
//! watch filter, and the JSON response. Shared by `handlers`, `watch`,
//! `discovery` and `openapi`, so that none of them imports another for it.

use std::collections::HashMap;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::convert::to_view;
use crate::registry::{lookup, ResId, RESOURCES};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::meta_str;

/// A parsed resource path.
#[derive(Debug, Clone)]
pub struct ResPath {
    /// Resource id.
    pub res: ResId,
    /// Namespace from the URL, if any.
    pub ns: Option<String>,
    /// Object name, if any.
    pub name: Option<String>,
    /// Subresource (`status`), if any.
    pub sub: Option<String>,
    /// `?dryRun=All`: validate and compute, but do not persist.
    pub dry_run: bool,
    /// `?fieldValidation=Strict`: reject unknown fields.
    pub strict: bool,
}

/// Parses `/api/v1/...` and `/apis/g/v/...` resource paths. `None` means
/// "not a resource path"; `Some(Err)` means a resource-shaped path we do not serve.
pub fn parse_path(path: &str) -> Option<Result<ResPath, ApiError>> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    if rest.is_empty() {
        return None;
    }
    if rest[0] == "namespaces" && rest.len() >= 3 && rest[2] != "status" && rest[2] != "finalize" {
        let Some(res) = lookup(group, version, rest[2]).filter(|r| RESOURCES[*r].namespaced) else {
            return Some(Err(ApiError::path_not_found()));
        };
        if rest.len() > 5 {
            return Some(Err(ApiError::path_not_found()));
        }
        return Some(Ok(ResPath {
            res,
            ns: Some(rest[1].to_string()),
            name: rest.get(3).map(|s| s.to_string()),
            sub: rest.get(4).map(|s| s.to_string()),
            dry_run: false,
            strict: false,
        }));
    }
    let Some(res) = lookup(group, version, rest[0]) else {
        return Some(Err(ApiError::path_not_found()));
    };
    if rest.len() > 3 || (RESOURCES[res].namespaced && rest.len() > 1) {
        return Some(Err(ApiError::path_not_found()));
    }
    Some(Ok(ResPath {
        res,
        ns: None,
        name: rest.get(1).map(|s| s.to_string()),
        sub: rest.get(2).map(|s| s.to_string()),
        dry_run: false,
        strict: false,
    }))
}

pub(crate) fn query_map(uri: &axum::http::Uri) -> HashMap<String, String> {
    axum::extract::Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

pub(crate) fn is_true(q: &HashMap<String, String>, k: &str) -> bool {
    matches!(q.get(k).map(String::as_str), Some("true" | "1"))
}

/// JSON response helper.
pub fn json_response(code: StatusCode, body: Vec<u8>) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Builds the object filter for list/watch from query parameters.
pub fn build_filter(
    rp: &ResPath,
    q: &HashMap<String, String>,
) -> Result<impl Fn(&Value) -> bool + Send + Sync + 'static, ApiError> {
    let ls = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fs = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let ns = rp.ns.clone();
    let res = rp.res;
    Ok(move |o: &Value| {
        let o = to_view(res, o);
        let o = o.as_ref();
        ns.as_deref()
            .is_none_or(|n| meta_str(o, "namespace") == Some(n))
            && ls.matches(o)
            && fs.matches(o)
    })
}
