//! Resources that are views of another resource's storage.
//!
//! kube-apiserver stores `events.k8s.io/v1` Events and core `v1` Events in
//! one place; each API version sees the other's writes. Here the core form is
//! stored and `events.k8s.io/v1` objects are converted on the way in and out.

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use crate::registry::{id, ResId};

/// (core v1 field, events.k8s.io/v1 field)
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

fn is_events_v1(res: ResId) -> bool {
    res == id("events.k8s.io", "events")
}

/// The resource whose storage holds `res`'s objects.
pub fn storage_res(res: ResId) -> ResId {
    if is_events_v1(res) {
        id("", "events")
    } else {
        res
    }
}

fn rename(v: &Value, from_core: bool, api_version: &str) -> Value {
    let Some(m) = v.as_object() else {
        return v.clone();
    };
    let mut out = Map::with_capacity(m.len());
    for (k, val) in m {
        let key = EVENT_FIELDS
            .iter()
            .find(|(c, n)| if from_core { c == k } else { n == k })
            .map(|(c, n)| if from_core { *n } else { *c })
            .unwrap_or(k.as_str());
        out.insert(key.to_string(), val.clone());
    }
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!("Event"));
    Value::Object(out)
}

/// Converts a stored object into the form served for `res`.
pub fn to_view(res: ResId, stored: &Value) -> Cow<'_, Value> {
    if is_events_v1(res) {
        Cow::Owned(rename(stored, true, "events.k8s.io/v1"))
    } else {
        Cow::Borrowed(stored)
    }
}

/// Converts an object in `res`'s form into the stored form.
pub fn from_view(res: ResId, v: Value) -> Value {
    if is_events_v1(res) {
        rename(&v, false, "v1")
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let res = id("events.k8s.io", "events");
        let new = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Pod", "name": "p"}, "note": "hi", "reportingController": "c", "reason": "R"});
        let core = from_view(res, new.clone());
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "hi");
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(to_view(res, &core).into_owned(), new);
        assert_eq!(storage_res(res), id("", "events"));
    }
}
