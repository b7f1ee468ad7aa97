//! Shared fixtures for end-to-end tests of the provisioner binaries.
//!
//! Every provisioner's `tests/` runs its real binary against
//! `kube-testserver`; the object builders, the polling with deadlines and the
//! process handling they all need live here once, so each test file says only
//! what is special about its provisioner. Nothing here sleeps as an
//! assertion: every wait polls with a deadline and names what it waited for.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, PostParams};
use kube::Client;
use serde_json::{json, Value};

pub use cluster::{Backend, Cluster, Installed};
pub use kube_testserver::TestServer;
pub use quota::{
    assert_filesystem_has_room, delete_and_check_freed, grow_and_check, quota_metrics,
    quota_mounts, quota_mounts_or_skip, quota_scenario, resize_claim, volume_metric,
};
pub use rbac::assert_rbac_allows;

pub mod cluster;
pub mod quota;
pub mod rbac;

/// How long a `wait_*` helper polls before it fails the test.
pub const WAIT: Duration = Duration::from_secs(30);

/// The flags of a provisioner instance under test: retries within
/// seconds, no client-side rate limit.
pub const QUICK_RETRIES: [&str; 6] = [
    "--retry-interval-start",
    "200ms",
    "--retry-interval-max",
    "2s",
    "--kube-api-qps",
    "0",
];

/// Polls `f` every 50 ms until it returns `Some`; panics naming `what` after [`WAIT`].
pub async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Kubernetes object of a compiled-in kind that the API can send and
/// receive: what the helpers here and the bench's checks take.
pub trait Object:
    kube::Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + serde::Serialize
    + std::fmt::Debug
{
}

impl<K> Object for K where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug
{
}

/// Creates an object from JSON (`apiVersion` and `kind` are filled in).
pub async fn create<K: Object>(api: &Api<K>, mut body: Value) -> K {
    body["apiVersion"] = json!(K::api_version(&()));
    body["kind"] = json!(K::kind(&()));
    let obj: K = serde_json::from_value(body).expect("fixture JSON matches the kind");
    api.create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("create {}: {e}", K::kind(&())))
}

/// The claims of namespace `default`.
pub fn claims(client: &Client) -> Api<PersistentVolumeClaim> {
    Api::namespaced(client.clone(), "default")
}

/// All PVs.
pub fn pvs(client: &Client) -> Api<PersistentVolume> {
    Api::all(client.clone())
}

/// The names of every PV in the cluster, sorted: `assert_eq!(pv_names(..),
/// Vec::<String>::new())` says which PVs exist when none should.
pub async fn pv_names(client: &Client) -> Vec<String> {
    let mut names: Vec<String> = (pvs(client).list(&Default::default()).await)
        .expect("listing PVs")
        .items
        .into_iter()
        .filter_map(|pv| pv.metadata.name)
        .collect();
    names.sort();
    names
}

/// The pods of namespace `default`.
pub fn pods(client: &Client) -> Api<Pod> {
    Api::namespaced(client.clone(), "default")
}

/// A Ready node labelled `kubernetes.io/hostname=<name>`.
pub async fn create_node(client: &Client, name: &str) -> Node {
    create(
        &Api::all(client.clone()),
        json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }),
    )
    .await
}

/// A StorageClass object (not yet created) for `provisioner` with reclaim
/// `policy`, WaitForFirstConsumer when `wffc`.
pub fn storage_class(name: &str, provisioner: &str, policy: &str, wffc: bool) -> StorageClass {
    serde_json::from_value(json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": provisioner,
        "reclaimPolicy": policy,
        "volumeBindingMode": if wffc { "WaitForFirstConsumer" } else { "Immediate" },
    }))
    .expect("StorageClass JSON")
}

/// A 1Gi RWO claim object (not yet created) in `default` for `provisioner`
/// through `class`, as the PV controller leaves it for an external
/// provisioner (`volume.kubernetes.io/storage-provisioner`); with `node`,
/// already scheduled there (`volume.kubernetes.io/selected-node`, what the
/// scheduler writes once a pod using a WaitForFirstConsumer claim is
/// placed). For tests and benches that drive a provisioner without a PV
/// controller or scheduler.
pub fn scheduled_claim(
    name: &str,
    class: &str,
    provisioner: &str,
    node: Option<&str>,
) -> PersistentVolumeClaim {
    let mut ann = serde_json::Map::new();
    ann.insert(
        "volume.kubernetes.io/storage-provisioner".into(),
        json!(provisioner),
    );
    if let Some(n) = node {
        ann.insert("volume.kubernetes.io/selected-node".into(), json!(n));
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "default", "annotations": ann},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": class,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }))
    .expect("claim JSON")
}

