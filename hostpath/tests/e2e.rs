//! End-to-end: the real `hostpath-provisioner` binary against kube-testserver
//! (with its PV binder and WaitForFirstConsumer scheduler), making real
//! directories in a temporary root.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use e2e_support::*;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::Client;
use serde_json::json;

const PROVISIONER: &str = "external-storage.io/hostpath";
const NODE: &str = "node-1";

struct Env {
    _ts: TestServer,
    client: Client,
    tmp: tempfile::TempDir,
    _provisioner: Binary,
}

impl Env {
    async fn start() -> Env {
        let ts = TestServer::start().await.expect("start kube-testserver");
        let client = ts.client().await;
        let tmp = tempfile::tempdir().unwrap();
        for node in [NODE, "node-2"] {
            create_node(&client, node).await;
        }
        let root = tmp.path().join("root");
        let provisioner = Binary::spawn(
            env!("CARGO_BIN_EXE_hostpath-provisioner"),
            ts.kubeconfig_path(),
            &[
                "--node-name",
                NODE,
                "--retry-interval-start",
                "200ms",
                "--retry-interval-max",
                "2s",
                "--root",
                root.to_str().unwrap(),
            ],
            tmp.path(),
        );
        Env {
            _ts: ts,
            client,
            tmp,
            _provisioner: provisioner,
        }
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    async fn class(&self, name: &str, policy: &str, params: serde_json::Value) {
        create_class(&self.client, name, PROVISIONER, policy, true, params).await;
    }

    async fn claim_on(&self, name: &str, class: &str, node: &str) {
        create_claim(&self.client, name, class, "1Gi", json!({})).await;
        create_pod_for(&self.client, name, node).await;
    }
}

fn host_path(pv: &PersistentVolume) -> PathBuf {
    PathBuf::from(&pv.spec.as_ref().unwrap().host_path.as_ref().unwrap().path)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisions_a_directory_and_deletes_it_without_following_symlinks_out() {
    let env = Env::start().await;
    env.class(
        "hostpath",
        "Delete",
        json!({"mode": "0770", "pathPattern": "{{ .PVC.Namespace }}/{{ .PVC.Name }}"}),
    )
    .await;
    env.claim_on("data", "hostpath", NODE).await;
    let pv = wait_bound(&env.client, "data").await;
    let dir = host_path(&pv);
    assert_eq!(dir, env.root().join("default/data"));
    assert!(dir.is_dir(), "{} must exist", dir.display());
    assert_eq!(mode(&dir), 0o770);
    let ann = pv.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(ann["pv.kubernetes.io/provisioned-by"], PROVISIONER);
    let spec = pv.spec.as_ref().unwrap();
    let term = &spec
        .node_affinity
        .as_ref()
        .unwrap()
        .required
        .as_ref()
        .unwrap()
        .node_selector_terms[0];
    assert_eq!(
        term.match_expressions.as_ref().unwrap()[0]
            .values
            .as_deref(),
        Some(&[NODE.to_string()][..])
    );
    assert_eq!(spec.capacity.as_ref().unwrap()["storage"].0, "1Gi");

    // A workload plants links to data outside its volume.
    let outside = env.tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("precious"), b"keep").unwrap();
    std::fs::write(dir.join("file"), b"data").unwrap();
    symlink(&outside, dir.join("escape")).unwrap();
    symlink(outside.join("precious"), dir.join("file-link")).unwrap();

    let pv_name = pv.metadata.name.clone().unwrap();
    delete_claim(&env.client, "data").await;
    wait_pv_gone(&env.client, &pv_name).await;
    assert!(!dir.exists(), "the volume directory must be removed");
    assert_eq!(std::fs::read(outside.join("precious")).unwrap(), b"keep");
    assert!(env.root().join("default").is_dir(), "parents stay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_keeps_the_data_and_the_pv() {
    let env = Env::start().await;
    env.class("keep", "Retain", json!({})).await;
    env.claim_on("kept", "keep", NODE).await;
    let pv = wait_bound(&env.client, "kept").await;
    let dir = host_path(&pv);
    assert_eq!(mode(&dir), 0o777, "default mode");
    std::fs::write(dir.join("file"), b"data").unwrap();
    let pv_name = pv.metadata.name.clone().unwrap();
    delete_claim(&env.client, "kept").await;
    wait_pv_phase(&env.client, &pv_name, "Released").await;
    // The provisioner had every chance to act on the Released PV; a claim it
    // provisions afterwards proves it is alive and past that point.
    env.claim_on("after", "keep", NODE).await;
    wait_bound(&env.client, "after").await;
    assert_eq!(std::fs::read(dir.join("file")).unwrap(), b"data");
    assert!(pvs(&env.client).get_opt(&pv_name).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_parameter_gives_a_warning_naming_it_and_no_volume() {
    let env = Env::start().await;
    env.class("bad", "Delete", json!({"volumeType": "nfs"}))
        .await;
    env.claim_on("c", "bad", NODE).await;
    let note = wait_warning(&env.client, "c", "volumeType").await;
    assert!(note.contains("allowed: hostPath, local"), "{note}");
    assert!(pvs(&env.client)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .is_empty());
    let entries: Vec<_> = std::fs::read_dir(env.root()).unwrap().flatten().collect();
    assert!(
        entries
            .iter()
            .all(|e| e.file_name() == ".hostpath-provisioner"),
        "no volume directory may be made: {entries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_of_other_nodes_are_left_to_their_instance() {
    let env = Env::start().await;
    env.class("hostpath", "Delete", json!({})).await;
    env.claim_on("elsewhere", "hostpath", "node-2").await;
    env.claim_on("here", "hostpath", NODE).await;
    wait_bound(&env.client, "here").await;
    let other = claims(&env.client).get("elsewhere").await.unwrap();
    assert_eq!(
        other.metadata.annotations.unwrap()["volume.kubernetes.io/selected-node"],
        "node-2"
    );
    assert!(other.spec.unwrap().volume_name.is_none());
    assert_eq!(
        pvs(&env.client)
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_it_did_not_make_is_never_deleted() {
    let env = Env::start().await;
    let manual = env.root().join("manual");
    std::fs::create_dir_all(&manual).unwrap();
    std::fs::write(manual.join("file"), b"precious").unwrap();
    // A PV that claims to be ours, points into our root, and is Released
    // with policy Delete, but was never made by this provisioner.
    let pv: PersistentVolume = create(
        &pvs(&env.client),
        json!({
            "metadata": {
                "name": "impostor",
                "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
            },
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": "hostpath",
                "hostPath": {"path": manual.display().to_string()},
                "claimRef": {"namespace": "default", "name": "gone", "uid": "0000"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE]}
                ]}]}},
            },
        }),
    )
    .await;
    let name = pv.metadata.name.unwrap();
    wait_pv_phase(&env.client, &name, "Released").await;
    wait_pv_gone(&env.client, &name).await;
    assert_eq!(std::fs::read(manual.join("file")).unwrap(), b"precious");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immediate_binding_uses_the_one_node_the_class_names() {
    let env = Env::start().await;
    let classes: kube::Api<k8s_openapi::api::storage::v1::StorageClass> =
        kube::Api::all(env.client.clone());
    create(
        &classes,
        json!({
            "metadata": {"name": "pinned"},
            "provisioner": PROVISIONER,
            "volumeBindingMode": "Immediate",
            "allowedTopologies": [{"matchLabelExpressions": [
                {"key": "kubernetes.io/hostname", "values": [NODE]}
            ]}],
        }),
    )
    .await;
    // No pod: nothing selects a node; the class's topology names it.
    create_claim(&env.client, "pinned-claim", "pinned", "1Gi", json!({})).await;
    let pv = wait_bound(&env.client, "pinned-claim").await;
    assert!(host_path(&pv).is_dir());

    // An Immediate class that names no node: the claim is told why it waits.
    create_class(
        &env.client,
        "unpinned",
        PROVISIONER,
        "Delete",
        false,
        json!({}),
    )
    .await;
    create_claim(&env.client, "unpinned-claim", "unpinned", "1Gi", json!({})).await;
    let note = wait_warning(&env.client, "unpinned-claim", "cannot choose a node").await;
    assert!(note.contains("WaitForFirstConsumer"), "{note}");
    assert!(note.contains("allowedTopologies"), "{note}");
    let claim = claims(&env.client).get("unpinned-claim").await.unwrap();
    assert!(claim.spec.unwrap().volume_name.is_none());
}
