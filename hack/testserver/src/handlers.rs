//! HTTP routing and the resource handlers (get/list/create/update/patch/delete).
//!
//! Paths are parsed by hand against the registry table instead of declaring
//! one axum route per kind; the same parser classifies requests for stats and
//! fault injection.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::admission;
use crate::convert::{from_view, storage_res, to_view};
use crate::patch::{self, PatchType};
use crate::registry::RESOURCES;
use crate::request::{build_filter, is_true, json_response, parse_path, query_map, ResPath};
use crate::state::AppState;
use crate::status::ApiError;
use crate::store::{meta_str, Continue};

/// How stats, faults and the access log see one request.
pub struct RequestClass {
    /// Kubernetes verb (`get`, `list`, `watch`, ...), or the lowercase
    /// HTTP method for non-resource paths.
    pub verb: String,
    /// Plural resource, or `discovery` for non-resource paths.
    pub resource: String,
    /// For resource paths, the RBAC view: (API group,
    /// `resource[/subresource]`).
    pub rbac: Option<(String, String)>,
}

/// Classifies a request, parsing its path once.
pub fn classify(method: &Method, uri: &axum::http::Uri) -> RequestClass {
    match parse_path(uri.path()) {
        Some(Ok(rp)) => {
            let info = &RESOURCES[rp.res];
            let rbac_resource = match &rp.sub {
                Some(sub) => format!("{}/{sub}", info.plural),
                None => info.plural.to_string(),
            };
            RequestClass {
                verb: verb_of(method, uri, &rp).to_string(),
                resource: info.plural.to_string(),
                rbac: Some((info.group.to_string(), rbac_resource)),
            }
        }
        _ => RequestClass {
            verb: method.as_str().to_ascii_lowercase(),
            resource: "discovery".to_string(),
            rbac: None,
        },
    }
}

