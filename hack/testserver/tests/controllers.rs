//! The in-process PV binder and scheduler, observed through kube-rs.

mod common;

use common::*;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, PostParams};
use kube::Client;
use kube_testserver::TestServer;
use serde_json::json;

async fn phase_pvc(api: &Api<PersistentVolumeClaim>, n: &str) -> String {
    api.get(n)
        .await
        .ok()
        .and_then(|c| c.status)
        .and_then(|s| s.phase)
        .unwrap_or_default()
}

async fn phase_pv(api: &Api<PersistentVolume>, n: &str) -> String {
    api.get(n)
        .await
        .ok()
        .and_then(|c| c.status)
        .and_then(|s| s.phase)
        .unwrap_or_default()
}

async fn class(client: &Client, name: &str, mode: &str, default: bool) {
    let mut sc = json!({"metadata": {"name": name}, "provisioner": "example.com/prov", "volumeBindingMode": mode});
    if default {
        sc["metadata"]["annotations"] =
            json!({"storageclass.kubernetes.io/is-default-class": "true"});
    }
    let sc: StorageClass = serde_json::from_value(sc).unwrap();
    Api::<StorageClass>::all(client.clone())
        .create(&PostParams::default(), &sc)
        .await
        .unwrap();
}

async fn node(client: &Client, name: &str, zone: &str) {
    let n: Node = serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"zone": zone, "kubernetes.io/hostname": name}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    )
    .unwrap();
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &n)
        .await
        .unwrap();
}