/// A StorageClass for `provisioner`.
pub async fn create_class(
    client: &Client,
    name: &str,
    provisioner: &str,
    policy: &str,
    wffc: bool,
    params: Value,
) -> StorageClass {
    create(
        &Api::all(client.clone()),
        json!({
            "metadata": {"name": name},
            "provisioner": provisioner,
            "reclaimPolicy": policy,
            "volumeBindingMode": if wffc { "WaitForFirstConsumer" } else { "Immediate" },
            "parameters": params,
        }),
    )
    .await
}

/// A claim in `default` for `size` of `class`, with `extra` merged into its
/// `spec` (e.g. `{"volumeMode": "Block"}`).
pub async fn create_claim(
    client: &Client,
    name: &str,
    class: &str,
    size: &str,
    extra_spec: Value,
) -> PersistentVolumeClaim {
    let mut spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": class,
        "resources": {"requests": {"storage": size}},
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        spec.extend(extra.clone());
    }
    create(
        &claims(client),
        json!({"metadata": {"name": name}, "spec": spec}),
    )
    .await
}

/// A pod `<claim>-pod` using `claim`, for the scheduler to place on `node`
/// (by its `kubernetes.io/hostname` label, which [`create_node`] sets to
/// the name): [`create_pod_on`] with the node's name.
pub async fn create_pod_for(client: &Client, claim: &str, node: &str) -> Pod {
    create_pod_on(client, claim, node).await
}

/// A pod `<claim>-pod` using `claim`, for the scheduler to place on the
/// node labelled `kubernetes.io/hostname=<hostname>` (a node selector, not
/// `nodeName`: a pod with `nodeName` bypasses the real scheduler, which then
/// never selects a node for its WaitForFirstConsumer claims).
pub async fn create_pod_on(client: &Client, claim: &str, hostname: &str) -> Pod {
    create(
        &pods(client),
        json!({
            "metadata": {"name": format!("{claim}-pod")},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": hostname},
                "containers": [{"name": "app", "image": "busybox"}],
                "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}],
            },
        }),
    )
    .await
}

/// Waits until pod `<claim>-pod` is bound to a node (by the scheduler) and
/// returns the node's name.
pub async fn wait_scheduled(client: &Client, claim: &str) -> String {
    let api = pods(client);
    let name = format!("{claim}-pod");
    wait_for(&format!("pod {name} scheduled"), || {
        let api = api.clone();
        let name = name.clone();
        async move { api.get_opt(&name).await.ok()??.spec?.node_name }
    })
    .await
}