fn verb_of(method: &Method, uri: &axum::http::Uri, rp: &ResPath) -> &'static str {
    let named = rp.name.is_some();
    match *method {
        Method::GET if named => "get",
        Method::GET if is_true(&query_map(uri), "watch") => "watch",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

/// Middleware: counts the request and applies injected faults.
pub async fn stats_and_faults(
    State(st): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    if req.uri().path().starts_with("/testserver/") {
        return next.run(req).await;
    }
    let RequestClass {
        verb,
        resource,
        rbac,
    } = classify(req.method(), req.uri());
    st.stats.record(&verb, &resource);
    if let Some((group, rbac_resource)) = rbac {
        st.access.record(crate::access::Access {
            user: crate::access::user_of(req.headers()),
            verb: verb.clone(),
            group,
            resource: rbac_resource,
        });
    }
    let lat = st.faults.latency();
    if !lat.is_zero() {
        tokio::time::sleep(lat).await;
    }
    if let Some(kind) = st.faults.pick(&verb, &resource) {
        tracing::debug!(%verb, %resource, ?kind, "injected fault");
        return kind.error(&resource).into_response();
    }
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let resp = next.run(req).await;
    tracing::debug!(%method, %uri, status = resp.status().as_u16(), "request");
    resp
}

fn obj_response(code: StatusCode, obj: &Value) -> Response {
    json_response(code, serde_json::to_vec(obj).unwrap_or_default())
}

/// The fallback handler: everything not matched by an explicit route.
pub async fn dispatch(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Some(parsed) = parse_path(parts.uri.path()) else {
        return crate::discovery::handle(&st, &parts).await;
    };
    let rp = match parsed {
        Ok(rp) => rp,
        Err(e) => return e.into_response(),
    };
    let q = query_map(&parts.uri);
    let mut rp = rp;
    rp.dry_run = q.get("dryRun").is_some_and(|d| d == "All");
    rp.strict = q.get("fieldValidation").is_some_and(|v| v == "Strict");
    if parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("protobuf") || c.contains("cbor"))
    {
        return ApiError::new(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml").into_response();
    }
    let bytes = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(b) => b,
        Err(e) => return ApiError::bad_request(e.to_string()).into_response(),
    };
    let result = match (&parts.method, &rp.name) {
        (&Method::GET, Some(_)) => get(&st, &rp, &parts.headers),
        (&Method::GET, None) if is_true(&q, "watch") => {
            return crate::watch::watch(&st, &rp, &q, &parts.headers);
        }
        (&Method::GET, None) => list(&st, &rp, &q, &parts.headers),
        (&Method::POST, None) => create(&st, &rp, &bytes, &manager_of(&q, &parts.headers)),
        (&Method::PUT, Some(_)) => update(&st, &rp, &bytes, &manager_of(&q, &parts.headers)),
        (&Method::PATCH, Some(_)) => patch(&st, &rp, &q, &parts.headers, &bytes),
        (&Method::DELETE, Some(_)) => delete(&st, &rp, &q, &bytes),
        (&Method::DELETE, None) => delete_collection(&st, &rp, &q),
        _ => Err(ApiError::method_not_allowed()),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn check_sub(rp: &ResPath) -> Result<(), ApiError> {
    match rp.sub.as_deref() {
        None => Ok(()),
        Some("status") if RESOURCES[rp.res].status => Ok(()),
        _ => Err(ApiError::path_not_found()),
    }
}

fn ns_of(rp: &ResPath) -> &str {
    rp.ns.as_deref().unwrap_or("")
}

fn get(st: &AppState, rp: &ResPath, headers: &HeaderMap) -> Result<Response, ApiError> {
    check_sub(rp)?;
    let name = rp.name.as_deref().unwrap_or("");
    let obj = st
        .store
        .get(storage_res(rp.res), ns_of(rp), name)
        .ok_or_else(|| ApiError::not_found(&RESOURCES[rp.res], name))?;
    let view = to_view(rp.res, &obj);
    // `kubectl get <kind> <name>` asks for a one-row Table, as for lists.
    if rp.sub.is_none() && crate::discovery::wants_table(headers) {
        let rv = meta_str(&view, "resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let row = std::sync::Arc::new(view.into_owned());
        return Ok(crate::discovery::table(&RESOURCES[rp.res], &[row], rv));
    }
    Ok(obj_response(StatusCode::OK, &view))
}

fn hex_encode(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// The continue token: opaque to clients, here the hex of
/// `rv NUL namespace NUL name`.
fn continue_token(c: &Continue) -> String {
    hex_encode(&format!("{}\u{0}{}\u{0}{}", c.rv, c.ns, c.name))
}

fn parse_continue(token: &str) -> Option<Continue> {
    let s = hex_decode(token)?;
    let mut parts = s.splitn(3, '\u{0}');
    let rv = parts.next()?.parse().ok()?;
    let (ns, name) = (parts.next()?, parts.next()?);
    Some(Continue {
        rv,
        ns: ns.to_string(),
        name: name.to_string(),
    })
}

fn list(
    st: &AppState,
    rp: &ResPath,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    if rp.sub.is_some() {
        return Err(ApiError::path_not_found());
    }
    let info = &RESOURCES[rp.res];
    let filter = build_filter(rp, q)?;
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        Some(Ok(0)) | None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => return Err(ApiError::bad_request("invalid limit")),
    };
    let from = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(c) => Some(
            parse_continue(c).ok_or_else(|| ApiError::bad_request("continue key is not valid"))?,
        ),
        None => None,
    };
    let page = st.store.list_page(
        storage_res(rp.res),
        rp.ns.as_deref(),
        &filter,
        from.as_ref(),
        limit,
    )?;
    if crate::discovery::wants_table(headers) {
        return Ok(crate::discovery::table(info, &page.items, page.rv));
    }
    let mut meta = json!({"resourceVersion": page.rv.to_string()});
    if let Some(next) = &page.next {
        meta["continue"] = json!(continue_token(next));
        meta["remainingItemCount"] = json!(page.remaining);
    }
    let mut out = Vec::with_capacity(256 + page.items.len() * 512);
    out.extend_from_slice(
        format!(
            r#"{{"kind":"{}List","apiVersion":"{}","metadata":"#,
            info.kind,
            info.api_version()
        )
        .as_bytes(),
    );
    serde_json::to_writer(&mut out, &meta)
        .map_err(|e| ApiError::new(500, "InternalError", e.to_string()))?;
    out.extend_from_slice(br#","items":["#);
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, to_view(rp.res, item).as_ref())
            .map_err(|e| ApiError::new(500, "InternalError", e.to_string()))?;
    }
    out.extend_from_slice(b"]}");
    Ok(json_response(StatusCode::OK, out))
}

fn parse_body(bytes: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes)
        .or_else(|_| serde_yaml::from_slice::<Value>(bytes))
        .map_err(|e| ApiError::bad_request(format!("error decoding body: {e}")))
}