/// A barrier on the binder: binds a marker claim of its own class to its
/// own volume and waits for it. Each binder pass reads every claim, so once
/// the marker (created after everything the test made before) is Bound, a
/// pass has seen those objects too: what it did not do to them by then, it
/// did not do. A test asserts absence after this, instead of after a sleep.
async fn binder_has_passed(client: &Client, tag: &str) {
    let name = format!("barrier-{tag}");
    class(client, &name, "Immediate", false).await;
    Api::<PersistentVolume>::all(client.clone())
        .create(&PostParams::default(), &pv(&name, &name, "1Gi"))
        .await
        .unwrap();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    pvcs.create(&PostParams::default(), &pvc(&name, Some(&name), "1Gi"))
        .await
        .unwrap();
    eventually("the binder's barrier claim is Bound", || async {
        phase_pvc(&pvcs, &name).await == "Bound"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn binds_smallest_fitting_available_volume_and_releases() {
    let srv = TestServer::start().await.unwrap();
    let client = srv.client().await;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    for (n, size) in [("big", "10Gi"), ("small", "2Gi"), ("tiny", "500Mi")] {
        pvs.create(&PostParams::default(), &pv(n, "manual", size))
            .await
            .unwrap();
    }
    eventually("pv available", || async {
        phase_pv(&pvs, "small").await == "Available"
    })
    .await;
    pvcs.create(&PostParams::default(), &pvc("claim", Some("manual"), "1Gi"))
        .await
        .unwrap();
    eventually("claim bound", || async {
        phase_pvc(&pvcs, "claim").await == "Bound"
    })
    .await;
    let c = pvcs.get("claim").await.unwrap();
    assert_eq!(
        c.spec.as_ref().unwrap().volume_name.as_deref(),
        Some("small")
    );
    let anns = c.metadata.annotations.clone().unwrap();
    assert_eq!(anns["pv.kubernetes.io/bind-completed"], "yes");
    assert_eq!(anns["pv.kubernetes.io/bound-by-controller"], "yes");
    let st = c.status.unwrap();
    assert_eq!(st.capacity.unwrap()["storage"].0, "2Gi");
    assert_eq!(st.access_modes.unwrap(), vec!["ReadWriteOnce".to_string()]);
    let v = pvs.get("small").await.unwrap();
    assert_eq!(v.status.unwrap().phase.as_deref(), Some("Bound"));
    assert_eq!(v.spec.unwrap().claim_ref.unwrap().uid, c.metadata.uid);
    pvcs.delete("claim", &DeleteParams::default())
        .await
        .unwrap();
    eventually("pv released", || async {
        phase_pv(&pvs, "small").await == "Released"
    })
    .await;
    assert!(pvs
        .get("small")
        .await
        .unwrap()
        .spec
        .unwrap()
        .claim_ref
        .is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn prebound_volume_default_class_and_provisioner_annotation() {
    let srv = TestServer::start().await.unwrap();
    let client = srv.client().await;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    class(&client, "std", "Immediate", true).await;
    // default class admission
    let c = pvcs
        .create(&PostParams::default(), &pvc("dflt", None, "1Gi"))
        .await
        .unwrap();
    assert_eq!(c.spec.unwrap().storage_class_name.as_deref(), Some("std"));
    eventually("provisioner annotation", || async {
        pvcs.get("dflt")
            .await
            .unwrap()
            .metadata
            .annotations
            .unwrap_or_default()
            .get("volume.kubernetes.io/storage-provisioner")
            .map(String::as_str)
            == Some("example.com/prov")
    })
    .await;
    let anns = pvcs
        .get("dflt")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap();
    assert_eq!(
        anns["volume.beta.kubernetes.io/storage-provisioner"],
        "example.com/prov"
    );
    // a provisioner-created PV pre-bound via claimRef binds both ways
    let claim = pvcs.get("dflt").await.unwrap();
    let mut v = pv("pvc-dflt", "std", "1Gi");
    v.spec.as_mut().unwrap().claim_ref = Some(
        serde_json::from_value(
            json!({"namespace": "default", "name": "dflt", "uid": claim.metadata.uid}),
        )
        .unwrap(),
    );
    pvs.create(&PostParams::default(), &v).await.unwrap();
    eventually("prebound bound", || async {
        phase_pvc(&pvcs, "dflt").await == "Bound" && phase_pv(&pvs, "pvc-dflt").await == "Bound"
    })
    .await;
    assert_eq!(
        pvcs.get("dflt")
            .await
            .unwrap()
            .spec
            .unwrap()
            .volume_name
            .as_deref(),
        Some("pvc-dflt")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_for_first_consumer_with_scheduler() {
    let srv = TestServer::start().await.unwrap();
    let client = srv.client().await;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    class(&client, "local", "WaitForFirstConsumer", false).await;
    node(&client, "node-a", "a").await;
    node(&client, "node-b", "b").await;
    // a local PV only usable on node-b
    let mut v = pv("local-b", "local", "5Gi");
    v.spec.as_mut().unwrap().node_affinity = Some(serde_json::from_value(json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]}})).unwrap());
    pvs.create(&PostParams::default(), &v).await.unwrap();
    pvcs.create(&PostParams::default(), &pvc("data", Some("local"), "1Gi"))
        .await
        .unwrap();
    pvcs.create(&PostParams::default(), &pvc("prov", Some("local"), "10Gi"))
        .await
        .unwrap();
    // no consumer yet: stays pending and unannotated
    binder_has_passed(&client, "no-consumer").await;
    assert_eq!(phase_pvc(&pvcs, "data").await, "Pending");
    assert!(pvcs
        .get("prov")
        .await
        .unwrap()
        .metadata
        .annotations
        .is_none());
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"nodeSelector": {"zone": "b"},
        "containers": [{"name": "c", "image": "i"}],
        "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}, {"name": "e", "persistentVolumeClaim": {"claimName": "prov"}}]}})).unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    eventually("data bound to local-b", || async {
        phase_pvc(&pvcs, "data").await == "Bound"
    })
    .await;
    assert_eq!(
        pvcs.get("data")
            .await
            .unwrap()
            .metadata
            .annotations
            .unwrap()["volume.kubernetes.io/selected-node"],
        "node-b"
    );
    eventually("prov annotated for provisioning", || async {
        let a = pvcs
            .get("prov")
            .await
            .unwrap()
            .metadata
            .annotations
            .unwrap_or_default();
        a.get("volume.kubernetes.io/selected-node")
            .map(String::as_str)
            == Some("node-b")
            && a.get("volume.kubernetes.io/storage-provisioner")
                .map(String::as_str)
                == Some("example.com/prov")
    })
    .await;
    // pod waits for all claims
    assert!(pods
        .get("p")
        .await
        .unwrap()
        .spec
        .unwrap()
        .node_name
        .is_none());
    // the "provisioner" creates a volume for prov
    let claim = pvcs.get("prov").await.unwrap();
    let mut v = pv("pvc-prov", "local", "10Gi");
    v.spec.as_mut().unwrap().claim_ref = Some(
        serde_json::from_value(
            json!({"namespace": "default", "name": "prov", "uid": claim.metadata.uid}),
        )
        .unwrap(),
    );
    pvs.create(&PostParams::default(), &v).await.unwrap();
    eventually("pod scheduled", || async {
        pods.get("p")
            .await
            .unwrap()
            .spec
            .unwrap()
            .node_name
            .as_deref()
            == Some("node-b")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn controllers_can_be_disabled_and_do_not_count_in_stats() {
    let srv = TestServer::start_with(without_controllers()).await.unwrap();
    // Never started, so no pass of theirs can come later: the Pending
    // phase below is final, with no waiting.
    assert_eq!(srv.controllers_running(), Vec::<&str>::new());
    let client = srv.client().await;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    pvs.create(&PostParams::default(), &pv("x", "manual", "1Gi"))
        .await
        .unwrap();
    assert_eq!(phase_pv(&pvs, "x").await, "Pending");

    let srv = TestServer::start().await.unwrap();
    assert_eq!(srv.controllers_running(), ["binder", "scheduler"]);
    let pvs: Api<PersistentVolume> = Api::all(srv.client().await);
    srv.reset_stats();
    pvs.create(&PostParams::default(), &pv("y", "manual", "1Gi"))
        .await
        .unwrap();
    eventually("available", || async {
        phase_pv(&pvs, "y").await == "Available"
    })
    .await;
    let st = srv.stats();
    assert_eq!(st.writes(), 1, "{st:?}");
}
