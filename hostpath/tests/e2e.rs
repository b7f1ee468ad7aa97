//! End-to-end: the real `hostpath-provisioner` binary against kube-testserver
//! (with its PV binder and WaitForFirstConsumer scheduler), making real
//! directories in a temporary root.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, PostParams};
use kube::Client;
use kube_testserver::TestServer;
use serde_json::{json, Value};

const PROVISIONER: &str = "external-storage.io/hostpath";
const NODE: &str = "node-1";

/// The provisioner process; killed on drop.
struct Provisioner(Child);

impl Drop for Provisioner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Env {
    ts: TestServer,
    client: Client,
    tmp: tempfile::TempDir,
    _provisioner: Provisioner,
}

impl Env {
    async fn start() -> Env {
        let ts = TestServer::start().await.expect("start kube-testserver");
        let client = ts.client().await;
        let tmp = tempfile::tempdir().unwrap();
        for node in [NODE, "node-2"] {
            create::<Node>(
                &Api::all(client.clone()),
                json!({
                    "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}},
                    "status": {"conditions": [{"type": "Ready", "status": "True"}]},
                }),
            )
            .await;
        }
        let child = Command::new(env!("CARGO_BIN_EXE_hostpath-provisioner"))
            .arg("--kubeconfig")
            .arg(ts.kubeconfig_path())
            .args(["--node-name", NODE, "--metrics-address", ""])
            .args([
                "--retry-interval-start",
                "200ms",
                "--retry-interval-max",
                "2s",
            ])
            .arg("--root")
            .arg(tmp.path().join("root"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn hostpath-provisioner");
        Env {
            ts,
            client,
            tmp,
            _provisioner: Provisioner(child),
        }
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    async fn class(&self, name: &str, policy: &str, params: Value) {
        create::<StorageClass>(
            &Api::all(self.client.clone()),
            json!({
                "metadata": {"name": name},
                "provisioner": PROVISIONER,
                "reclaimPolicy": policy,
                "volumeBindingMode": "WaitForFirstConsumer",
                "parameters": params,
            }),
        )
        .await;
    }

    /// A claim and a pod on `node` using it (the test server's scheduler
    /// then selects the node on the claim).
    async fn claim_with_pod(&self, name: &str, class: &str, node: &str) {
        create::<PersistentVolumeClaim>(
            &claims(&self.client),
            json!({
                "metadata": {"name": name},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": class,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }),
        )
        .await;
        create::<Pod>(
            &Api::namespaced(self.client.clone(), "default"),
            json!({
                "metadata": {"name": format!("{name}-pod")},
                "spec": {
                    "nodeName": node,
                    "containers": [{"name": "app", "image": "busybox"}],
                    "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": name}}],
                },
            }),
        )
        .await;
    }

    async fn delete_claim_and_pod(&self, name: &str) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), "default");
        pods.delete(&format!("{name}-pod"), &DeleteParams::default())
            .await
            .unwrap();
        claims(&self.client)
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }

    async fn wait_bound(&self, name: &str) -> PersistentVolume {
        let api = claims(&self.client);
        let pv_name = wait_for(&format!("claim {name} Bound"), || {
            let api = api.clone();
            async move {
                let c = api.get_opt(name).await.ok()??;
                (c.status?.phase.as_deref()? == "Bound").then_some(c.spec?.volume_name?)
            }
        })
        .await;
        pvs(&self.client).get(&pv_name).await.unwrap()
    }

    async fn wait_pv_phase(&self, pv: &str, phase: &str) {
        let api = pvs(&self.client);
        wait_for(&format!("PV {pv} {phase}"), || {
            let api = api.clone();
            async move {
                let p = api.get_opt(pv).await.ok()??;
                (p.status?.phase.as_deref()? == phase).then_some(())
            }
        })
        .await
    }

    async fn wait_pv_gone(&self, pv: &str) {
        let api = pvs(&self.client);
        wait_for(&format!("PV {pv} deleted"), || {
            let api = api.clone();
            async move { api.get_opt(pv).await.ok()?.is_none().then_some(()) }
        })
        .await
    }

    /// Messages of Warning events about the object `name`.
    async fn warnings(&self, name: &str) -> Vec<String> {
        let api: Api<Event> = Api::all(self.client.clone());
        let list = api.list(&Default::default()).await.unwrap();
        list.items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .filter_map(|e| e.note)
            .collect()
    }
}

async fn create<K>(api: &Api<K>, mut body: Value) -> K
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    body["apiVersion"] = json!(K::api_version(&()));
    body["kind"] = json!(K::kind(&()));
    let obj: K = serde_json::from_value(body).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap()
}

fn claims(client: &Client) -> Api<PersistentVolumeClaim> {
    Api::namespaced(client.clone(), "default")
}

fn pvs(client: &Client) -> Api<PersistentVolume> {
    Api::all(client.clone())
}

/// Polls `f` every 50 ms until it returns `Some`; panics after 30 s.
async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after 30s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
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
    env.claim_with_pod("data", "hostpath", NODE).await;
    let pv = env.wait_bound("data").await;
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
    env.delete_claim_and_pod("data").await;
    env.wait_pv_gone(&pv_name).await;
    assert!(!dir.exists(), "the volume directory must be removed");
    assert_eq!(std::fs::read(outside.join("precious")).unwrap(), b"keep");
    assert!(env.root().join("default").is_dir(), "parents stay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_keeps_the_data_and_the_pv() {
    let env = Env::start().await;
    env.class("keep", "Retain", json!({})).await;
    env.claim_with_pod("kept", "keep", NODE).await;
    let pv = env.wait_bound("kept").await;
    let dir = host_path(&pv);
    assert_eq!(mode(&dir), 0o777, "default mode");
    std::fs::write(dir.join("file"), b"data").unwrap();
    let pv_name = pv.metadata.name.clone().unwrap();
    env.delete_claim_and_pod("kept").await;
    env.wait_pv_phase(&pv_name, "Released").await;
    // The provisioner had every chance to act on the Released PV; a claim it
    // provisions afterwards proves it is alive and past that point.
    env.claim_with_pod("after", "keep", NODE).await;
    env.wait_bound("after").await;
    assert_eq!(std::fs::read(dir.join("file")).unwrap(), b"data");
    assert!(pvs(&env.client).get_opt(&pv_name).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_parameter_gives_a_warning_naming_it_and_no_volume() {
    let env = Env::start().await;
    env.class("bad", "Delete", json!({"volumeType": "nfs"}))
        .await;
    env.claim_with_pod("c", "bad", NODE).await;
    let note = wait_for("a Warning event on the claim", || async {
        env.warnings("c").await.into_iter().next()
    })
    .await;
    assert!(note.contains("volumeType"), "{note}");
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
    env.claim_with_pod("elsewhere", "hostpath", "node-2").await;
    env.claim_with_pod("here", "hostpath", NODE).await;
    env.wait_bound("here").await;
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
    env.wait_pv_phase(&name, "Released").await;
    env.wait_pv_gone(&name).await;
    assert_eq!(std::fs::read(manual.join("file")).unwrap(), b"precious");
    drop(env.ts);
}
