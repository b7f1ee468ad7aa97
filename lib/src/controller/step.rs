//! A reconcile's result ([`Step`]) and how it becomes a requeue through the
//! backoff bookkeeping ([`finish`]), shared by the claim and volume loops,
//! and the claim loop's one exception to it: a claim decided on its own
//! saved PV is looked at again ([`stand_in_recheck`]).
//!
//! Why a module of its own: both loops end every reconcile here, and
//! `mod.rs` keeps to options and wiring.

use std::future::Future;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::Resource;

use crate::backoff::Backoffs;
use crate::metrics::Metrics;

/// The result of one reconcile, before it becomes a requeue [`Action`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Finished: reset backoff, wait for the next change.
    Done,
    /// An operation runs in the background: poll again.
    Poll,
    /// Failed (message for logs): retry with backoff / threshold.
    Retry(String),
    /// Infeasible: retry slowly.
    Slow(String),
    /// Failed in a way a retry repeats (the API server refused the object
    /// as invalid, the volume does not fit the claim): no retry until the
    /// object changes. `at` is the resourceVersion to give up at when the
    /// reconcile itself wrote a newer version than the one it started from.
    Final {
        /// For the logs.
        msg: String,
        /// The version our own last write made, if any.
        at: Option<String>,
    },
}

/// `namespace/name` (or `name`) of an object, the key of its backoff entry.
pub(crate) fn key_of<K: Resource>(obj: &K) -> String {
    match obj.meta().namespace.as_deref() {
        Some(ns) => format!("{ns}/{}", obj.meta().name.as_deref().unwrap_or_default()),
        None => obj.meta().name.clone().unwrap_or_default(),
    }
}

/// Runs one reconcile of `queue` (`claim` or `volume`), counted in the
/// in-progress gauge while it runs; afterwards the queue-depth gauge is
/// set to the objects `backoffs` holds. Both loops' entry points use it.
pub(crate) async fn counted(
    metrics: &Metrics,
    queue: &str,
    backoffs: &Backoffs,
    reconcile: impl Future<Output = Action>,
) -> Action {
    let label = Metrics::queue(queue);
    let gauge = metrics.in_progress.get_or_create(&label).clone();
    gauge.inc();
    let action = reconcile.await;
    gauge.dec();
    metrics
        .queue_depth
        .get_or_create(&label)
        .set(backoffs.len() as i64);
    action
}

/// Map a reconcile result to the controller action, through the backoff
/// bookkeeping. Returns the action and, when the threshold was reached, the
/// number of failures (so the caller can say so in an event).
pub(crate) fn finish(
    backoffs: &Backoffs,
    key: &str,
    rv: &str,
    step: Step,
) -> (Action, Option<u32>) {
    use crate::backoff::Retry;
    match step {
        Step::Done => {
            backoffs.reset(key);
            (Action::await_change(), None)
        }
        Step::Poll => (Action::requeue(backoffs.in_progress(key)), None),
        Step::Slow(msg) => {
            tracing::info!(%msg, "infeasible, retrying slowly");
            (Action::requeue(backoffs.infeasible(key)), None)
        }
        Step::Final { msg, at } => {
            tracing::warn!(%msg, "failed; not retried until the object changes");
            backoffs.give_up(key, at.as_deref().unwrap_or(rv));
            (Action::await_change(), None)
        }
        Step::Retry(msg) => match backoffs.failure(key, rv) {
            Retry::After(d) => {
                tracing::warn!(%msg, retry_in = ?d, "failed, will retry");
                (Action::requeue(d), None)
            }
            Retry::GiveUp { failures } => {
                tracing::error!(%msg, failures, "failed too often, giving up until the object changes");
                (Action::await_change(), Some(failures))
            }
        },
    }
}

/// The requeue that replaces the backoff's answer: a claim decided on our
/// own saved PV (a stand-in, not yet cached) and done is looked at again
/// once that record has expired, since the claim loop does not watch PVs
/// and a PV deleted before the cache showed it would go unnoticed.
pub(crate) fn stand_in_recheck(stand_in: bool, step: &Step) -> Option<Duration> {
    (stand_in && matches!(step, Step::Done))
        .then(|| super::own_writes::SAVED_PV_KEEP + Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_done_stand_in_is_rechecked() {
        let later = Some(super::super::own_writes::SAVED_PV_KEEP + Duration::from_secs(1));
        assert_eq!(stand_in_recheck(true, &Step::Done), later);
        assert_eq!(stand_in_recheck(false, &Step::Done), None);
        assert_eq!(stand_in_recheck(true, &Step::Poll), None);
        assert_eq!(stand_in_recheck(true, &Step::Retry("x".into())), None);
    }
}
