//! The nfs scenario on either control plane (`E2E_CLUSTER=real` or
//! `testserver`, see `e2e_support::cluster`): `kubectl apply -f deploy/nfs`
//! (its Service, whose ClusterIP the apiserver allocates, and its class
//! `nfs`), the StatefulSet's server run locally as the deploy/
//! ServiceAccount with a real NFS-Ganesha, claims bound by the PV
//! controller, data written and read through libnfs over NFSv3, then the
//! export and its data removed with the claim, kept under Retain, or
//! archived with `onDelete: archive`.
//! Needs root and the Ganesha packages (hack/test.sh installs them).

mod common;

use common::*;
use e2e_support::*;
use k8s_openapi::api::core::v1::Service;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_nfs_export_write_read_delete_and_retain() {
    preflight();
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let installed = cluster.install("nfs");
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let export_root = tmp.path().join("export");
    let _reaper = Reaper(run_dir.clone());
    let metrics_port = free_port();
    let _server = Server {
        service_name: "nfs-provisioner",
        service_namespace: &installed.namespace,
        // The test client is on loopback; the shipped default admits only
        // the private ranges.
        allowed_clients: "127.0.0.1",
        probe_interval: None,
        ..Server::new(&export_root, &run_dir, metrics_port)
    }
    .spawn(&installed.kubeconfig, tmp.path(), &[]);
    wait_ready(metrics_port).await;
    let service: Service = kube::Api::namespaced(client.clone(), &installed.namespace)
        .get("nfs-provisioner")
        .await
        .expect("deploy/nfs's Service");
    let cluster_ip = service
        .spec
        .unwrap()
        .cluster_ip
        .expect("an allocated ClusterIP");

    // The shipped class (Immediate, Delete): bound by the PV controller.
    let rwx = json!({"accessModes": ["ReadWriteMany"]});
    create_claim(&client, "one", "nfs", "1Gi", rwx.clone()).await;
    let pv = wait_bound(&client, "one").await;
    let spec = pv.spec.as_ref().unwrap();
    assert_eq!(spec.nfs.as_ref().unwrap().server, cluster_ip);
    let path = nfs_path(&pv);
    let payload: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    nfs_write(&path, "hello.bin", &payload, tmp.path());
    assert_eq!(nfs_read(&path, "hello.bin").unwrap(), payload);
    assert_eq!(
        std::fs::read(std::path::Path::new(&path).join("hello.bin")).unwrap(),
        payload,
        "written through NFSv3, on the server's disk"
    );
    let pv_name = pv.metadata.name.clone().unwrap();
    delete_claim(&client, "one").await;
    wait_pv_gone(&client, &pv_name).await;
    assert!(
        !std::path::Path::new(&path).exists(),
        "the export's data goes with the PV"
    );
    assert!(
        nfs_read(&path, "hello.bin").is_err(),
        "the export is withdrawn"
    );

    // Retain: Released, exported data stays on disk.
    create_class(
        &client,
        "nfs-keep",
        "external-storage.io/nfs",
        "Retain",
        false,
        json!({}),
    )
    .await;
    create_claim(&client, "kept", "nfs-keep", "1Gi", rwx).await;
    let pv = wait_bound(&client, "kept").await;
    let path = nfs_path(&pv);
    nfs_write(&path, "kept.bin", b"kept", tmp.path());
    let pv_name = pv.metadata.name.clone().unwrap();
    delete_claim(&client, "kept").await;
    wait_pv_phase(&client, &pv_name, "Released").await;
    create_claim(
        &client,
        "after",
        "nfs",
        "1Gi",
        json!({"accessModes": ["ReadWriteMany"]}),
    )
    .await;
    wait_bound(&client, "after").await;
    assert_eq!(
        std::fs::read(std::path::Path::new(&path).join("kept.bin")).unwrap(),
        b"kept"
    );
    assert!(pvs(&client).get_opt(&pv_name).await.unwrap().is_some());

    // onDelete: archive: the PV controller releases the PV, the export is
    // withdrawn and its directory moved to an archive on the server's disk
    // (the event, accepted by the apiserver, names it).
    create_class(
        &client,
        "nfs-archive",
        "external-storage.io/nfs",
        "Delete",
        false,
        json!({"onDelete": "archive"}),
    )
    .await;
    create_claim(
        &client,
        "old",
        "nfs-archive",
        "1Gi",
        json!({"accessModes": ["ReadWriteMany"]}),
    )
    .await;
    let pv = wait_bound(&client, "old").await;
    let path = nfs_path(&pv);
    nfs_write(&path, "old.bin", b"archived", tmp.path());
    let pv_name = pv.metadata.name.clone().unwrap();
    delete_claim(&client, "old").await;
    wait_pv_gone(&client, &pv_name).await;
    let note = wait_normal(&client, &pv_name, "VolumeArchived").await;
    assert!(nfs_read(&path, "old.bin").is_err(), "no longer exported");
    let archive = note
        .split_whitespace()
        .find(|w| w.contains("/archived-"))
        .unwrap_or_else(|| panic!("no archive path in {note:?}"));
    assert_eq!(
        std::fs::read(std::path::Path::new(archive).join("old.bin")).unwrap(),
        b"archived"
    );

    cluster.assert_rbac(&installed);
}
