//! What a watch stream triggers: changes as they come, and after every
//! (re)list the whole store, never an object from a list still being read.
//!
//! kube-runtime's reflector fills a relist into a buffer and swaps it into
//! the store only at `InitDone`, while `applied_objects()` hands each
//! listed object (`InitApply`) to the controller at once; the controller
//! then reconciles what the *store* holds. With the list read in pages
//! (`compact::LIST_PAGE_SIZE`), a reconcile triggered by page 1 ran on the
//! version from before the relist: a PV that turned `Released` while the
//! watch was down (an apiserver restart) was decided on as `Bound`, skipped,
//! and never looked at again, so its volume was never deleted (found by
//! `chaos --cluster real`). An object new in the relist was not in the old
//! store at all and was dropped. The first list is not affected (the
//! controller waits until the store is ready), every later one was.
//!
//! [`split`] therefore passes on `Apply` events (the store already has them
//! when they arrive) and turns the `InitDone` of each later list into a
//! trigger for `Controller::reconcile_all_on`, which reads the swapped store.
//!
//! The first list's objects are passed on as they are read, as before: the
//! controller holds every reconcile until that list is in the store, and
//! kube-runtime's scheduler takes them a page at a time. Handing it the
//! whole store at once instead (a trigger at the first `InitDone`) put all
//! of it into the scheduler's queue together: with 10,000 claims and 10,000
//! PVs, about 11 MiB more heap at start (its delay queue and sets, which
//! keep their capacity), peak RSS 37.6-38.6 -> 46.0-46.1 MiB (bench
//! `--cached 10000`). A later relist still triggers its whole store at once.

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use kube::runtime::watcher;

/// Splits a reflected watch stream into the objects changed by single
/// events or read by the first list, and a trigger that fires once each
/// later list (a relist) is in the store.
pub(crate) fn split<K, S>(
    events: S,
) -> (
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    impl Stream<Item = ()> + Send + 'static,
)
where
    K: Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let (relisted, relists) = mpsc::unbounded::<()>();
    // Whether the first list is in the store (its `InitDone` passed).
    let mut listed = false;
    let changes = events.filter_map(move |event| {
        let out = match event {
            Ok(watcher::Event::Apply(obj)) => Some(Ok(obj)),
            // Reconciled only once the store is ready, i.e. has this list.
            Ok(watcher::Event::InitApply(obj)) if !listed => Some(Ok(obj)),
            Ok(watcher::Event::InitDone) => {
                if listed {
                    // Only fails once the controller is gone.
                    let _ = relisted.unbounded_send(());
                }
                listed = true;
                None
            }
            // A deleted object has nothing left to reconcile; one of a
            // relist is reconciled with the whole store at `InitDone`.
            Ok(watcher::Event::Delete(_) | watcher::Event::Init | watcher::Event::InitApply(_)) => {
                None
            }
            Err(e) => Some(Err(e)),
        };
        futures::future::ready(out)
    });
    (changes, relists)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector::{self, ObjectRef};
    use kube::runtime::WatchStreamExt;

    fn cm(name: &str, version: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.name = Some(name.into());
        c.metadata.namespace = Some("ns".into());
        c.metadata.resource_version = Some(version.into());
        c
    }

    #[tokio::test]
    async fn a_relisted_object_is_triggered_only_once_the_store_has_it() {
        let (store, writer) = reflector::store::<ConfigMap>();
        let events = futures::stream::iter(vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(cm("a", "1"))),
            Ok(watcher::Event::InitDone),
            Ok(watcher::Event::Apply(cm("a", "2"))),
            // A relist in two pages: "a" changed while the watch was down.
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(cm("a", "3"))),
            Ok(watcher::Event::InitApply(cm("b", "1"))),
            Ok(watcher::Event::InitDone),
        ]);
        let (changes, relists) = split(events.reflect(writer));
        let changes: Vec<_> = changes.collect().await;
        let versions: Vec<_> = changes
            .iter()
            .map(|c| {
                c.as_ref()
                    .unwrap()
                    .metadata
                    .resource_version
                    .clone()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            versions,
            ["1", "2"],
            "the first list and the single change are passed on, the relist is not"
        );
        // One trigger per relist; when it fires, the store holds the list.
        assert_eq!(relists.collect::<Vec<_>>().await.len(), 1);
        let a = store.get(&ObjectRef::new("a").within("ns")).unwrap();
        assert_eq!(a.metadata.resource_version.as_deref(), Some("3"));
        assert!(store.get(&ObjectRef::new("b").within("ns")).is_some());
    }
}
