//! The object store: every object as JSON keyed by (resource, namespace, name),
//! one global monotonically increasing resourceVersion, a bounded history ring
//! for watch resumption, and a broadcast channel of changes.
//!
//! All API semantics that do not depend on HTTP (metadata defaulting,
//! optimistic concurrency, finalizers, generation) live here so that the
//! HTTP handlers and the in-process controllers share them.

use std::collections::{vec_deque, BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::Rng;
use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

use crate::registry::{validate_name, ResId, RESOURCES};
use crate::status::ApiError;

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

impl EventType {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to the store.
#[derive(Debug, Clone)]
pub struct Event {
    /// resourceVersion of this change.
    pub rv: u64,
    /// Change type.
    pub etype: EventType,
    /// Resource id.
    pub res: ResId,
    /// Object state after the change (last state for deletions).
    pub object: Arc<Value>,
    /// Object state before the change, for modifications.
    pub prev: Option<Arc<Value>>,
    /// The object serialized once, shared by all watchers.
    json: std::sync::OnceLock<axum::body::Bytes>,
}

impl Event {
    /// The object as JSON, serialized on first use and then shared.
    pub fn object_json(&self) -> &axum::body::Bytes {
        self.json.get_or_init(|| {
            axum::body::Bytes::from(serde_json::to_vec(self.object.as_ref()).unwrap_or_default())
        })
    }
}

type Key = (ResId, String, String);

struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Arc<Value>>,
    history: VecDeque<Arc<Event>>,
    cap: usize,
}

impl Inner {
    /// The changes after resourceVersion `rv`, oldest first; or, when the
    /// history ring no longer reaches back to `rv` (it was compacted or
    /// overrun), `Err` with the oldest resourceVersion it can still answer
    /// from. Lists (undoing changes) and watches (replaying them) share it.
    fn changes_since(&self, rv: u64) -> Result<vec_deque::Iter<'_, Arc<Event>>, u64> {
        let oldest = self.history.front().map_or(self.rv + 1, |e| e.rv);
        if rv + 1 < oldest {
            return Err(oldest - 1);
        }
        // The ring is in resourceVersion order.
        let start = self.history.partition_point(|e| e.rv <= rv);
        Ok(self.history.range(start..))
    }
}

/// The shared store.
pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Event>>,
}

/// What a new watch starts with.
pub enum WatchStart {
    /// Current objects (to be sent as synthetic ADDED events).
    Snapshot(Vec<Arc<Value>>),
    /// Historical events after the requested resourceVersion.
    Replay(Vec<Arc<Event>>),
}

/// Where a paged list goes on: the resourceVersion its first page showed
/// and the last key returned (what the continue token encodes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Continue {
    /// The list's resourceVersion: every page shows the store as of it.
    pub rv: u64,
    /// Namespace of the last object returned.
    pub ns: String,
    /// Name of the last object returned.
    pub name: String,
}

/// A page of a list.
pub struct ListPage {
    /// The objects of this page, in key order (namespace, then name).
    pub items: Vec<Arc<Value>>,
    /// The resourceVersion the list shows (its first page's).
    pub rv: u64,
    /// If more items remain: where the next page starts.
    pub next: Option<Continue>,
    /// Number of matching items after this page.
    pub remaining: usize,
}

/// RFC 3339 timestamp with second precision, as Kubernetes writes them.
pub fn now_ts() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Reads `metadata.<field>` as a string.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata object")
}

fn rv_of(obj: &Value) -> u64 {
    meta_str(obj, "resourceVersion")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Whether the non-metadata, non-status content of two objects is equal.
fn spec_eq(a: &Value, b: &Value) -> bool {
    let skip = |k: &String| matches!(k.as_str(), "metadata" | "status" | "kind" | "apiVersion");
    match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => {
            let ak: Vec<_> = a.iter().filter(|(k, _)| !skip(k)).collect();
            let bk: Vec<_> = b.iter().filter(|(k, _)| !skip(k)).collect();
            ak == bk
        }
        _ => a == b,
    }
}

