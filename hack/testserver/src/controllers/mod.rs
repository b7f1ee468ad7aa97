//! In-process control loops that stand in for kube-controller-manager and
//! kube-scheduler. They read and write the store directly (never HTTP), so
//! their writes produce watch events but are not counted in stats.

pub mod binder;
pub mod quantity;
pub mod scheduler;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use crate::registry::ResId;
use crate::store::Store;

/// Runs `pass` once at start and again whenever an event for one of
/// `resources` arrives (events are coalesced), plus a slow periodic resync.
pub async fn run_loop(store: Arc<Store>, resources: Vec<ResId>, mut pass: impl FnMut(&Store)) {
    let mut rx = store.subscribe();
    pass(&store);
    loop {
        let relevant = tokio::select! {
            r = rx.recv() => match r {
                Ok(ev) => resources.contains(&ev.res),
                Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => return,
            },
            _ = tokio::time::sleep(Duration::from_secs(2)) => true,
        };
        if !relevant {
            continue;
        }
        // Coalesce whatever else is already queued.
        while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) =
            rx.try_recv()
        {}
        pass(&store);
    }
}
