//! Request counters keyed by (Kubernetes verb, plural resource). Only client
//! HTTP requests are counted; in-process controllers write to the store
//! directly and are not.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// A snapshot of request counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Count per (verb, resource). Non-resource paths use resource "discovery".
    pub by_verb_resource: BTreeMap<(String, String), u64>,
}

impl Stats {
    /// Requests with this verb and resource.
    pub fn count(&self, verb: &str, resource: &str) -> u64 {
        self.by_verb_resource
            .get(&(verb.to_string(), resource.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// All requests.
    pub fn total(&self) -> u64 {
        self.by_verb_resource.values().sum()
    }

    fn sum_verbs(&self, verbs: &[&str]) -> u64 {
        self.by_verb_resource
            .iter()
            .filter(|((v, _), _)| verbs.contains(&v.as_str()))
            .map(|(_, n)| n)
            .sum()
    }

    /// create + update + patch + delete (+ deletecollection).
    pub fn writes(&self) -> u64 {
        self.sum_verbs(&["create", "update", "patch", "delete", "deletecollection"])
    }

    /// get + list + watch.
    pub fn reads(&self) -> u64 {
        self.sum_verbs(&["get", "list", "watch"])
    }

    /// JSON form used by `GET /testserver/stats`.
    pub fn to_json(&self) -> serde_json::Value {
        #[derive(Serialize)]
        struct Row<'a> {
            verb: &'a str,
            resource: &'a str,
            count: u64,
        }
        let rows: Vec<Row<'_>> = self
            .by_verb_resource
            .iter()
            .map(|((v, r), c)| Row {
                verb: v,
                resource: r,
                count: *c,
            })
            .collect();
        serde_json::json!({"total": self.total(), "reads": self.reads(), "writes": self.writes(), "requests": rows})
    }
}

/// Shared live counters.
#[derive(Clone, Default)]
pub struct StatsRecorder(Arc<Mutex<BTreeMap<(String, String), u64>>>);

impl StatsRecorder {
    /// Counts one request.
    pub fn record(&self, verb: &str, resource: &str) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((verb.to_string(), resource.to_string()))
            .or_insert(0) += 1;
    }

    /// The counters as they are now (requests by verb and resource).
    pub fn snapshot(&self) -> Stats {
        Stats {
            by_verb_resource: self.0.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    /// Zeroes all counters.
    pub fn reset(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