fn has_finalizers(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

const NAME_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

impl Store {
    /// Creates an empty store keeping `history` events for watch resumption.
    pub fn new(history: usize) -> Arc<Store> {
        let (tx, _) = broadcast::channel(65536);
        Arc::new(Store {
            inner: Mutex::new(Inner {
                rv: 1,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                cap: history.max(1),
            }),
            tx,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes to all future changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Current global resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    fn emit(&self, inner: &mut Inner, ev: Event) {
        let ev = Arc::new(ev);
        if inner.history.len() >= inner.cap {
            inner.history.pop_front();
        }
        inner.history.push_back(ev.clone());
        let _ = self.tx.send(ev);
    }

    /// Gets one object.
    pub fn get(&self, res: ResId, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.lock()
            .objects
            .get(&(res, ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Lists every object of `res` (optionally in one namespace) matching
    /// `filter`, as it is now.
    pub fn list(&self, res: ResId, ns: Option<&str>, filter: &dyn Fn(&Value) -> bool) -> ListPage {
        self.list_page(res, ns, filter, None, None)
            .expect("a list from the start reads the current state, which is always there")
    }

    /// One page of a list: at most `limit` objects of `res` (optionally in
    /// one namespace) matching `filter`, after `from`'s key.
    ///
    /// Like the real API server (etcd's MVCC), every page of a list shows
    /// the store as it was at the first page's resourceVersion: later
    /// changes of `res` are undone from the history ring. A client that
    /// starts its watch at the list's resourceVersion therefore sees every
    /// change after it, also of objects on earlier pages. When the history
    /// no longer reaches back that far, the continue token has expired:
    /// 410, and the client lists again (as after etcd's compaction).
    pub fn list_page(
        &self,
        res: ResId,
        ns: Option<&str>,
        filter: &dyn Fn(&Value) -> bool,
        from: Option<&Continue>,
        limit: Option<usize>,
    ) -> Result<ListPage, ApiError> {
        let inner = self.lock();
        let at = from.map_or(inner.rv, |c| c.rv);
        // State before the changes after `at`, newest undone first, so the
        // oldest change's `prev` (the state at `at`) wins. `None`: the
        // object did not exist yet.
        let mut undone: BTreeMap<Key, Option<Arc<Value>>> = BTreeMap::new();
        if at < inner.rv {
            let changes = inner.changes_since(at).map_err(|oldest| {
                ApiError::gone(format!(
                    "The provided continue parameter is too old to display a consistent list result (resourceVersion {at}, oldest kept {oldest}). You can start a new list without the continue parameter."
                ))
            })?;
            for ev in changes.rev() {
                if ev.res != res {
                    continue;
                }
                let key = (
                    res,
                    meta_str(&ev.object, "namespace").unwrap_or("").to_string(),
                    meta_str(&ev.object, "name").unwrap_or("").to_string(),
                );
                let before = match ev.etype {
                    EventType::Added => None,
                    EventType::Modified | EventType::Deleted => ev.prev.clone(),
                };
                undone.insert(key, before);
            }
        }
        let lower = match from {
            Some(c) => Bound::Excluded((res, c.ns.clone(), c.name.clone())),
            None => Bound::Included((res, ns.unwrap_or("").to_string(), String::new())),
        };
        let range = (lower, Bound::Unbounded);
        let mut now = inner
            .objects
            .range(range.clone())
            .map(|(k, v)| (k, Some(v)))
            .peekable();
        let mut then = undone.range(range).map(|(k, v)| (k, v.as_ref())).peekable();
        // Both in key order: merged, the undone state wins on equal keys.
        let at_snapshot = std::iter::from_fn(|| match (now.peek(), then.peek()) {
            (None, None) => None,
            (Some(_), None) => now.next(),
            (None, Some(_)) => then.next(),
            (Some((a, _)), Some((b, _))) => match a.cmp(b) {
                std::cmp::Ordering::Less => now.next(),
                std::cmp::Ordering::Greater => then.next(),
                std::cmp::Ordering::Equal => {
                    now.next();
                    then.next()
                }
            },
        });
        let mut items = Vec::new();
        let mut next = None;
        let mut remaining = 0;
        for ((r, o_ns, o_name), obj) in at_snapshot {
            if *r != res {
                break;
            }
            let Some(obj) = obj else { continue };
            if let Some(ns) = ns {
                if o_ns != ns {
                    if o_ns.as_str() > ns {
                        break;
                    }
                    continue;
                }
            }
            if !filter(obj) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                remaining += 1;
                continue;
            }
            if limit.is_some_and(|l| items.len() + 1 == l) {
                next = Some(Continue {
                    rv: at,
                    ns: o_ns.clone(),
                    name: o_name.clone(),
                });
            }
            items.push(obj.clone());
        }
        if remaining == 0 {
            next = None;
        }
        Ok(ListPage {
            items,
            rv: at,
            next,
            remaining,
        })
    }

    /// Creates an object, filling in server-set metadata.
    pub fn create(&self, res: ResId, obj: Value) -> Result<Arc<Value>, ApiError> {
        self.create_opts(res, obj, false)
    }

    /// [`Store::create`]; with `dry_run` nothing is stored and no event is emitted.
    pub fn create_opts(
        &self,
        res: ResId,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let info = &RESOURCES[res];
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request was not a JSON object",
            ));
        }
        obj["apiVersion"] = json!(info.api_version());
        obj["kind"] = json!(info.kind);
        let mut inner = self.lock();
        let meta = meta_mut(&mut obj);
        let ns = if info.namespaced {
            meta.get("namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string()
        } else {
            meta.remove("namespace");
            String::new()
        };
        let name = match meta
            .get("name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            Some(n) => n.to_string(),
            None => match meta
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                Some(prefix) => {
                    let mut rng = rand::rng();
                    loop {
                        let suffix: String = (0..5)
                            .map(|_| NAME_CHARS[rng.random_range(0..NAME_CHARS.len())] as char)
                            .collect();
                        let cand = format!("{prefix}{suffix}");
                        if !inner.objects.contains_key(&(res, ns.clone(), cand.clone())) {
                            break cand;
                        }
                    }
                }
                None => {
                    return Err(ApiError::invalid(
                        info,
                        "",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    ))
                }
            },
        };
        if let Err(msg) = validate_name(info.name_rule, &name) {
            return Err(ApiError::invalid(
                info,
                &name,
                "metadata.name",
                &format!("Invalid value: \"{name}\": {msg}"),
            ));
        }
        if info.namespaced
            && !inner.objects.contains_key(&(
                crate::registry::id("", "namespaces"),
                String::new(),
                ns.clone(),
            ))
        {
            return Err(ApiError::not_found(
                &RESOURCES[crate::registry::id("", "namespaces")],
                &ns,
            ));
        }
        let key = (res, ns.clone(), name.clone());
        if inner.objects.contains_key(&key) {
            return Err(ApiError::already_exists(info, &name));
        }
        let rv = inner.rv + 1;
        meta.insert("name".into(), json!(name));
        if info.namespaced {
            meta.insert("namespace".into(), json!(ns));
        }
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.insert("generation".into(), json!(1));
        meta.insert("creationTimestamp".into(), json!(now_ts()));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        crate::objects::to_result(res, &name, crate::objects::on_create(res, &obj))?;
        if info.reset_status_on_create {
            let o = obj.as_object_mut().expect("object");
            match info.kind {
                "Pod" | "PersistentVolume" | "PersistentVolumeClaim" => {
                    o.insert("status".into(), json!({"phase": "Pending"}));
                }
                _ => {
                    o.insert("status".into(), json!({}));
                }
            }
        }
        if info.kind == "Namespace" {
            obj["status"] = json!({"phase": "Active"});
        }
        if dry_run {
            meta_mut(&mut obj).remove("resourceVersion");
            return Ok(Arc::new(obj));
        }
        inner.rv = rv;
        let obj = Arc::new(obj);
        inner.objects.insert(key, obj.clone());
        self.emit(
            &mut inner,
            Event {
                rv,
                etype: EventType::Added,
                res,
                object: obj.clone(),
                prev: None,
                json: Default::default(),
            },
        );
        Ok(obj)
    }

    /// Read-modify-write of one object under the store lock.
    ///
    /// `f` gets the current object and returns the desired one. Identity
    /// metadata is preserved, a no-op change does not bump the
    /// resourceVersion, `generation` is bumped on spec changes and an object
    /// being deleted disappears once its finalizers are empty.
    pub fn mutate(
        &self,
        res: ResId,
        ns: &str,
        name: &str,
        f: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Arc<Value>, ApiError> {
        self.mutate_opts(res, ns, name, false, f)
    }

    /// [`Store::mutate`]; with `dry_run` the result is computed but not stored.
    pub fn mutate_opts(
        &self,
        res: ResId,
        ns: &str,
        name: &str,
        dry_run: bool,
        f: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Arc<Value>, ApiError> {
        let info = &RESOURCES[res];
        let mut inner = self.lock();
        let key = (res, ns.to_string(), name.to_string());
        let cur = inner
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(info, name))?;
        let mut new = f(&cur)?;
        if !new.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request was not a JSON object",
            ));
        }
        crate::objects::to_result(res, name, crate::objects::on_update(res, &cur, &new))?;
        new["apiVersion"] = json!(info.api_version());
        new["kind"] = json!(info.kind);
        let cur_meta = cur["metadata"].as_object().cloned().unwrap_or_default();
        let meta = meta_mut(&mut new);
        for k in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match cur_meta.get(k) {
                Some(v) => meta.insert(k.into(), v.clone()),
                None => meta.remove(k),
            };
        }
        if meta
            .get("finalizers")
            .is_some_and(|f| f.as_array().is_some_and(Vec::is_empty) || f.is_null())
        {
            meta.remove("finalizers");
        }
        for k in ["labels", "annotations", "managedFields"] {
            if meta.get(k).is_some_and(|v| {
                v.is_null()
                    || v.as_object().is_some_and(Map::is_empty)
                    || v.as_array().is_some_and(Vec::is_empty)
            }) {
                meta.remove(k);
            }
        }
        if new == *cur {
            return Ok(cur);
        }
        if !spec_eq(&new, &cur) {
            let g = cur_meta
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            meta_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        if dry_run {
            return Ok(Arc::new(new));
        }
        inner.rv += 1;
        let rv = inner.rv;
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        let new = Arc::new(new);
        if new.pointer("/metadata/deletionTimestamp").is_some() && !has_finalizers(&new) {
            inner.objects.remove(&key);
            self.emit(
                &mut inner,
                Event {
                    rv,
                    etype: EventType::Deleted,
                    res,
                    object: new.clone(),
                    prev: Some(cur),
                    json: Default::default(),
                },
            );
        } else {
            inner.objects.insert(key, new.clone());
            self.emit(
                &mut inner,
                Event {
                    rv,
                    etype: EventType::Modified,
                    res,
                    object: new.clone(),
                    prev: Some(cur),
                    json: Default::default(),
                },
            );
        }
        Ok(new)
    }

    /// Deletes an object, honouring finalizers and preconditions.
    pub fn delete(
        &self,
        res: ResId,
        ns: &str,
        name: &str,
        pre_uid: Option<&str>,
        pre_rv: Option<&str>,
    ) -> Result<Arc<Value>, ApiError> {
        let info = &RESOURCES[res];
        let mut inner = self.lock();
        let key = (res, ns.to_string(), name.to_string());
        let cur = inner
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(info, name))?;
        let cur_uid = meta_str(&cur, "uid").unwrap_or("");
        if let Some(u) = pre_uid.filter(|u| *u != cur_uid) {
            return Err(ApiError::conflict_msg(
                info,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {u}, UID in object meta: {cur_uid}"
                ),
            ));
        }
        let cur_rv = meta_str(&cur, "resourceVersion").unwrap_or("");
        if let Some(r) = pre_rv.filter(|r| *r != cur_rv) {
            return Err(ApiError::conflict_msg(
                info,
                name,
                &format!("Precondition failed: ResourceVersion in precondition: {r}, ResourceVersion in object meta: {cur_rv}"),
            ));
        }
        inner.rv += 1;
        let rv = inner.rv;
        let mut new = (*cur).clone();
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        if has_finalizers(&cur) {
            if cur.pointer("/metadata/deletionTimestamp").is_some() {
                inner.rv -= 1;
                return Ok(cur);
            }
            let m = meta_mut(&mut new);
            m.insert("deletionTimestamp".into(), json!(now_ts()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            let new = Arc::new(new);
            inner.objects.insert(key, new.clone());
            self.emit(
                &mut inner,
                Event {
                    rv,
                    etype: EventType::Modified,
                    res,
                    object: new.clone(),
                    prev: Some(cur),
                    json: Default::default(),
                },
            );
            return Ok(new);
        }
        let new = Arc::new(new);
        inner.objects.remove(&key);
        self.emit(
            &mut inner,
            Event {
                rv,
                etype: EventType::Deleted,
                res,
                object: new.clone(),
                prev: Some(cur),
                json: Default::default(),
            },
        );
        Ok(new)
    }

    /// Forgets the change history, as etcd's compaction (and a restarted
    /// apiserver's fresh watch cache) does: a watch from any earlier
    /// resourceVersion is then answered 410 Expired.
    pub fn compact(&self) {
        self.lock().history.clear();
    }

    /// Starts a watch: subscribes and returns either a snapshot (from = None)
    /// or the history after `from`, atomically with the subscription.
    pub fn watch_begin(
        &self,
        res: ResId,
        from: Option<u64>,
    ) -> Result<(WatchStart, u64, broadcast::Receiver<Arc<Event>>), ApiError> {
        let inner = self.lock();
        let rx = self.tx.subscribe();
        let start = match from {
            None => WatchStart::Snapshot(
                inner
                    .objects
                    .range((res, String::new(), String::new())..)
                    .take_while(|(k, _)| k.0 == res)
                    .map(|(_, v)| v.clone())
                    .collect(),
            ),
            Some(n) => {
                let changes = inner.changes_since(n).map_err(|oldest| {
                    ApiError::gone(format!("too old resource version: {n} ({oldest})"))
                })?;
                WatchStart::Replay(changes.filter(|e| e.res == res).cloned().collect())
            }
        };
        Ok((start, inner.rv, rx))
    }

    /// Number of stored objects of `res`.
    pub fn count(&self, res: ResId) -> usize {
        self.lock()
            .objects
            .range((res, String::new(), String::new())..)
            .take_while(|(k, _)| k.0 == res)
            .count()
    }

    /// resourceVersion of an object (helper).
    pub fn rv_of(obj: &Value) -> u64 {
        rv_of(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::id;

    fn store() -> Arc<Store> {
        let s = Store::new(100);
        s.create(
            id("", "namespaces"),
            json!({"metadata": {"name": "default"}}),
        )
        .unwrap();
        s
    }

    #[test]
    fn create_update_noop_delete() {
        let s = store();
        let cm = id("", "configmaps");
        let o = s
            .create(
                cm,
                json!({"metadata": {"name": "a", "namespace": "default"}, "data": {"k": "v"}}),
            )
            .unwrap();
        assert_eq!(meta_str(&o, "resourceVersion"), Some("3"));
        let same = s.mutate(cm, "default", "a", |c| Ok(c.clone())).unwrap();
        assert_eq!(meta_str(&same, "resourceVersion"), Some("3"));
        let changed = s
            .mutate(cm, "default", "a", |c| {
                let mut c = c.clone();
                c["data"]["k"] = json!("w");
                Ok(c)
            })
            .unwrap();
        assert_eq!(meta_str(&changed, "resourceVersion"), Some("4"));
        assert_eq!(changed["metadata"]["generation"], json!(2));
        assert_eq!(
            s.create(
                cm,
                json!({"metadata": {"name": "a", "namespace": "default"}})
            )
            .unwrap_err()
            .code,
            409
        );
        assert_eq!(
            s.create(cm, json!({"metadata": {"name": "a", "namespace": "nope"}}))
                .unwrap_err()
                .code,
            404
        );
        s.delete(cm, "default", "a", None, None).unwrap();
        assert!(s.get(cm, "default", "a").is_none());
    }

    #[test]
    fn finalizers_hold_deletion() {
        let s = store();
        let cm = id("", "configmaps");
        s.create(
            cm,
            json!({"metadata": {"name": "a", "namespace": "default", "finalizers": ["x"]}}),
        )
        .unwrap();
        let d = s.delete(cm, "default", "a", None, None).unwrap();
        assert!(d.pointer("/metadata/deletionTimestamp").is_some());
        assert!(s.get(cm, "default", "a").is_some());
        s.mutate(cm, "default", "a", |c| {
            let mut c = c.clone();
            c["metadata"]["finalizers"] = json!([]);
            Ok(c)
        })
        .unwrap();
        assert!(s.get(cm, "default", "a").is_none());
    }

    #[test]
    fn history_expiry() {
        let s = Store::new(3);
        let ns = id("", "namespaces");
        for i in 0..10 {
            s.create(ns, json!({"metadata": {"name": format!("n{i}")}}))
                .unwrap();
        }
        assert_eq!(s.watch_begin(ns, Some(2)).err().unwrap().code, 410);
        assert!(s.watch_begin(ns, Some(9)).is_ok());
    }
}