fn set_namespace(rp: &ResPath, obj: &mut Value) -> Result<(), ApiError> {
    if !RESOURCES[rp.res].namespaced {
        return Ok(());
    }
    let ns = ns_of(rp).to_string();
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match meta_str(obj, "namespace") {
        Some(n) if !n.is_empty() && n != ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            obj["metadata"]["namespace"] = json!(ns);
            Ok(())
        }
    }
}

fn manager_of(q: &HashMap<String, String>, headers: &HeaderMap) -> String {
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    crate::fields::manager_for(q.get("fieldManager"), ua)
}

/// Applies status-subresource rules, then records field ownership for an
/// ordinary (non-apply) write by `manager`.
/// A `metadata.uid` in a write that differs from the stored object's is a
/// failed precondition (the object was deleted and re-created), as in
/// kube-apiserver.
fn check_uid(rp: &ResPath, cur: &Value, new: &Value) -> Result<(), ApiError> {
    let want = meta_str(new, "uid").filter(|u| !u.is_empty());
    let have = meta_str(cur, "uid").unwrap_or("");
    match want {
        Some(u) if u != have => Err(ApiError::conflict_msg(
            &RESOURCES[rp.res],
            meta_str(cur, "name").unwrap_or(""),
            &format!("Precondition failed: UID in precondition: {u}, UID in object meta: {have}"),
        )),
        _ => Ok(()),
    }
}

fn finish_write(rp: &ResPath, cur: &Value, new: Value, manager: &str) -> Value {
    let mut out = split_status(rp, cur, new);
    admission::apply_defaults(storage_res(rp.res), &mut out);
    match cur.pointer("/metadata/managedFields") {
        Some(mf) => out["metadata"]["managedFields"] = mf.clone(),
        None => {
            if let Some(m) = out.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("managedFields");
            }
        }
    }
    let av = RESOURCES[rp.res].api_version();
    crate::fields::track_update(Some(cur), &mut out, manager, &av, rp.sub.as_deref());
    out
}

fn create(st: &AppState, rp: &ResPath, bytes: &Bytes, manager: &str) -> Result<Response, ApiError> {
    if rp.sub.is_some() {
        return Err(ApiError::method_not_allowed());
    }
    if RESOURCES[rp.res].namespaced && rp.ns.is_none() {
        return Err(ApiError::method_not_allowed());
    }
    let mut obj = parse_body(bytes)?;
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request was not a JSON object",
        ));
    }
    set_namespace(rp, &mut obj)?;
    if rp.strict {
        crate::validation::strict(rp.res, &obj)?;
    }
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    let mut obj = from_view(rp.res, obj);
    admission::on_create(&st.store, rp.res, &mut obj);
    if st.config.binder {
        admission::protect(storage_res(rp.res), &mut obj);
    }
    admission::apply_defaults(storage_res(rp.res), &mut obj);
    crate::fields::track_update(
        None,
        &mut obj,
        manager,
        &RESOURCES[rp.res].api_version(),
        None,
    );
    let created = st.store.create_opts(storage_res(rp.res), obj, rp.dry_run)?;
    Ok(obj_response(
        StatusCode::CREATED,
        &to_view(rp.res, &created),
    ))
}

