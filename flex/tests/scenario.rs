//! The flex scenario on either control plane (`E2E_CLUSTER=real` or
//! `testserver`, see `e2e_support::cluster`), as an operator installs it:
//! `kubectl apply -f deploy/flex`, the Deployment's pod run locally as the
//! deploy/ ServiceAccount (leader election on, as shipped) with the
//! ConfigMap's example driver, `kubectl apply -f deploy/flex/examples/pvc.yaml`
//! bound by the PV controller, a pod using the claim placed by the
//! scheduler, the driver's directory made and removed with the claim, or
//! kept under Retain.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use e2e_support::cluster::kubectl;
use e2e_support::*;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume};
use serde_json::json;

const DRIVER_NAME: &str = "example.com/dir";

fn write_driver(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn flex_options(pv: &PersistentVolume) -> BTreeMap<String, String> {
    let flex = pv.spec.as_ref().unwrap().flex_volume.as_ref().unwrap();
    assert_eq!(flex.driver, DRIVER_NAME);
    flex.options.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_flex_the_deploy_manifests_work_as_an_operator_applies_them() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let installed = cluster.install("flex");
    cluster
        .node("flex-node.cluster.example.com", "flex-node")
        .await;

    // What the Deployment's pod would run: the ConfigMap's driver, with
    // FLEX_EXAMPLE_BASE_DIR pointing into a temp dir.
    let tmp = tempfile::tempdir().unwrap();
    let cms: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), &installed.namespace);
    let cm = cms.get("flex-driver").await.unwrap();
    let script = &cm.data.unwrap()["driver"];
    let real = write_driver(
        tmp.path(),
        "cm-driver",
        script.trim_start_matches("#!/bin/sh\n"),
    );
    let base = tmp.path().join("data");
    let wrapper = write_driver(
        tmp.path(),
        "driver",
        &format!(
            "FLEX_EXAMPLE_BASE_DIR={} exec {} \"$@\"",
            base.display(),
            real.display()
        ),
    );
    let _provisioner = Binary::spawn(
        env!("CARGO_BIN_EXE_flex-provisioner"),
        &installed.kubeconfig,
        &[
            "--driver",
            wrapper.to_str().unwrap(),
            "--driver-name",
            DRIVER_NAME,
            "--leader-elect-namespace",
            &installed.namespace,
            "--retry-interval-start",
            "200ms",
            "--retry-interval-max",
            "2s",
        ],
        tmp.path(),
    );

    let examples = installed.deploy.join("examples/pvc.yaml");
    kubectl(
        cluster.admin_kubeconfig(),
        &["apply", "-n", "default", "-f", examples.to_str().unwrap()],
    );
    let pv = wait_bound(&client, "flex-example").await;
    create_pod_on(&client, "flex-example", "flex-node").await;
    assert_eq!(
        wait_scheduled(&client, "flex-example").await,
        "flex-node.cluster.example.com"
    );
    let name = pv.metadata.name.clone().unwrap();
    // The driver's record: the directory it made for the volume.
    let dir = base.join(&name);
    assert_eq!(flex_options(&pv)["path"], dir.display().to_string());
    assert!(dir.is_dir());
    delete_claim(&client, "flex-example").await;
    wait_pv_gone(&client, &name).await;
    assert!(!dir.exists(), "the driver deleted the volume");

    // Retain keeps the PV (Released) and the driver's directory.
    create_class(
        &client,
        "flex-keep",
        "external-storage.io/flex",
        "Retain",
        false,
        json!({"type": "directory"}),
    )
    .await;
    create_claim(&client, "kept", "flex-keep", "1Gi", json!({})).await;
    let pv = wait_bound(&client, "kept").await;
    let name = pv.metadata.name.clone().unwrap();
    std::fs::write(base.join(&name).join("file"), b"kept").unwrap();
    delete_claim(&client, "kept").await;
    wait_pv_phase(&client, &name, "Released").await;
    create_claim(&client, "after", "flex-example", "1Gi", json!({})).await;
    wait_bound(&client, "after").await;
    assert_eq!(
        std::fs::read(base.join(&name).join("file")).unwrap(),
        b"kept"
    );
    assert!(pvs(&client).get_opt(&name).await.unwrap().is_some());

    cluster.assert_rbac(&installed);
}
