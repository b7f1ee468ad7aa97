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

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::*;
use e2e_support::Cluster;
use external_storage::annotations as a;
use external_storage::Provisioned;
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, NFSVolumeSource, PersistentVolume, PersistentVolumeSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

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

/// `(method, path)` of every request a client made.
type Requests = Arc<Mutex<Vec<(String, String)>>>;

/// An admin client for `cluster` that records its requests.
async fn recording_client(cluster: &Cluster) -> (Client, Requests) {
    let kubeconfig = kube::config::Kubeconfig::read_from(cluster.admin_kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let seen: Requests = Arc::default();
    let log = seen.clone();
    let layer = tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
        log.lock()
            .unwrap()
            .push((req.method().to_string(), req.uri().path().to_string()));
        req
    });
    let client = kube::client::ClientBuilder::try_from(config)
        .unwrap()
        .with_layer(&layer)
        .build();
    (client, seen)
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

/// A claim of `size` in `class` with `extra` merged into its metadata.
async fn claim_with(
    client: &Client,
    name: &str,
    class: &str,
    size: &str,
    metadata: serde_json::Value,
) -> external_storage::PersistentVolumeClaim {
    let mut c = serde_json::to_value(claim_json(name, class, None)).unwrap();
    c["spec"]["resources"]["requests"]["storage"] = json!(size);
    if let Some(extra) = metadata.as_object() {
        for (k, v) in extra {
            c["metadata"][k] = v.clone();
        }
    }
    claims(client)
        .create(&PostParams::default(), &serde_json::from_value(c).unwrap())
        .await
        .unwrap()
}

/// Waits for an event `reason` about `name` whose note contains `needle`;
/// returns the note.
async fn wait_note(client: &Client, name: &str, reason: &str, needle: &str) -> String {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::all(client.clone());
    wait_for(
        &format!("a {reason} event about {name} containing {needle:?}"),
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
    let c = create_scheduled_claim(&client, "bad", "fast", None).await;
    let note = wait_note(&client, "bad", "ProvisioningFailed", "invalid").await;
    assert!(
        note.contains("spec.hostPath.path") && note.contains("must not contain '..'"),
        "the event names the field: {note}"
    );
    let name = pv_name(&c);
    wait_for("intent released", || async {
        let c = claims(&client).get("bad").await.ok()?;
        (!has_finalizer(&c, a::PROVISIONING_FINALIZER)).then_some(())
    })
    .await;
    // A claim provisioned afterwards: by then a retry (100 ms backoff)
    // would have made the volume again.
    create_scheduled_claim(&client, "after", "fast", None).await;
    wait_bound(&client, "after").await;
    assert_eq!(mem.times_created(&name), 1, "provisioned once, not retried");
    assert!(!mem.has(&name), "the backend volume is deleted");
    let deleted = mem.deleted.lock().unwrap().clone();
    assert_eq!(deleted, std::slice::from_ref(&name), "deleted once");
    assert!(pvs(&client).get_opt(&name).await.unwrap().is_none());
    ctrl.stop().await;
}

/// Issue 14, item 5: the control plane never binds a pre-bound PV smaller
/// than its claim's request, so the controller refuses such an answer
/// itself: the backend volume is deleted and a Warning says what did not
/// fit; no PV is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_answer_must_fit_the_claim() {
    let (_cluster, client, _turn) = start().await;

    // The control plane: a PV pre-bound to a claim but too small stays
    // unbound; a fitting one created after it is bound.
    for (claim, size) in [("small", "1Gi"), ("fits", "2Gi")] {
        let c = claim_with(&client, claim, "", "2Gi", json!({})).await;
        let pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": format!("pv-{claim}")},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": format!("/srv/{claim}")},
                "claimRef": {"namespace": "default", "name": claim, "uid": c.metadata.uid},
            },
        }))
        .unwrap();
        pvs(&client)
            .create(&PostParams::default(), &pv)
            .await
            .unwrap();
    }
    wait_bound(&client, "fits").await;
    let small = claims(&client).get("small").await.unwrap();
    assert_eq!(
        small.status.and_then(|s| s.phase).as_deref(),
        Some("Pending"),
        "a pre-bound PV below the request is never bound"
    );

    // The controller: a provisioner answering 1Gi for a 2Gi request.
    let mem = Mem::new();
    let mut answer = hostpath("/mem/short");
    answer.spec.capacity = Some(BTreeMap::from([("storage".into(), Quantity("1Gi".into()))]));
    mem.knobs().answers.insert("short".into(), answer);
    let ctrl = spawn(client.clone(), mem.clone(), fast_options());
    create_class(&client, "fast", false, "Delete").await;
    let c = claim_with(&client, "short", "fast", "2Gi", json!({})).await;
    let note = wait_note(&client, "short", "ProvisioningFailed", "does not fit").await;
    assert!(
        note.contains("capacity 1Gi is less than the requested 2Gi"),
        "{note}"
    );
    let name = pv_name(&c);
    assert!(!mem.has(&name), "the backend volume is deleted");
    assert_eq!(
        mem.deleted.lock().unwrap().as_slice(),
        std::slice::from_ref(&name)
    );
    assert!(pvs(&client).get_opt(&name).await.unwrap().is_none());
    ctrl.stop().await;
}