fn check_name(rp: &ResPath, obj: &Value) -> Result<(), ApiError> {
    let url = rp.name.as_deref().unwrap_or("");
    match meta_str(obj, "name") {
        Some(n) if n != url => Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({url})"
        ))),
        _ => Ok(()),
    }
}

/// Combines a requested new state with the current object according to
/// status-subresource rules.
fn split_status(rp: &ResPath, cur: &Value, mut new: Value) -> Value {
    let info = &RESOURCES[rp.res];
    if rp.sub.as_deref() == Some("status") {
        let mut out = cur.clone();
        if let Some(mf) = new.pointer("/metadata/managedFields") {
            out["metadata"]["managedFields"] = mf.clone();
        }
        match new.get("status") {
            Some(s) => out["status"] = s.clone(),
            None => {
                out.as_object_mut().map(|o| o.remove("status"));
            }
        }
        out
    } else {
        if info.status {
            match cur.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    new.as_object_mut().map(|o| o.remove("status"));
                }
            }
        }
        new
    }
}

fn update(st: &AppState, rp: &ResPath, bytes: &Bytes, manager: &str) -> Result<Response, ApiError> {
    check_sub(rp)?;
    let info = &RESOURCES[rp.res];
    let name = rp.name.clone().unwrap_or_default();
    let mut body = parse_body(bytes)?;
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request was not a JSON object",
        ));
    }
    check_name(rp, &body)?;
    set_namespace(rp, &mut body)?;
    if rp.strict {
        crate::validation::strict(rp.res, &body)?;
    }
    let body = from_view(rp.res, body);
    let updated =
        st.store
            .mutate_opts(storage_res(rp.res), ns_of(rp), &name, rp.dry_run, |cur| {
                if let Some(rv) = meta_str(&body, "resourceVersion").filter(|s| !s.is_empty()) {
                    if Some(rv) != meta_str(cur, "resourceVersion") {
                        return Err(ApiError::conflict(info, &name));
                    }
                }
                check_uid(rp, cur, &body)?;
                Ok(finish_write(rp, cur, body, manager))
            })?;
    Ok(obj_response(StatusCode::OK, &to_view(rp.res, &updated)))
}

