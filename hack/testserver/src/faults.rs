//! Fault injection: error rates per verb/resource, latency, dropping watches
//! and refusing connections. Shared between the library handle and the
//! `/testserver/faults` HTTP endpoint.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

use crate::status::ApiError;

/// Kind of injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultKind {
    /// 500 InternalError.
    InternalError,
    /// 429 TooManyRequests with `Retry-After: 1`.
    TooManyRequests,
    /// 409 Conflict.
    Conflict,
    /// 504 Timeout.
    Timeout,
}

impl FaultKind {
    /// The error returned to the client.
    pub fn error(self, resource: &str) -> ApiError {
        match self {
            FaultKind::InternalError => ApiError::new(500, "InternalError", "Internal error occurred: injected fault"),
            FaultKind::TooManyRequests => ApiError {
                retry_after: Some(1),
                ..ApiError::new(429, "TooManyRequests", "the server has received too many requests and has asked us to try again later")
            },
            FaultKind::Conflict => ApiError::new(
                409,
                "Conflict",
                format!("Operation cannot be fulfilled on {resource}: injected conflict; please apply your changes to the latest version and try again"),
            ),
            FaultKind::Timeout => ApiError::new(504, "Timeout", "Timeout: request did not complete within the allowed duration"),
        }
    }
}

/// One error-rate rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorRule {
    /// Verb to match, None = any.
    pub verb: Option<String>,
    /// Plural resource to match, None = any.
    pub resource: Option<String>,
    /// Failure kind.
    pub kind: FaultKind,
    /// Probability in [0, 1].
    pub rate: f64,
}

#[derive(Default)]
struct State {
    rules: Vec<ErrorRule>,
    latency: Duration,
    refuse_until: Option<Instant>,
    /// Refusals asked for so far (`refuse_connections_for` calls).
    refusals: u64,
}

/// Cheap clonable handle to the fault configuration.
#[derive(Clone)]
pub struct Faults {
    state: Arc<Mutex<State>>,
    drop_tx: Arc<watch::Sender<u64>>,
    refuse: Arc<Notify>,
    /// The last refusal the accept loop has put into effect (listener
    /// closed, connections cut).
    refused_tx: Arc<watch::Sender<u64>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            state: Arc::default(),
            drop_tx: Arc::new(watch::channel(0).0),
            refuse: Arc::new(Notify::new()),
            refused_tx: Arc::new(watch::channel(0).0),
        }
    }
}

impl Faults {
    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes a fraction `rate` of matching requests fail with `kind`.
    /// Replaces an existing rule for the same verb and resource.
    pub fn set_error_rate(
        &self,
        verb: Option<&str>,
        resource: Option<&str>,
        kind: FaultKind,
        rate: f64,
    ) {
        let mut st = self.st();
        let (verb, resource) = (verb.map(String::from), resource.map(String::from));
        st.rules
            .retain(|r| !(r.verb == verb && r.resource == resource));
        if rate > 0.0 {
            st.rules.push(ErrorRule {
                verb,
                resource,
                kind,
                rate,
            });
        }
    }

    /// Adds a fixed latency to every request.
    pub fn set_latency(&self, d: Duration) {
        self.st().latency = d;
    }

    /// Closes every open watch stream now.
    pub fn drop_watches(&self) {
        self.drop_tx.send_modify(|g| *g += 1);
    }

    /// Refuses TCP connections (and cuts open ones) for `d`.
    /// [`Faults::refused`] waits until it is in effect.
    pub fn refuse_connections_for(&self, d: Duration) {
        {
            let mut st = self.st();
            st.refuse_until = Some(Instant::now() + d);
            st.refusals += 1;
        }
        self.refuse.notify_waiters();
        self.refuse.notify_one();
    }

    /// Returns once the latest [`Faults::refuse_connections_for`] is in
    /// effect: the listener is closed and open connections are cut, so a
    /// connection attempt now fails (a barrier for tests, instead of a sleep).
    pub async fn refused(&self) {
        let want = self.st().refusals;
        let mut rx = self.refused_tx.subscribe();
        let _ = rx.wait_for(|done| *done >= want).await;
    }

    /// Called by the accept loop once refusal is in effect.
    pub(crate) fn mark_refused(&self) {
        let done = self.st().refusals;
        self.refused_tx.send_modify(|v| *v = (*v).max(done));
    }

    /// Called by the accept loop while it serves: a refusal that lapsed (or
    /// was cleared) before the loop saw it counts as done, so that
    /// [`Faults::refused`] never waits forever; a caller then finds the
    /// server accepting, and its own check fails, as it should.
    pub(crate) fn mark_lapsed_refusals(&self) {
        let st = self.st();
        if st.refuse_until.is_none_or(|t| t <= Instant::now()) {
            let done = st.refusals;
            drop(st);
            self.refused_tx.send_modify(|v| *v = (*v).max(done));
        }
    }

    /// Removes all faults.
    pub fn clear(&self) {
        let mut st = self.st();
        st.rules.clear();
        st.latency = Duration::ZERO;
        st.refuse_until = None;
    }

    /// Current latency.
    pub fn latency(&self) -> Duration {
        self.st().latency
    }

    /// Current rules.
    pub fn rules(&self) -> Vec<ErrorRule> {
        self.st().rules.clone()
    }

    /// Decides whether a request fails.
    pub fn pick(&self, verb: &str, resource: &str) -> Option<FaultKind> {
        let st = self.st();
        let mut rng = rand::rng();
        for r in &st.rules {
            if r.verb.as_deref().is_none_or(|v| v == verb)
                && r.resource.as_deref().is_none_or(|x| x == resource)
                && rng.random::<f64>() < r.rate
            {
                return Some(r.kind);
            }
        }
        None
    }

    /// Watch streams subscribe here to be told to close.
    pub fn drop_signal(&self) -> watch::Receiver<u64> {
        self.drop_tx.subscribe()
    }

    /// If connections should currently be refused, until when.
    pub fn refusing_until(&self) -> Option<Instant> {
        self.st().refuse_until.filter(|t| *t > Instant::now())
    }

    /// Notified when `refuse_connections_for` is called.
    pub(crate) fn refuse_notify(&self) -> Arc<Notify> {
        self.refuse.clone()
    }
}
