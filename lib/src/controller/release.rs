//! Releasing the provisioning intent once a PV is saved, beside the workers.
//!
//! A new claim's path made three API writes one after the other: the intent
//! finalizer, the PV, and the patch that removes the finalizer again. On a
//! real control plane a worker spends most of a claim waiting for those
//! round trips, so the last one, which no later step waits for, is handed
//! to a task of its own and the worker takes the next claim. Nothing gets
//! weaker: the finalizer is removed after the PV exists, as before, and a
//! release that is lost (the process dies, the API is away) is done by the
//! next reconcile of the claim, which finds intent and PV together
//! ([`ClaimDecision::ReleaseIntent`](super::claim::ClaimDecision)) as it
//! always did after a crash between the two writes.
//!
//! While a claim's release is under way, a reconcile of that claim that
//! would release it too does not ([`Releases::is_pending`]; it polls
//! instead): two releases at once cost a refused patch and a re-read each.
//! Why a set of its own rather than marking the claim's version superseded
//! in `own_writes::ClaimVersions`: a skipped version waits for the next
//! change, and a release that fails five times makes none, so its claim
//! would wait for the next relist; a polled claim decides again on its own
//! once the release is over, whichever way it went.
//!
//! Bounded: at most as many release requests are in flight as there are
//! workers; a worker with one more waits for a slot (a slow API server slows
//! the workers down instead of growing a queue). A release that failed
//! gives its slot back while it waits to try again, so a claim whose
//! patches keep failing does not hold up the others. When the workers stop, the
//! releases under way get a few seconds to finish ([`Releases::drain`]);
//! if the workers' future is dropped instead (a crash, a lost lease), the
//! releases stop with it at their next await ([`Releases::stop_on_drop`]).

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

/// A place among the release requests in flight ([`Releases::slot`]).
pub(crate) type Slot = OwnedSemaphorePermit;

/// The releases of one leadership term's workers.
pub(crate) struct Releases {
    slots: Arc<Semaphore>,
    /// Keys (`namespace/name`) of the claims whose release is under way.
    pending: Arc<Mutex<HashSet<String>>>,
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Releases {
    /// Up to `in_flight` releases at once (at least one).
    pub(crate) fn new(in_flight: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(in_flight.max(1))),
            pending: Default::default(),
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        }
    }

    /// Waits for a free slot: a release request holds one while it is
    /// sent.
    pub(crate) async fn slot(&self) -> Slot {
        Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Runs `release` of the claim with `key` (it holds a [`Slot`] while it
    /// sends) in a task of its own; the claim counts as pending until the
    /// task ends, early when the releases are stopped.
    pub(crate) fn spawn<F>(&self, key: &str, release: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        let pending = Pending::enter(&self.pending, key);
        self.tasks.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = release => {}
            }
            drop(pending);
        });
    }

    /// Whether a release of the claim with `key` is under way.
    pub(crate) fn is_pending(&self, key: &str) -> bool {
        self.pending.lock().expect("poisoned").contains(key)
    }

    /// Stops every release when the returned guard is dropped, unless
    /// [`drain`](Self::drain) ran first: hold it in the workers' future.
    pub(crate) fn stop_on_drop(&self) -> DropGuard {
        self.stop.clone().drop_guard()
    }

    /// Takes no more releases and waits up to `within` for those under way;
    /// then stops the rest. True if all finished.
    pub(crate) async fn drain(&self, within: Duration) -> bool {
        self.tasks.close();
        let done = tokio::time::timeout(within, self.tasks.wait())
            .await
            .is_ok();
        self.stop.cancel();
        self.tasks.wait().await;
        done
    }
}

/// A claim's entry in the pending set, left when dropped (also when the
/// task is cancelled).
struct Pending {
    set: Arc<Mutex<HashSet<String>>>,
    key: String,
}

impl Pending {
    fn enter(set: &Arc<Mutex<HashSet<String>>>, key: &str) -> Self {
        set.lock().expect("poisoned").insert(key.to_string());
        Self {
            set: Arc::clone(set),
            key: key.to_string(),
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.set.lock().expect("poisoned").remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Notify;

    #[tokio::test]
    async fn drain_waits_for_releases_under_way() {
        let r = Releases::new(2);
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let done = done.clone();
            let slot = r.slot().await;
            r.spawn("ns/c", async move {
                tokio::task::yield_now().await;
                done.fetch_add(1, Ordering::SeqCst);
                drop(slot);
            });
        }
        assert!(r.drain(Duration::from_secs(30)).await);
        assert_eq!(done.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_full_set_of_slots_holds_the_next_release_back() {
        let r = Arc::new(Releases::new(1));
        let gate = Arc::new(Notify::new());
        let g = gate.clone();
        let slot = r.slot().await;
        r.spawn("ns/a", async move {
            g.notified().await;
            drop(slot);
        });
        assert!(r.is_pending("ns/a") && !r.is_pending("ns/b"));
        let second = tokio::spawn({
            let r = r.clone();
            async move { drop(r.slot().await) }
        });
        // The first release holds the only slot: the second one waits.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!second.is_finished(), "a slot past a full set of slots");
        gate.notify_one();
        second.await.unwrap();
        assert!(r.drain(Duration::from_secs(30)).await);
        assert!(
            !r.is_pending("ns/a"),
            "still pending after its release ended"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_guard_stops_releases_and_drain_gives_up_on_time() {
        let r = Releases::new(1);
        let guard = r.stop_on_drop();
        r.spawn("ns/a", futures::future::pending());
        drop(guard);
        // Stopped by the guard: drain finds nothing left to wait for.
        assert!(r.drain(Duration::from_secs(1)).await);

        let r = Releases::new(1);
        r.spawn("ns/a", futures::future::pending());
        // A release that never ends is stopped once `within` has passed.
        assert!(!r.drain(Duration::from_secs(1)).await);
    }
}
