//! Runs the real `kubectl` (default flags, including `--validate=strict`)
//! against the `kube-testserver` binary.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// `/usr/bin/kubectl` unless `KUBECTL` names another binary (e.g. a
/// specific version behind the gcloud version dispatcher).
fn kubectl() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "/usr/bin/kubectl".to_string())
}

struct Cluster {
    _server: Child,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Cluster {
    async fn start() -> Cluster {
        let k = kubectl();
        assert!(
            Path::new(&k).exists(),
            "{k} is missing: run hack/test.sh, which installs the kubectl these tests need"
        );
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let mut server = Command::new(env!("CARGO_BIN_EXE_kube-testserver"))
            .args(["--listen", "127.0.0.1:0", "--kubeconfig-out"])
            .arg(&kubeconfig)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn kube-testserver");
        let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
        let url = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        assert!(std::fs::read_to_string(&kubeconfig).unwrap().contains(&url));
        Cluster {
            _server: server,
            dir,
            kubeconfig,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(kubectl());
        c.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }

    /// Runs kubectl, asserting success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = tokio::time::timeout(Duration::from_secs(30), self.cmd(args).output())
            .await
            .expect("kubectl timed out")
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {stdout}\n{stderr}"
        );
        assert!(
            !stderr.contains("warning"),
            "kubectl {args:?} warned: {stderr}"
        );
        stdout
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
}

const MANIFESTS: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: prov
  namespace: demo
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: prov-runner
rules:
- apiGroups: [""]
  resources: ["persistentvolumes"]
  verbs: ["get", "list", "watch", "create", "delete"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: prov-runner
subjects:
- kind: ServiceAccount
  name: prov
  namespace: demo
roleRef:
  kind: ClusterRole
  name: prov-runner
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: prov
  namespace: demo
spec:
  selector:
    matchLabels: {app: prov}
  template:
    metadata:
      labels: {app: prov}
    spec:
      serviceAccountName: prov
      containers:
      - name: prov
        image: example.com/prov:IMAGE_TAG
        env:
        - {name: A, value: "1"}
        volumeMounts:
        - {name: data, mountPath: /data}
      volumes:
      - name: data
        hostPath: {path: /var/data}
"#;

const CLASS_AND_CM: &str = r#"apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fast
provisioner: example.com/hostpath
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  namespace: demo
data:
  a: "CM_VALUE"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn apply_directory_twice_then_modify() {
    let c = Cluster::start().await;
    let dir = c.dir.path().join("manifests");
    c.write("manifests/a.yaml", &MANIFESTS.replace("IMAGE_TAG", "1"));
    c.write("manifests/b.yaml", &CLASS_AND_CM.replace("CM_VALUE", "1"));
    let d = dir.to_str().unwrap();
    let first = c.ok(&["apply", "-f", d]).await;
    for what in [
        "namespace/demo created",
        "serviceaccount/prov created",
        "clusterrole.rbac.authorization.k8s.io/prov-runner created",
        "clusterrolebinding.rbac.authorization.k8s.io/prov-runner created",
        "daemonset.apps/prov created",
        "storageclass.storage.k8s.io/fast created",
        "configmap/cfg created",
    ] {
        assert!(first.contains(what), "{what} missing in:\n{first}");
    }
    let second = c.ok(&["apply", "-f", d]).await;
    assert_eq!(second.matches("unchanged").count(), 7, "{second}");
    c.write("manifests/a.yaml", &MANIFESTS.replace("IMAGE_TAG", "2"));
    c.write("manifests/b.yaml", &CLASS_AND_CM.replace("CM_VALUE", "2"));
    let dry = c.ok(&["apply", "--dry-run=server", "-f", d]).await;
    assert!(
        dry.contains("configmap/cfg configured (server dry run)"),
        "{dry}"
    );
    assert_eq!(
        c.ok(&["get", "cm", "cfg", "-n", "demo", "-o", "jsonpath={.data.a}"])
            .await,
        "1"
    );
    let third = c.ok(&["apply", "-f", d]).await;
    assert!(third.contains("daemonset.apps/prov configured"), "{third}");
    assert!(third.contains("configmap/cfg configured"), "{third}");
    assert!(third.contains("namespace/demo unchanged"), "{third}");
    let ds: Value = serde_json::from_str(
        &c.ok(&["get", "ds", "prov", "-n", "demo", "-o", "json"])
            .await,
    )
    .unwrap();
    let containers = ds["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0]["image"], "example.com/prov:2");
    assert_eq!(ds["metadata"]["generation"], 2);
    let cm = c
        .ok(&["get", "cm", "cfg", "-n", "demo", "-o", "jsonpath={.data.a}"])
        .await;
    assert_eq!(cm, "2");
    // server-side apply of the same directory
    let ssa = c.ok(&["apply", "--server-side", "-f", d]).await;
    assert_eq!(ssa.matches("serverside-applied").count(), 7, "{ssa}");
}

#[tokio::test(flavor = "multi_thread")]
async fn get_label_annotate_delete() {
    let c = Cluster::start().await;
    let f = c.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\ndata:\n  k: v\n",
    );
    c.ok(&["create", "-f", f.to_str().unwrap()]).await;
    c.ok(&["label", "cm", "one", "team=storage"]).await;
    c.ok(&["annotate", "cm", "one", "note=hello"]).await;
    let list: Value = serde_json::from_str(&c.ok(&["get", "cm", "-o", "json"]).await).unwrap();
    assert_eq!(list["kind"], "List");
    let item = &list["items"][0];
    assert_eq!(item["metadata"]["labels"]["team"], "storage");
    assert_eq!(item["metadata"]["annotations"]["note"], "hello");
    let sel = c
        .ok(&["get", "cm", "-l", "team=storage", "-o", "name"])
        .await;
    assert_eq!(sel.trim(), "configmap/one");
    let table = c.ok(&["get", "cm"]).await;
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("one"), "{table}");
    let ns = c.ok(&["get", "ns"]).await;
    assert!(ns.contains("kube-system") && ns.contains("Active"), "{ns}");
    let del = c.ok(&["delete", "cm", "one"]).await;
    assert!(del.contains("configmap \"one\" deleted"), "{del}");
    let out = c.cmd(&["get", "cm", "one"]).output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("configmaps \"one\" not found"));
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_receives_updates() {
    let c = Cluster::start().await;
    let f = c.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: w\n  labels:\n    step: one\n",
    );
    c.ok(&["apply", "-f", f.to_str().unwrap()]).await;
    let mut child = c
        .cmd(&[
            "get",
            "cm",
            "w",
            "-w",
            "-o",
            "jsonpath={.metadata.labels.step}{\"\\n\"}",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first, "one");
    c.ok(&["label", "--overwrite", "cm", "w", "step=two"]).await;
    let second = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second, "two");
    child.kill().await.unwrap();

