//! The export disk's PV is made Retain (nfs/src/export_disk.rs), as the
//! provisioner's user against kube-testserver, and the calls it makes are
//! allowed by deploy/nfs's RBAC. No Ganesha: this is the API half only; the
//! real node tier (hack/node/e2e-nfs.sh) checks it on the shipped StatefulSet.

use e2e_support::*;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::Api;
use nfs_provisioner::export_disk::{self, Outcome, RetainError, ANNOTATION_PREVIOUS_POLICY};
use serde_json::json;

/// A PV with `policy` bound to claim default/`claim`.
async fn bound_pair(c: &kube::Client, pv: &str, claim: &str, policy: &str) {
    create(
        &Api::<PersistentVolume>::all(c.clone()),
        json!({
            "metadata": {"name": pv},
            "spec": {
                "capacity": {"storage": "10Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": policy,
                "hostPath": {"path": "/var/tmp/export"},
                "claimRef": {"namespace": "default", "name": claim},
            },
        }),
    )
    .await;
    create(
        &Api::<PersistentVolumeClaim>::namespaced(c.clone(), "default"),
        json!({
            "metadata": {"name": claim},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "10Gi"}},
                "volumeName": pv,
            },
        }),
    )
    .await;
}

#[tokio::test]
async fn the_export_disk_becomes_retain_and_says_what_it_was() {
    let ts = TestServer::start().await.expect("start kube-testserver");
    let admin = ts.client().await;
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(ts.kubeconfig_as(PROVISIONER_USER).unwrap()).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    bound_pair(&admin, "disk", "export-nfs-provisioner-0", "Delete").await;

    let first = export_disk::retain(&client, "default", "export-nfs-provisioner-0")
        .await
        .unwrap();
    assert_eq!(
        first,
        Outcome::Retained {
            pv: "disk".into(),
            was: "Delete".into()
        }
    );
    let pv = Api::<PersistentVolume>::all(admin.clone())
        .get("disk")
        .await
        .unwrap();
    assert_eq!(
        pv.spec.unwrap().persistent_volume_reclaim_policy.as_deref(),
        Some("Retain"),
        "the export disk's PV is still Delete"
    );
    assert_eq!(
        pv.metadata
            .annotations
            .unwrap_or_default()
            .get(ANNOTATION_PREVIOUS_POLICY)
            .map(String::as_str),
        Some("Delete")
    );
    // A restart finds it done and changes nothing (the note stays).
    let again = export_disk::retain(&client, "default", "export-nfs-provisioner-0")
        .await
        .unwrap();
    assert_eq!(again, Outcome::AlreadyRetained { pv: "disk".into() });

    // No such claim (the export root is a hostPath): an error naming it,
    // and no PV touched.
    bound_pair(&admin, "other", "someone-elses", "Delete").await;
    let missing = export_disk::retain(&client, "default", "export-absent").await;
    assert!(
        matches!(missing, Err(RetainError::NotBound { ref claim, .. }) if claim == "export-absent"),
        "{missing:?}"
    );
    let other = Api::<PersistentVolume>::all(admin)
        .get("other")
        .await
        .unwrap();
    assert_eq!(
        other
            .spec
            .unwrap()
            .persistent_volume_reclaim_policy
            .as_deref(),
        Some("Delete"),
        "a PV that is not the export disk's was changed"
    );

    assert_rbac_allows(&ts, PROVISIONER_USER, &deploy_dir("nfs"));
}