fn patch(
    st: &AppState,
    rp: &ResPath,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    bytes: &Bytes,
) -> Result<Response, ApiError> {
    check_sub(rp)?;
    let info = &RESOURCES[rp.res];
    let name = rp.name.clone().unwrap_or_default();
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let pt = PatchType::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media(ct))?;
    let body: Value = if pt == PatchType::Apply {
        serde_yaml::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
    };
    let manager = if pt == PatchType::Apply {
        q.get("fieldManager").cloned().unwrap_or_default()
    } else {
        manager_of(q, headers)
    };
    let force = q.get("force").is_some_and(|f| f == "true");
    if pt == PatchType::Apply && manager.is_empty() {
        return Err(ApiError::bad_request(
            "PATCH request must include fieldManager for apply",
        ));
    }
    let sub = rp.sub.clone();
    let view = rp.res;
    let result = st.store.mutate_opts(storage_res(rp.res), ns_of(rp), &name, rp.dry_run, |cur| {
        let mut doc = to_view(view, cur).into_owned();
        match pt {
            PatchType::Merge => patch::merge(&mut doc, &body),
            PatchType::Strategic => patch::strategic(&mut doc, &body),
            PatchType::Json => patch::json(&mut doc, &body).map_err(|e| {
                ApiError::new(422, "Invalid", format!("the server rejected our request due to an error in our request: {e}"))
            })?,
            PatchType::Apply => {
                if rp.strict {
                    crate::validation::strict(view, &body)?;
                }
                if let Some(rv) = meta_str(&body, "resourceVersion").filter(|s| !s.is_empty()) {
                    if Some(rv) != meta_str(cur, "resourceVersion") {
                        return Err(ApiError::conflict(info, &name));
                    }
                }
                if let Some(m) = body.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str) {
                    if m != name {
                        return Err(ApiError::bad_request(format!(
                            "the name of the object ({m}) does not match the name on the URL ({name})"
                        )));
                    }
                }
                patch::strategic(&mut doc, &body);
                let cur_view = to_view(view, cur);
                crate::fields::track_apply(info, &name, Some(&cur_view), &mut doc, &body, &manager, force, sub.as_deref())?;
            }
        }
        if rp.strict && pt != PatchType::Apply {
            crate::validation::strict(view, &doc)?;
        }
        check_uid(rp, cur, &doc)?;
        if meta_str(&doc, "resourceVersion") != meta_str(cur, "resourceVersion")
            && pt != PatchType::Apply
            && meta_str(&doc, "resourceVersion").is_some_and(|s| !s.is_empty())
        {
            return Err(ApiError::conflict(info, &name));
        }
        if meta_str(&doc, "name") != meta_str(cur, "name") {
            return Err(ApiError::bad_request("metadata.name cannot be changed by a patch"));
        }
                if pt == PatchType::Apply {
            let mut out = split_status(rp, cur, from_view(view, doc));
            admission::apply_defaults(storage_res(rp.res), &mut out);
            Ok(out)
        } else {
            Ok(finish_write(rp, cur, from_view(view, doc), &manager))
        }
    });
    match result {
        Ok(o) => Ok(obj_response(StatusCode::OK, &to_view(rp.res, &o))),
        Err(e) if e.code == 404 && pt == PatchType::Apply && rp.sub.is_none() => {
            let mut obj = body.clone();
            if !obj.is_object() {
                return Err(ApiError::bad_request("apply body must be an object"));
            }
            if !obj.get("metadata").is_some_and(Value::is_object) {
                obj["metadata"] = json!({});
            }
            obj["metadata"]["name"] = json!(name);
            set_namespace(rp, &mut obj)?;
            if rp.strict {
                crate::validation::strict(rp.res, &obj)?;
            }
            if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("managedFields");
            }
            let applied = obj.clone();
            crate::fields::track_apply(
                info, &name, None, &mut obj, &applied, &manager, force, None,
            )?;
            let mut obj = from_view(rp.res, obj);
            admission::on_create(&st.store, rp.res, &mut obj);
            if st.config.binder {
                admission::protect(storage_res(rp.res), &mut obj);
            }
            admission::apply_defaults(storage_res(rp.res), &mut obj);
            let created = st.store.create_opts(storage_res(rp.res), obj, rp.dry_run)?;
            Ok(obj_response(
                StatusCode::CREATED,
                &to_view(rp.res, &created),
            ))
        }
        Err(e) => Err(e),
    }
}

fn delete(
    st: &AppState,
    rp: &ResPath,
    q: &HashMap<String, String>,
    bytes: &Bytes,
) -> Result<Response, ApiError> {
    if rp.sub.is_some() {
        return Err(ApiError::method_not_allowed());
    }
    let name = rp.name.clone().unwrap_or_default();
    let opts: Value = if bytes.is_empty() {
        json!({})
    } else {
        parse_body(bytes)?
    };
    let pre_uid = opts.pointer("/preconditions/uid").and_then(Value::as_str);
    let pre_rv = opts
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str);
    if q.get("dryRun").is_some_and(|d| d == "All")
        || opts
            .get("dryRun")
            .is_some_and(|d| d.as_array().is_some_and(|a| !a.is_empty()))
    {
        let obj = st
            .store
            .get(storage_res(rp.res), ns_of(rp), &name)
            .ok_or_else(|| ApiError::not_found(&RESOURCES[rp.res], &name))?;
        return Ok(obj_response(StatusCode::OK, &to_view(rp.res, &obj)));
    }
    let deleted = st
        .store
        .delete(storage_res(rp.res), ns_of(rp), &name, pre_uid, pre_rv)?;
    if RESOURCES[rp.res].kind == "Namespace"
        && deleted.pointer("/metadata/deletionTimestamp").is_none()
    {
        admission::on_namespace_deleted(&st.store, &name);
    }
    Ok(obj_response(StatusCode::OK, &to_view(rp.res, &deleted)))
}

