//! `Events` against the test server: a repeated event on one object becomes
//! one Event with a series (count 2), and each object gets its own Event,
//! with one recorder per object (see `lib/src/events.rs` for why); Normal
//! events go out in the background, and `flush` waits for them.

use external_storage::events::{Events, Reason};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube_testserver::TestServer;

fn claim_ref(name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: Some("default".into()),
        name: Some(name.into()),
        uid: Some(format!("uid-{name}")),
        ..Default::default()
    }
}

#[tokio::test]
async fn repeats_form_a_series_per_object_and_objects_get_their_own_events() {
    let ts = TestServer::start().await.unwrap();
    let client = ts.client().await;
    let events = Events::new(client.clone(), "example.com/test", "replica-1");
    let note = || "storage class \"gold\" not found".to_string();
    events
        .publish(&claim_ref("a"), Reason::ProvisioningFailed, note())
        .await;
    events
        .publish(&claim_ref("a"), Reason::ProvisioningFailed, note())
        .await;
    events
        .publish(&claim_ref("b"), Reason::ProvisioningFailed, note())
        .await;
    // a clone shares the recorders: a third repeat on "a" joins the series
    events
        .clone()
        .publish(&claim_ref("a"), Reason::ProvisioningFailed, note())
        .await;

    let api: Api<Event> = Api::namespaced(client, "default");
    let list = api.list(&ListParams::default()).await.unwrap().items;
    let about = |name: &str| -> Vec<&Event> {
        list.iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect()
    };
    let (a, b) = (about("a"), about("b"));
    assert_eq!(a.len(), 1, "one Event for a's repeats: {a:?}");
    assert_eq!(a[0].series.as_ref().map(|s| s.count), Some(3));
    assert_eq!(a[0].reason.as_deref(), Some("ProvisioningFailed"));
    assert_eq!(b.len(), 1);
    assert!(b[0].series.is_none(), "b was published once");
}

#[tokio::test]
async fn normal_events_go_out_in_the_background_and_flush_waits_for_all_of_them() {
    let ts = TestServer::start().await.unwrap();
    let client = ts.client().await;
    let events = Events::new(client.clone(), "example.com/test", "replica-1");
    // More than the outbox holds: the publishes beyond it wait for room.
    let n = external_storage::events::OUTBOX + 100;
    for i in 0..n {
        events
            .publish(
                &claim_ref(&format!("c{i}")),
                Reason::ProvisioningSucceeded,
                format!("Successfully provisioned volume pv-{i}"),
            )
            .await;
    }
    assert!(
        events.flush(std::time::Duration::from_secs(30)).await,
        "every event was sent within the flush timeout"
    );
    let api: Api<Event> = Api::namespaced(client, "default");
    let list = api.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(list.len(), n, "one Event per publish, none lost");
    assert!(list.iter().all(|e| e.type_.as_deref() == Some("Normal")));
    // Each object's event is there, under its own name.
    let mut about: Vec<_> = (list.iter())
        .filter_map(|e| e.regarding.as_ref()?.name.clone())
        .collect();
    about.sort();
    about.dedup();
    assert_eq!(about.len(), n);
}