/// Deletes a claim (and its `<claim>-pod`, if any).
pub async fn delete_claim(client: &Client, name: &str) {
    // Grace period 0: with no kubelet to confirm, a scheduled pod deleted
    // gracefully stays Terminating, and pvc-protection keeps its claim.
    let _ = pods(client)
        .delete(
            &format!("{name}-pod"),
            &DeleteParams::default().grace_period(0),
        )
        .await;
    claims(client)
        .delete(name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete claim {name}: {e}"));
}

/// Waits until claim `name` is Bound and returns its PV.
pub async fn wait_bound(client: &Client, name: &str) -> PersistentVolume {
    let api = claims(client);
    let pv_name = wait_for(&format!("claim {name} Bound"), || {
        let api = api.clone();
        async move {
            let c = api.get_opt(name).await.ok()??;
            (c.status?.phase.as_deref()? == "Bound").then_some(c.spec?.volume_name?)
        }
    })
    .await;
    pvs(client).get(&pv_name).await.expect("bound PV exists")
}

/// Waits until PV `name` is in `phase`.
pub async fn wait_pv_phase(client: &Client, name: &str, phase: &str) {
    let api = pvs(client);
    wait_for(&format!("PV {name} {phase}"), || {
        let api = api.clone();
        async move { (api.get_opt(name).await.ok()??.status?.phase.as_deref()? == phase).then_some(()) }
    })
    .await
}

/// Waits until PV `name` no longer exists.
pub async fn wait_pv_gone(client: &Client, name: &str) {
    let api = pvs(client);
    wait_for(&format!("PV {name} deleted"), || {
        let api = api.clone();
        async move { api.get_opt(name).await.ok()?.is_none().then_some(()) }
    })
    .await
}

/// The shared flags that turn the deleted-node sweep on in a test: a 2 s
/// grace period, its Lease in `namespace` (where deploy/ grants Leases)
/// with short terms, so a survivor takes over within seconds from an
/// instance that was killed holding it.
pub fn deleted_node_sweep_args(namespace: &str) -> Vec<String> {
    [
        "--delete-volumes-of-deleted-nodes-after",
        "2s",
        "--leader-elect-namespace",
        namespace,
        "--leader-elect-lease-duration",
        "4s",
        "--leader-elect-renew-deadline",
        "3s",
        "--leader-elect-retry-period",
        "500ms",
    ]
    .map(String::from)
    .to_vec()
}

/// Waits until PV `name` is being deleted (a `deletionTimestamp`; a
/// protection finalizer may hold it) or gone.
pub async fn wait_pv_deleting(client: &Client, name: &str) {
    let api = pvs(client);
    wait_for(&format!("PV {name} deleting or deleted"), || {
        let api = api.clone();
        async move {
            match api.get_opt(name).await.ok()? {
                None => Some(()),
                Some(pv) => pv.metadata.deletion_timestamp.map(|_| ()),
            }
        }
    })
    .await
}

/// `(type, reason, note)` of every event about the object named `name`.
pub async fn events_about(client: &Client, name: &str) -> Vec<(String, String, String)> {
    let api: Api<Event> = Api::all(client.clone());
    let list = api.list(&Default::default()).await.expect("list events");
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

/// Waits for a Normal event with `reason` about `name`; returns its note.
pub async fn wait_normal(client: &Client, name: &str, reason: &str) -> String {
    wait_for(&format!("a {reason} event about {name}"), || async {
        events_about(client, name)
            .await
            .into_iter()
            .find(|(t, r, _)| t == "Normal" && r == reason)
            .map(|(_, _, note)| note)
    })
    .await
}

/// Waits for a Warning event about `name` whose note contains `needle`; returns the note.
pub async fn wait_warning(client: &Client, name: &str, needle: &str) -> String {
    wait_for(
        &format!("a Warning about {name} containing {needle:?}"),
        || async {
            events_about(client, name)
                .await
                .into_iter()
                .find(|(t, _, note)| t == "Warning" && note.contains(needle))
                .map(|(_, _, note)| note)
        },
    )
    .await
}

/// A provisioner binary running against a test server; killed on drop.
/// Its stderr goes to a log file, printed when the test fails (on drop while
/// panicking), so a red test shows what the binary said.
pub struct Binary {
    child: Child,
    log: PathBuf,
}

impl Binary {
    /// Spawns `exe --kubeconfig <kubeconfig> --metrics-address "" <args>`
    /// with `RUST_LOG=info`, logging to `<log_dir>/<name>.log`; `args` with
    /// a `--metrics-address` of their own replace the empty one.
    pub fn spawn(exe: &str, kubeconfig: &Path, args: &[&str], log_dir: &Path) -> Binary {
        let name = Path::new(exe)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("create log file");
        let mut cmd = Command::new(exe);
        cmd.arg("--kubeconfig").arg(kubeconfig);
        if !args.contains(&"--metrics-address") {
            cmd.args(["--metrics-address", ""]);
        }
        let child = cmd
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(file.try_clone().expect("dup log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {exe}: {e}"));
        Binary { child, log }
    }

    /// The log written so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM (graceful shutdown) and waits up to `within` for the
    /// exit; `None` if it did not exit in time (it is then still running).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- log of {} ----\n{}", self.log.display(), self.log());
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for a binary's
/// Runs `cmd` and returns its stdout; panics, naming the command and
/// showing its exit status, stdout and stderr, when it cannot start or fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `--metrics-address` and other listeners).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `GET path` from `127.0.0.1:port` (HTTP/1.0, 2 s timeout): the status code
/// and the body, or `None` when nothing answers (yet).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Whether the binary listening on `port` answers `GET /readyz` with 200.
pub fn is_ready(port: u16) -> bool {
    matches!(http_get(port, "/readyz"), Some((200, _)))
}

/// The user provisioner binaries run as in the end-to-end tests
/// (`TestServer::kubeconfig_as(PROVISIONER_USER)`), for [`assert_rbac_allows`].
pub const PROVISIONER_USER: &str = "provisioner";

/// `deploy/<name>` of this repository: a provisioner's manifests. Found
/// from the running test's crate (cargo's `CARGO_MANIFEST_DIR` at run time,
/// else the working directory) upwards, not from a path compiled into this
/// crate: a build reused from another checkout would point there.
pub fn deploy_dir(name: &str) -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .expect("CARGO_MANIFEST_DIR or a working directory");
    start
        .ancestors()
        .map(|dir| dir.join("deploy").join(name))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| panic!("no deploy/{name} above {}", start.display()))
}

/// The first required node-selector term of `pv`'s node affinity; panics
/// when the PV has none.
pub fn first_affinity_term(pv: &PersistentVolume) -> &k8s_openapi::api::core::v1::NodeSelectorTerm {
    &pv.spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
        .expect("PV has a required node affinity")
        .node_selector_terms[0]
}

/// A tmpfs of a given size mounted on a directory (the tests run as root),
/// for a volume root whose free space a test decides; unmounted on drop.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`8m`) on `dir`, made if missing.
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(
            ok,
            "mount tmpfs on {} (this test runs as root)",
            dir.display()
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