fn delete_collection(
    st: &AppState,
    rp: &ResPath,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    if rp.sub.is_some() {
        return Err(ApiError::method_not_allowed());
    }
    let info = &RESOURCES[rp.res];
    let filter = build_filter(rp, q)?;
    let page = st
        .store
        .list(storage_res(rp.res), rp.ns.as_deref(), &filter);
    let mut items = Vec::new();
    for o in page.items {
        let ns = meta_str(&o, "namespace").unwrap_or("");
        let name = meta_str(&o, "name").unwrap_or("");
        if let Ok(d) = st.store.delete(storage_res(rp.res), ns, name, None, None) {
            items.push(to_view(rp.res, &d).into_owned());
        }
    }
    let out = json!({"kind": format!("{}List", info.kind), "apiVersion": info.api_version(),
        "metadata": {"resourceVersion": st.store.current_rv().to_string()}, "items": items});
    Ok(obj_response(StatusCode::OK, &out))
}

/// `GET /testserver/stats`
pub async fn get_stats(State(st): State<Arc<AppState>>) -> Response {
    obj_response(StatusCode::OK, &st.stats.snapshot().to_json())
}

/// `DELETE /testserver/stats`
pub async fn reset_stats(State(st): State<Arc<AppState>>) -> Response {
    st.stats.reset();
    obj_response(StatusCode::OK, &json!({"reset": true}))
}

/// Body of `POST/PUT /testserver/faults`.
#[derive(Debug, serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRequest {
    /// Clear all faults first.
    #[serde(default)]
    pub clear: bool,
    /// Error rules to add/replace.
    #[serde(default)]
    pub errors: Vec<crate::faults::ErrorRule>,
    /// Latency in milliseconds.
    pub latency_ms: Option<u64>,
    /// Close all open watches.
    #[serde(default)]
    pub drop_watches: bool,
    /// Refuse connections for this many milliseconds.
    pub refuse_connections_ms: Option<u64>,
}

/// `POST/PUT /testserver/faults`
pub async fn set_faults(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let req: FaultRequest = if body.is_empty() {
        FaultRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return ApiError::bad_request(e.to_string()).into_response(),
        }
    };
    let f = &st.faults;
    if req.clear {
        f.clear();
    }
    for r in &req.errors {
        f.set_error_rate(r.verb.as_deref(), r.resource.as_deref(), r.kind, r.rate);
    }
    if let Some(ms) = req.latency_ms {
        f.set_latency(std::time::Duration::from_millis(ms));
    }
    if req.drop_watches {
        f.drop_watches();
    }
    if let Some(ms) = req.refuse_connections_ms {
        f.refuse_connections_for(std::time::Duration::from_millis(ms));
    }
    obj_response(
        StatusCode::OK,
        &json!({"errors": f.rules(), "latencyMs": f.latency().as_millis() as u64}),
    )
}

/// Empty body helper for streaming responses.
pub fn empty() -> Body {
    Body::empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let p = parse_path("/api/v1/namespaces/default/persistentvolumeclaims/foo/status")
            .unwrap()
            .unwrap();
        assert_eq!(RESOURCES[p.res].plural, "persistentvolumeclaims");
        assert_eq!(p.ns.as_deref(), Some("default"));
        assert_eq!(p.name.as_deref(), Some("foo"));
        assert_eq!(p.sub.as_deref(), Some("status"));
        let p = parse_path("/api/v1/namespaces/default").unwrap().unwrap();
        assert_eq!(RESOURCES[p.res].plural, "namespaces");
        assert_eq!(p.name.as_deref(), Some("default"));
        let p = parse_path("/api/v1/namespaces/x/status").unwrap().unwrap();
        assert_eq!(p.sub.as_deref(), Some("status"));
        let p = parse_path("/apis/apps/v1/deployments").unwrap().unwrap();
        assert!(p.ns.is_none() && p.name.is_none());
        assert!(parse_path("/api/v1").is_none());
        assert!(parse_path("/apis/foo/v1/bars").unwrap().is_err());
        assert_eq!(
            hex_decode(&hex_encode("a\u{0}b")).as_deref(),
            Some("a\u{0}b")
        );
    }
}
