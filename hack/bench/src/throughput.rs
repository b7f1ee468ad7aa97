//! One throughput measurement: create N claims as fast as the API takes
//! them, and time each from the moment its create was sent until the test
//! server's binder marks it `Bound`.
//!
//! `Bound` is observed on the test server's store directly (no HTTP, not
//! counted), so the request counters hold only the provisioner's requests
//! plus the N creates, which are subtracted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use kube::api::Api;
use kube::Client;
use kube_testserver::registry::id;
use kube_testserver::TestServer;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use crate::latency::Latencies;
use crate::objects;
use crate::requests::{Own, PerVolume};

/// What to create.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Number of claims.
    pub claims: usize,
    /// Their StorageClass.
    pub class: String,
    /// The provisioner named in their annotation.
    pub provisioner: String,
    /// Pre-selected node (node-local provisioners), if any.
    pub node: Option<String>,
    /// Creates in flight at once.
    pub concurrency: usize,
    /// Give up waiting for `Bound` after this long.
    pub timeout: Duration,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Claims that reached `Bound`.
    pub bound: usize,
    /// First create sent → last claim `Bound`.
    pub elapsed: Duration,
    /// Per-claim create sent → `Bound`.
    pub latencies: Latencies,
    /// The provisioner's API requests per bound volume.
    pub requests: PerVolume,
    /// Whether every claim was `Bound` (and its finalizer released) in time.
    pub complete: bool,
}

impl Measured {
    /// Claims bound per second.
    pub fn per_second(&self) -> f64 {
        self.bound as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// Bound, with no finalizer but the apiserver's own pvc-protection.
fn settled(v: &Value) -> bool {
    s(v, "/status/phase") == "Bound" && !has_intent(v)
}

/// Whether claim `v` still carries the controller's provisioning-intent
/// finalizer (others, such as `kubernetes.io/pvc-protection`, stay on a
/// bound claim for its whole life).
pub fn has_intent(v: &Value) -> bool {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| {
            f.iter()
                .any(|x| x == external_storage::annotations::PROVISIONING_FINALIZER)
        })
}

/// Runs `w` against `ts` (whose provisioner must already be running) and
/// measures it. Request counters are reset at the start.
pub async fn run(ts: &TestServer, client: &Client, w: &Workload) -> anyhow::Result<Measured> {
    let store = ts.store();
    let pvc_res = id("", "persistentvolumeclaims");
    let mut rx = store.subscribe();
    ts.reset_stats();
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let api: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(client.clone(), "default");
    let start = Instant::now();
    let creator = {
        let (sent, api, w) = (sent.clone(), api.clone(), w.clone());
        tokio::spawn(async move {
            futures::stream::iter(0..w.claims)
                .map(|i| {
                    let (sent, api) = (sent.clone(), api.clone());
                    let c = objects::scheduled_claim(
                        &format!("c{i:05}"),
                        &w.class,
                        &w.provisioner,
                        w.node.as_deref(),
                    );
                    async move {
                        sent.lock()
                            .unwrap()
                            .insert(format!("c{i:05}"), Instant::now());
                        objects::create_claim_retrying(&api, &c).await
                    }
                })
                .buffer_unordered(w.concurrency.max(1))
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<anyhow::Result<Vec<()>>>()
        })
    };

    let mut bound_at: HashMap<String, Instant> = HashMap::new();
    let mut done: usize = 0;
    let deadline = tokio::time::Instant::now() + w.timeout;
    let scan = |bound_at: &mut HashMap<String, Instant>| -> usize {
        // Fallback after a lagged subscription: read the store.
        let page = store.list(pvc_res, Some("default"), &|_| true);
        let now = Instant::now();
        let mut settled_count = 0;
        for c in &page.items {
            if s(c, "/status/phase") == "Bound" {
                bound_at
                    .entry(s(c, "/metadata/name").to_string())
                    .or_insert(now);
            }
            settled_count += usize::from(settled(c));
        }
        settled_count
    };
    let mut next_progress = Instant::now() + Duration::from_secs(10);
    while done < w.claims {
        if Instant::now() >= next_progress {
            eprintln!(
                "  ... {} of {} Bound after {:.0?}",
                bound_at.len(),
                w.claims,
                start.elapsed()
            );
            next_progress += Duration::from_secs(10);
        }
        let ev = tokio::select! {
            r = rx.recv() => r,
            _ = tokio::time::sleep_until(deadline) => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => Err(RecvError::Lagged(0)),
        };
        match ev {
            Ok(ev) if ev.res == pvc_res => {
                let name = s(&ev.object, "/metadata/name").to_string();
                if s(&ev.object, "/status/phase") == "Bound" {
                    bound_at.entry(name).or_insert_with(Instant::now);
                }
                if bound_at.len() == w.claims {
                    done = scan(&mut bound_at);
                }
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => done = scan(&mut bound_at),
            Err(RecvError::Closed) => break,
        }
    }
    let finished = Instant::now();
    creator
        .await
        .context("claim creator panicked")?
        .context("creating claims")?;
    let stats = ts.stats();
    let mut own = Own::default();
    own.add("create", "persistentvolumeclaims", w.claims as u64);

    let sent = sent.lock().unwrap();
    let samples: Vec<Duration> = bound_at
        .iter()
        .filter_map(|(n, b)| Some(b.saturating_duration_since(*sent.get(n)?)))
        .collect();
    let last = bound_at.values().max().copied().unwrap_or(finished);
    Ok(Measured {
        bound: bound_at.len(),
        elapsed: last.saturating_duration_since(start),
        latencies: Latencies::new(samples),
        requests: PerVolume::compute(&stats, &own, bound_at.len()),
        complete: done == w.claims,
    })
}
