//! Watch streams: newline-delimited JSON events over a chunked response,
//! with resourceVersion resumption from the history ring, 410 Expired,
//! bookmarks, timeouts, initial-events streaming and forced disconnects.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::registry::RESOURCES;
use crate::request::{build_filter, ResPath};
use crate::state::AppState;
use crate::status::ApiError;
use crate::store::{Event, EventType, WatchStart};

fn line_raw(etype: &str, obj_json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(obj_json.len() + 32);
    out.extend_from_slice(br#"{"type":""#);
    out.extend_from_slice(etype.as_bytes());
    out.extend_from_slice(br#"","object":"#);
    out.extend_from_slice(obj_json);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

fn line(etype: &str, obj: &Value) -> Bytes {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(br#"{"type":""#);
    out.extend_from_slice(etype.as_bytes());
    out.extend_from_slice(br#"","object":"#);
    let _ = serde_json::to_writer(&mut out, obj);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

fn classify<'a>(ev: &'a Event, m: &dyn Fn(&Value) -> bool) -> Option<&'static str> {
    let now = m(&ev.object);
    match ev.etype {
        EventType::Added => now.then_some("ADDED"),
        EventType::Deleted => (now || ev.prev.as_deref().is_some_and(m)).then_some("DELETED"),
        EventType::Modified => match (ev.prev.as_deref().is_some_and(m), now) {
            (true, true) => Some("MODIFIED"),
            (false, true) => Some("ADDED"),
            (true, false) => Some("DELETED"),
            (false, false) => None,
        },
    }
}

/// Serves a watch request.
pub fn watch(
    st: &Arc<AppState>,
    rp: &ResPath,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    match start(st, rp, q, crate::discovery::wants_table(headers)) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn start(
    st: &Arc<AppState>,
    rp: &ResPath,
    q: &HashMap<String, String>,
    table: bool,
) -> Result<Response, ApiError> {
    if rp.sub.is_some() {
        return Err(ApiError::path_not_found());
    }
    let info = &RESOURCES[rp.res];
    let filter = build_filter(rp, q)?;
    let send_initial = q.get("sendInitialEvents").is_some_and(|v| v == "true");
    let bookmarks = q
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true" || v == "1");
    let from = match q.get("resourceVersion").map(String::as_str) {
        _ if send_initial => None,
        None | Some("") | Some("0") => None,
        Some(n) => Some(
            n.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {n}")))?,
        ),
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map(Duration::from_secs);
    let (tx, rx) = mpsc::channel::<Bytes>(1024);
    let body = Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, Infallible>));
    let resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    let (start, start_rv, brx) = match st
        .store
        .watch_begin(crate::convert::storage_res(rp.res), from)
    {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.try_send(line("ERROR", &e.to_status()));
            return Ok(resp);
        }
    };
    let res = crate::convert::storage_res(rp.res);
    let view = rp.res;
    let kind = info.kind;
    let api_version = info.api_version();
    let bookmark_every = st.config.bookmark_interval;
    let mut drop_rx = st.faults.drop_signal();
    drop_rx.mark_unchanged();
    let mut brx: broadcast::Receiver<Arc<Event>> = brx;
    let mut first = true;
    let mut render = move |etype: &str, obj: &Value| -> Bytes {
        let obj = crate::convert::to_view(view, obj);
        let obj = obj.as_ref();
        if !table {
            return line(etype, obj);
        }
        let cols = if first {
            crate::discovery::columns(info)
        } else {
            json!([])
        };
        first = false;
        let t = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)},
            "columnDefinitions": cols, "rows": [crate::discovery::row(info, obj)]});
        line(etype, &t)
    };
    tokio::spawn(async move {
        let mut last_rv = start_rv;
        let bookmark = |rv: u64, end: bool| {
            let mut meta = json!({"resourceVersion": rv.to_string()});
            if end {
                meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            line(
                "BOOKMARK",
                &json!({"kind": kind, "apiVersion": api_version, "metadata": meta}),
            )
        };
        match start {
            WatchStart::Snapshot(objs) => {
                for o in objs.iter().filter(|o| filter(o)) {
                    if tx.send(render("ADDED", o)).await.is_err() {
                        return;
                    }
                }
            }
            WatchStart::Replay(evs) => {
                for ev in evs {
                    if let Some(t) = classify(&ev, &filter) {
                        if tx.send(render(t, &ev.object)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
        if send_initial && bookmarks && tx.send(bookmark(start_rv, true)).await.is_err() {
            return;
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ticker = tokio::time::interval(bookmark_every.max(Duration::from_millis(10)));
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = tx.closed() => break,
                _ = drop_rx.changed() => break,
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break,
                _ = ticker.tick(), if bookmarks => {
                    if tx.send(bookmark(last_rv, false)).await.is_err() { break; }
                }
                ev = brx.recv() => match ev {
                    Ok(ev) => {
                        last_rv = ev.rv;
                        if ev.res != res { continue; }
                        if let Some(t) = classify(&ev, &filter) {
                            let l = if table || view != res {
                                render(t, &ev.object)
                            } else {
                                line_raw(t, ev.object_json())
                            };
                            let sent = tokio::select! {
                                r = tx.send(l) => r.is_ok(),
                                _ = drop_rx.changed() => false,
                            };
                            if !sent { break; }
                        }
                    }
                    Err(_) => break,
                },
            }
        }
    });
    Ok(resp)
}