/// Issue 14, item 8: the API server refuses a new finalizer on a claim
/// that is being deleted (422 "no new finalizers can be added if the
/// object is being deleted"). The controller takes that as "the claim is
/// going": one PATCH, no retry, nothing provisioned.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_finalizer_on_a_deleting_claim_is_not_retried() {
    let (cluster, admin, _turn) = start().await;
    let (client, requests) = recording_client(&cluster).await;
    let mem = Mem::new();
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    mem.knobs().hold_qualifier = Some((entered_tx, release_rx));
    let mut opts = fast_options();
    // One reconcile at a time: the barrier claim is reconciled after the
    // held one has finished.
    opts.workers = 1;
    let ctrl = spawn(client.clone(), mem.clone(), opts);
    create_class(&admin, "fast", false, "Delete").await;
    // A finalizer of the test's keeps the deleted claim around.
    let hold = "example.com/test-hold";
    claim_with(
        &admin,
        "going",
        "fast",
        "1Gi",
        json!({"finalizers": [hold]}),
    )
    .await;
    wait_for("the controller decided on the claim", || async {
        entered.try_recv().ok()
    })
    .await;
    // The claim is deleted after the controller read it, before its patch.
    claims(&admin)
        .delete("going", &DeleteParams::default())
        .await
        .unwrap();
    let deleting = claims(&admin).get("going").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    release.send(()).unwrap();

    create_scheduled_claim(&admin, "barrier", "fast", None).await;
    wait_bound(&admin, "barrier").await;
    let patches = requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, p)| m == "PATCH" && p.ends_with("/persistentvolumeclaims/going"))
        .count();
    assert_eq!(patches, 1, "one refused PATCH, not retried");
    assert_eq!(
        mem.provision_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "only the barrier claim was provisioned"
    );
    let going = claims(&admin).get("going").await.unwrap();
    assert!(!has_finalizer(&going, a::PROVISIONING_FINALIZER));
    // Let it go.
    claims(&admin)
        .patch(
            "going",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([
                    {"op": "test", "path": "/metadata/finalizers", "value": going.finalizers()},
                    {"op": "replace", "path": "/metadata/finalizers", "value": going
                        .finalizers()
                        .iter()
                        .filter(|f| *f != hold)
                        .collect::<Vec<_>>()},
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    wait_claim_gone(&admin, "going").await;
    ctrl.stop().await;
}

/// Issue 14, item 6: a Released PV we deleted lingers with a
/// deletionTimestamp while `kubernetes.io/pv-protection` (here also a
/// finalizer of the test's) holds it. It is not deleted a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_pv_protection_does_not_delete_twice() {
    let (_cluster, client, _turn) = start().await;
    let mem = Mem::new();
    let ctrl = spawn(client.clone(), mem.clone(), fast_options());
    create_class(&client, "fast", false, "Delete").await;
    create_scheduled_claim(&client, "c1", "fast", None).await;
    let name = wait_bound(&client, "c1").await.metadata.name.unwrap();
    let pv = pvs(&client).get(&name).await.unwrap();
    if pv.metadata.finalizers.is_some() {
        // What the real StorageObjectInUseProtection admission adds.
        assert!(has_finalizer(&pv, "kubernetes.io/pv-protection"));
    }
    let hold = "example.com/test-hold";
    pvs(&client)
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": pv
                .finalizers()
                .iter()
                .cloned()
                .chain([hold.to_string()])
                .collect::<Vec<_>>()}})),
        )
        .await
        .unwrap();
    delete_claim(&client, "c1").await;
    wait_for("the PV deleted by the controller (and held)", || async {
        let pv = pvs(&client).get(&name).await.ok()?;
        (pv.metadata.deletion_timestamp.is_some() && !mem.has(&name)).then_some(())
    })
    .await;
    // Another volume deleted afterwards: the held PV's update (deletion
    // timestamp) came before on the same watch.
    create_scheduled_claim(&client, "c2", "fast", None).await;
    let other = wait_bound(&client, "c2").await.metadata.name.unwrap();
    delete_claim(&client, "c2").await;
    wait_pv_gone(&client, &other).await;
    let deleted = mem.deleted.lock().unwrap().clone();
    assert_eq!(
        deleted.iter().filter(|d| **d == name).count(),
        1,
        "the held PV's volume is deleted once: {deleted:?}"
    );
    let pv = pvs(&client).get(&name).await.unwrap();
    let rest: Vec<String> = pv
        .finalizers()
        .iter()
        .filter(|f| *f != hold)
        .cloned()
        .collect();
    pvs(&client)
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": rest}})),
        )
        .await
        .unwrap();
    wait_pv_gone(&client, &name).await;
    ctrl.stop().await;
}