    // table-mode watch prints rows, not a new header per event
    let mut child = c
        .cmd(&["get", "cm", "-w"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(next_line(&mut lines).await.starts_with("NAME"));
    assert!(next_line(&mut lines).await.starts_with("w "));
    c.ok(&["label", "--overwrite", "cm", "w", "step=three"])
        .await;
    assert!(next_line(&mut lines).await.starts_with("w "));
    child.kill().await.unwrap();
}

async fn next_line(l: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(10), l.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_for_claim_bound() {
    let c = Cluster::start().await;
    let f = c.write(
        "pv.yaml",
        r#"apiVersion: v1
kind: PersistentVolume
metadata:
  name: pv1
spec:
  capacity: {storage: 2Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  hostPath: {path: /tmp/pv1}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: x
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  resources: {requests: {storage: 1Gi}}
"#,
    );
    c.ok(&["apply", "-f", f.to_str().unwrap()]).await;
    let out = c
        .ok(&[
            "wait",
            "--for=jsonpath={.status.phase}=Bound",
            "pvc/x",
            "--timeout=20s",
        ])
        .await;
    assert!(out.contains("condition met"), "{out}");
    let table = c.ok(&["get", "pvc"]).await;
    assert!(
        table.contains("x ") && table.contains("Bound") && table.contains("pv1"),
        "{table}"
    );
    // A single object is printed from a one-row Table too.
    let one = c.ok(&["get", "pvc", "x"]).await;
    assert!(
        one.contains("STATUS") && one.contains("Bound") && one.contains("pv1"),
        "{one}"
    );
    c.ok(&["delete", "pvc", "x"]).await;
    let out = c
        .ok(&[
            "wait",
            "--for=jsonpath={.status.phase}=Released",
            "pv/pv1",
            "--timeout=20s",
        ])
        .await;
    assert!(out.contains("condition met"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_validation_rejects_unknown_fields() {
    let c = Cluster::start().await;
    let f = c.write("typo.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\n  lables:\n    a: b\ndata:\n  k: v\n");
    let out = c
        .cmd(&["apply", "-f", f.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("strict decoding error: unknown field \"metadata.lables\""),
        "{err}"
    );
    // the same file is accepted when validation is turned off, like on a real cluster
    c.ok(&["apply", "--validate=false", "-f", f.to_str().unwrap()])
        .await;
}
