//! Keeps kube-testserver honest: the API behaviours the provisioners rely
//! on, run against whichever backend `E2E_CLUSTER` names. hack/test.sh runs
//! this file on both; a behaviour that passes on `real` and fails on
//! `testserver` is a simulator bug (fix it) or a known difference (listed
//! in hack/testserver/README.md, and asserted per backend here).

use std::time::Duration;

use e2e_support::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, WatchParams};
use kube::core::WatchEvent;
use kube::{Api, Client, ResourceExt};
use serde_json::{json, Value};

async fn static_pv(client: &Client, name: &str, size: &str, extra: Value) -> PersistentVolume {
    let mut spec = json!({
        "capacity": {"storage": size},
        "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain",
        "storageClassName": "manual",
        "hostPath": {"path": format!("/tmp/conformance/{name}")},
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    create(
        &pvs(client),
        json!({"metadata": {"name": name}, "spec": spec}),
    )
    .await
}

async fn claim_phase(client: &Client, name: &str) -> Option<String> {
    claims(client).get(name).await.ok()?.status?.phase
}

fn annotation<'a>(obj: &'a impl ResourceExt, key: &str) -> Option<&'a str> {
    obj.annotations().get(key).map(String::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_binding_release_and_protection_finalizers() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let pv = static_pv(&client, "pv-a", "1Gi", json!({})).await;
    // The apiserver's admission adds pv-protection on create.
    assert!(
        pv.finalizers()
            .iter()
            .any(|f| f == "kubernetes.io/pv-protection"),
        "{:?}",
        pv.finalizers()
    );
    let claim = create_claim(&client, "c", "manual", "1Gi", json!({})).await;
    assert!(
        claim
            .finalizers()
            .iter()
            .any(|f| f == "kubernetes.io/pvc-protection"),
        "{:?}",
        claim.finalizers()
    );
    let bound = wait_bound(&client, "c").await;
    assert_eq!(bound.metadata.name.as_deref(), Some("pv-a"));
    let claim = claims(&client).get("c").await.unwrap();
    assert_eq!(
        annotation(&claim, "pv.kubernetes.io/bind-completed"),
        Some("yes")
    );
    assert_eq!(
        annotation(&claim, "pv.kubernetes.io/bound-by-controller"),
        Some("yes")
    );
    assert_eq!(
        claim.status.as_ref().unwrap().capacity.as_ref().unwrap()["storage"].0,
        "1Gi"
    );
    let pv = pvs(&client).get("pv-a").await.unwrap();
    let claim_ref = pv.spec.as_ref().unwrap().claim_ref.as_ref().unwrap();
    assert_eq!(claim_ref.uid, claim.metadata.uid);
    assert_eq!(
        annotation(&pv, "pv.kubernetes.io/bound-by-controller"),
        Some("yes")
    );

    // Release: the claim goes (its protection finalizer lifted, no pod uses
    // it), the Retain PV becomes Released and keeps its claimRef.
    delete_claim(&client, "c").await;
    wait_pv_phase(&client, "pv-a", "Released").await;
    let pv = pvs(&client).get("pv-a").await.unwrap();
    assert!(pv.spec.as_ref().unwrap().claim_ref.is_some());
    wait_for("claim c gone", || async {
        claims(&client)
            .get_opt("c")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;

    // A Released PV being deleted keeps pv-protection until it is unbound
    // from any live claim: here none, so it goes.
    pvs(&client)
        .delete("pv-a", &DeleteParams::default())
        .await
        .unwrap();
    wait_pv_gone(&client, "pv-a").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_pre_bound_pvs_that_do_not_fit_are_never_bound() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let small = create_claim(&client, "big", "manual", "2Gi", json!({})).await;
    let block = create_claim(
        &client,
        "blk",
        "manual",
        "1Gi",
        json!({"volumeMode": "Block"}),
    )
    .await;
    let fits = create_claim(&client, "fits", "manual", "1Gi", json!({})).await;
    let prebound = |c: &PersistentVolumeClaim| json!({"claimRef": {"namespace": "default", "name": c.name_any(), "uid": c.metadata.uid}});
    static_pv(&client, "too-small", "1Gi", prebound(&small)).await;
    static_pv(&client, "wrong-mode", "1Gi", prebound(&block)).await;
    static_pv(&client, "right", "1Gi", prebound(&fits)).await;
    // The fitting pre-bound pair binds: a barrier for the binder's pass
    // over the other two.
    let pv = wait_bound(&client, "fits").await;
    assert_eq!(pv.metadata.name.as_deref(), Some("right"));
    let api = pvs(&client);
    for (claim, pv) in [("big", "too-small"), ("blk", "wrong-mode")] {
        // The real binder reports the mismatch on the PV (VolumeMismatch)
        // and leaves both unbound; the claim stays Pending.
        wait_for(&format!("PV {pv} left unbound"), || {
            let api = api.clone();
            async move {
                let p = api.get(pv).await.ok()?;
                let phase = p.status?.phase?;
                (phase == "Available" || phase == "Pending").then_some(())
            }
        })
        .await;
        assert_eq!(
            claim_phase(&client, claim).await.as_deref(),
            Some("Pending")
        );
        let c = claims(&client).get(claim).await.unwrap();
        assert!(
            c.spec.unwrap().volume_name.is_none(),
            "{claim} must not bind {pv}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_pv_validation_rejects_what_the_apiserver_rejects() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let api = pvs(&client);
    let try_create = |body: Value| {
        let api = api.clone();
        async move {
            let pv: PersistentVolume = serde_json::from_value(body).unwrap();
            api.create(&PostParams::default(), &pv).await
        }
    };
    let base = |name: &str| {
        json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": "/tmp/x"},
            },
        })
    };
    let invalid = |r: Result<PersistentVolume, kube::Error>, what: &str| match r {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 422, "{what}: {e:?}"),
        other => panic!("{what}: expected 422 Invalid, got {other:?}"),
    };
    let mut long = base(&"a".repeat(254));
    invalid(try_create(long.take()).await, "a name over 253 characters");
    invalid(
        try_create(base("Upper_Case")).await,
        "a name that is not a DNS subdomain",
    );
    let mut no_cap = base("no-capacity");
    no_cap["spec"].as_object_mut().unwrap().remove("capacity");
    invalid(try_create(no_cap).await, "no capacity");
    let mut rel = base("relative-path");
    // `..` elements in a hostPath are refused.
    rel["spec"]["hostPath"]["path"] = json!("/a/../b");
    invalid(try_create(rel).await, "a hostPath with ..");
    let mut label = base("long-label");
    label["metadata"]["labels"] = json!({"example.com/k": "v".repeat(64)});
    invalid(try_create(label).await, "a label value over 63 characters");
    let mut affinity = base("empty-affinity");
    affinity["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": []}});
    invalid(
        try_create(affinity).await,
        "a required node affinity with no terms",
    );
    let mut two = base("two-sources");
    two["spec"]["local"] = json!({"path": "/mnt/x"});
    invalid(try_create(two).await, "two volume sources");
    // And what our provisioners write is accepted.
    let mut ok = base("ok");
    ok["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-a"]}
    ]}]}});
    try_create(ok).await.expect("a valid PV is accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_patch_types_and_finalizers_on_deleting_objects() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    create_claim(&client, "p", "manual", "1Gi", json!({})).await;
    let api = claims(&client);
    let pp = PatchParams::default();
    api.patch(
        "p",
        &pp,
        &Patch::Merge(json!({"metadata": {"labels": {"a": "1"}}})),
    )
    .await
    .expect("merge patch");
    api.patch(
        "p",
        &pp,
        &Patch::Strategic(json!({"metadata": {"finalizers": ["example.com/mine"]}})),
    )
    .await
    .expect("strategic merge patch");
    let c = api.get("p").await.unwrap();
    // Strategic merge lists of finalizers merge (no patch strategy: they
    // are replaced on both backends).
    assert_eq!(c.labels()["a"], "1");
    assert!(
        c.finalizers().iter().any(|f| f == "example.com/mine"),
        "{:?}",
        c.finalizers()
    );
    let rv = c.resource_version().unwrap();
    // A guarded JSON patch: test the resourceVersion, then act.
    let stale: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "add", "path": "/metadata/labels/b", "value": "2"}
    ]))
    .unwrap();
    match api.patch("p", &pp, &Patch::Json::<()>(stale)).await {
        Err(kube::Error::Api(e)) => assert!(e.code == 422 || e.code == 409, "{e:?}"),
        other => panic!("a failed JSON patch test must be refused: {other:?}"),
    }
    let fresh: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/metadata/labels/b", "value": "2"}
    ]))
    .unwrap();
    api.patch("p", &pp, &Patch::Json::<()>(fresh))
        .await
        .expect("guarded JSON patch");

    // Deleting: the object stays with a deletionTimestamp while finalizers
    // remain, and no new finalizer may be added.
    api.delete("p", &DeleteParams::default()).await.unwrap();
    let c = api.get("p").await.unwrap();
    assert!(c.metadata.deletion_timestamp.is_some());
    let add = api
        .patch(
            "p",
            &pp,
            &Patch::Merge(
                json!({"metadata": {"finalizers": ["example.com/mine", "example.com/new"]}}),
            ),
        )
        .await;
    match add {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 422, "{e:?}"),
        other => panic!("a new finalizer on a deleting object must be refused: {other:?}"),
    }
    api.patch(
        "p",
        &pp,
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("removing our finalizer");
    wait_for("claim p gone", || async {
        api.get_opt("p").await.ok()?.is_none().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_a_watch_from_a_compacted_version_gets_410() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let api: Api<PersistentVolumeClaim> = claims(&client);
    for i in 0..3 {
        create_claim(&client, &format!("w{i}"), "manual", "1Gi", json!({})).await;
    }
    // A fresh apiserver's watch cache still serves resourceVersion 1; after
    // a restart (real) or a compaction (test server) it must not.
    cluster.expire_history().await;
    let stream = api.watch(&WatchParams::default(), "1").await;
    let first = match stream {
        Err(kube::Error::Api(e)) => Some(e.code),
        Ok(s) => {
            let mut s = Box::pin(s);
            match tokio::time::timeout(Duration::from_secs(20), s.next()).await {
                Ok(Some(Ok(WatchEvent::Error(e)))) => Some(e.code),
                Ok(Some(Err(kube::Error::Api(e)))) => Some(e.code),
                Ok(other) => panic!("expected 410 Gone, got {other:?}"),
                Err(_) => None,
            }
        }
        Err(e) => panic!("watch: {e}"),
    };
    assert_eq!(first, Some(410), "a watch from a compacted resourceVersion");
}