/// Issue 14, item 2: the kubelet refuses to mount a hostPath or flexVolume
/// PV with mount options; the class's `mountOptions` go only into volumes
/// that take them (nfs here), and a hostPath claim gets a Warning naming
/// the class. (The real API server accepts `spec.mountOptions` on any PV:
/// only the deprecated mount-options annotation is validated; the refusal
/// is the kubelet's, which the test control plane does not run.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_mount_options_only_where_the_volume_takes_them() {
    let (_cluster, client, _turn) = start().await;
    let mem = Mem::new();
    mem.knobs().answers.insert(
        "shared".into(),
        Provisioned::new(PersistentVolumeSpec {
            nfs: Some(NFSVolumeSource {
                server: "192.0.2.1".into(),
                path: "/export/shared".into(),
                read_only: None,
            }),
            ..Default::default()
        }),
    );
    let ctrl = spawn(client.clone(), mem.clone(), fast_options());
    let classes: Api<external_storage::StorageClass> = Api::all(client.clone());
    classes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "tuned"},
                "provisioner": PROVISIONER,
                "mountOptions": ["noatime"],
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    create_scheduled_claim(&client, "local", "tuned", None).await;
    create_scheduled_claim(&client, "shared", "tuned", None).await;
    let local = pvs(&client)
        .get(&wait_bound(&client, "local").await.metadata.name.unwrap())
        .await
        .unwrap();
    let shared = pvs(&client)
        .get(&wait_bound(&client, "shared").await.metadata.name.unwrap())
        .await
        .unwrap();
    assert_eq!(local.spec.unwrap().mount_options, None, "hostPath: none");
    assert_eq!(
        shared.spec.unwrap().mount_options,
        Some(vec!["noatime".to_string()]),
        "nfs takes them"
    );
    let note = wait_note(&client, "local", "MountOptionsIgnored", "\"tuned\"").await;
    assert!(note.contains("remove mountOptions"), "{note}");
    assert!(event_reasons(&client, "shared")
        .await
        .iter()
        .all(|r| r != "MountOptionsIgnored"));
    ctrl.stop().await;
}

/// Issue 14, item 3: the node the scheduler selected for a claim is
/// deleted before the claim is provisioned. No node-local instance serves
/// that node, so one that runs elsewhere removes
/// `volume.kubernetes.io/selected-node` (with an event) and the scheduler
/// picks again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_selected_node_deleted_is_given_back_to_the_scheduler() {
    let (cluster, client, _turn) = start().await;
    cluster.node("node-a", "node-a").await;
    let mem = Mem::new();
    let mut opts = fast_options();
    opts.node_name = Some("node-b".into());
    opts.node_hostname = Some("node-b".into());
    let ctrl = spawn(client.clone(), mem.clone(), opts);
    create_class(&client, "late", true, "Delete").await;
    create_scheduled_claim(&client, "data", "late", None).await;
    // A pod without a node selector: the scheduler picks the only node.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "data-pod"},
            "spec": {
                "containers": [{"name": "app", "image": "busybox"}],
                "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}],
            },
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let selected = |want: &'static str| {
        let client = client.clone();
        async move {
            let c = claims(&client).get("data").await.ok()?;
            (c.annotations().get(a::SELECTED_NODE).map(String::as_str) == Some(want)).then_some(())
        }
    };
    wait_for("node-a selected", || selected("node-a")).await;
    cluster.node("node-b", "node-b").await;
    Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .delete("node-a", &DeleteParams::default())
        .await
        .unwrap();
    let note = wait_note(&client, "data", "ProvisioningFailed", "no longer exists").await;
    assert!(note.contains("\"node-a\""), "{note}");
    wait_for("node-b selected", || selected("node-b")).await;
    let pv = wait_bound(&client, "data").await.metadata.name.unwrap();
    assert_eq!(mem.volumes.lock().unwrap()[&pv].as_deref(), Some("node-b"));
    let _ = pods
        .delete("data-pod", &DeleteParams::default().grace_period(0))
        .await;
    ctrl.stop().await;
}

