//! The controller against what the real control plane exposes (issue 14):
//! an in-process `ProvisionController` with the in-memory provisioner of
//! `common`, on whatever `e2e_support::Cluster::start()` gives
//! (`E2E_CLUSTER=real`: etcd, kube-apiserver with its validation and
//! admission, kube-controller-manager's PV binder and protection
//! controllers, kube-scheduler; by default kube-testserver, which must
//! behave the same on each of these points). One test per item, named
//! after it. On the real backend the tests take turns: each starts its own
//! control plane, and two at once on two cores make every wait slower.

mod common;

use common::*;
use e2e_support::Cluster;
use external_storage::annotations as a;
use external_storage::Provisioned;
use k8s_openapi::api::core::v1::{HostPathVolumeSource, PersistentVolumeSpec};
use kube::api::Api;
use kube::Client;

/// One real control plane at a time (see the module docs).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The backend, an admin client, and (real) this test's turn.
async fn start() -> (
    Cluster,
    Client,
    Option<tokio::sync::MutexGuard<'static, ()>>,
) {
    let turn = match e2e_support::Backend::from_env() {
        e2e_support::Backend::Real => Some(SERIAL.lock().await),
        e2e_support::Backend::TestServer => None,
    };
    let cluster = Cluster::start().await;
    let client = cluster.client();
    (cluster, client, turn)
}

fn hostpath(path: &str) -> Provisioned {
    Provisioned::new(PersistentVolumeSpec {
        host_path: Some(HostPathVolumeSource {
            path: path.into(),
            type_: None,
        }),
        ..Default::default()
    })
}

/// Waits for an event `reason` about `name` whose note contains `needle`;
/// returns the note.
async fn wait_note(client: &Client, name: &str, reason: &str, needle: &str) -> String {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::all(client.clone());
    wait_for(
        &format!("a {reason} event about {name} containing {needle:?}"),
        30,
        || {
            let api = api.clone();
            async move {
                api.list(&Default::default())
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
                    .filter(|e| e.reason.as_deref() == Some(reason))
                    .filter_map(|e| e.note)
                    .find(|n| n.contains(needle))
            }
        },
    )
    .await
}

/// Issue 14, item 4: a PV the API server refuses as invalid (422) is a
/// final failure: one Warning naming the field, the backend volume deleted
/// once, the intent released, no retry until the claim changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_pv_validation_422_is_final_and_cleans_up() {
    let (_cluster, client, _turn) = start().await;
    let mem = Mem::new();
    mem.knobs()
        .answers
        .insert("bad".into(), hostpath("/mem/../etc"));
    let ctrl = spawn(client.clone(), mem.clone(), fast_options());
    create_class(&client, "fast", false, "Delete").await;
    let c = create_claim(&client, "bad", "fast", None).await;
    let note = wait_note(&client, "bad", "ProvisioningFailed", "invalid").await;
    assert!(
        note.contains("spec.hostPath.path") && note.contains("must not contain '..'"),
        "the event names the field: {note}"
    );
    let name = pv_name(&c);
    wait_for("intent released", 20, || async {
        let c = claims(&client).get("bad").await.ok()?;
        (!has_finalizer(&c, a::PROVISIONING_FINALIZER)).then_some(())
    })
    .await;
    // A claim provisioned afterwards: by then a retry (100 ms backoff)
    // would have made the volume again.
    create_claim(&client, "after", "fast", None).await;
    wait_bound(&client, "after", 30).await;
    assert_eq!(mem.times_created(&name), 1, "provisioned once, not retried");
    assert!(!mem.has(&name), "the backend volume is deleted");
    let deleted = mem.deleted.lock().unwrap().clone();
    assert_eq!(deleted, std::slice::from_ref(&name), "deleted once");
    assert!(pvs(&client).get_opt(&name).await.unwrap().is_none());
    ctrl.stop().await;
}