/// Issue 14, item 10: events about a claim whose name has the maximum 253
/// characters are accepted (kube's recorder would name them
/// `<claim>.<16 hex digits>`, 270 characters, which `events.k8s.io/v1`
/// refuses with 422).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_events_for_253_character_names_are_accepted() {
    let (_cluster, client, _turn) = start().await;
    let name = format!("{}.{}", vec!["x".repeat(63); 3].join("."), "y".repeat(61));
    assert_eq!(name.len(), 253);
    let mem = Mem::new();
    let ctrl = spawn(client.clone(), mem.clone(), fast_options());
    create_class(&client, "fast", false, "Delete").await;
    create_scheduled_claim(&client, &name, "fast", None).await;
    wait_bound(&client, &name).await;
    wait_note(
        &client,
        &name,
        "ProvisioningSucceeded",
        "Successfully provisioned",
    )
    .await;
    ctrl.stop().await;
}

/// Issue 14, item 11: a claim naming its class only with the deprecated
/// `volume.beta.kubernetes.io/storage-class` annotation is scheduled
/// (WaitForFirstConsumer), annotated for our provisioner by the PV
/// controller, provisioned and bound, end to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_beta_storage_class_annotation_end_to_end() {
    let (cluster, client, _turn) = start().await;
    cluster.node("node-a", "node-a").await;
    let mem = Mem::new();
    let ctrl = spawn(client.clone(), mem.clone(), fast_options());
    create_class(&client, "late", true, "Delete").await;
    let claim: external_storage::PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "beta", "annotations": {a::BETA_STORAGE_CLASS: "late"}},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }))
    .unwrap();
    claims(&client)
        .create(&PostParams::default(), &claim)
        .await
        .unwrap();
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "beta-pod"},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": "node-a"},
                "containers": [{"name": "app", "image": "busybox"}],
                "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "beta"}}],
            },
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let name = wait_bound(&client, "beta").await.metadata.name.unwrap();
    let c = claims(&client).get("beta").await.unwrap();
    assert_eq!(
        c.annotations()
            .get(a::STORAGE_PROVISIONER)
            .map(String::as_str),
        Some(PROVISIONER),
        "annotated by the PV controller"
    );
    assert_eq!(
        c.annotations().get(a::SELECTED_NODE).map(String::as_str),
        Some("node-a")
    );
    let pv = pvs(&client).get(&name).await.unwrap();
    assert_eq!(pv.spec.unwrap().storage_class_name.as_deref(), Some("late"));
    assert!(mem.has(&name));
    let _ = pods
        .delete("beta-pod", &DeleteParams::default().grace_period(0))
        .await;
    ctrl.stop().await;
}

/// Issue 14, item 7: a clone claim (dataSource: a PersistentVolumeClaim)
/// for a provisioner that does not declare support gets a Warning and no
/// volume, not an empty one; with the capability it is provisioned.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_data_source_needs_the_provisioners_capability() {
    let (_cluster, client, _turn) = start().await;
    let mem = Mem::new();
    let ctrl = spawn(client.clone(), mem.clone(), fast_options());
    create_class(&client, "fast", false, "Delete").await;
    create_scheduled_claim(&client, "src", "fast", None).await;
    wait_bound(&client, "src").await;
    let mut clone = serde_json::to_value(claim_json("clone", "fast", None)).unwrap();
    clone["spec"]["dataSource"] = json!({"kind": "PersistentVolumeClaim", "name": "src"});
    let c = claims(&client)
        .create(
            &PostParams::default(),
            &serde_json::from_value(clone).unwrap(),
        )
        .await
        .unwrap();
    let note = wait_note(&client, "clone", "ProvisioningFailed", "data source").await;
    assert!(note.contains("PersistentVolumeClaim \"src\""), "{note}");
    assert!(!mem.has(&pv_name(&c)), "no empty volume");
    let stored = claims(&client).get("clone").await.unwrap();
    assert!(!has_finalizer(&stored, a::PROVISIONING_FINALIZER));
    assert_eq!(
        stored.status.and_then(|s| s.phase).as_deref(),
        Some("Pending")
    );

    // A provisioner that declares it: the claim (edited, so it is looked
    // at again) is provisioned.
    mem.knobs().data_source = true;
    set_annotation(&client, "clone", "example.com/retry", "1").await;
    let name = wait_bound(&client, "clone").await.metadata.name.unwrap();
    assert!(mem.has(&name));
    ctrl.stop().await;
}
